"""A small in-process runner: a graph of block instances, pushes delivered through a queue.

The order of a run:
  1. every block was loaded (`on_load`) when it was added;
  2. `on_start` of each block in topological order (sources first); after each, the queue of
     pushes is drained, so memory holds at most what one batch causes downstream;
  3. `on_shutdown` of each block in topological order, draining the queue after each, so a block
     that emits its result at shutdown (a counter) still reaches blocks that are not yet shut down.
Cycles are rejected: with them, step 3 would have to shut a block down while it can still receive.

`Dataflow` runs a graph another way, the way a node runs its part of a topology spread over
several nodes: each block in its own thread, with a bounded inbox; a block starts, handles what
arrives until every connection into it has delivered its end-of-stream mark, shuts down (and may
still push), then marks the end of each connection out of it. Connections to and from blocks on
other nodes are `transport` endpoints. On a DAG this cannot deadlock although every buffer is
bounded: a block always accepts any input, so the blocks nearest the sinks always progress.
"""

import collections
import queue
import threading
import time

from . import loader
from .block import Block, BlockError, Log, Port


class GraphError(Exception):
    """The graph is malformed (unknown block or port, incompatible fields, a cycle)."""


class Connection(object):
    def __init__(self, source_id, source_port, target_id, target_port):
        self.source_id = source_id
        self.source_port = source_port
        self.target_id = target_id
        self.target_port = target_port

    def __repr__(self):
        return "{}.{} -> {}.{}".format(self.source_id, self.source_port, self.target_id, self.target_port)


class Graph(object):
    """Blocks by id, and the connections from output ports to input ports."""

    def __init__(self, bloxpath=None):
        self.bloxpath = bloxpath
        self.blocks = collections.OrderedDict()
        self.connections = []
        self._queue = collections.deque()
        self.delivered = 0
        # Per block id: records it emitted (once per push, whatever the fan-out) and received.
        self.counts = {}

    def add(self, block_id, name, version, config=None):
        """Load block `name` `version` from BLOXPATH as `block_id` and configure it."""
        self._check_new_id(block_id)
        block = loader.create_block(block_id, name, version, config, self.bloxpath)
        return self._register(block)

    def add_block(self, block_id, block_class, config=None):
        """Add an instance of a block class at hand (for tests and embedded use)."""
        self._check_new_id(block_id)
        block = block_class(block_id)
        block.configure(config)
        return self._register(block)

    def _check_new_id(self, block_id):
        if block_id in self.blocks:
            raise GraphError("block id `{}` is used twice".format(block_id))

    def _register(self, block):
        if not isinstance(block, Block):
            raise GraphError("`{}` is not a Block".format(block))
        block.set_emitter(self._enqueue)
        self.blocks[block.id] = block
        self.counts[block.id] = {"emitted": 0, "received": 0}
        return block

    def connect(self, source_id, source_port, target_id, target_port):
        """Connect an output port to an input port; the output must provide the fields the input needs."""
        source = self._block(source_id)
        target = self._block(target_id)
        try:
            output = source.port(source_port, Port.OUTPUT)
            needed = target.port(target_port, Port.INPUT)
        except BlockError as error:
            raise GraphError(str(error))
        if output.fields is not None and needed.fields is not None:
            missing = [f for f in needed.fields if f not in output.fields]
            if missing:
                raise GraphError("cannot connect {}.{} to {}.{}: the output lacks field(s) {}".format(
                    source_id, source_port, target_id, target_port, ", ".join(missing)))
        connection = Connection(source_id, source_port, target_id, target_port)
        self.connections.append(connection)
        return connection

    def _block(self, block_id):
        try:
            return self.blocks[block_id]
        except KeyError:
            raise GraphError("no block `{}` in the graph (blocks: {})".format(block_id, ", ".join(self.blocks) or "none"))

    def _enqueue(self, block, port, log):
        self.counts[block.id]["emitted"] += len(log)
        for connection in self.connections:
            if connection.source_id == block.id and connection.source_port == port:
                # Each receiver gets its own copy, so one block changing a batch cannot change
                # what another block sees.
                self._queue.append((connection, log.copy()))

    def _drain(self):
        while self._queue:
            connection, log = self._queue.popleft()
            target = self.blocks[connection.target_id]
            needed = target.ports[connection.target_port].fields or []
            missing = [f for f in needed if f not in log.log]
            if missing:
                raise BlockError("block `{}` port `{}` received a log from {}.{} without field(s) {}".format(
                    target.id, connection.target_port, connection.source_id, connection.source_port, ", ".join(missing)))
            target.recv_push(connection.target_port, log)
            self.counts[target.id]["received"] += len(log)
            self.delivered += 1

    def topological_order(self):
        """Block ids, every block after all the blocks that feed it; GraphError on a cycle."""
        upstream_count = dict((block_id, 0) for block_id in self.blocks)
        downstream = dict((block_id, []) for block_id in self.blocks)
        for connection in self.connections:
            upstream_count[connection.target_id] += 1
            downstream[connection.source_id].append(connection.target_id)
        ready = collections.deque(b for b in self.blocks if upstream_count[b] == 0)
        order = []
        while ready:
            block_id = ready.popleft()
            order.append(block_id)
            for target_id in downstream[block_id]:
                upstream_count[target_id] -= 1
                if upstream_count[target_id] == 0:
                    ready.append(target_id)
        if len(order) != len(self.blocks):
            stuck = sorted(b for b in self.blocks if b not in order)
            raise GraphError("the graph has a cycle through block(s) {}".format(", ".join(stuck)))
        return order

    def run(self):
        """Start every block, deliver until quiescent, shut every block down. Returns self."""
        order = self.topological_order()
        for block_id in order:
            self.blocks[block_id].on_start()
            self._drain()
        for block_id in order:
            self.blocks[block_id].on_shutdown()
            self._drain()
        return self


def run_pipeline(stages, bloxpath=None):
    """Run a straight pipeline: `stages` is a list of (block_id, name, version, config); each
    block's `output` port feeds the next block's `input` port. Returns the Graph."""
    graph = Graph(bloxpath)
    previous = None
    for block_id, name, version, config in stages:
        graph.add(block_id, name, version, config)
        if previous is not None:
            graph.connect(previous, "output", block_id, "input")
        previous = block_id
    return graph.run()


class RunFailed(Exception):
    """A Dataflow run failed; the message names the block or the connection; `cause` is `block`,
    `connection`, `timeout` or `aborted`."""

    def __init__(self, message, cause="block"):
        Exception.__init__(self, message)
        self.cause = cause


_END = object()


class Dataflow(object):
    """Runs `graph` (its blocks and in-process connections, already checked) with one thread per
    block, plus connections with other nodes:

      outbound: (Connection, Sender) pairs: a push on the source port is sent over the Sender;
      inbound:  Connections whose source is on another node; `attach(connection_id, receiver)`
                gives each its transport Receiver once it connected (ids from `inbound_ids`).

    Every inbox holds at most `inbox_size` batches: a block that pushes into a full inbox waits,
    and so does the reader of a data connection, which stops reading the socket (back-pressure).
    `stop` is set on abort; every wait polls it. `counts` is per block, as in Graph.
    """

    def __init__(self, graph, outbound=(), inbound=(), inbox_size=8, poll=0.2, stop=None, describe=None):
        self.graph = graph
        self.blocks = graph.blocks
        self.counts = dict((b, {"emitted": 0, "received": 0}) for b in graph.blocks)
        self.stop = stop if stop is not None else threading.Event()
        self.poll = poll
        self.error = None
        self.cause = None
        self.max_queued = 0
        self._describe = describe or (lambda connection: repr(connection))
        self._lock = threading.Lock()
        self._inboxes = dict((b, queue.Queue(inbox_size)) for b in graph.blocks)
        self._deliveries = dict((b, 0) for b in graph.blocks)
        self._open_inputs = dict((b, 0) for b in graph.blocks)
        self._routes = collections.defaultdict(list)
        self._endpoints = []
        self._threads = []
        for connection in graph.connections:
            self._routes[(connection.source_id, connection.source_port)].append(("local", connection, None))
            self._open_inputs[connection.target_id] += 1
        for connection, sender in outbound:
            self._routes[(connection.source_id, connection.source_port)].append(("remote", connection, sender))
            self._endpoints.append(sender)
        self.inbound = dict((connection_id, connection) for connection_id, connection in inbound)
        for connection in self.inbound.values():
            self._open_inputs[connection.target_id] += 1
        for block in graph.blocks.values():
            block.set_emitter(self._emit)

    @property
    def delivered(self):
        return sum(self._deliveries.values())

    # -- failure -------------------------------------------------------------------------------

    def fail(self, message, cause="connection"):
        """Record the first failure and its cause (`block`, `connection`, `timeout`, `aborted`),
        stop every thread and close every connection."""
        with self._lock:
            if self.error is None:
                self.error = message
                self.cause = cause
            self.stop.set()
            endpoints = list(self._endpoints)
        for endpoint in endpoints:
            endpoint.close()

    def _put(self, block_id, item):
        inbox = self._inboxes[block_id]
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                inbox.put(item, timeout=self.poll)
            except queue.Full:
                continue
            size = inbox.qsize()
            if size > self.max_queued:
                self.max_queued = size
            return

    def _get(self, block_id):
        inbox = self._inboxes[block_id]
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                return inbox.get(timeout=self.poll)
            except queue.Empty:
                continue

    # -- the threads ---------------------------------------------------------------------------

    def _emit(self, block, port, log):
        self.counts[block.id]["emitted"] += len(log)
        for kind, connection, sender in self._routes.get((block.id, port), ()):
            if kind == "local":
                # Each receiver gets its own copy, as in Graph.
                self._put(connection.target_id, (connection, log.copy()))
            else:
                try:
                    sender.send_log(log)
                except Exception as error:
                    if self.stop.is_set():
                        raise _Stopped()
                    raise RunFailed("connection {}: {}".format(self._describe(connection), error))

    def _run_block(self, block_id):
        block = self.blocks[block_id]
        try:
            block.on_start()
            while self._open_inputs[block_id] > 0:
                connection, log = self._get(block_id)
                if log is _END:
                    self._open_inputs[block_id] -= 1
                    continue
                needed = block.ports[connection.target_port].fields or []
                missing = [f for f in needed if f not in log.log]
                if missing:
                    raise BlockError("block `{}` port `{}` received a log from {}.{} without field(s) {}".format(
                        block_id, connection.target_port, connection.source_id, connection.source_port,
                        ", ".join(missing)))
                block.recv_push(connection.target_port, log)
                self.counts[block_id]["received"] += len(log)
                self._deliveries[block_id] += 1
            block.on_shutdown()
            for (source_id, _), routes in list(self._routes.items()):
                if source_id != block_id:
                    continue
                for kind, connection, sender in routes:
                    if kind == "local":
                        self._put(connection.target_id, (connection, _END))
                    else:
                        try:
                            sender.end()
                        except Exception as error:
                            raise RunFailed("connection {}: {}".format(self._describe(connection), error))
        except _Stopped:
            return
        except RunFailed as error:
            self.fail(str(error))
        except Exception as error:
            self.fail("block `{}`{}: {}: {}".format(
                block_id, " ({} {})".format(block.block_name, block.block_version) if block.block_name else "",
                type(error).__name__, error), "block")

    def attach(self, connection_id, receiver):
        """Start reading the inbound connection `connection_id` from `receiver`."""
        connection = self.inbound[connection_id]
        with self._lock:
            self._endpoints.append(receiver)
            if self.stop.is_set():
                receiver.close()
                return
        thread = threading.Thread(target=self._read, args=(connection, receiver),
                                  name="datablox-connection {}".format(connection_id))
        thread.daemon = True
        self._threads.append(thread)
        thread.start()

    def _read(self, connection, receiver):
        try:
            for log in receiver.logs():
                self._put(connection.target_id, (connection, log))
            receiver.close()
            self._put(connection.target_id, (connection, _END))
        except _Stopped:
            return
        except Exception as error:
            if not self.stop.is_set():
                self.fail("connection {}: {}".format(self._describe(connection), error))

    def start(self):
        """Start every block's thread (inbound connections may be attached before or after)."""
        for block_id in self.blocks:
            thread = threading.Thread(target=self._run_block, args=(block_id,), name="datablox-block `{}`".format(block_id))
            thread.daemon = True
            self._threads.append(thread)
            thread.start()
        return self

    def wait(self, deadline=None):
        """Wait for every block to finish, or for `deadline` (time.time()): then the run fails.
        Returns self; raises RunFailed with the first failure."""
        for thread in list(self._threads):
            while thread.is_alive():
                if deadline is not None and time.time() > deadline:
                    self.fail("the run did not finish in time (still running: {})".format(
                        ", ".join(t.name.replace("datablox-", "") for t in self._threads if t.is_alive())), "timeout")
                    break
                thread.join(self.poll)
            if self.error is not None:
                break
        if self.error is not None:
            # Give the other threads a moment to see the stop flag; they are daemons either way.
            for thread in list(self._threads):
                thread.join(self.poll * 2)
            raise RunFailed(self.error, self.cause)
        return self

    def run(self, deadline=None):
        return self.start().wait(deadline)


class _Stopped(BaseException):
    """Internal: the run was stopped while this thread waited. A BaseException, so that a block's
    own `except Exception` cannot swallow it."""


__all__ = ["Graph", "GraphError", "Connection", "Dataflow", "RunFailed", "run_pipeline", "Log"]
