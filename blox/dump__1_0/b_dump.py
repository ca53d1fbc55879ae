"""Dump: a sink that keeps and prints the records it receives."""

import json
import sys

from datablox_framework.block import Block


class dump(Block):
    """Sink: keeps every record received on `input` in `self.records` (at most `limit`, default
    no limit) and, unless `print` is false, writes each as one JSON line to standard output,
    then a summary line at shutdown. For looking at a pipeline's output while developing it."""

    ARGS = ("print", "limit")
    INPUTS = ("input",)
    OUTPUTS = ()

    def on_load(self, config):
        self.print_records = self.config_value(config, "print", True, bool)
        self.limit = self.config_value(config, "limit", None, (int, type(None)))
        self.add_input("input", [])
        self.records = []
        self.received = 0

    def recv_push(self, port, log):
        for row in log.iter_rows():
            self.received += 1
            if self.limit is not None and len(self.records) >= self.limit:
                continue
            self.records.append(row)
            if self.print_records:
                # sys.stdout is looked up on every write so that callers can redirect it.
                sys.stdout.write(json.dumps(row, sort_keys=True, default=str) + "\n")

    def on_shutdown(self):
        if self.print_records:
            sys.stdout.write("dump {}: {} record(s) received, {} kept\n".format(self.id, self.received, len(self.records)))
