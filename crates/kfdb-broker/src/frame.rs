//! Kafka framing: a 4-byte big-endian size, then that many bytes. A partial frame is not an error
//! (`Ok(None)` until it is complete); a size above `socket.request.max.bytes` or below zero is.

use bytes::{Buf, Bytes, BytesMut};

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The size prefix is negative or above the limit.
    BadSize(i64, usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadSize(n, max) => write!(f, "frame size {n} outside 0..={max}"),
        }
    }
}

/// Take one complete frame body off the front of `buf`, if there is one.
pub(crate) fn parse(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 || size as usize > max {
        return Err(FrameError::BadSize(i64::from(size), max));
    }
    let size = size as usize;
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_then_complete() {
        let mut b = BytesMut::from(&[0u8, 0, 0, 3, b'a'][..]);
        assert_eq!(parse(&mut b, 10), Ok(None));
        b.extend_from_slice(b"bc\x00\x00");
        assert_eq!(parse(&mut b, 10).unwrap().unwrap().as_ref(), b"abc");
        assert_eq!(parse(&mut b, 10), Ok(None));
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn rejects_oversize_and_negative() {
        let mut b = BytesMut::from(&100i32.to_be_bytes()[..]);
        assert_eq!(parse(&mut b, 10), Err(FrameError::BadSize(100, 10)));
        let mut b = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert!(parse(&mut b, 10).is_err());
    }
}
