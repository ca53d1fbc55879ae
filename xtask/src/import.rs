//! `cargo xtask import`: a legacy Engage extension tree (and its `blox/`) -> TOML manifests, the
//! hand-written driver code, the block sources and the package files they name.
//!
//! The import reads everything first and decides every file it will write; legacy defects (JSON
//! that does not parse, archives no source produces, files that are nowhere, blocks without a
//! resource, resources without a block, keys defined twice, constraints that match nothing) become
//! warnings and the resources they concern are skipped, along with whatever needs them. Only then,
//! if no existing file would be overwritten (without `--force`), is anything written. Fields the
//! manifests derive are left out, so a block whose definition has the derived shape becomes a
//! `[block]` of a few lines; one that deviates becomes a `[resource]` with its driver directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::check::{DRIVER_SOURCES, block_name_problem};
use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::model::{Key, driver_dir_name, mangle};

/// What `import` is asked to do; paths are absolute.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The legacy extension directory (`datablox/`).
    pub legacy: PathBuf,
    /// The legacy `blox/` directory, if any.
    pub blox: Option<PathBuf>,
    /// The manifest directory to write; the repository is its parent.
    pub out: PathBuf,
    pub force: bool,
}

/// What `import` did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: Vec<Key>,
    pub skipped: Vec<Key>,
    pub warnings: Vec<Diagnostic>,
    /// Files written, relative to the repository.
    pub written: Vec<PathBuf>,
    /// Files left as they were because they already hold the same bytes.
    pub unchanged: usize,
}

/// Keys Engage's standard metadata defines (see the format notes); constraints on them need no
/// resource of the extension. Platforms provide the `host` port.
const ENGAGE_STANDARD: &[(&str, &[&str], bool)] = &[
    ("ubuntu-linux", &["11.10", "12.04", "14.04"], true),
    ("mac-osx", &["10.5", "10.6"], true),
    ("python", &["2.5", "2.6", "2.7"], false),
    ("pip", &["any"], false),
    ("setuptools", &["0.6"], false),
    ("pyzmq-abstract", &["2.1"], false),
    ("pycrypto", &["2.3"], false),
    ("gunicorn", &["0.17"], false),
    ("java-virtual-machine-abstract", &["1.5", "1.6"], false),
    ("pymongo", &["2.1"], false),
    ("redis", &["2.4"], false),
    ("lxml", &["2.3"], false),
    ("sunburnt", &["0.5"], false),
    ("psycopg2", &["2.4"], false),
    ("boto", &["2.12"], false),
    ("pytz", &["2013"], false),
    ("six", &["1.7"], false),
    ("PyYAML", &["any"], false),
];

const METADATA_FILES: [&str; 3] = [
    "resource_definitions.json",
    "resource_library.json",
    "installer_config.json",
];

/// How a legacy resource is installed.
#[derive(Clone, Debug)]
enum LegacyDriver {
    /// A driver directory whose `driver.py` re-exports the generic block driver.
    Block { dir: PathBuf },
    /// A hand-written driver directory.
    Directory { dir: PathBuf },
    /// A library entry.
    Library { module: String },
}

#[derive(Clone, Debug)]
struct Candidate {
    key: Key,
    definition: Map<String, Value>,
    /// The file the definition comes from, relative to the legacy parent directory.
    origin: PathBuf,
    driver: LegacyDriver,
    packages: Vec<Value>,
}

/// A file the import will write.
#[derive(Clone, Debug)]
enum Content {
    Text(String),
    Copy(PathBuf),
}

struct Importer {
    options: ImportOptions,
    /// The directory holding the legacy extension; messages name files relative to it.
    legacy_parent: PathBuf,
    warnings: Vec<Diagnostic>,
    files: BTreeMap<PathBuf, Content>,
}

pub fn import(options: &ImportOptions) -> Result<ImportReport> {
    let legacy = &options.legacy;
    if !legacy.join("drivers").is_dir() && !legacy.join("metadata").is_dir() {
        return Err(Error::new(
            Diagnostic::error(
                "not-an-extension",
                format!(
                    "`{}` has neither `drivers/` nor `metadata/`",
                    legacy.display()
                ),
            )
            .file(legacy)
            .help("name the legacy extension directory itself, e.g. `legacy/datablox`"),
        ));
    }
    let legacy_parent = legacy
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut importer = Importer {
        options: options.clone(),
        legacy_parent,
        warnings: Vec::new(),
        files: BTreeMap::new(),
    };
    let report = importer.run()?;
    importer.write(report)
}

impl Importer {
    fn shown(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.legacy_parent)
            .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
    }

    fn warn(&mut self, code: &'static str, file: &Path, message: String, help: String) {
        let shown = self.shown(file);
        self.warnings
            .push(Diagnostic::warning(code, message).file(shown).help(help));
    }

    /// Reads a JSON file; a parse error is a warning pointing at its line and column.
    fn read_json(&mut self, path: &Path) -> Option<Value> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                self.warn(
                    "unreadable",
                    path,
                    format!("cannot read `{}`: {error}", self.shown(path).display()),
                    "fix the file's permissions or remove it".into(),
                );
                return None;
            }
        };
        match serde_json::from_str(&text) {
            Ok(value) => Some(value),
            Err(error) => {
                let offset = line_column_offset(&text, error.line(), error.column());
                let shown = self.shown(path);
                self.warnings.push(
                    Diagnostic::warning(
                        "invalid-json",
                        format!("`{}` is not valid JSON: {error}", shown.display()),
                    )
                    .file(shown)
                    .span(&text, offset..offset + 1)
                    .help("fix the JSON and import again; what it defines is skipped"),
                );
                None
            }
        }
    }

    fn blox_dir(&self) -> Option<PathBuf> {
        match &self.options.blox {
            Some(dir) => Some(dir.clone()),
            None => Some(self.legacy_parent.join("blox")).filter(|d| d.is_dir()),
        }
    }

    fn repo(&self) -> PathBuf {
        self.options
            .out
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    fn run(&mut self) -> Result<ImportReport> {
        let legacy = self.options.legacy.clone();
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut seen: BTreeMap<Key, PathBuf> = BTreeMap::new();
        let mut add = |importer: &mut Importer,
                       candidate: Candidate,
                       candidates: &mut Vec<Candidate>| {
            if let Some(first) = seen.get(&candidate.key) {
                let message = if *first == candidate.origin {
                    format!(
                        "`{}` is defined twice in `{}`",
                        candidate.key,
                        first.display()
                    )
                } else {
                    format!(
                        "`{}` is defined twice: in `{}` and in `{}`",
                        candidate.key,
                        first.display(),
                        candidate.origin.display()
                    )
                };
                let help = format!(
                    "Engage keeps one silently; the import keeps the one in `{}`: delete the other definition",
                    first.display()
                );
                importer.warnings.push(
                    Diagnostic::warning("duplicate-key", message)
                        .file(&candidate.origin)
                        .help(help),
                );
                return;
            }
            seen.insert(candidate.key.clone(), candidate.origin.clone());
            candidates.push(candidate);
        };

        // The library: which keys are installed by a manager module, with which packages.
        let mut library: BTreeMap<Key, (String, Vec<Value>)> = BTreeMap::new();
        let library_path = legacy.join("metadata/resource_library.json");
        if library_path.is_file()
            && let Some(value) = self.read_json(&library_path)
        {
            for entry in value.as_array().cloned().unwrap_or_default() {
                let (Some(key), Some(module)) = (
                    entry.get("key").and_then(key_of),
                    entry.get("mgr_module_name").and_then(Value::as_str),
                ) else {
                    self.warn(
                        "bad-library-entry",
                        &library_path,
                        format!("a library entry lacks `key` or `mgr_module_name`: {entry}"),
                        "complete the entry or remove it".into(),
                    );
                    continue;
                };
                let packages = entry
                    .get("packages")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                library.insert(key, (module.to_string(), packages));
            }
        }

        // Central definitions: installed through library entries.
        let definitions_path = legacy.join("metadata/resource_definitions.json");
        if definitions_path.is_file()
            && let Some(value) = self.read_json(&definitions_path)
        {
            for definition in value.as_array().cloned().unwrap_or_default() {
                let Some(key) = definition.get("key").and_then(key_of) else {
                    self.warn(
                        "bad-definition",
                        &definitions_path,
                        format!("a definition has no valid `key`: {definition}"),
                        "give it a key {\"name\", \"version\"}".into(),
                    );
                    continue;
                };
                let Some((module, packages)) = library.get(&key).cloned() else {
                    let help = "add a library entry (`mgr_module_name`, `packages`) to metadata/resource_library.json, or a driver directory";
                    self.warn(
                        "no-driver",
                        &definitions_path,
                        format!(
                            "`{key}` has a definition but no library entry, so nothing installs it"
                        ),
                        help.into(),
                    );
                    continue;
                };
                let origin = self.shown(&definitions_path);
                let object = definition.as_object().cloned().unwrap_or_default();
                add(
                    self,
                    Candidate {
                        key,
                        definition: object,
                        origin,
                        driver: LegacyDriver::Library { module },
                        packages,
                    },
                    &mut candidates,
                );
            }
        }

        // Driver directories: blocks (the generic driver) and hand-written ones (services).
        let mut dirs: Vec<PathBuf> = read_dir_sorted(&legacy.join("drivers"))?
            .into_iter()
            .filter(|p| p.is_dir() && !is_cache(p))
            .collect();
        dirs.sort();
        for dir in dirs {
            let resources_path = dir.join("resources.json");
            if !resources_path.is_file() {
                continue;
            }
            let Some(value) = self.read_json(&resources_path) else {
                continue;
            };
            let packages_path = dir.join("packages.json");
            let packages = if packages_path.is_file() {
                self.read_json(&packages_path)
            } else {
                None
            };
            let Some(packages) = packages.and_then(|p| p.as_array().cloned()) else {
                let help = "write packages.json: a non-empty JSON list of packages";
                self.warn(
                    "no-packages",
                    &packages_path,
                    format!(
                        "driver directory `{}` has no usable packages.json; its resource is skipped",
                        self.shown(&dir).display()
                    ),
                    help.into(),
                );
                continue;
            };
            let driver_text = std::fs::read_to_string(dir.join("driver.py")).unwrap_or_default();
            let generic = driver_text.contains("generic_blox_driver");
            let dir_name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for definition in value.as_array().cloned().unwrap_or_default() {
                let Some(key) = definition.get("key").and_then(key_of) else {
                    self.warn(
                        "bad-definition",
                        &resources_path,
                        format!("a definition has no valid `key`: {definition}"),
                        "give it a key {\"name\", \"version\"}".into(),
                    );
                    continue;
                };
                if driver_dir_name(&key) != dir_name {
                    let help = format!(
                        "Engage looks for `{key}` in `drivers/{}`: move the definition there",
                        driver_dir_name(&key)
                    );
                    self.warn(
                        "misplaced-definition",
                        &resources_path,
                        format!("`{key}` is defined in `drivers/{dir_name}`, which is not its driver directory"),
                        help,
                    );
                    continue;
                }
                if library.contains_key(&key) {
                    // A library entry wins over a driver directory: the directory is dead code.
                    let help = "remove the driver directory, or the library entry";
                    self.warn(
                        "shadowed-driver",
                        &resources_path,
                        format!(
                            "`{key}` has a library entry, which wins over this driver directory"
                        ),
                        help.into(),
                    );
                    continue;
                }
                let origin = self.shown(&resources_path);
                let driver = if generic {
                    LegacyDriver::Block { dir: dir.clone() }
                } else {
                    LegacyDriver::Directory { dir: dir.clone() }
                };
                let object = definition.as_object().cloned().unwrap_or_default();
                add(
                    self,
                    Candidate {
                        key,
                        definition: object,
                        origin,
                        driver,
                        packages: packages.clone(),
                    },
                    &mut candidates,
                );
            }
        }

        let version = match std::fs::read_to_string(legacy.join("version.txt")) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
            _ => {
                self.warn(
                    "no-version",
                    &legacy.join("version.txt"),
                    "the legacy extension has no version.txt; using version 1.0".into(),
                    "check `version` in manifests/extension.toml".into(),
                );
                "1.0".into()
            }
        };
        let default_inside = most_common_inside(&candidates);

        let all_keys: BTreeSet<Key> = candidates.iter().map(|c| c.key.clone()).collect();
        // Convert; then drop, until nothing changes, every resource a constraint of which matches
        // nothing that is left.
        let mut converted: BTreeMap<Key, (Candidate, Manifest)> = BTreeMap::new();
        let mut skipped: BTreeSet<Key> = BTreeSet::new();
        for candidate in candidates {
            match self.convert(&candidate, &version, &default_inside) {
                Some(manifest) => {
                    converted.insert(candidate.key.clone(), (candidate, manifest));
                }
                None => {
                    skipped.insert(candidate.key.clone());
                }
            }
        }
        loop {
            let defined: BTreeSet<Key> = converted.keys().cloned().collect();
            let mut dropped = Vec::new();
            for (key, (candidate, _)) in &converted {
                for constraint in constraints_of(&candidate.definition) {
                    if !matches_any(&constraint, &defined) {
                        dropped.push((key.clone(), candidate.origin.clone(), constraint));
                        break;
                    }
                }
            }
            if dropped.is_empty() {
                break;
            }
            for (key, origin, (name, version)) in dropped {
                let what = if skipped.iter().any(|k| k.name == name) {
                    "a resource the import skipped"
                } else {
                    "nothing the extension or Engage defines"
                };
                let message = format!(
                    "`{key}` needs `{name} {}`, which matches {what}; `{key}` is skipped",
                    version_text(&version)
                );
                let help = "define the missing resource, or fix the constraint's name or version, then import again";
                self.warnings.push(
                    Diagnostic::warning("unmatched-constraint", message)
                        .file(origin)
                        .help(help),
                );
                converted.remove(&key);
                skipped.insert(key);
            }
        }

        self.orphan_blocks(&all_keys);
        let defined: BTreeSet<Key> = converted.keys().cloned().collect();
        let extension = self.extension(&version, &default_inside, &converted, &defined);
        let out = self.manifest_dir();
        self.files
            .insert(out.join("extension.toml"), Content::Text(extension));
        // Block driver directories re-export the generic driver, which travels with them.
        let generic = legacy
            .join("drivers")
            .join(crate::extension::GENERIC_DRIVER);
        if converted
            .values()
            .any(|(c, _)| matches!(c.driver, LegacyDriver::Block { .. }))
        {
            if generic.is_file() {
                self.files.insert(
                    PathBuf::from(DRIVER_SOURCES).join(crate::extension::GENERIC_DRIVER),
                    Content::Copy(generic),
                );
            } else {
                let help = format!(
                    "copy the generic block driver to `{DRIVER_SOURCES}/{}` before `cargo xtask dist`",
                    crate::extension::GENERIC_DRIVER
                );
                self.warn(
                    "no-generic-driver",
                    &generic,
                    "the legacy extension has no generic block driver, which every block driver imports".into(),
                    help,
                );
            }
        }
        let mut imported = Vec::new();
        for (key, (_, manifest)) in converted {
            self.files
                .insert(out.join(&manifest.file_name), Content::Text(manifest.text));
            for (target, source) in manifest.copies {
                self.files.insert(target, Content::Copy(source));
            }
            imported.push(key);
        }
        Ok(ImportReport {
            imported,
            skipped: skipped.into_iter().collect(),
            ..ImportReport::default()
        })
    }

    /// The manifest directory, relative to the repository.
    fn manifest_dir(&self) -> PathBuf {
        PathBuf::from(
            self.options
                .out
                .file_name()
                .unwrap_or_else(|| "manifests".as_ref()),
        )
    }
}

/// A manifest to write, and the files it refers to (repository path -> source).
struct Manifest {
    file_name: String,
    text: String,
    copies: Vec<(PathBuf, PathBuf)>,
}

impl Importer {
    fn convert(
        &mut self,
        candidate: &Candidate,
        version: &str,
        default_inside: &Option<Value>,
    ) -> Option<Manifest> {
        let key = &candidate.key;
        let origin = candidate.origin.clone();
        let skip = |importer: &mut Importer, code: &'static str, message: String, help: &str| {
            importer.warnings.push(
                Diagnostic::warning(code, format!("{message}; `{key}` is skipped"))
                    .file(&origin)
                    .help(help.to_string()),
            );
            None
        };
        let allowed = [
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
        if let Some(field) = candidate
            .definition
            .keys()
            .find(|k| !allowed.contains(&k.as_str()))
        {
            return skip(
                self,
                "unsupported-field",
                format!(
                    "the definition of `{key}` has a field `{field}` the manifests cannot express"
                ),
                "remove the field, or extend the manifest format",
            );
        }
        if candidate.packages.is_empty() {
            return skip(
                self,
                "no-packages",
                format!("`{key}` has no package"),
                "add a package (a DummyPackage if there is nothing to install)",
            );
        }

        // A block: the generic driver and a block directory in blox/.
        let mut copies = Vec::new();
        let mut block_source = None;
        if let LegacyDriver::Block { .. } = &candidate.driver {
            let module = driver_dir_name(key).to_lowercase();
            let Some(source) = self
                .blox_dir()
                .map(|b| b.join(&module))
                .filter(|d| d.is_dir())
            else {
                return skip(
                    self,
                    "missing-block-directory",
                    format!("block `{key}` has no block directory `blox/{module}`"),
                    "restore the block's sources in blox/, or remove the driver directory",
                );
            };
            block_source = Some((module, source));
        }

        let mut packages_toml = Vec::new();
        for package in &candidate.packages {
            let ty = package.get("type").and_then(Value::as_str).unwrap_or("");
            let class = package
                .get("package_class")
                .and_then(Value::as_str)
                .unwrap_or("");
            let location = package
                .get("location")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut fields = Vec::new();
            match (ty, class) {
                ("Archive", "GzippedTarArchive") => {
                    let stem = location.strip_suffix(".tgz").unwrap_or(location);
                    let source = match &block_source {
                        Some((module, source)) if module == stem => {
                            Some((PathBuf::from("blox").join(module), source.clone()))
                        }
                        _ => self.archive_source(stem),
                    };
                    let Some((target, source)) = source.filter(|_| location.ends_with(".tgz"))
                    else {
                        return skip(
                            self,
                            "archive-without-source",
                            format!(
                                "no build produces `{location}`, the archive of `{key}`: there is no directory `{stem}` beside the extension"
                            ),
                            "put the archive's source directory beside the extension (or in blox/), or replace the package",
                        );
                    };
                    copies.extend(copy_tree(&source, &target));
                    fields.push(format!("archive = {}", tstr(&target.to_string_lossy())));
                }
                ("File", "FilePackage") => {
                    let source = self.options.legacy.join("sw_packages").join(location);
                    if location.is_empty() || !source.is_file() {
                        return skip(
                            self,
                            "missing-file",
                            format!(
                                "`{key}` names the package file `{location}`, which is not in `sw_packages/`"
                            ),
                            "add the file to sw_packages/, or fix the package's location",
                        );
                    }
                    let target = PathBuf::from("engage-extension/files").join(location);
                    copies.push((target.clone(), source));
                    fields.push(format!("file = {}", tstr(&target.to_string_lossy())));
                }
                ("Reference", "PipLink") => fields.push(format!("pip = {}", tstr(location))),
                ("Reference", "EasyInstallLink") => {
                    fields.push(format!("easy-install = {}", tstr(location)))
                }
                ("Reference", "DummyPackage") => fields.push("dummy = true".into()),
                _ => {
                    return skip(
                        self,
                        "unsupported-package",
                        format!(
                            "`{key}` has a `{ty}`/`{class}` package, which the manifests cannot express"
                        ),
                        "use an archive, file, pip, easy_install or dummy package",
                    );
                }
            }
            for (json_field, toml_field) in [("filename", "filename"), ("downloader", "downloader")]
            {
                if let Some(value) = package.get(json_field).and_then(Value::as_str) {
                    fields.push(format!("{toml_field} = {}", tstr(value)));
                }
            }
            packages_toml.push(format!("{{ {} }}", fields.join(", ")));
        }

        // The block form when the definition is what the manifests would derive.
        if let Some((module, _)) = &block_source
            && let Some(text) = block_manifest(
                candidate,
                module,
                version,
                default_inside,
                &candidate.packages,
            )
        {
            return Some(Manifest {
                file_name: format!("{}.toml", mangle(&key.name)),
                text,
                copies,
            });
        }

        let mut text = String::new();
        text.push_str(&format!(
            "# Imported from {}.\n[resource]\n",
            candidate.origin.display()
        ));
        text.push_str(&format!(
            "name = {}\nversion = {}\n",
            tstr(&key.name),
            tstr(&key.version)
        ));
        let definition = &candidate.definition;
        if let Some(display) = definition.get("display_name").and_then(Value::as_str) {
            text.push_str(&format!("display-name = {}\n", tstr(display)));
        }
        if let Some(comment) = definition.get("comment").and_then(Value::as_str) {
            text.push_str(&format!("comment = {}\n", tstr(comment)));
        }
        match &candidate.driver {
            LegacyDriver::Library { module } => {
                let short = module.strip_prefix("engage.drivers.datablox.");
                match short {
                    Some(name) if !name.contains('.') => {
                        let source = self
                            .options
                            .legacy
                            .join("drivers")
                            .join(format!("{name}.py"));
                        if !source.is_file() {
                            return skip(
                                self,
                                "missing-manager",
                                format!(
                                    "the library entry of `{key}` names `{module}`, but there is no `drivers/{name}.py`"
                                ),
                                "add the manager module to the legacy drivers/, or fix `mgr_module_name`",
                            );
                        }
                        copies.push((
                            PathBuf::from(DRIVER_SOURCES).join(format!("{name}.py")),
                            source,
                        ));
                        text.push_str(&format!("manager = {}\n", tstr(name)));
                    }
                    _ => text.push_str(&format!("manager = {}\n", tstr(module))),
                }
            }
            LegacyDriver::Block { dir } | LegacyDriver::Directory { dir } => {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let target = PathBuf::from(DRIVER_SOURCES).join(&name);
                for source in read_dir_sorted(dir).unwrap_or_default() {
                    if source.extension().is_some_and(|e| e == "py") && source.is_file() {
                        copies.push((target.join(source.file_name().unwrap()), source));
                    }
                }
                text.push_str(&format!("driver = {}\n", tstr(&target.to_string_lossy())));
            }
        }
        if packages_toml.len() == 1 {
            text.push_str(&format!("package = {}\n", packages_toml[0]));
        } else {
            text.push_str(&format!("package = [{}]\n", packages_toml.join(", ")));
        }
        let has_host = definition
            .get("input_ports")
            .and_then(|p| p.get("host"))
            .is_some();
        let inside = definition.get("inside");
        let derived_inside = default_inside.as_ref().map(|d| with_host(d, has_host));
        match (inside, &derived_inside) {
            (Some(inside), Some(derived)) if normalized(inside) == normalized(derived) => {}
            (Some(inside), _) => {
                text.push_str(&format!("inside = {}\n", alternatives_toml(inside)?))
            }
            (None, None) => {}
            (None, Some(_)) => {
                return skip(
                    self,
                    "no-inside",
                    format!("`{key}` says nowhere where it is installed (no `inside`)"),
                    "add `inside` to the definition",
                );
            }
        }
        for field in ["environment", "peers"] {
            if let Some(value) = definition.get(field) {
                text.push_str(&format!("{field} = {}\n", alternatives_toml(value)?));
            }
        }
        if let Some(config) = definition.get("config_port").and_then(Value::as_object)
            && !config.is_empty()
        {
            text.push_str("\n[resource.config-port]\n");
            text.push_str(&properties_toml(config)?);
        }
        for (field, table) in [
            ("input_ports", "input-ports"),
            ("output_ports", "output-ports"),
        ] {
            for (port, properties) in definition
                .get(field)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                text.push_str(&format!("\n[resource.{table}.{}]\n", toml_key(port)));
                text.push_str(&properties_toml(properties.as_object()?)?);
            }
        }
        Some(Manifest {
            file_name: format!("{}.toml", key_file_stem(key)),
            text,
            copies,
        })
    }

    /// The source directory of a non-block archive `<stem>.tgz`: `<stem>/` or `python/<stem>/`
    /// beside the legacy extension. Returns (repository path, source).
    fn archive_source(&self, stem: &str) -> Option<(PathBuf, PathBuf)> {
        if stem.is_empty() || stem.contains('/') {
            return None;
        }
        [PathBuf::from(stem), PathBuf::from("python").join(stem)]
            .into_iter()
            .map(|relative| (self.legacy_parent.join(&relative), relative))
            .find(|(source, _)| source.is_dir())
            .map(|(source, relative)| (relative, source))
    }

    /// Block directories with sources that no imported resource packages.
    fn orphan_blocks(&mut self, defined: &BTreeSet<Key>) {
        let Some(blox) = self.blox_dir() else { return };
        let used: BTreeSet<String> = defined
            .iter()
            .map(|k| driver_dir_name(k).to_lowercase())
            .collect();
        for dir in read_dir_sorted(&blox).unwrap_or_default() {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !dir.is_dir() || name.starts_with('.') || is_cache(&dir) || used.contains(&name) {
                continue;
            }
            let has_sources = read_dir_sorted(&dir)
                .unwrap_or_default()
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "py"));
            if has_sources {
                let help = format!(
                    "import it by hand: write a [block] manifest for it (`cargo xtask new` shows the shape) and copy `blox/{name}`, or delete the directory"
                );
                self.warn(
                    "block-without-resource",
                    &dir,
                    format!("block directory `blox/{name}` has sources but no resource defines it; it is not imported"),
                    help,
                );
            }
        }
    }

    fn extension(
        &mut self,
        version: &str,
        default_inside: &Option<Value>,
        converted: &BTreeMap<Key, (Candidate, Manifest)>,
        defined: &BTreeSet<Key>,
    ) -> String {
        let legacy = self.options.legacy.clone();
        let name = legacy
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name != "datablox" {
            self.warn(
                "extension-name",
                &legacy,
                format!("the legacy extension is named `{name}`; the manifests name it `datablox`"),
                "block drivers import `engage.drivers.datablox`, so the extension must be `datablox`".into(),
            );
        }
        let mut text = format!(
            "# The Datablox Engage extension, imported from {}. See docs/manifests.md.\n",
            self.shown(&legacy).display()
        );
        text.push_str(&format!(
            "[extension]\nname = \"datablox\"\nversion = {}\n",
            tstr(version)
        ));
        if let Some(inside) = default_inside {
            let list: Vec<String> = match inside.get("one-of").and_then(Value::as_array) {
                Some(all) => all.iter().filter_map(constraint_toml).collect(),
                None => constraint_toml(inside).into_iter().collect(),
            };
            text.push_str(&format!("inside = [{}]\n", list.join(", ")));
        }

        // Every name a kept constraint or install spec refers to that the extension does not define.
        let mut external: BTreeSet<&'static str> = BTreeSet::new();
        for (candidate, _) in converted.values() {
            for (name, _) in constraints_of(&candidate.definition) {
                if !defined.iter().any(|k| k.name == name)
                    && let Some((standard, _, _)) =
                        ENGAGE_STANDARD.iter().find(|(n, _, _)| *n == name)
                {
                    external.insert(standard);
                }
            }
        }
        for (name, versions, platform) in ENGAGE_STANDARD
            .iter()
            .filter(|(n, _, _)| external.contains(n))
        {
            let list: Vec<String> = versions.iter().map(|v| tstr(v)).collect();
            text.push_str(&format!(
                "\n[[external]]\nname = {}\nversions = [{}]\n",
                tstr(name),
                list.join(", ")
            ));
            if *platform {
                text.push_str("platform = true\n");
            }
        }

        let config_path = legacy.join("metadata/installer_config.json");
        let mut choices: BTreeMap<String, String> = BTreeMap::new();
        if config_path.is_file()
            && let Some(config) = self.read_json(&config_path)
        {
            if let Some(application) = config.get("application_name").and_then(Value::as_str) {
                text.push_str(&format!(
                    "\n[installer]\napplication-name = {}\n",
                    tstr(application)
                ));
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
                    // Engage finds a choice's spec at `file_name` + `.tmpl`
                    // (`engine/engage_file_layout.py`, `get_install_spec_template_file`).
                    choices.insert(format!("{file}.tmpl"), choice.to_string());
                }
            }
        }
        let metadata = legacy.join("metadata");
        for path in read_dir_sorted(&metadata).unwrap_or_default() {
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let is_spec = file.ends_with(".json") || file.ends_with(".json.tmpl");
            if !is_spec || METADATA_FILES.contains(&file.as_str()) || !path.is_file() {
                continue;
            }
            let Some(spec) = self.read_json(&path) else {
                continue;
            };
            match install_spec_toml(&file, choices.get(&file), &spec, defined) {
                Ok(spec_text) => text.push_str(&spec_text),
                Err(problem) => self.warn(
                    "install-spec",
                    &path,
                    format!("install spec `{file}` is not imported: {problem}"),
                    "fix the spec, or import the resources it installs first".into(),
                ),
            }
        }
        text
    }

    /// Checks every target, then writes. Nothing is written when a file would be overwritten.
    fn write(&mut self, mut report: ImportReport) -> Result<ImportReport> {
        let repo = self.repo();
        let mut conflicts = Vec::new();
        let mut plan = Vec::new();
        for (target, content) in &self.files {
            let path = repo.join(target);
            let bytes = match content {
                Content::Text(text) => text.clone().into_bytes(),
                Content::Copy(source) => std::fs::read(source).with_path("read", source)?,
            };
            match std::fs::read(&path) {
                Ok(existing) if existing == bytes => {
                    report.unchanged += 1;
                    continue;
                }
                Ok(_) if !self.options.force => {
                    conflicts.push(
                        Diagnostic::error(
                            "would-overwrite",
                            format!(
                                "`{}` exists and differs from what the import would write",
                                target.display()
                            ),
                        )
                        .file(target)
                        .help("move it away, or run again with `--force` to overwrite it"),
                    );
                    continue;
                }
                _ => {}
            }
            plan.push((path, target.clone(), bytes));
        }
        if !conflicts.is_empty() {
            return Err(Error::many(conflicts));
        }
        for (path, target, bytes) in plan {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).with_path("create", parent)?;
            }
            let temp = path.with_file_name(format!(
                ".{}.import{}",
                path.file_name().unwrap().to_string_lossy(),
                std::process::id()
            ));
            std::fs::write(&temp, &bytes).with_path("write", &temp)?;
            std::fs::rename(&temp, &path).with_path("rename", &path)?;
            report.written.push(target);
        }
        report.warnings = std::mem::take(&mut self.warnings);
        Ok(report)
    }
}

/// The `[block]` manifest of a candidate whose definition has exactly the derived shape, or `None`.
fn block_manifest(
    candidate: &Candidate,
    module: &str,
    version: &str,
    default_inside: &Option<Value>,
    packages: &[Value],
) -> Option<String> {
    let key = &candidate.key;
    let definition = &candidate.definition;
    let display = definition.get("display_name").and_then(Value::as_str)?;
    let name = display
        .strip_suffix(" block")
        .filter(|n| n.to_lowercase() == key.name)
        .unwrap_or(&key.name);
    if block_name_problem(name).is_some()
        || name.to_lowercase() != key.name
        || mangle(&key.version) != driver_dir_name(key).rsplit("__").next()?
    {
        return None;
    }
    if format!("{}__{}", mangle(name), mangle(&key.version)) != module {
        return None;
    }
    let expected_packages = json!([{"type": "Archive", "package_class": "GzippedTarArchive", "location": format!("{module}.tgz")}]);
    let expected_inputs = json!({"datablox_framework": {"BLOXPATH": "path"}});
    let expected_outputs = json!({"block_info": {"home": {"type": "path", "fixed-value": format!("${{input_ports.datablox_framework.BLOXPATH}}/{module}")}}});
    if normalized(&Value::Array(packages.to_vec())) != expected_packages
        || normalized(definition.get("input_ports")?) != expected_inputs
        || normalized(definition.get("output_ports")?) != expected_outputs
    {
        return None;
    }
    let environment = definition.get("environment")?.get("all-of")?.as_array()?;
    let framework = json!({"key": {"name": "datablox-framework", "version": version}, "port_mapping": {"datablox_framework": "datablox_framework"}});
    if environment.first().map(normalized) != Some(framework) {
        return None;
    }
    let mut text = format!(
        "# Imported from {}.\n[block]\nname = {}\nversion = {}\n",
        candidate.origin.display(),
        tstr(name),
        tstr(&key.version)
    );
    if display != format!("{name} block") {
        text.push_str(&format!("display-name = {}\n", tstr(display)));
    }
    if let Some(comment) = definition.get("comment").and_then(Value::as_str) {
        text.push_str(&format!("comment = {}\n", tstr(comment)));
    }
    if environment.len() > 1 {
        let requires: Option<Vec<String>> = environment[1..].iter().map(constraint_toml).collect();
        text.push_str(&format!("requires = [{}]\n", requires?.join(", ")));
    }
    let derived_inside = default_inside.as_ref().map(|d| with_host(d, false));
    match (definition.get("inside"), &derived_inside) {
        (Some(inside), Some(derived)) if normalized(inside) == normalized(derived) => {}
        (Some(inside), _) => text.push_str(&format!("inside = {}\n", alternatives_toml(inside)?)),
        (None, None) => {}
        (None, Some(_)) => return None,
    }
    if let Some(peers) = definition.get("peers") {
        text.push_str(&format!("peers = {}\n", alternatives_toml(peers)?));
    }
    if let Some(config) = definition.get("config_port").and_then(Value::as_object)
        && !config.is_empty()
    {
        text.push_str("\n[block.config-port]\n");
        text.push_str(&properties_toml(config)?);
    }
    Some(text)
}

/// The `inside` most definitions share, without their `host` mappings: the extension's default.
fn most_common_inside(candidates: &[Candidate]) -> Option<Value> {
    let mut counts: Vec<(Value, usize)> = Vec::new();
    for candidate in candidates {
        let Some(inside) = candidate.definition.get("inside") else {
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
    // The first of the most frequent, so that the choice does not depend on anything but the input.
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

/// Removes differences of notation that mean the same to Engage: `{"type": T}` is `T`.
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
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        Value::Array(all) => Value::Array(all.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn key_of(value: &Value) -> Option<Key> {
    Some(Key {
        name: value.get("name")?.as_str()?.to_string(),
        version: value.get("version")?.as_str()?.to_string(),
    })
}

/// (name, version JSON) of every constraint of `inside`, `environment` and `peers`.
fn constraints_of(definition: &Map<String, Value>) -> Vec<(String, Value)> {
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
                && let (Some(name), Some(version)) =
                    (key.get("name").and_then(Value::as_str), key.get("version"))
            {
                found.push((name.to_string(), version.clone()));
            }
        }
    }
    found
}

fn version_matches(spec: &Value, version: &str) -> bool {
    use std::cmp::Ordering::*;
    match spec {
        Value::String(text) => text == "*" || text == "any" || text == version,
        Value::Object(bounds) => bounds.iter().all(|(op, bound)| {
            let order = crate::model::compare_versions(version, bound.as_str().unwrap_or(""));
            match op.as_str() {
                "greater-than" => order == Greater,
                "greater-than-or-equal" => order != Less,
                "less-than" => order == Less,
                "less-than-or-equal" => order != Greater,
                _ => false,
            }
        }),
        _ => false,
    }
}

fn matches_any((name, spec): &(String, Value), defined: &BTreeSet<Key>) -> bool {
    defined
        .iter()
        .any(|k| &k.name == name && version_matches(spec, &k.version))
        || ENGAGE_STANDARD
            .iter()
            .any(|(n, versions, _)| n == name && versions.iter().any(|v| version_matches(spec, v)))
}

fn version_text(spec: &Value) -> String {
    match spec {
        Value::String(text) => text.clone(),
        Value::Object(bounds) => {
            let symbol = |op: &str| match op {
                "greater-than" => ">",
                "greater-than-or-equal" => ">=",
                "less-than" => "<",
                "less-than-or-equal" => "<=",
                _ => "?",
            };
            bounds
                .iter()
                .map(|(op, bound)| format!("{}{}", symbol(op), bound.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ")
        }
        other => other.to_string(),
    }
}

fn tstr(text: &str) -> String {
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

/// A constraint as `"NAME SPEC"` when it has no port mapping, else as an inline table.
fn constraint_toml(constraint: &Value) -> Option<String> {
    let key = constraint.get("key")?;
    let name = key.get("name")?.as_str()?;
    let version = key.get("version")?;
    let spec = version_text(version);
    let mapping = constraint
        .get("port_mapping")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty());
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
        return Some(format!("[{}]", list?.join(", ")));
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

fn install_spec_toml(
    file: &str,
    choice: Option<&String>,
    spec: &Value,
    defined: &BTreeSet<Key>,
) -> std::result::Result<String, String> {
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
            .and_then(key_of)
            .ok_or_else(|| format!("instance `{id}` has no valid `key`"))?;
        let standard = ENGAGE_STANDARD
            .iter()
            .any(|(n, versions, _)| *n == key.name && versions.contains(&key.version.as_str()));
        if key.name != "dynamic-host" && !defined.contains(&key) && !standard {
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

/// The manifest file name of a non-block resource: its key name, plus the version when needed.
fn key_file_stem(key: &Key) -> String {
    let name: String = key
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name
}

fn is_cache(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "__pycache__")
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).with_path("read", dir)? {
        paths.push(entry.with_path("read", dir)?.path());
    }
    paths.sort();
    Ok(paths)
}

/// Every regular file under `source`, as (target path, source path), skipping caches.
fn copy_tree(source: &Path, target: &Path) -> Vec<(PathBuf, PathBuf)> {
    walkdir::WalkDir::new(source)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != "__pycache__")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().ends_with(".pyc"))
        .filter_map(|e| {
            Some((
                target.join(e.path().strip_prefix(source).ok()?),
                e.path().to_path_buf(),
            ))
        })
        .collect()
}

/// The byte offset of a 1-based line and column, as serde_json reports them.
fn line_column_offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + column.saturating_sub(1)).min(text.len())
}
