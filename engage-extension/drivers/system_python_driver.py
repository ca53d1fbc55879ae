"""Engage driver of the system `python3`, which Datablox runs on but does not install.

The resource's package is a `DummyPackage`: installing does nothing, and the resource counts as
installed when `python3` is on PATH and is a Python the node deployer supports: one whose
tarfile has the `data` extraction filter (PEP 706), which the deployer extracts archives with
(CPython 3.12 and newer, 3.11.4+, 3.10.12+, 3.9.17+, 3.8.17+). Engage's own `python` resource
stops at 2.7, so the extension defines this one for the interpreter the caretaker and blocks
run with.

Valid Python 2.7 (Engage loads drivers with it) and Python 3.
"""
import os
import subprocess

import engage.drivers.resource_manager as resource_manager
from engage.utils.log_setup import setup_engage_logger
from engage.utils.user_error import EngageErrInf, UserError

logger = setup_engage_logger(__name__)

PYTHON = "python3"
# The interpreters whose tarfile has the `data` filter: the deployer's `safetar.SUPPORTED`.
SUPPORTED = "CPython 3.12 or newer, 3.11.4+, 3.10.12+, 3.9.17+ or 3.8.17+"
CHECK = "import tarfile; tarfile.data_filter"

ERR_NO_PYTHON = 1
ERR_UNSUPPORTED_PYTHON = 2

errors = {
    ERR_NO_PYTHON: EngageErrInf(
        __name__, ERR_NO_PYTHON,
        "resource %(id)s: `%(python)s` is not on PATH; install Python 3 with the system's package "
        "manager, then deploy again"),
    ERR_UNSUPPORTED_PYTHON: EngageErrInf(
        __name__, ERR_UNSUPPORTED_PYTHON,
        "resource %(id)s: `%(python)s` (%(path)s) has no tarfile extraction filters (PEP 706), which "
        "the node deployer extracts archives with; install %(supported)s as `%(python)s`, then deploy "
        "again"),
}


def which(program):
    """The path of `program` on PATH, or None (shutil.which is not in Python 2.7)."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class Manager(resource_manager.Manager):
    REQUIRES_ROOT_ACCESS = False

    def __init__(self, metadata, dry_run=False):
        package_name = "%s %s" % (metadata.key["name"], metadata.key["version"])
        resource_manager.Manager.__init__(self, metadata, package_name)
        self.dry_run = dry_run

    def _problem(self):
        """None, or the UserError that says why `python3` will not do."""
        path = which(PYTHON)
        if path is None:
            return UserError(errors[ERR_NO_PYTHON], msg_args={"id": self.id, "python": PYTHON})
        with open(os.devnull, "wb") as devnull:
            try:
                supported = subprocess.call([path, "-c", CHECK], stdout=devnull, stderr=devnull) == 0
            except OSError:
                supported = False
        if not supported:
            return UserError(errors[ERR_UNSUPPORTED_PYTHON], msg_args={
                "id": self.id, "python": PYTHON, "path": path, "supported": SUPPORTED})
        return None

    def _check(self):
        problem = self._problem()
        if problem is not None:
            raise problem

    def validate_pre_install(self):
        self._check()

    def is_installed(self):
        return self._problem() is None

    def install(self, package):
        # The package is a DummyPackage: the system provides python3; say so clearly if it does not.
        self._check()

    def validate_post_install(self):
        self._check()
