//! `--ansible DIR` under the real `ansible-playbook`: ansible-core, pinned by hash in
//! `ci/requirements-ansible.txt`, is installed once into `target/tools/ansible/` by
//! `ci/ansible_tools.py` (the only download of `cargo test`); the generated inventory is extended
//! with a second one that makes every host local (`ansible_connection=local`), with its own home
//! and port under a temporary directory. The first run deploys every node and starts its
//! caretaker; the second changes nothing (`changed=0` for every host).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
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
            .arg(repo_root().join("ci/ansible_tools.py"))
            .arg("--dir")
            .arg(&tools)
            .output()
            .unwrap(),
    );
    assert!(
        run.status.success(),
        "the Ansible test could not install ansible-core (ci/ansible_tools.py, exit {}):\n{}",
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ping(port: u16) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(b"{\"op\": \"ping\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
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
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(scratch)
            .output()
            .unwrap(),
    )
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

/// Writes the Ansible directory for NODES. FIXME: until the bundle writer (`deploy place`) is
/// on main, every node's bundle is the whole dist tree; then this becomes
/// `cargo xtask deploy --topology topologies/word-count.json --nodes ... --ansible DIR`.
fn generate(tmp: &Path, out: &Path) {
    let dist = tmp.join("dist");
    Run::new(
        xtask_command(&repo_root(), &["dist", "--out", dist.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .expect_success();
    let script = "import os, shutil, sys, tempfile\n\
                  sys.path.insert(0, sys.argv[1])\n\
                  from datablox_deployer import ansible\n\
                  dist, out, nodes = sys.argv[2], sys.argv[3], sys.argv[4].split(',')\n\
                  def stage(parent):\n\
                  \x20   staging = tempfile.mkdtemp(dir=parent)\n\
                  \x20   for node in nodes:\n\
                  \x20       shutil.copytree(os.path.join(dist, 'datablox'), os.path.join(staging, node))\n\
                  \x20       shutil.copy(os.path.join(dist, 'SHA256SUMS'), os.path.join(staging, node))\n\
                  \x20   return staging\n\
                  ansible.write(out, nodes, stage)\n";
    Run::new(
        python3()
            .arg("-c")
            .arg(script)
            .arg(repo_root().join("python"))
            .arg(&dist)
            .arg(out)
            .arg(NODES.join(","))
            .output()
            .unwrap(),
    )
    .expect_success();
}

#[test]
fn ansible_playbook_deploys_three_local_nodes_then_changes_nothing() {
    let bin = ansible_bin();
    let tmp = TempRepo::empty();
    let out = tmp.path().join("ansible");
    generate(tmp.path(), &out);

    let nodes = tmp.path().join("nodes");
    let homes: Vec<PathBuf> = NODES
        .iter()
        .map(|node| nodes.join(node).join("home"))
        .collect();
    let _caretakers = Caretakers(homes.clone());
    let ports: Vec<u16> = NODES.iter().map(|_| free_port()).collect();
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
            "{node} datablox_home={} datablox_bundle={} datablox_port={}\n",
            homes[index].display(),
            nodes.join(node).join("bundle").display(),
            ports[index]
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
    let first = playbook(&bin, &out, &local_inventory, &scratch);
    let counters = recap(&first.stdout);
    assert!(
        first.status.success() && counters.len() == NODES.len(),
        "first ansible-playbook run failed ({})\nstdout:\n{}\nstderr:\n{}",
        first.status,
        first.stdout,
        first.stderr
    );
    println!("first run:\n{}", recap_lines(&first.stdout));
    for node in NODES {
        let host = &counters[node];
        assert_eq!(
            (host["failed"], host["unreachable"]),
            (0, 0),
            "{node}: {host:?}"
        );
        assert!(host["changed"] >= 3, "{node} was deployed: {host:?}");
    }
    for (index, home) in homes.iter().enumerate() {
        let installed =
            std::fs::read_to_string(home.join("config/installed_resources.json")).unwrap();
        let installed: Value = serde_json::from_str(&installed).unwrap();
        let ids: Vec<&str> = installed
            .as_array()
            .unwrap()
            .iter()
            .map(|instance| instance["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&"caretaker"), "{}: {ids:?}", home.display());
        assert!(
            home.join("python/datablox_framework/caretaker.py")
                .is_file()
        );
        let answer = ping(ports[index]);
        assert_eq!(answer["ok"], true, "{}: {answer}", NODES[index]);
    }

    // 2. The second run changes nothing on any host.
    let second = playbook(&bin, &out, &local_inventory, &scratch);
    let counters = recap(&second.stdout);
    assert!(
        second.status.success() && counters.len() == NODES.len(),
        "second ansible-playbook run failed ({})\nstdout:\n{}\nstderr:\n{}",
        second.status,
        second.stdout,
        second.stderr
    );
    println!("second run:\n{}", recap_lines(&second.stdout));
    for node in NODES {
        let host = &counters[node];
        assert_eq!(
            (host["changed"], host["failed"], host["unreachable"]),
            (0, 0, 0),
            "{node} changed on the second run:\n{}",
            second.stdout
        );
    }
    for port in &ports {
        assert_eq!(ping(*port)["ok"], true);
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
    let other = free_port().to_string();
    let refused = deployer(&["start", "--port", &other, "--json"]).expect_failure(1);
    assert!(
        refused
            .stderr
            .contains(&format!("is running on port {}, not {other}", ports[0])),
        "{}",
        refused.stderr
    );
    if let Some(path) = home_ansible {
        assert!(
            had_home_ansible || !path.exists(),
            "ansible wrote {} although ANSIBLE_HOME pointed elsewhere",
            path.display()
        );
    }
}
