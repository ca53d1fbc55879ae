//! What a deployment pulls in must get every config value it needs.
//!
//! Engage's config engine gives every resource instance of a deployment a value for each config
//! property: the install spec's, else the definition's `default`. Without either there is no
//! value: the configurator Engage runs (`config_src/config/c_wrapper/main.c`, through
//! `generate.ml`'s `get_config_ports` and `set_config_ports_from_string`) logs a warning and
//! hands the driver the string `<UNDEFINED>`, and the engine's other path (`generate.ml`,
//! `fill_in_config_ports`) refuses the instance ("No initial value given for config port"). A block is deployed on demand from a spec that names only its key, so
//! the block and everything it pulls in (`inside`, `environment`, `peers`, transitively) must
//! install with no config values at all: the configuration of a running block belongs to the
//! topology, not to its installation. An install spec's instances may give values; what they pull
//! in without listing it gets none.

use std::collections::{BTreeMap, BTreeSet};

use super::definitions::PortKind;
use super::install_specs::InstanceSpans;
use super::{Checker, DefinedIndex, Draft, EXTENSION_FILE};
use crate::model::{Extension, Key, Kind};

impl Checker<'_> {
    pub(super) fn deployments(
        &mut self,
        drafts: &[Draft],
        index: &DefinedIndex,
        extension: &Extension,
        instance_spans: &InstanceSpans,
    ) {
        let position: BTreeMap<&Key, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (&d.resource.key, i))
            .collect();
        // Each resource without a default is reported once, with every deployment that needs it.
        let mut needed_by: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();

        for (root, draft) in drafts.iter().enumerate() {
            if draft.resource.kind != Kind::Block {
                continue;
            }
            for node in closure(drafts, index, &position, root) {
                needed_by
                    .entry(node)
                    .or_default()
                    .insert(format!("deploying `{}` on demand", draft.resource.key));
            }
        }

        for spec in &extension.install_specs {
            let listed: BTreeMap<&Key, &crate::model::Instance> = spec
                .instances
                .iter()
                .map(|instance| (&instance.key, instance))
                .collect();
            for instance in &spec.instances {
                let Some(&root) = position.get(&instance.key) else {
                    continue; // `dynamic-host` and the externals are Engage's
                };
                let resource = &drafts[root].resource;
                for (name, property) in &resource.config_port {
                    if property.default.is_none() && !instance.config_port.contains_key(name) {
                        let span = instance_spans
                            .get(&(spec.file.clone(), instance.id.clone()))
                            .cloned()
                            .unwrap_or(0..0);
                        self.error(
                            EXTENSION_FILE,
                            "config-value-missing",
                            span,
                            format!(
                                "instance `{}` of install spec `{}` gives no value for config property `{name}` of `{}`, which has no default",
                                instance.id, spec.file, resource.key
                            ),
                            format!(
                                "add `config-port = {{ {name} = ... }}` to the instance, or give the property a default in `{}`",
                                resource.manifest.display()
                            ),
                        );
                    }
                }
                for node in closure(drafts, index, &position, root) {
                    if node != root && !listed.contains_key(&drafts[node].resource.key) {
                        needed_by
                            .entry(node)
                            .or_default()
                            .insert(format!("installing install spec `{}`", spec.file));
                    }
                }
            }
        }
        for (node, deployments) in needed_by {
            self.needs_defaults(&drafts[node], &deployments.into_iter().collect::<Vec<_>>());
        }
    }

    /// Every config property of `draft` without a default is an error: nobody gives it a value.
    fn needs_defaults(&mut self, draft: &Draft, deployments: &[String]) {
        let deployment = match deployments {
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
            [] => return,
        };
        for (name, property) in &draft.resource.config_port {
            if property.default.is_some() {
                continue;
            }
            let span = self.property_span(draft, PortKind::Config, "", name);
            let help = if draft.resource.kind == Kind::Block {
                "a block installs from a spec that names only its key: leave run-time settings to the topology (the block's configuration), or give the property a default"
            } else {
                "give the property a default, or list the resource in the install spec with a value"
            };
            self.error(
                draft.file,
                "config-value-missing",
                span,
                format!(
                    "config property `{name}` of `{}` has no default, and {deployment} gives it no value: Engage's config engine has none to give",
                    draft.resource.key
                ),
                help.into(),
            );
        }
    }
}

/// `root` and every resource it pulls in through `inside`, `environment` and `peers`, in the
/// order found.
fn closure(
    drafts: &[Draft],
    index: &DefinedIndex,
    position: &BTreeMap<&Key, usize>,
    root: usize,
) -> Vec<usize> {
    let mut seen = vec![false; drafts.len()];
    let mut order = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if std::mem::replace(&mut seen[node], true) {
            continue;
        }
        order.push(node);
        for located in drafts[node].groups.iter().flat_map(|g| &g.constraints) {
            for (version, _) in index.matching(&located.constraint) {
                let key = Key {
                    name: located.constraint.name.clone(),
                    version: version.clone(),
                };
                stack.extend(position.get(&key).copied().filter(|&n| !seen[n]));
            }
        }
    }
    order
}
