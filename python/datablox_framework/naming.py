"""The naming rules that tie a block's display name to its key, directory, module and class.

The same rules are applied by the build pipeline when it packages blocks, so the loader, the
caretaker and the adapter must never derive these names in any other way.
"""

import unicodedata


def mangle(text):
    """Lower-case `text`, turn `-` and `.` into `_` and drop spaces: `File-Crawler` -> `file_crawler`."""
    return text.lower().replace("-", "_").replace(".", "_").replace(" ", "")


def name_problem(what, name):
    """What is wrong with `name` as a resource name (or a version), or None. The rule, the same in
    `cargo xtask check` (`check/names.rs`) as the shared table `python/tests/name_rule.json`
    proves; the node deployer imports this function: not empty, no leading `-` (a name reaches
    command lines, where it would read as an option), no `/` (names become directory names), no
    `=` (`--flag=value`), no white space and no control character (NUL included)."""
    if not isinstance(name, str) or not name:
        return "the {} is empty".format(what) if name == "" else "the {} must be a string, got {!r}".format(what, name)
    if name.startswith("-"):
        return "{} {!r} starts with `-`".format(what, name)
    for char in name:
        if char in "/=" or char.isspace() or unicodedata.category(char) == "Cc":
            return "{} {!r} contains {!r}".format(what, name, char)
    return None


def check_name(name, what="resource name"):
    """Raise ValueError unless `name` follows the name rule (`name_problem`)."""
    problem = name_problem(what, name)
    if problem:
        raise ValueError("{} (help: a {} is not empty and has no leading `-`, no `/`, `=`, white space or "
                         "control characters)".format(problem, what))
    return name


def check_block_name(name):
    """Raise ValueError unless `name` is a valid block display name: the name rule, and

    `_` and `.` are reserved: mangling produces them, so a name holding one could collide with
    another name once mangled (`a-b` and `a_b` would share a directory); and once mangled it is
    an ASCII Python identifier (the block's module and class)."""
    check_name(name, "block name")
    for reserved in ("_", "."):
        if reserved in name:
            suggestion = name.replace("_", "-").replace(".", "-")
            raise ValueError(
                "block name `{}` contains `{}`, which is reserved for mangled names "
                "(help: use `-` instead, e.g. `{}`)".format(name, reserved, suggestion))
    module = mangle(name)
    if not (module.isidentifier() and all(ord(char) < 128 for char in module)):
        raise ValueError("block name `{}` does not give a Python module name (`{}`) (help: use letters, "
                         "digits and `-`, starting with a letter)".format(name, module))
    return name


def check_version(version):
    """Raise ValueError unless `version` is a version such as `1.0`: the name rule, as a version is
    part of directory names and command lines too."""
    return check_name(version, "block version")


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
