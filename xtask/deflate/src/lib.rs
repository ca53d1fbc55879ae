//! Raw deflate pieces that concatenate: libdeflate compresses a whole buffer into a complete
//! deflate stream, whose last block is marked final; `piece` turns it into blocks that a further
//! piece can follow, by walking the stream's blocks to find that last block, clearing its final
//! bit and, when it does not end on a byte boundary, appending an empty stored block (a sync
//! flush) so that the next piece starts on one.
//!
//! The walk decodes the Huffman codes of each block but writes no output: it only counts bits.
//! Its input is libdeflate's own output, so a stream it cannot read is a bug, reported as an
//! I/O error rather than a panic.
//!
//! Also here: `looks_incompressible`, which decides which chunks `archive.rs` stores, and
//! `gunzip`, which reads an archive back. This is the byte-by-byte work of `dist` that is Rust
//! code, in a crate of its own so that the dev profile optimises it while the rest of xtask
//! compiles unoptimised (`Cargo.toml`).

use std::cell::RefCell;
use std::io;

use libdeflater::{CompressionLvl, Compressor, DecompressionError, Decompressor};

/// An empty final block with the fixed codes: what ends a stream whose last piece was stored.
pub const EMPTY_FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// The 4 bytes of an empty stored block after its 3-bit header and the padding to a byte.
const EMPTY_STORED: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    /// One compressor per thread and level. libdeflate keeps no state between calls, so the bytes
    /// of a piece never depend on what the thread compressed before.
    static COMPRESSOR: RefCell<Option<(u32, Compressor)>> = const { RefCell::new(None) };
}

/// Appends `input` compressed at `level` (0 to 12; archives use 0 to 9) to `out`: a complete stream when `last`, else
/// non-final blocks that end on a byte boundary.
pub fn piece(input: &[u8], level: u32, last: bool, out: &mut Vec<u8>) -> io::Result<()> {
    let start = out.len();
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(cached, _)| *cached != level) {
            let lvl = CompressionLvl::new(level as i32)
                .map_err(|_| io::Error::other(format!("no deflate level {level}")))?;
            *cell = Some((level, Compressor::new(lvl)));
        }
        let (_, compressor) = cell.as_mut().expect("set above");
        out.resize(start + compressor.deflate_compress_bound(input.len()), 0);
        let written = compressor
            .deflate_compress(input, &mut out[start..])
            .map_err(|error| io::Error::other(format!("deflate failed: {error}")))?;
        out.truncate(start + written);
        Ok::<_, io::Error>(())
    })?;
    if !last {
        make_non_final(out, start)?;
    }
    Ok(())
}

/// Turns the complete stream in `out[start..]` into non-final blocks ending on a byte boundary.
fn make_non_final(out: &mut Vec<u8>, start: usize) -> io::Result<()> {
    let (last_block, end) = walk(&out[start..])?;
    out[start + last_block / 8] &= !(1 << (last_block % 8));
    let padding = (8 - end % 8) % 8;
    if padding > 0 {
        // The empty stored block's 3 header bits (all zero) go into the padding when it has room,
        // else into one more byte.
        if padding < 3 {
            out.push(0);
        }
        out.extend_from_slice(&EMPTY_STORED);
    }
    Ok(())
}

fn corrupt(what: &str) -> io::Error {
    io::Error::other(format!("the deflate stream cannot be read back ({what})"))
}

/// Reads bits least significant first, as deflate packs them.
struct Bits<'a> {
    data: &'a [u8],
    /// The next byte to load into `buffer`.
    next: usize,
    buffer: u64,
    /// Bits in `buffer`; at least 56 after a refill.
    count: u32,
}

impl Bits<'_> {
    #[inline]
    fn refill(&mut self) {
        if let Some(bytes) = self.data.get(self.next..self.next + 8) {
            let word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
            self.buffer |= word << self.count;
            self.next += ((63 - self.count) / 8) as usize;
            self.count |= 56;
        } else {
            // The last bytes, then zeros; `position` tells if the walk read past the end.
            while self.count <= 56 {
                let byte = self.data.get(self.next).copied().unwrap_or(0);
                self.buffer |= u64::from(byte) << self.count;
                self.next += 1;
                self.count += 8;
            }
        }
    }

    /// The next `n` (at most 32) bits, without consuming them.
    #[inline]
    fn peek(&mut self, n: u32) -> u64 {
        if self.count < n {
            self.refill();
        }
        self.buffer & ((1u64 << n) - 1)
    }

    #[inline]
    fn skip(&mut self, n: u32) {
        self.buffer >>= n;
        self.count -= n;
    }

    fn take(&mut self, n: u32) -> u64 {
        let value = self.peek(n);
        self.skip(n);
        value
    }

    /// Bits consumed so far.
    fn position(&self) -> usize {
        self.next * 8 - self.count as usize
    }
}

/// Codes of up to this many bits are decoded by one table look-up.
const FAST_BITS: u32 = 12;

/// What a symbol is, for the walk: how many extra bits follow its code, and what comes next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A literal byte, or a distance (its extra bits follow).
    Plain = 0,
    /// A match length: a distance code follows.
    Length = 1,
    EndOfBlock = 2,
    Invalid = 3,
}

/// A canonical Huffman code: a table for the short codes, and the counts for the long ones.
/// A table entry packs the bits to consume (code and extra bits, low 5 bits) and the `Kind`
/// (bits 5–6); 0 means a code longer than `FAST_BITS`.
struct Code {
    fast: Box<[u16; 1 << FAST_BITS]>,
    counts: [u16; 16],
    symbols: Vec<u16>,
    /// (extra bits, kind) of each symbol.
    info: fn(u16) -> (u32, Kind),
}

const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DISTANCE_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

fn literal_length(symbol: u16) -> (u32, Kind) {
    match symbol {
        0..=255 => (0, Kind::Plain),
        256 => (0, Kind::EndOfBlock),
        257..=285 => (
            u32::from(LENGTH_EXTRA[usize::from(symbol - 257)]),
            Kind::Length,
        ),
        _ => (0, Kind::Invalid),
    }
}

fn distance(symbol: u16) -> (u32, Kind) {
    match DISTANCE_EXTRA.get(usize::from(symbol)) {
        Some(&extra) => (u32::from(extra), Kind::Plain),
        None => (0, Kind::Invalid),
    }
}

fn code_length(_symbol: u16) -> (u32, Kind) {
    (0, Kind::Plain)
}

impl Code {
    fn new(lengths: &[u8], info: fn(u16) -> (u32, Kind)) -> io::Result<Code> {
        let mut counts = [0u16; 16];
        for &length in lengths {
            counts[usize::from(length)] += 1;
        }
        counts[0] = 0;
        let mut offsets = [0usize; 16];
        for length in 1..15 {
            offsets[length + 1] = offsets[length] + usize::from(counts[length]);
        }
        let mut symbols = vec![0u16; lengths.len()];
        for (symbol, &length) in lengths.iter().enumerate() {
            if length != 0 {
                symbols[offsets[usize::from(length)]] = symbol as u16;
                offsets[usize::from(length)] += 1;
            }
        }
        let mut fast = Box::new([0u16; 1 << FAST_BITS]);
        let (mut code, mut index) = (0u32, 0usize);
        for length in 1..=15u32 {
            for _ in 0..counts[length as usize] {
                if code >= 1 << length {
                    return Err(corrupt("an over-subscribed code"));
                }
                if length <= FAST_BITS {
                    let (extra, kind) = info(symbols[index]);
                    let entry = ((kind as u16) << 5) | (length + extra) as u16;
                    let mut slot = (code.reverse_bits() >> (32 - length)) as usize;
                    while slot < fast.len() {
                        fast[slot] = entry;
                        slot += 1 << length;
                    }
                }
                code += 1;
                index += 1;
            }
            code <<= 1;
        }
        Ok(Code {
            fast,
            counts,
            symbols,
            info,
        })
    }

    /// The table entry of the symbol whose code starts `window` (at least 28 bits): the bits to
    /// consume (code and extra bits) and the kind, packed as in `fast`.
    #[inline(always)]
    fn entry(&self, window: u64) -> u16 {
        match self.fast[(window & ((1 << FAST_BITS) - 1)) as usize] {
            0 => self.long_entry(window),
            entry => entry,
        }
    }

    /// `entry` for a code longer than `FAST_BITS`, bit by bit (the canonical order).
    #[cold]
    fn long_entry(&self, window: u64) -> u16 {
        let (mut code, mut first, mut index) = (0u32, 0u32, 0u32);
        for length in 1..=15u32 {
            code |= ((window >> (length - 1)) & 1) as u32;
            let count = u32::from(self.counts[length as usize]);
            if code < first + count {
                let (extra, kind) = (self.info)(self.symbols[(index + code - first) as usize]);
                return ((kind as u16) << 5) | (length + extra) as u16;
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        (Kind::Invalid as u16) << 5
    }

    /// Decodes one symbol of a code-length code (no extra bits).
    fn symbol(&self, bits: &mut Bits) -> io::Result<u16> {
        let window = bits.peek(15);
        let (mut code, mut first, mut index) = (0u32, 0u32, 0u32);
        for length in 1..=15u32 {
            code |= ((window >> (length - 1)) & 1) as u32;
            let count = u32::from(self.counts[length as usize]);
            if code < first + count {
                bits.skip(length);
                return Ok(self.symbols[(index + code - first) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(corrupt("an unknown code"))
    }
}

/// The order in which a dynamic block lists its code-length code's lengths.
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// The two codes of a dynamic block, read from its header.
fn dynamic_codes(bits: &mut Bits) -> io::Result<(Code, Code)> {
    let literals = bits.take(5) as usize + 257;
    let distances = bits.take(5) as usize + 1;
    let code_lengths = bits.take(4) as usize + 4;
    let mut lengths = [0u8; 19];
    for &symbol in &CODE_LENGTH_ORDER[..code_lengths] {
        lengths[symbol] = bits.take(3) as u8;
    }
    let code = Code::new(&lengths, code_length)?;
    let mut lengths = vec![0u8; literals + distances];
    let mut index = 0;
    while index < lengths.len() {
        let (repeat, value) = match code.symbol(bits)? {
            symbol @ 0..=15 => (1, symbol as u8),
            16 => {
                let previous = *index
                    .checked_sub(1)
                    .and_then(|i| lengths.get(i))
                    .ok_or_else(|| corrupt("a repeat with nothing before it"))?;
                (3 + bits.take(2) as usize, previous)
            }
            17 => (3 + bits.take(3) as usize, 0),
            _ => (11 + bits.take(7) as usize, 0),
        };
        let run = lengths
            .get_mut(index..index + repeat)
            .ok_or_else(|| corrupt("code lengths past the end"))?;
        run.fill(value);
        index += repeat;
    }
    Ok((
        Code::new(&lengths[..literals], literal_length)?,
        Code::new(&lengths[literals..], distance)?,
    ))
}

/// The fixed codes of deflate's block type 1.
fn fixed_codes() -> io::Result<(Code, Code)> {
    let mut lengths = [8u8; 288];
    lengths[144..256].fill(9);
    lengths[256..280].fill(7);
    Ok((
        Code::new(&lengths, literal_length)?,
        Code::new(&[5; 30], distance)?,
    ))
}

/// Consumes a Huffman-coded block's symbols, up to and including its end of block.
fn skip_symbols(bits: &mut Bits, literals: &Code, distances: &Code) -> io::Result<()> {
    // Past the end, the reader yields zeros, which could decode forever.
    let limit = bits.data.len() + 8;
    loop {
        // A literal or length takes at most 15 + 5 bits, a distance 15 + 13: one refill for both.
        if bits.count < 48 {
            bits.refill();
            if bits.next > limit {
                return Err(corrupt("it is cut short"));
            }
        }
        let entry = literals.entry(bits.buffer);
        bits.skip(u32::from(entry & 31));
        match entry >> 5 {
            0 => {}
            1 => {
                let entry = distances.entry(bits.buffer);
                if entry >> 5 != Kind::Plain as u16 {
                    return Err(corrupt("a bad distance code"));
                }
                bits.skip(u32::from(entry & 31));
            }
            2 => return Ok(()),
            _ => return Err(corrupt("a bad literal or length code")),
        }
    }
}

/// Walks a complete raw deflate stream: returns the bit offset of its final block's header and
/// the bit offset where that block ends.
fn walk(stream: &[u8]) -> io::Result<(usize, usize)> {
    let mut bits = Bits {
        data: stream,
        next: 0,
        buffer: 0,
        count: 0,
    };
    loop {
        let header = bits.position();
        let last = bits.take(1) == 1;
        match bits.take(2) {
            0 => {
                let to_byte = (8 - bits.position() % 8) % 8;
                bits.skip(to_byte as u32);
                let length = bits.take(16) as usize;
                bits.take(16);
                let next = bits.position() / 8 + length;
                bits = Bits {
                    data: stream,
                    next,
                    buffer: 0,
                    count: 0,
                };
            }
            kind @ (1 | 2) => {
                let (literals, distances) = if kind == 1 {
                    fixed_codes()?
                } else {
                    dynamic_codes(&mut bits)?
                };
                skip_symbols(&mut bits, &literals, &distances)?;
            }
            _ => return Err(corrupt("block type 3")),
        }
        if bits.position() > stream.len() * 8 {
            return Err(corrupt("it is cut short"));
        }
        if last {
            return Ok((header, bits.position()));
        }
    }
}

/// Whether deflate would likely not shrink `data`: its byte distribution is nearly uniform.
///
/// With `c[b]` the count of byte value `b` among `n` bytes, `256 * sum(c[b]^2) / n^2` is 1 for a
/// perfectly uniform distribution, about `1 + 256 / n` for random bytes and well above 2 for text
/// or structured binaries. Below 1.1 (a Rényi entropy above about 7.86 bits per byte) the chunk
/// is stored. Integer arithmetic only, so every machine decides the same way.
///
/// The counts only grow, and so does their sum of squares: once the bytes counted so far are
/// too unevenly spread for the whole to pass, the rest need not be counted (text stops after
/// about a quarter of a chunk). The answer is the same as counting every byte.
pub fn looks_incompressible(data: &[u8]) -> bool {
    let n = data.len() as u128;
    let passes = |sum_of_squares: u128| 256 * 10 * sum_of_squares < 11 * n * n;
    // Four tables, one per byte of each group of four: consecutive equal bytes then increment
    // different counters, rather than each waiting for the one before.
    let mut tables = [[0u64; 256]; 4];
    let sum_of_squares = |tables: &[[u64; 256]; 4]| -> u128 {
        (0..256)
            .map(|byte| u128::from(tables.iter().map(|table| table[byte]).sum::<u64>()).pow(2))
            .sum()
    };
    for part in data.chunks(16 * 1024) {
        let mut groups = part.chunks_exact(4);
        for group in &mut groups {
            tables[0][usize::from(group[0])] += 1;
            tables[1][usize::from(group[1])] += 1;
            tables[2][usize::from(group[2])] += 1;
            tables[3][usize::from(group[3])] += 1;
        }
        for &byte in groups.remainder() {
            tables[0][usize::from(byte)] += 1;
        }
        if !passes(sum_of_squares(&tables)) {
            return false;
        }
    }
    true
}

/// The content of a one-member gzip file (an archive read back), checked against the CRC-32
/// and the length in its trailer.
pub fn gunzip(gz: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a valid gzip file");
    let trailer = gz.len().checked_sub(4).ok_or_else(bad)?;
    // The trailer holds the length modulo 2^32; deflate expands at most 1032 times.
    let most = gz.len().saturating_mul(1032);
    let mut size = u32::from_le_bytes(gz[trailer..].try_into().expect("4 bytes")) as usize;
    let mut decompressor = Decompressor::new();
    while size <= most {
        let mut out = vec![0; size];
        match decompressor.gzip_decompress(gz, &mut out) {
            Ok(written) => {
                out.truncate(written);
                return Ok(out);
            }
            Err(DecompressionError::InsufficientSpace) => size += 1 << 32,
            Err(DecompressionError::BadData) => break,
        }
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A complete raw deflate stream, decompressed by libdeflate into at most `most` bytes.
    fn inflate(stream: &[u8], most: usize) -> Vec<u8> {
        let mut out = vec![0; most];
        let written = Decompressor::new()
            .deflate_decompress(stream, &mut out)
            .unwrap();
        out.truncate(written);
        out
    }

    /// Inputs that give libdeflate's every kind of block: stored (noise, level 0), fixed codes
    /// (tiny inputs), dynamic codes, long runs, and nothing at all.
    fn inputs() -> Vec<Vec<u8>> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("row {},{},{}\n", i % 977, i * 31 % 1009, i % 7).into_bytes())
            .collect();
        // Skewed bytes: a few rare bytes among three common ones.
        let skewed: Vec<u8> = (0..150_000u32)
            .map(|i| {
                if i % 5000 == 0 {
                    (i / 5000) as u8
                } else {
                    b'a' + (i % 3) as u8
                }
            })
            .collect();
        vec![
            Vec::new(),
            b"x".to_vec(),
            b"hello, hello, hello\n".to_vec(),
            vec![0; 100_000],
            noise.clone(),
            text.clone(),
            skewed,
            // Text around noise: Huffman codes longer than `FAST_BITS`, decoded bit by bit.
            [&text[..50_000], &noise[..50_000], &text[..50_000]].concat(),
        ]
    }

    #[test]
    fn pieces_concatenate_into_one_stream_at_every_level() {
        let inputs = inputs();
        for level in 0..=9 {
            let mut stream = Vec::new();
            for input in &inputs {
                let start = stream.len();
                piece(input, level, false, &mut stream).unwrap();
                assert!(
                    stream.len() > start,
                    "level {level}: even nothing makes a block"
                );
                // A non-final piece ends on a byte boundary: an empty final block completes it.
                let alone = [&stream[start..], &EMPTY_FINAL_BLOCK[..]].concat();
                assert_eq!(&inflate(&alone, input.len()), input, "level {level}");
            }
            piece(b"the end\n", level, true, &mut stream).unwrap();
            let expected: Vec<u8> = inputs.concat().into_iter().chain(*b"the end\n").collect();
            assert!(
                inflate(&stream, expected.len()) == expected,
                "level {level}"
            );

            let mut ended = Vec::new();
            piece(&inputs[5], level, false, &mut ended).unwrap();
            ended.extend_from_slice(&EMPTY_FINAL_BLOCK);
            assert!(
                inflate(&ended, inputs[5].len()) == inputs[5],
                "level {level}"
            );
        }
    }

    #[test]
    fn gunzip_checks_the_trailer() {
        let text = inputs().swap_remove(5);
        let mut compressor = Compressor::new(CompressionLvl::new(6).unwrap());
        let mut gz = vec![0; compressor.gzip_compress_bound(text.len())];
        let len = compressor.gzip_compress(&text, &mut gz).unwrap();
        gz.truncate(len);
        assert!(gunzip(&gz).unwrap() == text);
        for at in [len - 8, len - 1] {
            let mut bad = gz.clone();
            bad[at] ^= 1; // the CRC-32, the length
            assert_eq!(gunzip(&bad).unwrap_err().kind(), io::ErrorKind::InvalidData);
        }
        for cut in [0, 3, len / 2, len - 1] {
            assert!(gunzip(&gz[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_final_piece_is_libdeflates_stream_as_is() {
        let text = inputs().swap_remove(5);
        let mut ours = Vec::new();
        piece(&text, 6, true, &mut ours).unwrap();
        let mut compressor = Compressor::new(CompressionLvl::new(6).unwrap());
        let mut theirs = vec![0; compressor.deflate_compress_bound(text.len())];
        let len = compressor.deflate_compress(&text, &mut theirs).unwrap();
        assert_eq!(ours, theirs[..len]);
        let (last, end) = walk(&ours).unwrap();
        assert!(last < end && end <= ours.len() * 8 && end + 8 > ours.len() * 8);
    }

    #[test]
    fn a_stream_that_cannot_be_walked_is_an_error() {
        let mut stream = Vec::new();
        piece(&inputs()[5], 6, true, &mut stream).unwrap();
        let error = walk(&stream[..stream.len() / 2]).unwrap_err();
        assert!(error.to_string().contains("cannot be read back"), "{error}");
        // Block type 3 does not exist.
        assert!(
            walk(&[0x07])
                .unwrap_err()
                .to_string()
                .contains("block type 3")
        );
    }
}
