//! `cargo xtask import` on `fixtures/legacy`, a tree with the layout, structures and defects of
//! the real legacy Datablox tree (see its README): import -> check -> dist regenerates, for every
//! key that is not a defect, equal definitions, library entries (or driver directories) and
//! package lists, and archives with the same members as the legacy Makefile's `tar czf`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use xtask::import::normalized;

use crate::support::{Run, copy_tree, golden, list_archive, repo_root, xtask_command};

fn run_in(dir: &Path, args: &[&str]) -> Run {
    Run::new(xtask_command(dir, args).output().unwrap())
}

/// A copy of the fixture as `<tmp>/legacy`, and an empty `<tmp>/project` to import into.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("xtask-legacy-")
        .tempdir()
        .unwrap();
    copy_tree(
        &repo_root().join("xtask/tests/fixtures/legacy"),
        &dir.path().join("legacy"),
    );
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    (dir, project)
}

const EXTENSION: &str = "../legacy/engage/datablox";

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn key_text(value: &Value) -> String {
    format!(
        "{} {}",
        value["name"].as_str().unwrap(),
        value["version"].as_str().unwrap()
    )
}

fn driver_dir(key: &Value) -> String {
    format!(
        "{}__{}",
        key["name"].as_str().unwrap(),
        key["version"].as_str().unwrap()
    )
    .replace(['.', '-'], "_")
}

/// What Engage sees of an extension tree, per key: the merged definition, how it is installed
/// (library module, or the driver directory of a new-style entry) and its packages.
fn engage_view(extension: &Path) -> BTreeMap<String, (Value, String, Value)> {
    let mut definitions = Vec::new();
    let central = read_json(&extension.join("metadata/resource_definitions.json"));
    let central = match central {
        Value::Object(mut object) => object.remove("resource_definitions").unwrap(),
        list => list,
    };
    definitions.extend(central.as_array().unwrap().iter().cloned());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(extension.join("drivers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        if dir.join("resources.json").is_file() {
            let list = read_json(&dir.join("resources.json"));
            definitions.extend(list.as_array().unwrap().iter().cloned());
        }
    }
    let mut library = BTreeMap::new();
    for entry in read_json(&extension.join("metadata/resource_library.json"))
        .as_array()
        .unwrap()
    {
        library.insert(
            key_text(&entry["key"]),
            (
                format!("library {}", entry["mgr_module_name"].as_str().unwrap()),
                entry["packages"].clone(),
            ),
        );
    }
    let mut view = BTreeMap::new();
    for definition in definitions {
        let key = key_text(&definition["key"]);
        let (installer, packages) = library.get(&key).cloned().unwrap_or_else(|| {
            let dir = extension
                .join("drivers")
                .join(driver_dir(&definition["key"]));
            assert!(dir.join("driver.py").is_file(), "{key}: no driver");
            (
                format!("driver directory {}", driver_dir(&definition["key"])),
                read_json(&dir.join("packages.json")),
            )
        });
        view.entry(key)
            .or_insert((normalized(&definition), installer, packages));
    }
    view
}

/// The members `tar czf NAME <top>` run in `parent` writes, as `tar t` lists them.
fn tar_members(parent: &Path, top: &str) -> Vec<String> {
    let mut members = Vec::new();
    for entry in walkdir::WalkDir::new(parent.join(top)) {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(parent).unwrap();
        members.push(relative.to_string_lossy().into_owned());
    }
    members.sort();
    members
}

fn archive_members(path: &Path) -> Vec<String> {
    let listing = list_archive(&std::fs::read(path).unwrap());
    let mut members: Vec<String> = listing
        .lines()
        .map(|line| {
            let name = line.split_whitespace().nth(6).unwrap();
            name.trim_end_matches('/').to_string()
        })
        .collect();
    members.sort();
    members
}

#[test]
fn legacy_tree_round_trip_regenerates_every_valid_key() {
    let (dir, project) = workspace();
    let legacy = dir.path().join("legacy");
    let run = run_in(&project, &["import", EXTENSION]).expect_success();
    golden("author/import_legacy.stderr", &run.stderr);

    // Counts add up to the keys read; the defects are skipped, nothing else.
    assert!(
        run.stderr
            .contains("Imported 12 of 15 resources, skipped 3, 7 warnings"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Skipped `bundle 1.0`, `escape 1.0`, `ghost-query 1.0`"),
        "{}",
        run.stderr
    );
    // Each defect is reported once.
    for defect in [
        "block `ghost-query 1.0`: its block directory `blox/ghost_query__1_0` is gone",
        "no build produces `tools-0.3.tar.gz`",
        "no build produces `zipped-1.0.zip`",
        "no build produces `bundle.tgz`",
        "the package `../../../escape.txt` is not a file name of sw_packages",
        "block directory `blox/lonely__1_0` has sources but no resource defines it",
        "driver directory `drivers/stray__1_0` belongs to no defined resource",
    ] {
        assert_eq!(
            run.stderr.matches(defect).count(),
            1,
            "`{defect}` once:\n{}",
            run.stderr
        );
    }
    // Nothing lands outside the project.
    let mut beside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(beside, ["legacy", "project"]);

    run_in(&project, &["check"]).expect_success();
    run_in(&project, &["dist"]).expect_success();
    let dist = project.join("target/dist/datablox");

    let before = engage_view(&legacy.join("engage/datablox"));
    let after = engage_view(&dist);
    let skipped = ["bundle 1.0", "escape 1.0", "ghost-query 1.0"];
    // The packages reported as built by nothing are left out; Engage falls back to the next one.
    let dropped = ["tools-0.3.tar.gz", "zipped-1.0.zip"];
    let mut compared = 0;
    for (key, (definition, installer, packages)) in &before {
        if skipped.contains(&key.as_str()) {
            assert!(!after.contains_key(key), "{key} is a defect");
            continue;
        }
        let (new_definition, new_installer, new_packages) = after
            .get(key)
            .unwrap_or_else(|| panic!("{key} regenerated"));
        assert_eq!(new_definition, definition, "definition of {key}");
        assert_eq!(new_installer, installer, "installer of {key}");
        let kept: Vec<&Value> = packages
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !dropped.contains(&p["location"].as_str().unwrap_or("")))
            .collect();
        let regenerated: Vec<&Value> = new_packages.as_array().unwrap().iter().collect();
        assert_eq!(regenerated, kept, "packages of {key}");
        compared += 1;
    }
    assert_eq!(compared, 12);
    assert_eq!(after.len(), 12);

    // The archives hold what the Makefile's `tar czf` puts in them.
    let sources = [
        (
            "datablox_framework.tgz",
            legacy.clone(),
            "datablox_framework",
        ),
        (
            "datablox_engage_adapter.tgz",
            legacy.join("engage"),
            "adapter_pkg",
        ),
        (
            "word_count__1_0.tgz",
            legacy.join("blox"),
            "word_count__1_0",
        ),
        ("tally__1_0.tgz", legacy.join("blox"), "tally__1_0"),
        (
            "dir_reader__1_0.tgz",
            legacy.join("blox"),
            "dir_reader__1_0",
        ),
    ];
    for (name, parent, top) in &sources {
        assert_eq!(
            archive_members(&dist.join("sw_packages").join(name)),
            tar_members(parent, top),
            "members of {name}"
        );
    }
    let mut archives: Vec<String> = std::fs::read_dir(dist.join("sw_packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    archives.sort();
    assert_eq!(
        archives,
        [
            "datablox_engage_adapter.tgz",
            "datablox_framework.tgz",
            "dir_reader__1_0.tgz",
            "reader_schema.xml",
            "tally__1_0.tgz",
            "word_count__1_0.tgz"
        ]
    );
    // Symbolic links and executable bits survive the copy, so the archives do not change.
    let listing =
        list_archive(&std::fs::read(dist.join("sw_packages/datablox_framework.tgz")).unwrap());
    assert!(listing.contains("loader -> datablox-loader"), "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("- 755") && l.ends_with("bin/datablox-loader")),
        "{listing}"
    );
    use std::os::unix::fs::PermissionsExt;
    let script = project.join("engage-extension/drivers/web_server__2_1/check_server.sh");
    assert_ne!(
        std::fs::metadata(script).unwrap().permissions().mode() & 0o111,
        0
    );

    // Two versions of one resource get two manifests.
    assert!(project.join("manifests/web-server-2_0.toml").is_file());
    assert!(project.join("manifests/web-server-2_1.toml").is_file());
    golden(
        "author/import_legacy_extension.toml",
        &std::fs::read_to_string(project.join("manifests/extension.toml")).unwrap(),
    );
}

#[test]
fn legacy_import_into_an_existing_project() {
    let (dir, _) = workspace();
    let repo = dir.path().join("repo");
    copy_tree(&crate::support::fixture_dir(), &repo);
    let extension = dir.path().join("legacy/engage/datablox");
    let extension = extension.to_str().unwrap();

    // The first message of the refusal says what to do; nothing is written.
    let before = crate::support::snapshot(&repo);
    let refused = run_in(&repo, &["import", extension]).expect_failure(1);
    let first = refused
        .stderr
        .lines()
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(first.contains("already has"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--into DIR") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert_eq!(crate::support::snapshot(&repo), before, "nothing written");

    // `--into` a subdirectory: a project of its own, which passes check.
    run_in(&repo, &["import", extension, "--into", "imported"]).expect_success();
    run_in(&repo.join("imported"), &["check"]).expect_success();

    // `--force` merges, listing what it replaces; no key ends up defined twice.
    let merged = run_in(&repo, &["import", extension, "--force"]).expect_success();
    assert!(
        merged.stderr.contains("Replaced manifests/extension.toml"),
        "{}",
        merged.stderr
    );
    let mut keys = BTreeMap::new();
    for entry in std::fs::read_dir(repo.join("manifests")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: toml::Value = toml::from_str(&text).unwrap();
        let table = value.get("block").or_else(|| value.get("resource"));
        if let Some(table) = table {
            let key = format!(
                "{} {}",
                table["name"].as_str().unwrap().to_lowercase(),
                table["version"].as_str().unwrap()
            );
            assert!(
                keys.insert(key.clone(), path.clone()).is_none(),
                "{key} twice"
            );
        }
    }
}

#[test]
fn legacy_import_without_makefile_guesses_and_takes_sources() {
    let (dir, project) = workspace();
    let legacy = dir.path().join("legacy");
    std::fs::remove_file(legacy.join("engage/Makefile")).unwrap();
    std::fs::create_dir(legacy.join("elsewhere")).unwrap();
    std::fs::rename(legacy.join("blox"), legacy.join("elsewhere/blox")).unwrap();

    // No blox/ where the layout says: one warning suggests `--blox`.
    let run = run_in(&project, &["import", EXTENSION, "--into", "a"]).expect_success();
    assert_eq!(
        run.stderr.matches("pass `--blox DIR`").count(),
        1,
        "{}",
        run.stderr
    );

    // With `--blox`, the framework's source is guessed (and reported), the adapter's is named.
    let run = run_in(
        &project,
        &[
            "import",
            EXTENSION,
            "--into",
            "b",
            "--blox",
            "../legacy/elsewhere/blox",
            "--sources",
            "datablox_engage_adapter.tgz=../legacy/engage/adapter_pkg",
            "--sources",
            "reader_schema.xml=../legacy/elsewhere/blox/dir_reader__1_0/schema.xml",
        ],
    )
    .expect_success();
    golden("author/import_legacy_guesses.stderr", &run.stderr);
    assert!(
        run.stderr
            .contains("nothing names the source of `datablox_framework.tgz`"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("datablox_engage_adapter.tgz`"),
        "{}",
        run.stderr
    );
    run_in(&project.join("b"), &["check"]).expect_success();
}
