"""Dir-Source: emits the paths of the entries of a directory."""

import fnmatch
import os

from datablox_framework.block import Block, ConfigError


class dir_source(Block):
    """Source: emits `path` for each file directly under `directory` whose name matches the glob
    `pattern` (default `*`), in name order. With `recursive` true, files of sub-directories too;
    with `include_dirs` true, directories as well as files."""

    ARGS = ("directory", "pattern", "recursive", "include_dirs", "batch_size")
    INPUTS = ()
    OUTPUTS = ("output",)

    def on_load(self, config):
        self.directory = self.config_value(config, "directory", kind=str)
        self.pattern = self.config_value(config, "pattern", "*", str)
        self.recursive = self.config_value(config, "recursive", False, bool)
        self.include_dirs = self.config_value(config, "include_dirs", False, bool)
        self.batch_size = self.config_value(config, "batch_size", 100, int)
        if not os.path.isdir(self.directory):
            raise ConfigError("block `{}`: `directory` {} is not a directory".format(self.id, self.directory))
        self.add_output("output", ["path"])

    def paths(self):
        """The matching paths, sorted so that runs are reproducible."""
        if self.recursive:
            for root, dirs, files in os.walk(self.directory):
                dirs.sort()
                names = sorted(files + (dirs if self.include_dirs else []))
                for name in names:
                    if fnmatch.fnmatch(name, self.pattern):
                        yield os.path.join(root, name)
            return
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            is_dir = os.path.isdir(path)
            if (not is_dir or self.include_dirs) and fnmatch.fnmatch(name, self.pattern):
                yield path

    def on_start(self):
        self.push_rows("output", ({"path": path} for path in self.paths()), self.batch_size)
        self.shutdown()
