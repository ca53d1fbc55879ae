"""Test support beside the Engage stub: resource instances, library packages, and an Engage-like tree.

Engage builds these objects itself from its metadata; tests and `ci/check_extension.py` build them
here. Python 2.7 and 3.
"""
import json
import os
import re
import shutil

STUB_DIR = os.path.dirname(os.path.abspath(__file__))

_REFERENCE = re.compile(r"\$\{([^}]*)\}")


class ResourceMetadata(object):
    """What a driver's `Manager` receives; mirrors `engage/drivers/resource_metadata.py` `ResourceMD`:
    `id`, `key`, `properties`, `config_port`, `input_ports`, `output_ports`, `is_installed()` (the
    `installed` property) and `to_json()`."""

    def __init__(self, instance_json):
        # A JSON round trip gives the instance the types Engage's would have: `unicode` strings
        # under Python 2, so drivers are tested against `ctx.check_port(..., x=unicode)`.
        self._json = json.loads(json.dumps(instance_json))
        self.id = self._json["id"]
        self.key = self._json["key"]
        self.properties = self._json.setdefault("properties", {})
        self.config_port = self._json.setdefault("config_port", {})
        self.input_ports = self._json.setdefault("input_ports", {})
        self.output_ports = self._json.setdefault("output_ports", {})

    def is_installed(self):
        return bool(self.properties.get("installed"))

    def to_json(self):
        return json.loads(json.dumps(self._json))


def _property_type(spec):
    return spec if not isinstance(spec, dict) else spec.get("type")


def make_instance(definition, instance_id, input_ports, config_port=None):
    """A resource instance of `definition`: config defaults and given values, fixed-value outputs resolved.

    `input_ports` is `{port: {prop: value}}`, as the resources the ports are mapped to would provide.
    """
    config = {}
    for prop, spec in (definition.get("config_port") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            config[prop] = spec["default"]
    config.update(config_port or {})
    instance = {"id": instance_id, "key": definition["key"], "config_port": config,
                "input_ports": input_ports, "output_ports": {}}

    def lookup(reference, depth):
        parts = reference.split(".")
        if depth > 20:
            raise ValueError("references of %s loop" % reference)
        if len(parts) == 2 and parts[0] == "config_port":
            value = config[parts[1]]
        elif len(parts) == 3 and parts[0] == "input_ports":
            value = input_ports[parts[1]][parts[2]]
        elif len(parts) == 3 and parts[0] == "output_ports":
            value = resolve(definition["output_ports"][parts[1]][parts[2]].get("fixed-value"), depth + 1)
        else:
            raise ValueError("cannot resolve ${%s}" % reference)
        return value

    def resolve(value, depth):
        if not isinstance(value, ("".__class__, u"".__class__)):
            return value
        return _REFERENCE.sub(lambda match: "%s" % (lookup(match.group(1), depth),), value)

    for port, props in (definition.get("output_ports") or {}).items():
        instance["output_ports"][port] = {}
        for prop, spec in props.items():
            if isinstance(spec, dict) and "fixed-value" in spec:
                instance["output_ports"][port][prop] = resolve(spec["fixed-value"], 0)
    for value_map in (config,):
        for prop in list(value_map):
            value_map[prop] = resolve(value_map[prop], 0)
    return ResourceMetadata(instance)


def package_from_json(package_json, sw_packages_dir):
    """The library package of a `packages.json` entry, as Engage builds it (`engage.engine.library`:
    `GzippedTarFilePackage`, `PipPythonPackage`, ...), reading files from `sw_packages_dir`."""
    # Imported here: tests lay out their own `engage` package before the first use.
    from engage.engine import library
    return library.parse_package(package_json, sw_packages_dir)


def _ignore_bytecode(directory, names):
    return [name for name in names if name == "__pycache__" or name.endswith(".pyc")]


def build_engage_tree(dest_dir, extension_drivers_dir, extension="datablox"):
    """Lay out `dest_dir/engage/` as Engage does: the stub, with the extension's drivers as `engage/drivers/<ext>/`.

    The result is the directory to put first on `sys.path`.
    """
    shutil.copytree(os.path.join(STUB_DIR, "engage"), os.path.join(dest_dir, "engage"),
                    ignore=_ignore_bytecode)
    shutil.copytree(extension_drivers_dir, os.path.join(dest_dir, "engage", "drivers", extension),
                    ignore=_ignore_bytecode)
    return dest_dir
