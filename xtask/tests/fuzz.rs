//! The fuzz targets' inputs worth keeping, replayed in the normal suite: every file of
//! `fuzz/regressions/<target>/` (crashers found by `cargo fuzz`, and the inputs that made `check`
//! panic before it was fixed) and the seeds of `fuzz/seeds/<target>/` go through the same code as
//! the fuzz targets (`fuzz/bodies.rs`), which must not panic.

#[path = "../../fuzz/bodies.rs"]
mod bodies;

use crate::support::repo_root;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut inputs = Vec::new();
    for kind in ["regressions", "seeds"] {
        let dir = repo_root().join("fuzz").join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    inputs.sort();
    inputs
}

fn replay(target: &str, run: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no inputs for the `{target}` target");
    let mut panicked = Vec::new();
    for (name, bytes) in &inputs {
        if std::panic::catch_unwind(|| run(bytes)).is_err() {
            panicked.push(name.clone());
        }
    }
    assert!(
        panicked.is_empty(),
        "the `{target}` fuzz target panics on:\n{}\nreproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run {target} <file>` in fuzz/",
        panicked.join("\n")
    );
}

#[test]
fn manifest_reader_survives_every_kept_input() {
    replay("manifest", bodies::manifest);
}

#[test]
fn check_survives_every_kept_input() {
    replay("check", bodies::check);
}
