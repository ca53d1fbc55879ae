"""Engage driver of a Python package shipped as an archive (the framework, the adapter).

The archive (e.g. `datablox_framework.tgz`) holds one top-level directory, the Python package
itself. It is installed as `<genforma_home>/python/<package>`, where `<package>` is the mangled key
name (`datablox-framework` -> `datablox_framework`), so that `is_installed` can answer without the
archive. `<genforma_home>/python` itself is shared: Engage's bootstrap creates it, so the driver
checks and creates only its own package directory in it. Input port: `host.genforma_home`.

Valid Python 2.7 (Engage loads drivers with it) and Python 3.
"""
import os
import re
import shutil
import tempfile

import engage.drivers.resource_manager as resource_manager
from engage.drivers.action import Context, check_installable_to_dir, ensure_dir_exists, make_action
from engage.utils.log_setup import setup_engage_logger
from engage.utils.user_error import EngageErrInf, UserError

try:
    text_type = unicode  # noqa: F821 (Python 2: JSON strings are unicode)
except NameError:
    text_type = str

logger = setup_engage_logger(__name__)

ERR_WRONG_TOP_DIR = 1
ERR_NOT_INSTALLED = 2

errors = {
    ERR_WRONG_TOP_DIR: EngageErrInf(
        __name__, ERR_WRONG_TOP_DIR,
        "resource %(id)s: archive's top-level directory is %(found)s, expected %(expected)s "
        "(the Python package must be named after the resource)"),
    ERR_NOT_INSTALLED: EngageErrInf(
        __name__, ERR_NOT_INSTALLED,
        "resource %(id)s: %(path)s is missing after install"),
}


def package_dir_name(key_name):
    """The Python package name of a resource: lower-case, `-` and `.` become `_`, no spaces."""
    return re.sub("[.-]", "_", key_name.lower().replace(" ", ""))


@make_action
def extract_python_package(self, package, python_dir, expected_name):
    """Extract into a staging directory, check the package name, then move it into place.

    Renaming a wrongly named top directory would change the package's import name, so a mismatch
    is an error rather than something to fix up.
    """
    staging = tempfile.mkdtemp(prefix=".install-", dir=python_dir)
    try:
        top_dir = package.extract(staging)
        if top_dir != expected_name:
            raise UserError(errors[ERR_WRONG_TOP_DIR],
                            msg_args={"id": self.ctx.props.id, "found": top_dir, "expected": expected_name})
        os.rename(os.path.join(staging, top_dir), os.path.join(python_dir, expected_name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
        self.package_name_on_disk = package_dir_name(metadata.key["name"])
        self.package_dir = os.path.join(self.python_dir, self.package_name_on_disk)

    def validate_pre_install(self):
        # `<home>/python` is shared (Engage's bootstrap makes it, other packages install there), and
        # Engage's check_installable_to_dir refuses a directory that exists: check only the
        # package directory this driver creates.
        if not self.is_installed():
            self.ctx.r(check_installable_to_dir, self.package_dir)

    def is_installed(self):
        return os.path.isdir(self.package_dir)

    def install(self, package):
        self.ctx.r(ensure_dir_exists, self.python_dir)
        self.ctx.r(extract_python_package, package, self.python_dir, self.package_name_on_disk)

    def validate_post_install(self):
        init_file = os.path.join(self.package_dir, "__init__.py")
        if not self.ctx.dry_run and not os.path.isfile(init_file):
            raise UserError(errors[ERR_NOT_INSTALLED], msg_args={"id": self.id, "path": init_file})
