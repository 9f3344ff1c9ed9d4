//! DescribeProducers (key 61): the producers a partition remembers (epoch, last sequence, last
//! append time) and the first offset of each one's open transaction (`kafka-transactions.sh
//! find-hanging`). Served by the partition's leader, as Kafka does.

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};

pub const KEY: ApiKey = ApiKey::DescribeProducers;
pub const VERSIONS: Versions = Versions::new(0, 0);
pub type Request = DescribeProducersRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeProducersResponse> {
    let log = &ctx.broker.log;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = log.topics().get(&t.name).await;
        let allowed = ctx.allowed(op::READ, Resource::Topic(&t.name)).await;
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for p in t.partition_indexes {
            if !allowed {
                partitions.push(
                    PartitionResponse::default()
                        .with_partition_index(p)
                        .with_error_code(crate::error_code::TOPIC_AUTHORIZATION_FAILED),
                );
                continue;
            }
            let found = match &meta {
                Ok(Some(m)) => match m.partition(p) {
                    Some(id) => match ctx.broker.lead(id, -1).await {
                        Ok(_) => log.producers().active(m, p).await,
                        Err(code) => {
                            partitions.push(
                                PartitionResponse::default()
                                    .with_partition_index(p)
                                    .with_error_code(code),
                            );
                            continue;
                        }
                    },
                    None => log.producers().active(m, p).await,
                },
                Ok(None) => Err(kfdb_log::LogError::UnknownTopic),
                Err(e) => Err(e.clone()),
            };
            let r = PartitionResponse::default().with_partition_index(p);
            partitions.push(match found {
                Ok(list) => r.with_active_producers(
                    list.into_iter()
                        .map(|a| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_producer_epoch(i32::from(a.producer_epoch))
                                .with_last_sequence(a.last_sequence)
                                .with_last_timestamp(a.last_timestamp)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(a.txn_start_offset)
                        })
                        .collect(),
                ),
                Err(e) => r.with_error_code(error_code::from_log_error(&e)),
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    Some(DescribeProducersResponse::default().with_topics(topics))
}
