import unittest

from datablox_framework import naming


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

    def test_rejects_empty_version(self):
        with self.assertRaises(ValueError):
            naming.block_dir("Dump", "")


if __name__ == "__main__":
    unittest.main()
