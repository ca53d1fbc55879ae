//! `cargo xtask graph`: both formats, `--focus`, and the README's picture of the repository.

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

const START: &str = "<!-- graph:start -->";
const END: &str = "<!-- graph:end -->";

/// The README shows the Mermaid graph of the repository's own manifests; it must be current.
#[test]
fn readme_graph_is_current() {
    let root = repo_root();
    let output = crate::support::xtask_command(&root, &["graph", "--format", "mermaid"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let block = format!(
        "{START}\n```mermaid\n{}```\n{END}",
        String::from_utf8(output.stdout).unwrap()
    );
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the `{START}` ... `{END}` markers around the dependency graph");
    };
    let current = &readme[start..end + END.len()];
    if current != block {
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let updated = format!("{}{block}{}", &readme[..start], &readme[end + END.len()..]);
            std::fs::write(&readme_path, updated).unwrap();
            return;
        }
        panic!(
            "the dependency graph in README.md is stale: run `UPDATE_GOLDEN=1 cargo test readme_graph` \
             (or paste the output of `cargo xtask graph --format mermaid` between the markers) and commit README.md"
        );
    }
}
