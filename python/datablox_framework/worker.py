"""A caretaker's worker: one process per run, so that each run imports the blocks installed now
and a block that crashes (an exception at import, `os._exit`, a segfault) takes only its worker
down; the caretaker reports the failure and keeps serving.

Started by the caretaker (`Worker.spawn`) as `python3 -m datablox_framework.worker --channel FD`,
where FD is its end of a socket pair the caretaker made and the child inherited: the private
channel between the two, with no name, no port and no address. Nothing on the command line is a
secret; the cluster key (which the data connections prove) comes over the channel. Each message
is one line of JSON, at most MAX_MESSAGE bytes.

  caretaker -> worker  {"job": "load"|"run"|"part", "bloxpath": [...], ...}   (the first line)
  load:  -> {"ok": true, "block": {"name", "version", "id", "ports"}}: the block imported,
            configured, shut down
  run:   -> {"ok": true, "result": {...}, "counts": {...}}: the topology run in process
  part:  -> {"ok": true, "data_port": N or null, "ports": {...}} once its blocks are loaded and
            it listens for its inbound data; then
         <- {"op": "start", "peers": {...}}  -> {"ok": true} once the outbound connections are made
         -> {"state": "done", "counts": {...}, "result": {...}} or
            {"state": "failed", "error": "...", "cause": "block"|"connection"|"timeout"}
Failures answer {"ok": false, "error": "..."} and the worker exits. When the channel closes (the
caretaker stopped, or aborts the run), the worker exits at once; the caretaker kills a worker it
no longer needs.
"""

import argparse
import binascii
import json
import logging
import os
import socket
import sys
import threading
import time

from . import auth, runtime, transport
from . import topology as rules
from .block import Port

LOG = logging.getLogger("datablox")
# The longest message read from the channel, either way.
MAX_MESSAGE = 16 * 1024 * 1024


class WorkerError(Exception):
    """A job cannot be done; the message is the answer's `error`, `cause` its `cause` ("block"
    when a block failed to load or to run, else None: the request itself is wrong)."""

    def __init__(self, message, cause=None):
        Exception.__init__(self, message)
        self.cause = cause


class Channel(object):
    """JSON lines over one end of the socket pair."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = sock.makefile("rb")
        self._send_lock = threading.Lock()

    def send(self, message):
        data = json.dumps(message, sort_keys=True).encode("utf-8") + b"\n"
        with self._send_lock:
            self.sock.sendall(data)

    def receive(self, timeout=None):
        """The next message; None when the channel closed; socket.timeout after `timeout` s."""
        self.sock.settimeout(timeout)
        line = self.reader.readline(MAX_MESSAGE + 1)
        if not line.endswith(b"\n"):
            return None
        message = json.loads(line.decode("utf-8"))
        if not isinstance(message, dict):
            raise ValueError("a channel message must be a JSON object")
        return message

    def close(self):
        self.reader.close()
        self.sock.close()


def connection_ends(connection, where):
    """((source, port), (target, port)) of a `{"from": "a.out", "to": "b.in"}` connection."""
    ends = [connection.get("from"), connection.get("to")] if isinstance(connection, dict) else connection
    if not (isinstance(ends, list) and len(ends) == 2 and all(isinstance(e, str) and "." in e for e in ends)):
        raise WorkerError("{}: expected {{\"from\": \"block.port\", \"to\": \"block.port\"}}".format(where))
    return tuple(rules.split_end(e) for e in ends)


def build_graph(blocks, connections, bloxpath, where="topology"):
    """A runtime.Graph of `blocks` (checked and installed by the caretaker) joined by `connections`."""
    graph = runtime.Graph(bloxpath)
    for spec in blocks:
        try:
            graph.add(spec["id"], spec["name"], spec["version"], spec.get("args") or {})
        except Exception as error:
            raise WorkerError("{} block `{}` ({} {}): {}".format(where, spec["id"], spec["name"], spec["version"], error),
                              "block")
    if not isinstance(connections, list):
        raise WorkerError("a {} is an object with a `blocks` list and a `connections` list".format(where))
    for index, connection in enumerate(connections):
        (source, source_port), (target, target_port) = connection_ends(connection, "{} connection #{}".format(where, index + 1))
        try:
            graph.connect(source, source_port, target, target_port)
        except Exception as error:
            raise WorkerError("{} connection #{}: {}".format(where, index + 1, error))
    return graph


def load(job):
    """Import and configure one block, describe it, shut it down."""
    try:
        block = runtime.Graph(job["bloxpath"]).add(job["id"], job["name"], job["version"], job.get("config") or {})
    except Exception as error:
        raise WorkerError(str(error), "block")
    summary = {"name": block.block_name, "version": block.block_version, "id": block.id, "ports": sorted(block.ports)}
    block.on_shutdown()
    return {"ok": True, "block": summary}


def run_topology(job):
    topology = job["topology"]
    graph = build_graph(topology["blocks"], topology.get("connections", []), job["bloxpath"])
    try:
        order = graph.topological_order()
        graph.run()
    except Exception as error:
        raise WorkerError("the run failed: {}: {}".format(type(error).__name__, error), "block")
    return {"ok": True, "result": {"blocks": len(graph.blocks), "delivered": graph.delivered, "order": order},
            "counts": graph.counts}


class Part(object):
    """This node's part of a run across nodes: its graph, its data connections with other nodes
    (`remote`: id -> (kind, Connection, peer node)), the listener for the inbound ones, and the
    run's state: prepared, running, then done or failed."""

    def __init__(self, job, key, tls):
        self.key = key
        self.tls = tls
        self.run_id = job["run"]
        self.deadline = job["deadline"]
        part = job["part"]
        self.graph = build_graph(part["blocks"], part.get("connections", []), job["bloxpath"], "part")
        self.remote = {}
        for kind, local_end, direction in (("inbound", "to", Port.INPUT), ("outbound", "from", Port.OUTPUT)):
            for index, spec in enumerate(part.get(kind, [])):
                where = "part {} connection #{}".format(kind, index + 1)
                if not isinstance(spec, dict) or not isinstance(spec.get("id"), str) or not isinstance(spec.get("node"), str):
                    raise WorkerError("{}: needs string `id`, `node`, `from` and `to`".format(where))
                ends = connection_ends(spec, where)
                block_id, port = ends[0] if local_end == "from" else ends[1]
                try:
                    self.graph._block(block_id).port(port, direction)
                except Exception as error:
                    raise WorkerError("{} ({}): {}".format(where, spec["id"], error))
                connection = runtime.Connection(ends[0][0], ends[0][1], ends[1][0], ends[1][1])
                self.remote[spec["id"]] = (kind, connection, spec["node"])
        self.listener = None
        if any(kind == "inbound" for kind, _, _ in self.remote.values()):
            try:
                self.listener = transport.Listener(key, job["data_host"], tls=tls)
            except OSError as error:
                raise WorkerError("cannot listen for data on {}: {}".format(job["data_host"], error))
        self.stop = threading.Event()
        self.flow = None
        self.senders = []

    def ports(self):
        return dict((block_id, dict((name, {"direction": p.direction, "fields": p.fields})
                                    for name, p in block.ports.items()))
                    for block_id, block in self.graph.blocks.items())

    def describe(self, connection):
        for connection_id, (kind, known, peer) in self.remote.items():
            if known is connection:
                return "{} {} ({} node `{}`)".format(connection_id, connection, "from" if kind == "inbound" else "to", peer)
        return repr(connection)

    def _idle(self):
        # A peer may be idle as long as the run may last (a slow block upstream is no failure);
        # a node that dies is noticed by the master, which aborts the run.
        return max(self.deadline - time.time(), 1.0)

    def connect(self, peers):
        """Connect the outbound data connections to `peers` (id -> [host, port])."""
        peers = peers if isinstance(peers, dict) else {}
        outbound = []
        for connection_id, (kind, connection, node) in sorted(self.remote.items()):
            if kind != "outbound":
                continue
            address = peers.get(connection_id)
            if not (isinstance(address, list) and len(address) == 2 and isinstance(address[0], str)
                    and isinstance(address[1], int) and 0 < address[1] < 65536):
                raise WorkerError("`start` gives no address [host, port] for connection `{}`".format(connection_id))
            timeout = max(1.0, min(10.0, self.deadline - time.time()))
            try:
                sender = transport.Sender.connect(
                    address[0], address[1], self.run_id, connection_id, self.key, stop=self.stop,
                    connect_timeout=timeout, tls=self.tls,
                    peer="node `{}` ({})".format(node, transport.address_text(address[0], address[1])),
                    idle_timeout=self._idle())
            except transport.TransportError as error:
                raise WorkerError("connection {}: {}".format(connection_id, error))
            self.senders.append(sender)
            outbound.append((connection, sender))
        inbound = [(i, c) for i, (kind, c, _) in self.remote.items() if kind == "inbound"]
        self.flow = runtime.Dataflow(self.graph, outbound, inbound, stop=self.stop, describe=self.describe)

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

    def run(self):
        """Run the part to its end; returns the final message."""
        if self.listener is not None:
            thread = threading.Thread(target=self._accept, name="datablox-accept-{}".format(self.run_id))
            thread.daemon = True
            thread.start()
        try:
            self.flow.run(self.deadline)
        except runtime.RunFailed as error:
            return {"state": "failed", "error": str(error), "cause": error.cause}
        except Exception as error:
            return {"state": "failed", "error": "{}: {}".format(type(error).__name__, error), "cause": "block"}
        return {"state": "done", "counts": self.flow.counts,
                "result": {"blocks": len(self.graph.blocks), "delivered": self.flow.delivered}}


def serve(channel, job):
    """Do `job`, answering on `channel`."""
    key = binascii.unhexlify(job["key"]) if job.get("key") else None
    tls = auth.TLS(*job["tls"]) if job.get("tls") else None
    if job["job"] == "load":
        channel.send(load(job))
        return
    if job["job"] == "run":
        channel.send(run_topology(job))
        return
    part = Part(job, key, tls)
    channel.send({"ok": True, "data_port": part.listener.address[1] if part.listener else None,
                  "ports": part.ports()})
    try:
        request = channel.receive(max(part.deadline - time.time(), 0.001))
    except socket.timeout:
        return
    if request is None or request.get("op") != "start":
        return
    try:
        part.connect(request.get("peers"))
    except WorkerError as error:
        channel.send({"ok": False, "error": str(error), "cause": "connection"})
        return
    channel.send({"ok": True})
    watch(channel)
    channel.send(part.run())


def watch(channel):
    """Exit the process as soon as the channel closes: the caretaker stopped or gave the run up."""
    def read():
        try:
            while channel.receive() is not None:
                pass
        except (OSError, ValueError):
            pass
        os._exit(1)

    thread = threading.Thread(target=read, name="datablox-worker-channel")
    thread.daemon = True
    thread.start()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m datablox_framework.worker",
                                     description="One run of a Datablox caretaker (started by the caretaker).")
    parser.add_argument("--channel", type=int, required=True, help="the inherited descriptor of the caretaker's channel")
    options = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s worker {}: %(message)s".format(os.getpid()))
    channel = Channel(socket.socket(fileno=options.channel))
    job = channel.receive()
    if job is None:
        return 1
    if job["job"] != "part":
        watch(channel)
    try:
        serve(channel, job)
    except WorkerError as error:
        answer = {"ok": False, "error": str(error)}
        if error.cause:
            answer["cause"] = error.cause
        channel.send(answer)
    except Exception as error:
        LOG.exception("the worker's %s job failed", job.get("job"))
        channel.send({"ok": False, "error": "{}: {}".format(type(error).__name__, error), "cause": "block"})
    # Not `channel.close()`: the watching thread may hold the reader. Block threads still running
    # (a failed part's) and the channel end with the process.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
