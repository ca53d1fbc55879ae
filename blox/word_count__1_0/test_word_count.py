import os
import shutil
import tempfile
import unittest

from datablox_framework.runtime import Graph
from datablox_framework.testing import Recorder, run_block
from dir_source__1_0.b_dir_source import dir_source
from word_count__1_0.b_word_count import count_text, word_count


class CountTextTest(unittest.TestCase):
    def test_counts(self):
        self.assertEqual(count_text(""), (0, 0, 0))
        self.assertEqual(count_text("one two\nthree"), (2, 3, 13))
        self.assertEqual(count_text("a\n\n  b  \n"), (3, 2, 9))


class WordCountTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="words-")
        self.write("poem.txt", u"the quick brown fox\njumps over\nthe lazy dog\n".encode("utf-8"))
        self.write("accents.txt", u"caf\u00e9 cr\u00e8me br\u00fbl\u00e9e".encode("utf-8"))
        self.write("image.bin", b"\x89PNG\0\0\0binary")

    def write(self, name, data):
        with open(os.path.join(self.root, name), "wb") as handle:
            handle.write(data)

    def tearDown(self):
        shutil.rmtree(self.root)

    def test_pipeline_counts_text_and_skips_binary(self):
        graph = Graph()
        graph.add_block("files", dir_source, {"directory": self.root})
        graph.add_block("count", word_count)
        graph.add_block("per_file", Recorder)
        graph.add_block("totals", Recorder)
        graph.connect("files", "output", "count", "input")
        graph.connect("count", "output", "per_file", "input")
        graph.connect("count", "totals", "totals", "input")
        graph.run()
        by_name = dict((os.path.basename(r["path"]), r) for r in graph.blocks["per_file"].rows)
        self.assertEqual(sorted(by_name), ["accents.txt", "poem.txt"])
        self.assertEqual((by_name["poem.txt"]["lines"], by_name["poem.txt"]["words"]), (3, 9))
        self.assertEqual((by_name["accents.txt"]["words"], by_name["accents.txt"]["chars"]), (3, 17))
        self.assertEqual(graph.blocks["totals"].rows, [{"files": 2, "lines": 4, "words": 12, "chars": 61}])
        self.assertEqual([os.path.basename(p) for p, _ in graph.blocks["count"].skipped], ["image.bin"])

    def test_missing_file_is_skipped(self):
        block, pushed = run_block(word_count, {}, [("input", {"path": [os.path.join(self.root, "gone.txt")]})])
        self.assertNotIn("output", pushed)
        self.assertEqual(pushed["totals"], [{"files": 0, "lines": 0, "words": 0, "chars": 0}])
        self.assertEqual(len(block.skipped), 1)


if __name__ == "__main__":
    unittest.main()
