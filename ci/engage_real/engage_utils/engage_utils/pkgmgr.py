"""engage_utils.pkgmgr parses new-style `package` entries inside a resource; none of our
resources has one, so the stand-in refuses them by name."""


class Package(object):
    @staticmethod
    def from_json(package_json):
        raise NotImplementedError("engage_utils stand-in: new-style package entries are not supported: %r"
                                  % (package_json,))
