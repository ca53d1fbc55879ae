"""The tree's layout: version.txt, drivers/ as a package, a flat sw_packages/ (install_extension.py;
engine/library.py)."""
import os

from .engage_facts import LIBRARY


def check_layout(tree):
    # install_extension.py (process_args): an extension without version.txt is refused.
    try:
        with open(tree.path("version.txt"), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        if len(lines) != 1 or not lines[0].strip():
            tree.problem("version.txt", "must hold exactly one non-empty line, found %d lines" % len(lines),
                         "install_extension.py process_args")
    except OSError:
        tree.problem("version.txt", "missing", "install_extension.py process_args")
    # Drivers are imported as the package engage.drivers.<ext> (engine/library.py
    # LibraryEntry.get_manager_class, _load_newstyle_entry).
    if not os.path.isfile(tree.path("drivers", "__init__.py")):
        tree.problem("drivers/__init__.py", "missing: drivers/ is imported as a package",
                     LIBRARY + " LibraryEntry.get_manager_class")
    # install_extension.py (ExtensionInfo.install) copies each file of sw_packages into the flat
    # package cache; engine/library.py _parse_package looks files up by name in it.
    sw_packages = tree.path("sw_packages")
    if os.path.isdir(sw_packages):
        for name in sorted(os.listdir(sw_packages)):
            full = os.path.join(sw_packages, name)
            if os.path.islink(full) or not os.path.isfile(full):
                tree.problem("sw_packages/" + name, "not a plain file; the package cache is flat",
                             "install_extension.py ExtensionInfo.install")
    if os.path.isdir(tree.path("drivers")):
        tree.driver_dirs = sorted(name for name in os.listdir(tree.path("drivers"))
                                  if os.path.isdir(tree.path("drivers", name)) and name != "__pycache__")
    else:
        tree.problem("drivers", "missing")
