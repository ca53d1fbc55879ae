//! `cargo xtask graph`: both formats, `--focus`, and the picture in `docs/graph.md`.

use crate::support::{TempRepo, golden, repo_root};

#[test]
fn graph_of_the_fixture_in_both_formats() {
    let repo = TempRepo::fixture();
    golden(
        "author/graph_fixture.mmd",
        &repo.xtask(&["graph"]).expect_success().stdout,
    );
    golden(
        "author/graph_fixture.dot",
        &repo
            .xtask(&["graph", "--format", "dot"])
            .expect_success()
            .stdout,
    );
}

#[test]
fn focus_keeps_a_resource_and_what_it_needs() {
    let repo = TempRepo::fixture();
    let by_name = repo
        .xtask(&["graph", "--focus", "hello"])
        .expect_success()
        .stdout;
    let by_key = repo
        .xtask(&["graph", "--focus", "hello 1.0"])
        .expect_success()
        .stdout;
    assert_eq!(by_name, by_key);
    golden("author/graph_focus_hello.mmd", &by_key);
    let unknown = repo
        .xtask(&["graph", "--focus", "nothing"])
        .expect_failure(1);
    golden("author/graph_focus_unknown.stderr", &unknown.stderr);
}

#[test]
fn graph_is_deterministic() {
    let repo = TempRepo::fixture();
    let first = repo
        .xtask(&["graph", "--format", "dot"])
        .expect_success()
        .stdout;
    let second = repo
        .xtask(&["graph", "--format", "dot"])
        .expect_success()
        .stdout;
    assert_eq!(first, second);
}

/// `docs/graph.md` shows the Mermaid graph of the repository's own manifests; it must be current.
#[test]
fn docs_graph_is_current() {
    let root = repo_root();
    let output = crate::support::xtask_command(&root, &["graph", "--format", "mermaid"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = root.join(xtask::graph::DOC_PATH);
    let doc = std::fs::read_to_string(&path).unwrap();
    let Some(fresh) = xtask::graph::embed(&doc, &String::from_utf8(output.stdout).unwrap()) else {
        panic!(
            "{}: lacks the `<!-- graph:start -->` ... `<!-- graph:end -->` markers around the graph",
            xtask::graph::DOC_PATH
        );
    };
    if doc != fresh {
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, fresh).unwrap();
            return;
        }
        panic!(
            "the graph in {} is stale: run `UPDATE_GOLDEN=1 cargo test docs_graph` \
             (or `cargo xtask graph` pasted between the markers) and commit it",
            xtask::graph::DOC_PATH
        );
    }
}
