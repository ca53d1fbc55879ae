"""Runs inside an Engage-like tree (the stub with the extension's drivers) for the checker (`drivers.py`).

Usage: driver_probe.py import|install REQUEST.json. Prints one JSON object per line:
`{"file": ..., "problem": ..., "engage": ...}` for each problem, then `{"done": N}`. Valid Python
2.7 and 3, because driver modules are imported under both.

import:  each driver module imports, defines `Manager` as Engage's loader expects (engine/library.py
         LibraryEntry.get_manager_class) and keeps the base classes' contract
         (drivers/resource_manager.py, drivers/service_manager.py).
install: each resource is installed as engine/install_sequencer.py run_install does it, with the
         package object Engage would build (engine/library.py _parse_package, via the stub).
"""
import glob
import json
import os
import sys
import traceback

# This script's directory holds the checker's own modules, not the tree's: keep them off the path,
# so that only the stub tree and the extension's drivers are importable.
del sys.path[0]

RESOURCE_MANAGER = "python_pkg/engage/drivers/resource_manager.py"
SERVICE_MANAGER = "python_pkg/engage/drivers/service_manager.py"
SEQUENCER = "python_pkg/engage/engine/install_sequencer.py run_install"


def report(file_name, problem, engage=None):
    sys.stdout.write(json.dumps({"file": file_name, "problem": problem, "engage": engage}) + "\n")


def last_line(error):
    text = "%s: %s" % (type(error).__name__, error)
    return text.strip().splitlines()[-1] if text.strip() else type(error).__name__


def defined_by(cls, name):
    """The class of `cls`'s MRO that defines `name`."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return None


def check_contract(entry, manager):
    import engage.drivers.resource_manager as resource_manager
    import engage.drivers.service_manager as service_manager
    # resource_manager.py Manager: these raise UndefinedMethod unless the driver overrides them.
    for method in ("validate_pre_install", "install", "validate_post_install"):
        if defined_by(manager, method) is resource_manager.Manager:
            report(entry["file"], "Manager does not override %s(), which raises UndefinedMethod" % method,
                   RESOURCE_MANAGER + " Manager")
    if issubclass(manager, service_manager.Manager):
        # service_manager.py Manager: start/stop do nothing and is_running is False unless
        # overridden; get_pid_file_path() is what Engage's process monitor watches
        # (engine/mgt_registration.py register_with_mgt_backends).
        for method in ("start", "stop", "is_running", "get_pid_file_path"):
            if defined_by(manager, method) is service_manager.Manager:
                report(entry["file"], "the service's Manager does not override %s()%s" % (
                    method, ", so Engage's process monitor cannot watch it" if method == "get_pid_file_path" else ""),
                    SERVICE_MANAGER + " Manager." + method)
    elif any(defined_by(manager, method) not in (None, object) for method in ("start", "stop")) \
            and not issubclass(manager, service_manager.Manager):
        report(entry["file"], "Manager defines start()/stop() but is not a service_manager.Manager, so Engage "
               "never starts it", SERVICE_MANAGER + " Manager.is_service")


def probe_imports(request):
    import engage.drivers.resource_manager as resource_manager
    for entry in request["modules"]:
        try:
            module = __import__(entry["module"], fromlist=["Manager"])
        except Exception as error:  # any import failure is the finding
            report(entry["file"], "does not import: %s" % last_line(error),
                   "python_pkg/engage/engine/library.py LibraryEntry.get_manager_class")
            continue
        manager = getattr(module, "Manager", None)
        if not isinstance(manager, type) or not issubclass(manager, resource_manager.Manager):
            report(entry["file"], "defines no Manager subclass of engage.drivers.resource_manager.Manager",
                   "python_pkg/engage/engine/library.py LibraryEntry.get_manager_class")
            continue
        check_contract(entry, manager)
        if entry.get("packages_json"):
            # engine/library.py _load_newstyle_entry calls get_packages_filename() and opens it.
            function = getattr(module, "get_packages_filename", None)
            if function is None:
                report(entry["file"], "defines no get_packages_filename()",
                       "python_pkg/engage/engine/library.py _load_newstyle_entry")
                continue
            try:
                returned = function()
            except Exception as error:
                report(entry["file"], "get_packages_filename() fails: %s" % last_line(error))
                continue
            if os.path.realpath(returned) != os.path.realpath(entry["packages_json"]):
                report(entry["file"], "get_packages_filename() returns %s, not the packages.json beside it"
                       % returned, "python_pkg/engage/engine/library.py _load_newstyle_entry")
    return len(request["modules"])


def probe_installs(request):
    import engage_testing
    for entry in request["installs"]:
        where = entry["file"]
        try:
            module = __import__(entry["module"], fromlist=["Manager"])
            metadata = engage_testing.ResourceMetadata(entry["instance"])
            package = None
            if entry["package"] is not None:
                package = engage_testing.package_from_json(entry["package"], request["sw_packages"])
                if not package.is_available():
                    package = None
            manager = module.Manager(metadata)
            # install_sequencer.py run_install: an installed resource is only validated; otherwise
            # it needs a package, then validate_pre_install() and install(package).
            if manager.is_installed():
                manager.validate_post_install()
                continue
            if package is None:
                report(where, "%s: no package is available, so Engage cannot install it" % entry["id"], SEQUENCER)
                continue
            manager.validate_pre_install()
            manager.install(package)
            # Not called by Engage after install (install() checks for itself); our drivers'
            # validate_post_install() tells whether the install worked.
            manager.validate_post_install()
            if not manager.is_installed():
                report(where, "%s: is_installed() is false after install" % entry["id"])
            # What Engage's bootstrap put in the home must survive: its python resource's driver
            # (drivers/genforma/python.py validate_post_install, which run_install calls for an
            # installed resource) checks <home>/python/bin/python on every later deployment.
            for kept in request.get("keep", []):
                if not os.path.exists(os.path.join(request["home"], kept)):
                    report(where, "%s: installing it removed <home>/%s, which Engage's bootstrap made; every "
                           "later deployment in this home fails" % (entry["id"], kept),
                           "python_pkg/engage/drivers/genforma/python.py Manager.validate_post_install")
                    request["keep"].remove(kept)
            for pattern in entry.get("expect", []):
                if not glob.glob(os.path.join(request["home"], pattern)):
                    report(where, "%s: after install, nothing matches <home>/%s" % (entry["id"], pattern))
        except Exception as error:
            detail = traceback.format_exc().strip().splitlines()
            report(where, "%s: install with %s failed: %s (%s)"
                   % (entry["id"], entry["module"], last_line(error), detail[-3].strip() if len(detail) > 2 else ""),
                   SEQUENCER)
    return len(request["installs"])


def main(argv):
    mode, request_path = argv[1], argv[2]
    with open(request_path) as handle:
        request = json.load(handle)
    count = probe_imports(request) if mode == "import" else probe_installs(request)
    sys.stdout.write(json.dumps({"done": count}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
