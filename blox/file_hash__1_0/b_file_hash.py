"""File-Hash: the SHA-256 digest of each file whose path it receives."""

import hashlib

from datablox_framework.block import Block

CHUNK_SIZE = 1 << 16


def sha256_of_file(path):
    """Hex SHA-256 of the file at `path`, read in chunks so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


class file_hash(Block):
    """Reads `path` on `input`, emits `path` and `sha256` (hex) on `output`. The other fields of
    the input record are passed along. A file that cannot be read is skipped and recorded in
    `self.errors` as (path, message), unless `fail_on_error` is true."""

    ARGS = ("fail_on_error",)
    INPUTS = ("input",)
    OUTPUTS = ("output",)

    def on_load(self, config):
        self.fail_on_error = self.config_value(config, "fail_on_error", False, bool)
        self.add_input("input", ["path"])
        self.add_output("output", ["path", "sha256"])
        self.errors = []

    def recv_push(self, port, log):
        rows = []
        for row in log.iter_rows():
            try:
                row["sha256"] = sha256_of_file(row["path"])
            except (IOError, OSError) as error:
                if self.fail_on_error:
                    raise
                self.errors.append((row["path"], str(error)))
                continue
            rows.append(row)
        self.push_rows("output", rows)
