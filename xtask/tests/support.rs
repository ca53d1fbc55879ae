//! Shared test support: temporary repositories, running the real `xtask` binary, golden files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository this test suite belongs to.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn fixture_dir() -> PathBuf {
    repo_root().join("xtask/tests/fixtures/repo")
}

/// A repository in a temporary directory, removed when dropped.
pub struct TempRepo {
    pub dir: tempfile::TempDir,
}

impl TempRepo {
    /// An empty repository.
    pub fn empty() -> TempRepo {
        TempRepo {
            dir: tempfile::Builder::new()
                .prefix("xtask-test-")
                .tempdir()
                .unwrap(),
        }
    }

    /// A copy of the fixture repository `xtask/tests/fixtures/repo`.
    pub fn fixture() -> TempRepo {
        let repo = TempRepo::empty();
        copy_tree(&fixture_dir(), repo.path());
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file, creating its directories.
    pub fn file(self, relative: &str, content: &str) -> TempRepo {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    pub fn remove(self, relative: &str) -> TempRepo {
        let path = self.path().join(relative);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
        self
    }

    pub fn xtask(&self, args: &[&str]) -> Run {
        Run::new(xtask_command(self.path(), args).output().unwrap())
    }
}

/// The real binary, run in `dir` with a clean, fixed environment.
pub fn xtask_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("SOURCE_DATE_EPOCH")
        .env("NO_COLOR", "1");
    command
}

/// Copies a directory tree, keeping symbolic links and permission bits.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(from).unwrap();
        let target = to.join(relative);
        let file_type = entry.file_type();
        if file_type.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else if file_type.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What a run of the binary did.
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(output: Output) -> Run {
        Run {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn expect_success(self) -> Run {
        assert!(
            self.status.success(),
            "expected success, got {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn expect_failure(self, code: i32) -> Run {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Compares `actual` with `xtask/tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites the file instead.
pub fn golden(name: &str, actual: &str) {
    let path = repo_root().join("xtask/tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("golden file {} is missing; run `UPDATE_GOLDEN=1 cargo test` to create it, then review it", path.display())
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(5)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .collect();
        panic!(
            "{} differs from the output ({} vs {} lines)\n{}\nif the change is intended, run `UPDATE_GOLDEN=1 cargo test` and review the diff",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// Every file under `dir` (relative path -> bytes), skipping the build cache and the fingerprint.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.file_name() != xtask::state::STATE_FILE)
        .map(|e| {
            (
                e.path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// One line per entry of a `.tgz`: type, mode, uid/gid, user/group names, mtime, size, path, link.
pub fn list_archive(bytes: &[u8]) -> String {
    let tar_bytes = xtask::deflate::gunzip(bytes).unwrap();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut lines = String::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Regular => '-',
            other => panic!("unexpected entry type {other:?}"),
        };
        let link = entry
            .link_name_bytes()
            .map(|l| format!(" -> {}", String::from_utf8_lossy(&l)))
            .unwrap_or_default();
        lines.push_str(&format!(
            "{kind} {:o} {}/{} '{}'/'{}' {} {:>6} {}{link}\n",
            header.mode().unwrap(),
            header.uid().unwrap(),
            header.gid().unwrap(),
            String::from_utf8_lossy(header.username_bytes().unwrap_or_default()),
            String::from_utf8_lossy(header.groupname_bytes().unwrap_or_default()),
            header.mtime().unwrap(),
            header.size().unwrap(),
            String::from_utf8_lossy(&entry.path_bytes()),
        ));
    }
    lines
}
