//! CreatePartitions (key 37): grow a topic's partition count. Assignments may only name live
//! brokers.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};

pub const KEY: ApiKey = ApiKey::CreatePartitions;
pub const VERSIONS: Versions = Versions::new(0, 3);
pub type Request = CreatePartitionsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<CreatePartitionsResponse> {
    let live: Vec<i32> = ctx.broker.live_nodes();
    let mut results = Vec::with_capacity(req.topics.len());
    // Kafka's controller refuses a request that would add more than 10,000 partitions in all.
    let mut added: i64 = 0;
    for t in &req.topics {
        if let Ok(Some(meta)) = ctx.broker.log.topics().get(&t.name).await {
            added += i64::from(t.count.saturating_sub(meta.partitions).max(0));
        }
    }
    if added > super::MAX_PARTITIONS_PER_REQUEST {
        for t in req.topics {
            results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(error_code::POLICY_VIOLATION)
                    .with_error_message(Some(s(super::TOO_MANY_PARTITIONS.to_string()))),
            );
        }
        return Some(CreatePartitionsResponse::default().with_results(results));
    }
    // `controller_mutation_rate` (strict from v3): topics beyond it are refused.
    let mutations = ctx.mutations(3);
    for t in req.topics {
        let foreign = t
            .assignments
            .iter()
            .flatten()
            .any(|a| a.broker_ids.iter().any(|b| !live.contains(&b.0)));
        let result = if !ctx.allowed(op::ALTER, Resource::Topic(&t.name)).await {
            Err((
                error_code::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.".to_string(),
            ))
        } else if let Some(missing) = assignment_mismatch(ctx, &t).await {
            Err((error_code::INVALID_REPLICA_ASSIGNMENT, missing))
        } else if foreign {
            Err((
                error_code::INVALID_REPLICA_ASSIGNMENT,
                format!("replicas may only be on live brokers {live:?}"),
            ))
        } else if !req.validate_only
            && mutations.applies()
            && let added = adding(ctx, &t).await
            // Nothing added (an unknown topic, a smaller count): answered by the create below.
            && added > 0
            && !mutations.admit(added)
        {
            Err((
                error_code::THROTTLING_QUOTA_EXCEEDED,
                super::QUOTA_EXCEEDED.to_string(),
            ))
        } else {
            ctx.broker
                .log
                .topics()
                .create_partitions(&t.name, t.count, req.validate_only)
                .await
                .map_err(|e| (error_code::from_log_error(&e), e.to_string()))
        };
        let r = CreatePartitionsTopicResult::default().with_name(t.name);
        results.push(match result {
            Ok(_) => r,
            Err((code, message)) => r.with_error_code(code).with_error_message(Some(s(message))),
        });
    }
    let throttle_ms = ctx.mutations_done(&mutations);
    Some(
        CreatePartitionsResponse::default()
            .with_throttle_time_ms(throttle_ms)
            .with_results(results),
    )
}

/// How many partitions a CreatePartitions entry adds (0 for an unknown topic or a store fault:
/// answered by the create).
async fn adding(
    ctx: &RequestCtx<'_>,
    t: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
) -> i64 {
    match ctx.broker.log.topics().get(&t.name).await {
        Ok(Some(meta)) => i64::from(t.count.saturating_sub(meta.partitions).max(0)),
        _ => 0,
    }
}

/// Kafka's check of explicit assignments: one per added partition.
async fn assignment_mismatch(
    ctx: &RequestCtx<'_>,
    t: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
) -> Option<String> {
    let given = t.assignments.as_ref()?.len() as i32;
    let current = match ctx.broker.log.topics().get(&t.name).await {
        Ok(Some(meta)) => meta.partitions,
        // An unknown topic or a store fault: answered by the create below.
        _ => return None,
    };
    let added = t.count - current;
    (added > 0 && given != added).then(|| {
        format!(
            "Attempted to add {added} additional partition(s), but only {given} assignment(s) \
             were specified."
        )
    })
}
