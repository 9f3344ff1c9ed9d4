//! A framed response as the pieces the connection writes (with vectored writes): the bytes kfdb
//! encoded, and — in a Fetch response — the record batches, spliced in as the cached or stored
//! `Bytes` they already are instead of being copied into the frame.
//!
//! kafka-protocol encodes a partition's `records` (one `Bytes` field) with a single `put_slice`.
//! [`Splices`] registers each partition's records before the response is encoded and hands back
//! the `Bytes` to put in that field: the records' only piece, or — for records in several pieces —
//! a stand-in of the same length (a distinct slice of a zero-filled static that is never read
//! from). The encoder's buffer, [`SplicingBuf`], recognises those slices by address and length
//! and keeps the registered pieces in their place. Every registration must be spliced exactly
//! once and no stand-in may be copied, or the response is refused as an encoding fault (never
//! sent with stand-in bytes in it).

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use kfdb_log::parts::RecordParts;

/// Bytes of stand-ins one response can use; records in several pieces beyond that are copied
/// into one buffer instead.
const STAND_IN_BYTES: usize = 64 << 20;

/// The stand-ins' memory: one zeroed allocation made on first use and never written or read (the
/// encoder splices instead), so its pages stay untouched — address space, not resident memory.
/// (Not a `static` array: an immutable one would be stored in the executable.)
static STAND_IN: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();

fn stand_in() -> &'static [u8] {
    STAND_IN.get_or_init(|| Box::leak(vec![0u8; STAND_IN_BYTES].into_boxed_slice()))
}

/// A response frame (size prefix included) as its pieces, in order.
#[derive(Debug, Clone, Default)]
pub struct Response {
    parts: Vec<Bytes>,
    len: usize,
}

impl Response {
    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty frame (never produced by the encoder).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The frame as one buffer (tests, tools).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for p in &self.parts {
            out.extend_from_slice(p);
        }
        out.freeze()
    }

    fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.parts.push(piece);
        }
    }
}

impl From<BytesMut> for Response {
    fn from(b: BytesMut) -> Self {
        let mut out = Response::default();
        out.push(b.freeze());
        out
    }
}

struct Splice {
    address: usize,
    len: usize,
    pieces: Vec<Bytes>,
    spliced: bool,
}

/// The record batches one response carries, registered before it is encoded.
#[derive(Default)]
pub struct Splices {
    entries: Vec<Splice>,
    stand_in_used: usize,
    bytes: usize,
}

impl Splices {
    /// Register `records` and return what to put in the response's `records` field.
    pub fn register(&mut self, records: RecordParts) -> Bytes {
        let field = match records.parts() {
            [] => return Bytes::new(),
            [one] => one.clone(),
            _ if records.len() <= STAND_IN_BYTES - self.stand_in_used => {
                let at = self.stand_in_used;
                self.stand_in_used += records.len();
                Bytes::from_static(&stand_in()[at..at + records.len()])
            }
            // Past the stand-in's room: one copy, spliced like a single piece.
            _ => records.to_bytes(),
        };
        self.bytes += field.len();
        self.entries.push(Splice {
            address: field.as_ptr() as usize,
            len: field.len(),
            pieces: records.parts().to_vec(),
            spliced: false,
        });
        field
    }

    /// Record bytes registered (not in the encoder's own buffer).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn take(&mut self, src: &[u8]) -> Option<Vec<Bytes>> {
        let address = src.as_ptr() as usize;
        let e = self
            .entries
            .iter_mut()
            .find(|e| !e.spliced && e.address == address && e.len == src.len())?;
        e.spliced = true;
        Some(std::mem::take(&mut e.pieces))
    }
}

fn is_stand_in(src: &[u8]) -> bool {
    let Some(region) = STAND_IN.get() else {
        return false;
    };
    let (start, at) = (region.as_ptr() as usize, src.as_ptr() as usize);
    !src.is_empty() && at >= start && at < start + region.len()
}

/// What went wrong while splicing (the response is not sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceFault {
    /// Registered records the encoder never wrote.
    NotSpliced,
    /// A stand-in the encoder would have copied, or a write back into spliced bytes.
    Misplaced,
}

impl std::fmt::Display for SpliceFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpliceFault::NotSpliced => write!(f, "registered records were not encoded"),
            SpliceFault::Misplaced => write!(f, "records spliced out of place"),
        }
    }
}

/// The encoder's buffer for one frame: kfdb's own bytes, with registered records kept as their
/// pieces. The frame's first bytes stay writable until [`SplicingBuf::finish_frame`] writes the
/// size prefix into them.
pub struct SplicingBuf {
    /// The frame's bytes up to the first splice (`None` before it).
    head: Option<BytesMut>,
    /// Everything after `head` up to `current`.
    rest: Vec<Bytes>,
    rest_len: usize,
    current: BytesMut,
    splices: Splices,
    fault: Option<SpliceFault>,
    /// Where a `range` over spliced bytes points (the response is refused then).
    scratch: Vec<u8>,
}

impl SplicingBuf {
    /// A buffer with room for `capacity` bytes of kfdb's own encoding.
    pub fn new(splices: Splices, capacity: usize) -> Self {
        Self {
            head: None,
            rest: Vec::new(),
            rest_len: 0,
            current: BytesMut::with_capacity(capacity),
            splices,
            fault: None,
            scratch: Vec::new(),
        }
    }

    /// The finished frame, its first 4 bytes set to the size of what follows them, or why it
    /// cannot be sent.
    pub fn finish_frame(mut self) -> Result<Response, SpliceFault> {
        if let Some(f) = self.fault {
            return Err(f);
        }
        if self.splices.entries.iter().any(|e| !e.spliced) {
            return Err(SpliceFault::NotSpliced);
        }
        let size =
            i32::try_from(self.offset().saturating_sub(4)).map_err(|_| SpliceFault::Misplaced)?;
        let tail = self.current.split();
        let mut rest = self.rest;
        let mut head = match self.head.take() {
            Some(head) => {
                rest.push(tail.freeze());
                head
            }
            None => tail,
        };
        // (A frame whose records were spliced before its size was written has no room here.)
        let Some(prefix) = head.get_mut(0..4) else {
            return Err(SpliceFault::Misplaced);
        };
        prefix.copy_from_slice(&size.to_be_bytes());
        let mut out = Response::default();
        out.push(head.freeze());
        for p in rest {
            out.push(p);
        }
        Ok(out)
    }

    fn done_len(&self) -> usize {
        self.head.as_ref().map_or(0, |h| h.len()) + self.rest_len
    }
}

// SAFETY: every method forwards to `current`, a `BytesMut`, whose `BufMut` implementation upholds
// the trait's contract; `put_slice` either forwards too or moves `current`'s initialised bytes
// into the output and appends owned pieces, never exposing uninitialised memory.
unsafe impl BufMut for SplicingBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `chunk_mut`, which is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if !src.is_empty()
            && let Some(pieces) = self.splices.take(src)
        {
            let before = self.current.split();
            if self.head.is_none() {
                self.head = Some(before);
            } else {
                self.rest_len += before.len();
                self.rest.push(before.freeze());
            }
            for p in pieces {
                self.rest_len += p.len();
                self.rest.push(p);
            }
            return;
        }
        if is_stand_in(src) {
            self.fault.get_or_insert(SpliceFault::Misplaced);
            return;
        }
        self.current.extend_from_slice(src);
    }
}

impl ByteBufMut for SplicingBuf {
    fn offset(&self) -> usize {
        self.done_len() + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.done_len()) {
            Some(within) => self.current.resize(within, 0),
            None => {
                self.fault.get_or_insert(SpliceFault::Misplaced);
            }
        }
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let done = self.done_len();
        if r.start >= done && r.end - done <= self.current.len() {
            return &mut self.current[r.start - done..r.end - done];
        }
        self.fault.get_or_insert(SpliceFault::Misplaced);
        self.scratch.resize(r.len(), 0);
        &mut self.scratch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(data: &[u8], cuts: &[usize]) -> RecordParts {
        let all = Bytes::copy_from_slice(data);
        let mut out = RecordParts::new();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&data.len())) {
            out.push(all.slice(from..to));
            from = to;
        }
        out
    }

    #[test]
    fn registered_records_are_spliced_not_copied() {
        let one = pieces(b"single-piece", &[]);
        let many = pieces(b"abcdefghij", &[3, 7]);
        let mut splices = Splices::default();
        let a = splices.register(one.clone());
        let b = splices.register(many.clone());
        assert_eq!(splices.bytes(), 22);
        let mut buf = SplicingBuf::new(splices, 64);
        buf.put_i32(0);
        buf.put_slice(b"name");
        buf.put_slice(&a);
        buf.put_u8(1);
        buf.put_slice(&b);
        buf.put_u8(2);
        let r = buf.finish_frame().unwrap();
        assert_eq!(
            &r.to_bytes()[..],
            b"\0\0\0\x1cnamesingle-piece\x01abcdefghij\x02"
        );
        assert_eq!(r.len(), 32);
        assert_eq!(r.parts()[1].as_ptr(), one.parts()[0].as_ptr());
        assert_eq!(r.parts()[3].as_ptr(), many.parts()[0].as_ptr());
    }

    #[test]
    fn records_the_encoder_skipped_or_copied_refuse_the_response() {
        let mut splices = Splices::default();
        let _ = splices.register(pieces(b"abcdef", &[2]));
        let mut buf = SplicingBuf::new(splices, 16);
        buf.put_i32(0);
        buf.put_slice(b"other");
        assert_eq!(buf.finish_frame().unwrap_err(), SpliceFault::NotSpliced);

        let mut splices = Splices::default();
        let stand_in = splices.register(pieces(b"abcdef", &[2]));
        let mut buf = SplicingBuf::new(splices, 16);
        buf.put_i32(0);
        buf.put_slice(&stand_in);
        buf.put_slice(&stand_in); // a second time: nothing left to splice for it
        assert_eq!(buf.finish_frame().unwrap_err(), SpliceFault::Misplaced);
    }

    #[test]
    fn gaps_work_inside_the_encoders_own_bytes() {
        let mut splices = Splices::default();
        let field = splices.register(pieces(b"xyz", &[1]));
        let mut buf = SplicingBuf::new(splices, 16);
        buf.put_i32(0);
        buf.put_slice(&field);
        let gap = buf.put_gap(4);
        buf.gap_buf(gap).copy_from_slice(b"gap!");
        assert_eq!(
            &buf.finish_frame().unwrap().to_bytes()[..],
            b"\0\0\0\x07xyzgap!"
        );

        let mut splices = Splices::default();
        let field = splices.register(pieces(b"xyz", &[1]));
        let mut buf = SplicingBuf::new(splices, 16);
        buf.put_i32(9);
        buf.put_slice(&field);
        let _ = buf.range(0..1); // reaches back before the spliced records
        assert_eq!(buf.finish_frame().unwrap_err(), SpliceFault::Misplaced);
    }
}
