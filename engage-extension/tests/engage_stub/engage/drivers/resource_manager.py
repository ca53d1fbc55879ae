"""The base class of every driver's `Manager`.

Mirrors `engage/drivers/resource_manager.py` `Manager`: constructor `(metadata, package_name)`,
`is_installed()` from the instance's metadata, and `UndefinedMethod` for the methods a driver must
override. Python 2.7 and 3.
"""


class UndefinedMethod(Exception):
    """Mirrors `resource_manager.py` `UndefinedMethod`: a method the driver did not override."""

    def __init__(self, resource_mgr, method):
        Exception.__init__(self, "%s.%s.%s" % (resource_mgr.__module__, type(resource_mgr).__name__, method))


class Manager(object):
    """Installs one resource instance; `metadata` is the instance (`ResourceMD` in Engage)."""

    def __init__(self, metadata, package_name):
        self.metadata = metadata
        self.id = self.metadata.id
        self.package_name = package_name
        self.install_context = None  # set by Engage's install sequencer

    def validate_pre_install(self):
        raise UndefinedMethod(self, "validate_pre_install")

    def is_installed(self):
        return self.metadata.is_installed()

    def install(self, library_package):
        raise UndefinedMethod(self, "install")

    def validate_post_install(self):
        raise UndefinedMethod(self, "validate_post_install")

    def is_service(self):
        return False
