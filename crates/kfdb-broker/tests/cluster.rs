//! Three brokers in one process over one embedded store (`LocalCluster`), spoken to with raw
//! requests: every broker lists the live ones; leaders are spread over them; a Produce to a broker
//! that does not lead the partition is NOT_LEADER_OR_FOLLOWER with the leader and its endpoint
//! (KIP-951); a controlled stop moves leadership at once and bumps the leader epoch, after which
//! the old epoch is FENCED_LEADER_EPOCH and OffsetsForLeaderEpoch tells where it ended; a killed
//! broker's partitions move once its lease runs out; a restarted broker takes its share back with
//! the same node id; FindCoordinator spreads groups over the brokers.

mod common;
use common::*;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kfdb_broker::BrokerConfig;
use kfdb_broker::node::{LocalCluster, LogOpener};
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_log::{Endpoint, Log, LogConfig, MembershipConfig, NewTopic};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

const TOPIC: &str = "spread";
const PARTITIONS: i32 = 30;
const SESSION: Duration = Duration::from_millis(1_500);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(n: usize) -> (tempfile::TempDir, Arc<LocalCluster>, Vec<SocketAddr>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_embedded(dir.path(), EmbeddedOptions::default()).unwrap();
    let addrs: Vec<SocketAddr> = (0..n)
        .map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap())
        .collect();
    let ports: Vec<u16> = addrs.iter().map(|a| a.port()).collect();
    let opener: LogOpener = Arc::new(move |i| {
        let (db, port) = (db.clone(), ports[i]);
        Box::pin(async move {
            let config = LogConfig {
                membership: Some(MembershipConfig {
                    node_id: None,
                    endpoints: vec![Endpoint {
                        listener: "PLAINTEXT".into(),
                        host: "127.0.0.1".into(),
                        port: i32::from(port),
                    }],
                    rack: None,
                    heartbeat: Duration::from_millis(200),
                    session_timeout: SESSION,
                }),
                ..LogConfig::default()
            };
            Log::open(db, config).await
        })
    });
    let configs = addrs
        .iter()
        .map(|a| BrokerConfig {
            listeners: vec![kfdb_broker::listeners::Listener::plaintext(
                "127.0.0.1",
                a.port(),
            )],
            shutdown_timeout: Duration::from_secs(5),
            ..BrokerConfig::default()
        })
        .collect();
    let cluster = LocalCluster::start(opener, configs).await.unwrap();
    (dir, cluster, addrs)
}

async fn metadata(addr: SocketAddr) -> MetadataResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC)))),
    ]));
    call(&mut s, ApiKey::Metadata, 12, &req).await
}

/// Each partition's (leader, epoch) and the listed brokers' ids, as `addr` reports them.
async fn leaders(addr: SocketAddr) -> (BTreeMap<i32, (i32, i32)>, BTreeSet<i32>) {
    let m = metadata(addr).await;
    let brokers = m.brokers.iter().map(|b| b.node_id.0).collect();
    let parts = m.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, (p.leader_id.0, p.leader_epoch)))
        .collect();
    (parts, brokers)
}

/// Wait until `addr` lists exactly `nodes` and every partition is led by one of them.
async fn settle(addr: SocketAddr, nodes: &BTreeSet<i32>) -> BTreeMap<i32, (i32, i32)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (parts, brokers) = leaders(addr).await;
        if &brokers == nodes && parts.values().all(|(l, _)| nodes.contains(l)) {
            return parts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster did not settle on {nodes:?}: brokers {brokers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn produce(
    addr: SocketAddr,
    partition: i32,
    value: &str,
) -> produce_response::PartitionProduceResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(encode_records(&[value], -1, -1, -1, false))),
                ]),
        ]);
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 10, &req).await;
    let p = r.responses[0].partition_responses[0].clone();
    if p.error_code == 6 {
        let leader = p.current_leader.leader_id.0;
        assert!(
            r.node_endpoints.iter().any(|e| e.node_id.0 == leader),
            "KIP-951: the leader's endpoint comes with NOT_LEADER_OR_FOLLOWER"
        );
    }
    p
}

async fn list_latest(addr: SocketAddr, partition: i32, current_epoch: i32) -> (i16, i64, i32) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(current_epoch)
                    .with_timestamp(-1),
            ]),
    ]);
    let r: ListOffsetsResponse = call(&mut s, ApiKey::ListOffsets, 7, &req).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.leader_epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_lead_fail_over_and_take_back() {
    let (_dir, cluster, addrs) = start(3).await;
    let all: BTreeSet<i32> = [0, 1, 2].into();
    let b0 = cluster.broker(0).await.unwrap();
    let spec = NewTopic {
        name: TOPIC.into(),
        partitions: PARTITIONS,
        replication_factor: -1,
        configs: vec![],
    };
    b0.log
        .topics()
        .create(vec![spec], false)
        .await
        .remove(0)
        .unwrap();
    // Every broker lists all three, and they agree on the leaders, which are spread.
    let before = settle(addrs[0], &all).await;
    for a in &addrs[1..] {
        assert_eq!(
            settle(*a, &all).await,
            before,
            "brokers disagree on leaders"
        );
    }
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for (l, _) in before.values() {
        *led.entry(*l).or_default() += 1;
    }
    assert_eq!(led.len(), 3, "every broker leads some partitions: {led:?}");
    // A Produce to the wrong broker is refused with the leader; to the leader it lands.
    let (leader, _) = before[&0];
    let wrong = (leader + 1) % 3;
    let refused = produce(addrs[wrong as usize], 0, "x").await;
    assert_eq!(refused.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(refused.current_leader.leader_id.0, leader);
    let ok = produce(addrs[leader as usize], 0, "a").await;
    assert_eq!((ok.error_code, ok.base_offset), (0, 0));
    let (code, latest, epoch0) = list_latest(addrs[leader as usize], 0, -1).await;
    assert_eq!((code, latest), (0, 1));
    // Controlled stop of partition 0's leader: the others take over at once, with a new epoch.
    cluster.stop_broker(leader as usize).await.unwrap();
    let rest: BTreeSet<i32> = all.iter().copied().filter(|n| *n != leader).collect();
    let survivor = *rest.iter().next().unwrap();
    let after = settle(addrs[survivor as usize], &rest).await;
    let (new_leader, _) = after[&0];
    for (p, (l, _)) in &before {
        if *l != leader {
            assert_eq!(
                after[p].0, *l,
                "partition {p} moved although its leader stayed"
            );
        }
    }
    let ok = produce(addrs[new_leader as usize], 0, "b").await;
    assert_eq!(
        (ok.error_code, ok.base_offset),
        (0, 1),
        "offsets continue densely"
    );
    let (code, latest, epoch1) = list_latest(addrs[new_leader as usize], 0, -1).await;
    assert_eq!((code, latest), (0, 2));
    assert!(
        epoch1 > epoch0,
        "the leader epoch moved: {epoch0} -> {epoch1}"
    );
    let (code, ..) = list_latest(addrs[new_leader as usize], 0, epoch0).await;
    assert_eq!(code, 74, "FENCED_LEADER_EPOCH for the old epoch");
    let (code, ..) = list_latest(addrs[new_leader as usize], 0, epoch1 + 1).await;
    assert_eq!(code, 75, "UNKNOWN_LEADER_EPOCH for a future one");
    // Where the old epoch ended (KIP-320).
    let mut s = TcpStream::connect(addrs[new_leader as usize])
        .await
        .unwrap();
    let req = OffsetForLeaderEpochRequest::default().with_topics(vec![
        offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![
                offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(epoch1)
                    .with_leader_epoch(epoch0),
            ]),
    ]);
    let r: OffsetForLeaderEpochResponse = call(&mut s, ApiKey::OffsetForLeaderEpoch, 4, &req).await;
    let e = &r.topics[0].partitions[0];
    assert_eq!(
        (e.error_code, e.end_offset),
        (0, 1),
        "epoch {epoch0} ended at offset 1"
    );
    // Kill another broker: its partitions move once its lease runs out.
    let victim = *rest.iter().find(|n| **n != new_leader).unwrap();
    cluster.kill_broker(victim as usize).await;
    let only: BTreeSet<i32> = [new_leader].into();
    let alone = settle(addrs[new_leader as usize], &only).await;
    assert!(alone.values().all(|(l, _)| *l == new_leader));
    // Both come back with their node ids and take their partitions back.
    cluster.start_broker(leader as usize).await.unwrap();
    cluster.start_broker(victim as usize).await.unwrap();
    let back = settle(addrs[new_leader as usize], &all).await;
    for (p, (l, _)) in &before {
        assert_eq!(back[p].0, *l, "partition {p} is led by its broker again");
    }
    let ok = produce(addrs[leader as usize], 0, "c").await;
    assert_eq!((ok.error_code, ok.base_offset), (0, 2));
    // Groups are coordinated all over the cluster.
    let mut s = TcpStream::connect(addrs[0]).await.unwrap();
    let keys: Vec<StrBytes> = (0..30)
        .map(|i| StrBytes::from_string(format!("group-{i}")))
        .collect();
    let req = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(keys);
    let r: FindCoordinatorResponse = call(&mut s, ApiKey::FindCoordinator, 4, &req).await;
    let coordinators: BTreeSet<i32> = r.coordinators.iter().map(|c| c.node_id.0).collect();
    assert!(r.coordinators.iter().all(|c| c.error_code == 0));
    assert_eq!(
        coordinators, all,
        "every broker coordinates some of 30 groups"
    );
    cluster.shutdown().await;
}
