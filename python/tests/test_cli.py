"""The deployer's command line: argparse subcommands, `install` when no command is named, the
home's options before or after the command, and `--`."""

import contextlib
import io
import unittest

from datablox_deployer import cli


class ParseTest(unittest.TestCase):
    def parsed(self, *argv):
        args = cli.parse(list(argv))
        return args.command, getattr(args, "resources", None), getattr(args, "service", None), args.home, args.json

    def test_commands(self):
        self.assertEqual(self.parsed("--home", "H", "word-count@1.0", "--dry-run"),
                         ("install", ["word-count@1.0"], None, "H", False))
        self.assertEqual(self.parsed("--home", "H"), ("install", [], None, "H", False))
        self.assertEqual(self.parsed("--home", "H", "--json", "stop"), ("stop", None, None, "H", True))
        self.assertEqual(self.parsed("start", "--home", "H", "--json", "caretaker"), ("start", None, "caretaker", "H", True))
        self.assertEqual(cli.parse(["--home", "H", "run", "t.json"]).topology, "t.json")
        self.assertEqual(cli.parse(["place", "--topology", "t.json", "--nodes", "a,b"]).nodes, "a,b")

    def test_double_dash(self):
        # A command's name right after `--` (as `cargo xtask deploy` and `run` pass it), else a RESOURCE.
        self.assertEqual(self.parsed("--home", "H", "--json", "--", "start"), ("start", None, None, "H", True))
        self.assertEqual(cli.parse(["--home=H", "--", "run", "t.json"]).topology, "t.json")
        self.assertEqual(self.parsed("--home", "H", "--", "-x"), ("install", ["-x"], None, "H", False))
        self.assertEqual(self.parsed("--home", "H", "stop", "--", "x"), ("stop", None, "x", "H", False))

    def test_usage_errors_exit_2(self):
        for argv in (["word-count"], ["--home", "H", "start", "a", "b"], ["place", "--nodes", "a"]):
            with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as caught:
                cli.parse(argv)
            self.assertEqual(caught.exception.code, 2, argv)


if __name__ == "__main__":
    unittest.main()
