//! The broker on a loopback port, spoken to with raw frames: ApiVersions (incl. a too-new
//! version), the registry matches what is advertised. (Hostile input is tested against the
//! `kfdb` binary itself, whose allocator it depends on: crates/kfdb/tests/hostile.rs.)

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kfdb_broker::{Broker, BrokerConfig};
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_log::{Log, LogConfig};

mod common;
use common::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// A PLAINTEXT listener on `addr`.
fn plaintext(addr: SocketAddr) -> kfdb_broker::listeners::Listener {
    kfdb_broker::listeners::Listener::plaintext("127.0.0.1", addr.port())
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
            listeners: vec![plaintext(addr)],
            max_request_bytes: 1024 * 1024,
            ..config
        },
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listeners = vec![(listener, plaintext(addr))];
    tokio::spawn(kfdb_broker::serve(listeners, broker.clone(), async {
        let _ = stop_rx.await;
    }));
    (addr, dir, stop_tx, broker)
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

async fn metadata(s: &mut TcpStream, v: i16, req: &MetadataRequest) -> MetadataResponse {
    let frame = request(ApiKey::Metadata, v, 1, req);
    let mut body = roundtrip(s, &frame).await.expect("metadata response");
    ResponseHeader::decode(&mut body, ApiKey::Metadata.response_header_version(v)).unwrap();
    MetadataResponse::decode(&mut body, v).unwrap()
}

/// The Java AdminClient's describeTopics(TopicCollection.ofTopicIds(..)) sends Metadata topics
/// with the id set and the name left at its default "" (not null); kfdb looked the name "" up and
/// answered UNKNOWN_TOPIC_OR_PARTITION. A non-zero id is now looked up by id, as Kafka does.
#[tokio::test]
async fn metadata_by_topic_id_ignores_an_empty_name() {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let (addr, _dir, _stop) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let by_name = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("by-id")))),
        ]))
        .with_allow_auto_topic_creation(true);
    let created = metadata(&mut s, 12, &by_name).await;
    assert_eq!(created.topics[0].error_code, 0);
    let id = created.topics[0].topic_id;
    assert!(!id.is_nil());
    for name in [Some(TopicName(StrBytes::from_static_str(""))), None] {
        let req = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(name.clone())
                .with_topic_id(id),
        ]));
        let r = metadata(&mut s, 12, &req).await;
        assert_eq!(r.topics[0].error_code, 0, "name {name:?}");
        assert_eq!(
            r.topics[0].name.as_deref().map(|n| n.as_str()),
            Some("by-id")
        );
        assert_eq!(r.topics[0].topic_id, id);
        assert_eq!(r.topics[0].partitions.len(), 1);
    }
    let unknown = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(""))))
            .with_topic_id(uuid::Uuid::new_v4()),
    ]));
    let r = metadata(&mut s, 12, &unknown).await;
    assert_eq!(r.topics[0].error_code, 100, "UNKNOWN_TOPIC_ID");
    assert_eq!(r.topics[0].name, None);
}

fn create_topics_request(
    name: &'static str,
    configs: &[(&'static str, &'static str)],
) -> kafka_protocol::messages::CreateTopicsRequest {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    kafka_protocol::messages::CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(name)))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_static_str(k))
                                .with_value(Some(StrBytes::from_static_str(v)))
                        })
                        .collect(),
                ),
        ])
        .with_timeout_ms(30_000)
}

async fn create_topics(
    s: &mut TcpStream,
    v: i16,
    req: &kafka_protocol::messages::CreateTopicsRequest,
) -> kafka_protocol::messages::CreateTopicsResponse {
    let frame = request(ApiKey::CreateTopics, v, 2, req);
    let mut body = roundtrip(s, &frame).await.expect("create topics response");
    ResponseHeader::decode(&mut body, ApiKey::CreateTopics.response_header_version(v)).unwrap();
    kafka_protocol::messages::CreateTopicsResponse::decode(&mut body, v).unwrap()
}

/// kafka-configs --describe asks DescribeConfigs for synonyms and prints them
/// (`retention.ms=7200000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=7200000, ...}`);
/// kfdb answered none. A topic override and a broker setting now list themselves as their first
/// synonym, with their own source; nothing is listed unless synonyms are asked for.
#[tokio::test]
async fn describe_configs_lists_an_override_as_its_own_synonym() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
    let (addr, _dir, _stop) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let created = create_topics(
        &mut s,
        7,
        &create_topics_request("synonyms", &[("retention.ms", "7200000")]),
    )
    .await;
    assert_eq!(created.topics[0].error_code, 0);
    for include in [true, false] {
        let req = DescribeConfigsRequest::default()
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("synonyms"))
                    .with_configuration_keys(None),
            ])
            .with_include_synonyms(include);
        let frame = request(ApiKey::DescribeConfigs, 4, 3, &req);
        let mut body = roundtrip(&mut s, &frame).await.expect("describe configs");
        ResponseHeader::decode(
            &mut body,
            ApiKey::DescribeConfigs.response_header_version(4),
        )
        .unwrap();
        let r = DescribeConfigsResponse::decode(&mut body, 4).unwrap();
        let configs = &r.results[0].configs;
        let retention = configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .unwrap();
        let cleanup = configs
            .iter()
            .find(|c| c.name.as_str() == "cleanup.policy")
            .unwrap();
        assert!(cleanup.synonyms.is_empty(), "a default has no synonym here");
        if include {
            assert_eq!(retention.synonyms.len(), 1);
            let syn = &retention.synonyms[0];
            assert_eq!(syn.name.as_str(), "retention.ms");
            assert_eq!(syn.value.as_ref().map(|v| v.as_str()), Some("7200000"));
            assert_eq!(syn.source, 1, "DYNAMIC_TOPIC_CONFIG");
        } else {
            assert!(retention.synonyms.is_empty());
        }
    }
}

/// kafka-topics --create of an existing topic prints CreateTopics' error message; Kafka's is
/// "Topic 'name' already exists.", kfdb's was "topic already exists".
#[tokio::test]
async fn create_topics_names_the_existing_topic() {
    let (addr, _dir, _stop) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = create_topics_request("twice", &[]);
    assert_eq!(create_topics(&mut s, 7, &req).await.topics[0].error_code, 0);
    let again = create_topics(&mut s, 7, &req).await;
    assert_eq!(again.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");
    assert_eq!(
        again.topics[0].error_message.as_ref().map(|m| m.as_str()),
        Some("Topic 'twice' already exists.")
    );
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
    // An error answered: ListOffsets of a topic that does not exist.
    let unknown = kafka_protocol::messages::ListOffsetsRequest::default().with_topics(vec![
        kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
            .with_name(kafka_protocol::messages::TopicName(
                StrBytes::from_static_str("missing"),
            ))
            .with_partitions(vec![
                kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                    .with_timestamp(-1),
            ]),
    ]);
    let r: kafka_protocol::messages::ListOffsetsResponse =
        call(&mut s, ApiKey::ListOffsets, 7, &unknown).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 3);
    // A group answer: Heartbeat for a group that does not exist.
    let hb = kafka_protocol::messages::HeartbeatRequest::default()
        .with_group_id(kafka_protocol::messages::GroupId(
            StrBytes::from_static_str("no-such-group"),
        ))
        .with_member_id(StrBytes::from_static_str("m"))
        .with_generation_id(1);
    let r: kafka_protocol::messages::HeartbeatResponse =
        call(&mut s, ApiKey::Heartbeat, 4, &hb).await;
    assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID");
    // A store commit: creating a topic.
    let created = broker
        .log
        .topics()
        .create(
            vec![kfdb_log::NewTopic {
                name: "metered".into(),
                partitions: 1,
                replication_factor: 1,
                configs: vec![],
            }],
            false,
        )
        .await;
    assert!(created.iter().all(|r| r.is_ok()));
    let text = String::from_utf8(broker.metrics.render(&broker.log)).unwrap();
    // A metric's value in the exposition text, 0 when absent.
    let value = |line_prefix: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line_prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        value("kfdb_store_commit_duration_seconds_count ") >= 1,
        "{text}"
    );
    assert!(value("kfdb_errors_total{code=\"3\"} ") >= 1, "{text}");
    assert!(
        value("kfdb_errors_total{code=\"25\"} ") >= 1,
        "group answers are counted: {text}"
    );
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
    assert!(value("kfdb_bytes_out_total ") > 0, "{text}");
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
            .topics()
            .create(specs, false)
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

#[tokio::test]
async fn transaction_apis_over_the_wire() {
    use kafka_protocol::messages::*;
    let (addr, _dir, _stop, broker) = start_broker().await;
    let spec = kfdb_log::NewTopic {
        name: "t".into(),
        partitions: 2,
        replication_factor: 1,
        configs: vec![],
    };
    broker.log.topics().create(vec![spec], false).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let name = || TopicName(StrBytes::from_static_str("t"));
    let tid = || TransactionalId(StrBytes::from_static_str("app"));

    let found: FindCoordinatorResponse = call(
        &mut s,
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("app"))
            .with_key_type(1),
    )
    .await;
    assert_eq!((found.error_code, found.port), (0, addr.port() as i32));

    let init: InitProducerIdResponse = call(
        &mut s,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(tid()))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
    .await;
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id, init.producer_epoch);

    let add = |partitions: Vec<i32>| {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(tid())
            .with_v3_and_below_producer_id(pid)
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(name())
                    .with_partitions(partitions),
            ])
    };
    let added: AddPartitionsToTxnResponse =
        call(&mut s, ApiKey::AddPartitionsToTxn, 3, &add(vec![0])).await;
    let codes: Vec<i16> = added.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(codes, vec![0]);
    let bad: AddPartitionsToTxnResponse =
        call(&mut s, ApiKey::AddPartitionsToTxn, 3, &add(vec![1, 7])).await;
    let codes: Vec<i16> = bad.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(
        codes,
        vec![55, 3],
        "OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION"
    );

    let produce = |partition: i32| {
        ProduceRequest::default()
            .with_transactional_id(Some(tid()))
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(name())
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(txn_records(&["x", "y"], pid.0, epoch, 0))),
                    ]),
            ])
    };
    // Transactional records without a transactional id: refused, as Kafka refuses them.
    let anonymous: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce(0).with_transactional_id(None),
    )
    .await;
    assert_eq!(
        anonymous.responses[0].partition_responses[0].error_code, 53,
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    );
    let produced: ProduceResponse = call(&mut s, ApiKey::Produce, 9, &produce(0)).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let refused: ProduceResponse = call(&mut s, ApiKey::Produce, 9, &produce(1)).await;
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code, 48,
        "INVALID_TXN_STATE: partition 1 was not added"
    );

    let verify: AddPartitionsToTxnResponse = call(
        &mut s,
        ApiKey::AddPartitionsToTxn,
        4,
        &AddPartitionsToTxnRequest::default().with_transactions(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                .with_transactional_id(tid())
                .with_producer_id(pid)
                .with_producer_epoch(epoch)
                .with_verify_only(true)
                .with_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(name())
                        .with_partitions(vec![0, 1]),
                ]),
        ]),
    )
    .await;
    let codes: Vec<i16> = verify.results_by_transaction[0].topic_results[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(codes, vec![0, 48], "verify_only: 0 is in, 1 is not");

    let producers: DescribeProducersResponse = call(
        &mut s,
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![
            describe_producers_request::TopicRequest::default()
                .with_name(name())
                .with_partition_indexes(vec![0]),
        ]),
    )
    .await;
    let active = &producers.topics[0].partitions[0].active_producers;
    assert_eq!(active.len(), 1);
    assert_eq!(
        (
            active[0].producer_id,
            active[0].last_sequence,
            active[0].current_txn_start_offset
        ),
        (pid, 1, 0)
    );

    let describe = || {
        DescribeTransactionsRequest::default().with_transactional_ids(vec![
            tid(),
            TransactionalId(StrBytes::from_static_str("nope")),
        ])
    };
    let d: DescribeTransactionsResponse =
        call(&mut s, ApiKey::DescribeTransactions, 0, &describe()).await;
    assert_eq!(
        d.transaction_states[0].transaction_state.as_str(),
        "Ongoing"
    );
    assert_eq!(d.transaction_states[0].topics[0].partitions, vec![0]);
    assert_eq!(
        d.transaction_states[1].error_code, 105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );

    let listed: ListTransactionsResponse = call(
        &mut s,
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![
                StrBytes::from_static_str("Ongoing"),
                StrBytes::from_static_str("Bogus"),
            ])
            .with_duration_filter(-1),
    )
    .await;
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(listed.unknown_state_filters.len(), 1);

    let fetch = |isolation: i8| {
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_isolation_level(isolation)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(name())
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ])
    };
    let open: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &fetch(1)).await;
    let p = &open.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (2, 0));
    assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));

    let ended: EndTxnResponse = call(
        &mut s,
        ApiKey::EndTxn,
        3,
        &EndTxnRequest::default()
            .with_transactional_id(tid())
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_committed(true),
    )
    .await;
    assert_eq!(ended.error_code, 0);
    let done: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &fetch(1)).await;
    let p = &done.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (3, 3));
    assert_eq!(p.aborted_transactions.as_ref().map(Vec::len), Some(0));
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    let d: DescribeTransactionsResponse =
        call(&mut s, ApiKey::DescribeTransactions, 0, &describe()).await;
    assert_eq!(
        d.transaction_states[0].transaction_state.as_str(),
        "CompleteCommit"
    );
    // read_committed ListOffsets of the empty partition: earliest and latest are 0, not "none".
    for ts in [-2, -1] {
        let req = ListOffsetsRequest::default()
            .with_isolation_level(1)
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name())
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(1)
                            .with_timestamp(ts),
                    ]),
            ]);
        let r: ListOffsetsResponse = call(&mut s, ApiKey::ListOffsets, 7, &req).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.offset), (0, 0), "timestamp {ts}");
    }
}

#[tokio::test]
async fn shutdown_answers_a_long_poll_at_once() {
    use kafka_protocol::messages::*;
    let (addr, _dir, stop, broker) = start_broker().await;
    let spec = kfdb_log::NewTopic {
        name: "quiet".into(),
        partitions: 1,
        replication_factor: 1,
        configs: vec![],
    };
    broker.log.topics().create(vec![spec], false).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let poll = FetchRequest::default()
        .with_max_wait_ms(30_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("quiet")))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let waiting = tokio::spawn(async move {
        let r: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &poll).await;
        r
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "nothing to read: the fetch waits");
    let _ = stop.send(());
    // Well before the 30 s the client allowed: the server is going away.
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("answered on shutdown")
        .unwrap();
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 0);
}

#[tokio::test]
async fn group_members_are_described_with_the_clients_own_address() {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{
        DescribeGroupsRequest, DescribeGroupsResponse, GroupId, JoinGroupRequest, JoinGroupResponse,
    };
    let (addr, _dir, _stop, _broker) = start_with(BrokerConfig {
        group: kfdb_broker::group::GroupConfig {
            initial_rebalance_delay: std::time::Duration::ZERO,
            ..Default::default()
        },
        ..BrokerConfig::default()
    })
    .await;
    // Connect from another loopback address than the broker's.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let group = GroupId(StrBytes::from_static_str("addressed"));
    let join = JoinGroupRequest::default()
        .with_group_id(group.clone())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_group_instance_id(Some(StrBytes::from_static_str("inst")))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"m")),
        ]);
    let joined: JoinGroupResponse = call(&mut s, ApiKey::JoinGroup, 5, &join).await;
    assert_eq!(joined.error_code, 0);
    let described: DescribeGroupsResponse = call(
        &mut s,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![group]),
    )
    .await;
    let members = &described.groups[0].members;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].client_host.as_str(), "/127.0.0.2");
}

/// A client that stops reading its socket cannot hold a shutdown up for longer than
/// `shutdown_timeout`: its connection is closed then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_a_connection_that_stopped_reading_after_the_timeout() {
    use kafka_protocol::messages::*;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_embedded(dir.path(), EmbeddedOptions::default()).unwrap();
    let log = Log::open(db, LogConfig::default()).await.unwrap();
    let spec = kfdb_log::NewTopic {
        name: "big".into(),
        partitions: 1,
        replication_factor: 1,
        configs: vec![],
    };
    let t = log
        .topics()
        .create(vec![spec], false)
        .await
        .remove(0)
        .unwrap();
    // 4 MiB of records, so that every Fetch answer is a megabyte.
    for _ in 0..64 {
        let records = encode_records(&["x".repeat(64 * 1024).as_str()], -1, -1, -1, false);
        let batches = kfdb_log::batch::parse_batches(&records).unwrap();
        log.writers().append(&t, 0, batches).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = Broker::new(
        log,
        BrokerConfig {
            listeners: vec![plaintext(addr)],
            shutdown_timeout: std::time::Duration::from_millis(500),
            ..BrokerConfig::default()
        },
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listeners = vec![(listener, plaintext(addr))];
    let server = tokio::spawn(kfdb_broker::serve(listeners, broker, async {
        let _ = stop_rx.await;
    }));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    // Fetches of a megabyte each whose answers are never read: the broker's writes block.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("big")))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let frame = request(ApiKey::Fetch, 12, 1, &fetch);
    for _ in 0..32 {
        s.write_all(&frame).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("serve returns soon after the shutdown timeout")
        .unwrap()
        .unwrap();
    drop(s);
}

/// Found by kfdb's admin CLI, which Apache Kafka 4.4 answered INVALID_RECORD: a Produce request
/// whose partition carries two record batches is refused whole (nothing appended), as Kafka
/// refuses it; and CreatePartitions with explicit assignments needs one per added partition
/// (INVALID_REPLICA_ASSIGNMENT), as in Kafka.
#[tokio::test]
async fn produce_takes_one_batch_per_partition_and_assignments_must_cover_new_partitions() {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    use kafka_protocol::messages::{
        BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, ProduceRequest,
        ProduceResponse, TopicName, produce_request,
    };
    let (addr, _dir, _stop) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let created = create_topics(&mut s, 5, &create_topics_request("one-batch", &[])).await;
    assert_eq!(created.topics[0].error_code, 0);
    let produce = |records: Bytes| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("one-batch")))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records)),
                    ]),
            ])
    };
    let mut two = bytes::BytesMut::new();
    two.extend_from_slice(&encode_records(&["a"], -1, -1, -1, false));
    two.extend_from_slice(&encode_records(&["b"], -1, -1, -1, false));
    let refused: ProduceResponse = call(&mut s, ApiKey::Produce, 9, &produce(two.freeze())).await;
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code, 87,
        "INVALID_RECORD"
    );
    let one: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce(encode_records(&["c"], -1, -1, -1, false)),
    )
    .await;
    let p = &one.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "nothing was appended before"
    );

    let grow = |assignments| {
        CreatePartitionsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("one-batch")))
                    .with_count(3)
                    .with_assignments(assignments),
            ])
    };
    let short: CreatePartitionsResponse = call(
        &mut s,
        ApiKey::CreatePartitions,
        3,
        &grow(Some(vec![
            CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)]),
        ])),
    )
    .await;
    assert_eq!(
        short.results[0].error_code, 39,
        "INVALID_REPLICA_ASSIGNMENT"
    );
    let grown: CreatePartitionsResponse =
        call(&mut s, ApiKey::CreatePartitions, 3, &grow(None)).await;
    assert_eq!(grown.results[0].error_code, 0);
}

/// A group's `consumer.heartbeat.interval.ms` (config resource GROUP, stored with the group)
/// is the interval its members are told in ConsumerGroupHeartbeat; deleting it brings back the
/// broker's `group.consumer.heartbeat.interval.ms`.
#[tokio::test]
async fn group_config_overrides_reach_the_members() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
    };
    let (addr, _dir, _stop) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let alter = |op: i8, value: Option<&'static str>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(StrBytes::from_static_str("g848"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("consumer.heartbeat.interval.ms"))
                        .with_config_operation(op)
                        .with_value(value.map(StrBytes::from_static_str)),
                ]),
        ])
    };
    let set: IncrementalAlterConfigsResponse = call(
        &mut s,
        ApiKey::IncrementalAlterConfigs,
        1,
        &alter(0, Some("6000")),
    )
    .await;
    assert_eq!(set.responses[0].error_code, 0);
    let join = |member: &'static str, epoch: i32| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g848")))
            .with_member_id(StrBytes::from_static_str(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str(
                "nothing-yet",
            ))]))
            .with_topic_partitions(Some(vec![]))
    };
    let joined: ConsumerGroupHeartbeatResponse =
        call(&mut s, ApiKey::ConsumerGroupHeartbeat, 0, &join("m-1", 0)).await;
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    assert_eq!(joined.heartbeat_interval_ms, 6000);
    let deleted: IncrementalAlterConfigsResponse =
        call(&mut s, ApiKey::IncrementalAlterConfigs, 1, &alter(1, None)).await;
    assert_eq!(deleted.responses[0].error_code, 0);
    let again: ConsumerGroupHeartbeatResponse =
        call(&mut s, ApiKey::ConsumerGroupHeartbeat, 0, &join("m-2", 0)).await;
    assert_eq!(
        again.heartbeat_interval_ms, 5000,
        "the broker's default again"
    );
}

/// `queued.max.request.bytes`: while one connection holds room for a frame it is still reading,
/// another connection's request that does not fit waits (it is not read, not refused), and is
/// answered once the first is answered and its room freed.
#[tokio::test]
async fn queued_max_request_bytes_holds_a_request_back_until_room_frees() {
    use kafka_protocol::messages::{ProduceRequest, TopicName, produce_request};
    let (addr, _dir, _stop, broker) = start_with(BrokerConfig {
        queued_max_request_bytes: Some(100 * 1024),
        ..BrokerConfig::default()
    })
    .await;
    // A Produce (acks=1, to a topic that does not exist) carrying `n` bytes of records.
    let produce = |n: usize| {
        let body = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("no-such-topic")))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(vec![0u8; n]))),
                    ]),
            ]);
        request(ApiKey::Produce, 7, 1, &body)
    };
    let big = produce(90 * 1024);
    let small = produce(50 * 1024);
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    // A sends all of its frame but the last byte: its room (90 KiB) is taken.
    a.write_all(&big[..big.len() - 1]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    b.write_all(&small).await.unwrap();
    let mut len = [0u8; 4];
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        b.read_exact(&mut len),
    )
    .await;
    assert!(
        early.is_err(),
        "B is answered only once there is room for it"
    );
    assert!(broker.metrics.request_bytes_waits.get() >= 1);
    a.write_all(&big[big.len() - 1..]).await.unwrap();
    let answer_a = roundtrip_read(&mut a).await;
    assert!(answer_a.is_some(), "A is answered");
    let answer_b = tokio::time::timeout(std::time::Duration::from_secs(5), roundtrip_read(&mut b))
        .await
        .expect("B is answered after A freed its room");
    assert!(answer_b.is_some());
}

/// One response frame's body (after its size), or `None` when the socket closed.
async fn roundtrip_read(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

/// `fetch.max.bytes`: the broker's limit caps a Fetch response whatever the consumer asks for
/// (whole batches: the one crossing the limit is the last), and the first batch is always whole.
#[tokio::test]
async fn fetch_max_bytes_caps_what_a_consumer_asks_for() {
    use kafka_protocol::messages::{
        FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName, fetch_request,
        produce_request,
    };
    let (addr, _dir, _stop, _broker) = start_with(BrokerConfig {
        fetch_max_bytes: 15_000,
        ..BrokerConfig::default()
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let created = create_topics(&mut s, 5, &create_topics_request("capped", &[])).await;
    assert_eq!(created.topics[0].error_code, 0);
    let value = "v".repeat(10_000);
    for _ in 0..3 {
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("capped")))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(encode_records(&[&value], -1, -1, -1, false))),
                    ]),
            ]);
        let r: ProduceResponse = call(&mut s, ApiKey::Produce, 7, &produce).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let fetch = |max_bytes: i32| {
        FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("capped")))
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ])
    };
    let records_len = |r: &FetchResponse| {
        r.responses[0].partitions[0]
            .records
            .as_ref()
            .map_or(0, |b| b.len())
    };
    // Three batches of ~10 KB; asked for 1 MiB, the 15,000-byte cap stops after the batch that
    // crosses it (kfdb sends whole batches only, where Kafka cuts the last one short).
    let capped: FetchResponse = call(&mut s, ApiKey::Fetch, 4, &fetch(1 << 20)).await;
    let got = records_len(&capped);
    assert!(
        got > 15_000 && got < 25_000,
        "two whole batches of ~10 KB, not all three: {got}"
    );
    let tiny: FetchResponse = call(&mut s, ApiKey::Fetch, 4, &fetch(10)).await;
    let one = records_len(&tiny);
    assert!(
        one > 10_000 && one < 11_000,
        "the first batch is whole even past the limit: {one}"
    );
}
