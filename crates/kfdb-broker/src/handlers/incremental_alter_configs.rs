//! IncrementalAlterConfigs (key 44): set, delete, append to or subtract from a topic's configs;
//! set or delete a group's (KIP-848 group configs, `group_configs.rs`); set or delete the
//! cluster-wide dynamic broker configs (`log.retention.ms`, `log.retention.bytes`: the default
//! broker resource, stored, followed by every broker).

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
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
            RESOURCE_BROKER => (!ctx.allowed(acl::op::ALTER_CONFIGS, Resource::Cluster).await)
                .then_some(error_code::CLUSTER_AUTHORIZATION_FAILED),
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
        } else if r.resource_type == RESOURCE_BROKER {
            alter_broker_defaults(ctx, &r, req.validate_only).await
        } else if r.resource_type != RESOURCE_TOPIC {
            Err(LogError::InvalidRequest(
                "only topic, group and cluster-wide broker configs can be altered".into(),
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

/// The cluster-wide dynamic broker configs (the default broker resource, name ""). kfdb's brokers
/// share every partition, so a per-broker value would mean nothing: a broker's own resource is
/// refused.
async fn alter_broker_defaults(
    ctx: &RequestCtx<'_>,
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), LogError> {
    if !r.resource_name.is_empty() {
        return Err(LogError::InvalidRequest(format!(
            "broker {}: kfdb's brokers share every partition; set broker configs cluster-wide \
             (the default broker resource, kafka-configs --entity-default)",
            r.resource_name
        )));
    }
    let topics = ctx.broker.log.topics();
    let mut configs = topics.dynamic_broker_configs().await?;
    for c in &r.configs {
        let name = c.name.to_string();
        if !kfdb_log::config::DYNAMIC_BROKER_CONFIGS.contains(&name.as_str()) {
            return Err(LogError::InvalidConfig(format!(
                "{name} cannot be changed while brokers run (kfdb: {})",
                kfdb_log::config::DYNAMIC_BROKER_CONFIGS.join(", ")
            )));
        }
        configs.retain(|(k, _)| *k != name);
        match c.config_operation {
            0 => {
                let v = c
                    .value
                    .as_ref()
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default();
                match v.parse::<i64>() {
                    Ok(n) if n >= -1 => configs.push((name, n.to_string())),
                    _ => {
                        return Err(LogError::InvalidConfig(format!(
                            "Invalid value {v} for configuration {name}: expected a number >= -1"
                        )));
                    }
                }
            }
            1 => {}
            _ => {
                return Err(LogError::InvalidConfig(format!(
                    "{name}: only SET and DELETE apply"
                )));
            }
        }
    }
    if !validate_only {
        topics.set_dynamic_broker_configs(&configs).await?;
    }
    Ok(())
}
