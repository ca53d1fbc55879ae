#!/usr/bin/env python3
"""Checks a generated Engage extension tree rule by rule as Engage's own code would, without Engage.

Usage: check_extension.py [--static] [--json] DIST_DIR

Checks `DIST_DIR/datablox` (written by `cargo xtask dist`). Every rule restates one piece of
Engage's source and names it (file and function) in a comment and in its message; paths are those
of Engage's repository: `python_pkg/engage/...` (its Python 2.7 engine and drivers) and
`config_src/config/...` (its OCaml config engine). The rules, in the order they run:

  layout        install_extension.py; engine/preprocess_resources.py; engine/library.py
  definitions   parse_rdef.ml parse_rdef / parse_port_def / parse_prop_initialization /
                parse_*_constraint; utils/rdef.py Resource
  references    templates.ml parse_string; parse_rdef.ml parse_port_reference;
                generate.ml port_reference_of_string / check_ports_exist_in_rdef
  constraints   generate.ml matches (+ resources.ml scalar_*); utils/rdef.py BaseConstraint.validate
                and Resource.validate (port mappings, input ports fed in every solution)
  config ports  generate.ml fill_in_config_ports / get_config_ports (values nobody gives)
  library       engine/library.py _parse_entry / _parse_package / _load_newstyle_entry /
                preprocess_library_file; what each of our drivers accepts
  installer     engine/installer_config.py parse_installer_config;
                engine/engage_file_layout.py get_install_spec_template_file
  install specs parse_resource.ml parse_resource_inst; engine/preprocess_resources.py
                validate_install_spec / create_install_spec; generate.ml
                check_instance_key_exists_in_rdef
  drivers       (unless --static) engine/library.py LibraryEntry.get_manager_class and
                _load_newstyle_entry; drivers/resource_manager.py and service_manager.py (the
                contract, incl. get_pid_file_path); engine/install_sequencer.py run_install: every
                resource our drivers install is installed into a home laid out as Engage's
                bootstrap leaves it (python/ with the virtualenv's bin/python, data/), with
                Engage-like package objects from the stub of engage-extension/tests/engage_stub,
                pip replaced by a stand-in that writes what pip's --target writes; the
                virtualenv's interpreter must survive every install (drivers/genforma/python.py
                validate_post_install checks it on every deployment).

What it cannot see: Engage's standard metadata beyond the keys listed in STANDARD below, the
constraint solver's choices, and anything a driver does against the real system (pip, the network).
Prints one line per problem (`file: what (Engage: where)`) and a summary (with --json, one JSON
object: ok, tree, summary, problems); exits 1 if there is any problem, 2 on bad usage. Python 3, standard library only.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

CI_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(CI_DIR)
STUB_DIR = os.path.join(REPO_DIR, "engage-extension", "tests", "engage_stub")
PROBE = os.path.join(CI_DIR, "driver_probe.py")
sys.path.insert(0, CI_DIR)
sys.path.insert(1, STUB_DIR)

import engage_testing  # noqa: E402 (the stub's helpers: instances; it imports no engage module here)
import interpreters  # noqa: E402

EXTENSION = "datablox"

# Keys Engage's standard metadata (`metadata/resource_definitions.json` of Engage) defines that an
# extension may use, with the versions defined there. Versions are strings compared as the config
# engine compares them (see `version_matches`): `pip`'s version is the string "any".
PLATFORMS = {"ubuntu-linux": ["11.10", "12.04", "14.04"], "mac-osx": ["10.5", "10.6"]}
STANDARD = {
    "python": ["2.5", "2.6", "2.7"], "pip": ["any"], "setuptools": ["0.6"], "pyzmq-abstract": ["2.1"],
    "pycrypto": ["2.3"], "gunicorn": ["0.17"], "java-virtual-machine-abstract": ["1.5", "1.6"],
    "pymongo": ["2.1"], "redis": ["2.4"], "lxml": ["2.3"], "sunburnt": ["0.5"], "psycopg2": ["2.4"],
    "boto": ["2.12"], "pytz": ["2013"], "six": ["1.7"], "PyYAML": ["any"], "engage_utils": ["1.0"],
}
# The host port every platform provides (Engage's platform definitions, output port `host`).
HOST_PORT = {"genforma_home": "path", "log_directory": "path", "hostname": "string",
             "os_user_name": "string", "os_type": "string", "cpu_arch": "string",
             "private_ip": "string", "sudo_password": "password"}
# engine/preprocess_resources.py create_install_spec: `dynamic-host *` is replaced by the machine.
DYNAMIC_HOST = {"name": "dynamic-host", "version": "*"}

# engine/library.py register_package_class calls: package class -> (type, Engage's Python class).
PACKAGE_CLASSES = {
    "FilePackage": ("File", "FilePackage"), "GzippedTarArchive": ("Archive", "GzippedTarFilePackage"),
    "ZipArchive": ("Archive", "ZipPackage"), "EasyInstallLink": ("Reference", "EasyInstallPythonPackage"),
    "PipLink": ("Reference", "PipPythonPackage"), "MacPorts": ("Reference", "MacPortsPackage"),
    "AptGet": ("Reference", "AptGetPackage"), "DummyPackage": ("Reference", "DummyPackage"),
}
# engine/library.py register_downloader_class calls.
DOWNLOADERS = {"HTTPDownloader", "CloudfilesDownloader"}
# What each of our manager modules accepts in install(package) (their docstrings say why):
# a library entry naming the module must hand it one of these package classes.
DRIVER_PACKAGES = {
    "python_package_driver": {"GzippedTarArchive"},
    "pip_package_driver": {"PipLink"},
    "file_package_driver": {"FilePackage"},
    "system_python_driver": {"DummyPackage"},
    "generic_blox_driver": {"GzippedTarArchive"},
}
# parse_rdef.ml parse_key_constraint: the relational operators of a version range.
RANGE_KEYS = {"greater-than", "greater-than-or-equal", "less-than", "less-than-or-equal"}
# templates.ml: `variable_pat` and `dollar_escape_pat`, searched together (`search_re`).
TEMPLATE_TOKEN = re.compile(r"\$\{([0-9A-Za-z_.]+)\}|\$\$")
# engine/installer_config.py CONFIG_PROPERTY_TYPES and _app_archive_validator_map.
INSTALLER_PROPERTY_TYPES = {"string", "hostname", "password", "int", "file", "path-to-be-created",
                            "install-subdir", "yes-or-no", "lov"}
APP_ARCHIVE_TYPES = {"django-archive", "war-file"}

# `python3 -m pip` for the driver probe: nothing is downloaded; an install writes what pip's
# --target writes (the package, its dist-info, its scripts in <target>/bin), replacing an
# existing entry only with --upgrade, as pip does.
FAKE_PIP = r'''import os, re, shutil, sys
args = sys.argv[1:]
if args[:3] == ["-m", "pip", "--version"]:
    print("pip (check_extension's stand-in)")
    sys.exit(0)
target = args[args.index("--target") + 1]
name = re.split(r"[=<>!~ ;\[]", os.path.basename(args[-1]))[0] or "package"
for entry, file_name in ((name.replace("-", "_"), "__init__.py"), (name + ".dist-info", "METADATA"),
                         ("bin", name + "-script")):
    path = os.path.join(target, entry)
    if os.path.exists(path):
        if "--upgrade" not in args:
            continue
        shutil.rmtree(path)
    os.makedirs(path)
    open(os.path.join(path, file_name), "w").close()
'''

RDEF = "config_src/config/parse_rdef.ml"
GENERATE = "config_src/config/generate.ml"
TEMPLATES = "config_src/config/templates.ml"
PARSE_RESOURCE = "config_src/config/parse_resource.ml"
PY_RDEF = "python_pkg/engage/utils/rdef.py"
LIBRARY = "python_pkg/engage/engine/library.py"
INSTALLER_CONFIG = "python_pkg/engage/engine/installer_config.py"
FILE_LAYOUT = "python_pkg/engage/engine/engage_file_layout.py"
PREPROCESS = "python_pkg/engage/engine/preprocess_resources.py"
RESOURCE_MANAGER = "python_pkg/engage/drivers/resource_manager.py"
SERVICE_MANAGER = "python_pkg/engage/drivers/service_manager.py"
SEQUENCER = "python_pkg/engage/engine/install_sequencer.py"


def driver_dir_name(key):
    # python_pkg/engage/utils/file.py mangle_resource_key (case kept).
    return re.sub("[.-]", "_", (key["name"] + "__" + key["version"]).replace(" ", ""))


def key_text(key):
    return "%s %s" % (key.get("name"), json.dumps(key.get("version")) if isinstance(key.get("version"), dict)
                      else key.get("version"))


def is_scalar(value):
    return value is None or isinstance(value, (str, int, float, bool))


def version_matches(spec, version):
    """config_src/config/generate.ml `matches` with resources.ml `scalar_eq`/`scalar_gt`/...:
    a string version must be equal (`*` and `any` are plain strings, no wildcards), and a range
    compares strings byte by byte (so "10.10" < "10.5")."""
    if not isinstance(spec, dict):
        return spec == version
    tests = {"greater-than": lambda bound: version > bound, "greater-than-or-equal": lambda bound: version >= bound,
             "less-than": lambda bound: version < bound, "less-than-or-equal": lambda bound: version <= bound}
    return all(isinstance(bound, str) and tests[op](bound) for op, bound in spec.items())


def template_variables(text):
    """templates.ml parse_string: the variables of a string, and the `${` the config engine takes
    as literal text (no closing brace, or a character outside [0-9A-Za-z_.]): (variables, stray)."""
    variables, stray, index = [], [], 0
    for match in TEMPLATE_TOKEN.finditer(text):
        stray.extend(m.start() + index for m in re.finditer(r"\$\{", text[index:match.start()]))
        if match.group(1) is not None:
            variables.append(match.group(1))
        index = match.end()
    stray.extend(m.start() + index for m in re.finditer(r"\$\{", text[index:]))
    return variables, stray


class Checker:
    def __init__(self, tree):
        self.tree = tree
        self.problems = []
        self.definitions = {}      # (name, version) -> (definition, file)
        self.library = {}          # (name, version) -> (entry, file)
        self.driver_dirs = []      # names of drivers/* directories
        self.driver_packages = {}  # driver directory -> its packages.json list

    def problem(self, file_name, message, engage=None):
        self.problems.append((file_name, message + (" (Engage: %s)" % engage if engage else "")))

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
        # install_extension.py (process_args): an extension without version.txt is refused.
        try:
            with open(self.path("version.txt"), encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            if len(lines) != 1 or not lines[0].strip():
                self.problem("version.txt", "must hold exactly one non-empty line, found %d lines" % len(lines),
                             "install_extension.py process_args")
        except OSError:
            self.problem("version.txt", "missing", "install_extension.py process_args")
        # Drivers are imported as the package engage.drivers.<ext> (engine/library.py
        # LibraryEntry.get_manager_class, _load_newstyle_entry).
        if not os.path.isfile(self.path("drivers", "__init__.py")):
            self.problem("drivers/__init__.py", "missing: drivers/ is imported as a package",
                         LIBRARY + " LibraryEntry.get_manager_class")
        # install_extension.py (ExtensionInfo.install) copies each file of sw_packages into the flat
        # package cache; engine/library.py _parse_package looks files up by name in it.
        sw_packages = self.path("sw_packages")
        if os.path.isdir(sw_packages):
            for name in sorted(os.listdir(sw_packages)):
                full = os.path.join(sw_packages, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    self.problem("sw_packages/" + name, "not a plain file; the package cache is flat",
                                 "install_extension.py ExtensionInfo.install")
        if os.path.isdir(self.path("drivers")):
            self.driver_dirs = sorted(name for name in os.listdir(self.path("drivers"))
                                      if os.path.isdir(self.path("drivers", name)) and name != "__pycache__")
        else:
            self.problem("drivers", "missing")

    # ---- definitions --------------------------------------------------------------------------
    def add_definitions(self, relative, value):
        # engine/preprocess_resources.py preprocess_resource_file: an extension's file and each
        # driver's resources.json is a list, or an object with `resource_definitions`.
        if isinstance(value, dict) and isinstance(value.get("resource_definitions"), list):
            value = value["resource_definitions"]
        if not isinstance(value, list):
            self.problem(relative, "must be a JSON list of resource definitions (or an object with "
                         "`resource_definitions`)", PREPROCESS + " preprocess_resource_file")
            return []
        added = []
        for index, definition in enumerate(value):
            key = self.check_definition_head(relative, index, definition)
            if key is None:
                continue
            pair = (key["name"], key["version"])
            if pair in self.definitions:
                # The definitions are concatenated, then kept in a map by key (utils/rdef.py
                # create_resource_graph; generate.ml mk_rdef_database): the later one wins silently.
                self.problem(relative, "key `%s` is defined again (first in %s); Engage would keep only one"
                             % (key_text(key), self.definitions[pair][1]), PY_RDEF + " create_resource_graph")
                continue
            self.definitions[pair] = (definition, relative)
            added.append(pair)
        return added

    def check_definition_head(self, relative, index, definition):
        """parse_rdef.ml parse_rdef/parse_key and utils/rdef.py Resource: an object with a `key` (a
        non-empty map of scalars; ours are name and version strings) and a `display_name` string.
        One definition the config engine cannot parse stops every deployment: the definitions are
        merged into one file before it runs."""
        where = "definition #%d" % index
        if not isinstance(definition, dict):
            self.problem(relative, "%s is not an object" % where, RDEF + " parse_rdef")
            return None
        key = definition.get("key")
        if not (isinstance(key, dict) and isinstance(key.get("name"), str) and isinstance(key.get("version"), str)):
            self.problem(relative, "%s has no key {name, version} of strings" % where, RDEF + " parse_key")
            return None
        where = "`%s`" % key_text(key)
        if "display_name" not in definition:
            self.problem(relative, "%s: required property display_name not found: the config engine refuses the "
                         "merged definitions, so no deployment succeeds; add `display_name`" % where,
                         RDEF + " parse_rdef; " + PY_RDEF + " Resource.__init__")
        elif not isinstance(definition["display_name"], str):
            self.problem(relative, "%s: display_name must be a string" % where, RDEF + " parse_rdef")
        return key

    def load_definitions(self):
        central = self.load_json("metadata/resource_definitions.json")
        if central is not None:
            self.add_definitions("metadata/resource_definitions.json", central)
        for name in self.driver_dirs:
            relative = "drivers/%s/resources.json" % name
            for required in ("__init__.py", "driver.py"):
                if not os.path.isfile(self.path("drivers", name, required)):
                    # engine/library.py _load_newstyle_entry imports engage.drivers.<ext>.<dir>.driver.
                    self.problem("drivers/%s/%s" % (name, required), "missing",
                                 LIBRARY + " _load_newstyle_entry")
            value = self.load_json(relative)
            if value is None:
                continue
            added = self.add_definitions(relative, value)
            for pair in added:
                expected = driver_dir_name({"name": pair[0], "version": pair[1]})
                if expected != name:
                    # engine/library.py convert_resource_key_to_driver_module_names.
                    self.problem(relative, "defines `%s %s`, whose driver directory is %s, not %s"
                                 % (pair[0], pair[1], expected, name),
                                 LIBRARY + " convert_resource_key_to_driver_module_names")
            packages_relative = "drivers/%s/packages.json" % name
            packages = self.load_json(packages_relative)
            if packages is None:
                continue
            # engine/library.py _load_newstyle_entry: a list, parsed package by package, not empty.
            if not isinstance(packages, list) or not packages:
                self.problem(packages_relative, "must be a non-empty JSON list of packages",
                             LIBRARY + " _load_newstyle_entry")
            else:
                self.driver_packages[name] = packages
                self.check_packages(packages_relative, packages)

    def check_definition(self, pair, definition, relative):
        name = "`%s %s`" % pair
        ports = {"config_port": {}, "input_ports": {}, "output_ports": {}}
        # parse_rdef.ml parse_rdef: config_port is a map of property definitions; input_ports and
        # output_ports are maps of ports, each a map of property definitions.
        config = definition.get("config_port", {})
        if not isinstance(config, dict):
            self.problem(relative, "%s: config_port must be an object" % name, RDEF + " parse_rdef")
            config = {}
        for prop, spec in config.items():
            if self.check_property(relative, name, "config_port.%s" % prop, spec, "config_port"):
                ports["config_port"][prop] = spec
        for kind in ("input_ports", "output_ports"):
            value = definition.get(kind, {})
            if not isinstance(value, dict):
                self.problem(relative, "%s: %s must be an object" % (name, kind), RDEF + " parse_port_def_map")
                continue
            for port, props in value.items():
                if not isinstance(props, dict):
                    self.problem(relative, "%s: %s.%s must be an object of properties" % (name, kind, port),
                                 RDEF + " parse_port_def_map")
                    continue
                ports[kind][port] = props
                for prop, spec in props.items():
                    self.check_property(relative, name, "%s.%s.%s" % (kind, port, prop), spec, kind)
        self.check_references(relative, name, ports)
        self.check_config_values(relative, name, ports["config_port"])
        self.check_constraints(relative, name, definition, ports["input_ports"])

    def check_property(self, relative, name, where, spec, kind):
        """parse_rdef.ml parse_port_def / parse_prop_type / parse_prop_initialization."""
        if isinstance(spec, str):
            return True
        if not isinstance(spec, dict):
            self.problem(relative, "%s: %s must be a type string or an object with `type`" % (name, where),
                         RDEF + " parse_port_def")
            return False
        if "type" not in spec:
            self.problem(relative, "%s: %s: type property missing in property definition" % (name, where),
                         RDEF + " parse_port_def")
            return False
        prop_type = spec["type"]
        if not (isinstance(prop_type, (str, dict)) or (isinstance(prop_type, list) and len(prop_type) == 1)):
            self.problem(relative, "%s: %s: type must be a string, a map or a one-element list" % (name, where),
                         RDEF + " parse_prop_type")
        # Only one initial value, and each only on its own kind of port.
        allowed = {"source": "output_ports", "fixed-value": "output_ports", "default": "config_port",
                   "includes": "input_ports"}
        given = [value_key for value_key in allowed if value_key in spec]
        if len(given) > 1:
            self.problem(relative, "%s: %s has %s: only one of source, fixed-value, default, includes"
                         % (name, where, " and ".join(given)), RDEF + " parse_prop_initialization")
        for value_key in given:
            if allowed[value_key] != kind:
                self.problem(relative, "%s: %s has `%s`, only valid for %s" % (name, where, value_key,
                                                                               allowed[value_key]),
                             RDEF + " parse_prop_initialization")
        if "fixed_value" in spec:
            self.problem(relative, "%s: %s has `fixed_value`; the key is `fixed-value`" % (name, where),
                         PY_RDEF + " PortProperty.validate")
        return True

    # ---- references ---------------------------------------------------------------------------
    def check_references(self, relative, name, ports):
        """The `${...}` in property values, as the config engine reads them."""
        for where, text in self.value_strings(ports):
            variables, stray = template_variables(text)
            for position in stray:
                # templates.ml parse_string: a `${` that does not start `${[0-9A-Za-z_.]+}` is
                # literal text, not an error there: the value would reach the node unresolved.
                self.problem(relative, "%s: %s has `${` at offset %d with no valid closing `}` (or a character "
                             "outside [0-9A-Za-z_.]): the config engine keeps it as literal text"
                             % (name, where, position), TEMPLATES + " parse_string")
            for variable in variables:
                problem = self.reference_problem(variable, ports)
                if problem:
                    self.problem(relative, "%s: %s refers to ${%s}: %s" % (name, where, variable, problem[0]),
                                 problem[1])

    @staticmethod
    def reference_problem(variable, ports):
        """parse_rdef.ml parse_port_reference (a whole-string reference), generate.ml
        port_reference_of_string (a template's variable) and check_ports_exist_in_rdef: a
        reference is `config_port.X` or `input_ports.P.X` and names a property of this resource."""
        parts = variable.split(".")
        if parts[0] == "config_port" and len(parts) == 2:
            if parts[1] in ports["config_port"]:
                return None
            return ("no config property %s" % parts[1], GENERATE + " check_ports_exist_in_rdef")
        if parts[0] == "input_ports" and len(parts) == 3:
            if parts[2] in ports["input_ports"].get(parts[1], {}):
                return None
            return ("no property %s in input port %s" % (parts[2], parts[1]),
                    GENERATE + " check_ports_exist_in_rdef")
        return ("the config engine resolves only config_port.X and input_ports.PORT.X",
                RDEF + " parse_port_reference; " + GENERATE + " port_reference_of_string")

    @staticmethod
    def value_strings(ports):
        for prop, spec in ports["config_port"].items():
            if isinstance(spec, dict) and isinstance(spec.get("default"), str):
                yield "config_port.%s default" % prop, spec["default"]
        for kind in ("input_ports", "output_ports"):
            for port, props in ports[kind].items():
                for prop, spec in props.items():
                    for value_key in ("fixed-value", "source", "includes", "default"):
                        if isinstance(spec, dict) and isinstance(spec.get(value_key), str):
                            value = spec[value_key]
                            if value_key == "source":
                                value = "${%s}" % value  # a source is a bare reference
                            yield "%s.%s.%s %s" % (kind, port, prop, value_key), value

    # ---- config ports -------------------------------------------------------------------------
    def check_config_values(self, relative, name, config):
        """generate.ml fill_in_config_ports ("No initial value given for config port") and
        get_config_ports: a config property without `default` must be given by the install spec.
        Resources the config engine adds for a dependency get no config values (generate.ml
        make_new_tmp_inst), and every block is deployed on demand from a spec naming only its key,
        so every config property needs a default; configuration of a running block belongs to the
        topology. A default is a scalar (get_config_ports asserts on maps and lists)."""
        for prop, spec in sorted(config.items()):
            if not isinstance(spec, dict) or "default" not in spec:
                self.problem(relative, "%s: config port property `%s` has no default: an install spec naming only "
                             "the key (how blocks and dependencies are deployed) gives it no value, and the "
                             "config engine refuses the instance (\"No initial value given for config port\"); "
                             "give it a default, or move the setting to the topology" % (name, prop),
                             GENERATE + " fill_in_config_ports")
            elif not is_scalar(spec["default"]):
                self.problem(relative, "%s: config port property `%s` has a default that is not a scalar"
                             % (name, prop), GENERATE + " get_config_ports")

    # ---- constraints --------------------------------------------------------------------------
    def check_constraints(self, relative, name, definition, input_ports):
        """Constraint forms (parse_rdef.ml parse_choice_constraint, parse_compound_constraint) and
        port feeding (utils/rdef.py Resource.validate): each section yields the ports mapped in
        every solution (`all`) and in some only (`some`)."""
        all_ports, some_ports = set(), set()
        for section in ("inside", "environment", "peers"):
            value = definition.get(section)
            if value is None or value == {}:
                continue  # parse_rdef.ml has_nonempty_map_prop: absent or {} means none
            if not isinstance(value, dict):
                self.problem(relative, "%s: %s must be an object" % (name, section), RDEF + " has_nonempty_map_prop")
                continue
            if "one-of" in value and "all-of" in value:
                self.problem(relative, "%s: %s has both one-of and all-of" % (name, section),
                             RDEF + " parse_compound_constraint")
                continue
            if section == "inside" and "all-of" in value:
                # parse_rdef.ml parse_rdef reads `inside` with parse_choice_constraint (an atomic
                # constraint or one-of), and utils/rdef.py Resource asserts it is not all-of.
                self.problem(relative, "%s: inside cannot be all-of (a resource lives in one place)" % name,
                             RDEF + " parse_choice_constraint; " + PY_RDEF + " Resource.__init__")
                continue
            if "all-of" in value:
                found = self.check_all_of(relative, name, section, value["all-of"], input_ports)
            else:
                found = self.check_choice(relative, name, section, value, input_ports)
            if found is None:
                continue
            all_ports |= found[0]
            some_ports |= found[1]
        all_ports -= some_ports
        for port in sorted(input_ports):
            if port in all_ports:
                continue
            if port in some_ports:
                self.problem(relative, "%s: input port %s is not fed by a port_mapping in every alternative"
                             % (name, port), PY_RDEF + " Resource.validate")
            else:
                self.problem(relative, "%s: input port %s is not fed by a port_mapping in any constraint"
                             % (name, port), PY_RDEF + " Resource.validate; " + GENERATE + " map_input_ports")

    def check_all_of(self, relative, name, section, items, input_ports):
        # utils/rdef.py AllOfConstraint.validate: the union of its members' sets.
        if not isinstance(items, list):
            self.problem(relative, "%s: %s.all-of must be a list" % (name, section), RDEF + " parse_compound_constraint")
            return None
        all_ports, some_ports = set(), set()
        for item in items:
            if isinstance(item, dict) and "all-of" in item:
                self.problem(relative, "%s: %s: all-of inside all-of is not a constraint" % (name, section),
                             RDEF + " parse_choice_constraint")
                continue
            found = self.check_choice(relative, name, section, item, input_ports)
            if found:
                all_ports |= found[0]
                some_ports |= found[1]
        return all_ports - some_ports, some_ports

    def check_choice(self, relative, name, section, value, input_ports):
        # utils/rdef.py OneOfConstraint.validate: ports mapped by every alternative, and by some.
        if isinstance(value, dict) and "one-of" in value:
            alternatives = value["one-of"]
            if not isinstance(alternatives, list) or not alternatives:
                self.problem(relative, "%s: %s.one-of must be a non-empty list" % (name, section),
                             RDEF + " parse_choice_constraint; " + PY_RDEF + " OneOfConstraint.validate")
                return None
            sets = [self.check_atomic(relative, name, section, item, input_ports) for item in alternatives]
            sets = [found for found in sets if found is not None]
            if not sets:
                return None
            every = set.intersection(*sets)
            return every, set.union(*sets) - every
        found = self.check_atomic(relative, name, section, value, input_ports)
        return None if found is None else (found, set())

    def check_atomic(self, relative, name, section, constraint, input_ports):
        """parse_rdef.ml parse_atomic_constraint / parse_key_constraint, generate.ml matches and
        utils/rdef.py BaseConstraint.validate. Returns the input ports it maps."""
        key = constraint.get("key") if isinstance(constraint, dict) else None
        if not isinstance(key, dict) or not isinstance(key.get("name"), str) or "version" not in key:
            self.problem(relative, "%s: a constraint of %s has no key {name, version}" % (name, section),
                         RDEF + " parse_atomic_constraint")
            return None
        spec = key["version"]
        if isinstance(spec, dict):
            bad = sorted(op for op in spec if op not in RANGE_KEYS)
            if bad or not spec or not all(isinstance(bound, str) for bound in spec.values()):
                self.problem(relative, "%s: %s constraint on %s has an invalid version range %s (operators: %s)"
                             % (name, section, key["name"], json.dumps(spec), ", ".join(sorted(RANGE_KEYS))),
                             RDEF + " parse_key_constraint")
                return None
        elif not isinstance(spec, str):
            self.problem(relative, "%s: %s constraint on %s: version must be a string or a range object"
                         % (name, section, key["name"]), RDEF + " parse_key_constraint")
            return None
        matches = self.matching(key["name"], spec)
        if not matches:
            self.problem(relative, "%s: %s constraint `%s %s` matches no defined resource and no key Engage defines "
                         "(versions compare as strings: `*` matches only a version \"*\")"
                         % (name, section, key["name"], json.dumps(spec)),
                         GENERATE + " matches; " + PY_RDEF + " BaseConstraint.find_all_matching")
            return set()
        mapping = constraint.get("port_mapping", {})
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            self.problem(relative, "%s: port_mapping must map input ports to output port names" % name,
                         RDEF + " parse_port_mapping")
            return set()
        for mine, theirs in sorted(mapping.items()):
            if mine not in input_ports:
                self.problem(relative, "%s: port_mapping maps %s, which is not an input port" % (name, mine),
                             PY_RDEF + " BaseConstraint.validate")
                continue
            for provider, outputs in matches:
                if outputs is None:
                    self.problem(relative, "%s: port_mapping %s -> %s of %s, whose ports this checker does not "
                                 "know (Engage's own resource)" % (name, mine, theirs, provider))
                    continue
                port = outputs.get(theirs)
                if not isinstance(port, dict):
                    self.problem(relative, "%s: port_mapping %s -> %s, but %s has no output port %s"
                                 % (name, mine, theirs, provider, theirs), PY_RDEF + " BaseConstraint.validate")
                    continue
                for prop in sorted(input_ports[mine]):
                    if prop not in port:
                        self.problem(relative, "%s: input port %s needs %s, which output port %s of %s does not "
                                     "provide" % (name, mine, prop, theirs, provider),
                                     PY_RDEF + " BaseConstraint.validate")
        return set(mapping) & set(input_ports)

    def matching(self, name, spec):
        """[(description, output ports or None if unknown)] of the resources a constraint matches."""
        found = []
        for (defined_name, version), (definition, _file) in sorted(self.definitions.items()):
            if defined_name == name and version_matches(spec, version):
                outputs = definition.get("output_ports") if isinstance(definition.get("output_ports"), dict) else {}
                found.append(("`%s %s`" % (defined_name, version), outputs))
        if name in PLATFORMS:
            for version in PLATFORMS[name]:
                if version_matches(spec, version):
                    found.append(("Engage's `%s %s`" % (name, version), {"host": HOST_PORT}))
        elif name in STANDARD:
            for version in STANDARD[name]:
                if version_matches(spec, version):
                    found.append(("Engage's `%s %s`" % (name, version), None))
        return found

    # ---- library ------------------------------------------------------------------------------
    def load_library(self):
        relative = "metadata/resource_library.json"
        if not os.path.exists(self.path(relative)):
            return  # optional: engine/engage_file_layout.py _get_extension_files skips what is absent
        library = self.load_json(relative)
        if library is None:
            return
        if not isinstance(library, list):
            # engine/library.py preprocess_library_file takes a list; its object branch calls the
            # misspelt `isintance` and fails with NameError.
            self.problem(relative, "must be a JSON list of library entries", LIBRARY + " preprocess_library_file")
            return
        for index, entry in enumerate(library):
            # engine/library.py _parse_entry: key (object), mgr_module_name (string), packages (list).
            key = entry.get("key") if isinstance(entry, dict) else None
            if not isinstance(key, dict) or "name" not in key or "version" not in key:
                self.problem(relative, "entry #%d has no key" % index, LIBRARY + " _parse_entry")
                continue
            pair = (key["name"], key["version"])
            if pair in self.library:
                self.problem(relative, "two entries for `%s`" % key_text(key), LIBRARY + " InMemoryLibrary.add_entry")
            self.library[pair] = (entry, relative)
            module = entry.get("mgr_module_name")
            if not isinstance(module, str) or not module.startswith("engage.drivers."):
                self.problem(relative, "`%s`: mgr_module_name %r is not an engage.drivers.* module"
                             % (key_text(key), module), LIBRARY + " _parse_entry")
            elif module.startswith("engage.drivers.%s." % EXTENSION):
                stem = module[len("engage.drivers.%s." % EXTENSION):]
                if not os.path.isfile(self.path("drivers", *stem.split(".")) + ".py"):
                    self.problem(relative, "`%s`: driver module %s has no file drivers/%s.py"
                                 % (key_text(key), module, stem.replace(".", "/")),
                                 LIBRARY + " LibraryEntry.get_manager_class")
            packages = entry.get("packages", [])
            if not isinstance(packages, list):
                self.problem(relative, "`%s`: packages must be a list" % key_text(key), LIBRARY + " _parse_entry")
                continue
            where = "%s (%s)" % (relative, key_text(key))
            self.check_packages(where, packages)
            if isinstance(module, str):
                self.check_driver_packages(where, module.rsplit(".", 1)[-1], packages)

    def check_packages(self, where, packages):
        """engine/library.py _parse_package and FilePackage.is_available."""
        sw_packages = self.path("sw_packages")
        for index, package in enumerate(packages):
            if not isinstance(package, dict):
                self.problem(where, "package #%d is not an object" % index, LIBRARY + " _parse_package")
                continue
            missing = [field for field in ("type", "location", "package_class") if field not in package]
            if missing:
                self.problem(where, "package #%d lacks %s" % (index, ", ".join(missing)), LIBRARY + " _parse_package")
                continue
            kind, package_class, location = package["type"], package["package_class"], package["location"]
            if package_class not in PACKAGE_CLASSES:
                self.problem(where, "package #%d: unknown package class %r" % (index, package_class),
                             LIBRARY + " _parse_package")
                continue
            if PACKAGE_CLASSES[package_class][0] != kind:
                self.problem(where, "package #%d: wrong package type %r for %s, expecting %r"
                             % (index, kind, package_class, PACKAGE_CLASSES[package_class][0]),
                             LIBRARY + " _parse_package")
            if isinstance(location, list) and location and all(isinstance(url, str) for url in location):
                # A list of mirrors (get_json_property with UnionType(unicode, str, list)); only a
                # downloader can fetch it.
                if package.get("downloader") is None:
                    self.problem(where, "package #%d: a list of locations needs a downloader" % index,
                                 LIBRARY + " _parse_package")
                continue
            if not isinstance(location, str):
                self.problem(where, "package #%d: location must be a string or a list of URLs" % index,
                             LIBRARY + " _parse_package")
                continue
            if package_class == "DummyPackage" and location != "":
                self.problem(where, "package #%d: a DummyPackage has location \"\"" % index)
            if kind in ("Archive", "File"):
                downloader = package.get("downloader")
                if downloader is not None:
                    if downloader not in DOWNLOADERS:
                        self.problem(where, "package #%d: invalid downloader %r" % (index, downloader),
                                     LIBRARY + " _parse_package")
                    if not isinstance(package.get("filename"), str):
                        self.problem(where, "package #%d: a downloaded package needs `filename`" % index,
                                     LIBRARY + " _parse_package")
                elif "/" in location or not os.path.isfile(os.path.join(sw_packages, location)):
                    # Without a downloader the file must be in the cache, else the package is not
                    # available and the driver gets no package (install_sequencer.py run_install).
                    self.problem(where, "package #%d: %s is not a file of sw_packages" % (index, location or '""'),
                                 LIBRARY + " FilePackage.is_available")

    def check_driver_packages(self, where, module, packages):
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
        self.problem(where, "%s receives the package class %s (Engage's %s), but installs only %s%s"
                     % (module, package_class, PACKAGE_CLASSES.get(package_class, ("", "?"))[1],
                        ", ".join(sorted(accepted)), hint), LIBRARY + " LibraryEntry.get_package")

    def check_coverage(self):
        # engine/install_sequencer.py: a resource needs a library entry or a driver directory
        # (engine/library.py InMemoryLibrary.get_entry, then _load_newstyle_entry).
        dir_of = {driver_dir_name({"name": n, "version": v}): (n, v) for (n, v) in self.definitions}
        for pair, (_definition, relative) in sorted(self.definitions.items()):
            has_dir = driver_dir_name({"name": pair[0], "version": pair[1]}) in self.driver_dirs
            if not has_dir and pair not in self.library:
                self.problem(relative, "`%s %s` has neither a driver directory nor a resource_library.json entry" % pair,
                             LIBRARY + " InMemoryLibrary.get_entry")
        for name in self.driver_dirs:
            if name not in dir_of:
                self.problem("drivers/%s" % name, "driver directory of no defined resource")
        for pair, (_entry, relative) in sorted(self.library.items()):
            if pair not in self.definitions:
                self.problem(relative, "library entry for `%s %s`, which is not defined" % pair)

    # ---- installer and install specs ----------------------------------------------------------
    def check_installer(self):
        """engine/installer_config.py parse_installer_config and _parse_install_spec_options;
        engine/engage_file_layout.py get_install_spec_template_file, get_resource_def_file."""
        relative = "metadata/installer_config.json"
        if not os.path.exists(self.path(relative)):
            return set()  # optional: an extension need not be an installer
        config = self.load_json(relative)
        if config is None:
            return set()
        engage = INSTALLER_CONFIG + " parse_installer_config"
        if not isinstance(config, dict):
            self.problem(relative, "must be a JSON object", engage)
            return set()
        for field in ("resource_def_file_name", "software_library_file_name", "log_level", "application_name"):
            if field not in config:
                self.problem(relative, "missing required property %s" % field, engage)
            elif not isinstance(config[field], str):
                self.problem(relative, "property %s must be a string" % field, engage)
        # engage_file_layout.py get_resource_def_file/get_software_library_file open these names in
        # Engage's own metadata directory (not the extension's), and preprocess_resources.py needs
        # Engage's file there: only Engage's own file names work.
        for field, expected in (("resource_def_file_name", "resource_definitions.json"),
                                ("software_library_file_name", "resource_library.json")):
            if isinstance(config.get(field), str) and config[field] != expected:
                self.problem(relative, "%s is %r; Engage opens it in its own metadata directory, where only %s exists"
                             % (field, config[field], expected), FILE_LAYOUT + " get_resource_def_file")
        templates = set()
        options = config.get("install_spec_options")
        if "install_spec_file_name" in config and options is not None:
            self.problem(relative, "has both install_spec_options and install_spec_file_name",
                         INSTALLER_CONFIG + " _parse_install_spec_options")
        if not isinstance(options, list):
            self.problem(relative, "needs install_spec_options, a list", INSTALLER_CONFIG + " _parse_install_spec_options")
            return templates
        for index, option in enumerate(options):
            where = "install_spec_options[%d]" % index
            if not isinstance(option, dict):
                self.problem(relative, "%s is not an object" % where, INSTALLER_CONFIG + " _parse_install_spec_options")
                continue
            for field in ("choice_name", "file_name"):
                if field not in option:
                    self.problem(relative, "%s: missing %s" % (where, field),
                                 INSTALLER_CONFIG + " _parse_install_spec_options")
            for prop in option.get("config_properties", []) or []:
                self.check_installer_property(relative, where, prop)
            file_name = option.get("file_name")
            if not isinstance(file_name, str):
                continue
            template = file_name + ".tmpl"
            templates.add(template)
            if file_name.endswith(".tmpl"):
                self.problem(relative, "%s: file_name %s ends in .tmpl; Engage appends .tmpl itself and would look "
                             "for %s: give %s" % (where, file_name, template, file_name[:-len(".tmpl")]),
                             FILE_LAYOUT + " get_install_spec_template_file")
            elif not os.path.isfile(self.path("metadata", template)):
                self.problem(relative, "%s: Engage looks for the template metadata/%s, which does not exist"
                             % (where, template), FILE_LAYOUT + " get_install_spec_template_file")
        archive = config.get("application_archive")
        if archive is not None:
            if not isinstance(archive, dict) or not all(f in archive for f in ("resource", "name", "description",
                                                                                 "archive_type")):
                self.problem(relative, "application_archive needs resource, name, description, archive_type", engage)
            elif archive["archive_type"] not in APP_ARCHIVE_TYPES:
                self.problem(relative, "application_archive: unknown archive_type %r" % archive["archive_type"], engage)
        return templates

    def check_installer_property(self, relative, where, prop):
        # engine/installer_config.py _validate_config_properties.
        engage = INSTALLER_CONFIG + " _validate_config_properties"
        if not isinstance(prop, dict):
            self.problem(relative, "%s: a config property is not an object" % where, engage)
            return
        for field in ("resource", "name", "type", "description"):
            if field not in prop:
                self.problem(relative, "%s: config property missing %s" % (where, field), engage)
        if "type" in prop and prop["type"] not in INSTALLER_PROPERTY_TYPES:
            self.problem(relative, "%s: unknown config property type %r" % (where, prop["type"]), engage)

    def check_install_specs(self, templates):
        """Install specs: the templates named by installer_config.json and every other *.json of
        metadata/ that is not Engage's own kind of file (e.g. caretaker_install_spec.json)."""
        metadata = self.path("metadata")
        if not os.path.isdir(metadata):
            self.problem("metadata", "missing")
            return
        own = {"resource_definitions.json", "resource_library.json", "installer_config.json"}
        for file_name in sorted(os.listdir(metadata)):
            if file_name in own or not (file_name.endswith(".json") or file_name in templates
                                        or file_name.endswith(".tmpl")):
                continue
            relative = "metadata/" + file_name
            spec = self.load_json(relative)
            if spec is not None:
                self.check_install_spec(relative, spec)

    def check_install_spec(self, relative, spec):
        # engine/preprocess_resources.py parse_raw_install_spec_file; parse_resource.ml parse_resource_list.
        if not isinstance(spec, list):
            self.problem(relative, "an install spec must be a JSON list of resource instances",
                         PREPROCESS + " parse_raw_install_spec_file")
            return
        ids = {}
        for index, instance in enumerate(spec):
            if not isinstance(instance, dict) or not isinstance(instance.get("id"), str):
                self.problem(relative, "instance #%d has no id" % index, PARSE_RESOURCE + " parse_resource_inst")
                continue
            if instance["id"] in ids:
                self.problem(relative, "id %s is used twice" % instance["id"],
                             PREPROCESS + " validate_install_spec")
            ids[instance["id"]] = instance.get("key")
        for instance in spec:
            if isinstance(instance, dict) and isinstance(instance.get("id"), str):
                self.check_spec_instance(relative, instance, ids)

    def check_spec_instance(self, relative, instance, ids):
        key = instance.get("key")
        where = "instance %s" % instance["id"]
        if not isinstance(key, dict) or not key or not all(is_scalar(v) for v in key.values()):
            self.problem(relative, "%s has no key (a non-empty map of scalars)" % where,
                         PARSE_RESOURCE + " parse_resource_key")
            return
        is_host = key == DYNAMIC_HOST
        defined = (key.get("name"), key.get("version")) in self.definitions \
            or key.get("version") in PLATFORMS.get(key.get("name"), []) \
            or key.get("version") in STANDARD.get(key.get("name"), [])
        if not is_host and not defined:
            self.problem(relative, "%s: key `%s` is not defined (\"Install key not found in resource database\")"
                         % (where, key_text(key)), GENERATE + " check_instance_key_exists_in_rdef")
        if "inside" not in instance and not is_host:
            # preprocess_resources.py create_install_spec: an instance inside nothing is a host; only
            # `dynamic-host *` is filled in with the machine, any other host must carry its config.
            self.problem(relative, "%s is inside nothing, so Engage takes it for a host; only `dynamic-host *` "
                         "is filled in with this machine" % where, PREPROCESS + " create_install_spec")
        config = instance.get("config_port", {})
        if not isinstance(config, dict):
            self.problem(relative, "%s: config_port must be an object" % where, PARSE_RESOURCE + " parse_resource_inst")
            config = {}
        definition = self.definitions.get((key.get("name"), key.get("version")), (None,))[0]
        if isinstance(definition, dict) and isinstance(definition.get("config_port"), dict):
            for prop, spec in sorted(definition["config_port"].items()):
                if prop not in config and not (isinstance(spec, dict) and "default" in spec):
                    self.problem(relative, "%s: config port property `%s` of `%s` gets no value"
                                 % (where, prop, key_text(key)), GENERATE + " fill_in_config_ports")
        references = []
        if "inside" in instance:
            references.append(("inside", instance["inside"]))
        for section in ("environment", "peers"):
            if section in instance:
                if not isinstance(instance[section], list):
                    self.problem(relative, "%s: %s must be a list of references" % (where, section),
                                 PARSE_RESOURCE + " parse_resource_ref_list")
                    continue
                references.extend((section, reference) for reference in instance[section])
        for section, reference in references:
            # parse_resource.ml parse_resource_ref: a reference has `id` and `key`.
            if not isinstance(reference, dict) or not isinstance(reference.get("id"), str) \
                    or not isinstance(reference.get("key"), dict):
                self.problem(relative, "%s: %s reference needs `id` and `key`" % (where, section),
                             PARSE_RESOURCE + " parse_resource_ref")
                continue
            target = reference["id"]
            if target not in ids:
                self.problem(relative, "%s: %s refers to id %r, which is not in this spec" % (where, section, target),
                             PREPROCESS + " fixup_installed_resources_in_install_spec")
            elif reference["key"] != ids[target]:
                self.problem(relative, "%s: %s names %s with key %s, but that instance's key is %s"
                             % (where, section, target, json.dumps(reference["key"]), json.dumps(ids[target])),
                             PREPROCESS + " fixup_installed_resources_in_install_spec")

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

    def instance_ports(self, pair, home, seen=()):
        """The input ports of an instance of `pair`, as the config engine fills them (generate.ml
        map_input_ports): each mapped port takes the output port of the resource its constraint
        matches (the first alternative of a one-of), platforms providing `host`."""
        definition = self.definitions[pair][0]
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
                    matches = [p for p in sorted(self.definitions)
                               if p[0] == key.get("name") and version_matches(key.get("version"), p[1])]
                    if not matches or matches[0] in seen:
                        continue
                    provider = self.make_instance_json(matches[0], home, seen + (pair,))
                    inputs[mine] = provider["output_ports"].get(theirs, {})
        return inputs

    def make_instance_json(self, pair, home, seen=()):
        definition = self.definitions[pair][0]
        inputs = self.instance_ports(pair, home, seen)
        return engage_testing.make_instance(definition, driver_dir_name({"name": pair[0], "version": pair[1]}),
                                            inputs).to_json()

    def installs(self, home):
        """Every resource our drivers install, with its first package, in dependency-ish order."""
        installs = []
        order = {"python_package_driver": 0, "system_python_driver": 1, "file_package_driver": 2,
                 "pip_package_driver": 3, "generic_blox_driver": 4}
        for pair, (definition, relative) in sorted(self.definitions.items()):
            dir_name = driver_dir_name({"name": pair[0], "version": pair[1]})
            if pair in self.library:
                entry = self.library[pair][0]
                module = entry.get("mgr_module_name")
                packages = entry.get("packages") or []
            elif dir_name in self.driver_packages:
                module = "engage.drivers.%s.%s.driver" % (EXTENSION, dir_name)
                packages = self.driver_packages[dir_name]
            else:
                continue
            if not isinstance(module, str) or not module.startswith("engage.drivers.%s." % EXTENSION):
                continue
            try:
                instance = self.make_instance_json(pair, home)
            except (KeyError, ValueError, TypeError) as error:
                self.problem(relative, "`%s %s`: cannot resolve its ports: %s" % (pair[0], pair[1], error))
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

    def run_probe(self, python, mode, request, engage_root, label, path=None):
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
                self.problem(record["file"], "%s: %s" % (label, record["problem"]), record.get("engage"))
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
            fake_pip = os.path.join(work, "fake_pip.py")
            with open(fake_pip, "w") as handle:
                handle.write(FAKE_PIP)
            fake_python3 = os.path.join(bin_dir, "python3")
            with open(fake_python3, "w") as handle:
                handle.write("#!/bin/sh\nexec '%s' '%s' \"$@\"\n" % (sys.executable, fake_pip))
            os.chmod(fake_python3, stat.S_IRWXU)
            request = {"home": home, "sw_packages": self.path("sw_packages"), "installs": self.installs(home),
                       "keep": ["python/bin/python"]}
            self.run_probe(interpreters.python3(), "install", request, engage_root, "install",
                           path=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
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
        templates = self.check_installer()
        self.check_install_specs(templates)
        if static_only or not os.path.isdir(self.path("drivers")):
            return None
        return self.check_drivers()


def main(argv):
    args = argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    static_only = "--static" in args
    as_json = "--json" in args
    args = [arg for arg in args if arg not in ("--static", "--json")]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: check_extension.py [--static] [--json] DIST_DIR", file=sys.stderr)
        return 2
    tree = os.path.join(os.path.abspath(args[0]), EXTENSION)
    checker = Checker(tree)
    ran = checker.run(static_only)
    summary = "%d resource definitions, %d driver directories" % (len(checker.definitions), len(checker.driver_dirs))
    if ran is not None:
        summary += ", drivers imported under %d interpreter(s), %d resources installed" % ran
    if as_json:
        print(json.dumps({"ok": not checker.problems, "tree": tree, "summary": summary,
                          "problems": [{"file": f, "message": m} for f, m in checker.problems]}, indent=2))
        return 1 if checker.problems else 0
    for file_name, message in checker.problems:
        print("%s: %s" % (file_name, message))
    if checker.problems:
        print("check_extension: %d problem(s) in %s (%s)" % (len(checker.problems), tree, summary))
        return 1
    print("check_extension: ok: %s (%s)" % (tree, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
