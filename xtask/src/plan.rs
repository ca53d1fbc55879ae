//! `Model` + what is on disk -> `Plan`: which archives to build, which files to copy, which
//! extension files to generate. Lists directories, writes nothing.

use std::path::{Path, PathBuf};

use crate::check::DRIVER_SOURCES;
use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::extension::{self, DriverSources, GENERIC_DRIVER, OutputFile};
use crate::model::{Driver, Key, Kind, Model, PackageSource};

/// The name of the extension tree inside the output directory.
pub const TREE: &str = "datablox";
/// The node deployer's launcher and package, shipped as `bin/` of the tree when the launcher exists.
pub const DEPLOYER_LAUNCHER: &str = "engage-extension/bin/deploy";
pub const DEPLOYER_PACKAGE: &str = "python/datablox_deployer";
/// Every archive entry's mtime when `SOURCE_DATE_EPOCH` is not set: 1980-01-01T00:00:00Z, the
/// first instant every archive format can store. Fixed, so archives do not depend on checkout time.
pub const DEFAULT_MTIME: u64 = 315_532_800;

/// What the bytes of the output depend on besides the sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub source_date_epoch: Option<u64>,
    pub level: u32,
}

impl Settings {
    pub fn mtime(&self) -> u64 {
        self.source_date_epoch.unwrap_or(DEFAULT_MTIME)
    }
}

/// One `sw_packages` archive built from a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveJob {
    pub key: Key,
    pub kind: Kind,
    /// The source directory, absolute.
    pub dir: PathBuf,
    /// The archive's single top-level directory: the source directory's name.
    pub top: String,
    pub file_name: String,
}

/// One `sw_packages` file copied as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileJob {
    pub key: Key,
    pub source: PathBuf,
    pub file_name: String,
}

#[derive(Debug)]
pub struct Plan {
    pub repo: PathBuf,
    pub settings: Settings,
    pub archives: Vec<ArchiveJob>,
    pub files: Vec<FileJob>,
    /// Generated and copied files of the extension tree, relative to `datablox/`.
    pub tree: Vec<OutputFile>,
}

pub fn make(model: &Model, repo: &Path, source_date_epoch: Option<u64>) -> Result<Plan> {
    let settings = Settings {
        source_date_epoch,
        level: model.extension.compression_level,
    };
    let mut archives = Vec::new();
    let mut files = Vec::new();
    for resource in &model.resources {
        for package in &resource.packages {
            match &package.source {
                PackageSource::Archive { dir, file_name } => archives.push(ArchiveJob {
                    key: resource.key.clone(),
                    kind: resource.kind,
                    dir: repo.join(dir),
                    top: dir
                        .file_name()
                        .expect("checked: a directory")
                        .to_string_lossy()
                        .into_owned(),
                    file_name: file_name.clone(),
                }),
                PackageSource::File { path, file_name } => files.push(FileJob {
                    key: resource.key.clone(),
                    source: repo.join(path),
                    file_name: file_name.clone(),
                }),
                _ => {}
            }
        }
    }
    let drivers = driver_sources(model, repo)?;
    let tree = extension::generate(model, &drivers)?;
    Ok(Plan {
        repo: repo.to_path_buf(),
        settings,
        archives,
        files,
        tree,
    })
}

/// Lists the hand-written driver code: every `engage-extension/drivers/*.py` and the `.py` files of
/// each driver directory a manifest names, in byte-wise name order.
fn driver_sources(model: &Model, repo: &Path) -> Result<DriverSources> {
    let mut sources = DriverSources {
        modules: python_files(&repo.join(DRIVER_SOURCES))?,
        ..Default::default()
    };
    let has_block = model.resources.iter().any(|r| r.kind == Kind::Block);
    if has_block
        && !sources
            .modules
            .iter()
            .any(|m| m.file_name().is_some_and(|n| n == GENERIC_DRIVER))
    {
        return Err(Error::new(
            Diagnostic::error(
                "missing-generic-driver",
                format!("there is no `{DRIVER_SOURCES}/{GENERIC_DRIVER}`"),
            )
            .help("every block driver imports the generic block driver: restore the file"),
        ));
    }
    let launcher = repo.join(DEPLOYER_LAUNCHER);
    if launcher.is_file() {
        sources.deployer.push(("bin/deploy".to_string(), launcher));
        for module in python_files(&repo.join(DEPLOYER_PACKAGE))? {
            let name = module.file_name().expect("listed files have names");
            let path = format!("bin/datablox_deployer/{}", name.to_string_lossy());
            sources.deployer.push((path, module));
        }
    }
    for resource in &model.resources {
        if let Driver::Directory(dir) = &resource.driver {
            sources
                .directories
                .insert(dir.clone(), python_files(&repo.join(dir))?);
        }
    }
    Ok(sources)
}

fn python_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_path("read", dir)? {
        let path = entry.with_path("read", dir)?.path();
        if path.extension().is_some_and(|e| e == "py") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
