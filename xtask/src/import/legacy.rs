//! Reading a legacy tree the way Engage and the legacy build read it: the central definitions and
//! library, every driver directory (with or without a `resources.json`), the installer config and
//! install specs, and where each `sw_packages` file comes from (the legacy Makefile's `engage-ext`
//! recipe, `--sources`, the extension's own `sw_packages/`, or a reported guess).
//!
//! Nothing here decides what is imported: defects of the files themselves (JSON that does not
//! parse, entries without a key) become warnings, and the rest is handed to `convert`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::{ImportOptions, Notes};
use crate::error::{Diagnostic, IoContext, Result};
use crate::model::{Key, driver_dir_name};

/// A resource definition and the file it was read from (shown relative to the legacy root).
#[derive(Clone, Debug)]
pub struct Definition {
    pub key: Key,
    pub json: Map<String, Value>,
    pub origin: PathBuf,
}

/// An entry of the central `resource_library.json`.
#[derive(Clone, Debug)]
pub struct LibraryEntry {
    pub module: String,
    pub packages: Vec<Value>,
}

/// A directory of `drivers/`: Engage imports `drivers/<dir>/driver.py` for a key whose mangled
/// name is `<dir>` and that has no library entry (a "new-style" library entry).
#[derive(Clone, Debug)]
pub struct DriverDir {
    pub path: PathBuf,
    /// `driver.py` exists.
    pub has_driver: bool,
    /// `driver.py` re-exports the generic block driver.
    pub generic: bool,
    /// `packages.json`, when it exists and is a JSON list.
    pub packages: Option<Vec<Value>>,
}

/// Where a file of `sw_packages` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The legacy Makefile's `engage-ext` recipe builds or copies it.
    Makefile,
    /// `--sources NAME=DIR`.
    Argument,
    /// It lies in the legacy extension's `sw_packages/`.
    Shipped,
    /// A block directory `<blox>/<stem>`, the generic block driver's convention.
    Blox,
    /// Nothing says so, but a directory of that name exists: reported as a guess.
    Guess,
}

#[derive(Clone, Debug)]
pub struct SourceOf {
    pub path: PathBuf,
    pub origin: Origin,
}

/// Everything read from the legacy tree.
#[derive(Debug)]
pub struct Legacy {
    /// The directory that paths are shown and copied relative to: the legacy extension's parent,
    /// or the repository above it when its `blox/` lies there.
    pub root: PathBuf,
    pub version: String,
    /// Every definition, once per key, central ones first, then drivers' in directory order.
    pub definitions: Vec<Definition>,
    pub library: BTreeMap<Key, LibraryEntry>,
    pub library_path: PathBuf,
    pub drivers: BTreeMap<String, DriverDir>,
    /// Non-directory Python modules of `drivers/` (manager modules, the generic block driver).
    pub modules: BTreeMap<String, PathBuf>,
    pub blox: Option<PathBuf>,
    /// sw_packages file name -> source (Makefile, `--sources`, `sw_packages/`).
    pub sources: BTreeMap<String, SourceOf>,
    pub installer_config: Option<Value>,
    pub installer_config_path: PathBuf,
    /// (file name, path, spec) of every other JSON file of `metadata/`.
    pub install_specs: Vec<(String, PathBuf, Value)>,
    /// How many distinct keys the definitions hold.
    pub keys_read: usize,
}

const METADATA_FILES: [&str; 3] = [
    "resource_definitions.json",
    "resource_library.json",
    "installer_config.json",
];

impl Legacy {
    /// The path shown in messages and used for copies: relative to the legacy root when inside it.
    pub fn shown(&self, path: &Path) -> PathBuf {
        shown(&self.root, path)
    }

    /// The source of `name` (an `sw_packages` file), or a guess: a directory named after the
    /// archive's stem in the places legacy trees keep sources.
    pub fn source_of(&self, name: &str) -> Option<SourceOf> {
        let found = self.sources.get(name);
        // A prebuilt archive in sw_packages is not its source: a directory of its name is.
        let prebuilt =
            found.is_some_and(|s| s.origin == Origin::Shipped) && archive_stem(name).is_some();
        if let Some(found) = found.filter(|_| !prebuilt) {
            return Some(found.clone());
        }
        let Some(stem) = archive_stem(name) else {
            return found.cloned();
        };
        if let Some(blox) = &self.blox
            && blox.join(stem).is_dir()
        {
            return Some(SourceOf {
                path: blox.join(stem),
                origin: Origin::Blox,
            });
        }
        let parent = self.root.clone();
        [parent.join(stem), parent.join("python").join(stem)]
            .into_iter()
            .find(|dir| dir.is_dir())
            .map(|path| SourceOf {
                path,
                origin: Origin::Guess,
            })
            .or_else(|| found.cloned())
    }
}

/// `name` without its archive suffix, when it has one.
pub fn archive_stem(name: &str) -> Option<&str> {
    [".tgz", ".tar.gz", ".zip"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty())
}

pub fn shown(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

pub fn read(options: &ImportOptions, notes: &mut Notes) -> Result<Legacy> {
    let extension = &options.legacy;
    let parent = extension
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let makefile = Makefile::read(&parent);
    // blox/: `--blox`, else where the Makefile takes the blocks from, else beside the extension
    // or one level up (the legacy repository keeps `engage/datablox` and `blox/` side by side).
    let blox = match &options.blox {
        Some(dir) => Some(dir.clone()),
        None => makefile
            .as_ref()
            .and_then(|m| m.blox.clone())
            .into_iter()
            .chain([parent.join("blox"), parent.join("../blox")])
            .map(|dir| normalize(&dir))
            .find(|dir| dir.is_dir()),
    };
    let root = match &blox {
        Some(blox) if !blox.starts_with(&parent) => {
            common_ancestor(&parent, blox.parent().unwrap_or(blox))
        }
        _ => parent.clone(),
    };
    let mut legacy = Legacy {
        root,
        version: "1.0".into(),
        definitions: Vec::new(),
        library: BTreeMap::new(),
        library_path: extension.join("metadata/resource_library.json"),
        drivers: BTreeMap::new(),
        modules: BTreeMap::new(),
        blox,
        sources: BTreeMap::new(),
        installer_config: None,
        installer_config_path: extension.join("metadata/installer_config.json"),
        install_specs: Vec::new(),
        keys_read: 0,
    };
    let mut reader = Reader {
        root: legacy.root.clone(),
        notes,
    };

    match std::fs::read_to_string(extension.join("version.txt")) {
        Ok(text) if !text.trim().is_empty() => legacy.version = text.trim().to_string(),
        _ => reader.warn(
            "no-version",
            &extension.join("version.txt"),
            "the legacy extension has no version.txt; using version 1.0".into(),
            "check `version` in manifests/extension.toml",
        ),
    }

    // The library: which keys a manager module installs, with which packages.
    if let Some(value) = reader.read_json_if_present(&legacy.library_path.clone()) {
        let entries = match value {
            Value::Object(mut object) => object.remove("entries").unwrap_or(Value::Null),
            other => other,
        };
        for entry in entries.as_array().cloned().unwrap_or_default() {
            let (Some(key), Some(module)) = (
                entry.get("key").and_then(key_of),
                entry.get("mgr_module_name").and_then(Value::as_str),
            ) else {
                reader.warn(
                    "bad-library-entry",
                    &legacy.library_path,
                    format!("a library entry lacks `key` or `mgr_module_name`: {entry}"),
                    "complete the entry or remove it",
                );
                continue;
            };
            let packages = entry
                .get("packages")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let module = module.to_string();
            if legacy.library.contains_key(&key) {
                reader.warn(
                    "duplicate-library-entry",
                    &legacy.library_path,
                    format!("`{key}` has two library entries"),
                    "Engage uses one of them: delete the other",
                );
                continue;
            }
            legacy
                .library
                .insert(key, LibraryEntry { module, packages });
        }
    }

    // Definitions: the central file, then each driver directory's resources.json.
    let mut sources: Vec<PathBuf> = vec![extension.join("metadata/resource_definitions.json")];
    let drivers = extension.join("drivers");
    for path in read_dir_sorted(&drivers)? {
        let name = file_name(&path);
        if path.is_dir() && !is_cache(&path) {
            let driver_py = path.join("driver.py");
            let text = std::fs::read_to_string(&driver_py).ok();
            let packages_path = path.join("packages.json");
            let packages = if packages_path.is_file() {
                reader
                    .read_json(&packages_path)
                    .and_then(|value| match value {
                        Value::Array(list) => Some(list),
                        _ => None,
                    })
            } else {
                None
            };
            legacy.drivers.insert(
                name,
                DriverDir {
                    path: path.clone(),
                    has_driver: text.is_some(),
                    generic: text
                        .as_deref()
                        .is_some_and(|t| t.contains("generic_blox_driver")),
                    packages,
                },
            );
            sources.push(path.join("resources.json"));
        } else if name.ends_with(".py") && path.is_file() {
            legacy.modules.insert(name, path);
        }
    }
    let mut seen: BTreeMap<Key, PathBuf> = BTreeMap::new();
    for path in sources {
        let Some(value) = reader.read_json_if_present(&path) else {
            continue;
        };
        // Engage's own `{"resource_def_version", "resource_definitions"}` form, or a bare list.
        let list = match value {
            Value::Object(mut object) => {
                object.remove("resource_definitions").unwrap_or(Value::Null)
            }
            other => other,
        };
        let origin = reader.shown(&path);
        for definition in list.as_array().cloned().unwrap_or_default() {
            let Some(key) = definition.get("key").and_then(key_of) else {
                reader.warn(
                    "bad-definition",
                    &path,
                    format!("a definition has no valid `key`: {definition}"),
                    "give it a key {\"name\", \"version\"}",
                );
                continue;
            };
            if let Some(first) = seen.get(&key) {
                let message = if *first == origin {
                    format!("`{key}` is defined twice in `{}`", first.display())
                } else {
                    format!(
                        "`{key}` is defined twice: in `{}` and in `{}`",
                        first.display(),
                        origin.display()
                    )
                };
                let help = format!(
                    "Engage keeps one silently; the import keeps the one in `{}`: delete the other definition",
                    first.display()
                );
                reader.notes.push(
                    Diagnostic::warning("duplicate-key", message)
                        .file(&origin)
                        .help(help),
                );
                continue;
            }
            seen.insert(key.clone(), origin.clone());
            legacy.definitions.push(Definition {
                key,
                json: definition.as_object().cloned().unwrap_or_default(),
                origin: origin.clone(),
            });
        }
    }
    legacy.keys_read = seen.len();

    // Driver directories whose key nothing defines: Engage never loads them.
    let defined: Vec<String> = seen.keys().map(driver_dir_name).collect();
    for (name, dir) in &legacy.drivers {
        if dir.has_driver && !defined.contains(name) {
            reader.warn(
                "orphan-driver",
                &dir.path,
                format!("driver directory `drivers/{name}` belongs to no defined resource; it is not imported"),
                "define its resource (resources.json), or delete the directory",
            );
        }
    }
    for key in legacy.library.keys() {
        if !seen.contains_key(key) {
            reader.warn(
                "orphan-library-entry",
                &legacy.library_path,
                format!(
                    "the library entry of `{key}` belongs to no definition; it is not imported"
                ),
                "define the resource, or delete the entry",
            );
        }
    }

    // Block directories that no definition installs: their sources would be lost silently.
    if let Some(blox) = legacy.blox.clone() {
        let modules: Vec<String> = defined.iter().map(|d| d.to_lowercase()).collect();
        for dir in read_dir_sorted(&blox)? {
            let name = file_name(&dir);
            if !dir.is_dir() || name.starts_with('.') || is_cache(&dir) || modules.contains(&name) {
                continue;
            }
            let has_sources = read_dir_sorted(&dir)?
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "py"));
            if has_sources {
                let shown = reader.shown(&dir);
                reader.warn(
                    "block-without-resource",
                    &dir,
                    format!("block directory `{}` has sources but no resource defines it; it is not imported", shown.display()),
                    "to keep it, write a [block] manifest for it after the import (`cargo xtask new` shows the shape) and copy the directory; else delete it",
                );
            }
        }
    }

    // Installer config and install specs.
    legacy.installer_config = reader.read_json_if_present(&legacy.installer_config_path.clone());
    for path in read_dir_sorted(&extension.join("metadata"))? {
        let name = file_name(&path);
        let is_spec = name.ends_with(".json") || name.ends_with(".json.tmpl");
        if !is_spec || METADATA_FILES.contains(&name.as_str()) || !path.is_file() {
            continue;
        }
        if let Some(spec) = reader.read_json(&path) {
            legacy.install_specs.push((name, path, spec));
        }
    }

    // Where the sw_packages files come from: the extension's own sw_packages/, then the
    // Makefile's recipe, then `--sources` (each later one wins).
    for path in read_dir_sorted(&extension.join("sw_packages"))? {
        if path.is_file() {
            legacy.sources.insert(
                file_name(&path),
                SourceOf {
                    path,
                    origin: Origin::Shipped,
                },
            );
        }
    }
    if let Some(makefile) = &makefile {
        for (name, path) in &makefile.packages {
            legacy.sources.insert(
                name.clone(),
                SourceOf {
                    path: path.clone(),
                    origin: Origin::Makefile,
                },
            );
        }
    }
    for (name, path) in &options.sources {
        legacy.sources.insert(
            name.clone(),
            SourceOf {
                path: path.clone(),
                origin: Origin::Argument,
            },
        );
    }
    Ok(legacy)
}

struct Reader<'a> {
    root: PathBuf,
    notes: &'a mut Notes,
}

impl Reader<'_> {
    fn shown(&self, path: &Path) -> PathBuf {
        shown(&self.root, path)
    }

    fn warn(&mut self, code: &'static str, file: &Path, message: String, help: &str) {
        let shown = self.shown(file);
        self.notes
            .push(Diagnostic::warning(code, message).file(shown).help(help));
    }

    fn read_json_if_present(&mut self, path: &Path) -> Option<Value> {
        if path.is_file() {
            self.read_json(path)
        } else {
            None
        }
    }

    /// Reads a JSON file; a parse error is a warning pointing at its line and column.
    fn read_json(&mut self, path: &Path) -> Option<Value> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                let shown = self.shown(path);
                self.warn(
                    "unreadable",
                    path,
                    format!("cannot read `{}`: {error}", shown.display()),
                    "fix the file's permissions or remove it",
                );
                return None;
            }
        };
        match serde_json::from_str(&text) {
            Ok(value) => Some(value),
            Err(error) => {
                let offset = line_column_offset(&text, error.line(), error.column());
                let shown = self.shown(path);
                self.notes.push(
                    Diagnostic::warning(
                        "invalid-json",
                        format!("`{}` is not valid JSON: {error}", shown.display()),
                    )
                    .file(shown)
                    .span(&text, offset..offset + 1)
                    .help("fix the JSON and import again; what it defines is skipped"),
                );
                None
            }
        }
    }
}

/// What the legacy Makefile's `engage-ext` recipe puts into `sw_packages`, read as make and the
/// shell would run it: variables `$(shell pwd)` and `$(shell cd DIR; pwd)`, each recipe line in
/// the Makefile's directory, `cd`, `tar czf OUT DIR`, `cp FILE OUT`, and the `for dir in \`ls\``
/// loop over the block directories. Commands it does not understand are left alone: their
/// packages are then reported as built by nothing.
struct Makefile {
    blox: Option<PathBuf>,
    packages: Vec<(String, PathBuf)>,
}

impl Makefile {
    fn read(dir: &Path) -> Option<Makefile> {
        let text = std::fs::read_to_string(dir.join("Makefile")).ok()?;
        let mut variables: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
        let mut recipe = Vec::new();
        let mut in_target = false;
        for line in text.lines() {
            if let Some(command) = line.strip_prefix('\t') {
                if in_target {
                    recipe.push(command.to_string());
                }
                continue;
            }
            in_target = line.starts_with("engage-ext:");
            if let Some((name, value)) = line.split_once('=')
                && !name.contains([':', ' ', '\t', '$'])
                && !name.is_empty()
            {
                let value = expand(value.trim(), &variables).and_then(|v| shell_path(&v, dir));
                variables.insert(name.to_string(), value);
            }
        }
        let blox = variables.get("BLOXPATH").cloned().flatten();
        let mut packages = Vec::new();
        for line in recipe {
            let line = line.trim_start_matches(['@', '-']);
            let mut cwd = dir.to_path_buf();
            let mut loop_dirs: Option<(String, Vec<String>)> = None;
            for part in line.split(';') {
                let mut part = part.trim();
                for keyword in ["do ", "then ", "else "] {
                    part = part.strip_prefix(keyword).unwrap_or(part).trim();
                }
                let words: Vec<&str> = part.split_whitespace().collect();
                match words.as_slice() {
                    ["cd", target] => match expand(target, &variables) {
                        Some(target) => cwd = normalize(&cwd.join(target)),
                        None => break,
                    },
                    ["for", var, "in", "`ls`"] => {
                        let dirs = read_dir_sorted(&cwd)
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|p| p.is_dir())
                            .map(|p| file_name(&p))
                            .collect();
                        loop_dirs = Some((format!("$${var}"), dirs));
                    }
                    ["tar", flags, out, source] if flags.starts_with("cz") => {
                        for (out, source) in each_loop_value(&loop_dirs, out, source) {
                            let (Some(out), Some(source)) =
                                (expand(&out, &variables), expand(&source, &variables))
                            else {
                                continue;
                            };
                            if out.contains("sw_packages/") {
                                let name = out.rsplit('/').next().unwrap_or_default();
                                packages.push((name.to_string(), normalize(&cwd.join(source))));
                            }
                        }
                    }
                    ["cp", source, out] => {
                        let (Some(source), Some(out)) =
                            (expand(source, &variables), expand(out, &variables))
                        else {
                            continue;
                        };
                        let source = normalize(&cwd.join(source));
                        let trimmed = out.trim_end_matches('/');
                        let name = if trimmed.ends_with("sw_packages") {
                            file_name(&source)
                        } else if trimmed.contains("sw_packages/") {
                            trimmed.rsplit('/').next().unwrap_or_default().to_string()
                        } else {
                            continue;
                        };
                        // A file the recipe makes first (an sdist) is not a source.
                        if source.is_file() {
                            packages.push((name, source));
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(Makefile { blox, packages })
    }
}

/// `(out, source)` with the loop variable replaced by each directory, or once as written.
fn each_loop_value(
    loop_dirs: &Option<(String, Vec<String>)>,
    out: &str,
    source: &str,
) -> Vec<(String, String)> {
    match loop_dirs {
        Some((var, dirs)) if out.contains(var.as_str()) || source.contains(var.as_str()) => dirs
            .iter()
            .map(|dir| {
                (
                    out.replace(var.as_str(), dir),
                    source.replace(var.as_str(), dir),
                )
            })
            .collect(),
        _ => vec![(out.to_string(), source.to_string())],
    }
}

/// Replaces `$(NAME)` by the variable's path; `None` when a variable is unknown.
fn expand(text: &str, variables: &BTreeMap<String, Option<PathBuf>>) -> Option<String> {
    let mut result = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        let after = &rest[start + 2..];
        let end = after.find(')')?;
        let name = &after[..end];
        if name.starts_with("shell ") {
            // Left for `shell_path`, which knows the two forms the legacy Makefile uses.
            result.push_str(&rest[..start + 2 + end + 1]);
        } else {
            result.push_str(&rest[..start]);
            result.push_str(&variables.get(name)?.as_ref()?.to_string_lossy());
        }
        rest = &after[end + 1..];
    }
    result.push_str(rest);
    Some(result)
}

/// `$(shell pwd)` and `$(shell cd DIR; pwd)` (with a suffix) as a path from `dir`.
fn shell_path(value: &str, dir: &Path) -> Option<PathBuf> {
    if let Some(rest) = value.strip_prefix("$(shell pwd)") {
        return Some(normalize(&dir.join(rest.trim_start_matches('/'))));
    }
    if let Some(rest) = value.strip_prefix("$(shell cd ") {
        let (target, suffix) = rest.split_once("; pwd)")?;
        let base = dir.join(target.trim());
        return Some(normalize(&base.join(suffix.trim_start_matches('/'))));
    }
    if value.starts_with('/') {
        return Some(PathBuf::from(value));
    }
    None
}

/// Removes `.` and resolves `..` lexically, as the shell's `cd` does for these paths.
pub fn normalize(path: &Path) -> PathBuf {
    let mut result = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !result.pop() {
                    result.push("..");
                }
            }
            other => result.push(other),
        }
    }
    result
}

fn common_ancestor(a: &Path, b: &Path) -> PathBuf {
    let mut result = PathBuf::new();
    for (x, y) in a.components().zip(b.components()) {
        if x != y {
            break;
        }
        result.push(x);
    }
    result
}

pub fn key_of(value: &Value) -> Option<Key> {
    Some(Key {
        name: value.get("name")?.as_str()?.to_string(),
        version: value.get("version")?.as_str()?.to_string(),
    })
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn is_cache(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "__pycache__")
}

pub fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).with_path("read", dir)? {
        paths.push(entry.with_path("read", dir)?.path());
    }
    paths.sort();
    Ok(paths)
}

/// The byte offset of a 1-based line and column, as serde_json reports them.
fn line_column_offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makefile_variables_and_recipe_are_read_as_make_runs_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("repo/engage/pkg")).unwrap();
        std::fs::create_dir_all(root.join("repo/blox/a__1_0")).unwrap();
        std::fs::create_dir_all(root.join("repo/blox/b__1_0")).unwrap();
        std::fs::create_dir_all(root.join("repo/framework")).unwrap();
        std::fs::write(root.join("repo/blox/a__1_0/schema.xml"), "x").unwrap();
        let makefile = "EXT=$(shell pwd)\nBLOXPATH=$(shell cd ../blox; pwd)\n\nengage-ext:\n\t@cd $(EXT)/..; tar czf $(EXT)/ext/sw_packages/fw.tgz framework\n\tcd $(EXT); tar czf $(EXT)/ext/sw_packages/adapter.tgz pkg\n\t@cd $(BLOXPATH); for dir in `ls`; do if [ -d \"$$dir\" ]; then tar czf $(EXT)/ext/sw_packages/$$dir.tgz $$dir; fi; done\n\tcp $(BLOXPATH)/a__1_0/schema.xml $(EXT)/ext/sw_packages/schema_a.xml\n\tcp $(UNKNOWN)/x $(EXT)/ext/sw_packages\n\nother:\n\ttar czf $(EXT)/ext/sw_packages/not.tgz pkg\n";
        std::fs::write(root.join("repo/engage/Makefile"), makefile).unwrap();
        let read = Makefile::read(&root.join("repo/engage")).unwrap();
        let repo = root.join("repo");
        assert_eq!(read.blox, Some(repo.join("blox")));
        let names: Vec<(&str, PathBuf)> = read
            .packages
            .iter()
            .map(|(name, path)| (name.as_str(), path.strip_prefix(&repo).unwrap().into()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("fw.tgz", PathBuf::from("framework")),
                ("adapter.tgz", PathBuf::from("engage/pkg")),
                ("a__1_0.tgz", PathBuf::from("blox/a__1_0")),
                ("b__1_0.tgz", PathBuf::from("blox/b__1_0")),
                ("schema_a.xml", PathBuf::from("blox/a__1_0/schema.xml")),
            ]
        );
    }
}
