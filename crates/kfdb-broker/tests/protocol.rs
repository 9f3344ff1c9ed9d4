//! The broker on a loopback port, spoken to with raw frames: ApiVersions (incl. a too-new
//! version), the registry matches what is advertised, and hostile input closes only its own
//! connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kfdb_broker::{Broker, BrokerConfig};
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_log::{Log, LogConfig};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// As in the kfdb binary: hostile element counts must not abort the process.
#[global_allocator]
static ALLOC: kfdb_broker::alloc::GuardedAlloc = kfdb_broker::alloc::GuardedAlloc;

type Started = (
    SocketAddr,
    tempfile::TempDir,
    tokio::sync::oneshot::Sender<()>,
);

async fn start() -> Started {
    let (addr, dir, stop, _) = start_broker().await;
    (addr, dir, stop)
}

async fn start_broker() -> (
    SocketAddr,
    tempfile::TempDir,
    tokio::sync::oneshot::Sender<()>,
    std::sync::Arc<Broker>,
) {
    start_with(BrokerConfig::default()).await
}

async fn start_with(
    config: BrokerConfig,
) -> (
    SocketAddr,
    tempfile::TempDir,
    tokio::sync::oneshot::Sender<()>,
    std::sync::Arc<Broker>,
) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_embedded(dir.path(), EmbeddedOptions::default()).unwrap();
    let log = Log::open(db, LogConfig::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = Broker::new(
        log,
        BrokerConfig {
            advertised_port: addr.port() as i32,
            max_request_bytes: 1024 * 1024,
            ..config
        },
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kfdb_broker::serve(listener, broker.clone(), async {
        let _ = stop_rx.await;
    }));
    (addr, dir, stop_tx, broker)
}

fn request<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Bytes {
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

async fn roundtrip(s: &mut TcpStream, frame: &[u8]) -> Option<Bytes> {
    s.write_all(frame).await.ok()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

async fn api_versions(s: &mut TcpStream, version: i16) -> (i32, ApiVersionsResponse) {
    let frame = request(
        ApiKey::ApiVersions,
        version,
        7,
        &ApiVersionsRequest::default(),
    );
    let mut body = roundtrip(s, &frame).await.expect("response");
    let header = ResponseHeader::decode(&mut body, 0).unwrap();
    // A too-new version is answered in the v0 format.
    let v = if version > 4 { 0 } else { version };
    (
        header.correlation_id,
        ApiVersionsResponse::decode(&mut body, v).unwrap(),
    )
}

#[tokio::test]
async fn api_versions_advertises_the_registry() {
    let (addr, _dir, _stop) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    for v in 0..=4 {
        let (cid, r) = api_versions(&mut s, v).await;
        assert_eq!(cid, 7);
        assert_eq!(r.error_code, 0);
        let keys: Vec<i16> = r.api_keys.iter().map(|k| k.api_key).collect();
        assert_eq!(keys.len(), kfdb_broker::handlers::APIS.len());
        let produce = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 13));
        assert!(keys.contains(&(ApiKey::Fetch as i16)));
        assert!(keys.contains(&(ApiKey::JoinGroup as i16)));
        assert!(keys.contains(&(ApiKey::InitProducerId as i16)));
        for txn_api in [
            ApiKey::AddPartitionsToTxn,
            ApiKey::AddOffsetsToTxn,
            ApiKey::TxnOffsetCommit,
            ApiKey::EndTxn,
        ] {
            assert!(keys.contains(&(txn_api as i16)), "{txn_api:?}");
        }
    }
    let (_, r) = api_versions(&mut s, 9).await;
    assert_eq!(
        r.error_code, 35,
        "UNSUPPORTED_VERSION for a too-new ApiVersions"
    );
    assert!(
        !r.api_keys.is_empty(),
        "ranges included so the client can retry"
    );
}

#[tokio::test]
async fn metadata_names_this_broker() {
    let (addr, _dir, _stop) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    for v in [0i16, 4, 9, 12, 13] {
        let frame = request(ApiKey::Metadata, v, 1, &MetadataRequest::default());
        let mut body = roundtrip(&mut s, &frame).await.expect("metadata response");
        ResponseHeader::decode(&mut body, ApiKey::Metadata.response_header_version(v)).unwrap();
        let r = MetadataResponse::decode(&mut body, v).unwrap();
        assert_eq!(r.brokers.len(), 1, "v{v}");
        assert_eq!(r.brokers[0].port, addr.port() as i32);
        assert!(!body.has_remaining(), "v{v}: trailing bytes");
    }
}

#[tokio::test]
async fn hostile_frames_close_only_their_connection() {
    let (addr, _dir, _stop) = start().await;
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

#[tokio::test]
async fn metrics_count_requests_bytes_and_protocol_faults() {
    let (addr, _dir, _stop, broker) = start_broker().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    for v in 0..3 {
        api_versions(&mut s, v).await;
    }
    let mut bad = TcpStream::connect(addr).await.unwrap();
    bad.write_all(&(-1i32).to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 8];
    let _ = bad.read(&mut buf).await;
    let text = String::from_utf8(broker.metrics.render(&broker.log)).unwrap();
    assert!(
        text.contains("kfdb_requests_total{api=\"ApiVersions\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("kfdb_request_duration_seconds_count{api=\"ApiVersions\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("kfdb_protocol_errors_total{reason=\"bad_frame\"} 1"),
        "{text}"
    );
    let bytes_out: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("kfdb_bytes_out_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(bytes_out > 0);
}

#[tokio::test]
async fn metadata_for_all_topics_respects_the_cap() {
    let (addr, _dir, _stop, broker) = start_with(BrokerConfig {
        metadata_max_topics: 2,
        ..BrokerConfig::default()
    })
    .await;
    let specs = ["a", "b", "c"]
        .iter()
        .map(|n| kfdb_log::NewTopic {
            name: n.to_string(),
            partitions: 1,
            replication_factor: 1,
            configs: vec![],
        })
        .collect();
    assert!(
        broker
            .log
            .create_topics(specs, false)
            .await
            .iter()
            .all(|r| r.is_ok())
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    let all = MetadataRequest::default().with_topics(None);
    let frame = request(ApiKey::Metadata, 12, 1, &all);
    let mut body = roundtrip(&mut s, &frame).await.expect("metadata response");
    ResponseHeader::decode(&mut body, ApiKey::Metadata.response_header_version(12)).unwrap();
    let r = MetadataResponse::decode(&mut body, 12).unwrap();
    let names: Vec<String> = r
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
}
