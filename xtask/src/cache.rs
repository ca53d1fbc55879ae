//! What the previous build left for the next one: a stat cache (file metadata -> content hash),
//! the listings of the source directories (git's "untracked cache"), what the output tree's
//! files held, and, per `sw_packages` file, the source digest and the output it produced under
//! which settings.
//!
//! Stored in `<out>/.dist-cache`, outside the extension tree, in a compact binary format (below):
//! a no-op build reads it whole, and for the large profile's 41 k files the JSON it replaced took
//! longer to parse than the rest of the build and most of its memory. A cache that is missing,
//! from another format or whose checksum does not match is ignored: the build then lists and hashes
//! everything, and produces the same bytes. A damaged one (right magic and format, wrong
//! checksum or body) is also reported as a warning.
//!
//! What a cached run trusts, and what it does not:
//! - a source file whose size, mtime, ctime, inode and mode are those recorded (and not racy,
//!   below) has the recorded content hash;
//! - a source directory whose mtime, ctime, inode and size are those recorded (and not racy)
//!   holds the recorded names, with their types and symbolic-link targets: adding, removing or
//!   renaming an entry, or replacing one by another kind, changes the directory's mtime and
//!   ctime, while writing into a file does not (so every file is still stat'ed, every build).
//!   The names are recorded before exclusion, so a changed `.gitignore` or `exclude` list
//!   applies at once; a `.gitignore` is read whenever the listing holds one;
//! - a file of the output tree (and `SHA256SUMS`, `dist-manifest.json`) whose size, mtime,
//!   ctime and inode are those recorded holds the recorded SHA-256, so it is not read to be
//!   compared with what the build would write;
//! - an `sw_packages` file whose size, mtime and inode are those recorded holds the recorded
//!   SHA-256, which goes into `SHA256SUMS` without reading the file again.
//!
//! So a change that keeps all of these (bytes rewritten in place and the mtime and ctime set
//! back, which takes root for the ctime) is not seen by a cached run: `cargo xtask verify`
//! reports it and `dist --no-cache` repairs it. The output's files are dist's own, recorded as
//! dist wrote them or found them intact, and are trusted without the racy rule below, as the
//! archives always were: an edit of one of them that keeps its size, made within the same tick
//! of the file clock (a few milliseconds) as dist's own look at it, is likewise not seen. `--no-cache` reads no cache at all: it lists and
//! hashes every source, builds every package and hashes what it writes (leaving a file on disk
//! that already holds the same bytes untouched).
//!
//! Racy source entries are handled as git handles its index: a file or directory whose mtime is
//! not older than the time the build that recorded it started may have changed within the same
//! clock tick after it was looked at. Such a record is never trusted, so it is not even
//! written: the next build looks again, and records it then. (Any change to a directory's
//! entries sets its mtime and ctime to the current time, so a directory with an older mtime
//! shows every later change in its stat; an mtime set back by hand shows in the ctime.)
//!
//! The format (all integers little-endian): the 16-byte magic `xtask-dist-cache`, the format
//! (u32), the SHA-256 of everything after the header (32 bytes); then four sections of records,
//! each a u32 count of records sorted by key: files (path, size u64, mtime, ctime, inode u64,
//! mode u32, sha256), directories (path, mtime, ctime, inode, size, a u32 count of entries
//! sorted by name: name, kind u8 (0 file, 1 directory, 2 symlink with its target, 3 symlink
//! whose target was not read, 4 other), target), tree files (path relative to the output
//! directory, size, mtime, ctime, inode, sha256) and outputs (name, settings, source digest,
//! sha256, size u64, mtime, inode u64); last, `written_at_ns`. Times are i64 nanoseconds; byte
//! strings a u32 length and the bytes; keys the length of the prefix they share with the key
//! before (u16), then the rest as a byte string. A build whose records would be those it read
//! (same SHA-256) leaves the file alone, and builds only their hash in memory to know it; a
//! build with new records streams them into the file, never holding it whole.
//!
//! In memory, the files and directories are `Records`: every key in one buffer, the records in
//! one array, found by binary search (the large profile's 39 k files took twice the memory as a
//! `BTreeMap` of `String`s); a directory's listing is a `Listing`, its names and link targets
//! packed in one buffer; and the next build's file records are this cache's, updated in place
//! from what each package saw (`SeenFiles`, `Cache::updated_files`).
//!
//! Beside the cache, and written after it, `<out>/.dist-fresh` (`fresh`, which documents it) is
//! the fingerprint of the last completed build: every input path with its stat, the output's
//! files, the running executable and the settings. A run whose every recorded stat holds
//! stops there, before this cache is read (the no-op fast path). It trusts what this cache
//! trusts, with one stricter rule: the paths it stats again at the end of a build (manifests,
//! driver sources, `.gitignore` files, the directories above them) must be old by their ctime
//! too, not only by their mtime.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::codec::{Reader, Sink, put_bytes, put_key, put_u32};
use crate::error::Diagnostic;
use crate::tree::Stat;

pub const CACHE_FILE: &str = ".dist-cache";
/// 2: the checksummed JSON; 3: binary, with directory listings and tree records; 4: keys sharing
/// their prefix with the one before, times in i64, the checksum after the records.
const FORMAT: u32 = 4;
const MAGIC: &[u8; 16] = b"xtask-dist-cache";
const HEADER: usize = 16 + 4 + 32;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cache {
    /// When the build that wrote the cache started (before it looked at any file), in nanoseconds
    /// since the epoch. A file modified after that may have changed after it was looked at.
    pub written_at_ns: i64,
    /// Absolute source path -> stat and content hash. Keyed by the path as text: string keys
    /// compare with one `memcmp`. Paths that are not UTF-8 are not cached; their files are
    /// hashed on every build.
    pub files: Records<FileRecord>,
    /// Absolute source directory -> its stat and its entries when it was listed.
    pub dirs: Records<DirRecord>,
    /// Path relative to the output directory (`datablox/...`, `SHA256SUMS`,
    /// `dist-manifest.json`) -> what the file held when the build last found it intact.
    pub tree: BTreeMap<String, TreeRecord>,
    /// `sw_packages` file name -> what produced it.
    pub outputs: BTreeMap<String, OutputRecord>,
    /// The SHA-256 of the records this cache was read from: a new cache holding the same
    /// records has nothing new to say and is not written.
    pub read_records: Option<[u8; 32]>,
}

/// The source files a build saw (hashed or found unchanged), as changes to the file records
/// of the cache it read; `Cache::updated_files` applies them.
#[derive(Debug, Default)]
pub struct SeenFiles {
    /// Records of the cache that still hold (their indices in `Cache::files`).
    kept: Vec<u32>,
    /// Records of the cache whose file changed: the index, and the new record.
    changed: Vec<(u32, FileRecord)>,
    /// Records of files the cache did not know.
    added: Records<FileRecord>,
}

impl SeenFiles {
    fn note(&mut self, index: Option<usize>, key: &str, record: FileRecord) {
        match index {
            Some(index) => self.changed.push((index as u32, record)),
            None => self.added.push(key, record),
        }
    }

    /// How many files were noted (one a package, a file being in two counts twice).
    pub fn len(&self) -> usize {
        self.kept.len() + self.changed.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds what `other` saw.
    pub fn append(&mut self, other: SeenFiles) {
        self.kept.extend(other.kept);
        self.changed.extend(other.changed);
        self.added.append(other.added);
    }

    /// Room for `files` records of files the cache does not know, with keys of `key_bytes`.
    pub fn with_capacity(files: usize, key_bytes: usize) -> SeenFiles {
        SeenFiles {
            added: Records::with_capacity(files, key_bytes),
            ..SeenFiles::default()
        }
    }
}

/// A source file's stat and content hash: 72 bytes (with `i128` times it took 96).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub mode: u32,
    pub sha256: [u8; 32],
}

impl FileRecord {
    /// The record of a file just hashed.
    pub fn new(stat: &Stat, sha256: &[u8; 32]) -> FileRecord {
        FileRecord {
            size: stat.size,
            mtime_ns: stat.mtime_ns,
            ctime_ns: stat.ctime_ns,
            inode: stat.inode,
            mode: stat.mode,
            sha256: *sha256,
        }
    }
}

/// Records keyed by text, with every key in one buffer: a `BTreeMap<String, _>` costs a heap
/// block per key and a tree node per few records, twice the memory for the large profile's
/// 39 k files. `push` appends in any order; `get` finds a key by binary search while the keys
/// are in strictly increasing order (as `decode` and `FromIterator` leave them), else by a
/// linear search. The file is always written in key order, one record per key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records<R> {
    /// Every key, one after the other.
    keys: Vec<u8>,
    /// Where each key ends in `keys`.
    ends: Vec<u32>,
    values: Vec<R>,
    /// Whether the keys are in strictly increasing order (kept up to date by `push`).
    sorted: bool,
}

impl<R> Default for Records<R> {
    fn default() -> Records<R> {
        Records {
            keys: Vec::new(),
            ends: Vec::new(),
            values: Vec::new(),
            sorted: true,
        }
    }
}

impl<R> Records<R> {
    /// Room for `records` records whose keys add up to `key_bytes` bytes.
    pub fn with_capacity(records: usize, key_bytes: usize) -> Records<R> {
        Records {
            keys: Vec::with_capacity(key_bytes),
            ends: Vec::with_capacity(records),
            values: Vec::with_capacity(records),
            sorted: true,
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn key_bytes(&self, index: usize) -> &[u8] {
        let start = index.checked_sub(1).map_or(0, |i| self.ends[i] as usize);
        &self.keys[start..self.ends[index] as usize]
    }

    /// Key `index`: keys are only ever pushed as text or checked to be UTF-8 (`decode`).
    fn key(&self, index: usize) -> &str {
        std::str::from_utf8(self.key_bytes(index)).expect("keys are UTF-8")
    }

    /// Appends a record. A key given twice keeps its last record in the file.
    pub fn push(&mut self, key: &str, value: R) {
        self.push_bytes(key.as_bytes(), value);
    }

    fn push_bytes(&mut self, key: &[u8], value: R) {
        if let Some(last) = self.len().checked_sub(1) {
            self.sorted &= self.key_bytes(last) < key;
        }
        self.keys.extend_from_slice(key);
        let end = u32::try_from(self.keys.len()).expect("fewer than 4 GiB of keys");
        self.ends.push(end);
        self.values.push(value);
    }

    /// Appends every record of `other`.
    pub fn append(&mut self, other: Records<R>) {
        // Taken whole when there is nothing to add to, and no room made for it.
        if self.is_empty() && self.values.capacity() == 0 {
            *self = other;
            return;
        }
        for (index, value) in other.values.into_iter().enumerate() {
            let start = index.checked_sub(1).map_or(0, |i| other.ends[i] as usize);
            self.push_bytes(&other.keys[start..other.ends[index] as usize], value);
        }
    }

    /// Keeps the records whose `keep` is true, in their order (in place).
    fn retain_marked(&mut self, keep: &[bool]) {
        let (mut records, mut key_end) = (0, 0);
        let mut start = 0;
        for (index, &kept) in keep.iter().enumerate().take(self.len()) {
            let end = self.ends[index] as usize;
            if kept {
                self.keys.copy_within(start..end, key_end);
                key_end += end - start;
                self.ends[records] = key_end as u32;
                self.values.swap(records, index);
                records += 1;
            }
            start = end;
        }
        self.keys.truncate(key_end);
        self.ends.truncate(records);
        self.values.truncate(records);
    }

    /// Where `key`'s record is.
    pub fn index(&self, key: &str) -> Option<usize> {
        let key = key.as_bytes();
        if self.sorted {
            let mut range = 0..self.len();
            while !range.is_empty() {
                let middle = range.start + range.len() / 2;
                match self.key_bytes(middle).cmp(key) {
                    std::cmp::Ordering::Less => range.start = middle + 1,
                    std::cmp::Ordering::Greater => range.end = middle,
                    std::cmp::Ordering::Equal => return Some(middle),
                }
            }
            None
        } else {
            (0..self.len()).rev().find(|&i| self.key_bytes(i) == key)
        }
    }

    pub fn get(&self, key: &str) -> Option<&R> {
        self.index(key).map(|index| &self.values[index])
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut R> {
        self.index(key).map(|index| &mut self.values[index])
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.index(key).is_some()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|index| self.key(index))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &R)> {
        (0..self.len()).map(|index| (self.key(index), &self.values[index]))
    }

    /// The records at `order`'s indices (see `order`).
    fn in_order<'a>(&'a self, order: &'a [u32]) -> impl Iterator<Item = (&'a str, &'a R)> {
        order
            .iter()
            .map(|&index| (self.key(index as usize), &self.values[index as usize]))
    }

    /// The records in key order, one per key (the last pushed): as they are written.
    pub fn iter_sorted(&self) -> impl Iterator<Item = (&str, &R)> {
        let order = self.order();
        (0..order.len()).map(move |position| {
            let index = order[position] as usize;
            (self.key(index), &self.values[index])
        })
    }

    /// The indices of the records in key order, one per key (the last record pushed for it).
    fn order(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        if !self.sorted {
            // Stable: records of one key stay in the order they were pushed.
            order.sort_by(|&a, &b| self.key_bytes(a as usize).cmp(self.key_bytes(b as usize)));
            let mut kept = Vec::with_capacity(order.len());
            for (position, &index) in order.iter().enumerate() {
                let next = order.get(position + 1);
                if next.is_none_or(|&next| {
                    self.key_bytes(next as usize) != self.key_bytes(index as usize)
                }) {
                    kept.push(index);
                }
            }
            order = kept;
        }
        order
    }
}

impl<R> FromIterator<(String, R)> for Records<R> {
    /// Records in key order, one per key (the last one given).
    fn from_iter<I: IntoIterator<Item = (String, R)>>(items: I) -> Records<R> {
        let mut items: Vec<(String, R)> = items.into_iter().collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut records = Records::with_capacity(items.len(), 0);
        let mut items = items.into_iter().peekable();
        while let Some((key, value)) = items.next() {
            if items.peek().is_none_or(|(next, _)| *next != key) {
                records.push(&key, value);
            }
        }
        records
    }
}

/// A directory's listing, and the directory's own stat when it was listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirRecord {
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub size: u64,
    /// Sorted byte-wise by name; every entry, excluded ones too. Shared with the scan that
    /// reuses it, so an unchanged listing is held once in memory.
    pub entries: Arc<Listing>,
}

/// One entry of a listing: owned (`Listed`, to make a `Listing`) or borrowed from one
/// (`Listing::iter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed<T = Vec<u8>> {
    pub name: T,
    pub kind: ListedKind<T>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListedKind<T = Vec<u8>> {
    File,
    Dir,
    /// A symbolic link, with its target when the scan read it (it reads only included links).
    Symlink(Option<T>),
    /// A FIFO, socket or device (the scan rejects those unless excluded).
    Other,
}

/// A directory's entries, packed: every name and symbolic-link target in one buffer, 12 bytes
/// more per entry. The large profile's 61 k entries took 80 bytes each as `Listed`s (a heap
/// block per name), and an incremental build that lists every directory again holds two
/// listings of each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    bytes: Box<[u8]>,
    entries: Box<[Packed]>,
}

/// Where an entry's name and target end in `Listing::bytes` (each starts where the one before
/// ends), and its kind as the file writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    name_end: u32,
    target_end: u32,
    kind: u8,
}

impl Listing {
    /// The listing of `entries`, in their order.
    pub fn new(entries: impl IntoIterator<Item = Listed>) -> Listing {
        let mut builder = ListingBuilder::default();
        for entry in entries {
            let (kind, target) = match &entry.kind {
                ListedKind::File => (0, None),
                ListedKind::Dir => (1, None),
                ListedKind::Symlink(Some(target)) => (2, Some(target.as_slice())),
                ListedKind::Symlink(None) => (3, None),
                ListedKind::Other => (4, None),
            };
            builder.push(&entry.name, kind, target);
        }
        builder.finish()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = Listed<&[u8]>> {
        let mut start = 0;
        self.entries.iter().map(move |packed| {
            let (name_end, target_end) = (packed.name_end as usize, packed.target_end as usize);
            let name = &self.bytes[start..name_end];
            let target = &self.bytes[name_end..target_end];
            start = target_end;
            let kind = match packed.kind {
                0 => ListedKind::File,
                1 => ListedKind::Dir,
                2 => ListedKind::Symlink(Some(target)),
                3 => ListedKind::Symlink(None),
                _ => ListedKind::Other,
            };
            Listed { name, kind }
        })
    }

    /// The entries as owned values (to edit them, then make a new listing).
    pub fn to_vec(&self) -> Vec<Listed> {
        self.iter()
            .map(|entry| Listed {
                name: entry.name.to_vec(),
                kind: match entry.kind {
                    ListedKind::File => ListedKind::File,
                    ListedKind::Dir => ListedKind::Dir,
                    ListedKind::Symlink(target) => ListedKind::Symlink(target.map(<[u8]>::to_vec)),
                    ListedKind::Other => ListedKind::Other,
                },
            })
            .collect()
    }
}

/// A `Listing` being made; reused from one listing to the next, so that each listing is
/// allocated once, at its size.
#[derive(Default)]
struct ListingBuilder {
    bytes: Vec<u8>,
    entries: Vec<Packed>,
}

impl ListingBuilder {
    /// Adds an entry; `kind` as the file writes it (0 file, 1 directory, 2 symbolic link with
    /// its `target`, 3 symbolic link, 4 other).
    fn push(&mut self, name: &[u8], kind: u8, target: Option<&[u8]>) {
        self.bytes.extend_from_slice(name);
        let name_end = offset(self.bytes.len());
        self.bytes.extend_from_slice(target.unwrap_or_default());
        self.entries.push(Packed {
            name_end,
            target_end: offset(self.bytes.len()),
            kind,
        });
    }

    /// Whether the names added are in strictly increasing order.
    fn sorted(&self) -> bool {
        let mut start = 0;
        let mut previous: Option<&[u8]> = None;
        for packed in &self.entries {
            let name = &self.bytes[start..packed.name_end as usize];
            if previous.is_some_and(|previous| previous >= name) {
                return false;
            }
            previous = Some(name);
            start = packed.target_end as usize;
        }
        true
    }

    /// The listing of what was added; the builder is then empty.
    fn finish(&mut self) -> Listing {
        let listing = Listing {
            bytes: self.bytes.as_slice().into(),
            entries: self.entries.as_slice().into(),
        };
        self.bytes.clear();
        self.entries.clear();
        listing
    }
}

fn offset(len: usize) -> u32 {
    u32::try_from(len).expect("a listing of less than 4 GiB")
}

/// A file of the output tree found holding the bytes the build would write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeRecord {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub sha256: [u8; 32],
}

impl TreeRecord {
    pub fn new(stat: &Stat, sha256: [u8; 32]) -> TreeRecord {
        TreeRecord {
            size: stat.size,
            mtime_ns: stat.mtime_ns,
            ctime_ns: stat.ctime_ns,
            inode: stat.inode,
            sha256,
        }
    }
}

/// One output file: the inputs it was built from and how to recognise it intact on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// Everything besides the sources that the bytes depend on (tool, backend, level, mtime, top dir).
    pub settings: String,
    pub source_digest: String,
    pub sha256: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
}

impl Cache {
    /// Reads the cache of `out_dir`, or an empty one when there is none that can be trusted;
    /// with a warning when the file is ours but damaged.
    pub fn read(out_dir: &Path) -> (Cache, Option<Diagnostic>) {
        let path = out_dir.join(CACHE_FILE);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return (Cache::default(), None);
        }
        let Ok(bytes) = std::fs::read(&path) else {
            return (Cache::default(), None);
        };
        match Cache::from_bytes(&bytes) {
            Ok(cache) => (cache, None),
            Err(Unusable::OtherFormat) => (Cache::default(), None),
            Err(Unusable::Damaged) => (
                Cache::default(),
                Some(
                    Diagnostic::warning(
                        "cache-damaged",
                        format!(
                            "the build cache `{}` is damaged; it is ignored and written again",
                            path.display()
                        ),
                    )
                    .file(&path)
                    .help("nothing to do: this build lists and hashes every source, as `--no-cache` does"),
                ),
            ),
        }
    }

    /// Decodes a cache file: its magic, format, checksum and every record.
    pub fn from_bytes(bytes: &[u8]) -> Result<Cache, Unusable> {
        if bytes.len() < 20 || &bytes[..16] != MAGIC || bytes[16..20] != FORMAT.to_le_bytes() {
            return Err(Unusable::OtherFormat);
        }
        if bytes.len() < HEADER + 8 {
            return Err(Unusable::Damaged);
        }
        let (records, time) = bytes[HEADER..].split_at(bytes.len() - HEADER - 8);
        // One pass: the records' digest (to tell later whether they changed), then the checksum.
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut hasher, records);
        let records_digest: [u8; 32] = sha2::Digest::finalize(hasher.clone()).into();
        sha2::Digest::update(&mut hasher, time);
        if sha2::Digest::finalize(hasher)[..] != bytes[20..HEADER] {
            return Err(Unusable::Damaged);
        }
        let mut cache = decode(records).ok_or(Unusable::Damaged)?;
        cache.written_at_ns = i64::from_le_bytes(time.try_into().expect("8 bytes"));
        cache.read_records = Some(records_digest);
        Ok(cache)
    }

    /// The cached content hash of `path`, if its metadata is unchanged and it is not racy.
    pub fn lookup(&self, path: &Path, stat: &Stat) -> Option<[u8; 32]> {
        let index = self.files.index(path.to_str()?)?;
        self.trusted(index, stat)
    }

    /// The content hash of record `index` of `files`, if `stat` is the one it recorded and not
    /// racy.
    fn trusted(&self, index: usize, stat: &Stat) -> Option<[u8; 32]> {
        let record = &self.files.values[index];
        let same = record.size == stat.size
            && record.mtime_ns == stat.mtime_ns
            && record.ctime_ns == stat.ctime_ns
            && record.inode == stat.inode
            && record.mode == stat.mode;
        (same && !self.is_racy(stat.mtime_ns)).then_some(record.sha256)
    }

    /// The content hash of the source file `path` (stat'ed as `stat`): the recorded one if
    /// `lookup` trusts it, else what `hash` computes. Either way noted in `seen`, for the next
    /// cache (`updated_files`).
    pub fn hash_file<E>(
        &self,
        seen: &mut SeenFiles,
        path: &Path,
        stat: &Stat,
        hash: impl FnOnce() -> std::result::Result<[u8; 32], E>,
    ) -> std::result::Result<[u8; 32], E> {
        let Some(key) = path.to_str() else {
            return hash();
        };
        let index = self.files.index(key);
        match index.and_then(|index| self.trusted(index, stat)) {
            Some(sha256) => {
                seen.kept.push(index.expect("trusted") as u32);
                Ok(sha256)
            }
            None => {
                let sha256 = hash()?;
                seen.note(index, key, FileRecord::new(stat, &sha256));
                Ok(sha256)
            }
        }
    }

    /// Notes in `seen` that the source file `path`, stat'ed as `stat`, was just hashed to
    /// `sha256`.
    pub fn saw_file(&self, seen: &mut SeenFiles, path: &Path, stat: &Stat, sha256: &[u8; 32]) {
        if let Some(key) = path.to_str() {
            let record = FileRecord::new(stat, sha256);
            match self.files.index(key) {
                Some(index) if self.files.values[index] == record => seen.kept.push(index as u32),
                index => seen.note(index, key, record),
            }
        }
    }

    /// The file records of the next cache, made from those of this one (taken) and what the
    /// build `seen`: a record whose file was seen unchanged stays, a changed one is replaced
    /// where it is, the others (files gone, or no longer in a package) are removed, and the
    /// new ones added. Updated in place, never copied: a second table of 39 k records was
    /// the largest block of memory of an incremental build of the large profile.
    pub fn updated_files(&mut self, seen: SeenFiles) -> Records<FileRecord> {
        let mut files = std::mem::take(&mut self.files);
        let mut keep = vec![false; files.len()];
        for index in seen.kept {
            keep[index as usize] = true;
        }
        for (index, record) in seen.changed {
            keep[index as usize] = true;
            files.values[index as usize] = record;
        }
        files.retain_marked(&keep);
        drop(keep);
        if files.is_empty() {
            return seen.added;
        }
        files.append(seen.added);
        files
    }

    /// The recorded listing of the directory `path`, if the directory's stat (taken now, before
    /// reading anything in it) is the one recorded and not racy.
    pub fn listing(&self, path: &Path, stat: &Stat) -> Option<&DirRecord> {
        let record = self.dirs.get(path.to_str()?)?;
        let same = record.mtime_ns == stat.mtime_ns
            && record.ctime_ns == stat.ctime_ns
            && record.inode == stat.inode
            && record.size == stat.size;
        (same && !self.is_racy(stat.mtime_ns)).then_some(record)
    }

    /// The recorded SHA-256 of the output file `relative` (to the output directory), if its
    /// stat is the one recorded. Like the `outputs`, these are dist's own files, recorded
    /// right after dist wrote them or found them intact, so they are trusted without the racy
    /// rule (see the module documentation).
    pub fn tree_file(&self, relative: &str, stat: &Stat) -> Option<[u8; 32]> {
        let record = self.tree.get(relative)?;
        let same = record.size == stat.size
            && record.mtime_ns == stat.mtime_ns
            && record.ctime_ns == stat.ctime_ns
            && record.inode == stat.inode;
        same.then_some(record.sha256)
    }

    /// Whether a file with this mtime may have changed, within one clock tick, after this cache
    /// looked at it; its record is then not trusted.
    pub fn is_racy(&self, mtime_ns: i64) -> bool {
        racy_at(mtime_ns, self.written_at_ns)
    }

    /// The cache file of a build that started at `started_ns` (its `written_at_ns`), without
    /// the records that are racy as of then; `None` when it would hold exactly the records of
    /// the cache it was read from, so a build that changed nothing writes nothing. The records
    /// are first only hashed, so a build that writes nothing builds no file in memory either.
    #[cfg(test)]
    fn to_bytes_if_changed(&self, started_ns: i64) -> Option<Vec<u8>> {
        let changed = self.changed(started_ns)?;
        Some(self.to_bytes_in(started_ns, &changed.order))
    }

    /// What a build that started at `started_ns` would write, unless it is the records of the
    /// cache this one was read from: the records are only hashed, in the order they are written.
    fn changed(&self, started_ns: i64) -> Option<Changed> {
        let order = self.order();
        let mut hasher = HashSink(sha2::Sha256::default());
        self.encode(&mut hasher, &order, |mtime_ns| {
            racy_at(mtime_ns, started_ns)
        });
        let records: [u8; 32] = sha2::Digest::finalize(hasher.0.clone()).into();
        if self.read_records == Some(records) {
            return None;
        }
        sha2::Digest::update(&mut hasher.0, started_ns.to_le_bytes());
        Some(Changed {
            order,
            checksum: sha2::Digest::finalize(hasher.0).into(),
        })
    }

    /// `to_bytes_if_changed`, streamed into the file `create` opens: the file is never held in
    /// memory (7.6 MB for the large profile), and `create` is not called when the records are
    /// those the cache was read from. Whether it wrote the file.
    pub fn write_if_changed<W: std::io::Write>(
        &self,
        started_ns: i64,
        create: impl FnOnce() -> std::io::Result<W>,
    ) -> std::io::Result<bool> {
        let Some(changed) = self.changed(started_ns) else {
            return Ok(false);
        };
        let mut out = WriteSink {
            inner: std::io::BufWriter::with_capacity(64 * 1024, create()?),
            error: None,
        };
        out.put(MAGIC);
        out.put(&FORMAT.to_le_bytes());
        out.put(&changed.checksum);
        self.encode(&mut out, &changed.order, |mtime_ns| {
            racy_at(mtime_ns, started_ns)
        });
        out.put(&started_ns.to_le_bytes());
        if let Some(error) = out.error {
            return Err(error);
        }
        out.inner.into_inner().map_err(|error| error.into_error())?;
        Ok(true)
    }

    /// The cache file, valid as of `started_ns`: racy records are left out.
    pub fn to_bytes(&self, started_ns: i64) -> Vec<u8> {
        self.to_bytes_in(started_ns, &self.order())
    }

    /// The order in which `encode` writes the records of `files` and `dirs`.
    fn order(&self) -> [Vec<u32>; 2] {
        [self.files.order(), self.dirs.order()]
    }

    /// `to_bytes`, with the records in `order` (`self.order()`).
    fn to_bytes_in(&self, started_ns: i64, order: &[Vec<u32>; 2]) -> Vec<u8> {
        let mut bytes = vec![0; HEADER];
        self.encode(&mut bytes, order, |mtime_ns| racy_at(mtime_ns, started_ns));
        with_header(bytes, started_ns)
    }

    /// The cache file with `written_at_ns` and every record, racy or not: what a build never
    /// writes, for tests that forge the cache of a racy case.
    #[doc(hidden)]
    pub fn to_bytes_with_every_record(&self) -> Vec<u8> {
        let mut bytes = vec![0; HEADER];
        self.encode(&mut bytes, &self.order(), |_| false);
        with_header(bytes, self.written_at_ns)
    }

    /// The records, in the order and encoding of the module documentation; `order` is
    /// `self.order()`.
    fn encode(&self, out: &mut impl Sink, order: &[Vec<u32>; 2], racy: impl Fn(i64) -> bool) {
        let [files_order, dirs_order] = order;
        let files = || {
            self.files
                .in_order(files_order)
                .filter(|(_, r)| !racy(r.mtime_ns) && times(&[r.mtime_ns, r.ctime_ns]))
        };
        put_u32(out, files().count());
        let mut previous: &[u8] = b"";
        for (path, r) in files() {
            put_key(out, previous, path.as_bytes());
            previous = path.as_bytes();
            out.put(&r.size.to_le_bytes());
            put_time(out, r.mtime_ns);
            put_time(out, r.ctime_ns);
            out.put(&r.inode.to_le_bytes());
            out.put(&r.mode.to_le_bytes());
            out.put(&r.sha256);
        }
        let dirs = || {
            self.dirs
                .in_order(dirs_order)
                .filter(|(_, r)| !racy(r.mtime_ns) && times(&[r.mtime_ns, r.ctime_ns]))
        };
        put_u32(out, dirs().count());
        let mut previous: &[u8] = b"";
        for (path, r) in dirs() {
            put_key(out, previous, path.as_bytes());
            previous = path.as_bytes();
            put_time(out, r.mtime_ns);
            put_time(out, r.ctime_ns);
            out.put(&r.inode.to_le_bytes());
            out.put(&r.size.to_le_bytes());
            put_u32(out, r.entries.len());
            for entry in r.entries.iter() {
                put_bytes(out, entry.name);
                match entry.kind {
                    ListedKind::File => out.put(&[0]),
                    ListedKind::Dir => out.put(&[1]),
                    ListedKind::Symlink(Some(target)) => {
                        out.put(&[2]);
                        put_bytes(out, target);
                    }
                    ListedKind::Symlink(None) => out.put(&[3]),
                    ListedKind::Other => out.put(&[4]),
                }
            }
        }
        let tree: Vec<_> = self
            .tree
            .iter()
            .filter(|(_, r)| times(&[r.mtime_ns, r.ctime_ns]))
            .collect();
        put_u32(out, tree.len());
        let mut previous: &[u8] = b"";
        for (path, r) in tree {
            put_key(out, previous, path.as_bytes());
            previous = path.as_bytes();
            out.put(&r.size.to_le_bytes());
            put_time(out, r.mtime_ns);
            put_time(out, r.ctime_ns);
            out.put(&r.inode.to_le_bytes());
            out.put(&r.sha256);
        }
        let outputs: Vec<_> = self
            .outputs
            .iter()
            .filter(|(_, r)| times(&[r.mtime_ns]))
            .collect();
        put_u32(out, outputs.len());
        for (name, r) in outputs {
            put_bytes(out, name.as_bytes());
            put_bytes(out, r.settings.as_bytes());
            put_bytes(out, r.source_digest.as_bytes());
            put_bytes(out, r.sha256.as_bytes());
            out.put(&r.size.to_le_bytes());
            put_time(out, r.mtime_ns);
            out.put(&r.inode.to_le_bytes());
        }
    }
}

/// A file being written; the first error is kept, and nothing is written after it.
struct WriteSink<W: std::io::Write> {
    inner: std::io::BufWriter<W>,
    error: Option<std::io::Error>,
}

impl<W: std::io::Write> Sink for WriteSink<W> {
    fn put(&mut self, bytes: &[u8]) {
        if self.error.is_none()
            && let Err(error) = std::io::Write::write_all(&mut self.inner, bytes)
        {
            self.error = Some(error);
        }
    }
}

/// What `Cache::changed` found: the order of the records and the file's checksum.
struct Changed {
    order: [Vec<u32>; 2],
    checksum: [u8; 32],
}

/// A hasher.
struct HashSink(sha2::Sha256);

impl Sink for HashSink {
    fn put(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }
}

/// `bytes` is `HEADER` bytes of room, then the records: fills in the magic, the format and the
/// checksum of the records and `written_at_ns`, and appends `written_at_ns` (i64, nanoseconds).
fn with_header(mut bytes: Vec<u8>, written_at_ns: i64) -> Vec<u8> {
    let time = written_at_ns.to_le_bytes();
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut hasher, &bytes[HEADER..]);
    sha2::Digest::update(&mut hasher, time);
    bytes[..16].copy_from_slice(MAGIC);
    bytes[16..20].copy_from_slice(&FORMAT.to_le_bytes());
    bytes[20..HEADER].copy_from_slice(&sha2::Digest::finalize(hasher));
    bytes.extend_from_slice(&time);
    bytes
}

/// Whether every time is one that i64 nanoseconds can hold (years 1677 to 2262): a time
/// outside is read as `i64::MIN` or `i64::MAX` (`Stat::from_metadata`), which stand for any
/// such time, so a record with one is not written, and its file is hashed again by every build.
fn times(times: &[i64]) -> bool {
    times
        .iter()
        .all(|&time| time != i64::MIN && time != i64::MAX)
}

fn put_time(out: &mut impl Sink, time: i64) {
    out.put(&time.to_le_bytes());
}

/// Why a cache file is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Not a cache of this format (another version's, or not a cache): ignored quietly.
    OtherFormat,
    /// Our magic and format, but a checksum or body that does not hold: ignored with a warning.
    Damaged,
}

/// The cache's keys, on top of `codec::Reader`'s integers and strings.
impl Reader<'_> {
    /// A key written by `put_key` after `previous`.
    fn text_key(&mut self, previous: &str) -> Option<String> {
        let shared = usize::from(self.u16()?);
        let prefix = previous.as_bytes().get(..shared)?;
        let rest = self.bytes()?;
        let mut key = Vec::with_capacity(shared + rest.len());
        key.extend_from_slice(prefix);
        key.extend_from_slice(rest);
        String::from_utf8(key).ok()
    }

    /// A key written by `put_key` after the last key of `records`, added to their keys; with
    /// its value, `push` then adds the record. `None` unless the key is UTF-8 and comes after
    /// the one before.
    fn key<R>(&mut self, records: &mut Records<R>) -> Option<()> {
        let shared = usize::from(self.u16()?);
        let rest = self.bytes()?;
        let start = records.keys.len();
        let previous = match records.len() {
            0 => 0..0,
            len => len.checked_sub(2).map_or(0, |i| records.ends[i] as usize)..start,
        };
        if shared > previous.len() {
            return None;
        }
        records
            .keys
            .extend_from_within(previous.start..previous.start + shared);
        records.keys.extend_from_slice(rest);
        let key = std::str::from_utf8(&records.keys[start..]).ok()?;
        (key.as_bytes() > &records.keys[previous]).then_some(())
    }
}

/// Builds a map from records in strictly increasing key order (as written), else `None`.
fn sorted_map<V>(items: Vec<(String, V)>) -> Option<BTreeMap<String, V>> {
    if items.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return None;
    }
    Some(items.into_iter().collect())
}

impl<R> Records<R> {
    /// Adds the value of the key `Reader::key` just added.
    fn push_decoded(&mut self, value: R) {
        let end = u32::try_from(self.keys.len()).expect("fewer than 4 GiB of keys");
        self.ends.push(end);
        self.values.push(value);
    }
}

/// The records (the body without `written_at_ns`).
fn decode(records: &[u8]) -> Option<Cache> {
    let mut r = Reader { rest: records };

    let count = r.count(2 + 4 + 8 + 8 + 8 + 8 + 4 + 32)?;
    let mut files = Records::with_capacity(count, 0);
    for _ in 0..count {
        r.key(&mut files)?;
        let record = FileRecord {
            size: r.u64()?,
            mtime_ns: r.time()?,
            ctime_ns: r.time()?,
            inode: r.u64()?,
            mode: r.u32()?,
            sha256: r.array()?,
        };
        files.push_decoded(record);
    }

    let count = r.count(2 + 4 + 8 + 8 + 8 + 8 + 4)?;
    let mut dirs = Records::with_capacity(count, 0);
    let mut listing = ListingBuilder::default();
    for _ in 0..count {
        r.key(&mut dirs)?;
        let (mtime_ns, ctime_ns, inode, size) = (r.time()?, r.time()?, r.u64()?, r.u64()?);
        let entries_count = r.count(4 + 1)?;
        for _ in 0..entries_count {
            let name = r.bytes()?;
            let kind = r.u8()?;
            let target = match kind {
                2 => Some(r.bytes()?),
                0 | 1 | 3 | 4 => None,
                _ => return None,
            };
            listing.push(name, kind, target);
        }
        if !listing.sorted() {
            return None;
        }
        dirs.push_decoded(DirRecord {
            mtime_ns,
            ctime_ns,
            inode,
            size,
            entries: Arc::new(listing.finish()),
        });
    }

    let count = r.count(2 + 4 + 8 + 8 + 8 + 8 + 32)?;
    let mut tree: Vec<(String, TreeRecord)> = Vec::with_capacity(count);
    for _ in 0..count {
        let path = r.text_key(tree.last().map_or("", |(key, _)| key))?;
        let record = TreeRecord {
            size: r.u64()?,
            mtime_ns: r.time()?,
            ctime_ns: r.time()?,
            inode: r.u64()?,
            sha256: r.array()?,
        };
        tree.push((path, record));
    }

    let count = r.count(4 * 4 + 8 + 8 + 8)?;
    let mut outputs = Vec::with_capacity(count);
    for _ in 0..count {
        let name = r.text()?;
        let record = OutputRecord {
            settings: r.text()?,
            source_digest: r.text()?,
            sha256: r.text()?,
            size: r.u64()?,
            mtime_ns: r.time()?,
            inode: r.u64()?,
        };
        outputs.push((name, record));
    }
    if !r.rest.is_empty() {
        return None;
    }
    Some(Cache {
        written_at_ns: 0,
        files,
        dirs,
        tree: sorted_map(tree)?,
        outputs: sorted_map(outputs)?,
        read_records: None,
    })
}

/// File timestamps come from the kernel's coarse clock, which can lag the clock `now_ns` reads by
/// a tick (up to 10 ms with HZ=100); a file is treated as racy that much earlier.
const CLOCK_SLACK_NS: i64 = 20_000_000;

/// Whether a file with this mtime (or ctime) may have changed after a build that started at
/// `written_at_ns` looked at it. Also used by `fresh`.
pub fn racy_at(mtime_ns: i64, written_at_ns: i64) -> bool {
    mtime_ns.saturating_add(CLOCK_SLACK_NS) >= written_at_ns
}

/// Nanoseconds since the epoch, for `written_at_ns`: read when a build starts.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn record(mtime_ns: i64) -> FileRecord {
        FileRecord {
            size: 1,
            mtime_ns,
            ctime_ns: mtime_ns,
            inode: 7,
            mode: 0o100644,
            sha256: [0; 32],
        }
    }

    fn cache(written_at_ns: i64, mtime_ns: i64) -> Cache {
        let mut cache = Cache {
            written_at_ns,
            ..Cache::default()
        };
        cache.files.push("/a", record(mtime_ns));
        cache
    }

    /// One record of every kind, so the round trip covers the whole format.
    fn full() -> Cache {
        let mut cache = cache(0, SECOND);
        cache.dirs.push(
            "/d",
            DirRecord {
                mtime_ns: SECOND,
                ctime_ns: 2 * SECOND,
                inode: 9,
                size: 4096,
                entries: Arc::new(Listing::new(
                    [
                        ("a", ListedKind::File),
                        ("b", ListedKind::Dir),
                        ("c", ListedKind::Symlink(Some(b"a".to_vec()))),
                        ("d", ListedKind::Symlink(None)),
                        ("e", ListedKind::Other),
                    ]
                    .into_iter()
                    .map(|(name, kind)| Listed {
                        name: name.as_bytes().to_vec(),
                        kind,
                    }),
                )),
            },
        );
        cache.tree.insert(
            "datablox/version.txt".to_string(),
            TreeRecord {
                size: 3,
                mtime_ns: SECOND,
                ctime_ns: SECOND,
                inode: 11,
                sha256: [7; 32],
            },
        );
        cache.outputs.insert(
            "a.tgz".to_string(),
            OutputRecord {
                settings: "s".into(),
                source_digest: "d".into(),
                sha256: "h".into(),
                size: 5,
                mtime_ns: SECOND,
                inode: 12,
            },
        );
        cache
    }

    #[test]
    fn a_cache_reads_back_and_a_damaged_one_is_ignored() {
        let written = full().to_bytes(9 * SECOND);
        let mut read = Cache::from_bytes(&written).expect("a cache reads back");
        assert_eq!(read.written_at_ns, 9 * SECOND);
        assert!(read.read_records.is_some());
        read.written_at_ns = 0;
        read.read_records = None;
        assert_eq!(read, full());

        // One byte changed anywhere after the header: damaged, whatever it hits.
        for index in [HEADER + 20, written.len() / 2, written.len() - 1] {
            let mut damaged = written.clone();
            damaged[index] ^= 1;
            assert_eq!(Cache::from_bytes(&damaged), Err(Unusable::Damaged));
        }
        // Cut short: damaged. Another format (the JSON of format 2), or not a cache: quietly
        // ignored.
        assert_eq!(
            Cache::from_bytes(&written[..written.len() - 3]),
            Err(Unusable::Damaged)
        );
        assert_eq!(
            Cache::from_bytes(b"xtask-dist-cache 2 00\n{}"),
            Err(Unusable::OtherFormat)
        );
        assert_eq!(Cache::from_bytes(b"{}"), Err(Unusable::OtherFormat));
        assert_eq!(Cache::from_bytes(b""), Err(Unusable::OtherFormat));
    }

    /// A cache file around `records`, with a valid checksum.
    fn with_checksum(records: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0; HEADER];
        bytes.extend_from_slice(records);
        with_header(bytes, 9 * SECOND)
    }

    fn records(cache: &Cache) -> Vec<u8> {
        let written = cache.to_bytes(9 * SECOND);
        written[HEADER..written.len() - 8].to_vec()
    }

    #[test]
    fn a_well_checksummed_but_malformed_body_is_damaged_not_a_panic() {
        // Huge counts, unsorted keys, an unknown kind, a cut: each with a valid checksum.
        let body = records(&full());
        assert!(Cache::from_bytes(&with_checksum(&body)).is_ok());
        let mut huge = body.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Cache::from_bytes(&with_checksum(&huge)),
            Err(Unusable::Damaged)
        );
        let mut two = full();
        two.files.push("/b", record(SECOND));
        let mut unsorted = records(&two);
        // The keys: "/a" in full, then "b" after the shared "/": swapped to "/b", "a".
        let first = unsorted.windows(2).position(|w| w == b"/a").unwrap();
        unsorted[first + 1] = b'b';
        let second = first + 2 + 8 + 8 + 8 + 8 + 4 + 32 + 2 + 4;
        assert_eq!(unsorted[second], b'b');
        unsorted[second] = b'a';
        assert_eq!(
            Cache::from_bytes(&with_checksum(&unsorted)),
            Err(Unusable::Damaged)
        );
        let mut kind = body.clone();
        let file_kind = kind
            .windows(6)
            .position(|w| w == [1, 0, 0, 0, b'a', 0])
            .expect("the first entry, a file");
        kind[file_kind + 5] = 9;
        assert_eq!(
            Cache::from_bytes(&with_checksum(&kind)),
            Err(Unusable::Damaged)
        );
        // A shared prefix longer than the key before it.
        let mut prefix = body.clone();
        prefix[4..6].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(
            Cache::from_bytes(&with_checksum(&prefix)),
            Err(Unusable::Damaged)
        );
        for cut in 0..body.len() {
            assert_eq!(
                Cache::from_bytes(&with_checksum(&body[..cut])),
                Err(Unusable::Damaged)
            );
        }
    }

    #[test]
    fn racy_within_the_clock_slack() {
        assert!(cache(10 * SECOND, 10 * SECOND).is_racy(10 * SECOND));
        assert!(cache(10 * SECOND, 0).is_racy(10 * SECOND - CLOCK_SLACK_NS / 2));
        assert!(!cache(10 * SECOND, 0).is_racy(9 * SECOND));
    }

    #[test]
    fn an_unchanged_cache_is_not_written_again() {
        let old = Cache::from_bytes(&cache(0, 10 * SECOND).to_bytes(100 * SECOND)).unwrap();
        // The same records, read back: not written, whenever the new build started.
        let new = cache(0, 10 * SECOND);
        let new = Cache {
            read_records: old.read_records,
            ..new
        };
        assert_eq!(new.to_bytes_if_changed(200 * SECOND), None);
        // Another mtime, or no cache before: written.
        let changed = Cache {
            read_records: old.read_records,
            ..cache(0, 11 * SECOND)
        };
        assert!(changed.to_bytes_if_changed(200 * SECOND).is_some());
        assert!(
            cache(0, 10 * SECOND)
                .to_bytes_if_changed(200 * SECOND)
                .is_some()
        );
        // A racy entry is left out, so the next build looks at it again; once it can be
        // trusted, it is recorded, and the cache is written.
        let racy = Cache::from_bytes(&cache(0, 10 * SECOND).to_bytes(10 * SECOND)).unwrap();
        assert!(racy.files.is_empty());
        let trusted = Cache {
            read_records: racy.read_records,
            ..cache(0, 10 * SECOND)
        };
        assert!(trusted.to_bytes_if_changed(200 * SECOND).is_some());
        // Still racy for this build too: writing would not help.
        assert_eq!(trusted.to_bytes_if_changed(10 * SECOND), None);
    }

    #[test]
    fn a_listing_is_trusted_only_for_the_same_directory_stat() {
        let mut old = full();
        old.written_at_ns = 10 * SECOND;
        let stat = Stat {
            mtime_ns: SECOND,
            ctime_ns: 2 * SECOND,
            inode: 9,
            size: 4096,
            ..Stat::default()
        };
        assert!(old.listing(Path::new("/d"), &stat).is_some());
        for changed in [
            Stat {
                mtime_ns: 3 * SECOND,
                ..stat
            },
            Stat {
                ctime_ns: 3 * SECOND,
                ..stat
            },
            Stat { inode: 10, ..stat },
            Stat { size: 8192, ..stat },
        ] {
            assert!(
                old.listing(Path::new("/d"), &changed).is_none(),
                "{changed:?}"
            );
        }
        assert!(old.listing(Path::new("/e"), &stat).is_none());
        // Changed within the clock tick of the build that listed it: not trusted.
        old.written_at_ns = SECOND;
        assert!(old.listing(Path::new("/d"), &stat).is_none());
    }

    #[test]
    fn records_are_written_in_key_order_once_per_key_and_found_again() {
        // Pushed as a build pushes them (package by package, not in key order), with a key
        // given twice: the file holds each key once, in order, with its last record.
        let mut cache = cache(0, SECOND);
        cache.files = Records::default();
        for (key, mtime) in [("/b/y", 2), ("/a/x", 1), ("/b", 3), ("/a/x", 4), ("/a", 5)] {
            cache.files.push(key, record(mtime * SECOND));
        }
        assert_eq!(cache.files.get("/a/x"), Some(&record(4 * SECOND)));
        assert_eq!(cache.files.get("/c"), None);
        let read = Cache::from_bytes(&cache.to_bytes(9 * SECOND)).unwrap();
        let keys: Vec<&str> = read.files.keys().collect();
        assert_eq!(keys, ["/a", "/a/x", "/b", "/b/y"]);
        for (key, mtime) in [("/a", 5), ("/a/x", 4), ("/b", 3), ("/b/y", 2)] {
            assert_eq!(read.files.get(key), Some(&record(mtime * SECOND)), "{key}");
        }
        assert_eq!(read.files.get("/a/"), None);
        assert_eq!(read.files.get(""), None);
        // The same records, whatever order they came in: the same file.
        let sorted: Records<FileRecord> = read
            .files
            .iter()
            .map(|(k, r)| (k.to_string(), r.clone()))
            .collect();
        assert_eq!(sorted, read.files);
        let again = Cache {
            files: sorted,
            ..cache
        };
        assert_eq!(again.to_bytes(9 * SECOND), read.to_bytes(9 * SECOND));
    }

    #[test]
    fn the_streamed_file_is_the_file_and_an_unchanged_one_is_not_opened() {
        let cache = full();
        let mut written = Vec::new();
        let wrote = cache
            .write_if_changed(9 * SECOND, || Ok(&mut written))
            .unwrap();
        assert!(wrote);
        assert_eq!(written, cache.to_bytes(9 * SECOND));
        let read = Cache::from_bytes(&written).unwrap();
        let wrote = read
            .write_if_changed(10 * SECOND, || -> std::io::Result<Vec<u8>> {
                panic!("an unchanged cache is not written")
            })
            .unwrap();
        assert!(!wrote);
    }

    #[test]
    fn a_time_that_i64_nanoseconds_cannot_hold_is_never_recorded() {
        // Years after 2262 and before 1677 read as i64::MAX and i64::MIN.
        assert_eq!(crate::tree::nanoseconds(i64::MAX / 1000, 0), i64::MAX);
        assert_eq!(crate::tree::nanoseconds(-(i64::MAX / 1000), 0), i64::MIN);
        assert_eq!(crate::tree::nanoseconds(-1, 999_999_999), -1);
        assert_eq!(crate::tree::nanoseconds(2, 5), 2 * SECOND + 5);
        for (mtime, ctime) in [(i64::MAX, SECOND), (SECOND, i64::MIN), (i64::MIN, SECOND)] {
            let mut cache = cache(0, SECOND);
            cache.files.get_mut("/a").unwrap().mtime_ns = mtime;
            cache.files.get_mut("/a").unwrap().ctime_ns = ctime;
            let read = Cache::from_bytes(&cache.to_bytes_with_every_record()).unwrap();
            assert!(read.files.is_empty(), "{mtime} {ctime}");
        }
        // Racy whatever the cache's time, without overflowing.
        assert!(cache(i64::MAX, 0).is_racy(i64::MAX));
    }

    #[test]
    fn the_next_records_are_this_caches_updated_in_place() {
        let stat = |mtime: i64| Stat {
            size: 1,
            mtime_ns: mtime * SECOND,
            ctime_ns: mtime * SECOND,
            inode: 7,
            mode: 0o100644,
            ..Stat::default()
        };
        let mut old = Cache {
            written_at_ns: 100 * SECOND,
            ..Cache::default()
        };
        for key in ["/a", "/b", "/c", "/d"] {
            old.files.push(key, record(SECOND));
        }
        let mut seen = SeenFiles::default();
        // "/a" unchanged: its record is trusted, the file not hashed.
        let hash = old.hash_file(&mut seen, Path::new("/a"), &stat(1), || -> Result<_, ()> {
            panic!("a trusted record is not hashed again")
        });
        assert_eq!(hash, Ok([0; 32]));
        // "/b" changed: hashed, its record replaced.
        let hash = old.hash_file(&mut seen, Path::new("/b"), &stat(2), || {
            Ok::<_, ()>([2; 32])
        });
        assert_eq!(hash, Ok([2; 32]));
        // "/c" hashed while archived, to what its record says: kept. "/e" is new; "/d" gone.
        let mut more = SeenFiles::default();
        old.saw_file(&mut more, Path::new("/c"), &stat(1), &[0; 32]);
        old.saw_file(&mut more, Path::new("/e"), &stat(3), &[3; 32]);
        assert_eq!(
            (more.kept.len(), more.changed.len(), more.added.len()),
            (1, 0, 1)
        );
        seen.append(more);
        let files = old.updated_files(seen);
        assert!(old.files.is_empty(), "taken");
        let expected: Records<FileRecord> = [
            ("/a", record(SECOND)),
            ("/b", FileRecord::new(&stat(2), &[2; 32])),
            ("/c", record(SECOND)),
            ("/e", FileRecord::new(&stat(3), &[3; 32])),
        ]
        .into_iter()
        .map(|(key, record)| (key.to_string(), record))
        .collect();
        assert_eq!(files, expected);
        assert_eq!(files.get("/e"), expected.get("/e"));
        // Without a cache, every record is new.
        let mut empty = Cache::default();
        let mut seen = SeenFiles::default();
        empty.saw_file(&mut seen, Path::new("/z"), &stat(1), &[1; 32]);
        empty.saw_file(&mut seen, Path::new("/y"), &stat(1), &[1; 32]);
        let files = empty.updated_files(seen);
        assert_eq!(files.keys().collect::<Vec<_>>(), ["/z", "/y"]);
        assert_eq!(files.order(), [1, 0], "written in key order");
    }

    #[test]
    fn a_packed_listing_gives_back_its_entries() {
        let entries = vec![
            Listed {
                name: b".gitignore".to_vec(),
                kind: ListedKind::File,
            },
            Listed {
                name: b"a link".to_vec(),
                kind: ListedKind::Symlink(Some(b"../somewhere/else".to_vec())),
            },
            Listed {
                name: b"b".to_vec(),
                kind: ListedKind::Symlink(None),
            },
            Listed {
                name: "d\u{e9}j\u{e0}".as_bytes().to_vec(),
                kind: ListedKind::Dir,
            },
            Listed {
                name: b"fifo".to_vec(),
                kind: ListedKind::Other,
            },
        ];
        let listing = Listing::new(entries.clone());
        assert_eq!(listing.len(), 5);
        assert_eq!(listing.to_vec(), entries);
        let names: Vec<&[u8]> = listing.iter().map(|entry| entry.name).collect();
        assert_eq!(names[1], b"a link");
        assert_eq!(
            listing.iter().nth(1).unwrap().kind,
            ListedKind::Symlink(Some(&b"../somewhere/else"[..]))
        );
        assert!(Listing::new([]).is_empty());
        // Through the file: the same listing.
        let mut cache = full();
        cache.dirs.get_mut("/d").unwrap().entries = Arc::new(listing.clone());
        let read = Cache::from_bytes(&cache.to_bytes(9 * SECOND)).unwrap();
        assert_eq!(*read.dirs.get("/d").unwrap().entries, listing);
    }
}
