//! `--ansible DIR` under the real `ansible-playbook`: ansible-core, pinned by hash in
//! `ci/requirements-ansible.txt`, is installed once into `target/tools/ansible/` by
//! `ci/tools.py ansible` (the only download of `cargo test`). `cargo xtask deploy --topology
//! topologies/word-count.json --nodes master,w1,w2 --ansible DIR` writes the inventory, playbook
//! and bundles; a second inventory makes every host local (`ansible_connection=local`), with its
//! own home and port under a temporary directory. The first run deploys every node and starts its
//! caretaker; the second changes nothing (`changed=0` for every host); a third, after one home
//! stopped matching its bundle, changes that host only and restarts its caretaker; the master then
//! runs the placed topology across the three caretakers. Also: usage errors, a directory that is not
//! ours, and reproducible output.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Run, TempRepo, repo_root, xtask_command};

const NODES: [&str; 3] = ["master", "w1", "w2"];

fn python3() -> Command {
    let mut command = Command::new("python3");
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// The directory of the project's own `ansible-playbook`, installed on first use.
fn ansible_bin() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`: the tools live beside it, in `<target>/tools/`.
    let tools = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("tools/ansible");
    let run = Run::new(
        python3()
            .arg(repo_root().join("ci/tools.py"))
            .arg("ansible")
            .arg("--dir")
            .arg(&tools)
            .output()
            .unwrap(),
    );
    assert!(
        run.status.success(),
        "the Ansible test could not install ansible-core (ci/tools.py ansible, exit {}):\n{}",
        run.status,
        run.stderr
    );
    PathBuf::from(run.stdout.trim())
}

/// The caretakers of the homes, stopped when dropped, so that a failing test leaves no process.
struct Caretakers(Vec<PathBuf>);

impl Drop for Caretakers {
    fn drop(&mut self) {
        for home in &self.0 {
            let deployer = home.join("engage/bin/deployer");
            if deployer.is_file() {
                let _ = python3()
                    .arg(&deployer)
                    .arg("--home")
                    .arg(home)
                    .arg("stop")
                    .output();
            }
        }
    }
}

/// `count` free ports below Linux's ephemeral range (32768 and up), so that no process binding
/// port 0 (other tests' caretakers) is handed one of them between this check and the caretaker's
/// start; the search starts at a place that depends on the process id.
fn free_ports(count: usize) -> Vec<u16> {
    let start = 20000 + (std::process::id() % 10000) as u16;
    (start..32000)
        .chain(20000..start)
        .filter(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .take(count)
        .collect()
}

fn ping(home: &Path, port: u16) -> Value {
    crate::deploy::request(home, port.into(), &json!({"op": "ping"}))
}

/// `ansible-playbook -i inventory.ini -i local.ini site.yml`, with everything Ansible writes kept
/// under `scratch` (no ~/.ansible) and no colour.
fn playbook(bin: &Path, out: &Path, local: &Path, scratch: &Path) -> Run {
    std::fs::create_dir_all(scratch).unwrap();
    // An empty configuration file of our own: no /etc/ansible/ansible.cfg, no ./ansible.cfg.
    let config = scratch.join("ansible.cfg");
    std::fs::write(&config, "").unwrap();
    Run::new(
        Command::new(bin.join("ansible-playbook"))
            .arg("-i")
            .arg(out.join("inventory.ini"))
            .arg("-i")
            .arg(local)
            .arg(out.join("site.yml"))
            .env("ANSIBLE_CONFIG", &config)
            .env("ANSIBLE_HOME", scratch)
            .env("ANSIBLE_LOCAL_TEMP", scratch.join("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", scratch.join("remote"))
            .env("ANSIBLE_PIPELINING", "True")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
            .env("ANSIBLE_STDOUT_CALLBACK", "default")
            // No task may hang the test: each is stopped after two minutes.
            .env("ANSIBLE_TASK_TIMEOUT", "120")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(scratch)
            .output()
            .unwrap(),
    )
}

/// `playbook`, which must succeed with a recap line for every node; prints the recap (as the
/// `which` run) and returns the run and its counters.
fn completed_playbook(
    bin: &Path,
    out: &Path,
    local: &Path,
    scratch: &Path,
    which: &str,
) -> (Run, BTreeMap<String, BTreeMap<String, u64>>) {
    let run = playbook(bin, out, local, scratch);
    let counters = recap(&run.stdout);
    assert!(
        run.status.success() && counters.len() == NODES.len(),
        "{which} ansible-playbook run failed ({})\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    println!("{which} run:\n{}", recap_lines(&run.stdout));
    (run, counters)
}

/// The PLAY RECAP: host -> counters (`ok`, `changed`, `failed`, ...).
fn recap(stdout: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    stdout
        .lines()
        .skip_while(|line| !line.starts_with("PLAY RECAP"))
        .skip(1)
        .filter_map(|line| {
            let (host, counters) = line.split_once(" : ")?;
            let counters = counters
                .split_whitespace()
                .filter_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    Some((name.to_string(), value.parse().ok()?))
                })
                .collect();
            Some((host.trim().to_string(), counters))
        })
        .collect()
}

fn recap_lines(stdout: &str) -> String {
    stdout
        .lines()
        .skip_while(|line| !line.starts_with("PLAY RECAP"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `cargo xtask deploy --topology topologies/word-count.json --nodes master,w1,w2 --ansible OUT`,
/// run by the real binary in the repository, with the dist under `tmp`.
fn generate(tmp: &Path, out: &Path, extra: &[&str]) -> Run {
    let dist = tmp.join("dist");
    let nodes = NODES.join(",");
    let mut args = vec![
        "deploy",
        "--topology",
        "topologies/word-count.json",
        "--nodes",
        &nodes,
        "--ansible",
        out.to_str().unwrap(),
        "--dist",
        dist.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Run::new(xtask_command(&repo_root(), &args).output().unwrap())
}

/// The keys (`name version`) of what a home has installed, the host excepted.
fn installed_keys(home: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(home.join("config/installed_resources.json")).unwrap();
    let installed: Value = serde_json::from_str(&text).unwrap();
    let mut keys: Vec<String> = installed
        .as_array()
        .unwrap()
        .iter()
        .filter(|instance| instance["id"] != "master-host")
        .map(|instance| format!("{} {}", instance["key"]["name"], instance["key"]["version"]))
        .collect();
    keys.sort();
    keys
}

#[test]
fn ansible_playbook_deploys_three_local_nodes_then_changes_nothing() {
    let bin = ansible_bin();
    let tmp = TempRepo::empty();
    let out = tmp.path().join("ansible");
    let generated = generate(tmp.path(), &out, &[]).expect_success();
    assert!(
        generated.stderr.contains("ansible-playbook -i "),
        "{}",
        generated.stderr
    );
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap();
    // JSON-Writer needs simplejson from pip: the master's home gets it from local wheels.
    let wheels = crate::deploy::wheels(tmp.path());

    let nodes = tmp.path().join("nodes");
    let homes: Vec<PathBuf> = NODES
        .iter()
        .map(|node| nodes.join(node).join("home"))
        .collect();
    let _caretakers = Caretakers(homes.clone());
    let ports = free_ports(NODES.len() + 1);
    let (ports, other) = (ports[..NODES.len()].to_vec(), ports[NODES.len()]);
    let python = Run::new(
        python3()
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap(),
    )
    .expect_success()
    .stdout;
    // The second inventory: what a user adds to reach their hosts, here all this machine.
    let mut local = String::from("[datablox]\n");
    for (index, node) in NODES.iter().enumerate() {
        local.push_str(&format!(
            "{node} datablox_home={} datablox_bundle={} datablox_port={} datablox_find_links={}\n",
            homes[index].display(),
            nodes.join(node).join("bundle").display(),
            ports[index],
            wheels.display()
        ));
    }
    local.push_str(&format!(
        "\n[datablox:vars]\nansible_connection=local\nansible_python_interpreter={}\n\
         datablox_python={}\n",
        bin.join("python").display(),
        python.trim()
    ));
    let local_inventory = tmp.path().join("local.ini");
    std::fs::write(&local_inventory, local).unwrap();
    let home_ansible = std::env::var_os("HOME").map(|home| Path::new(&home).join(".ansible"));
    let had_home_ansible = home_ansible.as_ref().is_some_and(|path| path.exists());

    // 1. The first run deploys every node and starts its caretaker.
    let scratch = tmp.path().join("ansible-scratch");
    let (_, counters) = completed_playbook(&bin, &out, &local_inventory, &scratch, "first");
    for node in NODES {
        let host = &counters[node];
        assert_eq!(
            (host["failed"], host["unreachable"]),
            (0, 0),
            "{node}: {host:?}"
        );
        assert!(host["changed"] >= 3, "{node} was deployed: {host:?}");
    }
    // Each home holds exactly its node's closure (plan.json), and its caretaker answers.
    for (index, home) in homes.iter().enumerate() {
        let node = plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|node| node["name"] == NODES[index])
            .unwrap();
        let mut closure: Vec<String> = node["closure"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| format!("{} {}", entry["key"]["name"], entry["key"]["version"]))
            .collect();
        closure.sort();
        assert_eq!(installed_keys(home), closure, "{}", NODES[index]);
        assert!(
            home.join("python/datablox_framework/caretaker.py")
                .is_file()
        );
        let answer = ping(home, ports[index]);
        assert_eq!(answer["ok"], true, "{}: {answer}", NODES[index]);
    }
    let placed: Vec<usize> = NODES
        .iter()
        .map(|node| {
            std::fs::read_dir(nodes.join(node).join("home/blox"))
                .unwrap()
                .filter(|entry| entry.as_ref().unwrap().file_type().unwrap().is_dir())
                .count()
        })
        .collect();
    assert_eq!(
        placed,
        [2, 1, 1],
        "word-count's four blocks over three homes"
    );

    // 2. The second run changes nothing on any host.
    let (second, counters) = completed_playbook(&bin, &out, &local_inventory, &scratch, "second");
    for node in NODES {
        let host = &counters[node];
        assert_eq!(
            (host["changed"], host["failed"], host["unreachable"]),
            (0, 0, 0),
            "{node} changed on the second run:\n{}",
            second.stdout
        );
    }
    for (home, port) in homes.iter().zip(&ports) {
        assert_eq!(ping(home, *port)["ok"], true);
    }
    // One cluster key, the one beside the playbook, in every home, private.
    let key = std::fs::read(out.join("cluster.key")).unwrap();
    for home in &homes {
        let path = home.join("config/cluster.key");
        assert_eq!(std::fs::read(&path).unwrap(), key);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    // What the playbook's changed_when reads: `start` of a running caretaker changes nothing,
    // and one asked for another port than it listens on is refused.
    let deployer = |args: &[&str]| {
        Run::new(
            python3()
                .arg(homes[0].join("engage/bin/deployer"))
                .arg("--home")
                .arg(&homes[0])
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let same = deployer(&["start", "--port", &ports[0].to_string(), "--json"]).expect_success();
    let same: Value = serde_json::from_str(&same.stdout).unwrap();
    assert_eq!(
        (&same["changed"], &same["running"]),
        (&json!(false), &json!(true))
    );
    let other = other.to_string();
    let refused = deployer(&["start", "--port", &other, "--json"]).expect_failure(1);
    assert!(
        refused
            .stderr
            .contains(&format!("is running on port {}, not {other}", ports[0])),
        "{}",
        refused.stderr
    );
    let port = ports[0].to_string();
    let refused =
        deployer(&["start", "--port", &port, "--listen", "0.0.0.0", "--json"]).expect_failure(1);
    assert!(
        refused
            .stderr
            .contains("is listening on 127.0.0.1, not 0.0.0.0"),
        "{}",
        refused.stderr
    );

    // 3. One host's home stops matching its bundle (as when a new dist changes an archive that
    // host installed: its recorded SHA-256 differs): the next run replaces it there, and restarts
    // that host's caretaker, which would otherwise keep running the modules it imported; the
    // other hosts change nothing and keep their caretakers.
    let status = |home: &Path| -> Value {
        let run = Run::new(
            python3()
                .arg(home.join("engage/bin/deployer"))
                .arg("--home")
                .arg(home)
                .args(["status", "--json"])
                .output()
                .unwrap(),
        )
        .expect_success();
        serde_json::from_str(&run.stdout).unwrap()
    };
    let pids_before: Vec<Value> = homes
        .iter()
        .map(|home| status(home)["pid"].clone())
        .collect();
    let records = homes[1].join("config/installed_resources.json");
    let mut installed: Value =
        serde_json::from_str(&std::fs::read_to_string(&records).unwrap()).unwrap();
    let changed = installed
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find_map(|instance| instance.pointer_mut("/properties/datablox_package/sha256"))
        .expect("an installed package with a recorded SHA-256");
    *changed = json!("0".repeat(64));
    std::fs::write(&records, installed.to_string()).unwrap();
    let (third, counters) = completed_playbook(&bin, &out, &local_inventory, &scratch, "third");
    for (index, node) in NODES.iter().enumerate() {
        let host = &counters[*node];
        // w1: install, stop and start changed; the others: nothing.
        let expected = if index == 1 { 3 } else { 0 };
        assert_eq!(
            (host["changed"], host["failed"]),
            (expected, 0),
            "{node} on the third run:\n{}",
            third.stdout
        );
        let now = status(&homes[index]);
        assert_eq!(now["running"], true, "{node}: {now}");
        assert_eq!(
            now["pid"] != pids_before[index],
            index == 1,
            "{node}: caretaker pid {} before, {} after",
            pids_before[index],
            now["pid"]
        );
        assert_eq!(ping(&homes[index], ports[index])["ok"], true);
    }

    // 4. The placed topology runs across the caretakers Ansible started, with the samples and the
    // output moved into this test's directory; nothing is left to deploy on demand.
    let samples = tmp.path().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("a.txt"), "hello world\n").unwrap();
    std::fs::write(samples.join("b.txt"), "one two three\nfour five\n").unwrap();
    let counts = tmp.path().join("counts.jsonl");
    let mut placed: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("topology.json")).unwrap()).unwrap();
    for block in placed["blocks"].as_array_mut().unwrap() {
        match block["id"].as_str().unwrap() {
            "files" => block["args"]["directory"] = json!(samples),
            "write" => block["args"]["path"] = json!(counts),
            _ => {}
        }
    }
    let topology = tmp.path().join("placed.json");
    std::fs::write(&topology, placed.to_string()).unwrap();
    let addresses: Vec<String> = NODES
        .iter()
        .zip(&ports)
        .map(|(node, port)| format!("{node}=127.0.0.1:{port}"))
        .collect();
    let run = Run::new(
        python3()
            .env("PYTHONPATH", homes[0].join("python"))
            .args(["-m", "datablox_framework.master", "--topology"])
            .arg(&topology)
            .args([
                "--nodes",
                &addresses.join(","),
                "--timeout",
                "120",
                "--json",
            ])
            .output()
            .unwrap(),
    )
    .expect_success();
    let answer: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        answer["deployed"],
        json!({"master": [], "w1": [], "w2": []}),
        "{answer}"
    );
    let words: Vec<u64> = std::fs::read_to_string(&counts)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["words"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(words, [2, 5]);

    if let Some(path) = home_ansible {
        assert!(
            had_home_ansible || !path.exists(),
            "ansible wrote {} although ANSIBLE_HOME pointed elsewhere",
            path.display()
        );
    }
}

#[test]
fn ansible_with_another_output_or_without_a_topology_is_a_usage_error() {
    let tmp = TempRepo::empty();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let topology = ["--topology", "topologies/word-count.json", "--nodes", "a,b"];
    for (extra, expected) in [
        (vec!["--homes-dir", "homes"], "cannot be used with"),
        (vec!["--bundle", "bundles"], "cannot be used with"),
        // The wheels directory is on this machine; Ansible installs on the hosts.
        (vec!["--find-links", "wheels"], "cannot be used with"),
    ] {
        let mut args = vec!["deploy"];
        args.extend(topology);
        args.extend(["--ansible", out]);
        args.extend(extra);
        let run = Run::new(xtask_command(&repo_root(), &args).output().unwrap()).expect_failure(2);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
    let run = Run::new(
        xtask_command(&repo_root(), &["deploy", "--home", "h", "--ansible", out])
            .output()
            .unwrap(),
    )
    .expect_failure(2);
    assert!(run.stderr.contains("--topology"), "{}", run.stderr);
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn ansible_output_is_reproducible_and_a_foreign_directory_is_refused() {
    let tmp = TempRepo::empty();
    let first = tmp.path().join("first");
    let second = tmp.path().join("elsewhere/second");
    std::fs::create_dir_all(second.parent().unwrap()).unwrap();
    generate(tmp.path(), &first, &[]).expect_success();
    generate(tmp.path(), &second, &[]).expect_success();
    // The same bytes, but for each output's own cluster key.
    let mut snapshot = crate::support::snapshot(&first);
    let mut other = crate::support::snapshot(&second);
    assert_ne!(snapshot.remove("cluster.key"), other.remove("cluster.key"));
    assert_eq!(snapshot, other);
    let snapshot = crate::support::snapshot(&first);
    let names: Vec<&str> = snapshot.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "bundles/master.tar",
            "bundles/w1.tar",
            "bundles/w2.tar",
            "cluster.key",
            "inventory.ini",
            "plan.json",
            "site.yml",
            "topology.json"
        ]
    );
    // Run again into its own output: replaced, same bytes, the same key.
    generate(tmp.path(), &first, &[]).expect_success();
    assert_eq!(crate::support::snapshot(&first), snapshot);

    // --dry-run: the plan (with where it would go), nothing written.
    let planned = tmp.path().join("planned");
    let run = generate(tmp.path(), &planned, &["--dry-run", "--json"]).expect_success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["output"]["kind"], "ansible", "{}", run.stdout);
    assert!(!planned.exists());

    let foreign = tmp.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine\n").unwrap();
    let refused = generate(tmp.path(), &foreign, &[]).expect_failure(1);
    assert!(
        refused
            .stderr
            .contains("was not written by `deploy --ansible`"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        crate::support::snapshot(&foreign)
            .into_keys()
            .collect::<Vec<_>>(),
        ["notes.txt"]
    );
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
