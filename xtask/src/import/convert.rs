//! Conversion: what `legacy` read -> manifest texts and the files they refer to.
//!
//! Each key is resolved as Engage resolves it (a library entry wins; otherwise the driver
//! directory of the key, a "new-style" entry), each package as Engage's package classes read it.
//! A defect skips only what it concerns: a package nothing builds is left out (Engage falls back to
//! the next package of the list), a resource is skipped only when nothing of it can be installed,
//! and a resource that needs a skipped one is imported with the reference kept and a warning.
//! Fields the manifests derive are left out, so a block whose definition has the derived shape
//! becomes a `[block]` of a few lines; any other resource becomes a `[resource]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::legacy::{Definition, Legacy, Origin, SourceOf, archive_stem, file_name, shown};
use super::{Content, Notes};
use crate::check::{DRIVER_SOURCES, block_name_problem, parse_constraint_text};
use crate::error::Diagnostic;
use crate::extension::GENERIC_DRIVER;
use crate::manifest::External;
use crate::model::{Key, VersionReq, driver_dir_name, mangle};

/// What the import will write (paths relative to the target project) and what became of each key.
#[derive(Debug, Default)]
pub struct Converted {
    pub files: BTreeMap<PathBuf, Content>,
    pub imported: Vec<Key>,
    pub skipped: Vec<Key>,
}

/// Engage's standard keys, from the one list `engage_standard.toml`.
#[derive(Deserialize)]
struct StandardFile {
    external: Vec<External>,
}

fn standard() -> Vec<External> {
    let file: StandardFile = toml::from_str(include_str!("engage_standard.toml"))
        .expect("engage_standard.toml is part of the source and parses");
    file.external
}

/// How a key is installed, as Engage finds it.
#[derive(Clone, Debug)]
enum Installer {
    /// A library entry naming a manager module.
    Library { module: String },
    /// A driver directory (a new-style entry); `generic` when it re-exports the generic block driver.
    Directory { dir: PathBuf, generic: bool },
}

/// A resource that can be imported: its manifest text and the files it needs.
struct Manifest {
    key: Key,
    /// The manifest file name wanted (before making names unique).
    stem: String,
    text: String,
    copies: Vec<(PathBuf, Content)>,
    definition: Map<String, Value>,
    origin: PathBuf,
}

/// Fields of a definition the manifests can express.
const FIELDS: [&str; 9] = [
    "key",
    "display_name",
    "comment",
    "config_port",
    "input_ports",
    "output_ports",
    "inside",
    "environment",
    "peers",
];

pub fn convert(legacy: &Legacy, existing: &BTreeMap<Key, String>, notes: &mut Notes) -> Converted {
    let mut converter = Converter {
        legacy,
        notes,
        guessed: BTreeSet::new(),
        blox_reported: false,
    };
    let default_inside = most_common_inside(&legacy.definitions);
    let mut manifests = Vec::new();
    let mut skipped = Vec::new();
    for definition in &legacy.definitions {
        match converter.resource(definition, &default_inside) {
            Some(manifest) => manifests.push(manifest),
            None => skipped.push(definition.key.clone()),
        }
    }
    let imported: BTreeSet<Key> = manifests.iter().map(|m| m.key.clone()).collect();
    let skipped_set: BTreeSet<Key> = skipped.iter().cloned().collect();
    let externals = converter.references(&manifests, &imported, &skipped_set);

    let mut converted = Converted::default();
    let extension = converter.extension(&default_inside, &externals, &imported);
    converted.files.insert(
        PathBuf::from("manifests/extension.toml"),
        Content::Text(extension),
    );
    // The generic block driver travels with the blocks, whose driver directories re-export it.
    let blocks_need_generic = manifests.iter().any(|m| m.text.contains("[block]"))
        || manifests
            .iter()
            .any(|m| m.text.contains("generic_blox_driver"));
    if blocks_need_generic {
        match legacy.modules.get(GENERIC_DRIVER) {
            Some(path) => {
                converted.files.insert(
                    PathBuf::from(DRIVER_SOURCES).join(GENERIC_DRIVER),
                    Content::Copy(path.clone()),
                );
            }
            None => converter.notes.push(
                Diagnostic::warning(
                    "no-generic-driver",
                    "the legacy extension has no generic block driver, which every block driver imports",
                )
                .help(format!("copy the generic block driver to `{DRIVER_SOURCES}/{GENERIC_DRIVER}` before `cargo xtask dist`")),
            ),
        }
    }

    // Manifest file names: one per key. A key the target's manifests already define keeps its
    // file (a merge replaces it); names that several keys share get the version.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for manifest in &manifests {
        *counts.entry(manifest.stem.clone()).or_default() += 1;
    }
    let mut taken: BTreeSet<String> = BTreeSet::from(["extension".to_string()]);
    taken.extend(existing.values().cloned());
    for manifest in manifests {
        let stem = match existing.get(&manifest.key) {
            Some(stem) => stem.clone(),
            None => {
                let mut stem = manifest.stem.clone();
                if counts[&stem] > 1 || taken.contains(&stem) {
                    stem = format!("{stem}-{}", mangle(&manifest.key.version));
                }
                let base = stem.clone();
                let mut n = 2;
                while !taken.insert(stem.clone()) {
                    stem = format!("{base}-{n}");
                    n += 1;
                }
                stem
            }
        };
        converted.files.insert(
            PathBuf::from("manifests").join(format!("{stem}.toml")),
            Content::Text(manifest.text),
        );
        for (target, content) in manifest.copies {
            match converted.files.get(&target) {
                Some(first) if *first != content => converter.notes.push(
                    Diagnostic::warning(
                        "shared-target",
                        format!("`{}` of `{}` would be written where another resource's file goes; the first is kept", target.display(), manifest.key),
                    )
                    .file(&manifest.origin)
                    .help("give the packages' sources distinct names, or pass `--sources` for one of them"),
                ),
                Some(_) => {}
                None => {
                    converted.files.insert(target, content);
                }
            }
        }
        converted.imported.push(manifest.key);
    }
    converted.imported.sort();
    skipped.sort();
    converted.skipped = skipped;
    converted
}

struct Converter<'a> {
    legacy: &'a Legacy,
    notes: &'a mut Notes,
    /// Package names whose source was guessed (reported once each).
    guessed: BTreeSet<String>,
    blox_reported: bool,
}

/// What became of one legacy package.
enum PackageOutcome {
    /// The package as a TOML inline table, and the files it needs.
    Kept(String, Vec<(PathBuf, Content)>),
    /// Nothing builds it: left out; reported with what the import knows.
    Unbuilt(String),
    /// The package is wrong in itself (Engage refuses the library): the resource is skipped.
    Invalid(String),
}

impl Converter<'_> {
    fn shown(&self, path: &Path) -> PathBuf {
        self.legacy.shown(path)
    }

    fn warn(&mut self, code: &'static str, file: &Path, message: String, help: impl Into<String>) {
        self.notes
            .push(Diagnostic::warning(code, message).file(file).help(help));
    }

    fn resource(
        &mut self,
        definition: &Definition,
        default_inside: &Option<Value>,
    ) -> Option<Manifest> {
        let key = &definition.key;
        let origin = definition.origin.clone();
        let dir_name = driver_dir_name(key);
        let installer = if let Some(entry) = self.legacy.library.get(key) {
            if let Some(dir) = self.legacy.drivers.get(&dir_name).filter(|d| d.has_driver) {
                let shown = self.shown(&dir.path);
                self.warn(
                    "shadowed-driver",
                    &shown,
                    format!("`{key}` has a library entry, which wins over its driver directory `drivers/{dir_name}`; the directory is not imported"),
                    "remove the driver directory, or the library entry",
                );
            }
            (
                Installer::Library {
                    module: entry.module.clone(),
                },
                entry.packages.clone(),
                self.shown(&self.legacy.library_path),
            )
        } else {
            match self.legacy.drivers.get(&dir_name) {
                Some(dir)
                    if dir.has_driver && dir.packages.as_ref().is_some_and(|p| !p.is_empty()) =>
                {
                    (
                        Installer::Directory {
                            dir: dir.path.clone(),
                            generic: dir.generic,
                        },
                        dir.packages.clone().unwrap_or_default(),
                        self.shown(&dir.path.join("packages.json")),
                    )
                }
                Some(dir) if dir.has_driver => {
                    let shown = self.shown(&dir.path.join("packages.json"));
                    self.warn(
                        "no-packages",
                        &shown,
                        format!("driver directory `drivers/{dir_name}` has no usable packages.json, which Engage requires; `{key}` is skipped"),
                        "write packages.json: a non-empty JSON list of packages",
                    );
                    return None;
                }
                _ => {
                    self.warn(
                        "no-driver",
                        &origin,
                        format!("`{key}` has neither a library entry nor a driver directory `drivers/{dir_name}` (driver.py and packages.json), so Engage cannot install it; it is skipped"),
                        "add a library entry to metadata/resource_library.json, or the driver directory",
                    );
                    return None;
                }
            }
        };
        let (installer, packages, packages_origin) = installer;

        if let Some(field) = definition
            .json
            .keys()
            .find(|k| !FIELDS.contains(&k.as_str()))
        {
            self.warn(
                "unsupported-field",
                &origin,
                format!("the definition of `{key}` has a field `{field}` the manifests cannot express; `{key}` is skipped"),
                "remove the field, or extend the manifest format",
            );
            return None;
        }

        // A block: the generic block driver, and an archive of its block directory.
        let module = dir_name.to_lowercase();
        let is_block = match &installer {
            Installer::Directory { generic, .. } => *generic,
            Installer::Library { module } => module.ends_with(".generic_blox_driver"),
        };
        if is_block && !self.block_directory_exists(&module) {
            return self.missing_block(key, &installer, &module, &origin);
        }

        let mut kept = Vec::new();
        let mut copies = Vec::new();
        let mut dropped = Vec::new();
        for package in &packages {
            match self.package(package) {
                PackageOutcome::Kept(text, files) => {
                    kept.push(text);
                    copies.extend(files);
                }
                PackageOutcome::Unbuilt(problem) => dropped.push(problem),
                PackageOutcome::Invalid(problem) => {
                    self.warn(
                        "bad-package",
                        &packages_origin,
                        format!("a package of `{key}` {problem}; `{key}` is skipped"),
                        "fix the package (see the table of package classes in docs/manifests.md)",
                    );
                    return None;
                }
            }
        }
        for problem in &dropped {
            let (what, help) = if kept.is_empty() {
                (format!("`{key}` is skipped: none of its packages can be built"), "put the package's source where the legacy build takes it, or pass `--sources NAME=DIR`".to_string())
            } else {
                (format!("it is left out, and Engage installs `{key}` from the next package of its list"), "nothing to do if the fallback is what you want; else pass `--sources NAME=DIR` with its source".to_string())
            };
            self.warn(
                "unbuilt-package",
                &packages_origin,
                format!("{problem}; {what}"),
                help,
            );
        }
        if kept.is_empty() {
            return None;
        }

        // The block form when the definition is what the manifests would derive.
        if let Installer::Directory { generic: true, .. } = &installer
            && let Some(mut text) = block_manifest(
                definition,
                &module,
                &self.legacy.version,
                default_inside,
                &packages,
            )
        {
            // The block directory is `blox/<module>` unless the legacy tree keeps it elsewhere.
            if let Some(source) = self.legacy.source_of(&format!("{module}.tgz")) {
                let target = self.target_of(&source);
                if target != Path::new("blox").join(&module) {
                    text.push_str(&format!("source = {}\n", tstr(&slash(&target))));
                }
            }
            return Some(Manifest {
                key: key.clone(),
                stem: mangle(&key.name),
                text,
                copies,
                definition: definition.json.clone(),
                origin,
            });
        }

        let mut text = format!("# Imported from {}.\n[resource]\n", origin.display());
        text.push_str(&format!(
            "name = {}\nversion = {}\n",
            tstr(&key.name),
            tstr(&key.version)
        ));
        let json = &definition.json;
        if let Some(display) = json.get("display_name").and_then(Value::as_str) {
            text.push_str(&format!("display-name = {}\n", tstr(display)));
        }
        if let Some(comment) = json.get("comment").and_then(Value::as_str) {
            text.push_str(&format!("comment = {}\n", tstr(comment)));
        }
        match &installer {
            Installer::Library { module } => {
                match module.strip_prefix("engage.drivers.datablox.") {
                    Some(name) if is_module_name(name) => {
                        let Some(source) = self.legacy.modules.get(&format!("{name}.py")) else {
                            let shown = self.shown(&self.legacy.library_path);
                            self.warn(
                                "missing-manager",
                                &shown,
                                format!("the library entry of `{key}` names `{module}`, but there is no `drivers/{name}.py`; `{key}` is skipped"),
                                "add the manager module to the legacy drivers/, or fix `mgr_module_name`",
                            );
                            return None;
                        };
                        copies.push((
                            PathBuf::from(DRIVER_SOURCES).join(format!("{name}.py")),
                            Content::Copy(source.clone()),
                        ));
                        text.push_str(&format!("manager = {}\n", tstr(name)));
                    }
                    // Engage's own modules (`engage.drivers.genforma.pip`, ...) are named as they are.
                    _ => text.push_str(&format!("manager = {}\n", tstr(module))),
                }
            }
            Installer::Directory { dir, .. } => {
                let target = PathBuf::from(DRIVER_SOURCES).join(file_name(dir));
                for entry in walkdir::WalkDir::new(dir)
                    .min_depth(1)
                    .sort_by_file_name()
                    .into_iter()
                    .filter_entry(|e| e.file_name() != "__pycache__")
                    .filter_map(|e| e.ok())
                {
                    let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
                    let generated = relative == Path::new("resources.json")
                        || relative == Path::new("packages.json");
                    let compiled = entry.file_name().to_string_lossy().ends_with(".pyc");
                    if generated || compiled || entry.file_type().is_dir() {
                        continue;
                    }
                    copies.push((
                        target.join(relative),
                        Content::Copy(entry.path().to_path_buf()),
                    ));
                }
                text.push_str(&format!("driver = {}\n", tstr(&slash(&target))));
            }
        }
        if kept.len() == 1 {
            text.push_str(&format!("package = {}\n", kept[0]));
        } else {
            text.push_str(&format!("package = [{}]\n", kept.join(", ")));
        }
        let has_host = json
            .get("input_ports")
            .and_then(|p| p.get("host"))
            .is_some();
        let derived_inside = default_inside.as_ref().map(|d| with_host(d, has_host));
        let unexpressible = |converter: &mut Converter, what: &str| {
            converter.warn(
                "unsupported-field",
                &origin,
                format!("`{what}` of `{key}` cannot be written as a manifest; `{key}` is skipped"),
                "simplify the definition (see docs/manifests.md), then import again",
            );
            None
        };
        match (json.get("inside"), &derived_inside) {
            (Some(inside), Some(derived)) if normalized(inside) == normalized(derived) => {}
            (Some(inside), _) => match alternatives_toml(inside) {
                Some(value) => text.push_str(&format!("inside = {value}\n")),
                None => return unexpressible(self, "inside"),
            },
            (None, None) => {}
            (None, Some(_)) => {
                self.warn(
                    "no-inside",
                    &origin,
                    format!(
                        "`{key}` says nowhere where it is installed (no `inside`); it is skipped"
                    ),
                    "add `inside` to the definition",
                );
                return None;
            }
        }
        for field in ["environment", "peers"] {
            if let Some(value) = json.get(field) {
                match alternatives_toml(value) {
                    Some(value) => text.push_str(&format!("{field} = {value}\n")),
                    None => return unexpressible(self, field),
                }
            }
        }
        if let Some(config) = json.get("config_port").and_then(Value::as_object)
            && !config.is_empty()
        {
            let Some(properties) = properties_toml(config) else {
                return unexpressible(self, "config_port");
            };
            text.push_str("\n[resource.config-port]\n");
            text.push_str(&properties);
        }
        for (field, table) in [
            ("input_ports", "input-ports"),
            ("output_ports", "output-ports"),
        ] {
            for (port, properties) in json
                .get(field)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let Some(properties) = properties.as_object().and_then(properties_toml) else {
                    return unexpressible(self, field);
                };
                text.push_str(&format!("\n[resource.{table}.{}]\n", toml_key(port)));
                text.push_str(&properties);
            }
        }
        Some(Manifest {
            key: key.clone(),
            stem: file_stem(&key.name),
            text,
            copies,
            definition: definition.json.clone(),
            origin,
        })
    }

    fn block_directory_exists(&self, module: &str) -> bool {
        self.legacy
            .blox
            .as_ref()
            .is_some_and(|blox| blox.join(module).is_dir())
            || self
                .legacy
                .sources
                .get(&format!("{module}.tgz"))
                .is_some_and(|s| s.path.is_dir())
    }

    /// A block whose block directory is gone: nothing builds its archive. Reported once.
    fn missing_block(
        &mut self,
        key: &Key,
        installer: &Installer,
        module: &str,
        origin: &Path,
    ) -> Option<Manifest> {
        let (file, remove) = match installer {
            Installer::Directory { dir, .. } => (
                self.shown(dir),
                format!("delete `drivers/{}`", file_name(dir)),
            ),
            Installer::Library { .. } => (
                origin.to_path_buf(),
                "delete its definition and library entry".to_string(),
            ),
        };
        let (message, help) = match &self.legacy.blox {
            Some(blox) => (
                format!(
                    "block `{key}`: its block directory `{}` is gone, so nothing builds `{module}.tgz`; `{key}` is skipped",
                    self.shown(&blox.join(module)).display()
                ),
                format!("restore the block's sources, or {remove}"),
            ),
            None if !self.blox_reported => {
                self.blox_reported = true;
                (
                    format!(
                        "block `{key}`: no `blox/` directory was found beside the extension or above it, so nothing builds `{module}.tgz`; `{key}` is skipped, as is every block"
                    ),
                    "pass `--blox DIR` with the legacy blox/ directory".to_string(),
                )
            }
            None => (
                format!(
                    "block `{key}`: no `blox/` directory (see above), so nothing builds `{module}.tgz`; `{key}` is skipped"
                ),
                "give the legacy blox/ directory with --blox".to_string(),
            ),
        };
        self.warn("missing-block-directory", &file, message, help);
        None
    }

    fn package(&mut self, package: &Value) -> PackageOutcome {
        let text = |field: &str| {
            package
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (Some(ty), Some(class)) = (text("type"), text("package_class")) else {
            return PackageOutcome::Invalid("has no `type` or `package_class`".into());
        };
        let expected = match class.as_str() {
            "GzippedTarArchive" | "ZipArchive" => "Archive",
            "FilePackage" => "File",
            "PipLink" | "EasyInstallLink" | "DummyPackage" | "AptGet" | "MacPorts" => "Reference",
            other => {
                return PackageOutcome::Invalid(format!(
                    "has the package class `{other}`, which Engage does not know"
                ));
            }
        };
        if ty != expected {
            return PackageOutcome::Invalid(format!(
                "is a `{class}` of type `{ty}`; Engage wants type `{expected}`"
            ));
        }
        if let Some(field) = package.as_object().and_then(|o| {
            o.keys()
                .find(|k| {
                    ![
                        "type",
                        "package_class",
                        "location",
                        "filename",
                        "downloader",
                    ]
                    .contains(&k.as_str())
                })
                .cloned()
        }) {
            return PackageOutcome::Invalid(format!(
                "has a field `{field}` the manifests cannot express"
            ));
        }
        let downloader = text("downloader");
        let mut extra = String::new();
        if let Some(filename) = text("filename") {
            extra.push_str(&format!(", filename = {}", tstr(&filename)));
        }
        if let Some(downloader) = &downloader {
            extra.push_str(&format!(", downloader = {}", tstr(downloader)));
        }
        let location = package.get("location").cloned().unwrap_or(Value::Null);
        // A downloaded file or archive: one URL or a list of mirrors.
        if expected != "Reference" && downloader.is_some() {
            let url = match &location {
                Value::String(one) => tstr(one),
                Value::Array(all) if all.iter().all(Value::is_string) && !all.is_empty() => {
                    format!(
                        "[{}]",
                        all.iter()
                            .filter_map(Value::as_str)
                            .map(tstr)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
                _ => return PackageOutcome::Invalid("has no usable `location`".into()),
            };
            if text("filename").is_none() {
                return PackageOutcome::Invalid(
                    "has a `downloader` but no `filename`, which Engage requires".into(),
                );
            }
            return PackageOutcome::Kept(
                format!("{{ url = {url}, class = {}{extra} }}", tstr(&class)),
                Vec::new(),
            );
        }
        let Some(location) = location.as_str().map(str::to_string) else {
            return PackageOutcome::Invalid(
                "has a `location` that is not a string (a list needs a `downloader`)".into(),
            );
        };
        let reference = |kind: &str| {
            PackageOutcome::Kept(
                format!("{{ {kind} = {}{extra} }}", tstr(&location)),
                Vec::new(),
            )
        };
        match class.as_str() {
            "PipLink" => return reference("pip"),
            "EasyInstallLink" => return reference("easy-install"),
            "AptGet" => return reference("apt-get"),
            "MacPorts" => return reference("macports"),
            "DummyPackage" => {
                return PackageOutcome::Kept(format!("{{ dummy = true{extra} }}"), Vec::new());
            }
            _ => {}
        }
        // A file of sw_packages: it needs a source the build can take.
        let plain_name = !location.is_empty()
            && Path::new(&location).components().count() == 1
            && matches!(
                Path::new(&location).components().next(),
                Some(Component::Normal(_))
            );
        if !plain_name {
            return PackageOutcome::Unbuilt(format!(
                "the package `{location}` is not a file name of sw_packages, so no build can produce it"
            ));
        }
        let Some(source) = self.legacy.source_of(&location) else {
            return PackageOutcome::Unbuilt(format!(
                "no build produces `{location}`: neither the legacy Makefile nor `--sources` names its source, and no directory `{}` exists where legacy trees keep sources",
                archive_stem(&location).unwrap_or(&location)
            ));
        };
        if !source.path.exists() && !source.path.is_symlink() {
            let by = if source.origin == Origin::Makefile {
                "the legacy Makefile builds it"
            } else {
                "`--sources` names"
            };
            return PackageOutcome::Unbuilt(format!(
                "no build produces `{location}`: {by} from `{}`, which is not there",
                self.shown(&source.path).display()
            ));
        }
        if source.origin == Origin::Guess && self.guessed.insert(location.clone()) {
            let shown = self.shown(&source.path);
            self.warn(
                "guessed-source",
                &shown,
                format!(
                    "nothing names the source of `{location}`; the import takes `{}` (a guess)",
                    shown.display()
                ),
                format!("check it, or pass `--sources {location}=DIR`"),
            );
        }
        match class.as_str() {
            "GzippedTarArchive" if source.path.is_dir() => {
                let target = self.target_of(&source);
                let mut fields = format!("archive = {}", tstr(&slash(&target)));
                if format!("{}.tgz", file_name(&target)) != location {
                    fields.push_str(&format!(", name = {}", tstr(&location)));
                }
                PackageOutcome::Kept(
                    format!("{{ {fields}{extra} }}"),
                    copy_tree(&source.path, &target),
                )
            }
            "FilePackage" if source.path.is_file() => {
                let target = self.target_of(&source);
                let mut fields = format!("file = {}", tstr(&slash(&target)));
                if file_name(&target) != location {
                    fields.push_str(&format!(", name = {}", tstr(&location)));
                }
                PackageOutcome::Kept(
                    format!("{{ {fields}{extra} }}"),
                    vec![(target, Content::Copy(source.path.clone()))],
                )
            }
            "ZipArchive" => PackageOutcome::Unbuilt(format!(
                "no build produces the zip archive `{location}` (`{}` is there, but the manifests build .tgz archives only)",
                self.shown(&source.path).display()
            )),
            _ if source.origin == Origin::Shipped => PackageOutcome::Unbuilt(format!(
                "no build produces `{location}`: it lies prebuilt in sw_packages/, and nothing says which directory it is made from"
            )),
            _ => PackageOutcome::Unbuilt(format!(
                "no build produces `{location}`: its source `{}` is not a {}",
                self.shown(&source.path).display(),
                if expected == "File" {
                    "file"
                } else {
                    "directory"
                }
            )),
        }
    }

    /// Where a source is copied in the target project: the same path as in the legacy tree when
    /// it lies inside it, else `engage-extension/files/` (for files) or `sources/` (directories).
    fn target_of(&self, source: &SourceOf) -> PathBuf {
        // Blocks, and files inside them, go to blox/ wherever the legacy tree kept them.
        if let Some(blox) = &self.legacy.blox
            && let Ok(inside) = source.path.strip_prefix(blox)
            && inside
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
            && !inside.as_os_str().is_empty()
        {
            return Path::new("blox").join(inside);
        }
        let relative = shown(&self.legacy.root, &source.path);
        let inside = relative.is_relative()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        let shipped = source.origin == Origin::Shipped;
        if inside && !shipped && !relative.as_os_str().is_empty() {
            return relative;
        }
        let name = file_name(&source.path);
        if source.path.is_file() {
            PathBuf::from("engage-extension/files").join(name)
        } else {
            PathBuf::from("sources").join(name)
        }
    }

    /// Checks every constraint of the imported resources; returns the standard keys to declare.
    fn references(
        &mut self,
        manifests: &[Manifest],
        imported: &BTreeSet<Key>,
        skipped: &BTreeSet<Key>,
    ) -> Vec<External> {
        let standard = standard();
        let mut used: BTreeSet<usize> = BTreeSet::new();
        for manifest in manifests {
            for (name, version) in constraints_of(&manifest.definition) {
                let defined = imported
                    .iter()
                    .any(|k| k.name == name && version.matches(&k.version));
                let mut from_standard = false;
                for (index, external) in standard.iter().enumerate() {
                    if *external.name.get_ref() == name
                        && external
                            .versions
                            .iter()
                            .any(|v| version.matches(v.get_ref()))
                    {
                        used.insert(index);
                        from_standard = true;
                    }
                }
                if defined || from_standard {
                    continue;
                }
                let key = &manifest.key;
                let what = if skipped
                    .iter()
                    .any(|k| k.name == name && version.matches(&k.version))
                {
                    "a resource the import skipped (see above)"
                } else {
                    "nothing the legacy tree or Engage's standard metadata defines"
                };
                self.warn(
                    "unmatched-constraint",
                    &manifest.origin,
                    format!("`{key}` needs `{name} {version}`, which matches {what}; `{key}` is imported with the reference kept, which `cargo xtask check` reports until it is defined"),
                    "define the missing resource (or fix the constraint), then run `cargo xtask check`",
                );
            }
        }
        standard
            .into_iter()
            .enumerate()
            .filter(|(i, _)| used.contains(i))
            .map(|(_, e)| e)
            .collect()
    }

    fn extension(
        &mut self,
        default_inside: &Option<Value>,
        externals: &[External],
        imported: &BTreeSet<Key>,
    ) -> String {
        let legacy = self.legacy;
        let mut text = "# The Datablox Engage extension, imported from a legacy tree. See docs/manifests.md.\n[extension]\nname = \"datablox\"\n".to_string();
        text.push_str(&format!("version = {}\n", tstr(&legacy.version)));
        if let Some(inside) = default_inside {
            let list: Vec<String> = match inside.get("one-of").and_then(Value::as_array) {
                Some(all) => all.iter().filter_map(constraint_toml).collect(),
                None => constraint_toml(inside).into_iter().collect(),
            };
            text.push_str(&format!("inside = [{}]\n", list.join(", ")));
        }
        if !externals.is_empty() {
            text.push_str("\n# Keys Engage's standard metadata defines, which the imported resources rely on.\n");
        }
        for external in externals {
            text.push_str(&external_toml(external));
        }

        let config = legacy.installer_config.clone();
        let mut choices: BTreeMap<String, String> = BTreeMap::new();
        if let Some(config) = &config {
            let mut installer = String::new();
            if let Some(application) = config.get("application_name").and_then(Value::as_str) {
                installer.push_str(&format!("application-name = {}\n", tstr(application)));
            }
            if let Some(level) = config.get("log_level").and_then(Value::as_str) {
                installer.push_str(&format!("log-level = {}\n", tstr(level)));
            }
            if !installer.is_empty() {
                text.push_str(&format!("\n[installer]\n{installer}"));
            }
            for option in config
                .get("install_spec_options")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(choice), Some(file)) = (
                    option.get("choice_name").and_then(Value::as_str),
                    option.get("file_name").and_then(Value::as_str),
                ) {
                    choices.insert(file.to_string(), choice.to_string());
                }
            }
        }
        for (file, path, spec) in &legacy.install_specs {
            // Engage appends `.tmpl` to an option's file name to find the template.
            let choice = choices
                .remove(file)
                .or_else(|| file.strip_suffix(".tmpl").and_then(|f| choices.remove(f)));
            match install_spec_toml(file, choice.as_ref(), spec, imported) {
                Ok(spec_text) => text.push_str(&spec_text),
                Err(problem) => {
                    let shown = self.shown(path);
                    self.warn(
                        "install-spec",
                        &shown,
                        format!("install spec `{file}` is not imported: {problem}"),
                        "fix the spec, or import the resources it installs first",
                    );
                }
            }
        }
        for (file, choice) in choices {
            let shown = self.shown(&legacy.installer_config_path);
            self.warn(
                "install-spec",
                &shown,
                format!("the installer choice `{choice}` names `{file}`, which is not an imported install spec"),
                "add the install spec (or its `.tmpl` template) to metadata/, or remove the choice",
            );
        }
        text
    }
}

/// The `[block]` manifest of a definition whose shape is the derived one, or `None`.
fn block_manifest(
    definition: &Definition,
    module: &str,
    version: &str,
    default_inside: &Option<Value>,
    packages: &[Value],
) -> Option<String> {
    let key = &definition.key;
    let json = &definition.json;
    let display = json.get("display_name").and_then(Value::as_str)?;
    let name = display
        .strip_suffix(" block")
        .filter(|n| n.to_lowercase() == key.name)
        .unwrap_or(&key.name);
    if block_name_problem(name).is_some() || name.to_lowercase() != key.name {
        return None;
    }
    if format!("{}__{}", mangle(name), mangle(&key.version)) != module {
        return None;
    }
    let expected_packages = json!([{"type": "Archive", "package_class": "GzippedTarArchive", "location": format!("{module}.tgz")}]);
    let expected_inputs = json!({"datablox_framework": {"BLOXPATH": "path"}});
    let expected_outputs = json!({"block_info": {"home": {"type": "path", "fixed-value": format!("${{input_ports.datablox_framework.BLOXPATH}}/{module}")}}});
    if normalized(&Value::Array(packages.to_vec())) != expected_packages
        || normalized(json.get("input_ports")?) != expected_inputs
        || normalized(json.get("output_ports")?) != expected_outputs
    {
        return None;
    }
    let environment = json.get("environment")?.get("all-of")?.as_array()?;
    let framework = json!({"key": {"name": "datablox-framework", "version": version}, "port_mapping": {"datablox_framework": "datablox_framework"}});
    if environment.first().map(normalized) != Some(framework) {
        return None;
    }
    let mut text = format!(
        "# Imported from {}.\n[block]\nname = {}\nversion = {}\n",
        definition.origin.display(),
        tstr(name),
        tstr(&key.version)
    );
    if display != format!("{name} block") {
        text.push_str(&format!("display-name = {}\n", tstr(display)));
    }
    if let Some(comment) = json.get("comment").and_then(Value::as_str) {
        text.push_str(&format!("comment = {}\n", tstr(comment)));
    }
    if environment.len() > 1 {
        let requires: Option<Vec<String>> = environment[1..].iter().map(constraint_toml).collect();
        text.push_str(&format!("requires = [{}]\n", requires?.join(", ")));
    }
    let derived_inside = default_inside.as_ref().map(|d| with_host(d, false));
    match (json.get("inside"), &derived_inside) {
        (Some(inside), Some(derived)) if normalized(inside) == normalized(derived) => {}
        (Some(inside), _) => text.push_str(&format!("inside = {}\n", alternatives_toml(inside)?)),
        (None, None) => {}
        (None, Some(_)) => return None,
    }
    if let Some(peers) = json.get("peers") {
        text.push_str(&format!("peers = {}\n", alternatives_toml(peers)?));
    }
    if let Some(config) = json.get("config_port").and_then(Value::as_object)
        && !config.is_empty()
    {
        text.push_str("\n[block.config-port]\n");
        text.push_str(&properties_toml(config)?);
    }
    Some(text)
}

/// The `inside` most definitions share, without their `host` mappings: the extension's default.
fn most_common_inside(definitions: &[Definition]) -> Option<Value> {
    let mut counts: Vec<(Value, usize)> = Vec::new();
    for definition in definitions {
        let Some(inside) = definition.json.get("inside") else {
            continue;
        };
        let plain = without_host(inside);
        if plain.get("all-of").is_some() {
            continue;
        }
        match counts.iter_mut().find(|(value, _)| *value == plain) {
            Some((_, count)) => *count += 1,
            None => counts.push((plain, 1)),
        }
    }
    // The first of the most frequent, so that the choice depends on nothing but the input.
    let best = counts.iter().map(|(_, count)| *count).max()?;
    counts
        .into_iter()
        .find(|(_, count)| *count == best)
        .map(|(value, _)| value)
}

fn each_constraint(value: &Value, f: &mut dyn FnMut(&mut Map<String, Value>)) -> Value {
    let mut value = value.clone();
    let list = value.as_object_mut().and_then(|o| {
        if o.contains_key("one-of") {
            o.get_mut("one-of")
        } else if o.contains_key("all-of") {
            o.get_mut("all-of")
        } else {
            None
        }
    });
    match list.and_then(Value::as_array_mut) {
        Some(all) => all.iter_mut().filter_map(Value::as_object_mut).for_each(f),
        None => {
            if let Some(object) = value.as_object_mut() {
                f(object);
            }
        }
    }
    value
}

fn without_host(inside: &Value) -> Value {
    each_constraint(inside, &mut |constraint| {
        if constraint.get("port_mapping") == Some(&json!({"host": "host"})) {
            constraint.remove("port_mapping");
        }
    })
}

fn with_host(inside: &Value, host: bool) -> Value {
    each_constraint(inside, &mut |constraint| {
        if host {
            constraint.insert("port_mapping".into(), json!({"host": "host"}));
        }
    })
}

/// Removes differences of notation that mean the same to Engage: `{"type": T}` is `T`, and an
/// empty port mapping is none.
pub fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(object)
            if object.len() == 1 && object.get("type").is_some_and(Value::is_string) =>
        {
            object["type"].clone()
        }
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(k, v)| {
                    !(k.as_str() == "port_mapping" && v.as_object().is_some_and(Map::is_empty))
                })
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        Value::Array(all) => Value::Array(all.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// (name, version) of every constraint of `inside`, `environment` and `peers`.
fn constraints_of(definition: &Map<String, Value>) -> Vec<(String, VersionReq)> {
    let mut found = Vec::new();
    for field in ["inside", "environment", "peers"] {
        let Some(value) = definition.get(field) else {
            continue;
        };
        let list = value
            .get("one-of")
            .or_else(|| value.get("all-of"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| vec![value.clone()]);
        for constraint in list {
            if let Some(key) = constraint.get("key")
                && let (Some(name), Some(version)) = (
                    key.get("name").and_then(Value::as_str),
                    key.get("version").and_then(VersionReq::from_json),
                )
            {
                found.push((name.to_string(), version));
            }
        }
    }
    found
}

fn is_module_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A path with `/` separators, as manifests write them.
fn slash(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

pub fn tstr(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { key.to_string() } else { tstr(key) }
}

/// A JSON value as an inline TOML value; `None` for `null`, which TOML cannot hold.
fn toml_value(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => tstr(s),
        Value::Array(all) => format!(
            "[{}]",
            all.iter()
                .map(toml_value)
                .collect::<Option<Vec<_>>>()?
                .join(", ")
        ),
        Value::Object(object) => {
            let fields: Option<Vec<String>> = object
                .iter()
                .map(|(k, v)| toml_value(v).map(|v| format!("{} = {v}", toml_key(k))))
                .collect();
            format!("{{ {} }}", fields?.join(", "))
        }
    })
}

/// A version spec as the manifests write it; `=` alone is the empty version some Engage keys
/// have (`redis-py`). `None` when the text would not read back as the same spec.
fn version_toml(version: &VersionReq) -> Option<String> {
    let text = match version {
        VersionReq::Exact(exact) if exact.is_empty() => "=".to_string(),
        other => other.to_string(),
    };
    let back = parse_constraint_text(&format!("x {text}")).ok()?.version;
    (back == *version).then_some(text)
}

/// A constraint as `"NAME SPEC"` when it has no port mapping, else as an inline table.
fn constraint_toml(constraint: &Value) -> Option<String> {
    let key = constraint.get("key")?;
    let name = key.get("name")?.as_str()?;
    let spec = version_toml(&VersionReq::from_json(key.get("version")?)?)?;
    let mapping = constraint
        .get("port_mapping")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty());
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    match mapping {
        None => Some(tstr(&format!("{name} {spec}"))),
        Some(mapping) => Some(format!(
            "{{ name = {}, version = {}, port-mapping = {} }}",
            tstr(name),
            tstr(&spec),
            toml_value(&Value::Object(mapping.clone()))?
        )),
    }
}

fn alternatives_toml(value: &Value) -> Option<String> {
    if let Some(all) = value.get("one-of").and_then(Value::as_array) {
        let list: Option<Vec<String>> = all.iter().map(constraint_toml).collect();
        return Some(format!("{{ one-of = [{}] }}", list?.join(", ")));
    }
    if let Some(all) = value.get("all-of").and_then(Value::as_array) {
        let list: Option<Vec<String>> = all.iter().map(constraint_toml).collect();
        return Some(format!("{{ all-of = [{}] }}", list?.join(", ")));
    }
    constraint_toml(value)
}

fn properties_toml(properties: &Map<String, Value>) -> Option<String> {
    let mut text = String::new();
    for (name, property) in properties {
        let value = match property {
            Value::String(ty) => tstr(ty),
            Value::Object(object) => {
                let known = ["type", "default", "fixed-value"];
                if object.keys().any(|k| !known.contains(&k.as_str()))
                    || !object.get("type").is_some_and(Value::is_string)
                {
                    return None;
                }
                toml_value(property)?
            }
            _ => return None,
        };
        text.push_str(&format!("{} = {value}\n", toml_key(name)));
    }
    Some(text)
}

fn external_toml(external: &External) -> String {
    let versions: Vec<String> = external
        .versions
        .iter()
        .map(|v| tstr(v.get_ref()))
        .collect();
    let mut text = format!(
        "\n[[external]]\nname = {}\nversions = [{}]\n",
        tstr(external.name.get_ref()),
        versions.join(", ")
    );
    if external.platform {
        text.push_str("platform = true\n");
    }
    if !external.output_ports.is_empty() {
        let ports: Vec<String> = external
            .output_ports
            .iter()
            .map(|(port, properties)| {
                let list: Vec<String> = properties
                    .iter()
                    .map(|(name, p)| format!("{} = {}", toml_key(name), tstr(&p.get_ref().ty)))
                    .collect();
                format!("{} = {{ {} }}", toml_key(port), list.join(", "))
            })
            .collect();
        text.push_str(&format!("output-ports = {{ {} }}\n", ports.join(", ")));
    }
    text
}

fn install_spec_toml(
    file: &str,
    choice: Option<&String>,
    spec: &Value,
    imported: &BTreeSet<Key>,
) -> Result<String, String> {
    let instances = spec
        .as_array()
        .ok_or("it is not a JSON list of resource instances")?;
    let mut text = format!("\n[[install-spec]]\nfile = {}\n", tstr(file));
    if let Some(choice) = choice {
        text.push_str(&format!("choice = {}\n", tstr(choice)));
    }
    for instance in instances {
        let id = instance
            .get("id")
            .and_then(Value::as_str)
            .ok_or("an instance has no `id`")?;
        let key = instance
            .get("key")
            .and_then(super::legacy::key_of)
            .ok_or_else(|| format!("instance `{id}` has no valid `key`"))?;
        if key.name != "dynamic-host" && !imported.contains(&key) {
            return Err(format!(
                "instance `{id}` installs `{key}`, which is not imported"
            ));
        }
        text.push_str(&format!(
            "[[install-spec.instance]]\nid = {}\nkey = {}\n",
            tstr(id),
            tstr(&key.to_string())
        ));
        let reference = |value: &Value| -> Option<String> {
            let mut fields = vec![format!("id = {}", tstr(value.get("id")?.as_str()?))];
            if let Some(mapping) = value
                .get("port_mapping")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
            {
                fields.push(format!(
                    "port-mapping = {}",
                    toml_value(&Value::Object(mapping.clone()))?
                ));
            }
            Some(format!("{{ {} }}", fields.join(", ")))
        };
        if let Some(inside) = instance.get("inside") {
            text.push_str(&format!(
                "inside = {}\n",
                reference(inside).ok_or_else(|| format!("`inside` of `{id}` has no id"))?
            ));
        }
        for field in ["environment", "peers"] {
            if let Some(list) = instance.get(field).and_then(Value::as_array) {
                let all: Option<Vec<String>> = list.iter().map(reference).collect();
                text.push_str(&format!(
                    "{field} = [{}]\n",
                    all.ok_or_else(|| format!("`{field}` of `{id}` has a reference without id"))?
                        .join(", ")
                ));
            }
        }
        if let Some(config) = instance
            .get("config_port")
            .and_then(Value::as_object)
            .filter(|c| !c.is_empty())
        {
            text.push_str(&format!(
                "config-port = {}\n",
                toml_value(&Value::Object(config.clone())).ok_or("a config value is null")?
            ));
        }
    }
    Ok(text)
}

/// The manifest file stem of a non-block resource: its key name, made safe as a file name.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if stem.is_empty() {
        "resource".into()
    } else {
        stem
    }
}

/// Every file and symbolic link under `source`, as (target path, content), skipping caches.
fn copy_tree(source: &Path, target: &Path) -> Vec<(PathBuf, Content)> {
    walkdir::WalkDir::new(source)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != "__pycache__")
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir() && !e.file_name().to_string_lossy().ends_with(".pyc"))
        .filter_map(|e| {
            Some((
                target.join(e.path().strip_prefix(source).ok()?),
                Content::Copy(e.path().to_path_buf()),
            ))
        })
        .collect()
}
