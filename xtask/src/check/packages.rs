//! How a resource is installed: its manager module (a library entry) or driver directory, and its
//! packages; package files share the flat `sw_packages`, so their names are unique.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::names::is_identifier;
use super::paths::normalise;
use super::{Checker, DRIVER_SOURCES, Draft};
use crate::manifest::RawPackage;
use crate::model::{Driver, Key, Package, PackageSource};

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

    pub(super) fn package(
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
                dir: normalise(archive.get_ref()),
                file_name: format!("{base}.tgz"),
                exclude: package.exclude.clone(),
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
