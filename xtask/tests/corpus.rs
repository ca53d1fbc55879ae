//! The bad-input corpus: every directory of `xtask/tests/bad_inputs/` is one case, a small change
//! to the fixture repository and the diagnostic it must produce. One test drives them all.
//!
//! A case directory holds:
//! - `case.toml`: `description`; `args` (default `["dist"]`); `empty = true` to start from an empty
//!   directory instead of the fixture; then the changes, applied in this order: `remove = [paths]`,
//!   `[[write]] path, content`, `[[symlink]] path, target`, `fifo = [paths]`, `mkdir = [paths]`.
//!   Paths are relative to the repository; `%XX` in a path is the byte XX (for names that are
//!   not UTF-8), `%%` a `%`.
//! - `files/` (optional): files copied over the repository before the changes.
//! - `expected.stderr`: what the run prints, with the repository's path written `$REPO`
//!   (`UPDATE_GOLDEN=1 cargo test corpus` rewrites it).
//!
//! Every case starts with a built output directory (`target/dist` of the fixture) and must exit
//! with 1, name a file (`-->`) and say what to do (`help:`), and leave every file of the
//! repository, the output directory included, byte-identical.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::support::{TempRepo, copy_tree, fixture_dir, repo_root, xtask_command};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    args: Option<Vec<String>>,
    #[serde(default)]
    empty: bool,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    write: Vec<Write>,
    #[serde(default)]
    symlink: Vec<Symlink>,
    #[serde(default)]
    fifo: Vec<String>,
    #[serde(default)]
    mkdir: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Write {
    path: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Symlink {
    path: String,
    target: String,
}

pub fn corpus_dir() -> PathBuf {
    repo_root().join("xtask/tests/bad_inputs")
}

/// `%XX` -> byte XX, `%%` -> `%`.
fn decode_path(text: &str) -> PathBuf {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            if bytes.get(index + 1) == Some(&b'%') {
                out.push(b'%');
                index += 2;
            } else {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                index += 3;
            }
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// What is on disk under `dir`: every path with its type and, for files, the bytes; for symlinks
/// the target. Special files are listed, never opened.
fn snapshot(dir: &Path) -> BTreeMap<Vec<u8>, (String, Vec<u8>)> {
    let mut entries = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(dir).unwrap();
        let file_type = entry.file_type();
        let what = if file_type.is_dir() {
            ("dir".to_string(), Vec::new())
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            ("symlink".to_string(), target.into_os_string().into_vec())
        } else if file_type.is_file() {
            ("file".to_string(), std::fs::read(entry.path()).unwrap())
        } else {
            ("special".to_string(), Vec::new())
        };
        entries.insert(relative.as_os_str().as_bytes().to_vec(), what);
    }
    entries
}

/// Applies a case to a fresh repository.
fn prepare(case_dir: &Path, case: &Case, built: &Path) -> TempRepo {
    let repo = TempRepo::empty();
    if !case.empty {
        copy_tree(&fixture_dir(), repo.path());
    }
    copy_tree(built, &repo.path().join("target/dist"));
    if case_dir.join("files").is_dir() {
        copy_tree(&case_dir.join("files"), repo.path());
    }
    for path in &case.remove {
        let path = repo.path().join(decode_path(path));
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    for write in &case.write {
        let path = repo.path().join(decode_path(&write.path));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &write.content).unwrap();
    }
    for link in &case.symlink {
        let path = repo.path().join(decode_path(&link.path));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path).unwrap();
        } else if path.symlink_metadata().is_ok() {
            std::fs::remove_file(&path).unwrap();
        }
        std::os::unix::fs::symlink(decode_path(&link.target), &path).unwrap();
    }
    for fifo in &case.fifo {
        let path = repo.path().join(decode_path(fifo));
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "mkfifo {}", path.display());
    }
    for dir in &case.mkdir {
        std::fs::create_dir_all(repo.path().join(decode_path(dir))).unwrap();
    }
    repo
}

/// Runs one case; returns what is wrong with it, if anything.
fn run_case(name: &str, case_dir: &Path, built: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(case_dir.join("case.toml"))
        .map_err(|error| format!("cannot read case.toml: {error}"))?;
    let case: Case = toml::from_str(&text).map_err(|error| format!("case.toml: {error}"))?;
    if case.description.trim().is_empty() {
        return Err("case.toml: describe the case".into());
    }
    let repo = prepare(case_dir, &case, built);
    let before = snapshot(repo.path());
    let args = case.args.clone().unwrap_or_else(|| vec!["dist".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = xtask_command(repo.path(), &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let real = repo.path().canonicalize().unwrap();
    let stderr = stderr
        .replace(&real.display().to_string(), "$REPO")
        .replace(&repo.path().display().to_string(), "$REPO");
    let mut problems = Vec::new();
    if output.status.code() != Some(1) {
        problems.push(format!("exit status {}, expected 1", output.status));
    }
    if !stderr.contains("--> ") {
        problems.push("no file named (`-->`)".into());
    }
    if !stderr.contains("\nhelp: ") {
        problems.push("no `help:`".into());
    }
    if stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    if snapshot(repo.path()) != before {
        problems.push("the repository or the output directory changed".into());
    }
    let golden = case_dir.join("expected.stderr");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &stderr).unwrap();
    } else {
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == stderr => {}
            Ok(expected) => problems.push(format!(
                "stderr differs from expected.stderr\n--- expected\n{expected}--- actual\n{stderr}"
            )),
            Err(_) => problems.push(format!("no expected.stderr; stderr was\n{stderr}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", problems.join("; ")))
    }
}

#[test]
fn corpus() {
    // One built output directory, copied into every case.
    let template = TempRepo::fixture();
    let run = template.xtask(&["dist"]);
    assert!(run.status.success(), "the fixture builds:\n{}", run.stderr);
    let built = template.path().join("target/dist");

    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // A few cases at a time: each spends most of its time waiting for the binary.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(name) = names.get(index) else { break };
                    if let Err(failure) = run_case(name, &corpus_dir().join(name), &built) {
                        failures.lock().unwrap().push(failure);
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(
        names.len() >= 45,
        "the corpus has {} cases, keep at least 45",
        names.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed (cases in xtask/tests/bad_inputs/):\n\n{}\n\nif a new diagnostic is intended, run `UPDATE_GOLDEN=1 cargo test corpus` and review the diff",
        failures.len(),
        names.len(),
        failures.join("\n\n")
    );
}
