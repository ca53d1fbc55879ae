//! What the previous build left for the next one: a stat cache (file metadata -> content hash)
//! and, per `sw_packages` file, the source digest and the output it produced under which settings.
//!
//! Stored in `<out>/.dist-cache.json`, outside the extension tree: a header line with the format
//! and the SHA-256 of the rest, then JSON. A cache that is missing, unreadable, from another
//! format or whose checksum does not match (a corrupted but parseable file) is ignored: the build
//! then hashes everything, and produces the same bytes.
//!
//! What a cached run trusts, and what it does not: a source file whose size, mtime, ctime, inode
//! and mode are those recorded (and not racy, below) has the recorded content hash; an output file
//! whose size, mtime and inode are those recorded holds the recorded SHA-256, which goes into
//! `SHA256SUMS` without reading the file again. So a change that keeps all of these (bytes
//! rewritten in place and the mtime set back) is not seen by a cached run: `cargo xtask verify`
//! reports it and `dist --no-cache` repairs it. `--no-cache` reads no cache at all: it hashes
//! every source, builds every package and hashes what it writes (leaving a file on disk that
//! already holds the same bytes untouched).
//!
//! Racy entries are handled as git handles its index: a file whose mtime is not older than the
//! time the cache was written may have changed within the same clock tick after it was hashed, so
//! its cached hash is not trusted.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::tree::Stat;

pub const CACHE_FILE: &str = ".dist-cache.json";
/// 2: the checksummed header line.
const FORMAT: u32 = 2;
const MAGIC: &str = "xtask-dist-cache";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cache {
    pub format: u32,
    /// When the build that wrote the cache started (before it looked at any file), in nanoseconds
    /// since the epoch. A file modified after that may have changed after it was hashed.
    pub written_at_ns: i128,
    /// Absolute source path -> stat and content hash. Keyed by the path as text: string keys
    /// compare with one `memcmp`, where `Path`s compare component by component, which made
    /// reading and probing a cache of thousands of files cost more than the build it spared.
    /// Paths that are not UTF-8 are not cached; their files are hashed on every build.
    pub files: BTreeMap<String, FileRecord>,
    /// `sw_packages` file name -> what produced it.
    pub outputs: BTreeMap<String, OutputRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
    pub mode: u32,
    pub sha256: String,
}

/// One output file: the inputs it was built from and how to recognise it intact on disk.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
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
    /// Reads the cache of `out_dir`, or an empty one when there is none that can be trusted.
    pub fn read(out_dir: &Path) -> Cache {
        let path = out_dir.join(CACHE_FILE);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Cache::default();
        }
        std::fs::read(&path)
            .ok()
            .and_then(|bytes| Cache::from_bytes(&bytes))
            .unwrap_or_default()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Cache> {
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(&bytes[..newline]).ok()?;
        let body = &bytes[newline + 1..];
        let expected = format!("{MAGIC} {FORMAT} {}", crate::hash::to_hex(&sha256(body)));
        if header != expected {
            return None;
        }
        serde_json::from_slice::<Cache>(body)
            .ok()
            .filter(|cache| cache.format == FORMAT)
    }

    /// The cached content hash of `path`, if its metadata is unchanged and it is not racy.
    pub fn lookup(&self, path: &Path, stat: &Stat) -> Option<[u8; 32]> {
        let record = self.files.get(path.to_str()?)?;
        let same = record.size == stat.size
            && record.mtime_ns == stat.mtime_ns
            && record.ctime_ns == stat.ctime_ns
            && record.inode == stat.inode
            && record.mode == stat.mode;
        if !same || self.is_racy(stat.mtime_ns) {
            return None;
        }
        from_hex(&record.sha256)
    }

    /// Whether a file with this mtime may have changed, within one clock tick, after this cache
    /// hashed it; its hash is then not trusted.
    pub fn is_racy(&self, mtime_ns: i128) -> bool {
        racy_at(mtime_ns, self.written_at_ns)
    }

    /// Whether this new cache, valid as of `started_ns`, must replace `old` on disk: an entry
    /// changed, or an entry that `old` had to distrust as racy can now be trusted. A build that
    /// changed nothing then writes nothing, not even the cache.
    pub fn needs_write(&self, old: &Cache, started_ns: i128) -> bool {
        old.format != FORMAT
            || self.files != old.files
            || self.outputs != old.outputs
            || self
                .files
                .values()
                .any(|record| old.is_racy(record.mtime_ns) && !racy_at(record.mtime_ns, started_ns))
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
                sha256: crate::hash::to_hex(sha256),
            },
        ))
    }

    /// Serialized with the format number, the current time and the checksum, ready for
    /// `output` to write.
    pub fn to_bytes(mut self, now_ns: i128) -> Vec<u8> {
        self.format = FORMAT;
        self.written_at_ns = now_ns;
        let mut body = serde_json::to_vec(&self).expect("the cache always serializes");
        body.push(b'\n');
        let mut bytes =
            format!("{MAGIC} {FORMAT} {}\n", crate::hash::to_hex(&sha256(&body))).into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// File timestamps come from the kernel's coarse clock, which can lag the clock `now_ns` reads by
/// a tick (up to 10 ms with HZ=100); a file is treated as racy that much earlier.
const CLOCK_SLACK_NS: i128 = 20_000_000;

fn racy_at(mtime_ns: i128, written_at_ns: i128) -> bool {
    mtime_ns + CLOCK_SLACK_NS >= written_at_ns
}

pub fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(out)
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

    fn record(mtime_ns: i128) -> FileRecord {
        FileRecord {
            size: 1,
            mtime_ns,
            ctime_ns: mtime_ns,
            inode: 7,
            mode: 0o100644,
            sha256: "00".repeat(32),
        }
    }

    fn cache(written_at_ns: i128, mtime_ns: i128) -> Cache {
        let mut cache = Cache {
            format: FORMAT,
            written_at_ns,
            ..Cache::default()
        };
        cache.files.insert("/a".to_string(), record(mtime_ns));
        cache
    }

    #[test]
    fn a_cache_reads_back_and_a_corrupted_one_is_ignored() {
        let written = cache(5, 1).to_bytes(9);
        let read = Cache::from_bytes(&written).expect("a cache reads back");
        assert_eq!((read.written_at_ns, read.files.len()), (9, 1));
        // Still JSON, still parseable, but not what was written: not trusted.
        let text = String::from_utf8(written).unwrap();
        let corrupted = text.replace(&"00".repeat(32), &"11".repeat(32));
        assert_ne!(corrupted, text);
        assert_eq!(Cache::from_bytes(corrupted.as_bytes()), None);
        assert_eq!(Cache::from_bytes(b"{}"), None);
    }

    #[test]
    fn racy_within_the_clock_slack() {
        let second = 1_000_000_000;
        assert!(cache(10 * second, 10 * second).is_racy(10 * second));
        assert!(cache(10 * second, 0).is_racy(10 * second - CLOCK_SLACK_NS / 2));
        assert!(!cache(10 * second, 0).is_racy(9 * second));
    }

    #[test]
    fn an_unchanged_cache_is_not_written_again() {
        let second = 1_000_000_000;
        let old = cache(100 * second, 10 * second);
        let new = cache(0, 10 * second);
        assert!(!new.needs_write(&old, 200 * second));
        // Another mtime, or no cache before: written.
        assert!(cache(0, 11 * second).needs_write(&old, 200 * second));
        assert!(new.needs_write(&Cache::default(), 200 * second));
        // An entry the old cache had to distrust becomes trusted: written, so the next build
        // does not hash it again.
        let racy_old = cache(10 * second, 10 * second);
        assert!(new.needs_write(&racy_old, 200 * second));
        // Still racy for this build too: writing would not help.
        assert!(!cache(0, 10 * second).needs_write(&racy_old, 10 * second));
    }
}
