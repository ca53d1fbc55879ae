"""Finding the Python interpreters the checks run under: Python 3 (this one), Python 2.7, and the
other Python 3 versions the node deployer supports.

Engage loads drivers under Python 2.7, so driver code is checked with it when it is installed.
The node deployer runs on any Python 3 whose tarfile has the `data` extraction filter (3.12+,
and the 3.8-3.11 security releases), so its tests also run under every such version pyenv has.
A `python2.7` on PATH may be a pyenv shim that fails when 2.7 is not the selected version, so
every candidate is run once before it is used.
"""
import glob
import os
import shutil
import subprocess
import sys


def python3():
    return sys.executable


def _passes(candidate, check):
    """Whether `candidate -c check` runs and exits 0."""
    try:
        result = subprocess.run([candidate, "-c", check], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _is_python27(candidate):
    return _passes(candidate, "import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)")


def _pyenv(pattern):
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    return sorted(glob.glob(os.path.join(pyenv_root, "versions", pattern)), reverse=True)


def deployer_pythons():
    """{"3.X.Y": path} of the Python 3 versions pyenv has, other than this one, whose tarfile has
    the `data` extraction filter."""
    found = {}
    this = os.path.realpath(sys.executable)
    for candidate in _pyenv(os.path.join("3.*", "bin", "python3")):
        version = candidate.split(os.sep)[-3]
        if os.path.realpath(candidate) != this and _passes(candidate, "import tarfile; tarfile.data_filter"):
            found[version] = candidate
    return found


def python27():
    """The path of a working Python 2.7, or None."""
    candidates = _pyenv(os.path.join("2.7*", "bin", "python2.7"))
    on_path = shutil.which("python2.7")
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        if _is_python27(candidate):
            return candidate
    return None
