"""The per-node caretaker: loads blocks into this node, deploying them first when needed.

A node is first deployed with only the caretaker, the framework and the adapter. When asked to
load a block whose directory is not under `<home>/blox`, the caretaker asks the Datablox Engage
adapter to deploy it (and what it needs) into this home; a block already there is only loaded.

Run as a server:  python3 -m datablox_framework.caretaker --home DIR --port N
It speaks line-delimited JSON on 127.0.0.1, one request per line, one answer per line:
  {"op": "ping"}                                   -> {"ok": true, "pid": ...}
  {"op": "load", "name": "Dump", "version": "1.0"} -> {"ok": true, "block": {...}}
  {"op": "run", "topology": {"blocks": [{"id": "src", "name": "Dir-Source", "version": "1.0",
                                         "args": {"directory": "/data"}}, ...],
                              "connections": [{"from": "src.output", "to": "count.input"}, ...]}}
      -> {"ok": true, "result": {"blocks": N, "delivered": N, "order": [...]},
          "counts": {"src": {"emitted": N, "received": N}, ...}, "deployed": ["Word-Count 1.0", ...]}
     Each run has its own block instances (configured with their `args`); blocks that are not
     installed are deployed first, through the adapter.
  {"op": "shutdown"}                               -> {"ok": true}, then the server stops
Errors answer {"ok": false, "error": "..."}.
"""

import argparse
import json
import os
import socket
import socketserver
import sys
import threading
import time

from . import loader, naming, runtime


class CaretakerError(Exception):
    """A block cannot be loaded on this node."""


class Caretaker(object):
    """The blocks loaded on the node whose deployment home is `home`.

    `adapter` is the deployment adapter module (anything with `deploy_block(home, name, version)`);
    by default the `datablox_engage_adapter` package if it is importable, else none.
    """

    _DEFAULT = object()

    def __init__(self, home, adapter=_DEFAULT):
        self.home = os.path.abspath(home)
        self.adapter = loader.deployment_adapter() if adapter is Caretaker._DEFAULT else adapter
        self.loaded = {}
        self._lock = threading.Lock()

    @property
    def bloxpath(self):
        return os.path.join(self.home, "blox")

    def block_path(self, name, version):
        return os.path.join(self.bloxpath, naming.block_dir(name, version))

    def load_block(self, name, version, config=None):
        """Load (deploying first if needed) and configure block `name` `version`; returns a summary.
        Each distinct `config` gets its own instance."""
        try:
            key = naming.block_key(name, version)
        except ValueError as error:
            raise CaretakerError(str(error))
        with self._lock:
            block_key = (key["name"], version, json.dumps(config or {}, sort_keys=True, default=str))
            if block_key in self.loaded:
                return self._summary(self.loaded[block_key], deployed=False)
            deployed = self._ensure_installed(name, version)
            try:
                block = loader.create_block("{}-{}".format(key["name"], version), name, version, config, [self.bloxpath])
            except Exception as error:
                raise CaretakerError("block `{} {}` is installed but cannot be loaded: {}".format(name, version, error))
            self.loaded[block_key] = block
            return self._summary(block, deployed)

    def _ensure_installed(self, name, version):
        """Deploy the block through the adapter unless it is in BLOXPATH; returns whether it deployed."""
        deployed = False
        if not os.path.isdir(self.block_path(name, version)):
            if self.adapter is None:
                raise CaretakerError(
                    "block `{} {}` is not installed in {} and no deployment adapter is available "
                    "(help: install the block there, or install `datablox_engage_adapter` so the "
                    "caretaker can deploy it)".format(name, version, self.bloxpath))
            try:
                self.adapter.deploy_block(self.home, name, version)
            except Exception as error:
                raise CaretakerError("deploying block `{} {}` failed: {}".format(name, version, error))
            if not os.path.isdir(self.block_path(name, version)):
                raise CaretakerError("the adapter reported success but `{}` does not exist".format(self.block_path(name, version)))
            deployed = True
        return deployed

    def run_topology(self, topology):
        """Run a topology (see the module's doc); returns the answer's fields."""
        if not isinstance(topology, dict) or not isinstance(topology.get("blocks"), list):
            raise CaretakerError("a topology is an object with a `blocks` list and a `connections` list")
        graph = runtime.Graph([self.bloxpath])
        deployed = []
        for index, spec in enumerate(topology["blocks"]):
            if not isinstance(spec, dict) or not all(isinstance(spec.get(f), str) for f in ("id", "name", "version")):
                raise CaretakerError("topology block #{}: needs string `id`, `name` and `version`".format(index + 1))
            name, version = spec["name"], spec["version"]
            try:
                naming.block_key(name, version)
            except ValueError as error:
                raise CaretakerError("topology block `{}`: {}".format(spec["id"], error))
            with self._lock:
                if self._ensure_installed(name, version):
                    deployed.append("{} {}".format(name, version))
            try:
                graph.add(spec["id"], name, version, spec.get("args") or {})
            except Exception as error:
                raise CaretakerError("topology block `{}` ({} {}): {}".format(spec["id"], name, version, error))
        for index, connection in enumerate(topology.get("connections", [])):
            ends = [connection.get("from"), connection.get("to")] if isinstance(connection, dict) else connection
            if not (isinstance(ends, list) and len(ends) == 2 and all(isinstance(e, str) and "." in e for e in ends)):
                raise CaretakerError("topology connection #{}: expected {{\"from\": \"block.port\", \"to\": \"block.port\"}}".format(index + 1))
            (source, source_port), (target, target_port) = (e.rsplit(".", 1) for e in ends)
            try:
                graph.connect(source, source_port, target, target_port)
            except Exception as error:
                raise CaretakerError("topology connection #{}: {}".format(index + 1, error))
        try:
            order = graph.topological_order()
            graph.run()
        except Exception as error:
            raise CaretakerError("the run failed: {}: {}".format(type(error).__name__, error))
        return {"result": {"blocks": len(graph.blocks), "delivered": graph.delivered, "order": order},
                "counts": graph.counts, "deployed": deployed}

    def _summary(self, block, deployed):
        return {
            "name": block.block_name,
            "version": block.block_version,
            "id": block.id,
            "directory": self.block_path(block.block_name, block.block_version),
            "deployed": deployed,
            "ports": sorted(block.ports),
        }

    def shutdown(self):
        """Shut every loaded block down; returns the errors met, as strings."""
        errors = []
        with self._lock:
            for block in self.loaded.values():
                try:
                    block.on_shutdown()
                except Exception as error:
                    errors.append("{}: {}".format(block.id, error))
            self.loaded.clear()
        return errors

    def handle(self, request):
        """Answer one decoded request (a dict). Never raises: errors become {"ok": false}."""
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request must be a JSON object"}
        op = request.get("op")
        try:
            if op == "ping":
                return {"ok": True, "pid": os.getpid(), "home": self.home}
            if op == "load":
                block = self.load_block(request.get("name"), request.get("version"), request.get("config"))
                return {"ok": True, "block": block}
            if op == "run":
                answer = {"ok": True}
                answer.update(self.run_topology(request.get("topology")))
                return answer
            if op == "shutdown":
                errors = self.shutdown()
                return {"ok": not errors, "errors": errors} if errors else {"ok": True}
            return {"ok": False, "error": "unknown op {!r} (known: ping, load, run, shutdown)".format(op)}
        except CaretakerError as error:
            return {"ok": False, "error": str(error)}


class _RequestHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.connection.settimeout(self.server.client_timeout)
        try:
            for raw_line in self.rfile:
                line = raw_line.decode("utf-8", "replace").strip()
                if not line:
                    continue
                try:
                    request = json.loads(line)
                except ValueError as error:
                    answer = {"ok": False, "error": "invalid JSON: {}".format(error)}
                else:
                    answer = self.server.caretaker.handle(request)
                self.wfile.write((json.dumps(answer, sort_keys=True) + "\n").encode("utf-8"))
                self.wfile.flush()
                if isinstance(request, dict) and request.get("op") == "shutdown":
                    self.server.stop_requested = True
                    return
        except socket.timeout:
            return


class CaretakerServer(socketserver.TCPServer):
    """Serves one client at a time on 127.0.0.1 only: the caretaker is driven by the local master
    process, and a node must not accept commands from the network."""

    allow_reuse_address = True

    def __init__(self, caretaker, port=0, client_timeout=30.0):
        socketserver.TCPServer.__init__(self, ("127.0.0.1", port), _RequestHandler)
        self.caretaker = caretaker
        self.client_timeout = client_timeout
        self.stop_requested = False
        # handle_request() returns after this many seconds without a client, so the loop in
        # serve_until_stopped can check the stop flag and the idle deadline.
        self.timeout = 0.2

    @property
    def port(self):
        return self.server_address[1]

    def serve_until_stopped(self, idle_timeout=None):
        """Serve until a shutdown request, or until `idle_timeout` seconds pass with no request."""
        last_activity = time.time()
        try:
            while not self.stop_requested:
                if self._handle_one():
                    last_activity = time.time()
                elif idle_timeout is not None and time.time() - last_activity > idle_timeout:
                    break
        finally:
            self.server_close()
            if not self.stop_requested:
                self.caretaker.shutdown()

    def _handle_one(self):
        self._handled = False
        self.handle_request()
        return self._handled

    def process_request(self, request, client_address):
        self._handled = True
        socketserver.TCPServer.process_request(self, request, client_address)


def pid_file(home):
    return os.path.join(home, "log", "caretaker.pid")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m datablox_framework.caretaker",
                                     description="Serve the Datablox caretaker of one node on 127.0.0.1.")
    parser.add_argument("--home", required=True, help="the node's deployment home")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help="stop after this many seconds without a request (default: never)")
    options = parser.parse_args(argv)

    home = os.path.abspath(options.home)
    caretaker = Caretaker(home)
    try:
        server = CaretakerServer(caretaker, options.port)
    except OSError as error:
        sys.stderr.write("error: cannot listen on 127.0.0.1:{}: {}\n".format(options.port, error))
        return 1
    pid_path = pid_file(home)
    if not os.path.isdir(os.path.dirname(pid_path)):
        os.makedirs(os.path.dirname(pid_path))
    with open(pid_path, "w") as handle:
        handle.write("{}\n".format(os.getpid()))
    # The port line lets a parent that asked for port 0 learn the port that was chosen.
    sys.stdout.write("caretaker listening on 127.0.0.1:{}\n".format(server.port))
    sys.stdout.flush()
    try:
        server.serve_until_stopped(options.idle_timeout)
    except KeyboardInterrupt:
        pass
    finally:
        if os.path.exists(pid_path):
            os.remove(pid_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
