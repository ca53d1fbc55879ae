"""Null: a sink that discards what it receives, counting it."""

from datablox_framework.block import Block


class null(Block):
    """Sink: accepts any records on `input` and drops them. Counts records and batches so that a
    pipeline's volume can be checked without keeping the data."""

    ARGS = ()
    INPUTS = ("input",)
    OUTPUTS = ()

    def on_load(self, config):
        self.add_input("input", [])
        self.records = 0
        self.batches = 0

    def recv_push(self, port, log):
        self.records += len(log)
        self.batches += 1
