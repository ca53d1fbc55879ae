import os
import shutil
import tempfile
import unittest

from datablox_framework.block import ConfigError
from datablox_framework.runtime import Graph
from datablox_framework.testing import Recorder, run_block
from file_crawler__1_0.b_file_crawler import file_crawler


class FileCrawlerTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="crawler-")
        self.contents = {"a.txt": "hello", "sub/b.bin": "12345678", "sub/deeper/c.txt": "", ".git/config": "x",
                         "skip.tmp": "tmp"}
        for relative, content in self.contents.items():
            path = os.path.join(self.root, relative)
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path))
            with open(path, "w") as handle:
                handle.write(content)
        os.utime(os.path.join(self.root, "a.txt"), (1000000000, 1000000000))

    def tearDown(self):
        shutil.rmtree(self.root)

    def test_walks_tree_with_sizes_and_mtimes(self):
        graph = Graph()
        graph.add_block("crawler", file_crawler, {"directory": self.root, "exclude": [".git", "*.tmp"], "batch_size": 2})
        graph.add_block("sink", Recorder)
        graph.connect("crawler", "output", "sink", "input")
        graph.run()
        rows = graph.blocks["sink"].rows
        relative = [os.path.relpath(row["path"], self.root) for row in rows]
        self.assertEqual(relative, ["a.txt", os.path.join("sub", "b.bin"), os.path.join("sub", "deeper", "c.txt")])
        self.assertEqual([row["size"] for row in rows], [5, 8, 0])
        self.assertEqual(rows[0]["mtime"], 1000000000)
        self.assertEqual(graph.blocks["sink"].batches, 2)

    def test_without_exclusions_sees_everything(self):
        _, pushed = run_block(file_crawler, {"directory": self.root})
        self.assertEqual(len(pushed["output"]), len(self.contents))

    def test_symlinks_are_not_followed_by_default(self):
        os.symlink(os.path.join(self.root, "a.txt"), os.path.join(self.root, "link.txt"))
        _, pushed = run_block(file_crawler, {"directory": self.root, "exclude": [".git", "*.tmp"]})
        self.assertNotIn("link.txt", [os.path.basename(row["path"]) for row in pushed["output"]])
        _, pushed = run_block(file_crawler, {"directory": self.root, "exclude": [".git", "*.tmp"], "follow_links": True})
        self.assertIn("link.txt", [os.path.basename(row["path"]) for row in pushed["output"]])

    def test_not_a_directory(self):
        with self.assertRaises(ConfigError):
            run_block(file_crawler, {"directory": os.path.join(self.root, "a.txt")})


if __name__ == "__main__":
    unittest.main()
