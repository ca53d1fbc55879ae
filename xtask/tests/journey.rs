//! A block author's journey, end to end, on a copy of this repository: `cargo xtask new`, a
//! topology with the new block, `cargo xtask run` on one node and on three, a change to the
//! block, a redeploy while the caretakers run (`deploy --topology … --homes-dir` and
//! `deploy --home`), and the next run shows the change with no restart.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::deploy::{Service, deployer, python3};
use crate::support::{Run, TempRepo, repo_root, xtask_command};

/// The new block as the author fills it in: passes paths on, and writes how many it saw to
/// `path` at shutdown, with `mark` (what the change changes).
fn shout_source(mark: &str) -> String {
    format!(
        r#""""Shout: passes paths on and writes how many it saw."""

from datablox_framework.block import Block


class shout(Block):
    ARGS = ("path",)

    def on_load(self, config):
        self.path = self.config_value(config, "path", kind=str)
        self.seen = 0
        self.add_input("input", ["path"])
        self.add_output("output", ["path"])

    def recv_push(self, port, log):
        rows = list(log.iter_rows())
        self.seen += len(rows)
        self.push_rows("output", rows)

    def on_shutdown(self):
        with open(self.path, "w") as handle:
            handle.write("{mark}: saw %d file(s)\n" % self.seen)
"#
    )
}

/// This repository's files (tracked, and new ones not ignored) copied into `to`.
fn copy_repository(to: &Path) {
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(listed.status.success());
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let from = repo_root().join(name);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let target = to.join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&from, &target).unwrap();
    }
}

fn xtask(repo: &Path, args: &[&str]) -> Run {
    Run::new(xtask_command(repo, args).output().unwrap())
}

fn take(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::remove_file(path).unwrap();
    text
}

fn status(home: &Path) -> Value {
    let status = deployer(home, &["status", "--json"]).expect_success();
    serde_json::from_str::<Value>(&status.stdout).unwrap()
}

#[test]
fn new_block_runs_on_one_node_and_three_and_a_redeploy_reaches_running_caretakers() {
    let tmp = TempRepo::empty();
    let repo = tmp.path().join("repo");
    copy_repository(&repo);
    let dist = tmp.path().join("dist");
    let dist_arg = dist.to_str().unwrap();

    // Scaffold the block, fill it in, put it in a topology across three nodes.
    xtask(&repo, &["new", "Shout"]).expect_success();
    let source = repo.join("blox/shout__1_0/b_shout.py");
    std::fs::write(&source, shout_source("v1")).unwrap();
    let samples = tmp.path().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("a.txt"), "hello\n").unwrap();
    std::fs::write(samples.join("b.txt"), "world\n").unwrap();
    let out = tmp.path().join("shout.txt");
    let topology = repo.join("topologies/shout.json");
    let text = json!({
        "blocks": [
            {"id": "files", "name": "Dir-Source", "version": "1.0", "args": {"directory": samples}, "at": "master"},
            {"id": "shout", "name": "Shout", "version": "1.0", "args": {"path": out}, "at": "w1"},
            {"id": "sink", "name": "Null", "version": "1.0", "args": {}, "at": "w2"},
        ],
        "connections": [
            {"from": "files.output", "to": "shout.input"},
            {"from": "shout.output", "to": "sink.input"},
        ],
    });
    std::fs::write(&topology, text.to_string()).unwrap();
    let topology_arg = topology.to_str().unwrap();

    // `cargo xtask run`: one node, then three.
    let runs = tmp.path().join("run");
    let run = xtask(
        &repo,
        &[
            "run",
            topology_arg,
            "--dist",
            dist_arg,
            "--homes-dir",
            runs.to_str().unwrap(),
        ],
    )
    .expect_success();
    assert!(
        run.stderr.contains("ok: 3 block(s) on 1 node(s)"),
        "{}",
        run.stderr
    );
    assert_eq!(take(&out), "v1: saw 2 file(s)\n");
    let run = xtask(
        &repo,
        &[
            "run",
            topology_arg,
            "--nodes",
            "master,w1,w2",
            "--dist",
            dist_arg,
            "--homes-dir",
            runs.to_str().unwrap(),
            "--json",
        ],
    )
    .expect_success();
    let result: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(result["counts"]["shout"]["node"], "w1", "{}", run.stdout);
    // Each node's part says which installed state it ran against.
    for node in ["master", "w1", "w2"] {
        let generation = result["generations"][node].as_str().unwrap();
        assert_eq!(generation.len(), 12, "{}", run.stdout);
    }
    assert_eq!(take(&out), "v1: saw 2 file(s)\n");

    // Homes that stay up: three placed by a topology deploy, one deployed alone (its blocks on
    // demand), each with its caretaker running.
    let homes = tmp.path().join("homes");
    let homes_arg = homes.to_str().unwrap();
    let place = [
        "deploy",
        "--topology",
        topology_arg,
        "--nodes",
        "master,w1,w2",
        "--homes-dir",
        homes_arg,
        "--dist",
        dist_arg,
    ];
    xtask(&repo, &place).expect_success();
    let alone = tmp.path().join("alone");
    xtask(
        &repo,
        &[
            "deploy",
            "--home",
            alone.to_str().unwrap(),
            "--dist",
            dist_arg,
        ],
    )
    .expect_success();
    let node_homes: Vec<PathBuf> = ["master", "w1", "w2"]
        .iter()
        .map(|n| homes.join(n))
        .collect();
    let mut nodes = Vec::new();
    let mut services = Vec::new();
    for (node, home) in ["master", "w1", "w2"].iter().zip(&node_homes) {
        let started = deployer(home, &["start", "--port", "0", "--json"]).expect_success();
        services.push(Service(home));
        let started: Value = serde_json::from_str(&started.stdout).unwrap();
        nodes.push(format!("{node}=127.0.0.1:{}", started["port"]));
    }
    deployer(&alone, &["start", "--port", "0"]).expect_success();
    let _alone = Service(&alone);
    let master = |expect: &str| {
        let run = Run::new(
            python3()
                .env("PYTHONPATH", homes.join("master/python"))
                .args(["-m", "datablox_framework.master", "--topology"])
                .arg(homes.join("topology.json"))
                .args(["--nodes", &nodes.join(","), "--timeout", "120"])
                .output()
                .unwrap(),
        )
        .expect_success();
        assert_eq!(take(&out), expect, "{}", run.stderr);
    };
    let alone_run = |expect: &str| {
        deployer(&alone, &["run", topology_arg]).expect_success();
        assert_eq!(take(&out), expect);
    };
    master("v1: saw 2 file(s)\n");
    alone_run("v1: saw 2 file(s)\n");
    // Each caretaker's pid and the installed generation its next run uses.
    let states = |homes: &[PathBuf]| -> Vec<(Value, Value)> {
        homes
            .iter()
            .chain([&alone])
            .map(|h| status(h))
            .map(|s| (s["pid"].clone(), s["generation"].clone()))
            .collect()
    };
    let before = states(&node_homes);
    // A placed home knows its node; a home deployed alone has none.
    assert_eq!(status(&node_homes[1])["node"], "w1");
    assert_eq!(status(&alone)["node"], Value::Null);

    // The change, redeployed while the caretakers run: the next runs show it, no restart.
    std::fs::write(&source, shout_source("v2")).unwrap();
    let redeploy = xtask(&repo, &place).expect_success();
    assert!(redeploy.stderr.contains("Shout"), "{}", redeploy.stderr);
    master("v2: saw 2 file(s)\n");
    let redeploy = xtask(
        &repo,
        &[
            "deploy",
            "--home",
            alone.to_str().unwrap(),
            "--dist",
            dist_arg,
            "--json",
        ],
    )
    .expect_success();
    assert!(redeploy.stdout.contains("shout"), "{}", redeploy.stdout);
    alone_run("v2: saw 2 file(s)\n");
    // The same caretakers, each now on what the redeploy installed: a new generation where Shout
    // is (w1, and the home alone, which installed it on demand), the same elsewhere.
    let after = states(&node_homes);
    for (index, (now, then)) in after.iter().zip(&before).enumerate() {
        assert_eq!(now.0, then.0, "home #{index} was restarted");
        assert_eq!(now.1 != then.1, index == 1 || index == 3, "home #{index}");
    }
    let human = deployer(&alone, &["status"]).expect_success();
    let generation = after[3].1.as_str().unwrap();
    assert!(
        human.stderr.contains(&format!(
            "its next run uses installed generation {generation}"
        )),
        "{}",
        human.stderr
    );
    drop(services);
}
