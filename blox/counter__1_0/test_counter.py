import os
import shutil
import tempfile
import unittest

from datablox_framework.block import ConfigError
from datablox_framework.runtime import Graph
from datablox_framework.testing import Recorder, run_block
from categorizer__1_0.b_categorizer import categorizer
from counter__1_0.b_counter import counter
from dir_source__1_0.b_dir_source import dir_source


class CounterTest(unittest.TestCase):
    def test_counts_and_ranks(self):
        block, pushed = run_block(counter, {"field": "kind"}, [
            ("input", {"kind": ["a", "b", "a"]}), ("input", {"kind": ["c", "b", "a", None]})])
        self.assertEqual(pushed["output"], [{"value": "a", "count": 3}, {"value": "b", "count": 2},
                                            {"value": None, "count": 1}, {"value": "c", "count": 1}])
        _, pushed = run_block(counter, {"field": "kind", "top": 1}, [("input", {"kind": ["x", "y", "y"]})])
        self.assertEqual(pushed["output"], [{"value": "y", "count": 2}])

    def test_no_input_emits_nothing(self):
        _, pushed = run_block(counter, {"field": "kind"})
        self.assertEqual(pushed, {})

    def test_needs_field(self):
        with self.assertRaises(ConfigError):
            run_block(counter, {})

    def test_counts_categories_in_a_pipeline(self):
        root = tempfile.mkdtemp(prefix="counter-")
        try:
            for name in ("a.txt", "b.txt", "c.png", "d.zip"):
                open(os.path.join(root, name), "w").close()
            graph = Graph()
            graph.add_block("files", dir_source, {"directory": root})
            graph.add_block("categorize", categorizer, {"home": root, "detect_encoding": False})
            graph.add_block("count", counter, {"field": "category"})
            graph.add_block("sink", Recorder)
            graph.connect("files", "output", "categorize", "input")
            graph.connect("categorize", "output", "count", "input")
            graph.connect("count", "output", "sink", "input")
            graph.run()
            self.assertEqual(graph.blocks["sink"].rows, [{"value": "text", "count": 2}, {"value": "archive", "count": 1},
                                                         {"value": "image", "count": 1}])
        finally:
            shutil.rmtree(root)


if __name__ == "__main__":
    unittest.main()
