//! The benchmark corpus: `gen_corpus.py`'s blocks, generated once per profile and seed under
//! `target/bench/`, made into a repository that `dist` accepts (manifests, drivers, and the module
//! files a block needs).

use std::path::{Path, PathBuf};

use serde::Serialize;
use xshell::{Shell, cmd};

use super::{BenchOptions, TOOLS_ENV};
use crate::error::{Diagnostic, Error, IoContext, Result};

#[derive(Clone, Debug, Serialize)]
pub struct Corpus {
    pub profile: String,
    pub seed: u64,
    pub blocks: usize,
    pub files: usize,
    pub bytes: u64,
    /// `__init__.py` and `b_<name>.py` files the bench added so that every block dir is a block.
    pub added_module_files: usize,
    pub repo: PathBuf,
    /// The file changed by the "one file changed" mode.
    pub changed_file: PathBuf,
}

pub(super) fn find_tools(repo: &Path, flag: Option<&Path>) -> Result<PathBuf> {
    let dir = match (flag, std::env::var_os(TOOLS_ENV)) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(dir)) => PathBuf::from(dir),
        (None, None) => repo.join("..").join("shared").join("bench"),
    };
    for tool in ["gen_corpus.py", "pack.sh"] {
        if !dir.join(tool).is_file() {
            return Err(Error::new(
                Diagnostic::error("bench-tools", format!("there is no `{}`", dir.join(tool).display())).help(format!(
                    "point `--corpus-tools DIR` or `{TOOLS_ENV}` at the directory holding gen_corpus.py and pack.sh"
                )),
            ));
        }
    }
    dir.canonicalize().with_path("read", &dir)
}

const READY: &str = "corpus.ready";

/// Generates the corpus once per profile and seed, makes every block dir a block, and writes the
/// manifests and drivers around it.
pub(super) fn prepare_corpus(
    repo: &Path,
    tools: &Path,
    work: &Path,
    options: &BenchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Corpus> {
    let bench_repo = work.join("repo");
    let blox = bench_repo.join("blox");
    let ready = work.join(READY);
    if !ready.is_file() {
        remove_dir(work)?;
        std::fs::create_dir_all(&bench_repo).with_path("create", &bench_repo)?;
        log(&format!(
            "generating the {} corpus (seed {}) in {}",
            options.profile,
            options.seed,
            bench_repo.display()
        ));
        let sh = shell()?;
        let gen_corpus = tools.join("gen_corpus.py");
        let (profile, seed, jobs) = (
            &options.profile,
            options.seed.to_string(),
            options.jobs.to_string(),
        );
        // stdout is the summary line; stderr (progress, errors) goes to the terminal.
        let summary = cmd!(
            sh,
            "python3 {gen_corpus} --profile {profile} --seed {seed} -j {jobs} {bench_repo}"
        )
        .quiet()
        .read()
        .map_err(|error| {
            command_failed(
                error,
                "check the profile name (small, medium, large) and that python3 is installed",
            )
        })?;
        log(summary.trim());
    }

    let mut block_dirs: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&blox).with_path("read", &blox)? {
        let entry = entry.with_path("read", &blox)?;
        if entry.file_type().with_path("read", &entry.path())?.is_dir() {
            block_dirs.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    block_dirs.sort();

    let manifests = bench_repo.join("manifests");
    std::fs::create_dir_all(&manifests).with_path("create", &manifests)?;
    write(&manifests.join("extension.toml"), EXTENSION_TOML)?;
    write(&manifests.join("datablox-framework.toml"), FRAMEWORK_TOML)?;
    let drivers = bench_repo.join("engage-extension").join("drivers");
    std::fs::create_dir_all(&drivers).with_path("create", &drivers)?;
    for driver in ["generic_blox_driver.py", "python_package_driver.py"] {
        let source = repo.join("engage-extension").join("drivers").join(driver);
        let bytes = std::fs::read(&source).unwrap_or_else(|_| {
            format!("# stand-in for {driver}, missing from the repository\n").into_bytes()
        });
        write(&drivers.join(driver), &String::from_utf8_lossy(&bytes))?;
    }

    for dir_name in &block_dirs {
        let Some((name, version)) = dir_name.split_once("__") else {
            return Err(Error::new(Diagnostic::error(
                "bench-corpus",
                format!("block dir `{dir_name}` is not named `<name>__<version>`"),
            )));
        };
        let display: Vec<String> = name.split('_').map(capitalize).collect();
        let manifest = format!(
            "[block]\nname = \"{}\"\nversion = \"{}\"\n",
            display.join("-"),
            version.replace('_', ".")
        );
        write(&manifests.join(format!("{name}.toml")), &manifest)?;
        for (module, content) in [
            ("__init__.py".to_string(), String::new()),
            (
                format!("b_{name}.py"),
                format!("\"\"\"Benchmark block {name}.\"\"\"\n"),
            ),
        ] {
            let path = blox.join(dir_name).join(module);
            if !path.exists() {
                write(&path, &content)?;
            }
        }
    }
    if !ready.is_file() {
        write(&ready, "ready\n")?;
    }

    let mut sizes = Vec::new();
    let (mut files, mut bytes) = (0, 0);
    for dir_name in &block_dirs {
        let (block_files, block_bytes) = dir_size(&blox.join(dir_name))?;
        files += block_files;
        bytes += block_bytes;
        sizes.push((block_bytes, dir_name.clone()));
    }
    sizes.sort();
    let (_, median_dir) = sizes.get(sizes.len() / 2).cloned().unwrap_or_default();
    let median_name = median_dir
        .split_once("__")
        .map_or(median_dir.as_str(), |(n, _)| n)
        .to_string();
    let changed_file = PathBuf::from("blox")
        .join(&median_dir)
        .join(format!("b_{median_name}.py"));
    Ok(Corpus {
        profile: options.profile.clone(),
        seed: options.seed,
        blocks: block_dirs.len(),
        files,
        bytes,
        added_module_files: count_added(&blox, &block_dirs)?,
        repo: bench_repo,
        changed_file,
    })
}

/// Module files the corpus generator does not write: those the bench added (now or on a run
/// before, since the corpus is reused).
fn count_added(blox: &Path, block_dirs: &[String]) -> Result<usize> {
    let mut count = 0;
    for dir_name in block_dirs {
        let name = dir_name
            .split_once("__")
            .map_or(dir_name.as_str(), |(n, _)| n);
        let path = blox.join(dir_name).join(format!("b_{name}.py"));
        let text = std::fs::read_to_string(&path).with_path("read", &path)?;
        if text.starts_with("\"\"\"Benchmark block") {
            count += 1;
            if std::fs::metadata(blox.join(dir_name).join("__init__.py"))
                .is_ok_and(|m| m.len() == 0)
            {
                count += 1;
            }
        }
    }
    Ok(count)
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

const EXTENSION_TOML: &str = r#"# Written by `cargo xtask bench` around the generated corpus.
[extension]
name = "datablox"
version = "1.0"
inside = ["ubuntu-linux 14.04"]

[[external]]
name = "ubuntu-linux"
versions = ["14.04"]
platform = true
"#;

const FRAMEWORK_TOML: &str = r#"# Written by `cargo xtask bench`: every block needs the framework; here it packages nothing.
[resource]
name = "datablox-framework"
version = "1.0"
manager = "python_package_driver"
package = { dummy = true }

[resource.input-ports.host]
genforma_home = "path"

[resource.output-ports.datablox_framework]
BLOXPATH = { type = "path", fixed-value = "${input_ports.host.genforma_home}/blox" }
"#;

pub(super) fn write(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|existing| existing == text) {
        return Ok(());
    }
    std::fs::write(path, text).with_path("write", path)
}

pub(super) fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove", path, error))
        }
        _ => Ok(()),
    }
}

/// Regular files and their bytes under `dir`.
fn dir_size(dir: &Path) -> Result<(usize, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(|e| Error::io("read", dir, e.into()))?;
        if entry.file_type().is_file() {
            files += 1;
            bytes += entry
                .metadata()
                .map_err(|e| Error::io("read", entry.path(), e.into()))?
                .len();
        }
    }
    Ok((files, bytes))
}

/// Reads every file once, so the first timed mode does not pay for the disk.
pub(super) fn warm(dir: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(|e| Error::io("read", dir, e.into()))?;
        if entry.file_type().is_file() {
            let mut file = std::fs::File::open(entry.path()).with_path("read", entry.path())?;
            std::io::copy(&mut file, &mut std::io::sink()).with_path("read", entry.path())?;
        }
    }
    Ok(())
}

/// A shell for one command; the caller sets its directory.
pub(super) fn shell() -> Result<Shell> {
    Shell::new().map_err(|error| command_failed(error, "run the bench from an existing directory"))
}

/// A command that could not run or failed, with xshell's description of it.
pub(super) fn command_failed(error: xshell::Error, help: &str) -> Error {
    Error::new(Diagnostic::error("bench-run", error.to_string()).help(help))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_from_dir_names() {
        let display: Vec<String> = "event_builder_19".split('_').map(capitalize).collect();
        assert_eq!(display.join("-"), "Event-Builder-19");
    }
}
