//! What a second build rebuilds: nothing when nothing changed, one archive for one changed file,
//! everything when a build setting changed.

use std::path::Path;
use std::time::SystemTime;

use super::{Repo, contents, files_under, set_mtime};

const BLOCKS: [&str; 3] = ["alpha", "beta_two", "gamma"];

#[test]
fn no_op_build_rebuilds_and_rewrites_nothing() {
    let repo = Repo::new(&BLOCKS);
    assert_eq!(repo.dist(&[]).rebuilt(), 3);
    // A full no-op: a staging directory (which the build removes) keeps it off the fast path.
    let full_no_op = || {
        repo.write("out/.dist-tmp-Ab12Cd/CREATED-BY-CARGO-XTASK-DIST", "");
        let run = repo.dist(&[]);
        assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
        assert!(!run.fresh());
    };
    let without_state = |snapshot: super::Snapshot| -> super::Snapshot {
        snapshot
            .into_iter()
            .filter(|(path, _)| path != Path::new(xtask::state::STATE_FILE))
            .collect()
    };
    let before = repo.snapshot();
    // Past the racy window of the first build.
    std::thread::sleep(std::time::Duration::from_millis(40));
    full_no_op();
    // Same bytes, and the same mtime and inode: no output file was written again (the state
    // is, when the first build's records were racy).
    assert_eq!(without_state(repo.snapshot()), without_state(before));
    // Its records not racy, the same ones again: not even the state is written.
    let before = repo.snapshot();
    full_no_op();
    assert_eq!(repo.snapshot(), before);
    // And a fresh no-op writes nothing at all.
    let before = repo.snapshot();
    let run = repo.dist(&[]);
    assert!(run.fresh());
    assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn json_run_prints_nothing_but_the_summary() {
    let repo = Repo::new(&BLOCKS);
    let run = repo.dist(&[]);
    assert_eq!(run.stderr, "");
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
}

#[test]
fn touching_every_file_rebuilds_nothing() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let before = repo.snapshot();
    let now = SystemTime::now();
    for path in files_under(&repo.path().join("blox")) {
        set_mtime(&path, now);
    }
    let run = repo.dist(&[]);
    assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
    let after = repo.snapshot();
    for block in BLOCKS {
        let archive = repo
            .archive(block)
            .strip_prefix(repo.out())
            .unwrap()
            .to_path_buf();
        assert_eq!(
            after[&archive], before[&archive],
            "{block}: the archive was rewritten"
        );
    }
    assert_eq!(contents(&repo.out()), super::contents_of(&before));
}

#[test]
fn changing_one_file_rebuilds_one_archive() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let before = repo.snapshot();
    repo.write("blox/beta_two__1_0/data/beta_two.txt", "changed\n");
    let run = repo.dist(&[]);
    assert_eq!((run.rebuilt(), run.skipped()), (1, 2));
    let after = repo.snapshot();
    for block in BLOCKS {
        let archive = repo
            .archive(block)
            .strip_prefix(repo.out())
            .unwrap()
            .to_path_buf();
        if block == "beta_two" {
            assert_ne!(after[&archive].0, before[&archive].0);
        } else {
            assert_eq!(after[&archive], before[&archive], "{block} was rewritten");
        }
    }
}

#[test]
fn no_cache_gives_the_same_bytes() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    repo.write("blox/gamma__1_0/b_gamma.py", "NAME = 'changed'\n");
    repo.dist(&[]).summary();
    let cached = contents(&repo.out());

    // Rehashing everything finds the outputs intact...
    let run = repo.dist(&["--no-cache"]);
    assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
    assert_eq!(contents(&repo.out()), cached);

    // ...and a build from nothing writes the same bytes.
    std::fs::remove_dir_all(repo.out()).unwrap();
    assert_eq!(repo.dist(&["--no-cache"]).rebuilt(), 3);
    assert_eq!(contents(&repo.out()), cached);
}

#[test]
fn one_job_and_two_jobs_give_the_same_bytes() {
    let repo = Repo::new(&["alpha", "beta_two", "gamma", "delta_four", "epsilon"]);
    repo.dist(&["--jobs", "1"]).summary();
    let one = contents(&repo.out());
    std::fs::remove_dir_all(repo.out()).unwrap();
    repo.dist(&["--jobs", "2"]).summary();
    assert_eq!(contents(&repo.out()), one);
}

#[test]
fn deleting_a_block_removes_its_archive_and_driver() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    assert!(
        repo.out()
            .join("datablox/drivers/gamma__1_0/driver.py")
            .is_file()
    );
    std::fs::remove_file(repo.path().join("manifests/gamma.toml")).unwrap();
    std::fs::remove_dir_all(repo.path().join("blox/gamma__1_0")).unwrap();
    let run = repo.dist(&[]);
    assert_eq!((run.rebuilt(), run.skipped()), (0, 2));
    assert!(!repo.archive("gamma").exists());
    assert!(!repo.out().join("datablox/drivers/gamma__1_0").exists());
    let sums = std::fs::read_to_string(repo.out().join("SHA256SUMS")).unwrap();
    assert!(!sums.contains("gamma"), "{sums}");
    assert_eq!(sums.lines().count(), 2, "{sums}");
}

#[test]
fn changing_source_date_epoch_rebuilds_everything() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let run = repo.dist_with(&[], &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert_eq!((run.rebuilt(), run.skipped()), (3, 0));
    let run = repo.dist_with(&[], &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
}

#[test]
fn changing_the_compression_level_rebuilds_everything() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let manifest = std::fs::read_to_string(repo.path().join("manifests/extension.toml")).unwrap();
    let manifest = manifest.replace(
        "version = \"1.0\"\n",
        "version = \"1.0\"\ncompression-level = 9\n",
    );
    repo.write("manifests/extension.toml", &manifest);
    let run = repo.dist(&[]);
    assert_eq!((run.rebuilt(), run.skipped()), (3, 0));
}

/// Git's "racy" case: a file changes after it was hashed, within the same clock tick, so its
/// size, mtime, ctime and inode are those the state recorded. Here the state is edited to
/// describe the changed file with the old hash, which is what such a state holds.
fn racy_setup(written_at_offset_ns: i64) -> (Repo, super::Run) {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let relative = "blox/alpha__1_0/b_alpha.py";
    let path = repo.path().join(relative);
    let old = std::fs::read_to_string(&path).unwrap();
    let new = old.replace("alpha", "ALPHA");
    assert_eq!(old.len(), new.len());
    std::fs::write(&path, &new).unwrap();
    let metadata = std::fs::metadata(&path).unwrap();
    let now = xtask::stat::Stat::from_metadata(&metadata);

    super::edit_state(&repo.out(), true, |state| {
        let mut found = false;
        state.inputs.edit(|path, seen| {
            if let xtask::inputs::Seen::Read { stat, .. } = seen
                && path.ends_with(relative)
            {
                *stat = now;
                found = true;
            }
        });
        assert!(found, "the file is recorded as read");
        state.started_ns = now.mtime_ns.max(now.ctime_ns) + written_at_offset_ns;
        // Not the fast path: the full build's use of the record is what is shown.
        state.complete = false;
    });
    let run = repo.dist(&[]);
    (repo, run)
}

#[test]
fn a_file_as_new_as_the_cache_is_hashed_again() {
    let (repo, run) = racy_setup(0);
    assert_eq!((run.rebuilt(), run.skipped()), (1, 2));
    let archive = std::fs::read(repo.archive("alpha")).unwrap();
    let text = gunzip(&archive);
    assert!(text.contains("ALPHA"), "the archive holds the new content");
}

#[test]
fn a_file_older_than_the_cache_is_trusted() {
    // The control for the test above: an hour after the mtime, the same entry is not racy, so
    // the stat cache is trusted and nothing is rebuilt. This is why the racy check matters.
    let (_repo, run) = racy_setup(3_600 * 1_000_000_000);
    assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
}

fn gunzip(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&xtask::deflate::gunzip(bytes).unwrap()).into_owned()
}
