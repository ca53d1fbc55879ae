"""Helpers for block tests: run one block on given input batches and collect what it pushes.

Kept in the framework (not in a test directory) because every block's own tests use it, and the
blocks are tested wherever they are installed.
"""

from .block import Block, Log, Port


class Recorder(Block):
    """Keeps every record it receives on its `input` port, in order, as dicts."""

    def on_load(self, config):
        self.add_input("input", [])
        self.rows = []
        self.batches = 0

    def recv_push(self, port, log):
        self.batches += 1
        self.rows.extend(log.iter_rows())


def as_log(batch):
    """A Log from a Log, a dict of columns or a list of row dicts."""
    if isinstance(batch, Log):
        return batch
    if isinstance(batch, dict):
        return Log(batch)
    return Log.from_rows(batch)


def run_block(block_class, config=None, inputs=None, block_id="block-under-test"):
    """Run one block through its whole life cycle without a graph.

    `inputs` is a list of (input port, batch) delivered in order, a batch being anything `as_log`
    accepts. Returns (block, {output port: [row dicts pushed, in order]}).
    """
    pushed = {}

    def record(block, port, log):
        pushed.setdefault(port, []).extend(log.copy().iter_rows())

    block = block_class(block_id)
    block.set_emitter(record)
    block.configure(config)
    block.on_start()
    for port, batch in inputs or []:
        block.port(port, Port.INPUT)
        block.recv_push(port, as_log(batch))
    block.on_shutdown()
    return block, pushed
