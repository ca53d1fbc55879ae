//! Incremental builds: what a second `dist` rebuilds, rewrites and removes, run on temporary
//! repositories with the real binary.
//!
//! The repositories here are generated, not copied from a fixture, so each test states the blocks
//! it needs. Source files get an mtime an hour in the past, as a checkout has, so that no file
//! is "racy" (modified during the previous build) unless a test makes it so.

mod damage;
mod fresh;
mod listing;
mod rebuild;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const EXTENSION_TOML: &str = r#"[extension]
name = "datablox"
version = "1.0"
inside = ["ubuntu-linux 14.04"]

[[external]]
name = "ubuntu-linux"
versions = ["14.04"]
platform = true
"#;

const FRAMEWORK_TOML: &str = r#"[resource]
name = "datablox-framework"
version = "1.0"
manager = "python_package_driver"
package = { dummy = true }

[resource.input-ports.host]
genforma_home = "path"

[resource.output-ports.datablox_framework]
BLOXPATH = { type = "path", fixed-value = "${input_ports.host.genforma_home}/blox" }
"#;

/// A repository with the given blocks, each `blox/<name>__1_0/` with its two modules and a data
/// file, in a temporary directory removed when dropped.
pub struct Repo {
    dir: tempfile::TempDir,
}

/// One `dist` run: exit code, output and, with `--json`, the summary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn summary(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "dist failed:\n{}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    pub fn rebuilt(&self) -> u64 {
        self.summary()["rebuilt"].as_u64().unwrap()
    }

    pub fn skipped(&self) -> u64 {
        self.summary()["skipped"].as_u64().unwrap()
    }

    /// Whether the run took the no-op fast path (`fresh.rs`).
    pub fn fresh(&self) -> bool {
        self.summary()["fresh"].as_bool().unwrap()
    }
}

/// Per file of the output directory: its bytes, mtime and inode.
pub type Snapshot = BTreeMap<PathBuf, (Vec<u8>, SystemTime, u64)>;

impl Repo {
    pub fn new(blocks: &[&str]) -> Repo {
        let repo = Repo {
            dir: tempfile::Builder::new()
                .prefix("xtask-incremental-")
                .tempdir()
                .unwrap(),
        };
        repo.write("manifests/extension.toml", EXTENSION_TOML);
        repo.write("manifests/datablox-framework.toml", FRAMEWORK_TOML);
        let drivers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engage-extension/drivers");
        for driver in ["generic_blox_driver.py", "python_package_driver.py"] {
            let text = std::fs::read_to_string(drivers.join(driver))
                .unwrap_or_else(|_| format!("# {driver}\n"));
            repo.write(&format!("engage-extension/drivers/{driver}"), &text);
        }
        for block in blocks {
            repo.add_block(block);
        }
        repo.age_sources();
        repo
    }

    /// Adds `manifests/<block>.toml` and `blox/<block>__1_0/` (names like `alpha`, `beta_two`).
    pub fn add_block(&self, block: &str) {
        let display: Vec<String> = block
            .split('_')
            .map(|word| word[..1].to_uppercase() + &word[1..])
            .collect();
        let manifest = format!(
            "[block]\nname = \"{}\"\nversion = \"1.0\"\n",
            display.join("-")
        );
        self.write(&format!("manifests/{block}.toml"), &manifest);
        let dir = format!("blox/{block}__1_0");
        self.write(&format!("{dir}/__init__.py"), "");
        self.write(
            &format!("{dir}/b_{block}.py"),
            &format!("\"\"\"The {block} block.\"\"\"\nNAME = \"{block}\"\n"),
        );
        // Some kilobytes, so the archives differ in size and the scheduler has something to order.
        let data: String = (0..block.len() * 200)
            .map(|i| format!("{block} line {i}\n"))
            .collect();
        self.write(&format!("{dir}/data/{block}.txt"), &data);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, content: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// Sets the mtime of every source file and directory an hour back (symbolic links are left
    /// as they are).
    pub fn age_sources(&self) {
        let past = SystemTime::now() - Duration::from_secs(3600);
        for entry in walkdir::WalkDir::new(self.path().join("blox")) {
            let entry = entry.unwrap();
            if entry.file_type().is_dir() {
                std::fs::File::open(entry.path())
                    .unwrap()
                    .set_modified(past)
                    .unwrap();
            } else if entry.file_type().is_file() {
                set_mtime(entry.path(), past);
            }
        }
    }

    /// Runs `xtask dist --json --out out ARGS` in the repository.
    pub fn dist(&self, args: &[&str]) -> Run {
        self.dist_with(args, &[])
    }

    pub fn dist_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(self.path())
            .args(["dist", "--json", "--out", "out"])
            .args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    pub fn archive(&self, block: &str) -> PathBuf {
        self.out()
            .join(format!("datablox/sw_packages/{block}__1_0.tgz"))
    }

    /// Every file under `out`, relative, with bytes, mtime and inode.
    pub fn snapshot(&self) -> Snapshot {
        snapshot(&self.out())
    }
}

pub fn snapshot(dir: &Path) -> Snapshot {
    files_under(dir)
        .into_iter()
        .map(|path| {
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            (
                path.strip_prefix(dir).unwrap().to_path_buf(),
                (bytes, metadata.modified().unwrap(), metadata.ino()),
            )
        })
        .collect()
}

/// The bytes of every file under `dir` but the build cache and the fingerprint (which hold times
/// and absolute paths).
pub fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    contents_of(&snapshot(dir))
}

pub fn contents_of(snapshot: &Snapshot) -> BTreeMap<PathBuf, Vec<u8>> {
    snapshot
        .clone()
        .into_iter()
        .filter(|(path, _)| path != Path::new(xtask::state::STATE_FILE))
        .map(|(path, (bytes, _, _))| (path, bytes))
        .collect()
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let file_type = entry.file_type().unwrap();
        if file_type.is_dir() {
            files.extend(files_under(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files.sort();
    files
}

/// Reads `<out>/.dist-state`, lets `edit` change it, and writes it back with the checksum of
/// the new body (`fix_checksum`), as a build would have written it, or with the old checksum,
/// as a damaged file would be.
pub fn edit_state(out: &Path, fix_checksum: bool, edit: impl FnOnce(&mut xtask::state::State)) {
    let path = out.join(xtask::state::STATE_FILE);
    let bytes = std::fs::read(&path).unwrap();
    let mut state = xtask::state::State::from_bytes(&bytes).expect("a state written by dist");
    edit(&mut state);
    let mut new = state.to_bytes();
    if !fix_checksum {
        let checksum = xtask::state::CHECKSUM;
        new[checksum.clone()].copy_from_slice(&bytes[checksum]);
        assert_ne!(new, state.to_bytes(), "the edit changed something");
    }
    std::fs::write(&path, new).unwrap();
}

/// The state of the last build.
pub fn read_state(out: &Path) -> xtask::state::State {
    let bytes = std::fs::read(out.join(xtask::state::STATE_FILE)).unwrap();
    xtask::state::State::from_bytes(&bytes).expect("a state written by dist")
}

pub fn set_mtime(path: &Path, time: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}
