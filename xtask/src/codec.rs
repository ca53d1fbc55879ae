//! The binary encoding that the build cache (`cache.rs`) and the no-op fast path's fingerprint
//! (`fresh.rs`) share: integers little-endian, a byte string as its `u32` length then its bytes,
//! an optional byte string as a `u8` 0 or 1 then the string. Writers put bytes into a `Sink` (a
//! buffer, a file, a hasher); `Reader` takes them back and answers `None` to anything short or
//! malformed: it never panics, and a count is never larger than the bytes left could hold.

/// Where an encoder writes.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A length or a count as a `u32`.
pub(crate) fn put_u32(out: &mut impl Sink, value: usize) {
    let value = u32::try_from(value).expect("fewer than 2^32 records and bytes");
    out.put(&value.to_le_bytes());
}

pub(crate) fn put_bytes(out: &mut impl Sink, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.put(bytes);
}

pub(crate) fn put_optional(out: &mut impl Sink, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            out.put(&[1]);
            put_bytes(out, bytes);
        }
        None => out.put(&[0]),
    }
}

/// A key after the one before it: the length of the prefix they share (u16), then the rest.
/// Sorted absolute paths share most of their bytes, so a file of them is a fraction of its size.
pub(crate) fn put_key(out: &mut impl Sink, previous: &[u8], key: &[u8]) {
    let shared = previous
        .iter()
        .zip(key)
        .take(usize::from(u16::MAX))
        .take_while(|(a, b)| a == b)
        .count();
    out.put(&(shared as u16).to_le_bytes());
    put_bytes(out, &key[shared..]);
}

/// Reads what the `put_*` functions wrote, from the front of `rest`.
pub(crate) struct Reader<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    /// Nanoseconds since the epoch, as an `i64`.
    pub(crate) fn time(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub(crate) fn text(&mut self) -> Option<String> {
        Some(std::str::from_utf8(self.bytes()?).ok()?.to_string())
    }

    pub(crate) fn optional(&mut self) -> Option<Option<&'a [u8]>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }

    /// A count of records, each at least `min_size` bytes: never more than the rest can hold.
    pub(crate) fn count(&mut self, min_size: usize) -> Option<usize> {
        let count = self.u32()? as usize;
        (count <= self.rest.len() / min_size).then_some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_put_is_read_back_and_anything_short_is_none() {
        let mut out = Vec::new();
        put_u32(&mut out, 7);
        put_bytes(&mut out, b"name");
        put_optional(&mut out, Some(b"help"));
        put_optional(&mut out, None);
        out.put(&(-5i64).to_le_bytes());
        let mut r = Reader { rest: &out };
        assert_eq!(r.u32(), Some(7));
        assert_eq!(r.text().as_deref(), Some("name"));
        assert_eq!(r.optional(), Some(Some(&b"help"[..])));
        assert_eq!(r.optional(), Some(None));
        assert_eq!(r.time(), Some(-5));
        assert!(r.rest.is_empty());
        assert_eq!(r.u8(), None);
        for cut in 0..out.len() - 8 {
            let mut r = Reader { rest: &out[..cut] };
            let read = (|| {
                r.u32()?;
                r.bytes()?;
                r.optional()?;
                r.optional()
            })();
            assert!(read.is_none(), "cut at {cut}");
        }
        // A count that the bytes left cannot hold, and an optional marker other than 0 or 1.
        assert_eq!(
            Reader {
                rest: &[3, 0, 0, 0, 1, 2]
            }
            .count(1),
            None
        );
        assert_eq!(
            Reader {
                rest: &[2, 0, 0, 0, 1, 2]
            }
            .count(1),
            Some(2)
        );
        assert_eq!(Reader { rest: &[2] }.optional(), None);
    }
}
