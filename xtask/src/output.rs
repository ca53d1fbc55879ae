//! The only code that writes to the output directory: renames built packages into place, writes
//! the extension tree's generated files (only those whose content changed), removes stale files,
//! and writes `SHA256SUMS`, `dist-manifest.json` and the build cache.
//!
//! Every file is written under a temporary name and renamed, so an interrupted run never leaves a
//! truncated file under a final name.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::archive;
use crate::build::{Built, TOOL, packages_dir, temp_path};
use crate::cache::{CACHE_FILE, Cache, OutputRecord};
use crate::error::{IoContext, Result};
use crate::extension::{self, Content};
use crate::model::{Driver, Kind, Model, PackageSource};
use crate::plan::{Plan, TREE};
use crate::tree::Stat;

pub const SUMS_FILE: &str = "SHA256SUMS";
pub const DIST_MANIFEST_FILE: &str = "dist-manifest.json";

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

/// `old` is the cache the build started from and `started_ns` when it started; the cache is
/// rewritten only when it changed.
pub fn commit(
    model: &Model,
    plan: &Plan,
    mut built: Built,
    out_dir: &Path,
    old: &Cache,
    started_ns: i128,
) -> Result<Summary> {
    let tree_root = out_dir.join(TREE);
    let mut cache = Cache::default();
    let mut expected: HashSet<PathBuf> = HashSet::new();

    let renamed = rename_packages(&built, &tree_root, &mut cache, &mut expected);
    if let Err(error) = renamed {
        built.discard();
        return Err(error);
    }
    for file in &plan.tree {
        let path = tree_root.join(&file.path);
        let bytes = match &file.content {
            Content::Bytes(bytes) => bytes.clone(),
            Content::Copy(source) => std::fs::read(source).with_path("read", source)?,
        };
        write_if_changed(&path, &bytes)?;
        expected.insert(path);
    }
    remove_stale(&tree_root, &expected)?;
    remove_temporaries(out_dir)?;

    let sums: String = built
        .packages
        .iter()
        .map(|p| format!("{}  {TREE}/sw_packages/{}\n", p.sha256, p.file_name))
        .collect();
    write_if_changed(&out_dir.join(SUMS_FILE), sums.as_bytes())?;
    let manifest = extension::json_file(DIST_MANIFEST_FILE, &dist_manifest(model, plan, &built))?;
    if let Content::Bytes(bytes) = manifest.content {
        write_if_changed(&out_dir.join(DIST_MANIFEST_FILE), &bytes)?;
    }

    cache.files = std::mem::take(&mut built.files).into_iter().collect();
    if cache.needs_write(old, started_ns) {
        write_atomically(&out_dir.join(CACHE_FILE), &cache.to_bytes(started_ns))?;
    }

    Ok(Summary {
        resources: model.resources.len(),
        packages: built.packages.len(),
        rebuilt: built.rebuilt,
        skipped: built.skipped,
        bytes: built.packages.iter().map(|p| p.size).sum(),
        source_bytes: built.source_bytes,
        out_dir: out_dir.to_path_buf(),
    })
}

fn rename_packages(
    built: &Built,
    tree_root: &Path,
    cache: &mut Cache,
    expected: &mut HashSet<PathBuf>,
) -> Result<()> {
    let dir = packages_dir(
        tree_root
            .parent()
            .expect("the tree is inside the output directory"),
    );
    for package in &built.packages {
        let path = dir.join(&package.file_name);
        if let Some(temp) = &package.temp {
            std::fs::rename(temp, &path).with_path("rename into place", &path)?;
        }
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
        expected.insert(path);
    }
    Ok(())
}

/// Refuses an output directory that holds a `datablox/` tree this tool did not write: stale-file
/// removal would otherwise delete files of, say, a legacy extension kept there.
pub fn check_out_dir(out_dir: &Path) -> Result<()> {
    let tree = out_dir.join(TREE);
    let ours = out_dir.join(CACHE_FILE).exists() || out_dir.join(DIST_MANIFEST_FILE).exists();
    let occupied = std::fs::read_dir(&tree).is_ok_and(|mut entries| entries.next().is_some());
    if occupied && !ours {
        return Err(crate::error::Error::new(
            crate::error::Diagnostic::error(
                "foreign-output",
                format!("`{}` holds a `{TREE}` directory that `cargo xtask dist` did not write", out_dir.display()),
            )
            .file(&tree)
            .help("choose another `--out` directory, or move that directory away: dist removes files it did not produce"),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` unless it already holds exactly them, so a no-op build rewrites nothing.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool> {
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(false);
    }
    write_atomically(path, bytes)?;
    Ok(true)
}

/// Writes to a temporary name beside `path` and renames it into place.
///
/// There is no fsync: it made a cold build wait on the disk for most of its time. A crash can
/// then leave a short file under a final name, but the next build compares every output with the
/// size, mtime and inode the cache recorded, and rebuilds it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_path("create", parent)?;
    }
    let temp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&temp).with_path("create", &temp)?;
        file.write_all(bytes).with_path("write", &temp)?;
        std::fs::rename(&temp, path).with_path("rename into place", path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Removes files of the tree that this build did not produce (a deleted block's archive and
/// driver, temporary files of an interrupted run), then the directories left empty.
fn remove_stale(tree_root: &Path, expected: &HashSet<PathBuf>) -> Result<()> {
    // Directories that hold an expected file stay; the others are removed once emptied.
    let kept: HashSet<&Path> = expected
        .iter()
        .flat_map(|path| path.ancestors().skip(1))
        .collect();
    let mut directories = Vec::new();
    for entry in walkdir::WalkDir::new(tree_root)
        .min_depth(1)
        .contents_first(true)
    {
        let entry = entry.map_err(|e| crate::error::Error::io("read", tree_root, e.into()))?;
        let path = entry.path();
        if entry.file_type().is_dir() {
            if !kept.contains(path) {
                directories.push(path.to_path_buf());
            }
        } else if !expected.contains(path) {
            std::fs::remove_file(path).with_path("remove the stale file", path)?;
        }
    }
    // Deepest first (walkdir lists contents first), so a parent is empty when its turn comes.
    for dir in directories {
        std::fs::remove_dir(&dir).with_path("remove the stale directory", &dir)?;
    }
    Ok(())
}

/// Removes temporary files an interrupted run left beside `SHA256SUMS` and the dist manifest.
fn remove_temporaries(out_dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out_dir).with_path("read", out_dir)? {
        let entry = entry.with_path("read", out_dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            && name.contains(".tmp")
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            std::fs::remove_file(entry.path()).with_path("remove the stale file", &entry.path())?;
        }
    }
    Ok(())
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
        "deflate_backend": archive::DEFLATE_BACKEND,
        "compression_level": plan.settings.level,
        "source_date_epoch": plan.settings.source_date_epoch,
        "mtime": plan.settings.mtime(),
        "extension": {"name": model.extension.name, "version": model.extension.version},
        "resources": resources,
    })
}
