//! Outputs damaged on disk are rebuilt; a failed run leaves the output directory as it was.

use std::path::Path;
use std::process::Command;

use super::{Repo, contents, files_under};

const BLOCKS: [&str; 2] = ["alpha", "beta_two"];

#[test]
fn a_truncated_archive_is_rebuilt() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let expected = contents(&repo.out());
    let archive = repo.archive("alpha");
    let length = std::fs::metadata(&archive).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&archive)
        .unwrap()
        .set_len(length / 2)
        .unwrap();
    let run = repo.dist(&[]);
    assert_eq!((run.rebuilt(), run.skipped()), (1, 1));
    assert_eq!(contents(&repo.out()), expected);
}

#[test]
fn an_archive_overwritten_in_place_is_rebuilt() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let expected = contents(&repo.out());
    let archive = repo.archive("beta_two");
    let length = std::fs::metadata(&archive).unwrap().len() as usize;
    // Same size, same inode; only the mtime tells.
    std::fs::write(&archive, vec![0u8; length]).unwrap();
    let run = repo.dist(&[]);
    assert_eq!((run.rebuilt(), run.skipped()), (1, 1));
    assert_eq!(contents(&repo.out()), expected);
}

#[test]
fn a_deleted_archive_is_rebuilt() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let expected = contents(&repo.out());
    std::fs::remove_file(repo.archive("alpha")).unwrap();
    assert_eq!(repo.dist(&[]).rebuilt(), 1);
    assert_eq!(contents(&repo.out()), expected);
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_failed_build_leaves_the_output_as_it_was() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    let before = repo.snapshot();
    // One block changes (so it would be rebuilt), another gets a FIFO (so the build fails).
    repo.write("blox/alpha__1_0/b_alpha.py", "NAME = 'changed'\n");
    mkfifo(&repo.path().join("blox/beta_two__1_0/pipe"));
    let run = repo.dist(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("FIFO"), "{}", run.stderr);
    assert_eq!(
        repo.snapshot(),
        before,
        "no file was written, renamed or left behind"
    );
}

#[test]
fn a_failed_first_build_writes_no_file() {
    let repo = Repo::new(&BLOCKS);
    mkfifo(&repo.path().join("blox/alpha__1_0/pipe"));
    let run = repo.dist(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(files_under(&repo.out()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn no_temporary_file_survives_a_build() {
    let repo = Repo::new(&BLOCKS);
    repo.dist(&[]).summary();
    repo.write("blox/alpha__1_0/b_alpha.py", "NAME = 'changed'\n");
    repo.dist(&[]).summary();
    let temporaries: Vec<_> = files_under(&repo.out())
        .into_iter()
        .filter(|path| path.file_name().unwrap().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(temporaries.is_empty(), "{temporaries:?}");
}
