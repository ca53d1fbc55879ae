import unittest

from datablox_framework.runtime import Graph
from datablox_framework.testing import run_block
from null__1_0.b_null import null
from zero_source__1_0.b_zero_source import zero_source


class NullTest(unittest.TestCase):
    def test_discards_and_counts(self):
        graph = Graph()
        graph.add_block("zeros", zero_source, {"count": 25, "batch_size": 10})
        graph.add_block("null", null)
        graph.connect("zeros", "output", "null", "input")
        graph.run()
        self.assertEqual((graph.blocks["null"].records, graph.blocks["null"].batches), (25, 3))

    def test_pushes_nothing(self):
        block, pushed = run_block(null, inputs=[("input", {"x": [1, 2]})])
        self.assertEqual(pushed, {})
        self.assertEqual(block.records, 2)


if __name__ == "__main__":
    unittest.main()
