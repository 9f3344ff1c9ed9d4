//! DeleteRecords (key 21): advance partitions' log start offsets, deleting whole batches below.

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};
use kfdb_log::LogError;

pub const KEY: ApiKey = ApiKey::DeleteRecords;
pub const VERSIONS: Versions = Versions::new(0, 2);
pub type Request = DeleteRecordsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DeleteRecordsResponse> {
    let log = &ctx.broker.log;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = log.topics().get(&t.name).await;
        let allowed = ctx.allowed(op::DELETE, Resource::Topic(&t.name)).await;
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            if !allowed {
                partitions.push(
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1)
                        .with_error_code(error_code::TOPIC_AUTHORIZATION_FAILED),
                );
                continue;
            }
            let led = match &meta {
                Ok(Some(m)) => match m.partition(p.partition_index) {
                    Some(id) => ctx.broker.lead(id, -1).await.map(|_| ()),
                    None => Ok(()),
                },
                _ => Ok(()),
            };
            if let Err(code) = led {
                partitions.push(
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1)
                        .with_error_code(code),
                );
                continue;
            }
            let result = match &meta {
                Ok(Some(m)) => {
                    log.retention()
                        .delete_records(m, p.partition_index, p.offset)
                        .await
                }
                Ok(None) => Err(LogError::UnknownTopic),
                Err(e) => Err(e.clone()),
            };
            let r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            partitions.push(match result {
                Ok(low) => r.with_low_watermark(low),
                Err(e) => r
                    .with_low_watermark(-1)
                    .with_error_code(error_code::from_log_error(&e)),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    Some(DeleteRecordsResponse::default().with_topics(topics))
}
