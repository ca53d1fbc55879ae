//! One `Tree` -> reproducible `.tgz` bytes, written in one streaming pass that also hashes every
//! file; the caller owns the output file, the mtime policy and any parallelism.
//!
//! # Tar layer
//!
//! GNU tar format, one header per entry, in the tree's byte-wise sorted order, directories
//! included; member names start with the top directory, never with `./` or `/`, and directory
//! names end with `/`. Every header is built from `tar::Header::new_gnu()` (zeroed, magic
//! `ustar `, version ` \0`) and then only these fields are set:
//!
//! - name, and linkname for symlinks: the raw bytes (any bytes, not only UTF-8). A name or
//!   target of 100 bytes or more gets a GNU `././@LongLink` entry first (type `L` for names,
//!   `K` for targets; its content is the bytes plus a NUL, padded to 512), and the main header
//!   holds the first 100 bytes;
//! - mode: 0755 for directories and executable files (any `x` bit set), 0644 for other files,
//!   0777 for symlinks (GNU tar's choice; Linux ignores a symlink's mode);
//! - uid and gid 0, user and group names empty, no device numbers;
//! - size: the file size, 0 for directories and symlinks;
//! - mtime: `ArchiveSettings::mtime` for every entry; `././@LongLink` headers use mode 0644,
//!   uid/gid 0 and mtime 0, as GNU tar writes them;
//! - type: `5` directory, `0` file, `2` symlink; the checksum last.
//!
//! No atime, ctime, xattrs, PAX headers or sparse entries are written. The archive ends with two
//! zero blocks (1024 bytes) and is not padded to a 10240-byte record: every reader stops at the
//! zero blocks, and the padding would only add bytes.
//!
//! # Gzip layer
//!
//! The gzip member is framed here: a 10-byte header `1f 8b 08 00 00000000 00 ff` (deflate, no
//! flags so no file name, mtime 0, no extra flags, OS 255 "unknown" so the bytes do not depend on
//! the build platform), a raw deflate stream from libdeflate (`DEFLATE_BACKEND`), then CRC-32 and
//! the size mod 2^32, little-endian.
//!
//! The deflate stream is made of independent segments, as pigz makes it: the tar stream is cut
//! into `SEGMENT`s (1 MiB) at fixed offsets, and each is compressed on its own (on any thread of
//! the caller's rayon pool, so a large file uses every `--jobs` thread), as a whole buffer, with
//! no preset dictionary (libdeflate has none: a segment finds no matches in the one before it,
//! which costs 0.06 % of the medium corpus's bytes at level 6 against compressing each tar stream
//! as one buffer), into blocks that end at a byte boundary (`deflate::piece`); the last segment
//! ends the stream. The segments are
//! written in order and their CRC-32s combined. What a segment's bytes depend on (its input, the
//! level, and whether it is the last) never includes the thread count or timing, so `--jobs 1`
//! and `--jobs 16` write the same bytes. A tar stream of one segment (most blocks) compresses as
//! one plain deflate stream. Each file is still read once, straight into the segment buffer, and
//! hashed on the reading thread.
//!
//! Within a segment, the tar stream is cut into chunks of `CHUNK` bytes at fixed offsets. A
//! chunk that looks incompressible (its bytes are almost uniformly distributed, measured in
//! integers, see `deflate::looks_incompressible`) is written as deflate stored blocks by this module
//! instead of being compressed: random bytes, PNGs, gzip files and the like do not shrink at
//! level 6 anyway, and storing them costs a memcpy instead of a match search. Each run of the
//! other chunks is compressed as one buffer, so nothing refers back into stored bytes. The
//! decision depends on the chunk's bytes only, never on timing, so the output stays a function of
//! the tree, the settings and `DEFLATE_BACKEND`.
//!
//! The tar framing is written here rather than by `tar::Builder`, which would frame it
//! differently in two cases (a name or link target of exactly 100 bytes: Builder stores it in the
//! header without a `././@LongLink` entry; a long name whose first 100 bytes are not valid UTF-8:
//! Builder cuts the header's copy at the last whole character) and copies file contents through
//! `io::copy`'s 8 KiB buffer instead of reading them straight into the segment (BENCHMARKS.md,
//! "tar framing").
//!
//! A different deflate implementation or version may produce different (equally valid) bytes,
//! which is why `DEFLATE_BACKEND` is exact and tested against `Cargo.lock`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use crc32fast::Hasher as Crc;
use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::deflate;
use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::hash::{Sha256, tree_digest};
use crate::tree::{Entry, EntryKind, Stat, Tree};

/// The version of the bytes `write_tgz` produces for a given tree and settings: part of every
/// archive's cache key. Bump it with any change to the archive bytes; a golden test
/// (`archive_format_version_pins_the_archive_bytes`) pins the bytes of each version and fails
/// until then. 2: a tar stream longer than one segment (1 MiB) is compressed as independent
/// segments. 3: libdeflate instead of zlib-rs, each segment without the previous one's window.
pub const ARCHIVE_FORMAT: u32 = 3;

/// The deflate level when `extension.toml` names none. libdeflate's level 5 writes fewer bytes
/// than `gzip -6` and `pigz -6` in less CPU than its level 6 (the level table of BENCHMARKS.md,
/// `cargo xtask bench --profile medium`).
pub const DEFAULT_LEVEL: u32 = 5;

/// The deflate implementation whose output the archives are reproducible with.
pub const DEFLATE_BACKEND: &str = "libdeflate 1.26 via libdeflate-sys 1.26.1";

/// The tar stream is compressed in independent segments of this size, at fixed offsets, on as
/// many threads as the caller's pool has; it bounds the memory used per segment in flight (its
/// input and its output, plus one compressor per thread).
const SEGMENT: usize = 1024 * 1024;

/// Within a segment, each chunk of this size is compressed or, if it looks incompressible, stored.
const CHUNK: usize = 256 * 1024;

/// Chunks shorter than this are always compressed: too few bytes to judge, and too few to matter.
const MIN_STORED_CHUNK: usize = 16 * 1024;

/// The largest payload of one deflate stored block.
const MAX_STORED_BLOCK: usize = 65_535;

const BLOCK: usize = 512;

const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// The mtime of every entry, in seconds since the epoch (for example `SOURCE_DATE_EPOCH`).
    pub mtime: u64,
    /// The deflate level, 0 to 9.
    pub level: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The SHA-256 of each file's content, by entry index; `None` for directories and symlinks.
    pub file_hashes: Vec<Option<Sha256>>,
    /// `hash::tree_digest` of the tree with those hashes.
    pub digest: Sha256,
    /// The size of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// The size of the `.tgz` written to `out`.
    pub gz_bytes: u64,
    /// How long each segment handed to the pool took to compress, in order: tasks of their own,
    /// apart from the caller's (which reads, frames, hashes and compresses the last segment).
    pub segment_tasks: Vec<Duration>,
}

/// Writes `tree` as a reproducible `.tgz` to `out`, reading each file once.
pub fn write_tgz(
    tree: &Tree,
    settings: &ArchiveSettings,
    out: &mut dyn Write,
) -> Result<ArchiveReport> {
    if settings.level > 9 {
        return Err(Diagnostic::error(
            "bad-level",
            format!(
                "compression level {} is not between 0 and 9",
                settings.level
            ),
        )
        .help("choose a gzip level from 0 to 9")
        .into());
    }
    let output_error = |error: io::Error| {
        Error::new(
            Diagnostic::error(
                "io",
                format!("cannot write the archive of `{}`: {error}", tree.top),
            )
            .file(tree.root.clone())
            .help("check that the output folder is writable and the disk is not full"),
        )
    };

    // Segments are compressed on the threads of the current rayon pool (the caller's `--jobs`),
    // or of the global pool outside one; the bytes do not depend on which thread ran what.
    let (file_hashes, tar_bytes, gz_bytes, segment_tasks) = rayon::in_place_scope(|scope| {
        let gzip = Gzip::new(out, settings.level, scope).map_err(output_error)?;
        let mut tar = TarStream::new(gzip);
        let mut file_hashes = Vec::with_capacity(tree.entries.len());
        for entry in &tree.entries {
            let file_hash = match &entry.kind {
                EntryKind::Dir => {
                    let mut name = entry.path.clone();
                    name.push(b'/');
                    tar.header(&name, b"", 0o755, 0, b'5', settings.mtime)
                        .map_err(output_error)?;
                    None
                }
                EntryKind::Symlink { target } => {
                    tar.header(&entry.path, target, 0o777, 0, b'2', settings.mtime)
                        .map_err(output_error)?;
                    None
                }
                EntryKind::File { executable, size } => {
                    let mode = if *executable { 0o755 } else { 0o644 };
                    tar.header(&entry.path, b"", mode, *size, b'0', settings.mtime)
                        .map_err(output_error)?;
                    Some(tar.file(entry, &tree.source(entry), *size, &output_error)?)
                }
            };
            file_hashes.push(file_hash);
        }
        let (tar_bytes, gz_bytes, segment_tasks) = tar.finish().map_err(output_error)?;
        Ok::<_, Error>((file_hashes, tar_bytes, gz_bytes, segment_tasks))
    })?;
    let digest = tree_digest(tree, &file_hashes);
    Ok(ArchiveReport {
        file_hashes,
        digest,
        tar_bytes,
        gz_bytes,
        segment_tasks,
    })
}

/// The tar stream, collected into `SEGMENT`-sized pieces at fixed offsets for `Gzip`.
struct TarStream<'a, 'scope> {
    gzip: Gzip<'a, 'scope>,
    segment: Box<[u8]>,
    filled: usize,
    tar_bytes: u64,
}

impl<'a, 'scope> TarStream<'a, 'scope> {
    fn new(gzip: Gzip<'a, 'scope>) -> TarStream<'a, 'scope> {
        TarStream {
            segment: SPARE.segment(),
            gzip,
            filled: 0,
            tar_bytes: 0,
        }
    }

    /// Room for more bytes: a full segment is handed on only once more bytes follow it, so that
    /// the last segment, whatever its size, is the one that ends the deflate stream.
    fn make_room(&mut self) -> io::Result<()> {
        if self.filled == SEGMENT {
            let full = std::mem::replace(&mut self.segment, SPARE.segment());
            self.gzip.segment(full, SEGMENT, false)?;
            self.filled = 0;
        }
        Ok(())
    }

    fn push(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.make_room()?;
            let take = bytes.len().min(SEGMENT - self.filled);
            self.segment[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            self.tar_bytes += take as u64;
            bytes = &bytes[take..];
        }
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let rest = (BLOCK - (self.tar_bytes % BLOCK as u64) as usize) % BLOCK;
        self.push(&[0; BLOCK][..rest])
    }

    /// One entry's header, preceded by GNU long-name and long-link entries where needed.
    fn header(
        &mut self,
        name: &[u8],
        link: &[u8],
        mode: u32,
        size: u64,
        kind: u8,
        mtime: u64,
    ) -> io::Result<()> {
        if name.len() >= 100 {
            self.long_link(b'L', name)?;
        }
        if link.len() >= 100 {
            self.long_link(b'K', link)?;
        }
        let mut header = tar::Header::new_gnu();
        {
            let fields = header.as_gnu_mut().expect("a GNU header");
            let name_len = name.len().min(100);
            fields.name[..name_len].copy_from_slice(&name[..name_len]);
            let link_len = link.len().min(100);
            fields.linkname[..link_len].copy_from_slice(&link[..link_len]);
        }
        self.finish_header(header, mode, size, kind, mtime)
    }

    fn long_link(&mut self, kind: u8, bytes: &[u8]) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().expect("a GNU header").name[..13].copy_from_slice(b"././@LongLink");
        self.finish_header(header, 0o644, bytes.len() as u64 + 1, kind, 0)?;
        self.push(bytes)?;
        self.push(&[0])?;
        self.pad()
    }

    fn finish_header(
        &mut self,
        mut header: tar::Header,
        mode: u32,
        size: u64,
        kind: u8,
        mtime: u64,
    ) -> io::Result<()> {
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(size);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::new(kind));
        header.set_cksum();
        self.push(header.as_bytes())
    }

    /// Streams a file's content into the archive and returns its SHA-256. The file is read once,
    /// straight into the segment buffer.
    fn file(
        &mut self,
        entry: &Entry,
        path: &Path,
        size: u64,
        output_error: &dyn Fn(io::Error) -> Error,
    ) -> Result<Sha256> {
        let changed = || {
            Error::new(
                Diagnostic::error(
                    "changed-while-archiving",
                    format!("`{}` changed while being archived", path.display()),
                )
                .file(path)
                .help("run again, and don't edit the block while it is being packaged"),
            )
        };
        let mut file = File::open(path).with_path("open", path)?;
        let mut hasher = Sha256Hasher::new();
        let mut remaining = size;
        while remaining > 0 {
            self.make_room().map_err(output_error)?;
            let want =
                (SEGMENT - self.filled).min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let window = &mut self.segment[self.filled..self.filled + want];
            let read = match file.read(window) {
                Ok(0) => return Err(changed()),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error).with_path("read", path),
            };
            hasher.update(&window[..read]);
            remaining -= read as u64;
            self.filled += read;
            self.tar_bytes += read as u64;
        }
        let mut probe = [0u8; 1];
        loop {
            match file.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => return Err(changed()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error).with_path("read", path),
            }
        }
        // Same size is not enough for a stat cache: the hash must belong to the stat the scan saw.
        let metadata = file.metadata().with_path("read metadata of", path)?;
        let now = Stat::from_metadata(&metadata);
        if now.size != entry.stat.size
            || now.mtime_ns != entry.stat.mtime_ns
            || now.ctime_ns != entry.stat.ctime_ns
            || metadata.ino() != entry.stat.inode
        {
            return Err(changed());
        }
        self.pad().map_err(output_error)?;
        Ok(hasher.finalize().into())
    }

    /// Ends the tar stream with two zero blocks and the gzip member; returns the tar and gzip
    /// sizes and the segment tasks' times.
    fn finish(mut self) -> io::Result<(u64, u64, Vec<Duration>)> {
        self.push(&[0; 2 * BLOCK])?;
        let last = std::mem::take(&mut self.segment);
        self.gzip.segment(last, self.filled, true)?;
        let (gz_bytes, segment_tasks) = self.gzip.finish(self.tar_bytes)?;
        Ok((self.tar_bytes, gz_bytes, segment_tasks))
    }
}

/// One segment, compressed: its deflate bytes and the CRC-32 of its input.
struct Compressed {
    deflate: Vec<u8>,
    crc: Crc,
    /// How long it took, when it was a task of its own.
    task: Option<Duration>,
}

/// Buffers kept for the next segment, of this archive or the next, rather than freed. Each is
/// above `tune_malloc`'s mmap threshold (`main.rs`), so a fresh one is a new mapping whose pages
/// the kernel faults in and zeroes as they are first written, and a freed one is unmapped: that
/// was 135,000 page faults in a cold build of the medium corpus, 20,000 with the buffers kept
/// (`perf stat -e minor-faults`). It keeps at most `rayon::current_num_threads() + 2` of each
/// kind: what one archive has in flight with every thread busy (it costs 4 MiB of peak RSS at
/// `--jobs 2`).
static SPARE: Spare = Spare {
    segments: Mutex::new(Vec::new()),
    outputs: Mutex::new(Vec::new()),
};

struct Spare {
    /// Segments of the tar stream, each `SEGMENT` bytes; what one holds is overwritten before it
    /// is read again.
    segments: Mutex<Vec<Box<[u8]>>>,
    /// Compressed segments' bytes, once written.
    outputs: Mutex<Vec<Vec<u8>>>,
}

impl Spare {
    fn segment(&self) -> Box<[u8]> {
        let spare = lock(&self.segments).pop();
        spare.unwrap_or_else(|| vec![0; SEGMENT].into_boxed_slice())
    }

    fn output(&self) -> Vec<u8> {
        lock(&self.outputs).pop().unwrap_or_default()
    }

    fn keep_segment(&self, segment: Box<[u8]>) {
        keep(&self.segments, segment);
    }

    fn keep_output(&self, output: Vec<u8>) {
        keep(&self.outputs, output);
    }
}

fn keep<T>(spare: &Mutex<Vec<T>>, buffer: T) {
    let mut spare = lock(spare);
    if spare.len() < rayon::current_num_threads() + 2 {
        spare.push(buffer);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A gzip member around a raw deflate stream made of independently compressed segments,
/// written in order as they complete.
struct Gzip<'a, 'scope> {
    out: &'a mut dyn Write,
    level: u32,
    scope: &'a rayon::Scope<'scope>,
    crc: Crc,
    /// Segments handed out, and written.
    started: usize,
    written: usize,
    /// Finished segments waiting for the ones before them.
    finished: BTreeMap<usize, Compressed>,
    sender: mpsc::Sender<(usize, io::Result<Compressed>)>,
    receiver: mpsc::Receiver<(usize, io::Result<Compressed>)>,
    in_flight_limit: usize,
    gz_bytes: u64,
    segment_tasks: Vec<Duration>,
}

impl<'a, 'scope> Gzip<'a, 'scope> {
    fn new(
        out: &'a mut dyn Write,
        level: u32,
        scope: &'a rayon::Scope<'scope>,
    ) -> io::Result<Gzip<'a, 'scope>> {
        out.write_all(&GZIP_HEADER)?;
        let (sender, receiver) = mpsc::channel();
        Ok(Gzip {
            out,
            level,
            scope,
            crc: Crc::new(),
            started: 0,
            written: 0,
            finished: BTreeMap::new(),
            sender,
            receiver,
            // Enough to keep every thread busy, few enough to bound memory (each segment in
            // flight holds its input and its output).
            in_flight_limit: rayon::current_num_threads() + 1,
            gz_bytes: GZIP_HEADER.len() as u64,
            segment_tasks: Vec::new(),
        })
    }

    /// Compresses the next segment, `data[..len]`: on another thread, or here when it is the
    /// last one.
    fn segment(&mut self, data: Box<[u8]>, len: usize, last: bool) -> io::Result<()> {
        let index = self.started;
        self.started += 1;
        let level = self.level;
        if last {
            let compressed = compress_segment(&data[..len], level, true, SPARE.output());
            SPARE.keep_segment(data);
            self.finished.insert(index, compressed?);
            while self.written < self.started {
                self.wait()?;
            }
            return Ok(());
        }
        while self.started - 1 - self.written >= self.in_flight_limit {
            self.wait()?;
        }
        let sender = self.sender.clone();
        self.scope.spawn(move |_| {
            let started = Instant::now();
            let output = SPARE.output();
            let compressed =
                compress_segment(&data[..len], level, false, output).map(|compressed| {
                    let took = started.elapsed();
                    SEGMENT_TIME.with(|time| time.set(time.get() + took));
                    Compressed {
                        task: Some(took),
                        ..compressed
                    }
                });
            SPARE.keep_segment(data);
            // The receiver is gone only if the archive already failed.
            let _ = sender.send((index, compressed));
        });
        self.write_finished()
    }

    /// Writes what is finished, in order, after taking whatever results have arrived.
    fn write_finished(&mut self) -> io::Result<()> {
        while let Ok((index, compressed)) = self.receiver.try_recv() {
            self.finished.insert(index, compressed?);
        }
        while let Some(compressed) = self.finished.remove(&self.written) {
            self.out.write_all(&compressed.deflate)?;
            self.gz_bytes += compressed.deflate.len() as u64;
            SPARE.keep_output(compressed.deflate);
            self.crc.combine(&compressed.crc);
            self.segment_tasks.extend(compressed.task);
            self.written += 1;
        }
        Ok(())
    }

    /// Writes at least one more segment: runs this thread's own queued segments while they are
    /// there, then waits for those other threads took.
    fn wait(&mut self) -> io::Result<()> {
        let before = self.written;
        loop {
            self.write_finished()?;
            if self.written > before {
                return Ok(());
            }
            if rayon::yield_local() == Some(rayon::Yield::Executed) {
                continue;
            }
            let (index, compressed) = self
                .receiver
                .recv()
                .map_err(|_| io::Error::other("a compression thread stopped"))?;
            self.finished.insert(index, compressed?);
        }
    }

    /// Ends the member with its trailer: the CRC-32 and the length, modulo 2^32, of the
    /// `tar_bytes` long input.
    fn finish(self, tar_bytes: u64) -> io::Result<(u64, Vec<Duration>)> {
        let mut trailer = [0; 8];
        trailer[..4].copy_from_slice(&self.crc.finalize().to_le_bytes());
        trailer[4..].copy_from_slice(&(tar_bytes as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        Ok((self.gz_bytes + 8, self.segment_tasks))
    }
}

thread_local! {
    /// The time this thread has spent compressing segments handed to the pool.
    static SEGMENT_TIME: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// The time this thread has spent on segment tasks: what the caller subtracts from an archive's
/// wall time to find the time of its own task (with one thread, every segment runs on it).
pub fn segment_time_on_this_thread() -> Duration {
    SEGMENT_TIME.with(Cell::get)
}

/// Compresses one segment of the tar stream into deflate blocks that start and end at a byte
/// boundary, or that end the stream when `last`. Each run of chunks that do not look
/// incompressible is compressed as one whole buffer by libdeflate (`deflate::piece`); the other
/// chunks are stored.
fn compress_segment(
    data: &[u8],
    level: u32,
    last: bool,
    mut out: Vec<u8>,
) -> io::Result<Compressed> {
    let mut crc = Crc::new();
    crc.update(data);
    out.clear();
    // The compressible bytes not yet compressed: `data[run..offset]`.
    let (mut run, mut offset) = (0, 0);
    for chunk in data.chunks(CHUNK) {
        if level > 0 && chunk.len() >= MIN_STORED_CHUNK && deflate::looks_incompressible(chunk) {
            if run < offset {
                deflate::piece(&data[run..offset], level, false, &mut out)?;
            }
            for block in chunk.chunks(MAX_STORED_BLOCK) {
                let len = block.len() as u16;
                out.push(0x00); // BFINAL 0, BTYPE 00 (stored), at a byte boundary
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&(!len).to_le_bytes());
                out.extend_from_slice(block);
            }
            run = offset + chunk.len();
        }
        offset += chunk.len();
    }
    if run < offset {
        deflate::piece(&data[run..offset], level, last, &mut out)?;
    } else if last {
        out.extend_from_slice(&deflate::EMPTY_FINAL_BLOCK);
    }
    Ok(Compressed {
        deflate: out,
        crc,
        task: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::to_hex;
    use crate::tree::scan;
    use std::ffi::OsStr;
    use std::fs;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, SystemTime};

    const TOP: &str = "word_count__1_0";

    /// Deterministic bytes that deflate cannot shrink (xorshift64).
    fn noise(len: usize, mut state: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    fn text(len: usize) -> Vec<u8> {
        let line = b"def count_words(line):\n    return len(line.split())  # words\n";
        line.iter().copied().cycle().take(len).collect()
    }

    fn long_dir() -> String {
        format!("{}/{}", "d".repeat(60), "e".repeat(60))
    }

    fn very_long_dir() -> String {
        format!(
            "{}/{}/{}/{}",
            "p".repeat(70),
            "q".repeat(70),
            "r".repeat(70),
            "s".repeat(70)
        )
    }

    enum Item {
        Dir(&'static str),
        File(Vec<u8>, Vec<u8>, bool),
        Link(Vec<u8>, Vec<u8>),
    }

    fn items() -> Vec<Item> {
        let long = long_dir();
        let very_long = very_long_dir();
        let b = |text: &str| text.as_bytes().to_vec();
        vec![
            Item::Dir("empty"),
            Item::File(b("a.txt"), b"hello\n".to_vec(), false),
            Item::File(b("a/b.txt"), b"sorted after a.txt\n".to_vec(), false),
            Item::File(b("bin/run.sh"), b"#!/bin/sh\necho run\n".to_vec(), true),
            Item::File(b("sub/deep/nested/x.py"), text(3000), false),
            Item::Link(b("sub/link"), b("../a.txt")),
            Item::File(
                format!("{long}/file_name_that_is_long.txt").into_bytes(),
                b"long\n".to_vec(),
                false,
            ),
            Item::File(
                format!("{very_long}/very_long_file.py").into_bytes(),
                text(100),
                false,
            ),
            Item::Link(
                b("to_long"),
                format!("./{very_long}/very_long_file.py").into_bytes(),
            ),
            Item::File(
                "emoji_😀_ü.txt".as_bytes().to_vec(),
                b"four bytes\n".to_vec(),
                false,
            ),
            Item::File(b"bad_\xff\xfe.bin".to_vec(), vec![0, 1, 2, 255], false),
            Item::File(b("blob.bin"), noise(700_000, 7), false),
            Item::File(b("zz_text.txt"), text(400_000), false),
            Item::File(b("zero"), Vec::new(), false),
        ]
    }

    /// Writes the test block under `root`, as a checkout with the given umask, mtime and creation
    /// order would. The umask is applied with explicit modes, because the process umask is
    /// shared with the tests that run in parallel.
    fn make_block(root: &Path, umask: u32, mtime: u64, reverse: bool) -> PathBuf {
        let dir = root.join("blox").join(TOP);
        fs::create_dir_all(&dir).unwrap();
        let mut items = items();
        if reverse {
            items.reverse();
        }
        let dir_mode = 0o777 & !umask;
        let path_of = |relative: &[u8]| dir.join(OsStr::from_bytes(relative));
        let mut created = vec![dir.clone()];
        let mut make_parents = |path: &Path| {
            let parent = path.parent().unwrap();
            fs::create_dir_all(parent).unwrap();
            let mut ancestor = parent.to_path_buf();
            while ancestor != dir {
                fs::set_permissions(&ancestor, fs::Permissions::from_mode(dir_mode)).unwrap();
                created.push(ancestor.clone());
                ancestor.pop();
            }
        };
        for item in &items {
            match item {
                Item::Dir(relative) => {
                    let path = path_of(relative.as_bytes());
                    make_parents(&path);
                    fs::create_dir(&path).unwrap();
                    fs::set_permissions(&path, fs::Permissions::from_mode(dir_mode)).unwrap();
                }
                Item::File(relative, content, executable) => {
                    let path = path_of(relative);
                    make_parents(&path);
                    fs::write(&path, content).unwrap();
                    let mode = if *executable { 0o777 } else { 0o666 } & !umask;
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
                    let file = File::options().write(true).open(&path).unwrap();
                    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
                        .unwrap();
                }
                Item::Link(relative, target) => {
                    let path = path_of(relative);
                    make_parents(&path);
                    symlink(OsStr::from_bytes(target), &path).unwrap();
                }
            }
        }
        for directory in created {
            let handle = File::open(&directory).unwrap();
            handle
                .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime + 17))
                .unwrap();
        }
        dir
    }

    fn archive(dir: &Path, settings: &ArchiveSettings) -> (Vec<u8>, ArchiveReport) {
        let tree = scan(dir, TOP).unwrap();
        let mut bytes = Vec::new();
        let report = write_tgz(&tree, settings, &mut bytes).unwrap();
        assert_eq!(report.gz_bytes, bytes.len() as u64);
        (bytes, report)
    }

    const SETTINGS: ArchiveSettings = ArchiveSettings {
        mtime: 1_700_000_000,
        level: 6,
    };

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        deflate::gunzip(bytes).unwrap()
    }

    #[test]
    fn same_bytes_across_roots_mtimes_umasks_and_creation_order() {
        let first_root = tempfile::tempdir().unwrap();
        let second_root = tempfile::tempdir().unwrap();
        let first = make_block(first_root.path(), 0o022, 1_000_000, false);
        let second = make_block(
            &second_root.path().join("elsewhere"),
            0o077,
            1_600_000_000,
            true,
        );
        let (first_bytes, first_report) = archive(&first, &SETTINGS);
        let (second_bytes, second_report) = archive(&second, &SETTINGS);
        assert!(first_bytes == second_bytes, "archives differ");
        assert_eq!(
            (first_report.digest, &first_report.file_hashes),
            (second_report.digest, &second_report.file_hashes)
        );
        assert_eq!(
            (first_report.tar_bytes, first_report.gz_bytes),
            (second_report.tar_bytes, second_report.gz_bytes)
        );
        // Different settings give different bytes but the same source digest.
        let (other_bytes, other_report) = archive(&first, &ArchiveSettings { mtime: 0, level: 1 });
        assert_ne!(other_bytes, first_bytes);
        assert_eq!(other_report.digest, first_report.digest);
        assert_eq!(other_report.file_hashes, first_report.file_hashes);
    }

    #[test]
    fn every_header_is_normalised_and_content_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let dir = make_block(root.path(), 0o077, 123, false);
        let (bytes, report) = archive(&dir, &SETTINGS);
        let tree = scan(&dir, TOP).unwrap();

        let tar_bytes = gunzip(&bytes);
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let path = entry.path_bytes().into_owned();
            assert_eq!(header.mtime().unwrap(), SETTINGS.mtime);
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.username_bytes(), Some(&b""[..]));
            assert_eq!(header.groupname_bytes(), Some(&b""[..]));
            assert!(header.as_gnu().is_some());
            assert!(!path.starts_with(b"/") && !path.starts_with(b"./"));
            assert!(path.starts_with(format!("{TOP}/").as_bytes()));
            let index = tree
                .entries
                .iter()
                .position(|candidate| {
                    path.strip_suffix(b"/").unwrap_or(&path) == candidate.path.as_slice()
                })
                .unwrap_or_else(|| panic!("unexpected member {}", String::from_utf8_lossy(&path)));
            let source = &tree.entries[index];
            match &source.kind {
                EntryKind::Dir => {
                    assert!(path.ends_with(b"/"));
                    assert_eq!(header.entry_type(), tar::EntryType::Directory);
                    assert_eq!(header.mode().unwrap(), 0o755);
                }
                EntryKind::File { executable, size } => {
                    assert_eq!(header.entry_type(), tar::EntryType::Regular);
                    assert_eq!(
                        header.mode().unwrap(),
                        if *executable { 0o755 } else { 0o644 }
                    );
                    let mut content = Vec::new();
                    entry.read_to_end(&mut content).unwrap();
                    assert_eq!(content.len() as u64, *size);
                    assert_eq!(content, fs::read(tree.source(source)).unwrap());
                    let expected = crate::hash::hash_file(&tree.source(source)).unwrap();
                    assert_eq!(report.file_hashes[index], Some(expected));
                }
                EntryKind::Symlink { target } => {
                    assert_eq!(header.entry_type(), tar::EntryType::Symlink);
                    assert_eq!(header.mode().unwrap(), 0o777);
                    assert_eq!(entry.link_name_bytes().unwrap().as_ref(), target.as_slice());
                    assert_eq!(report.file_hashes[index], None);
                }
            }
            seen.push(path.strip_suffix(b"/").unwrap_or(&path).to_vec());
        }
        // The top directory itself is the first member and comes with a slash.
        let expected: Vec<Vec<u8>> = tree
            .entries
            .iter()
            .map(|entry| entry.path.clone())
            .collect();
        assert_eq!(seen, expected, "every entry once, in tree order");
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "byte-wise sorted");
        assert!(seen.iter().any(|path| path.len() > 255));
        assert!(
            seen.iter()
                .any(|path| path.windows(4).any(|w| w == "😀".as_bytes()))
        );
        assert!(seen.iter().any(|path| path.ends_with(b"bad_\xff\xfe.bin")));
        let a_txt = seen
            .iter()
            .position(|path| path.ends_with(b"/a.txt"))
            .unwrap();
        let a_dir = seen.iter().position(|path| path.ends_with(b"/a")).unwrap();
        assert!(
            a_dir < a_txt && seen[a_txt + 1].ends_with(b"/a/b.txt"),
            "`.` sorts before `/`"
        );
        assert_eq!(
            report.digest,
            crate::hash::tree_digest(&tree, &report.file_hashes)
        );
        assert_eq!(to_hex(&report.digest).len(), 64);
    }

    /// Walks the raw tar blocks, so the fields that the `tar` crate hides are checked too.
    #[test]
    fn raw_headers_and_end_of_archive_are_fixed() {
        let root = tempfile::tempdir().unwrap();
        let dir = make_block(root.path(), 0o022, 5, false);
        let (bytes, report) = archive(&dir, &SETTINGS);
        let tar_bytes = gunzip(&bytes);
        assert_eq!(tar_bytes.len() as u64, report.tar_bytes);
        assert_eq!(tar_bytes.len() % BLOCK, 0);

        let octal = |field: &[u8]| {
            let digits: Vec<u8> = field
                .iter()
                .copied()
                .take_while(|&byte| byte != 0 && byte != b' ')
                .collect();
            u64::from_str_radix(std::str::from_utf8(&digits).unwrap(), 8).unwrap()
        };
        let mut position = 0;
        let mut long_names = 0;
        let mut long_links = 0;
        loop {
            let header = &tar_bytes[position..position + BLOCK];
            if header.iter().all(|&byte| byte == 0) {
                break;
            }
            let typeflag = header[156];
            assert_eq!(&header[257..265], b"ustar  \0", "GNU magic and version");
            assert!(
                header[265..297].iter().all(|&byte| byte == 0),
                "empty user name"
            );
            assert!(
                header[297..329].iter().all(|&byte| byte == 0),
                "empty group name"
            );
            assert!(
                header[329..512].iter().all(|&byte| byte == 0),
                "no devices, atime, ctime, sparse"
            );
            assert_eq!(octal(&header[108..116]), 0, "uid");
            assert_eq!(octal(&header[116..124]), 0, "gid");
            let checksum: u64 = header[..148]
                .iter()
                .chain([b' '; 8].iter())
                .chain(header[156..].iter())
                .map(|&byte| u64::from(byte))
                .sum();
            assert_eq!(octal(&header[148..156]), checksum);
            let size = octal(&header[124..136]);
            if typeflag == b'L' || typeflag == b'K' {
                assert_eq!(&header[..14], b"././@LongLink\0");
                assert_eq!(octal(&header[100..108]), 0o644);
                assert_eq!(octal(&header[136..148]), 0);
                assert!(header[157..257].iter().all(|&byte| byte == 0));
                let data = &tar_bytes[position + BLOCK..position + BLOCK + size as usize];
                assert_eq!(data.last(), Some(&0));
                if typeflag == b'L' {
                    long_names += 1;
                } else {
                    long_links += 1;
                }
            } else {
                assert!([b'0', b'2', b'5'].contains(&typeflag));
                assert_eq!(octal(&header[136..148]), SETTINGS.mtime);
            }
            let padded = (size as usize).div_ceil(BLOCK) * BLOCK;
            position += BLOCK + padded;
        }
        assert!(
            long_names >= 3 && long_links == 1,
            "{long_names} long names, {long_links} long links"
        );
        assert_eq!(
            tar_bytes.len(),
            position + 2 * BLOCK,
            "two zero blocks and no record padding"
        );
        assert!(tar_bytes[position..].iter().all(|&byte| byte == 0));
    }

    /// One reason the framing is written here (module docs): for a member name of exactly 100
    /// bytes this module writes a `././@LongLink` entry first, `tar::Builder` does not.
    #[test]
    fn tar_builder_frames_a_100_byte_name_differently() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(TOP);
        fs::create_dir(&dir).unwrap();
        let name = "n".repeat(100 - TOP.len() - 1);
        fs::write(dir.join(&name), b"x").unwrap();
        let (bytes, _) = archive(&dir, &SETTINGS);
        let ours = gunzip(&bytes);
        assert_eq!(
            ours[BLOCK + 156],
            b'L',
            "a long-name entry after the top directory"
        );

        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, format!("{TOP}/{name}"), &b"x"[..])
            .unwrap();
        let theirs = builder.into_inner().unwrap();
        assert_eq!(theirs[156], b'0', "the name in the header itself");
        assert_eq!(&theirs[..100], format!("{TOP}/{name}").as_bytes());
    }

    #[test]
    fn gzip_header_has_no_name_no_mtime_and_a_fixed_os() {
        let root = tempfile::tempdir().unwrap();
        let dir = make_block(root.path(), 0o022, 5, false);
        let (bytes, _) = archive(&dir, &SETTINGS);
        assert_eq!(&bytes[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(bytes[3] & 0x08, 0, "no FNAME");
        assert_eq!(&bytes[4..8], &[0; 4], "mtime 0");
        assert!(!gunzip(&bytes).is_empty(), "a header libdeflate reads");
    }

    #[test]
    fn incompressible_chunks_are_stored_and_the_rest_compressed() {
        assert!(deflate::looks_incompressible(&noise(CHUNK, 3)));
        assert!(!deflate::looks_incompressible(&text(CHUNK)));
        assert!(!deflate::looks_incompressible(&vec![0; CHUNK]));
        // Stopping early gives the answer of counting every byte, on either side of the line.
        let counted = |data: &[u8]| {
            let mut counts = [0u128; 256];
            data.iter().for_each(|&byte| counts[usize::from(byte)] += 1);
            let n = data.len() as u128;
            256 * 10 * counts.iter().map(|c| c * c).sum::<u128>() < 11 * n * n
        };
        let mut answers = Vec::new();
        for zeros in [0, 4_000, 5_000, 5_500, 6_000, 60_000] {
            for data in [
                [noise(CHUNK - zeros, 5), vec![0; zeros]].concat(),
                [vec![0; zeros], noise(CHUNK - zeros, 5)].concat(),
                [text(zeros), noise(20_000, 9)].concat(),
            ] {
                assert_eq!(
                    deflate::looks_incompressible(&data),
                    counted(&data),
                    "{zeros}"
                );
                answers.push(counted(&data));
            }
        }
        assert!(answers.contains(&true) && answers.contains(&false));

        let root = tempfile::tempdir().unwrap();
        let dir = make_block(root.path(), 0o022, 5, false);
        let (bytes, report) = archive(&dir, &SETTINGS);
        // 700 KB of noise stays about that size; 400 KB of repeated text nearly vanishes.
        assert!(
            report.gz_bytes < 720_000 && report.gz_bytes > 690_000,
            "{}",
            report.gz_bytes
        );
        assert_eq!(gunzip(&bytes).len() as u64, report.tar_bytes);
        let (stored_bytes, _) = archive(
            &dir,
            &ArchiveSettings {
                level: 0,
                ..SETTINGS
            },
        );
        assert_eq!(gunzip(&stored_bytes), gunzip(&bytes));
    }

    #[test]
    fn a_file_that_changes_size_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = make_block(root.path(), 0o022, 5, false);
        let tree = scan(&dir, TOP).unwrap();
        for content in [&b"grown, longer than before\n"[..], &b""[..]] {
            fs::write(dir.join("a.txt"), content).unwrap();
            let error = write_tgz(&tree, &SETTINGS, &mut Vec::new()).unwrap_err();
            let diagnostic = &error.diagnostics[0];
            assert_eq!(diagnostic.code, "changed-while-archiving");
            assert!(
                diagnostic.message.contains("a.txt`"),
                "{}",
                diagnostic.message
            );
            assert!(diagnostic.message.starts_with('`') && !diagnostic.message.ends_with('.'));
            assert!(diagnostic.help.as_deref().unwrap().contains("run again"));
        }
    }

    #[test]
    fn level_above_nine_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = make_block(root.path(), 0o022, 5, false);
        let tree = scan(&dir, TOP).unwrap();
        let error = write_tgz(
            &tree,
            &ArchiveSettings {
                mtime: 0,
                level: 10,
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(error.diagnostics[0].code, "bad-level");
    }

    #[test]
    fn deflate_backend_matches_cargo_lock() {
        let lock =
            fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let package = |name: &str| {
            let start = lock
                .find(&format!("[[package]]\nname = \"{name}\"\n"))
                .unwrap_or_else(|| panic!("no {name}"));
            let rest = &lock[start..];
            let end = rest[1..]
                .find("[[package]]")
                .map_or(rest.len(), |end| end + 1);
            &rest[..end]
        };
        let version = |name: &str| {
            let block = package(name);
            let line = block
                .lines()
                .find(|line| line.starts_with("version = "))
                .unwrap();
            line.trim_start_matches("version = ")
                .trim_matches('"')
                .to_string()
        };
        // libdeflate-sys vendors the C library of its own major.minor version and builds it.
        let sys = version("libdeflate-sys");
        let c_library = sys
            .rsplit_once('.')
            .map_or(sys.as_str(), |(minor, _)| minor);
        assert_eq!(
            DEFLATE_BACKEND,
            format!("libdeflate {c_library} via libdeflate-sys {sys}")
        );
        // Its `dynamic` feature would link the system's libdeflate instead, through pkg-config.
        assert!(
            !lock.contains("name = \"pkg-config\""),
            "the vendored C library, never a system one (the `dynamic` feature)"
        );
    }

    /// Python's `tarfile` and GNU tar list and extract what we write, when they are installed.
    #[test]
    fn python_and_gnu_tar_read_the_archive() {
        let root = tempfile::tempdir().unwrap();
        let dir = make_block(root.path(), 0o022, 5, false);
        let (bytes, _) = archive(&dir, &SETTINGS);
        let archive_path = root.path().join("block.tgz");
        fs::write(&archive_path, &bytes).unwrap();
        let tree = scan(&dir, TOP).unwrap();

        let check_extracted = |into: &Path| {
            for entry in &tree.entries {
                let extracted = into.join(OsStr::from_bytes(&entry.path));
                let metadata = fs::symlink_metadata(&extracted)
                    .unwrap_or_else(|_| panic!("missing {}", extracted.display()));
                match &entry.kind {
                    EntryKind::Dir => assert!(metadata.is_dir()),
                    EntryKind::File { executable, .. } => {
                        assert_eq!(
                            fs::read(&extracted).unwrap(),
                            fs::read(tree.source(entry)).unwrap()
                        );
                        assert_eq!(metadata.permissions().mode() & 0o111 != 0, *executable);
                    }
                    EntryKind::Symlink { target } => {
                        assert_eq!(
                            fs::read_link(&extracted).unwrap().as_os_str().as_bytes(),
                            target.as_slice()
                        );
                    }
                }
            }
        };

        let available = |program: &str| {
            Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|output| output.status.success())
        };
        if available("tar") {
            let listing = Command::new("tar")
                .arg("-tvzf")
                .arg(&archive_path)
                .output()
                .unwrap();
            assert!(
                listing.status.success(),
                "{}",
                String::from_utf8_lossy(&listing.stderr)
            );
            assert_eq!(
                listing
                    .stdout
                    .split(|&byte| byte == b'\n')
                    .filter(|line| !line.is_empty())
                    .count(),
                tree.entries.len()
            );
            let into = root.path().join("gnu");
            fs::create_dir(&into).unwrap();
            let status = Command::new("tar")
                .arg("-xzf")
                .arg(&archive_path)
                .arg("-C")
                .arg(&into)
                .status()
                .unwrap();
            assert!(status.success());
            check_extracted(&into);
        } else {
            eprintln!("note: GNU tar not found, skipped");
        }
        if available("python3") {
            let into = root.path().join("python");
            let script = "import sys, tarfile\n\
                with tarfile.open(sys.argv[1]) as archive:\n\
                \x20   names = archive.getnames()\n\
                \x20   assert len(names) == int(sys.argv[3]), names\n\
                \x20   archive.extractall(sys.argv[2], **({'filter': 'tar'} if hasattr(tarfile, 'tar_filter') else {}))\n";
            let output = Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(&archive_path)
                .arg(&into)
                .arg(tree.entries.len().to_string())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            check_extracted(&into);
        } else {
            eprintln!("note: python3 not found, skipped");
        }
    }
}
