//! IncrementalAlterConfigs (key 44): set, delete, append to or subtract from a topic's configs;
//! set or delete a group's (KIP-848 group configs, `group_configs.rs`).

use super::describe_configs::RESOURCE_TOPIC;
use super::{RequestCtx, Versions, group_configs, s};
use crate::authz::acl::{self, Resource};
use crate::error_code;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kfdb_log::{AlterOp, LogError};

pub const KEY: ApiKey = ApiKey::IncrementalAlterConfigs;
pub const VERSIONS: Versions = Versions::new(0, 1);
pub type Request = IncrementalAlterConfigsRequest;

fn op(operation: i8, name: String, value: Option<String>) -> Result<AlterOp, LogError> {
    let need = |v: Option<String>| {
        v.ok_or_else(|| LogError::InvalidConfig(format!("{name}: operation needs a value")))
    };
    Ok(match operation {
        0 => AlterOp::Set(name.clone(), need(value)?),
        1 => AlterOp::Delete(name),
        2 => AlterOp::Append(name.clone(), need(value)?),
        3 => AlterOp::Subtract(name.clone(), need(value)?),
        other => {
            return Err(LogError::InvalidRequest(format!(
                "config operation {other}"
            )));
        }
    })
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<IncrementalAlterConfigsResponse> {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let denied = match r.resource_type {
            RESOURCE_TOPIC => (!ctx
                .allowed(acl::op::ALTER_CONFIGS, Resource::Topic(&r.resource_name))
                .await)
                .then_some(error_code::TOPIC_AUTHORIZATION_FAILED),
            group_configs::RESOURCE_GROUP => (!ctx
                .allowed(acl::op::ALTER_CONFIGS, Resource::Group(&r.resource_name))
                .await)
                .then_some(error_code::GROUP_AUTHORIZATION_FAILED),
            _ => None,
        };
        if let Some(code) = denied {
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(Some(s("Authorization failed."))),
            );
            continue;
        }
        let result = if r.resource_type == group_configs::RESOURCE_GROUP {
            alter_group(ctx, &r, req.validate_only).await
        } else if r.resource_type != RESOURCE_TOPIC {
            Err(LogError::InvalidRequest(
                "only topic and group configs can be altered".into(),
            ))
        } else {
            match r
                .configs
                .iter()
                .map(|c| {
                    op(
                        c.config_operation,
                        c.name.to_string(),
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(ops) => ctx
                    .broker
                    .log
                    .topics()
                    .alter_configs(&r.resource_name, &ops, false, req.validate_only)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        };
        let base = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        responses.push(match result {
            Ok(()) => base,
            Err(e) => base
                .with_error_code(error_code::from_log_error(&e))
                .with_error_message(Some(s(e.to_string()))),
        });
    }
    Some(IncrementalAlterConfigsResponse::default().with_responses(responses))
}

/// A group's configs: read, changed as Kafka allows, stored with the group.
async fn alter_group(
    ctx: &RequestCtx<'_>,
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), LogError> {
    let groups = ctx.broker.log.groups();
    let current = groups.configs(&r.resource_name).await?;
    let ops: Vec<(i8, String, Option<String>)> = r
        .configs
        .iter()
        .map(|c| {
            (
                c.config_operation,
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()),
            )
        })
        .collect();
    let next = group_configs::alter(&current, &ops)?;
    if !validate_only {
        groups.set_configs(&r.resource_name, &next).await?;
        ctx.broker.groups.forget_overrides(&r.resource_name);
    }
    Ok(())
}
