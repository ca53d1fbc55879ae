"""The `${...}` references in property values, as the config engine reads them (templates.ml
parse_string; parse_rdef.ml parse_port_reference; generate.ml port_reference_of_string /
check_ports_exist_in_rdef)."""
import re

from .engage_facts import GENERATE, RDEF, TEMPLATES

# templates.ml: `variable_pat` and `dollar_escape_pat`, searched together (`search_re`).
TEMPLATE_TOKEN = re.compile(r"\$\{([0-9A-Za-z_.]+)\}|\$\$")


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


def check_references(tree, relative, name, ports):
    """The `${...}` in property values, as the config engine reads them."""
    for where, text in value_strings(ports):
        variables, stray = template_variables(text)
        for position in stray:
            # templates.ml parse_string: a `${` that does not start `${[0-9A-Za-z_.]+}` is
            # literal text, not an error there: the value would reach the node unresolved.
            tree.problem(relative, "%s: %s has `${` at offset %d with no valid closing `}` (or a character "
                         "outside [0-9A-Za-z_.]): the config engine keeps it as literal text"
                         % (name, where, position), TEMPLATES + " parse_string")
        for variable in variables:
            problem = reference_problem(variable, ports)
            if problem:
                tree.problem(relative, "%s: %s refers to ${%s}: %s" % (name, where, variable, problem[0]),
                             problem[1])


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
