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

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::archive;
use crate::build::{Built, TOOL, packages_dir};
use crate::cache::{CACHE_FILE, Cache, OutputRecord, TreeRecord};
use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::extension::{self, Content};
use crate::fault;
use crate::fresh;
use crate::model::{Driver, Kind, Model, PackageSource};
use crate::plan::{Plan, TREE};
use crate::tree::Stat;

pub const SUMS_FILE: &str = "SHA256SUMS";
pub const DIST_MANIFEST_FILE: &str = "dist-manifest.json";
/// Every staging directory's name starts with this; `tempfile` adds random characters.
pub const STAGING_PREFIX: &str = ".dist-tmp-";
/// Created first in a staging directory: what makes a `.dist-tmp-*` directory ours to remove.
const STAGING_MARKER: &str = "CREATED-BY-CARGO-XTASK-DIST";

/// What a `dist` run did, printed as the last line (or as JSON with `--json`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub resources: usize,
    /// Files in `sw_packages`.
    pub packages: usize,
    pub rebuilt: usize,
    pub skipped: usize,
    /// Bytes of `sw_packages`.
    pub bytes: u64,
    /// Bytes of the sources they were built from.
    pub source_bytes: u64,
    pub out_dir: PathBuf,
}

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
    for name in [SUMS_FILE, DIST_MANIFEST_FILE, CACHE_FILE, fresh::FRESH_FILE] {
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

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What the fingerprint of a completed build (`fresh`) needs from the run besides its output.
pub struct Fingerprint<'a> {
    pub identity: &'a fresh::Identity,
    /// The warnings a fresh run repeats.
    pub warnings: &'a [Diagnostic],
}

/// `old` is the cache the build started from (its file records are taken for the new one) and
/// `started_ns` when it started; the cache is rewritten only when it changed, and the
/// fingerprint (`fresh`) after it.
pub fn commit(
    model: &Model,
    plan: &Plan,
    mut built: Built,
    out_dir: &Path,
    old: &mut Cache,
    started_ns: i64,
    fingerprint: &Fingerprint,
) -> Result<Summary> {
    let tree_root = out_dir.join(TREE);
    let packages = packages_dir(out_dir);
    let staging = built
        .staging
        .take()
        .expect("a built output has its staging directory");
    let mut expected: HashSet<PathBuf> = HashSet::new();
    let mut renames: Vec<(PathBuf, PathBuf)> = Vec::new();
    // The files found intact, for the next build: it then need not read them.
    let mut intact: Vec<(String, TreeRecord)> = Vec::new();
    // Final path -> SHA-256 of the tree files (and metadata files) written.
    let mut written: std::collections::HashMap<PathBuf, [u8; 32]> = Default::default();

    // Stage: everything new goes into the staging directory; nothing final changes yet.
    for package in &built.packages {
        let path = packages.join(&package.file_name);
        if let Some(temp) = &package.temp {
            renames.push((temp.clone(), path.clone()));
        }
        expected.insert(path);
    }
    for file in &plan.tree {
        let path = tree_root.join(&file.path);
        let bytes = match &file.content {
            Content::Bytes(bytes) => bytes.clone(),
            Content::Copy(source) => std::fs::read(source).with_path("read", source)?,
        };
        let relative = format!("{TREE}/{}", file.path);
        match holds(old, &relative, &path, &bytes) {
            Ok(record) => intact.push((relative, record)),
            Err(sha256) => {
                let temp = staging.path().join("tree").join(&file.path);
                write_new(&temp, &bytes)?;
                fault::point("stage")?;
                written.insert(path.clone(), sha256);
                renames.push((temp, path.clone()));
            }
        }
        expected.insert(path);
    }
    let (stale_files, stale_dirs) = stale(&tree_root, &expected)?;

    let sums: String = built
        .packages
        .iter()
        .map(|p| format!("{}  {TREE}/sw_packages/{}\n", p.sha256, p.file_name))
        .collect();
    let manifest = extension::json_file(DIST_MANIFEST_FILE, &dist_manifest(model, plan, &built))?;
    let Content::Bytes(manifest) = manifest.content else {
        unreachable!("json_file returns bytes")
    };
    let mut metadata = Vec::new();
    for (name, bytes) in [
        (DIST_MANIFEST_FILE, &manifest),
        (SUMS_FILE, &sums.into_bytes()),
    ] {
        let path = out_dir.join(name);
        match holds(old, name, &path, bytes) {
            Ok(record) => intact.push((name.to_string(), record)),
            Err(sha256) => {
                let temp = staging.path().join(name);
                write_new(&temp, bytes)?;
                written.insert(path.clone(), sha256);
                metadata.push((temp, path));
            }
        }
    }
    fault::point("staged")?;

    // Switch: unlinks and renames only. The fingerprint first, if anything is to change: until
    // the new one is written, the next run is a full build.
    if !(metadata.is_empty()
        && renames.is_empty()
        && stale_files.is_empty()
        && stale_dirs.is_empty())
    {
        fresh::remove(out_dir)?;
    }
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
    // What this build wrote, as it now is (a rename changes the ctime).
    for (_, path) in renames.iter().chain(&metadata) {
        if let Ok(relative) = path.strip_prefix(out_dir)
            && let Some(relative) = relative.to_str()
            && !relative.starts_with(&format!("{TREE}/sw_packages/"))
            && let Some(sha256) = written.get(path)
        {
            let stat =
                Stat::from_metadata(&std::fs::symlink_metadata(path).with_path("stat", path)?);
            intact.push((relative.to_string(), TreeRecord::new(&stat, *sha256)));
        }
    }

    // The cache last: it records the outputs as they now are on disk.
    let mut cache = Cache::default();
    for package in &built.packages {
        let path = packages.join(&package.file_name);
        let stat = Stat::from_metadata(&std::fs::symlink_metadata(&path).with_path("stat", &path)?);
        cache.outputs.insert(
            package.file_name.clone(),
            OutputRecord {
                settings: package.settings.clone(),
                source_digest: package
                    .source_digest
                    .clone()
                    .unwrap_or_else(|| package.sha256.clone()),
                sha256: package.sha256.clone(),
                size: package.size,
                mtime_ns: stat.mtime_ns,
                inode: stat.inode,
            },
        );
    }
    // The file records of `old`, updated in place; the listings moved, not copied: written
    // in key order without being sorted in memory.
    cache.files = old.updated_files(std::mem::take(&mut built.files));
    cache.dirs = std::mem::take(&mut built.dirs);
    cache.tree = intact.into_iter().collect();
    cache.read_records = old.read_records;
    let temp = staging.path().join(CACHE_FILE);
    let written = cache
        .write_if_changed(started_ns, || File::create_new(&temp))
        .with_path("write", &temp)?;
    if written {
        fault::point("metadata")?;
        let path = out_dir.join(CACHE_FILE);
        std::fs::rename(&temp, &path).with_path("rename into place", &path)?;
    }
    let summary = Summary {
        resources: model.resources.len(),
        packages: built.packages.len(),
        rebuilt: built.rebuilt,
        skipped: built.skipped,
        bytes: built.packages.iter().map(|p| p.size).sum(),
        source_bytes: built.source_bytes,
        out_dir: out_dir.to_path_buf(),
    };
    // The fingerprint last, of the output as it now is: the next run may stop at it.
    let mut outputs: Vec<PathBuf> = expected.into_iter().collect();
    outputs.extend([SUMS_FILE, DIST_MANIFEST_FILE].map(|name| out_dir.join(name)));
    // And the cache, so that a cache edited or removed by hand is rebuilt by the next run.
    let cache_path = out_dir.join(CACHE_FILE);
    if std::fs::symlink_metadata(&cache_path).is_ok() {
        outputs.push(cache_path);
    }
    let recorded = fresh::fingerprint(&fresh::Build {
        identity: fingerprint.identity,
        warnings: fingerprint.warnings,
        model,
        plan,
        files: &cache.files,
        dirs: &cache.dirs,
        complete: built.complete,
        outputs,
        summary: &summary,
        started_ns,
    });
    drop(cache);
    match recorded {
        Some(bytes) => fresh::write(out_dir, staging.path(), &bytes)?,
        None => fresh::remove(out_dir)?,
    }
    fault::point("cleanup")?;
    let staging_path = staging.path().to_path_buf();
    staging
        .dir
        .close()
        .with_path("remove the staging directory", &staging_path)?;
    Ok(summary)
}

/// Whether `path` (`relative` to the output directory) is a regular file holding exactly
/// `bytes`: then it is left alone, so a no-op build rewrites nothing, and the record returned
/// lets the next build know so from its stat alone (`Cache::tree_file`); else the SHA-256 of
/// `bytes`. The file is read and compared unless the cache's record of it says. A symlink
/// never counts: it is replaced.
fn holds(
    old: &Cache,
    relative: &str,
    path: &Path,
    bytes: &[u8],
) -> std::result::Result<TreeRecord, [u8; 32]> {
    let sha256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(bytes).into();
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Err(sha256);
    };
    if !metadata.is_file() || metadata.len() != bytes.len() as u64 {
        return Err(sha256);
    }
    // Taken before the file is read: a change after it shows in the next build's stat.
    let stat = Stat::from_metadata(&metadata);
    let same = old.tree_file(relative, &stat) == Some(sha256)
        || std::fs::read(path).is_ok_and(|existing| existing == bytes);
    if same {
        Ok(TreeRecord::new(&stat, sha256))
    } else {
        Err(sha256)
    }
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
    if [CACHE_FILE, DIST_MANIFEST_FILE]
        .iter()
        .any(|name| out_dir.join(name).is_file())
    {
        return true;
    }
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
/// anything else left there), and the directories that will be empty once they are gone,
/// deepest first. Symlinks are listed as files: removed, never followed.
fn stale(tree_root: &Path, expected: &HashSet<PathBuf>) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    // Directories that hold an expected file stay; the others are removed once emptied.
    let kept: HashSet<&Path> = expected
        .iter()
        .flat_map(|path| path.ancestors().skip(1))
        .collect();
    let mut files = Vec::new();
    let mut directories = Vec::new();
    if std::fs::symlink_metadata(tree_root).is_err() {
        return Ok((files, directories));
    }
    for entry in walkdir::WalkDir::new(tree_root)
        .min_depth(1)
        .contents_first(true)
    {
        let entry = entry.map_err(|e| Error::io("read", tree_root, e.into()))?;
        let path = entry.path();
        if entry.file_type().is_dir() {
            if !kept.contains(path) {
                directories.push(path.to_path_buf());
            }
        } else if !expected.contains(path) {
            files.push(path.to_path_buf());
        }
    }
    Ok((files, directories))
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
