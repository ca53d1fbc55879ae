//! `cargo xtask import`: a faithful round trip on a clean legacy tree, a report for each defect
//! of a messy one, and no overwriting without `--force`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{GENERIC_DRIVER, write_files};
use crate::support::{Run, TempRepo, copy_tree, golden, xtask_command};

/// Differences of notation Engage does not see: `{"type": T}` is `T`.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(object)
            if object.len() == 1 && object.get("type").is_some_and(Value::is_string) =>
        {
            object["type"].clone()
        }
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        Value::Array(all) => Value::Array(all.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// Every JSON file of an extension tree, parsed and normalized; definitions and library entries
/// keyed by resource so that their order does not matter.
fn metadata(tree: &Path) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    for entry in walkdir::WalkDir::new(tree).sort_by_file_name() {
        let entry = entry.unwrap();
        let relative = entry
            .path()
            .strip_prefix(tree)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let is_json = relative.ends_with(".json") || relative.ends_with(".json.tmpl");
        if !entry.file_type().is_file() || !is_json {
            continue;
        }
        let value: Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        let value = match value {
            Value::Array(all) if all.iter().all(|v| v.get("key").is_some()) => Value::Object(
                all.iter()
                    .map(|v| (v["key"].to_string(), normalized(v)))
                    .collect(),
            ),
            other => normalized(&other),
        };
        found.insert(relative, value);
    }
    found
}

fn driver_dirs(tree: &Path) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(tree.join("drivers"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    Run::new(xtask_command(dir, args).output().unwrap())
}

/// A clean legacy layout: the extension tree that `dist` makes of the fixture repository (blocks,
/// the framework archive, a service with its own driver, library entries, a file package, install
/// specs), with `blox/` and the framework's sources beside it, as legacy repositories kept them.
fn clean_legacy() -> (TempRepo, tempfile::TempDir) {
    let source = TempRepo::fixture();
    source.xtask(&["dist", "--out", "out"]).expect_success();
    let legacy = tempfile::Builder::new()
        .prefix("xtask-legacy-")
        .tempdir()
        .unwrap();
    copy_tree(
        &source.path().join("out/datablox"),
        &legacy.path().join("datablox"),
    );
    copy_tree(&source.path().join("blox"), &legacy.path().join("blox"));
    copy_tree(&source.path().join("python"), &legacy.path().join("python"));
    (source, legacy)
}

#[test]
fn import_then_dist_regenerates_equal_metadata() {
    let (_source, legacy) = clean_legacy();
    let target = tempfile::Builder::new()
        .prefix("xtask-imported-")
        .tempdir()
        .unwrap();
    let legacy_dir = legacy.path().join("datablox");
    let run = run_in(target.path(), &["import", legacy_dir.to_str().unwrap()]).expect_success();
    assert!(run.stderr.contains("skipped 0,"), "{}", run.stderr);
    golden("author/import_clean.stderr", &run.stderr);
    golden(
        "author/import_clean_hello.toml",
        &std::fs::read_to_string(target.path().join("manifests/hello.toml")).unwrap(),
    );
    golden(
        "author/import_clean_extension.toml",
        &std::fs::read_to_string(target.path().join("manifests/extension.toml")).unwrap(),
    );

    run_in(target.path(), &["check"]).expect_success();
    run_in(target.path(), &["dist"]).expect_success();
    let regenerated = target.path().join("target/dist/datablox");
    assert_eq!(
        metadata(&regenerated),
        metadata(&legacy_dir),
        "definitions, library entries, packages and install specs"
    );
    assert_eq!(
        driver_dirs(&regenerated),
        driver_dirs(&legacy_dir),
        "driver directories for the same keys"
    );
}

#[test]
fn import_refuses_to_overwrite_without_force() {
    let (_source, legacy) = clean_legacy();
    let target = tempfile::Builder::new()
        .prefix("xtask-imported-")
        .tempdir()
        .unwrap();
    let legacy_dir = legacy.path().join("datablox");
    let legacy_arg = legacy_dir.to_str().unwrap();
    write_files(target.path(), &[("manifests/hello.toml", "# mine\n")]);
    let refused = run_in(target.path(), &["import", legacy_arg]).expect_failure(1);
    golden("author/import_overwrite.stderr", &refused.stderr);
    assert!(
        !target.path().join("manifests/extension.toml").exists(),
        "nothing is written when one file would be overwritten"
    );
    assert_eq!(
        std::fs::read_to_string(target.path().join("manifests/hello.toml")).unwrap(),
        "# mine\n"
    );

    run_in(target.path(), &["import", legacy_arg, "--force"]).expect_success();
    assert_ne!(
        std::fs::read_to_string(target.path().join("manifests/hello.toml")).unwrap(),
        "# mine\n"
    );
    let again = run_in(target.path(), &["import", legacy_arg]).expect_success();
    assert!(
        again.stderr.contains("0 files written"),
        "a second import finds everything in place: {}",
        again.stderr
    );
}

const BLOCK_DRIVER: &str = "from engage.drivers.datablox.generic_blox_driver import Manager\n";

fn block_definition(module: &str, name: &str, extra_environment: &str) -> String {
    format!(
        r#"[{{"key": {{"name": "{name}", "version": "1.0"}}, "display_name": "{name} block",
  "input_ports": {{"datablox_framework": {{"BLOXPATH": "path"}}}},
  "output_ports": {{"block_info": {{"home": {{"type": "path", "fixed-value": "${{input_ports.datablox_framework.BLOXPATH}}/{module}"}}}}}},
  "inside": {{"key": {{"name": "ubuntu-linux", "version": "14.04"}}}},
  "environment": {{"all-of": [{{"key": {{"name": "datablox-framework", "version": "1.0"}}, "port_mapping": {{"datablox_framework": "datablox_framework"}}}}{extra_environment}]}}}}]"#
    )
}

fn block_packages(module: &str) -> String {
    format!(
        r#"[{{"type": "Archive", "package_class": "GzippedTarArchive", "location": "{module}.tgz"}}]"#
    )
}

/// A legacy tree with one of each defect the issue lists, beside resources that import cleanly.
fn messy_legacy(root: &Path) {
    let good = block_definition("good__1_0", "good", "");
    let good_packages = block_packages("good__1_0");
    let needy = block_definition(
        "needy__1_0",
        "needy",
        r#", {"key": {"name": "ghost", "version": "2.0"}}"#,
    );
    let needy_packages = block_packages("needy__1_0");
    let lost = block_definition("lost__1_0", "lost", "");
    let lost_packages = block_packages("lost__1_0");
    let framework = r#"{"key": {"name": "datablox-framework", "version": "1.0"}, "inside": {"key": {"name": "ubuntu-linux", "version": "14.04"}, "port_mapping": {"host": "host"}},
      "input_ports": {"host": {"genforma_home": "path"}},
      "output_ports": {"datablox_framework": {"BLOXPATH": {"type": "path", "fixed-value": "${input_ports.host.genforma_home}/blox"}}}}"#;
    let table = r#"{"key": {"name": "table", "version": "1.0"}, "inside": {"key": {"name": "ubuntu-linux", "version": "14.04"}}}"#;
    let twice = r#"{"key": {"name": "twice", "version": "1.0"}, "inside": {"key": {"name": "ubuntu-linux", "version": "14.04"}}}"#;
    let definitions = format!("[{framework}, {table}, {twice}, {twice}]");
    let library = r#"[
  {"key": {"name": "datablox-framework", "version": "1.0"}, "mgr_module_name": "engage.drivers.datablox.python_package_driver",
   "packages": [{"type": "Archive", "package_class": "GzippedTarArchive", "location": "datablox_framework.tgz"}]},
  {"key": {"name": "table", "version": "1.0"}, "mgr_module_name": "engage.drivers.datablox.python_package_driver",
   "packages": [{"type": "File", "package_class": "FilePackage", "location": "table.json"}]},
  {"key": {"name": "twice", "version": "1.0"}, "mgr_module_name": "engage.drivers.datablox.python_package_driver",
   "packages": [{"type": "Reference", "package_class": "DummyPackage", "location": ""}]}
]"#;
    let service = r#"[{"key": {"name": "svc", "version": "1.0"}, "inside": {"key": {"name": "ubuntu-linux", "version": "14.04"}}}]"#;
    let service_packages = r#"[{"type": "Archive", "package_class": "GzippedTarArchive", "location": "svc_bundle.tgz"}]"#;
    write_files(
        root,
        &[
            ("datablox/version.txt", "1.0\n"),
            ("datablox/drivers/__init__.py", ""),
            ("datablox/drivers/generic_blox_driver.py", GENERIC_DRIVER),
            (
                "datablox/drivers/python_package_driver.py",
                "class Manager(object):\n    pass\n",
            ),
            ("datablox/drivers/good__1_0/driver.py", BLOCK_DRIVER),
            ("datablox/drivers/good__1_0/resources.json", &good),
            ("datablox/drivers/good__1_0/packages.json", &good_packages),
            ("datablox/drivers/needy__1_0/driver.py", BLOCK_DRIVER),
            ("datablox/drivers/needy__1_0/resources.json", &needy),
            ("datablox/drivers/needy__1_0/packages.json", &needy_packages),
            ("datablox/drivers/lost__1_0/driver.py", BLOCK_DRIVER),
            ("datablox/drivers/lost__1_0/resources.json", &lost),
            ("datablox/drivers/lost__1_0/packages.json", &lost_packages),
            ("datablox/drivers/broken__1_0/driver.py", BLOCK_DRIVER),
            (
                "datablox/drivers/broken__1_0/resources.json",
                "[{\"key\": {\"name\": \"broken\",\n  \"version\": \"1.0\"}\n",
            ),
            ("datablox/drivers/broken__1_0/packages.json", "[]"),
            (
                "datablox/drivers/svc__1_0/driver.py",
                "class Manager(object):\n    pass\n",
            ),
            ("datablox/drivers/svc__1_0/resources.json", service),
            ("datablox/drivers/svc__1_0/packages.json", service_packages),
            ("datablox/metadata/resource_definitions.json", &definitions),
            ("datablox/metadata/resource_library.json", library),
            (
                "datablox/metadata/install_spec.json.tmpl",
                "[{\"id\": \"host\", \"key\": ${HOST_KEY}}]\n",
            ),
            ("blox/good__1_0/__init__.py", ""),
            (
                "blox/good__1_0/b_good.py",
                "class good(object):\n    pass\n",
            ),
            ("blox/needy__1_0/__init__.py", ""),
            ("blox/needy__1_0/b_needy.py", ""),
            ("blox/orphan__1_0/__init__.py", ""),
            ("blox/orphan__1_0/b_orphan.py", ""),
            ("python/datablox_framework/__init__.py", ""),
        ],
    );
}

#[test]
fn import_reports_each_defect_and_imports_the_rest() {
    let legacy = tempfile::Builder::new()
        .prefix("xtask-legacy-")
        .tempdir()
        .unwrap();
    messy_legacy(legacy.path());
    let target = tempfile::Builder::new()
        .prefix("xtask-imported-")
        .tempdir()
        .unwrap();
    let legacy_dir = legacy.path().join("datablox");
    let run = run_in(target.path(), &["import", legacy_dir.to_str().unwrap()]).expect_success();
    golden("author/import_defects.stderr", &run.stderr);
    let reports = [
        "broken__1_0/resources.json` is not valid JSON",
        "install_spec.json.tmpl` is not valid JSON",
        "no build produces `svc_bundle.tgz`",
        "no build produces `table.json`",
        "block directory `blox/orphan__1_0` has sources but no resource defines it",
        "block `lost 1.0`: its block directory `blox/lost__1_0` is gone",
        "`twice 1.0` is defined twice",
        "`needy 1.0` needs `ghost 2.0`, which matches nothing",
    ];
    for report in reports {
        assert!(
            run.stderr.contains(report),
            "no report of `{report}`:\n{}",
            run.stderr
        );
    }
    // `needy` is imported with its reference to `ghost` kept, which `check` then reports.
    let check = run_in(target.path(), &["check"]).expect_failure(1);
    assert!(check.stderr.contains("ghost"), "{}", check.stderr);
    let mut manifests: Vec<String> = std::fs::read_dir(target.path().join("manifests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    manifests.sort();
    assert_eq!(
        manifests,
        [
            "datablox-framework.toml",
            "extension.toml",
            "good.toml",
            "needy.toml",
            "twice.toml"
        ]
    );
}

#[test]
fn import_of_a_missing_directory_is_an_error() {
    let target = tempfile::Builder::new()
        .prefix("xtask-imported-")
        .tempdir()
        .unwrap();
    let run = run_in(target.path(), &["import", "nowhere/datablox"]).expect_failure(1);
    assert!(
        run.stderr
            .contains("has neither `drivers/` nor `metadata/`"),
        "{}",
        run.stderr
    );
    assert!(
        std::fs::read_dir(target.path()).unwrap().next().is_none(),
        "nothing is written"
    );
}
