"""The shared Engage driver of Datablox blocks.

A block's own `driver.py` re-exports `Manager` from here and adds `get_packages_filename()`.
The block's resource definition provides `input_ports.datablox_framework.BLOXPATH` (the node's
block directory) and `output_ports.block_info.home` (`<BLOXPATH>/<blockdir>`); the block's only
package is its archive `<blockdir>.tgz`, which holds the block directory itself.

Valid Python 2.7 (Engage loads drivers with it) and Python 3.
"""
import os

import engage.drivers.resource_manager as resource_manager
from engage.drivers.action import (Context, check_dir_exists, check_installable_to_dir,
                                   ensure_dir_exists, extract_package_as_dir, make_action)
from engage.utils.log_setup import setup_engage_logger
from engage.utils.user_error import EngageErrInf, UserError

try:
    text_type = unicode  # noqa: F821 (Python 2: JSON strings are unicode)
except NameError:
    text_type = str

logger = setup_engage_logger(__name__)

ERR_HOME_NOT_IN_BLOXPATH = 1
ERR_BLOCK_INCOMPLETE = 2

errors = {
    ERR_HOME_NOT_IN_BLOXPATH: EngageErrInf(
        __name__, ERR_HOME_NOT_IN_BLOXPATH,
        "block %(id)s: its home %(home)s is not directly inside BLOXPATH %(bloxpath)s; "
        "the block's output port block_info.home must be ${input_ports.datablox_framework.BLOXPATH}/<blockdir>"),
    ERR_BLOCK_INCOMPLETE: EngageErrInf(
        __name__, ERR_BLOCK_INCOMPLETE,
        "block %(id)s: %(path)s is missing after install; the archive does not hold a block directory"),
}


def home_is_in_bloxpath(home, bloxpath):
    """True if `home` is a direct child of `bloxpath` (paths compared after normalisation)."""
    home = os.path.normpath(os.path.abspath(home))
    bloxpath = os.path.normpath(os.path.abspath(bloxpath))
    return os.path.dirname(home) == bloxpath and os.path.basename(home) not in ("", ".", "..")


@make_action
def ensure_bloxpath_package(self, bloxpath):
    """BLOXPATH is importable as a package directory, so it gets an (empty) `__init__.py`."""
    init_file = os.path.join(bloxpath, "__init__.py")
    if not os.path.exists(init_file):
        open(init_file, "w").close()


def make_context(resource_json, dry_run=False):
    ctx = Context(resource_json, logger, __file__, dry_run=dry_run)
    ctx.check_port("input_ports.datablox_framework", BLOXPATH=text_type)
    ctx.check_port("output_ports.block_info", home=text_type)
    return ctx


class Manager(resource_manager.Manager):
    REQUIRES_ROOT_ACCESS = False

    def __init__(self, metadata, dry_run=False):
        package_name = "%s %s" % (metadata.key["name"], metadata.key["version"])
        resource_manager.Manager.__init__(self, metadata, package_name)
        self.ctx = make_context(metadata.to_json(), dry_run=dry_run)
        self.bloxpath = self.ctx.props.input_ports.datablox_framework.BLOXPATH
        self.home = self.ctx.props.output_ports.block_info.home

    def _check_home(self):
        if not home_is_in_bloxpath(self.home, self.bloxpath):
            raise UserError(errors[ERR_HOME_NOT_IN_BLOXPATH],
                            msg_args={"id": self.id, "home": self.home, "bloxpath": self.bloxpath})

    def validate_pre_install(self):
        self._check_home()
        if not self.is_installed():
            self.ctx.r(check_installable_to_dir, self.home)

    def is_installed(self):
        return os.path.isdir(self.home)

    def install(self, package):
        # Checked again here: install must never put a block outside BLOXPATH, even when
        # validate_pre_install was skipped.
        self._check_home()
        self.ctx.r(ensure_dir_exists, self.bloxpath)
        self.ctx.r(ensure_bloxpath_package, self.bloxpath)
        self.ctx.r(extract_package_as_dir, package, self.home)

    def validate_post_install(self):
        self.ctx.r(check_dir_exists, self.home)
        init_file = os.path.join(self.home, "__init__.py")
        if not self.ctx.dry_run and not os.path.isfile(init_file):
            raise UserError(errors[ERR_BLOCK_INCOMPLETE], msg_args={"id": self.id, "path": init_file})
