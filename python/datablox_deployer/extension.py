"""The extension tree a deploy reads: `datablox/` as `cargo xtask dist` writes it, or the copy
of it in a home (`<home>/engage/`). Reads only; every problem names the file.

  version.txt, metadata/resource_definitions.json, metadata/resource_library.json,
  metadata/*install_spec*.json, drivers/<dir>/{resources,packages}.json, sw_packages/, bin/,
  SHA256SUMS (in the tree, as a home keeps it, or beside it, as `dist` writes it)
"""

import json
import os
import re

from datablox_framework.naming import name_problem

from . import DeployError

DEFINITIONS = os.path.join("metadata", "resource_definitions.json")
LIBRARY = os.path.join("metadata", "resource_library.json")
DEFAULT_SPEC = "caretaker_install_spec.json"
# The install spec of a bundle's node (`deploy place --bundle`): that node's placement.
NODE_SPEC = "node_install_spec.json"


def default_tree():
    """The tree around this deployer: `<tree>/bin/datablox_deployer/extension.py`."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def key_tuple(key):
    return (key["name"], key["version"])


def key_text(key):
    name, version = key if isinstance(key, tuple) else key_tuple(key)
    return "{} {}".format(name, version)


def driver_dir_name(key):
    """Engage's driver directory of a key: `re.sub('[.-]', '_', name + "__" + version)`."""
    name, version = key_tuple(key)
    return re.sub("[.-]", "_", (name + "__" + version).replace(" ", ""))


def did_you_mean(word, candidates):
    """"did you mean `X`? " for the candidate closest to `word` (difflib's ratio, case ignored),
    or "" when none is close: the start of a help text."""
    import difflib  # only for an error's help

    lowered = dict((c.lower(), c) for c in candidates)
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return "did you mean `{}`? ".format(lowered[close[0]]) if close else ""


def keys_text(keys):
    """`a 1.0, a 2.0, b 1.0`: names with their versions."""
    return ", ".join("{} {}".format(name, version) for name, version in sorted(keys))


def read_json(path):
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except OSError as error:
        raise DeployError("cannot read {}: {}".format(path, error.strerror or error))
    except ValueError as error:
        raise DeployError("{}: not valid JSON: {} (help: rebuild the extension with `cargo xtask dist`)".format(path, error))


class Extension(object):
    """Definitions, packages and digests of one extension tree, by key (name, version).

    The central metadata and SHA256SUMS are read at once; a driver directory
    (`drivers/<name>__<version>/`, named from its key as Engage names it) only when a key or a
    name it holds is asked for (`definition`, `package_list`, `manager`, `find`), so that a deploy
    of one block reads a few files, not two per resource of the extension. `definitions`,
    `order`, `packages` and `managers` read every directory first."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self._definitions = {}
        self._order = []
        self._by_name = {}  # lower-case name -> keys, as defined
        self._rank = {}
        self._packages = {}
        self._managers = {}
        self._dirs = None
        self._dirs_by_prefix = {}  # lower-case `<name>__` -> the driver directories it begins
        self._loaded_dirs = set()
        self._complete = False
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

    @property
    def definitions(self):
        self._load_all()
        return self._definitions

    @property
    def order(self):
        """Every key, in the order of the files: the central definitions, then the driver
        directories by name."""
        self._load_all()
        return self._order

    @property
    def packages(self):
        self._load_all()
        return self._packages

    @property
    def managers(self):
        self._load_all()
        return self._managers

    def definition(self, key):
        """The definition of `key`, or None; reads only its driver directory when it can."""
        if key not in self._definitions and not self._complete:
            self._load_dir(driver_dir_name({"name": key[0], "version": key[1]}))
            if key not in self._definitions:
                self._load_all()
        return self._definitions.get(key)

    def package_list(self, key):
        self.definition(key)
        return self._packages.get(key)

    def manager(self, key):
        self.definition(key)
        return self._managers.get(key, "")

    def _define(self, definition, origin, rank):
        if not isinstance(definition, dict) or not isinstance(definition.get("key"), dict):
            raise DeployError("{}: a resource definition without a `key`".format(origin))
        key = key_tuple(definition["key"])
        problem = name_problem("resource name", key[0]) or name_problem("version", key[1])
        if problem:
            raise DeployError("{}: {} (help: rebuild the extension with `cargo xtask dist`, whose check "
                              "refuses such a name)".format(origin, problem))
        if key in self._definitions:
            raise DeployError("{}: `{}` is defined twice (help: every key is defined exactly once)".format(origin, key_text(key)))
        self._definitions[key] = definition
        self._rank[key] = rank
        self._order.append(key)
        self._by_name.setdefault(key[0].lower(), []).append(key)

    def _load(self):
        definitions = read_json(self.path(DEFINITIONS))
        if isinstance(definitions, dict):
            definitions = definitions.get("resource_definitions", [])
        for index, definition in enumerate(definitions):
            self._define(definition, self.path(DEFINITIONS), (0, "", index))
        library_path = self.path(LIBRARY)
        for entry in read_json(library_path) if os.path.isfile(library_path) else []:
            key = key_tuple(entry["key"])
            self._packages[key] = list(entry.get("packages", []))
            self._managers[key] = entry.get("mgr_module_name", "")
        self._load_sums()

    def _driver_dirs(self):
        if self._dirs is None:
            drivers = self.path("drivers")
            self._dirs = sorted(os.listdir(drivers)) if os.path.isdir(drivers) else []
            for directory in self._dirs:
                # Under every prefix that ends in `__`: `a__b__1_0` may hold `a` or `a__b`.
                lowered = directory.lower()
                end = lowered.find("__")
                while end >= 0:
                    self._dirs_by_prefix.setdefault(lowered[:end + 2], []).append(directory)
                    end = lowered.find("__", end + 1)
        return self._dirs

    def _load_dir(self, name):
        if name in self._loaded_dirs:
            return
        self._loaded_dirs.add(name)
        drivers = self.path("drivers")
        resources = os.path.join(drivers, name, "resources.json")
        if not os.path.isfile(resources):
            return
        for index, definition in enumerate(read_json(resources)):
            self._define(definition, resources, (1, name, index))
            key = key_tuple(definition["key"])
            if key not in self._packages:
                self._packages[key] = list(read_json(os.path.join(drivers, name, "packages.json")))
                self._managers[key] = "engage.drivers.datablox.{}.driver".format(name)

    def _load_all(self):
        if self._complete:
            return
        for name in self._driver_dirs():
            self._load_dir(name)
        self._order.sort(key=self._rank.get)  # file order, whatever was read first
        self._complete = True

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
            match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
            if not match:
                raise DeployError("{}:{}: not a `<sha256>  <path>` line".format(path, number))
            parts = match.group(2).split("/")
            if len(parts) >= 2 and parts[-2] == "sw_packages":
                self.sums[parts[-1]] = match.group(1)

    def home_sums(self):
        """SHA256SUMS as a home keeps it: paths relative to `<home>/engage`, for `sha256sum -c`."""
        return "".join("{}  sw_packages/{}\n".format(digest, name) for name, digest in sorted(self.sums.items()))

    def bundle(self):
        """A bundle's `bundle.json` ({"node", "spec", ...}), or {} for a whole extension."""
        marker = self.path("bundle.json")
        found = read_json(marker) if os.path.isfile(marker) else {}
        return found if isinstance(found, dict) else {}

    def default_spec(self):
        """The install spec a plain deploy installs: a bundle's own (its `bundle.json` names it),
        else caretaker_install_spec.json."""
        spec = self.bundle().get("spec")
        return spec if isinstance(spec, str) and spec else DEFAULT_SPEC

    def node(self):
        """The node a bundle was made for, or None."""
        node = self.bundle().get("node")
        return node if isinstance(node, str) and node else None

    def spec(self, file_name=DEFAULT_SPEC):
        path = self.path("metadata", file_name)
        if not os.path.isfile(path):
            raise DeployError("{} does not exist (help: the extension's install specs are in {})".format(path, self.path("metadata")))
        spec = read_json(path)
        if not isinstance(spec, list):
            raise DeployError("{}: an install spec is a JSON list of resource instances".format(path))
        return spec

    def find(self, name, version=None):
        """Defined keys named `name` (case-insensitive), restricted to `version` when given, in
        file order. Reads the driver directories whose names start as this name's do (every
        directory when none does)."""
        lowered = name.lower()
        if not self._complete:
            self._driver_dirs()
            prefix = re.sub("[.-]", "_", name.replace(" ", "")).lower() + "__"
            for directory in self._dirs_by_prefix.get(prefix, ()):
                self._load_dir(directory)
            if lowered not in self._by_name:
                self._load_all()
        found = [key for key in self._by_name.get(lowered, ()) if version is None or key[1] == version]
        return sorted(found, key=self._rank.get)
