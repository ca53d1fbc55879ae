import unittest

from datablox_framework.block import Block, BlockError, Log
from datablox_framework.runtime import Graph, GraphError, run_pipeline

from helpers import TempBloxpath


class Numbers(Block):
    def on_load(self, config):
        self.add_output("output", ["value"])
        self.values = config.get("values", [1, 2, 3])

    def on_start(self):
        for value in self.values:
            self.push("output", Log({"value": [value]}))
        self.shutdown()


class Collect(Block):
    def on_load(self, config):
        self.add_input("input", ["value"])
        self.add_output("output", ["total"])
        self.values = []
        self.events = []

    def recv_push(self, port, log):
        self.values.extend(log["value"])
        log.log["value"][0] = "mutated"  # must not leak to other receivers

    def on_shutdown(self):
        self.events.append("shutdown")
        self.push("output", Log({"total": [sum(v for v in self.values if v != "mutated")]}))


class NeedsName(Block):
    def on_load(self, config):
        self.add_input("input", ["name"])


class Graphs(unittest.TestCase):
    def setUp(self):
        self.bloxpath = TempBloxpath()

    def tearDown(self):
        self.bloxpath.close()

    def test_fan_out_gets_separate_copies(self):
        graph = Graph()
        graph.add_block("numbers", Numbers)
        graph.add_block("first", Collect)
        graph.add_block("second", Collect)
        graph.add_block("totals", Collect)
        graph.connect("numbers", "output", "first", "input")
        graph.connect("numbers", "output", "second", "input")
        graph.run()
        self.assertEqual(graph.blocks["first"].values, [1, 2, 3])
        self.assertEqual(graph.blocks["second"].values, [1, 2, 3])
        self.assertTrue(graph.blocks["numbers"].finished)
        self.assertEqual(graph.delivered, 6)

    def test_shutdown_order_is_topological(self):
        class Totals(Block):
            def on_load(self, config):
                self.add_input("input", ["total"])
                self.totals = []

            def recv_push(self, port, log):
                self.totals.extend(log["total"])

        graph = Graph()
        graph.add_block("totals", Totals)  # added first, yet shut down last
        graph.add_block("numbers", Numbers, {"values": [5, 6]})
        graph.add_block("collect", Collect)
        graph.connect("numbers", "output", "collect", "input")
        graph.connect("collect", "output", "totals", "input")
        self.assertEqual(graph.topological_order(), ["numbers", "collect", "totals"])
        graph.run()
        self.assertEqual(graph.blocks["totals"].totals, [11])

    def test_loads_blocks_from_bloxpath(self):
        self.bloxpath.write_block("Run-Doubler", "1.0")
        graph = Graph([self.bloxpath.root])
        graph.add_block("numbers", Numbers)
        graph.add("double", "Run-Doubler", "1.0", {"factor": 10})
        graph.add_block("collect", Collect)
        graph.connect("numbers", "output", "double", "input")
        graph.connect("double", "output", "collect", "input")
        graph.run()
        self.assertEqual(graph.blocks["collect"].values, [10, 20, 30])

    def test_run_pipeline(self):
        self.bloxpath.write_block("Pipe-Doubler", "1.0")
        graph = run_pipeline([("a", "Pipe-Doubler", "1.0", {}), ("b", "Pipe-Doubler", "1.0", {"factor": 5})],
                             bloxpath=[self.bloxpath.root])
        self.assertEqual(list(graph.blocks), ["a", "b"])
        self.assertEqual(len(graph.connections), 1)

    def test_connect_checks_ports_and_fields(self):
        graph = Graph()
        graph.add_block("numbers", Numbers)
        graph.add_block("collect", Collect)
        graph.add_block("needs", NeedsName)
        with self.assertRaises(GraphError):
            graph.connect("numbers", "output", "nobody", "input")
        with self.assertRaises(GraphError):
            graph.connect("numbers", "nope", "collect", "input")
        with self.assertRaises(GraphError):
            graph.connect("collect", "input", "numbers", "output")
        with self.assertRaises(GraphError) as caught:
            graph.connect("numbers", "output", "needs", "input")
        self.assertIn("lacks field(s) name", str(caught.exception))
        with self.assertRaises(GraphError):
            graph.add_block("numbers", Numbers)

    def test_cycle_is_rejected(self):
        class Relay(Block):
            def on_load(self, config):
                self.add_input("input", [])
                self.add_output("output", None)

        graph = Graph()
        graph.add_block("a", Relay)
        graph.add_block("b", Relay)
        graph.connect("a", "output", "b", "input")
        graph.connect("b", "output", "a", "input")
        with self.assertRaises(GraphError) as caught:
            graph.run()
        self.assertIn("cycle", str(caught.exception))

    def test_delivery_checks_fields_of_untyped_outputs(self):
        class Untyped(Block):
            def on_load(self, config):
                self.add_output("output", None)

            def on_start(self):
                self.push("output", Log({"other": [1]}))

        graph = Graph()
        graph.add_block("u", Untyped)
        graph.add_block("c", Collect)
        graph.connect("u", "output", "c", "input")
        with self.assertRaises(BlockError) as caught:
            graph.run()
        self.assertIn("without field(s) value", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
