#!/usr/bin/env python3
"""Runs every Python test of the repository and ends with `N passed, N failed[, N skipped]`.

Usage: python_tests.py [-v]   (from any directory; paths are relative to the repository root)

Suites, each in a subprocess so that their `sys.path`s and imported modules stay apart:
  blocks           python3, PYTHONPATH=python:blox, unittest discover -s blox -t blox -p 'test_*.py'
  framework        python3, PYTHONPATH=python, unittest discover -s python/tests -t python/tests
  archives         python/tests/test_safetar.py again under each other Python 3 pyenv has that
                   the node deployer supports (its tarfile has the `data` filter)
  drivers          python3 and python2.7, the Engage stub on PYTHONPATH, engage-extension/tests
  ci               python3, ci/test_*.py (the extension checker)
  compile          py_compile of engage-extension/ (and the ci helpers run beside drivers or
                   inside Engage) under python2.7 and python3, of blox/, python/ and ci/ under python3
A suite whose directory does not exist yet is reported and skipped. Exits 1 on any failure or
error, or if no test ran at all. With -v, prints every suite's output, not only failing ones.
"""
import json
import os
import subprocess
import sys
import tempfile

CI_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(CI_DIR)
sys.path.insert(0, CI_DIR)

import interpreters  # noqa: E402

COUNTS_PREFIX = "@@counts "
SKIP_DIRS = {"__pycache__", ".git", "target", "node_modules"}
# Compiles files named on stdin (JSON) to a throw-away directory, so no .pyc lands in the repo.
COMPILE_SCRIPT = r'''
import json, os, py_compile, sys, tempfile
files = json.loads(sys.stdin.read())
out = tempfile.mkdtemp()
failed = 0
for index, path in enumerate(files):
    try:
        py_compile.compile(path, cfile=os.path.join(out, "%d.pyc" % index), doraise=True)
    except py_compile.PyCompileError as error:
        failed += 1
        sys.stdout.write("FAIL: %s\n%s\n" % (path, error.msg))
sys.stdout.write("@@counts %s\n" % json.dumps({"run": len(files), "failures": failed, "errors": 0,
                                               "skipped": 0, "unexpected_successes": 0}))
'''


def repo(*parts):
    return os.path.join(REPO_DIR, *parts)


def python_files(*top_dirs):
    found = []
    for top in top_dirs:
        for directory, dirnames, filenames in os.walk(repo(top)):
            dirnames[:] = sorted(name for name in dirnames if name not in SKIP_DIRS)
            found.extend(os.path.join(directory, name) for name in sorted(filenames) if name.endswith(".py"))
    return found


class Totals:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def add(self, counts):
        failed = counts["failures"] + counts["errors"] + counts["unexpected_successes"]
        self.failed += failed
        self.skipped += counts["skipped"]
        self.passed += counts["run"] - failed - counts["skipped"]


def run_suite(totals, label, command, pythonpath, verbose, stdin_text=None):
    """Run one suite; add its counts; a suite that crashes before counting counts as one failure."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    process = subprocess.run(command, input=stdin_text, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, cwd=REPO_DIR, env=env)
    lines = process.stdout.splitlines()
    counts_lines = [line for line in lines if line.startswith(COUNTS_PREFIX)]
    output = "\n".join(line for line in lines if not line.startswith(COUNTS_PREFIX))
    if not counts_lines:
        totals.add({"run": 1, "failures": 1, "errors": 0, "skipped": 0, "unexpected_successes": 0})
        print("%s: FAILED: the suite ended (exit code %d) without reporting counts" % (label, process.returncode))
        print(output)
        return
    counts = json.loads(counts_lines[-1][len(COUNTS_PREFIX):])
    before = (totals.passed, totals.failed, totals.skipped)
    totals.add(counts)
    passed, failed, skipped = (now - then for now, then in zip((totals.passed, totals.failed, totals.skipped), before))
    status = "ok" if failed == 0 else "FAILED"
    print("%s: %s: %d passed, %d failed%s" % (label, status, passed, failed, ", %d skipped" % skipped if skipped else ""))
    if verbose or failed:
        print(output)


def main(argv):
    verbose = "-v" in argv[1:]
    totals = Totals()
    python3 = interpreters.python3()
    python27 = interpreters.python27()
    if python27 is None:
        print("notice: no Python 2.7 found (pyenv or PATH): driver tests and compiles run under python3 only")
    counts_runner = os.path.join(CI_DIR, "unittest_counts.py")

    def discover(label, python, start, top, pattern, pythonpath):
        if not os.path.isdir(repo(start)):
            print("%s: skipped: %s does not exist yet" % (label, start))
            return
        run_suite(totals, label, [python, counts_runner, repo(start), repo(top), pattern],
                  [repo(path) for path in pythonpath], verbose)

    discover("blocks (python3)", python3, "blox", "blox", "test_*.py", ["python", "blox"])
    discover("framework (python3)", python3, "python/tests", "python/tests", "test_*.py", ["python"])
    # Archive extraction leans on each version's tarfile: its tests run under every one supported.
    for version, python in sorted(interpreters.deployer_pythons().items(),
                                  key=lambda item: [int(n) for n in item[0].split(".")]):
        discover("archives (python %s)" % version, python, "python/tests", "python/tests", "test_safetar.py",
                 ["python"])
    stub = os.path.join("engage-extension", "tests", "engage_stub")
    for name, python in (("python3", python3), ("python2.7", python27)):
        if python:
            discover("drivers (%s)" % name, python, "engage-extension/tests", "engage-extension/tests",
                     "test_*.py", [stub])
    discover("ci (python3)", python3, "ci", "ci", "test_*.py", [])

    # Driver code and the helpers that run beside it must be valid Python 2.7 as well as 3, and so
    # must what ci/engage-real.sh runs inside Engage's Python 2.7 environment.
    probe = os.path.join(CI_DIR, "engage_rules", "driver_probe.py")
    in_engage = python_files(os.path.join("ci", "engage_real", "engage_utils"))
    in_engage.append(os.path.join(CI_DIR, "engage_real", "read_installer_config.py"))
    both = python_files("engage-extension") + [probe, counts_runner] + in_engage
    python3_only = python_files("blox", "python", "ci")
    compiles = [("python3", python3, sorted(set(both + python3_only)))]
    if python27:
        compiles.append(("python2.7", python27, both))
    for name, python, files in compiles:
        run_suite(totals, "compile (%s)" % name, [python, "-c", COMPILE_SCRIPT], [], verbose,
                  stdin_text=json.dumps(files))

    line = "%d passed, %d failed" % (totals.passed, totals.failed)
    if totals.skipped:
        line += ", %d skipped" % totals.skipped
    print(line)
    if totals.failed or totals.passed + totals.failed == 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
