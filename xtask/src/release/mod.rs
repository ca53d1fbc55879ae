//! `cargo xtask release`: one reproducible release of the extension, with its provenance.
//!
//! From a clean git work tree (`--allow-dirty` to override), with `SOURCE_DATE_EPOCH` from the
//! environment or the last commit, a `--no-cache` `dist` into a fresh directory, then, in the
//! output directory (replaced whole, by a rename, once everything is written):
//!
//! - `datablox-extension-<version>.tar.gz`: `datablox-extension-<version>/` holding the
//!   extension tree `datablox/`, its `SHA256SUMS` and `dist-manifest.json`, written by
//!   `archive::write_tgz` (every mtime `SOURCE_DATE_EPOCH`, owners 0, modes 0644/0755);
//! - `SHA256SUMS`: the archive's line, in `sha256sum` format (what a second build must match, and
//!   what `actions/attest-build-provenance` takes as `subject-checksums`);
//! - `datablox-extension-<version>.intoto.json`: an in-toto Statement v1 with a SLSA provenance
//!   v1 predicate (`statement`; docs/release.md describes every field);
//! - with `--sign-key`, `datablox-extension-<version>.intoto.jsonl`: that statement, byte for
//!   byte, in a DSSE envelope (`dsse`).
//!
//! The version is the extension's (`manifests/extension.toml`, as `dist-manifest.json` records
//! it); a `v*` tag must name it. `verify` checks a release directory.

pub mod dsse;
pub mod verify;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::hash::{hash_file, to_hex};
use crate::progress::Silent;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PROVENANCE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Our `buildType`: what `externalParameters` and `internalParameters` mean (docs/release.md).
pub const BUILD_TYPE: &str = "urn:datablox:build-type:xtask-release:v1";
/// The builder id of a release made outside CI.
pub const LOCAL_BUILDER: &str = "urn:datablox:builder:local";
/// The release files' names start with this, then the version.
pub const PREFIX: &str = "datablox-extension-";
pub const SUMS: &str = "SHA256SUMS";
/// The deflate level of the release archive (its members are mostly archives already).
const LEVEL: u32 = 9;

/// Options of `cargo xtask release`.
#[derive(Clone, Debug)]
pub struct ReleaseOptions {
    pub out_dir: PathBuf,
    pub sign_key: Option<PathBuf>,
    pub allow_dirty: bool,
    /// `--tag`; else the CI's tag (`GITHUB_REF_TYPE=tag`), else the `v*` tags of HEAD.
    pub tag: Option<String>,
    /// `SOURCE_DATE_EPOCH`; else the last commit's time.
    pub source_date_epoch: Option<u64>,
    pub jobs: usize,
}

/// What `release` wrote.
#[derive(Debug)]
pub struct Released {
    pub out_dir: PathBuf,
    pub version: String,
    /// The release files, by name, in the order written.
    pub files: Vec<String>,
    pub archive_sha256: String,
    pub subjects: usize,
    pub signed: bool,
    pub dirty: bool,
}

/// The release files of `version`.
pub struct Names {
    pub top: String,
    pub archive: String,
    pub statement: String,
    pub envelope: String,
}

impl Names {
    pub fn new(version: &str) -> Names {
        let top = format!("{PREFIX}{version}");
        Names {
            archive: format!("{top}.tar.gz"),
            statement: format!("{top}.intoto.json"),
            envelope: format!("{top}.intoto.jsonl"),
            top,
        }
    }
}

pub fn release(repo: &Path, options: &ReleaseOptions) -> Result<Released> {
    let started = SystemTime::now();
    let commit = git(repo, &["rev-parse", "--verify", "HEAD^{commit}"])?;
    let status = git(repo, &["status", "--porcelain", "--untracked-files=normal"])?;
    let dirty = !status.is_empty();
    if dirty && !options.allow_dirty {
        let shown: Vec<&str> = status.lines().take(5).collect();
        return Err(Error::new(
            Diagnostic::error(
                "dirty-work-tree",
                format!(
                    "the work tree has changes that are not committed:\n{}{}",
                    shown.join("\n"),
                    if status.lines().count() > 5 { "\n..." } else { "" }
                ),
            )
            .file(repo)
            .help("commit or stash them (a release is built from a commit), or pass --allow-dirty (the statement then records a dirty tree)"),
        ));
    }
    let source_date_epoch = match options.source_date_epoch {
        Some(seconds) => seconds,
        None => {
            let text = git(repo, &["log", "-1", "--format=%ct"])?;
            crate::parse_source_date_epoch(Some(&text))?.unwrap_or(0)
        }
    };
    let tags = match &options.tag {
        Some(tag) => vec![tag.clone()],
        None => ci_tag().map_or_else(
            || {
                git(repo, &["tag", "--points-at", "HEAD", "--list", "v*"])
                    .map(|text| text.lines().map(str::to_string).collect())
            },
            |tag| Ok(vec![tag]),
        )?,
    };

    let parent = options
        .out_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_path("create", parent)?;
    let stage = tempfile::Builder::new()
        .prefix(".release-tmp-")
        .tempdir_in(parent)
        .with_path("create a directory in", parent)?;
    let build_dir = stage.path().join(".build");
    let dist_options = crate::DistOptions {
        out_dir: Some(build_dir.clone()),
        jobs: options.jobs,
        use_cache: false,
        source_date_epoch: Some(source_date_epoch),
        wait: crate::output::Wait::Refuse,
    };
    crate::dist(repo, &dist_options, &Silent)?;
    let manifest_path = build_dir.join("dist-manifest.json");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).with_path("read", &manifest_path)?)
            .map_err(|e| Error::io("parse", &manifest_path, std::io::Error::other(e)))?;
    let version = manifest["extension"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if version.is_empty() || version.contains(['/', '\\']) || version.starts_with('.') {
        return Err(Error::new(
            Diagnostic::error(
                "release-version",
                format!("the extension version `{version}` cannot name release files"),
            )
            .file(
                repo.join("manifests")
                    .join(crate::manifest::EXTENSION_MANIFEST),
            )
            .help("give `[extension] version` a plain version such as `1.0`"),
        ));
    }
    let tag = check_tags(&tags, &version, repo)?;
    let names = Names::new(&version);

    // The archive's tree: datablox-extension-<version>/{datablox/, SHA256SUMS, dist-manifest.json}.
    let tree_dir = stage.path().join(&names.top);
    std::fs::create_dir(&tree_dir).with_path("create", &tree_dir)?;
    for name in [crate::plan::TREE, SUMS, "dist-manifest.json"] {
        let (from, to) = (build_dir.join(name), tree_dir.join(name));
        std::fs::rename(&from, &to).with_path("move", &from)?;
    }
    let tree = crate::tree::scan(&tree_dir, &names.top)?;
    let archive_path = stage.path().join(&names.archive);
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&archive_path).with_path("create", &archive_path)?,
    );
    let settings = crate::archive::ArchiveSettings {
        mtime: source_date_epoch,
        level: LEVEL,
    };
    let report = crate::archive::write_tgz(&tree, &settings, &mut file)?;
    let file = file
        .into_inner()
        .map_err(|e| Error::io("write", &archive_path, e.into_error()))?;
    file.sync_all().with_path("write", &archive_path)?;
    let archive_sha256 = to_hex(&hash_file(&archive_path)?);

    let packages_prefix = format!("{}/{}/sw_packages/", names.top, crate::plan::TREE);
    let mut subjects = vec![(names.archive.clone(), archive_sha256.clone())];
    for (entry, hash) in tree.entries.iter().zip(&report.file_hashes) {
        let path = String::from_utf8_lossy(&entry.path);
        if let (Some(hash), true) = (hash, path.starts_with(&packages_prefix)) {
            subjects.push((path.into_owned(), to_hex(hash)));
        }
    }
    std::fs::remove_dir_all(&tree_dir).with_path("remove", &tree_dir)?;
    std::fs::remove_dir_all(&build_dir).with_path("remove", &build_dir)?;

    let mut files = vec![names.archive.clone()];
    let mut write = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = stage.path().join(name);
        std::fs::write(&path, bytes).with_path("write", &path)?;
        files.push(name.to_string());
        Ok(())
    };
    write(
        SUMS,
        format!("{archive_sha256}  {}\n", names.archive).as_bytes(),
    )?;
    let provenance = Provenance {
        repo,
        commit: &commit,
        tag: tag.as_deref(),
        source_date_epoch,
        dirty,
        started,
    };
    let statement = statement(&subjects, &provenance)?;
    let mut statement = serde_json::to_string_pretty(&statement).expect("a statement serializes");
    statement.push('\n');
    write(&names.statement, statement.as_bytes())?;
    if let Some(key_path) = &options.sign_key {
        let key = dsse::read_signing_key(key_path)?;
        let line = dsse::sign(statement.as_bytes(), &key) + "\n";
        write(&names.envelope, line.as_bytes())?;
    }
    replace_out_dir(stage, &options.out_dir)?;
    Ok(Released {
        out_dir: options.out_dir.clone(),
        version,
        files,
        archive_sha256,
        subjects: subjects.len(),
        signed: options.sign_key.is_some(),
        dirty,
    })
}

/// The tag of a CI run started by a tag (GitHub Actions' variables).
fn ci_tag() -> Option<String> {
    let is_tag = std::env::var("GITHUB_REF_TYPE").is_ok_and(|kind| kind == "tag");
    is_tag
        .then(|| std::env::var("GITHUB_REF_NAME").ok())
        .flatten()
        .filter(|name| !name.is_empty())
}

/// The release's tag: every `v*` tag given must be `v<version>`.
fn check_tags(tags: &[String], version: &str, repo: &Path) -> Result<Option<String>> {
    let expected = format!("v{version}");
    for tag in tags {
        if *tag != expected {
            return Err(Error::new(
                Diagnostic::error(
                    "tag-version",
                    format!(
                        "the tag `{tag}` does not name the extension's version {version} (the release tag is `{expected}`)"
                    ),
                )
                .file(repo.join("manifests").join(crate::manifest::EXTENSION_MANIFEST))
                .help(format!(
                    "set `[extension] version` to the version the tag names and commit it, or tag the commit `{expected}`"
                )),
            ));
        }
    }
    Ok(tags.first().cloned())
}

/// Moves the staged release to `out`: an absent or empty directory, or a previous release.
fn replace_out_dir(stage: tempfile::TempDir, out: &Path) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(out) {
        for entry in entries {
            let name = entry.with_path("read", out)?.file_name();
            let name = name.to_string_lossy();
            if name != SUMS && !name.starts_with(PREFIX) {
                return Err(Error::new(
                    Diagnostic::error(
                        "release-out-dir",
                        format!(
                            "`{}` holds `{name}`, which is not a release file",
                            out.display()
                        ),
                    )
                    .file(out)
                    .help("give --out a new or empty directory, or the directory of an earlier release (it is replaced)"),
                ));
            }
        }
        std::fs::remove_dir_all(out).with_path("remove", out)?;
    }
    use std::os::unix::fs::PermissionsExt;
    let staged = stage.keep();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
        .with_path("change the mode of", &staged)?;
    std::fs::rename(&staged, out).with_path("rename to", out)
}

/// What the statement records about the build, besides its subjects.
struct Provenance<'a> {
    repo: &'a Path,
    commit: &'a str,
    tag: Option<&'a str>,
    source_date_epoch: u64,
    dirty: bool,
    started: SystemTime,
}

/// The in-toto Statement v1 with its SLSA provenance v1 predicate.
fn statement(subjects: &[(String, String)], provenance: &Provenance) -> Result<Value> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let github = env("GITHUB_SERVER_URL").zip(env("GITHUB_REPOSITORY"));
    let repository = match &github {
        Some((server, repository)) => Some(format!("{server}/{repository}")),
        // A path is no identity outside this machine (and differs between clones).
        None => git(provenance.repo, &["remote", "get-url", "origin"])
            .ok()
            .filter(|url| url.contains("://") || url.contains('@'))
            .filter(|url| !url.starts_with("file:")),
    };
    let mut external = serde_json::Map::new();
    if let Some(repository) = &repository {
        external.insert("repository".into(), json!(repository));
    }
    external.insert("commit".into(), json!(provenance.commit));
    if let Some(tag) = provenance.tag {
        external.insert("tag".into(), json!(tag));
    }
    external.insert(
        "sourceDateEpoch".into(),
        json!(provenance.source_date_epoch),
    );
    let mut source = serde_json::Map::new();
    if let Some(repository) = &repository {
        let reference = provenance
            .tag
            .map_or_else(String::new, |tag| format!("@refs/tags/{tag}"));
        source.insert("uri".into(), json!(format!("git+{repository}{reference}")));
    } else {
        source.insert("name".into(), json!("source"));
    }
    source.insert("digest".into(), json!({ "gitCommit": provenance.commit }));
    let lock = provenance.repo.join("Cargo.lock");
    let mut dependencies = vec![Value::Object(source)];
    if lock.is_file() {
        dependencies.push(json!({
            "name": "Cargo.lock",
            "digest": { "sha256": to_hex(&hash_file(&lock)?) },
        }));
    }
    dependencies.push(rust_toolchain()?);
    let mut build_definition = json!({
        "buildType": BUILD_TYPE,
        "externalParameters": external,
    });
    if provenance.dirty {
        build_definition["internalParameters"] = json!({ "dirtyWorkTree": true });
    }
    build_definition["resolvedDependencies"] = json!(dependencies);

    let builder = env("GITHUB_SERVER_URL")
        .zip(env("GITHUB_WORKFLOW_REF"))
        .map_or_else(
            || LOCAL_BUILDER.to_string(),
            |(server, workflow)| format!("{server}/{workflow}"),
        );
    let mut run_details = json!({ "builder": { "id": builder } });
    if let (Some((server, repository)), Some(run)) = (&github, env("GITHUB_RUN_ID")) {
        let attempt = env("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into());
        let mut metadata = json!({
            "invocationId": format!("{server}/{repository}/actions/runs/{run}/attempts/{attempt}"),
        });
        // Times only from a CI run: a release made elsewhere stays byte-reproducible.
        if env("GITHUB_ACTIONS").as_deref() == Some("true") {
            metadata["startedOn"] = json!(rfc3339(provenance.started));
            metadata["finishedOn"] = json!(rfc3339(SystemTime::now()));
        }
        run_details["metadata"] = metadata;
    }
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(name, sha256)| json!({ "name": name, "digest": { "sha256": sha256 } }))
        .collect();
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PROVENANCE_TYPE,
        "predicate": {
            "buildDefinition": build_definition,
            "runDetails": run_details,
        },
    }))
}

/// The Rust toolchain on PATH (`$RUSTC`, else `rustc`), as `rustc -vV` describes it.
fn rust_toolchain() -> Result<Value> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(&rustc)
        .arg("-vV")
        .output()
        .map_err(|e| Error::io("run", Path::new(&rustc), e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .filter(|value| !value.is_empty() && *value != "unknown")
    };
    let release = field("release:").unwrap_or("unknown");
    let mut toolchain = json!({
        "name": "rustc",
        "uri": format!("pkg:generic/rustc@{release}"),
        "annotations": { "version": text.lines().next().unwrap_or("").trim() },
    });
    if let Some(commit) = field("commit-hash:") {
        toolchain["digest"] = json!({ "gitCommit": commit });
    }
    Ok(toolchain)
}

/// Runs `git -C repo args...`; its trimmed standard output.
pub fn git(repo: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| {
            Error::new(
                Diagnostic::error("git", format!("cannot run `git`: {e}"))
                    .help("a release is made from a git checkout: install git"),
            )
        })?;
    if !output.status.success() {
        return Err(Error::new(
            Diagnostic::error(
                "git",
                format!(
                    "`git {}` failed in `{}`: {}",
                    args.join(" "),
                    repo.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            )
            .file(repo)
            .help("a release is made from a git checkout with at least one commit"),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// RFC 3339 in UTC, whole seconds: `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_dates() {
        let at = |s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_825_600)), "2000-02-29T12:00:00Z");
        assert_eq!(rfc3339(at(1_796_676_307)), "2026-12-07T20:45:07Z");
    }

    #[test]
    fn pae_is_the_dsse_encoding() {
        assert_eq!(
            dsse::pae("application/example", b"hello world"),
            b"DSSEv1 19 application/example 11 hello world".to_vec()
        );
    }
}
