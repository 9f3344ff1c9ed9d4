//! Metadata (key 3): the live brokers (with racks), the cluster id, the controller (the live broker
//! with the lowest node id), and topics with their partitions: each partition's leader as the
//! cluster places it and its leader epoch. The store replicates, so a partition's only replica (and
//! ISR) is its leader. Named topics are auto-created when allowed; "all topics" is read from the
//! store page by page. With ACLs: only topics the client may DESCRIBE are listed (a named one it
//! may not: TOPIC_AUTHORIZATION_FAILED), and auto-creation needs CREATE on the cluster or the
//! topic. Authorized operations (KIP-430) when asked.

use super::{HandleError, RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::{Broker, error_code};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kfdb_log::{LogError, PartitionId, TopicMeta};
use std::sync::Arc;

pub const KEY: ApiKey = ApiKey::Metadata;
pub const VERSIONS: Versions = Versions::new(0, 13);
pub type Request = MetadataRequest;

/// Topics per page when listing all topics.
const PAGE: usize = 1_000;

/// Topic entries for `topics`, with every partition's leader and leader epoch.
async fn topic_entries(
    broker: &Broker,
    version: i16,
    topics: &[Arc<TopicMeta>],
) -> Vec<MetadataResponseTopic> {
    let partitions: Vec<PartitionId> = topics
        .iter()
        .flat_map(|t| (0..t.partitions).map(|p| PartitionId::new(t.id, p)))
        .collect();
    let epochs = match broker.log.leadership().reported_epochs(&partitions).await {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::warn!(error = %e, "reading leader epochs for metadata failed");
            None
        }
    };
    let mut epochs = epochs.into_iter().flatten();
    topics
        .iter()
        .map(|t| {
            let parts = (0..t.partitions)
                .map(|p| {
                    let epoch = epochs.next();
                    let leader = broker.leader(PartitionId::new(t.id, p));
                    let entry = MetadataResponsePartition::default().with_partition_index(p);
                    match (leader, epoch) {
                        (Some(l), Some(e)) => entry
                            .with_leader_id(BrokerId(l))
                            .with_leader_epoch(if version >= 7 { e } else { -1 })
                            .with_replica_nodes(vec![BrokerId(l)])
                            .with_isr_nodes(vec![BrokerId(l)]),
                        _ => entry
                            .with_error_code(error_code::LEADER_NOT_AVAILABLE)
                            .with_leader_id(BrokerId(-1))
                            .with_leader_epoch(-1),
                    }
                })
                .collect();
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(s(t.name.clone()))))
                .with_topic_id(if version >= 10 {
                    t.uuid
                } else {
                    uuid::Uuid::nil()
                })
                .with_partitions(parts)
                .with_topic_authorized_operations(i32::MIN)
        })
        .collect()
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

pub async fn handle(
    ctx: &RequestCtx<'_>,
    req: Request,
) -> Result<Option<MetadataResponse>, HandleError> {
    let broker = ctx.broker;
    let log = &broker.log;
    let mut topics = Vec::new();
    // Found topics are described together (their leader epochs read at once), in order.
    let mut found_topics: Vec<(usize, Arc<TopicMeta>)> = Vec::new();
    let all = match &req.topics {
        None => true,
        Some(list) => ctx.version == 0 && list.is_empty(),
    };
    if all {
        let mut after: Option<String> = None;
        loop {
            match log.topics().list(after.as_deref(), PAGE).await {
                Ok(page) => {
                    let mut visible = Vec::with_capacity(page.len());
                    for t in &page {
                        if ctx.allowed(op::DESCRIBE, Resource::Topic(&t.name)).await {
                            visible.push(t.clone());
                        }
                    }
                    topics.extend(topic_entries(broker, ctx.version, &visible).await);
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
                    // A partial or empty list would tell the client topics were deleted.
                    return Err(HandleError::StoreUnavailable(
                        ApiKey::Metadata,
                        e.to_string(),
                    ));
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
            let name = t.name.as_ref().filter(|_| !by_id).map(|n| n.to_string());
            // ACLs: DESCRIBE on the topic, by the name asked for (before anything is created)
            // or, for a topic asked for by id, by the name found.
            let mut denied = match &name {
                Some(n) => !ctx.allowed(op::DESCRIBE, Resource::Topic(n)).await,
                None => false,
            };
            let may_create = |n: &str| {
                let n = n.to_string();
                async move {
                    ctx.allowed(op::CREATE, Resource::Cluster).await
                        || ctx.allowed(op::CREATE, Resource::Topic(&n)).await
                }
            };
            // A missing topic the client may see but not create: TOPIC_AUTHORIZATION_FAILED.
            let mut create_denied = false;
            let found: Result<Option<Arc<TopicMeta>>, LogError> = match &t.name {
                _ if denied => Ok(None),
                _ if by_id => log.topics().get_by_uuid(t.topic_id).await,
                Some(name) if auto_create && may_create(name).await => {
                    log.topics().get_or_create(name).await
                }
                Some(name) => {
                    create_denied = auto_create;
                    log.topics().get(name).await
                }
                None => log.topics().get_by_uuid(t.topic_id).await,
            };
            if create_denied && matches!(found, Ok(None)) {
                denied = true;
            }
            if let (Ok(Some(meta)), None) = (&found, &name) {
                denied = !ctx.allowed(op::DESCRIBE, Resource::Topic(&meta.name)).await;
            }
            if denied {
                topics.push(error_entry(
                    ctx.version,
                    name,
                    t.topic_id,
                    error_code::TOPIC_AUTHORIZATION_FAILED,
                ));
                continue;
            }
            topics.push(match found {
                Ok(Some(meta)) => {
                    found_topics.push((topics.len(), meta));
                    MetadataResponseTopic::default()
                }
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
    if !found_topics.is_empty() {
        let metas: Vec<Arc<TopicMeta>> = found_topics.iter().map(|(_, m)| m.clone()).collect();
        let entries = topic_entries(broker, ctx.version, &metas).await;
        for ((i, _), entry) in found_topics.iter().zip(entries) {
            topics[*i] = entry;
        }
    }
    if ctx.version >= 8 && req.include_topic_authorized_operations {
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(name) = &t.name {
                t.topic_authorized_operations =
                    ctx.authorized_operations(Resource::Topic(name)).await;
            }
        }
    }
    let cluster_operations =
        if (8..=10).contains(&ctx.version) && req.include_cluster_authorized_operations {
            ctx.authorized_operations(Resource::Cluster).await
        } else {
            i32::MIN
        };
    let brokers = broker
        .nodes(&ctx.client.listener)
        .into_iter()
        .map(|n| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(n.id))
                .with_host(s(n.host))
                .with_port(n.port)
                .with_rack(n.rack.map(s))
        })
        .collect();
    Ok(Some(
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id((ctx.version >= 2).then(|| s(log.cluster_id())))
            .with_controller_id(BrokerId(broker.controller()))
            .with_topics(topics)
            .with_cluster_authorized_operations(cluster_operations),
    ))
}
