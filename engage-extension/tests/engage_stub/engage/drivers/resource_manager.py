"""The base class of every driver's `Manager`."""


class Manager(object):
    """Installs one resource instance.

    `metadata.key` is the key dict, `metadata.id` the instance id and `metadata.to_json()` the
    resource instance as JSON. Subclasses implement the four methods below.
    """

    def __init__(self, metadata, package_name):
        self.metadata = metadata
        self.id = metadata.id
        self.package_name = package_name

    def is_service(self):
        return False

    def validate_pre_install(self):
        raise NotImplementedError("%s.validate_pre_install" % type(self).__name__)

    def is_installed(self):
        raise NotImplementedError("%s.is_installed" % type(self).__name__)

    def install(self, package):
        raise NotImplementedError("%s.install" % type(self).__name__)

    def validate_post_install(self):
        raise NotImplementedError("%s.validate_post_install" % type(self).__name__)
