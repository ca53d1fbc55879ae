"""The naming rules that tie a block's display name to its key, directory, module and class.

The same rules are applied by the build pipeline when it packages blocks, so the loader, the
caretaker and the adapter must never derive these names in any other way.
"""


def mangle(text):
    """Lower-case `text`, turn `-` and `.` into `_` and drop spaces: `File-Crawler` -> `file_crawler`."""
    return text.lower().replace("-", "_").replace(".", "_").replace(" ", "")


def check_block_name(name):
    """Raise ValueError unless `name` is a valid block display name.

    `_` and `.` are reserved: mangling produces them, so a name holding one could collide with
    another name once mangled (`a-b` and `a_b` would share a directory).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("block name must be a non-empty string, got {!r}".format(name))
    for reserved in ("_", "."):
        if reserved in name:
            suggestion = name.replace("_", "-").replace(".", "-")
            raise ValueError(
                "block name `{}` contains `{}`, which is reserved for mangled names "
                "(help: use `-` instead, e.g. `{}`)".format(name, reserved, suggestion))
    return name


def check_version(version):
    """Raise ValueError unless `version` is a non-empty string such as `1.0`."""
    if not isinstance(version, str) or not version.strip():
        raise ValueError("block version must be a non-empty string such as `1.0`, got {!r}".format(version))
    return version


def block_key(name, version):
    """The Engage resource key of a block: the name lower-cased, the version as written."""
    check_block_name(name)
    check_version(version)
    return {"name": name.lower(), "version": version}


def block_dir(name, version):
    """The block's directory (and Python package) name: `File-Crawler`, `1.0` -> `file_crawler__1_0`."""
    check_block_name(name)
    check_version(version)
    return mangle(name) + "__" + mangle(version)


def block_module(name):
    """The module inside the block directory that defines the block: `b_file_crawler`."""
    check_block_name(name)
    return "b_" + mangle(name)


def block_class(name):
    """The name of the block class in the block module: `file_crawler`."""
    check_block_name(name)
    return mangle(name)
