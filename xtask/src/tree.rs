//! One block directory -> a sorted, validated list of its entries (`Tree`); reads metadata only.
//!
//! The walk never follows symlinks. It accepts directories, regular files and symlinks that stay
//! inside the directory; it rejects absolute or escaping symlinks, FIFOs, sockets, devices and
//! regular files hard-linked to something outside the directory, reporting every such problem at
//! once. What `exclude` excludes (`__pycache__/`, `.gitignore`d files, the manifest's `exclude`
//! list) is left out before any check. Entries are sorted byte-wise by member path, so the order
//! does not depend on readdir order, the locale or anything else. Reading file contents is left
//! to `hash` and `archive`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::exclude::{self, Excludes};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { executable: bool, size: u64 },
    Symlink { target: Vec<u8> },
}

/// What a stat cache needs to tell later whether a file may have changed (from `lstat`).
/// Only files are stat'ed; directories and symlinks carry the default (all zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// Scans `dir` into a `Tree` whose member paths start with `top`, leaving out what the built-in
/// rules of `exclude` exclude (`__pycache__/`, `*.pyc`, …) and what `.gitignore` files inside
/// `dir` ignore.
pub fn scan(dir: &Path, top: &str) -> Result<Tree> {
    scan_excluding(dir, top, &Excludes::built_in())
}

/// Scans `dir` leaving out what `excludes` (and the `.gitignore` files found inside `dir`)
/// exclude: such entries are neither listed nor checked, and excluded directories not entered.
pub fn scan_excluding(dir: &Path, top: &str, excludes: &Excludes) -> Result<Tree> {
    let mut excludes = excludes.clone();
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
    let mut items = walker.into_iter();
    while let Some(item) = items.next() {
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
        // Directories and symlinks are not stat'ed: their type comes from the directory listing,
        // and only files' metadata is ever used (size, mode, links, the stat cache). That spares a
        // third of a scan's system calls, which is most of what a build with no change costs.
        let listed_type = item.file_type();
        let relative = source
            .strip_prefix(dir)
            .expect("walkdir yields paths under its root");
        let mut path = top.as_bytes().to_vec();
        for component in relative.components() {
            path.push(b'/');
            path.extend_from_slice(component.as_os_str().as_bytes());
        }
        let inside = &path[top.len() + 1..];
        if excludes.is_excluded(inside, listed_type.is_dir()) {
            if listed_type.is_dir() {
                items.skip_current_dir();
            }
            continue;
        }
        if listed_type.is_dir()
            && let Some(rules) = exclude::read_gitignore(&source)?
        {
            excludes.push_nested(inside, rules);
        }
        let metadata = if listed_type.is_dir() || listed_type.is_symlink() {
            None
        } else {
            Some(fs::symlink_metadata(&source).with_path("read metadata of", &source)?)
        };

        let file_type = metadata
            .as_ref()
            .map_or(listed_type, fs::Metadata::file_type);
        let kind = if file_type.is_dir() {
            EntryKind::Dir
        } else if let Some(metadata) = metadata.as_ref().filter(|_| file_type.is_file()) {
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
            stat: metadata
                .as_ref()
                .map_or_else(Stat::default, Stat::from_metadata),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    fn block() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("blox").join("a__1_0");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/x.py"), "x = 1\n").unwrap();
        (root, dir)
    }

    fn single_problem(dir: &Path) -> Diagnostic {
        let error = scan(dir, "a__1_0").unwrap_err();
        assert_eq!(error.diagnostics.len(), 1, "{error}");
        let diagnostic = error.diagnostics[0].clone();
        assert!(diagnostic.help.is_some());
        assert!(
            diagnostic.message.chars().next().unwrap().is_lowercase()
                || diagnostic.message.starts_with('`')
        );
        assert!(!diagnostic.message.ends_with('.'));
        diagnostic
    }

    #[test]
    fn entries_are_sorted_bytewise_with_the_top_first() {
        let (_root, dir) = block();
        fs::create_dir(dir.join("a")).unwrap();
        fs::write(dir.join("a/b"), "").unwrap();
        fs::write(dir.join("a.txt"), "").unwrap();
        fs::write(dir.join("B"), "").unwrap();
        symlink("sub/x.py", dir.join("link")).unwrap();
        let tree = scan(&dir, "a__1_0").unwrap();
        let paths: Vec<&[u8]> = tree
            .entries
            .iter()
            .map(|entry| entry.path.as_slice())
            .collect();
        let expected: [&[u8]; 8] = [
            b"a__1_0",
            b"a__1_0/B",
            b"a__1_0/a",
            b"a__1_0/a.txt",
            b"a__1_0/a/b",
            b"a__1_0/link",
            b"a__1_0/sub",
            b"a__1_0/sub/x.py",
        ];
        assert_eq!(paths, expected);
        assert_eq!(
            tree.entries[5].kind,
            EntryKind::Symlink {
                target: b"sub/x.py".to_vec()
            }
        );
        assert_eq!(
            tree.entries[7].kind,
            EntryKind::File {
                executable: false,
                size: 6
            }
        );
        assert_eq!(tree.entries[0].source, dir);
    }

    #[test]
    fn symlinks_inside_are_kept() {
        let (_root, dir) = block();
        symlink("../sub/./x.py", dir.join("sub/self")).unwrap();
        symlink(".", dir.join("here")).unwrap();
        symlink("sub", dir.join("sub_link")).unwrap();
        assert!(scan(&dir, "a__1_0").is_ok());
    }

    #[test]
    fn absolute_symlink_is_an_error_naming_link_and_target() {
        let (_root, dir) = block();
        symlink("/etc/passwd", dir.join("sub/abs")).unwrap();
        let diagnostic = single_problem(&dir);
        assert_eq!(diagnostic.code, "symlink-outside");
        assert!(
            diagnostic
                .message
                .contains(&format!("`{}`", dir.join("sub/abs").display())),
            "{}",
            diagnostic.message
        );
        assert!(diagnostic.message.contains("`/etc/passwd`"));
        assert_eq!(
            diagnostic.file.as_deref(),
            Some(dir.join("sub/abs").as_path())
        );
    }

    #[test]
    fn escaping_symlinks_are_errors() {
        let (_root, dir) = block();
        symlink("../../etc", dir.join("sub/up")).unwrap();
        let diagnostic = single_problem(&dir);
        assert!(
            diagnostic
                .message
                .contains("points outside the block: `../../etc`"),
            "{}",
            diagnostic.message
        );
        fs::remove_file(dir.join("sub/up")).unwrap();

        // `here/..` is the parent of the block for the kernel, though it looks like `.` lexically.
        symlink(".", dir.join("here")).unwrap();
        symlink("here/../a__1_0/sub", dir.join("sneaky")).unwrap();
        let diagnostic = single_problem(&dir);
        assert!(
            diagnostic
                .message
                .contains(&format!("`{}`", dir.join("sneaky").display())),
            "{}",
            diagnostic.message
        );
    }

    #[test]
    fn fifo_is_an_error_naming_it() {
        let (_root, dir) = block();
        let fifo = dir.join("sub/pipe");
        let made = Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|status| status.success()) {
            eprintln!("note: mkfifo not available, skipped");
            return;
        }
        let diagnostic = single_problem(&dir);
        assert_eq!(diagnostic.code, "special-file");
        assert_eq!(
            diagnostic.message,
            format!("`{}` is a FIFO", fifo.display())
        );
    }

    #[test]
    fn hard_link_to_outside_is_an_error_but_inside_is_fine() {
        let (root, dir) = block();
        fs::hard_link(dir.join("sub/x.py"), dir.join("x_again.py")).unwrap();
        assert!(scan(&dir, "a__1_0").is_ok());

        fs::write(root.path().join("outside.txt"), "shared").unwrap();
        fs::hard_link(root.path().join("outside.txt"), dir.join("sub/inside.txt")).unwrap();
        let diagnostic = single_problem(&dir);
        assert_eq!(diagnostic.code, "hard-link-outside");
        assert!(
            diagnostic
                .message
                .starts_with("hard link to outside the block: ")
        );
        assert!(
            diagnostic
                .message
                .contains(&format!("`{}`", dir.join("sub/inside.txt").display()))
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let (_root, dir) = block();
        symlink("/abs", dir.join("one")).unwrap();
        symlink("../..", dir.join("two")).unwrap();
        assert_eq!(scan(&dir, "a__1_0").unwrap_err().diagnostics.len(), 2);
    }

    #[test]
    fn missing_directory_names_the_path() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nope");
        let error = scan(&missing, "nope").unwrap_err();
        assert!(
            error.diagnostics[0]
                .message
                .contains(&format!("`{}`", missing.display()))
        );
        assert_eq!(
            error.diagnostics[0].file.as_deref(),
            Some(missing.as_path())
        );
    }

    #[test]
    fn stat_records_size_inode_and_mode() {
        let (_root, dir) = block();
        let tree = scan(&dir, "a__1_0").unwrap();
        let file = tree.entries.last().unwrap();
        let metadata = fs::metadata(dir.join("sub/x.py")).unwrap();
        assert_eq!(
            (file.stat.size, file.stat.inode, file.stat.mode),
            (6, metadata.ino(), metadata.mode())
        );
        assert_eq!(
            file.stat.mtime_ns / 1_000_000_000,
            i128::from(metadata.mtime())
        );
    }
}
