//! AlterConfigs (key 33): replace a topic's config overrides with the given set. Broker configs are
//! read-only.

use super::describe_configs::RESOURCE_TOPIC;
use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use kfdb_log::AlterOp;

pub const KEY: ApiKey = ApiKey::AlterConfigs;
pub const VERSIONS: Versions = Versions::new(0, 2);
pub type Request = AlterConfigsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<AlterConfigsResponse> {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let result = if r.resource_type == RESOURCE_TOPIC
            && !ctx
                .allowed(op::ALTER_CONFIGS, Resource::Topic(&r.resource_name))
                .await
        {
            Err((
                error_code::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.".to_string(),
            ))
        } else if r.resource_type != RESOURCE_TOPIC {
            Err((
                error_code::INVALID_REQUEST,
                "only topic configs can be altered".to_string(),
            ))
        } else {
            let ops: Vec<AlterOp> = r
                .configs
                .iter()
                .map(|c| match &c.value {
                    Some(v) => AlterOp::Set(c.name.to_string(), v.to_string()),
                    None => AlterOp::Delete(c.name.to_string()),
                })
                .collect();
            ctx.broker
                .log
                .topics()
                .alter_configs(&r.resource_name, &ops, true, req.validate_only)
                .await
                .map_err(|e| (error_code::from_log_error(&e), e.to_string()))
        };
        let base = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        responses.push(match result {
            Ok(_) => base,
            Err((code, message)) => base
                .with_error_code(code)
                .with_error_message(Some(s(message))),
        });
    }
    Some(AlterConfigsResponse::default().with_responses(responses))
}
