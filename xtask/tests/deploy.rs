//! `cargo xtask deploy` and what a node does with its home: the real binary builds the
//! repository's dist and runs the node deployer in it; the caretaker then deploys blocks on
//! demand while it runs a topology.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Run, TempRepo, repo_root, xtask_command};

pub(crate) fn python3() -> Command {
    let mut command = Command::new("python3");
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

pub(crate) fn deployer(home: &Path, args: &[&str]) -> Run {
    Run::new(
        python3()
            .arg(home.join("engage/bin/deployer"))
            .arg("--home")
            .arg(home)
            .args(args)
            .output()
            .unwrap(),
    )
}

/// `cargo xtask deploy --home HOME --dist DIST ARGS...`, run by the real binary in the repository.
pub(crate) fn xtask_deploy(home: &Path, dist: &Path, args: &[&str]) -> Run {
    let mut all = vec![
        "deploy",
        "--home",
        home.to_str().unwrap(),
        "--dist",
        dist.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    Run::new(xtask_command(&repo_root(), &all).output().unwrap())
}

pub(crate) fn installed(home: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(home.join("config/installed_resources.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn ids(home: &Path) -> Vec<String> {
    installed(home)
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn blox(home: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(home.join("blox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A wheel directory holding a stand-in `simplejson 3.19.2` (it re-exports the standard
/// library's json), so that JSON-Writer's pip dependency installs without the network.
pub(crate) fn wheels(dir: &Path) -> PathBuf {
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let script = "import sys; sys.path.insert(0, sys.argv[1]); from deployer_tree import wheel; \
                  wheel(sys.argv[2], 'simplejson', '3.19.2', 'from json import *\\nfrom json import dumps, loads\\n')";
    Run::new(
        python3()
            .args(["-c", script])
            .arg(repo_root().join("python/tests"))
            .arg(&wheels)
            .output()
            .unwrap(),
    )
    .expect_success();
    wheels
}

/// Stops the home's caretaker when dropped, so a failing test leaves no process behind.
pub(crate) struct Service<'a>(pub(crate) &'a Path);

impl Drop for Service<'_> {
    fn drop(&mut self) {
        let _ = deployer(self.0, &["stop"]);
    }
}

/// One request to the caretaker of `home` on `port`, sent as the master sends it: first a plain
/// line, which must get nothing (only a holder of the cluster key is served), then over a
/// connection that proves the home's key through the home's own framework, the line and its
/// answer tagged.
pub(crate) fn request(home: &Path, port: u64, request: &Value) -> Value {
    let mut plain = TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    plain.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut line = String::new();
    let _ = BufReader::new(plain).read_line(&mut line);
    assert_eq!(line, "", "served without the cluster key");
    let script = "import socket, sys\n\
        from datablox_framework import auth\n\
        key = auth.read_key(auth.key_path(sys.argv[1]))\n\
        sock = socket.create_connection(('127.0.0.1', int(sys.argv[2])), timeout=120)\n\
        session = auth.client_handshake(sock, key, 'control')\n\
        sock.sendall(session.seal_line(sys.argv[3].encode()))\n\
        print(session.open_line(sock.makefile('rb').readline()).decode())\n";
    let run = Run::new(
        python3()
            .env("PYTHONPATH", home.join("python"))
            .args(["-c", script])
            .arg(home)
            .arg(port.to_string())
            .arg(request.to_string())
            .output()
            .unwrap(),
    )
    .expect_success();
    serde_json::from_str(&run.stdout).unwrap()
}

fn topology(samples: &Path, out: &Path) -> Value {
    json!({
        "blocks": [
            {"id": "files", "name": "Dir-Source", "version": "1.0", "args": {"directory": samples}},
            {"id": "hash", "name": "File-Hash", "version": "1.0", "args": {}},
            {"id": "count", "name": "Word-Count", "version": "1.0", "args": {}},
            {"id": "write", "name": "JSON-Writer", "version": "1.0", "args": {"path": out}},
        ],
        "connections": [
            {"from": "files.output", "to": "hash.input"},
            {"from": "hash.output", "to": "count.input"},
            {"from": "count.output", "to": "write.input"},
        ],
    })
}

#[test]
fn a_node_deploys_the_caretaker_then_blocks_on_demand() {
    let tmp = TempRepo::empty();
    let home = tmp.path().join("home");
    let dist = tmp.path().join("dist");
    let wheels = wheels(tmp.path());
    let samples = tmp.path().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("a.txt"), "hello world\n").unwrap();
    std::fs::write(samples.join("b.txt"), "one two three\nfour five\n").unwrap();

    // 1. A fresh home with only the caretaker and what it needs.
    let run =
        xtask_deploy(&home, &dist, &["--find-links", wheels.to_str().unwrap()]).expect_success();
    assert!(
        run.stderr.contains("Deployed 4 resource(s)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        ids(&home),
        [
            "master-host",
            "__python3__3_8",
            "__datablox_framework__1_0",
            "__datablox_engage_adapter__1_0",
            "caretaker"
        ]
    );
    assert_eq!(blox(&home), ["__init__.py"]);
    for part in [
        "engage/bin/deployer",
        "engage/SHA256SUMS",
        "python/datablox_framework/caretaker.py",
        "python/datablox_engage_adapter/deploy.py",
        "log",
    ] {
        assert!(home.join(part).exists(), "{part}");
    }

    // 2. Start the caretaker, on a free port.
    let started = deployer(&home, &["start", "--port", "0", "--json"]).expect_success();
    let _service = Service(&home);
    let status: Value = serde_json::from_str(&started.stdout).unwrap();
    assert_eq!(status["running"], true, "{}", started.stdout);
    let port = status["port"].as_u64().unwrap();

    // 3. A topology of four blocks the home does not have yet.
    let out = tmp.path().join("counts.jsonl");
    let answer = request(
        &home,
        port,
        &json!({"op": "run", "topology": topology(&samples, &out)}),
    );
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        answer["deployed"],
        json!([
            "Dir-Source 1.0",
            "File-Hash 1.0",
            "Word-Count 1.0",
            "JSON-Writer 1.0"
        ])
    );
    assert_eq!(answer["counts"]["files"]["emitted"], 2);
    assert_eq!(answer["counts"]["count"]["received"], 2);
    assert_eq!(answer["counts"]["write"]["received"], 2);
    assert_eq!(
        blox(&home),
        [
            "__init__.py",
            "dir_source__1_0",
            "file_hash__1_0",
            "json_writer__1_0",
            "word_count__1_0"
        ]
    );
    assert!(home.join("python/simplejson/__init__.py").is_file());
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counted: Vec<(String, u64, u64, u64)> = lines
        .iter()
        .map(|l| {
            (
                Path::new(l["path"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                l["lines"].as_u64().unwrap(),
                l["words"].as_u64().unwrap(),
                l["chars"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counted,
        [("a.txt".into(), 1, 2, 12), ("b.txt".into(), 2, 5, 24)]
    );

    // 4. A second run with other args installs nothing.
    let before = std::fs::read(home.join("config/installed_resources.json")).unwrap();
    let out2 = tmp.path().join("again.jsonl");
    let answer = request(
        &home,
        port,
        &json!({"op": "run", "topology": topology(&samples, &out2)}),
    );
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["deployed"], json!([]));
    assert_eq!(
        std::fs::read(home.join("config/installed_resources.json")).unwrap(),
        before
    );
    assert_eq!(std::fs::read(&out2).unwrap(), std::fs::read(&out).unwrap());

    // 5. Stop the service.
    deployer(&home, &["stop"]).expect_success();
    let status: Value = serde_json::from_str(
        &deployer(&home, &["status", "--json"])
            .expect_success()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["running"], false);
}

#[test]
fn deploy_dry_run_plans_and_writes_nothing() {
    let tmp = TempRepo::empty();
    let home = tmp.path().join("home");
    let dist = tmp.path().join("dist");
    let run =
        xtask_deploy(&home, &dist, &["--dry-run", "--json", "word-count@1.0"]).expect_success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    let steps: Vec<(String, String, String)> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"]["name"].as_str().unwrap().to_string(),
                s["action"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (
                "python3".into(),
                "install".into(),
                "environment of datablox-framework 1.0".into()
            ),
            (
                "datablox-framework".into(),
                "install".into(),
                "environment of word-count 1.0".into()
            ),
            ("word-count".into(), "install".into(), "requested".into()),
        ]
    );
    assert!(!home.exists());
    assert!(dist.join("datablox/bin/deploy").is_file());
}

#[test]
fn deploy_passes_on_the_deployers_usage_error() {
    let tmp = TempRepo::empty();
    let home = tmp.path().join("home");
    let dist = tmp.path().join("dist");
    let run = xtask_deploy(&home, &dist, &["no-such-block"]).expect_failure(2);
    assert!(
        run.stderr
            .contains("error: unknown resource `no-such-block`"),
        "{}",
        run.stderr
    );
    assert!(!home.exists());
}

/// A resource argument that looks like an option reaches the deployer after `--`, where the
/// name rule refuses it: it never becomes `--tree=DIR` (the deployer would install that tree).
#[test]
fn deploy_never_passes_a_resource_as_an_option() {
    let tmp = TempRepo::empty();
    let home = tmp.path().join("home");
    let dist = tmp.path().join("dist");
    let elsewhere = tmp.path().join("elsewhere");
    let injected = format!("--tree={}", elsewhere.display());
    let run = xtask_deploy(&home, &dist, &["--", &injected]).expect_failure(2);
    assert!(run.stderr.contains("starts with `-`"), "{}", run.stderr);
    assert!(!home.exists());
}
