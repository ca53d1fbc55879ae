"""The drivers' code, run: each driver module imported under Python 3 and 2.7 as Engage's loader
imports it, and every resource our drivers install installed into a home laid out as Engage's
bootstrap leaves it, by `driver_probe.py` inside a copy of the Engage stub
(engine/library.py LibraryEntry.get_manager_class; engine/install_sequencer.py run_install)."""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

from .engage_facts import EXTENSION, PLATFORMS, driver_dir_name, version_matches

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CI_DIR = os.path.dirname(PACKAGE_DIR)
STUB_DIR = os.path.join(os.path.dirname(CI_DIR), "engage-extension", "tests", "engage_stub")
PROBE = os.path.join(PACKAGE_DIR, "driver_probe.py")
FAKE_PIP = os.path.join(PACKAGE_DIR, "fake_pip.py")
sys.path.insert(0, CI_DIR)
sys.path.insert(1, STUB_DIR)

import engage_testing  # noqa: E402 (the stub's helpers: instances; it imports no engage module here)
import interpreters  # noqa: E402


def driver_modules(tree, engage_root):
    modules = []
    drivers = tree.path("drivers")
    for file_name in sorted(os.listdir(drivers)):
        if file_name.endswith(".py") and file_name != "__init__.py":
            modules.append({"file": "drivers/" + file_name,
                            "module": "engage.drivers.%s.%s" % (EXTENSION, file_name[:-3])})
    for name in tree.driver_dirs:
        if os.path.isfile(tree.path("drivers", name, "driver.py")):
            modules.append({"file": "drivers/%s/driver.py" % name,
                            "module": "engage.drivers.%s.%s.driver" % (EXTENSION, name),
                            "packages_json": os.path.join(engage_root, "engage", "drivers", EXTENSION,
                                                          name, "packages.json")})
    return modules


def instance_ports(tree, pair, home, seen=()):
    """The input ports of an instance of `pair`, as the config engine fills them (generate.ml
    map_input_ports): each mapped port takes the output port of the resource its constraint
    matches (the first alternative of a one-of), platforms providing `host`."""
    definition = tree.definitions[pair][0]
    inputs = {}
    for section in ("inside", "environment", "peers"):
        value = definition.get(section) or {}
        members = value.get("all-of", [value]) if isinstance(value, dict) else []
        for member in members:
            if not isinstance(member, dict):
                continue
            constraint = (member.get("one-of") or [{}])[0] if "one-of" in member else member
            key = constraint.get("key") or {}
            for mine, theirs in (constraint.get("port_mapping") or {}).items():
                if mine in inputs:
                    continue
                if key.get("name") in PLATFORMS:
                    inputs[mine] = {"genforma_home": home, "log_directory": os.path.join(home, "log"),
                                    "hostname": "localhost", "os_user_name": "datablox", "os_type": "linux",
                                    "cpu_arch": "x86_64", "private_ip": "127.0.0.1", "sudo_password": ""}
                    continue
                matches = [p for p in sorted(tree.definitions)
                           if p[0] == key.get("name") and version_matches(key.get("version"), p[1])]
                if not matches or matches[0] in seen:
                    continue
                provider = make_instance_json(tree, matches[0], home, seen + (pair,))
                inputs[mine] = provider["output_ports"].get(theirs, {})
    return inputs


def make_instance_json(tree, pair, home, seen=()):
    definition = tree.definitions[pair][0]
    inputs = instance_ports(tree, pair, home, seen)
    return engage_testing.make_instance(definition, driver_dir_name({"name": pair[0], "version": pair[1]}),
                                        inputs).to_json()


def installs(tree, home):
    """Every resource our drivers install, with its first package, in dependency-ish order."""
    installs = []
    order = {"python_package_driver": 0, "system_python_driver": 1, "file_package_driver": 2,
             "pip_package_driver": 3, "generic_blox_driver": 4}
    for pair, (definition, relative) in sorted(tree.definitions.items()):
        dir_name = driver_dir_name({"name": pair[0], "version": pair[1]})
        if pair in tree.library:
            entry = tree.library[pair][0]
            module = entry.get("mgr_module_name")
            packages = entry.get("packages") or []
        elif dir_name in tree.driver_packages:
            module = "engage.drivers.%s.%s.driver" % (EXTENSION, dir_name)
            packages = tree.driver_packages[dir_name]
        else:
            continue
        if not isinstance(module, str) or not module.startswith("engage.drivers.%s." % EXTENSION):
            continue
        try:
            instance = make_instance_json(tree, pair, home)
        except (KeyError, ValueError, TypeError) as error:
            tree.problem(relative, "`%s %s`: cannot resolve its ports: %s" % (pair[0], pair[1], error))
            continue
        is_block = "home" in ((definition.get("output_ports") or {}).get("block_info") or {})
        kind = "generic_blox_driver" if is_block else module.rsplit(".", 1)[-1]
        driver_file = "drivers/%s.py" % module[len("engage.drivers.%s." % EXTENSION):].replace(".", "/")
        # Our own expectations after an install (not Engage's rules): a block directory holds
        # its block module, a Python package its __init__.py.
        expect = []
        if kind == "generic_blox_driver":
            expect = ["blox/__init__.py", "blox/%s/__init__.py" % dir_name, "blox/%s/b_*.py" % dir_name]
        elif kind == "python_package_driver":
            expect = ["python/%s/__init__.py" % re.sub("[.-]", "_", pair[0].lower().replace(" ", ""))]
        installs.append({"file": driver_file, "id": instance["id"], "instance": instance, "module": module,
                         "package": packages[0] if packages and isinstance(packages[0], dict) else None,
                         "order": order.get(kind, 5), "expect": expect})
    installs.sort(key=lambda install: (install["order"], install["id"]))
    return installs


def run_probe(tree, python, mode, request, engage_root, label, path=None):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(request, handle)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([engage_root, STUB_DIR]), PYTHONDONTWRITEBYTECODE="1")
    if path:
        env["PATH"] = path
    try:
        result = subprocess.run([python, PROBE, mode, handle.name], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=engage_root, timeout=600,
                                universal_newlines=True)
    finally:
        os.remove(handle.name)
    done = False
    for line in result.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "done" in record:
            done = True
        else:
            tree.problem(record["file"], "%s: %s" % (label, record["problem"]), record.get("engage"))
    if not done:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        tree.problem("drivers", "%s: the driver probe did not finish: %s" % (label, tail))


def check_drivers(tree):
    work = tempfile.mkdtemp(prefix="check-extension-")
    try:
        engage_root = os.path.join(work, "root")
        shutil.copytree(os.path.join(STUB_DIR, "engage"), os.path.join(engage_root, "engage"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(tree.path("drivers"), os.path.join(engage_root, "engage", "drivers", EXTENSION))
        request = {"modules": driver_modules(tree, engage_root)}
        pythons = [("python3", interpreters.python3())]
        python27 = interpreters.python27()
        if python27:
            pythons.append(("python2.7", python27))
        else:
            print("notice: no Python 2.7 found; driver modules are imported with Python 3 only", file=sys.stderr)
        for label, python in pythons:
            run_probe(tree, python, "import", request, engage_root, label)
        # A home as Engage's bootstrap leaves it: python/ (a virtualenv) and config/ exist, and
        # data/ may. pip is a recorder: nothing is downloaded.
        home = os.path.join(work, "home")
        for directory in ("python", "config", "data", "engage"):
            os.makedirs(os.path.join(home, directory))
        # The virtualenv's interpreter, which Engage's python driver checks on every deployment.
        os.makedirs(os.path.join(home, "python", "bin"))
        with open(os.path.join(home, "python", "bin", "python"), "w") as handle:
            handle.write("")
        bin_dir = os.path.join(work, "bin")
        os.makedirs(bin_dir)
        fake_python3 = os.path.join(bin_dir, "python3")
        with open(fake_python3, "w") as handle:
            handle.write("#!/bin/sh\nexec '%s' '%s' \"$@\"\n" % (sys.executable, FAKE_PIP))
        os.chmod(fake_python3, stat.S_IRWXU)
        request = {"home": home, "sw_packages": tree.path("sw_packages"), "installs": installs(tree, home),
                   "keep": ["python/bin/python"]}
        run_probe(tree, interpreters.python3(), "install", request, engage_root, "install",
                  path=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
        return len(pythons), len(request["installs"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
