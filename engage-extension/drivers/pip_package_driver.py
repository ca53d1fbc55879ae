"""Engage driver of a third-party Python package installed by name with pip (a `PipLink` package).

The package's `location` is a requirement (`pymongo==3.12`, a URL, ...). It is installed for the
node's `python3` with `python3 -m pip install --target` into a staging directory, and its importable
entries are moved into `<genforma_home>/python`, the directory the caretaker puts on PYTHONPATH
(which is also the virtualenv Engage's bootstrap made: its `bin/`, `lib/`, ... are left alone). After a successful install a marker
`<genforma_home>/python/.datablox-installed/<name>-<version>` records the requirement;
`is_installed` looks for it, because a requirement (a URL, say) does not always tell which
`*.dist-info` directory pip will write. Input port: `host.genforma_home`.

What `install(package)` receives is Engage's package object (`engage/engine/library.py`): a
`PipLink` entry becomes a `PipPythonPackage`, which has `type` and `location` but no
`package_class` attribute; its class name (also `to_json()["package_class"]`) says what it is,
as Engage's own pip and easy_install drivers tell packages apart by class and `type`. An
`EasyInstallLink` (`EasyInstallPythonPackage`) is refused: Engage installs those with its
easy_install driver, so a library entry that names this driver declares its package as `PipLink`.
`<genforma_home>/python` is shared: the driver checks only the marker it creates.

Valid Python 2.7 (Engage loads drivers with it) and Python 3.
"""
import os
import re
import shutil
import subprocess
import tempfile

import engage.drivers.resource_manager as resource_manager
from engage.drivers.action import Context, check_installable_to_dir, ensure_dir_exists, make_action
from engage.utils.log_setup import setup_engage_logger
from engage.utils.user_error import EngageErrInf, UserError
# One PATH lookup for the extension: the driver that checks the system python3 owns it.
from engage.drivers.datablox.system_python_driver import which

try:
    text_type = unicode  # noqa: F821 (Python 2: JSON strings are unicode)
except NameError:
    text_type = str

logger = setup_engage_logger(__name__)

PYTHON = "python3"
# Engage's class for a `PipLink` package entry (`engage/engine/library.py`).
PIP_PACKAGE_CLASS = "PipPythonPackage"
# What a virtualenv (and pip's --target for scripts and data) keeps at the top of `<home>/python`:
# never moved in from pip's staging directory.
VIRTUALENV_ENTRIES = frozenset(["bin", "Scripts", "include", "lib", "lib64", "local", "share", "etc",
                                "pyvenv.cfg"])

ERR_NO_PIP = 1
ERR_PIP_FAILED = 2
ERR_WRONG_PACKAGE = 3
ERR_NOT_INSTALLED = 4

errors = {
    ERR_NO_PIP: EngageErrInf(
        __name__, ERR_NO_PIP,
        "resource %(id)s needs `%(python)s -m pip`, which does not run here: %(why)s"),
    ERR_PIP_FAILED: EngageErrInf(
        __name__, ERR_PIP_FAILED,
        "resource %(id)s: `%(command)s` failed with exit code %(code)s:\n%(output)s"),
    ERR_WRONG_PACKAGE: EngageErrInf(
        __name__, ERR_WRONG_PACKAGE,
        "resource %(id)s: this driver installs PipLink packages (Engage's PipPythonPackage), "
        "not a %(package_class)s of type %(type)s; declare the package as pip in its manifest"),
    ERR_NOT_INSTALLED: EngageErrInf(
        __name__, ERR_NOT_INSTALLED, "resource %(id)s: the install marker %(path)s is missing after install"),
}


def run(command):
    """Run a command; return (exit code, combined output as text)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.communicate()[0]
    return process.returncode, output.decode("utf-8", "replace")


def package_class_name(package):
    """What a library package is: its class name, as `to_json()["package_class"]` gives it."""
    to_json = getattr(package, "to_json", None)
    if to_json is not None:
        return to_json().get("package_class")
    return type(package).__name__


def marker_name(key):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "%s-%s" % (key["name"], key["version"]))


def remove_path(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


@make_action
def pip_install(self, requirement, target_dir):
    """Install into a fresh staging directory beside the target, then move in what Python imports.

    `<home>/python` is also the virtualenv Engage's bootstrap made (`bin/python`, `lib/`, ...):
    `pip install --target <home>/python --upgrade` would replace its `bin/` with the package's
    scripts (chardet ships `bin/chardetect`), and Engage's python driver then finds no
    `<home>/python/bin/python` for any later deployment. So pip writes into the staging directory,
    and only the importable entries (packages, modules, `*.dist-info`) move into `<home>/python`,
    each replacing an older copy of itself; the virtualenv's own entries are never touched.
    """
    staging = tempfile.mkdtemp(prefix=".pip-", dir=target_dir)
    try:
        # `--`: the requirement is never read as an option.
        command = [PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                   "--target", staging, "--", requirement]
        code, output = run(command)
        if code != 0:
            # The last lines of pip's output say what went wrong; the rest is progress.
            tail = "\n".join(output.strip().splitlines()[-20:])
            raise UserError(errors[ERR_PIP_FAILED],
                            msg_args={"id": self.ctx.props.id, "command": " ".join(command),
                                      "code": code, "output": tail})
        for name in sorted(os.listdir(staging)):
            if name in VIRTUALENV_ENTRIES or name.startswith("."):
                continue
            destination = os.path.join(target_dir, name)
            if os.path.lexists(destination):
                remove_path(destination)
            os.rename(os.path.join(staging, name), destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@make_action
def write_marker(self, marker_path, requirement):
    directory = os.path.dirname(marker_path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    with open(marker_path, "w") as marker:
        marker.write(requirement + "\n")


def make_context(resource_json, dry_run=False):
    ctx = Context(resource_json, logger, __file__, dry_run=dry_run)
    ctx.check_port("input_ports.host", genforma_home=text_type)
    return ctx


class Manager(resource_manager.Manager):
    REQUIRES_ROOT_ACCESS = False

    def __init__(self, metadata, dry_run=False):
        package_name = "%s %s" % (metadata.key["name"], metadata.key["version"])
        resource_manager.Manager.__init__(self, metadata, package_name)
        self.ctx = make_context(metadata.to_json(), dry_run=dry_run)
        self.python_dir = os.path.join(self.ctx.props.input_ports.host.genforma_home, "python")
        self.marker = os.path.join(self.python_dir, ".datablox-installed", marker_name(metadata.key))

    def validate_pre_install(self):
        if which(PYTHON) is None:
            raise UserError(errors[ERR_NO_PIP],
                            msg_args={"id": self.id, "python": PYTHON, "why": "%s is not on PATH" % PYTHON})
        code, output = run([PYTHON, "-m", "pip", "--version"])
        if code != 0:
            raise UserError(errors[ERR_NO_PIP],
                            msg_args={"id": self.id, "python": PYTHON, "why": output.strip()})
        # `<home>/python` exists on every node Engage bootstraps, and Engage's
        # check_installable_to_dir refuses a path that exists: check only the marker this driver
        # creates (its parent writable or creatable, the marker absent).
        if not self.is_installed():
            self.ctx.r(check_installable_to_dir, self.marker)

    def is_installed(self):
        return os.path.isfile(self.marker)

    def install(self, package):
        package_class = package_class_name(package)
        if getattr(package, "type", None) != "Reference" or package_class != PIP_PACKAGE_CLASS:
            raise UserError(errors[ERR_WRONG_PACKAGE],
                            msg_args={"id": self.id, "type": getattr(package, "type", None),
                                      "package_class": package_class})
        self.ctx.r(ensure_dir_exists, self.python_dir)
        self.ctx.r(pip_install, package.location, self.python_dir)
        self.ctx.r(write_marker, self.marker, package.location)

    def validate_post_install(self):
        if not self.ctx.dry_run and not self.is_installed():
            raise UserError(errors[ERR_NOT_INSTALLED], msg_args={"id": self.id, "path": self.marker})
