"""Join: an inner join of the records arriving on two input ports, on a key field."""

import collections

from datablox_framework.block import Block, ConfigError


class join(Block):
    """Receives records on `left` and `right`; for each pair whose key fields are equal, emits the
    merged record on `output` as soon as both sides have arrived (a symmetric hash join, so the
    two inputs may arrive in any order and interleaved).

    Config: `key` (the field on both sides), or `left_key` and `right_key`. In a merged record,
    left fields come first; a right field whose name is already taken is renamed `right_<name>`,
    except a shared key field, which appears once. Every record seen is kept until shutdown.
    """

    ARGS = ("key", "left_key", "right_key")
    INPUTS = ("left", "right")
    OUTPUTS = ("output",)

    def on_load(self, config):
        key = self.config_value(config, "key", None, str)
        self.left_key = self.config_value(config, "left_key", key, str)
        self.right_key = self.config_value(config, "right_key", key, str)
        if self.left_key is None or self.right_key is None:
            raise ConfigError("block `{}`: set `key`, or both `left_key` and `right_key`".format(self.id))
        self.add_input("left", [self.left_key])
        self.add_input("right", [self.right_key])
        self.add_output("output", None)
        self.seen = {"left": collections.defaultdict(list), "right": collections.defaultdict(list)}
        self.matches = 0

    def merge(self, left, right):
        merged = dict(left)
        for name, value in right.items():
            if name == self.right_key and self.right_key == self.left_key:
                continue
            merged["right_" + name if name in merged else name] = value
        return merged

    def recv_push(self, port, log):
        key_field = self.left_key if port == "left" else self.right_key
        other = self.seen["right" if port == "left" else "left"]
        rows = []
        for row in log.iter_rows():
            key = row[key_field]
            self.seen[port][key].append(row)
            for match in other.get(key, ()):
                rows.append(self.merge(row, match) if port == "left" else self.merge(match, row))
        self.matches += len(rows)
        self.push_rows("output", rows)
