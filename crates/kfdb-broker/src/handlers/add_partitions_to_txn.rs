//! AddPartitionsToTxn (key 24): add partitions to a producer's transaction before it produces to
//! them (v0-3, one transaction per request, as clients send it), or, in the batched v4+ form,
//! several transactions per request, optionally only verifying membership (`verify_only`).
//! A request naming an unknown partition adds nothing: that partition gets
//! UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in Kafka (a store
//! failure while looking a topic up is answered as the store failure, never as unknown).

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey};
use kfdb_log::{PartitionId, TxnAddition};

pub const KEY: ApiKey = ApiKey::AddPartitionsToTxn;
pub const VERSIONS: Versions = Versions::new(0, 5);
pub type Request = AddPartitionsToTxnRequest;

/// First version told PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH (KIP-588).
const FENCED_FROM: i16 = 2;

/// A requested partition and its store identity, or the error code it is answered with.
type Resolved = (i32, Result<PartitionId, i16>);

async fn add(
    ctx: &RequestCtx<'_>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let log = &ctx.broker.log;
    let txn_denied = !ctx.allowed(op::WRITE, Resource::TransactionalId(id)).await;
    // Per partition: its store identity, or the error code it gets if it cannot be added (an
    // unknown topic or partition; a store failure looking the topic up, which is not "unknown").
    let mut resolved: Vec<Vec<Resolved>> = Vec::with_capacity(topics.len());
    for t in topics {
        let meta = log.topics().get(&t.name).await;
        let denied = if txn_denied {
            Some(error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        } else if !ctx.allowed(op::WRITE, Resource::Topic(&t.name)).await {
            Some(error_code::TOPIC_AUTHORIZATION_FAILED)
        } else {
            None
        };
        resolved.push(
            t.partitions
                .iter()
                .map(|&p| {
                    let found = match (&meta, denied) {
                        (_, Some(code)) => Err(code),
                        (Ok(m), None) => m
                            .as_ref()
                            .and_then(|m| m.partition(p))
                            .ok_or(error_code::UNKNOWN_TOPIC_OR_PARTITION),
                        (Err(e), None) => Err(error_code::for_txn(e, ctx.version, FENCED_FROM)),
                    };
                    (p, found)
                })
                .collect(),
        );
    }
    let wanted: Vec<PartitionId> = resolved
        .iter()
        .flatten()
        .filter_map(|(_, k)| k.ok())
        .collect();
    let all_known = wanted.len() == resolved.iter().map(Vec::len).sum::<usize>();
    let codes: Vec<i16> = if !all_known {
        resolved
            .iter()
            .flatten()
            .map(|(_, k)| match k {
                Ok(_) => error_code::OPERATION_NOT_ATTEMPTED,
                Err(code) => *code,
            })
            .collect()
    } else if verify_only {
        match log.txns().contains(id, producer_id, epoch, &wanted).await {
            Ok(found) => found
                .into_iter()
                .map(|ok| {
                    if ok {
                        error_code::NONE
                    } else {
                        error_code::INVALID_TXN_STATE
                    }
                })
                .collect(),
            Err(e) => vec![error_code::for_txn(&e, ctx.version, FENCED_FROM); wanted.len()],
        }
    } else {
        let code = match log
            .txns()
            .add(id, producer_id, epoch, TxnAddition::Partitions(&wanted))
            .await
        {
            Ok(()) => error_code::NONE,
            Err(e) => {
                tracing::debug!(transactional_id = id, error = %e, "AddPartitionsToTxn refused");
                error_code::for_txn(&e, ctx.version, FENCED_FROM)
            }
        };
        vec![code; wanted.len()]
    };
    let mut codes = codes.into_iter();
    topics
        .iter()
        .zip(resolved)
        .map(|(t, parts)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    parts
                        .into_iter()
                        .map(|(p, _)| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(
                                    codes.next().unwrap_or(error_code::UNKNOWN_SERVER_ERROR),
                                )
                        })
                        .collect(),
                )
        })
        .collect()
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<AddPartitionsToTxnResponse> {
    if ctx.version <= 3 {
        let results = add(
            ctx,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
            false,
        )
        .await;
        return Some(
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
        );
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let results = add(
            ctx,
            &t.transactional_id,
            t.producer_id.0,
            t.producer_epoch,
            &t.topics,
            t.verify_only,
        )
        .await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results),
        );
    }
    Some(AddPartitionsToTxnResponse::default().with_results_by_transaction(out))
}
