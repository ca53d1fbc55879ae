"""Filter: keeps the records that match conditions on their fields."""

import operator
import re

from datablox_framework.block import Block, ConfigError


def _contains(container, item):
    return item in container


def _not_in(item, container):
    return item not in container


OPERATORS = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "in": lambda value, choices: value in choices,
    "not in": _not_in,
    "contains": _contains,
    "startswith": lambda value, prefix: isinstance(value, str) and value.startswith(prefix),
    "endswith": lambda value, suffix: isinstance(value, str) and value.endswith(suffix),
    "matches": lambda value, pattern: isinstance(value, str) and pattern.search(value) is not None,
}


class Condition(object):
    """`field op value`, e.g. `size > 1000` or `path matches \\.txt$`."""

    def __init__(self, field, op, value):
        if op not in OPERATORS:
            raise ConfigError("unknown filter operator {!r} (known: {})".format(op, ", ".join(sorted(OPERATORS))))
        self.field = field
        self.op = op
        self.test = OPERATORS[op]
        self.value = re.compile(value) if op == "matches" else value

    def matches(self, row):
        if self.field not in row:
            return False
        try:
            return bool(self.test(row[self.field], self.value))
        except TypeError:
            # Values that cannot be compared (None < 3, a number `contains` ...) do not match:
            # a filter drops what it cannot judge rather than stopping the pipeline.
            return False


def parse_condition(spec):
    if isinstance(spec, dict):
        try:
            return Condition(spec["field"], spec["op"], spec["value"])
        except KeyError as missing:
            raise ConfigError("filter condition {!r} lacks {}".format(spec, missing))
    if isinstance(spec, (list, tuple)) and len(spec) == 3:
        return Condition(*spec)
    raise ConfigError("filter condition {!r} must be [field, op, value] or {{field, op, value}}".format(spec))


class filter(Block):
    """Passes on `output` the records of `input` that satisfy the conditions; others are dropped.

    Config: `where`, a list of conditions `[field, op, value]` (or `{"field", "op", "value"}`),
    or a single condition as `field`, `op`, `value`; `mode` is `all` (default) or `any`.
    Operators: == != < <= > >= in, not in, contains, startswith, endswith, matches (regex).
    A record without the field does not match. `self.kept` and `self.dropped` count records.
    """

    ARGS = ("where", "field", "op", "value", "mode")
    INPUTS = ("input",)
    OUTPUTS = ("output",)

    def on_load(self, config):
        if "where" in config:
            specs = self.config_value(config, "where", kind=(list, tuple))
        else:
            specs = [[self.config_value(config, "field", kind=str), config.get("op", "=="),
                      self.config_value(config, "value")]]
        try:
            self.conditions = [parse_condition(spec) for spec in specs]
        except (ConfigError, re.error) as error:
            raise ConfigError("block `{}`: {}".format(self.id, error))
        if not self.conditions:
            raise ConfigError("block `{}`: `where` holds no condition".format(self.id))
        self.mode = self.config_value(config, "mode", "all", str)
        if self.mode not in ("all", "any"):
            raise ConfigError("block `{}`: `mode` must be `all` or `any`, got {!r}".format(self.id, self.mode))
        self.combine = all if self.mode == "all" else any
        # With `any`, a record may lack some of the fields, so only `all` can require them.
        required = sorted(set(c.field for c in self.conditions)) if self.mode == "all" else []
        self.add_input("input", required)
        self.add_output("output", None)
        self.kept = 0
        self.dropped = 0

    def keeps(self, row):
        return self.combine(condition.matches(row) for condition in self.conditions)

    def recv_push(self, port, log):
        rows = [row for row in log.iter_rows() if self.keeps(row)]
        self.kept += len(rows)
        self.dropped += len(log) - len(rows)
        self.push_rows("output", rows)
