import unittest

from datablox_framework.testing import run_block
from text_stats__1_0.b_text_stats import text_stats


class TextStatsTest(unittest.TestCase):
    def test_passes_records_through(self):
        rows = [{"path": "a.txt"}, {"path": "b.txt"}]
        block, pushed = run_block(text_stats, {}, [("input", rows)])
        self.assertEqual(pushed, {"output": rows})


if __name__ == "__main__":
    unittest.main()
