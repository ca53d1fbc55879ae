//! What a stat says of a path (`Stat`) and how it is taken: relative to a directory held open
//! (`Base`), so that the kernel walks only the part of each path below it. The scan, the output
//! and the no-op fast path stat through it; path lookup is most of the time of a `dist` with
//! nothing changed (`perf record` of `cargo xtask dist` run twice on the medium profile).

use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What tells later whether a path may have changed (from `lstat`, or `stat` through links).
/// Times are nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub dev: u64,
    pub mode: u32,
}

impl Stat {
    pub fn from_metadata(metadata: &Metadata) -> Stat {
        Stat {
            size: metadata.size(),
            mtime_ns: nanoseconds(metadata.mtime(), metadata.mtime_nsec()),
            ctime_ns: nanoseconds(metadata.ctime(), metadata.ctime_nsec()),
            inode: metadata.ino(),
            dev: metadata.dev(),
            mode: metadata.mode(),
        }
    }
}

/// The file type in a `Stat`'s mode, and three of its values (POSIX's, Linux's).
pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;

/// A file time in nanoseconds since the epoch (saturating).
pub fn nanoseconds(seconds: i64, nanoseconds: i64) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds)
}

/// A directory whose paths are stat'ed relative to it (`statx` on its descriptor).
pub struct Base {
    path: PathBuf,
    dir: Option<std::fs::File>,
}

impl Base {
    pub fn open(path: &Path) -> Base {
        // Only a handle to look paths up from (`O_PATH`): no permission to read it is needed.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        let dir = std::os::unix::fs::OpenOptionsExt::custom_flags(
            std::fs::OpenOptions::new().read(true),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .open(path)
        .ok();
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        let dir = std::fs::File::open(path).ok();
        let path = path.to_path_buf();
        Base { path, dir }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory `dir` (relative) below this one, opened from it.
    pub fn below(&self, dir: &[u8]) -> Base {
        let path = self.path.join(OsStr::from_bytes(dir));
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if let Some(parent) = &self.dir {
            use std::os::fd::{AsRawFd, FromRawFd};
            let Ok(name) = std::ffi::CString::new(dir) else {
                return Base { path, dir: None };
            };
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
            // SAFETY: a valid descriptor and a NUL-terminated name; a descriptor returned is
            // ours alone, and `File` closes it.
            let fd = unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags) };
            let dir = (fd >= 0).then(|| unsafe { std::fs::File::from_raw_fd(fd) });
            return Base { path, dir };
        }
        Base::open(&path)
    }

    /// What `std::fs::metadata` (`follow`) or `symlink_metadata` says of `key`, relative to
    /// this directory or absolute.
    pub fn stat(&self, key: impl AsRef<[u8]>, follow: bool) -> Option<Stat> {
        self.statx(key.as_ref(), follow).map(|(stat, _)| stat)
    }

    /// `stat`, and the number of hard links.
    pub fn statx(&self, key: &[u8], follow: bool) -> Option<(Stat, u64)> {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if let (Some(dir), false) = (&self.dir, key.is_empty()) {
            use std::os::fd::AsRawFd;
            // The key and a NUL on the stack: no allocation for one of thousands of stats.
            let mut buffer = [0u8; 256];
            let heap;
            let key = match buffer.get_mut(..=key.len()) {
                Some(with_nul) => {
                    with_nul[..key.len()].copy_from_slice(key);
                    std::ffi::CStr::from_bytes_with_nul(with_nul).ok()?
                }
                _ => {
                    heap = std::ffi::CString::new(key).ok()?;
                    heap.as_c_str()
                }
            };
            let flags =
                libc::AT_STATX_SYNC_AS_STAT | if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
            // SAFETY: an all-zero `statx` is valid; the kernel fills it as for the standard
            // library (the system call: glibc's wrapper needs glibc 2.28 or newer to link).
            let mut x: libc::statx = unsafe { std::mem::zeroed() };
            let (fd, mask, buf) = (dir.as_raw_fd(), libc::STATX_BASIC_STATS, &raw mut x);
            let rc = unsafe { libc::syscall(libc::SYS_statx, fd, key.as_ptr(), flags, mask, buf) };
            let stat = Stat {
                size: x.stx_size,
                mtime_ns: nanoseconds(x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec.into()),
                ctime_ns: nanoseconds(x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec.into()),
                inode: x.stx_ino,
                dev: libc::makedev(x.stx_dev_major, x.stx_dev_minor),
                mode: x.stx_mode.into(),
            };
            return (rc == 0).then_some((stat, x.stx_nlink.into()));
        }
        let path = self.path.join(OsStr::from_bytes(key));
        let stat = if follow {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        };
        stat.ok().map(|m| (Stat::from_metadata(&m), m.nlink()))
    }
}

/// A base, and the directory below it of the latest key's first two components (a block's
/// `blox/<block>`, the output's `datablox/sw_packages`), which the keys below it are stat'ed
/// relative to: two components fewer for the kernel to look up for each. Sorted keys open each
/// such directory about once.
pub struct Anchored<'b> {
    base: &'b Base,
    dir: Vec<u8>,
    below: Option<Base>,
}

impl<'b> Anchored<'b> {
    pub fn new(base: &'b Base) -> Anchored<'b> {
        let (dir, below) = (Vec::new(), None);
        Anchored { base, dir, below }
    }

    /// The base to stat `key` from, and `key` relative to it.
    pub fn split<'k>(&mut self, key: &'k [u8]) -> (&Base, &'k [u8]) {
        let Some((dir, rest)) = two_components(key) else {
            return (self.base, key);
        };
        if self.below.is_none() || self.dir != dir {
            self.dir = dir.to_vec();
            self.below = Some(self.base.below(dir));
        }
        (self.below.as_ref().expect("just opened"), rest)
    }
}

/// A relative key's first two components and the rest, when there is a rest.
fn two_components(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = key.iter().position(|&b| b == b'/').filter(|&at| at > 0)?;
    let second = first + 1 + key[first + 1..].iter().position(|&b| b == b'/')?;
    Some((&key[..second], &key[second + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Base::stat` answers as `std::fs::metadata` and `symlink_metadata` do, for a file, a
    /// directory, a link (followed or not), a dangling link, nothing, and an absolute path.
    #[test]
    fn a_stat_below_a_base_is_the_standard_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d/e")).unwrap();
        std::fs::write(dir.path().join("d/e/f"), "bytes").unwrap();
        std::os::unix::fs::symlink("e/f", dir.path().join("d/link")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("d/dangling")).unwrap();
        let base = Base::open(dir.path());
        let absolute = dir.path().join("d/e/f");
        for key in [
            "d",
            "d/e",
            "d/e/f",
            "d/link",
            "d/dangling",
            "d/none",
            absolute.to_str().unwrap(),
        ] {
            let path = dir.path().join(key);
            let std = |m: std::io::Result<Metadata>| m.ok().map(|m| Stat::from_metadata(&m));
            assert_eq!(base.stat(key, true), std(std::fs::metadata(&path)), "{key}");
            assert_eq!(
                base.stat(key, false),
                std(std::fs::symlink_metadata(&path)),
                "{key}"
            );
        }
        assert!(base.stat("d/link", true) != base.stat("d/link", false));
        assert_eq!(base.stat("d/none", false), None);
    }

    #[test]
    fn a_key_below_two_directories_is_split_after_them() {
        fn split(key: &str) -> Option<(&[u8], &[u8])> {
            two_components(key.as_bytes())
        }
        assert_eq!(
            split("blox/b__1_0/x/y.py"),
            Some((&b"blox/b__1_0"[..], &b"x/y.py"[..]))
        );
        assert_eq!(
            split("blox/b__1_0/y.py"),
            Some((&b"blox/b__1_0"[..], &b"y.py"[..]))
        );
        for key in ["blox/b__1_0", "blox", ".gitignore", "/abs/olute/path"] {
            assert_eq!(split(key), None, "{key}");
        }
    }
}
