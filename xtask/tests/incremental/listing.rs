//! The shortcuts of a build with a previous state (`inputs.rs`, `state.rs`): directory
//! listings reused while a directory's own stat is unchanged, and output files known intact
//! from their stat. Each change below must give exactly what a build without the state gives.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::{Repo, contents, edit_state, read_state, set_mtime};

const BLOCKS: [&str; 3] = ["alpha", "beta_two", "gamma"];

/// The output equals that of `dist --no-cache` into a fresh directory.
fn assert_same_as_without_cache(repo: &Repo) {
    let fresh = repo.path().join("fresh");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(repo.path())
        .args(["dist", "--json", "--no-cache", "--out", "fresh"])
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(contents(&repo.out()), contents(&fresh));
    std::fs::remove_dir_all(fresh).unwrap();
}

/// The member paths of an archive.
fn members(archive: &Path) -> Vec<String> {
    let tar_bytes = xtask::deflate::gunzip(&std::fs::read(archive).unwrap()).unwrap();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            entry
                .unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn block(repo: &Repo) -> std::path::PathBuf {
    repo.path().join("blox/alpha__1_0")
}

/// Sets every source file's and directory's mtime an hour back, as after an edit made well
/// before the build: nothing is racy, so the cache's records are used wherever they hold, and
/// only the stat comparison tells a changed directory from an unchanged one.
fn settle(repo: &Repo) {
    repo.age_sources();
}

#[test]
fn adding_removing_and_renaming_files_are_seen() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    // Added in a subdirectory whose listing the cache holds.
    std::fs::write(block(&repo).join("data/new.txt"), "new\n").unwrap();
    settle(&repo);
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert!(members(&repo.archive("alpha")).contains(&"alpha__1_0/data/new.txt".to_string()));
    assert_same_as_without_cache(&repo);
    // Renamed.
    std::fs::rename(
        block(&repo).join("data/new.txt"),
        block(&repo).join("data/renamed.txt"),
    )
    .unwrap();
    settle(&repo);
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    let names = members(&repo.archive("alpha"));
    assert!(names.contains(&"alpha__1_0/data/renamed.txt".to_string()));
    assert!(!names.contains(&"alpha__1_0/data/new.txt".to_string()));
    assert_same_as_without_cache(&repo);
    // Removed, and a new subdirectory with a file in it.
    std::fs::remove_file(block(&repo).join("data/renamed.txt")).unwrap();
    std::fs::create_dir(block(&repo).join("data/deeper")).unwrap();
    std::fs::write(block(&repo).join("data/deeper/x.py"), "X = 1\n").unwrap();
    settle(&repo);
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    let names = members(&repo.archive("alpha"));
    assert!(!names.contains(&"alpha__1_0/data/renamed.txt".to_string()));
    assert!(names.contains(&"alpha__1_0/data/deeper/x.py".to_string()));
    assert_same_as_without_cache(&repo);
    // Added, then the directory's mtime set back to what the cache recorded (as `rsync -t` or
    // `tar x` do): its ctime still moved.
    let data = block(&repo).join("data");
    let mtime = std::fs::metadata(&data).unwrap().modified().unwrap();
    // The last build recorded this directory's listing (it was not racy).
    assert!(listed(&read_state(&repo.out()), &data).is_some());
    std::fs::write(data.join("late.txt"), "late\n").unwrap();
    std::fs::File::open(&data)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert!(members(&repo.archive("alpha")).contains(&"alpha__1_0/data/late.txt".to_string()));
    assert_same_as_without_cache(&repo);
}

#[test]
fn a_file_rewritten_within_the_same_second_is_seen() {
    // Same size, and the mtime set back to what the cache recorded: the ctime still moves.
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let path = block(&repo).join("b_alpha.py");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let old = std::fs::read_to_string(&path).unwrap();
    let new = old.replace("alpha", "ALPHA");
    assert_eq!(old.len(), new.len());
    std::fs::write(&path, &new).unwrap();
    set_mtime(&path, mtime);
    // The directory's stat is unchanged too: the listing is reused, the file still stat'ed.
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert_same_as_without_cache(&repo);
}

#[test]
fn a_directory_replaced_by_a_symlink_is_seen() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let block = block(&repo);
    std::fs::rename(block.join("data"), block.join("data_real")).unwrap();
    symlink("data_real", block.join("data")).unwrap();
    settle(&repo);
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    let names = members(&repo.archive("alpha"));
    assert!(names.contains(&"alpha__1_0/data_real/alpha.txt".to_string()));
    assert!(!names.contains(&"alpha__1_0/data/alpha.txt".to_string()));
    assert_same_as_without_cache(&repo);
    // And back: a symlink replaced by a directory.
    std::fs::remove_file(block.join("data")).unwrap();
    std::fs::rename(block.join("data_real"), block.join("data")).unwrap();
    settle(&repo);
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert_same_as_without_cache(&repo);
}

#[test]
fn a_gitignore_edited_in_place_applies_at_once() {
    let repo = Repo::new(&BLOCKS);
    let gitignore = block(&repo).join("data/.gitignore");
    std::fs::write(&gitignore, "nothing-matches-this\n").unwrap();
    std::fs::write(block(&repo).join("data/scratch.log"), "log\n").unwrap();
    repo.age_sources();
    repo.dist(&[]).summary();
    assert!(members(&repo.archive("alpha")).contains(&"alpha__1_0/data/scratch.log".to_string()));
    // Same directory stat (the file is rewritten in place); the rules still change.
    let data_mtime = std::fs::metadata(block(&repo).join("data"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::write(&gitignore, "*.log\n").unwrap();
    assert_eq!(
        std::fs::metadata(block(&repo).join("data"))
            .unwrap()
            .modified()
            .unwrap(),
        data_mtime
    );
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert!(!members(&repo.archive("alpha")).contains(&"alpha__1_0/data/scratch.log".to_string()));
    assert_same_as_without_cache(&repo);
    // A new `.gitignore` in the block's top directory.
    std::fs::write(block(&repo).join(".gitignore"), "data/\n").unwrap();
    settle(&repo);
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert!(!members(&repo.archive("alpha")).contains(&"alpha__1_0/data/alpha.txt".to_string()));
    assert_same_as_without_cache(&repo);
}

#[test]
fn a_changed_exclude_list_applies_at_once() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let manifest = repo.path().join("manifests/alpha.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}exclude = [\"data/\"]\n")).unwrap();
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert!(!members(&repo.archive("alpha")).contains(&"alpha__1_0/data/alpha.txt".to_string()));
    assert_same_as_without_cache(&repo);
    std::fs::write(&manifest, text).unwrap();
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert_same_as_without_cache(&repo);
}

#[test]
fn an_output_file_edited_by_hand_is_repaired() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let expected = contents(&repo.out());
    // The state knows the tree's files from their stat.
    let state = read_state(&repo.out());
    for path in ["datablox/drivers/alpha__1_0/driver.py", "SHA256SUMS"] {
        assert!(
            state
                .outputs
                .iter()
                .any(|o| o.path == path && !o.sha256.is_empty())
        );
    }
    // Same size, mtime set back: the ctime still differs from the record.
    let driver = repo.out().join("datablox/drivers/alpha__1_0/driver.py");
    let mtime = std::fs::metadata(&driver).unwrap().modified().unwrap();
    let text = std::fs::read_to_string(&driver).unwrap();
    std::fs::write(&driver, text.replace("alpha", "ALPHA")).unwrap();
    set_mtime(&driver, mtime);
    // Another size, and a metadata file.
    let sums = repo.out().join("SHA256SUMS");
    std::fs::write(&sums, "edited\n").unwrap();
    let run = repo.dist(&[]);
    assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
    assert_eq!(contents(&repo.out()), expected);
    assert_same_as_without_cache(&repo);
}

#[test]
fn a_listing_is_trusted_while_its_directory_stat_is_unchanged_and_not_racy() {
    // What the state promises, shown by a state that lies: a listing without `alpha.txt`,
    // recorded with the directory's real stat.
    let forged = |written_at_offset: Duration| {
        let repo = Repo::new(&BLOCKS);
        repo.dist(&[]).summary();
        let data = block(&repo).join("data");
        let mtime = std::fs::metadata(&data).unwrap().modified().unwrap();
        let ctime = {
            use std::os::unix::fs::MetadataExt;
            let metadata = std::fs::metadata(&data).unwrap();
            SystemTime::UNIX_EPOCH
                + Duration::new(metadata.ctime() as u64, metadata.ctime_nsec() as u32)
        };
        let changed = mtime.max(ctime);
        edit_state(&repo.out(), true, |state| {
            state.inputs.edit(|path, seen| {
                if let xtask::inputs::Seen::Listed { entries, .. } = seen
                    && path == data
                {
                    let kept = entries.iter().filter(|entry| entry.name != b"alpha.txt");
                    *entries = xtask::inputs::Listing::new(kept.collect::<Vec<_>>());
                }
            });
            let changed_ns = changed.duration_since(SystemTime::UNIX_EPOCH).unwrap();
            state.started_ns = (changed_ns + written_at_offset).as_nanos() as i64;
            // Not the fast path: the full build's use of the listing is what is shown.
            state.complete = false;
        });
        repo
    };
    // Recorded long after the directory last changed: trusted, so the file is missed, as a
    // file rewritten in place with its mtime and ctime set back would be.
    let repo = forged(Duration::from_secs(60));
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert!(!members(&repo.archive("alpha")).contains(&"alpha__1_0/data/alpha.txt".to_string()));
    // `--no-cache` lists everything again.
    assert_eq!(repo.dist(&["--no-cache"]).rebuilt(), 1);
    assert!(members(&repo.archive("alpha")).contains(&"alpha__1_0/data/alpha.txt".to_string()));
    // Recorded within the clock tick of the directory's mtime: racy, listed again.
    let repo = forged(Duration::ZERO);
    let run = repo.dist(&[]);
    assert_eq!((run.rebuilt(), run.skipped()), (0, 3));
    assert_same_as_without_cache(&repo);
}

/// The listing the last build recorded of `dir`.
fn listed<'a>(state: &'a xtask::state::State, dir: &Path) -> Option<&'a xtask::inputs::Listing> {
    state.inputs.iter().find_map(|input| match &input.seen {
        xtask::inputs::Seen::Listed { entries, .. }
            if state.inputs.root.join(state.inputs.key(input)) == dir =>
        {
            Some(entries)
        }
        _ => None,
    })
}
