//! The Python side, run by `cargo test` so that one command runs every test: the blocks',
//! framework's, adapter's and drivers' unit tests (Python 3, and 2.7 for the drivers where it is
//! installed), and the Engage-like checker on the extension built from this repository.

use std::ffi::OsStr;
use std::process::Output;

use xshell::{Shell, cmd};

use crate::support::{Run, TempRepo, repo_root, xtask_command};

/// Runs a Python 3 script (through xshell, like every command xtask runs) and returns its output,
/// whatever its exit status.
fn python3(script: &str, args: &[&OsStr]) -> Output {
    let sh = Shell::new().unwrap();
    let script = repo_root().join(script);
    cmd!(sh, "python3 {script} {args...}")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .quiet()
        .ignore_status()
        .output()
        .unwrap()
}

#[test]
fn python_unit_tests_pass() {
    let output = python3("ci/python_tests.py", &[]);
    let run = Run::new(output);
    let closing = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .rfind(|l| l.contains(" passed, "))
        .map(str::to_string);
    assert!(
        run.status.success(),
        "python tests failed ({closing:?})\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let closing = closing.expect("the runner prints `N passed, N failed`");
    let passed: usize = closing.trim().split(' ').next().unwrap().parse().unwrap();
    assert!(
        passed >= 100,
        "the blocks, framework, adapter and drivers have their tests: {closing}"
    );
    println!("python: {closing}");
}

#[test]
fn the_repository_extension_passes_the_engage_checker() {
    let out = TempRepo::empty();
    let out_dir = out.path().join("dist");
    let run = Run::new(
        xtask_command(&repo_root(), &["dist", "--out", out_dir.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .expect_success();
    assert!(!run.stderr.contains("error"), "{}", run.stderr);
    let output = python3("ci/check_extension.py", &[out_dir.as_os_str()]);
    let check = Run::new(output);
    assert!(
        check.status.success(),
        "check_extension:\n{}\n{}",
        check.stdout,
        check.stderr
    );
    assert!(check.stdout.contains("ok:"), "{}", check.stdout);
}
