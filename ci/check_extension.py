#!/usr/bin/env python3
"""Checks a generated Engage extension tree the way Engage's own tools would, without Engage.

Usage: check_extension.py [--static] DIST_DIR

Checks `DIST_DIR/datablox` (written by `cargo xtask dist`): the layout, the JSON metadata, the
resource definitions and their constraints and ports, the packages, the install specs; then, unless
`--static`, imports every driver module under Python 3 and Python 2.7 (Engage's interpreter) with the
Engage stub of `engage-extension/tests/engage_stub`, and installs every block and Python package with
its driver into a temporary home. Prints one line per problem (`file: what`) and a summary; exits 1
if there is any problem, 2 on bad usage. Python 3, standard library only.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

CI_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(CI_DIR)
STUB_DIR = os.path.join(REPO_DIR, "engage-extension", "tests", "engage_stub")
PROBE = os.path.join(CI_DIR, "driver_probe.py")
sys.path.insert(0, CI_DIR)

import interpreters  # noqa: E402

EXTENSION = "datablox"

# What Engage's standard metadata defines (engage-format.md, "What Engage already defines").
# None stands for "any version".
PLATFORMS = {"ubuntu-linux": ["11.10", "12.04", "14.04"], "mac-osx": ["10.5", "10.6"]}
STANDARD = {
    "python": ["2.5", "2.6", "2.7"], "pip": None, "setuptools": ["0.6"], "pyzmq-abstract": ["2.1"],
    "pycrypto": ["2.3"], "gunicorn": ["0.17"], "java-virtual-machine-abstract": ["1.5", "1.6"],
    "pymongo": ["2.1"], "redis": ["2.4"], "lxml": ["2.3"], "sunburnt": ["0.5"], "psycopg2": ["2.4"],
    "boto": ["2.12"], "pytz": ["2013"], "six": ["1.7"], "PyYAML": None,
}
DYNAMIC_HOST = "dynamic-host"
HOST_PORT = {"genforma_home": "path", "log_directory": "path", "hostname": "string",
             "os_user_name": "string", "os_type": "string", "cpu_arch": "string",
             "private_ip": "string", "sudo_password": "password"}

PACKAGE_CLASSES = {
    "Archive": {"GzippedTarArchive", "ZipArchive"},
    "File": {"FilePackage"},
    "Reference": {"PipLink", "EasyInstallLink", "DummyPackage", "AptGet", "MacPorts"},
}
RANGE_KEYS = {"greater-than", "greater-than-or-equal", "less-than", "less-than-or-equal"}
REFERENCE = re.compile(r"\$\{([^}]*)\}")
METADATA_NOT_SPECS = {"resource_definitions.json", "resource_library.json", "installer_config.json"}


def driver_dir_name(key):
    return re.sub("[.-]", "_", (key["name"] + "__" + key["version"]).replace(" ", ""))


def key_text(key):
    return "%s %s" % (key.get("name"), key.get("version"))


class Checker:
    def __init__(self, tree):
        self.tree = tree
        self.problems = []
        self.definitions = {}      # (name, version) -> (definition, file)
        self.library = {}          # (name, version) -> (entry, file)
        self.driver_dirs = []      # names of drivers/* directories

    def problem(self, file_name, message):
        self.problems.append((file_name, message))

    def path(self, *parts):
        return os.path.join(self.tree, *parts)

    def load_json(self, relative):
        """Parsed JSON of a tree file, or None (with a problem) if it is missing or invalid."""
        try:
            with open(self.path(relative), encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            self.problem(relative, "missing")
        except (OSError, ValueError) as error:
            self.problem(relative, "not valid JSON: %s" % error)
        return None

    # ---- layout -------------------------------------------------------------------------------
    def check_layout(self):
        try:
            with open(self.path("version.txt"), encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            if len(lines) != 1 or not lines[0].strip():
                self.problem("version.txt", "must hold exactly one non-empty line, found %d lines" % len(lines))
        except OSError:
            self.problem("version.txt", "missing")
        if not os.path.isfile(self.path("drivers", "__init__.py")):
            self.problem("drivers/__init__.py", "missing (Engage imports drivers/ as a package)")
        sw_packages = self.path("sw_packages")
        if os.path.isdir(sw_packages):
            for name in sorted(os.listdir(sw_packages)):
                full = os.path.join(sw_packages, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    self.problem("sw_packages/" + name, "not a plain file (Engage copies sw_packages flat)")
        if os.path.isdir(self.path("drivers")):
            self.driver_dirs = sorted(name for name in os.listdir(self.path("drivers"))
                                      if os.path.isdir(self.path("drivers", name)) and name != "__pycache__")
        else:
            self.problem("drivers", "missing")

    # ---- definitions and library --------------------------------------------------------------
    def add_definitions(self, relative, value):
        if not isinstance(value, list):
            self.problem(relative, "must be a JSON list of resource definitions")
            return []
        added = []
        for index, definition in enumerate(value):
            key = definition.get("key") if isinstance(definition, dict) else None
            if not (isinstance(key, dict) and isinstance(key.get("name"), str) and isinstance(key.get("version"), str)):
                self.problem(relative, "definition #%d has no key {name, version} of strings" % index)
                continue
            pair = (key["name"], key["version"])
            if pair in self.definitions:
                self.problem(relative, "key `%s` is defined again (first in %s); Engage would silently keep only one"
                             % (key_text(key), self.definitions[pair][1]))
                continue
            self.definitions[pair] = (definition, relative)
            added.append(pair)
        return added

    def load_definitions(self):
        central = self.load_json("metadata/resource_definitions.json")
        if central is not None:
            self.add_definitions("metadata/resource_definitions.json", central)
        for name in self.driver_dirs:
            relative = "drivers/%s/resources.json" % name
            for required in ("__init__.py", "driver.py"):
                if not os.path.isfile(self.path("drivers", name, required)):
                    self.problem("drivers/%s/%s" % (name, required), "missing")
            value = self.load_json(relative)
            if value is None:
                continue
            added = self.add_definitions(relative, value)
            if not isinstance(value, list) or len(value) != 1:
                self.problem(relative, "must be a list holding exactly this resource's definition")
            for pair in added:
                if driver_dir_name({"name": pair[0], "version": pair[1]}) != name:
                    self.problem(relative, "defines `%s %s`, whose driver directory would be %s, not %s"
                                 % (pair[0], pair[1], driver_dir_name({"name": pair[0], "version": pair[1]}), name))
            packages = self.load_json("drivers/%s/packages.json" % name)
            if packages is not None:
                if not isinstance(packages, list) or not packages:
                    self.problem("drivers/%s/packages.json" % name, "must be a non-empty JSON list of packages")
                else:
                    self.check_packages("drivers/%s/packages.json" % name, packages)

    def load_library(self):
        relative = "metadata/resource_library.json"
        library = self.load_json(relative)
        if library is None:
            return
        if not isinstance(library, list):
            self.problem(relative, "must be a JSON list of library entries")
            return
        for index, entry in enumerate(library):
            key = entry.get("key") if isinstance(entry, dict) else None
            if not isinstance(key, dict) or "name" not in key or "version" not in key:
                self.problem(relative, "entry #%d has no key" % index)
                continue
            pair = (key["name"], key["version"])
            if pair in self.library:
                self.problem(relative, "two entries for `%s`" % key_text(key))
            self.library[pair] = (entry, relative)
            module = entry.get("mgr_module_name")
            if not isinstance(module, str) or not module.startswith("engage.drivers."):
                self.problem(relative, "`%s`: mgr_module_name %r is not an engage.drivers.* module"
                             % (key_text(key), module))
            elif module.startswith("engage.drivers.%s." % EXTENSION):
                stem = module[len("engage.drivers.%s." % EXTENSION):]
                if not os.path.isfile(self.path("drivers", *stem.split(".")) + ".py"):
                    self.problem(relative, "`%s`: driver module %s has no file drivers/%s.py"
                                 % (key_text(key), module, stem.replace(".", "/")))
            packages = entry.get("packages")
            if not isinstance(packages, list):
                self.problem(relative, "`%s`: packages must be a list" % key_text(key))
            else:
                self.check_packages("%s (%s)" % (relative, key_text(key)), packages)

    def check_coverage(self):
        dir_of = {driver_dir_name({"name": n, "version": v}): (n, v) for (n, v) in self.definitions}
        for pair, (_definition, relative) in sorted(self.definitions.items()):
            has_dir = driver_dir_name({"name": pair[0], "version": pair[1]}) in self.driver_dirs
            if not has_dir and pair not in self.library:
                self.problem(relative, "`%s %s` has neither a driver directory nor a resource_library.json entry" % pair)
        for name in self.driver_dirs:
            if name not in dir_of:
                self.problem("drivers/%s" % name, "driver directory of no defined resource")
        for pair, (_entry, relative) in sorted(self.library.items()):
            if pair not in self.definitions:
                self.problem(relative, "library entry for `%s %s`, which is not defined" % pair)

    def check_packages(self, where, packages):
        sw_packages = self.path("sw_packages")
        for index, package in enumerate(packages):
            if not isinstance(package, dict):
                self.problem(where, "package #%d is not an object" % index)
                continue
            kind, package_class, location = package.get("type"), package.get("package_class"), package.get("location")
            if kind not in PACKAGE_CLASSES:
                self.problem(where, "package #%d: unknown type %r" % (index, kind))
                continue
            if package_class not in PACKAGE_CLASSES[kind]:
                self.problem(where, "package #%d: class %r does not go with type %s (expected one of %s)"
                             % (index, package_class, kind, ", ".join(sorted(PACKAGE_CLASSES[kind]))))
            if not isinstance(location, str):
                self.problem(where, "package #%d: location must be a string" % index)
                continue
            if package_class == "DummyPackage" and location != "":
                self.problem(where, "package #%d: a DummyPackage has location \"\"" % index)
            if kind in ("Archive", "File") and "downloader" not in package:
                if "/" in location or not os.path.isfile(os.path.join(sw_packages, location)):
                    self.problem(where, "package #%d: %s is not a file of sw_packages" % (index, location or '""'))

    # ---- one definition -----------------------------------------------------------------------
    def check_definition(self, pair, definition, relative):
        name = "`%s %s`" % pair
        ports = {"config_port": {}, "input_ports": {}, "output_ports": {}}
        config = definition.get("config_port") or {}
        if not isinstance(config, dict):
            self.problem(relative, "%s: config_port must be an object" % name)
            config = {}
        for prop, spec in config.items():
            self.check_property(relative, name, "config_port.%s" % prop, spec, allowed="default")
            ports["config_port"][prop] = spec
        for kind, allowed in (("input_ports", None), ("output_ports", "fixed-value")):
            value = definition.get(kind) or {}
            if not isinstance(value, dict):
                self.problem(relative, "%s: %s must be an object" % (name, kind))
                continue
            for port, props in value.items():
                if not isinstance(props, dict):
                    self.problem(relative, "%s: %s.%s must be an object of properties" % (name, kind, port))
                    continue
                ports[kind][port] = props
                for prop, spec in props.items():
                    self.check_property(relative, name, "%s.%s.%s" % (kind, port, prop), spec, allowed)
        for text_where, text in self.value_strings(definition):
            for reference in REFERENCE.findall(text):
                if not self.reference_resolves(reference, ports):
                    self.problem(relative, "%s: %s refers to ${%s}, which is not a property of this resource"
                                 % (name, text_where, reference))
        self.check_constraints(relative, name, definition, ports["input_ports"])
        home = ports["output_ports"].get("block_info", {}).get("home")
        if home is not None:
            self.check_block(relative, name, pair, ports, home)

    def check_property(self, relative, name, where, spec, allowed):
        if isinstance(spec, str):
            return
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            self.problem(relative, "%s: %s must be a type string or an object with `type`" % (name, where))
            return
        for value_key in ("default", "fixed-value"):
            if value_key in spec and value_key != allowed:
                place = {"default": "config ports", "fixed-value": "output ports"}[value_key]
                self.problem(relative, "%s: %s has `%s`, allowed only on %s" % (name, where, value_key, place))

    @staticmethod
    def value_strings(definition):
        for section, key in (("config_port", "default"), ("output_ports", "fixed-value")):
            value = definition.get(section) or {}
            if not isinstance(value, dict):
                continue
            items = value.items() if section == "config_port" else (
                ("%s.%s" % (port, prop), spec) for port, props in value.items() if isinstance(props, dict)
                for prop, spec in props.items())
            for prop, spec in items:
                if isinstance(spec, dict) and isinstance(spec.get(key), str):
                    yield "%s.%s %s" % (section, prop, key), spec[key]

    @staticmethod
    def reference_resolves(reference, ports):
        parts = reference.split(".")
        if len(parts) == 2 and parts[0] == "config_port":
            return parts[1] in ports["config_port"]
        if len(parts) == 3 and parts[0] in ("input_ports", "output_ports"):
            return parts[2] in ports[parts[0]].get(parts[1], {})
        return False

    def check_block(self, relative, name, pair, ports, home):
        dir_name = driver_dir_name({"name": pair[0], "version": pair[1]})
        if "BLOXPATH" not in ports["input_ports"].get("datablox_framework", {}):
            self.problem(relative, "%s: a block needs the input port datablox_framework.BLOXPATH" % name)
        expected = "${input_ports.datablox_framework.BLOXPATH}/%s" % dir_name
        actual = home.get("fixed-value") if isinstance(home, dict) else None
        if actual != expected:
            self.problem(relative, "%s: block_info.home is %r, expected %r" % (name, actual, expected))
        if dir_name not in self.driver_dirs:
            self.problem(relative, "%s: a block needs its driver directory drivers/%s" % (name, dir_name))

    # ---- constraints --------------------------------------------------------------------------
    def check_constraints(self, relative, name, definition, input_ports):
        sections = []
        for section in ("inside", "environment", "peers"):
            if section not in definition:
                continue
            value = definition[section]
            if isinstance(value, dict) and ("one-of" in value or "all-of" in value):
                form = "one-of" if "one-of" in value else "all-of"
                if section == "inside" and form == "all-of":
                    self.problem(relative, "%s: inside cannot be all-of (a resource lives in one place)" % name)
                constraints = value[form]
                if not isinstance(constraints, list) or not constraints:
                    self.problem(relative, "%s: %s.%s must be a non-empty list" % (name, section, form))
                    continue
            elif isinstance(value, dict):
                form, constraints = "one", [value]
            else:
                self.problem(relative, "%s: %s must be a constraint, {all-of: [...]} or {one-of: [...]}"
                             % (name, section))
                continue
            checked = [c for c in (self.check_constraint(relative, name, section, c, input_ports)
                                   for c in constraints) if c is not None]
            sections.append((form, checked))
        # An input port is fed in every alternative exactly when some section feeds it in all of its
        # choices: an all-of (or single) section if any constraint maps it, a one-of if every one does.
        for port in sorted(input_ports):
            fed = False
            for form, constraints in sections:
                mapped = [port in constraint.get("port_mapping", {}) for constraint in constraints]
                if mapped and (all(mapped) if form == "one-of" else any(mapped)):
                    fed = True
            if not fed:
                self.problem(relative, "%s: input port %s is not fed by a port_mapping in every alternative"
                             % (name, port))

    def check_constraint(self, relative, name, section, constraint, input_ports):
        key = constraint.get("key") if isinstance(constraint, dict) else None
        if not isinstance(key, dict) or not isinstance(key.get("name"), str) or "version" not in key:
            self.problem(relative, "%s: a constraint of %s has no key {name, version}" % (name, section))
            return None
        spec = key["version"]
        if not self.valid_spec(spec):
            self.problem(relative, "%s: %s constraint on %s has an invalid version %r (exact string, \"*\", "
                         "\"any\" or a range object)" % (name, section, key["name"], spec))
            return None
        matches = self.matching(key["name"], spec)
        if not matches:
            self.problem(relative, "%s: %s constraint `%s %s` matches no defined resource and no key Engage defines"
                         % (name, section, key["name"], json.dumps(spec)))
            return constraint
        mapping = constraint.get("port_mapping", {})
        if not isinstance(mapping, dict):
            self.problem(relative, "%s: port_mapping must be an object" % name)
            return None
        for mine, theirs in mapping.items():
            if mine not in input_ports:
                self.problem(relative, "%s: port_mapping maps %s, which is not an input port" % (name, mine))
                continue
            for provider, outputs in matches:
                if outputs is None:
                    self.problem(relative, "%s: port_mapping %s -> %s of %s, whose ports are unknown (Engage's own "
                                 "resource)" % (name, mine, theirs, provider))
                    continue
                port = outputs.get(theirs)
                if port is None:
                    self.problem(relative, "%s: port_mapping %s -> %s, but %s has no output port %s"
                                 % (name, mine, theirs, provider, theirs))
                    continue
                for prop in sorted(input_ports[mine]):
                    if prop not in port:
                        self.problem(relative, "%s: input port %s needs %s, which output port %s of %s does not provide"
                                     % (name, mine, prop, theirs, provider))
        return constraint

    @staticmethod
    def valid_spec(spec):
        if isinstance(spec, str):
            return spec != ""
        return (isinstance(spec, dict) and spec and set(spec) <= RANGE_KEYS
                and all(isinstance(value, str) for value in spec.values()))

    def matching(self, name, spec):
        """[(description, output ports or None if unknown)] of the resources a constraint matches."""
        found = []
        for (defined_name, version), (definition, _file) in self.definitions.items():
            if defined_name == name and version_matches(spec, version):
                found.append(("`%s %s`" % (defined_name, version), definition.get("output_ports") or {}))
        if name in PLATFORMS or name == DYNAMIC_HOST:
            versions = PLATFORMS.get(name)
            if versions is None or any(version_matches(spec, v) for v in versions):
                found.append(("Engage's `%s`" % name, {"host": HOST_PORT}))
        elif name in STANDARD:
            versions = STANDARD[name]
            if versions is None or any(version_matches(spec, v) for v in versions):
                found.append(("Engage's `%s`" % name, None))
        return found

    # ---- installer and install specs ----------------------------------------------------------
    def check_installer(self):
        relative = "metadata/installer_config.json"
        if not os.path.exists(self.path(relative)):
            return  # optional
        config = self.load_json(relative)
        if not isinstance(config, dict):
            self.problem(relative, "is not a JSON object")
            return
        # engine/installer_config.py parse_installer_config: required string properties.
        for name in ("resource_def_file_name", "software_library_file_name", "log_level",
                     "application_name"):
            if not isinstance(config.get(name), str):
                self.problem(relative, "lacks the string property %s" % name)
        for name in ("resource_def_file_name", "software_library_file_name"):
            value = config.get(name)
            if isinstance(value, str) and not os.path.isfile(self.path("metadata", value)):
                self.problem(relative, "names %s, which is not in metadata/" % value)
        # installer_config.py _parse_install_spec_options: a list of options with choice_name
        # and file_name; engine/engage_file_layout.py get_install_spec_template_file reads the
        # template at file_name + ".tmpl".
        options = config.get("install_spec_options")
        if not isinstance(options, list):
            self.problem(relative, "lacks the list install_spec_options")
            return
        for option in options:
            if not isinstance(option, dict) or not all(k in option for k in ("choice_name", "file_name")):
                self.problem(relative, "has an install spec option without choice_name and file_name")
                continue
            template = "%s.tmpl" % option["file_name"]
            if not os.path.isfile(self.path("metadata", template)):
                self.problem(relative, "option %s: Engage reads metadata/%s, which is not there"
                             % (option["choice_name"], template))

    def check_install_specs(self):
        metadata = self.path("metadata")
        if not os.path.isdir(metadata):
            self.problem("metadata", "missing")
            return
        for file_name in sorted(os.listdir(metadata)):
            if file_name in METADATA_NOT_SPECS or not re.search(r"\.(json|tmpl)$", file_name):
                continue
            relative = "metadata/" + file_name
            spec = self.load_json(relative)
            if spec is None:
                continue
            if not isinstance(spec, list):
                self.problem(relative, "an install spec must be a JSON list of resource instances")
                continue
            ids = {}
            for index, instance in enumerate(spec):
                if not isinstance(instance, dict) or not isinstance(instance.get("id"), str):
                    self.problem(relative, "instance #%d has no id" % index)
                    continue
                if instance["id"] in ids:
                    self.problem(relative, "id %s is used twice" % instance["id"])
                ids[instance["id"]] = instance.get("key")
            for instance in spec:
                if not isinstance(instance, dict):
                    continue
                self.check_spec_instance(relative, instance, ids)

    def check_spec_instance(self, relative, instance, ids):
        key = instance.get("key")
        where = "instance %s" % instance.get("id")
        if not isinstance(key, dict) or "name" not in key or "version" not in key:
            self.problem(relative, "%s has no key" % where)
        elif key["name"] != DYNAMIC_HOST and (key["name"], key["version"]) not in self.definitions \
                and not (key["name"] in PLATFORMS and key["version"] in PLATFORMS[key["name"]]) \
                and not (key["name"] in STANDARD and (STANDARD[key["name"]] is None
                                                      or key["version"] in STANDARD[key["name"]])):
            self.problem(relative, "%s: key `%s` is not defined" % (where, key_text(key)))
        references = []
        if isinstance(instance.get("inside"), dict):
            references.append(("inside", instance["inside"]))
        for section in ("environment", "peers"):
            if isinstance(instance.get(section), list):
                references.extend((section, reference) for reference in instance[section])
        for section, reference in references:
            target = reference.get("id") if isinstance(reference, dict) else None
            if target not in ids:
                self.problem(relative, "%s: %s refers to id %r, which is not in this spec" % (where, section, target))
            elif "key" in reference and reference["key"] != ids[target]:
                self.problem(relative, "%s: %s names %s with key %s, but that instance's key is %s"
                             % (where, section, target, json.dumps(reference["key"]), json.dumps(ids[target])))

    # ---- driver code --------------------------------------------------------------------------
    def driver_modules(self, engage_root):
        modules = []
        drivers = self.path("drivers")
        for file_name in sorted(os.listdir(drivers)):
            if file_name.endswith(".py") and file_name != "__init__.py":
                modules.append({"file": "drivers/" + file_name,
                                "module": "engage.drivers.%s.%s" % (EXTENSION, file_name[:-3])})
        for name in self.driver_dirs:
            if os.path.isfile(self.path("drivers", name, "driver.py")):
                modules.append({"file": "drivers/%s/driver.py" % name,
                                "module": "engage.drivers.%s.%s.driver" % (EXTENSION, name),
                                "packages_json": os.path.join(engage_root, "engage", "drivers", EXTENSION,
                                                              name, "packages.json")})
        return modules

    def installs(self, home):
        """What to install in the stub: every block, and every resource of python_package_driver."""
        installs = []
        python_package_module = "engage.drivers.%s.python_package_driver" % EXTENSION
        for pair, (definition, relative) in sorted(self.definitions.items()):
            key = {"name": pair[0], "version": pair[1]}
            dir_name = driver_dir_name(key)
            inputs = {port: {prop: "unused" for prop in props}
                      for port, props in (definition.get("input_ports") or {}).items() if isinstance(props, dict)}
            is_block = "home" in ((definition.get("output_ports") or {}).get("block_info") or {})
            library_entry = self.library.get(pair, ({}, None))[0]
            if is_block and dir_name in self.driver_dirs:
                packages = self.load_json("drivers/%s/packages.json" % dir_name) or []
                inputs["datablox_framework"] = {"BLOXPATH": os.path.join(home, "blox")}
                installs.append({"file": relative, "id": dir_name, "definition": definition,
                                 "module": "engage.drivers.%s.%s.driver" % (EXTENSION, dir_name),
                                 "input_ports": inputs, "package": packages[0] if packages else {},
                                 "expect": ["blox/__init__.py", "blox/%s/__init__.py" % dir_name,
                                            "blox/%s/b_*.py" % dir_name]})
            elif library_entry.get("mgr_module_name") == python_package_module:
                packages = library_entry.get("packages") or [{}]
                inputs["host"] = dict(inputs.get("host", {}), genforma_home=home)
                package_dir = re.sub("[.-]", "_", pair[0].lower().replace(" ", ""))
                installs.append({"file": relative, "id": package_dir, "definition": definition,
                                 "module": python_package_module, "input_ports": inputs, "package": packages[0],
                                 "expect": ["python/%s/__init__.py" % package_dir]})
        # The framework and adapter first, as Engage would install a block's environment first.
        installs.sort(key=lambda install: install["module"] != python_package_module)
        return installs

    def run_probe(self, python, mode, request, engage_root, label):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(request, handle)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([engage_root, STUB_DIR]), PYTHONDONTWRITEBYTECODE="1")
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
                self.problem(record["file"], "%s: %s" % (label, record["problem"]))
        if not done:
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            self.problem("drivers", "%s: the driver probe did not finish: %s" % (label, tail))

    def check_drivers(self):
        work = tempfile.mkdtemp(prefix="check-extension-")
        try:
            engage_root = os.path.join(work, "root")
            shutil.copytree(os.path.join(STUB_DIR, "engage"), os.path.join(engage_root, "engage"),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            shutil.copytree(self.path("drivers"), os.path.join(engage_root, "engage", "drivers", EXTENSION))
            request = {"modules": self.driver_modules(engage_root)}
            pythons = [("python3", interpreters.python3())]
            python27 = interpreters.python27()
            if python27:
                pythons.append(("python2.7", python27))
            else:
                print("notice: no Python 2.7 found; driver modules are imported with Python 3 only", file=sys.stderr)
            for label, python in pythons:
                self.run_probe(python, "import", request, engage_root, label)
            home = os.path.join(work, "home")
            os.makedirs(home)
            request = {"home": home, "sw_packages": self.path("sw_packages"), "installs": self.installs(home)}
            self.run_probe(interpreters.python3(), "install", request, engage_root, "install")
            return len(pythons), len(request["installs"])
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # ---- all ----------------------------------------------------------------------------------
    def run(self, static_only):
        if not os.path.isdir(self.tree):
            self.problem(self.tree, "not a directory (expected DIST_DIR/%s)" % EXTENSION)
            return None
        self.check_layout()
        self.load_definitions()
        self.load_library()
        self.check_coverage()
        for pair, (definition, relative) in sorted(self.definitions.items()):
            self.check_definition(pair, definition, relative)
        self.check_installer()
        self.check_install_specs()
        if static_only or not os.path.isdir(self.path("drivers")):
            return None
        return self.check_drivers()


def version_tuple(version):
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in version.split("."))


def version_matches(spec, version):
    """Whether a defined `version` satisfies a constraint's version spec (dotted numbers compare numerically)."""
    if isinstance(spec, str):
        return spec in ("*", "any") or spec == version
    have = version_tuple(version)
    tests = {"greater-than": lambda bound: have > bound, "greater-than-or-equal": lambda bound: have >= bound,
             "less-than": lambda bound: have < bound, "less-than-or-equal": lambda bound: have <= bound}
    return all(tests[op](version_tuple(bound)) for op, bound in spec.items())


def main(argv):
    args = argv[1:]
    static_only = "--static" in args
    args = [arg for arg in args if arg != "--static"]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: check_extension.py [--static] DIST_DIR", file=sys.stderr)
        return 2
    tree = os.path.join(os.path.abspath(args[0]), EXTENSION)
    checker = Checker(tree)
    ran = checker.run(static_only)
    for file_name, message in checker.problems:
        print("%s: %s" % (file_name, message))
    summary = "%d resource definitions, %d driver directories" % (len(checker.definitions), len(checker.driver_dirs))
    if ran is not None:
        summary += ", drivers imported under %d interpreter(s), %d resources installed" % ran
    if checker.problems:
        print("check_extension: %d problem(s) in %s (%s)" % (len(checker.problems), tree, summary))
        return 1
    print("check_extension: ok: %s (%s)" % (tree, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
