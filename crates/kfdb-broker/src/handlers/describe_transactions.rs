//! DescribeTransactions (key 65): a transactional id's coordinator state, producer id and epoch,
//! timeout, start time and the partitions of its open transaction.

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use std::collections::BTreeMap;

pub const KEY: ApiKey = ApiKey::DescribeTransactions;
pub const VERSIONS: Versions = Versions::new(0, 0);
pub type Request = DescribeTransactionsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeTransactionsResponse> {
    let log = &ctx.broker.log;
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        let base = TransactionState::default()
            .with_transactional_id(id.clone())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if !ctx
            .allowed(op::DESCRIBE, Resource::TransactionalId(&id))
            .await
        {
            states.push(
                base.with_error_code(crate::error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            );
            continue;
        }
        states.push(match log.txns().describe(&id).await {
            Ok(Some((s, parts))) => {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                let mut failed = None;
                for p in parts {
                    match log.topics().get_by_tid(p.tid).await {
                        // Topics the client may not DESCRIBE are left out, as Kafka does.
                        Ok(Some(t))
                            if !ctx.allowed(op::DESCRIBE, Resource::Topic(&t.name)).await => {}
                        Ok(Some(t)) => by_topic
                            .entry(t.name.clone())
                            .or_default()
                            .push(p.partition),
                        // A deleted topic is no longer part of anything.
                        Ok(None) => {}
                        Err(e) => failed = Some(e),
                    }
                }
                if let Some(e) = failed {
                    states.push(base.with_error_code(error_code::for_group(&e)));
                    continue;
                }
                base.with_transaction_state(super::s(s.status.name()))
                    .with_transaction_timeout_ms(s.timeout_ms)
                    .with_transaction_start_time_ms(s.start_ms)
                    .with_producer_id(ProducerId(s.producer_id))
                    .with_producer_epoch(s.producer_epoch)
                    .with_topics(
                        by_topic
                            .into_iter()
                            .map(|(name, partitions)| {
                                TopicData::default()
                                    .with_topic(TopicName(super::s(name)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    )
            }
            Ok(None) => base.with_error_code(error_code::TRANSACTIONAL_ID_NOT_FOUND),
            Err(e) => base.with_error_code(error_code::for_group(&e)),
        });
    }
    Some(DescribeTransactionsResponse::default().with_transaction_states(states))
}
