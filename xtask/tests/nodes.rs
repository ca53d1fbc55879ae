//! A topology across nodes: three homes deployed from the real dist, a caretaker each on its own
//! port of 127.0.0.1, and the master (`python3 -m datablox_framework.master`, from a home) running
//! the same word-count topology across the three nodes and on one: equal outputs and counts, and
//! each node's `blox/` holds only the blocks placed on it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::deploy::{Service, blox, deployer, python3, wheels, xtask_deploy};
use crate::support::{Run, TempRepo, repo_root};

/// The repository's `topologies/word-count.json` with its paths under `samples` and `out`, and a
/// fifth block writing Word-Count's totals. `at`: the node of each block, in order (`None`: the
/// topology's own `at`s).
fn word_count(samples: &Path, out: &Path, at: Option<[&str; 5]>) -> Value {
    let text = std::fs::read_to_string(repo_root().join("topologies/word-count.json")).unwrap();
    let mut topology: Value = serde_json::from_str(&text).unwrap();
    topology["blocks"].as_array_mut().unwrap().push(
        json!({"id": "totals", "name": "JSON-Writer", "version": "1.0", "args": {}, "at": "master"}),
    );
    topology["connections"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "count.totals", "to": "totals.input"}));
    for (index, block) in topology["blocks"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        match block["id"].as_str().unwrap() {
            "files" => block["args"]["directory"] = json!(samples),
            "write" => block["args"]["path"] = json!(out.join("counts.jsonl")),
            "totals" => block["args"]["path"] = json!(out.join("totals.jsonl")),
            _ => {}
        }
        if let Some(at) = at {
            block["at"] = json!(at[index]);
        }
    }
    topology
}

/// Runs the master from `home`'s Python tree; returns its exit code, its JSON and its stderr.
fn master(home: &Path, topology: &Value, nodes: &str) -> (i32, Value, String) {
    let file = home.join("topology.json");
    std::fs::write(&file, topology.to_string()).unwrap();
    let run = Run::new(
        python3()
            .env("PYTHONPATH", home.join("python"))
            .args(["-m", "datablox_framework.master", "--topology"])
            .arg(&file)
            .args(["--nodes", nodes, "--timeout", "120", "--json"])
            .output()
            .unwrap(),
    );
    let answer = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run.status.code().unwrap_or(-1), answer, run.stderr)
}

fn read(dir: &Path) -> Vec<(String, String)> {
    ["counts.jsonl", "totals.jsonl"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read_to_string(dir.join(f)).unwrap()))
        .collect()
}

/// Per block: (emitted, received), without the node.
fn counts(answer: &Value) -> Vec<(String, u64, u64)> {
    answer["counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(block, c)| {
            (
                block.clone(),
                c["emitted"].as_u64().unwrap(),
                c["received"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn one_topology_gives_the_same_results_on_one_node_and_across_three() {
    let tmp = TempRepo::empty();
    let dist = tmp.path().join("dist");
    let wheels = wheels(tmp.path());
    let samples = tmp.path().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("a.txt"), "hello world\n").unwrap();
    std::fs::write(samples.join("b.txt"), "one two three\nfour five\n").unwrap();
    std::fs::write(samples.join("c.txt"), "no newline at the end").unwrap();

    // Three fresh homes with only the caretaker: the first through `cargo xtask deploy` (which
    // builds the dist and makes the home's cluster key), the others with the dist's node deployer,
    // as a node that received it does, given that key.
    let homes: Vec<PathBuf> = ["master", "w1", "w2"]
        .iter()
        .map(|n| tmp.path().join(n))
        .collect();
    let find_links = ["--find-links", wheels.to_str().unwrap()];
    xtask_deploy(&homes[0], &dist, &find_links).expect_success();
    for home in &homes[1..] {
        Run::new(
            python3()
                .arg(dist.join("datablox/bin/deploy"))
                .arg("--home")
                .arg(home)
                .arg("--key-file")
                .arg(homes[0].join("config/cluster.key"))
                .args(find_links)
                .output()
                .unwrap(),
        )
        .expect_success();
    }
    let mut services = Vec::new();
    let mut nodes = Vec::new();
    for (name, home) in ["master", "w1", "w2"].iter().zip(&homes) {
        let started = deployer(home, &["start", "--port", "0", "--json"]).expect_success();
        services.push(Service(home));
        let status: Value = serde_json::from_str(&started.stdout).unwrap();
        nodes.push(format!("{name}=127.0.0.1:{}", status["port"]));
    }

    // Across the three nodes: data crosses master -> w1, w1 -> w2, w2 -> master and w2 -> w1.
    let across = tmp.path().join("across");
    std::fs::create_dir_all(&across).unwrap();
    let topology = word_count(
        &samples,
        &across,
        Some(["master", "w1", "w2", "master", "w1"]),
    );
    let (code, three, stderr) = master(&homes[0], &topology, &nodes.join(","));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        three["placement"],
        json!({"files": "master", "hash": "w1", "count": "w2", "write": "master", "totals": "w1"})
    );
    assert_eq!(
        three["deployed"],
        json!({"master": ["Dir-Source 1.0", "JSON-Writer 1.0"], "w1": ["File-Hash 1.0", "JSON-Writer 1.0"],
               "w2": ["Word-Count 1.0"]})
    );
    // Each node received only the blocks placed on it.
    assert_eq!(
        blox(&homes[0]),
        ["__init__.py", "dir_source__1_0", "json_writer__1_0"]
    );
    assert_eq!(
        blox(&homes[1]),
        ["__init__.py", "file_hash__1_0", "json_writer__1_0"]
    );
    assert_eq!(blox(&homes[2]), ["__init__.py", "word_count__1_0"]);

    // On one node, placed by the master (everything on the only node).
    let alone = tmp.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    let (code, one, stderr) = master(
        &homes[0],
        &word_count(&samples, &alone, Some(["master"; 5])),
        &nodes[0],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(counts(&one), counts(&three));
    assert_eq!(one["delivered"], three["delivered"]);
    assert_eq!(
        counts(&one),
        [
            ("count".to_string(), 4, 3),
            ("files".to_string(), 3, 0),
            ("hash".to_string(), 3, 3),
            ("totals".to_string(), 0, 1),
            ("write".to_string(), 0, 3),
        ]
    );
    let expected = read(&alone);
    assert_eq!(read(&across), expected);
    let lines: Vec<Value> = expected[0]
        .1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let words: Vec<u64> = lines.iter().map(|l| l["words"].as_u64().unwrap()).collect();
    assert_eq!(words, [2, 5, 5]);
    assert_eq!(
        serde_json::from_str::<Value>(expected[1].1.trim()).unwrap(),
        json!({"files": 3, "lines": 4, "words": 12, "chars": 57})
    );

    // The topology's own `at`s (files, write and totals on master): the master places hash and
    // count with the node deployer's placement, read from its home, as `deploy place` does.
    let placed = tmp.path().join("placed");
    std::fs::create_dir_all(&placed).unwrap();
    let topology = word_count(&samples, &placed, None);
    let (code, answer, stderr) = master(&homes[0], &topology, &nodes.join(","));
    assert_eq!(code, 0, "{stderr}");
    let plan = Run::new(
        python3()
            .arg(dist.join("datablox/bin/deploy"))
            .args(["place", "--topology"])
            .arg(homes[0].join("topology.json"))
            .args(["--nodes", "master,w1,w2", "--dry-run", "--json"])
            .output()
            .unwrap(),
    )
    .expect_success();
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    for block in plan["blocks"].as_array().unwrap() {
        assert_eq!(
            answer["placement"][block["id"].as_str().unwrap()],
            block["node"]
        );
    }
    assert_ne!(answer["placement"]["hash"], answer["placement"]["count"]);
    assert_eq!(counts(&answer), counts(&one));
    assert_eq!(read(&placed), expected);
    drop(services);
}
