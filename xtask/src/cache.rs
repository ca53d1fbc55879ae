//! What the previous build left for the next one: a stat cache (file metadata -> content hash),
//! the listings of the source directories (git's "untracked cache"), what the output tree's
//! files held, and, per `sw_packages` file, the source digest and the output it produced under
//! which settings.
//!
//! Stored in `<out>/.dist-cache`, outside the extension tree, in a compact binary format (below):
//! a no-op build reads it whole, and for the large profile's 41 k files the JSON it replaced took
//! longer to parse than the rest of the build and most of its memory. A cache that is missing,
//! from another format (such as the JSON `.dist-cache.json` of format 2, removed by the next
//! build) or whose checksum does not match is ignored: the build then lists and hashes
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
//! (same SHA-256) leaves the file alone, and builds only their hash in memory to know it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::Diagnostic;
use crate::tree::Stat;

pub const CACHE_FILE: &str = ".dist-cache";
/// The JSON cache of format 2; a build removes it (see `output::prepare`).
pub const LEGACY_CACHE_FILE: &str = ".dist-cache.json";
/// 2: the checksummed JSON; 3: binary, with directory listings and tree records; 4: keys sharing
/// their prefix with the one before, times in i64, the checksum after the records.
const FORMAT: u32 = 4;
const MAGIC: &[u8; 16] = b"xtask-dist-cache";
const HEADER: usize = 16 + 4 + 32;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cache {
    /// When the build that wrote the cache started (before it looked at any file), in nanoseconds
    /// since the epoch. A file modified after that may have changed after it was looked at.
    pub written_at_ns: i128,
    /// Absolute source path -> stat and content hash. Keyed by the path as text: string keys
    /// compare with one `memcmp`. Paths that are not UTF-8 are not cached; their files are
    /// hashed on every build.
    pub files: BTreeMap<String, FileRecord>,
    /// Absolute source directory -> its stat and its entries when it was listed.
    pub dirs: BTreeMap<String, DirRecord>,
    /// Path relative to the output directory (`datablox/...`, `SHA256SUMS`,
    /// `dist-manifest.json`) -> what the file held when the build last found it intact.
    pub tree: BTreeMap<String, TreeRecord>,
    /// `sw_packages` file name -> what produced it.
    pub outputs: BTreeMap<String, OutputRecord>,
    /// The SHA-256 of the records this cache was read from: a new cache holding the same
    /// records has nothing new to say and is not written.
    pub read_records: Option<[u8; 32]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
    pub mode: u32,
    pub sha256: [u8; 32],
}

/// A directory's listing, and the directory's own stat when it was listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirRecord {
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
    pub size: u64,
    /// Sorted byte-wise by name; every entry, excluded ones too. Shared with the scan that
    /// reuses it, so an unchanged listing is held once in memory.
    pub entries: Arc<Vec<Listed>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: Vec<u8>,
    pub kind: ListedKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListedKind {
    File,
    Dir,
    /// A symbolic link, with its target when the scan read it (it reads only included links).
    Symlink(Option<Vec<u8>>),
    /// A FIFO, socket or device (the scan rejects those unless excluded).
    Other,
}

/// A file of the output tree found holding the bytes the build would write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeRecord {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
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
    pub mtime_ns: i128,
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
        cache.written_at_ns = i128::from(i64::from_le_bytes(time.try_into().expect("8 bytes")));
        cache.read_records = Some(records_digest);
        Ok(cache)
    }

    /// The cached content hash of `path`, if its metadata is unchanged and it is not racy.
    pub fn lookup(&self, path: &Path, stat: &Stat) -> Option<[u8; 32]> {
        let record = self.files.get(path.to_str()?)?;
        let same = record.size == stat.size
            && record.mtime_ns == stat.mtime_ns
            && record.ctime_ns == stat.ctime_ns
            && record.inode == stat.inode
            && record.mode == stat.mode;
        (same && !self.is_racy(stat.mtime_ns)).then_some(record.sha256)
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
    pub fn is_racy(&self, mtime_ns: i128) -> bool {
        racy_at(mtime_ns, self.written_at_ns)
    }

    /// The cache entry of a file just hashed, or `None` if its path cannot be a key.
    pub fn record(path: &Path, stat: &Stat, sha256: &[u8; 32]) -> Option<(String, FileRecord)> {
        Some((
            path.to_str()?.to_string(),
            FileRecord {
                size: stat.size,
                mtime_ns: stat.mtime_ns,
                ctime_ns: stat.ctime_ns,
                inode: stat.inode,
                mode: stat.mode,
                sha256: *sha256,
            },
        ))
    }

    /// The cache file of a build that started at `started_ns` (its `written_at_ns`), without
    /// the records that are racy as of then; `None` when it would hold exactly the records of
    /// the cache it was read from, so a build that changed nothing writes nothing. The records
    /// are first only hashed, so a build that writes nothing builds no file in memory either.
    pub fn to_bytes_if_changed(&self, started_ns: i128) -> Option<Vec<u8>> {
        let mut hasher = HashSink(sha2::Sha256::default(), 0);
        self.encode(&mut hasher, |mtime_ns| racy_at(mtime_ns, started_ns));
        let len = hasher.1;
        let records: [u8; 32] = sha2::Digest::finalize(hasher.0).into();
        (self.read_records != Some(records)).then(|| self.to_bytes_sized(started_ns, len))
    }

    /// The cache file, valid as of `started_ns`: racy records are left out.
    pub fn to_bytes(&self, started_ns: i128) -> Vec<u8> {
        self.to_bytes_sized(started_ns, 1 << 16)
    }

    /// `to_bytes`, with room for `len` bytes of records: with their exact length, the file is
    /// built in one allocation, never grown nor copied (memory: megabytes for the large profile).
    fn to_bytes_sized(&self, started_ns: i128, len: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER + len + 8);
        bytes.resize(HEADER, 0);
        self.encode(&mut bytes, |mtime_ns| racy_at(mtime_ns, started_ns));
        with_header(bytes, started_ns)
    }

    /// The cache file with `written_at_ns` and every record, racy or not: what a build never
    /// writes, for tests that forge the cache of a racy case.
    #[doc(hidden)]
    pub fn to_bytes_with_every_record(&self) -> Vec<u8> {
        let mut bytes = vec![0; HEADER];
        self.encode(&mut bytes, |_| false);
        with_header(bytes, self.written_at_ns)
    }

    /// The records, in the order and encoding of the module documentation.
    fn encode(&self, out: &mut impl Sink, racy: impl Fn(i128) -> bool) {
        let files: Vec<_> = self
            .files
            .iter()
            .filter(|(_, r)| !racy(r.mtime_ns) && times(&[r.mtime_ns, r.ctime_ns]))
            .collect();
        put_u32(out, files.len());
        let mut previous: &[u8] = b"";
        for (path, r) in files {
            put_key(out, previous, path.as_bytes());
            previous = path.as_bytes();
            out.put(&r.size.to_le_bytes());
            put_time(out, r.mtime_ns);
            put_time(out, r.ctime_ns);
            out.put(&r.inode.to_le_bytes());
            out.put(&r.mode.to_le_bytes());
            out.put(&r.sha256);
        }
        let dirs: Vec<_> = self
            .dirs
            .iter()
            .filter(|(_, r)| !racy(r.mtime_ns) && times(&[r.mtime_ns, r.ctime_ns]))
            .collect();
        put_u32(out, dirs.len());
        let mut previous: &[u8] = b"";
        for (path, r) in dirs {
            put_key(out, previous, path.as_bytes());
            previous = path.as_bytes();
            put_time(out, r.mtime_ns);
            put_time(out, r.ctime_ns);
            out.put(&r.inode.to_le_bytes());
            out.put(&r.size.to_le_bytes());
            put_u32(out, r.entries.len());
            for entry in r.entries.iter() {
                put_bytes(out, &entry.name);
                match &entry.kind {
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

/// Where `encode` writes: the file's bytes, or a hasher.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A hasher, and how many bytes it was given.
struct HashSink(sha2::Sha256, usize);

impl Sink for HashSink {
    fn put(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
        self.1 += bytes.len();
    }
}

/// `bytes` is `HEADER` bytes of room, then the records: fills in the magic, the format and the
/// checksum of the records and `written_at_ns`, and appends `written_at_ns` (i64, nanoseconds).
fn with_header(mut bytes: Vec<u8>, written_at_ns: i128) -> Vec<u8> {
    let time = i64::try_from(written_at_ns)
        .unwrap_or(i64::MAX)
        .to_le_bytes();
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut hasher, &bytes[HEADER..]);
    sha2::Digest::update(&mut hasher, time);
    bytes[..16].copy_from_slice(MAGIC);
    bytes[16..20].copy_from_slice(&FORMAT.to_le_bytes());
    bytes[20..HEADER].copy_from_slice(&sha2::Digest::finalize(hasher));
    bytes.extend_from_slice(&time);
    bytes
}

/// Whether every time fits the file's i64 nanoseconds (years 1677 to 2262); a record with
/// another is not written, and its file is hashed again by every build.
fn times(times: &[i128]) -> bool {
    times.iter().all(|&time| i64::try_from(time).is_ok())
}

fn put_time(out: &mut impl Sink, time: i128) {
    out.put(&i64::try_from(time).unwrap_or_default().to_le_bytes());
}

/// Why a cache file is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Not a cache of this format (another version's, or not a cache): ignored quietly.
    OtherFormat,
    /// Our magic and format, but a checksum or body that does not hold: ignored with a warning.
    Damaged,
}

fn put_u32(out: &mut impl Sink, value: usize) {
    let value = u32::try_from(value).expect("fewer than 2^32 records and bytes");
    out.put(&value.to_le_bytes());
}

fn put_bytes(out: &mut impl Sink, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.put(bytes);
}

/// A key after the one before it: the length of the prefix they share (u16), then the rest.
/// Sorted absolute paths share most of their bytes, so the file is a fraction of its size.
fn put_key(out: &mut impl Sink, previous: &[u8], key: &[u8]) {
    let shared = previous
        .iter()
        .zip(key)
        .take(usize::from(u16::MAX))
        .take_while(|(a, b)| a == b)
        .count();
    out.put(&(shared as u16).to_le_bytes());
    put_bytes(out, &key[shared..]);
}

/// Reads a body; `None` for anything short, long or malformed (never panics, never allocates
/// more than the body's length promises).
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    fn time(&mut self) -> Option<i128> {
        Some(i128::from(i64::from_le_bytes(self.array()?)))
    }

    /// A key written by `put_key` after `previous`.
    fn key(&mut self, previous: &str) -> Option<String> {
        let shared = usize::from(self.u16()?);
        let prefix = previous.as_bytes().get(..shared)?;
        let rest = self.bytes()?;
        let mut key = Vec::with_capacity(shared + rest.len());
        key.extend_from_slice(prefix);
        key.extend_from_slice(rest);
        String::from_utf8(key).ok()
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn text(&mut self) -> Option<String> {
        Some(std::str::from_utf8(self.bytes()?).ok()?.to_string())
    }

    /// A count of records, each at least `min_size` bytes: never more than the rest can hold.
    fn count(&mut self, min_size: usize) -> Option<usize> {
        let count = self.u32()? as usize;
        (count <= self.rest.len() / min_size).then_some(count)
    }
}

/// Builds a map from records in strictly increasing key order (as written), else `None`.
fn sorted_map<V>(items: Vec<(String, V)>) -> Option<BTreeMap<String, V>> {
    if items.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return None;
    }
    Some(items.into_iter().collect())
}

/// The records (the body without `written_at_ns`).
fn decode(records: &[u8]) -> Option<Cache> {
    let mut r = Reader { rest: records };

    let count = r.count(2 + 4 + 8 + 8 + 8 + 8 + 4 + 32)?;
    let mut files: Vec<(String, FileRecord)> = Vec::with_capacity(count);
    for _ in 0..count {
        let path = r.key(files.last().map_or("", |(key, _)| key))?;
        let record = FileRecord {
            size: r.u64()?,
            mtime_ns: r.time()?,
            ctime_ns: r.time()?,
            inode: r.u64()?,
            mode: r.u32()?,
            sha256: r.array()?,
        };
        files.push((path, record));
    }

    let count = r.count(2 + 4 + 8 + 8 + 8 + 8 + 4)?;
    let mut dirs: Vec<(String, DirRecord)> = Vec::with_capacity(count);
    for _ in 0..count {
        let path = r.key(dirs.last().map_or("", |(key, _)| key))?;
        let (mtime_ns, ctime_ns, inode, size) = (r.time()?, r.time()?, r.u64()?, r.u64()?);
        let entries_count = r.count(4 + 1)?;
        let mut entries = Vec::with_capacity(entries_count);
        for _ in 0..entries_count {
            let name = r.bytes()?.to_vec();
            let kind = match r.u8()? {
                0 => ListedKind::File,
                1 => ListedKind::Dir,
                2 => ListedKind::Symlink(Some(r.bytes()?.to_vec())),
                3 => ListedKind::Symlink(None),
                4 => ListedKind::Other,
                _ => return None,
            };
            entries.push(Listed { name, kind });
        }
        if entries.windows(2).any(|pair| pair[0].name >= pair[1].name) {
            return None;
        }
        dirs.push((
            path,
            DirRecord {
                mtime_ns,
                ctime_ns,
                inode,
                size,
                entries: Arc::new(entries),
            },
        ));
    }

    let count = r.count(2 + 4 + 8 + 8 + 8 + 8 + 32)?;
    let mut tree: Vec<(String, TreeRecord)> = Vec::with_capacity(count);
    for _ in 0..count {
        let path = r.key(tree.last().map_or("", |(key, _)| key))?;
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
        files: sorted_map(files)?,
        dirs: sorted_map(dirs)?,
        tree: sorted_map(tree)?,
        outputs: sorted_map(outputs)?,
        read_records: None,
    })
}

/// File timestamps come from the kernel's coarse clock, which can lag the clock `now_ns` reads by
/// a tick (up to 10 ms with HZ=100); a file is treated as racy that much earlier.
const CLOCK_SLACK_NS: i128 = 20_000_000;

/// Whether a file with this mtime (or ctime) may have changed after a build that started at
/// `written_at_ns` looked at it. Also used by `fresh`.
pub fn racy_at(mtime_ns: i128, written_at_ns: i128) -> bool {
    mtime_ns + CLOCK_SLACK_NS >= written_at_ns
}

/// Nanoseconds since the epoch, for `written_at_ns`: read when a build starts.
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i128 = 1_000_000_000;

    fn record(mtime_ns: i128) -> FileRecord {
        FileRecord {
            size: 1,
            mtime_ns,
            ctime_ns: mtime_ns,
            inode: 7,
            mode: 0o100644,
            sha256: [0; 32],
        }
    }

    fn cache(written_at_ns: i128, mtime_ns: i128) -> Cache {
        let mut cache = Cache {
            written_at_ns,
            ..Cache::default()
        };
        cache.files.insert("/a".to_string(), record(mtime_ns));
        cache
    }

    /// One record of every kind, so the round trip covers the whole format.
    fn full() -> Cache {
        let mut cache = cache(0, SECOND);
        cache.dirs.insert(
            "/d".to_string(),
            DirRecord {
                mtime_ns: SECOND,
                ctime_ns: 2 * SECOND,
                inode: 9,
                size: 4096,
                entries: [
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
                })
                .collect::<Vec<_>>()
                .into(),
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
        two.files.insert("/b".to_string(), record(SECOND));
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
}
