//! What the fuzz targets run, shared with the regression test (`xtask/tests/fuzz.rs`) that
//! replays every input kept in `fuzz/regressions/`: both must never panic, whatever the input.

use std::path::{Path, PathBuf};

/// The manifest reader on one arbitrary text, as a resource manifest and as the extension
/// manifest; every error is rendered, as `main` would print it.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("manifests/fuzz.toml");
    if let Err(error) = xtask::manifest::parse::<xtask::manifest::ResourceFile>(path, text) {
        let _ = error.to_string();
    }
    if let Err(error) = xtask::manifest::parse::<xtask::manifest::ExtensionFile>(path, text) {
        let _ = error.to_string();
    }
}

/// The fixture repository, read but never written: the paths that manifests name resolve there.
pub fn fixture_repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("xtask/tests/fixtures/repo")
}

/// `check` (and, when it passes, `plan`, which generates the extension tree) on arbitrary
/// manifests: the input is split at lines `%%` into manifests; the first is the extension
/// manifest when it has an `[extension]` table, else the fixture's is used.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let repo = fixture_repo();
    let mut parts: Vec<&str> = text.split("\n%%\n").take(8).collect();
    let extension = if parts.first().is_some_and(|p| p.contains("[extension]")) {
        parts.remove(0).to_string()
    } else {
        std::fs::read_to_string(repo.join("manifests/extension.toml")).unwrap_or_default()
    };
    let mut texts = vec![(PathBuf::from("manifests/extension.toml"), extension)];
    for (index, part) in parts.iter().enumerate() {
        texts.push((
            PathBuf::from(format!("manifests/fuzz{index}.toml")),
            part.to_string(),
        ));
    }
    let raw = match xtask::manifest::parse_all(texts, Vec::new()) {
        Ok(raw) => raw,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let inputs = xtask::inputs::Inputs::new();
    match xtask::check::check(&raw, &repo, &inputs) {
        Ok(checked) => {
            for warning in &checked.warnings {
                let _ = warning.to_string();
            }
            if let Err(error) = xtask::plan::make(&checked.model, &repo, None, &inputs) {
                let _ = error.to_string();
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}
