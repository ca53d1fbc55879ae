"""Constraints (`inside`, `environment`, `peers`): their forms, what they match and which input
ports they feed (parse_rdef.ml parse_*_constraint; generate.ml matches; utils/rdef.py
BaseConstraint.validate and Resource.validate)."""
import json

from .engage_facts import GENERATE, HOST_PORT, PLATFORMS, PY_RDEF, RDEF, STANDARD, version_matches

# parse_rdef.ml parse_key_constraint: the relational operators of a version range.
RANGE_KEYS = {"greater-than", "greater-than-or-equal", "less-than", "less-than-or-equal"}


def check_constraints(tree, relative, name, definition, input_ports):
    """Constraint forms (parse_rdef.ml parse_choice_constraint, parse_compound_constraint) and
    port feeding (utils/rdef.py Resource.validate): each section yields the ports mapped in
    every solution (`all`) and in some only (`some`)."""
    all_ports, some_ports = set(), set()
    for section in ("inside", "environment", "peers"):
        value = definition.get(section)
        if value is None or value == {}:
            continue  # parse_rdef.ml has_nonempty_map_prop: absent or {} means none
        if not isinstance(value, dict):
            tree.problem(relative, "%s: %s must be an object" % (name, section), RDEF + " has_nonempty_map_prop")
            continue
        if "one-of" in value and "all-of" in value:
            tree.problem(relative, "%s: %s has both one-of and all-of" % (name, section),
                         RDEF + " parse_compound_constraint")
            continue
        if section == "inside" and "all-of" in value:
            # parse_rdef.ml parse_rdef reads `inside` with parse_choice_constraint (an atomic
            # constraint or one-of), and utils/rdef.py Resource asserts it is not all-of.
            tree.problem(relative, "%s: inside cannot be all-of (a resource lives in one place)" % name,
                         RDEF + " parse_choice_constraint; " + PY_RDEF + " Resource.__init__")
            continue
        if "all-of" in value:
            found = check_all_of(tree, relative, name, section, value["all-of"], input_ports)
        else:
            found = check_choice(tree, relative, name, section, value, input_ports)
        if found is None:
            continue
        all_ports |= found[0]
        some_ports |= found[1]
    all_ports -= some_ports
    for port in sorted(input_ports):
        if port in all_ports:
            continue
        if port in some_ports:
            tree.problem(relative, "%s: input port %s is not fed by a port_mapping in every alternative"
                         % (name, port), PY_RDEF + " Resource.validate")
        else:
            tree.problem(relative, "%s: input port %s is not fed by a port_mapping in any constraint"
                         % (name, port), PY_RDEF + " Resource.validate; " + GENERATE + " map_input_ports")


def check_all_of(tree, relative, name, section, items, input_ports):
    # utils/rdef.py AllOfConstraint.validate: the union of its members' sets.
    if not isinstance(items, list):
        tree.problem(relative, "%s: %s.all-of must be a list" % (name, section), RDEF + " parse_compound_constraint")
        return None
    all_ports, some_ports = set(), set()
    for item in items:
        if isinstance(item, dict) and "all-of" in item:
            tree.problem(relative, "%s: %s: all-of inside all-of is not a constraint" % (name, section),
                         RDEF + " parse_choice_constraint")
            continue
        found = check_choice(tree, relative, name, section, item, input_ports)
        if found:
            all_ports |= found[0]
            some_ports |= found[1]
    return all_ports - some_ports, some_ports


def check_choice(tree, relative, name, section, value, input_ports):
    # utils/rdef.py OneOfConstraint.validate: ports mapped by every alternative, and by some.
    if isinstance(value, dict) and "one-of" in value:
        alternatives = value["one-of"]
        if not isinstance(alternatives, list) or not alternatives:
            tree.problem(relative, "%s: %s.one-of must be a non-empty list" % (name, section),
                         RDEF + " parse_choice_constraint; " + PY_RDEF + " OneOfConstraint.validate")
            return None
        sets = [check_atomic(tree, relative, name, section, item, input_ports) for item in alternatives]
        sets = [found for found in sets if found is not None]
        if not sets:
            return None
        every = set.intersection(*sets)
        return every, set.union(*sets) - every
    found = check_atomic(tree, relative, name, section, value, input_ports)
    return None if found is None else (found, set())


def check_atomic(tree, relative, name, section, constraint, input_ports):
    """parse_rdef.ml parse_atomic_constraint / parse_key_constraint, generate.ml matches and
    utils/rdef.py BaseConstraint.validate. Returns the input ports it maps."""
    key = constraint.get("key") if isinstance(constraint, dict) else None
    if not isinstance(key, dict) or not isinstance(key.get("name"), str) or "version" not in key:
        tree.problem(relative, "%s: a constraint of %s has no key {name, version}" % (name, section),
                     RDEF + " parse_atomic_constraint")
        return None
    spec = key["version"]
    if isinstance(spec, dict):
        bad = sorted(op for op in spec if op not in RANGE_KEYS)
        if bad or not spec or not all(isinstance(bound, str) for bound in spec.values()):
            tree.problem(relative, "%s: %s constraint on %s has an invalid version range %s (operators: %s)"
                         % (name, section, key["name"], json.dumps(spec), ", ".join(sorted(RANGE_KEYS))),
                         RDEF + " parse_key_constraint")
            return None
    elif not isinstance(spec, str):
        tree.problem(relative, "%s: %s constraint on %s: version must be a string or a range object"
                     % (name, section, key["name"]), RDEF + " parse_key_constraint")
        return None
    matches = matching(tree, key["name"], spec)
    if not matches:
        tree.problem(relative, "%s: %s constraint `%s %s` matches no defined resource and no key Engage defines "
                     "(versions compare as strings: `*` matches only a version \"*\")"
                     % (name, section, key["name"], json.dumps(spec)),
                     GENERATE + " matches; " + PY_RDEF + " BaseConstraint.find_all_matching")
        return set()
    mapping = constraint.get("port_mapping", {})
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        tree.problem(relative, "%s: port_mapping must map input ports to output port names" % name,
                     RDEF + " parse_port_mapping")
        return set()
    for mine, theirs in sorted(mapping.items()):
        if mine not in input_ports:
            tree.problem(relative, "%s: port_mapping maps %s, which is not an input port" % (name, mine),
                         PY_RDEF + " BaseConstraint.validate")
            continue
        for provider, outputs in matches:
            if outputs is None:
                tree.problem(relative, "%s: port_mapping %s -> %s of %s, whose ports this checker does not "
                             "know (Engage's own resource)" % (name, mine, theirs, provider))
                continue
            port = outputs.get(theirs)
            if not isinstance(port, dict):
                tree.problem(relative, "%s: port_mapping %s -> %s, but %s has no output port %s"
                             % (name, mine, theirs, provider, theirs), PY_RDEF + " BaseConstraint.validate")
                continue
            for prop in sorted(input_ports[mine]):
                if prop not in port:
                    tree.problem(relative, "%s: input port %s needs %s, which output port %s of %s does not "
                                 "provide" % (name, mine, prop, theirs, provider),
                                 PY_RDEF + " BaseConstraint.validate")
    return set(mapping) & set(input_ports)


def matching(tree, name, spec):
    """[(description, output ports or None if unknown)] of the resources a constraint matches."""
    found = []
    for (defined_name, version), (definition, _file) in sorted(tree.definitions.items()):
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
