//! ElectLeaders (key 43): in kfdb a partition is always led by its preferred leader — the broker an
//! operator pinned it to (AlterPartitionReassignments) while that broker is live, else the one the
//! cluster's hashing places it on — so there is never an election to run: a partition led by its
//! preferred leader answers ELECTION_NOT_NEEDED, one whose pinned broker is down
//! PREFERRED_LEADER_NOT_AVAILABLE (its leader is the hashed one meanwhile), as Kafka answers those
//! cases. An unclean election (type 1) is never needed: some live broker always leads. Without a partition list, Kafka lists only the partitions it elected: none here.

use super::{RequestCtx, Versions, partition_of, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse};

pub const KEY: ApiKey = ApiKey::ElectLeaders;
pub const VERSIONS: Versions = Versions::new(0, 2);
pub type Request = ElectLeadersRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<ElectLeadersResponse> {
    let broker = ctx.broker;
    if !ctx.allowed(op::ALTER, Resource::Cluster).await {
        return Some(
            ElectLeadersResponse::default()
                .with_error_code(crate::error_code::CLUSTER_AUTHORIZATION_FAILED),
        );
    }
    let view = broker.log.membership().view();
    let mut results = Vec::new();
    for t in req.topic_partitions.iter().flatten() {
        let meta = broker.log.topics().get(&t.topic).await;
        let partitions = t
            .partitions
            .iter()
            .map(|&p| {
                let r = PartitionResult::default().with_partition_id(p);
                let (code, message) = match partition_of(&meta, p) {
                    Err(e) => e,
                    Ok(id) => match view.pins.get(&id) {
                        // Preferred (0) only: an unclean election (1) is needed only when a
                        // partition has no leader, and here one always leads.
                        Some(pinned)
                            if req.election_type == 0 && view.broker(*pinned).is_none() =>
                        {
                            (
                                error_code::PREFERRED_LEADER_NOT_AVAILABLE,
                                format!("broker {pinned} is not live"),
                            )
                        }
                        _ => (
                            error_code::ELECTION_NOT_NEEDED,
                            "the preferred leader leads".into(),
                        ),
                    },
                };
                r.with_error_code(code).with_error_message(Some(s(message)))
            })
            .collect();
        results.push(
            ReplicaElectionResult::default()
                .with_topic(t.topic.clone())
                .with_partition_result(partitions),
        );
    }
    Some(ElectLeadersResponse::default().with_replica_election_results(results))
}
