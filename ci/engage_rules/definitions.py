"""Resource definitions: metadata/resource_definitions.json and each driver directory's
resources.json and packages.json, read as parse_rdef.ml and utils/rdef.py read them; a definition's
ports and config port values (generate.ml fill_in_config_ports / get_config_ports)."""
import os

from .constraints import check_constraints
from .engage_facts import GENERATE, LIBRARY, PREPROCESS, PY_RDEF, RDEF, driver_dir_name, is_scalar, key_text
from .packages import check_packages
from .references import check_references


def add_definitions(tree, relative, value):
    # engine/preprocess_resources.py preprocess_resource_file: an extension's file and each
    # driver's resources.json is a list, or an object with `resource_definitions`.
    if isinstance(value, dict) and isinstance(value.get("resource_definitions"), list):
        value = value["resource_definitions"]
    if not isinstance(value, list):
        tree.problem(relative, "must be a JSON list of resource definitions (or an object with "
                     "`resource_definitions`)", PREPROCESS + " preprocess_resource_file")
        return []
    added = []
    for index, definition in enumerate(value):
        key = check_definition_head(tree, relative, index, definition)
        if key is None:
            continue
        pair = (key["name"], key["version"])
        if pair in tree.definitions:
            # The definitions are concatenated, then kept in a map by key (utils/rdef.py
            # create_resource_graph; generate.ml mk_rdef_database): the later one wins silently.
            tree.problem(relative, "key `%s` is defined again (first in %s); Engage would keep only one"
                         % (key_text(key), tree.definitions[pair][1]), PY_RDEF + " create_resource_graph")
            continue
        tree.definitions[pair] = (definition, relative)
        added.append(pair)
    return added


def check_definition_head(tree, relative, index, definition):
    """parse_rdef.ml parse_rdef/parse_key and utils/rdef.py Resource: an object with a `key` (a
    non-empty map of scalars; ours are name and version strings) and a `display_name` string.
    One definition the config engine cannot parse stops every deployment: the definitions are
    merged into one file before it runs."""
    where = "definition #%d" % index
    if not isinstance(definition, dict):
        tree.problem(relative, "%s is not an object" % where, RDEF + " parse_rdef")
        return None
    key = definition.get("key")
    if not (isinstance(key, dict) and isinstance(key.get("name"), str) and isinstance(key.get("version"), str)):
        tree.problem(relative, "%s has no key {name, version} of strings" % where, RDEF + " parse_key")
        return None
    where = "`%s`" % key_text(key)
    if "display_name" not in definition:
        tree.problem(relative, "%s: required property display_name not found: the config engine refuses the "
                     "merged definitions, so no deployment succeeds; add `display_name`" % where,
                     RDEF + " parse_rdef; " + PY_RDEF + " Resource.__init__")
    elif not isinstance(definition["display_name"], str):
        tree.problem(relative, "%s: display_name must be a string" % where, RDEF + " parse_rdef")
    return key


def load_definitions(tree):
    central = tree.load_json("metadata/resource_definitions.json")
    if central is not None:
        add_definitions(tree, "metadata/resource_definitions.json", central)
    for name in tree.driver_dirs:
        relative = "drivers/%s/resources.json" % name
        for required in ("__init__.py", "driver.py"):
            if not os.path.isfile(tree.path("drivers", name, required)):
                # engine/library.py _load_newstyle_entry imports engage.drivers.<ext>.<dir>.driver.
                tree.problem("drivers/%s/%s" % (name, required), "missing",
                             LIBRARY + " _load_newstyle_entry")
        value = tree.load_json(relative)
        if value is None:
            continue
        added = add_definitions(tree, relative, value)
        for pair in added:
            expected = driver_dir_name({"name": pair[0], "version": pair[1]})
            if expected != name:
                # engine/library.py convert_resource_key_to_driver_module_names.
                tree.problem(relative, "defines `%s %s`, whose driver directory is %s, not %s"
                             % (pair[0], pair[1], expected, name),
                             LIBRARY + " convert_resource_key_to_driver_module_names")
        packages_relative = "drivers/%s/packages.json" % name
        packages = tree.load_json(packages_relative)
        if packages is None:
            continue
        # engine/library.py _load_newstyle_entry: a list, parsed package by package, not empty.
        if not isinstance(packages, list) or not packages:
            tree.problem(packages_relative, "must be a non-empty JSON list of packages",
                         LIBRARY + " _load_newstyle_entry")
        else:
            tree.driver_packages[name] = packages
            check_packages(tree, packages_relative, packages)


def check_definition(tree, pair, definition, relative):
    name = "`%s %s`" % pair
    ports = {"config_port": {}, "input_ports": {}, "output_ports": {}}
    # parse_rdef.ml parse_rdef: config_port is a map of property definitions; input_ports and
    # output_ports are maps of ports, each a map of property definitions.
    config = definition.get("config_port", {})
    if not isinstance(config, dict):
        tree.problem(relative, "%s: config_port must be an object" % name, RDEF + " parse_rdef")
        config = {}
    for prop, spec in config.items():
        if check_property(tree, relative, name, "config_port.%s" % prop, spec, "config_port"):
            ports["config_port"][prop] = spec
    for kind in ("input_ports", "output_ports"):
        value = definition.get(kind, {})
        if not isinstance(value, dict):
            tree.problem(relative, "%s: %s must be an object" % (name, kind), RDEF + " parse_port_def_map")
            continue
        for port, props in value.items():
            if not isinstance(props, dict):
                tree.problem(relative, "%s: %s.%s must be an object of properties" % (name, kind, port),
                             RDEF + " parse_port_def_map")
                continue
            ports[kind][port] = props
            for prop, spec in props.items():
                check_property(tree, relative, name, "%s.%s.%s" % (kind, port, prop), spec, kind)
    check_references(tree, relative, name, ports)
    check_config_values(tree, relative, name, ports["config_port"])
    check_constraints(tree, relative, name, definition, ports["input_ports"])


def check_property(tree, relative, name, where, spec, kind):
    """parse_rdef.ml parse_port_def / parse_prop_type / parse_prop_initialization."""
    if isinstance(spec, str):
        return True
    if not isinstance(spec, dict):
        tree.problem(relative, "%s: %s must be a type string or an object with `type`" % (name, where),
                     RDEF + " parse_port_def")
        return False
    if "type" not in spec:
        tree.problem(relative, "%s: %s: type property missing in property definition" % (name, where),
                     RDEF + " parse_port_def")
        return False
    prop_type = spec["type"]
    if not (isinstance(prop_type, (str, dict)) or (isinstance(prop_type, list) and len(prop_type) == 1)):
        tree.problem(relative, "%s: %s: type must be a string, a map or a one-element list" % (name, where),
                     RDEF + " parse_prop_type")
    # Only one initial value, and each only on its own kind of port.
    allowed = {"source": "output_ports", "fixed-value": "output_ports", "default": "config_port",
               "includes": "input_ports"}
    given = [value_key for value_key in allowed if value_key in spec]
    if len(given) > 1:
        tree.problem(relative, "%s: %s has %s: only one of source, fixed-value, default, includes"
                     % (name, where, " and ".join(given)), RDEF + " parse_prop_initialization")
    for value_key in given:
        if allowed[value_key] != kind:
            tree.problem(relative, "%s: %s has `%s`, only valid for %s" % (name, where, value_key,
                                                                           allowed[value_key]),
                         RDEF + " parse_prop_initialization")
    if "fixed_value" in spec:
        tree.problem(relative, "%s: %s has `fixed_value`; the key is `fixed-value`" % (name, where),
                     PY_RDEF + " PortProperty.validate")
    return True


def check_config_values(tree, relative, name, config):
    """generate.ml fill_in_config_ports ("No initial value given for config port") and
    get_config_ports: a config property without `default` must be given by the install spec.
    Resources the config engine adds for a dependency get no config values (generate.ml
    make_new_tmp_inst), and every block is deployed on demand from a spec naming only its key,
    so every config property needs a default; configuration of a running block belongs to the
    topology. A default is a scalar (get_config_ports asserts on maps and lists)."""
    for prop, spec in sorted(config.items()):
        if not isinstance(spec, dict) or "default" not in spec:
            tree.problem(relative, "%s: config port property `%s` has no default: an install spec naming only "
                         "the key (how blocks and dependencies are deployed) gives it no value, and the "
                         "config engine refuses the instance (\"No initial value given for config port\"); "
                         "give it a default, or move the setting to the topology" % (name, prop),
                         GENERATE + " fill_in_config_ports")
        elif not is_scalar(spec["default"]):
            tree.problem(relative, "%s: config port property `%s` has a default that is not a scalar"
                         % (name, prop), GENERATE + " get_config_ports")
