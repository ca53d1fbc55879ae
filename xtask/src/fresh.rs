//! The no-op fast path: a `dist` whose inputs are all as the last complete build in the output
//! directory found them stops after one `stat` per input, without parsing a manifest, planning,
//! generating the extension tree or rebuilding the cache's records.
//!
//! A full build that completes writes, after the cache, `<out>/.dist-fresh`: the *fingerprint*
//! of everything its output depends on, and what it printed.
//! - The running executable (the `stat` of `/proc/self/exe`: a rebuilt xtask never trusts the
//!   fingerprint of another), `SOURCE_DATE_EPOCH`, the repository and the output directory,
//!   and this file's format.
//! - Every path the build read or listed, with its stat: the directories the scan listed (their
//!   own stat, as the cache's listings), every source file the scan stat'ed (size, mtime, ctime,
//!   inode, mode), and, stat'ed again at the end of the build, the repository root, `manifests/`
//!   and each of its entries, `blox/`, the driver and deployer sources, file packages, driver
//!   directories, every `.gitignore` a scan read, every symbolic link of a listing, and every
//!   directory between the repository root and any of those (so an entry added or removed
//!   anywhere on the way, including a `.gitignore` where there was none, shows in a stat). A
//!   symbolic link is recorded twice: itself and what it leads to.
//! - Every file of the output (the extension tree, `sw_packages`, `SHA256SUMS`,
//!   `dist-manifest.json`, the cache) and every directory of the tree, stat'ed after the
//!   switch: an output deleted, replaced or added shows in a stat.
//! - The summary (packages, bytes) and the warnings the build printed.
//!
//! A fingerprint is written only when it is complete and trustworthy: every source file has its
//! stat record (a path that is not UTF-8 has none), and no input is racy, that is modified
//! within the clock slack of the build's start (`cache::racy_at`): for the scan's stats, taken
//! before any file was read, by their mtime, as the cache's records; for the paths stat'ed at
//! the end, by their mtime and their ctime (a change made after the build read them, with the
//! mtime set back, moves the ctime). Otherwise no fingerprint is written, and an old one is
//! removed: the next run is a full build, which writes one.
//!
//! The fast path (`check`): not with `--no-cache`. It reads the fingerprint (its SHA-256 must
//! hold), compares the executable and the settings, refuses when a staging directory is in the
//! output directory (a run in progress or killed) or anything else `output::prepare` would
//! remove, then stats the 32 sources changed last (an edit-and-build cycle changes them
//! again), then every recorded path on `--jobs` threads, each decoding its share of the file
//! (paths inside the repository relative to a descriptor of its root); the first difference
//! (or error) ends it, and the full build runs as if there had
//! been no fingerprint. When all are equal, nothing changed since the build that recorded
//! them (an input changed after its start would show a later mtime or ctime), so its output,
//! still on disk as it left it, is the output of this build: the run prints the same summary
//! (every package unchanged) and warnings, and writes nothing. It takes no lock (it writes
//! nothing; a run writing the directory has its staging directory there, or has already
//! changed a recorded stat).
//!
//! It trusts what the cache trusts, no more: a file rewritten in place with its mtime and ctime
//! set back (which takes root for the ctime), or an output edited within the same tick of the
//! file clock as dist's own look at it, is not seen (`verify` sees it, `--no-cache` repairs it).
//!
//! The protocol with `output::commit`: a full build removes the fingerprint before its switch
//! changes anything under a final name, and writes the new one (through its staging
//! directory, then a rename) after the cache; one whose bytes would not change is left alone,
//! so a no-op full build still writes nothing.
//!
//! The format (integers little-endian): the 16-byte magic `xtask-dist-fresh`, the format (u32),
//! the SHA-256 of the body (32 bytes); the body: the executable (dev, inode, size u64, mtime,
//! ctime i64 ns), `SOURCE_DATE_EPOCH` (u8 0 or 1, u64), repository and output directory (byte
//! strings), the summary (resources, packages, bytes, source bytes: u64), the warnings (u32
//! count; severity u8, code, message, file and help as optional byte strings, location as u8
//! 0 or 1 then line, column, width u64 and the line's text), then the entries, sorted by path
//! then check: u32 count; path as the length of the prefix shared with the path before (u16)
//! and the rest; check u8 (0 `lstat`, 1 a listed directory's `lstat`: mtime, ctime, inode and
//! size only, 2 `stat` through symbolic links); size u64, mtime, ctime i64 ns, inode u64,
//! mode u32. A byte string is a u32 length and the bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cache::{DirRecord, FileRecord, ListedKind, Records, racy_at};
use crate::check::DRIVER_SOURCES;
use crate::codec::{Reader, put_bytes, put_key, put_optional, put_u32};
use crate::error::{Diagnostic, Location, Result, Severity};
use crate::extension::Content;
use crate::model::{Driver, Model};
use crate::output::Summary;
use crate::plan::{DEPLOYER_LAUNCHER, DEPLOYER_PACKAGE, Plan};
use crate::tree::Stat;

pub const FRESH_FILE: &str = ".dist-fresh";
const MAGIC: &[u8; 16] = b"xtask-dist-fresh";
const FORMAT: u32 = 1;
const HEADER: usize = 16 + 4 + 32;
/// Below this many entries per thread, one more thread costs more than it saves.
const ENTRIES_PER_THREAD: usize = 1024;

/// What decides the output besides the files: the running executable, `SOURCE_DATE_EPOCH`,
/// where the repository and the output are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The running executable's stat; `None` when it cannot be stat'ed (then nothing is fresh).
    exe: Option<Exe>,
    source_date_epoch: Option<u64>,
    repo: PathBuf,
    out_dir: PathBuf,
}

impl Identity {
    /// Taken when a run starts: an executable replaced while it runs is not the one recorded.
    pub fn current(repo: &Path, out_dir: &Path, source_date_epoch: Option<u64>) -> Identity {
        Identity {
            exe: running_executable().map(|m| {
                let stat = Stat::from_metadata(&m);
                Exe {
                    dev: stat.dev,
                    inode: stat.inode,
                    size: stat.size,
                    mtime_ns: stat.mtime_ns,
                    ctime_ns: stat.ctime_ns,
                }
            }),
            source_date_epoch,
            repo: repo.to_path_buf(),
            out_dir: out_dir.to_path_buf(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Exe {
    dev: u64,
    inode: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

/// The file this process runs: `/proc/self/exe` is the running one even if its path was
/// replaced since.
fn running_executable() -> Option<std::fs::Metadata> {
    std::fs::metadata("/proc/self/exe")
        .or_else(|_| std::env::current_exe().and_then(std::fs::metadata))
        .ok()
}

/// What a fresh run reports: the summary and warnings of the build that recorded it.
#[derive(Debug)]
pub struct Fresh {
    pub summary: Summary,
    pub warnings: Vec<Diagnostic>,
}

/// How an entry is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    /// `lstat`: size, mtime, ctime, inode, mode.
    Lstat = 0,
    /// `lstat` of a directory whose listing a scan used: a directory, same mtime, ctime, inode
    /// and size (as `cache::Cache::listing`).
    Listing = 1,
    /// `stat`, through symbolic links: size, mtime, ctime, inode, mode.
    Follow = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    mode: u32,
}

impl Expected {
    fn of(stat: &Stat) -> Expected {
        Expected {
            size: stat.size,
            mtime_ns: stat.mtime_ns,
            ctime_ns: stat.ctime_ns,
            inode: stat.inode,
            mode: stat.mode,
        }
    }

    fn holds(&self, check: Check, stat: &Stat) -> bool {
        let common = stat.mtime_ns == self.mtime_ns
            && stat.ctime_ns == self.ctime_ns
            && stat.inode == self.inode
            && stat.size == self.size;
        match check {
            Check::Listing => common && stat.mode & S_IFMT == S_IFDIR,
            Check::Lstat | Check::Follow => common && stat.mode == self.mode,
        }
    }
}

/// What a completed build hands over for its fingerprint.
pub struct Build<'a> {
    pub identity: &'a Identity,
    pub warnings: &'a [Diagnostic],
    pub model: &'a Model,
    pub plan: &'a Plan,
    /// The scan's stat records of every source file, and its listings.
    pub files: &'a Records<FileRecord>,
    pub dirs: &'a Records<DirRecord>,
    /// Whether `files` and `dirs` hold a record of every file and directory scanned.
    pub complete: bool,
    /// Every file of the output, after the switch.
    pub outputs: Vec<PathBuf>,
    pub summary: &'a Summary,
    pub started_ns: i64,
}

/// The fingerprint of a completed build, or `None` when it cannot be trusted (see the module).
pub fn fingerprint(build: &Build) -> Option<Vec<u8>> {
    if !build.complete || build.identity.exe.is_none() {
        return None;
    }
    let racy = |mtime_ns: i64| racy_at(mtime_ns, build.started_ns);
    // The scan's records are merged in as they are encoded (`scanned`), not copied here:
    // 60 k entries for the large profile, the largest block of memory of its builds.
    let copied = copied_files(build);
    for (path, record) in build.files.iter() {
        if !copied.contains(Path::new(path)) && racy(record.mtime_ns) {
            return None;
        }
    }
    if build.dirs.iter().any(|(_, record)| racy(record.mtime_ns)) {
        return None;
    }
    // Every other path, which takes the place of a scan's entry of the same path and check.
    let mut entries: BTreeMap<(Vec<u8>, Check), Expected> = BTreeMap::new();
    for path in read_paths(build) {
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            // Absent: its directory's stat, recorded, shows when it appears.
            continue;
        };
        let mut checks = vec![(Check::Lstat, Stat::from_metadata(&metadata))];
        if metadata.file_type().is_symlink() {
            // A link to nothing may lead to something later, where no stat here would show it.
            let target = std::fs::metadata(&path).ok()?;
            checks.push((Check::Follow, Stat::from_metadata(&target)));
        }
        for (check, stat) in checks {
            if racy(stat.mtime_ns) || racy(stat.ctime_ns) {
                return None;
            }
            entries.insert(
                (path.as_os_str().as_bytes().to_vec(), check),
                Expected::of(&stat),
            );
        }
    }
    // The output as the switch left it: dist's own files, trusted without the racy rule, as
    // the cache trusts them.
    let out_dir = &build.identity.out_dir;
    let mut outputs: BTreeSet<PathBuf> = BTreeSet::new();
    for path in &build.outputs {
        outputs.insert(path.clone());
        for dir in path.ancestors().skip(1) {
            if !dir.starts_with(out_dir) || dir == out_dir {
                break;
            }
            outputs.insert(dir.to_path_buf());
        }
    }
    for path in outputs {
        let metadata = std::fs::symlink_metadata(&path).ok()?;
        entries.insert(
            (path.as_os_str().as_bytes().to_vec(), Check::Lstat),
            Expected::of(&Stat::from_metadata(&metadata)),
        );
    }
    encode(build, scanned(build, &entries))
}

/// The sources of file packages: recorded among the other paths, through their links as
/// `copy_file` reads them, not as the scan's records.
fn copied_files<'a>(build: &Build<'a>) -> BTreeSet<&'a Path> {
    build
        .plan
        .files
        .iter()
        .map(|f| f.source.as_path())
        .collect()
}

/// An entry of the fingerprint: path and check, and what the stat must be.
type Item<'a> = ((&'a [u8], Check), Expected);

/// Every entry of the fingerprint in order, once: the scan's records of files and listed
/// directories, and `others`, whose entry wins over a scan's of the same path and check.
fn scanned<'a>(
    build: &Build<'a>,
    others: &'a BTreeMap<(Vec<u8>, Check), Expected>,
) -> impl Iterator<Item = Item<'a>> {
    let copied = copied_files(build);
    let files = build
        .files
        .iter_sorted()
        .filter(move |(path, _)| !copied.contains(Path::new(path)))
        .map(|(path, record)| {
            let expected = Expected {
                size: record.size,
                mtime_ns: record.mtime_ns,
                ctime_ns: record.ctime_ns,
                inode: record.inode,
                mode: record.mode,
            };
            ((path.as_bytes(), Check::Lstat), expected)
        });
    let dirs = build.dirs.iter_sorted().map(|(path, record)| {
        let expected = Expected {
            size: record.size,
            mtime_ns: record.mtime_ns,
            ctime_ns: record.ctime_ns,
            inode: record.inode,
            mode: 0,
        };
        ((path.as_bytes(), Check::Listing), expected)
    });
    let others = others
        .iter()
        .map(|((path, check), expected)| ((path.as_slice(), *check), *expected));
    // Lowest precedence first.
    let mut sources: [std::iter::Peekable<Box<dyn Iterator<Item = Item<'a>> + 'a>>; 3] = [
        (Box::new(files) as Box<dyn Iterator<Item = Item<'a>>>).peekable(),
        (Box::new(dirs) as Box<dyn Iterator<Item = Item<'a>>>).peekable(),
        (Box::new(others) as Box<dyn Iterator<Item = Item<'a>>>).peekable(),
    ];
    std::iter::from_fn(move || {
        let key = sources
            .iter_mut()
            .filter_map(|source| source.peek().map(|(key, _)| *key))
            .min()?;
        let mut item = None;
        for source in &mut sources {
            if let Some(next) = source.next_if(|(next, _)| *next == key) {
                item = Some(next);
            }
        }
        item
    })
}

/// The paths besides the scan's that the build read, listed or probed: see the module
/// documentation. Each comes with every directory from the repository root down to it.
fn read_paths(build: &Build) -> BTreeSet<PathBuf> {
    let repo = build.plan.repo.as_path();
    let mut paths: BTreeSet<PathBuf> = BTreeSet::new();
    let manifests = repo.join("manifests");
    if let Ok(entries) = std::fs::read_dir(&manifests) {
        for entry in entries.flatten() {
            paths.insert(entry.path());
        }
    }
    paths.insert(manifests);
    for path in [DRIVER_SOURCES, DEPLOYER_LAUNCHER, DEPLOYER_PACKAGE, "blox"] {
        paths.insert(repo.join(path));
    }
    for resource in &build.model.resources {
        paths.insert(repo.join(&resource.manifest));
        match &resource.driver {
            Driver::Directory(dir) => {
                paths.insert(repo.join(dir).join("driver.py"));
            }
            Driver::Library { module } => {
                let name = module.rsplit('.').next().unwrap_or(module);
                paths.insert(repo.join(DRIVER_SOURCES).join(format!("{name}.py")));
            }
            Driver::Block => {}
        }
    }
    for job in &build.plan.archives {
        // `Excludes::for_package` reads a `.gitignore` at every level down to the package.
        for dir in job.dir.ancestors() {
            paths.insert(dir.join(".gitignore"));
            if dir == repo || !dir.starts_with(repo) {
                break;
            }
        }
    }
    for job in &build.plan.files {
        paths.insert(job.source.clone());
    }
    for file in &build.plan.tree {
        if let Content::Copy(source) = &file.content {
            paths.insert(source.clone());
        }
    }
    // Inside the scanned trees: the nested `.gitignore` files a scan read, whether or not they
    // are packaged, and symbolic links, which `check` follows (`is_file`).
    for (dir, record) in build.dirs.iter() {
        for entry in record.entries.iter() {
            if entry.name == b".gitignore" || matches!(entry.kind, ListedKind::Symlink(_)) {
                paths.insert(Path::new(dir).join(OsStr::from_bytes(entry.name)));
            }
        }
    }
    let mut with_dirs = BTreeSet::new();
    for path in paths {
        for dir in path.ancestors().skip(1) {
            if !dir.starts_with(repo) || !with_dirs.insert(dir.to_path_buf()) {
                break;
            }
        }
        with_dirs.insert(path);
    }
    with_dirs.insert(repo.to_path_buf());
    with_dirs
}

/// Reads the fingerprint of `identity`'s output directory and checks every recorded stat, on
/// up to `jobs` threads: `Some` when nothing changed.
pub fn check(identity: &Identity, jobs: usize) -> Option<Fresh> {
    identity.exe?;
    let bytes = read(&identity.out_dir.join(FRESH_FILE))?;
    let body = checked_body(&bytes)?;
    let mut r = Reader { rest: body };
    let (recorded, fresh) = read_header(&mut r)?;
    if recorded != *identity {
        return None;
    }
    // A run under way, or killed: its staging directory is there until a full build removes
    // it.
    for entry in std::fs::read_dir(&identity.out_dir).ok()? {
        let name = entry.ok()?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(crate::output::STAGING_PREFIX) {
            return None;
        }
    }
    let stater = Stater::new(&identity.repo);
    let (parts, recent) = split_entries(&mut r, jobs, &stater.prefix)?;
    if !r.rest.is_empty() {
        return None;
    }
    // The sources changed last first: an edit-and-build cycle changes them again, and one
    // difference ends the check (the full build then runs) after a few stats, not thousands.
    for (mut path, check, expected) in recent {
        path.push(0);
        if !stater
            .stat(&path, check == Check::Follow)
            .is_some_and(|stat| expected.holds(check, &stat))
        {
            return None;
        }
    }
    let stater = &stater;
    let changed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for part in &parts {
            let changed = &changed;
            scope.spawn(move || {
                let mut r = Reader { rest: part.bytes };
                let mut path = part.previous.clone();
                for _ in 0..part.count {
                    if changed.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some((check, expected)) = next_entry(&mut r, &mut path) else {
                        changed.store(true, Ordering::Relaxed);
                        return;
                    };
                    // A C string for `statx`.
                    path.push(0);
                    let stat = stater.stat(&path, check == Check::Follow);
                    path.pop();
                    if !stat.is_some_and(|stat| expected.holds(check, &stat)) {
                        changed.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    (!changed.into_inner()).then_some(fresh)
}

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;

/// Stats the recorded paths: those inside the repository relative to a descriptor of its root,
/// so that the kernel does not walk the root's own components again for each one, the others
/// by their absolute path.
struct Stater {
    /// The repository's root, with a `/` after it.
    prefix: Vec<u8>,
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    root: Option<std::fs::File>,
}

impl Stater {
    fn new(repo: &Path) -> Stater {
        let mut prefix = repo.as_os_str().as_bytes().to_vec();
        prefix.push(b'/');
        Stater {
            prefix,
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            root: std::fs::File::open(repo).ok(),
        }
    }

    /// The stat of the path in `path` (its bytes, then a NUL), through a last symbolic link if
    /// `follow`; `None` if it cannot be stat'ed.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn stat(&self, path: &[u8], follow: bool) -> Option<Stat> {
        use std::os::fd::AsRawFd;
        let (dir, relative) = match (&self.root, path.strip_prefix(self.prefix.as_slice())) {
            (Some(root), Some(relative)) if relative.len() > 1 => (root.as_raw_fd(), relative),
            _ => (statx::AT_FDCWD, path),
        };
        statx::stat(dir, relative, follow)
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn stat(&self, path: &[u8], follow: bool) -> Option<Stat> {
        let _ = &self.prefix;
        let path = Path::new(OsStr::from_bytes(&path[..path.len() - 1]));
        let metadata = if follow {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        };
        metadata.ok().map(|m| Stat::from_metadata(&m))
    }
}

/// `statx(2)` relative to a directory descriptor, which the standard library does not offer.
/// Made as a raw system call with the `libc` crate's `struct statx`, not through glibc's
/// `statx` wrapper, which would make xtask fail to link against a glibc older than 2.28; a
/// kernel without `statx` (before 4.11) answers `ENOSYS`, which is "cannot stat", so the full
/// build runs.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod statx {
    use crate::tree::Stat;

    pub const AT_FDCWD: libc::c_int = libc::AT_FDCWD;
    /// What a fingerprint compares: type and mode, mtime, ctime, inode, size.
    const COMPARED: u32 = libc::STATX_TYPE
        | libc::STATX_MODE
        | libc::STATX_MTIME
        | libc::STATX_CTIME
        | libc::STATX_INO
        | libc::STATX_SIZE;

    /// The stat of `path` (bytes ending with a NUL, relative to `dir` unless absolute).
    pub fn stat(dir: libc::c_int, path: &[u8], follow: bool) -> Option<Stat> {
        assert_eq!(path.last(), Some(&0), "a C string");
        // SAFETY: `struct statx` is plain integers, for which all zeroes is a valid value.
        let mut buffer: libc::statx = unsafe { std::mem::zeroed() };
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        // SAFETY: `path` is NUL-terminated and outlives the call; `buffer` is a writable
        // `struct statx`, which is all the call writes.
        let result = unsafe {
            libc::syscall(
                libc::SYS_statx,
                dir,
                path.as_ptr().cast::<libc::c_char>(),
                flags,
                libc::STATX_BASIC_STATS,
                &mut buffer as *mut libc::statx,
            )
        };
        if result != 0 || buffer.stx_mask & COMPARED != COMPARED {
            return None;
        }
        let time =
            |t: &libc::statx_timestamp| crate::tree::nanoseconds(t.tv_sec, i64::from(t.tv_nsec));
        Some(Stat {
            size: buffer.stx_size,
            mtime_ns: time(&buffer.stx_mtime),
            ctime_ns: time(&buffer.stx_ctime),
            inode: buffer.stx_ino,
            dev: 0,
            mode: u32::from(buffer.stx_mode),
        })
    }
}

/// The file's bytes, if it is a regular file (never through a symbolic link).
fn read(path: &Path) -> Option<Vec<u8>> {
    let before = std::fs::symlink_metadata(path).ok()?;
    if !before.is_file() {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    let opened = file.metadata().ok()?;
    if (opened.dev(), opened.ino()) != (before.dev(), before.ino()) {
        return None;
    }
    let mut bytes = Vec::with_capacity(opened.len() as usize);
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Whether `path` is a regular file holding exactly `bytes`: compared a block at a time, so the
/// file (megabytes for the large profile) is never held in memory beside them.
fn holds(path: &Path, bytes: &[u8]) -> bool {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if !metadata.is_file() || metadata.len() != bytes.len() as u64 {
        return false;
    }
    let mut block = vec![0; 64 * 1024];
    let mut rest = bytes;
    loop {
        match file.read(&mut block) {
            Ok(0) => return rest.is_empty(),
            Ok(n) if n <= rest.len() && block[..n] == rest[..n] => rest = &rest[n..],
            Ok(_) | Err(_) => return false,
        }
    }
}

fn checked_body(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < HEADER || &bytes[..16] != MAGIC || bytes[16..20] != FORMAT.to_le_bytes() {
        return None;
    }
    let body = &bytes[HEADER..];
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(body).into();
    (digest[..] == bytes[20..HEADER]).then_some(body)
}

/// Writes the fingerprint of a completed build, unless the file already holds these bytes:
/// through `staging`, then a rename.
pub fn write(out_dir: &Path, staging: &Path, bytes: &[u8]) -> Result<()> {
    let path = out_dir.join(FRESH_FILE);
    if holds(&path, bytes) {
        return Ok(());
    }
    let temp = staging.join(FRESH_FILE);
    std::fs::write(&temp, bytes).map_err(|e| crate::error::Error::io("write", &temp, e))?;
    crate::fault::point("fresh")?;
    std::fs::rename(&temp, &path)
        .map_err(|e| crate::error::Error::io("rename into place", &path, e))
}

/// Removes the fingerprint, if there is one: done before anything of the output changes.
pub fn remove(out_dir: &Path) -> Result<()> {
    let path = out_dir.join(FRESH_FILE);
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(crate::error::Error::io("remove", &path, error))
        }
        _ => Ok(()),
    }
}

fn encode<'a>(build: &Build, entries: impl Iterator<Item = Item<'a>>) -> Option<Vec<u8>> {
    let identity = build.identity;
    let mut out = vec![0; HEADER];
    let exe = identity.exe?;
    for value in [exe.dev, exe.inode, exe.size] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    for value in [exe.mtime_ns, exe.ctime_ns] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    match identity.source_date_epoch {
        Some(seconds) => {
            out.push(1);
            out.extend_from_slice(&seconds.to_le_bytes());
        }
        None => {
            out.push(0);
            out.extend_from_slice(&0u64.to_le_bytes());
        }
    }
    put_bytes(&mut out, identity.repo.as_os_str().as_bytes());
    put_bytes(&mut out, identity.out_dir.as_os_str().as_bytes());
    let summary = build.summary;
    for value in [
        summary.resources as u64,
        summary.packages as u64,
        summary.bytes,
        summary.source_bytes,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    put_u32(&mut out, build.warnings.len());
    for warning in build.warnings {
        out.push(match warning.severity {
            Severity::Error => 0,
            Severity::Warning => 1,
        });
        put_bytes(&mut out, warning.code.as_bytes());
        put_bytes(&mut out, warning.message.as_bytes());
        put_optional(
            &mut out,
            warning.file.as_ref().map(|f| f.as_os_str().as_bytes()),
        );
        match &warning.location {
            Some(location) => {
                out.push(1);
                for value in [location.line, location.column, location.width] {
                    out.extend_from_slice(&(value as u64).to_le_bytes());
                }
                put_bytes(&mut out, location.line_text.as_bytes());
            }
            None => out.push(0),
        }
        put_optional(&mut out, warning.help.as_ref().map(|h| h.as_bytes()));
    }
    // The count, filled in below.
    let count_at = out.len();
    put_u32(&mut out, 0);
    let mut count = 0;
    let mut previous: &[u8] = b"";
    for ((path, check), expected) in entries {
        count += 1;
        put_key(&mut out, previous, path);
        previous = path;
        out.push(check as u8);
        out.extend_from_slice(&expected.size.to_le_bytes());
        out.extend_from_slice(&expected.mtime_ns.to_le_bytes());
        out.extend_from_slice(&expected.ctime_ns.to_le_bytes());
        out.extend_from_slice(&expected.inode.to_le_bytes());
        out.extend_from_slice(&expected.mode.to_le_bytes());
    }
    let count = u32::try_from(count).expect("fewer than 2^32 entries");
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&out[HEADER..]).into();
    out[..16].copy_from_slice(MAGIC);
    out[16..20].copy_from_slice(&FORMAT.to_le_bytes());
    out[20..HEADER].copy_from_slice(&digest);
    Some(out)
}

fn read_header(r: &mut Reader) -> Option<(Identity, Fresh)> {
    let exe = Exe {
        dev: r.u64()?,
        inode: r.u64()?,
        size: r.u64()?,
        mtime_ns: r.time()?,
        ctime_ns: r.time()?,
    };
    let source_date_epoch = match (r.u8()?, r.u64()?) {
        (0, 0) => None,
        (1, seconds) => Some(seconds),
        _ => return None,
    };
    let repo = PathBuf::from(OsStr::from_bytes(r.bytes()?));
    let out_dir = PathBuf::from(OsStr::from_bytes(r.bytes()?));
    let summary = Summary {
        resources: usize::try_from(r.u64()?).ok()?,
        packages: usize::try_from(r.u64()?).ok()?,
        rebuilt: 0,
        skipped: 0,
        bytes: r.u64()?,
        source_bytes: r.u64()?,
        out_dir: out_dir.clone(),
    };
    let summary = Summary {
        skipped: summary.packages,
        ..summary
    };
    let count = r.count(1 + 4 + 4 + 1 + 1 + 1)?;
    let mut warnings = Vec::with_capacity(count);
    for _ in 0..count {
        let severity = match r.u8()? {
            0 => Severity::Error,
            1 => Severity::Warning,
            _ => return None,
        };
        let code = r.text()?;
        let message = r.text()?;
        let file = r.optional()?.map(|f| PathBuf::from(OsStr::from_bytes(f)));
        let location = match r.u8()? {
            0 => None,
            1 => Some(Location {
                line: usize::try_from(r.u64()?).ok()?,
                column: usize::try_from(r.u64()?).ok()?,
                width: usize::try_from(r.u64()?).ok()?,
                line_text: r.text()?,
            }),
            _ => return None,
        };
        let help = match r.optional()? {
            Some(help) => Some(std::str::from_utf8(help).ok()?.to_string()),
            None => None,
        };
        warnings.push(Diagnostic {
            severity,
            code: static_code(code),
            message,
            file,
            location,
            help,
        });
    }
    let identity = Identity {
        exe: Some(exe),
        source_date_epoch,
        repo,
        out_dir,
    };
    Some((identity, Fresh { summary, warnings }))
}

/// A diagnostic's code is `&'static str`: the few a fresh run prints live until it exits.
fn static_code(code: String) -> &'static str {
    Box::leak(code.into_boxed_str())
}

/// A run of consecutive entries, for one thread: their bytes, how many, and the path of the
/// entry before the first (whose prefix the first may share).
struct Part<'a> {
    bytes: &'a [u8],
    count: usize,
    previous: Vec<u8>,
}

/// How many of the sources changed last (by mtime or ctime) a fresh check stats first.
const RECENT: usize = 32;

/// A recorded entry, decoded: path, check, stat.
type Decoded = (Vec<u8>, Check, Expected);

/// Checks every entry and splits them into one part per thread (up to `jobs`), keeping only
/// the current path: the paths are decoded again by the threads, never all held at once.
/// Also returns the `RECENT` entries under `sources` (a path prefix) changed last.
fn split_entries<'a>(
    r: &mut Reader<'a>,
    jobs: usize,
    sources: &[u8],
) -> Option<(Vec<Part<'a>>, Vec<Decoded>)> {
    let count = r.count(2 + 4 + 1 + 8 + 8 + 8 + 8 + 4)?;
    // A min-heap of (when changed, index): the oldest of the most recent on top.
    let mut recent: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>> =
        std::collections::BinaryHeap::with_capacity(RECENT + 1);
    let mut decoded: Vec<Option<Decoded>> = Vec::with_capacity(RECENT + 1);
    let threads = jobs.clamp(1, count / ENTRIES_PER_THREAD + 1);
    let per_part = count.div_ceil(threads).max(1);
    let start = r.rest;
    let mut parts: Vec<(usize, usize, Vec<u8>)> = Vec::with_capacity(threads);
    let mut path = Vec::new();
    for index in 0..count {
        if index % per_part == 0 {
            let offset = start.len() - r.rest.len();
            parts.push((offset, per_part.min(count - index), path.clone()));
        }
        let (check, expected) = next_entry(r, &mut path)?;
        if path.starts_with(sources) {
            let changed = expected.mtime_ns.max(expected.ctime_ns);
            let newer = recent.len() < RECENT
                || recent
                    .peek()
                    .is_some_and(|std::cmp::Reverse((oldest, _))| changed > *oldest);
            if newer {
                recent.push(std::cmp::Reverse((changed, decoded.len())));
                decoded.push(Some((path.clone(), check, expected)));
                if recent.len() > RECENT
                    && let Some(std::cmp::Reverse((_, dropped))) = recent.pop()
                {
                    decoded[dropped] = None;
                }
            }
        }
    }
    let end = start.len() - r.rest.len();
    let ends: Vec<usize> = parts
        .iter()
        .skip(1)
        .map(|(offset, _, _)| *offset)
        .chain([end])
        .collect();
    let parts = parts
        .into_iter()
        .zip(ends)
        .map(|((offset, count, previous), end)| Part {
            bytes: &start[offset..end],
            count,
            previous,
        })
        .collect();
    Some((parts, decoded.into_iter().flatten().collect()))
}

/// The next entry: its path into `path` (which held the one before), its check and stat.
fn next_entry(r: &mut Reader, path: &mut Vec<u8>) -> Option<(Check, Expected)> {
    let shared = usize::from(r.u16()?);
    let rest = r.bytes()?;
    if shared > path.len() || rest.contains(&0) {
        // Longer than the path before, or a NUL, which no path holds.
        return None;
    }
    path.truncate(shared);
    path.extend_from_slice(rest);
    let check = match r.u8()? {
        0 => Check::Lstat,
        1 => Check::Listing,
        2 => Check::Follow,
        _ => return None,
    };
    let expected = Expected {
        size: r.u64()?,
        mtime_ns: r.time()?,
        ctime_ns: r.time()?,
        inode: r.u64()?,
        mode: r.u32()?,
    };
    Some((check, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fingerprint file around `body`, with its checksum.
    fn file(body: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT.to_le_bytes());
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(body).into();
        bytes.extend_from_slice(&digest);
        bytes.extend_from_slice(body);
        bytes
    }

    /// Entries as the writer encodes them: shared prefix, rest, check, stat.
    fn entry(body: &mut Vec<u8>, shared: u16, rest: &[u8], check: u8) {
        body.extend_from_slice(&shared.to_le_bytes());
        body.extend_from_slice(&(rest.len() as u32).to_le_bytes());
        body.extend_from_slice(rest);
        body.push(check);
        body.extend_from_slice(&[0; 8 + 8 + 8 + 8 + 4]);
    }

    #[test]
    fn a_damaged_or_foreign_file_is_never_read_as_a_fingerprint() {
        let bytes = file(b"body");
        assert_eq!(checked_body(&bytes), Some(&b"body"[..]));
        for index in [0, 17, 30, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[index] ^= 1;
            assert_eq!(checked_body(&damaged), None, "byte {index}");
        }
        assert_eq!(checked_body(&bytes[..HEADER - 1]), None);
        assert_eq!(checked_body(b""), None);
    }

    #[test]
    fn each_thread_decodes_its_part_from_the_path_before_it() {
        let paths: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("/r/d{}/f{i:04}", i / 7).into_bytes())
            .collect();
        let mut body = (paths.len() as u32).to_le_bytes().to_vec();
        let mut previous: &[u8] = b"";
        for path in &paths {
            let shared = previous
                .iter()
                .zip(path)
                .take_while(|(a, b)| a == b)
                .count();
            entry(&mut body, shared as u16, &path[shared..], 0);
            previous = path;
        }
        let mut r = Reader { rest: &body };
        let (parts, recent) = split_entries(&mut r, 3, b"/r/").unwrap();
        assert_eq!(recent.len(), RECENT);
        assert!(r.rest.is_empty());
        assert_eq!(parts.len(), 3);
        let mut decoded = Vec::new();
        for part in &parts {
            let mut r = Reader { rest: part.bytes };
            let mut path = part.previous.clone();
            for _ in 0..part.count {
                next_entry(&mut r, &mut path).unwrap();
                decoded.push(path.clone());
            }
            assert!(r.rest.is_empty());
        }
        assert_eq!(decoded, paths);
    }

    #[test]
    fn entries_decode_with_their_shared_prefixes_and_a_bad_one_is_refused() {
        let mut body = 3u32.to_le_bytes().to_vec();
        entry(&mut body, 0, b"/r/a", 0);
        entry(&mut body, 3, b"b", 1);
        entry(&mut body, 4, b"/c", 2);
        let (parts, recent) = split_entries(&mut Reader { rest: &body }, 2, b"/r/").unwrap();
        assert_eq!(recent.len(), 3);
        assert_eq!(parts.len(), 1, "fewer entries than a thread's share");
        let mut r = Reader {
            rest: parts[0].bytes,
        };
        let mut path = parts[0].previous.clone();
        let paths: Vec<(Vec<u8>, Check)> = (0..parts[0].count)
            .map(|_| {
                let (check, _) = next_entry(&mut r, &mut path).unwrap();
                (path.clone(), check)
            })
            .collect();
        assert!(r.rest.is_empty());
        assert_eq!(
            paths,
            [
                (b"/r/a".to_vec(), Check::Lstat),
                (b"/r/b".to_vec(), Check::Listing),
                (b"/r/b/c".to_vec(), Check::Follow)
            ]
        );
        // A prefix longer than the path before it, an unknown check, a count too large.
        let mut long = 2u32.to_le_bytes().to_vec();
        entry(&mut long, 0, b"/r", 0);
        entry(&mut long, 3, b"x", 0);
        assert!(split_entries(&mut Reader { rest: &long }, 1, b"/").is_none());
        let mut check = 1u32.to_le_bytes().to_vec();
        entry(&mut check, 0, b"/r", 3);
        assert!(split_entries(&mut Reader { rest: &check }, 1, b"/").is_none());
        let mut count = 9u32.to_le_bytes().to_vec();
        entry(&mut count, 0, b"/r", 0);
        assert!(split_entries(&mut Reader { rest: &count }, 1, b"/").is_none());
    }
}
