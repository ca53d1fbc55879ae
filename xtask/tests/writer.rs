//! The output directory as a writer must treat it: one run at a time (the lock), user files left
//! alone, no symlink followed, a directory left by an interrupted run repaired, a failure that
//! leaves the previous output, nothing trusted from the cache by `--no-cache`, the archive
//! format in the cache key, the limits on `--jobs` and `SOURCE_DATE_EPOCH`, and `verify`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::incremental::{Repo, contents, edit_state, files_under};
use crate::support::repo_root;

const BLOCKS: [&str; 3] = ["alpha", "beta_two", "gamma"];

fn xtask(repo: &Repo, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .current_dir(repo.path())
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH");
    command
}

fn verify(repo: &Repo) -> (i32, String) {
    let output = xtask(repo, &["verify", "--out", "out"]).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn clean(blocks: &[&str]) -> BTreeMap<PathBuf, Vec<u8>> {
    let repo = Repo::new(blocks);
    repo.dist(&[]).summary();
    contents(&repo.out())
}

#[test]
fn a_foreign_tree_is_still_refused() {
    let repo = Repo::new(&BLOCKS);
    repo.write("out/datablox/drivers/legacy/driver.py", "# not ours\n");
    let run = repo.dist(&[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("did not write"), "{}", run.stderr);
    assert!(
        repo.out()
            .join("datablox/drivers/legacy/driver.py")
            .is_file()
    );
}

#[test]
fn a_second_run_waits_for_the_lock_or_refuses_with_no_wait() {
    let repo = Repo::new(&BLOCKS);
    std::fs::create_dir_all(repo.out()).unwrap();
    let held = std::fs::File::open(repo.out()).unwrap();
    held.lock().unwrap();

    let refused = xtask(&repo, &["dist", "--no-wait", "--out", "out"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("another `cargo xtask dist` is writing"),
        "{stderr}"
    );
    assert!(stderr.contains("help:"), "{stderr}");
    assert_eq!(
        files_under(&repo.out()),
        Vec::<PathBuf>::new(),
        "nothing written"
    );

    let mut waiting = xtask(&repo, &["dist", "--out", "out"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(waiting.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("Blocking waiting for another"), "{first}");
    assert!(
        files_under(&repo.out()).is_empty(),
        "it waits before writing"
    );
    drop(held);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(waiting.wait().unwrap().success(), "{rest:?}");
    assert_eq!(contents(&repo.out()), clean(&BLOCKS));
}

#[test]
fn two_runs_at_once_both_succeed_and_the_output_verifies() {
    let repo = Repo::new(&BLOCKS);
    let runs: Vec<_> = (0..2)
        .map(|_| {
            xtask(&repo, &["dist", "--out", "out"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(verify(&repo).0, 0, "{}", verify(&repo).1);
    assert_eq!(contents(&repo.out()), clean(&BLOCKS));
}

#[test]
fn user_files_in_the_output_directory_are_never_deleted() {
    let repo = Repo::new(&BLOCKS);
    for name in [
        ".profile.tmpl",
        "notes.tmp",
        ".SHA256SUMS.tmpl",
        ".dist-tmp-mine/keep.txt",
    ] {
        repo.write(&format!("out/{name}"), "mine\n");
    }
    repo.dist(&[]).summary();
    repo.write("blox/alpha__1_0/b_alpha.py", "NAME = 'changed'\n");
    repo.dist(&[]).summary();
    for name in [
        ".profile.tmpl",
        "notes.tmp",
        ".SHA256SUMS.tmpl",
        ".dist-tmp-mine/keep.txt",
    ] {
        assert_eq!(
            std::fs::read_to_string(repo.out().join(name))
                .ok()
                .as_deref(),
            Some("mine\n"),
            "{name}"
        );
    }
}

#[test]
fn symlinks_planted_in_the_output_are_never_followed() {
    let repo = Repo::new(&BLOCKS);
    let victim = repo.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious"), "precious\n").unwrap();
    repo.dist(&[]).summary();
    // At a staging-like name, and in place of a directory of the tree.
    std::os::unix::fs::symlink(&victim, repo.out().join(".dist-tmp-planted")).unwrap();
    let packages = repo.out().join("datablox/sw_packages");
    std::fs::remove_dir_all(&packages).unwrap();
    std::os::unix::fs::symlink(&victim, &packages).unwrap();
    repo.write("blox/alpha__1_0/b_alpha.py", "NAME = 'changed'\n");
    repo.dist(&[]).summary();
    let victim_files: Vec<_> = files_under(&victim);
    assert_eq!(
        victim_files,
        vec![victim.join("precious")],
        "nothing written there"
    );
    assert!(!std::fs::symlink_metadata(&packages).unwrap().is_symlink());
    assert!(
        repo.out().join(".dist-tmp-planted").is_symlink(),
        "not ours: left"
    );
    assert_eq!(verify(&repo).0, 0, "{}", verify(&repo).1);
}

#[test]
fn an_abandoned_staging_directory_is_removed_by_the_next_run() {
    let repo = Repo::new(&BLOCKS);
    repo.write("out/.dist-tmp-Ab12Cd/CREATED-BY-CARGO-XTASK-DIST", "");
    repo.write("out/.dist-tmp-Ab12Cd/sw_packages/alpha__1_0.tgz", "partial");
    repo.dist(&[]).summary();
    assert!(!repo.out().join(".dist-tmp-Ab12Cd").exists());
}

#[test]
fn a_failure_while_writing_leaves_the_previous_output() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let before = repo.snapshot();
    repo.write("blox/alpha__1_0/b_alpha.py", "NAME = 'changed'\n");
    repo.write(
        "manifests/gamma.toml",
        "[block]\nname = \"Gamma\"\nversion = \"1.0\"\nrequires = [\"alpha 1.0\"]\n",
    );
    // A tree file fails to be written after the archive was built (a full disk, say).
    let run = repo.dist_with(&[], &[("XTASK_FAIL_AT", "stage:1")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("failure injected"), "{}", run.stderr);
    assert_eq!(
        repo.snapshot(),
        before,
        "not one file changed, none left behind"
    );
    let names: Vec<_> = std::fs::read_dir(repo.out())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".dist-tmp-")),
        "{names:?}"
    );
}

#[test]
fn an_archive_damaged_in_place_with_its_mtime_restored_is_repaired_by_no_cache() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let expected = contents(&repo.out());
    let archive = repo.archive("alpha");
    let metadata = std::fs::metadata(&archive).unwrap();
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&archive, &bytes).unwrap();
    let file = std::fs::File::options().write(true).open(&archive).unwrap();
    file.set_modified(metadata.modified().unwrap()).unwrap();
    drop(file);

    // Same size, mtime and inode: a cached run trusts the record (documented); verify does not.
    let (code, stderr) = verify(&repo);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("alpha__1_0.tgz: SHA-256 is"), "{stderr}");
    let run = repo.dist(&["--no-cache"]);
    assert_eq!((run.rebuilt(), run.skipped()), (1, 2));
    assert_eq!(contents(&repo.out()), expected);
    assert_eq!(verify(&repo).0, 0);
}

#[test]
fn a_corrupted_cache_never_has_its_hashes_copied_into_sha256sums() {
    for flags in [&[][..], &["--no-cache"][..]] {
        let repo = Repo::new(&BLOCKS);
        repo.dist(&[]).summary();
        let expected = contents(&repo.out());
        // Records still matching the files on disk, but hashes that are not theirs, and the
        // checksum of the cache as it was.
        edit_state(&repo.out(), false, |state| {
            for output in &mut state.outputs {
                if output.package.is_some() {
                    output.sha256 = "0".repeat(64);
                }
            }
        });
        let run = repo.dist(flags);
        run.summary();
        assert_eq!(contents(&repo.out()), expected, "{flags:?}");
        // Read (without `--no-cache`), it is reported; either way it is written again.
        assert_eq!(
            run.stderr
                .contains("is damaged; it is ignored and written again"),
            flags.is_empty(),
            "{flags:?}: {}",
            run.stderr
        );
        let state = crate::incremental::read_state(&repo.out());
        assert!(state.outputs.iter().all(|o| o.sha256 != "0".repeat(64)));
    }
}

#[test]
fn a_cache_entry_of_another_archive_format_is_rebuilt() {
    let repo = Repo::new(&BLOCKS);
    let format = repo.dist(&[]).summary();
    assert_eq!(format["rebuilt"], 3);
    edit_state(&repo.out(), true, |state| {
        let output = state
            .outputs
            .iter_mut()
            .find(|o| o.path == "datablox/sw_packages/alpha__1_0.tgz")
            .unwrap();
        let package = output.package.as_mut().unwrap();
        assert!(
            package.settings.starts_with("archive format "),
            "{}",
            package.settings
        );
        let (_, rest) = package.settings.split_once("; ").unwrap();
        package.settings = format!("archive format 0; {rest}");
        // As an older xtask would have left it: another executable, so not the fast path.
        state.complete = false;
    });
    let run = repo.dist(&[]);
    assert_eq!(
        (run.rebuilt(), run.skipped()),
        (0, 3),
        "same bytes: left as they are"
    );
    // It was built again and compared, not trusted: the cache now has the current format.
    let state = crate::incremental::read_state(&repo.out());
    assert!(
        state
            .outputs
            .iter()
            .filter_map(|o| o.package.as_ref())
            .all(|p| !p.settings.contains("archive format 0"))
    );
}

/// Pins the archive bytes of each `ARCHIVE_FORMAT` (read from dist-manifest.json) at level 6, so
/// that the default level can change without a new format. Changing the bytes without bumping
/// the version fails here, even with `UPDATE_GOLDEN=1`, which only adds the entry of a new
/// version.
#[test]
fn archive_format_version_pins_the_archive_bytes() {
    let extension = crate::support::fixture_dir().join("manifests/extension.toml");
    let text = std::fs::read_to_string(extension).unwrap();
    assert!(
        !text.contains("compression-level"),
        "the fixture names no level"
    );
    let text = text.replacen("[extension]\n", "[extension]\ncompression-level = 6\n", 1);
    let repo = crate::support::TempRepo::fixture().file("manifests/extension.toml", &text);
    repo.xtask(&["dist", "--out", "out"]).expect_success();
    let out = repo.path().join("out");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("dist-manifest.json")).unwrap()).unwrap();
    let format = manifest["archive_format"]
        .as_u64()
        .expect("archive_format is recorded");
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let archives: String = sums
        .lines()
        .filter(|l| l.ends_with(".tgz"))
        .map(|l| format!("  {l}\n"))
        .collect();
    let entry = format!("format {format}:\n{archives}");
    let path = repo_root().join("xtask/tests/golden/archive_format.txt");
    let known = std::fs::read_to_string(&path).unwrap_or_default();
    let pinned = known
        .split("format ")
        .find(|block| block.starts_with(&format!("{format}:\n")))
        .map(|block| format!("format {block}"));
    match pinned {
        Some(pinned) => assert_eq!(
            pinned, entry,
            "the archive bytes changed but ARCHIVE_FORMAT is still {format}: bump it in xtask/src/archive.rs (so caches rebuild), then run `UPDATE_GOLDEN=1 cargo test archive_format` to pin the new bytes"
        ),
        None if std::env::var_os("UPDATE_GOLDEN").is_some() => {
            std::fs::write(&path, known + &entry).unwrap();
        }
        None => panic!(
            "no pinned bytes for archive format {format}: run `UPDATE_GOLDEN=1 cargo test archive_format`"
        ),
    }
}

#[test]
fn jobs_has_an_upper_bound() {
    let repo = Repo::new(&["alpha"]);
    for jobs in ["4294967295", "1025"] {
        let output = xtask(&repo, &["dist", "--jobs", jobs]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("1..=1024"), "{stderr}");
    }
    assert!(!repo.path().join("target").exists());
}

#[test]
fn source_date_epoch_is_plain_digits_within_a_tar_header() {
    let repo = Repo::new(&["alpha"]);
    for value in [
        "+5",
        " 5",
        "5 ",
        "-1",
        "0x10",
        "8589934592",
        "99999999999999999999999",
    ] {
        let output = xtask(&repo, &["dist"])
            .env("SOURCE_DATE_EPOCH", value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{value:?}: {stderr}");
        assert!(
            stderr.contains("SOURCE_DATE_EPOCH is `"),
            "{value:?}: {stderr}"
        );
        assert!(stderr.contains("help:"), "{stderr}");
    }
    assert!(!repo.path().join("target").exists(), "nothing written");
    let run = repo.dist_with(&[], &[("SOURCE_DATE_EPOCH", "8589934591")]);
    assert_eq!(
        run.code, 0,
        "the largest value a tar header holds: {}",
        run.stderr
    );
}

#[test]
fn a_cache_that_is_a_directory_is_refused_before_anything_is_written() {
    let repo = Repo::new(&BLOCKS);
    std::fs::create_dir_all(repo.out().join(".dist-state")).unwrap();
    let run = repo.dist(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(".dist-state` is not a file"),
        "{}",
        run.stderr
    );
    assert!(!repo.out().join("datablox").exists(), "nothing written");
}

#[test]
fn verify_lists_every_difference() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let (code, stderr) = verify(&repo);
    assert_eq!(code, 0, "{stderr}");
    // A package damaged, a source changed, a tree file removed, another added.
    let beta = repo.archive("beta_two");
    let mut bytes = std::fs::read(&beta).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&beta, bytes).unwrap();
    repo.write("blox/gamma__1_0/b_gamma.py", "NAME = 'changed'\n");
    std::fs::remove_file(repo.out().join("datablox/drivers/alpha__1_0/driver.py")).unwrap();
    repo.write("out/datablox/drivers/extra.py", "");
    let (code, stderr) = verify(&repo);
    assert_eq!(code, 1, "{stderr}");
    for expected in [
        "datablox/sw_packages/beta_two__1_0.tgz: SHA-256 is",
        "datablox/sw_packages/gamma__1_0.tgz: stale: `gamma 1.0`",
        "datablox/drivers/alpha__1_0/driver.py: missing",
        "datablox/drivers/extra.py: not a file dist writes",
        "Verify found",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    let output = xtask(&repo, &["verify", "--out", "out", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["differences"].as_array().unwrap().len() >= 4,
        "{report}"
    );
    // dist repairs all but the damage in place, which a cached run cannot see; --no-cache does.
    repo.dist(&["--no-cache"]).summary();
    assert_eq!(verify(&repo).0, 0, "{}", verify(&repo).1);
}

/// What CI would run after `dist`: here, on a copy of this repository's tracked sources.
#[test]
fn dist_then_verify_on_a_copy_of_the_repository() {
    let copy = tempfile::Builder::new()
        .prefix("xtask-verify-")
        .tempdir()
        .unwrap();
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--",
            "manifests",
            "blox",
            "python",
            "engage-extension",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(listed.status.success());
    for name in String::from_utf8(listed.stdout)
        .unwrap()
        .split('\0')
        .filter(|n| !n.is_empty())
    {
        let from = repo_root().join(name);
        let Ok(metadata) = std::fs::symlink_metadata(&from) else {
            continue;
        };
        let to = copy.path().join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if metadata.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(copy.path())
            .args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["dist"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(&["verify"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("Verified"), "{stderr}");
    let block = std::fs::read_dir(copy.path().join("blox"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.is_dir())
        .unwrap();
    std::fs::write(block.join("added.py"), "").unwrap();
    let (code, stderr) = run(&["verify"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stale: `"), "{stderr}");
}
