//! Parsed manifests -> the checked `Model`, or every problem at once.
//!
//! Validation runs before anything is written. Each diagnostic names the manifest, the line and
//! column of the offending value, what is wrong and what to do. Problems found: bad names, bad
//! versions, duplicate keys, references no manifest or `[[external]]` defines, constraints no
//! definition satisfies, dependency cycles, input ports no port mapping feeds, `${...}` references
//! that do not resolve, and source paths that are missing, lie outside the repository or lack
//! their block module. Legal but suspicious things come back as warnings.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use crate::error::{Diagnostic, Error, Result};
use crate::manifest::{
    self, BlockTable, RawAlternatives, RawConstraint, RawManifests, RawPackage, RawPorts,
    RawProperty, RawVersion, ResourceTable, Source,
};
use crate::model::{
    Alternatives, Constraint, Driver, Extension, External, InstallSpec, Instance, InstanceRef, Key,
    Kind, Model, Package, PackageSource, Ports, Property, RangeOp, Resource, VersionReq, mangle,
};

/// Where hand-written driver modules live, relative to the repository.
pub const DRIVER_SOURCES: &str = "engage-extension/drivers";

/// The model and the warnings found on the way.
#[derive(Debug)]
pub struct Checked {
    pub model: Model,
    pub warnings: Vec<Diagnostic>,
}

/// Properties of the `host` output port of every host platform.
pub const HOST_PROPERTIES: [(&str, &str); 8] = [
    ("genforma_home", "path"),
    ("log_directory", "path"),
    ("hostname", "string"),
    ("os_user_name", "string"),
    ("os_type", "string"),
    ("cpu_arch", "string"),
    ("private_ip", "string"),
    ("sudo_password", "password"),
];

/// Reads and checks every manifest of `repo`.
pub fn load(repo: &Path) -> Result<Checked> {
    let raw = manifest::read_all(repo)?;
    check(&raw, repo)
}

/// A constraint with where it was written.
struct Located {
    constraint: Constraint,
    file: usize,
    span: Range<usize>,
}

enum Group {
    One,
    AllOf,
    OneOf,
}

struct LocatedGroup {
    field: &'static str,
    group: Group,
    constraints: Vec<Located>,
}

/// A resource during checking: the model value and the spans of what later checks look at.
struct Draft {
    resource: Resource,
    file: usize,
    key_span: Range<usize>,
    groups: Vec<LocatedGroup>,
}

struct Checker<'a> {
    repo: &'a Path,
    raw: &'a RawManifests,
    diagnostics: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// File index of the extension manifest in `Checker::source_*` helpers; resources use their index.
const EXTENSION_FILE: usize = usize::MAX;

pub fn check(raw: &RawManifests, repo: &Path) -> Result<Checked> {
    let mut checker = Checker {
        repo,
        raw,
        diagnostics: raw.parse_errors.clone(),
        warnings: Vec::new(),
    };
    let complete = raw.parse_errors.is_empty();
    let mut extension = checker.extension();
    let mut drafts = Vec::new();
    for index in 0..raw.resources.len() {
        if let Some(draft) = checker.resource(index, &extension) {
            drafts.push(draft);
        }
    }
    checker.unique_keys(&drafts);
    checker.unique_package_files(&drafts);
    let index = DefinedIndex::new(&drafts, &extension.externals);
    for draft in &drafts {
        if complete {
            checker.references(draft, &index);
            checker.port_feeds(draft, &index);
        }
        checker.property_references(draft);
    }
    if complete {
        checker.cycles(&drafts, &index);
        checker.install_specs(&mut extension, &index);
    }
    checker.unmanifested_blocks(&drafts);
    checker.unreachable_resources(&drafts, &index, &extension);
    checker.narrow_ranges(&drafts, &index);
    checker.unmapped_output_ports(&drafts, &index, &extension);
    if !checker.diagnostics.is_empty() {
        return Err(Error::many(checker.diagnostics));
    }
    let mut resources: Vec<Resource> = drafts.into_iter().map(|draft| draft.resource).collect();
    resources.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Checked {
        model: Model {
            extension,
            resources,
        },
        warnings: checker.warnings,
    })
}

/// Every key defined by a manifest or declared external, with the output ports it provides.
struct DefinedIndex {
    by_name: BTreeMap<String, Vec<(String, Ports)>>,
}

impl DefinedIndex {
    fn new(drafts: &[Draft], externals: &[External]) -> DefinedIndex {
        let mut by_name: BTreeMap<String, Vec<(String, Ports)>> = BTreeMap::new();
        for draft in drafts {
            let key = &draft.resource.key;
            by_name
                .entry(key.name.clone())
                .or_default()
                .push((key.version.clone(), draft.resource.output_ports.clone()));
        }
        for external in externals {
            for version in &external.versions {
                by_name
                    .entry(external.name.clone())
                    .or_default()
                    .push((version.clone(), external.output_ports.clone()));
            }
        }
        DefinedIndex { by_name }
    }

    fn matching<'a>(
        &'a self,
        constraint: &'a Constraint,
    ) -> impl Iterator<Item = &'a (String, Ports)> + 'a {
        self.by_name
            .get(&constraint.name)
            .into_iter()
            .flatten()
            .filter(move |(version, _)| constraint.version.matches(version))
    }
}

impl Checker<'_> {
    fn source_path(&self, file: usize) -> &Path {
        if file == EXTENSION_FILE {
            &self.raw.extension.path
        } else {
            &self.raw.resources[file].path
        }
    }

    fn source_text(&self, file: usize) -> &str {
        if file == EXTENSION_FILE {
            &self.raw.extension.text
        } else {
            &self.raw.resources[file].text
        }
    }

    fn error(
        &mut self,
        file: usize,
        code: &'static str,
        span: Range<usize>,
        message: String,
        help: String,
    ) {
        let diagnostic = Diagnostic::error(code, message)
            .file(self.source_path(file))
            .span(self.source_text(file), span)
            .help(help);
        self.diagnostics.push(diagnostic);
    }

    fn warn(
        &mut self,
        file: usize,
        code: &'static str,
        span: Range<usize>,
        message: String,
        help: String,
    ) {
        let diagnostic = Diagnostic::warning(code, message)
            .file(self.source_path(file))
            .span(self.source_text(file), span)
            .help(help);
        self.warnings.push(diagnostic);
    }

    fn extension(&mut self) -> Extension {
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
            None => 6,
            Some(level) if (0..=9).contains(level.get_ref()) => *level.get_ref() as u32,
            Some(level) => {
                self.error(
                    EXTENSION_FILE,
                    "compression-level",
                    level.span(),
                    format!("compression level {} is out of range", level.get_ref()),
                    "use a gzip level from 0 to 9 (6 is the default)".into(),
                );
                6
            }
        };
        let default_inside = table
            .inside
            .iter()
            .filter_map(|raw| self.constraint(EXTENSION_FILE, raw, 0..0))
            .map(|l| l.constraint)
            .collect();

        let mut externals = Vec::new();
        for raw in &source.value.external {
            let external = raw.get_ref();
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
            install_specs: Vec::new(),
        }
    }

    fn version_text(&mut self, file: usize, version: &Spanned<String>) {
        let text = version.get_ref();
        if text.is_empty() || text.contains(char::is_whitespace) {
            self.error(
                file,
                "bad-version",
                version.span(),
                format!("`{text}` is not a version"),
                "write a version such as \"1.0\"".into(),
            );
        }
    }

    fn resource(&mut self, file: usize, extension: &Extension) -> Option<Draft> {
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

    fn block(
        &mut self,
        file: usize,
        spanned: &Spanned<BlockTable>,
        extension: &Extension,
    ) -> Draft {
        let table = spanned.get_ref();
        let display = table.name.get_ref();
        if display.is_empty() || display.contains(['_', '.']) {
            self.error(
                file,
                "block-name",
                table.name.span(),
                format!("block name `{display}` contains `_` or `.`, which are reserved by the name mangling"),
                format!("use `-` between words, e.g. `{}`", display.replace(['_', '.'], "-")),
            );
        } else if !is_identifier(&mangle(display)) {
            self.error(
                file,
                "block-name",
                table.name.span(),
                format!(
                    "block name `{display}` does not give a Python module name (`{}`)",
                    mangle(display)
                ),
                "use letters, digits and `-`, starting with a letter".into(),
            );
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
        let dir_name = Path::new(&source_text)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if let Some(dir) =
            self.repo_path(file, &source_text, source_span.clone(), "block directory")
        {
            let block_module = format!("b_{}.py", mangle(display));
            for required in ["__init__.py", block_module.as_str()] {
                if !dir.join(required).is_file() {
                    self.error(
                        file,
                        "block-module",
                        source_span.clone(),
                        format!("block directory `{source_text}` has no `{required}`"),
                        format!("create `{source_text}/{required}`; the block class `{}` lives in `{block_module}`", mangle(display)),
                    );
                }
            }
        }
        if dir_name.as_deref() != Some(module.as_str()) {
            self.error(
                file,
                "block-directory",
                source_span.clone(),
                format!("block directory `{source_text}` must be named `{module}`, the name the block driver installs"),
                format!("rename the directory to `{module}`"),
            );
        }

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
            display_name: Some(
                table
                    .display_name
                    .clone()
                    .unwrap_or_else(|| format!("{display} block")),
            ),
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
                    dir: PathBuf::from(&source_text),
                    file_name: format!("{module}.tgz"),
                },
                filename: None,
                downloader: None,
            }],
            driver: Driver::Block,
        };
        self.finish(file, table.name.span(), resource, groups)
    }

    fn other(
        &mut self,
        file: usize,
        spanned: &Spanned<ResourceTable>,
        extension: &Extension,
    ) -> Draft {
        let table = spanned.get_ref();
        if table.name.get_ref().trim().is_empty() {
            self.error(
                file,
                "resource-name",
                table.name.span(),
                "the resource name is empty".into(),
                "name the resource".into(),
            );
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
                    && !dir.join("driver.py").is_file()
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
                Driver::Directory(PathBuf::from(driver.get_ref()))
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
            key,
            kind: Kind::Resource,
            manifest: self.raw.resources[file].path.clone(),
            display_name: table.display_name.clone(),
            comment: table.comment.clone(),
            config_port: self.config_port(file, &table.config_port),
            input_ports,
            output_ports: self.ports(file, &table.output_ports, PortKind::Output),
            inside: None,
            environment: None,
            peers: None,
            packages,
            driver,
        };
        self.finish(file, table.name.span(), resource, groups)
    }

    fn finish(
        &mut self,
        file: usize,
        key_span: Range<usize>,
        mut resource: Resource,
        groups: Vec<LocatedGroup>,
    ) -> Draft {
        for group in &groups {
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

    fn manager(&mut self, file: usize, manager: &Spanned<String>) -> Driver {
        let name = manager.get_ref();
        if name.starts_with("engage.") {
            return Driver::Library {
                module: name.clone(),
            };
        }
        if !is_identifier(name) {
            self.error(
                file,
                "manager-module",
                manager.span(),
                format!("`{name}` is not a Python module name"),
                format!(
                    "name a module of {DRIVER_SOURCES}/ (without `.py`), or a full `engage.` module"
                ),
            );
        } else if !self
            .repo
            .join(DRIVER_SOURCES)
            .join(format!("{name}.py"))
            .is_file()
        {
            self.error(
                file,
                "manager-module",
                manager.span(),
                format!("manager module `{name}` does not exist: there is no `{DRIVER_SOURCES}/{name}.py`"),
                format!("write `{DRIVER_SOURCES}/{name}.py`, or fix the name"),
            );
        }
        Driver::Library {
            module: format!("engage.drivers.datablox.{name}"),
        }
    }

    fn package(
        &mut self,
        file: usize,
        package: &RawPackage,
        span: Range<usize>,
    ) -> Option<Package> {
        let mut kinds = Vec::new();
        if let Some(archive) = &package.archive {
            kinds.push(("archive", archive.span()));
        }
        if let Some(path) = &package.file {
            kinds.push(("file", path.span()));
        }
        if let Some(pip) = &package.pip {
            kinds.push(("pip", pip.span()));
        }
        if let Some(easy) = &package.easy_install {
            kinds.push(("easy-install", easy.span()));
        }
        if let Some(dummy) = &package.dummy {
            kinds.push(("dummy", dummy.span()));
        }
        if kinds.len() != 1 {
            self.error(
                file,
                "package-kind",
                span,
                format!(
                    "a package has exactly one kind, this one has {}",
                    kinds.len()
                ),
                "use one of `archive`, `file`, `pip`, `easy-install` or `dummy = true`".into(),
            );
            return None;
        }
        let source = if let Some(archive) = &package.archive {
            let dir =
                self.repo_path(file, archive.get_ref(), archive.span(), "archive directory")?;
            if !dir.is_dir() {
                self.error(
                    file,
                    "archive-not-dir",
                    archive.span(),
                    format!("`{}` is not a directory", archive.get_ref()),
                    "an archive package is built from a directory".into(),
                );
                return None;
            }
            let base = dir.file_name()?.to_string_lossy().into_owned();
            PackageSource::Archive {
                dir: PathBuf::from(archive.get_ref()),
                file_name: format!("{base}.tgz"),
            }
        } else if let Some(path) = &package.file {
            let full = self.repo_path(file, path.get_ref(), path.span(), "package file")?;
            if !full.is_file() {
                self.error(
                    file,
                    "file-not-file",
                    path.span(),
                    format!("`{}` is not a regular file", path.get_ref()),
                    "a file package names a regular file of the repository".into(),
                );
                return None;
            }
            let base = full.file_name()?.to_string_lossy().into_owned();
            PackageSource::File {
                path: PathBuf::from(path.get_ref()),
                file_name: base,
            }
        } else if let Some(pip) = &package.pip {
            PackageSource::Pip(pip.get_ref().clone())
        } else if let Some(easy) = &package.easy_install {
            PackageSource::EasyInstall(easy.get_ref().clone())
        } else {
            let dummy = package.dummy.as_ref()?;
            if !dummy.get_ref() {
                self.error(
                    file,
                    "package-kind",
                    dummy.span(),
                    "`dummy = false` is not a package".into(),
                    "write `dummy = true`".into(),
                );
            }
            PackageSource::Dummy
        };
        Some(Package {
            source,
            filename: package.filename.clone(),
            downloader: package.downloader.clone(),
        })
    }

    /// Resolves a repository-relative path: it must stay inside the repository, also through
    /// symbolic links, and exist.
    fn repo_path(
        &mut self,
        file: usize,
        text: &str,
        span: Range<usize>,
        what: &str,
    ) -> Option<PathBuf> {
        let relative = Path::new(text);
        let lexically_inside = !text.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !lexically_inside {
            self.error(
                file,
                "path-outside-repo",
                span,
                format!("{what} `{text}` lies outside the repository"),
                "use a path relative to the repository root, without `..`".into(),
            );
            return None;
        }
        let full = self.repo.join(relative);
        // Only a symbolic link on the way can lead out of the repository, so the path is
        // resolved (one system call per component of the whole path) only when one is found;
        // a plain path costs one `lstat` per component below the repository.
        let mut prefix = self.repo.to_path_buf();
        let mut through_link = false;
        for component in relative.components() {
            prefix.push(component);
            match std::fs::symlink_metadata(&prefix) {
                Ok(metadata) => through_link |= metadata.file_type().is_symlink(),
                Err(_) => {
                    self.error(
                        file,
                        "path-missing",
                        span,
                        format!("{what} `{text}` does not exist"),
                        format!("create `{text}`, or fix the path"),
                    );
                    return None;
                }
            }
        }
        if through_link {
            let real = full.canonicalize();
            let repo = self.repo.canonicalize();
            let (Ok(real), Ok(repo)) = (real, repo) else {
                self.error(
                    file,
                    "path-missing",
                    span,
                    format!("{what} `{text}` is a symbolic link to nothing"),
                    format!("fix the link `{text}`"),
                );
                return None;
            };
            if !real.starts_with(&repo) {
                self.error(
                    file,
                    "path-outside-repo",
                    span,
                    format!(
                        "{what} `{text}` resolves to `{}`, outside the repository",
                        real.display()
                    ),
                    "keep sources inside the repository; replace the symbolic link by the files"
                        .into(),
                );
                return None;
            }
        }
        Some(full)
    }

    fn config_port(
        &mut self,
        file: usize,
        raw: &BTreeMap<String, Spanned<RawProperty>>,
    ) -> BTreeMap<String, Property> {
        self.properties(file, raw, PortKind::Config)
    }

    fn ports(&mut self, file: usize, raw: &RawPorts, kind: PortKind) -> Ports {
        raw.iter()
            .map(|(port, properties)| (port.clone(), self.properties(file, properties, kind)))
            .collect()
    }

    fn properties(
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

    fn default_inside(
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

    fn alternatives(
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

    fn constraint(
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
        let (name, version, port_mapping) = match raw.get_ref() {
            RawConstraint::Short(text) => {
                let Some((name, spec)) = text.trim().split_once(char::is_whitespace) else {
                    self.error(
                        file,
                        "bad-constraint",
                        span,
                        format!("constraint `{text}` has no version"),
                        format!(
                            "write \"{} 1.0\", \"{} *\" or \"{} >=1.0\"",
                            text.trim(),
                            text.trim(),
                            text.trim()
                        ),
                    );
                    return None;
                };
                (
                    name.to_string(),
                    RawVersion::Text(spec.trim().to_string()),
                    BTreeMap::new(),
                )
            }
            RawConstraint::Full(full) => (
                full.name.clone(),
                full.version.clone(),
                full.port_mapping.clone(),
            ),
        };
        let version = match parse_version_req(&version) {
            Ok(version) => version,
            Err(message) => {
                self.error(
                    file,
                    "bad-version-spec",
                    span,
                    message,
                    "write an exact version (\"1.0\"), \"*\", or a range such as \">=2.1, <3\""
                        .into(),
                );
                return None;
            }
        };
        Some(Located {
            constraint: Constraint {
                name,
                version,
                port_mapping,
            },
            file,
            span,
        })
    }

    fn unique_keys(&mut self, drafts: &[Draft]) {
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

    fn unique_package_files(&mut self, drafts: &[Draft]) {
        let mut seen: BTreeMap<String, &Key> = BTreeMap::new();
        for draft in drafts {
            for package in &draft.resource.packages {
                let name = match &package.source {
                    PackageSource::Archive { file_name, .. }
                    | PackageSource::File { file_name, .. } => file_name,
                    _ => continue,
                };
                if let Some(first) = seen.get(name) {
                    let message = format!(
                        "package file `{name}` of `{}` is also the package of `{first}`",
                        draft.resource.key
                    );
                    self.error(
                        draft.file,
                        "duplicate-package",
                        draft.key_span.clone(),
                        message,
                        "sw_packages is flat: give the sources distinct names".into(),
                    );
                } else {
                    seen.insert(name.clone(), &draft.resource.key);
                }
            }
        }
    }

    fn references(&mut self, draft: &Draft, index: &DefinedIndex) {
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

    fn port_feeds(&mut self, draft: &Draft, index: &DefinedIndex) {
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

    fn property_references(&mut self, draft: &Draft) {
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

    fn cycles(&mut self, drafts: &[Draft], index: &DefinedIndex) {
        let keys: BTreeMap<&Key, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (&d.resource.key, i))
            .collect();
        let edges: Vec<Vec<usize>> = drafts
            .iter()
            .map(|draft| {
                let mut targets = BTreeSet::new();
                for group in draft.groups.iter().filter(|g| g.field != "peers") {
                    for located in &group.constraints {
                        for (version, _) in index.matching(&located.constraint) {
                            let key = Key {
                                name: located.constraint.name.clone(),
                                version: version.clone(),
                            };
                            if let Some(&target) = keys.get(&key) {
                                targets.insert(target);
                            }
                        }
                    }
                }
                targets.into_iter().collect()
            })
            .collect();
        // Iterative depth-first search; each cycle is reported once, at its first resource in key order.
        let mut state = vec![0u8; drafts.len()]; // 0 new, 1 on the stack, 2 done
        let order: Vec<usize> = keys.values().copied().collect();
        for &start in &order {
            if state[start] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                if let Some(&target) = edges[node].get(*next) {
                    *next += 1;
                    match state[target] {
                        0 => {
                            state[target] = 1;
                            stack.push((target, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                            let path: Vec<String> = stack[from..]
                                .iter()
                                .map(|(n, _)| drafts[*n].resource.key.to_string())
                                .chain(std::iter::once(drafts[target].resource.key.to_string()))
                                .collect();
                            let draft = &drafts[target];
                            let message = format!("dependency cycle: {}", path.join(" -> "));
                            self.error(draft.file, "dependency-cycle", draft.key_span.clone(), message, "break the cycle: a resource cannot need itself, directly or through others (`peers` may be mutual)".into());
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }

    fn install_specs(&mut self, extension: &mut Extension, index: &DefinedIndex) {
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
                let known = key.name == "dynamic-host"
                    || index
                        .by_name
                        .get(&key.name)
                        .is_some_and(|v| v.iter().any(|(ver, _)| *ver == key.version));
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
    }

    /// A resource that nothing installs is legal but suspicious. Blocks are the roots (the
    /// caretaker deploys them on demand), and so are the keys of the install specs; everything
    /// else must be reached from them through `inside`, `environment` or `peers`.
    fn unreachable_resources(
        &mut self,
        drafts: &[Draft],
        index: &DefinedIndex,
        extension: &Extension,
    ) {
        let position: BTreeMap<&Key, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (&d.resource.key, i))
            .collect();
        let mut reached = vec![false; drafts.len()];
        let mut stack: Vec<usize> = Vec::new();
        for (i, draft) in drafts.iter().enumerate() {
            if draft.resource.kind == Kind::Block {
                stack.push(i);
            }
        }
        for instance in extension
            .install_specs
            .iter()
            .flat_map(|spec| &spec.instances)
        {
            stack.extend(position.get(&instance.key).copied());
        }
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut reached[node], true) {
                continue;
            }
            for located in drafts[node].groups.iter().flat_map(|g| &g.constraints) {
                for (version, _) in index.matching(&located.constraint) {
                    let key = Key {
                        name: located.constraint.name.clone(),
                        version: version.clone(),
                    };
                    stack.extend(
                        position
                            .get(&key)
                            .copied()
                            .filter(|&target| !reached[target]),
                    );
                }
            }
        }
        for (draft, reached) in drafts.iter().zip(reached) {
            if !reached {
                let key = &draft.resource.key;
                let message = format!(
                    "no block, install spec or other resource needs `{key}`, so it is never installed"
                );
                let help = format!(
                    "require it from a block (`requires = [\"{} {}\"]`), add it to an install spec, or remove the manifest",
                    key.name, key.version
                );
                self.warn(
                    draft.file,
                    "unreachable-resource",
                    draft.key_span.clone(),
                    message,
                    help,
                );
            }
        }
    }

    /// A range that only one defined version satisfies reads as "any of these", but pins one.
    fn narrow_ranges(&mut self, drafts: &[Draft], index: &DefinedIndex) {
        let mut written: Vec<(usize, Constraint, Range<usize>)> = Vec::new();
        for draft in drafts {
            for located in draft.groups.iter().flat_map(|g| &g.constraints) {
                // Constraints derived from extension.toml or the block rules point at the name; they
                // are checked once, where they are written.
                if located.span != draft.key_span {
                    written.push((
                        located.file,
                        located.constraint.clone(),
                        located.span.clone(),
                    ));
                }
            }
        }
        // Parsed a second time; its errors were reported by `extension` already.
        let reported = self.diagnostics.len();
        for raw in &self.raw.extension.value.extension.get_ref().inside {
            if let Some(located) = self.constraint(EXTENSION_FILE, raw, 0..0) {
                written.push((EXTENSION_FILE, located.constraint, located.span));
            }
        }
        self.diagnostics.truncate(reported);
        for (file, constraint, span) in written {
            if !matches!(constraint.version, VersionReq::Range(_)) {
                continue;
            }
            let versions: BTreeSet<&str> = index
                .matching(&constraint)
                .map(|(version, _)| version.as_str())
                .collect();
            if let [only] = versions.into_iter().collect::<Vec<_>>().as_slice() {
                let message = format!(
                    "version range `{}` of `{}` admits only one defined version, `{only}`",
                    constraint.version, constraint.name
                );
                let help = format!(
                    "write the exact version `{only}`, or define the other versions the range is meant to admit"
                );
                self.warn(file, "narrow-range", span, message, help);
            }
        }
    }

    /// An output port that no port mapping reads is dead weight, or a mapping was forgotten.
    /// The block port `block_info` is read by the generic block driver, not through a mapping.
    fn unmapped_output_ports(
        &mut self,
        drafts: &[Draft],
        index: &DefinedIndex,
        extension: &Extension,
    ) {
        let mut mapped: BTreeSet<(Key, String)> = BTreeSet::new();
        for located in drafts
            .iter()
            .flat_map(|d| &d.groups)
            .flat_map(|g| &g.constraints)
        {
            for (version, _) in index.matching(&located.constraint) {
                for theirs in located.constraint.port_mapping.values() {
                    let key = Key {
                        name: located.constraint.name.clone(),
                        version: version.clone(),
                    };
                    mapped.insert((key, theirs.clone()));
                }
            }
        }
        for instance in extension
            .install_specs
            .iter()
            .flat_map(|spec| &spec.instances)
        {
            let references = instance
                .inside
                .iter()
                .chain(&instance.environment)
                .chain(&instance.peers);
            for reference in references {
                for theirs in reference.port_mapping.values() {
                    mapped.insert((reference.key.clone(), theirs.clone()));
                }
            }
        }
        for draft in drafts.iter().filter(|d| d.resource.kind != Kind::Block) {
            for port in draft.resource.output_ports.keys() {
                if !mapped.contains(&(draft.resource.key.clone(), port.clone())) {
                    let span = self
                        .output_port_span(draft.file, port)
                        .unwrap_or_else(|| draft.key_span.clone());
                    let message = format!(
                        "output port `{port}` of `{}` is mapped by no other resource",
                        draft.resource.key
                    );
                    let help = format!(
                        "map it where it is needed (`port-mapping = {{ <input port> = \"{port}\" }}`), or remove the port"
                    );
                    self.warn(draft.file, "unmapped-port", span, message, help);
                }
            }
        }
    }

    /// The span of `[resource.output-ports.<port>]` (or of the first property of the port).
    fn output_port_span(&self, file: usize, port: &str) -> Option<Range<usize>> {
        let table = self.raw.resources[file].value.resource.as_ref()?.get_ref();
        let first = table.output_ports.get(port)?.values().next()?;
        let text = self.source_text(file);
        let header = format!("[resource.output-ports.{port}]");
        Some(
            text.find(&header)
                .map_or(first.span(), |start| start..start + header.len()),
        )
    }

    /// A directory under `blox/` that no block manifest packages is legal but suspicious.
    fn unmanifested_blocks(&mut self, drafts: &[Draft]) {
        let blox = self.repo.join("blox");
        let Ok(entries) = std::fs::read_dir(&blox) else {
            return;
        };
        let used: BTreeSet<PathBuf> = drafts
            .iter()
            .flat_map(|d| d.resource.packages.iter())
            .filter_map(|p| match &p.source {
                PackageSource::Archive { dir, .. } => Some(dir.clone()),
                _ => None,
            })
            .collect();
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.') && name != "__pycache__")
            .collect();
        names.sort();
        for name in names {
            if !used.contains(&PathBuf::from(format!("blox/{name}"))) {
                self.warnings.push(
                    Diagnostic::warning("block-without-manifest", format!("block directory `blox/{name}` has no manifest"))
                        .file(format!("blox/{name}"))
                        .help("add a manifest under manifests/ (`cargo xtask new` writes one), or remove the directory"),
                );
            }
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum PortKind {
    Config,
    Input,
    Output,
}

fn verb(field: &str) -> &'static str {
    match field {
        "inside" => "is installed inside",
        "peers" => "peers with",
        _ => "needs",
    }
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses the string form of a constraint, `"NAME SPEC"`, as `requires` entries are written.
pub fn parse_constraint_text(text: &str) -> Result<Constraint, String> {
    let Some((name, spec)) = text.trim().split_once(char::is_whitespace) else {
        return Err(format!("constraint `{text}` has no version"));
    };
    let version = parse_version_req(&RawVersion::Text(spec.trim().to_string()))?;
    Ok(Constraint {
        name: name.to_string(),
        version,
        port_mapping: BTreeMap::new(),
    })
}

/// Whether a block display name follows the rules: no `_` or `.`, and a Python module once mangled.
pub fn block_name_problem(display: &str) -> Option<String> {
    if display.is_empty() || display.contains(['_', '.']) {
        Some(format!(
            "block name `{display}` contains `_` or `.`, which are reserved by the name mangling"
        ))
    } else if !is_identifier(&mangle(display)) {
        Some(format!(
            "block name `{display}` does not give a Python module name (`{}`)",
            mangle(display)
        ))
    } else {
        None
    }
}

/// Parses a version spec: `"1.0"`, `"*"`, `"any"`, `">=2.1, <3"`, or a range table.
pub fn parse_version_req(raw: &RawVersion) -> Result<VersionReq, String> {
    let bounds = match raw {
        RawVersion::Text(text) => {
            let text = text.trim();
            if text == "*" || text == "any" {
                return Ok(VersionReq::Any(text.to_string()));
            }
            if text.is_empty() {
                return Err("the version is empty".into());
            }
            if !text.starts_with(['<', '>', '=']) {
                if text.contains([',', ' ', '<', '>']) {
                    return Err(format!("`{text}` is not a version"));
                }
                return Ok(VersionReq::Exact(text.to_string()));
            }
            let mut bounds = Vec::new();
            for part in text.split(',') {
                let part = part.trim();
                let (op, rest) = if let Some(rest) = part.strip_prefix(">=") {
                    (RangeOp::GreaterThanOrEqual, rest)
                } else if let Some(rest) = part.strip_prefix("<=") {
                    (RangeOp::LessThanOrEqual, rest)
                } else if let Some(rest) = part.strip_prefix('>') {
                    (RangeOp::GreaterThan, rest)
                } else if let Some(rest) = part.strip_prefix('<') {
                    (RangeOp::LessThan, rest)
                } else if let Some(rest) = part.strip_prefix('=') {
                    if text.contains(',') {
                        return Err(format!("`{text}` mixes an exact version with a range"));
                    }
                    return Ok(VersionReq::Exact(rest.trim().to_string()));
                } else {
                    return Err(format!(
                        "`{part}` in `{text}` is neither a version nor a bound (>=, >, <, <=)"
                    ));
                };
                let rest = rest.trim();
                if rest.is_empty() || rest.contains(char::is_whitespace) {
                    return Err(format!("`{part}` has no version after `{}`", op.symbol()));
                }
                bounds.push((op, rest.to_string()));
            }
            bounds
        }
        RawVersion::Range(table) => {
            let bounds: Vec<(RangeOp, String)> = [
                (RangeOp::GreaterThan, &table.greater_than),
                (RangeOp::GreaterThanOrEqual, &table.greater_than_or_equal),
                (RangeOp::LessThan, &table.less_than),
                (RangeOp::LessThanOrEqual, &table.less_than_or_equal),
            ]
            .into_iter()
            .filter_map(|(op, bound)| bound.clone().map(|b| (op, b)))
            .collect();
            if bounds.is_empty() {
                return Err("the range table has no bound".into());
            }
            bounds
        }
    };
    Ok(VersionReq::Range(bounds))
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

pub fn toml_to_json(value: &toml::Value) -> serde_json::Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_specs_parse() {
        let parse = |text: &str| parse_version_req(&RawVersion::Text(text.into()));
        assert_eq!(parse("1.0"), Ok(VersionReq::Exact("1.0".into())));
        assert_eq!(parse("any"), Ok(VersionReq::Any("any".into())));
        assert_eq!(
            parse(">=2.1, <3"),
            Ok(VersionReq::Range(vec![
                (RangeOp::GreaterThanOrEqual, "2.1".into()),
                (RangeOp::LessThan, "3".into())
            ]))
        );
        assert!(parse(">= ").is_err());
        assert!(parse("1.0 2.0").is_err());
    }

    #[test]
    fn references_are_found_and_resolved() {
        assert_eq!(
            references_in("${input_ports.host.genforma_home}/blox/${config_port.x}"),
            ["input_ports.host.genforma_home", "config_port.x"]
        );
    }
}
