import unittest

from datablox_framework.block import Block, BlockError, Log
from datablox_framework.testing import Recorder, as_log, run_block


class Echo(Block):
    def on_load(self, config):
        self.add_input("input", ["x"])
        self.add_output("output", None)
        self.events = ["load"]

    def on_start(self):
        self.events.append("start")

    def recv_push(self, port, log):
        self.push_rows("output", list(log.iter_rows()) + [{"y": 1}], batch_size=1)

    def on_shutdown(self):
        self.events.append("shutdown")


class TestingHelpersTest(unittest.TestCase):
    def test_run_block_life_cycle_and_outputs(self):
        block, pushed = run_block(Echo, {}, [("input", [{"x": 1}, {"x": 2}])])
        self.assertEqual(block.events, ["load", "start", "shutdown"])
        self.assertEqual(pushed["output"], [{"x": 1}, {"x": 2}, {"y": 1}])

    def test_run_block_checks_input_ports(self):
        with self.assertRaises(BlockError):
            run_block(Echo, {}, [("output", [{"x": 1}])])

    def test_as_log(self):
        self.assertEqual(as_log({"a": [1]}), Log({"a": [1]}))
        self.assertEqual(as_log([{"a": 1}]), Log({"a": [1]}))
        log = Log({"a": [1]})
        self.assertIs(as_log(log), log)

    def test_recorder(self):
        block, _ = run_block(Recorder, {}, [("input", {"a": [1, 2]}), ("input", {"b": [3]})])
        self.assertEqual((block.rows, block.batches), ([{"a": 1}, {"a": 2}, {"b": 3}], 2))


if __name__ == "__main__":
    unittest.main()
