import json
import os
import unittest

from datablox_deployer import extension
from datablox_framework import naming

NAME_RULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "name_rule.json")


class NamingTest(unittest.TestCase):
    def test_mangle_lowers_and_replaces(self):
        self.assertEqual(naming.mangle("File-Crawler"), "file_crawler")
        self.assertEqual(naming.mangle("1.0"), "1_0")
        self.assertEqual(naming.mangle("Mac OS-X 10.5"), "macos_x10_5")

    def test_derived_names(self):
        self.assertEqual(naming.block_key("File-Crawler", "1.0"), {"name": "file-crawler", "version": "1.0"})
        self.assertEqual(naming.block_dir("File-Crawler", "1.0"), "file_crawler__1_0")
        self.assertEqual(naming.block_module("File-Crawler"), "b_file_crawler")
        self.assertEqual(naming.block_class("File-Crawler"), "file_crawler")

    def test_rejects_reserved_characters(self):
        for bad in ("file_crawler", "file.crawler", "", "   "):
            with self.assertRaises(ValueError) as caught:
                naming.check_block_name(bad)
            self.assertIn("block name", str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            naming.block_dir("word_count", "1.0")
        self.assertIn("word-count", str(caught.exception))

    def test_the_shared_name_table(self):
        """The table `cargo test` runs against `check/names.rs` too: the framework, the node
        deployer and xtask check accept and refuse the same names."""
        # The node deployer reads definitions with the framework's rule itself, not a copy.
        self.assertIs(extension.name_problem, naming.name_problem)
        with open(NAME_RULE, encoding="utf-8") as handle:
            rows = json.load(handle)["names"]
        self.assertGreater(len(rows), 20)
        for row in rows:
            name = row["name"]
            self.assertEqual(naming.name_problem("resource name", name) is None, row["resource"], repr(name))
            try:
                naming.check_block_name(name)
                valid_block = True
            except ValueError:
                valid_block = False
            self.assertEqual(valid_block, row["block"], repr(name))

    def test_an_option_is_not_a_name(self):
        for bad in ("--tree=/some/dir", "-g", "a/b", "Dump\n", "a\0b"):
            with self.assertRaises(ValueError):
                naming.block_key(bad, "1.0")
        with self.assertRaises(ValueError):
            naming.block_dir("Dump", "1/../../x")

    def test_rejects_empty_version(self):
        with self.assertRaises(ValueError):
            naming.block_dir("Dump", "")


if __name__ == "__main__":
    unittest.main()
