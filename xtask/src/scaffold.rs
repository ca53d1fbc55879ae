//! `cargo xtask new`: a block name -> a new block directory with a block class and a test that
//! passes, and its manifest.
//!
//! Everything is decided and checked before anything is written: the name rules, the paths (none
//! may exist), the `requires` keys (against the checked manifests). After writing, the manifests
//! are checked again; if the new tree does not pass, what was written is removed.

use std::path::{Path, PathBuf};

use crate::check;
use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::inputs::Inputs;
use crate::model::{Key, mangle};

/// What `new` is asked to create.
#[derive(Clone, Debug)]
pub struct NewOptions {
    pub name: String,
    /// None: `1.0` for a new block; required for another version of an existing one.
    pub version: Option<String>,
    /// `"NAME SPEC"` constraints for the manifest's `requires`.
    pub requires: Vec<String>,
}

/// What `new` created, for the report.
#[derive(Debug)]
pub struct Created {
    pub key: Key,
    /// The block directory, relative to the repository.
    pub block_dir: PathBuf,
    /// Every file written, relative to the repository, in the order written.
    pub files: Vec<PathBuf>,
    /// The test file, relative to the repository.
    pub test_file: PathBuf,
    /// Warnings of the check that ran on the new tree.
    pub warnings: Vec<Diagnostic>,
    /// The version the new one was copied from, when the block existed.
    pub copied_from: Option<String>,
    /// Documents whose resource graph (between the graph markers) was brought up to date.
    pub graphs_updated: Vec<PathBuf>,
}

/// Scaffolds the block in `repo`.
pub fn new(repo: &Path, options: &NewOptions) -> Result<Created> {
    let display = options.name.trim();
    if let Some(problem) = check::block_name_problem(display) {
        return Err(Error::new(
            Diagnostic::error(problem.code, problem.message).help(problem.help),
        ));
    }
    let version = options.version.as_deref().unwrap_or("1.0").trim();
    let version_module = mangle(version);
    let version_ok = !version.is_empty()
        && version_module
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !version_ok {
        return Err(Error::new(
            Diagnostic::error("bad-version", format!("`{version}` is not a block version"))
                .help("write a version such as `1.0` (digits, letters, `.` and `-`)"),
        ));
    }
    let module = mangle(display);
    let package = format!("{module}__{version_module}");
    let key = Key {
        name: display.to_lowercase(),
        version: version.to_string(),
    };

    // The repository must be valid before we add to it, or the new block's check would be noise.
    let before = check::load(repo, &Inputs::new())?;
    // Another version of an existing block: a copy of its latest version.
    let latest = before
        .model
        .resources
        .iter()
        .filter(|r| r.key.name == key.name && r.kind == crate::model::Kind::Block)
        .max_by(|a, b| crate::model::compare_versions(&a.key.version, &b.key.version));
    if let Some(latest) = latest {
        if options.version.is_none() {
            let versions = versions_of(&before.model, &key.name);
            return Err(Error::new(
                Diagnostic::error(
                    "duplicate-resource",
                    format!("block `{}` already exists (versions {})", key.name, versions.join(", ")),
                )
                .file(&latest.manifest)
                .help(format!(
                    "for another version, copied from {}: `cargo xtask new {display} --version VERSION`",
                    latest.key.version
                )),
            ));
        }
        if let Some(existing) = before.model.resources.iter().find(|r| r.key == key) {
            let versions = versions_of(&before.model, &key.name);
            return Err(Error::new(
                Diagnostic::error(
                    "duplicate-resource",
                    format!("resource `{key}` already exists"),
                )
                .file(&existing.manifest)
                .help(format!(
                    "choose another name, or another version with `--version` (defined: {})",
                    versions.join(", ")
                )),
            ));
        }
        if !options.requires.is_empty() {
            return Err(Error::new(
                Diagnostic::error(
                    "requires-with-copy",
                    "`--requires` with a new version of an existing block".to_string(),
                )
                .help("the new version is a copy of the latest one, with its `requires`: edit its manifest afterwards"),
            ));
        }
        return new_version(repo, &before, latest, &key, display);
    }
    if let Some(existing) = before.model.resources.iter().find(|r| r.key == key) {
        return Err(Error::new(
            Diagnostic::error(
                "duplicate-resource",
                format!("resource `{key}` already exists"),
            )
            .file(&existing.manifest)
            .help("choose another name"),
        ));
    }
    let mut diagnostics = Vec::new();
    for text in &options.requires {
        let constraint = match check::parse_constraint_text(text) {
            Ok(constraint) => constraint,
            Err(problem) => {
                diagnostics.push(
                    Diagnostic::error("bad-constraint", format!("`--requires {text}`: {}", problem.message))
                        .help("write `--requires \"NAME VERSION\"`, e.g. `--requires \"chardet 5.2\"` or `\"simplejson >=3.0\"`"),
                );
                continue;
            }
        };
        let model = &before.model;
        let defined: Vec<&str> = model
            .resources
            .iter()
            .filter(|r| r.key.name == constraint.name)
            .map(|r| r.key.version.as_str())
            .chain(
                model
                    .extension
                    .externals
                    .iter()
                    .filter(|e| e.name == constraint.name)
                    .flat_map(|e| e.versions.iter().map(String::as_str)),
            )
            .collect();
        if !defined
            .iter()
            .any(|version| constraint.version.matches(version))
        {
            let help = if defined.is_empty() {
                let mut names: Vec<&str> = model
                    .resources
                    .iter()
                    .filter(|r| r.kind != crate::model::Kind::Block)
                    .map(|r| r.key.name.as_str())
                    .collect();
                names.dedup();
                format!(
                    "no manifest defines `{}`; resources that can be required: {}",
                    constraint.name,
                    names.join(", ")
                )
            } else {
                format!(
                    "defined versions of `{}`: {}",
                    constraint.name,
                    defined.join(", ")
                )
            };
            diagnostics.push(
                Diagnostic::error(
                    "unmatched-constraint",
                    format!("`--requires {text}` matches no defined resource"),
                )
                .help(help),
            );
        }
    }

    let block_dir = PathBuf::from("blox").join(&package);
    let manifest = PathBuf::from("manifests").join(format!("{module}.toml"));
    let files: Vec<(PathBuf, Vec<u8>)> = vec![
        (block_dir.join("__init__.py"), Vec::new()),
        (
            block_dir.join(format!("b_{module}.py")),
            block_source(display, &module).into_bytes(),
        ),
        (
            block_dir.join(format!("test_{module}.py")),
            test_source(display, &module, &package).into_bytes(),
        ),
        (
            manifest.clone(),
            manifest_source(display, version, &options.requires).into_bytes(),
        ),
    ];
    for path in [&block_dir, &manifest] {
        if repo.join(path).symlink_metadata().is_ok() {
            diagnostics.push(
                Diagnostic::error("exists", format!("`{}` already exists", path.display()))
                    .file(path)
                    .help("`new` never touches what exists: remove it first, or choose another name or version"),
            );
        }
    }
    if !diagnostics.is_empty() {
        return Err(Error::many(diagnostics));
    }

    let test_file = files[2].0.clone();
    finish(repo, &before, key, block_dir, &files, test_file, None)
}

/// Writes the files, checks the new tree and refreshes the documented graph; on a failure,
/// removes what it wrote.
fn finish(
    repo: &Path,
    before: &check::Checked,
    key: Key,
    block_dir: PathBuf,
    files: &[(PathBuf, Vec<u8>)],
    test_file: PathBuf,
    copied_from: Option<String>,
) -> Result<Created> {
    let mut written = Vec::new();
    let result = write_all(repo, &block_dir, files, &mut written)
        .and_then(|()| check::load(repo, &Inputs::new()));
    match result {
        Ok(after) => {
            let graphs_updated = refresh_graphs(repo, &after.model)?;
            let warnings = after
                .warnings
                .into_iter()
                .filter(|w| !before.warnings.contains(w))
                .collect();
            Ok(Created {
                key,
                block_dir,
                files: written,
                test_file,
                warnings,
                copied_from,
                graphs_updated,
            })
        }
        Err(error) => {
            // Leave the repository as it was: the new files only, never anything else.
            for path in written.iter().rev() {
                let _ = std::fs::remove_file(repo.join(path));
            }
            let mut dirs: Vec<PathBuf> = written
                .iter()
                .filter_map(|path| path.parent().map(Path::to_path_buf))
                .filter(|dir| dir.starts_with(&block_dir))
                .collect();
            dirs.sort();
            dirs.dedup();
            for dir in dirs.iter().rev() {
                let _ = std::fs::remove_dir(repo.join(dir));
            }
            let _ = std::fs::remove_dir(repo.join(&block_dir));
            Err(error)
        }
    }
}

fn versions_of(model: &crate::model::Model, name: &str) -> Vec<String> {
    let mut versions: Vec<String> = model
        .resources
        .iter()
        .filter(|r| r.key.name == name)
        .map(|r| r.key.version.clone())
        .collect();
    versions.sort_by(|a, b| crate::model::compare_versions(a, b));
    versions
}

/// `new NAME --version V` for a block that exists: its latest version's directory and manifest,
/// copied, with the package name (`<module>__<version>`) and the manifest's version changed.
fn new_version(
    repo: &Path,
    before: &check::Checked,
    latest: &crate::model::Resource,
    key: &Key,
    display: &str,
) -> Result<Created> {
    let module = mangle(display);
    let old_package = format!("{module}__{}", mangle(&latest.key.version));
    let new_package = format!("{module}__{}", mangle(&key.version));
    let old_dir = PathBuf::from("blox").join(&old_package);
    let block_dir = PathBuf::from("blox").join(&new_package);
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for entry in walkdir::WalkDir::new(repo.join(&old_dir))
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != "__pycache__")
    {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(&old_dir).to_path_buf();
            Error::io("read", &path, e.into())
        })?;
        let name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_file() || name.ends_with(".pyc") {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(repo.join(&old_dir))
            .unwrap_or(entry.path());
        let bytes = std::fs::read(entry.path()).with_path("read", entry.path())?;
        let bytes = match String::from_utf8(bytes) {
            Ok(text) => text.replace(&old_package, &new_package).into_bytes(),
            Err(error) => error.into_bytes(),
        };
        files.push((block_dir.join(relative), bytes));
    }
    let manifest_text =
        std::fs::read_to_string(repo.join(&latest.manifest)).with_path("read", &latest.manifest)?;
    let manifest = latest
        .manifest
        .with_file_name(format!("{new_package}.toml"));
    files.push((
        manifest.clone(),
        with_version(&manifest_text, &key.version).into_bytes(),
    ));
    let mut diagnostics = Vec::new();
    for path in [&block_dir, &manifest] {
        if repo.join(path).symlink_metadata().is_ok() {
            diagnostics.push(
                Diagnostic::error("exists", format!("`{}` already exists", path.display()))
                    .file(path)
                    .help("`new` never touches what exists: remove it first, or choose another version"),
            );
        }
    }
    if !diagnostics.is_empty() {
        return Err(Error::many(diagnostics));
    }
    let test_file = block_dir.join(format!("test_{module}.py"));
    finish(
        repo,
        before,
        key.clone(),
        block_dir,
        &files,
        test_file,
        Some(latest.key.version.clone()),
    )
}

/// The manifest's text with the `version` of its `[block]` table replaced.
fn with_version(manifest: &str, version: &str) -> String {
    let mut table = String::new();
    let mut out = String::new();
    for line in manifest.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            table = trimmed.to_string();
        }
        let is_version = trimmed
            .strip_prefix("version")
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if table.starts_with("[block]") && is_version {
            out.push_str(&format!("version = {}\n", toml_string(version)));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The markers around the resource graph in the documentation (README.md, docs/*.md).
pub const GRAPH_START: &str = "<!-- graph:start -->";
pub const GRAPH_END: &str = "<!-- graph:end -->";

/// The documented graph: `cargo xtask graph --format mermaid` between the markers.
pub fn graph_block(model: &crate::model::Model) -> Result<String> {
    let options = crate::graph::GraphOptions {
        format: crate::graph::Format::Mermaid,
        focus: None,
    };
    let graph = crate::graph::render(model, &options)?;
    Ok(format!(
        "{GRAPH_START}\n```mermaid\n{graph}```\n{GRAPH_END}"
    ))
}

/// Rewrites the graph between the markers of README.md and docs/*.md to the model's, through a
/// temporary file and a rename; returns the documents it changed.
fn refresh_graphs(repo: &Path, model: &crate::model::Model) -> Result<Vec<PathBuf>> {
    let block = graph_block(model)?;
    let mut documents = vec![PathBuf::from("README.md")];
    if let Ok(entries) = std::fs::read_dir(repo.join("docs")) {
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| PathBuf::from("docs").join(e.file_name()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        names.sort();
        documents.extend(names);
    }
    let mut changed = Vec::new();
    for document in documents {
        let path = repo.join(&document);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (Some(start), Some(end)) = (text.find(GRAPH_START), text.find(GRAPH_END)) else {
            continue;
        };
        if end < start || text[start..end + GRAPH_END.len()] == block {
            continue;
        }
        let updated = format!(
            "{}{block}{}",
            &text[..start],
            &text[end + GRAPH_END.len()..]
        );
        let mut temporary = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(repo))
            .with_path("create a temporary file beside", &path)?;
        std::io::Write::write_all(&mut temporary, updated.as_bytes()).with_path("write", &path)?;
        temporary
            .persist(&path)
            .map_err(|e| Error::io("replace", &path, e.error))?;
        changed.push(document);
    }
    Ok(changed)
}

fn write_all(
    repo: &Path,
    block_dir: &Path,
    files: &[(PathBuf, Vec<u8>)],
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let dir = repo.join(block_dir);
    std::fs::create_dir_all(&dir).with_path("create", &dir)?;
    for (relative, content) in files {
        let path = repo.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_path("create", parent)?;
        }
        // `create_new` so that a file that appeared since the check is never overwritten.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_path("create", &path)?;
        written.push(relative.clone());
        std::io::Write::write_all(&mut file, content).with_path("write", &path)?;
    }
    Ok(())
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn manifest_source(display: &str, version: &str, requires: &[String]) -> String {
    let mut text = format!(
        "# {display}: say in one line what the block does. See docs/manifests.md.\n[block]\nname = {}\nversion = {}\n",
        toml_string(display),
        toml_string(version)
    );
    if !requires.is_empty() {
        let list: Vec<String> = requires.iter().map(|r| toml_string(r.trim())).collect();
        text.push_str(&format!("requires = [{}]\n", list.join(", ")));
    }
    text
}

fn block_source(display: &str, module: &str) -> String {
    format!(
        r#""""{display}: say here in one line what this block does."""

from datablox_framework.block import Block


class {module}(Block):
    """Scaffolded by `cargo xtask new`: passes every record of `input` on to `output` unchanged.

    To fill it in, replace this docstring with what the block does and then:
    - list the keys of its `args` in `ARGS` (a key outside it is refused before the run, with the
      closest one named);
    - name its ports in `INPUTS` and `OUTPUTS` (placement refuses a connection to a port that is
      not there, before anything is deployed);
    - in `on_load`, read the configuration (`self.config_value(config, "name", default, kind)`) and
      add those ports with the fields their records carry: `self.add_input("input", ["path"])`
      means records must have `path`, `self.add_output("output", ["path", "size"])` lists what is
      pushed (`None`: whatever came in);
    - in `recv_push`, turn each batch (a `Log`: `log["path"]` is a column, `log.iter_rows()` yields
      dicts) into rows and push them with `self.push_rows("output", rows)`;
    - a source generates its records in `on_start` and declares no input; a sink declares no output;
      totals go out in `on_shutdown`;
    - list what the block needs installed in `requires` of its manifest under manifests/.
    Then make the test beside this file say what the block does.
    """

    ARGS = ()
    INPUTS = ("input",)
    OUTPUTS = ("output",)

    def on_load(self, config):
        self.add_input("input", [])
        self.add_output("output", None)

    def recv_push(self, port, log):
        self.push_rows("output", list(log.iter_rows()))
"#
    )
}

fn test_source(display: &str, module: &str, package: &str) -> String {
    let words: String = display
        .split(['-', ' '])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    let class: String = words.chars().filter(char::is_ascii_alphanumeric).collect();
    format!(
        r#"import unittest

from datablox_framework.testing import run_block
from {package}.b_{module} import {module}


class {class}Test(unittest.TestCase):
    def test_passes_records_through(self):
        rows = [{{"path": "a.txt"}}, {{"path": "b.txt"}}]
        block, pushed = run_block({module}, {{}}, [("input", rows)])
        self.assertEqual(pushed, {{"output": rows}})


if __name__ == "__main__":
    unittest.main()
"#
    )
}
