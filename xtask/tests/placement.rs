//! `cargo xtask deploy --topology FILE --nodes A,B,...` (placement and bundles): the real binary
//! builds the repository's dist, places `topologies/word-count.json` on three nodes and writes per-node bundles or homes;
//! bundles are byte-reproducible, hold only their node's closure and deploy with Python 3 only.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::deploy::{Service, deployer, installed, python3, wheels};
use crate::support::{Run, TempRepo, repo_root, xtask_command};

const NODES: &str = "master,w1,w2";

/// `cargo xtask deploy --dist DIST --topology <repo>/topologies/word-count.json --nodes
/// master,w1,w2 ARGS...`, run in `cwd` (inside the repository, which xtask finds from there).
fn place(cwd: &Path, dist: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    Run::new(place_command(cwd, dist, args, env).output().unwrap())
}

fn place_command(cwd: &Path, dist: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let topology = repo_root().join("topologies/word-count.json");
    let mut all = vec![
        "deploy",
        "--dist",
        dist.to_str().unwrap(),
        "--topology",
        topology.to_str().unwrap(),
        "--nodes",
        NODES,
    ];
    all.extend_from_slice(args);
    let mut command = xtask_command(cwd, &all);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Every entry under `dir`: relative path -> (mode, SHA-256 of a file's bytes, or "dir").
fn listing(dir: &Path) -> BTreeMap<String, (u32, String)> {
    use sha2::{Digest, Sha256};
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
            let what = if e.file_type().is_dir() {
                "dir".to_string()
            } else {
                format!("{:x}", Sha256::digest(std::fs::read(e.path()).unwrap()))
            };
            let relative = e.path().strip_prefix(dir).unwrap();
            (relative.to_string_lossy().into_owned(), (mode, what))
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (node, [(name, version)]) of each node's closure in a plan.
fn closures(plan: &Value) -> Vec<(String, Vec<(String, String)>)> {
    plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let keys = n["closure"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["key"]["name"].as_str().unwrap().to_string(),
                        c["key"]["version"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (n["name"].as_str().unwrap().to_string(), keys)
        })
        .collect()
}

fn installed_keys(home: &Path) -> Vec<(String, String)> {
    installed(home)
        .iter()
        .filter(|i| i["id"] != "master-host")
        .map(|i| {
            (
                i["key"]["name"].as_str().unwrap().to_string(),
                i["key"]["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn topology_dry_run_prints_a_balanced_plan_and_writes_nothing() {
    let tmp = TempRepo::empty();
    let dist = tmp.path().join("dist");
    let out = tmp.path().join("bundles");
    let out_arg = out.to_str().unwrap();
    let run = place(
        &repo_root(),
        &dist,
        &["--bundle", out_arg, "--dry-run", "--json"],
        &[],
    )
    .expect_success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(!out.exists());
    assert_eq!(plan["dry_run"], true);
    let node_of = |id: &str| -> String {
        plan["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .unwrap()["node"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // `files` and `write` are pinned `at` master; the two free blocks go one to each worker.
    assert_eq!(node_of("files"), "master");
    assert_eq!(node_of("write"), "master");
    let mut free = vec![node_of("hash"), node_of("count")];
    free.sort();
    assert_eq!(free, ["w1", "w2"]);
    // Each node's bytes are the sizes of its closure's files in the dist; every node has the
    // caretaker, and only the blocks placed on it.
    for node in plan["nodes"].as_array().unwrap() {
        let mut total = 0;
        for entry in node["closure"].as_array().unwrap() {
            if let Some(file) = entry["file"].as_str() {
                let size = std::fs::metadata(dist.join("datablox/sw_packages").join(file))
                    .unwrap()
                    .len();
                assert_eq!(entry["bytes"], size, "{file}");
                total += size;
            }
        }
        assert_eq!(node["bytes"], total);
    }
    let keys = closures(&plan);
    for (node, closure) in &keys {
        assert!(
            closure.contains(&("datablox-caretaker".into(), "1.0".into())),
            "{node}"
        );
    }
    assert!(keys[0].1.contains(&("json-writer".into(), "1.0".into())));
    assert!(!keys[1].1.contains(&("json-writer".into(), "1.0".into())));
    // The human plan, on stderr.
    let human = place(
        &repo_root(),
        &dist,
        &["--bundle", out_arg, "--dry-run"],
        &[],
    )
    .expect_success();
    assert!(
        human.stderr.contains("Placement of ")
            && human
                .stderr
                .contains("files  Dir-Source 1.0   -> master  at")
            && human.stderr.contains("Plan only: nothing written."),
        "{}",
        human.stderr
    );
    assert!(!out.exists());
}

#[test]
fn topology_bundles_are_reproducible_subsets_that_deploy_with_python_only() {
    let tmp = TempRepo::empty();
    let dist = tmp.path().join("dist");
    let first = tmp.path().join("one/bundles");
    let second = tmp.path().join("two/bundles");
    std::fs::create_dir_all(first.parent().unwrap()).unwrap();
    std::fs::create_dir_all(second.parent().unwrap()).unwrap();
    let run = place(
        &repo_root(),
        &dist,
        &["--bundle", first.to_str().unwrap(), "--json"],
        &[],
    )
    .expect_success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    // Another dist directory, working directory, umask, time zone and locale: the same files,
    // modes and bytes.
    let command = place_command(
        &repo_root().join("topologies"),
        &tmp.path().join("other/dist"),
        &["--bundle", second.to_str().unwrap()],
        &[("TZ", "Pacific/Chatham"), ("LC_ALL", "C"), ("LANG", "C")],
    );
    let mut masked = Command::new("sh");
    masked
        .args(["-c", "umask 077 && exec \"$0\" \"$@\""])
        .arg(command.get_program())
        .args(command.get_args())
        .current_dir(command.get_current_dir().unwrap());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => masked.env(key, value),
            None => masked.env_remove(key),
        };
    }
    Run::new(masked.output().unwrap()).expect_success();
    // The same files, modes and bytes, but for each output's own cluster key (0600, beside the
    // bundles).
    let mut listed = listing(&first);
    let mut other = listing(&second);
    let (key, other_key) = (
        listed.remove("cluster.key").unwrap(),
        other.remove("cluster.key").unwrap(),
    );
    assert_eq!((key.0, other_key.0), (0o600, 0o600));
    assert_ne!(key.1, other_key.1);
    assert_eq!(listed, other);
    assert_eq!(
        names(&first),
        [
            "cluster.key",
            "master",
            "plan.json",
            "topology.json",
            "w1",
            "w2"
        ]
    );

    // Each bundle holds exactly its closure's files, with the dist's bytes.
    let dist_sw = dist.join("datablox/sw_packages");
    for node in plan["nodes"].as_array().unwrap() {
        let name = node["name"].as_str().unwrap();
        let mut expected: Vec<String> = node["closure"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["file"].as_str().map(String::from))
            .collect();
        expected.sort();
        let bundle_sw = first.join(name).join("sw_packages");
        assert_eq!(names(&bundle_sw), expected, "{name}");
        for file in &expected {
            assert_eq!(
                std::fs::read(bundle_sw.join(file)).unwrap(),
                std::fs::read(dist_sw.join(file)).unwrap()
            );
        }
        // `sha256sum -c` accepts the bundle's SHA256SUMS.
        let check = Command::new("sha256sum")
            .args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(first.join(name))
            .output()
            .unwrap();
        assert!(check.status.success(), "{name}: {check:?}");
    }
    assert_eq!(listed["w1/bin/deploy"].0, 0o755);
    assert_eq!(listed["w1/metadata/node_install_spec.json"].0, 0o644);
    let placed = read_json(&first.join("w1/topology.json"));
    assert!(
        placed["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["at"].is_string())
    );
    assert_eq!(placed, read_json(&first.join("topology.json")));

    // A worker's bundle deploys into a fresh home with Python 3 alone (no PYTHONPATH, no repo).
    let home = tmp.path().join("home-w1");
    let deployed = Command::new("python3")
        .arg(first.join("w1/bin/deploy"))
        .arg("--home")
        .arg(&home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let deployed = Run::new(deployed).expect_success();
    assert!(
        deployed.stderr.contains("Deployed 5 resource(s)"),
        "{}",
        deployed.stderr
    );
    assert_eq!(installed_keys(&home), closures(&plan)[1].1);
}

#[test]
fn topology_homes_dir_deploys_each_node_with_exactly_its_closure() {
    let tmp = TempRepo::empty();
    let dist = tmp.path().join("dist");
    let homes = tmp.path().join("homes");
    let wheels = wheels(tmp.path());
    let run = place(
        &repo_root(),
        &dist,
        &[
            "--homes-dir",
            homes.to_str().unwrap(),
            "--find-links",
            wheels.to_str().unwrap(),
        ],
        &[],
    )
    .expect_success();
    assert!(
        run.stderr.contains(&format!(
            "Deployed 7 resource(s) into {}",
            homes.join("master").display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        names(&homes),
        [
            "cluster.key",
            "master",
            "plan.json",
            "topology.json",
            "w1",
            "w2"
        ]
    );
    // Every home holds the one cluster key.
    let key = std::fs::read(homes.join("cluster.key")).unwrap();
    for node in ["master", "w1", "w2"] {
        assert_eq!(
            std::fs::read(homes.join(node).join("config/cluster.key")).unwrap(),
            key
        );
    }
    let plan = read_json(&homes.join("plan.json"));
    for (node, closure) in closures(&plan) {
        assert_eq!(installed_keys(&homes.join(&node)), closure, "{node}");
    }
    assert_eq!(
        names(&homes.join("master/blox")),
        ["__init__.py", "dir_source__1_0", "json_writer__1_0"]
    );
    for worker in ["w1", "w2"] {
        let blox = names(&homes.join(worker).join("blox"));
        assert_eq!(blox.len(), 2, "{worker}: {blox:?}");
        assert!(!homes.join(worker).join("python/simplejson").exists());
    }
    assert!(homes.join("master/python/simplejson/__init__.py").is_file());

    // The placed topology runs across the three homes: a caretaker each, the master (from the
    // master's home) given DIR/topology.json with the samples and output moved to this test's
    // directory. No caretaker deploys anything: each already holds its blocks.
    let samples = tmp.path().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("a.txt"), "hello world\n").unwrap();
    std::fs::write(samples.join("b.txt"), "one two three\nfour five\n").unwrap();
    let out = tmp.path().join("counts.jsonl");
    let mut placed = read_json(&homes.join("topology.json"));
    for block in placed["blocks"].as_array_mut().unwrap() {
        match block["id"].as_str().unwrap() {
            "files" => block["args"]["directory"] = samples.to_str().unwrap().into(),
            "write" => block["args"]["path"] = out.to_str().unwrap().into(),
            _ => {}
        }
    }
    let topology = tmp.path().join("placed.json");
    std::fs::write(&topology, placed.to_string()).unwrap();
    let node_homes: Vec<(&str, std::path::PathBuf)> = ["master", "w1", "w2"]
        .iter()
        .map(|n| (*n, homes.join(n)))
        .collect();
    let mut services = Vec::new();
    let mut nodes = Vec::new();
    for (node, home) in &node_homes {
        let started = deployer(home, &["start", "--port", "0", "--json"]).expect_success();
        services.push(Service(home));
        let status: Value = serde_json::from_str(&started.stdout).unwrap();
        nodes.push(format!("{node}=127.0.0.1:{}", status["port"]));
    }
    let run = Run::new(
        python3()
            .env("PYTHONPATH", homes.join("master/python"))
            .args(["-m", "datablox_framework.master", "--topology"])
            .arg(&topology)
            .args(["--nodes", &nodes.join(","), "--timeout", "120", "--json"])
            .output()
            .unwrap(),
    )
    .expect_success();
    let answer: Value = serde_json::from_str(&run.stdout).unwrap();
    let planned: serde_json::Map<String, Value> = plan["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_str().unwrap().to_string(), b["node"].clone()))
        .collect();
    assert_eq!(answer["placement"], Value::Object(planned));
    assert_eq!(
        answer["deployed"],
        serde_json::json!({"master": [], "w1": [], "w2": []}),
        "{answer}"
    );
    let words: Vec<u64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["words"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(words, [2, 5]);
    drop(services);

    // An `at` naming no given node: exit 1, named, nothing written.
    let bundles = tmp.path().join("never");
    let run = Run::new(
        xtask_command(
            &repo_root(),
            &[
                "deploy",
                "--dist",
                dist.to_str().unwrap(),
                "--topology",
                repo_root()
                    .join("topologies/word-count.json")
                    .to_str()
                    .unwrap(),
                "--nodes",
                "w1,w2",
                "--bundle",
                bundles.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap(),
    )
    .expect_failure(1);
    assert!(
        run.stderr.contains(
            "block `files` is placed `at` node `master`, which is not one of the nodes w1, w2"
        ),
        "{}",
        run.stderr
    );
    assert!(!bundles.exists());
}

/// `--platform NAME VERSION` reaches the deployer: the plan resolves for the nodes' platform,
/// not the build machine's, so bundles built on different machines for the same nodes agree.
#[test]
fn topology_platform_flag_sets_the_nodes_platform_key() {
    let tmp = TempRepo::empty();
    let dist = tmp.path().join("dist");
    let out = tmp.path().join("bundles");
    let run = place(
        &repo_root(),
        &dist,
        &[
            "--bundle",
            out.to_str().unwrap(),
            "--platform",
            "mac-osx",
            "10.6",
            "--dry-run",
            "--json",
        ],
        &[],
    )
    .expect_success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["platform"]["name"], "mac-osx");
    assert_eq!(plan["platform"]["version"], "10.6");
    assert!(!out.exists());
    // A platform the caretaker's `inside` constraint does not allow is refused, named.
    let refused = place(
        &repo_root(),
        &dist,
        &[
            "--bundle",
            out.to_str().unwrap(),
            "--platform",
            "ubuntu-linux",
            "12.04",
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("the host `ubuntu-linux 12.04`"),
        "{}",
        refused.stderr
    );
    assert!(!out.exists());
    // One value only is a usage error, before anything is built.
    let usage = place(
        &repo_root(),
        &dist,
        &[
            "--bundle",
            out.to_str().unwrap(),
            "--platform",
            "ubuntu-linux",
        ],
        &[],
    );
    assert_eq!(usage.status.code(), Some(2), "{}", usage.stderr);
    assert!(!out.exists());
}
