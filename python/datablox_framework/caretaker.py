"""The per-node caretaker: loads blocks into this node, deploying them first when needed.

A node is first deployed with only the caretaker, the framework and the adapter. When asked to
load a block whose directory is not under `<home>/blox`, the caretaker asks the Datablox Engage
adapter to deploy it (and what it needs) into this home; a block already there is only loaded.

Run as a server:  python3 -m datablox_framework.caretaker --home DIR --port N [--key-file FILE]
A client first proves it holds the cluster key (`auth`: `<home>/config/cluster.key` unless
--key-file says otherwise) and checks that the caretaker holds it too; a client that does not is
logged (its address) and disconnected, and nothing is served to it. Then it speaks
line-delimited JSON on 127.0.0.1, one request per line, one answer per line, each line tagged
(`auth.Session.seal_line`) and at most MAX_LINE bytes long:
  {"op": "ping"}                                   -> {"ok": true, "pid": ..., "running": [run ids]}
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

A run across nodes (see `master`) gives each caretaker its part, in four steps on one connection:
  {"op": "prepare", "run": ID, "node": "w1", "timeout": S, "part": {"blocks": [...],
      "connections": [...in this node...],
      "inbound":  [{"id": "c2", "from": "hash.output", "to": "count.input", "node": "w2"}, ...],
      "outbound": [{"id": "c3", "from": "count.output", "to": "write.input", "node": "w3"}, ...]}}
      -> {"ok": true, "data_port": N or null, "ports": {block: {port: {direction, fields}}},
          "deployed": [...]}
     loads (deploying on demand) the blocks and, if data comes from other nodes, listens for it;
  {"op": "start", "run": ID, "node": "w1", "peers": {"c3": [host, data_port of w3], ...}} -> {"ok": true}
     connects the outbound data connections (`transport`) and runs the part (`runtime.Dataflow`);
  {"op": "wait", "run": ID, "node": "w1", "timeout": S}
      -> {"ok": true, "state": "running"} until it finishes, then
         {"ok": true, "state": "done", "counts": {...}, "result": {"blocks": N, "delivered": N}}
         or {"ok": false, "state": "failed", "error": "...", "cause": "block"|"connection"|"timeout"};
  {"op": "abort", "run": ID, "node": "w1"}         -> {"ok": true}: stops it if it runs, forgets it
     (without `node`: every part of the run). One caretaker may hold parts of several nodes.
A part stops by itself at its timeout, and when the connection that prepared it closes.
"""

import argparse
import collections
import json
import logging
import math
import os
import socket
import socketserver
import sys
import threading
import time

from . import auth, loader, naming, runtime, transport
from . import topology as rules
from .block import Port

LOG = logging.getLogger("datablox")
# The longest control line read (its tag included); a longer one ends the connection.
MAX_LINE = 1024 * 1024
# The most seconds a request may ask for (a run's `timeout`): 30 days.
MAX_SECONDS = 30 * 24 * 3600.0
# Blocks kept loaded by `load`; the one used least recently is shut down to make room.
MAX_LOADED = 64


class CaretakerError(Exception):
    """A block cannot be loaded on this node, or a request cannot be served."""


def seconds(request, field, default):
    """The number of seconds `request[field]` asks for: finite, positive, at most MAX_SECONDS."""
    value = request.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= MAX_SECONDS:
        raise CaretakerError("`{}`: `{}` must be a number of seconds above 0 and at most {:g}".format(
            request.get("op"), field, MAX_SECONDS))
    return float(value)


def connection_ends(connection, where):
    """((source, port), (target, port)) of a `{"from": "a.out", "to": "b.in"}` connection."""
    ends = [connection.get("from"), connection.get("to")] if isinstance(connection, dict) else connection
    if not (isinstance(ends, list) and len(ends) == 2 and all(isinstance(e, str) and "." in e for e in ends)):
        raise CaretakerError("{}: expected {{\"from\": \"block.port\", \"to\": \"block.port\"}}".format(where))
    return tuple(rules.split_end(e) for e in ends)


class Part(object):
    """This node's part of a run across nodes: its graph, its data connections with other nodes
    (`remote`: id -> (kind, Connection, peer node)), the listener for the inbound ones, and the
    run's state: prepared, running, then done, failed or aborted."""

    def __init__(self, run_id, node, graph, remote, listener, deadline, deployed, key, tls=None):
        self.key = key
        self.tls = tls
        self.run_id = run_id
        self.node = node
        self.graph = graph
        self.remote = remote
        self.listener = listener
        self.deadline = deadline
        self.deployed = deployed
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.state = "prepared"
        self.error = None
        self.cause = None
        self.flow = None
        self.senders = []
        self._lock = threading.Lock()

    def describe(self, connection):
        for connection_id, (kind, known, peer) in self.remote.items():
            if known is connection:
                return "{} {} ({} node `{}`)".format(connection_id, connection, "from" if kind == "inbound" else "to", peer)
        return repr(connection)

    def start(self, peers):
        """Connect the outbound data connections to `peers` (id -> [host, port]), then run."""
        with self._lock:
            if self.state != "prepared":
                raise CaretakerError("run `{}` is {}, not prepared".format(self.run_id, self.state))
            self.state = "running"
        peers = peers if isinstance(peers, dict) else {}
        outbound = []
        try:
            for connection_id, (kind, connection, node) in sorted(self.remote.items()):
                if kind != "outbound":
                    continue
                address = peers.get(connection_id)
                if not (isinstance(address, list) and len(address) == 2 and isinstance(address[0], str)
                        and isinstance(address[1], int) and 0 < address[1] < 65536):
                    raise CaretakerError("`start` gives no address [host, port] for connection `{}`".format(connection_id))
                timeout = max(1.0, min(10.0, self.deadline - time.time()))
                # A peer may be idle as long as the run may last (a slow block upstream is no
                # failure); a node that dies is noticed by the master, which aborts the run.
                sender = transport.Sender.connect(
                    address[0], address[1], self.run_id, connection_id, self.key, stop=self.stop,
                    connect_timeout=timeout, tls=self.tls,
                    peer="node `{}` ({})".format(node, transport.address_text(address[0], address[1])),
                    idle_timeout=self._idle())
                self.senders.append(sender)
                outbound.append((connection, sender))
        except (CaretakerError, transport.TransportError) as error:
            self._finish("failed", error="connection {}: {}".format(connection_id, error), cause="connection")
            raise CaretakerError(self.error)
        inbound = [(i, c) for i, (kind, c, _) in self.remote.items() if kind == "inbound"]
        self.flow = runtime.Dataflow(self.graph, outbound, inbound, stop=self.stop, describe=self.describe)
        if self.listener is not None:
            thread = threading.Thread(target=self._accept, name="datablox-accept-{}".format(self.run_id))
            thread.daemon = True
            thread.start()
        thread = threading.Thread(target=self._run, name="datablox-run-{}".format(self.run_id))
        thread.daemon = True
        thread.start()

    def _idle(self):
        return max(self.deadline - time.time(), 1.0)

    def _accept(self):
        peers = dict((i, "node `{}`".format(node)) for i, (kind, _, node) in self.remote.items() if kind == "inbound")
        try:
            for connection_id, receiver in self.listener.accept(
                    self.run_id, set(peers), self.stop, min(self.deadline, time.time() + 30.0), peers,
                    idle_timeout=self._idle()):
                self.flow.attach(connection_id, receiver)
        except transport.Aborted:
            pass
        except transport.TransportError as error:
            self.flow.fail(str(error))
        finally:
            self.listener.close()

    def _run(self):
        try:
            self.flow.run(self.deadline)
        except runtime.RunFailed as error:
            self._finish("failed", error=str(error), cause=error.cause)
        except Exception as error:
            self._finish("failed", error="{}: {}".format(type(error).__name__, error), cause="block")
        else:
            self._finish("done")

    def _finish(self, state, error=None, cause=None):
        with self._lock:
            if self.finished.is_set():
                return
            self.state = state
            self.error = error
            self.cause = cause
            self.finished.set()
        if state != "done":
            self.stop.set()
            for sender in self.senders:
                sender.close()
            if self.listener is not None:
                self.listener.close()

    def wait(self, timeout):
        """The answer to `wait`: the state once finished, or `running` after `timeout` seconds."""
        if self.state != "prepared":
            self.finished.wait(timeout)
        answer = {"ok": self.state not in ("failed", "aborted"), "state": self.state, "node": self.node}
        if self.error is not None:
            answer["error"] = self.error
            answer["cause"] = self.cause
        if self.state == "done":
            answer["counts"] = self.flow.counts
            answer["result"] = {"blocks": len(self.graph.blocks), "delivered": self.flow.delivered}
        return answer

    def abort(self, reason):
        if self.flow is not None:
            self.flow.fail("aborted: {}".format(reason))
        self._finish("aborted", error="aborted: {}".format(reason), cause="aborted")


class Caretaker(object):
    """The blocks loaded on the node whose deployment home is `home`.

    `adapter` is the deployment adapter module (anything with `deploy_block(home, name, version)`);
    by default the `datablox_engage_adapter` package if it is importable, else none. `key` is the
    cluster key, which its data connections prove (runs across nodes need it); `tls` (an
    `auth.TLS`) wraps every connection in TLS too.
    """

    _DEFAULT = object()

    def __init__(self, home, adapter=_DEFAULT, data_host=transport.DEFAULT_HOST, key=None, tls=None):
        self.home = os.path.abspath(home)
        self.adapter = loader.deployment_adapter() if adapter is Caretaker._DEFAULT else adapter
        self.data_host = data_host
        self.key = key
        self.tls = tls
        # Blocks loaded by `load`, least recently used first, at most MAX_LOADED.
        self.loaded = collections.OrderedDict()
        # Parts of runs across nodes, by run id.
        self.parts = {}
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
                self.loaded.move_to_end(block_key)
                return self._summary(self.loaded[block_key], deployed=False)
            deployed = self._ensure_installed(name, version)
            try:
                block = loader.create_block("{}-{}".format(key["name"], version), name, version, config, [self.bloxpath])
            except Exception as error:
                raise CaretakerError("block `{} {}` is installed but cannot be loaded: {}".format(name, version, error))
            self.loaded[block_key] = block
            while len(self.loaded) > MAX_LOADED:
                _, evicted = self.loaded.popitem(last=False)
                try:
                    evicted.on_shutdown()
                except Exception as error:
                    LOG.warning("block `%s` failed to shut down when unloaded: %s", evicted.id, error)
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

    def _build_graph(self, blocks, connections, where="topology"):
        """A runtime.Graph of `blocks` (deploying those missing) joined by `connections`; returns
        (graph, the blocks deployed)."""
        if not isinstance(blocks, list) or not isinstance(connections, list):
            raise CaretakerError("a {} is an object with a `blocks` list and a `connections` list".format(where))
        graph = runtime.Graph([self.bloxpath])
        deployed = []
        for index, spec in enumerate(blocks):
            if not isinstance(spec, dict) or not all(isinstance(spec.get(f), str) for f in ("id", "name", "version")):
                raise CaretakerError("{} block #{}: needs string `id`, `name` and `version`".format(where, index + 1))
            name, version = spec["name"], spec["version"]
            try:
                naming.block_key(name, version)
            except ValueError as error:
                raise CaretakerError("{} block `{}`: {}".format(where, spec["id"], error))
            with self._lock:
                if self._ensure_installed(name, version):
                    deployed.append("{} {}".format(name, version))
            try:
                graph.add(spec["id"], name, version, spec.get("args") or {})
            except Exception as error:
                raise CaretakerError("{} block `{}` ({} {}): {}".format(where, spec["id"], name, version, error))
        for index, connection in enumerate(connections):
            (source, source_port), (target, target_port) = connection_ends(connection, "{} connection #{}".format(where, index + 1))
            try:
                graph.connect(source, source_port, target, target_port)
            except Exception as error:
                raise CaretakerError("{} connection #{}: {}".format(where, index + 1, error))
        return graph, deployed

    def run_topology(self, topology):
        """Run a topology (see the module's doc); returns the answer's fields."""
        try:
            rules.check(topology)
        except rules.TopologyError as error:
            raise CaretakerError(str(error))
        graph, deployed = self._build_graph(topology["blocks"], topology.get("connections", []))
        try:
            order = graph.topological_order()
            graph.run()
        except Exception as error:
            raise CaretakerError("the run failed: {}: {}".format(type(error).__name__, error))
        return {"result": {"blocks": len(graph.blocks), "delivered": graph.delivered, "order": order},
                "counts": graph.counts, "deployed": deployed}

    # -- this node's part of a run across nodes (driven by datablox_framework.master) -----------

    def prepare_part(self, request):
        """Load this node's blocks (deploying on demand), check its connections and, when data
        comes from other nodes, listen for it. Returns the answer's fields."""
        run_id, node = request.get("run"), request.get("node")
        part = request.get("part")
        if not isinstance(run_id, str) or not run_id or not isinstance(node, str) or not isinstance(part, dict):
            raise CaretakerError("`prepare` needs a string `run`, a string `node` and a `part` object")
        timeout = seconds(request, "timeout", 600)
        if self.key is None:
            raise CaretakerError("this caretaker has no cluster key, so it cannot take part in runs across nodes")
        key = (run_id, node)
        with self._lock:
            if key in self.parts:
                raise CaretakerError("run `{}` of node `{}` is already prepared here".format(run_id, node))
        graph, deployed = self._build_graph(part.get("blocks"), part.get("connections", []), "part")
        remote = {}
        for kind, local_end, direction in (("inbound", "to", Port.INPUT), ("outbound", "from", Port.OUTPUT)):
            for index, spec in enumerate(part.get(kind, [])):
                where = "part {} connection #{}".format(kind, index + 1)
                if not isinstance(spec, dict) or not isinstance(spec.get("id"), str) or not isinstance(spec.get("node"), str):
                    raise CaretakerError("{}: needs string `id`, `node`, `from` and `to`".format(where))
                ends = connection_ends(spec, where)
                block_id, port = ends[0] if local_end == "from" else ends[1]
                try:
                    graph._block(block_id).port(port, direction)
                except Exception as error:
                    raise CaretakerError("{} ({}): {}".format(where, spec["id"], error))
                connection = runtime.Connection(ends[0][0], ends[0][1], ends[1][0], ends[1][1])
                remote[spec["id"]] = (kind, connection, spec["node"])
        ports = dict((block_id, dict((name, {"direction": p.direction, "fields": p.fields})
                                     for name, p in block.ports.items()))
                     for block_id, block in graph.blocks.items())
        listener = None
        if any(kind == "inbound" for kind, _, _ in remote.values()):
            try:
                listener = transport.Listener(self.key, self.data_host, tls=self.tls)
            except OSError as error:
                raise CaretakerError("cannot listen for data on {}: {}".format(self.data_host, error))
        part = Part(run_id, node, graph, remote, listener, time.time() + timeout, deployed, self.key, self.tls)
        with self._lock:
            if key in self.parts:
                part.abort("prepared twice")
                raise CaretakerError("run `{}` of node `{}` is already prepared here".format(run_id, node))
            self.parts[key] = part
        return {"data_port": listener.address[1] if listener else None, "ports": ports, "deployed": deployed}

    def _part(self, request):
        run_id, node = request.get("run"), request.get("node")
        with self._lock:
            part = self.parts.get((run_id, node))
        if part is None:
            raise CaretakerError("no run `{}` of node `{}` here (help: `prepare` it first)".format(run_id, node))
        return part

    def abort_part(self, run_id, node=None, reason="aborted by the master"):
        """Stop the part of run `run_id` for `node` (every part of the run when None) if it still
        runs, and forget it; returns whether one was known."""
        with self._lock:
            keys = [k for k in self.parts if k[0] == run_id and node in (None, k[1])]
            parts = [self.parts.pop(k) for k in keys]
        for part in parts:
            part.abort(reason)
        return bool(parts)

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
        """Abort every part of a run, shut every loaded block down; returns the errors met."""
        for run_id, node in list(self.parts):
            self.abort_part(run_id, node, "the caretaker is shutting down")
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
                with self._lock:
                    running = sorted(set(k[0] for k, p in self.parts.items() if not p.finished.is_set()))
                return {"ok": True, "pid": os.getpid(), "home": self.home, "running": running}
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
            if op == "prepare":
                answer = {"ok": True}
                answer.update(self.prepare_part(request))
                return answer
            if op == "start":
                self._part(request).start(request.get("peers"))
                return {"ok": True}
            if op == "wait":
                return self._part(request).wait(min(seconds(request, "timeout", 1.0), 30.0))
            if op == "abort":
                known = self.abort_part(request.get("run"), request.get("node"),
                                        request.get("reason") or "aborted by the master")
                return {"ok": True, "known": known}
            return {"ok": False, "error": "unknown op {!r} (known: ping, load, run, prepare, start, wait, abort, "
                                          "shutdown)".format(op)}
        except CaretakerError as error:
            return {"ok": False, "error": str(error)}
        except Exception as error:
            LOG.exception("request `%s` failed", op)
            return {"ok": False, "error": "`{}` failed: {}: {}".format(op, type(error).__name__, error)}


class _RequestHandler(socketserver.BaseRequestHandler):
    def handle(self):
        peer = transport.address_text(*self.client_address[:2])
        try:
            if self.server.caretaker.tls is not None:
                self.request = self.server.caretaker.tls.server(self.request)
            session = auth.server_handshake(self.request, self.server.key, "control")
        except auth.AuthError as error:
            LOG.warning("refused a connection from %s: %s", peer, error)
            self.request.close()
            return
        self.request.settimeout(self.server.client_timeout)
        reader = self.request.makefile("rb")
        # The parts of runs prepared on this connection: when the master's connection ends,
        # they are aborted and forgotten (a master that died leaves nothing running).
        prepared = []
        try:
            while True:
                raw = reader.readline(MAX_LINE + 1)
                if not raw.endswith(b"\n"):
                    if len(raw) > MAX_LINE:
                        LOG.warning("closed the connection from %s: a line over %d bytes", peer, MAX_LINE)
                        self._answer(session, {"ok": False, "error": "a request line is limited to {} bytes; "
                                                                    "closing the connection".format(MAX_LINE)})
                    return
                try:
                    payload = session.open_line(raw)
                except auth.AuthError as error:
                    LOG.warning("closed the connection from %s: %s", peer, error)
                    return
                request = None
                try:
                    request = json.loads(payload.decode("utf-8"))
                except ValueError as error:
                    answer = {"ok": False, "error": "invalid JSON: {}".format(error)}
                else:
                    answer = self.server.caretaker.handle(request)
                if isinstance(request, dict) and request.get("op") == "prepare" and answer.get("ok"):
                    prepared.append((request["run"], request["node"]))
                    # The master may wait for its other nodes' deploys before it speaks again.
                    self.request.settimeout(max(self.server.client_timeout, request.get("timeout", 600)))
                self._answer(session, answer)
                if isinstance(request, dict) and request.get("op") == "shutdown":
                    self.server.stop_requested = True
                    return
        except (socket.timeout, OSError):
            return
        finally:
            reader.close()
            self.request.close()
            for run_id, node in prepared:
                self.server.caretaker.abort_part(run_id, node, "the master's connection closed")

    def _answer(self, session, answer):
        self.request.sendall(session.seal_line(json.dumps(answer, sort_keys=True).encode("utf-8")))


class CaretakerServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Serves its clients, each in a thread, on 127.0.0.1 unless `host` says otherwise; each
    client first proves it holds the cluster key (the caretaker's `key`)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, caretaker, port=0, client_timeout=30.0, host="127.0.0.1"):
        if caretaker.key is None:
            raise ValueError("a caretaker serves only with a cluster key")
        self.address_family = transport.address_family(host)
        socketserver.TCPServer.__init__(self, (host, port), _RequestHandler)
        self.key = caretaker.key
        self.caretaker = caretaker
        self.client_timeout = client_timeout
        self.stop_requested = False
        self.active = 0
        self._active_lock = threading.Lock()
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
                if self._handle_one() or self.active:
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
        socketserver.ThreadingMixIn.process_request(self, request, client_address)

    def process_request_thread(self, request, client_address):
        with self._active_lock:
            self.active += 1
        try:
            socketserver.ThreadingMixIn.process_request_thread(self, request, client_address)
        finally:
            with self._active_lock:
                self.active -= 1


def pid_file(home):
    return os.path.join(home, "log", "caretaker.pid")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m datablox_framework.caretaker",
                                     description="Serve the Datablox caretaker of one node on 127.0.0.1.")
    parser.add_argument("--home", required=True, help="the node's deployment home")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on, for requests and for data from other nodes (default "
                             "127.0.0.1)")
    parser.add_argument("--key-file", metavar="FILE",
                        help="the cluster key (default: <home>/config/cluster.key; mode 0600, owned by this user)")
    parser.add_argument("--tls-cert", metavar="PEM", help="with --tls-key and --tls-ca: TLS on every connection, "
                                                          "with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument("--tls-ca", metavar="PEM", help="the CA that signed the peers' certificates")
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help="stop after this many seconds without a request (default: never)")
    options = parser.parse_args(argv)

    home = os.path.abspath(options.home)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    try:
        key = auth.read_key(options.key_file or auth.key_path(home))
        tls = auth.tls_from_options(options.tls_cert, options.tls_key, options.tls_ca)
    except auth.KeyFileError as error:
        sys.stderr.write("error: {}\n".format(error))
        return 1
    caretaker = Caretaker(home, data_host=options.host, key=key, tls=tls)
    try:
        server = CaretakerServer(caretaker, options.port, host=options.host)
    except OSError as error:
        sys.stderr.write("error: cannot listen on {}:{}: {}\n".format(options.host, options.port, error))
        return 1
    pid_path = pid_file(home)
    if not os.path.isdir(os.path.dirname(pid_path)):
        os.makedirs(os.path.dirname(pid_path))
    with open(pid_path, "w") as handle:
        handle.write("{}\n".format(os.getpid()))
    # The port line lets a parent that asked for port 0 learn the port that was chosen.
    sys.stdout.write("caretaker listening on {}:{}\n".format(options.host, server.port))
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
