//! AlterPartitionReassignments (key 45): with no replicas of its own, a reassignment in kfdb pins
//! the partition's leader to the first broker named (every broker follows within a heartbeat;
//! replicas beyond the first have nothing to move). The pin lasts, as a finished reassignment does
//! in Kafka. `replicas: null` removes the pin, finished or not (leadership goes back to the
//! cluster's hashing; Kafka can only cancel one in progress), NO_REASSIGNMENT_IN_PROGRESS when
//! there is none. The first broker must be live (INVALID_REPLICA_ASSIGNMENT otherwise).

use super::{RequestCtx, Versions, partition_of, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey,
};

pub const KEY: ApiKey = ApiKey::AlterPartitionReassignments;
pub const VERSIONS: Versions = Versions::new(0, 1);
pub type Request = AlterPartitionReassignmentsRequest;

pub async fn handle(
    ctx: &RequestCtx<'_>,
    req: Request,
) -> Option<AlterPartitionReassignmentsResponse> {
    let broker = ctx.broker;
    if !ctx.allowed(op::ALTER, Resource::Cluster).await {
        return Some(
            AlterPartitionReassignmentsResponse::default()
                .with_error_code(crate::error_code::CLUSTER_AUTHORIZATION_FAILED)
                .with_error_message(Some(s("Cluster authorization failed."))),
        );
    }
    let log = &broker.log;
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = log.topics().get(&t.name).await;
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let outcome: Result<(), (i16, String)> = match partition_of(&meta, p.partition_index) {
                Err(e) => Err(e),
                Ok(id) => match &p.replicas {
                    None if !log.membership().view().pins.contains_key(&id) => Err((
                        error_code::NO_REASSIGNMENT_IN_PROGRESS,
                        "no reassignment of this partition".into(),
                    )),
                    None => log
                        .leadership()
                        .pin(id, None)
                        .await
                        .map_err(|e| (error_code::from_log_error(&e), e.to_string())),
                    Some(replicas) => match replicas.first() {
                        Some(first) if broker.live_nodes().contains(&first.0) => log
                            .leadership()
                            .pin(id, Some(first.0))
                            .await
                            .map_err(|e| (error_code::from_log_error(&e), e.to_string())),
                        _ => Err((
                            error_code::INVALID_REPLICA_ASSIGNMENT,
                            "the first replica must be a live broker".into(),
                        )),
                    },
                },
            };
            let r =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match outcome {
                Ok(()) => r,
                Err((code, message)) => {
                    r.with_error_code(code).with_error_message(Some(s(message)))
                }
            });
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    Some(AlterPartitionReassignmentsResponse::default().with_responses(responses))
}
