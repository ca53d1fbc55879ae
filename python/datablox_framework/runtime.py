"""A small in-process runner: a graph of block instances, pushes delivered through a queue.

The order of a run:
  1. every block was loaded (`on_load`) when it was added;
  2. `on_start` of each block in topological order (sources first); after each, the queue of
     pushes is drained, so memory holds at most what one batch causes downstream;
  3. `on_shutdown` of each block in topological order, draining the queue after each, so a block
     that emits its result at shutdown (a counter) still reaches blocks that are not yet shut down.
Cycles are rejected: with them, step 3 would have to shut a block down while it can still receive.
"""

import collections

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
        block.on_load(dict(config or {}))
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


__all__ = ["Graph", "GraphError", "Connection", "run_pipeline", "Log"]
