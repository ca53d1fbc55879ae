//! The no-op fast path (`fresh.rs`): a run whose inputs are all as the last build recorded them
//! stops after stat'ing them (`"fresh": true`). It must be taken on a true no-op, and never
//! after a change a full build would see: after each change below, the run is a full build and
//! its output is that of a build without the cache; once the change is settled, the next run
//! is fresh again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use xtask::state::STATE_FILE;

use super::{Repo, Run, contents, set_mtime, snapshot};

const BLOCKS: [&str; 3] = ["alpha", "beta_two", "gamma"];

/// Waits past the racy window of the last change (`cache::racy_at`: 20 ms), so that the next
/// build may trust it.
fn settle() {
    std::thread::sleep(Duration::from_millis(40));
}

/// A repository built, with its state: its next run is fresh.
fn built(blocks: &[&str]) -> Repo {
    let repo = Repo::new(blocks);
    settle();
    assert!(!repo.dist(&[]).fresh());
    assert!(repo.out().join(STATE_FILE).is_file());
    assert_fresh(&repo);
    repo
}

/// The next run is fresh, reports every package unchanged and writes nothing.
fn assert_fresh(repo: &Repo) -> Run {
    let before = repo.snapshot();
    let run = repo.dist(&[]);
    assert!(run.fresh(), "expected a fresh run:\n{}", run.stderr);
    assert_eq!(run.rebuilt(), 0);
    assert_eq!(run.skipped(), run.summary()["packages"].as_u64().unwrap());
    assert_eq!(repo.snapshot(), before, "a fresh run writes nothing");
    run
}

/// After a change, settled: the next run is a full build, whose output and warnings are those
/// of a build without the cache; the run after it is fresh again.
fn assert_seen(repo: &Repo) -> Run {
    settle();
    let run = repo.dist(&[]);
    assert!(!run.fresh(), "a change was not seen:\n{}", run.stdout);
    let (expected, warnings) = without_cache(repo);
    assert_eq!(contents(&repo.out()), expected);
    assert_eq!(run.stderr, warnings);
    let again = assert_fresh(repo);
    assert_eq!(again.stderr, warnings, "a fresh run repeats the warnings");
    run
}

/// The output and the warnings of `dist --no-cache` into a new directory, outside the
/// repository (whose root directory's stat is an input).
fn without_cache(repo: &Repo) -> (BTreeMap<PathBuf, Vec<u8>>, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(repo.path())
        .args(["dist", "--json", "--no-cache", "--out"])
        .arg(dir.path())
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (contents(dir.path()), stderr)
}

/// Rewrites a file with other bytes of the same length and sets its mtime back: only the
/// ctime tells.
fn edit_in_place(path: &Path, from: &str, to: &str) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let old = std::fs::read_to_string(path).unwrap();
    let new = old.replacen(from, to, 1);
    assert_eq!(old.len(), new.len());
    assert_ne!(old, new);
    std::fs::write(path, new).unwrap();
    set_mtime(path, mtime);
}

fn block(repo: &Repo, name: &str) -> PathBuf {
    repo.path().join(format!("blox/{name}__1_0"))
}

#[test]
fn a_true_no_op_is_fresh_says_so_and_prints_what_a_full_no_op_prints() {
    let repo = built(&BLOCKS);
    let run = repo.dist(&["--timings"]);
    assert!(run.fresh());
    assert!(
        run.stderr.contains("fresh: inputs unchanged"),
        "{}",
        run.stderr
    );
    // The human summary of a full no-op (no state) and of a fresh run.
    let human = |repo: &Repo| {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(repo.path())
            .args(["dist", "--out", "out", "--timings"])
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap();
        assert!(output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let fresh = stderr.contains("fresh: inputs unchanged");
        let finished = stderr
            .lines()
            .find(|line| line.contains("Finished"))
            .unwrap()
            .to_string();
        // The time it took is the only difference.
        let (head, tail) = finished.split_once(" in ").unwrap();
        let (_, tail) = tail.split_once("s ->").unwrap();
        (fresh, format!("{head} in _s ->{tail}"))
    };
    let (fresh, line) = human(&repo);
    assert!(fresh);
    std::fs::remove_file(repo.out().join(STATE_FILE)).unwrap();
    let (fresh, full_line) = human(&repo);
    assert!(!fresh);
    assert_eq!(line, full_line);
    assert!(line.contains("(0 built, 3 unchanged)"), "{line}");
    // The full run wrote the state again: the next is fresh.
    assert_fresh(&repo);
}

#[test]
fn a_source_edited_in_place_with_its_mtime_set_back_is_seen() {
    let repo = built(&BLOCKS);
    edit_in_place(&block(&repo, "alpha").join("b_alpha.py"), "alpha", "ALPHA");
    assert_eq!(assert_seen(&repo).rebuilt(), 1);
}

#[test]
fn files_added_removed_and_renamed_in_a_block_are_seen() {
    let repo = built(&BLOCKS);
    let data = block(&repo, "beta_two").join("data");
    std::fs::write(data.join("new.txt"), "new\n").unwrap();
    assert_eq!(assert_seen(&repo).rebuilt(), 1);
    std::fs::rename(data.join("new.txt"), data.join("renamed.txt")).unwrap();
    assert_eq!(assert_seen(&repo).rebuilt(), 1);
    std::fs::remove_file(data.join("renamed.txt")).unwrap();
    assert_eq!(assert_seen(&repo).rebuilt(), 1);
    // A new subdirectory with a file.
    std::fs::create_dir(data.join("deeper")).unwrap();
    std::fs::write(data.join("deeper/x.py"), "X = 1\n").unwrap();
    assert_eq!(assert_seen(&repo).rebuilt(), 1);
}

#[test]
fn manifests_added_and_edited_are_seen() {
    let repo = built(&BLOCKS);
    repo.add_block("delta");
    let run = assert_seen(&repo);
    assert_eq!((run.rebuilt(), run.skipped()), (1, 3));
    // A manifest edited in place: another fixed value, same length, mtime set back.
    edit_in_place(
        &repo.path().join("manifests/datablox-framework.toml"),
        "/blox\"",
        "/bloz\"",
    );
    assert_eq!(assert_seen(&repo).rebuilt(), 0);
    // An exclude list added to a block's manifest.
    let manifest = repo.path().join("manifests/alpha.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}exclude = [\"data/\"]\n")).unwrap();
    assert_eq!(assert_seen(&repo).rebuilt(), 1);
    // A manifest removed, with its block.
    std::fs::remove_file(repo.path().join("manifests/delta.toml")).unwrap();
    std::fs::remove_dir_all(block(&repo, "delta")).unwrap();
    let run = assert_seen(&repo);
    assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
}

#[test]
fn a_driver_file_edited_is_seen() {
    let repo = built(&BLOCKS);
    let driver = repo
        .path()
        .join("engage-extension/drivers/python_package_driver.py");
    std::fs::write(&driver, "# a hand-written driver\nVALUE = 1\n").unwrap();
    settle();
    assert!(!repo.dist(&[]).fresh());
    assert_fresh(&repo);
    edit_in_place(&driver, "VALUE = 1", "VALUE = 2");
    assert_seen(&repo);
    // A new driver module, copied into the tree.
    std::fs::write(
        repo.path().join("engage-extension/drivers/extra_driver.py"),
        "X = 1\n",
    )
    .unwrap();
    assert_seen(&repo);
}

#[test]
fn gitignore_files_added_and_edited_are_seen() {
    let repo = built(&BLOCKS);
    // At the repository root, where there was none: it applies to every block.
    let root = repo.path().join(".gitignore");
    std::fs::write(&root, "#nothin\n").unwrap();
    assert_eq!(assert_seen(&repo).rebuilt(), 0);
    edit_in_place(&root, "#nothin\n", "*.txt\n#\n");
    assert_eq!(assert_seen(&repo).rebuilt(), 3);
    edit_in_place(&root, "*.txt\n#\n", "#nothin\n");
    assert_eq!(assert_seen(&repo).rebuilt(), 3);
    // Nested in a block, ignoring itself (so it is not packaged, but read).
    let data = block(&repo, "gamma").join("data");
    std::fs::write(data.join(".gitignore"), ".gitignore\n#.txt\n").unwrap();
    assert_eq!(assert_seen(&repo).rebuilt(), 0);
    edit_in_place(&data.join(".gitignore"), "#.txt", "*.txt");
    assert_eq!(assert_seen(&repo).rebuilt(), 1);
    // In `blox/`, between the root and the blocks: every `data/` goes (gamma's is empty).
    std::fs::write(repo.path().join("blox/.gitignore"), "data/\n").unwrap();
    assert_eq!(assert_seen(&repo).rebuilt(), 3);
}

#[test]
fn outputs_deleted_edited_or_added_by_hand_are_repaired() {
    let repo = built(&BLOCKS);
    std::fs::remove_file(repo.archive("alpha")).unwrap();
    assert_eq!(assert_seen(&repo).rebuilt(), 1);
    let driver = repo.out().join("datablox/drivers/alpha__1_0/driver.py");
    edit_in_place(&driver, "alpha", "ALPHA");
    assert_seen(&repo);
    std::fs::remove_file(repo.out().join("SHA256SUMS")).unwrap();
    assert_seen(&repo);
    std::fs::write(repo.out().join("dist-manifest.json"), "{}\n").unwrap();
    assert_seen(&repo);
    // A file that does not belong in the tree is removed by a full build.
    std::fs::write(repo.out().join("datablox/drivers/stray.py"), "X = 1\n").unwrap();
    assert_seen(&repo);
    assert!(!repo.out().join("datablox/drivers/stray.py").exists());
    // The state removed.
    std::fs::remove_file(repo.out().join(STATE_FILE)).unwrap();
    assert_seen(&repo);
}

#[test]
fn a_changed_source_date_epoch_is_seen() {
    let repo = built(&BLOCKS);
    let epoch = [("SOURCE_DATE_EPOCH", "1000000000")];
    let run = repo.dist_with(&[], &epoch);
    assert!(!run.fresh());
    assert_eq!(run.rebuilt(), 3);
    let run = repo.dist_with(&[], &epoch);
    assert!(run.fresh());
    // Back to unset.
    assert_eq!(assert_seen(&repo).rebuilt(), 3);
}

#[test]
fn another_executable_is_never_fresh_with_this_ones_state() {
    let repo = built(&BLOCKS);
    let copy = repo.path().join("xtask-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_xtask"), &copy).unwrap();
    let run_copy = || {
        let output = Command::new(&copy)
            .current_dir(repo.path())
            .args(["dist", "--json", "--out", "out"])
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap();
        assert!(output.status.success());
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        summary["fresh"].as_bool().unwrap()
    };
    settle();
    assert!(!run_copy(), "another executable, another state");
    assert!(run_copy());
    // And back: the first executable does not take the copy's state either.
    assert!(!repo.dist(&[]).fresh());
    assert_fresh(&repo);
}

#[test]
fn another_output_directory_is_not_fresh() {
    let repo = built(&BLOCKS);
    // A copy of the output, state included, with the same mtimes.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("out");
    let status = Command::new("cp")
        .arg("-a")
        .arg(repo.out())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(copy.join(STATE_FILE).is_file());
    settle();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(repo.path())
        .args(["dist", "--json", "--out"])
        .arg(&copy)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["fresh"], false);
    assert_eq!(contents(&copy), contents(&repo.out()));
    assert_fresh(&repo);
}

#[test]
fn no_cache_never_takes_the_fast_path() {
    let repo = built(&BLOCKS);
    let run = repo.dist(&["--no-cache"]);
    assert!(!run.fresh());
    assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
    assert_fresh(&repo);
}

#[test]
fn a_staging_directory_sends_the_run_to_a_full_build() {
    let repo = built(&BLOCKS);
    repo.write("out/.dist-tmp-Ab12Cd/CREATED-BY-CARGO-XTASK-DIST", "");
    assert!(!repo.dist(&[]).fresh());
    assert!(!repo.out().join(".dist-tmp-Ab12Cd").exists());
    assert_fresh(&repo);
}

#[test]
fn a_damaged_state_is_ignored_with_a_warning() {
    let repo = built(&BLOCKS);
    let path = repo.out().join(STATE_FILE);
    let bytes = std::fs::read(&path).unwrap();
    for damaged in [
        {
            let mut damaged = bytes.clone();
            let middle = damaged.len() / 2;
            damaged[middle] ^= 1;
            damaged
        },
        bytes[..bytes.len() - 1].to_vec(),
        b"xtask-dist-state".to_vec(),
    ] {
        // A file of another format (the magic alone) is not ours to warn about.
        let warned = damaged.len() > 16;
        std::fs::write(&path, damaged).unwrap();
        let run = repo.dist(&[]);
        assert!(!run.fresh());
        assert_eq!(run.stderr.contains("is damaged"), warned, "{}", run.stderr);
        assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
    }
    // The full build wrote it again.
    assert_fresh(&repo);
}

#[test]
fn a_change_made_just_before_a_build_is_not_recorded() {
    let repo = built(&BLOCKS);
    std::fs::write(block(&repo, "alpha").join("b_alpha.py"), "NAME = 1\n").unwrap();
    let changed = std::fs::metadata(block(&repo, "alpha").join("b_alpha.py"))
        .unwrap()
        .modified()
        .unwrap();
    let run = repo.dist(&[]);
    assert!(!run.fresh());
    assert_eq!(run.rebuilt(), 1);
    let started = std::time::SystemTime::UNIX_EPOCH
        + Duration::from_nanos(super::read_state(&repo.out()).started_ns as u64);
    let racy = changed + Duration::from_millis(20) >= started;
    settle();
    // A racy input is not trusted: the next run is a full build, which records it again.
    assert!(!repo.dist(&[]).fresh() || !racy);
    assert_fresh(&repo);
}

#[test]
fn a_build_killed_around_its_state_is_repaired_by_a_full_build() {
    // Killed before the new state is renamed in (after the two metadata files), and after it,
    // before the staging directory is removed.
    for (point, recorded) in [("metadata:3", false), ("cleanup:1", true)] {
        let repo = built(&BLOCKS);
        std::fs::write(block(&repo, "alpha").join("b_alpha.py"), "NAME = 'x'\n").unwrap();
        settle();
        let before = super::read_state(&repo.out()).started_ns;
        let run = repo.dist_with(&[], &[("XTASK_CRASH_AT", point)]);
        assert_eq!(run.code, -1, "killed at {point}: {}", run.stderr);
        let after = super::read_state(&repo.out()).started_ns;
        assert_eq!(after != before, recorded, "{point}");
        assert_eq!(assert_seen(&repo).rebuilt(), 0, "{point}");
    }
}

#[test]
fn warnings_are_repeated_by_a_fresh_run() {
    let repo = Repo::new(&BLOCKS);
    repo.write("blox/orphan__1_0/b_orphan.py", "X = 1\n");
    settle();
    repo.dist(&[]);
    settle();
    let run = repo.dist(&[]);
    assert!(run.stderr.contains("has no manifest"), "{}", run.stderr);
    let fresh = assert_fresh(&repo);
    assert_eq!(fresh.stderr, run.stderr);
    // The warning goes away with its cause, also for the fast path.
    std::fs::remove_dir_all(repo.path().join("blox/orphan__1_0")).unwrap();
    assert_eq!(assert_seen(&repo).stderr, "");
}

/// Every file, directory and symbolic link of a repository (the fixture, with `.gitignore`
/// files, an excluded directory and a service driver), changed one at a time: a run after the
/// change is fresh only if its output and warnings are those of a build without the cache.
/// This is the completeness of the state, whatever the code reads.
#[test]
fn every_change_to_a_repository_is_seen_or_harmless() {
    let repo = crate::support::TempRepo::fixture()
        .file(".gitignore", "*.log\n")
        .file("blox/hello__1_0/.gitignore", "/scratch/\n")
        .file("blox/hello__1_0/scratch/notes.txt", "notes\n")
        .file(
            "blox/hello__1_0/__pycache__/b_hello.cpython-311.pyc",
            "pyc\n",
        );
    let root = repo.path().to_path_buf();
    let run = |args: &[&str]| {
        let output = crate::support::xtask_command(&root, args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let dist = || run(&["dist", "--json", "--out", "out"]);
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(&root)
        .min_depth(1)
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .collect();
    paths.push(root.clone());
    settle();
    assert_eq!(dist().0, Some(0));
    let mut fresh_runs = 0;
    let mut changed_runs = 0;
    for path in paths {
        // The state of the repository as it is.
        settle();
        let (code, stdout, stderr) = dist();
        assert_eq!(code, Some(0), "{stderr}");
        if stdout.contains("\"fresh\":false") {
            assert!(
                dist().1.contains("\"fresh\":true"),
                "{}: not fresh",
                path.display()
            );
        }
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let restore = change(&path, &metadata);
        let (code, stdout, stderr) = dist();
        if stdout.contains("\"fresh\":true") {
            fresh_runs += 1;
            let no_cache = tempfile::tempdir().unwrap();
            let out = no_cache.path().to_str().unwrap();
            let (expected_code, _, expected_stderr) =
                run(&["dist", "--json", "--no-cache", "--out", out]);
            assert_eq!(
                (code, &stderr),
                (expected_code, &expected_stderr),
                "{}: a fresh run after this change differs from a build",
                path.display()
            );
            assert_eq!(
                contents(&root.join("out")),
                contents(no_cache.path()),
                "{}: a fresh run after this change left another output",
                path.display()
            );
        } else {
            changed_runs += 1;
        }
        restore();
    }
    // Not vacuous: most changes are seen; those inside what is excluded are not.
    assert!(changed_runs > 30, "{changed_runs} changes seen");
    assert!(fresh_runs >= 2, "{fresh_runs} changes harmless");
}

/// Changes `path`: a file gets other bytes (same length, mtime set back), a directory a new
/// file, a symbolic link another target. Returns what puts it back.
fn change(path: &Path, metadata: &std::fs::Metadata) -> Box<dyn FnOnce()> {
    let path = path.to_path_buf();
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("elsewhere", &path).unwrap();
        Box::new(move || {
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(target, &path).unwrap();
        })
    } else if metadata.is_dir() {
        let new = path.join("zz_new_file.py");
        std::fs::write(&new, "NEW = 1\n").unwrap();
        Box::new(move || std::fs::remove_file(new).unwrap())
    } else {
        let old = std::fs::read(&path).unwrap();
        let mut new = old.clone();
        match new.first_mut() {
            // A comment, or another first letter, with the same length.
            Some(first) => *first = if *first == b'#' { b' ' } else { b'#' },
            None => new.push(b'#'),
        }
        std::fs::write(&path, &new).unwrap();
        set_mtime(&path, metadata.modified().unwrap());
        Box::new(move || std::fs::write(&path, old).unwrap())
    }
}

#[test]
fn the_state_is_not_an_output() {
    // A fresh run's output equals a full build's, to the byte, the state aside.
    let repo = built(&BLOCKS);
    let fresh_output = snapshot(&repo.out());
    assert!(fresh_output.contains_key(Path::new(STATE_FILE)));
    assert_eq!(contents(&repo.out()), without_cache(&repo).0);
}
