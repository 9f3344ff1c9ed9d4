//! ConsumerGroupDescribe (key 69, KIP-848): epochs, assignor and members with their current and
//! target assignments.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use crate::group::consumer::Tp;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: ApiKey = ApiKey::ConsumerGroupDescribe;
pub const VERSIONS: Versions = Versions::new(0, 1);
pub type Request = ConsumerGroupDescribeRequest;

async fn assignment(ctx: &RequestCtx<'_>, set: &BTreeSet<Tp>) -> Assignment {
    let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in set {
        by_topic.entry(*t).or_default().push(*p);
    }
    let mut out = Vec::new();
    for (t, ps) in by_topic {
        let name = match ctx.broker.log.topics().get_by_uuid(t).await {
            Ok(Some(m)) => m.name.clone(),
            _ => String::new(),
        };
        out.push(
            TopicPartitions::default()
                .with_topic_id(t)
                .with_topic_name(TopicName(s(name)))
                .with_partitions(ps),
        );
    }
    Assignment::default().with_topic_partitions(out)
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<ConsumerGroupDescribeResponse> {
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids {
        let base = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(i32::MIN);
        if !ctx.allowed(op::DESCRIBE, Resource::Group(&id)).await {
            groups.push(base.with_error_code(error_code::GROUP_AUTHORIZATION_FAILED));
            continue;
        }
        let base = if req.include_authorized_operations {
            base.with_authorized_operations(ctx.authorized_operations(Resource::Group(&id)).await)
        } else {
            base
        };
        if let Err(code) = ctx.broker.groups.check(&id) {
            groups.push(base.with_error_code(code));
            continue;
        }
        let found = match ctx.broker.groups.existing_consumer_group(&id).await {
            Ok(found) => found,
            Err(e) => {
                groups.push(base.with_error_code(error_code::for_group(&e)));
                continue;
            }
        };
        let Some(group) = found else {
            groups.push(
                base.with_error_code(error_code::GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(s("no such consumer group"))),
            );
            continue;
        };
        let g = group.lock().await;
        let mut members = Vec::with_capacity(g.members.len());
        for m in g.members.values() {
            members.push(
                Member::default()
                    .with_member_id(s(m.id.clone()))
                    .with_instance_id(m.instance_id.clone().map(s))
                    .with_rack_id(m.rack_id.clone().map(s))
                    .with_member_epoch(m.epoch)
                    .with_client_id(s(m.client_id.clone()))
                    .with_client_host(s(m.client_host.clone()))
                    .with_subscribed_topic_names(
                        m.subscribed
                            .iter()
                            .map(|t| TopicName(s(t.clone())))
                            .collect(),
                    )
                    .with_assignment(assignment(ctx, &m.current).await)
                    .with_target_assignment(assignment(ctx, &m.target).await),
            );
        }
        groups.push(
            base.with_group_state(s(g.state()))
                .with_group_epoch(g.group_epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_assignor_name(s(g.assignor.clone()))
                .with_members(members),
        );
    }
    Some(ConsumerGroupDescribeResponse::default().with_groups(groups))
}
