import hashlib
import os
import shutil
import tempfile
import unittest

from datablox_framework.runtime import Graph
from datablox_framework.testing import Recorder, run_block
from file_crawler__1_0.b_file_crawler import file_crawler
from file_hash__1_0.b_file_hash import file_hash


class FileHashTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="hash-")
        self.files = {"empty": b"", "small": b"abc", "large": os.urandom(200000)}
        for name, content in self.files.items():
            with open(os.path.join(self.root, name), "wb") as handle:
                handle.write(content)

    def tearDown(self):
        shutil.rmtree(self.root)

    def test_hashes_crawled_files(self):
        graph = Graph()
        graph.add_block("crawler", file_crawler, {"directory": self.root})
        graph.add_block("hash", file_hash)
        graph.add_block("sink", Recorder)
        graph.connect("crawler", "output", "hash", "input")
        graph.connect("hash", "output", "sink", "input")
        graph.run()
        rows = graph.blocks["sink"].rows
        self.assertEqual(len(rows), 3)
        for row in rows:
            expected = hashlib.sha256(self.files[os.path.basename(row["path"])]).hexdigest()
            self.assertEqual(row["sha256"], expected)
            self.assertIn("size", row)  # input fields are passed along
        small = [r for r in rows if r["path"].endswith("small")][0]
        self.assertEqual(small["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")

    def test_unreadable_files_are_skipped_or_fatal(self):
        missing = os.path.join(self.root, "missing")
        present = os.path.join(self.root, "small")
        block, pushed = run_block(file_hash, {}, [("input", {"path": [missing, present]})])
        self.assertEqual([row["path"] for row in pushed["output"]], [present])
        self.assertEqual(block.errors[0][0], missing)
        with self.assertRaises(IOError):
            run_block(file_hash, {"fail_on_error": True}, [("input", {"path": [missing]})])


if __name__ == "__main__":
    unittest.main()
