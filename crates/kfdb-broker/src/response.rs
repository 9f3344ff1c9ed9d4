//! A framed response as the pieces the connection writes (with vectored writes): the bytes kfdb
//! encoded, and — in a Fetch response — the record batches, spliced in as the cached or stored
//! `Bytes` they already are instead of being copied into the frame.
//!
//! kafka-protocol encodes a partition's `records` (one `Bytes` field) with a single `put_slice`.
//! [`Splices`] registers each partition's records before the response is encoded and hands back
//! the `Bytes` to put in that field: the records' only piece, or — for records in several pieces —
//! a stand-in of the same length (a distinct slice of one zeroed region that is never read from).
//! The encoder's buffer, [`SplicingBuf`], recognises those slices by address and length
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

/// The stand-ins' memory: one zeroed region made on first use and never written or read (the
/// encoder splices instead), so its pages stay untouched — address space, not resident memory.
/// Not a `static` array (an immutable one is stored in the executable), and not from kfdb's
/// global allocator (mimalloc may hand back a used segment and zero it, making it resident): the
/// system allocator's `calloc` maps a request this large freshly from the kernel, already zero,
/// and does not write it. (Only for an alignment of at most 16: a larger one makes Rust's system
/// allocator zero the region itself, touching every page.)
static STAND_IN: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();

fn stand_in() -> &'static [u8] {
    STAND_IN.get_or_init(|| {
        use std::alloc::{GlobalAlloc, Layout, System};
        let layout = Layout::from_size_align(STAND_IN_BYTES, 1).expect("a valid layout");
        // SAFETY: the layout has a non-zero size; the pointer is checked for null before use.
        let at = unsafe { System.alloc_zeroed(layout) };
        if at.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `at` points to `STAND_IN_BYTES` zeroed bytes that are never freed or written,
        // so a shared `'static` slice of them is valid.
        unsafe { std::slice::from_raw_parts(at, STAND_IN_BYTES) }
    })
}

/// A response frame (size prefix included) as its pieces, in order (kept the way fetched records
/// are: a `RecordParts`).
#[derive(Debug, Clone, Default)]
pub struct Response {
    pieces: RecordParts,
}

impl Response {
    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// True for an empty frame (never produced by the encoder).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Bytes] {
        self.pieces.parts()
    }

    fn push(&mut self, piece: Bytes) {
        self.pieces.push(piece);
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
    /// The entry the encoder should reach next (it encodes in registration order).
    next: usize,
    /// The shortest registered field (shorter writes are never records).
    shortest: usize,
    stand_in_used: usize,
    bytes: usize,
}

impl Splices {
    /// Register `records` and return what to put in the response's `records` field.
    pub fn register(&mut self, records: RecordParts) -> Bytes {
        let (field, pieces) = match records.parts() {
            [] => return Bytes::new(),
            [one] => (one.clone(), records.into_parts()),
            _ if records.len() <= STAND_IN_BYTES - self.stand_in_used => {
                let at = self.stand_in_used;
                self.stand_in_used += records.len();
                let field = Bytes::from_static(&stand_in()[at..at + records.len()]);
                (field, records.into_parts())
            }
            // Past the stand-ins' room (a response over 64 MiB): copied into one piece.
            _ => {
                let one = records.to_bytes();
                (one.clone(), vec![one])
            }
        };
        self.bytes += field.len();
        self.shortest = match self.entries.is_empty() {
            true => field.len(),
            false => self.shortest.min(field.len()),
        };
        self.entries.push(Splice {
            address: field.as_ptr() as usize,
            len: field.len(),
            pieces,
            spliced: false,
        });
        field
    }

    /// Record bytes registered (not in the encoder's own buffer).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The pieces registered for the field `src`, if it is one (each is handed out once).
    fn take(&mut self, src: &[u8]) -> Option<Vec<Bytes>> {
        if self.entries.is_empty() || src.len() < self.shortest {
            return None;
        }
        let address = src.as_ptr() as usize;
        let is = |e: &Splice| !e.spliced && e.address == address && e.len == src.len();
        // In registration order: the next entry; otherwise (never seen so far) a search.
        let index = match self.entries.get(self.next) {
            Some(e) if is(e) => self.next,
            _ => self.entries.iter().position(is)?,
        };
        self.next = index + 1;
        let e = &mut self.entries[index];
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
    /// A frame larger than a size prefix can say.
    TooLarge,
    /// A stand-in the encoder would have copied, or a write back into spliced bytes.
    Misplaced,
}

impl std::fmt::Display for SpliceFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpliceFault::NotSpliced => write!(f, "registered records were not encoded"),
            SpliceFault::TooLarge => write!(f, "response larger than 2 GiB"),
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
    rest: RecordParts,
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
            rest: RecordParts::new(),
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
            i32::try_from(self.offset().saturating_sub(4)).map_err(|_| SpliceFault::TooLarge)?;
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
        for p in rest.into_parts() {
            out.push(p);
        }
        Ok(out)
    }

    fn done_len(&self) -> usize {
        self.head.as_ref().map_or(0, |h| h.len()) + self.rest.len()
    }
}

// SAFETY: `remaining_mut`, `advance_mut` and `chunk_mut` forward to `current`, a `BytesMut`,
// whose `BufMut` implementation upholds the trait's contract. `put_slice` (a safe method) either
// appends to `current` or moves its initialised bytes into the output and appends owned pieces;
// it never exposes uninitialised memory.
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
        if let Some(pieces) = self.splices.take(src) {
            let before = self.current.split();
            if self.head.is_none() {
                self.head = Some(before);
            } else {
                self.rest.push(before.freeze());
            }
            for p in pieces {
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

    /// Records held as these pieces.
    fn pieces(held: &[&'static [u8]]) -> RecordParts {
        let mut out = RecordParts::new();
        for p in held {
            out.push(Bytes::from_static(p));
        }
        out
    }

    #[test]
    fn registered_records_are_spliced_not_copied() {
        let one = pieces(&[b"single-piece"]);
        let many = pieces(&[b"abc", b"defg", b"hij"]);
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
            &r.pieces.to_bytes()[..],
            b"\0\0\0\x1cnamesingle-piece\x01abcdefghij\x02"
        );
        assert_eq!(r.len(), 32);
        assert_eq!(r.parts()[1].as_ptr(), one.parts()[0].as_ptr());
        assert_eq!(r.parts()[3].as_ptr(), many.parts()[0].as_ptr());
    }

    #[test]
    fn fields_are_matched_by_address_in_any_order() {
        let a = pieces(&[b"aa", b"aa"]);
        let b = pieces(&[b"b", b"bbb"]);
        let c = pieces(&[b"cccc"]);
        let mut splices = Splices::default();
        let fields: Vec<Bytes> = [a, b, c].into_iter().map(|r| splices.register(r)).collect();
        let mut buf = SplicingBuf::new(splices, 16);
        buf.put_i32(0);
        for f in fields.iter().rev() {
            buf.put_slice(f);
        }
        assert_eq!(
            &buf.finish_frame().unwrap().pieces.to_bytes()[..],
            b"\0\0\0\x0cccccbbbbaaaa"
        );
    }

    #[test]
    fn records_the_encoder_skipped_or_copied_refuse_the_response() {
        let mut splices = Splices::default();
        let _ = splices.register(pieces(&[b"ab", b"cdef"]));
        let mut buf = SplicingBuf::new(splices, 16);
        buf.put_i32(0);
        buf.put_slice(b"other");
        assert_eq!(buf.finish_frame().unwrap_err(), SpliceFault::NotSpliced);

        let mut splices = Splices::default();
        let stand_in = splices.register(pieces(&[b"ab", b"cdef"]));
        let mut buf = SplicingBuf::new(splices, 16);
        buf.put_i32(0);
        buf.put_slice(&stand_in);
        buf.put_slice(&stand_in); // a second time: nothing left to splice for it
        assert_eq!(buf.finish_frame().unwrap_err(), SpliceFault::Misplaced);
    }

    #[test]
    fn gaps_work_inside_the_encoders_own_bytes() {
        let mut splices = Splices::default();
        let field = splices.register(pieces(&[b"x", b"yz"]));
        let mut buf = SplicingBuf::new(splices, 16);
        buf.put_i32(0);
        buf.put_slice(&field);
        let gap = buf.put_gap(4);
        buf.gap_buf(gap).copy_from_slice(b"gap!");
        assert_eq!(
            &buf.finish_frame().unwrap().pieces.to_bytes()[..],
            b"\0\0\0\x07xyzgap!"
        );

        let mut splices = Splices::default();
        let field = splices.register(pieces(&[b"x", b"yz"]));
        let mut buf = SplicingBuf::new(splices, 16);
        buf.put_i32(9);
        buf.put_slice(&field);
        let _ = buf.range(0..1); // reaches back before the spliced records
        assert_eq!(buf.finish_frame().unwrap_err(), SpliceFault::Misplaced);
    }
}
