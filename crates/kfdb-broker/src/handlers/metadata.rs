//! Metadata (key 3): brokers (this one), the cluster id, and topics with their partitions. Every
//! partition is led by this broker; the store replicates, so replicas and ISR are this broker.
//! Named topics are auto-created when allowed; "all topics" is read from the store page by page.

use super::{RequestCtx, Versions, s};
use crate::{Broker, error_code};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kfdb_log::{LogError, TopicMeta};
use std::sync::Arc;

pub const KEY: ApiKey = ApiKey::Metadata;
pub const VERSIONS: Versions = Versions::new(0, 13);
pub type Request = MetadataRequest;

/// Topics per page when listing all topics.
const PAGE: usize = 1_000;

pub(crate) fn topic_entry(broker: &Broker, version: i16, t: &TopicMeta) -> MetadataResponseTopic {
    let me = BrokerId(broker.config.node_id);
    let partitions = (0..t.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(me)
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![me])
                .with_isr_nodes(vec![me])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(s(t.name.clone()))))
        .with_topic_id(if version >= 10 {
            t.uuid
        } else {
            uuid::Uuid::nil()
        })
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}

fn error_entry(
    version: i16,
    name: Option<String>,
    topic_id: uuid::Uuid,
    code: i16,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(|n| TopicName(s(n))))
        .with_topic_id(if version >= 10 {
            topic_id
        } else {
            uuid::Uuid::nil()
        })
        .with_topic_authorized_operations(i32::MIN)
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<MetadataResponse> {
    let broker = ctx.broker;
    let log = &broker.log;
    let mut topics = Vec::new();
    let all = match &req.topics {
        None => true,
        Some(list) => ctx.version == 0 && list.is_empty(),
    };
    if all {
        let mut after: Option<String> = None;
        loop {
            match log.list_topics(after.as_deref(), PAGE).await {
                Ok(page) => {
                    topics.extend(page.iter().map(|t| topic_entry(broker, ctx.version, t)));
                    if topics.len() >= broker.config.metadata_max_topics {
                        topics.truncate(broker.config.metadata_max_topics);
                        tracing::warn!(
                            cap = broker.config.metadata_max_topics,
                            "Metadata for all topics cut at --metadata-max-topics"
                        );
                        break;
                    }
                    match page.last() {
                        Some(t) if page.len() == PAGE => after = Some(t.name.clone()),
                        _ => break,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing topics for metadata failed");
                    break;
                }
            }
        }
    } else {
        let auto_create = ctx.version < 4 || req.allow_auto_topic_creation;
        for t in req.topics.iter().flatten() {
            // A topic given by id (v10+) is looked up by id whatever its name field holds: the
            // Java client leaves the name at its default "" instead of null (describeTopics by
            // id), and Kafka resolves every non-zero id before looking at names.
            let by_id = ctx.version >= 10 && !t.topic_id.is_nil();
            let found: Result<Option<Arc<TopicMeta>>, LogError> = match &t.name {
                _ if by_id => log.topic_by_uuid(t.topic_id).await,
                Some(name) if auto_create => log.topic_or_create(name).await,
                Some(name) => log.topic(name).await,
                None => log.topic_by_uuid(t.topic_id).await,
            };
            let name = t.name.as_ref().filter(|_| !by_id).map(|n| n.to_string());
            topics.push(match found {
                Ok(Some(meta)) => topic_entry(broker, ctx.version, &meta),
                Ok(None) if name.is_none() => {
                    error_entry(ctx.version, None, t.topic_id, error_code::UNKNOWN_TOPIC_ID)
                }
                Ok(None) => error_entry(
                    ctx.version,
                    name,
                    t.topic_id,
                    error_code::UNKNOWN_TOPIC_OR_PARTITION,
                ),
                Err(e) => error_entry(
                    ctx.version,
                    name,
                    t.topic_id,
                    error_code::from_log_error(&e),
                ),
            });
        }
    }
    let me = BrokerId(broker.config.node_id);
    Some(
        MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(me)
                    .with_host(s(broker.config.advertised_host.clone()))
                    .with_port(broker.config.advertised_port),
            ])
            .with_cluster_id((ctx.version >= 2).then(|| s(log.cluster_id())))
            .with_controller_id(me)
            .with_topics(topics)
            .with_cluster_authorized_operations(i32::MIN),
    )
}
