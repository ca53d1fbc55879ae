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
//! the build platform), a raw deflate stream from flate2's `Compress` on the zlib-rs backend
//! (`DEFLATE_BACKEND`), then CRC-32 and the size mod 2^32, little-endian.
//!
//! The tar stream is cut into chunks of `CHUNK` bytes at fixed offsets. A chunk that looks
//! incompressible (its bytes are almost uniformly distributed, measured in integers, see
//! `looks_incompressible`) is written as deflate stored blocks by this module instead of being
//! compressed: random bytes, PNGs, gzip files and the like do not shrink at level 6 anyway, and
//! storing them costs a memcpy instead of a match search. Before a stored run the compressor is
//! sync-flushed (byte-aligned, non-final blocks) and afterwards reset, so it never refers back
//! into the stored bytes. The decision depends on the chunk's bytes only, never on timing, so the
//! output stays a function of the tree, the settings and `DEFLATE_BACKEND`.
//!
//! A different deflate implementation or version may produce different (equally valid) bytes,
//! which is why `DEFLATE_BACKEND` is exact and tested against `Cargo.lock`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::hash::{Sha256, tree_digest};
use crate::tree::{Entry, EntryKind, Stat, Tree};

/// The deflate implementation whose output the archives are reproducible with.
pub const DEFLATE_BACKEND: &str = "zlib-rs 0.6.8 via flate2 1.1.11";

/// The tar stream is compressed in chunks of this size; it bounds the memory used per archive
/// (one chunk of input, one of output, plus the compressor's state).
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
            .file(
                tree.entries
                    .first()
                    .map(|entry| entry.source.clone())
                    .unwrap_or_default(),
            )
            .help("check that the output folder is writable and the disk is not full"),
        )
    };

    let mut tar = TarStream::new(Gzip::new(out, settings.level).map_err(output_error)?);
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
                Some(tar.file(entry, *size, &output_error)?)
            }
        };
        file_hashes.push(file_hash);
    }
    let (tar_bytes, gz_bytes) = tar.finish().map_err(output_error)?;
    let digest = tree_digest(tree, &file_hashes);
    Ok(ArchiveReport {
        file_hashes,
        digest,
        tar_bytes,
        gz_bytes,
    })
}

/// The tar stream, collected into `CHUNK`-sized pieces at fixed offsets for `Gzip`.
struct TarStream<'a> {
    gzip: Gzip<'a>,
    chunk: Box<[u8]>,
    filled: usize,
    tar_bytes: u64,
}

impl<'a> TarStream<'a> {
    fn new(gzip: Gzip<'a>) -> TarStream<'a> {
        TarStream {
            gzip,
            chunk: vec![0; CHUNK].into_boxed_slice(),
            filled: 0,
            tar_bytes: 0,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let take = bytes.len().min(CHUNK - self.filled);
            self.chunk[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.advance(take)?;
            bytes = &bytes[take..];
        }
        Ok(())
    }

    fn advance(&mut self, count: usize) -> io::Result<()> {
        self.filled += count;
        self.tar_bytes += count as u64;
        if self.filled == CHUNK {
            self.gzip.write_chunk(&self.chunk)?;
            self.filled = 0;
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
    /// straight into the chunk buffer.
    fn file(
        &mut self,
        entry: &Entry,
        size: u64,
        output_error: &dyn Fn(io::Error) -> Error,
    ) -> Result<Sha256> {
        let path = entry.source.as_path();
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
            let want = (CHUNK - self.filled).min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let window = &mut self.chunk[self.filled..self.filled + want];
            let read = match file.read(window) {
                Ok(0) => return Err(changed()),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error).with_path("read", path),
            };
            hasher.update(&window[..read]);
            remaining -= read as u64;
            self.advance(read).map_err(output_error)?;
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

    /// Ends the tar stream with two zero blocks and the gzip member; returns (tar, gzip) sizes.
    fn finish(mut self) -> io::Result<(u64, u64)> {
        self.push(&[0; 2 * BLOCK])?;
        if self.filled > 0 {
            self.gzip.write_chunk(&self.chunk[..self.filled])?;
        }
        let gz_bytes = self.gzip.finish()?;
        Ok((self.tar_bytes, gz_bytes))
    }
}

/// A gzip member around a raw deflate stream, with stored blocks for incompressible chunks.
struct Gzip<'a> {
    out: &'a mut dyn Write,
    compress: Compress,
    level: u32,
    crc: Crc,
    buffer: Vec<u8>,
    /// Whether the compressor has taken input since it was created or reset.
    compressor_used: bool,
    gz_bytes: u64,
}

impl<'a> Gzip<'a> {
    fn new(out: &'a mut dyn Write, level: u32) -> io::Result<Gzip<'a>> {
        out.write_all(&GZIP_HEADER)?;
        Ok(Gzip {
            out,
            compress: Compress::new(Compression::new(level), false),
            level,
            crc: Crc::new(),
            buffer: Vec::with_capacity(CHUNK),
            compressor_used: false,
            gz_bytes: GZIP_HEADER.len() as u64,
        })
    }

    fn write_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        if self.level > 0 && data.len() >= MIN_STORED_CHUNK && looks_incompressible(data) {
            if self.compressor_used {
                self.deflate(&[], FlushCompress::Sync)?;
                self.compress.reset();
                self.compressor_used = false;
            }
            for block in data.chunks(MAX_STORED_BLOCK) {
                self.reserve(block.len() + 5)?;
                let len = block.len() as u16;
                self.buffer.push(0x00); // BFINAL 0, BTYPE 00 (stored), at a byte boundary
                self.buffer.extend_from_slice(&len.to_le_bytes());
                self.buffer.extend_from_slice(&(!len).to_le_bytes());
                self.buffer.extend_from_slice(block);
            }
            Ok(())
        } else {
            self.compressor_used = true;
            self.deflate(data, FlushCompress::None)
        }
    }

    /// Feeds `input` to the compressor until it is consumed and, for a flush, fully written.
    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            if self.buffer.len() == self.buffer.capacity() {
                self.drain()?;
            }
            let before_in = self.compress.total_in();
            let status = self
                .compress
                .compress_vec(input, &mut self.buffer, flush)
                .map_err(|error| io::Error::other(format!("deflate failed: {error}")))?;
            input = &input[(self.compress.total_in() - before_in) as usize..];
            let output_full = self.buffer.len() == self.buffer.capacity();
            if status == Status::StreamEnd {
                return Ok(());
            }
            if flush != FlushCompress::Finish && input.is_empty() && !output_full {
                return Ok(());
            }
        }
    }

    /// Makes room for `bytes` more bytes without growing the buffer.
    fn reserve(&mut self, bytes: usize) -> io::Result<()> {
        if self.buffer.capacity() - self.buffer.len() < bytes {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buffer)?;
        self.gz_bytes += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<u64> {
        self.deflate(&[], FlushCompress::Finish)?;
        self.reserve(8)?;
        self.buffer.extend_from_slice(&self.crc.sum().to_le_bytes());
        self.buffer
            .extend_from_slice(&self.crc.amount().to_le_bytes());
        self.drain()?;
        self.out.flush()?;
        Ok(self.gz_bytes)
    }
}

/// Whether deflate would likely not shrink `data`: its byte distribution is nearly uniform.
///
/// With `c[b]` the count of byte value `b` among `n` bytes, `256 * sum(c[b]^2) / n^2` is 1 for a
/// perfectly uniform distribution, about `1 + 256 / n` for random bytes and well above 2 for text
/// or structured binaries. Below 1.1 (a Rényi entropy above about 7.86 bits per byte) the chunk
/// is stored. Integer arithmetic only, so every machine decides the same way.
fn looks_incompressible(data: &[u8]) -> bool {
    let mut counts = [0u64; 256];
    for &byte in data {
        counts[usize::from(byte)] += 1;
    }
    let sum_of_squares: u128 = counts
        .iter()
        .map(|&count| u128::from(count) * u128::from(count))
        .sum();
    let n = data.len() as u128;
    256 * 10 * sum_of_squares < 11 * n * n
}
