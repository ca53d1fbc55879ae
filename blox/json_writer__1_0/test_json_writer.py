import datetime
import json
import os
import shutil
import tempfile
import unittest

from datablox_framework.block import ConfigError
from datablox_framework.runtime import Graph
from datablox_framework.testing import run_block
from json_writer__1_0.b_json_writer import json_writer
from zero_source__1_0.b_zero_source import zero_source


class JsonWriterTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="json-writer-")
        self.path = os.path.join(self.root, "out.jsonl")

    def tearDown(self):
        shutil.rmtree(self.root)

    def read(self):
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    def test_writes_json_lines(self):
        when = datetime.date(2020, 1, 2)
        block, _ = run_block(json_writer, {"path": self.path}, [
            ("input", [{"name": u"caf\u00e9", "n": 1}]), ("input", [{"name": "x", "when": when}])])
        self.assertEqual(self.read(), [{"name": u"caf\u00e9", "n": 1}, {"name": "x", "when": "2020-01-02"}])
        self.assertEqual(block.written, 2)
        self.assertIn(block.json_module, ("json", "simplejson"))

    def test_truncates_or_appends(self):
        with open(self.path, "w") as handle:
            handle.write('{"old": true}\n')
        run_block(json_writer, {"path": self.path, "append": True}, [("input", {"new": [1]})])
        self.assertEqual(self.read(), [{"old": True}, {"new": 1}])
        run_block(json_writer, {"path": self.path})
        self.assertEqual(self.read(), [])

    def test_in_a_pipeline(self):
        graph = Graph()
        graph.add_block("zeros", zero_source, {"count": 120, "batch_size": 50})
        graph.add_block("write", json_writer, {"path": self.path})
        graph.connect("zeros", "output", "write", "input")
        graph.run()
        self.assertEqual(self.read(), [{"value": 0}] * 120)

    def test_unwritable_path(self):
        with self.assertRaises(ConfigError) as caught:
            run_block(json_writer, {"path": os.path.join(self.root, "missing", "out.jsonl")})
        self.assertIn("cannot open", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
