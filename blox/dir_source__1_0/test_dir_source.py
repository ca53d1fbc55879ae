import os
import shutil
import tempfile
import unittest

from datablox_framework.block import ConfigError
from datablox_framework.runtime import Graph
from datablox_framework.testing import Recorder, run_block
from dir_source__1_0.b_dir_source import dir_source


class DirSourceTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="dir-source-")
        for relative in ("b.txt", "a.txt", "c.log", "sub/d.txt"):
            path = os.path.join(self.root, relative)
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path))
            with open(path, "w") as handle:
                handle.write(relative)

    def tearDown(self):
        shutil.rmtree(self.root)

    def paths(self, **config):
        config["directory"] = self.root
        _, pushed = run_block(dir_source, config)
        return [os.path.relpath(row["path"], self.root) for row in pushed.get("output", [])]

    def test_lists_files_in_order(self):
        self.assertEqual(self.paths(), ["a.txt", "b.txt", "c.log"])

    def test_pattern_dirs_and_recursion(self):
        self.assertEqual(self.paths(pattern="*.txt"), ["a.txt", "b.txt"])
        self.assertEqual(self.paths(include_dirs=True), ["a.txt", "b.txt", "c.log", "sub"])
        self.assertEqual(self.paths(recursive=True, pattern="*.txt"), ["a.txt", "b.txt", os.path.join("sub", "d.txt")])

    def test_batches(self):
        graph = Graph()
        graph.add_block("source", dir_source, {"directory": self.root, "batch_size": 2})
        graph.add_block("sink", Recorder)
        graph.connect("source", "output", "sink", "input")
        graph.run()
        self.assertEqual(graph.blocks["sink"].batches, 2)
        self.assertEqual(len(graph.blocks["sink"].rows), 3)

    def test_missing_directory(self):
        with self.assertRaises(ConfigError):
            run_block(dir_source, {"directory": os.path.join(self.root, "nope")})
        with self.assertRaises(ConfigError):
            run_block(dir_source, {})


if __name__ == "__main__":
    unittest.main()
