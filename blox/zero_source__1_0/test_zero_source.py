import unittest

from datablox_framework.block import ConfigError
from datablox_framework.runtime import Graph
from datablox_framework.testing import Recorder, run_block
from zero_source__1_0.b_zero_source import zero_source


class ZeroSourceTest(unittest.TestCase):
    def test_emits_count_zeros_in_batches(self):
        graph = Graph()
        graph.add_block("zeros", zero_source, {"count": 250, "fields": ["a", "b"], "batch_size": 100})
        graph.add_block("sink", Recorder)
        graph.connect("zeros", "output", "sink", "input")
        graph.run()
        sink = graph.blocks["sink"]
        self.assertEqual(len(sink.rows), 250)
        self.assertEqual(sink.batches, 3)
        self.assertTrue(all(row == {"a": 0, "b": 0} for row in sink.rows))

    def test_defaults_and_zero_count(self):
        _, pushed = run_block(zero_source)
        self.assertEqual(pushed["output"], [{"value": 0}] * 10)
        _, pushed = run_block(zero_source, {"count": 0})
        self.assertEqual(pushed, {})

    def test_bad_config(self):
        with self.assertRaises(ConfigError):
            run_block(zero_source, {"count": -1})
        with self.assertRaises(ConfigError):
            run_block(zero_source, {"count": "many"})


if __name__ == "__main__":
    unittest.main()
