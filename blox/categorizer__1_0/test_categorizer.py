import json
import os
import shutil
import sys
import tempfile
import types
import unittest

from datablox_framework.block import ConfigError
from datablox_framework.runtime import Graph
from datablox_framework.testing import Recorder, run_block
from categorizer__1_0.b_categorizer import categorizer, category_of
from dir_source__1_0.b_dir_source import dir_source


class CategoryTest(unittest.TestCase):
    def test_categories(self):
        self.assertEqual(category_of("text/plain"), "text")
        self.assertEqual(category_of("application/json"), "text")
        self.assertEqual(category_of("image/png"), "image")
        self.assertEqual(category_of("application/zip"), "archive")
        self.assertEqual(category_of("application/pdf"), "document")
        self.assertEqual(category_of("application/octet-stream"), "binary")


class CategorizerTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="categorizer-")
        self.files = os.path.join(self.root, "files")
        os.makedirs(self.files)
        self.home = os.path.join(self.root, "home")  # a deployment home with no table
        os.makedirs(self.home)
        for name, data in (("notes.TXT", b"hello"), ("photo.png", b"\x89PNG\0"), ("README", b"plain words"),
                           ("blob", b"\0\1\2"), ("data.custom", b"x")):
            with open(os.path.join(self.files, name), "wb") as handle:
                handle.write(data)
        self.saved_chardet = sys.modules.pop("chardet", None)
        self.saved_env = os.environ.pop("DATABLOX_MIME_TYPES", None)

    def tearDown(self):
        shutil.rmtree(self.root)
        sys.modules.pop("chardet", None)
        if self.saved_chardet is not None:
            sys.modules["chardet"] = self.saved_chardet
        if self.saved_env is not None:
            os.environ["DATABLOX_MIME_TYPES"] = self.saved_env

    def categorize(self, config):
        graph = Graph()
        graph.add_block("files", dir_source, {"directory": self.files})
        graph.add_block("categorize", categorizer, config)
        graph.add_block("sink", Recorder)
        graph.connect("files", "output", "categorize", "input")
        graph.connect("categorize", "output", "sink", "input")
        graph.run()
        rows = graph.blocks["sink"].rows
        return graph.blocks["categorize"], dict((os.path.basename(r["path"]), r) for r in rows)

    def test_builtin_table_and_sniffing(self):
        block, rows = self.categorize({"home": self.home, "detect_encoding": False})
        self.assertEqual(block.table_source, "built-in")
        self.assertEqual((rows["notes.TXT"]["mime_type"], rows["notes.TXT"]["category"]), ("text/plain", "text"))
        self.assertEqual(rows["photo.png"]["category"], "image")
        self.assertEqual(rows["README"]["mime_type"], "text/plain")
        self.assertEqual((rows["blob"]["mime_type"], rows["blob"]["category"]), ("application/octet-stream", "binary"))
        self.assertIsNone(rows["notes.TXT"]["encoding"])

    def test_table_from_deployment_home_overrides_builtin(self):
        os.makedirs(os.path.join(self.home, "data"))
        table_path = os.path.join(self.home, "data", "mime_types.json")
        with open(table_path, "w") as handle:
            json.dump({"custom": "application/x-custom", ".PNG": "image/x-my-png"}, handle)
        block, rows = self.categorize({"home": self.home, "detect_encoding": False})
        self.assertEqual(block.table_source, table_path)
        self.assertEqual(rows["data.custom"]["mime_type"], "application/x-custom")
        self.assertEqual(rows["photo.png"]["mime_type"], "image/x-my-png")
        self.assertEqual(rows["notes.TXT"]["mime_type"], "text/plain")

    def test_table_from_environment_and_bad_table(self):
        table_path = os.path.join(self.root, "bad.json")
        with open(table_path, "w") as handle:
            handle.write("[1, 2]")
        os.environ["DATABLOX_MIME_TYPES"] = table_path
        try:
            with self.assertRaises(ConfigError) as caught:
                run_block(categorizer, {"home": self.home})
            self.assertIn("bad.json", str(caught.exception))
        finally:
            del os.environ["DATABLOX_MIME_TYPES"]

    def test_uses_chardet_when_importable(self):
        fake = types.ModuleType("chardet")
        fake.detect = lambda data: {"encoding": "ascii" if data.isalpha() else "utf-8", "confidence": 1.0}
        sys.modules["chardet"] = fake
        _, rows = self.categorize({"home": self.home})
        self.assertEqual(rows["notes.TXT"]["encoding"], "ascii")
        self.assertEqual(rows["README"]["encoding"], "utf-8")
        self.assertIsNone(rows["photo.png"]["encoding"])

    def test_missing_file_is_recorded(self):
        block, pushed = run_block(categorizer, {"home": self.home, "detect_encoding": False}, [("input", {"path": [os.path.join(self.root, "x.txt"), os.path.join(self.root, "gone")]})])
        # A known extension needs no read, an unknown one must be sniffed and fails.
        self.assertEqual([r["mime_type"] for r in pushed["output"]], ["text/plain"])
        self.assertEqual(len(block.errors), 1)


if __name__ == "__main__":
    unittest.main()
