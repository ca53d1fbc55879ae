//! Checks of the repository itself, so reviewers need not remember them: every block directory
//! has a manifest, every module is in ARCHITECTURE.md, every `.rs` file starts with `//!`, no
//! generated file is tracked, no line ends in whitespace, the code is formatted, and the `ci/`
//! shell scripts parse.

use std::process::Command;

use crate::support::repo_root;

fn tracked_files() -> Vec<String> {
    let output = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .split('\0')
        .filter(|name| !name.is_empty() && repo_root().join(name).exists())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_block_directory_has_a_manifest() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("blox")).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_dir() || entry.file_name() == "__pycache__" {
            continue;
        }
        let dir = entry.file_name().to_string_lossy().into_owned();
        let module = dir.split("__").next().unwrap();
        if !repo_root()
            .join(format!("manifests/{module}.toml"))
            .is_file()
        {
            missing.push(format!("blox/{dir}: add manifests/{module}.toml"));
        }
    }
    assert!(
        missing.is_empty(),
        "block directories without a manifest:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_module_is_in_the_codemap_and_documented() {
    let architecture = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).unwrap();
    let mut problems = Vec::new();
    // Top-level modules by file name (`check.rs`) or directory (`check/`), the files of a module
    // directory by their path below `xtask/src` (`check/paths.rs`).
    let src = repo_root().join("xtask/src");
    for entry in walkdir::WalkDir::new(&src).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(&src).unwrap();
        let mut name = relative.to_string_lossy().replace('\\', "/");
        if entry.file_type().is_dir() {
            name.push('/');
        } else if !name.ends_with(".rs") {
            continue;
        }
        if !architecture.contains(&format!("`{name}`")) {
            problems.push(format!(
                "xtask/src/{name}: describe it in ARCHITECTURE.md's codemap"
            ));
        }
    }
    for name in tracked_files().iter().filter(|name| name.ends_with(".rs")) {
        let text = std::fs::read_to_string(repo_root().join(name)).unwrap();
        if !text.starts_with("//!") {
            problems.push(format!(
                "{name}:1: start the file with a `//!` line saying what it owns"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_generated_file_is_tracked_and_no_line_ends_in_whitespace() {
    let mut problems = Vec::new();
    for name in tracked_files() {
        let generated = name.starts_with("target/")
            || name.contains("__pycache__")
            || name.ends_with(".pyc")
            || name.ends_with(".tgz");
        if generated {
            problems.push(format!("{name}: generated, remove it from git"));
            continue;
        }
        let Ok(text) = std::fs::read_to_string(repo_root().join(&name)) else {
            continue;
        };
        if name.starts_with("xtask/tests/golden/") || name.ends_with("/expected.stderr") {
            continue; // Golden files hold output exactly as produced.
        }
        for (index, line) in text.lines().enumerate() {
            if line.ends_with(' ') || line.ends_with('\t') {
                problems.push(format!("{name}:{}: trailing whitespace", index + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn code_is_formatted() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let available = Command::new(&cargo)
        .args(["fmt", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        // FIXME: rustfmt is not installed here; CI's toolchain has it.
        eprintln!("rustfmt not installed: formatting not checked");
        return;
    }
    let output = Command::new(&cargo)
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "run `cargo fmt`:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn the_repository_manifests_have_no_warnings() {
    let output = crate::support::xtask_command(&repo_root(), &["check", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim().is_empty(),
        "`cargo xtask check` reports:\n{stdout}"
    );
}

#[test]
fn ci_shell_scripts_parse_and_engage_real_refuses_a_missing_argument() {
    // `bash -n` on every shell script under ci/ (they are run by hand or by the release job, never
    // by `cargo test`, so a syntax error would otherwise go unseen).
    let scripts: Vec<String> = tracked_files()
        .into_iter()
        .filter(|name| name.starts_with("ci/") && name.ends_with(".sh"))
        .collect();
    assert!(
        scripts.iter().any(|s| s == "ci/engage-real.sh"),
        "{scripts:?}"
    );
    for script in &scripts {
        let output = Command::new("bash")
            .args(["-n", script])
            .current_dir(repo_root())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Usage errors exit 2 before any set-up work; --help exits 0.
    let script = repo_root().join("ci/engage-real.sh");
    let output = Command::new("bash").arg(&script).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage: ci/engage-real.sh"));
    let output = Command::new("bash")
        .arg(&script)
        .arg("/nonexistent-engage-checkout")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not an Engage source checkout"));
    let output = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ENGAGE_SRC"));
}
