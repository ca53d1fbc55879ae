//! How a resource is installed: its manager module (a library entry) or driver directory, and its
//! packages; package files share the flat `sw_packages`, so their names are unique.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::names::is_identifier;
use super::paths::normalise;
use super::{Checker, DRIVER_SOURCES, Draft};
use crate::manifest::{RawPackage, UrlList};
use crate::model::{Driver, Key, Package, PackageSource};

/// The downloader classes Engage registers (`engine/library.py`, `register_downloader_class`).
const DOWNLOADERS: [&str; 2] = ["HTTPDownloader", "CloudfilesDownloader"];

/// The Engage package classes a `url` package may name (Engage's downloadable classes).
const URL_CLASSES: [&str; 3] = ["GzippedTarArchive", "ZipArchive", "FilePackage"];

impl Checker<'_> {
    pub(super) fn manager(&mut self, file: usize, manager: &Spanned<String>) -> Driver {
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
            .inputs
            .is_file(&self.repo.join(DRIVER_SOURCES).join(format!("{name}.py")))
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

    /// Engage hands `install()` the entry's package as an object of its class
    /// (`engine/library.py` `LibraryEntry.get_package`), and installs an `easy-install` package
    /// (`EasyInstallLink`) with its own easy_install driver, never with pip: our
    /// `pip_package_driver` refuses one at deploy time, so `check` refuses it first.
    pub(super) fn package_fits_manager(
        &mut self,
        file: usize,
        driver: &Driver,
        packages: &[Package],
        span: Range<usize>,
    ) {
        let Driver::Library { module } = driver else {
            return;
        };
        let Some(name) = module.strip_prefix("engage.drivers.datablox.") else {
            return;
        };
        // Only the pairing Engage itself gives another driver is refused here; the kinds each of
        // our modules installs are checked by `ci/check_extension.py` on the built tree.
        if name != "pip_package_driver" {
            return;
        }
        for package in packages {
            if let PackageSource::EasyInstall(_) = package.source {
                self.error(
                    file,
                    "package-manager",
                    span.clone(),
                    "manager `pip_package_driver` installs pip packages, not `easy-install`".into(),
                    "write `package = { pip = ... }`: Engage installs an easy-install package with its own easy_install driver, not with pip".into(),
                );
            }
        }
    }

    pub(super) fn package(
        &mut self,
        file: usize,
        package: &RawPackage,
        span: Range<usize>,
    ) -> Option<Package> {
        let mut kinds = Vec::new();
        let mut kind = |name: &'static str, span: Option<Range<usize>>| {
            if let Some(span) = span {
                kinds.push((name, span));
            }
        };
        kind("archive", package.archive.as_ref().map(Spanned::span));
        kind("file", package.file.as_ref().map(Spanned::span));
        kind("pip", package.pip.as_ref().map(Spanned::span));
        kind(
            "easy-install",
            package.easy_install.as_ref().map(Spanned::span),
        );
        kind("dummy", package.dummy.as_ref().map(Spanned::span));
        kind("url", package.url.as_ref().map(Spanned::span));
        kind("apt-get", package.apt_get.as_ref().map(Spanned::span));
        kind("macports", package.macports.as_ref().map(Spanned::span));
        if kinds.len() != 1 {
            self.error(
                file,
                "package-kind",
                span,
                format!(
                    "a package has exactly one kind, this one has {}",
                    kinds.len()
                ),
                "use one of `archive`, `file`, `pip`, `easy-install`, `url`, `apt-get`, `macports` or `dummy = true`".into(),
            );
            return None;
        }
        let kind = kinds[0].0;

        // `name` renames a file of sw_packages; `class` says what a download is.
        if let Some(name) = &package.name {
            let plain = !name.get_ref().is_empty()
                && Path::new(name.get_ref()).components().count() == 1
                && !name.get_ref().contains(['/', '\\'])
                && !name.get_ref().chars().any(char::is_control)
                && !matches!(name.get_ref().as_str(), "." | "..");
            if !matches!(kind, "archive" | "file") {
                self.error(
                    file,
                    "package-name",
                    name.span(),
                    format!("`name` applies to `archive` and `file` packages, not to `{kind}`"),
                    "remove `name`".into(),
                );
                return None;
            }
            if !plain {
                self.error(file, "package-name", name.span(), format!("`{}` is not a file name", name.get_ref()), "sw_packages is flat: give a plain file name such as `datablox_engage_adapter.tgz`".into());
                return None;
            }
            if kind == "archive" && !name.get_ref().ends_with(".tgz") {
                self.error(
                    file,
                    "package-name",
                    name.span(),
                    format!("archive name `{}` does not end in `.tgz`", name.get_ref()),
                    "archives are gzipped tar files: name it `<something>.tgz`".into(),
                );
                return None;
            }
        }
        if let Some(class) = &package.class
            && kind != "url"
        {
            self.error(
                file,
                "package-class",
                class.span(),
                format!("`class` applies to `url` packages, not to `{kind}`"),
                "remove `class`".into(),
            );
            return None;
        }
        let named = |base: String| package.name.as_ref().map_or(base, |n| n.get_ref().clone());
        if package.archive.is_none() && !package.exclude.is_empty() {
            self.error(
                file,
                "exclude-not-archive",
                span.clone(),
                "`exclude` applies to an `archive` package only".into(),
                "remove `exclude`: other packages are not built from a directory".into(),
            );
        }
        let source = if let Some(archive) = &package.archive {
            let dir =
                self.repo_path(file, archive.get_ref(), archive.span(), "archive directory")?;
            if !self.outside_build_output(
                file,
                archive.get_ref(),
                archive.span(),
                "archive directory",
            ) {
                return None;
            }
            if !self.inputs.is_dir(&dir) {
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
                dir: normalise(archive.get_ref()),
                file_name: named(format!("{base}.tgz")),
                exclude: package.exclude.clone(),
            }
        } else if let Some(path) = &package.file {
            let full = self.repo_path(file, path.get_ref(), path.span(), "package file")?;
            if !self.inputs.is_file(&full) {
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
            if let Some(bad) = base.chars().find(|c| c.is_control() || *c == '\\') {
                self.error(
                    file,
                    "package-file-name",
                    path.span(),
                    format!(
                        "the name of package file `{}` holds `{}`, which a `SHA256SUMS` line cannot hold",
                        path.get_ref().escape_debug(),
                        bad.escape_debug()
                    ),
                    "rename the file: printable characters only".into(),
                );
                return None;
            }
            PackageSource::File {
                path: normalise(path.get_ref()),
                file_name: named(base),
            }
        } else if let Some(pip) = &package.pip {
            PackageSource::Pip(pip.get_ref().clone())
        } else if let Some(easy) = &package.easy_install {
            PackageSource::EasyInstall(easy.get_ref().clone())
        } else if let Some(url) = &package.url {
            self.url_package(file, url, package)?
        } else if let Some(name) = package.apt_get.as_ref().or(package.macports.as_ref()) {
            if name.get_ref().trim().is_empty() {
                self.error(
                    file,
                    "package-location",
                    name.span(),
                    format!("the `{kind}` package names no system package"),
                    "name the package, e.g. `apt-get = \"redis-server\"`".into(),
                );
                return None;
            }
            if package.apt_get.is_some() {
                PackageSource::AptGet(name.get_ref().clone())
            } else {
                PackageSource::MacPorts(name.get_ref().clone())
            }
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
        // `python_pkg/engage/engine/library.py` (`_parse_package`): a file or archive package
        // with a `downloader` names a registered downloader class and the `filename` it
        // downloads to; a reference package ignores both.
        let is_file = matches!(
            source,
            PackageSource::Archive { .. } | PackageSource::File { .. }
        );
        let is_url = matches!(source, PackageSource::Url { .. });
        if let Some(downloader) = package.downloader.as_deref().filter(|_| is_file || is_url) {
            if !DOWNLOADERS.contains(&downloader) {
                self.error(
                    file,
                    "package-downloader",
                    span.clone(),
                    format!("`{downloader}` is not a downloader Engage knows"),
                    format!("use one of {}", DOWNLOADERS.join(", ")),
                );
            }
            // A `url` package's own check asks for the filename already.
            if is_file && package.filename.is_none() {
                self.error(
                    file,
                    "package-downloader",
                    span.clone(),
                    format!("a package with downloader `{downloader}` needs a `filename`"),
                    "add `filename = \"<file name in sw_packages>\"`: Engage downloads to it"
                        .into(),
                );
            }
        }
        Some(Package {
            source,
            filename: package.filename.clone(),
            downloader: package.downloader.clone(),
        })
    }

    /// A downloaded package: Engage's package class, a `downloader` to fetch it and the
    /// `filename` to keep it under (Engage requires both once a downloader is named).
    fn url_package(
        &mut self,
        file: usize,
        url: &Spanned<UrlList>,
        package: &RawPackage,
    ) -> Option<PackageSource> {
        let urls: Vec<&String> = match url.get_ref() {
            UrlList::One(one) => vec![one],
            UrlList::Mirrors(all) => all.iter().collect(),
        };
        if urls.is_empty() || urls.iter().any(|u| u.trim().is_empty()) {
            self.error(
                file,
                "package-location",
                url.span(),
                "a `url` package needs at least one non-empty URL".into(),
                "write `url = \"https://...\"` or a list of mirrors".into(),
            );
            return None;
        }
        let Some(class) = &package.class else {
            self.error(
                file,
                "package-class",
                url.span(),
                "a `url` package does not say what it downloads".into(),
                "add `class = \"GzippedTarArchive\"`, `\"ZipArchive\"` or `\"FilePackage\"`".into(),
            );
            return None;
        };
        if !URL_CLASSES.contains(&class.get_ref().as_str()) {
            self.error(
                file,
                "package-class",
                class.span(),
                format!(
                    "`{}` is not a package class Engage downloads",
                    class.get_ref()
                ),
                format!(
                    "use one of {}",
                    URL_CLASSES.map(|c| format!("`{c}`")).join(", ")
                ),
            );
            return None;
        }
        if package.downloader.is_none() || package.filename.is_none() {
            self.error(file, "package-downloader", url.span(), "a `url` package needs `downloader` and `filename`: without a downloader Engage looks for the location in its package cache".into(), "add `downloader = \"HTTPDownloader\"` and `filename = \"<file name once downloaded>\"`".into());
            return None;
        }
        Some(PackageSource::Url {
            location: url.get_ref().clone(),
            class: class.get_ref().clone(),
        })
    }

    pub(super) fn unique_package_files(&mut self, drafts: &[Draft]) {
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
}
