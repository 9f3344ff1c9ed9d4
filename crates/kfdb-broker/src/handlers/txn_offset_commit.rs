//! TxnOffsetCommit (key 28): a transactional producer's consumed offsets for a group, pending until
//! its transaction ends (then committed with its outputs, or dropped). v3+ carries the consumer's
//! member id and generation, checked like an OffsetCommit when the group is live here.

use super::commit_plan::{self, Plan};
use super::{RequestCtx, Versions};
use crate::error_code;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

pub const KEY: ApiKey = ApiKey::TxnOffsetCommit;
pub const VERSIONS: Versions = Versions::new(0, 5);
pub type Request = TxnOffsetCommitRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<TxnOffsetCommitResponse> {
    let log = &ctx.broker.log;
    let mut group_code = if req.group_id.is_empty() {
        error_code::INVALID_GROUP_ID
    } else if let Some(code) = ctx
        .txn_offsets_refusal(&req.transactional_id, &req.group_id)
        .await
    {
        code
    } else {
        // Sent to the group's coordinator, as OffsetCommit.
        ctx.broker
            .groups
            .check(&req.group_id)
            .err()
            .unwrap_or(error_code::NONE)
    };
    if group_code == error_code::NONE && ctx.version >= 3 && req.generation_id >= 0 {
        // As Kafka's transactional offset commit: a rebalance in progress does not stop it, and a
        // stale KIP-848 member epoch is ILLEGAL_GENERATION (abortable for clients, where
        // REBALANCE_IN_PROGRESS or STALE_MEMBER_EPOCH would be fatal for the Java producer).
        group_code = match ctx
            .broker
            .groups
            .check_member_generation(
                &req.group_id,
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_id,
            )
            .await
        {
            error_code::REBALANCE_IN_PROGRESS => error_code::NONE,
            error_code::STALE_MEMBER_EPOCH => error_code::ILLEGAL_GENERATION,
            other => other,
        };
    }
    let topics = commit_plan::requested_topics!(req.topics);
    let Plan { codes, to_store } = commit_plan::plan(ctx, group_code, topics).await;
    let store_code = if to_store.is_empty() {
        error_code::NONE
    } else {
        match log
            .txns()
            .commit_offsets(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                &req.group_id,
                &to_store,
            )
            .await
        {
            Ok(()) => error_code::NONE,
            // The group coordinator answers a stale producer with INVALID_PRODUCER_EPOCH.
            Err(e) => error_code::for_txn(&e, ctx.version, i16::MAX),
        }
    };
    let topics = req
        .topics
        .iter()
        .zip(codes)
        .map(|(t, parts)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, code)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(Plan::answer(code, store_code))
                        })
                        .collect(),
                )
        })
        .collect();
    Some(TxnOffsetCommitResponse::default().with_topics(topics))
}
