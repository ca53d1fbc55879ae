//! The only code that writes to the output directory, and the protocol it follows so that a run
//! that fails, or is killed at any instant, never leaves output that looks right and is not.
//!
//! - **One writer at a time.** `lock` takes an exclusive `flock` on the output directory itself
//!   (no lock file to leave behind); a second run waits, saying so, or refuses with `--no-wait`.
//!   `verify` takes a shared lock, so it never looks at a commit half done.
//! - **Temporaries in one exclusive place.** Everything a run writes goes first into its own
//!   staging directory `<out>/.dist-tmp-XXXXXX` (created with `mkdir`, a random name, mode 0700,
//!   by `tempfile`, with a marker file inside), never at a predictable name beside a final one, so
//!   no planted symlink is followed and no user file can be mistaken for a temporary. A staging
//!   directory is removed by its own run, or by a later run that holds the lock (its run is gone).
//! - **All or nothing.** Archives, changed tree files, `SHA256SUMS`, `dist-manifest.json` and the
//!   cache are complete in the staging directory before anything under a final name changes.
//!   Then `commit` removes `SHA256SUMS` and `dist-manifest.json` if they are about to change,
//!   renames the new files into place, removes stale ones, renames `dist-manifest.json`, then
//!   `SHA256SUMS`, then the cache. Each step is a rename or an unlink, so after a kill at any
//!   point every file under a final name is complete, and `SHA256SUMS` (when present) verifies
//!   what sits beside it: before the switch the directory is the old output, after it the new
//!   one, in between it has no `SHA256SUMS` (`verify` says so) and the next run completes it.
//! - **Repair.** The cache is renamed in last, and it records each output's size, mtime and inode:
//!   a package renamed in by a killed run no longer matches it and is rebuilt; the tree is
//!   compared file by file. A directory left by an interrupted run is recognised as ours by its
//!   staging directory (or the cache, or `dist-manifest.json`), so the next run repairs it.
//!
//! There is no fsync (a cold build waited on the disk for most of its time with it): the protocol
//! holds against a killed process, and after a power loss `verify` tells, `--no-cache` repairs.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::archive;
use crate::build::{Built, TOOL, packages_dir};
use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::extension::{self, Content, OutputFile};
use crate::fault;
use crate::hash::to_hex;
use crate::inputs::Inputs;
use crate::model::{Driver, Kind, Model, PackageSource};
use crate::plan::{Plan, TREE};
use crate::stat::{Base, Stat};
use crate::state::{Output, Package, STATE_FILE, State};

pub const SUMS_FILE: &str = "SHA256SUMS";
pub const DIST_MANIFEST_FILE: &str = "dist-manifest.json";
/// Every staging directory's name starts with this; `tempfile` adds random characters.
pub const STAGING_PREFIX: &str = ".dist-tmp-";
/// Created first in a staging directory: what makes a `.dist-tmp-*` directory ours to remove.
const STAGING_MARKER: &str = "CREATED-BY-CARGO-XTASK-DIST";

/// What to do when another run holds the output directory.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// Wait for it; the function is called once, before waiting (to say so on stderr).
    Block(fn(&Path)),
    /// Fail at once with the `output-locked` diagnostic (`--no-wait`).
    Refuse,
}

/// The lock on an output directory, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _directory: File,
}

/// Creates `out_dir` if needed and locks it: exclusively for `dist`, shared for `verify`.
pub fn lock(out_dir: &Path, wait: Wait, exclusive: bool) -> Result<Lock> {
    if exclusive {
        std::fs::create_dir_all(out_dir).with_path("create", out_dir)?;
    }
    let directory = File::open(out_dir).with_path("open", out_dir)?;
    let attempt = if exclusive {
        directory.try_lock()
    } else {
        directory.try_lock_shared()
    };
    match attempt {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => match wait {
            Wait::Refuse => return Err(Error::new(locked(out_dir))),
            Wait::Block(notify) => {
                notify(out_dir);
                let locked = if exclusive {
                    directory.lock()
                } else {
                    directory.lock_shared()
                };
                locked.with_path("lock", out_dir)?;
            }
        },
        Err(std::fs::TryLockError::Error(error)) => return Err(Error::io("lock", out_dir, error)),
    }
    Ok(Lock {
        _directory: directory,
    })
}

fn locked(out_dir: &Path) -> Diagnostic {
    Diagnostic::error(
        "output-locked",
        format!(
            "another `cargo xtask dist` is writing `{}`",
            out_dir.display()
        ),
    )
    .file(out_dir)
    .help("wait for it to finish (run without `--no-wait` to wait), or choose another `--out`")
}

/// Run under the lock, before anything is written: refuses a directory that is not ours or
/// whose final names are taken by something dist cannot replace, then removes what killed runs
/// left (their staging directories).
pub fn prepare(out_dir: &Path) -> Result<()> {
    check_out_dir(out_dir)?;
    let tree = out_dir.join(TREE);
    if let Ok(metadata) = std::fs::symlink_metadata(&tree)
        && !metadata.is_dir()
    {
        return Err(not_ours_to_replace(&tree, "a directory"));
    }
    for name in [SUMS_FILE, DIST_MANIFEST_FILE, STATE_FILE] {
        let path = out_dir.join(name);
        if let Ok(metadata) = std::fs::symlink_metadata(&path)
            && metadata.is_dir()
        {
            return Err(not_ours_to_replace(&path, "a file"));
        }
    }
    for entry in std::fs::read_dir(out_dir).with_path("read", out_dir)? {
        let entry = entry.with_path("read", out_dir)?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if name.starts_with(STAGING_PREFIX) && file_type.is_dir() {
            // The lock is ours: the run that made it is gone.
            if path.join(STAGING_MARKER).is_file() {
                std::fs::remove_dir_all(&path).with_path("remove the abandoned", &path)?;
            } else {
                // Killed between `mkdir` and the marker: empty, and `remove_dir` removes nothing else.
                let _ = std::fs::remove_dir(&path);
            }
        }
    }
    Ok(())
}

fn not_ours_to_replace(path: &Path, should_be: &str) -> Error {
    Error::new(
        Diagnostic::error(
            "output-occupied",
            format!(
                "`{}` is not {should_be}, and dist writes {should_be} there",
                path.display()
            ),
        )
        .file(path)
        .help("move it away or remove it (dist does not remove what it did not write), or choose another `--out`"),
    )
}

/// A run's staging directory: see the module documentation. Removed when dropped.
#[derive(Debug)]
pub struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    pub fn create(out_dir: &Path) -> Result<Staging> {
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(out_dir)
            .with_path("create a staging directory in", out_dir)?;
        let marker = dir.path().join(STAGING_MARKER);
        File::create_new(&marker)
            .and_then(|mut file| {
                file.write_all(
                    b"a staging directory of `cargo xtask dist`; removed by the next run\n",
                )
            })
            .with_path("create", &marker)?;
        let staging = Staging { dir };
        let packages = staging.packages_dir();
        std::fs::create_dir(&packages).with_path("create", &packages)?;
        Ok(staging)
    }

    /// Where new `sw_packages` files are built.
    pub fn packages_dir(&self) -> PathBuf {
        self.dir.path().join("sw_packages")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Removes the staging directory and what is left in it.
    pub fn close(self) -> Result<()> {
        let path = self.dir.path().to_path_buf();
        self.dir
            .close()
            .with_path("remove the staging directory", &path)
    }
}

/// Everything a build changes in the output directory, complete in the staging directory
/// (`stage`), waiting for `commit` to switch it in.
#[derive(Debug)]
pub struct Staged {
    /// New packages and tree files: staging path -> final path.
    renames: Vec<(PathBuf, PathBuf)>,
    /// Files of the tree this build does not produce, and directories emptied by their removal.
    stale_files: Vec<PathBuf>,
    stale_dirs: Vec<PathBuf>,
    /// `dist-manifest.json` and `SHA256SUMS` when they change: staging path -> final path.
    metadata: Vec<(PathBuf, PathBuf)>,
    /// Every output file once switched in: what the next state records.
    outputs: Vec<Written>,
    /// Every directory of the tree once switched in (the ancestors of its files), relative to
    /// the output directory.
    dirs: Vec<String>,
}

/// An output file once switched in (path relative to the output directory), with its SHA-256
/// and, for a package, what produced it; and its `lstat` when it is left in place, taken when it
/// was found to hold its bytes (a file renamed in is stat'ed after the switch).
#[derive(Debug)]
pub struct Written {
    pub path: String,
    pub sha256: String,
    pub package: Option<Package>,
    pub kept: Option<Stat>,
}

/// Tree files of the plan (the tree but the packages), staged: they depend on the plan only, so
/// `dist` stages them, a slice at a time, while the packages build.
#[derive(Debug, Default)]
pub struct StagedTree {
    renames: Vec<(PathBuf, PathBuf)>,
    outputs: Vec<Written>,
}

impl StagedTree {
    /// Adds the next slice's files, in order.
    pub fn append(&mut self, next: StagedTree) {
        self.renames.extend(next.renames);
        self.outputs.extend(next.outputs);
    }
}

/// Writes into `staging` every file of `files` (tree files of the plan, the first of them its
/// `first`th) that differs from what the output directory holds (`previous` knows some by their
/// stat). A staged file is named by its index, all in one directory: no directories to make in
/// the staging directory, nor to remove after the switch.
pub fn stage_tree(
    files: &[OutputFile],
    first: usize,
    staging: &Staging,
    out_dir: &Path,
    previous: &State,
    inputs: &Inputs,
) -> Result<StagedTree> {
    let tree_root = out_dir.join(TREE);
    let mut staged = StagedTree::default();
    for (index, file) in (first..).zip(files) {
        let path = tree_root.join(&file.path);
        let bytes = match &file.content {
            Content::Bytes(bytes) => Cow::Borrowed(bytes.as_slice()),
            Content::Copy(source) => Cow::Owned(inputs.read(source).with_path("read", source)?),
        };
        let relative = format!("{TREE}/{}", file.path);
        let (sha256, kept) = holds(previous, &relative, &path, &bytes);
        if kept.is_none() {
            let temp = staging.path().join("tree").join(index.to_string());
            write_new(&temp, &bytes)?;
            fault::point("stage")?;
            staged.renames.push((temp, path));
        }
        staged.outputs.push(Written {
            path: relative,
            sha256,
            package: None,
            kept,
        });
    }
    Ok(staged)
}

/// Adds to the staged `tree` the packages, `dist-manifest.json` and `SHA256SUMS` (written into
/// `staging` where they differ from what the output directory holds), and lists what the switch
/// will rename and remove. Nothing under a final name changes.
pub fn stage(
    model: &Model,
    plan: &Plan,
    built: &Built,
    tree: StagedTree,
    staging: &Staging,
    out_dir: &Path,
    previous: &State,
) -> Result<Staged> {
    let tree_root = out_dir.join(TREE);
    let packages = packages_dir(out_dir);
    let names: Vec<String> = (built.packages.iter())
        .map(|package| format!("sw_packages/{}", package.file_name))
        .collect();
    let mut expected: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut staged = Staged {
        renames: Vec::new(),
        stale_files: Vec::new(),
        stale_dirs: Vec::new(),
        metadata: Vec::new(),
        outputs: Vec::new(),
        dirs: Vec::new(),
    };
    for package in &built.packages {
        let path = packages.join(&package.file_name);
        if let Some(temp) = &package.temp {
            staged.renames.push((temp.clone(), path.clone()));
        }
        staged.outputs.push(Written {
            path: format!("{TREE}/sw_packages/{}", package.file_name),
            sha256: package.sha256.clone(),
            package: Some(Package {
                settings: package.settings.clone(),
                source_digest: package
                    .source_digest
                    .clone()
                    .unwrap_or_else(|| package.sha256.clone()),
            }),
            kept: package.kept,
        });
    }
    expected.extend(plan.tree.iter().map(|file| file.path.as_str()));
    staged.renames.extend(tree.renames);
    staged.outputs.extend(tree.outputs);
    (staged.stale_files, staged.stale_dirs, staged.dirs) = stale(&tree_root, &expected)?;

    let sums: String = built
        .packages
        .iter()
        .map(|p| format!("{}  {TREE}/sw_packages/{}\n", p.sha256, p.file_name))
        .collect();
    let manifest = extension::json_file(DIST_MANIFEST_FILE, &dist_manifest(model, plan, built));
    let Content::Bytes(manifest) = manifest.content else {
        unreachable!("json_file returns bytes")
    };
    for (name, bytes) in [
        (DIST_MANIFEST_FILE, &manifest),
        (SUMS_FILE, &sums.into_bytes()),
    ] {
        let path = out_dir.join(name);
        let (sha256, kept) = holds(previous, name, &path, bytes);
        if kept.is_none() {
            let temp = staging.path().join(name);
            write_new(&temp, bytes)?;
            staged.metadata.push((temp, path));
        }
        staged.outputs.push(Written {
            path: name.to_string(),
            sha256,
            package: None,
            kept,
        });
    }
    fault::point("staged")?;
    Ok(staged)
}

/// Switches the staged output in, with unlinks and renames only (see the module
/// documentation), and returns every output file and directory of the tree for the next state.
pub fn commit(staged: Staged, out_dir: &Path) -> Result<(Vec<Written>, Vec<String>)> {
    let Staged {
        renames,
        stale_files,
        stale_dirs,
        metadata,
        outputs,
        dirs,
    } = staged;
    for (_, path) in &metadata {
        remove_if_present(path)?;
    }
    fault::point("commit")?;
    for (temp, path) in &renames {
        fault::point("rename")?;
        rename_into_place(out_dir, temp, path)?;
    }
    for path in &stale_files {
        fault::point("stale")?;
        // A symlink listed as stale may have been replaced by a real directory of the new tree.
        if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
            remove_if_present(path)?;
        }
    }
    for dir in &stale_dirs {
        match std::fs::remove_dir(dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove the stale directory", dir, error));
            }
            _ => {}
        }
    }
    for (temp, path) in &metadata {
        fault::point("metadata")?;
        std::fs::rename(temp, path).with_path("rename into place", path)?;
    }
    Ok((outputs, dirs))
}

/// The records of the output as the switch left it (`commit`): every file, with the `lstat` it
/// was kept with or, if renamed in, its `lstat` now; and every directory of the tree with its
/// `lstat` now, so that a file added there by hand shows in its directory's stat.
pub fn recorded(out_dir: &Path, (files, dirs): (Vec<Written>, Vec<String>)) -> Result<Vec<Output>> {
    let base = Base::open(out_dir);
    let lstat = |relative: &str| {
        base.stat(relative, false).ok_or_else(|| {
            let path = out_dir.join(relative);
            let error = std::fs::symlink_metadata(&path).err();
            Error::io(
                "stat",
                &path,
                error.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
            )
        })
    };
    let mut outputs = Vec::with_capacity(files.len() + dirs.len());
    for file in files {
        outputs.push(Output {
            stat: match file.kept {
                Some(stat) => stat,
                None => lstat(&file.path)?,
            },
            path: file.path,
            sha256: file.sha256,
            package: file.package,
        });
    }
    for dir in dirs {
        outputs.push(Output {
            stat: lstat(&dir)?,
            path: dir,
            sha256: String::new(),
            package: None,
        });
    }
    Ok(outputs)
}

/// The SHA-256 (hex) of `bytes`, and, when `path` (`relative` to the output directory) is a
/// regular file holding exactly them, its `lstat`: then it is left alone, so a no-op build
/// rewrites nothing. The file is read and compared unless the previous state's record of it
/// (same `lstat`) says so. A symlink never counts: it is replaced.
fn holds(previous: &State, relative: &str, path: &Path, bytes: &[u8]) -> (String, Option<Stat>) {
    let sha256 = to_hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes).into());
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return (sha256, None);
    };
    if !metadata.is_file() || metadata.len() != bytes.len() as u64 {
        return (sha256, None);
    }
    let stat = Stat::from_metadata(&metadata);
    let same = previous
        .output(relative, &stat)
        .is_some_and(|output| output.sha256 == sha256)
        || std::fs::read(path).is_ok_and(|existing| existing == bytes);
    (sha256, same.then_some(stat))
}

/// Creates a new file (never an existing one) inside the staging directory.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_path("create", parent)?;
    }
    File::create_new(path)
        .and_then(|mut file| file.write_all(bytes))
        .with_path("write", path)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove", path, error))
        }
        _ => Ok(()),
    }
}

/// Renames `temp` to `path`, first making every directory between `out_dir` and `path` a real
/// directory: a symlink or file planted there (inside our tree) is removed, never followed.
fn rename_into_place(out_dir: &Path, temp: &Path, path: &Path) -> Result<()> {
    let parent = path
        .parent()
        .expect("a final path is inside the output directory");
    let relative = parent
        .strip_prefix(out_dir)
        .expect("a final path is inside the output directory");
    let mut dir = out_dir.to_path_buf();
    for component in relative.components() {
        dir.push(component);
        match std::fs::symlink_metadata(&dir) {
            Ok(metadata) if metadata.is_dir() => continue,
            Ok(_) => std::fs::remove_file(&dir).with_path("remove", &dir)?,
            Err(_) => {}
        }
        std::fs::create_dir(&dir).with_path("create", &dir)?;
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(path).with_path("remove", path)?;
    }
    std::fs::rename(temp, path).with_path("rename into place", path)
}

/// The output-directory rule (written down in `python/datablox_deployer/outdir.py`), for `--out`.
/// Refuses an output directory that holds a `datablox/` tree this tool did not write: stale-file
/// removal would otherwise delete files of, say, a legacy extension kept there. Ours: the cache or
/// `dist-manifest.json` is there, or a staging directory of an interrupted run.
pub fn check_out_dir(out_dir: &Path) -> Result<()> {
    let tree = out_dir.join(TREE);
    let occupied = std::fs::read_dir(&tree).is_ok_and(|mut entries| entries.next().is_some());
    if !occupied || is_ours(out_dir) {
        return Ok(());
    }
    Err(Error::new(
        Diagnostic::error(
            "foreign-output",
            format!(
                "`{}` holds a `{TREE}` directory that `cargo xtask dist` did not write",
                out_dir.display()
            ),
        )
        .file(&tree)
        .help("choose another `--out` directory, or move that directory away: dist removes files it did not produce"),
    ))
}

fn is_ours(out_dir: &Path) -> bool {
    [STATE_FILE, DIST_MANIFEST_FILE]
        .iter()
        .any(|name| out_dir.join(name).is_file())
        || in_progress(out_dir)
}

/// Whether `out_dir` holds the staging directory of a run under way, or killed (until a full
/// build removes it).
pub fn in_progress(out_dir: &Path) -> bool {
    std::fs::read_dir(out_dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
                && entry.path().join(STAGING_MARKER).is_file()
        })
    })
}

/// The files of the tree that this build did not produce (a deleted block's archive and driver,
/// anything else left there), the directories that will be empty once they are gone, deepest
/// first, and the directories of the tree that stay (relative to the output directory).
/// Symlinks are listed as files: removed, never followed. `expected` is relative to the tree.
type Stale = (Vec<PathBuf>, Vec<PathBuf>, Vec<String>);
fn stale(tree_root: &Path, expected: &HashSet<&str>) -> Result<Stale> {
    // Directories that hold an expected file stay (`""`: the tree); the others are removed once
    // emptied.
    let mut kept: HashSet<&str> = HashSet::from([""]);
    for path in expected {
        let mut path = *path;
        while let Some((parent, _)) = path.rsplit_once('/') {
            if !kept.insert(parent) {
                break;
            }
            path = parent;
        }
    }
    let staying = kept
        .iter()
        .map(|dir| match dir {
            &"" => TREE.to_string(),
            dir => format!("{TREE}/{dir}"),
        })
        .collect();
    let mut files = Vec::new();
    let mut directories = Vec::new();
    if std::fs::symlink_metadata(tree_root).is_err() {
        return Ok((files, directories, staying));
    }
    let prefix = tree_root.as_os_str().len() + 1;
    for entry in walkdir::WalkDir::new(tree_root)
        .min_depth(1)
        .contents_first(true)
    {
        let entry = entry.map_err(|e| Error::io("read", tree_root, e.into()))?;
        let path = entry.path();
        // Not UTF-8: neither expected nor kept.
        let relative = std::str::from_utf8(&path.as_os_str().as_bytes()[prefix..]).ok();
        if entry.file_type().is_dir() {
            if !relative.is_some_and(|dir| kept.contains(dir)) {
                directories.push(path.to_path_buf());
            }
        } else if !relative.is_some_and(|file| expected.contains(file)) {
            files.push(path.to_path_buf());
        }
    }
    Ok((files, directories, staying))
}

fn dist_manifest(model: &Model, plan: &Plan, built: &Built) -> Value {
    let resources: Vec<Value> = model
        .resources
        .iter()
        .map(|resource| {
            let packages: Vec<Value> = resource
                .packages
                .iter()
                .map(|package| match &package.source {
                    PackageSource::Archive { file_name, .. }
                    | PackageSource::File { file_name, .. } => {
                        let kind = if matches!(package.source, PackageSource::Archive { .. }) {
                            "archive"
                        } else {
                            "file"
                        };
                        let built = built.packages.iter().find(|p| &p.file_name == file_name);
                        json!({
                            "kind": kind,
                            "file": file_name,
                            "source_digest": built.and_then(|b| b.source_digest.clone()),
                            "sha256": built.map(|b| b.sha256.clone()),
                            "size": built.map(|b| b.size),
                        })
                    }
                    PackageSource::Pip(name) => json!({"kind": "pip", "location": name}),
                    PackageSource::EasyInstall(name) => {
                        json!({"kind": "easy-install", "location": name})
                    }
                    PackageSource::Dummy => json!({"kind": "dummy"}),
                    PackageSource::Url { location, class } => {
                        json!({"kind": "url", "class": class, "location": location})
                    }
                    PackageSource::AptGet(name) => json!({"kind": "apt-get", "location": name}),
                    PackageSource::MacPorts(name) => json!({"kind": "macports", "location": name}),
                })
                .collect();
            let driver = match &resource.driver {
                Driver::Block | Driver::Directory(_) => {
                    format!("drivers/{}", resource.driver_dir())
                }
                Driver::Library { module } => module.clone(),
            };
            json!({
                "key": extension::key_json(&resource.key),
                "kind": if resource.kind == Kind::Block { "block" } else { "resource" },
                "manifest": resource.manifest.to_string_lossy().replace('\\', "/"),
                "driver": driver,
                "packages": packages,
            })
        })
        .collect();
    json!({
        "tool": TOOL,
        "archive_format": archive::ARCHIVE_FORMAT,
        "deflate_backend": archive::DEFLATE_BACKEND,
        "compression_level": plan.settings.level,
        "source_date_epoch": plan.settings.source_date_epoch,
        "mtime": plan.settings.mtime(),
        "extension": {"name": model.extension.name, "version": model.extension.version},
        "resources": resources,
    })
}
