//! Bad input: each validation error against a golden message (file, line, column, help), exit
//! code 1, and nothing written.

use crate::support::{TempRepo, golden};

/// Runs `dist` on the changed fixture, expects exit 1 and no output, and compares stderr (with
/// the temporary path replaced by `$REPO`) with `golden/errors/<name>.stderr`.
fn expect_error(name: &str, repo: TempRepo) {
    let run = repo.xtask(&["dist"]).expect_failure(1);
    assert!(
        !repo.path().join("target").exists(),
        "{name}: nothing may be written on bad input"
    );
    let real = repo.path().canonicalize().unwrap();
    let stderr = run
        .stderr
        .replace(&real.display().to_string(), "$REPO")
        .replace(&repo.path().display().to_string(), "$REPO");
    golden(&format!("errors/{name}.stderr"), &stderr);
    // `check` reports the same manifest problems without building.
    if !name.starts_with("tree_") {
        let check = repo.xtask(&["check"]).expect_failure(1);
        assert!(
            check.stderr.contains(stderr.lines().next().unwrap()),
            "{name}: check agrees with dist:\n{}",
            check.stderr
        );
    }
}

#[test]
fn toml_syntax_error() {
    expect_error(
        "toml_syntax",
        TempRepo::fixture().file("manifests/hello.toml", "[block\nname = \"Hello\"\n"),
    );
}

#[test]
fn unknown_field() {
    expect_error(
        "unknown_field",
        TempRepo::fixture().file(
            "manifests/hello.toml",
            "[block]\nname = \"Hello\"\nversion = \"1.0\"\nrequirez = []\n",
        ),
    );
}

#[test]
fn key_defined_twice() {
    expect_error(
        "duplicate_key",
        TempRepo::fixture().file(
            "manifests/hello.toml",
            "[block]\nname = \"Hello\"\nversion = \"1.0\"\nversion = \"1.1\"\n",
        ),
    );
}

#[test]
fn block_name_with_underscore_or_dot() {
    let repo = TempRepo::fixture()
        .file(
            "manifests/hello.toml",
            "[block]\nname = \"Hel_lo\"\nversion = \"1.0\"\n",
        )
        .file(
            "manifests/dotted.toml",
            "[block]\nname = \"Dot.ted\"\nversion = \"1.0\"\n",
        );
    expect_error("block_name", repo);
}

#[test]
fn dependency_no_manifest_defines() {
    expect_error(
        "unknown_dependency",
        TempRepo::fixture().file(
            "manifests/hello.toml",
            "[block]\nname = \"Hello\"\nversion = \"1.0\"\nrequires = [\"indexer 2.0\"]\n",
        ),
    );
}

#[test]
fn version_constraint_no_definition_satisfies() {
    expect_error("unsatisfied_version", TempRepo::fixture().file("manifests/hello.toml", "[block]\nname = \"Hello\"\nversion = \"1.0\"\nrequires = [\"greeting-table >=2, <3\"]\n"));
}

#[test]
fn bad_version_spec() {
    expect_error(
        "bad_version_spec",
        TempRepo::fixture().file(
            "manifests/hello.toml",
            "[block]\nname = \"Hello\"\nversion = \"1.0\"\nrequires = [\"greeting-table ~1\"]\n",
        ),
    );
}

#[test]
fn dependency_cycle() {
    let repo = TempRepo::fixture()
        .file("manifests/greeting-table.toml", "[resource]\nname = \"greeting-table\"\nversion = \"1.0\"\nmanager = \"misc_driver\"\npackage = { file = \"engage-extension/files/greetings.json\" }\nenvironment = \"requests 2.31\"\n")
        .file("manifests/requests.toml", "[resource]\nname = \"requests\"\nversion = \"2.31\"\nmanager = \"misc_driver\"\npackage = { pip = \"requests\" }\nenvironment = [\"greeting-table 1.0\"]\n");
    expect_error("dependency_cycle", repo);
}

#[test]
fn input_port_no_mapping_feeds() {
    let text = "[resource]\nname = \"requests\"\nversion = \"2.31\"\nmanager = \"misc_driver\"\npackage = { pip = \"requests\" }\n\n[resource.input-ports.fw]\nBLOXPATH = \"path\"\n";
    expect_error(
        "unfed_input_port",
        TempRepo::fixture().file("manifests/requests.toml", text),
    );
}

#[test]
fn port_mapping_to_missing_properties() {
    let text = "[resource]\nname = \"requests\"\nversion = \"2.31\"\nmanager = \"misc_driver\"\npackage = { pip = \"requests\" }\nenvironment = { name = \"datablox-framework\", version = \"1.0\", port-mapping = { fw = \"datablox_framework\" } }\n\n[resource.input-ports.fw]\nBLOXPATH = \"path\"\nLOGDIR = \"path\"\n";
    expect_error(
        "port_mismatch",
        TempRepo::fixture().file("manifests/requests.toml", text),
    );
}

#[test]
fn source_directory_missing() {
    expect_error(
        "missing_source",
        TempRepo::fixture().file(
            "manifests/ghost.toml",
            "[block]\nname = \"Ghost\"\nversion = \"1.0\"\n",
        ),
    );
}

#[test]
fn source_directory_outside_the_repo() {
    let repo = TempRepo::fixture().file(
        "manifests/hello.toml",
        "[block]\nname = \"Hello\"\nversion = \"1.0\"\nsource = \"../hello__1_0\"\n",
    );
    expect_error("source_outside", repo);
}

#[test]
fn source_directory_symlinked_outside_the_repo() {
    let outside = tempfile::tempdir().unwrap();
    let repo = TempRepo::fixture();
    let target = outside.path().join("hello__1_0");
    std::fs::rename(repo.path().join("blox/hello__1_0"), &target).unwrap();
    std::os::unix::fs::symlink(&target, repo.path().join("blox/hello__1_0")).unwrap();
    let run = repo.xtask(&["dist"]).expect_failure(1);
    assert!(
        run.stderr.contains("resolves to") && run.stderr.contains("outside the repository"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("manifests/hello.toml:"),
        "{}",
        run.stderr
    );
}

#[test]
fn block_module_missing() {
    expect_error(
        "missing_block_module",
        TempRepo::fixture().remove("blox/hello__1_0/b_hello.py"),
    );
}

#[test]
fn resource_defined_twice() {
    expect_error(
        "duplicate_resource",
        TempRepo::fixture().file(
            "manifests/hello-again.toml",
            "[block]\nname = \"Hello\"\nversion = \"1.0\"\n",
        ),
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let repo = TempRepo::fixture()
        .file("manifests/hello.toml", "[block]\nname = \"Hello\"\nversion = \"1.0\"\nrequires = [\"indexer 2.0\"]\n")
        .file("manifests/requests.toml", "[resource]\nname = \"requests\"\nversion = \"2.31\"\npackage = { pip = \"requests\" }\n")
        .file("manifests/broken.toml", "[block]\nname = ");
    expect_error("many_errors", repo);
}

#[test]
fn tree_symlink_pointing_outside_the_block() {
    let repo = TempRepo::fixture();
    std::os::unix::fs::symlink("/etc/passwd", repo.path().join("blox/hello__1_0/passwd")).unwrap();
    std::os::unix::fs::symlink(
        "../deep_tree__2_1/b_deep_tree.py",
        repo.path().join("blox/hello__1_0/sibling.py"),
    )
    .unwrap();
    expect_error("tree_symlink_outside", repo);
}

#[test]
fn tree_fifo_in_a_block() {
    let repo = TempRepo::fixture();
    let status = std::process::Command::new("mkfifo")
        .arg(repo.path().join("blox/hello__1_0/queue"))
        .status()
        .unwrap();
    assert!(status.success());
    expect_error("tree_fifo", repo);
}

#[test]
fn tree_hard_link_to_outside_the_block() {
    let repo = TempRepo::fixture();
    std::fs::hard_link(
        repo.path().join("manifests/hello.toml"),
        repo.path().join("blox/hello__1_0/linked.toml"),
    )
    .unwrap();
    expect_error("tree_hard_link", repo);
}
