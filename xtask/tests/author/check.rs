//! `cargo xtask check`: the warnings for what is legal but suspicious, in both output forms.

use crate::support::{TempRepo, golden};

/// The fixture plus one case of each warning: an unreachable resource, a range that admits one
/// defined version, an output port no mapping reads, a block directory without a manifest.
fn suspicious_repo() -> TempRepo {
    TempRepo::fixture()
        .file(
            "manifests/lonely.toml",
            "[resource]\nname = \"lonely\"\nversion = \"1.0\"\nmanager = \"python_package_driver\"\npackage = { dummy = true }\n\n[resource.input-ports.host]\ngenforma_home = \"path\"\n\n[resource.output-ports.lonely]\nhome = { type = \"path\", fixed-value = \"${input_ports.host.genforma_home}/lonely\" }\n",
        )
        .file("manifests/narrow.toml", "[block]\nname = \"Narrow\"\nversion = \"1.0\"\nrequires = [\"requests >=2.0\"]\n")
        .file("blox/narrow__1_0/__init__.py", "")
        .file("blox/narrow__1_0/b_narrow.py", "")
        .file("blox/stray__1_0/b_stray.py", "")
}

#[test]
fn check_reports_suspicious_things_as_warnings() {
    let repo = suspicious_repo();
    let run = repo.xtask(&["check"]).expect_success();
    golden("author/check_warnings.stderr", &run.stderr);
}

#[test]
fn check_json_prints_one_object_per_warning() {
    let repo = suspicious_repo();
    let run = repo.xtask(&["check", "--json"]).expect_success();
    for line in run.stdout.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).expect("each line is a JSON object");
        assert_eq!(value["severity"], "warning");
    }
    golden("author/check_warnings.jsonl", &run.stdout);
}

#[test]
fn check_fixture_is_clean_of_new_warnings() {
    let run = TempRepo::fixture()
        .xtask(&["check", "--json"])
        .expect_success();
    golden("author/check_fixture.jsonl", &run.stdout);
}
