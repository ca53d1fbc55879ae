//! Content hashes: the SHA-256 of one file and the source digest of a whole block tree.
//!
//! The source digest is SHA-256 over this byte string (all integers are unsigned 64-bit
//! big-endian, written `u64`):
//!
//! ```text
//! b"datablox-source-digest-v1\n"
//! u64 number of entries
//! for each entry of the tree, in the tree's (byte-wise sorted) order:
//!     u64 length of the member path, then the member path bytes
//!     one type byte: b'd' directory, b'f' file, b'x' executable file, b'l' symlink
//!     file or executable file: the 32 bytes of the SHA-256 of its content
//!     symlink: u64 length of the target, then the target bytes
//!     directory: nothing more
//! ```
//!
//! The member path is the full path in the archive, with the top directory
//! (`word_count__1_0/sub/x.py`), so the digest changes exactly when the archive's content
//! changes, including a renamed block directory. Every variable field is length-prefixed and
//! the entry count comes first, so no two trees share an encoding. Mtimes, owners, modes other
//! than the executable bit, and the archive format (tar headers, gzip level) are not part of it:
//! the digest describes the source, and the archive settings are recorded separately.
//!
//! Content hashes come in as a slice rather than being read here, so that a stat cache can supply
//! them without reading the files again.

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::error::{IoContext, Result};
use crate::tree::{EntryKind, Tree};

pub type Sha256 = [u8; 32];

/// The size of the read buffer of `hash_file`; memory use does not grow with the file.
const READ_BUFFER: usize = 256 * 1024;

const DIGEST_MAGIC: &[u8] = b"datablox-source-digest-v1\n";

/// Lowercase hexadecimal, as `sha256sum` prints it.
pub fn to_hex(hash: &Sha256) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for byte in hash {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

/// The source digest of `tree` (encoding in the module doc). `file_hashes[i]` is the content
/// hash of `tree.entries[i]` and must be `Some` for every file entry.
///
/// # Panics
///
/// If `file_hashes` is not as long as the entry list or lacks a file's hash: that is a bug in the
/// caller, not bad input.
pub fn tree_digest(tree: &Tree, file_hashes: &[Option<Sha256>]) -> Sha256 {
    assert_eq!(
        tree.entries.len(),
        file_hashes.len(),
        "one content hash slot per tree entry"
    );
    let mut hasher = Sha256Hasher::new();
    hasher.update(DIGEST_MAGIC);
    hasher.update((tree.entries.len() as u64).to_be_bytes());
    for (entry, file_hash) in tree.entries.iter().zip(file_hashes) {
        hasher.update((entry.path.len() as u64).to_be_bytes());
        hasher.update(&entry.path);
        match &entry.kind {
            EntryKind::Dir => hasher.update(b"d"),
            EntryKind::File { executable, .. } => {
                hasher.update(if *executable { b"x" } else { b"f" });
                let content_hash = file_hash.as_ref().unwrap_or_else(|| {
                    panic!(
                        "no content hash for file `{}`",
                        String::from_utf8_lossy(&entry.path)
                    )
                });
                hasher.update(content_hash);
            }
            EntryKind::Symlink { target } => {
                hasher.update(b"l");
                hasher.update((target.len() as u64).to_be_bytes());
                hasher.update(target);
            }
        }
    }
    hasher.finalize().into()
}

/// The SHA-256 of a file's content, read in a stream with a bounded buffer: one per thread,
/// reused (a fresh one per file above malloc's mmap threshold, `main.rs`, would cost an `mmap`
/// and an `munmap` per file, which threads serialize on).
pub fn hash_file(path: &Path) -> Result<Sha256> {
    thread_local! {
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let mut file = File::open(path).with_path("open", path)?;
    BUFFER.with_borrow_mut(|buffer| {
        buffer.resize(READ_BUFFER, 0);
        let mut hasher = Sha256Hasher::new();
        loop {
            let read = match file.read(buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error).with_path("read", path),
            };
            hasher.update(&buffer[..read]);
        }
        Ok(hasher.finalize().into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Entry, Stat};
    use std::path::PathBuf;

    fn entry(path: &[u8], kind: EntryKind) -> Entry {
        let stat = Stat {
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            dev: 0,
            mode: 0,
        };
        Entry {
            path: path.to_vec(),
            kind,
            stat,
        }
    }

    fn tree(entries: Vec<Entry>) -> Tree {
        Tree {
            top: "t".into(),
            root: PathBuf::new(),
            entries,
        }
    }

    #[test]
    fn hex_is_lowercase_sha256sum_style() {
        let empty = hash_file(Path::new("/dev/null")).unwrap();
        assert_eq!(
            to_hex(&empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hash_file_streams_files_larger_than_its_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let content: Vec<u8> = (0..READ_BUFFER * 2 + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        assert_eq!(
            hash_file(&path).unwrap(),
            <[u8; 32]>::from(Sha256Hasher::digest(&content))
        );
        let error = hash_file(&dir.path().join("missing")).unwrap_err();
        assert!(error.diagnostics[0].message.contains("missing`"));
    }

    #[test]
    fn digest_follows_the_documented_encoding() {
        let content_hash = [7u8; 32];
        let digest = tree_digest(
            &tree(vec![
                entry(b"t", EntryKind::Dir),
                entry(
                    b"t/f",
                    EntryKind::File {
                        executable: true,
                        size: 3,
                    },
                ),
                entry(
                    b"t/l",
                    EntryKind::Symlink {
                        target: b"f".to_vec(),
                    },
                ),
            ]),
            &[None, Some(content_hash), None],
        );
        let mut expected = b"datablox-source-digest-v1\n".to_vec();
        expected.extend(3u64.to_be_bytes());
        expected.extend(1u64.to_be_bytes());
        expected.extend(b"td");
        expected.extend(3u64.to_be_bytes());
        expected.extend(b"t/fx");
        expected.extend(content_hash);
        expected.extend(3u64.to_be_bytes());
        expected.extend(b"t/ll");
        expected.extend(1u64.to_be_bytes());
        expected.extend(b"f");
        assert_eq!(digest, <[u8; 32]>::from(Sha256Hasher::digest(&expected)));
    }

    #[test]
    fn digest_sees_names_types_modes_targets_and_content_only() {
        let base = |executable, target: &[u8], hash: u8| {
            tree_digest(
                &tree(vec![
                    entry(
                        b"t/a",
                        EntryKind::File {
                            executable,
                            size: 1,
                        },
                    ),
                    entry(
                        b"t/b",
                        EntryKind::Symlink {
                            target: target.to_vec(),
                        },
                    ),
                ]),
                &[Some([hash; 32]), None],
            )
        };
        let reference = base(false, b"a", 1);
        assert_ne!(reference, base(true, b"a", 1));
        assert_ne!(reference, base(false, b"aa", 1));
        assert_ne!(reference, base(false, b"a", 2));
        // Stat fields (sizes, mtimes, inodes) do not enter the digest.
        let mut moved = tree(vec![
            entry(
                b"t/a",
                EntryKind::File {
                    executable: false,
                    size: 1,
                },
            ),
            entry(
                b"t/b",
                EntryKind::Symlink {
                    target: b"a".to_vec(),
                },
            ),
        ]);
        moved.entries[0].stat.mtime_ns = 99;
        assert_eq!(reference, tree_digest(&moved, &[Some([1; 32]), None]));
        // Length prefixes keep `t/ab` + `c` apart from `t/a` + `bc`.
        let split = |first: &[u8], second: &[u8]| {
            tree_digest(
                &tree(vec![
                    entry(first, EntryKind::Dir),
                    entry(second, EntryKind::Dir),
                ]),
                &[None, None],
            )
        };
        assert_ne!(split(b"t/ab", b"c"), split(b"t/a", b"bc"));
    }
}
