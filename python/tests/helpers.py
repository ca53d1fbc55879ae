"""Shared helpers of the framework tests: temp BLOXPATH trees holding small blocks."""

import json
import os
import shutil
import socket
import sys
import tempfile
import textwrap

from datablox_framework import naming

# A block that doubles the `value` field of what it receives; used by several tests.
DOUBLER_SOURCE = '''
from datablox_framework.block import Block, Log

class {cls}(Block):
    """Doubles `value`."""
    def on_load(self, config):
        self.factor = config.get("factor", 2)
        self.add_input("input", ["value"])
        self.add_output("output", ["value"])
    def recv_push(self, port, log):
        self.push("output", Log({{"value": [v * self.factor for v in log["value"]]}}))
'''


class TempBloxpath(object):
    """A temporary BLOXPATH directory; forgets the block modules it made importable on close."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="bloxpath-")
        self.packages = []

    def write_block(self, name, version, source=None):
        directory = os.path.join(self.root, naming.block_dir(name, version))
        os.makedirs(directory)
        with open(os.path.join(directory, "__init__.py"), "w") as handle:
            handle.write("")
        if source is None:
            source = DOUBLER_SOURCE.format(cls=naming.block_class(name))
        with open(os.path.join(directory, naming.block_module(name) + ".py"), "w") as handle:
            handle.write(textwrap.dedent(source))
        self.packages.append(naming.block_dir(name, version))
        return directory

    def close(self):
        for package in self.packages:
            for module in list(sys.modules):
                if module == package or module.startswith(package + "."):
                    del sys.modules[module]
        while self.root in sys.path:
            sys.path.remove(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


class Control(object):
    """An authenticated control connection to a caretaker, as the master opens one: `request`
    sends one tagged line and returns the checked answer."""

    def __init__(self, port, key, host="127.0.0.1", timeout=10):
        from datablox_framework import auth

        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.session = auth.client_handshake(self.sock, key, "control")
        self.reader = self.sock.makefile("rb")

    def send(self, request):
        payload = request if isinstance(request, bytes) else json.dumps(request).encode("utf-8")
        self.sock.sendall(self.session.seal_line(payload))

    def receive(self):
        """The next answer, or None when the caretaker closed (or reset) the connection."""
        try:
            line = self.reader.readline()
        except ConnectionResetError:
            return None
        if not line:
            return None
        return json.loads(self.session.open_line(line).decode("utf-8"))

    def request(self, request):
        self.send(request)
        return self.receive()

    def close(self):
        self.reader.close()
        self.sock.close()


def write_home_key(home, key):
    """Give `home` the cluster key `key`, as `deploy --home` does."""
    from datablox_framework import auth

    os.makedirs(os.path.join(home, "config"), exist_ok=True)
    auth.write_key(auth.key_path(home), key)
