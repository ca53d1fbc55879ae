//! `cargo xtask run` and the CLI around a home's caretaker, as the README documents them: the
//! real binary builds the repository's dist into a temporary directory, deploys homes there,
//! runs a topology with the master and stops what it started.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::deploy::{Service, deployer, xtask_deploy};
use crate::support::{Run, TempRepo, repo_root, xtask_command};

/// Dir-Source -> Word-Count -> Null: no pip package, so no index or wheel is needed.
fn count_topology(samples: &Path) -> Value {
    json!({
        "blocks": [
            {"id": "files", "name": "Dir-Source", "version": "1.0", "args": {"directory": samples}, "at": "master"},
            {"id": "count", "name": "Word-Count", "version": "1.0", "args": {}},
            {"id": "sink", "name": "Null", "version": "1.0", "args": {}},
        ],
        "connections": [
            {"from": "files.output", "to": "count.input"},
            {"from": "count.output", "to": "sink.input"},
        ],
    })
}

fn xtask_run(tmp: &Path, topology: &Path, extra: &[&str]) -> Command {
    let homes = tmp.join("run");
    let dist = tmp.join("dist");
    let mut args = vec![
        "run",
        topology.to_str().unwrap(),
        "--homes-dir",
        homes.to_str().unwrap(),
        "--dist",
        dist.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    xtask_command(&repo_root(), &args)
}

fn running(home: &Path) -> bool {
    let status = deployer(home, &["status", "--json"]).expect_success();
    serde_json::from_str::<Value>(&status.stdout).unwrap()["running"] == true
}

fn counts(run: &Run) -> Value {
    let result: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(result["ok"], true, "{}", run.stdout);
    result["counts"].clone()
}

#[test]
fn run_deploys_runs_on_one_node_and_on_three_and_stops_what_it_started() {
    let tmp = TempRepo::empty();
    let samples = tmp.path().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("a.txt"), "hello world\n").unwrap();
    std::fs::write(samples.join("b.txt"), "one two\n").unwrap();
    let topology = tmp.path().join("count.json");
    std::fs::write(&topology, count_topology(&samples).to_string()).unwrap();

    // One node: every block on `local`, whatever its `at`; the table on stderr.
    let run = Run::new(xtask_run(tmp.path(), &topology, &[]).output().unwrap()).expect_success();
    assert!(run.stderr.contains("files  local"), "{}", run.stderr);
    assert!(
        run.stderr.contains("ok: 3 block(s) on 1 node(s)"),
        "{}",
        run.stderr
    );
    let local = tmp.path().join("run/local");
    assert!(!running(&local), "the caretaker the run started is stopped");

    // Three nodes, with --json: the master's result on stdout.
    let run = Run::new(
        xtask_run(
            tmp.path(),
            &topology,
            &["--nodes", "master,w1,w2", "--json"],
        )
        .output()
        .unwrap(),
    )
    .expect_success();
    let result = counts(&run);
    assert_eq!(result["files"]["emitted"], 2);
    assert_eq!(result["files"]["node"], "master");
    assert_eq!(result["sink"]["received"], 2);
    for node in ["master", "w1", "w2"] {
        assert!(!running(&tmp.path().join("run").join(node)), "{node}");
    }

    // A caretaker that was running before the run is left running.
    let started = deployer(&local, &["start", "--port", "0"]).expect_success();
    let _service = Service(&local);
    let run = Run::new(
        xtask_run(tmp.path(), &topology, &["--json"])
            .output()
            .unwrap(),
    )
    .expect_success();
    assert_eq!(counts(&run)["count"]["received"], 2, "{}", started.stderr);
    assert!(running(&local));

    // A run that fails exits with the master's code, 1, and still stops what it started.
    deployer(&local, &["stop"]).expect_success();
    let broken = tmp.path().join("broken.json");
    let mut bad = count_topology(&samples);
    bad["blocks"][0]["args"]["directory"] = json!(tmp.path().join("no-such-directory"));
    std::fs::write(&broken, bad.to_string()).unwrap();
    Run::new(xtask_run(tmp.path(), &broken, &[]).output().unwrap()).expect_failure(1);
    assert!(!running(&local));
}

#[test]
fn a_port_typo_is_refused_by_deploy_place_run_and_deploy_before_anything_is_deployed() {
    let tmp = TempRepo::empty();
    let samples = tmp.path().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    let typo = tmp.path().join("typo.json");
    let topology = json!({
        "blocks": [
            {"id": "files", "name": "Dir-Source", "version": "1.0", "args": {"directory": samples}},
            {"id": "upper", "name": "Word-Count", "version": "1.0", "args": {}},
            {"id": "sink", "name": "Null", "version": "1.0", "args": {}},
        ],
        "connections": [
            {"from": "files.output", "to": "upper.inptu"},
            {"from": "upper.output", "to": "sink.input"},
        ],
    });
    std::fs::write(&typo, topology.to_string()).unwrap();
    let expected = format!(
        "error: {}: connection #1: block `upper` (Word-Count 1.0) has no input port `inptu` \
         (help: did you mean `input`? its input ports: input)",
        typo.display()
    );
    let homes = tmp.path().join("run");
    let dist = tmp.path().join("dist");
    let typo_text = typo.to_str().unwrap();
    let dist_text = dist.to_str().unwrap();

    // `cargo xtask run`, on one node and on two.
    for extra in [&[][..], &["--nodes", "master,w1"][..]] {
        let run = Run::new(xtask_run(tmp.path(), &typo, extra).output().unwrap()).expect_failure(1);
        assert!(run.stderr.contains(&expected), "{extra:?}: {}", run.stderr);
        assert!(!homes.exists(), "{extra:?}: a home was made");
    }
    // `cargo xtask deploy --topology`, with an output directory and as a plan only.
    let out = tmp.path().join("homes");
    let out_text = out.to_str().unwrap();
    for extra in [&["--homes-dir", out_text][..], &["--dry-run"][..]] {
        let mut args = vec![
            "deploy",
            "--topology",
            typo_text,
            "--nodes",
            "master,w1",
            "--dist",
            dist_text,
        ];
        args.extend_from_slice(extra);
        let deploy =
            Run::new(xtask_command(&repo_root(), &args).output().unwrap()).expect_failure(1);
        assert!(
            deploy.stderr.contains(&expected),
            "{extra:?}: {}",
            deploy.stderr
        );
    }
    assert!(!out.exists(), "a home was made");
    // The dist's own `deploy place`, writing bundles.
    let bundles = tmp.path().join("bundles");
    let place = Run::new(
        crate::deploy::python3()
            .arg(dist.join("datablox/bin/deploy"))
            .args([
                "place",
                "--topology",
                typo_text,
                "--nodes",
                "master,w1",
                "--bundle",
            ])
            .arg(&bundles)
            .output()
            .unwrap(),
    )
    .expect_failure(1);
    assert!(place.stderr.contains(&expected), "{}", place.stderr);
    assert!(!bundles.exists(), "bundles were written");
}

#[test]
fn run_stops_the_caretakers_it_started_on_ctrl_c() {
    let tmp = TempRepo::empty();
    let topology = tmp.path().join("endless.json");
    let endless = json!({
        "blocks": [
            {"id": "zeros", "name": "Zero-Source", "version": "1.0", "args": {"count": 1_000_000_000u64, "batch_size": 1}},
            {"id": "sink", "name": "Null", "version": "1.0", "args": {}},
        ],
        "connections": [{"from": "zeros.output", "to": "sink.input"}],
    });
    std::fs::write(&topology, endless.to_string()).unwrap();
    let mut command = xtask_run(tmp.path(), &topology, &[]);
    // Its own process group, as a terminal's foreground job, so that the SIGINT goes to every
    // process of the run as Ctrl-C sends it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let home = tmp.path().join("run/local");
    let log = home.join("log/caretaker.log");
    // Wait (without a deadline of our own: the test harness has one) until the caretaker listens.
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("listening on")
    {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended before its caretaker listened: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id() as i32;
    let killed = Command::new("kill")
        .args(["-INT", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let run = Run::new(output);
    assert_eq!(run.status.code(), Some(130), "{}", run.stderr);
    assert!(!running(&home), "{}", run.stderr);
}

#[test]
fn deploy_takes_the_documented_cli() {
    let tmp = TempRepo::empty();
    let dist = tmp.path().join("dist");
    let home = tmp.path().join("home");

    // `--dry-run` with --topology plans without an output directory.
    let plan = Run::new(
        xtask_command(
            &repo_root(),
            &[
                "deploy",
                "--topology",
                "topologies/word-count.json",
                "--nodes",
                "master,w1,w2",
                "--dry-run",
                "--dist",
                dist.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap(),
    )
    .expect_success();
    assert!(
        plan.stderr.contains("Plan only: nothing written."),
        "{}",
        plan.stderr
    );
    let missing = Run::new(
        xtask_command(
            &repo_root(),
            &[
                "deploy",
                "--topology",
                "topologies/word-count.json",
                "--nodes",
                "master,w1,w2",
                "--dist",
                dist.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap(),
    )
    .expect_failure(2);
    assert!(
        missing
            .stderr
            .contains("needs --homes-dir DIR, --bundle DIR or --ansible DIR"),
        "{}",
        missing.stderr
    );

    // start, stop and status appear in --help, and take their flags without `--`.
    let help = Run::new(
        xtask_command(&repo_root(), &["deploy", "--help"])
            .output()
            .unwrap(),
    )
    .expect_success();
    for text in ["start", "stop", "status", "--port", "--listen"] {
        assert!(help.stdout.contains(text), "{text}: {}", help.stdout);
    }
    xtask_deploy(&home, &dist, &[]).expect_success();
    let _service = Service(&home);
    let started = xtask_deploy(&home, &dist, &["start", "--port", "0", "--json"]).expect_success();
    let first: Value = serde_json::from_str(&started.stdout).unwrap();
    let port = first["port"].as_u64().unwrap();
    assert!(port > 0, "{}", started.stdout);
    xtask_deploy(&home, &dist, &["stop"]).expect_success();
    let status = xtask_deploy(&home, &dist, &["status", "--json"]).expect_success();
    assert_eq!(
        serde_json::from_str::<Value>(&status.stdout).unwrap()["running"],
        false
    );

    // After `stop`, `start` uses the port and address the home remembers.
    let again = xtask_deploy(&home, &dist, &["start", "--json"]).expect_success();
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["port"].as_u64(), Some(port));
    assert_eq!(again["listen"], "127.0.0.1");
}
