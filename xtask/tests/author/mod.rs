//! Tests of the authoring commands: `new`, `import`, `check` warnings and `graph`. They use the
//! shared `support` helpers; golden files live under `xtask/tests/golden/author/`.

mod check;
mod graph;
mod import;
mod import_legacy;
mod new;

use std::path::Path;

/// A stand-in generic block driver: `dist` only requires that the file exists.
pub const GENERIC_DRIVER: &str = "\"\"\"The generic block driver (test stand-in).\"\"\"\n";

/// Writes `files` (path, content) under `root`.
pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (relative, content) in files {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// The text of a file of a temporary repository.
pub fn read(repo: &crate::support::TempRepo, relative: &str) -> String {
    std::fs::read_to_string(repo.path().join(relative)).unwrap()
}
