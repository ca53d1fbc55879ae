"""The library's package classes: what a driver's `install(package)` receives.

Mirrors `engage/engine/library.py` of Engage: a `packages.json` entry (or a library entry's
`packages`) names a `package_class` (`GzippedTarArchive`, `PipLink`, ...), and Engage builds an
object of the class registered under that name (`GzippedTarFilePackage`, `PipPythonPackage`, ...).
The object has `type`, `location` and `platforms` (file packages also `filepath`), and `to_json()`
gives its class name as `package_class`; it has NO `package_class` attribute. Python 2.7 and 3.
"""
import os
import re
import tarfile


class LibraryParseError(Exception):
    """Mirrors `library.py` `LibraryParseError`: a package entry Engage cannot parse."""


class PackageReadError(Exception):
    """Mirrors `library.py` `PackageReadError`: an archive that cannot be extracted."""


class Package(object):
    """Mirrors `library.py` `Package`."""
    REFERENCE_TYPE = "Reference"
    FILE_TYPE = "File"
    ARCHIVE_TYPE = "Archive"

    def __init__(self, type, location, platforms, package_properties):
        assert type in (Package.REFERENCE_TYPE, Package.FILE_TYPE, Package.ARCHIVE_TYPE)
        self.type = type
        self.location = location
        self.platforms = platforms

    def is_available(self):
        return True

    def to_json(self):
        return {u"type": self.type, u"location": self.location, u"package_class": type(self).__name__}

    def __repr__(self):
        return repr(self.to_json())


class FilePackage(Package):
    """Mirrors `library.py` `FilePackage`: a file of the package cache, at `filepath`."""

    def __init__(self, type, location, filepath, downloader_class, platforms, package_properties):
        assert type in (Package.FILE_TYPE, Package.ARCHIVE_TYPE)
        Package.__init__(self, type, location, platforms, package_properties)
        self.filepath = filepath

    def is_available(self):
        # Without a downloader (all our packages), only a file already in the cache is available.
        return os.path.exists(self.filepath)

    def get_file(self):
        return self.filepath

    def to_json(self):
        value = Package.to_json(self)
        value[u"filename"] = os.path.basename(self.filepath)
        value[u"downloader"] = u"Downloader"
        return value


class ArchivePackage(FilePackage):
    """Mirrors `library.py` `ArchivePackage`: `extract(parent_dir, desired_common_dirname=None)`."""


def _parts(path):
    return [part for part in path.split("/") if part not in ("", ".")]


def check_members(archive_path, members):
    """Refuse members that could write outside the top directory; return that directory's name.

    Engage's `GenericExtractor._validate_archive_files` refuses absolute names and more than one
    top-level directory; the stub refuses more, so that a test never writes outside its temporary
    directory: `..` components, devices and fifos, hard links to names outside the top directory,
    and symbolic links that are absolute or contain `..` (a relative link without `..` can only
    point into its own directory's subtree, even through other such links).
    """
    top_dirs = set()
    for member in members:
        name = member.name
        where = "%s: member %r" % (archive_path, name)
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise PackageReadError("%s has an absolute path" % where)
        parts = _parts(name)
        if not parts:
            raise PackageReadError("%s has an empty path" % where)
        if ".." in parts:
            raise PackageReadError("%s has a `..` component" % where)
        top_dirs.add(parts[0])
        if member.issym():
            target = member.linkname
            if target.startswith("/") or ".." in _parts(target):
                raise PackageReadError("%s is a symbolic link to %r, outside the archive's directory"
                                       % (where, target))
        elif member.islnk():
            target_parts = _parts(member.linkname)
            if member.linkname.startswith("/") or ".." in target_parts or not target_parts:
                raise PackageReadError("%s is a hard link to %r, outside the archive's directory"
                                       % (where, member.linkname))
        elif not (member.isfile() or member.isdir()):
            raise PackageReadError("%s is neither a file, a directory nor a link" % where)
    if len(top_dirs) != 1:
        raise PackageReadError("%s: expected exactly one top-level directory, found %s"
                               % (archive_path, ", ".join(sorted(top_dirs)) or "none"))
    top_dir = top_dirs.pop()
    for member in members:
        if _parts(member.name) == [top_dir] and not member.isdir():
            raise PackageReadError("%s: the top-level entry %r is not a directory" % (archive_path, top_dir))
        if member.islnk() and _parts(member.linkname)[0] != top_dir:
            raise PackageReadError("%s: member %r is a hard link to %r, outside %s"
                                   % (archive_path, member.name, member.linkname, top_dir))
    return top_dir


class GzippedTarFilePackage(ArchivePackage):
    """Mirrors `library.py` `GzippedTarFilePackage` (package class `GzippedTarArchive`)."""

    def extract(self, parent_dir, desired_common_dirname=None):
        """Unpack into `parent_dir`; return the name of the top-level directory it created.

        Every member is checked before anything is written, so a hostile archive writes nothing.
        """
        archive_path = self.get_file()
        with tarfile.open(archive_path, "r:gz") as archive:
            members = archive.getmembers()
            top_dir = check_members(archive_path, members)
            if os.path.lexists(os.path.join(parent_dir, top_dir)):
                # Extracting over an existing tree could follow links in it out of parent_dir.
                raise PackageReadError("%s: %s already exists in %s" % (archive_path, top_dir, parent_dir))
            archive.extractall(parent_dir, members)
        if desired_common_dirname and desired_common_dirname != top_dir:
            os.rename(os.path.join(parent_dir, top_dir), os.path.join(parent_dir, desired_common_dirname))
            top_dir = desired_common_dirname
        return top_dir


class ZipPackage(ArchivePackage):
    """Mirrors `library.py` `ZipPackage` (package class `ZipArchive`); the stub does not extract it."""

    def extract(self, parent_dir, desired_common_dirname=None):
        raise PackageReadError("%s: the stub does not extract ZipArchive packages" % self.filepath)


class PythonInstallerPackage(Package):
    """Mirrors `library.py` `PythonInstallerPackage`: installed by name or URL (`location`)."""


class EasyInstallPythonPackage(PythonInstallerPackage):
    """Mirrors `library.py` `EasyInstallPythonPackage` (package class `EasyInstallLink`); Engage
    installs these with its easy_install driver (`engage.drivers.genforma.easy_install`)."""


class PipPythonPackage(PythonInstallerPackage):
    """Mirrors `library.py` `PipPythonPackage` (package class `PipLink`); Engage installs these
    with its pip driver (`engage.drivers.genforma.pip`)."""


class MacPortsPackage(Package):
    """Mirrors `library.py` `MacPortsPackage` (package class `MacPorts`)."""


class AptGetPackage(Package):
    """Mirrors `library.py` `AptGetPackage` (package class `AptGet`)."""


class DummyPackage(Package):
    """Mirrors `library.py` `DummyPackage`: nothing to install."""


# Mirrors the `register_package_class` calls of `library.py`: package class name -> (type, class).
PACKAGE_CLASSES = {
    "FilePackage": (Package.FILE_TYPE, FilePackage),
    "GzippedTarArchive": (Package.ARCHIVE_TYPE, GzippedTarFilePackage),
    "ZipArchive": (Package.ARCHIVE_TYPE, ZipPackage),
    "EasyInstallLink": (Package.REFERENCE_TYPE, EasyInstallPythonPackage),
    "PipLink": (Package.REFERENCE_TYPE, PipPythonPackage),
    "MacPorts": (Package.REFERENCE_TYPE, MacPortsPackage),
    "AptGet": (Package.REFERENCE_TYPE, AptGetPackage),
    "DummyPackage": (Package.REFERENCE_TYPE, DummyPackage),
}


def parse_package(package_json, cache_directory, err_msg="package"):
    """Mirrors `library.py` `_parse_package`: `type`, `location` and `package_class` are required,
    the class must be registered and go with the type; a file's path is `location` in the cache
    unless a `downloader` names another `filename`."""
    for name in ("type", "location", "package_class"):
        if name not in package_json:
            raise LibraryParseError("%s: missing required property %s" % (err_msg, name))
    package_type = package_json["type"]
    package_class = package_json["package_class"]
    if package_class not in PACKAGE_CLASSES:
        raise LibraryParseError("%s unknown package class %s" % (err_msg, package_class))
    expected_type, constructor = PACKAGE_CLASSES[package_class]
    if package_type != expected_type:
        raise LibraryParseError("%s wrong package type '%s', expecting '%s'" % (err_msg, package_type, expected_type))
    platforms = package_json.get("platforms")
    if package_type == Package.REFERENCE_TYPE:
        return constructor(package_type, package_json["location"], platforms, {})
    if package_json.get("downloader") is None:
        filename = package_json["location"]
    else:
        if "filename" not in package_json:
            raise LibraryParseError("%s package: missing required property filename" % err_msg)
        filename = package_json["filename"]
    return constructor(package_type, package_json["location"], os.path.join(cache_directory, filename),
                       None, platforms, {})
