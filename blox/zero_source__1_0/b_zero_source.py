"""Zero-Source: emits `count` records whose fields are all 0, in batches.

Useful to measure the overhead of a pipeline, or to feed blocks under test with a known volume.
"""

from datablox_framework.block import Block, ConfigError, Log


class zero_source(Block):
    """Source: emits `count` records (default 10) with the fields `fields` (default ["value"])
    all set to 0, at most `batch_size` (default 100) records per batch."""

    ARGS = ("count", "fields", "batch_size")
    INPUTS = ()
    OUTPUTS = ("output",)

    def on_load(self, config):
        self.count = self.config_value(config, "count", 10, int)
        self.fields = list(self.config_value(config, "fields", ["value"], (list, tuple)))
        self.batch_size = self.config_value(config, "batch_size", 100, int)
        if self.count < 0 or self.batch_size < 1 or not self.fields:
            raise ConfigError("block `{}`: need count >= 0, batch_size >= 1 and at least one field".format(self.id))
        self.add_output("output", self.fields)

    def on_start(self):
        remaining = self.count
        while remaining > 0:
            size = min(remaining, self.batch_size)
            self.push("output", Log(dict((field, [0] * size) for field in self.fields)))
            remaining -= size
        self.shutdown()
