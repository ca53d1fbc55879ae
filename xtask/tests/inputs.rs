//! What goes into the build and what stays out: byte-code, `.gitignore`d files and the manifest's
//! `exclude` list stay out of archives and digests; symbolic links inside the repository are
//! followed where they are allowed; paths are compared normalised.

use std::os::unix::fs::symlink;

use crate::support::{TempRepo, list_archive, snapshot};

fn archive_listing(repo: &TempRepo, name: &str) -> String {
    let bytes = std::fs::read(
        repo.path()
            .join("target/dist/datablox/sw_packages")
            .join(name),
    )
    .unwrap();
    list_archive(&bytes)
}

#[test]
fn running_the_python_code_changes_no_archive() {
    let repo = TempRepo::fixture();
    repo.xtask(&["dist"]).expect_success();
    let before = snapshot(&repo.path().join("target/dist"));
    // What importing the blocks (running their tests) leaves behind: __pycache__/*.pyc.
    let status = std::process::Command::new("python3")
        .args(["-m", "compileall", "-q", "blox", "python"])
        .current_dir(repo.path())
        .status()
        .unwrap();
    assert!(status.success(), "python3 -m compileall");
    assert!(
        repo.path().join("blox/hello__1_0/__pycache__").is_dir(),
        "compileall wrote byte-code"
    );
    std::fs::write(repo.path().join("blox/hello__1_0/stale.pyc"), b"\x00").unwrap();
    let run = repo.xtask(&["dist"]).expect_success();
    assert!(
        run.stderr.contains("(0 built, 4 unchanged)"),
        "byte-code changes no source digest:\n{}",
        run.stderr
    );
    assert_eq!(
        snapshot(&repo.path().join("target/dist")),
        before,
        "byte-identical output"
    );
    // A build that trusts nothing gives the same bytes too.
    repo.xtask(&["dist", "--no-cache"]).expect_success();
    assert_eq!(snapshot(&repo.path().join("target/dist")), before);
}

#[test]
fn gitignored_and_excluded_files_stay_out_of_archives() {
    let repo = TempRepo::fixture()
        .file(".gitignore", "*.log\n/blox/hello__1_0/data/cache/\n")
        .file("blox/hello__1_0/run.log", "noise\n")
        .file("blox/hello__1_0/data/cache/x.bin", "cached\n")
        .file("blox/hello__1_0/sub/.gitignore", "local.txt\n!keep.log\n")
        .file("blox/hello__1_0/sub/local.txt", "mine\n")
        .file("blox/hello__1_0/sub/keep.log", "kept\n")
        .file("blox/hello__1_0/notes/draft.md", "draft\n")
        .file("blox/hello__1_0/data/big.csv", "1,2\n")
        .file(
            "manifests/hello.toml",
            "[block]\nname = \"Hello\"\nversion = \"1.0\"\nrequires = [\"greeting-table 1.0\", \"requests >=2.0, <3\"]\nexclude = [\"notes/\", \"*.csv\"]\n",
        );
    repo.xtask(&["dist"]).expect_success();
    let listing = archive_listing(&repo, "hello__1_0.tgz");
    for absent in [
        "run.log",
        "data/cache",
        "local.txt",
        "notes",
        "draft.md",
        "big.csv",
    ] {
        assert!(
            !listing.contains(absent),
            "`{absent}` is packed:\n{listing}"
        );
    }
    for present in [
        "hello__1_0/sub/keep.log",
        "hello__1_0/sub/.gitignore",
        "hello__1_0/data/greeting.txt",
    ] {
        assert!(
            listing.contains(present),
            "`{present}` is missing:\n{listing}"
        );
    }

    // Changing an excluded file changes nothing; changing a packed one rebuilds.
    std::fs::write(repo.path().join("blox/hello__1_0/notes/draft.md"), "v2\n").unwrap();
    std::fs::write(repo.path().join("blox/hello__1_0/run.log"), "more\n").unwrap();
    let run = repo.xtask(&["dist"]).expect_success();
    assert!(
        run.stderr.contains("(0 built, 4 unchanged)"),
        "{}",
        run.stderr
    );
    std::fs::write(repo.path().join("blox/hello__1_0/sub/keep.log"), "v2\n").unwrap();
    let run = repo.xtask(&["dist"]).expect_success();
    assert!(
        run.stderr.contains("(1 built, 3 unchanged)"),
        "{}",
        run.stderr
    );
}

#[test]
fn symlinks_inside_the_repository_are_followed_for_manifests_and_drivers() {
    let repo = TempRepo::fixture().file(
        "shared/requests.toml",
        "[resource]\nname = \"requests\"\nversion = \"2.31\"\nmanager = \"misc_driver\"\npackage = { pip = \"requests\" }\n",
    );
    std::fs::remove_file(repo.path().join("manifests/requests.toml")).unwrap();
    symlink(
        "../shared/requests.toml",
        repo.path().join("manifests/requests.toml"),
    )
    .unwrap();
    symlink(
        "misc_driver.py",
        repo.path().join("engage-extension/drivers/alias_driver.py"),
    )
    .unwrap();
    repo.xtask(&["dist"]).expect_success();
    let library = std::fs::read_to_string(
        repo.path()
            .join("target/dist/datablox/metadata/resource_library.json"),
    )
    .unwrap();
    assert!(
        library.contains("\"requests\""),
        "the symlinked manifest is read:\n{library}"
    );
    assert_eq!(
        std::fs::read(
            repo.path()
                .join("target/dist/datablox/drivers/alias_driver.py")
        )
        .unwrap(),
        std::fs::read(repo.path().join("engage-extension/drivers/misc_driver.py")).unwrap(),
        "the symlinked driver module is copied as a file"
    );
}

#[test]
fn dot_slash_source_paths_are_the_same_paths() {
    let repo = TempRepo::fixture().file(
        "manifests/hello.toml",
        "[block]\nname = \"Hello\"\nversion = \"1.0\"\nrequires = [\"greeting-table 1.0\", \"requests >=2.0, <3\"]\nsource = \"./blox/./hello__1_0/\"\n",
    );
    let run = repo.xtask(&["check", "--json"]).expect_success();
    assert!(
        !run.stdout.contains("block-without-manifest"),
        "no false warning:\n{}",
        run.stdout
    );
    repo.xtask(&["dist"]).expect_success();
    assert!(
        repo.path()
            .join("target/dist/datablox/sw_packages/hello__1_0.tgz")
            .is_file()
    );
}
