//! `Model` -> the files of the Engage extension tree that are generated rather than built:
//! `version.txt`, the JSON metadata, the driver directories' JSON and `driver.py`, and the list of
//! hand-written driver files to copy.
//!
//! Nothing here touches the disk: the result is a list of `OutputFile`s (paths relative to the
//! extension root `datablox/`). JSON is written in one format (sorted keys, two-space indent,
//! final newline) and re-read and compared before it is handed on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::{Diagnostic, Error, Result};
use crate::manifest::UrlList;
use crate::model::{
    Alternatives, Constraint, Driver, InstallSpec, Key, Kind, Model, Package, PackageSource,
    Property, Resource, VersionReq,
};

pub const DEFINITIONS_FILE: &str = "metadata/resource_definitions.json";
pub const LIBRARY_FILE: &str = "metadata/resource_library.json";
pub const INSTALLER_CONFIG_FILE: &str = "metadata/installer_config.json";
pub const GENERIC_DRIVER: &str = "generic_blox_driver.py";
/// What Engage appends to an install spec option's `file_name` to find its template.
pub const TEMPLATE_SUFFIX: &str = ".tmpl";
/// The installer's default `log_level` (`INFO`, one of `utils/log_setup.py`'s level names);
/// `[installer] log-level` sets another.
pub const INSTALLER_LOG_LEVEL: &str = "INFO";

/// One file of the extension tree, relative to its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    pub path: String,
    pub content: Content,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    /// A hand-written file, copied from this repository path.
    Copy(PathBuf),
}

/// The hand-written driver sources found in the repository, listed by `plan`.
#[derive(Clone, Debug, Default)]
pub struct DriverSources {
    /// `engage-extension/drivers/*.py`: the generic block driver and the manager modules.
    pub modules: Vec<PathBuf>,
    /// For each hand-written driver directory: its `.py` files.
    pub directories: BTreeMap<PathBuf, Vec<PathBuf>>,
    /// The node deployer: `bin/...` path in the tree -> repository file (`engage-extension/bin/deploy`
    /// and the `.py` files of `plan::DEPLOYER_PACKAGES`). Engage's `install_extension.py` copies only
    /// `metadata/`, `drivers/` and `sw_packages/`, so `bin/` is ignored by Engage's own tools.
    pub deployer: Vec<(String, PathBuf)>,
}

/// Every generated and copied file of the extension tree, sorted by path (archives excluded).
pub fn generate(model: &Model, drivers: &DriverSources) -> Result<Vec<OutputFile>> {
    let mut files = Vec::new();
    files.push(bytes(
        "version.txt",
        format!("{}\n", model.extension.version).into_bytes(),
    ));
    files.push(bytes(
        "drivers/__init__.py",
        b"\"\"\"Engage drivers of the Datablox extension.\"\"\"\n".to_vec(),
    ));

    let mut definitions = Vec::new();
    let mut library = Vec::new();
    // Driver directory name -> the manifest that produces it: two keys can mangle to one name.
    let mut driver_dirs: BTreeMap<String, &Path> = BTreeMap::new();
    for resource in &model.resources {
        if !matches!(resource.driver, Driver::Library { .. })
            && let Some(first) = driver_dirs.insert(resource.driver_dir(), &resource.manifest)
        {
            return Err(Error::new(
                Diagnostic::error(
                    "driver-dir-collision",
                    format!(
                        "`{}` and `{}` both produce the driver directory `datablox/drivers/{}`",
                        first.display(),
                        resource.manifest.display(),
                        resource.driver_dir()
                    ),
                )
                .file(&resource.manifest)
                .help("driver directories are named after the key with `-`, `.` and spaces mangled: rename one resource"),
            ));
        }
        match &resource.driver {
            Driver::Library { module } => {
                definitions.push(definition(resource));
                library.push(json!({
                    "key": key_json(&resource.key),
                    "mgr_module_name": module,
                    "packages": packages(resource),
                }));
            }
            Driver::Block => {
                let dir = format!("drivers/{}", resource.driver_dir());
                files.push(bytes(&format!("{dir}/__init__.py"), Vec::new()));
                files.push(bytes(
                    &format!("{dir}/driver.py"),
                    block_driver(resource).into_bytes(),
                ));
                files.push(json_file(
                    &format!("{dir}/resources.json"),
                    &json!([definition(resource)]),
                ));
                files.push(json_file(
                    &format!("{dir}/packages.json"),
                    &packages(resource),
                ));
            }
            Driver::Directory(source) => {
                let dir = format!("drivers/{}", resource.driver_dir());
                let copied = drivers
                    .directories
                    .get(source)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for path in copied {
                    let name = path
                        .file_name()
                        .expect("listed files have names")
                        .to_string_lossy();
                    files.push(OutputFile {
                        path: format!("{dir}/{name}"),
                        content: Content::Copy(path.clone()),
                    });
                }
                if !copied
                    .iter()
                    .any(|p| p.file_name().is_some_and(|n| n == "__init__.py"))
                {
                    files.push(bytes(&format!("{dir}/__init__.py"), Vec::new()));
                }
                files.push(json_file(
                    &format!("{dir}/resources.json"),
                    &json!([definition(resource)]),
                ));
                files.push(json_file(
                    &format!("{dir}/packages.json"),
                    &packages(resource),
                ));
            }
        }
    }
    files.push(json_file(DEFINITIONS_FILE, &Value::Array(definitions)));
    files.push(json_file(LIBRARY_FILE, &Value::Array(library)));

    for module in &drivers.modules {
        let name = module
            .file_name()
            .expect("listed files have names")
            .to_string_lossy();
        files.push(OutputFile {
            path: format!("drivers/{name}"),
            content: Content::Copy(module.clone()),
        });
    }

    for (path, source) in &drivers.deployer {
        files.push(OutputFile {
            path: path.clone(),
            content: Content::Copy(source.clone()),
        });
    }

    if let Some(application) = &model.extension.application_name {
        files.push(json_file(
            INSTALLER_CONFIG_FILE,
            &installer_config(
                application,
                model.extension.log_level.as_deref(),
                &model.extension.install_specs,
            ),
        ));
    }
    for spec in &model.extension.install_specs {
        files.push(json_file(
            &format!("metadata/{}", spec.file),
            &install_spec(spec),
        ));
    }

    files.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(pair) = files.windows(2).find(|pair| pair[0].path == pair[1].path) {
        return Err(Error::new(
            Diagnostic::error("output-collision", format!("two sources produce `datablox/{}`", pair[0].path))
                .help("a hand-written driver module and a generated file have the same name: rename the hand-written one"),
        ));
    }
    Ok(files)
}

/// What Engage's installer reads first. `python_pkg/engage/engine/installer_config.py`
/// (`parse_installer_config`) requires `resource_def_file_name`, `software_library_file_name`,
/// `log_level` and `application_name` as strings, and `install_spec_options` as a list whose
/// options each have `choice_name` and `file_name` (`_parse_install_spec_options`).
/// `engine/engage_file_layout.py` (`get_install_spec_template_file`) appends `.tmpl` to an
/// option's `file_name` to find its template, so the name is written without it (`check` makes
/// every chosen spec's file end in `.tmpl`). `log_level` is only stored by Engage; the level
/// names are those of `utils/log_setup.py`.
fn installer_config(application: &str, log_level: Option<&str>, specs: &[InstallSpec]) -> Value {
    let choices: Vec<Value> = specs
        .iter()
        .filter_map(|spec| {
            let choice = spec.choice.as_ref()?;
            let file_name = spec
                .file
                .strip_suffix(TEMPLATE_SUFFIX)
                .unwrap_or(&spec.file);
            Some(json!({"choice_name": choice, "file_name": file_name}))
        })
        .collect();
    json!({
        "application_name": application,
        "resource_def_file_name": Path::new(DEFINITIONS_FILE).file_name().unwrap().to_string_lossy(),
        "software_library_file_name": Path::new(LIBRARY_FILE).file_name().unwrap().to_string_lossy(),
        "log_level": log_level.unwrap_or(INSTALLER_LOG_LEVEL),
        "install_spec_options": choices,
    })
}

fn bytes(path: &str, content: Vec<u8>) -> OutputFile {
    OutputFile {
        path: path.to_string(),
        content: Content::Bytes(content),
    }
}

/// `value` in the one JSON format of the tree: pretty-printed, ended by a newline.
pub fn json_file(path: &str, value: &Value) -> OutputFile {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values always serialize");
    text.push('\n');
    bytes(path, text.into_bytes())
}

pub fn key_json(key: &Key) -> Value {
    json!({"name": key.name, "version": key.version})
}

fn version_json(version: &VersionReq) -> Value {
    match version {
        VersionReq::Exact(exact) | VersionReq::Any(exact) => Value::String(exact.clone()),
        VersionReq::Range(bounds) => Value::Object(
            bounds
                .iter()
                .map(|(op, bound)| (op.json_name().to_string(), Value::String(bound.clone())))
                .collect(),
        ),
    }
}

fn constraint_json(constraint: &Constraint) -> Value {
    let mut object = Map::new();
    object.insert(
        "key".into(),
        json!({"name": constraint.name, "version": version_json(&constraint.version)}),
    );
    if !constraint.port_mapping.is_empty() {
        object.insert("port_mapping".into(), json!(constraint.port_mapping));
    }
    Value::Object(object)
}

fn alternatives_json(alternatives: &Alternatives) -> Value {
    match alternatives {
        Alternatives::One(one) => constraint_json(one),
        Alternatives::AllOf(all) => {
            json!({"all-of": all.iter().map(constraint_json).collect::<Vec<_>>()})
        }
        Alternatives::OneOf(all) => {
            json!({"one-of": all.iter().map(constraint_json).collect::<Vec<_>>()})
        }
    }
}

fn property_json(property: &Property) -> Value {
    match (&property.default, &property.fixed_value) {
        (None, None) => Value::String(property.ty.clone()),
        (Some(default), _) => json!({"type": property.ty, "default": default}),
        (None, Some(fixed)) => json!({"type": property.ty, "fixed-value": fixed}),
    }
}

fn properties_json(properties: &BTreeMap<String, Property>) -> Value {
    Value::Object(
        properties
            .iter()
            .map(|(name, p)| (name.clone(), property_json(p)))
            .collect(),
    )
}

fn ports_json(ports: &BTreeMap<String, BTreeMap<String, Property>>) -> Value {
    Value::Object(
        ports
            .iter()
            .map(|(name, p)| (name.clone(), properties_json(p)))
            .collect(),
    )
}

/// A resource definition, with only the fields that have content.
pub fn definition(resource: &Resource) -> Value {
    let mut object = Map::new();
    object.insert("key".into(), key_json(&resource.key));
    object.insert(
        "display_name".into(),
        Value::String(resource.display_name.clone()),
    );
    if let Some(comment) = &resource.comment {
        object.insert("comment".into(), Value::String(comment.clone()));
    }
    if !resource.config_port.is_empty() {
        object.insert("config_port".into(), properties_json(&resource.config_port));
    }
    if !resource.input_ports.is_empty() {
        object.insert("input_ports".into(), ports_json(&resource.input_ports));
    }
    if !resource.output_ports.is_empty() {
        object.insert("output_ports".into(), ports_json(&resource.output_ports));
    }
    for (field, value) in [
        ("inside", &resource.inside),
        ("environment", &resource.environment),
        ("peers", &resource.peers),
    ] {
        if let Some(value) = value {
            object.insert(field.into(), alternatives_json(value));
        }
    }
    Value::Object(object)
}

fn package_json(package: &Package) -> Value {
    let text = |s: &str| Value::String(s.into());
    let (ty, class, location) = match &package.source {
        PackageSource::Archive { file_name, .. } => {
            ("Archive", "GzippedTarArchive", text(file_name))
        }
        PackageSource::File { file_name, .. } => ("File", "FilePackage", text(file_name)),
        PackageSource::Pip(name) => ("Reference", "PipLink", text(name)),
        PackageSource::EasyInstall(name) => ("Reference", "EasyInstallLink", text(name)),
        PackageSource::Dummy => ("Reference", "DummyPackage", text("")),
        PackageSource::AptGet(name) => ("Reference", "AptGet", text(name)),
        PackageSource::MacPorts(name) => ("Reference", "MacPorts", text(name)),
        PackageSource::Url { location, class } => {
            let ty = if class == "FilePackage" {
                "File"
            } else {
                "Archive"
            };
            let location = match location {
                UrlList::One(url) => text(url),
                UrlList::Mirrors(all) => Value::Array(all.iter().map(|u| text(u)).collect()),
            };
            (ty, class.as_str(), location)
        }
    };
    let mut object = Map::new();
    object.insert("type".into(), Value::String(ty.into()));
    object.insert("package_class".into(), Value::String(class.into()));
    object.insert("location".into(), location);
    if let Some(filename) = &package.filename {
        object.insert("filename".into(), Value::String(filename.clone()));
    }
    if let Some(downloader) = &package.downloader {
        object.insert("downloader".into(), Value::String(downloader.clone()));
    }
    Value::Object(object)
}

pub fn packages(resource: &Resource) -> Value {
    Value::Array(resource.packages.iter().map(package_json).collect())
}

fn block_driver(resource: &Resource) -> String {
    debug_assert_eq!(resource.kind, Kind::Block);
    // The docstring must stay a docstring whatever the display name holds.
    let name = resource
        .display_name
        .replace('\\', "/")
        .replace("\"\"\"", "'''");
    format!(
        r#"# -*- coding: utf-8 -*-
"""Engage driver of {name} {version}: the generic block driver with this block's packages.

Generated by `cargo xtask dist` from {manifest}; do not edit.
"""
import engage.drivers.utils
from engage.drivers.datablox.generic_blox_driver import Manager


def get_packages_filename():
    return engage.drivers.utils.get_packages_filename(__file__)


__all__ = ["Manager", "get_packages_filename"]
"#,
        version = resource.key.version,
        manifest = resource.manifest.to_string_lossy().replace('\\', "/"),
    )
}

fn install_spec(spec: &InstallSpec) -> Value {
    let instances = spec
        .instances
        .iter()
        .map(|instance| {
            let mut object = Map::new();
            object.insert("id".into(), Value::String(instance.id.clone()));
            object.insert("key".into(), key_json(&instance.key));
            let reference = |r: &crate::model::InstanceRef| {
                let mut object = Map::new();
                object.insert("id".into(), Value::String(r.id.clone()));
                object.insert("key".into(), key_json(&r.key));
                if !r.port_mapping.is_empty() {
                    object.insert("port_mapping".into(), json!(r.port_mapping));
                }
                Value::Object(object)
            };
            if let Some(inside) = &instance.inside {
                object.insert("inside".into(), reference(inside));
            }
            if !instance.environment.is_empty() {
                object.insert(
                    "environment".into(),
                    Value::Array(instance.environment.iter().map(reference).collect()),
                );
            }
            if !instance.peers.is_empty() {
                object.insert(
                    "peers".into(),
                    Value::Array(instance.peers.iter().map(reference).collect()),
                );
            }
            if !instance.config_port.is_empty() {
                object.insert("config_port".into(), json!(instance.config_port));
            }
            Value::Object(object)
        })
        .collect();
    Value::Array(instances)
}
