"""JSON-Writer: writes the records it receives to a file, one JSON object per line."""

import io

try:
    # simplejson, when installed, is faster and serializes Decimal exactly; the standard
    # library's json writes the same lines for everything else.
    import simplejson as json
except ImportError:
    import json

from datablox_framework.block import Block, ConfigError


class json_writer(Block):
    """Sink: appends each record of `input` to the file `path` as one JSON line (keys sorted,
    UTF-8; values JSON cannot hold are written as strings). The file is truncated at load unless
    `append` is true, and always exists after a run, empty if nothing arrived. `self.written`
    counts the lines written."""

    json_module = json.__name__

    ARGS = ("path", "append")
    INPUTS = ("input",)
    OUTPUTS = ()

    def on_load(self, config):
        self.path = self.config_value(config, "path", kind=str)
        append = self.config_value(config, "append", False, bool)
        try:
            self.handle = io.open(self.path, "a" if append else "w", encoding="utf-8")
        except (IOError, OSError) as error:
            raise ConfigError("block `{}`: cannot open `path` {} for writing: {}".format(self.id, self.path, error))
        self.add_input("input", [])
        self.written = 0

    def recv_push(self, port, log):
        lines = [json.dumps(row, sort_keys=True, default=str, ensure_ascii=False) + "\n" for row in log.iter_rows()]
        self.handle.write(u"".join(lines))
        # Flushed per batch, so a crash later in the pipeline loses at most the batch in flight.
        self.handle.flush()
        self.written += len(lines)

    def on_shutdown(self):
        self.handle.close()
