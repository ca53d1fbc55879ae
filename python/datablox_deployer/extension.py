"""The extension tree a deploy reads: `datablox/` as `cargo xtask dist` writes it, or the copy
of it in a home (`<home>/engage/`). Reads only; every problem names the file.

  version.txt, metadata/resource_definitions.json, metadata/resource_library.json,
  metadata/*install_spec*.json, drivers/<dir>/{resources,packages}.json, sw_packages/, bin/,
  SHA256SUMS (in the tree, as a home keeps it, or beside it, as `dist` writes it)
"""

import json
import os
import re

from . import DeployError

DEFINITIONS = os.path.join("metadata", "resource_definitions.json")
LIBRARY = os.path.join("metadata", "resource_library.json")
DEFAULT_SPEC = "caretaker_install_spec.json"


def key_tuple(key):
    return (key["name"], key["version"])


def key_text(key):
    name, version = key if isinstance(key, tuple) else key_tuple(key)
    return "{} {}".format(name, version)


def driver_dir_name(key):
    """Engage's driver directory of a key: `re.sub('[.-]', '_', name + "__" + version)`."""
    name, version = key_tuple(key)
    return re.sub("[.-]", "_", (name + "__" + version).replace(" ", ""))


def read_json(path):
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except OSError as error:
        raise DeployError("cannot read {}: {}".format(path, error.strerror or error))
    except ValueError as error:
        raise DeployError("{}: not valid JSON: {} (help: rebuild the extension with `cargo xtask dist`)".format(path, error))


class Extension(object):
    """Definitions, packages and digests of one extension tree, by key (name, version)."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.definitions = {}
        self.order = []
        self.packages = {}
        self.managers = {}
        self.sums = {}
        self.sums_text = ""
        if not os.path.isfile(os.path.join(self.root, DEFINITIONS)):
            raise DeployError("{} is not an extension tree: it has no {} (help: pass the `datablox/` "
                              "directory that `cargo xtask dist` writes)".format(self.root, DEFINITIONS))
        self._load()

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def version(self):
        try:
            with open(self.path("version.txt")) as handle:
                return handle.read().strip()
        except OSError:
            return ""

    def _define(self, definition, origin):
        if not isinstance(definition, dict) or not isinstance(definition.get("key"), dict):
            raise DeployError("{}: a resource definition without a `key`".format(origin))
        key = key_tuple(definition["key"])
        if key in self.definitions:
            raise DeployError("{}: `{}` is defined twice (help: every key is defined exactly once)".format(origin, key_text(key)))
        self.definitions[key] = definition
        self.order.append(key)

    def _load(self):
        definitions = read_json(self.path(DEFINITIONS))
        if isinstance(definitions, dict):
            definitions = definitions.get("resource_definitions", [])
        for definition in definitions:
            self._define(definition, self.path(DEFINITIONS))
        library_path = self.path(LIBRARY)
        for entry in read_json(library_path) if os.path.isfile(library_path) else []:
            key = key_tuple(entry["key"])
            self.packages[key] = list(entry.get("packages", []))
            self.managers[key] = entry.get("mgr_module_name", "")
        drivers = self.path("drivers")
        for name in sorted(os.listdir(drivers)) if os.path.isdir(drivers) else []:
            resources = os.path.join(drivers, name, "resources.json")
            if not os.path.isfile(resources):
                continue
            for definition in read_json(resources):
                self._define(definition, resources)
                key = key_tuple(definition["key"])
                if key not in self.packages:
                    self.packages[key] = list(read_json(os.path.join(drivers, name, "packages.json")))
                    self.managers[key] = "engage.drivers.datablox.{}.driver".format(name)
        self._load_sums()

    def sums_file(self):
        """SHA256SUMS inside the tree (a home's copy), else beside it (as `dist` writes it)."""
        for candidate in (self.path("SHA256SUMS"), os.path.join(os.path.dirname(self.root), "SHA256SUMS")):
            if os.path.isfile(candidate):
                return candidate
        return None

    def _load_sums(self):
        path = self.sums_file()
        if path is None:
            return
        with open(path) as handle:
            self.sums_text = handle.read()
        for number, line in enumerate(self.sums_text.splitlines(), 1):
            if not line.strip():
                continue
            match = re.match(r"^([0-9a-f]{64}) [ *](.+)$", line)
            if not match:
                raise DeployError("{}:{}: not a `<sha256>  <path>` line".format(path, number))
            parts = match.group(2).split("/")
            if len(parts) >= 2 and parts[-2] == "sw_packages":
                self.sums[parts[-1]] = match.group(1)

    def home_sums(self):
        """SHA256SUMS as a home keeps it: paths relative to `<home>/engage`, for `sha256sum -c`."""
        return "".join("{}  sw_packages/{}\n".format(digest, name) for name, digest in sorted(self.sums.items()))

    def default_spec(self):
        """The install spec a plain deploy installs: a bundle's own (its `bundle.json` names it),
        else caretaker_install_spec.json."""
        marker = self.path("bundle.json")
        if os.path.isfile(marker):
            found = read_json(marker)
            spec = found.get("spec") if isinstance(found, dict) else None
            if isinstance(spec, str) and spec:
                return spec
        return DEFAULT_SPEC

    def spec(self, file_name=DEFAULT_SPEC):
        path = self.path("metadata", file_name)
        if not os.path.isfile(path):
            raise DeployError("{} does not exist (help: the extension's install specs are in {})".format(path, self.path("metadata")))
        spec = read_json(path)
        if not isinstance(spec, list):
            raise DeployError("{}: an install spec is a JSON list of resource instances".format(path))
        return spec

    def find(self, name, version=None):
        """Defined keys named `name` (case-insensitive), restricted to `version` when given."""
        lowered = name.lower()
        return [key for key in self.order if key[0].lower() == lowered and (version is None or key[1] == version)]
