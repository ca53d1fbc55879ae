//! `cargo xtask new`: a block name -> a new block directory with a block class and a test that
//! passes, and its manifest.
//!
//! Everything is decided and checked before anything is written: the name rules, the paths (none
//! may exist), the `requires` keys (against the checked manifests). After writing, the manifests
//! are checked again; if the new tree does not pass, what was written is removed.

use std::path::{Path, PathBuf};

use crate::check;
use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::model::{Key, mangle};

/// What `new` is asked to create.
#[derive(Clone, Debug)]
pub struct NewOptions {
    pub name: String,
    pub version: String,
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
}

/// Scaffolds the block in `repo`.
pub fn new(repo: &Path, options: &NewOptions) -> Result<Created> {
    let display = options.name.trim();
    if let Some(problem) = check::block_name_problem(display) {
        return Err(Error::new(
            Diagnostic::error(problem.code, problem.message).help(problem.help),
        ));
    }
    let version = options.version.trim();
    let version_module = mangle(version);
    let version_ok = !version.is_empty()
        && version_module
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !version_ok {
        return Err(Error::new(
            Diagnostic::error(
                "bad-version",
                format!("`{}` is not a block version", options.version),
            )
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
    let before = check::load(repo)?;
    if let Some(existing) = before.model.resources.iter().find(|r| r.key == key) {
        return Err(Error::new(
            Diagnostic::error(
                "duplicate-resource",
                format!("resource `{key}` already exists"),
            )
            .file(&existing.manifest)
            .help("choose another name, or another version with `--version`"),
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
    let files: Vec<(PathBuf, String)> = vec![
        (block_dir.join("__init__.py"), String::new()),
        (
            block_dir.join(format!("b_{module}.py")),
            block_source(display, &module),
        ),
        (
            block_dir.join(format!("test_{module}.py")),
            test_source(display, &module, &package),
        ),
        (
            manifest.clone(),
            manifest_source(display, version, &options.requires),
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

    let mut written = Vec::new();
    let result = write_all(repo, &block_dir, &files, &mut written).and_then(|()| check::load(repo));
    match result {
        Ok(after) => {
            let warnings = after
                .warnings
                .into_iter()
                .filter(|w| !before.warnings.contains(w))
                .collect();
            let test_file = files[2].0.clone();
            Ok(Created {
                key,
                block_dir,
                files: written,
                test_file,
                warnings,
            })
        }
        Err(error) => {
            // Leave the repository as it was: the new files only, never anything else.
            for path in written.iter().rev() {
                let _ = std::fs::remove_file(repo.join(path));
            }
            let _ = std::fs::remove_dir(repo.join(&block_dir));
            Err(error)
        }
    }
}

fn write_all(
    repo: &Path,
    block_dir: &Path,
    files: &[(PathBuf, String)],
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let dir = repo.join(block_dir);
    std::fs::create_dir_all(&dir).with_path("create", &dir)?;
    for (relative, content) in files {
        let path = repo.join(relative);
        // `create_new` so that a file that appeared since the check is never overwritten.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_path("create", &path)?;
        written.push(relative.clone());
        std::io::Write::write_all(&mut file, content.as_bytes()).with_path("write", &path)?;
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
    - in `on_load`, read the configuration (`self.config_value(config, "name", default, kind)`) and
      declare the ports with the fields their records carry: `self.add_input("input", ["path"])`
      means records must have `path`, `self.add_output("output", ["path", "size"])` lists what is
      pushed (`None`: whatever came in);
    - in `recv_push`, turn each batch (a `Log`: `log["path"]` is a column, `log.iter_rows()` yields
      dicts) into rows and push them with `self.push_rows("output", rows)`;
    - a source generates its records in `on_start` and declares no input; a sink declares no output;
      totals go out in `on_shutdown`;
    - list what the block needs installed in `requires` of its manifest under manifests/.
    Then make the test beside this file say what the block does.
    """

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
