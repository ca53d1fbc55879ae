import io
import json
import unittest
from contextlib import redirect_stdout

from datablox_framework.runtime import Graph
from datablox_framework.testing import run_block
from dump__1_0.b_dump import dump
from zero_source__1_0.b_zero_source import zero_source


class DumpTest(unittest.TestCase):
    def test_keeps_and_prints_records(self):
        output = io.StringIO()
        with redirect_stdout(output):
            block, _ = run_block(dump, {}, [("input", [{"name": "a", "n": 1}, {"name": "b", "n": 2}])], block_id="d")
        self.assertEqual(block.records, [{"name": "a", "n": 1}, {"name": "b", "n": 2}])
        lines = output.getvalue().splitlines()
        self.assertEqual([json.loads(line) for line in lines[:2]], block.records)
        self.assertEqual(lines[2], "dump d: 2 record(s) received, 2 kept")

    def test_limit_and_quiet(self):
        output = io.StringIO()
        graph = Graph()
        graph.add_block("zeros", zero_source, {"count": 7})
        graph.add_block("dump", dump, {"limit": 3, "print": False})
        graph.connect("zeros", "output", "dump", "input")
        with redirect_stdout(output):
            graph.run()
        self.assertEqual(len(graph.blocks["dump"].records), 3)
        self.assertEqual(graph.blocks["dump"].received, 7)
        self.assertEqual(output.getvalue(), "")


if __name__ == "__main__":
    unittest.main()
