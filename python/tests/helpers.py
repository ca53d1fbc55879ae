"""Shared helpers of the framework tests: temp BLOXPATH trees holding small blocks."""

import os
import shutil
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
