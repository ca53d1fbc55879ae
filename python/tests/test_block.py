import os
import unittest

from datablox_framework.block import Block, BlockError, ConfigError, Log, Port, declared_ports


class LogTest(unittest.TestCase):
    def test_columns_and_rows(self):
        log = Log()
        log.append_field("a", [1, 2])
        log.append_field("b", ["x", "y"])
        self.assertEqual(len(log), 2)
        self.assertEqual(list(log.iter_rows()), [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
        log.append_row({"a": 3, "b": "z"})
        self.assertEqual(log.log, {"a": [1, 2, 3], "b": ["x", "y", "z"]})
        self.assertEqual(log.fields(), ["a", "b"])

    def test_rows_must_match_fields(self):
        log = Log.from_rows([{"a": 1}])
        with self.assertRaises(BlockError):
            log.append_row({"b": 2})
        with self.assertRaises(BlockError):
            log.append_field("c", [1, 2])
        with self.assertRaises(BlockError):
            log.append_field("a", [1])

    def test_empty_and_copy(self):
        self.assertEqual(len(Log()), 0)
        original = Log({"a": [1]})
        duplicate = original.copy()
        duplicate.log["a"].append(2)
        self.assertEqual(original.log["a"], [1])


class Source(Block):
    def on_load(self, config):
        self.add_output("output", ["value"])
        self.count = self.config_value(config, "count", kind=int)


class BlockTest(unittest.TestCase):
    def test_ports_and_push(self):
        pushed = []
        block = Source("s")
        block.on_load({"count": 1})
        block.set_emitter(lambda b, port, log: pushed.append((b.id, port, log)))
        block.push("output", Log({"value": [1]}))
        block.push("output", Log())  # empty logs are dropped
        self.assertEqual(pushed, [("s", "output", Log({"value": [1]}))])
        self.assertEqual(list(block.output_ports()), ["output"])
        self.assertEqual(block.input_ports(), {})

    def test_push_errors(self):
        block = Source("s")
        block.on_load({"count": 1})
        with self.assertRaises(BlockError):
            block.push("nope", Log({"value": [1]}))
        with self.assertRaises(BlockError):
            block.push("output", Log({"other": [1]}))
        with self.assertRaises(BlockError):
            block.push("output", {"value": [1]})
        with self.assertRaises(BlockError):
            block.add_output("output", [])

    def test_unconnected_push_goes_nowhere(self):
        block = Source("s")
        block.on_load({"count": 1})
        block.push("output", Log({"value": [1]}))

    def test_config_errors_name_block_and_field(self):
        with self.assertRaises(ConfigError) as caught:
            Source("src").on_load({})
        self.assertIn("`src`", str(caught.exception))
        self.assertIn("`count`", str(caught.exception))
        with self.assertRaises(ConfigError):
            Source("src").on_load({"count": "three"})

    def test_only_push_ports(self):
        with self.assertRaises(BlockError):
            Port("p", Port.INPUT, [], kind="pull")
        with self.assertRaises(BlockError):
            Port("p", "sideways", [])

    def test_base_recv_push_explains(self):
        with self.assertRaises(BlockError):
            Block("b").recv_push("input", Log())


class DeclaredArgsTest(unittest.TestCase):
    class Writer(Block):
        ARGS = ("field", "path")

        def on_load(self, config):
            self.field = self.config_value(config, "field", "text")

    def test_a_key_outside_args_is_refused_before_on_load_with_the_closest_one(self):
        block = self.Writer("w")
        with self.assertRaises(ConfigError) as caught:
            block.configure({"feild": "text"})
        self.assertEqual(str(caught.exception),
                         "block `w`: unknown argument `feild` (did you mean `field`?) (its arguments: field, path)")
        self.assertFalse(hasattr(block, "field"))
        block.configure({"field": "body"})
        self.assertEqual(block.field, "body")

    def test_undeclared_args_take_any_key(self):
        class Free(Block):
            def on_load(self, config):
                self.config = config
        block = Free("f")
        block.configure({"anything": 1})
        self.assertEqual(block.config, {"anything": 1})

    def test_a_port_typo_names_the_closest_port(self):
        block = Block("b")
        block.add_input("input", [])
        with self.assertRaises(BlockError) as caught:
            block.port("inptu", Port.INPUT)
        self.assertIn("has no port `inptu` (did you mean `input`? its ports: input)", str(caught.exception))


class DeclaredPortsTest(unittest.TestCase):
    SOURCE = b'''from datablox_framework.block import Block


class upper(Block):
    ARGS = ()
    INPUTS = ("input",)
    OUTPUTS = ("output", "totals")

    def on_load(self, config):
        self.add_input("input", ["text"])
        self.add_output("output", ["text"])
        self.add_output("totals", ["count"])
'''

    def test_ports_are_read_from_the_source_without_running_it(self):
        self.assertEqual(declared_ports(self.SOURCE, "upper"), {"input": ["input"], "output": ["output", "totals"]})
        # Another class of the module, or a block without declarations: nothing declared.
        self.assertIsNone(declared_ports(self.SOURCE, "lower"))
        self.assertIsNone(declared_ports(b"class upper(object):\n    ARGS = ()\n", "upper"))
        # A sink declares INPUTS only: no output port.
        self.assertEqual(declared_ports(b"class sink(object):\n    INPUTS = ['input']\n", "sink"),
                         {"input": ["input"], "output": []})

    def test_a_declaration_that_is_not_written_out_is_refused_with_its_line(self):
        source = b"NAMES = ('input',)\n\nclass upper(object):\n    INPUTS = NAMES\n"
        with self.assertRaises(ValueError) as caught:
            declared_ports(source, "upper", "b_upper.py")
        self.assertIn("b_upper.py:4: `INPUTS` of block class `upper` must be a tuple of port names written out",
                      str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            declared_ports(b"class upper(:\n", "upper", "b_upper.py")
        self.assertIn("b_upper.py:1: not a Python module", str(caught.exception))

    def test_configure_refuses_ports_that_differ_from_the_declaration(self):
        namespace = {}
        exec(compile(self.SOURCE, "b_upper.py", "exec"), namespace)
        upper = namespace["upper"]
        upper("u").configure({})

        class Drifted(upper):
            OUTPUTS = ("output",)
        with self.assertRaises(BlockError) as caught:
            Drifted("u").configure({})
        self.assertEqual(str(caught.exception),
                         "block `u`: on_load adds the output port(s) output, totals but `OUTPUTS` declares output "
                         "(help: make them agree; placement checks connections against `OUTPUTS`)")

    def test_every_block_of_the_repository_declares_its_ports(self):
        blox = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "blox")
        for directory in sorted(os.listdir(blox)):
            module = directory.partition("__")[0]
            with open(os.path.join(blox, directory, "b_{}.py".format(module)), "rb") as handle:
                self.assertIsNotNone(declared_ports(handle.read(), module), directory)


if __name__ == "__main__":
    unittest.main()
