//! Property tests (proptest) of the archive and the source digest on random block trees: names,
//! nesting, sizes, executable bits and symlinks. A tree archives and extracts back to itself; the
//! digest is the same for the same tree built another way and changes whenever the tree changes.
//! Case counts are modest so the suite stays fast; `PROPTEST_CASES=1000` explores more.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use proptest::prelude::*;

use xtask::archive::{ArchiveSettings, write_tgz};
use xtask::tree::scan;

const TOP: &str = "block__1_0";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File { content: Vec<u8>, executable: bool },
    Link { target: String },
}

/// A tree: `/`-separated paths below the top directory -> what is there.
type Model = BTreeMap<String, Node>;

fn name() -> impl Strategy<Value = String> {
    // Letters, digits, punctuation, spaces and non-ASCII; never what `exclude` leaves out.
    "[a-zA-Z0-9_. éß\\-]{1,12}".prop_filter("a usable name", |name| {
        name != "."
            && name != ".."
            && name != "__pycache__"
            && name != ".git"
            && name != ".gitignore"
            && !name.ends_with(".pyc")
            && !name.ends_with(".pyo")
    })
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        2 => proptest::collection::vec(any::<u8>(), 0..5000),
        // Long enough for several deflate blocks; compressible, so the archive stays small.
        1 => (1usize..300_000, any::<u8>()).prop_map(|(length, byte)| vec![byte; length]),
    ]
}

#[derive(Clone, Debug)]
enum Planned {
    Dir,
    File(Vec<u8>, bool),
    /// A link to the n-th sibling name of the same directory, or `..`-relative to its parent.
    Link(usize, bool),
}

fn planned() -> impl Strategy<Value = Planned> {
    prop_oneof![
        2 => Just(Planned::Dir),
        5 => (content(), any::<bool>()).prop_map(|(c, x)| Planned::File(c, x)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(n, up)| Planned::Link(n, up)),
    ]
}

/// A random tree: up to 24 entries at depths 1 to 4. An entry whose parent would be a file or a
/// link is dropped, so every model is a valid tree.
fn model() -> impl Strategy<Value = Model> {
    proptest::collection::vec((proptest::collection::vec(name(), 1..5), planned()), 0..24).prop_map(
        |items| {
            let mut model = Model::new();
            for (components, planned) in items {
                let mut ok = true;
                for depth in 1..components.len() {
                    let parent = components[..depth].join("/");
                    match model.get(&parent) {
                        None => {
                            model.insert(parent, Node::Dir);
                        }
                        Some(Node::Dir) => {}
                        Some(_) => {
                            ok = false;
                            break;
                        }
                    }
                }
                let path = components.join("/");
                if !ok || model.contains_key(&path) {
                    continue;
                }
                let node = match planned {
                    Planned::Dir => Node::Dir,
                    Planned::File(content, executable) => Node::File {
                        content,
                        executable,
                    },
                    Planned::Link(index, up) => {
                        let siblings: Vec<&String> = model
                            .keys()
                            .filter(|other| {
                                Path::new(other.as_str()).parent() == Path::new(&path).parent()
                            })
                            .collect();
                        let target = siblings
                            .get(index % siblings.len().max(1))
                            .map(|sibling| sibling.rsplit('/').next().unwrap().to_string())
                            .unwrap_or_else(|| "missing".into());
                        // `..` may only leave a real directory of the tree (see `tree`).
                        if up && components.len() > 1 {
                            Node::Link {
                                target: format!("../{}/{target}", components[components.len() - 2]),
                            }
                        } else {
                            Node::Link { target }
                        }
                    }
                };
                model.insert(path, node);
            }
            model
        },
    )
}

/// Writes `model` under `root/TOP`, in the given order of paths.
fn materialize(root: &Path, model: &Model, reverse: bool) -> std::path::PathBuf {
    let dir = root.join(TOP);
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths: Vec<&String> = model.keys().collect();
    if reverse {
        // Children before parents is impossible, so create the parents on the way.
        paths.reverse();
    }
    for path in paths {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        match &model[path] {
            Node::Dir => std::fs::create_dir_all(&full).unwrap(),
            Node::File {
                content,
                executable,
            } => {
                std::fs::write(&full, content).unwrap();
                let mode = if *executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            Node::Link { target } => symlink(target, &full).unwrap(),
        }
    }
    dir
}

fn archive(dir: &Path) -> (Vec<u8>, String) {
    let tree = scan(dir, TOP).unwrap();
    let mut bytes = Vec::new();
    let settings = ArchiveSettings {
        mtime: 315_532_800,
        level: 1,
    };
    let report = write_tgz(&tree, &settings, &mut bytes).unwrap();
    (bytes, xtask::hash::to_hex(&report.digest))
}

/// Reads a `.tgz` back into a model.
fn extract(bytes: &[u8]) -> Model {
    let tar_bytes = xtask::deflate::gunzip(bytes).unwrap();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut model = Model::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let path = path.trim_end_matches('/');
        if path == TOP {
            continue;
        }
        let relative = path.strip_prefix(&format!("{TOP}/")).unwrap().to_string();
        let node = match entry.header().entry_type() {
            tar::EntryType::Directory => Node::Dir,
            tar::EntryType::Symlink => Node::Link {
                target: String::from_utf8(entry.link_name_bytes().unwrap().into_owned()).unwrap(),
            },
            tar::EntryType::Regular => {
                let executable = entry.header().mode().unwrap() & 0o111 != 0;
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
                Node::File {
                    content,
                    executable,
                }
            }
            other => panic!("unexpected entry type {other:?}"),
        };
        assert!(
            model.insert(relative.clone(), node).is_none(),
            "`{relative}` twice"
        );
    }
    model
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipByte(usize, usize),
    ToggleExecutable(usize),
    AddFile(String, Vec<u8>),
    Remove(usize),
    Retarget(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(f, b)| Mutation::FlipByte(f, b)),
        any::<usize>().prop_map(Mutation::ToggleExecutable),
        (name(), proptest::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(n, c)| Mutation::AddFile(n, c)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Retarget),
    ]
}

/// Applies `mutation` to `model`; `None` when it does not apply (e.g. no file to change).
fn mutate(model: &Model, mutation: &Mutation) -> Option<Model> {
    let mut changed = model.clone();
    let pick = |filter: &dyn Fn(&Node) -> bool, index: usize| -> Option<String> {
        let candidates: Vec<&String> = model
            .iter()
            .filter(|(_, n)| filter(n))
            .map(|(p, _)| p)
            .collect();
        (!candidates.is_empty()).then(|| candidates[index % candidates.len()].clone())
    };
    match mutation {
        Mutation::FlipByte(file, byte) => {
            let path = pick(
                &|n| matches!(n, Node::File { content, .. } if !content.is_empty()),
                *file,
            )?;
            if let Some(Node::File { content, .. }) = changed.get_mut(&path) {
                let index = byte % content.len();
                content[index] ^= 0x01;
            }
        }
        Mutation::ToggleExecutable(file) => {
            let path = pick(&|n| matches!(n, Node::File { .. }), *file)?;
            if let Some(Node::File { executable, .. }) = changed.get_mut(&path) {
                *executable = !*executable;
            }
        }
        Mutation::AddFile(name, content) => {
            if changed.contains_key(name) {
                return None;
            }
            changed.insert(
                name.clone(),
                Node::File {
                    content: content.clone(),
                    executable: false,
                },
            );
        }
        Mutation::Remove(index) => {
            // A leaf: nothing below it.
            let leaves: Vec<&String> = model
                .keys()
                .filter(|p| !model.keys().any(|q| q.starts_with(&format!("{p}/"))))
                .collect();
            if leaves.is_empty() {
                return None;
            }
            changed.remove(leaves[index % leaves.len()]);
        }
        Mutation::Retarget(link) => {
            let path = pick(&|n| matches!(n, Node::Link { .. }), *link)?;
            if let Some(Node::Link { target }) = changed.get_mut(&path) {
                target.push_str("_other");
            }
        }
    }
    (changed != *model).then_some(changed)
}

proptest! {
    // No failure file is written into the source tree: a failure prints its minimal input,
    // which belongs in a plain test.
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_tree_archives_and_extracts_back_to_itself(model in model()) {
        let root = tempfile::tempdir().unwrap();
        let dir = materialize(root.path(), &model, false);
        let (bytes, _) = archive(&dir);
        prop_assert_eq!(extract(&bytes), model);
    }

    #[test]
    fn the_digest_changes_exactly_when_the_tree_changes(
        model in model(),
        mutation in mutation(),
    ) {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let (bytes, digest) = archive(&materialize(first.path(), &model, false));
        // The same tree created in another order, elsewhere: the same digest and bytes.
        let (bytes_again, digest_again) = archive(&materialize(second.path(), &model, true));
        prop_assert_eq!(&digest, &digest_again);
        prop_assert!(bytes == bytes_again, "same tree, same archive bytes");

        let Some(changed) = mutate(&model, &mutation) else {
            return Ok(());
        };
        let third = tempfile::tempdir().unwrap();
        let (_, changed_digest) = archive(&materialize(third.path(), &changed, false));
        prop_assert_ne!(digest, changed_digest, "{:?} changed the tree", mutation);
    }
}
