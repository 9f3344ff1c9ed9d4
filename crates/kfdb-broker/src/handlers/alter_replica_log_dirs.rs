//! AlterReplicaLogDirs (key 34): a broker has one log dir, its store, which holds every partition;
//! moving a partition "there" is already done (no error), any other path is LOG_DIR_NOT_FOUND, as
//! Kafka answers for a dir it does not have; an unknown topic or partition is
//! UNKNOWN_TOPIC_OR_PARTITION.

use super::{RequestCtx, Versions, partition_of};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, ApiKey};

pub const KEY: ApiKey = ApiKey::AlterReplicaLogDirs;
pub const VERSIONS: Versions = Versions::new(1, 2);
pub type Request = AlterReplicaLogDirsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<AlterReplicaLogDirsResponse> {
    let broker = ctx.broker;
    let ours = broker.config.log_dir.as_str();
    let mut results = Vec::new();
    let allowed = ctx.allowed(op::ALTER, Resource::Cluster).await;
    for dir in req.dirs {
        let dir_code = if !allowed {
            error_code::CLUSTER_AUTHORIZATION_FAILED
        } else if dir.path.as_str() == ours {
            error_code::NONE
        } else {
            error_code::LOG_DIR_NOT_FOUND
        };
        for t in dir.topics {
            let meta = broker.log.topics().get(&t.name).await;
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let code = match partition_of(&meta, p) {
                        Ok(_) => dir_code,
                        Err((code, _)) => code,
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name)
                    .with_partitions(partitions),
            );
        }
    }
    Some(AlterReplicaLogDirsResponse::default().with_results(results))
}
