"""metadata/resource_library.json (engine/library.py _parse_entry / preprocess_library_file), what
each of our drivers accepts, and that every resource has a driver (InMemoryLibrary.get_entry)."""
import os

from .engage_facts import EXTENSION, LIBRARY, driver_dir_name, key_text
from .packages import PACKAGE_CLASSES, check_packages

# What each of our manager modules accepts in install(package) (their docstrings say why):
# a library entry naming the module must hand it one of these package classes.
DRIVER_PACKAGES = {
    "python_package_driver": {"GzippedTarArchive"},
    "pip_package_driver": {"PipLink"},
    "file_package_driver": {"FilePackage"},
    "system_python_driver": {"DummyPackage"},
    "generic_blox_driver": {"GzippedTarArchive"},
}


def load_library(tree):
    relative = "metadata/resource_library.json"
    if not os.path.exists(tree.path(relative)):
        return  # optional: engine/engage_file_layout.py _get_extension_files skips what is absent
    library = tree.load_json(relative)
    if library is None:
        return
    if not isinstance(library, list):
        # engine/library.py preprocess_library_file takes a list; its object branch calls the
        # misspelt `isintance` and fails with NameError.
        tree.problem(relative, "must be a JSON list of library entries", LIBRARY + " preprocess_library_file")
        return
    for index, entry in enumerate(library):
        # engine/library.py _parse_entry: key (object), mgr_module_name (string), packages (list).
        key = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(key, dict) or "name" not in key or "version" not in key:
            tree.problem(relative, "entry #%d has no key" % index, LIBRARY + " _parse_entry")
            continue
        pair = (key["name"], key["version"])
        if pair in tree.library:
            tree.problem(relative, "two entries for `%s`" % key_text(key), LIBRARY + " InMemoryLibrary.add_entry")
        tree.library[pair] = (entry, relative)
        module = entry.get("mgr_module_name")
        if not isinstance(module, str) or not module.startswith("engage.drivers."):
            tree.problem(relative, "`%s`: mgr_module_name %r is not an engage.drivers.* module"
                         % (key_text(key), module), LIBRARY + " _parse_entry")
        elif module.startswith("engage.drivers.%s." % EXTENSION):
            stem = module[len("engage.drivers.%s." % EXTENSION):]
            if not os.path.isfile(tree.path("drivers", *stem.split(".")) + ".py"):
                tree.problem(relative, "`%s`: driver module %s has no file drivers/%s.py"
                             % (key_text(key), module, stem.replace(".", "/")),
                             LIBRARY + " LibraryEntry.get_manager_class")
        packages = entry.get("packages", [])
        if not isinstance(packages, list):
            tree.problem(relative, "`%s`: packages must be a list" % key_text(key), LIBRARY + " _parse_entry")
            continue
        where = "%s (%s)" % (relative, key_text(key))
        check_packages(tree, where, packages)
        if isinstance(module, str):
            check_driver_packages(tree, where, module.rsplit(".", 1)[-1], packages)


def check_driver_packages(tree, where, module, packages):
    """What a driver receives: engine/library.py LibraryEntry.get_package hands install() the
    first available package of the entry, as an object of Engage's class for its
    package_class; each of our drivers installs only the classes it was written for."""
    accepted = DRIVER_PACKAGES.get(module)
    if accepted is None or not packages or not isinstance(packages[0], dict):
        return
    package_class = packages[0].get("package_class")
    if package_class in accepted:
        return
    hint = ""
    if package_class == "EasyInstallLink":
        hint = "; Engage installs an EasyInstallLink with its easy_install driver " \
               "(drivers/genforma/easy_install.py): declare the package as pip"
    tree.problem(where, "%s receives the package class %s (Engage's %s), but installs only %s%s"
                 % (module, package_class, PACKAGE_CLASSES.get(package_class, ("", "?"))[1],
                    ", ".join(sorted(accepted)), hint), LIBRARY + " LibraryEntry.get_package")


def check_coverage(tree):
    # engine/install_sequencer.py: a resource needs a library entry or a driver directory
    # (engine/library.py InMemoryLibrary.get_entry, then _load_newstyle_entry).
    dir_of = {driver_dir_name({"name": n, "version": v}): (n, v) for (n, v) in tree.definitions}
    for pair, (_definition, relative) in sorted(tree.definitions.items()):
        has_dir = driver_dir_name({"name": pair[0], "version": pair[1]}) in tree.driver_dirs
        if not has_dir and pair not in tree.library:
            tree.problem(relative, "`%s %s` has neither a driver directory nor a resource_library.json entry" % pair,
                         LIBRARY + " InMemoryLibrary.get_entry")
    for name in tree.driver_dirs:
        if name not in dir_of:
            tree.problem("drivers/%s" % name, "driver directory of no defined resource")
    for pair, (_entry, relative) in sorted(tree.library.items()):
        if pair not in tree.definitions:
            tree.problem(relative, "library entry for `%s %s`, which is not defined" % pair)
