"""Runs inside an Engage-like tree (the stub with the extension's drivers) for `check_extension.py`.

Usage: driver_probe.py import|install REQUEST.json. Prints one JSON object per line:
`{"file": ..., "problem": ...}` for each problem, then `{"done": N}`. Valid Python 2.7 and 3,
because driver modules are imported under both.
"""
import glob
import json
import os
import sys
import traceback


def report(file_name, problem):
    sys.stdout.write(json.dumps({"file": file_name, "problem": problem}) + "\n")


def last_line(error):
    text = "%s: %s" % (type(error).__name__, error)
    return text.strip().splitlines()[-1] if text.strip() else type(error).__name__


def probe_imports(request):
    import engage.drivers.resource_manager as resource_manager
    for entry in request["modules"]:
        try:
            module = __import__(entry["module"], fromlist=["Manager"])
        except Exception as error:  # any import failure is the finding
            report(entry["file"], "does not import: %s" % last_line(error))
            continue
        manager = getattr(module, "Manager", None)
        if not isinstance(manager, type) or not issubclass(manager, resource_manager.Manager):
            report(entry["file"], "defines no Manager subclass of engage.drivers.resource_manager.Manager")
        if entry.get("packages_json"):
            function = getattr(module, "get_packages_filename", None)
            if function is None:
                report(entry["file"], "defines no get_packages_filename()")
                continue
            try:
                returned = function()
            except Exception as error:
                report(entry["file"], "get_packages_filename() fails: %s" % last_line(error))
                continue
            if os.path.realpath(returned) != os.path.realpath(entry["packages_json"]):
                report(entry["file"], "get_packages_filename() returns %s, not the packages.json beside it"
                       % returned)
    return len(request["modules"])


def probe_installs(request):
    import engage_testing
    for entry in request["installs"]:
        where = entry["file"]
        try:
            module = __import__(entry["module"], fromlist=["Manager"])
            metadata = engage_testing.make_instance(entry["definition"], entry["id"], entry["input_ports"])
            manager = module.Manager(metadata)
            manager.validate_pre_install()
            if manager.is_installed():
                report(where, "%s: is_installed() is true before install" % entry["id"])
                continue
            package = engage_testing.package_from_json(entry["package"], request["sw_packages"])
            manager.install(package)
            manager.validate_post_install()
            if not manager.is_installed():
                report(where, "%s: is_installed() is false after install" % entry["id"])
        except Exception as error:
            detail = traceback.format_exc().strip().splitlines()
            report(where, "%s: install with %s failed: %s (%s)"
                   % (entry["id"], entry["module"], last_line(error), detail[-3].strip() if len(detail) > 2 else ""))
            continue
        for pattern in entry["expect"]:
            if not glob.glob(os.path.join(request["home"], pattern)):
                report(where, "%s: after install, nothing matches <home>/%s" % (entry["id"], pattern))
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
