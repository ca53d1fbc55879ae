"""Requested keys -> the resource instances to install, resolved as Engage's config engine does
for what our manifests can express:

- `inside`: one constraint or `one-of`; the first alternative the host satisfies;
- `environment`, `peers`: one constraint, `all-of` (each) or `one-of` (the first that resolves,
  in order); a constraint is met by an installed instance first, else by the newest defined
  version that satisfies it and resolves in turn;
- versions as Engage's config engine matches them: an exact string, where `*` and `any` are
  versions like any other (no wildcards), or a range object whose bounds compare as strings;
- port mappings fill input ports from the provider's output ports; config ports take the given
  value or their default (none → refused, as Engage's config engine refuses it); `${...}` values
  are filled from the instance's own config, input and output ports;
- each resource once, dependencies (`inside`, `environment`) before the resource, peers after.

An unsatisfiable request raises an Unsatisfiable naming the chain of constraints that fails.
Reads nothing but the Extension and the installed instances it is given.
"""

import functools
import os
import re

from . import DeployError
from .extension import driver_dir_name, key_text, key_tuple

HOST_ID = "master-host"
PLATFORM_OF_SYSTEM = {"Linux": "ubuntu-linux", "Darwin": "mac-osx"}
REFERENCE = re.compile(r"\$\{([^}]*)\}")


class Unsatisfiable(DeployError):
    def __init__(self, chain, reason):
        DeployError.__init__(self, "cannot resolve {}: {}".format(" -> ".join(chain), reason))
        self.chain = list(chain)
        self.reason = reason


def compare_versions(a, b):
    """Dot-separated parts compared numerically when both are numbers, else as text (as `xtask`)."""
    left, right = a.split("."), b.split(".")
    for x, y in zip(left, right):
        if x.isdigit() and y.isdigit():
            x, y = int(x), int(y)
        if x != y:
            return -1 if x < y else 1
    return (len(left) > len(right)) - (len(left) < len(right))


def satisfies(version, requirement):
    """Whether a defined `version` meets `requirement`, as Engage's config engine decides
    (`config_src/config/generate.ml` `matches`, `resources.ml` `scalar_gt` and its siblings), so
    that the deployer resolves what `cargo xtask check` accepted the way Engage would: a string
    must be equal (`*` and `any` are plain strings), and range bounds compare strings character
    by character (`"10.10" < "10.5"`), not as dotted numbers."""
    if isinstance(requirement, dict):
        checks = {
            "greater-than": lambda bound: version > bound,
            "greater-than-or-equal": lambda bound: version >= bound,
            "less-than": lambda bound: version < bound,
            "less-than-or-equal": lambda bound: version <= bound,
        }
        return all(op in checks and checks[op](str(bound)) for op, bound in requirement.items())
    return requirement == version


def requirement_text(requirement):
    if isinstance(requirement, dict):
        symbols = {"greater-than": ">", "greater-than-or-equal": ">=", "less-than": "<", "less-than-or-equal": "<="}
        return ",".join(symbols.get(k, k) + str(v) for k, v in sorted(requirement.items()))
    return str(requirement)


def constraint_text(constraint):
    key = constraint.get("key", {})
    return "{} {}".format(key.get("name"), requirement_text(key.get("version")))


def alternatives(value):
    """(mode, [constraint]): mode is `all` or `one`; a lone constraint is `all` of one."""
    if not value:
        return "all", []
    if isinstance(value, list):
        return "all", value
    if "one-of" in value:
        return "one", list(value["one-of"])
    if "all-of" in value:
        return "all", list(value["all-of"])
    return "all", [value]


def detect_platform(extension, system=None):
    """The host's platform key, as Engage's `dynamic-host` becomes one: the OS family's platform
    name with the newest version the extension's `inside` constraints name."""
    system = system or os.uname().sysname  # what platform.system() says on a POSIX node
    name = PLATFORM_OF_SYSTEM.get(system)
    if name is None:
        raise DeployError("unsupported system `{}` (help: pass --platform NAME VERSION, e.g. "
                          "--platform ubuntu-linux 14.04)".format(system), 2)
    versions = []
    for definition in extension.definitions.values():
        for constraint in alternatives(definition.get("inside"))[1]:
            key = constraint.get("key", {})
            if key.get("name") != name:
                continue
            requirement = key.get("version")
            if isinstance(requirement, dict):
                versions.extend(str(v) for b, v in requirement.items() if b in ("greater-than-or-equal",))
            elif requirement not in ("*", "any"):
                versions.append(requirement)
    if not versions:
        raise DeployError("no resource of the extension is installable inside `{}` (help: pass "
                          "--platform NAME VERSION)".format(name), 2)
    newest = versions[0]
    for version in versions[1:]:
        if compare_versions(version, newest) > 0:
            newest = version
    return (name, newest)


def user_name():
    """The user's name as `getpass.getuser()` finds it (LOGNAME, USER, LNAME, USERNAME, else the
    password database), without importing getpass, which loads termios for its prompt."""
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(variable):
            return os.environ[variable]
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def host_instance(home, platform_key):
    """The instance of this machine, `master-host`, with the `host` output port Engage gives it."""
    home = os.path.abspath(home)
    props = {
        "genforma_home": home,
        "log_directory": os.path.join(home, "log"),
        # os.uname() is what socket.gethostname() and platform.machine() read on a POSIX node,
        # without importing them at an on-demand deploy's start.
        "hostname": os.uname().nodename,
        "os_user_name": user_name(),
        "os_type": platform_key[0],
        "cpu_arch": os.uname().machine,
        "private_ip": "127.0.0.1",
    }
    return {
        "id": HOST_ID,
        "key": {"name": platform_key[0], "version": platform_key[1]},
        "properties": {"installed": True, "use_as_install_target": True},
        "config_port": dict(props),
        "input_ports": {},
        "output_ports": {"host": dict(props)},
        "environment": [],
        "peers": [],
    }


def substitute(value, context, where):
    """Fill every `${port.prop}` / `${ports.port.prop}` of a string from `context`."""
    if not isinstance(value, str):
        return value
    if "${" in value and value.count("${") != len(REFERENCE.findall(value)):
        raise DeployError("{}: `{}` has a `${{` without its closing `}}`".format(where, value))

    def lookup(match):
        node = context
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise DeployError("{}: `${{{}}}` does not resolve".format(where, match.group(1)))
            node = node[part]
        return str(node)

    return REFERENCE.sub(lookup, value)


class Planned(object):
    """One resource of the plan: its instance JSON, and why it is there."""

    def __init__(self, instance, definition, reason, existing):
        self.instance = instance
        self.definition = definition
        self.reason = reason
        self.existing = existing

    @property
    def key(self):
        return key_tuple(self.instance["key"])

    @property
    def id(self):
        return self.instance["id"]


class Resolver(object):
    """Resolves requests against an extension, the host and what is installed already."""

    def __init__(self, extension, host, installed, config=None):
        self.extension = extension
        self.host = host
        self.installed = [i for i in installed if i.get("id") != HOST_ID]
        self._installed_by_name = {}
        for instance in self.installed:
            self._installed_by_name.setdefault(instance["key"]["name"], []).append(instance)
        self.config = dict(config or {})
        self.by_key = {}
        self.order = []
        self.visiting = []

    def request(self, key, instance_id=None, reason="requested"):
        name, version = key
        if not self.extension.find(name, version) and not self._installed(name, version):
            defined = [v for (n, v) in (self.extension.find(name))]
            hint = "defined versions: {}".format(", ".join(defined)) if defined else "no such resource in {}".format(self.extension.root)
            raise Unsatisfiable([key_text(key)], "`{}` is not defined ({})".format(key_text(key), hint))
        return self._resolve(key, [key_text(key) + " (" + reason + ")"], reason, instance_id)

    def plan_installed(self, instance, reason):
        """Plans an installed instance as it is, without reading its definition: for one the
        caller found unchanged, with everything it needs installed."""
        planned = Planned(instance, None, reason, True)
        self.by_key[planned.key] = planned
        self.order.append(planned)

    def _installed(self, name, requirement):
        return [i for i in self._installed_by_name.get(name, ()) if satisfies(i["key"]["version"], requirement)]

    def _resolve(self, key, chain, reason, instance_id=None):
        if key in self.by_key:
            return self.by_key[key]
        for existing in self._installed(key[0], key[1]):
            planned = Planned(existing, self.extension.definition(key), reason, True)
            self.by_key[key] = planned
            # What it was installed with is planned too, before it: a dependency whose package
            # changed in the extension (the framework under an installed caretaker) gets its own
            # step, so it is replaced like a requested one, not kept because its dependent is.
            for relation in ("environment", "peers"):
                for ref in existing.get(relation) or ():
                    dep = key_tuple(ref.get("key", {}))
                    if self._installed(dep[0], dep[1]) or self.extension.definition(dep) is not None:
                        self._resolve(dep, chain + ["{} {}".format(relation, key_text(dep))],
                                      "{} of {}".format(relation, key_text(key)))
            self.order.append(planned)
            return planned
        if key in self.visiting:
            raise Unsatisfiable(chain, "a cycle: {} needs itself".format(key_text(key)))
        definition = self.extension.definition(key)
        if definition is None:
            raise Unsatisfiable(chain, "`{}` is not defined".format(key_text(key)))
        self.visiting.append(key)
        try:
            instance = {
                "id": instance_id or "__" + driver_dir_name({"name": key[0], "version": key[1]}),
                "key": {"name": key[0], "version": key[1]},
                "properties": {},
                "config_port": {},
                "input_ports": {},
                "output_ports": {},
                "environment": [],
                "peers": [],
            }
            self._inside(instance, definition, chain)
            for constraint_ref in self._needs(definition.get("environment"), chain, "environment", key):
                instance["environment"].append(self._feed(instance, constraint_ref))
            self._fill(instance, definition, chain)
        finally:
            self.visiting.remove(key)
        planned = Planned(instance, definition, reason, False)
        self.by_key[key] = planned
        self.order.append(planned)
        for constraint_ref in self._needs(definition.get("peers"), chain, "peers", key):
            instance["peers"].append(self._feed(instance, constraint_ref))
        return planned

    def _inside(self, instance, definition, chain):
        mode, options = alternatives(definition.get("inside"))
        if not options:
            return
        host_key = key_tuple(self.host["key"])
        for constraint in options:
            key = constraint.get("key", {})
            if key.get("name") == host_key[0] and satisfies(host_key[1], key.get("version")):
                mapping = constraint.get("port_mapping", {})
                instance["inside"] = {"id": HOST_ID, "key": dict(self.host["key"]), "port_mapping": mapping}
                for mine, theirs in mapping.items():
                    instance["input_ports"][mine] = dict(self.host["output_ports"].get(theirs, {}))
                return
        raise Unsatisfiable(chain, "inside: the host `{}` is none of {} (help: pass --platform NAME VERSION)".format(
            key_text(host_key), ", ".join(constraint_text(c) for c in options)))

    def _needs(self, value, chain, relation, owner):
        """[(constraint, Planned)] for an environment or peers value; raises Unsatisfiable."""
        mode, options = alternatives(value)
        found = []
        failures = []
        for constraint in options:
            step = chain + ["{} {}".format(relation, constraint_text(constraint))]
            saved = (dict(self.by_key), list(self.order))
            try:
                reason = "{} of {}".format(relation, key_text(owner))
                found.append((constraint, self._constraint(constraint, step, reason)))
            except Unsatisfiable as error:
                if mode == "all":
                    raise
                self.by_key, self.order = saved
                failures.append(error)
                continue
            if mode == "one":
                return found
        if mode == "one" and options:
            raise Unsatisfiable(chain, "no alternative of {} one-of resolves: {}".format(
                relation, "; ".join(e.reason for e in failures)))
        return found

    def _constraint(self, constraint, chain, reason):
        key = constraint.get("key", {})
        name, requirement = key.get("name"), key.get("version")
        installed = self._installed(name, requirement)
        candidates = [key_tuple(i["key"]) for i in installed]
        defined = [k for k in self.extension.find(name) if k[0] == name and satisfies(k[1], requirement)]
        defined.sort(key=functools.cmp_to_key(lambda a, b: compare_versions(a[1], b[1])), reverse=True)
        candidates += [k for k in defined if k not in candidates]
        if not candidates:
            versions = [k[1] for k in self.extension.find(name) if k[0] == name]
            raise Unsatisfiable(chain, "no version of `{}` satisfies {} (defined: {})".format(
                name, requirement_text(requirement), ", ".join(versions) or "none"))
        last = None
        for candidate in candidates:
            try:
                return self._resolve(candidate, chain, reason)
            except Unsatisfiable as error:
                last = error
        raise last

    def _feed(self, instance, found):
        constraint, planned = found
        mapping = constraint.get("port_mapping", {})
        for mine, theirs in mapping.items():
            instance["input_ports"][mine] = dict(planned.instance.get("output_ports", {}).get(theirs, {}))
        return {"id": planned.id, "key": dict(planned.instance["key"]), "port_mapping": dict(mapping)}

    def _fill(self, instance, definition, chain):
        where = "resource `{}` (id {})".format(key_text(key_tuple(instance["key"])), instance["id"])
        for port in definition.get("input_ports", {}):
            if port not in instance["input_ports"]:
                raise Unsatisfiable(chain, "{}: input port `{}` is fed by no port mapping".format(where, port))
        given = dict(self.config.get(instance["id"], {}))
        given.update(self.config.get(key_text(key_tuple(instance["key"])), {}))
        context = {"config_port": instance["config_port"], "input_ports": instance["input_ports"],
                   "output_ports": instance["output_ports"]}
        for prop, spec in sorted(definition.get("config_port", {}).items()):
            if prop in given:
                instance["config_port"][prop] = given[prop]
            elif isinstance(spec, dict) and "default" in spec:
                instance["config_port"][prop] = substitute(spec["default"], context, where + " config_port." + prop)
            else:
                raise Unsatisfiable(chain, "{}: no initial value given for config port property `{}` "
                                    "(help: give one with --config {}.{}=VALUE)".format(where, prop, instance["id"], prop))
        for port, props in sorted(definition.get("output_ports", {}).items()):
            instance["output_ports"][port] = {}
            for prop, spec in sorted(props.items()):
                if isinstance(spec, dict) and "fixed-value" in spec:
                    value = substitute(spec["fixed-value"], context, "{} output_ports.{}.{}".format(where, port, prop))
                    instance["output_ports"][port][prop] = value
