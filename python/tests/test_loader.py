import os
import unittest

from datablox_framework import loader
from datablox_framework.block import Block

from helpers import TempBloxpath


class LoaderTest(unittest.TestCase):
    def setUp(self):
        self.bloxpath = TempBloxpath()
        self.saved_env = os.environ.pop("BLOXPATH", None)

    def tearDown(self):
        self.bloxpath.close()
        if self.saved_env is not None:
            os.environ["BLOXPATH"] = self.saved_env
        else:
            os.environ.pop("BLOXPATH", None)

    def test_loads_class_from_explicit_bloxpath(self):
        self.bloxpath.write_block("Loader-Doubler", "1.0")
        block_class = loader.load_block_class("Loader-Doubler", "1.0", [self.bloxpath.root])
        self.assertEqual(block_class.__name__, "loader_doubler")
        self.assertTrue(issubclass(block_class, Block))
        self.assertEqual((block_class.block_name, block_class.block_version), ("Loader-Doubler", "1.0"))

    def test_bloxpath_from_string_and_environment(self):
        self.bloxpath.write_block("Env-Doubler", "2.1")
        os.environ["BLOXPATH"] = os.pathsep.join(["/nonexistent", self.bloxpath.root])
        self.assertEqual(loader.resolve_bloxpath(), ["/nonexistent", self.bloxpath.root])
        block = loader.create_block("d", "Env-Doubler", "2.1", {"factor": 3})
        self.assertEqual(block.factor, 3)
        self.assertEqual(sorted(block.ports), ["input", "output"])

    def test_adapter_gives_bloxpath_when_nothing_else(self):
        home = os.environ.get("DATABLOX_HOME")
        os.environ["DATABLOX_HOME"] = "/some/home"
        try:
            self.assertEqual(loader.resolve_bloxpath(), [os.path.join("/some/home", "blox")])
        finally:
            if home is None:
                del os.environ["DATABLOX_HOME"]
            else:
                os.environ["DATABLOX_HOME"] = home

    def test_missing_block_is_a_clear_error(self):
        with self.assertRaises(loader.BlockNotFound) as caught:
            loader.load_block_class("Not-There", "1.0", [self.bloxpath.root])
        message = str(caught.exception)
        self.assertIn("`Not-There 1.0` is not installed", message)
        self.assertIn("not_there__1_0/b_not_there.py", message)

    def test_module_without_class(self):
        self.bloxpath.write_block("No-Class", "1.0", "X = 1\n")
        with self.assertRaises(loader.BlockNotFound) as caught:
            loader.load_block_class("No-Class", "1.0", [self.bloxpath.root])
        self.assertIn("defines no class `no_class`", str(caught.exception))

    def test_class_must_be_a_block(self):
        self.bloxpath.write_block("Not-Block", "1.0", "class not_block(object):\n    pass\n")
        with self.assertRaises(loader.BlockNotFound) as caught:
            loader.load_block_class("Not-Block", "1.0", [self.bloxpath.root])
        self.assertIn("not a subclass", str(caught.exception))

    def test_invalid_name(self):
        with self.assertRaises(ValueError):
            loader.load_block_class("bad_name", "1.0", [self.bloxpath.root])


if __name__ == "__main__":
    unittest.main()
