//! The records inside a stored v2 batch, as raw bytes: decompressed (bounded, `decompress.rs`),
//! split at record boundaries, each read for what compaction needs (offset delta, key, whether
//! its value is null) — and a batch rebuilt from a subset of them for compaction.
//!
//! A rebuilt batch keeps the original's header (base offset, last offset delta, timestamps,
//! producer id, epoch and base sequence, attributes: compression, timestamp type, transactional
//! flag) and each kept record's bytes exactly (so its offset and timestamp deltas, headers —
//! duplicates included — stay as produced); only the record count, the length and the CRC
//! change, and the records are compressed again with the batch's codec. Offsets keep their gaps,
//! as in Kafka's compacted logs.

use crate::batch::{Batch, HEADER_LEN};
use crate::decompress::{self, DecompressError};
use crate::error::{LogError, LogResult};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, None as Uncompressed, Snappy, Zstd};

/// One record of a batch, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRecord {
    /// The record's bytes, its length prefix included.
    pub bytes: Bytes,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key (`None`: no key).
    pub key: Option<Bytes>,
    /// A null value.
    pub tombstone: bool,
}

fn corrupt(why: impl std::fmt::Display) -> LogError {
    LogError::corrupt("stored record batch", why)
}

/// A zigzag varint (Kafka's VarInt/VarLong) at the front of `b`, which it consumes.
fn varint(b: &mut Bytes) -> LogResult<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        if !b.has_remaining() {
            return Err(corrupt("a varint runs past the records"));
        }
        let byte = b.get_u8();
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(corrupt("a varint longer than 10 bytes"))
}

/// `len` bytes at the front of `b` (`None` for -1), consumed.
fn nullable(b: &mut Bytes) -> LogResult<Option<Bytes>> {
    let len = varint(b)?;
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(corrupt)?;
    if b.remaining() < len {
        return Err(corrupt("a field runs past its record"));
    }
    Ok(Some(b.split_to(len)))
}

fn compression(b: &Batch) -> i16 {
    b.attributes & 0x07
}

/// The records section of `b`, decompressed (at most [`decompress::cap_for`] its size).
fn decompressed(b: &Batch) -> LogResult<Bytes> {
    let section = b.bytes.slice(HEADER_LEN..);
    let codec = compression(b);
    if codec == 0 {
        return Ok(section);
    }
    match decompress::decompress(codec, &section, decompress::cap_for(section.len())) {
        Ok(out) => Ok(Bytes::from(out)),
        Err(DecompressError::Corrupt(m)) => Err(corrupt(m)),
        Err(DecompressError::TooLarge(cap)) => Err(LogError::MessageTooLarge(format!(
            "the batch's records decompress to more than {cap} bytes"
        ))),
    }
}

/// Check that stored batch `b`'s records decompress within the bound (before a decoder without
/// one reads them).
pub(crate) fn check_decompressed(b: &Batch) -> LogResult<()> {
    decompressed(b).map(|_| ())
}

/// The records of stored batch `b`, in order.
pub(crate) fn raw_records(b: &Batch) -> LogResult<Vec<RawRecord>> {
    let mut section = decompressed(b)?;
    // The count is the client's word: never reserve more than the bytes could hold.
    let mut out = Vec::with_capacity((b.record_count.max(0) as usize).min(section.len()));
    for _ in 0..b.record_count {
        let mut whole = section.clone();
        let len = usize::try_from(varint(&mut section)?).map_err(corrupt)?;
        if section.remaining() < len {
            return Err(corrupt("a record runs past its batch"));
        }
        let prefix = whole.len() - section.len();
        let bytes = whole.split_to(prefix + len);
        let mut r = section.split_to(len);
        if !r.has_remaining() {
            return Err(corrupt("an empty record"));
        }
        r.advance(1); // attributes
        let timestamp_delta = varint(&mut r)?;
        let offset_delta = i32::try_from(varint(&mut r)?).map_err(corrupt)?;
        let key = nullable(&mut r)?;
        let tombstone = nullable(&mut r)?.is_none();
        out.push(RawRecord {
            bytes,
            offset_delta,
            timestamp_delta,
            key,
            tombstone,
        });
    }
    if section.has_remaining() {
        return Err(corrupt(format!(
            "{} bytes after the last of the {} records the batch counts",
            section.remaining(),
            b.record_count
        )));
    }
    Ok(out)
}

/// The records of a batch a producer sent, checked as Kafka checks them before appending: they
/// decompress (within the bound) and are as many as the batch counts, each within it.
/// CORRUPT_MESSAGE if not (MESSAGE_TOO_LARGE past the bound).
pub(crate) fn produced_records(b: &Batch) -> LogResult<Vec<RawRecord>> {
    raw_records(b).map_err(|e| match e {
        LogError::Corrupt(m) => LogError::CorruptMessage(format!("records do not decode: {m}")),
        e => e,
    })
}

/// [`produced_records`] for a batch whose records are not needed, only checked.
pub(crate) fn validate(b: &Batch) -> LogResult<()> {
    produced_records(b).map(|_| ())
}

/// Batch `b` holding only `kept` (records of `b`, in order; at least one): see the module docs.
pub(crate) fn rebuilt(b: &Batch, kept: &[RawRecord]) -> LogResult<Bytes> {
    let mut out = BytesMut::with_capacity(b.bytes.len());
    out.put_slice(&b.bytes[..HEADER_LEN]);
    let write = |o: &mut BytesMut| -> anyhow::Result<()> {
        for r in kept {
            o.put_slice(&r.bytes);
        }
        Ok(())
    };
    let compressed = match compression(b) {
        0 => Uncompressed::compress(&mut out, write),
        1 => Gzip::compress(&mut out, write),
        2 => Snappy::compress(&mut out, write),
        3 => Lz4::compress(&mut out, write),
        4 => Zstd::compress(&mut out, write),
        c => return Err(corrupt(format!("unknown compression {c}"))),
    };
    compressed.map_err(|e| corrupt(format!("records do not compress: {e}")))?;
    let length = i32::try_from(out.len() - 12).map_err(corrupt)?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{parse_batches, stored_batches};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn encode(n: usize, compression: Compression, producer: (i64, i16, i32)) -> Batch {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer.0,
                producer_epoch: producer.1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: if producer.2 < 0 {
                    i as i32
                } else {
                    producer.2 + i as i32
                },
                timestamp: 500 + i as i64,
                key: (i % 4 != 3).then(|| Bytes::from(format!("key-{}", i % 3))),
                value: (i % 5 != 4).then(|| Bytes::from(vec![b'v'; i * 10])),
                headers: [(
                    kafka_protocol::protocol::StrBytes::from_static_str("h"),
                    Some(Bytes::from(format!("{i}"))),
                )]
                .into_iter()
                .collect(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        let mut b = parse_batches(&buf.freeze()).unwrap();
        assert_eq!(b.len(), 1);
        b.remove(0)
    }

    #[test]
    fn a_rebuilt_batch_keeps_offsets_headers_and_producer_fields() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = encode(9, compression, (42, 3, 100));
            let stored = b.stamped(1_000, 7, None);
            let b = stored_batches(&stored).remove(0);
            let raw = raw_records(&b).unwrap();
            assert_eq!(raw.len(), 9);
            assert_eq!(raw[4].key.as_deref(), Some(&b"key-1"[..]));
            assert!(raw[4].tombstone);
            assert_eq!(raw[3].key, None);
            let kept: Vec<RawRecord> = raw
                .iter()
                .filter(|r| r.offset_delta % 3 == 2)
                .cloned()
                .collect();
            let out = rebuilt(&b, &kept).unwrap();
            // Still a valid batch (a client's Produce validation accepts it: CRC, lengths).
            let again = stored_batches(&out).remove(0);
            assert_eq!(again.record_count, 3);
            assert_eq!(again.last_offset_delta, 8);
            assert_eq!(again.producer_id, 42);
            assert_eq!(again.producer_epoch, 3);
            assert_eq!(again.base_sequence, 100);
            assert_eq!(again.base_offset(), 1_000);
            assert_eq!(
                crc32c::crc32c(&out[21..]),
                u32::from_be_bytes(out[17..21].try_into().unwrap())
            );
            let mut bytes = out.clone();
            let decoded: Vec<Record> = RecordBatchDecoder::decode_all(&mut bytes)
                .unwrap()
                .into_iter()
                .flat_map(|s| s.records)
                .collect();
            let offsets: Vec<i64> = decoded.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![1_002, 1_005, 1_008], "{compression:?}");
            assert_eq!(decoded[1].timestamp, 505);
            assert_eq!(
                decoded[2].headers.values().next().unwrap().as_deref(),
                Some(&b"8"[..])
            );
            assert_eq!(decoded[2].value.as_deref(), Some(&[b'v'; 80][..]));
            assert_eq!(raw_records(&again).unwrap(), kept, "{compression:?}");
        }
    }

    #[test]
    fn any_bytes_as_records_are_an_error_or_records_never_a_panic() {
        let b = encode(4, Compression::None, (-1, -1, -1));
        for len in 0..b.bytes.len() {
            for flip in [0u8, 0x01, 0x80, 0xff] {
                let mut bytes = b.bytes.to_vec();
                bytes.truncate(len.max(HEADER_LEN));
                if len > HEADER_LEN {
                    bytes[len - 1] ^= flip;
                }
                let total = (bytes.len() - 12) as i32;
                bytes[8..12].copy_from_slice(&total.to_be_bytes());
                if let Some(batch) = stored_batches(&Bytes::from(bytes)).pop() {
                    let _ = raw_records(&batch);
                }
            }
        }
    }

    #[test]
    fn a_huge_record_count_is_an_error_not_an_allocation() {
        let b = encode(3, Compression::None, (-1, -1, -1));
        let mut bytes = b.bytes.to_vec();
        bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let lying = stored_batches(&Bytes::from(bytes)).remove(0);
        assert_eq!(lying.record_count, i32::MAX);
        assert!(raw_records(&lying).is_err());
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let b = encode(3, Compression::None, (-1, -1, -1));
        let mut bytes = b.bytes.to_vec();
        bytes.truncate(bytes.len() - 4);
        let len = (bytes.len() - 12) as i32;
        bytes[8..12].copy_from_slice(&len.to_be_bytes());
        let short = stored_batches(&Bytes::from(bytes)).remove(0);
        assert!(raw_records(&short).is_err());
    }
}
