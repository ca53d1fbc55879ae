//! Manifest tables -> resource definitions: the derived definition of a block, the definition of
//! another resource, the extension's settings and externals, ports and properties, and the
//! `inside`/`environment`/`peers` constraint groups (with where each constraint was written).

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::names::{block_name_problem, name_problem, parse_constraint_text, parse_version_spec};
use super::paths::normalise;
use super::{Checker, Draft, EXTENSION_FILE, Group, HOST_PROPERTIES, Located, LocatedGroup};
use crate::archive;
use crate::manifest::{
    self, BlockTable, RawAlternatives, RawConstraint, RawPorts, RawProperty, ResourceTable, Source,
};
use crate::model::{
    Alternatives, Constraint, Driver, Extension, External, Key, Kind, Package, PackageSource,
    Ports, Property, Resource, VersionReq, mangle,
};

impl Checker<'_> {
    pub(super) fn extension(&mut self) -> Extension {
        let source: &Source<manifest::ExtensionFile> = &self.raw.extension;
        let table = source.value.extension.get_ref();
        if table.name.get_ref() != "datablox" {
            self.error(
                EXTENSION_FILE,
                "extension-name",
                table.name.span(),
                format!("the extension is named `{}`, but block drivers import `engage.drivers.datablox`", table.name.get_ref()),
                "name the extension `datablox`".into(),
            );
        }
        self.version_text(EXTENSION_FILE, &table.version);
        let compression_level = match &table.compression_level {
            None => archive::DEFAULT_LEVEL,
            Some(level) if (0..=9).contains(level.get_ref()) => *level.get_ref() as u32,
            Some(level) => {
                self.error(
                    EXTENSION_FILE,
                    "compression-level",
                    level.span(),
                    format!("compression level {} is out of range", level.get_ref()),
                    format!(
                        "use a gzip level from 0 to 9 ({} is the default)",
                        archive::DEFAULT_LEVEL
                    ),
                );
                archive::DEFAULT_LEVEL
            }
        };
        self.default_inside = table
            .inside
            .iter()
            .filter_map(|raw| self.constraint(EXTENSION_FILE, raw, 0..0))
            .collect();
        let default_inside = self
            .default_inside
            .iter()
            .map(|located| located.constraint.clone())
            .collect();

        let mut externals = Vec::new();
        for raw in &source.value.external {
            let external = raw.get_ref();
            if let Some(problem) = name_problem("resource name", external.name.get_ref()) {
                self.problem(EXTENSION_FILE, external.name.span(), problem);
            }
            let mut output_ports =
                self.ports(EXTENSION_FILE, &external.output_ports, PortKind::Output);
            if external.platform {
                let host = HOST_PROPERTIES
                    .iter()
                    .map(|(name, ty)| {
                        (
                            name.to_string(),
                            Property {
                                ty: ty.to_string(),
                                default: None,
                                fixed_value: None,
                            },
                        )
                    })
                    .collect();
                output_ports.insert("host".into(), host);
            }
            if external.versions.is_empty() {
                self.error(
                    EXTENSION_FILE,
                    "external-versions",
                    raw.span(),
                    format!("external `{}` lists no versions", external.name.get_ref()),
                    "list the versions Engage defines, e.g. versions = [\"2.7\"]".into(),
                );
            }
            externals.push(External {
                name: external.name.get_ref().clone(),
                versions: external
                    .versions
                    .iter()
                    .map(|v| v.get_ref().clone())
                    .collect(),
                output_ports,
            });
        }
        Extension {
            name: table.name.get_ref().clone(),
            version: table.version.get_ref().clone(),
            compression_level,
            default_inside,
            externals,
            application_name: source
                .value
                .installer
                .as_ref()
                .map(|installer| installer.application_name.clone()),
            log_level: source
                .value
                .installer
                .as_ref()
                .and_then(|installer| installer.log_level.clone()),
            install_specs: Vec::new(),
        }
    }

    pub(super) fn resource(&mut self, file: usize, extension: &Extension) -> Option<Draft> {
        let source = &self.raw.resources[file];
        match (&source.value.block, &source.value.resource) {
            (Some(block), None) => Some(self.block(file, block, extension)),
            (None, Some(resource)) => Some(self.other(file, resource, extension)),
            (Some(_), Some(resource)) => {
                self.error(
                    file,
                    "two-tables",
                    resource.span(),
                    "a manifest describes one resource, but this one has both [block] and [resource]".into(),
                    "split it into two manifests".into(),
                );
                None
            }
            (None, None) => {
                self.error(
                    file,
                    "empty-manifest",
                    0..0,
                    "the manifest has neither a [block] nor a [resource] table".into(),
                    "add a [block] table with name and version (see docs/manifests.md)".into(),
                );
                None
            }
        }
    }

    pub(super) fn block(
        &mut self,
        file: usize,
        spanned: &Spanned<BlockTable>,
        extension: &Extension,
    ) -> Draft {
        let table = spanned.get_ref();
        let display = table.name.get_ref();
        if let Some(problem) = block_name_problem(display) {
            self.problem(file, table.name.span(), problem);
        }
        self.version_text(file, &table.version);
        let version = table.version.get_ref();
        let module = format!("{}__{}", mangle(display), mangle(version));
        let key = Key {
            name: display.to_lowercase(),
            version: version.clone(),
        };

        let source_span = table
            .source
            .as_ref()
            .map_or(table.name.span(), |s| s.span());
        let source_text = table
            .source
            .as_ref()
            .map_or(format!("blox/{module}"), |s| s.get_ref().clone());
        self.block_sources(file, &source_text, source_span, display, &module);

        let mut groups = Vec::new();
        let framework = Constraint {
            name: "datablox-framework".into(),
            version: VersionReq::Exact(extension.version.clone()),
            port_mapping: BTreeMap::from([(
                "datablox_framework".into(),
                "datablox_framework".into(),
            )]),
        };
        let mut environment = vec![Located {
            constraint: framework,
            file,
            span: table.name.span(),
        }];
        for raw in &table.requires {
            if let Some(located) = self.constraint(file, raw, 0..0) {
                environment.push(located);
            }
        }
        groups.push(LocatedGroup {
            field: "environment",
            group: Group::AllOf,
            constraints: environment,
        });
        let inside = match &table.inside {
            Some(raw) => self.alternatives(file, "inside", raw),
            None => self.default_inside(file, table.name.span(), extension, false),
        };
        groups.extend(inside);
        if let Some(raw) = &table.peers {
            groups.extend(self.alternatives(file, "peers", raw));
        }

        let home = Property {
            ty: "path".into(),
            default: None,
            fixed_value: Some(
                format!("${{input_ports.datablox_framework.BLOXPATH}}/{module}").into(),
            ),
        };
        let bloxpath = Property {
            ty: "path".into(),
            default: None,
            fixed_value: None,
        };
        let resource = Resource {
            key,
            kind: Kind::Block,
            manifest: self.raw.resources[file].path.clone(),
            display_name: table
                .display_name
                .clone()
                .unwrap_or_else(|| format!("{display} block")),
            comment: table.comment.clone(),
            config_port: self.config_port(file, &table.config_port),
            input_ports: BTreeMap::from([(
                "datablox_framework".into(),
                BTreeMap::from([("BLOXPATH".into(), bloxpath)]),
            )]),
            output_ports: BTreeMap::from([(
                "block_info".into(),
                BTreeMap::from([("home".into(), home)]),
            )]),
            inside: None,
            environment: None,
            peers: None,
            packages: vec![Package {
                source: PackageSource::Archive {
                    dir: normalise(&source_text),
                    file_name: format!("{module}.tgz"),
                    exclude: table.exclude.clone(),
                },
                filename: None,
                downloader: None,
            }],
            driver: Driver::Block,
        };
        self.finish(file, table.name.span(), resource, groups)
    }

    pub(super) fn other(
        &mut self,
        file: usize,
        spanned: &Spanned<ResourceTable>,
        extension: &Extension,
    ) -> Draft {
        let table = spanned.get_ref();
        if let Some(problem) = name_problem("resource name", table.name.get_ref()) {
            self.problem(file, table.name.span(), problem);
        }
        self.version_text(file, &table.version);
        let key = Key {
            name: table.name.get_ref().clone(),
            version: table.version.get_ref().clone(),
        };

        let driver = match (&table.manager, &table.driver) {
            (Some(manager), None) => self.manager(file, manager),
            (None, Some(driver)) => {
                let dir = self.repo_path(file, driver.get_ref(), driver.span(), "driver directory");
                if let Some(dir) = &dir
                    && !self.inputs.is_file(&dir.join("driver.py"))
                {
                    self.error(
                        file,
                        "driver-module",
                        driver.span(),
                        format!("driver directory `{}` has no `driver.py`", driver.get_ref()),
                        "write the driver's `Manager` and `get_packages_filename()` in driver.py"
                            .into(),
                    );
                }
                Driver::Directory(normalise(driver.get_ref()))
            }
            (Some(_), Some(driver)) => {
                self.error(
                    file,
                    "manager-and-driver",
                    driver.span(),
                    "a resource has either a `manager` (library entry) or a `driver` directory, not both".into(),
                    "remove one of them".into(),
                );
                Driver::Block
            }
            (None, None) => {
                self.error(
                    file,
                    "no-driver",
                    table.name.span(),
                    format!("resource `{key}` says nothing about how it is installed"),
                    "add `manager = \"<module of engage-extension/drivers>\"` or `driver = \"<directory>\"`".into(),
                );
                Driver::Block
            }
        };

        let mut packages = Vec::new();
        match &table.package {
            Some(list) if !list.get_ref().0.is_empty() => {
                for raw in &list.get_ref().0 {
                    if let Some(package) = self.package(file, raw, list.span()) {
                        packages.push(package);
                    }
                }
                self.package_fits_manager(file, &driver, &packages, list.span());
            }
            other => self.error(
                file,
                "no-package",
                other.as_ref().map_or(table.name.span(), |p| p.span()),
                format!("resource `{key}` has no package"),
                "add `package = { dummy = true }` if there is nothing to install".into(),
            ),
        }

        let input_ports = self.ports(file, &table.input_ports, PortKind::Input);
        let mut groups = Vec::new();
        match &table.inside {
            Some(raw) => groups.extend(self.alternatives(file, "inside", raw)),
            None => groups.extend(self.default_inside(
                file,
                table.name.span(),
                extension,
                input_ports.contains_key("host"),
            )),
        }
        if let Some(raw) = &table.environment {
            groups.extend(self.alternatives(file, "environment", raw));
        }
        if let Some(raw) = &table.peers {
            groups.extend(self.alternatives(file, "peers", raw));
        }
        let resource = Resource {
            kind: Kind::Resource,
            manifest: self.raw.resources[file].path.clone(),
            // Engage's config engine refuses the whole merged definitions file when one lacks
            // `display_name` (`config_src/config/parse_rdef.ml`, `parse_rdef`: a required
            // property), and `python_pkg/engage/utils/rdef.py` (`Resource.__init__`) raises
            // `KeyError`: a resource without one gets its key as a name.
            display_name: table
                .display_name
                .clone()
                .unwrap_or_else(|| key.to_string()),
            comment: table.comment.clone(),
            config_port: self.config_port(file, &table.config_port),
            input_ports,
            output_ports: self.ports(file, &table.output_ports, PortKind::Output),
            inside: None,
            environment: None,
            peers: None,
            packages,
            driver,
            key,
        };
        self.finish(file, table.name.span(), resource, groups)
    }

    pub(super) fn finish(
        &mut self,
        file: usize,
        key_span: Range<usize>,
        mut resource: Resource,
        groups: Vec<LocatedGroup>,
    ) -> Draft {
        for group in &groups {
            // Every constraint of the group was refused (and reported): nothing to record.
            if group.constraints.is_empty() {
                continue;
            }
            let constraints: Vec<Constraint> = group
                .constraints
                .iter()
                .map(|l| l.constraint.clone())
                .collect();
            let value = match group.group {
                Group::One => Alternatives::One(constraints[0].clone()),
                Group::AllOf => Alternatives::AllOf(constraints),
                Group::OneOf => Alternatives::OneOf(constraints),
            };
            match group.field {
                "inside" => resource.inside = Some(value),
                "environment" => resource.environment = Some(value),
                _ => resource.peers = Some(value),
            }
        }
        Draft {
            resource,
            file,
            key_span,
            groups,
        }
    }

    pub(super) fn config_port(
        &mut self,
        file: usize,
        raw: &BTreeMap<String, Spanned<RawProperty>>,
    ) -> BTreeMap<String, Property> {
        self.properties(file, raw, PortKind::Config)
    }

    pub(super) fn ports(&mut self, file: usize, raw: &RawPorts, kind: PortKind) -> Ports {
        raw.iter()
            .map(|(port, properties)| (port.clone(), self.properties(file, properties, kind)))
            .collect()
    }

    pub(super) fn properties(
        &mut self,
        file: usize,
        raw: &BTreeMap<String, Spanned<RawProperty>>,
        kind: PortKind,
    ) -> BTreeMap<String, Property> {
        let mut checked = BTreeMap::new();
        for (name, property) in raw {
            let value = property.get_ref();
            if value.default.is_some() && kind != PortKind::Config {
                self.error(
                    file,
                    "property-default",
                    property.span(),
                    format!("property `{name}` has a `default`, which only config ports take"),
                    "remove `default`, or move the property to `config-port`".into(),
                );
            }
            if value.fixed_value.is_some() && kind != PortKind::Output {
                self.error(
                    file,
                    "property-fixed-value",
                    property.span(),
                    format!("property `{name}` has a `fixed-value`, which only output ports take"),
                    "remove `fixed-value`, or move the property to an output port".into(),
                );
            }
            checked.insert(
                name.clone(),
                Property {
                    ty: value.ty.clone(),
                    default: value.default.as_ref().map(toml_to_json),
                    fixed_value: value.fixed_value.as_ref().map(toml_to_json),
                },
            );
        }
        checked
    }

    pub(super) fn default_inside(
        &mut self,
        file: usize,
        span: Range<usize>,
        extension: &Extension,
        map_host: bool,
    ) -> Option<LocatedGroup> {
        if extension.default_inside.is_empty() {
            return None;
        }
        let constraints: Vec<Located> = extension
            .default_inside
            .iter()
            .map(|platform| {
                let mut constraint = platform.clone();
                if map_host {
                    constraint.port_mapping.insert("host".into(), "host".into());
                }
                Located {
                    constraint,
                    file,
                    span: span.clone(),
                }
            })
            .collect();
        let group = if constraints.len() == 1 {
            Group::One
        } else {
            Group::OneOf
        };
        Some(LocatedGroup {
            field: "inside",
            group,
            constraints,
        })
    }

    pub(super) fn alternatives(
        &mut self,
        file: usize,
        field: &'static str,
        raw: &Spanned<RawAlternatives>,
    ) -> Option<LocatedGroup> {
        let outer = raw.span();
        let (group, list): (Group, Vec<&Spanned<RawConstraint>>) = match raw.get_ref() {
            RawAlternatives::One(one) => (Group::One, vec![one]),
            RawAlternatives::AllOf(all) => (Group::AllOf, all.iter().collect()),
            RawAlternatives::OneOf(all) => (Group::OneOf, all.iter().collect()),
        };
        if field == "inside" && matches!(group, Group::AllOf) {
            self.error(
                file,
                "inside-all-of",
                outer.clone(),
                "`inside` takes one constraint or `one-of`, never all of several".into(),
                "write `inside = { one-of = [...] }`, or a single constraint".into(),
            );
            return None;
        }
        if list.is_empty() {
            self.error(
                file,
                "empty-constraints",
                outer,
                format!("`{field}` lists no constraint"),
                format!("remove `{field}`, or add a constraint"),
            );
            return None;
        }
        let constraints = list
            .into_iter()
            .filter_map(|c| self.constraint(file, c, outer.clone()))
            .collect();
        Some(LocatedGroup {
            field,
            group,
            constraints,
        })
    }

    pub(super) fn constraint(
        &mut self,
        file: usize,
        raw: &Spanned<RawConstraint>,
        fallback: Range<usize>,
    ) -> Option<Located> {
        let span = if raw.span() == (0..0) {
            fallback
        } else {
            raw.span()
        };
        let parsed = match raw.get_ref() {
            RawConstraint::Short(text) => parse_constraint_text(text),
            RawConstraint::Full(full) => {
                parse_version_spec(&full.version).map(|version| Constraint {
                    name: full.name.clone(),
                    version,
                    port_mapping: full.port_mapping.clone(),
                })
            }
        };
        match parsed {
            Ok(constraint) => Some(Located {
                constraint,
                file,
                span,
            }),
            Err(problem) => {
                self.problem(file, span, problem);
                None
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum PortKind {
    Config,
    Input,
    Output,
}

pub(super) fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
