"""Install specs in metadata/ (parse_resource.ml parse_resource_inst; engine/preprocess_resources.py
validate_install_spec / create_install_spec; generate.ml check_instance_key_exists_in_rdef)."""
import json
import os

from .engage_facts import GENERATE, PARSE_RESOURCE, PLATFORMS, PREPROCESS, STANDARD, is_scalar, key_text

# engine/preprocess_resources.py create_install_spec: `dynamic-host *` is replaced by the machine.
DYNAMIC_HOST = {"name": "dynamic-host", "version": "*"}


def check_install_specs(tree, templates):
    """Install specs: the templates named by installer_config.json and every other *.json of
    metadata/ that is not Engage's own kind of file (e.g. caretaker_install_spec.json)."""
    metadata = tree.path("metadata")
    if not os.path.isdir(metadata):
        tree.problem("metadata", "missing")
        return
    own = {"resource_definitions.json", "resource_library.json", "installer_config.json"}
    for file_name in sorted(os.listdir(metadata)):
        if file_name in own or not (file_name.endswith(".json") or file_name in templates
                                    or file_name.endswith(".tmpl")):
            continue
        relative = "metadata/" + file_name
        spec = tree.load_json(relative)
        if spec is not None:
            check_install_spec(tree, relative, spec)


def check_install_spec(tree, relative, spec):
    # engine/preprocess_resources.py parse_raw_install_spec_file; parse_resource.ml parse_resource_list.
    if not isinstance(spec, list):
        tree.problem(relative, "an install spec must be a JSON list of resource instances",
                     PREPROCESS + " parse_raw_install_spec_file")
        return
    ids = {}
    for index, instance in enumerate(spec):
        if not isinstance(instance, dict) or not isinstance(instance.get("id"), str):
            tree.problem(relative, "instance #%d has no id" % index, PARSE_RESOURCE + " parse_resource_inst")
            continue
        if instance["id"] in ids:
            tree.problem(relative, "id %s is used twice" % instance["id"],
                         PREPROCESS + " validate_install_spec")
        ids[instance["id"]] = instance.get("key")
    for instance in spec:
        if isinstance(instance, dict) and isinstance(instance.get("id"), str):
            check_spec_instance(tree, relative, instance, ids)


def check_spec_instance(tree, relative, instance, ids):
    key = instance.get("key")
    where = "instance %s" % instance["id"]
    if not isinstance(key, dict) or not key or not all(is_scalar(v) for v in key.values()):
        tree.problem(relative, "%s has no key (a non-empty map of scalars)" % where,
                     PARSE_RESOURCE + " parse_resource_key")
        return
    is_host = key == DYNAMIC_HOST
    defined = (key.get("name"), key.get("version")) in tree.definitions \
        or key.get("version") in PLATFORMS.get(key.get("name"), []) \
        or key.get("version") in STANDARD.get(key.get("name"), [])
    if not is_host and not defined:
        tree.problem(relative, "%s: key `%s` is not defined (\"Install key not found in resource database\")"
                     % (where, key_text(key)), GENERATE + " check_instance_key_exists_in_rdef")
    if "inside" not in instance and not is_host:
        # preprocess_resources.py create_install_spec: an instance inside nothing is a host; only
        # `dynamic-host *` is filled in with the machine, any other host must carry its config.
        tree.problem(relative, "%s is inside nothing, so Engage takes it for a host; only `dynamic-host *` "
                     "is filled in with this machine" % where, PREPROCESS + " create_install_spec")
    config = instance.get("config_port", {})
    if not isinstance(config, dict):
        tree.problem(relative, "%s: config_port must be an object" % where, PARSE_RESOURCE + " parse_resource_inst")
        config = {}
    definition = tree.definitions.get((key.get("name"), key.get("version")), (None,))[0]
    if isinstance(definition, dict) and isinstance(definition.get("config_port"), dict):
        for prop, spec in sorted(definition["config_port"].items()):
            if prop not in config and not (isinstance(spec, dict) and "default" in spec):
                tree.problem(relative, "%s: config port property `%s` of `%s` gets no value"
                             % (where, prop, key_text(key)), GENERATE + " fill_in_config_ports")
    references = []
    if "inside" in instance:
        references.append(("inside", instance["inside"]))
    for section in ("environment", "peers"):
        if section in instance:
            if not isinstance(instance[section], list):
                tree.problem(relative, "%s: %s must be a list of references" % (where, section),
                             PARSE_RESOURCE + " parse_resource_ref_list")
                continue
            references.extend((section, reference) for reference in instance[section])
    for section, reference in references:
        # parse_resource.ml parse_resource_ref: a reference has `id` and `key`.
        if not isinstance(reference, dict) or not isinstance(reference.get("id"), str) \
                or not isinstance(reference.get("key"), dict):
            tree.problem(relative, "%s: %s reference needs `id` and `key`" % (where, section),
                         PARSE_RESOURCE + " parse_resource_ref")
            continue
        target = reference["id"]
        if target not in ids:
            tree.problem(relative, "%s: %s refers to id %r, which is not in this spec" % (where, section, target),
                         PREPROCESS + " fixup_installed_resources_in_install_spec")
        elif reference["key"] != ids[target]:
            tree.problem(relative, "%s: %s names %s with key %s, but that instance's key is %s"
                         % (where, section, target, json.dumps(reference["key"]), json.dumps(ids[target])),
                         PREPROCESS + " fixup_installed_resources_in_install_spec")
