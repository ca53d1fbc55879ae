import unittest

from datablox_framework.block import ConfigError
from datablox_framework.testing import run_block
from filter__1_0.b_filter import filter as filter_block

ROWS = [
    {"path": "/a/notes.txt", "size": 10, "kind": "text"},
    {"path": "/a/photo.png", "size": 5000, "kind": "image"},
    {"path": "/b/big.txt", "size": 20000, "kind": "text"},
    {"path": "/b/odd", "size": None, "kind": "unknown"},
]


def kept(config, rows=ROWS):
    block, pushed = run_block(filter_block, config, [("input", rows)])
    return block, [row["path"] for row in pushed.get("output", [])]


class FilterTest(unittest.TestCase):
    def test_single_condition(self):
        block, paths = kept({"field": "size", "op": ">", "value": 100})
        self.assertEqual(paths, ["/a/photo.png", "/b/big.txt"])  # None cannot be compared: dropped
        self.assertEqual((block.kept, block.dropped), (2, 2))
        self.assertEqual(kept({"field": "kind", "value": "text"})[1], ["/a/notes.txt", "/b/big.txt"])

    def test_all_and_any(self):
        where = [["kind", "==", "text"], ["size", ">=", 1000]]
        self.assertEqual(kept({"where": where})[1], ["/b/big.txt"])
        self.assertEqual(kept({"where": where, "mode": "any"})[1], ["/a/notes.txt", "/a/photo.png", "/b/big.txt"])

    def test_string_operators(self):
        self.assertEqual(kept({"where": [{"field": "path", "op": "matches", "value": r"\.txt$"}]})[1],
                         ["/a/notes.txt", "/b/big.txt"])
        self.assertEqual(kept({"where": [["path", "startswith", "/b/"]]})[1], ["/b/big.txt", "/b/odd"])
        self.assertEqual(kept({"where": [["kind", "in", ["image", "unknown"]]]})[1], ["/a/photo.png", "/b/odd"])
        self.assertEqual(kept({"where": [["kind", "not in", ["text"]]]})[1], ["/a/photo.png", "/b/odd"])
        self.assertEqual(kept({"where": [["path", "contains", "big"]]})[1], ["/b/big.txt"])

    def test_keeps_all_fields(self):
        _, pushed = run_block(filter_block, {"field": "kind", "value": "image"}, [("input", ROWS)])
        self.assertEqual(pushed["output"], [ROWS[1]])

    def test_missing_field_in_any_mode_does_not_match(self):
        rows = [{"other": 1}]
        self.assertEqual(kept({"where": [["size", ">", 0], ["other", "==", 2]], "mode": "any"}, rows)[1], [])

    def test_bad_config(self):
        for config in ({"where": [["size", "~", 1]]}, {"where": [["size", ">"]]}, {"where": []},
                       {"where": [{"field": "a", "op": "=="}]}, {"field": "a", "value": 1, "mode": "most"},
                       {"where": [["a", "matches", "("]]}, {"op": "=="}):
            with self.assertRaises(ConfigError):
                run_block(filter_block, config)


if __name__ == "__main__":
    unittest.main()
