"""Finding the Python interpreters the checks run under: Python 3 (this one) and Python 2.7.

Engage loads drivers under Python 2.7, so driver code is checked with it when it is installed.
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


def _is_python27(candidate):
    try:
        result = subprocess.run(
            [candidate, "-c", "import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def python27():
    """The path of a working Python 2.7, or None."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(os.path.join(pyenv_root, "versions", "2.7*", "bin", "python2.7")), reverse=True)
    on_path = shutil.which("python2.7")
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        if _is_python27(candidate):
            return candidate
    return None
