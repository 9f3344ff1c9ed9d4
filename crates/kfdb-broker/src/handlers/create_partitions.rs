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
        } else if foreign {
            Err((
                error_code::INVALID_REPLICA_ASSIGNMENT,
                format!("replicas may only be on live brokers {live:?}"),
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
    Some(CreatePartitionsResponse::default().with_results(results))
}
