//! Bounded decompression of a record batch's records section (gzip, snappy, lz4, zstd).
//!
//! A producer's batch is decompressed to check its records before it is appended (as Kafka does)
//! and to read their keys (the key index, compacted topics); a stored one to find a record by
//! time or key. The output is capped: a few kilobytes that claim (snappy's length header) or
//! expand to gigabytes must not become a gigabyte allocation. Each codec streams through a `Read` that stops
//! one byte past the cap, and snappy's claimed lengths are checked before anything is allocated.
//! The codecs are the crates kafka-protocol itself uses (flate2, snap, lz4, zstd); only the
//! xerial framing of Kafka's snappy (16-byte header, then length-prefixed raw blocks, or a bare
//! raw block as the Java client falls back to) is spelled out here.

use std::io::Read;

/// Why a records section could not be decompressed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecompressError {
    /// The bytes are not what the codec says (or an unknown codec).
    Corrupt(String),
    /// The records decompress to more than the cap.
    TooLarge(usize),
}

/// The most a batch may decompress to: 64 times its compressed size, and at least 64 MiB (a
/// 1 MiB batch, Kafka's default `message.max.bytes`, may be 64 MiB of records).
pub(crate) fn cap_for(compressed: usize) -> usize {
    compressed.saturating_mul(64).max(64 << 20)
}

/// The xerial snappy stream's magic, as the Java client writes it (then version and
/// compatible version, 4 bytes each).
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// Decompress `input` compressed with Kafka codec `codec` (1 gzip, 2 snappy, 3 lz4, 4 zstd) into
/// at most `cap` bytes.
pub(crate) fn decompress(codec: i16, input: &[u8], cap: usize) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        DecompressError::Corrupt(format!("{what} records do not decompress: {e}"))
    };
    match codec {
        1 => read_capped(flate2::read::GzDecoder::new(input), cap)
            .map_err(|e| e.or_corrupt(|m| corrupt("gzip", &m))),
        2 => snappy(input, cap),
        3 => {
            let decoder = lz4::Decoder::new(input).map_err(|e| corrupt("lz4", &e))?;
            read_capped(decoder, cap).map_err(|e| e.or_corrupt(|m| corrupt("lz4", &m)))
        }
        4 => {
            let decoder =
                zstd::stream::read::Decoder::new(input).map_err(|e| corrupt("zstd", &e))?;
            read_capped(decoder, cap).map_err(|e| e.or_corrupt(|m| corrupt("zstd", &m)))
        }
        c => Err(DecompressError::Corrupt(format!("unknown compression {c}"))),
    }
}

/// A read failure, or the cap reached.
enum Capped {
    Io(std::io::Error),
    TooLarge(usize),
}

impl Capped {
    fn or_corrupt(self, f: impl FnOnce(std::io::Error) -> DecompressError) -> DecompressError {
        match self {
            Capped::Io(e) => f(e),
            Capped::TooLarge(cap) => DecompressError::TooLarge(cap),
        }
    }
}

fn read_capped(r: impl Read, cap: usize) -> Result<Vec<u8>, Capped> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    r.take(limit).read_to_end(&mut out).map_err(Capped::Io)?;
    if out.len() > cap {
        return Err(Capped::TooLarge(cap));
    }
    Ok(out)
}

fn snappy(input: &[u8], cap: usize) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |e: &dyn std::fmt::Display| {
        DecompressError::Corrupt(format!("snappy records do not decompress: {e}"))
    };
    let mut out = Vec::new();
    let block = |raw: &[u8], out: &mut Vec<u8>| -> Result<(), DecompressError> {
        let len = snap::raw::decompress_len(raw).map_err(|e| corrupt(&e))?;
        if len > cap.saturating_sub(out.len()) {
            return Err(DecompressError::TooLarge(cap));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(raw, &mut out[start..])
            .map_err(|e| corrupt(&e))?;
        Ok(())
    };
    if !input.starts_with(XERIAL_MAGIC) {
        // A bare raw block (the Java client reads these too).
        block(input, &mut out)?;
        return Ok(out);
    }
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| corrupt(&"a truncated xerial header"))?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(&"a truncated block length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        let raw = tail
            .get(..len)
            .ok_or_else(|| corrupt(&"a block runs past the batch"))?;
        block(raw, &mut out)?;
        rest = &tail[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

    fn compress(codec: i16, data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let write = |b: &mut BytesMut| -> anyhow::Result<()> {
            b.extend_from_slice(data);
            Ok(())
        };
        match codec {
            1 => Gzip::compress(&mut out, write).unwrap(),
            2 => Snappy::compress(&mut out, write).unwrap(),
            3 => Lz4::compress(&mut out, write).unwrap(),
            4 => Zstd::compress(&mut out, write).unwrap(),
            _ => unreachable!(),
        }
        out.to_vec()
    }

    #[test]
    fn every_codec_round_trips_what_kafka_protocol_compresses() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in 1..=4 {
            let packed = compress(codec, &data);
            assert_eq!(
                decompress(codec, &packed, 1 << 20).unwrap(),
                data,
                "{codec}"
            );
        }
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        // 64 MiB of zeros compress to kilobytes; with a 1 MiB cap each codec stops there.
        let zeros = vec![0u8; 64 << 20];
        for codec in 1..=4 {
            let packed = compress(codec, &zeros);
            assert!(packed.len() < 4 << 20, "{codec}: {}", packed.len());
            assert_eq!(
                decompress(codec, &packed, 1 << 20),
                Err(DecompressError::TooLarge(1 << 20)),
                "{codec}"
            );
        }
    }

    #[test]
    fn a_lying_snappy_length_allocates_nothing() {
        // A raw snappy block whose varint header claims 4 GiB - 1, and a xerial block claiming
        // more bytes than follow.
        let raw = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert_eq!(
            decompress(2, &raw, 1 << 20),
            Err(DecompressError::TooLarge(1 << 20))
        );
        let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        framed.extend_from_slice(&u32::MAX.to_be_bytes());
        framed.extend_from_slice(b"abc");
        assert!(matches!(
            decompress(2, &framed, 1 << 20),
            Err(DecompressError::Corrupt(_))
        ));
    }

    #[test]
    fn garbage_is_corrupt_for_every_codec() {
        let garbage = Bytes::from_static(b"\x00\x01\x02 definitely not compressed \xff\xfe");
        for codec in 1..=4 {
            assert!(
                matches!(
                    decompress(codec, &garbage, 1 << 20),
                    Err(DecompressError::Corrupt(_))
                ),
                "{codec}"
            );
        }
        assert!(matches!(
            decompress(7, &garbage, 1 << 20),
            Err(DecompressError::Corrupt(_))
        ));
    }
}
