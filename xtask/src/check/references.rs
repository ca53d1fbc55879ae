//! References between resources: every key defined once, every constraint matched by a
//! definition, port mappings that exist on both sides and provide what the input port declares,
//! every input port fed, and `${...}` references that resolve.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

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

    pub(super) fn property_references(&mut self, draft: &Draft) {
        let resource = &draft.resource;
        let mut values = Vec::new();
        for (name, property) in &resource.config_port {
            values.extend(property.default.iter().map(|v| (name, v)));
        }
        for port in resource.output_ports.values() {
            for (name, property) in port {
                values.extend(property.fixed_value.iter().map(|v| (name, v)));
            }
        }
        for (name, value) in values {
            let Some(text) = value.as_str() else { continue };
            for reference in references_in(text) {
                if !resolves(resource, reference) {
                    let message = format!(
                        "property `{name}` refers to `${{{reference}}}`, which `{}` does not define",
                        resource.key
                    );
                    self.error(draft.file, "unresolved-reference", draft.key_span.clone(), message, "refer to `config_port.X`, `input_ports.P.X` or `output_ports.P.X` of this resource".into());
                }
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

/// The `X.Y.Z` of every `${X.Y.Z}` in a property value.
fn references_in(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        found.push(&after[..end]);
        rest = &after[end + 1..];
    }
    found
}

fn resolves(resource: &Resource, reference: &str) -> bool {
    let parts: Vec<&str> = reference.split('.').collect();
    match parts.as_slice() {
        ["config_port", property] => resource.config_port.contains_key(*property),
        ["input_ports", port, property] => resource
            .input_ports
            .get(*port)
            .is_some_and(|p| p.contains_key(*property)),
        ["output_ports", port, property] => resource
            .output_ports
            .get(*port)
            .is_some_and(|p| p.contains_key(*property)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_and_resolved() {
        assert_eq!(
            references_in("${input_ports.host.genforma_home}/blox/${config_port.x}"),
            ["input_ports.host.genforma_home", "config_port.x"]
        );
    }
}
