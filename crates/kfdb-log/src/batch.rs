//! Kafka record batches (magic v2) as they arrive in a Produce request: split, validate, and
//! stamp with offsets. Records are never decompressed or re-encoded here: a batch is stored as the
//! client sent it, with the broker-owned header fields (base offset, partition leader epoch, and for
//! `LogAppendTime` topics the timestamp type and max timestamp) rewritten in place.
//!
//! Header layout (61 bytes): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17 (CRC-32C of bytes 21..end), attributes i16 @21, lastOffsetDelta i32
//! @23, baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51,
//! baseSequence i32 @53, recordCount i32 @57.

use crate::error::{LogError, LogResult};
use crate::parts::RecordParts;
use bytes::{Bytes, BytesMut};

/// Bytes of the v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before the part a batch's length counts (baseOffset + batchLength).
const LOG_OVERHEAD: usize = 12;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// One validated record batch, still in the client's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The whole batch, header included.
    pub bytes: Bytes,
    /// Attributes (compression, timestamp type, transactional, control).
    pub attributes: i16,
    /// Offset of the last record relative to the first.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 if none.
    pub base_sequence: i32,
    /// Records in the batch.
    pub record_count: i32,
}

impl Batch {
    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// True when the batch carries its append time (`LogAppendTime`) as its timestamp.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }

    /// The base offset in the header (the stored offset of a stored batch).
    pub fn base_offset(&self) -> i64 {
        i64_at(&self.bytes, 0)
    }

    /// True for transactional batches.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// A transaction marker (control batch) ending `producer_id`'s transaction: one record whose
    /// key is (version 0, type 1 commit / 0 abort) and whose value is (version 0, coordinator
    /// epoch), as Kafka writes them. Built here; never accepted from clients.
    pub fn control_marker(producer_id: i64, producer_epoch: i16, commit: bool, now: i64) -> Self {
        let key: [u8; 4] = [0, 0, 0, u8::from(commit)];
        let value: [u8; 6] = [0, 0, 0, 0, 0, 0];
        // Record: attributes, timestamp delta 0, offset delta 0, key, value, no headers (varints
        // zigzag-encoded; every length here fits one byte).
        let mut record = vec![0u8, 0, 0, (key.len() * 2) as u8];
        record.extend_from_slice(&key);
        record.push((value.len() * 2) as u8);
        record.extend_from_slice(&value);
        record.push(0);
        let mut b = Vec::with_capacity(HEADER_LEN + record.len() + 1);
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        let attributes = ATTR_TRANSACTIONAL | ATTR_CONTROL;
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&now.to_be_bytes());
        b.extend_from_slice(&now.to_be_bytes());
        b.extend_from_slice(&producer_id.to_be_bytes());
        b.extend_from_slice(&producer_epoch.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.push((record.len() * 2) as u8);
        b.extend_from_slice(&record);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        Self {
            bytes: Bytes::from(b),
            attributes,
            last_offset_delta: 0,
            base_timestamp: now,
            max_timestamp: now,
            producer_id,
            producer_epoch,
            base_sequence: -1,
            record_count: 1,
        }
    }

    /// The bytes to store once the batch is given `base_offset`, the owner's `leader_epoch`, and, for
    /// `LogAppendTime` topics, the append time (which changes CRC-covered fields: CRC recomputed).
    pub fn stamped(&self, base_offset: i64, leader_epoch: i32, append_time: Option<i64>) -> Bytes {
        let mut b = BytesMut::with_capacity(self.bytes.len());
        b.extend_from_slice(&self.stamped_header(base_offset, leader_epoch, append_time));
        b.extend_from_slice(self.body());
        b.freeze()
    }

    /// The header of [`Batch::stamped`]; the stored batch is this header followed by
    /// [`Batch::body`] unchanged. A caller laying the batch out in pieces of its own (the store's
    /// chunk values) copies the body once, straight to where it is kept.
    pub fn stamped_header(
        &self,
        base_offset: i64,
        leader_epoch: i32,
        append_time: Option<i64>,
    ) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&self.bytes[..HEADER_LEN]);
        h[0..8].copy_from_slice(&base_offset.to_be_bytes());
        h[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
        if let Some(now) = append_time {
            let attrs = self.attributes | ATTR_TIMESTAMP_TYPE;
            h[21..23].copy_from_slice(&attrs.to_be_bytes());
            h[35..43].copy_from_slice(&now.to_be_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&h[21..]), self.body());
            h[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        h
    }

    /// The bytes after the header (the records), which stamping leaves as they are.
    pub fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The max timestamp as stored (the append time for `LogAppendTime` topics).
    pub fn stored_max_timestamp(&self, append_time: Option<i64>) -> i64 {
        append_time.unwrap_or(self.max_timestamp)
    }
}

/// What [`stable_prefix`] keeps of stored batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StablePrefix {
    /// The whole batches that end below the bound.
    pub records: RecordParts,
    /// Last offset of the last batch kept, -1 if none.
    pub last_offset: i64,
    /// Whether a kept batch is transactional (only then do aborted transactions matter).
    pub transactional: bool,
}

/// The leading whole batches of stored `records` (stamped with offsets) whose last offset is below
/// `bound` (a read_committed fetch stops at the last stable offset).
pub fn stable_prefix(records: &RecordParts, bound: i64) -> StablePrefix {
    let mut out = StablePrefix {
        records: RecordParts::new(),
        last_offset: -1,
        transactional: false,
    };
    let mut at = records.cursor();
    let mut b = [0u8; HEADER_LEN];
    while at.peek(&mut b) {
        let total = LOG_OVERHEAD + i32_at(&b, 8).max(0) as usize;
        let last = i64_at(&b, 0) + i64::from(i32_at(&b, 23));
        if last >= bound || total > records.len() - at.position() || total < HEADER_LEN {
            break;
        }
        out.transactional |= i16_at(&b, 21) & ATTR_TRANSACTIONAL != 0;
        out.last_offset = last;
        at.skip(total);
    }
    out.records = records.prefix(at.position());
    out
}

/// The whole batches of stored `records` (already validated when they were appended; a truncated
/// tail is left out), control batches included.
pub fn stored_batches(records: &Bytes) -> Vec<Batch> {
    let mut at = 0usize;
    let mut out = Vec::new();
    while records.len() - at >= HEADER_LEN {
        let b = &records[at..];
        let total = LOG_OVERHEAD + i32_at(b, 8).max(0) as usize;
        if total > b.len() || total < HEADER_LEN {
            break;
        }
        out.push(Batch {
            bytes: records.slice(at..at + total),
            attributes: i16_at(b, 21),
            last_offset_delta: i32_at(b, 23),
            base_timestamp: i64_at(b, 27),
            max_timestamp: i64_at(b, 35),
            producer_id: i64_at(b, 43),
            producer_epoch: i16_at(b, 51),
            base_sequence: i32_at(b, 53),
            record_count: i32_at(b, 57),
        });
        at += total;
    }
    out
}

/// A record kfdb writes itself (its HTTP API, tools, tests): what [`new_batch`] encodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    /// The key (`None`: no key).
    pub key: Option<Bytes>,
    /// The value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order (a name given twice keeps its last value: kafka-protocol holds them in a
    /// map).
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The record's timestamp (CreateTime).
    pub timestamp: i64,
}

/// `records` (at least one) as one v2 batch without a producer id, compressed with
/// `compression`, validated as a Produce request's batches are.
pub fn new_batch(
    records: &[NewRecord],
    compression: kafka_protocol::records::Compression,
) -> LogResult<Vec<Batch>> {
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence constant, or the encoder starts a batch per record.
            sequence: i as i32,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| LogError::InvalidRequest(format!("records do not encode: {e}")))?;
    parse_batches(&buf.freeze())
}

/// Split the `records` of one partition of a Produce request into validated v2 batches.
pub fn parse_batches(records: &Bytes) -> LogResult<Vec<Batch>> {
    let corrupt = |m: String| LogError::CorruptMessage(m);
    let mut out = Vec::new();
    let mut at = 0usize;
    if records.is_empty() {
        return Err(corrupt("no record batch".into()));
    }
    while at < records.len() {
        let rest = &records[at..];
        if rest.len() < LOG_OVERHEAD + 5 {
            return Err(corrupt(format!(
                "{} trailing bytes, not a batch",
                rest.len()
            )));
        }
        let batch_length = i32_at(rest, 8);
        let magic = rest[16] as i8;
        if magic < 2 {
            return Err(LogError::UnsupportedMessageFormat);
        }
        if magic != 2 {
            return Err(corrupt(format!("unknown magic {magic}")));
        }
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(corrupt(format!(
                "batch length {batch_length} below the header size"
            )));
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        if total > rest.len() {
            return Err(corrupt(format!(
                "batch length {batch_length} runs past the request ({} bytes left)",
                rest.len()
            )));
        }
        let b = &rest[..total];
        let crc = u32::from_be_bytes([b[17], b[18], b[19], b[20]]);
        let actual = crc32c::crc32c(&b[21..]);
        if crc != actual {
            return Err(corrupt(format!(
                "CRC {crc:#010x} != computed {actual:#010x}"
            )));
        }
        let attributes = i16_at(b, 21);
        let last_offset_delta = i32_at(b, 23);
        let record_count = i32_at(b, 57);
        if attributes & ATTR_CONTROL != 0 {
            return Err(corrupt("clients may not produce control batches".into()));
        }
        if record_count <= 0 {
            return Err(corrupt(format!("record count {record_count}")));
        }
        if last_offset_delta != record_count - 1 {
            return Err(corrupt(format!(
                "last offset delta {last_offset_delta} does not match {record_count} records"
            )));
        }
        let producer_id = i64_at(b, 43);
        let producer_epoch = i16_at(b, 51);
        let base_sequence = i32_at(b, 53);
        if attributes & ATTR_TRANSACTIONAL != 0 && producer_id < 0 {
            return Err(corrupt("transactional batch without a producer id".into()));
        }
        out.push(Batch {
            bytes: records.slice(at..at + total),
            attributes,
            last_offset_delta,
            base_timestamp: i64_at(b, 27),
            max_timestamp: i64_at(b, 35),
            producer_id,
            producer_epoch,
            base_sequence,
            record_count,
        });
        at += total;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A v2 batch of `count` uncompressed records with the given timestamps (test helper).
    pub(crate) fn batch(count: i32, base_ts: i64, max_ts: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..count {
            // A minimal record: length, attributes, ts delta, offset delta, key -1, value "v", 0 headers.
            let body = [0u8, 0, (i * 2) as u8, 1, 2, b'v', 0];
            records.push((body.len() * 2) as u8);
            records.extend_from_slice(&body);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // length, patched below
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(count - 1).to_be_bytes());
        b.extend_from_slice(&base_ts.to_be_bytes());
        b.extend_from_slice(&max_ts.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(&records);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn splits_and_validates_batches() {
        let mut two = batch(3, 100, 102);
        two.extend(batch(1, 200, 200));
        let parsed = parse_batches(&Bytes::from(two)).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].record_count, 3);
        assert_eq!(parsed[0].max_timestamp, 102);
        assert_eq!(parsed[1].base_timestamp, 200);
    }

    #[test]
    fn rejects_corruption_without_panicking() {
        let good = batch(2, 1, 2);
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        assert!(matches!(
            parse_batches(&Bytes::from(bad_crc)),
            Err(LogError::CorruptMessage(_))
        ));
        let mut old = good.clone();
        old[16] = 1;
        assert_eq!(
            parse_batches(&Bytes::from(old)),
            Err(LogError::UnsupportedMessageFormat)
        );
        for cut in [0, 5, 20, 60, good.len() - 1] {
            assert!(
                parse_batches(&Bytes::from(good[..cut].to_vec())).is_err(),
                "cut {cut}"
            );
        }
        let mut huge_len = good.clone();
        huge_len[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(parse_batches(&Bytes::from(huge_len)).is_err());
        let mut negative = good;
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(parse_batches(&Bytes::from(negative)).is_err());
    }

    #[test]
    fn control_markers_are_valid_batches() {
        let m = Batch::control_marker(42, 3, true, 1000);
        let stamped = m.stamped(7, 0, None);
        // What a client decodes: one control record, commit type, the producer's id and epoch.
        let mut bytes = stamped.clone();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        let r = &sets[0].records[0];
        assert!(r.control && r.transactional);
        assert_eq!((r.producer_id, r.producer_epoch, r.offset), (42, 3, 7));
        assert_eq!(r.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        // Clients may not send one.
        assert!(parse_batches(&stamped).is_err());
    }

    #[test]
    fn stable_prefix_stops_at_the_bound() {
        let a = parse_batches(&Bytes::from(batch(3, 1, 1)))
            .unwrap()
            .remove(0)
            .stamped(10, 0, None);
        let m = Batch::control_marker(1, 0, false, 5).stamped(13, 0, None);
        let c = parse_batches(&Bytes::from(batch(2, 1, 1)))
            .unwrap()
            .remove(0)
            .stamped(14, 0, None);
        // Pieces as the store hands them out: a header split between two of them too.
        let whole = Bytes::from([a.as_ref(), m.as_ref(), c.as_ref()].concat());
        let mut all = RecordParts::new();
        let cuts = [0, a.len(), a.len() + 20, a.len() + m.len(), whole.len()];
        for w in cuts.windows(2) {
            all.push(whole.slice(w[0]..w[1]));
        }
        let p = stable_prefix(&all, 14);
        assert_eq!(p.records.len(), a.len() + m.len());
        assert_eq!(p.last_offset, 13);
        assert!(p.transactional);
        let p = stable_prefix(&all, 13);
        assert_eq!(
            (p.records.len(), p.last_offset, p.transactional),
            (a.len(), 12, false)
        );
        assert_eq!(stable_prefix(&all, 10).records.len(), 0);
        assert_eq!(stable_prefix(&all, 100).records.len(), all.len());
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let b = parse_batches(&Bytes::from(batch(2, 10, 11)))
            .unwrap()
            .remove(0);
        let stamped = b.stamped(1000, 3, Some(99));
        let again = parse_batches(&stamped).unwrap().remove(0);
        assert_eq!(i64_at(&stamped, 0), 1000);
        assert_eq!(i32_at(&stamped, 12), 3);
        assert_eq!(again.max_timestamp, 99);
        assert_eq!(again.attributes & ATTR_TIMESTAMP_TYPE, ATTR_TIMESTAMP_TYPE);
        let plain = b.stamped(5, 0, None);
        assert!(parse_batches(&plain).is_ok());
    }
}
