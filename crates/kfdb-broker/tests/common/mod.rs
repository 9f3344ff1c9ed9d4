//! Helpers shared by kfdb-broker's integration tests: Kafka requests framed by hand with
//! kafka-protocol, one request and its response over a socket, and record batches as clients
//! build them.
#![allow(dead_code)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request frame (size prefix, header, body).
pub fn request<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Bytes {
    // A version newer than this client knows goes out with the newest body it can encode.
    let body_version = version.min(key.valid_versions().max);
    let mut b = BytesMut::new();
    b.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("protocol-test")))
        .encode(&mut b, key.request_header_version(body_version))
        .unwrap();
    body.encode(&mut b, body_version).unwrap();
    let n = (b.len() - 4) as i32;
    b[0..4].copy_from_slice(&n.to_be_bytes());
    b.freeze()
}

/// Write a frame and read one response frame back (its body after the size).
pub async fn roundtrip(s: &mut TcpStream, frame: &[u8]) -> Option<Bytes> {
    s.write_all(frame).await.ok()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

/// One request and its decoded response.
pub async fn call<Req: Encodable, Resp: Decodable>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let frame = request(key, version, 1, body);
    let mut b = roundtrip(s, &frame).await.expect("response");
    ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
    Resp::decode(&mut b, version).unwrap()
}

/// Transactional records of `(pid, epoch)` starting at sequence `seq`.
pub fn txn_records(values: &[&str], pid: i64, epoch: i16, seq: i32) -> Bytes {
    encode_records(values, pid, epoch, seq, true)
}

pub fn encode_records(
    values: &[&str],
    pid: i64,
    epoch: i16,
    seq: i32,
    transactional: bool,
) -> Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let recs: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 { -1 } else { seq + i as i32 },
            timestamp: 1,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}
