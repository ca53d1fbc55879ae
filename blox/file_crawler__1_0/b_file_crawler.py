"""File-Crawler: walks a directory tree and emits each file with its size and modification time."""

import fnmatch
import os
import stat

from datablox_framework.block import Block, ConfigError


class file_crawler(Block):
    """Source: walks `directory` and emits `path`, `size` (bytes) and `mtime` (seconds since the
    epoch) for every regular file, in a stable order. Directories and files whose name matches
    one of the globs in `exclude` are skipped (a skipped directory is not entered). Files that
    vanish or cannot be read during the walk are counted in `self.errors` instead of failing."""

    ARGS = ("directory", "exclude", "follow_links", "batch_size")
    INPUTS = ()
    OUTPUTS = ("output",)

    def on_load(self, config):
        self.directory = self.config_value(config, "directory", kind=str)
        self.exclude = list(self.config_value(config, "exclude", [], (list, tuple)))
        self.follow_links = self.config_value(config, "follow_links", False, bool)
        self.batch_size = self.config_value(config, "batch_size", 100, int)
        if not os.path.isdir(self.directory):
            raise ConfigError("block `{}`: `directory` {} is not a directory".format(self.id, self.directory))
        self.errors = []
        self.add_output("output", ["path", "size", "mtime"])

    def excluded(self, name):
        return any(fnmatch.fnmatch(name, pattern) for pattern in self.exclude)

    def files(self):
        def remember(error):
            self.errors.append(str(error))

        for root, dirs, files in os.walk(self.directory, onerror=remember, followlinks=self.follow_links):
            # Pruning in place stops os.walk from entering excluded directories at all.
            dirs[:] = sorted(d for d in dirs if not self.excluded(d))
            for name in sorted(files):
                if self.excluded(name):
                    continue
                path = os.path.join(root, name)
                try:
                    info = os.stat(path) if self.follow_links else os.lstat(path)
                except OSError as error:
                    remember(error)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                yield {"path": path, "size": info.st_size, "mtime": info.st_mtime}

    def on_start(self):
        self.push_rows("output", self.files(), self.batch_size)
        self.shutdown()
