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
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::exclude::{self, Excludes};
use crate::inputs::{Inputs, ListedKind, Listing};
pub use crate::stat::Stat;
use crate::stat::{Base, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { executable: bool, size: u64 },
    Symlink { target: Vec<u8> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The archive member path: the top directory, then the components, joined by `/`, with no
    /// trailing slash (`word_count__1_0/sub/x.py`). Bytes, because file names need not be UTF-8.
    pub path: Vec<u8>,
    pub kind: EntryKind,
    pub stat: Stat,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The top directory's name in the archive, e.g. `word_count__1_0`.
    pub top: String,
    /// The directory scanned: where the top directory is on disk. An entry's place on disk is
    /// derived from it (`source`), not stored: thousands of trees are held at once.
    pub root: PathBuf,
    /// Sorted byte-wise by `path`; the first entry is the top directory itself.
    pub entries: Vec<Entry>,
}

impl Tree {
    /// Where `entry` (one of this tree's) is on disk.
    pub fn source(&self, entry: &Entry) -> PathBuf {
        source_of(&self.root, self.top.len(), &entry.path)
    }

    /// `source`, written into `buffer`, whose allocation is reused.
    pub fn source_into(&self, entry: &Entry, buffer: &mut PathBuf) {
        buffer.as_mut_os_string().clear();
        buffer.push(&self.root);
        if let Some(inside) = entry.path.get(self.top.len() + 1..) {
            buffer.push(OsStr::from_bytes(inside));
        }
    }
}

/// Where the entry with member path `path` is on disk, below `root` (the top directory, whose
/// name in the archive is `top_len` bytes long).
fn source_of(root: &Path, top_len: usize, path: &[u8]) -> PathBuf {
    match path.get(top_len + 1..) {
        Some(inside) => root.join(OsStr::from_bytes(inside)),
        None => root.to_path_buf(),
    }
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
    scan_recorded(dir, top, excludes, &Inputs::new())
}

/// `scan_excluding`, through the recorder: every directory listed and file stat'ed is an
/// input, and the previous build's listing of a directory whose own stat is unchanged is
/// reused. Every file is still stat'ed. If a file of a reused listing turns out to be something
/// else (which an unchanged directory stat rules out outside the racy window), the whole tree
/// is scanned again without reuse.
pub fn scan_recorded(dir: &Path, top: &str, excludes: &Excludes, inputs: &Inputs) -> Result<Tree> {
    let top_metadata = inputs.lstat(dir).with_path("read metadata of", dir)?;
    if !top_metadata.is_dir() {
        return Err(Diagnostic::error(
            "not-a-directory",
            format!("`{}` is not a directory", dir.display()),
        )
        .file(dir)
        .help("point at the block directory itself, not a symlink or a file")
        .into());
    }
    let top_stat = Stat::from_metadata(&top_metadata);
    let base = Base::open(dir);
    let mut walk = Walk::new(top, excludes, inputs, &base, true, top_stat);
    match walk.dir(&mut dir.to_path_buf(), top.as_bytes(), top_stat, true) {
        Err(Walked::Stale) => {
            walk = Walk::new(top, excludes, inputs, &base, false, top_stat);
            walk.dir(&mut dir.to_path_buf(), top.as_bytes(), top_stat, true)
                .map_err(Walked::into_error)?;
        }
        Err(Walked::Failed(error)) => return Err(error),
        Ok(()) => {}
    }
    let Walk {
        mut entries,
        mut problems,
        links,
        ..
    } = walk;

    entries.sort_by(|a, b| a.path.cmp(&b.path));
    // Thousands of trees are held at once: no spare capacity (memory).
    entries.shrink_to_fit();

    let source = |entry: &Entry| source_of(dir, top.len(), &entry.path);
    for entry in &entries {
        if let EntryKind::File { .. } = entry.kind
            && let Some(&(nlink, inside)) = links.get(&(entry.stat.dev, entry.stat.inode))
            && nlink > inside
        {
            problems.push(
                Diagnostic::error(
                    "hard-link-outside",
                    format!(
                        "hard link to outside the block: `{}` has {nlink} links, {inside} of them inside the block",
                        source(entry).display()
                    ),
                )
                .file(source(entry))
                .help("replace the hard link with a copy of the file"),
            );
        }
    }

    // Only a symbolic link needs them (most blocks have none).
    let has_links = (entries.iter()).any(|entry| matches!(entry.kind, EntryKind::Symlink { .. }));
    let directories: HashSet<&[u8]> = (entries.iter())
        .filter(|entry| has_links && entry.kind == EntryKind::Dir)
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
                        source(entry).display(),
                        String::from_utf8_lossy(target)
                    ),
                )
                .file(source(entry))
                .help("use a relative target inside the block, or replace the symlink with a copy of the file"),
            );
        }
    }

    if !problems.is_empty() {
        return Err(Error::many(problems));
    }
    Ok(Tree {
        top: top.to_string(),
        root: dir.to_path_buf(),
        entries,
    })
}

/// Why a directory's walk stopped.
enum Walked {
    Failed(Error),
    /// A reused listing did not match what is on disk: scan again without reuse.
    Stale,
}

impl Walked {
    fn into_error(self) -> Error {
        match self {
            Walked::Failed(error) => error,
            Walked::Stale => unreachable!("a walk that reuses nothing never finds a stale listing"),
        }
    }
}

impl From<Error> for Walked {
    fn from(error: Error) -> Walked {
        Walked::Failed(error)
    }
}

/// One scan in progress: what it found so far.
struct Walk<'a> {
    top_len: usize,
    excludes: Excludes,
    inputs: &'a Inputs,
    /// The top directory: entries are stat'ed relative to it (shorter path lookups).
    base: &'a Base,
    /// Whether the previous build's listings may be reused.
    reuse: bool,
    entries: Vec<Entry>,
    problems: Vec<Diagnostic>,
    /// (dev, inode) -> (nlink, occurrences in the tree), for regular files with more than one
    /// link.
    links: HashMap<(u64, u64), (u64, u64)>,
}

impl<'a> Walk<'a> {
    fn new(
        top: &str,
        excludes: &Excludes,
        inputs: &'a Inputs,
        base: &'a Base,
        reuse: bool,
        top_stat: Stat,
    ) -> Walk<'a> {
        Walk {
            top_len: top.len(),
            excludes: excludes.clone(),
            inputs,
            base,
            reuse,
            entries: vec![Entry {
                path: top.as_bytes().to_vec(),
                kind: EntryKind::Dir,
                stat: top_stat,
            }],
            problems: Vec::new(),
            links: HashMap::new(),
        }
    }

    /// Lists the directory `source` (member path `path`, stat'ed as `stat` before anything in it
    /// was read), adds its entries and walks its subdirectories, each by pushing its name onto
    /// `source` (one buffer for the walk, not a path allocated per directory).
    fn dir(
        &mut self,
        source: &mut PathBuf,
        path: &[u8],
        stat: Stat,
        is_top: bool,
    ) -> std::result::Result<(), Walked> {
        let listing = self.inputs.list(source, &stat, self.reuse)?;
        let cached = self.reuse;
        // Symbolic-link targets read here, recorded for the next build.
        let mut read_targets: Vec<(usize, Vec<u8>)> = Vec::new();
        // The top directory's own `.gitignore` is the caller's (`Excludes::for_package`).
        if !is_top && listing.iter().any(|entry| entry.name == b".gitignore") {
            let inside = path[self.top_len + 1..].to_vec();
            if let Some(rules) = exclude::read_gitignore(source, self.inputs)? {
                self.excludes.push_nested(&inside, rules);
            }
        }
        for (index, listed) in listing.iter().enumerate() {
            let child = |source: &Path| source.join(OsStr::from_bytes(listed.name));
            let mut child_path = Vec::with_capacity(path.len() + 1 + listed.name.len());
            child_path.extend_from_slice(path);
            child_path.push(b'/');
            child_path.extend_from_slice(listed.name);
            let inside = &child_path[self.top_len + 1..];
            if self
                .excludes
                .is_excluded(inside, listed.kind == ListedKind::Dir)
            {
                continue;
            }
            match listed.kind {
                ListedKind::Dir => {
                    // A directory's `lstat` is recorded with its listing (`dir`); anything
                    // else found there is recorded here.
                    let found = self.base.statx(inside, false).map(|(stat, _)| stat);
                    let is_dir = found.is_some_and(|stat| stat.mode & S_IFMT == S_IFDIR);
                    if !is_dir {
                        self.inputs.saw_lstat(&child(source), found);
                    }
                    let stat = match found {
                        Some(stat) if is_dir => stat,
                        _ if cached => return Err(Walked::Stale),
                        Some(_) => {
                            // Replaced since it was listed: as walkdir did, an entry of the
                            // listed type, not entered.
                            self.push(child_path, EntryKind::Dir, Stat::default());
                            continue;
                        }
                        None => return Err(lstat_error(&child(source)).into()),
                    };
                    source.push(OsStr::from_bytes(listed.name));
                    let walked = self.dir(source, &child_path, stat, false);
                    source.pop();
                    walked?;
                    // After its entries: the path is not copied (entries are sorted at the end).
                    self.push(child_path, EntryKind::Dir, Stat::default());
                }
                ListedKind::Symlink => {
                    let target = match listed.target {
                        Some(target) => target.to_vec(),
                        None => {
                            let child = child(source);
                            let read = fs::read_link(&child).with_path("read symlink", &child)?;
                            let read = read.as_os_str().as_bytes().to_vec();
                            read_targets.push((index, read.clone()));
                            read
                        }
                    };
                    self.push(child_path, EntryKind::Symlink { target }, Stat::default());
                }
                ListedKind::File | ListedKind::Other => {
                    // A regular file's `lstat` is recorded with its content, by the build
                    // (`Inputs::hash_file`, `Inputs::saw_file`); anything else here.
                    let found = self.base.statx(inside, false);
                    if found.is_none_or(|(stat, _)| stat.mode & S_IFMT != S_IFREG) {
                        self.inputs
                            .saw_lstat(&child(source), found.map(|(stat, _)| stat));
                    }
                    let (stat, links) = match found {
                        Some(found) => found,
                        None if cached => return Err(Walked::Stale),
                        None => return Err(lstat_error(&child(source)).into()),
                    };
                    if cached && matches!(stat.mode & S_IFMT, S_IFDIR | S_IFLNK) {
                        return Err(Walked::Stale);
                    }
                    self.file(child_path, || child(source), stat, links)?;
                }
            }
        }
        // With the targets read (a copy, if the listing is shared).
        let listing = if read_targets.is_empty() {
            listing
        } else {
            let mut read = read_targets.iter().peekable();
            Listing::new(listing.iter().enumerate().map(|(index, mut entry)| {
                if let Some((_, target)) = read.next_if(|(at, _)| *at == index) {
                    entry.target = Some(target);
                }
                entry
            }))
        };
        self.inputs.listed(source, &stat, listing);
        Ok(())
    }

    /// An entry that the listing says is neither a directory nor a symbolic link, with its
    /// `lstat` and number of hard links.
    fn file(
        &mut self,
        path: Vec<u8>,
        source: impl Fn() -> PathBuf,
        stat: Stat,
        links: u64,
    ) -> Result<()> {
        let kind = match stat.mode & S_IFMT {
            S_IFDIR => EntryKind::Dir,
            S_IFREG => {
                // A file with one link has no other name, inside the block or out.
                if links > 1 {
                    let counter = self
                        .links
                        .entry((stat.dev, stat.inode))
                        .or_insert((links, 0));
                    counter.1 += 1;
                }
                EntryKind::File {
                    executable: stat.mode & 0o111 != 0,
                    size: stat.size,
                }
            }
            S_IFLNK => {
                let source = source();
                let target = fs::read_link(&source).with_path("read symlink", &source)?;
                EntryKind::Symlink {
                    target: target.as_os_str().as_bytes().to_vec(),
                }
            }
            other => {
                let what = match other {
                    0o010000 => "a FIFO",
                    0o140000 => "a socket",
                    0o060000 => "a block device",
                    0o020000 => "a character device",
                    _ => "not a file, directory or symlink",
                };
                let source = source();
                self.problems.push(
                    Diagnostic::error("special-file", format!("`{}` is {what}", source.display()))
                        .file(&source)
                        .help("remove it from the block; only files, directories and symlinks can be packaged"),
                );
                return Ok(());
            }
        };
        let stat = if matches!(kind, EntryKind::File { .. }) {
            stat
        } else {
            Stat::default()
        };
        self.push(path, kind, stat);
        Ok(())
    }

    fn push(&mut self, path: Vec<u8>, kind: EntryKind, stat: Stat) {
        self.entries.push(Entry { path, kind, stat });
    }
}

/// Why `lstat` of `path` failed (it did, relative to the top directory).
fn lstat_error(path: &Path) -> Error {
    let error = fs::symlink_metadata(path).err();
    let error = error.unwrap_or_else(|| std::io::ErrorKind::NotFound.into());
    Error::io("read metadata of", path, error)
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
    use crate::inputs::Listed;
    use std::os::unix::fs::{MetadataExt, symlink};
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
        assert_eq!(tree.source(&tree.entries[0]), dir);
        assert_eq!(tree.source(&tree.entries[7]), dir.join("sub/x.py"));
        let mut buffer = PathBuf::from("/elsewhere/longer/than/the/rest");
        for entry in &tree.entries {
            tree.source_into(entry, &mut buffer);
            assert_eq!(buffer, tree.source(entry));
        }
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
        assert_eq!(file.stat.mtime_ns / 1_000_000_000, metadata.mtime());
    }

    /// A recorder whose previous records are those of `dir`'s scan, with `edit` applied to
    /// its listings, trusted (recorded long before the build started).
    fn previous_of(dir: &Path, edit: impl Fn(&Path, &mut Vec<Listed<'_>>)) -> Inputs {
        let inputs = Inputs::new();
        scan_recorded(dir, "a__1_0", &Excludes::built_in(), &inputs).unwrap();
        let (mut records, _) = inputs.finish();
        records.edit(|path, seen| {
            if let crate::inputs::Seen::Listed { entries, .. } = seen {
                let mut edited: Vec<Listed> = entries.iter().collect();
                edit(path, &mut edited);
                *entries = Listing::new(edited);
            }
        });
        Inputs::with_previous(Path::new("/"), records, i64::MAX / 2)
    }

    fn scan_with(dir: &Path, inputs: &Inputs) -> Tree {
        scan_recorded(dir, "a__1_0", &Excludes::built_in(), inputs).unwrap()
    }

    fn member_paths(tree: &Tree) -> Vec<String> {
        tree.entries
            .iter()
            .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
            .collect()
    }

    #[test]
    fn a_reused_listing_gives_the_same_tree_and_records() {
        let (_root, dir) = block();
        symlink("sub/x.py", dir.join("link")).unwrap();
        fs::write(dir.join("sub/.gitignore"), "*.log\n").unwrap();
        fs::write(dir.join("sub/y.log"), "").unwrap();
        let first = Inputs::new();
        let fresh = scan_with(&dir, &first);
        let reusing = previous_of(&dir, |_, _| {});
        let reused = scan_with(&dir, &reusing);
        assert_eq!(reused, fresh);
        assert_eq!(reusing.finish(), first.finish());
        assert!(!member_paths(&reused).contains(&"a__1_0/sub/y.log".to_string()));
    }

    #[test]
    fn a_listing_that_does_not_match_the_disk_means_a_fresh_scan() {
        // Outside the racy window an unchanged directory stat rules these out; if a listing
        // is wrong anyway, the scan notices on the entry it stats and lists everything again.
        let (_root, dir) = block();
        let fresh = scan(&dir, "a__1_0").unwrap();
        let sub = dir.join("sub");
        let key = sub.clone();
        // A file that is not there.
        let ghost = previous_of(&dir, |path, entries| {
            if path == key {
                entries.push(Listed {
                    name: b"z_ghost.py",
                    kind: ListedKind::File,
                    target: None,
                });
            }
        });
        assert_eq!(scan_with(&dir, &ghost), fresh);
        // A directory listed as a file.
        let top = dir.clone();
        let wrong_kind = previous_of(&dir, |path, entries| {
            if path == top {
                for entry in entries.iter_mut() {
                    if entry.name == b"sub" {
                        entry.kind = ListedKind::File;
                    }
                }
            }
        });
        assert_eq!(scan_with(&dir, &wrong_kind), fresh);
        // A missing entry cannot be noticed: that is what the directory's stat is for (see
        // `Inputs::list` and the incremental tests).
        let missing = previous_of(&dir, |path, entries| {
            if path == key {
                entries.clear();
            }
        });
        assert_eq!(
            member_paths(&scan_with(&dir, &missing)),
            ["a__1_0", "a__1_0/sub"],
            "the recorded listing is trusted"
        );
    }
}
