"""Test support beside the Engage stub: resource instances, library packages, and an Engage-like tree.

Engage builds these objects itself from its metadata; tests and `ci/check_extension.py` build them
here. Python 2.7 and 3.
"""
import json
import os
import re
import shutil
import tarfile

STUB_DIR = os.path.dirname(os.path.abspath(__file__))

_REFERENCE = re.compile(r"\$\{([^}]*)\}")


class PackageError(Exception):
    """A package that must not be installed (e.g. an archive that would write outside its directory)."""


class ResourceMetadata(object):
    """What a driver's `Manager` receives: `key`, `id` and `to_json()`."""

    def __init__(self, instance_json):
        # A JSON round trip gives the instance the types Engage's would have: `unicode` strings
        # under Python 2, so drivers are tested against `ctx.check_port(..., x=unicode)`.
        self._json = json.loads(json.dumps(instance_json))
        self.key = self._json["key"]
        self.id = self._json["id"]

    def to_json(self):
        return json.loads(json.dumps(self._json))


def _property_type(spec):
    return spec if not isinstance(spec, dict) else spec.get("type")


def make_instance(definition, instance_id, input_ports, config_port=None):
    """A resource instance of `definition`: config defaults and given values, fixed-value outputs resolved.

    `input_ports` is `{port: {prop: value}}`, as the resources the ports are mapped to would provide.
    """
    config = {}
    for prop, spec in (definition.get("config_port") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            config[prop] = spec["default"]
    config.update(config_port or {})
    instance = {"id": instance_id, "key": definition["key"], "config_port": config,
                "input_ports": input_ports, "output_ports": {}}

    def lookup(reference, depth):
        parts = reference.split(".")
        if depth > 20:
            raise ValueError("references of %s loop" % reference)
        if len(parts) == 2 and parts[0] == "config_port":
            value = config[parts[1]]
        elif len(parts) == 3 and parts[0] == "input_ports":
            value = input_ports[parts[1]][parts[2]]
        elif len(parts) == 3 and parts[0] == "output_ports":
            value = resolve(definition["output_ports"][parts[1]][parts[2]].get("fixed-value"), depth + 1)
        else:
            raise ValueError("cannot resolve ${%s}" % reference)
        return value

    def resolve(value, depth):
        if not isinstance(value, ("".__class__, u"".__class__)):
            return value
        return _REFERENCE.sub(lambda match: "%s" % (lookup(match.group(1), depth),), value)

    for port, props in (definition.get("output_ports") or {}).items():
        instance["output_ports"][port] = {}
        for prop, spec in props.items():
            if isinstance(spec, dict) and "fixed-value" in spec:
                instance["output_ports"][port][prop] = resolve(spec["fixed-value"], 0)
    for value_map in (config,):
        for prop in list(value_map):
            value_map[prop] = resolve(value_map[prop], 0)
    return ResourceMetadata(instance)


class Package(object):
    def __init__(self, package_json, sw_packages_dir):
        self.type = package_json.get("type")
        self.package_class = package_json.get("package_class")
        self.location = package_json.get("location")
        self.filename = package_json.get("filename")
        self.sw_packages_dir = sw_packages_dir

    def _local_path(self):
        return os.path.join(self.sw_packages_dir, self.location)


class FilePackage(Package):
    """A plain file of the package cache."""

    def get_file(self):
        return self._local_path()


class ReferencePackage(Package):
    """Installed by name (pip, easy_install, apt-get) or nothing at all (DummyPackage)."""


class ArchivePackage(Package):
    """A gzipped tar archive of the package cache holding exactly one top-level directory."""

    def extract(self, parent_dir, desired_common_dirname=None):
        """Unpack into `parent_dir`; return the name of the top-level directory created.

        Every member is checked before anything is written, so a hostile archive writes nothing.
        """
        archive_path = self._local_path()
        if self.package_class != "GzippedTarArchive":
            raise PackageError("%s: the stub only extracts GzippedTarArchive, not %s"
                               % (archive_path, self.package_class))
        with tarfile.open(archive_path, "r:gz") as archive:
            members = archive.getmembers()
            top_dir = check_members(archive_path, members)
            if os.path.lexists(os.path.join(parent_dir, top_dir)):
                # Extracting over an existing tree could follow links in it out of parent_dir.
                raise PackageError("%s: %s already exists in %s" % (archive_path, top_dir, parent_dir))
            archive.extractall(parent_dir, members)
        if desired_common_dirname and desired_common_dirname != top_dir:
            os.rename(os.path.join(parent_dir, top_dir), os.path.join(parent_dir, desired_common_dirname))
            top_dir = desired_common_dirname
        return top_dir


def _parts(path):
    return [part for part in path.split("/") if part not in ("", ".")]


def check_members(archive_path, members):
    """Refuse members that could write outside the top directory; return that directory's name.

    Refused: absolute names, `..` components, names outside a single top-level directory, devices
    and fifos, hard links to names outside it, and symbolic links that are absolute or contain
    `..` (a relative link without `..` can only point into its own directory's subtree, even
    through other such links, so no chain of links leads out).
    """
    top_dirs = set()
    for member in members:
        name = member.name
        where = "%s: member %r" % (archive_path, name)
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise PackageError("%s has an absolute path" % where)
        parts = _parts(name)
        if not parts:
            raise PackageError("%s has an empty path" % where)
        if ".." in parts:
            raise PackageError("%s has a `..` component" % where)
        top_dirs.add(parts[0])
        if member.issym():
            target = member.linkname
            if target.startswith("/") or ".." in _parts(target):
                raise PackageError("%s is a symbolic link to %r, outside the archive's directory"
                                   % (where, target))
        elif member.islnk():
            target_parts = _parts(member.linkname)
            if member.linkname.startswith("/") or ".." in target_parts or not target_parts:
                raise PackageError("%s is a hard link to %r, outside the archive's directory"
                                   % (where, member.linkname))
        elif not (member.isfile() or member.isdir()):
            raise PackageError("%s is neither a file, a directory nor a link" % where)
    if len(top_dirs) != 1:
        raise PackageError("%s: expected exactly one top-level directory, found %s"
                           % (archive_path, ", ".join(sorted(top_dirs)) or "none"))
    top_dir = top_dirs.pop()
    for member in members:
        if _parts(member.name) == [top_dir] and not member.isdir():
            raise PackageError("%s: the top-level entry %r is not a directory" % (archive_path, top_dir))
        if member.islnk() and _parts(member.linkname)[0] != top_dir:
            raise PackageError("%s: member %r is a hard link to %r, outside %s"
                               % (archive_path, member.name, member.linkname, top_dir))
    return top_dir


def package_from_json(package_json, sw_packages_dir):
    """The library package of a `packages.json` entry, reading files from `sw_packages_dir`."""
    kind = package_json.get("type")
    if kind == "Archive":
        return ArchivePackage(package_json, sw_packages_dir)
    if kind == "File":
        return FilePackage(package_json, sw_packages_dir)
    if kind == "Reference":
        return ReferencePackage(package_json, sw_packages_dir)
    raise PackageError("unknown package type %r" % (kind,))


def _ignore_bytecode(directory, names):
    return [name for name in names if name == "__pycache__" or name.endswith(".pyc")]


def build_engage_tree(dest_dir, extension_drivers_dir, extension="datablox"):
    """Lay out `dest_dir/engage/` as Engage does: the stub, with the extension's drivers as `engage/drivers/<ext>/`.

    The result is the directory to put first on `sys.path`.
    """
    shutil.copytree(os.path.join(STUB_DIR, "engage"), os.path.join(dest_dir, "engage"),
                    ignore=_ignore_bytecode)
    shutil.copytree(extension_drivers_dir, os.path.join(dest_dir, "engage", "drivers", extension),
                    ignore=_ignore_bytecode)
    return dest_dir
