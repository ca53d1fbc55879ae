//! The install specs of `extension.toml`: plain, distinct file names; instances with exact keys
//! that are defined, unique ids, and references to instances of the same spec; and the
//! installer's configuration (`[installer]` and the specs it offers as choices).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::ops::Range;

use toml::Spanned;

use super::definitions::toml_to_json;
use super::{Checker, DefinedIndex, Draft, EXTENSION_FILE};
use crate::extension::TEMPLATE_SUFFIX;
use crate::manifest;
use crate::model::{Extension, InstallSpec, Instance, InstanceRef, Key, VersionReq};

/// Where each instance of an install spec is written in `extension.toml`, by (file, id).
pub(super) type InstanceSpans = BTreeMap<(String, String), Range<usize>>;

impl Checker<'_> {
    /// Checks the install specs and puts them into `extension`; returns where each instance is
    /// written.
    pub(super) fn install_specs(
        &mut self,
        extension: &mut Extension,
        index: &DefinedIndex,
    ) -> InstanceSpans {
        let mut instance_spans = InstanceSpans::new();
        let raw_specs = &self.raw.extension.value.install_spec;
        let mut files = BTreeSet::new();
        let mut specs = Vec::new();
        for raw in raw_specs {
            let spec = raw.get_ref();
            let file = spec.file.get_ref();
            let plain = !file.is_empty() && !file.contains('/') && !file.starts_with('.');
            if !plain
                || [
                    "resource_definitions.json",
                    "resource_library.json",
                    "installer_config.json",
                ]
                .contains(&file.as_str())
            {
                self.error(EXTENSION_FILE, "install-spec-file", spec.file.span(), format!("install spec file name `{file}` is not allowed"), "use a plain file name such as `install_spec.json`, distinct from the generated metadata".into());
            }
            if !files.insert(file.clone()) {
                self.error(
                    EXTENSION_FILE,
                    "install-spec-file",
                    spec.file.span(),
                    format!("install spec `{file}` is written twice"),
                    "give each install spec its own file".into(),
                );
            }
            let mut keys: BTreeMap<String, Key> = BTreeMap::new();
            let mut instances = Vec::new();
            for raw_instance in &spec.instance {
                let instance = raw_instance.get_ref();
                let Some(located) =
                    self.constraint(EXTENSION_FILE, &instance.key, raw_instance.span())
                else {
                    continue;
                };
                let (VersionReq::Exact(version) | VersionReq::Any(version)) =
                    &located.constraint.version
                else {
                    self.error(
                        EXTENSION_FILE,
                        "instance-key",
                        instance.key.span(),
                        "an instance names an exact key, not a range".into(),
                        "write \"NAME VERSION\"".into(),
                    );
                    continue;
                };
                let key = Key {
                    name: located.constraint.name.clone(),
                    version: version.clone(),
                };
                let known = key.name == "dynamic-host" || index.defines(&key.name, &key.version);
                if !known {
                    self.error(
                        EXTENSION_FILE,
                        "instance-key",
                        instance.key.span(),
                        format!(
                            "install spec `{file}` installs `{key}`, which no manifest defines"
                        ),
                        "define the resource, or fix the key".into(),
                    );
                }
                if keys
                    .insert(instance.id.get_ref().clone(), key.clone())
                    .is_some()
                {
                    self.error(
                        EXTENSION_FILE,
                        "instance-id",
                        instance.id.span(),
                        format!(
                            "instance id `{}` is used twice in `{file}`",
                            instance.id.get_ref()
                        ),
                        "give every instance a unique id".into(),
                    );
                }
                instance_spans.insert(
                    (file.clone(), instance.id.get_ref().clone()),
                    instance.id.span(),
                );
                instances.push((raw_instance, key));
            }
            for (raw_instance, key) in instances {
                let instance = raw_instance.get_ref();
                let refer = |checker: &mut Checker,
                             reference: &Spanned<manifest::InstanceRef>|
                 -> Option<InstanceRef> {
                    let id = reference.get_ref().id.get_ref();
                    let Some(key) = keys.get(id) else {
                        checker.error(
                            EXTENSION_FILE,
                            "instance-ref",
                            reference.span(),
                            format!("no instance `{id}` in `{file}`"),
                            "refer to the id of an instance listed before in the same spec".into(),
                        );
                        return None;
                    };
                    Some(InstanceRef {
                        id: id.clone(),
                        key: key.clone(),
                        port_mapping: reference.get_ref().port_mapping.clone(),
                    })
                };
                let inside = instance.inside.as_ref().and_then(|r| refer(self, r));
                let environment = instance
                    .environment
                    .iter()
                    .filter_map(|r| refer(self, r))
                    .collect();
                let peers = instance
                    .peers
                    .iter()
                    .filter_map(|r| refer(self, r))
                    .collect();
                specs_push_instance(
                    &mut specs,
                    file,
                    spec.choice.clone(),
                    Instance {
                        id: instance.id.get_ref().clone(),
                        key,
                        inside,
                        environment,
                        peers,
                        config_port: instance
                            .config_port
                            .iter()
                            .map(|(k, v)| (k.clone(), toml_to_json(v)))
                            .collect(),
                    },
                );
            }
            if spec.instance.is_empty() {
                specs.push(InstallSpec {
                    file: file.clone(),
                    choice: spec.choice.clone(),
                    instances: Vec::new(),
                });
            }
        }
        extension.install_specs = specs;
        self.installer(extension);
        instance_spans
    }

    /// The port mappings of an install spec's instances, as Engage's config engine uses them
    /// (`config_src/config/generate.ml`): an instance's `inside` reference, with its port mapping,
    /// is taken from the spec alone (`find_inside_ref` fails with "ID NOT FOUND" when the spec
    /// gives none); its environment and peer references from the spec, else from the definition's
    /// constraints (`find_env_refs`, `find_peer_refs`); and every input port must be fed by one of
    /// them (`find_port_map`, `assert false`) from an output port of the referenced resource.
    pub(super) fn instance_feeds(
        &mut self,
        drafts: &[Draft],
        index: &DefinedIndex,
        extension: &Extension,
        instance_spans: &InstanceSpans,
    ) {
        for spec in &extension.install_specs {
            for instance in &spec.instances {
                let span = instance_spans
                    .get(&(spec.file.clone(), instance.id.clone()))
                    .cloned()
                    .unwrap_or(0..0);
                for reference in instance
                    .inside
                    .iter()
                    .chain(&instance.environment)
                    .chain(&instance.peers)
                {
                    for theirs in reference.port_mapping.values() {
                        let provided = if reference.key.name == "dynamic-host" {
                            theirs == "host"
                        } else {
                            index
                                .by_name
                                .get(&reference.key.name)
                                .is_some_and(|versions| {
                                    versions.iter().any(|(version, ports)| {
                                        *version == reference.key.version
                                            && ports.contains_key(theirs)
                                    })
                                })
                        };
                        if !provided {
                            self.error(
                                EXTENSION_FILE,
                                "instance-port-mapping",
                                span.clone(),
                                format!(
                                    "instance `{}` of `{}` maps output port `{theirs}` of `{}` (instance `{}`), which it does not have",
                                    instance.id, spec.file, reference.key, reference.id
                                ),
                                "map an output port of the referenced resource (a host provides `host`)".into(),
                            );
                        }
                    }
                }
                let Some(draft) = drafts.iter().find(|d| d.resource.key == instance.key) else {
                    continue; // `dynamic-host` and the externals are Engage's
                };
                let resource = &draft.resource;
                if resource.inside.is_some() && instance.inside.is_none() {
                    self.error(
                        EXTENSION_FILE,
                        "instance-inside",
                        span.clone(),
                        format!(
                            "instance `{}` of `{}` says nothing about where `{}` is installed, but its definition has `inside`",
                            instance.id, spec.file, resource.key
                        ),
                        "add `inside = { id = \"<host instance>\", port-mapping = { ... } }`: Engage takes an instance's `inside` from the spec alone".into(),
                    );
                }
                for port in resource.input_ports.keys() {
                    let listed = |name: &str| {
                        instance
                            .environment
                            .iter()
                            .chain(&instance.peers)
                            .any(|r| r.key.name == name)
                    };
                    let by_spec = instance
                        .inside
                        .iter()
                        .chain(&instance.environment)
                        .chain(&instance.peers)
                        .any(|r| r.port_mapping.contains_key(port));
                    let by_definition = draft
                        .groups
                        .iter()
                        .filter(|g| g.field != "inside")
                        .flat_map(|g| &g.constraints)
                        .any(|l| {
                            l.constraint.port_mapping.contains_key(port)
                                && !listed(&l.constraint.name)
                        });
                    if !by_spec && !by_definition {
                        self.error(
                            EXTENSION_FILE,
                            "instance-unfed-port",
                            span.clone(),
                            format!(
                                "no port mapping of instance `{}` of `{}` feeds input port `{port}` of `{}`",
                                instance.id, spec.file, resource.key
                            ),
                            format!(
                                "map it in the instance's `inside` (e.g. `port-mapping = {{ {port} = \"{port}\" }}`) or environment; Engage uses only the spec's mapping for `inside`"
                            ),
                        );
                    }
                }
            }
        }
    }

    /// The installer's configuration, `metadata/installer_config.json`, made of `[installer]` and
    /// the install specs with a `choice`.
    fn installer(&mut self, extension: &Extension) {
        let raw_specs = &self.raw.extension.value.install_spec;
        let chosen: Vec<&Spanned<String>> = raw_specs
            .iter()
            .filter(|raw| raw.get_ref().choice.is_some())
            .map(|raw| &raw.get_ref().file)
            .collect();
        for file in &chosen {
            // `python_pkg/engage/engine/engage_file_layout.py` (`get_install_spec_template_file`)
            // finds an option's spec at its `file_name` + `.tmpl`; the generated `file_name` is
            // the spec's file without `.tmpl`.
            let stem = file.get_ref().strip_suffix(TEMPLATE_SUFFIX);
            if stem.is_none_or(str::is_empty) {
                self.error(
                    EXTENSION_FILE,
                    "install-spec-template",
                    file.span(),
                    format!(
                        "install spec `{}` is an installer choice, but its file name does not end in `{TEMPLATE_SUFFIX}`",
                        file.get_ref()
                    ),
                    format!(
                        "name it `{}{TEMPLATE_SUFFIX}`: Engage's installer appends `{TEMPLATE_SUFFIX}` to the choice's file name to find its template",
                        file.get_ref()
                    ),
                );
            }
        }
        let installer_span = || {
            let text = &self.raw.extension.text;
            text.find("[installer]")
                .map_or(0..0, |start| start..start + "[installer]".len())
        };
        match (&extension.application_name, chosen.first()) {
            // `engine/cmdline_install.py` (`select_configuration`) picks one of the options.
            (Some(_), None) => {
                let span = installer_span();
                self.error(
                    EXTENSION_FILE,
                    "installer-choice",
                    span,
                    "`[installer]` offers no install spec: Engage's installer needs at least one choice".into(),
                    "add `choice = \"...\"` to an `[[install-spec]]` whose file ends in `.tmpl`, or remove `[installer]`".into(),
                );
            }
            (None, Some(file)) => {
                let span = file.span();
                self.error(
                    EXTENSION_FILE,
                    "installer-choice",
                    span,
                    "install spec has a `choice`, but there is no `[installer]` to offer it".into(),
                    "add `[installer]` with `application-name`, or remove `choice`".into(),
                );
            }
            _ => {}
        }
        // `engine/installer_config.py` (`parse_installer_config`) requires `application_name`.
        if extension
            .application_name
            .as_ref()
            .is_some_and(|name| name.trim().is_empty())
        {
            let span = installer_span();
            self.error(
                EXTENSION_FILE,
                "installer-application",
                span,
                "`application-name` is empty".into(),
                "name the application, e.g. \"Datablox\"".into(),
            );
        }
    }
}

fn specs_push_instance(
    specs: &mut Vec<InstallSpec>,
    file: &str,
    choice: Option<String>,
    instance: Instance,
) {
    match specs.iter_mut().find(|spec| spec.file == file) {
        Some(spec) => spec.instances.push(instance),
        None => specs.push(InstallSpec {
            file: file.to_string(),
            choice,
            instances: vec![instance],
        }),
    }
}
