import unittest

from datablox_framework.block import ConfigError
from datablox_framework.testing import run_block
from join__1_0.b_join import join

SIZES = [{"path": "a", "size": 1}, {"path": "b", "size": 2}, {"path": "c", "size": 3}]
HASHES = [{"path": "b", "sha256": "bb"}, {"path": "a", "sha256": "aa"}, {"path": "z", "sha256": "zz"}]


class JoinTest(unittest.TestCase):
    def test_inner_join_in_either_order(self):
        expected = [{"path": "a", "size": 1, "sha256": "aa"}, {"path": "b", "size": 2, "sha256": "bb"}]
        _, pushed = run_block(join, {"key": "path"}, [("left", SIZES), ("right", HASHES)])
        self.assertEqual(sorted(pushed["output"], key=lambda r: r["path"]), expected)
        _, pushed = run_block(join, {"key": "path"}, [("right", HASHES), ("left", SIZES)])
        self.assertEqual(sorted(pushed["output"], key=lambda r: r["path"]), expected)

    def test_interleaved_batches_and_duplicates(self):
        block, pushed = run_block(join, {"key": "k"}, [
            ("left", [{"k": 1, "l": "x"}]),
            ("right", [{"k": 1, "r": "p"}, {"k": 1, "r": "q"}]),
            ("left", [{"k": 1, "l": "y"}]),
        ])
        pairs = [(row["l"], row["r"]) for row in pushed["output"]]
        self.assertEqual(pairs, [("x", "p"), ("x", "q"), ("y", "p"), ("y", "q")])
        self.assertEqual(block.matches, 4)

    def test_different_key_names_and_collisions(self):
        _, pushed = run_block(join, {"left_key": "id", "right_key": "owner"}, [
            ("left", [{"id": 7, "name": "alice"}]),
            ("right", [{"owner": 7, "name": "report.txt"}]),
        ])
        self.assertEqual(pushed["output"], [{"id": 7, "name": "alice", "owner": 7, "right_name": "report.txt"}])

    def test_needs_a_key(self):
        with self.assertRaises(ConfigError):
            run_block(join, {})
        with self.assertRaises(ConfigError):
            run_block(join, {"left_key": "a"})


if __name__ == "__main__":
    unittest.main()
