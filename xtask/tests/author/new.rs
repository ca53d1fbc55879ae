//! `cargo xtask new`: the files it writes, its report, and its refusals.

use super::read;
use crate::support::{TempRepo, golden};

#[test]
fn new_block_passes_check_dist_and_its_own_test() {
    let repo = TempRepo::fixture();
    let run = repo
        .xtask(&["new", "Text-Stats", "--requires", "requests 2.31"])
        .expect_success();
    golden("author/new.stderr", &run.stderr);
    golden(
        "author/new_manifest.toml",
        &read(&repo, "manifests/text_stats.toml"),
    );
    golden(
        "author/new_block.py",
        &read(&repo, "blox/text_stats__1_0/b_text_stats.py"),
    );
    golden(
        "author/new_test.py",
        &read(&repo, "blox/text_stats__1_0/test_text_stats.py"),
    );
    assert_eq!(read(&repo, "blox/text_stats__1_0/__init__.py"), "");
    repo.xtask(&["check"]).expect_success();
    let dist = repo.xtask(&["dist"]).expect_success();
    assert!(
        dist.stderr.contains("Finished 7 resources"),
        "{}",
        dist.stderr
    );
    let python = std::process::Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "blox/text_stats__1_0",
            "-t",
            "blox",
            "-p",
            "test_*.py",
        ])
        .env(
            "PYTHONPATH",
            format!(
                "{}:blox",
                crate::support::repo_root().join("python").display()
            ),
        )
        .current_dir(repo.path())
        .output();
    if let Ok(output) = python {
        assert!(
            output.status.success(),
            "the scaffolded test fails:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn new_refuses_bad_names_existing_paths_and_unknown_requires() {
    let repo = TempRepo::fixture();
    let bad_name = repo.xtask(&["new", "Text_Stats"]).expect_failure(1);
    let existing = repo.xtask(&["new", "Hello"]).expect_failure(1);
    let unknown = repo
        .xtask(&[
            "new",
            "Text-Stats",
            "--requires",
            "nothing 1.0",
            "requests 9",
        ])
        .expect_failure(1);
    let blocked = repo
        .file("blox/other__1_0/x.py", "")
        .xtask(&["new", "Other"]);
    let text = format!(
        "== bad name\n{}== existing key\n{}== unknown requires\n{}== existing directory\n{}",
        bad_name.stderr, existing.stderr, unknown.stderr, blocked.stderr
    );
    golden("author/new_errors.stderr", &text);
}

#[test]
fn new_writes_nothing_when_it_refuses() {
    let repo = TempRepo::fixture().file("manifests/other.toml", "# taken\n");
    repo.xtask(&["new", "Other"]).expect_failure(1);
    assert!(
        !repo.path().join("blox/other__1_0").exists(),
        "nothing is written when a path exists"
    );
    assert_eq!(read(&repo, "manifests/other.toml"), "# taken\n");
}

#[test]
fn new_version_of_an_existing_block_copies_its_latest_version() {
    let repo = TempRepo::fixture().file(
        "blox/hello__1_0/test_hello.py",
        "from hello__1_0.b_hello import hello\n",
    );
    // Without --version, the refusal says how to make another version.
    let refused = repo.xtask(&["new", "Hello"]).expect_failure(1);
    assert!(
        refused
            .stderr
            .contains("`cargo xtask new Hello --version VERSION`"),
        "{}",
        refused.stderr
    );
    let run = repo
        .xtask(&["new", "Hello", "--version", "2.0"])
        .expect_success();
    assert!(
        run.stderr
            .contains("Created block `hello 2.0`, a copy of version 1.0"),
        "{}",
        run.stderr
    );
    assert_eq!(
        read(&repo, "blox/hello__2_0/test_hello.py"),
        "from hello__2_0.b_hello import hello\n"
    );
    assert_eq!(
        read(&repo, "blox/hello__2_0/b_hello.py"),
        read(&repo, "blox/hello__1_0/b_hello.py")
    );
    let manifest = read(&repo, "manifests/hello__2_0.toml");
    assert!(manifest.contains("version = \"2.0\""), "{manifest}");
    assert_eq!(
        manifest.replace("version = \"2.0\"", "version = \"1.0\""),
        read(&repo, "manifests/hello.toml")
    );
    repo.xtask(&["check"]).expect_success();
}

#[test]
fn new_keeps_the_documented_graph_current() {
    let repo = TempRepo::fixture().file(
        "docs/graph.md",
        "# Graph\n\n<!-- graph:start -->\nstale\n<!-- graph:end -->\n\nAfter.\n",
    );
    let run = repo.xtask(&["new", "Text-Stats"]).expect_success();
    assert!(
        run.stderr
            .contains("Updated the resource graph in docs/graph.md"),
        "{}",
        run.stderr
    );
    let graph = repo
        .xtask(&["graph", "--format", "mermaid"])
        .expect_success()
        .stdout;
    assert!(graph.contains("text_stats"), "{graph}");
    assert_eq!(
        read(&repo, "docs/graph.md"),
        format!(
            "# Graph\n\n<!-- graph:start -->\n```mermaid\n{graph}```\n<!-- graph:end -->\n\nAfter.\n"
        )
    );
}
