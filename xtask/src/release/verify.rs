//! `cargo xtask verify-release DIR [--key PUB] [--rebuild]`: checks a release directory as
//! `release` writes it, offline, collecting every problem:
//!
//! 1. every line of `SHA256SUMS` against its file; exactly one `datablox-extension-*.tar.gz`;
//! 2. the archive: one top directory named after it, its `SHA256SUMS` against its
//!    `sw_packages` members, `dist-manifest.json`'s extension version against the name;
//! 3. the statement: types, and its subjects against the archive and every `sw_packages`
//!    member (missing, extra, different); a recorded tag must name the version;
//! 4. the envelope (`.intoto.jsonl`): its payload must be the statement, byte for byte; with
//!    `--key`, one of its signatures must verify with that key (required then);
//! 5. with `--rebuild`, when all that holds: the recorded commit, cloned from the repository
//!    around the current directory, released again by this xtask with the recorded tag and
//!    `SOURCE_DATE_EPOCH`; the archives must be equal byte for byte, else the first differing
//!    member is named (and inside it, when it is an archive, its first differing member), and
//!    `diffoscope`'s report is added when `diffoscope` is on PATH.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Names, PREFIX, SUMS, dsse};
use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::hash::{hash_file, to_hex};

#[derive(Clone, Debug)]
pub struct VerifyReleaseOptions {
    pub dir: PathBuf,
    pub key: Option<PathBuf>,
    /// The repository to rebuild from (`--rebuild`), else no rebuild.
    pub rebuild: Option<PathBuf>,
    pub jobs: usize,
}

/// What was checked and what differs.
#[derive(Debug, Default)]
pub struct ReleaseReport {
    pub version: String,
    pub subjects: usize,
    /// Whether a signature was verified with `--key`.
    pub signature_verified: bool,
    pub rebuilt: bool,
    pub problems: Vec<Diagnostic>,
    /// `diffoscope`'s report of a rebuild that differs, when it is installed.
    pub diffoscope: Option<String>,
}

pub fn verify_release(options: &VerifyReleaseOptions) -> Result<ReleaseReport> {
    let dir = &options.dir;
    let mut report = ReleaseReport::default();
    let sums_path = dir.join(SUMS);
    let sums_text = std::fs::read_to_string(&sums_path).with_path("read", &sums_path)?;
    let sums = parse_sums(&sums_text, &sums_path)?;
    let problem = |report: &mut ReleaseReport, path: &Path, message: String, help: &str| {
        report.problems.push(
            Diagnostic::error("release-mismatch", message)
                .file(path)
                .help(help),
        );
    };
    let archives: Vec<&String> = sums
        .keys()
        .filter(|name| name.starts_with(PREFIX) && name.ends_with(".tar.gz"))
        .collect();
    let [archive_name] = archives[..] else {
        return Err(Error::new(
            Diagnostic::error(
                "release-layout",
                format!(
                    "`{}` lists {} release archives (`{PREFIX}<version>.tar.gz`), not one",
                    sums_path.display(),
                    archives.len()
                ),
            )
            .file(&sums_path)
            .help("give the directory `cargo xtask release` wrote, as it wrote it"),
        ));
    };
    let version = archive_name[PREFIX.len()..archive_name.len() - ".tar.gz".len()].to_string();
    let names = Names::new(&version);
    report.version = version.clone();
    for (name, expected) in &sums {
        let path = dir.join(name);
        match hash_file(&path) {
            Ok(actual) if to_hex(&actual) == *expected => {}
            Ok(actual) => problem(
                &mut report,
                &path,
                format!(
                    "`{name}`: its SHA-256 is {} but SHA256SUMS says {expected}",
                    to_hex(&actual)
                ),
                "the file was changed or damaged after the release: download it again",
            ),
            Err(_) => problem(
                &mut report,
                &path,
                format!("`{name}` is listed in SHA256SUMS but cannot be read"),
                "download every file of the release",
            ),
        }
    }
    let archive_path = dir.join(&names.archive);
    let archive_bytes = std::fs::read(&archive_path).with_path("read", &archive_path)?;
    let archive_sha256 = hex_of(&archive_bytes);

    // The archive's members.
    let members = match members(&archive_bytes) {
        Ok(members) => members,
        Err(why) => {
            problem(
                &mut report,
                &archive_path,
                format!(
                    "`{}` is not a readable release archive: {why}",
                    names.archive
                ),
                "download it again, or make the release again",
            );
            return Ok(report);
        }
    };
    let top_prefix = format!("{}/", names.top);
    if let Some(outside) = members
        .keys()
        .find(|name| !name.starts_with(&top_prefix) && name.trim_end_matches('/') != names.top)
    {
        problem(
            &mut report,
            &archive_path,
            format!("member `{outside}` lies outside `{}/`", names.top),
            "a release archive holds one directory named after it",
        );
    }
    let packages_prefix = format!("{top_prefix}{}/sw_packages/", crate::plan::TREE);
    let packages: BTreeMap<String, String> = members
        .iter()
        .filter(|(name, member)| name.starts_with(&packages_prefix) && member.is_some())
        .map(|(name, member)| (name.clone(), hex_of(member.as_deref().unwrap_or_default())))
        .collect();
    let member_text = |name: &str| {
        members
            .get(&format!("{top_prefix}{name}"))
            .and_then(|bytes| bytes.as_deref())
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
    };
    match member_text(SUMS).map(|text| parse_sums(&text, Path::new(SUMS))) {
        Some(Ok(inner)) => {
            for (name, expected) in &inner {
                let member = format!("{top_prefix}{name}");
                match packages.get(&member) {
                    Some(actual) if actual == expected => {}
                    Some(actual) => problem(
                        &mut report,
                        &archive_path,
                        format!(
                            "member `{member}`: its SHA-256 is {actual} but the archive's SHA256SUMS says {expected}"
                        ),
                        "the archive was made by something else than `cargo xtask release`",
                    ),
                    None => problem(
                        &mut report,
                        &archive_path,
                        format!("the archive's SHA256SUMS lists `{name}`, which it does not hold"),
                        "the archive was made by something else than `cargo xtask release`",
                    ),
                }
            }
            for member in packages.keys() {
                if !inner.contains_key(&member[top_prefix.len()..]) {
                    problem(
                        &mut report,
                        &archive_path,
                        format!("member `{member}` has no line in the archive's SHA256SUMS"),
                        "the archive was made by something else than `cargo xtask release`",
                    );
                }
            }
        }
        _ => problem(
            &mut report,
            &archive_path,
            format!("the archive has no readable `{top_prefix}{SUMS}`"),
            "the archive was made by something else than `cargo xtask release`",
        ),
    }
    let manifest_version = member_text("dist-manifest.json")
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|manifest| {
            manifest["extension"]["version"]
                .as_str()
                .map(str::to_string)
        });
    if manifest_version.as_deref() != Some(version.as_str()) {
        problem(
            &mut report,
            &archive_path,
            format!(
                "the archive's dist-manifest.json names extension version {}, its file name {version}",
                manifest_version.as_deref().unwrap_or("(none)")
            ),
            "the archive was renamed or made by something else than `cargo xtask release`",
        );
    }

    // The statement.
    let statement_path = dir.join(&names.statement);
    let statement_bytes = std::fs::read(&statement_path).with_path("read", &statement_path)?;
    let statement: serde_json::Value = match serde_json::from_slice(&statement_bytes) {
        Ok(value) => value,
        Err(error) => {
            problem(
                &mut report,
                &statement_path,
                format!("`{}` is not JSON: {error}", names.statement),
                "download it again",
            );
            return Ok(report);
        }
    };
    let statement_help = "the statement was changed after the release, or is another release's";
    for (field, expected) in [
        ("/_type", super::STATEMENT_TYPE),
        ("/predicateType", super::PROVENANCE_TYPE),
        ("/predicate/buildDefinition/buildType", super::BUILD_TYPE),
    ] {
        let actual = statement.pointer(field).and_then(|v| v.as_str());
        if actual != Some(expected) {
            problem(
                &mut report,
                &statement_path,
                format!(
                    "the statement's `{}` is {}, not `{expected}`",
                    &field[1..],
                    actual.map_or("missing".to_string(), |a| format!("`{a}`"))
                ),
                statement_help,
            );
        }
    }
    let mut expected = packages.clone();
    expected.insert(names.archive.clone(), archive_sha256);
    let mut listed = BTreeMap::new();
    for subject in statement["subject"].as_array().into_iter().flatten() {
        let name = subject["name"].as_str().unwrap_or_default().to_string();
        let sha256 = subject["digest"]["sha256"].as_str().unwrap_or_default();
        listed.insert(name, sha256.to_string());
    }
    report.subjects = listed.len();
    for (name, digest) in &expected {
        match listed.get(name) {
            Some(said) if said == digest => {}
            Some(said) => problem(
                &mut report,
                &statement_path,
                format!(
                    "subject `{name}`: the statement says sha256 {said}, the file's is {digest}"
                ),
                statement_help,
            ),
            None => problem(
                &mut report,
                &statement_path,
                format!("the statement has no subject `{name}`"),
                statement_help,
            ),
        }
    }
    for name in listed.keys().filter(|name| !expected.contains_key(*name)) {
        problem(
            &mut report,
            &statement_path,
            format!("the statement's subject `{name}` is not in the release"),
            statement_help,
        );
    }
    let external = &statement["predicate"]["buildDefinition"]["externalParameters"];
    if let Some(tag) = external.get("tag") {
        let wanted = format!("v{version}");
        if tag.as_str() != Some(wanted.as_str()) {
            problem(
                &mut report,
                &statement_path,
                format!(
                    "the statement's tag {tag} does not name the release's version {version} (its tag is `{wanted}`)"
                ),
                statement_help,
            );
        }
    }

    // The envelope.
    let envelope_path = dir.join(&names.envelope);
    let key = match &options.key {
        Some(path) => Some((path, dsse::read_verifying_key(path)?)),
        None => None,
    };
    match std::fs::read_to_string(&envelope_path) {
        Ok(text) => {
            let mut verified = false;
            for (index, line) in text.lines().enumerate() {
                let at = format!("{}:{}", names.envelope, index + 1);
                let envelope = match dsse::parse(line) {
                    Ok(envelope) => envelope,
                    Err(why) => {
                        problem(
                            &mut report,
                            &envelope_path,
                            format!("{at}: not a DSSE envelope: {why}"),
                            "download it again",
                        );
                        continue;
                    }
                };
                if envelope.payload_type != dsse::PAYLOAD_TYPE {
                    problem(
                        &mut report,
                        &envelope_path,
                        format!(
                            "{at}: payloadType is `{}`, not `{}`",
                            envelope.payload_type,
                            dsse::PAYLOAD_TYPE
                        ),
                        "download it again",
                    );
                }
                if envelope.payload != statement_bytes {
                    problem(
                        &mut report,
                        &envelope_path,
                        format!(
                            "{at}: the signed payload is not `{}` as it is in the release",
                            names.statement
                        ),
                        statement_help,
                    );
                }
                if let Some((path, key)) = &key {
                    if dsse::verified_by(&envelope, key) {
                        verified = true;
                    } else {
                        let keyids: Vec<&str> = envelope
                            .signatures
                            .iter()
                            .map(|(id, _)| id.as_str())
                            .collect();
                        problem(
                            &mut report,
                            &envelope_path,
                            format!(
                                "{at}: no signature verifies with `{}` (key id {}; the envelope's: {})",
                                path.display(),
                                dsse::keyid(key),
                                if keyids.is_empty() {
                                    "none".to_string()
                                } else {
                                    keyids.join(", ")
                                }
                            ),
                            "a wrong key, or an envelope changed after signing: check that the key is the release's",
                        );
                    }
                }
            }
            report.signature_verified = verified;
        }
        Err(_) if key.is_some() => problem(
            &mut report,
            &envelope_path,
            format!(
                "no signed statement `{}` to check --key against",
                names.envelope
            ),
            "the release was not signed (`cargo xtask release --sign-key`), or the file is missing",
        ),
        Err(_) => {}
    }

    if let Some(repo) = options
        .rebuild
        .as_ref()
        .filter(|_| report.problems.is_empty())
    {
        rebuild(
            repo,
            options,
            &statement,
            &names,
            &archive_bytes,
            &mut report,
        )?;
    }
    Ok(report)
}

/// `hex  name` lines, as `sha256sum` writes them.
fn parse_sums(text: &str, path: &Path) -> Result<BTreeMap<String, String>> {
    let mut sums = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let parsed = line.split_once("  ").filter(|(hex, name)| {
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty()
        });
        let Some((hex, name)) = parsed else {
            return Err(Error::new(
                Diagnostic::error(
                    "release-layout",
                    format!("{}:{}: not a `sha256sum` line", path.display(), index + 1),
                )
                .file(path)
                .help("each line is 64 hex digits, two spaces, a file name"),
            ));
        };
        sums.insert(name.to_string(), hex.to_ascii_lowercase());
    }
    Ok(sums)
}

fn hex_of(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes).into())
}

/// A member's name and, for a file, its content.
type Member = (String, Option<Vec<u8>>);

/// Every member of a `.tar.gz`, in order: name -> content (`None` for what is not a file).
fn members(bytes: &[u8]) -> std::result::Result<BTreeMap<String, Option<Vec<u8>>>, String> {
    let mut list = BTreeMap::new();
    for (name, content) in ordered_members(bytes)? {
        list.insert(name, content);
    }
    Ok(list)
}

fn ordered_members(bytes: &[u8]) -> std::result::Result<Vec<Member>, String> {
    let tar_bytes = crate::deflate::gunzip(bytes).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut list = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let content = if entry.header().entry_type().is_file() {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(|e| e.to_string())?;
            Some(content)
        } else {
            None
        };
        list.push((name, content));
    }
    Ok(list)
}

/// Where two `.tar.gz` differ: the first `.tgz` member that differs, and inside it its first
/// differing member; else (the `.tgz` members all equal) the first differing member.
fn first_difference(ours: &[u8], theirs: &[u8]) -> String {
    let (Ok(ours), Ok(theirs)) = (ordered_members(ours), ordered_members(theirs)) else {
        return "(one of them cannot be read as a gzipped tar archive)".to_string();
    };
    let mut first = None;
    for index in 0..ours.len().max(theirs.len()) {
        let difference = match (ours.get(index), theirs.get(index)) {
            (Some(a), Some(b)) if a == b => continue,
            (Some((name, a)), Some((other, b))) if name == other => {
                if let (Some(a), Some(b), true) = (a, b, name.ends_with(".tgz")) {
                    return format!("member `{name}`, at its {}", first_difference(a, b));
                }
                format!("member `{name}`")
            }
            (Some((name, _)), Some((other, _))) => {
                format!("member {} (`{name}` here, `{other}` rebuilt)", index + 1)
            }
            (Some((name, _)), None) => format!("member `{name}`, missing when rebuilt"),
            (None, Some((name, _))) => format!("member `{name}`, only in the rebuild"),
            (None, None) => continue,
        };
        first.get_or_insert(difference);
    }
    first.unwrap_or_else(|| "the gzip framing (every member is equal)".to_string())
}

fn rebuild(
    repo: &Path,
    options: &VerifyReleaseOptions,
    statement: &serde_json::Value,
    names: &Names,
    archive_bytes: &[u8],
    report: &mut ReleaseReport,
) -> Result<()> {
    let external = &statement["predicate"]["buildDefinition"]["externalParameters"];
    let statement_path = options.dir.join(&names.statement);
    let Some(commit) = external["commit"].as_str() else {
        return Err(Error::new(
            Diagnostic::error(
                "release-rebuild",
                "the statement records no commit to rebuild",
            )
            .file(&statement_path)
            .help("only a release `cargo xtask release` made can be rebuilt"),
        ));
    };
    let scratch = tempfile::Builder::new()
        .prefix("datablox-rebuild-")
        .tempdir()
        .with_path("create", &std::env::temp_dir())?;
    let source = scratch.path().join("source");
    let source_text = source.display().to_string();
    super::git(
        repo,
        &[
            "clone",
            "--quiet",
            "--shared",
            "--no-checkout",
            ".",
            &source_text,
        ],
    )?;
    super::git(&source, &["checkout", "--quiet", "--detach", commit]).map_err(|mut error| {
        error.diagnostics[0] = error.diagnostics[0].clone().help(format!(
            "the commit {commit} the statement records must be in `{}`: fetch it (and its tags) first",
            repo.display()
        ));
        error
    })?;
    let release_options = super::ReleaseOptions {
        out_dir: scratch.path().join("out"),
        sign_key: None,
        allow_dirty: false,
        tag: external["tag"].as_str().map(str::to_string),
        source_date_epoch: external["sourceDateEpoch"].as_u64(),
        jobs: options.jobs,
    };
    super::release(&source, &release_options)?;
    let rebuilt_path = release_options.out_dir.join(&names.archive);
    let rebuilt = std::fs::read(&rebuilt_path).with_path("read", &rebuilt_path)?;
    report.rebuilt = true;
    if rebuilt != archive_bytes {
        let archive_path = options.dir.join(&names.archive);
        report.problems.push(
            Diagnostic::error(
                "release-rebuild",
                format!(
                    "rebuilt from commit {commit}, `{}` differs: first at {}",
                    names.archive,
                    first_difference(archive_bytes, &rebuilt)
                ),
            )
            .file(&archive_path)
            .help("the release is not what its commit builds: a changed archive, or a build that is not reproducible"),
        );
        let diffoscope = std::process::Command::new("diffoscope")
            .arg(&archive_path)
            .arg(&rebuilt_path)
            .output();
        if let Ok(output) = diffoscope {
            report.diffoscope = Some(String::from_utf8_lossy(&output.stdout).into_owned());
        }
    }
    Ok(())
}
