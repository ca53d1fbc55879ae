"""Runs one unittest discovery and ends with a machine-readable count line (Python 2.7 and 3).

Usage: unittest_counts.py START_DIR TOP_DIR PATTERN
The last line of stdout is `@@counts {"run": N, "failures": N, "errors": N, "skipped": N,
"unexpected_successes": N}`; `python_tests.py` reads it instead of parsing unittest's text.
"""
import json
import sys
import unittest


def main(argv):
    start_dir, top_dir, pattern = argv[1], argv[2], argv[3]
    suite = unittest.TestLoader().discover(start_dir, pattern=pattern, top_level_dir=top_dir)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
    counts = {"run": result.testsRun, "failures": len(result.failures), "errors": len(result.errors),
              "skipped": len(result.skipped),
              "unexpected_successes": len(getattr(result, "unexpectedSuccesses", []))}
    sys.stdout.write("@@counts %s\n" % json.dumps(counts))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
