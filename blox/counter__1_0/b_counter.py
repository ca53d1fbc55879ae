"""Counter: counts records per value of a field and emits the counts at shutdown."""

import collections

from datablox_framework.block import Block


class counter(Block):
    """Counts the records of `input` per value of the field `field`. At shutdown, emits one
    record per value on `output` (`value`, `count`), most frequent first, ties in value order;
    `top` (optional) keeps only that many. The counts are in `self.counts` meanwhile."""

    ARGS = ("field", "top")
    INPUTS = ("input",)
    OUTPUTS = ("output",)

    def on_load(self, config):
        self.field = self.config_value(config, "field", kind=str)
        self.top = self.config_value(config, "top", None, (int, type(None)))
        self.add_input("input", [self.field])
        self.add_output("output", ["value", "count"])
        self.counts = collections.Counter()

    def recv_push(self, port, log):
        self.counts.update(log[self.field])

    def ranked(self):
        # Values are compared as (type name, repr) so that mixed types (None, 1, "a") still sort.
        ranking = sorted(self.counts.items(), key=lambda item: (-item[1], type(item[0]).__name__, repr(item[0])))
        return ranking if self.top is None else ranking[:self.top]

    def on_shutdown(self):
        self.push_rows("output", [{"value": value, "count": count} for value, count in self.ranked()])
