//! `cargo xtask verify`: checks a built output directory against itself and against the current
//! sources, trusting nothing that a build recorded (every file is read and hashed):
//!
//! - every file of `sw_packages` has the SHA-256 that `SHA256SUMS` and `dist-manifest.json` give,
//!   and the size `dist-manifest.json` gives; each lists exactly the packages;
//! - every archive's recorded source digest is that of the current sources (else the resource is
//!   named as stale), and every file package equals its source;
//! - the extension tree holds exactly the files `dist` would write now, with the same bytes.
//!
//! It takes a shared lock on the output directory, so it waits for a `dist` that is writing it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::exclude::Excludes;
use crate::extension::Content;
use crate::hash::{self, to_hex};
use crate::inputs::Inputs;
use crate::output::{self, DIST_MANIFEST_FILE, SUMS_FILE, Wait};
use crate::plan::TREE;
use crate::{archive, check, plan, tree};

/// One way the output is not what it claims or should be.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// Relative to the output directory.
    pub path: String,
    pub problem: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub out_dir: PathBuf,
    /// Files of `sw_packages` read and hashed.
    pub packages: usize,
    /// Files of the extension tree compared, packages included.
    pub tree_files: usize,
    pub differences: Vec<Difference>,
}

pub fn verify(repo: &Path, out_dir: &Path, wait: Wait) -> Result<VerifyReport> {
    // Nothing is reused: every input is read.
    let inputs = Inputs::new();
    let checked = check::load(repo, &inputs)?;
    let plan = plan::make(&checked.model, repo, None, &inputs)?;
    if !out_dir.is_dir() {
        return Err(Error::new(
            Diagnostic::error(
                "no-output",
                format!("`{}` is not a directory", out_dir.display()),
            )
            .file(out_dir)
            .help("run `cargo xtask dist` first, or point `--out` at its output"),
        ));
    }
    let _lock = output::lock(out_dir, wait, false)?;
    let mut differences = BTreeSet::new();
    let mut differ = |path: &str, problem: String| {
        differences.insert(Difference {
            path: path.to_string(),
            problem,
        });
    };
    let packages_rel = format!("{TREE}/sw_packages");

    // What is on disk, hashed.
    let packages_dir = out_dir.join(&packages_rel);
    let mut actual: BTreeMap<String, (String, u64)> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(&packages_dir) {
        for entry in entries {
            let entry = entry.with_path("read", &packages_dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let size = entry.metadata().with_path("stat", &path)?.len();
                actual.insert(name, (to_hex(&hash::hash_file(&path)?), size));
            }
        }
    }

    // What dist would produce now: package names, their sources' digests, the tree.
    let mut expected: BTreeMap<String, (String, String)> = BTreeMap::new();
    for job in &plan.archives {
        let excludes = Excludes::for_package(&plan.repo, &job.dir, &job.exclude, &inputs)?;
        let scanned = tree::scan_excluding(&job.dir, &job.top, &excludes)?;
        let hashes = scanned
            .entries
            .iter()
            .map(|entry| match entry.kind {
                tree::EntryKind::File { .. } => hash::hash_file(&scanned.source(entry)).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let digest = to_hex(&hash::tree_digest(&scanned, &hashes));
        expected.insert(job.file_name.clone(), (job.key.to_string(), digest));
    }
    for job in &plan.files {
        let digest = to_hex(&hash::hash_file(&job.source)?);
        expected.insert(job.file_name.clone(), (job.key.to_string(), digest));
    }
    for name in expected.keys() {
        if !actual.contains_key(name) {
            differ(&format!("{packages_rel}/{name}"), "missing".to_string());
        }
    }
    for name in actual.keys() {
        if !expected.contains_key(name) {
            differ(
                &format!("{packages_rel}/{name}"),
                "not a package of the current manifests".to_string(),
            );
        }
    }

    // SHA256SUMS: one line per package, each hash that of the file beside it.
    match std::fs::read_to_string(out_dir.join(SUMS_FILE)) {
        Err(_) => differ(
            SUMS_FILE,
            "missing (a dist was interrupted?): run `cargo xtask dist`".to_string(),
        ),
        Ok(text) => {
            let mut listed = BTreeSet::new();
            for (number, line) in text.lines().enumerate() {
                let parsed = line.split_once("  ").and_then(|(sha, path)| {
                    Some((sha, path.strip_prefix(&format!("{packages_rel}/"))?))
                });
                let Some((sha, name)) = parsed else {
                    differ(
                        SUMS_FILE,
                        format!("line {} is not `SHA256  PATH`", number + 1),
                    );
                    continue;
                };
                listed.insert(name.to_string());
                match actual.get(name) {
                    None => differ(
                        SUMS_FILE,
                        format!("lists `{name}`, which is not in sw_packages"),
                    ),
                    Some((actual_sha, _)) if actual_sha != sha => differ(
                        &format!("{packages_rel}/{name}"),
                        format!("SHA-256 is {actual_sha}, SHA256SUMS says {sha}"),
                    ),
                    Some(_) => {}
                }
            }
            for name in actual.keys().filter(|name| !listed.contains(*name)) {
                differ(SUMS_FILE, format!("does not list `{name}`"));
            }
        }
    }

    // dist-manifest.json: hash, size and source digest of each package.
    let manifest_path = out_dir.join(DIST_MANIFEST_FILE);
    let manifest: Option<Value> = std::fs::read(&manifest_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match &manifest {
        None => differ(
            DIST_MANIFEST_FILE,
            "missing or not JSON (a dist was interrupted?): run `cargo xtask dist`".to_string(),
        ),
        Some(manifest) => {
            if manifest["archive_format"] != archive::ARCHIVE_FORMAT
                || manifest["deflate_backend"] != archive::DEFLATE_BACKEND
            {
                differ(
                    DIST_MANIFEST_FILE,
                    format!(
                        "built with archive format {} and {}, this xtask writes format {} with {}: run `cargo xtask dist`",
                        manifest["archive_format"],
                        manifest["deflate_backend"],
                        archive::ARCHIVE_FORMAT,
                        archive::DEFLATE_BACKEND
                    ),
                );
            }
            let recorded = manifest["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|resource| resource["packages"].as_array().into_iter().flatten())
                .filter_map(|package| Some((package["file"].as_str()?, package)));
            let mut listed = BTreeSet::new();
            for (name, package) in recorded {
                listed.insert(name.to_string());
                let path = format!("{packages_rel}/{name}");
                if let Some((sha, size)) = actual.get(name) {
                    if package["sha256"].as_str() != Some(sha) {
                        differ(
                            &path,
                            format!(
                                "SHA-256 is {sha}, {DIST_MANIFEST_FILE} says {}",
                                package["sha256"]
                            ),
                        );
                    }
                    if package["size"].as_u64() != Some(*size) {
                        differ(
                            &path,
                            format!(
                                "{size} bytes, {DIST_MANIFEST_FILE} says {}",
                                package["size"]
                            ),
                        );
                    }
                }
                let Some((key, digest)) = expected.get(name) else {
                    differ(
                        DIST_MANIFEST_FILE,
                        format!("lists `{name}`, which the current manifests do not define"),
                    );
                    continue;
                };
                // Archives record their source digest; a file package is its source's bytes.
                let recorded_digest = package["source_digest"]
                    .as_str()
                    .or(package["sha256"].as_str());
                if recorded_digest != Some(digest) {
                    differ(
                        &path,
                        format!(
                            "stale: `{key}` was built from other sources than the current ones: run `cargo xtask dist`"
                        ),
                    );
                }
            }
            for name in expected.keys().filter(|name| !listed.contains(*name)) {
                differ(DIST_MANIFEST_FILE, format!("does not list `{name}`"));
            }
        }
    }

    // The extension tree: exactly the files dist would write, with their bytes.
    let tree_root = out_dir.join(TREE);
    let mut wanted: BTreeSet<PathBuf> = expected
        .keys()
        .map(|name| tree_root.join("sw_packages").join(name))
        .collect();
    for file in &plan.tree {
        let path = tree_root.join(&file.path);
        let relative = format!("{TREE}/{}", file.path);
        wanted.insert(path.clone());
        let bytes = match &file.content {
            Content::Bytes(bytes) => bytes.clone(),
            Content::Copy(source) => std::fs::read(source).with_path("read", source)?,
        };
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() => {
                if std::fs::read(&path).with_path("read", &path)? != bytes {
                    differ(&relative, "differs from what dist writes now".to_string());
                }
            }
            Ok(_) => differ(&relative, "not a regular file".to_string()),
            Err(_) => differ(&relative, "missing".to_string()),
        }
    }
    let mut tree_files = 0;
    for entry in walkdir::WalkDir::new(&tree_root).min_depth(1) {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            continue;
        }
        tree_files += 1;
        if !wanted.contains(entry.path()) {
            let relative = entry
                .path()
                .strip_prefix(out_dir)
                .unwrap_or(entry.path())
                .to_string_lossy()
                .into_owned();
            differ(&relative, "not a file dist writes".to_string());
        }
    }
    if tree_files == 0 && !tree_root.is_dir() {
        differ(TREE, "missing".to_string());
    }

    Ok(VerifyReport {
        out_dir: out_dir.to_path_buf(),
        packages: actual.len(),
        tree_files,
        differences: differences.into_iter().collect(),
    })
}
