//! Hostile input against the `kfdb` binary on a loopback port: oversized, negative and truncated
//! frames, unknown API keys, versions that are advertised but not decodable, and element counts
//! that claim billions of entries (which the protocol decoder would reserve memory for: the
//! binary's allocator, `src/alloc.rs`, keeps that from aborting the process). Each closes only its
//! own connection; the broker keeps serving.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn request<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("hostile-test")))
        .encode(&mut b, key.request_header_version(version))
        .unwrap();
    body.encode(&mut b, version).unwrap();
    let n = (b.len() - 4) as i32;
    b[0..4].copy_from_slice(&n.to_be_bytes());
    b.freeze()
}

async fn api_versions(s: &mut TcpStream, version: i16) -> (i32, ApiVersionsResponse) {
    let frame = request(
        ApiKey::ApiVersions,
        version,
        7,
        &ApiVersionsRequest::default(),
    );
    s.write_all(&frame).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, 0).unwrap();
    (
        header.correlation_id,
        ApiVersionsResponse::decode(&mut body, version).unwrap(),
    )
}

#[tokio::test]
async fn hostile_frames_close_only_their_connection() {
    let kfdb = kfdb_harness::Options::new(env!("CARGO_BIN_EXE_kfdb"))
        .args(["--socket-request-max-bytes", "1048576"])
        .env("KFDB_LOG", "warn")
        .log_tail_on_panic(40)
        .start()
        .expect("start kfdb");
    let addr: SocketAddr = kfdb.bootstrap().parse().unwrap();
    let cases: Vec<Vec<u8>> = vec![
        // Size above socket.request.max.bytes.
        (10 * 1024 * 1024i32).to_be_bytes().to_vec(),
        // Negative size.
        (-5i32).to_be_bytes().to_vec(),
        // Unknown API key 9999.
        [
            &10i32.to_be_bytes()[..],
            &9999i16.to_be_bytes(),
            &0i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &0i16.to_be_bytes(),
        ]
        .concat(),
        // Metadata v9 header followed by garbage that claims a huge array.
        [
            &16i32.to_be_bytes()[..],
            &3i16.to_be_bytes(),
            &9i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &(-1i16).to_be_bytes(),
            &[0u8],
            &[0xff, 0xff, 0xff, 0x7f, 0x01],
        ]
        .concat(),
        // Metadata v9 claiming 2^32 - 2 topics (the decoder reserves capacity for all of them).
        [
            &16i32.to_be_bytes()[..],
            &3i16.to_be_bytes(),
            &9i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &(-1i16).to_be_bytes(),
            &[0u8],
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
        ]
        .concat(),
        // Metadata v4 (non-flexible) claiming 2^31 - 1 topics.
        [
            &15i32.to_be_bytes()[..],
            &3i16.to_be_bytes(),
            &4i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &(-1i16).to_be_bytes(),
            &i32::MAX.to_be_bytes(),
            &[0u8],
        ]
        .concat(),
        // Produce v2 (advertised, not decodable).
        [
            &8i32.to_be_bytes()[..],
            &0i16.to_be_bytes(),
            &2i16.to_be_bytes(),
            &1i32.to_be_bytes(),
        ]
        .concat(),
    ];
    for (i, frame) in cases.iter().enumerate() {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(frame).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("case {i}: connection left open"));
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "case {i}: expected close, got {n:?}"
        );
    }
    // The broker still serves.
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(api_versions(&mut s, 3).await.1.error_code, 0);
}
