//! One block directory -> a sorted, validated list of its entries (`Tree`); reads metadata only.
//!
//! The walk never follows symlinks. It accepts directories, regular files and symlinks that stay
//! inside the directory; it rejects absolute or escaping symlinks, FIFOs, sockets, devices and
//! regular files hard-linked to something outside the directory, reporting every such problem at
//! once. Entries are sorted byte-wise by member path, so the order does not depend on readdir
//! order, the locale or anything else. Reading file contents is left to `hash` and `archive`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Error, IoContext, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { executable: bool, size: u64 },
    Symlink { target: Vec<u8> },
}

/// What a stat cache needs to tell later whether a file may have changed (from `lstat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
    pub dev: u64,
    pub mode: u32,
}

impl Stat {
    pub fn from_metadata(metadata: &Metadata) -> Stat {
        Stat {
            size: metadata.size(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
            ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000
                + i128::from(metadata.ctime_nsec()),
            inode: metadata.ino(),
            dev: metadata.dev(),
            mode: metadata.mode(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The archive member path: the top directory, then the components, joined by `/`, with no
    /// trailing slash (`word_count__1_0/sub/x.py`). Bytes, because file names need not be UTF-8.
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Where the entry is on disk.
    pub source: PathBuf,
    pub stat: Stat,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The top directory's name in the archive, e.g. `word_count__1_0`.
    pub top: String,
    /// Sorted byte-wise by `path`; the first entry is the top directory itself.
    pub entries: Vec<Entry>,
}

/// Scans `dir` into a `Tree` whose member paths start with `top`.
pub fn scan(dir: &Path, top: &str) -> Result<Tree> {
    let top_metadata = fs::symlink_metadata(dir).with_path("read metadata of", dir)?;
    if !top_metadata.is_dir() {
        return Err(Diagnostic::error(
            "not-a-directory",
            format!("`{}` is not a directory", dir.display()),
        )
        .file(dir)
        .help("point at the block directory itself, not a symlink or a file")
        .into());
    }

    let mut entries = vec![Entry {
        path: top.as_bytes().to_vec(),
        kind: EntryKind::Dir,
        source: dir.to_path_buf(),
        stat: Stat::from_metadata(&top_metadata),
    }];
    let mut problems = Vec::new();
    // (dev, inode) -> (nlink, occurrences in the tree), for regular files.
    let mut links: HashMap<(u64, u64), (u64, u64)> = HashMap::new();

    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .follow_root_links(false)
        .min_depth(1);
    for item in walker {
        let item = item.map_err(|error| {
            let path = error.path().unwrap_or(dir).to_path_buf();
            match error.into_io_error() {
                Some(io_error) => Error::io("read", &path, io_error),
                None => Error::new(
                    Diagnostic::error("io", format!("cannot walk `{}`", path.display()))
                        .file(&path)
                        .help("check the directory for a filesystem loop"),
                ),
            }
        })?;
        let source = item.path().to_path_buf();
        let metadata = fs::symlink_metadata(&source).with_path("read metadata of", &source)?;
        let relative = source
            .strip_prefix(dir)
            .expect("walkdir yields paths under its root");
        let mut path = top.as_bytes().to_vec();
        for component in relative.components() {
            path.push(b'/');
            path.extend_from_slice(component.as_os_str().as_bytes());
        }

        let file_type = metadata.file_type();
        let kind = if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            let counter = links
                .entry((metadata.dev(), metadata.ino()))
                .or_insert((metadata.nlink(), 0));
            counter.1 += 1;
            EntryKind::File {
                executable: metadata.mode() & 0o111 != 0,
                size: metadata.len(),
            }
        } else if file_type.is_symlink() {
            let target = fs::read_link(&source).with_path("read symlink", &source)?;
            EntryKind::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            }
        } else {
            let what = if file_type.is_fifo() {
                "a FIFO"
            } else if file_type.is_socket() {
                "a socket"
            } else if file_type.is_block_device() {
                "a block device"
            } else if file_type.is_char_device() {
                "a character device"
            } else {
                "not a file, directory or symlink"
            };
            problems.push(
                Diagnostic::error("special-file", format!("`{}` is {what}", source.display()))
                    .file(&source)
                    .help("remove it from the block; only files, directories and symlinks can be packaged"),
            );
            continue;
        };
        entries.push(Entry {
            path,
            kind,
            source,
            stat: Stat::from_metadata(&metadata),
        });
    }

    entries.sort_by(|a, b| a.path.cmp(&b.path));

    for entry in &entries {
        if let EntryKind::File { .. } = entry.kind {
            let (nlink, inside) = links[&(entry.stat.dev, entry.stat.inode)];
            if nlink > inside {
                problems.push(
                    Diagnostic::error(
                        "hard-link-outside",
                        format!(
                            "hard link to outside the block: `{}` has {nlink} links, {inside} of them inside the block",
                            entry.source.display()
                        ),
                    )
                    .file(&entry.source)
                    .help("replace the hard link with a copy of the file"),
                );
            }
        }
    }

    let directories: HashSet<&[u8]> = entries
        .iter()
        .filter(|entry| entry.kind == EntryKind::Dir)
        .map(|entry| entry.path.as_slice())
        .collect();
    for entry in &entries {
        if let EntryKind::Symlink { target } = &entry.kind
            && let Err(reason) = check_symlink(&entry.path, target, &directories)
        {
            problems.push(
                Diagnostic::error(
                    "symlink-outside",
                    format!(
                        "symlink `{}` {reason}: `{}`",
                        entry.source.display(),
                        String::from_utf8_lossy(target)
                    ),
                )
                .file(&entry.source)
                .help("use a relative target inside the block, or replace the symlink with a copy of the file"),
            );
        }
    }

    if !problems.is_empty() {
        return Err(Error::many(problems));
    }
    Ok(Tree {
        top: top.to_string(),
        entries,
    })
}

/// Resolves `target` lexically from the directory of the link at `link_path` and checks that it
/// stays inside the top directory.
///
/// A lexical `..` is only exact when it leaves a real directory: after a symlink component the
/// kernel would go up from the symlink's target instead. So a `..` may only leave a directory of
/// the tree; with that, every step either stays where lexical resolution says or goes into
/// another symlink that is itself checked.
fn check_symlink(
    link_path: &[u8],
    target: &[u8],
    directories: &HashSet<&[u8]>,
) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("has an empty target");
    }
    if target.starts_with(b"/") {
        return Err("has an absolute target");
    }
    let parent_end = link_path
        .iter()
        .rposition(|&byte| byte == b'/')
        .expect("a symlink is below the top directory");
    // Component ends in `current`; the top directory (the first component) is never popped.
    let mut current: Vec<u8> = link_path[..parent_end].to_vec();
    let mut depth = current.iter().filter(|&&byte| byte == b'/').count();
    for component in target.split(|&byte| byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if depth == 0 {
                    return Err("points outside the block");
                }
                if !directories.contains(current.as_slice()) {
                    return Err("goes up (`..`) from a symlink or a missing directory");
                }
                let cut = current
                    .iter()
                    .rposition(|&byte| byte == b'/')
                    .expect("depth > 0");
                current.truncate(cut);
                depth -= 1;
            }
            name => {
                current.push(b'/');
                current.extend_from_slice(name);
                depth += 1;
            }
        }
    }
    Ok(())
}
