//! `cargo xtask import`: a legacy Engage extension tree (and its `blox/`, its Makefile's package
//! sources) -> TOML manifests, the hand-written driver code, and the sources of every package.
//!
//! Three stages, one module each: `legacy` reads the tree as Engage and the legacy build read it,
//! `convert` decides the manifests and every file to write (defects become warnings that skip
//! only what they concern), `write` checks every target and then writes, refusing to overwrite a
//! file that differs unless asked to (`--force`), and never outside the target project.

mod convert;
mod legacy;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Error, Result};
use crate::model::Key;

pub use convert::normalized;

/// What `import` is asked to do; paths are absolute.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The legacy extension directory (`.../engage/datablox`).
    pub legacy: PathBuf,
    /// The legacy `blox/` directory, if not where the Makefile or the layout says.
    pub blox: Option<PathBuf>,
    /// The project to write into: `manifests/` and the sources go below it.
    pub target: PathBuf,
    /// `--sources NAME=DIR`: the source of the `sw_packages` file `NAME`.
    pub sources: Vec<(String, PathBuf)>,
    /// Replace files that exist and differ.
    pub force: bool,
}

/// What `import` did. `imported` and `skipped` together hold every key the legacy tree defines.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Distinct keys of the legacy definitions.
    pub keys_read: usize,
    pub imported: Vec<Key>,
    pub skipped: Vec<Key>,
    pub warnings: Vec<Diagnostic>,
    /// Files written, relative to the target.
    pub written: Vec<PathBuf>,
    /// Files that existed with other content and were replaced (`--force`).
    pub replaced: Vec<PathBuf>,
    /// Files left as they were because they already hold the same content.
    pub unchanged: usize,
}

/// A file the import will write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Text(String),
    /// A file or a symbolic link of the legacy tree, copied as it is (mode, link target).
    Copy(PathBuf),
}

/// Warnings collected on the way.
pub type Notes = Vec<Diagnostic>;

pub fn import(options: &ImportOptions) -> Result<ImportReport> {
    // `..` in the paths given is resolved first, so that what lies inside the legacy tree is seen
    // to be inside it.
    let options = &ImportOptions {
        legacy: legacy::normalize(&options.legacy),
        blox: options.blox.as_deref().map(legacy::normalize),
        target: legacy::normalize(&options.target),
        sources: options
            .sources
            .iter()
            .map(|(name, dir)| (name.clone(), legacy::normalize(dir)))
            .collect(),
        force: options.force,
    };
    let extension = &options.legacy;
    if !extension.join("drivers").is_dir() && !extension.join("metadata").is_dir() {
        let nested = extension.join("datablox");
        let help = if nested.join("drivers").is_dir() || nested.join("metadata").is_dir() {
            format!(
                "name the extension directory itself: `{}`",
                nested.display()
            )
        } else {
            "name the legacy extension directory itself (the one holding drivers/ and metadata/), e.g. `legacy/engage/datablox`".to_string()
        };
        return Err(Error::new(
            Diagnostic::error(
                "not-an-extension",
                format!(
                    "`{}` has neither `drivers/` nor `metadata/`",
                    extension.display()
                ),
            )
            .file(extension)
            .help(help),
        ));
    }
    for (name, dir) in &options.sources {
        if !dir.exists() {
            return Err(Error::new(
                Diagnostic::error(
                    "bad-sources",
                    format!(
                        "`--sources {name}={}`: no such file or directory",
                        dir.display()
                    ),
                )
                .help("give the directory (or file) the package is made from"),
            ));
        }
    }
    let mut notes = Notes::new();
    let legacy = legacy::read(options, &mut notes)?;
    let existing = existing_manifests(&options.target);
    let converted = convert::convert(&legacy, &existing, &mut notes);
    let mut report = ImportReport {
        keys_read: legacy.keys_read,
        imported: converted.imported.clone(),
        skipped: converted.skipped.clone(),
        ..ImportReport::default()
    };
    write::write(
        &options.target,
        &converted.files,
        options.force,
        &mut report,
    )?;
    report.warnings = notes;
    Ok(report)
}

/// The keys the target's manifests already define, with their file stems: an imported key is
/// written to the same file, so that a merge never leaves a key defined twice.
fn existing_manifests(target: &Path) -> BTreeMap<Key, String> {
    let mut found = BTreeMap::new();
    let Ok(paths) = legacy::read_dir_sorted(&target.join("manifests")) else {
        return found;
    };
    for path in paths {
        let name = legacy::file_name(&path);
        let Some(stem) = name.strip_suffix(".toml") else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(file) = toml::from_str::<crate::manifest::ResourceFile>(&text) else {
            continue;
        };
        let key = match (&file.block, &file.resource) {
            (Some(block), None) => Key {
                name: block.get_ref().name.get_ref().to_lowercase(),
                version: block.get_ref().version.get_ref().clone(),
            },
            (None, Some(resource)) => Key {
                name: resource.get_ref().name.get_ref().clone(),
                version: resource.get_ref().version.get_ref().clone(),
            },
            _ => continue,
        };
        found.insert(key, stem.to_string());
    }
    found
}
