//! Fetched record batches as the pieces they are held in — the hot-segment cache's batches, the
//! store's chunk values — so a fetch of many batches is never copied into one buffer on its way to
//! the client (the broker writes the pieces with vectored writes).
//!
//! A reader that needs the batches contiguous (compaction, transaction markers, the key index)
//! asks for [`RecordParts::to_bytes`], which copies only when there is more than one piece.

use bytes::{Bytes, BytesMut};

/// Record batches in order, as a list of non-empty byte pieces (batch boundaries need not fall
/// on piece boundaries).
#[derive(Debug, Clone, Default)]
pub struct RecordParts {
    parts: Vec<Bytes>,
    len: usize,
}

impl RecordParts {
    /// No records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `piece` (an empty one is dropped).
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.parts.push(piece);
        }
    }

    /// Append `other`'s pieces (shared, not copied).
    pub fn extend(&mut self, other: &RecordParts) {
        for p in &other.parts {
            self.push(p.clone());
        }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The pieces, in order, taken out.
    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    /// The bytes as one buffer: the piece itself when there is one, else a copy.
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = BytesMut::with_capacity(self.len);
                for p in many {
                    out.extend_from_slice(p);
                }
                out.freeze()
            }
        }
    }

    /// The first `n` bytes (all of them when `n` is larger), without copying.
    pub fn prefix(&self, n: usize) -> RecordParts {
        if n >= self.len {
            return self.clone();
        }
        let mut out = RecordParts::new();
        for p in &self.parts {
            let room = n - out.len;
            if room == 0 {
                break;
            }
            out.push(p.slice(..p.len().min(room)));
        }
        out
    }

    /// A cursor at the first byte.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            parts: &self.parts,
            part: 0,
            within: 0,
            position: 0,
        }
    }
}

impl From<Bytes> for RecordParts {
    fn from(b: Bytes) -> Self {
        let mut out = RecordParts::new();
        out.push(b);
        out
    }
}

/// Equal when the bytes are, however they are split.
impl PartialEq for RecordParts {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .parts
                .iter()
                .flat_map(|p| p.iter())
                .eq(other.parts.iter().flat_map(|p| p.iter()))
    }
}

impl Eq for RecordParts {}

/// A read position in [`RecordParts`] that moves forward only (walking batch headers costs one
/// step per piece passed, not a search from the start).
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    parts: &'a [Bytes],
    part: usize,
    within: usize,
    position: usize,
}

impl Cursor<'_> {
    /// Bytes before the cursor.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Copy the next `out.len()` bytes into `out` without moving; false when fewer remain.
    pub fn peek(&self, out: &mut [u8]) -> bool {
        let (mut part, mut within, mut filled) = (self.part, self.within, 0);
        while filled < out.len() {
            let Some(p) = self.parts.get(part) else {
                return false;
            };
            let n = (p.len() - within).min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&p[within..within + n]);
            filled += n;
            within += n;
            if within == p.len() {
                part += 1;
                within = 0;
            }
        }
        true
    }

    /// Move forward `n` bytes; false (and at the end) when fewer remain.
    pub fn skip(&mut self, mut n: usize) -> bool {
        while n > 0 {
            let Some(p) = self.parts.get(self.part) else {
                return false;
            };
            let step = (p.len() - self.within).min(n);
            self.within += step;
            self.position += step;
            n -= step;
            if self.within == p.len() {
                self.part += 1;
                self.within = 0;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(bytes: &[u8], at: &[usize]) -> RecordParts {
        let all = Bytes::copy_from_slice(bytes);
        let mut out = RecordParts::new();
        let mut from = 0;
        for &to in at.iter().chain(std::iter::once(&bytes.len())) {
            out.push(all.slice(from..to));
            from = to;
        }
        out
    }

    #[test]
    fn equal_by_content_and_copied_only_when_split() {
        let data: Vec<u8> = (0..100u8).collect();
        let a = split(&data, &[10, 50]);
        let b = split(&data, &[3]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 100);
        assert_eq!(a.parts().len(), 3);
        assert_eq!(&a.to_bytes()[..], &data[..]);
        let one = RecordParts::from(Bytes::copy_from_slice(&data));
        assert_eq!(one.to_bytes().as_ptr(), one.parts()[0].as_ptr(), "no copy");
        assert_ne!(a, split(&data[..99], &[]));
        assert!(RecordParts::from(Bytes::new()).parts().is_empty());
    }

    #[test]
    fn prefix_cuts_across_pieces_without_copying() {
        let data: Vec<u8> = (0..100u8).collect();
        let a = split(&data, &[10, 50]);
        for n in [0, 5, 10, 11, 50, 99, 100, 1000] {
            let p = a.prefix(n);
            assert_eq!(&p.to_bytes()[..], &data[..n.min(100)], "{n}");
        }
        assert_eq!(a.prefix(30).parts()[1].as_ptr(), a.parts()[1].as_ptr());
    }

    #[test]
    fn cursor_peeks_and_skips_across_pieces() {
        let data: Vec<u8> = (0..100u8).collect();
        let a = split(&data, &[1, 2, 40]);
        let mut c = a.cursor();
        let mut four = [0u8; 4];
        assert!(c.peek(&mut four));
        assert_eq!(four, [0, 1, 2, 3]);
        assert!(c.skip(38));
        assert!(c.peek(&mut four));
        assert_eq!(four, [38, 39, 40, 41]);
        assert_eq!(c.position(), 38);
        assert!(c.skip(58));
        assert!(c.peek(&mut four));
        assert_eq!(four, [96, 97, 98, 99]);
        assert!(!c.peek(&mut [0u8; 5]));
        assert!(!c.skip(5));
        assert_eq!(c.position(), 100);
    }
}
