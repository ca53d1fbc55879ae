#!/usr/bin/env python3
"""Installs the pinned tools of ci/requirements-NAME.txt into a virtual environment (default:
target/tools/NAME/) and prints the directory of its executables.

Usage: tools.py NAME [--dir DIR] [--requirements FILE]

  ansible   ansible-core, for the Ansible test (xtask/tests/ansible.rs)
  release   the outside verifiers of the release test (xtask/tests/release.rs): securesystemslib
            (DSSE), in-toto-attestation (the statement model), check-jsonschema and zizmor (the
            workflows)

The tests run it once per test process; it is the only step of `cargo test` that downloads
anything: the wheels named in the requirements file, from the package index pip is configured
with (PyPI by default), every one checked against its SHA-256 (`--require-hashes`, wheels only,
no pip cache written). An environment already installed from the same requirements (same digest,
same interpreter) is reused; concurrent runs wait on a lock (`DIR.lock`), so one installs and the
others reuse. A failed install removes what it wrote and exits 1 with pip's output and what to do.
"""
import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

CI_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(CI_DIR)
MARKER = ".datablox-requirements"
# What each set installs, and the command that must then run: its first line of output is reported.
CHECKS = {
    "ansible": ["ansible-playbook", "--version"],
    "release": ["zizmor", "--version"],
}


def fingerprint(requirements):
    """What the environment was made from: the requirements' bytes and the interpreter."""
    with open(requirements, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    return "requirements-sha256 {}\npython {} {}\n".format(digest, os.path.realpath(sys.executable),
                                                         sys.version.split()[0])


def installed(directory, expected, check):
    try:
        with open(os.path.join(directory, MARKER)) as handle:
            recorded = handle.read()
    except OSError:
        return False
    return recorded == expected and os.access(os.path.join(directory, "bin", check[0]), os.X_OK)


def run(command, what, env=None):
    process = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                             env=env)
    if process.returncode != 0:
        raise SystemExit("error: {} failed (exit code {}): {}\n{}".format(
            what, process.returncode, " ".join(command), process.stdout.rstrip()))
    return process.stdout


def install(directory, requirements, expected, check):
    if os.path.lexists(directory):
        shutil.rmtree(directory)
    try:
        run([sys.executable, "-m", "venv", directory], "creating the virtual environment")
        python = os.path.join(directory, "bin", "python")
        # No pip cache: nothing is written outside the environment (the user's ~/.cache stays as it was).
        run([python, "-m", "pip", "install", "--no-deps", "--require-hashes", "--only-binary", ":all:",
             "--no-cache-dir", "--disable-pip-version-check", "--retries", "2", "-r", requirements],
            "installing {}".format(requirements))
        # ansible writes ~/.ansible/tmp even for --version unless told otherwise.
        scratch = tempfile.mkdtemp(prefix="tools-version-")
        try:
            version = run([os.path.join(directory, "bin", check[0])] + check[1:], " ".join(check),
                          env=dict(os.environ, ANSIBLE_HOME=scratch, ANSIBLE_LOCAL_TEMP=os.path.join(scratch, "tmp")))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        with open(os.path.join(directory, MARKER + ".tmp"), "w") as handle:
            handle.write(expected)
        os.replace(os.path.join(directory, MARKER + ".tmp"), os.path.join(directory, MARKER))
        sys.stderr.write("installed {} into {}\n".format(version.splitlines()[0], directory))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(CHECKS), help="which tools")
    parser.add_argument("--dir", help="the virtual environment (default: target/tools/NAME)")
    parser.add_argument("--requirements", help="the pinned requirements (default: ci/requirements-NAME.txt)")
    args = parser.parse_args(argv)
    check = CHECKS[args.name]
    directory = os.path.abspath(args.dir or os.path.join(REPO_DIR, "target", "tools", args.name))
    requirements = os.path.abspath(args.requirements or os.path.join(CI_DIR, "requirements-{}.txt".format(args.name)))
    expected = fingerprint(requirements)
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    with open(directory + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed(directory, expected, check):
            try:
                install(directory, requirements, expected, check)
            except SystemExit as error:
                sys.stderr.write("{}\nhelp: the tests install the {} tools from the package index "
                                 "(PyPI, or the index pip is configured with): check that it is reachable; "
                                 "the hashes pinned in {} are those of the wheels for CPython 3.11 on x86_64 "
                                 "Linux (its header says how to pin others)\n".format(error.code, args.name, requirements))
                return 1
    sys.stdout.write(os.path.join(directory, "bin") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
