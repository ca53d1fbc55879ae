//! The README's doc test: every fenced `sh` block of README.md is run, as a user would paste it,
//! unless the line just before its fence is `<!-- not run: WHY -->`. Each block runs with bash
//! (`set -e`) in a copy of the repository, `cargo xtask` being the binary under test, inside its
//! own mount and network namespaces (`unshare`: run as root, as CI does): fresh `/tmp` and
//! `/srv`, a loopback of its own (so the README's fixed ports collide with nothing), no network
//! (pip packages come from a local wheel of the tests). Caretakers a block starts are stopped
//! afterwards. The test knows nothing of the README's content, only the fence and the marker.

use std::path::Path;
use std::process::Command;

use crate::support::repo_root;

/// The marker of a block that is not meant to run (it needs other machines, root tools, the
/// network, or it is a synopsis), on the line just before its fence.
const NOT_RUN: &str = "<!-- not run:";

struct Block {
    /// 1-based line of the fence.
    line: usize,
    text: String,
    run: bool,
}

fn sh_blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let fence = lines[index].trim_start();
        let language = fence.strip_prefix("```").map(str::trim);
        let Some(language) = language else {
            index += 1;
            continue;
        };
        let start = index;
        let mut end = index + 1;
        while end < lines.len() && !lines[end].trim_start().starts_with("```") {
            end += 1;
        }
        if matches!(language, "sh" | "bash" | "shell") {
            let before = lines[..start]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .copied()
                .unwrap_or("");
            blocks.push(Block {
                line: start + 1,
                text: lines[start + 1..end.min(lines.len())].join("\n"),
                run: !before.trim_start().starts_with(NOT_RUN),
            });
        }
        index = end + 1;
    }
    blocks
}

/// The tracked sources a user's checkout has, copied under `to`.
fn copy_repository(to: &Path) {
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(listed.status.success());
    for name in String::from_utf8(listed.stdout)
        .unwrap()
        .split('\0')
        .filter(|n| !n.is_empty() && !n.starts_with("xtask/") && !n.starts_with("fuzz/"))
    {
        let from = repo_root().join(name);
        let Ok(metadata) = std::fs::symlink_metadata(&from) else {
            continue;
        };
        let target = to.join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        if metadata.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(&from, &target).unwrap();
        }
    }
}

const PROLOGUE: &str = r#"set -eu
ip link set lo up
mkdir -p /srv
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /srv
cargo() {
    if [ "${1:-}" = xtask ]; then shift; "$XTASK" "$@"; else echo "doc test: \`cargo $*\` is not run here" >&2; return 1; fi
}
stop_caretakers() {
    for pid_file in $(find /tmp /srv "$PWD" -path '*/log/caretaker.pid' 2>/dev/null); do
        kill "$(cat "$pid_file")" 2>/dev/null || true
    done
}
trap stop_caretakers EXIT
"#;

#[test]
fn every_runnable_shell_block_of_the_readme_runs() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    assert!(
        blocks.iter().any(|b| b.run),
        "README.md has no shell block to run"
    );
    let target = repo_root().join("target");
    std::fs::create_dir_all(&target).unwrap();
    // Under target/, not /tmp, which each block gets empty.
    let sandbox = tempfile::Builder::new()
        .prefix("readme-doc-test-")
        .tempdir_in(&target)
        .unwrap();
    let wheels = crate::deploy::wheels(sandbox.path());
    let mut failures = Vec::new();
    for block in blocks.iter().filter(|b| b.run) {
        let checkout = sandbox.path().join(format!("line-{}", block.line));
        copy_repository(&checkout);
        let output = Command::new("timeout")
            .args(["600", "unshare", "--mount", "--net", "bash", "-c"])
            .arg(format!("{PROLOGUE}\n{}\n", block.text))
            .current_dir(&checkout)
            .env("XTASK", env!("CARGO_BIN_EXE_xtask"))
            .env("PIP_NO_INDEX", "1")
            .env("PIP_FIND_LINKS", &wheels)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap();
        if !output.status.success() {
            failures.push(format!(
                "README.md:{}: the block exited with {}\n{}\n--- stderr (end):\n{}",
                block.line,
                output.status,
                block.text,
                tail(&String::from_utf8_lossy(&output.stderr), 30)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nhelp: fix the command or the CLI; a block not meant to run gets `{NOT_RUN} WHY -->` on the line before its fence",
        failures.join("\n\n")
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn sh_blocks_are_found_with_their_markers() {
    let blocks = sh_blocks(
        "a\n```sh\necho one\n```\n\n<!-- not run: needs ssh -->\n```sh\nssh w1 true\n```\n```\nnot sh\n```\n",
    );
    let found: Vec<(usize, &str, bool)> = blocks
        .iter()
        .map(|b| (b.line, b.text.as_str(), b.run))
        .collect();
    assert_eq!(found, [(2, "echo one", true), (7, "ssh w1 true", false)]);
}
