//! ListPartitionReassignments (key 46): the reassignments still in progress — leader pins
//! (AlterPartitionReassignments) whose broker does not lead the partition yet, as this broker sees
//! the cluster: the pinned broker is down, or the pin has not reached every broker's view. A pin
//! whose broker leads is a finished reassignment, as in Kafka, and is no longer listed.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    TopicName,
};
use std::collections::BTreeMap;

pub const KEY: ApiKey = ApiKey::ListPartitionReassignments;
pub const VERSIONS: Versions = Versions::new(0, 0);
pub type Request = ListPartitionReassignmentsRequest;

pub async fn handle(
    ctx: &RequestCtx<'_>,
    req: Request,
) -> Option<ListPartitionReassignmentsResponse> {
    let broker = ctx.broker;
    if !ctx.allowed(op::DESCRIBE, Resource::Cluster).await {
        return Some(
            ListPartitionReassignmentsResponse::default()
                .with_error_code(crate::error_code::CLUSTER_AUTHORIZATION_FAILED)
                .with_error_message(Some(s("Cluster authorization failed."))),
        );
    }
    let log = &broker.log;
    let view = log.membership().view();
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (p, node) in &view.pins {
        if broker.leader(*p) == Some(*node) {
            continue;
        }
        let Ok(Some(meta)) = log.topics().get_by_tid(p.tid).await else {
            continue;
        };
        let asked = match &req.topics {
            None => true,
            Some(ts) => ts.iter().any(|t| {
                t.name.as_str() == meta.name && t.partition_indexes.contains(&p.partition)
            }),
        };
        if asked {
            by_topic.entry(meta.name.clone()).or_default().push(
                OngoingPartitionReassignment::default()
                    .with_partition_index(p.partition)
                    .with_replicas(vec![BrokerId(*node)]),
            );
        }
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut parts)| {
            parts.sort_by_key(|p| p.partition_index);
            OngoingTopicReassignment::default()
                .with_name(TopicName(s(name)))
                .with_partitions(parts)
        })
        .collect();
    Some(ListPartitionReassignmentsResponse::default().with_topics(topics))
}
