//! `dist` killed with SIGKILL at known points of a first build and of a rebuild (the test-only
//! hook `XTASK_CRASH_AT=<point>:<n>`, see `xtask/src/fault.rs`): after each kill no file under a
//! final name is partial (each is the old build's or the new build's), `SHA256SUMS` and
//! `dist-manifest.json`, when present, verify what sits beside them, and the next run repairs
//! the directory into output byte-identical to a clean build, which `verify` accepts.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;

use crate::incremental::{Repo, contents, set_mtime};

/// Points of a first build, spread over it: scanning, compressing (several chunks of the large
/// block), archives complete, the file package copied, tree files staged, the switch (renames
/// of packages and tree files), the metadata and the cleanup.
const FIRST_BUILD: &[(&str, usize)] = &[
    ("scan", 1),
    ("compress", 1),
    ("compress", 2),
    ("compress", 4),
    ("archive", 1),
    ("archive", 3),
    ("copy", 1),
    ("stage", 1),
    ("stage", 4),
    ("stage", 9),
    ("staged", 1),
    ("commit", 1),
    ("rename", 1),
    ("rename", 3),
    ("rename", 5),
    ("rename", 8),
    ("rename", 13),
    ("metadata", 1),
    ("metadata", 2),
    ("metadata", 3),
    ("cleanup", 1),
];

/// Points of a rebuild where one block changed, one was touched (rehashed), one was deleted
/// (stale files to remove), one was added, and the file package changed.
const REBUILD: &[(&str, usize)] = &[
    ("scan", 1),
    ("hash", 1),
    ("hash", 3),
    ("compress", 1),
    ("compress", 2),
    ("archive", 1),
    ("archive", 2),
    ("copy", 1),
    ("stage", 1),
    ("stage", 3),
    ("staged", 1),
    ("commit", 1),
    ("rename", 1),
    ("rename", 2),
    ("rename", 4),
    ("rename", 6),
    ("stale", 1),
    ("stale", 2),
    ("stale", 4),
    ("metadata", 1),
    ("metadata", 2),
    ("metadata", 3),
    ("cleanup", 1),
];

const TABLE: &str = r#"[resource]
name = "lookup-table"
version = "1.0"
manager = "python_package_driver"
package = { file = "engage-extension/files/table.json" }
"#;

/// The sources before: three blocks (one with half a megabyte of poorly compressible data, so
/// that it is compressed in several chunks) and a file package.
fn before() -> Repo {
    let repo = Repo::new(&["alpha", "beta_two", "gamma"]);
    repo.write("blox/alpha__1_0/data/noise.txt", &noise(600 * 1024));
    repo.write("manifests/lookup-table.toml", TABLE);
    repo.write("engage-extension/files/table.json", "{\"a\": 1}\n");
    repo.age_sources();
    repo
}

/// The change between the two builds.
fn change(repo: &Repo) {
    repo.write("blox/alpha__1_0/b_alpha.py", "NAME = 'changed'\n");
    let touched = repo.path().join("blox/beta_two__1_0");
    for file in ["__init__.py", "b_beta_two.py", "data/beta_two.txt"] {
        set_mtime(
            &touched.join(file),
            std::time::SystemTime::now() - std::time::Duration::from_secs(60),
        );
    }
    std::fs::remove_file(repo.path().join("manifests/gamma.toml")).unwrap();
    std::fs::remove_dir_all(repo.path().join("blox/gamma__1_0")).unwrap();
    repo.add_block("delta_four");
    repo.write("engage-extension/files/table.json", "{\"a\": 2}\n");
}

fn noise(length: usize) -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b' ' + (state % 90) as u8)
        })
        .collect()
}

/// The output of a clean build of these sources (a fresh directory, no cache).
fn clean_output(setup: impl Fn() -> Repo) -> BTreeMap<PathBuf, Vec<u8>> {
    let repo = setup();
    repo.dist(&["--no-cache"]).summary();
    contents(&repo.out())
}

fn kill_at(repo: &Repo, point: &str, nth: usize) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(repo.path())
        .args(["dist", "--json", "--jobs", "1", "--out", "out"])
        .env_remove("SOURCE_DATE_EPOCH")
        .env("XTASK_CRASH_AT", format!("{point}:{nth}"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.signal(),
        Some(9),
        "{point}:{nth} was not reached (exit {:?}): pick a point this build reaches\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// What must hold after any kill: every file under a final name is one the old or the new
/// clean build wrote; `SHA256SUMS` lists exactly the packages beside it, with their hashes;
/// `dist-manifest.json` gives every package's hash truly.
fn check_after_kill(
    out: &Path,
    old: &BTreeMap<PathBuf, Vec<u8>>,
    new: &BTreeMap<PathBuf, Vec<u8>>,
    case: &str,
) {
    let finals: BTreeMap<PathBuf, Vec<u8>> = contents(out)
        .into_iter()
        .filter(|(path, _)| !path.to_string_lossy().starts_with(".dist-tmp-"))
        .collect();
    for (path, bytes) in &finals {
        assert!(
            old.get(path) == Some(bytes) || new.get(path) == Some(bytes),
            "{case}: {} is neither the old nor the new build's file (partial?)",
            path.display()
        );
    }
    let packages: BTreeMap<String, String> = finals
        .iter()
        .filter_map(|(path, bytes)| {
            let name = path.strip_prefix("datablox/sw_packages").ok()?;
            Some((name.to_string_lossy().into_owned(), sha256_hex(bytes)))
        })
        .collect();
    if let Some(sums) = finals.get(Path::new("SHA256SUMS")) {
        let listed: BTreeMap<String, String> = String::from_utf8(sums.clone())
            .unwrap()
            .lines()
            .map(|line| {
                let (sha, path) = line.split_once("  ").unwrap();
                let name = path.strip_prefix("datablox/sw_packages/").unwrap();
                (name.to_string(), sha.to_string())
            })
            .collect();
        assert_eq!(
            listed, packages,
            "{case}: SHA256SUMS does not verify what sits beside it"
        );
    }
    if let Some(manifest) = finals.get(Path::new("dist-manifest.json")) {
        let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
        for resource in manifest["resources"].as_array().unwrap() {
            for package in resource["packages"].as_array().unwrap() {
                if let Some(name) = package["file"].as_str() {
                    assert_eq!(
                        packages.get(name).map(String::as_str),
                        package["sha256"].as_str(),
                        "{case}: dist-manifest.json is wrong about {name}"
                    );
                }
            }
        }
    }
}

/// After the kill, a plain run repairs the directory: clean output, no staging left, verified.
fn check_repair(repo: &Repo, new: &BTreeMap<PathBuf, Vec<u8>>, case: &str) {
    let run = repo.dist(&[]);
    assert_eq!(
        run.code, 0,
        "{case}: the run after the kill failed:\n{}",
        run.stderr
    );
    assert!(
        contents(&repo.out()) == *new,
        "{case}: the run after the kill did not give the clean build's bytes"
    );
    let leftovers: Vec<_> = std::fs::read_dir(repo.out())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with(".dist-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{case}: {leftovers:?} left behind");
    let verify = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(repo.path())
        .args(["verify", "--out", "out"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{case}: verify after the repair:\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Runs the cases of `points` on threads (each on its own repository).
fn run_cases(points: &[(&str, usize)], case: impl Fn(&str, usize) + Sync) {
    std::thread::scope(|scope| {
        for chunk in points.chunks(points.len().div_ceil(3)) {
            let case = &case;
            scope.spawn(move || {
                for &(point, nth) in chunk {
                    case(point, nth);
                }
            });
        }
    });
}

#[test]
fn a_first_build_killed_anywhere_is_repaired_by_the_next_run() {
    let new = clean_output(before);
    run_cases(FIRST_BUILD, |point, nth| {
        let case = format!("first build killed at {point}:{nth}");
        let repo = before();
        kill_at(&repo, point, nth);
        check_after_kill(&repo.out(), &BTreeMap::new(), &new, &case);
        check_repair(&repo, &new, &case);
    });
}

#[test]
fn a_rebuild_killed_anywhere_leaves_old_or_new_files_and_is_repaired() {
    let old = clean_output(before);
    let new = clean_output(|| {
        let repo = before();
        change(&repo);
        repo
    });
    run_cases(REBUILD, |point, nth| {
        let case = format!("rebuild killed at {point}:{nth}");
        let repo = before();
        repo.dist(&[]).summary();
        change(&repo);
        kill_at(&repo, point, nth);
        check_after_kill(&repo.out(), &old, &new, &case);
        check_repair(&repo, &new, &case);
    });
}

#[test]
fn a_kill_before_the_switch_leaves_the_previous_output_untouched() {
    let repo = before();
    repo.dist(&[]).summary();
    let previous = repo.snapshot();
    change(&repo);
    kill_at(&repo, "staged", 1);
    let after: crate::incremental::Snapshot = repo
        .snapshot()
        .into_iter()
        .filter(|(path, _)| !path.to_string_lossy().starts_with(".dist-tmp-"))
        .collect();
    assert_eq!(
        after, previous,
        "same bytes, mtimes and inodes under every final name"
    );
}
