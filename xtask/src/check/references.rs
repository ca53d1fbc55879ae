//! References between resources: every key defined once, every constraint matched by a
//! definition, port mappings that exist on both sides and provide what the input port declares,
//! every input port fed; and the values of a definition as Engage's config engine reads them:
//! `${...}` references that it resolves, plain config defaults, a `fixed-value` on every output
//! property.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::definitions::PortKind;
use super::{Checker, DefinedIndex, Draft, EXTENSION_FILE, Group, Located};
use crate::model::{Key, Resource};

impl Checker<'_> {
    pub(super) fn unique_keys(&mut self, drafts: &[Draft]) {
        let mut seen: BTreeMap<&Key, &Draft> = BTreeMap::new();
        for draft in drafts {
            if let Some(first) = seen.get(&draft.resource.key) {
                let message = format!(
                    "resource `{}` is defined twice: here and in `{}`",
                    draft.resource.key,
                    first.resource.manifest.display()
                );
                self.error(
                    draft.file,
                    "duplicate-resource",
                    draft.key_span.clone(),
                    message,
                    "give each version its own key, or remove one manifest".into(),
                );
            } else {
                seen.insert(&draft.resource.key, draft);
            }
        }
        let extension_externals: Vec<(String, Range<usize>)> = self
            .raw
            .extension
            .value
            .external
            .iter()
            .map(|e| (e.get_ref().name.get_ref().clone(), e.span()))
            .collect();
        for (name, span) in extension_externals {
            if drafts.iter().any(|d| d.resource.key.name == name) {
                self.error(
                    EXTENSION_FILE,
                    "external-defined",
                    span,
                    format!("`{name}` is declared external, but a manifest defines it too"),
                    "keys are defined exactly once: remove the [[external]] entry or the manifest"
                        .into(),
                );
            }
        }
    }

    pub(super) fn references(&mut self, draft: &Draft, index: &DefinedIndex) {
        for group in &draft.groups {
            for located in &group.constraints {
                let constraint = &located.constraint;
                if index.matching(constraint).next().is_some() {
                    continue;
                }
                let message;
                let help;
                match index.by_name.get(&constraint.name) {
                    None => {
                        message = format!(
                            "`{}` {} `{} {}`, which no manifest defines",
                            draft.resource.key,
                            verb(group.field),
                            constraint.name,
                            constraint.version
                        );
                        help = format!(
                            "add a manifest for `{}`, or declare it as an [[external]] in manifests/extension.toml if Engage defines it",
                            constraint.name
                        );
                    }
                    Some(versions) => {
                        let known: BTreeSet<&str> =
                            versions.iter().map(|(v, _)| v.as_str()).collect();
                        message = format!(
                            "no definition of `{}` satisfies version `{}`",
                            constraint.name, constraint.version
                        );
                        help = format!(
                            "defined versions: {}",
                            known.into_iter().collect::<Vec<_>>().join(", ")
                        );
                    }
                }
                self.error(
                    located.file,
                    "unmatched-constraint",
                    located.span.clone(),
                    message,
                    help,
                );
            }
        }
    }

    pub(super) fn port_feeds(&mut self, draft: &Draft, index: &DefinedIndex) {
        let resource = &draft.resource;
        // Mapped ports must exist on both sides and provide what the input port declares.
        for group in &draft.groups {
            for located in &group.constraints {
                for (mine, theirs) in &located.constraint.port_mapping {
                    let Some(wanted) = resource.input_ports.get(mine) else {
                        let message = format!(
                            "port mapping feeds `{mine}`, which is not an input port of `{}`",
                            resource.key
                        );
                        self.error(
                            located.file,
                            "unknown-input-port",
                            located.span.clone(),
                            message,
                            format!("declare input port `{mine}`, or fix the mapping"),
                        );
                        continue;
                    };
                    for (version, ports) in index.matching(&located.constraint) {
                        let provided = ports.get(theirs);
                        let missing: Vec<&String> = wanted
                            .keys()
                            .filter(|p| provided.is_none_or(|port| !port.contains_key(*p)))
                            .collect();
                        if provided.is_none() || !missing.is_empty() {
                            let what = if provided.is_none() {
                                format!("has no output port `{theirs}`")
                            } else {
                                format!(
                                    "output port `{theirs}` lacks {}",
                                    missing
                                        .iter()
                                        .map(|p| format!("`{p}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            };
                            let message = format!(
                                "`{} {version}` {what}, which input port `{mine}` of `{}` needs",
                                located.constraint.name, resource.key
                            );
                            self.error(located.file, "port-mismatch", located.span.clone(), message, "map to an output port that provides those properties, or declare them on the other resource".into());
                        }
                    }
                }
            }
        }
        // Every input port must be fed: by a one/all-of group, or by every alternative of a one-of.
        for port in resource.input_ports.keys() {
            let mut fed = false;
            for group in &draft.groups {
                let maps = |l: &Located| l.constraint.port_mapping.contains_key(port);
                match group.group {
                    Group::One | Group::AllOf => fed |= group.constraints.iter().any(maps),
                    Group::OneOf => {
                        let mapping: Vec<&Located> =
                            group.constraints.iter().filter(|l| maps(l)).collect();
                        if mapping.len() == group.constraints.len() {
                            fed = true;
                        } else if !mapping.is_empty() {
                            for located in group.constraints.iter().filter(|l| !maps(l)) {
                                let message = format!(
                                    "this alternative of `{}` does not feed input port `{port}`, which the other alternatives feed",
                                    group.field
                                );
                                self.error(
                                    located.file,
                                    "unfed-input-port",
                                    located.span.clone(),
                                    message,
                                    format!("add `port-mapping = {{ {port} = \"...\" }}` to it"),
                                );
                            }
                            fed = true;
                        }
                    }
                }
            }
            if !fed {
                let message = format!(
                    "input port `{port}` of `{}` is fed by no port mapping",
                    resource.key
                );
                self.error(draft.file, "unfed-input-port", draft.key_span.clone(), message, format!("add a constraint to `inside` or `environment` with `port-mapping = {{ {port} = \"<their output port>\" }}`"));
            }
        }
    }

    /// The values of a definition as Engage's config engine reads them: `${...}` references in
    /// config-port defaults and output-port fixed values, and the shape of those values.
    pub(super) fn property_references(&mut self, draft: &Draft) {
        let resource = &draft.resource;
        let mut values = Vec::new();
        for (name, property) in &resource.config_port {
            if let Some(default) = &property.default {
                values.push((PortKind::Config, "", name, property, default));
            }
        }
        let mut unset = Vec::new();
        for (port, properties) in &resource.output_ports {
            for (name, property) in properties {
                match &property.fixed_value {
                    Some(fixed) => {
                        values.push((PortKind::Output, port.as_str(), name, property, fixed))
                    }
                    None => unset.push((port, name)),
                }
            }
        }
        // `config_src/config/generate.ml`: `map_output_ports` leaves a property without a value
        // out of the instance's output port, and `map_input_ports` then fails (`assert false`)
        // on every port mapping that reads the port.
        for (port, name) in unset {
            let span = self.property_span(draft, PortKind::Output, port, name);
            self.error(
                draft.file,
                "output-without-value",
                span,
                format!(
                    "property `{name}` of output port `{port}` of `{}` has no `fixed-value`, so Engage's config engine gives it no value",
                    resource.key
                ),
                "give it a `fixed-value` (it may refer to `${config_port.X}` or `${input_ports.P.X}`)".into(),
            );
        }
        for (kind, port, name, property, value) in values {
            let span = self.property_span(draft, kind, port, name);
            let what = match kind {
                PortKind::Config => "default",
                _ => "fixed-value",
            };
            // `config_src/config/parse_rdef.ml` (`parse_property_value`): a table is a value only
            // for the type "map", an array only for a list type, which a manifest cannot declare;
            // `generate.ml` (`get_config_ports`) fails (`assert false`) on a table as a config
            // default.
            let shape_ok = match value {
                serde_json::Value::Object(_) => property.ty == "map" && kind != PortKind::Config,
                serde_json::Value::Array(_) => false,
                _ => true,
            };
            if !shape_ok {
                self.error(
                    draft.file,
                    "property-value",
                    span.clone(),
                    match kind {
                        PortKind::Config => format!(
                            "the default of config property `{name}` is a {}, but Engage's config engine takes only plain values as config defaults",
                            if value.is_array() { "list" } else { "table" },
                        ),
                        _ => format!(
                            "the fixed-value of property `{name}` is a {}, which Engage's config engine refuses for type `{}`",
                            if value.is_array() { "list" } else { "table" },
                            property.ty
                        ),
                    },
                    "give a string, a number or a boolean (a table only as the `fixed-value` of a `type = \"map\"` property)"
                        .into(),
                );
                continue;
            }
            let Some(text) = value.as_str() else { continue };
            for piece in template_pieces(text) {
                let (code, message, help) = match piece {
                    Piece::Unterminated(_) => (
                        "unterminated-reference",
                        format!(
                            "the {what} of property `{name}` has `${{` without a closing `}}`: Engage's config engine keeps it as literal text"
                        ),
                        "close the reference (`${config_port.X}` or `${input_ports.P.X}`), or write `$$` for a literal `$`".to_string(),
                    ),
                    Piece::NotAReference(inner) => (
                        "malformed-reference",
                        format!(
                            "the {what} of property `{name}` has `${{{inner}}}`, which is not a reference to Engage's config engine (only letters, digits, `_` and `.`): it stays literal text"
                        ),
                        "write `${config_port.X}` or `${input_ports.P.X}`, or `$$` for a literal `$`".to_string(),
                    ),
                    Piece::Reference(reference) => match resolve(resource, reference) {
                        Ok(()) => continue,
                        Err(why) => (
                            "unresolved-reference",
                            format!("property `{name}` refers to `${{{reference}}}`, {why}"),
                            "refer to `config_port.X` or `input_ports.P.X` of this resource"
                                .to_string(),
                        ),
                    },
                };
                self.error(draft.file, code, span.clone(), message, help);
            }
        }
    }
}

fn verb(field: &str) -> &'static str {
    match field {
        "inside" => "is installed inside",
        "peers" => "peers with",
        _ => "needs",
    }
}

/// What Engage's config engine sees in a string value.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    /// `${X}` with `X` made of ASCII letters, digits, `_` and `.`: a reference to `X`.
    Reference(&'a str),
    /// `${...}` whose inside is not a variable name: literal text to the config engine.
    NotAReference(&'a str),
    /// `${` with no `}` after it, at this byte offset: literal text too.
    Unterminated(usize),
}

/// The pieces of `text` that are or look like references, as `config_src/config/templates.ml`
/// (`parse_string`, `variable_pat`, `dollar_escape_pat`) reads them: `${[0-9a-zA-Z_.]+}` is a
/// reference, `$$` an escaped `$`, anything else literal text.
fn template_pieces(text: &str) -> Vec<Piece<'_>> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut at = 0;
    while at + 1 < bytes.len() {
        if bytes[at] != b'$' {
            at += 1;
            continue;
        }
        match bytes[at + 1] {
            b'$' => at += 2,
            b'{' => {
                let inner_start = at + 2;
                let name_len = bytes[inner_start..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'.')
                    .count();
                let end = inner_start + name_len;
                if name_len > 0 && bytes.get(end) == Some(&b'}') {
                    pieces.push(Piece::Reference(&text[inner_start..end]));
                    at = end + 1;
                } else if let Some(close) = text[inner_start..].find('}') {
                    pieces.push(Piece::NotAReference(
                        &text[inner_start..inner_start + close],
                    ));
                    at = inner_start;
                } else {
                    pieces.push(Piece::Unterminated(at));
                    at = inner_start;
                }
            }
            _ => at += 1,
        }
    }
    pieces
}

/// Whether a reference resolves in `resource`, as Engage's config engine resolves it: only
/// `config_port.X` and `input_ports.P.X` are references (`config_src/config/parse_rdef.ml`,
/// `parse_port_reference`; `generate.ml`, `port_reference_of_string`), their property must be
/// declared (`generate.ml`, `check_ports_exist_in_rdef`), and a config reference has exactly one
/// property name (`generate.ml`, `json_of_port_reference`), as has an input reference to a
/// property without a value of its own.
fn resolve(resource: &Resource, reference: &str) -> Result<(), String> {
    let parts: Vec<&str> = reference.split('.').collect();
    match parts.as_slice() {
        ["config_port", property] if resource.config_port.contains_key(*property) => Ok(()),
        ["config_port", property] => Err(format!(
            "but `{}` has no config property `{property}`",
            resource.key
        )),
        ["input_ports", port, property] => match resource.input_ports.get(*port) {
            None => Err(format!("but `{}` has no input port `{port}`", resource.key)),
            Some(properties) if properties.contains_key(*property) => Ok(()),
            Some(_) => Err(format!(
                "but input port `{port}` of `{}` has no property `{property}`",
                resource.key
            )),
        },
        ["output_ports", ..] => {
            Err("but Engage's config engine does not resolve references to output ports".into())
        }
        _ => Err("which is neither `config_port.X` nor `input_ports.P.X`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_pieces_follow_the_config_engine() {
        assert_eq!(
            template_pieces("${input_ports.host.genforma_home}/blox/${config_port.x}"),
            [
                Piece::Reference("input_ports.host.genforma_home"),
                Piece::Reference("config_port.x")
            ]
        );
        assert_eq!(template_pieces("$${config_port.x} costs $5"), []);
        assert_eq!(
            template_pieces("${input_ports.host.genforma_home/blox"),
            [Piece::Unterminated(0)]
        );
        assert_eq!(
            template_pieces("a ${input-ports.x} b"),
            [Piece::NotAReference("input-ports.x")]
        );
        assert_eq!(
            template_pieces("${${config_port.x}"),
            [
                Piece::NotAReference("${config_port.x"),
                Piece::Reference("config_port.x")
            ]
        );
        assert_eq!(template_pieces("${}"), [Piece::NotAReference("")]);
    }
}
