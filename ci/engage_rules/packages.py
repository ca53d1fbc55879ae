"""Package entries of the library and of packages.json (engine/library.py _parse_package and
FilePackage.is_available)."""
import os

from .engage_facts import LIBRARY

# engine/library.py register_package_class calls: package class -> (type, Engage's Python class).
PACKAGE_CLASSES = {
    "FilePackage": ("File", "FilePackage"), "GzippedTarArchive": ("Archive", "GzippedTarFilePackage"),
    "ZipArchive": ("Archive", "ZipPackage"), "EasyInstallLink": ("Reference", "EasyInstallPythonPackage"),
    "PipLink": ("Reference", "PipPythonPackage"), "MacPorts": ("Reference", "MacPortsPackage"),
    "AptGet": ("Reference", "AptGetPackage"), "DummyPackage": ("Reference", "DummyPackage"),
}
# engine/library.py register_downloader_class calls.
DOWNLOADERS = {"HTTPDownloader", "CloudfilesDownloader"}


def check_packages(tree, where, packages):
    """engine/library.py _parse_package and FilePackage.is_available."""
    sw_packages = tree.path("sw_packages")
    for index, package in enumerate(packages):
        if not isinstance(package, dict):
            tree.problem(where, "package #%d is not an object" % index, LIBRARY + " _parse_package")
            continue
        missing = [field for field in ("type", "location", "package_class") if field not in package]
        if missing:
            tree.problem(where, "package #%d lacks %s" % (index, ", ".join(missing)), LIBRARY + " _parse_package")
            continue
        kind, package_class, location = package["type"], package["package_class"], package["location"]
        if package_class not in PACKAGE_CLASSES:
            tree.problem(where, "package #%d: unknown package class %r" % (index, package_class),
                         LIBRARY + " _parse_package")
            continue
        if PACKAGE_CLASSES[package_class][0] != kind:
            tree.problem(where, "package #%d: wrong package type %r for %s, expecting %r"
                         % (index, kind, package_class, PACKAGE_CLASSES[package_class][0]),
                         LIBRARY + " _parse_package")
        if isinstance(location, list) and location and all(isinstance(url, str) for url in location):
            # A list of mirrors (get_json_property with UnionType(unicode, str, list)); only a
            # downloader can fetch it.
            if package.get("downloader") is None:
                tree.problem(where, "package #%d: a list of locations needs a downloader" % index,
                             LIBRARY + " _parse_package")
            continue
        if not isinstance(location, str):
            tree.problem(where, "package #%d: location must be a string or a list of URLs" % index,
                         LIBRARY + " _parse_package")
            continue
        if package_class == "DummyPackage" and location != "":
            tree.problem(where, "package #%d: a DummyPackage has location \"\"" % index)
        if kind in ("Archive", "File"):
            downloader = package.get("downloader")
            if downloader is not None:
                if downloader not in DOWNLOADERS:
                    tree.problem(where, "package #%d: invalid downloader %r" % (index, downloader),
                                 LIBRARY + " _parse_package")
                if not isinstance(package.get("filename"), str):
                    tree.problem(where, "package #%d: a downloaded package needs `filename`" % index,
                                 LIBRARY + " _parse_package")
            elif "/" in location or not os.path.isfile(os.path.join(sw_packages, location)):
                # Without a downloader the file must be in the cache, else the package is not
                # available and the driver gets no package (install_sequencer.py run_install).
                tree.problem(where, "package #%d: %s is not a file of sw_packages" % (index, location or '""'),
                             LIBRARY + " FilePackage.is_available")
