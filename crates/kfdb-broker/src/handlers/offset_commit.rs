//! OffsetCommit (key 8): store a group's committed offsets (one store transaction per request,
//! touching only that group's keys), after the group checks the member and generation.

use super::commit_plan::{self, Plan};
use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};

pub const KEY: ApiKey = ApiKey::OffsetCommit;
pub const VERSIONS: Versions = Versions::new(2, 9);
pub type Request = OffsetCommitRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<OffsetCommitResponse> {
    let log = &ctx.broker.log;
    let mut load_error = if req.group_id.is_empty() {
        None
    } else {
        ctx.broker.groups.check(&req.group_id).err()
    };
    let consumer_group = if load_error.is_none() && !req.group_id.is_empty() {
        match ctx
            .broker
            .groups
            .existing_consumer_group(&req.group_id)
            .await
        {
            Ok(Some(g)) if !g.lock().await.members.is_empty() => Some(g),
            Ok(_) => None,
            Err(e) => {
                load_error = Some(error_code::for_group(&e));
                None
            }
        }
    } else {
        None
    };
    let classic_group =
        if load_error.is_none() && consumer_group.is_none() && !req.group_id.is_empty() {
            match ctx.broker.groups.group(&req.group_id).await {
                Ok(g) => Some(g),
                Err(e) => {
                    load_error = Some(error_code::for_group(&e));
                    None
                }
            }
        } else {
            None
        };
    // The group stays locked until the offsets are stored, so a commit checked against one
    // generation cannot land after the next generation was handed out (as in Kafka).
    let consumer_guard = match &consumer_group {
        Some(g) => Some(g.lock().await),
        None => None,
    };
    let classic_guard = match &classic_group {
        Some(g) => Some(g.lock().await),
        None => None,
    };
    let group_code = if req.group_id.is_empty() {
        error_code::INVALID_GROUP_ID
    } else if !ctx.allowed(op::READ, Resource::Group(&req.group_id)).await {
        error_code::GROUP_AUTHORIZATION_FAILED
    } else if let Some(g) = &consumer_guard {
        g.check_commit(&req.member_id, req.generation_id_or_member_epoch)
    } else if let Some(g) = &classic_guard {
        g.check_commit(
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id_or_member_epoch,
        )
    } else {
        load_error.unwrap_or(error_code::NOT_COORDINATOR)
    };
    if let Some(t) = req.topics.first() {
        ctx.note_topic(&t.name);
    }
    let topics = commit_plan::requested_topics!(req.topics);
    let Plan { codes, to_store } = commit_plan::plan(ctx, group_code, topics).await;
    let store_code = if to_store.is_empty() {
        error_code::NONE
    } else {
        match log.groups().commit_offsets(&req.group_id, &to_store).await {
            Ok(()) => error_code::NONE,
            Err(e) => error_code::for_group(&e),
        }
    };
    drop(consumer_guard);
    drop(classic_guard);
    let topics = req
        .topics
        .iter()
        .zip(codes)
        .map(|(t, codes)| {
            let partitions = codes
                .into_iter()
                .map(|(p, code)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(Plan::answer(code, store_code))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Some(OffsetCommitResponse::default().with_topics(topics))
}
