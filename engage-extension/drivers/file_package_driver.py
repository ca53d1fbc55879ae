"""Engage driver of a data file shipped in `sw_packages` (a `File`/`FilePackage` package).

The file is copied to `<genforma_home>/data/<file name>`. The resource's definition gives that path
as the config property `path` (default `${input_ports.host.genforma_home}/data/<file name>`), so
the path is part of the resource's metadata, and `is_installed` needs no package.
Input port: `host.genforma_home`.

Valid Python 2.7 (Engage loads drivers with it) and Python 3.
"""
import os
import shutil

import engage.drivers.resource_manager as resource_manager
from engage.drivers.action import Context, check_installable_to_dir, ensure_dir_exists, make_action
from engage.utils.log_setup import setup_engage_logger
from engage.utils.user_error import EngageErrInf, UserError

try:
    text_type = unicode  # noqa: F821 (Python 2: JSON strings are unicode)
except NameError:
    text_type = str

logger = setup_engage_logger(__name__)

ERR_PATH_NOT_IN_DATA = 1
ERR_NO_FILE = 2
ERR_NOT_INSTALLED = 3

errors = {
    ERR_PATH_NOT_IN_DATA: EngageErrInf(
        __name__, ERR_PATH_NOT_IN_DATA,
        "resource %(id)s: config property path is %(path)s, expected a file directly in %(data_dir)s"),
    ERR_NO_FILE: EngageErrInf(
        __name__, ERR_NO_FILE,
        "resource %(id)s: package file %(file)s does not exist (is it in sw_packages?)"),
    ERR_NOT_INSTALLED: EngageErrInf(
        __name__, ERR_NOT_INSTALLED, "resource %(id)s: %(path)s is missing after install"),
}


def package_file(package):
    """The local path of a file package: Engage's `get_file()`, or an absolute `location`."""
    if hasattr(package, "get_file"):
        return package.get_file()
    return package.location


@make_action
def copy_file(self, source, dest):
    # Copy to a temporary name first, so a failed copy never leaves a half-written file
    # that `is_installed` would take for the real one.
    partial = dest + ".partial"
    shutil.copyfile(source, partial)
    os.rename(partial, dest)


def make_context(resource_json, dry_run=False):
    ctx = Context(resource_json, logger, __file__, dry_run=dry_run)
    ctx.check_port("input_ports.host", genforma_home=text_type)
    ctx.check_port("config_port", path=text_type)
    return ctx


class Manager(resource_manager.Manager):
    REQUIRES_ROOT_ACCESS = False

    def __init__(self, metadata, dry_run=False):
        package_name = "%s %s" % (metadata.key["name"], metadata.key["version"])
        resource_manager.Manager.__init__(self, metadata, package_name)
        self.ctx = make_context(metadata.to_json(), dry_run=dry_run)
        self.data_dir = os.path.join(self.ctx.props.input_ports.host.genforma_home, "data")
        self.path = self.ctx.props.config_port.path

    def validate_pre_install(self):
        data_dir = os.path.normpath(os.path.abspath(self.data_dir))
        if os.path.dirname(os.path.normpath(os.path.abspath(self.path))) != data_dir:
            raise UserError(errors[ERR_PATH_NOT_IN_DATA],
                            msg_args={"id": self.id, "path": self.path, "data_dir": data_dir})
        # `<home>/data` is shared by every file package (and may exist before the first one):
        # check only the file this driver creates; Engage's check_installable_to_dir refuses a
        # path that exists and needs its parent writable or creatable.
        if not self.is_installed():
            self.ctx.r(check_installable_to_dir, self.path)

    def is_installed(self):
        return os.path.isfile(self.path)

    def install(self, package):
        source = package_file(package)
        if not source or not os.path.isfile(source):
            raise UserError(errors[ERR_NO_FILE], msg_args={"id": self.id, "file": source})
        self.ctx.r(ensure_dir_exists, self.data_dir)
        self.ctx.r(copy_file, source, self.path)

    def validate_post_install(self):
        if not self.ctx.dry_run and not self.is_installed():
            raise UserError(errors[ERR_NOT_INSTALLED], msg_args={"id": self.id, "path": self.path})
