//! ConsumerGroupHeartbeat (key 68, KIP-848): join, heartbeat, report owned partitions and leave a
//! consumer group whose assignment the broker computes (`group::consumer`).

use super::{RequestCtx, Versions, group_configs, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use crate::group::consumer::{Heartbeat, TopicInfo};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use std::collections::{BTreeMap, BTreeSet};
use tokio::time::{Duration, Instant};

pub const KEY: ApiKey = ApiKey::ConsumerGroupHeartbeat;
pub const VERSIONS: Versions = Versions::new(0, 1);
pub type Request = ConsumerGroupHeartbeatRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<ConsumerGroupHeartbeatResponse> {
    let coordinator = &ctx.broker.groups;
    let log = &ctx.broker.log;
    let fail = |code: i16, message: &str| {
        Some(
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(error_code::answered(code))
                .with_error_message(Some(s(message)))
                .with_member_epoch(-1),
        )
    };
    if req.group_id.is_empty() {
        return fail(error_code::INVALID_GROUP_ID, "empty group id");
    }
    if !ctx.allowed(op::READ, Resource::Group(&req.group_id)).await {
        return fail(
            error_code::GROUP_AUTHORIZATION_FAILED,
            "Group authorization failed.",
        );
    }
    for t in req.subscribed_topic_names.iter().flatten() {
        if !ctx.allowed(op::DESCRIBE, Resource::Topic(t)).await {
            return fail(
                error_code::TOPIC_AUTHORIZATION_FAILED,
                "Topic authorization failed.",
            );
        }
    }
    tracing::debug!(group = %req.group_id.0, member = %req.member_id, epoch = req.member_epoch, topics = ?req.subscribed_topic_names, regex = ?req.subscribed_topic_regex, "consumer group heartbeat");
    if req
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        return fail(
            error_code::INVALID_REQUEST,
            "regex subscriptions are not supported yet",
        );
    }
    if let Err(code) = coordinator.check(&req.group_id) {
        return fail(code, "this broker does not coordinate the group");
    }
    if let Some(classic) = coordinator.loaded(&req.group_id)
        && !classic.lock().await.members.is_empty()
    {
        return fail(
            error_code::GROUP_ID_NOT_FOUND,
            "the group is a classic group with members",
        );
    }
    let group = match coordinator.consumer_group(&req.group_id).await {
        Ok(g) => g,
        Err(e) => return fail(error_code::for_group(&e), "loading the group failed"),
    };
    let overrides = coordinator.group_overrides(&req.group_id).await;
    let defaults = coordinator.config();
    let session_timeout = group_configs::millis(&overrides, group_configs::SESSION_TIMEOUT)
        .map(Duration::from_millis)
        .unwrap_or(defaults.consumer_session_timeout);
    let interval = group_configs::millis(&overrides, group_configs::HEARTBEAT_INTERVAL)
        .map(Duration::from_millis)
        .unwrap_or(defaults.consumer_heartbeat_interval);
    let mut g = group.lock().await;
    g.set_session_timeout(session_timeout);
    // Resolve every topic the group subscribes to (after this request) to its id and size.
    let mut names: BTreeSet<String> = g.subscribed_topics();
    if let Some(subs) = &req.subscribed_topic_names {
        names.extend(subs.iter().map(|t| t.to_string()));
    }
    let mut topics = BTreeMap::new();
    for name in names {
        if let Ok(Some(t)) = log.topics().get(&name).await {
            topics.insert(
                name,
                TopicInfo {
                    id: t.uuid,
                    partitions: t.partitions,
                },
            );
        }
    }
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|i| i.to_string()),
        rack_id: req.rack_id.as_ref().map(|r| r.to_string()),
        client_id: ctx
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: ctx.client_host(),
        rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64),
        subscribed: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        assignor: req.server_assignor.as_ref().map(|a| a.to_string()),
        owned: req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
                .collect()
        }),
    };
    let owned_log = hb
        .owned
        .as_ref()
        .map(|o| o.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    let reply = g.heartbeat(hb, &topics, Instant::now());
    // Before answering: a coordinator that takes over must find what this member was told.
    coordinator.persist_consumer(&mut g).await;
    tracing::debug!(
        group = %req.group_id.0,
        member = %reply.member_id,
        owned = ?owned_log,
        epoch = reply.member_epoch,
        error = reply.error,
        assignment = ?reply.assignment.as_ref().map(|a| a.iter().map(|(_, p)| *p).collect::<Vec<_>>()),
        "consumer group heartbeat answered"
    );
    let interval = interval.as_millis() as i32;
    let assignment = reply.assignment.map(|set| {
        let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
        for (t, p) in set {
            by_topic.entry(t).or_default().push(p);
        }
        Assignment::default().with_topic_partitions(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(t)
                        .with_partitions(ps)
                })
                .collect(),
        )
    });
    Some(
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error_code::answered(reply.error))
            .with_error_message(reply.message.map(s))
            .with_member_id(Some(s(reply.member_id)))
            .with_member_epoch(reply.member_epoch)
            .with_heartbeat_interval_ms(interval)
            .with_assignment(assignment),
    )
}
