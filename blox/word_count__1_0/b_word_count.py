"""Word-Count: counts the lines, words and characters of text files."""

import io

from datablox_framework.block import Block

# A file whose first bytes hold a NUL is taken as binary: text encodings used for documents
# (UTF-8, Latin-1, ...) never produce NUL, so counting its "words" would be meaningless.
SNIFF_SIZE = 8192


def count_text(text):
    """(lines, words, chars) of `text`; a last line without a newline still counts."""
    lines = text.count("\n")
    if text and not text.endswith("\n"):
        lines += 1
    return lines, len(text.split()), len(text)


class word_count(Block):
    """Reads `path` on `input`; for each text file emits `path`, `lines`, `words` and `chars` on
    `output`. Files are decoded with `encoding` (default utf-8, undecodable bytes replaced).
    Binary and unreadable files are skipped and listed in `self.skipped`. At shutdown, emits
    the totals (`files`, `lines`, `words`, `chars`) on `totals`."""

    ARGS = ("encoding",)
    INPUTS = ("input",)
    OUTPUTS = ("output", "totals")

    def on_load(self, config):
        self.encoding = self.config_value(config, "encoding", "utf-8", str)
        self.add_input("input", ["path"])
        self.add_output("output", ["path", "lines", "words", "chars"])
        self.add_output("totals", ["files", "lines", "words", "chars"])
        self.totals = {"files": 0, "lines": 0, "words": 0, "chars": 0}
        self.skipped = []

    def count_file(self, path):
        with io.open(path, "rb") as handle:
            data = handle.read()
        if b"\0" in data[:SNIFF_SIZE]:
            return None
        return count_text(data.decode(self.encoding, "replace"))

    def recv_push(self, port, log):
        rows = []
        for path in log["path"]:
            try:
                counts = self.count_file(path)
            except (IOError, OSError) as error:
                self.skipped.append((path, str(error)))
                continue
            if counts is None:
                self.skipped.append((path, "binary file"))
                continue
            lines, words, chars = counts
            rows.append({"path": path, "lines": lines, "words": words, "chars": chars})
            self.totals["files"] += 1
            self.totals["lines"] += lines
            self.totals["words"] += words
            self.totals["chars"] += chars
        self.push_rows("output", rows)

    def on_shutdown(self):
        self.push_rows("totals", [dict(self.totals)])
