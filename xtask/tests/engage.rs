//! Engage's own rules: what the generated tree must hold for Engage's code to read it, and what
//! `check` refuses because Engage's config engine or installer would refuse (or silently break) it
//! at deploy time. Each case injects one kind of defect into the fixture.

use serde_json::Value;

use crate::support::{TempRepo, golden};

/// `dist` on the changed fixture fails with exit 1, writes nothing, and prints `name`'s golden
/// errors; `check` reports the same.
fn expect_refused(name: &str, repo: TempRepo) {
    let run = repo.xtask(&["dist"]).expect_failure(1);
    assert!(
        !repo.path().join("target").exists(),
        "{name}: nothing may be written on bad input"
    );
    golden(&format!("engage/{name}.stderr"), &run.stderr);
    let check = repo.xtask(&["check"]).expect_failure(1);
    assert_eq!(
        check.stderr.matches("error: ").count(),
        run.stderr.matches("error: ").count()
    );
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `config_src/config/parse_rdef.ml` (`parse_rdef`) refuses the merged definitions when one
/// lacks `display_name`; the fixture's `greeting-table` and `requests` give none.
#[test]
fn every_definition_has_a_display_name() {
    let repo = TempRepo::fixture();
    repo.xtask(&["dist"]).expect_success();
    let tree = repo.path().join("target/dist/datablox");
    let mut files = vec![tree.join("metadata/resource_definitions.json")];
    for entry in std::fs::read_dir(tree.join("drivers")).unwrap() {
        let resources = entry.unwrap().path().join("resources.json");
        if resources.is_file() {
            files.push(resources);
        }
    }
    let mut seen = 0;
    for file in files {
        for definition in read_json(&file).as_array().unwrap() {
            seen += 1;
            let name = definition.get("display_name").and_then(Value::as_str);
            assert!(
                name.is_some_and(|n| !n.is_empty()),
                "{}: {} has no display_name",
                file.display(),
                definition["key"]
            );
        }
    }
    assert_eq!(seen, 6, "every resource of the fixture is defined once");
    let definitions = read_json(&tree.join("metadata/resource_definitions.json"));
    let greeting = definitions
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"]["name"] == "greeting-table")
        .unwrap();
    assert_eq!(greeting["display_name"], "greeting-table 1.0");
}

/// `engine/installer_config.py` (`parse_installer_config`) requires four strings, `log_level`
/// among them, and options with `choice_name` and `file_name`; `engine/engage_file_layout.py`
/// (`get_install_spec_template_file`) reads `metadata/<file_name>.tmpl`.
#[test]
fn installer_config_is_what_engage_reads() {
    let repo = TempRepo::fixture();
    repo.xtask(&["dist"]).expect_success();
    let metadata = repo.path().join("target/dist/datablox/metadata");
    let config = read_json(&metadata.join("installer_config.json"));
    for name in [
        "resource_def_file_name",
        "software_library_file_name",
        "log_level",
        "application_name",
    ] {
        assert!(config[name].is_string(), "{name} missing: {config}");
    }
    for name in ["resource_def_file_name", "software_library_file_name"] {
        assert!(metadata.join(config[name].as_str().unwrap()).is_file());
    }
    let options = config["install_spec_options"].as_array().unwrap();
    assert_eq!(options.len(), 1);
    for option in options {
        assert!(option["choice_name"].is_string());
        let file_name = option["file_name"].as_str().unwrap();
        assert_eq!(file_name, "install_spec.json");
        assert!(
            metadata.join(format!("{file_name}.tmpl")).is_file(),
            "Engage reads {file_name}.tmpl"
        );
    }
}

/// A block deploys on demand from a spec naming only its key: it, and what it pulls in, must
/// install with no config values; an install spec's instance must give what has no default.
#[test]
fn config_values_nobody_gives_are_refused() {
    let repo = TempRepo::fixture()
        .file(
            "manifests/hello.toml",
            "[block]\nname = \"Hello\"\nversion = \"1.0\"\nrequires = [\"greeting-table 1.0\", \"requests >=2.0, <3\"]\n\n[block.config-port]\ndirectory = \"path\"\nbatch = { type = \"int\", default = 10 }\n",
        )
        .file(
            "manifests/greeting-table.toml",
            "[resource]\nname = \"greeting-table\"\nversion = \"1.0\"\nmanager = \"misc_driver\"\npackage = { file = \"engage-extension/files/greetings.json\" }\n\n[resource.config-port]\nlanguage = \"string\"\n",
        )
        .file(
            "manifests/fixture-service.toml",
            &std::fs::read_to_string(
                crate::support::fixture_dir().join("manifests/fixture-service.toml"),
            )
            .unwrap()
            .replace("port = { type = \"int\", default = 7 }", "port = \"int\""),
        );
    expect_refused("config_values", repo);
}

/// `${...}` as `config_src/config/templates.ml` reads it: an unterminated `${` and a name with
/// other characters are literal text; `parse_rdef.ml` and `generate.ml` resolve only
/// `config_port.X` and `input_ports.P.X`; an output property without a value is never set.
#[test]
fn references_the_config_engine_does_not_resolve_are_refused() {
    let repo = TempRepo::fixture().file(
        "manifests/greeting-table.toml",
        r#"[resource]
name = "greeting-table"
version = "1.0"
manager = "misc_driver"
package = { file = "engage-extension/files/greetings.json" }

[resource.config-port]
mode = { type = "string", default = "plain $$ and $${literal}" }
table = { type = "map", default = { a = "b" } }

[resource.input-ports.host]
genforma_home = "path"

[resource.output-ports.table]
unterminated = { type = "path", fixed-value = "${input_ports.host.genforma_home/greetings" }
dashed = { type = "path", fixed-value = "${input-ports.host.genforma_home}/greetings" }
output = { type = "path", fixed-value = "${output_ports.table.dashed}" }
unknown = { type = "path", fixed-value = "${input_ports.hosts.genforma_home}" }
fine = { type = "path", fixed-value = "${input_ports.host.genforma_home}/${config_port.mode}" }
unset = "path"
"#,
    );
    expect_refused("references", repo);
}

/// Engage's installer appends `.tmpl` to a choice's file name, so a chosen spec's file ends in it.
#[test]
fn an_installer_choice_is_a_template() {
    let text =
        std::fs::read_to_string(crate::support::fixture_dir().join("manifests/extension.toml"))
            .unwrap()
            .replace(
                "file = \"install_spec.json.tmpl\"",
                "file = \"install_spec.json\"",
            );
    let repo = TempRepo::fixture().file("manifests/extension.toml", &text);
    expect_refused("installer_template", repo);
}

/// `engine/cmdline_install.py` (`select_configuration`) picks one of the installer's choices.
#[test]
fn an_installer_offers_a_choice() {
    let text =
        std::fs::read_to_string(crate::support::fixture_dir().join("manifests/extension.toml"))
            .unwrap()
            .replace("choice = \"Service node\"\n", "");
    let repo = TempRepo::fixture().file("manifests/extension.toml", &text);
    expect_refused("installer_choice", repo);
}

/// `config_src/config/generate.ml`: an instance's `inside` and its port mapping come from the
/// spec alone (`find_inside_ref`), every input port needs a mapping (`find_port_map`), and a
/// mapping reads an output port the referenced resource has (`map_input_ports`).
#[test]
fn install_spec_instances_are_wired_as_engage_wires_them() {
    let text =
        std::fs::read_to_string(crate::support::fixture_dir().join("manifests/extension.toml"))
            .unwrap()
            .replace(
                "port-mapping = { host = \"host\" }",
                "port-mapping = { host = \"hosts\" }",
            );
    let text = format!(
        "{text}\n[[install-spec]]\nfile = \"bare_spec.json\"\n[[install-spec.instance]]\nid = \"svc\"\nkey = \"fixture-service 0.3\"\n"
    );
    let repo = TempRepo::fixture().file("manifests/extension.toml", &text);
    expect_refused("instance_wiring", repo);
}

/// `engine/library.py` (`_parse_package`): a downloader is a registered class, and a package
/// downloaded by one names the file it downloads to.
#[test]
fn a_package_downloader_is_one_engage_registers() {
    let repo = TempRepo::fixture().file(
        "manifests/greeting-table.toml",
        "[resource]\nname = \"greeting-table\"\nversion = \"1.0\"\nmanager = \"misc_driver\"\npackage = { file = \"engage-extension/files/greetings.json\", downloader = \"wget\" }\n",
    );
    expect_refused("package_downloader", repo);
}
