//! `Model` + what is on disk -> `Plan`: which archives to build, which files to copy, which
//! extension files to generate. Lists directories, writes nothing.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::check::DRIVER_SOURCES;
use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::extension::{self, Content, DriverSources, GENERIC_DRIVER, OutputFile};
use crate::inputs::{Inputs, ListedKind};
use crate::model::{Driver, Key, Kind, Model, PackageSource};

/// The name of the extension tree inside the output directory.
pub const TREE: &str = "datablox";
/// The node deployer's launcher and package, shipped as `bin/` of the tree when the launcher exists.
pub const DEPLOYER_LAUNCHER: &str = "engage-extension/bin/deploy";
pub const DEPLOYER_PACKAGE: &str = "python/datablox_deployer";
/// The packages shipped beside the launcher, each as `bin/<package>/` with every `.py` file of its
/// directory: the node deployer and the framework it imports (the topology rules, the cluster key,
/// the name rule). Whole directories, so that a module the deployer starts to import ships too.
pub const DEPLOYER_PACKAGES: [&str; 2] = [DEPLOYER_PACKAGE, "python/datablox_framework"];
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
    /// The manifest's `exclude` patterns (gitignore syntax, relative to `dir`).
    pub exclude: Vec<String>,
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

pub fn make(
    model: &Model,
    repo: &Path,
    source_date_epoch: Option<u64>,
    inputs: &Inputs,
) -> Result<Plan> {
    let settings = Settings {
        source_date_epoch,
        level: model.extension.compression_level,
    };
    let mut archives = Vec::new();
    let mut files = Vec::new();
    for resource in &model.resources {
        for package in &resource.packages {
            match &package.source {
                PackageSource::Archive {
                    dir,
                    file_name,
                    exclude,
                } => archives.push(ArchiveJob {
                    key: resource.key.clone(),
                    kind: resource.kind,
                    dir: repo.join(dir),
                    top: archive_top(dir, &resource.manifest)?,
                    file_name: file_name.clone(),
                    exclude: exclude.clone(),
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
    let drivers = driver_sources(model, repo, inputs)?;
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
fn driver_sources(model: &Model, repo: &Path, inputs: &Inputs) -> Result<DriverSources> {
    let mut sources = DriverSources {
        modules: python_files(&repo.join(DRIVER_SOURCES), repo, inputs)?,
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
            .file(Path::new(DRIVER_SOURCES).join(GENERIC_DRIVER))
            .help("every block driver imports the generic block driver: restore the file"),
        ));
    }
    let launcher = repo.join(DEPLOYER_LAUNCHER);
    if inputs.is_file(&launcher) {
        sources.deployer.push(("bin/deploy".to_string(), launcher));
        for package in DEPLOYER_PACKAGES {
            let package_name = Path::new(package)
                .file_name()
                .expect("a package has a name");
            for module in python_files(&repo.join(package), repo, inputs)? {
                let name = module.file_name().expect("listed files have names");
                let path = format!(
                    "bin/{}/{}",
                    package_name.to_string_lossy(),
                    name.to_string_lossy()
                );
                sources.deployer.push((path, module));
            }
        }
    }
    for resource in &model.resources {
        if let Driver::Directory(dir) = &resource.driver {
            sources
                .directories
                .insert(dir.clone(), python_files(&repo.join(dir), repo, inputs)?);
        }
    }
    Ok(sources)
}

/// The archive's top directory: the last component of its source directory. `check` refuses a
/// path without one (the repository itself), so this error only guards against a bug there.
fn archive_top(dir: &Path, manifest: &Path) -> Result<String> {
    match dir.components().next_back() {
        Some(Component::Normal(name)) => Ok(name.to_string_lossy().into_owned()),
        _ => Err(Error::new(
            Diagnostic::error(
                "archive-not-dir",
                format!("archive directory `{}` has no name", dir.display()),
            )
            .file(manifest)
            .help("name a directory below the repository root, e.g. `python/my_package`"),
        )),
    }
}

/// The `.py` files of a driver directory, sorted. They are copied into the extension, so like the
/// files of a block they must come from inside the repository: a symbolic link is followed only
/// when it resolves inside `repo`, and anything but a regular file with a `.py` name is an error.
fn python_files(dir: &Path, repo: &Path, inputs: &Inputs) -> Result<Vec<PathBuf>> {
    if inputs.stat(dir).is_err() {
        return Ok(Vec::new());
    }
    let real_repo = inputs.canonicalize(repo).with_path("resolve", repo)?;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (path, file_type) in inputs.read_dir(dir).with_path("read", dir)? {
        if path.extension().is_none_or(|e| e != "py") {
            continue;
        }
        if matches!(file_type, ListedKind::Symlink) {
            match inputs.canonicalize(&path) {
                Ok(real) if real.starts_with(&real_repo) && inputs.is_file(&real) => {}
                Ok(real) if real.starts_with(&real_repo) => {
                    if inputs.is_dir(&real) {
                        continue;
                    }
                    problems.push(
                        Diagnostic::error(
                            "driver-not-file",
                            format!(
                                "driver file `{}` leads to `{}`, which is not a regular file",
                                path.display(),
                                real.display()
                            ),
                        )
                        .file(&path)
                        .help("replace the symbolic link by the driver's code"),
                    );
                    continue;
                }
                Ok(real) => {
                    problems.push(
                        Diagnostic::error(
                            "symlink-outside",
                            format!(
                                "driver file `{}` is a symbolic link to `{}`, outside the repository",
                                path.display(),
                                real.display()
                            ),
                        )
                        .file(&path)
                        .help("keep driver code inside the repository; replace the symbolic link by a copy of the file"),
                    );
                    continue;
                }
                Err(_) => {
                    problems.push(
                        Diagnostic::error(
                            "symlink-outside",
                            format!(
                                "driver file `{}` is a symbolic link to nothing",
                                path.display()
                            ),
                        )
                        .file(&path)
                        .help("fix or remove the symbolic link"),
                    );
                    continue;
                }
            }
        } else if file_type == ListedKind::Dir {
            continue;
        } else if file_type != ListedKind::File {
            problems.push(
                Diagnostic::error(
                    "special-file",
                    format!("driver file `{}` is not a regular file", path.display()),
                )
                .file(&path)
                .help("remove it; only regular `.py` files are copied into the extension"),
            );
            continue;
        }
        files.push(path);
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.file.cmp(&b.file));
        return Err(Error::many(problems));
    }
    files.sort();
    Ok(files)
}

/// Refuses an output directory that overlaps what the build reads: inside a package's source
/// directory (the output would be packed into its own archive, growing on every run), equal to
/// one, or holding one (stale-file removal could delete sources). Compares real paths, so a
/// symbolic link or `..` in `--out` changes nothing.
pub fn check_out_dir(plan: &Plan, out_dir: &Path) -> Result<()> {
    let out = real_path(out_dir);
    let mut sources: Vec<(PathBuf, String)> = Vec::new();
    for job in &plan.archives {
        sources.push((job.dir.clone(), format!("the source of `{}`", job.key)));
    }
    for job in &plan.files {
        sources.push((
            job.source.clone(),
            format!("the package file of `{}`", job.key),
        ));
    }
    sources.push((plan.repo.join("manifests"), "the manifests".into()));
    for file in &plan.tree {
        if let Content::Copy(path) = &file.content
            && let Some(parent) = path.parent()
        {
            sources.push((parent.to_path_buf(), "hand-written driver code".into()));
        }
    }
    let mut overlaps = Vec::new();
    // Most sources share their parent (`blox/`): resolved once, then the last component is
    // appended when it is there and no symlink (one `lstat`, not a `readlink` per component).
    let mut parents: HashMap<PathBuf, PathBuf> = HashMap::new();
    for (source, what) in sources {
        let real = match (source.parent(), source.components().next_back()) {
            (Some(parent), Some(Component::Normal(name)))
                if std::fs::symlink_metadata(&source).is_ok_and(|m| !m.is_symlink()) =>
            {
                let parent = parents
                    .entry(parent.to_path_buf())
                    .or_insert_with(|| real_path(parent));
                parent.join(name)
            }
            _ => real_path(&source),
        };
        let relation = if out == real {
            "is"
        } else if out.starts_with(&real) {
            "lies inside"
        } else if real.starts_with(&out) {
            "contains"
        } else {
            continue;
        };
        let shown = source.strip_prefix(&plan.repo).unwrap_or(&source);
        overlaps.push(format!("{relation} `{}`, {what}", shown.display()));
    }
    overlaps.dedup();
    let Some(first) = overlaps.first() else {
        return Ok(());
    };
    let others = match overlaps.len() - 1 {
        0 => String::new(),
        1 => " (and 1 other source)".to_string(),
        n => format!(" (and {n} other sources)"),
    };
    Err(Error::new(
        Diagnostic::error(
            "out-overlaps-sources",
            format!(
                "the output directory `{}` {first}{others}",
                out_dir.display()
            ),
        )
        .file(out_dir)
        .help("write the output outside the sources the build reads, e.g. `--out target/dist` (the default)"),
    ))
}

/// `path` with symbolic links and `..` resolved, also when its last components do not exist yet.
fn real_path(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut result = real;
            for component in missing.iter().rev() {
                match component {
                    Component::ParentDir => {
                        result.pop();
                    }
                    Component::CurDir => {}
                    other => result.push(other),
                }
            }
            return result;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                missing.push(last);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}
