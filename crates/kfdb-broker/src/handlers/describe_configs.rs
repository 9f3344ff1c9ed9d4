//! DescribeConfigs (key 32): topic configs (value, source, type, read-only) and this broker's
//! configs (resource types 2 and 4), and a group's configs (32, KIP-848).

use super::{RequestCtx, Versions, group_configs, s, topic_configs};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};

pub const KEY: ApiKey = ApiKey::DescribeConfigs;
pub const VERSIONS: Versions = Versions::new(1, 4);
pub type Request = DescribeConfigsRequest;

/// Kafka's resource type for topics.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type for brokers.
pub const RESOURCE_BROKER: i8 = 4;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeConfigsResponse> {
    let broker = ctx.broker;
    let mut results = Vec::with_capacity(req.resources.len());
    for r in &req.resources {
        let base = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let resource = match r.resource_type {
            RESOURCE_TOPIC => Some(Resource::Topic(&r.resource_name)),
            RESOURCE_BROKER => Some(Resource::Cluster),
            group_configs::RESOURCE_GROUP => Some(Resource::Group(&r.resource_name)),
            _ => None,
        };
        let denied = match resource {
            Some(res) => !ctx.allowed(op::DESCRIBE_CONFIGS, res).await,
            None => false,
        };
        let reported = match r.resource_type {
            _ if denied => Err((
                match r.resource_type {
                    RESOURCE_TOPIC => error_code::TOPIC_AUTHORIZATION_FAILED,
                    group_configs::RESOURCE_GROUP => error_code::GROUP_AUTHORIZATION_FAILED,
                    _ => error_code::CLUSTER_AUTHORIZATION_FAILED,
                },
                "Authorization failed.".into(),
            )),
            RESOURCE_TOPIC => match broker.log.topics().get(&r.resource_name).await {
                Ok(Some(meta)) => match broker.log.topics().broker_defaults().await {
                    Ok(defaults) => Ok(topic_configs::topic(&meta.configs, &defaults)),
                    Err(e) => Err((error_code::from_log_error(&e), e.to_string())),
                },
                Ok(None) => Err((
                    error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    "unknown topic".into(),
                )),
                Err(e) => Err((error_code::from_log_error(&e), e.to_string())),
            },
            RESOURCE_BROKER => {
                let name = r.resource_name.to_string();
                match broker.log.topics().dynamic_broker_configs().await {
                    Err(e) => Err((error_code::from_log_error(&e), e.to_string())),
                    // The default broker resource: the cluster-wide dynamic configs only.
                    Ok(dynamic) if name.is_empty() => Ok(topic_configs::dynamic_broker(&dynamic)),
                    Ok(dynamic) if name == broker.node_id().to_string() => {
                        let mut all = topic_configs::broker(broker);
                        for d in topic_configs::dynamic_broker(&dynamic) {
                            match all.iter_mut().find(|c| c.name == d.name) {
                                Some(c) => *c = d,
                                None => all.push(d),
                            }
                        }
                        Ok(all)
                    }
                    Ok(_) => Err((error_code::INVALID_REQUEST, format!("no broker {name}"))),
                }
            }
            group_configs::RESOURCE_GROUP => {
                match broker.log.groups().configs(&r.resource_name).await {
                    Ok(overrides) => Ok(group_configs::report(&overrides, broker.groups.config())),
                    Err(e) => Err((error_code::from_log_error(&e), e.to_string())),
                }
            }
            other => Err((
                error_code::INVALID_REQUEST,
                format!("resource type {other} not supported"),
            )),
        };
        results.push(match reported {
            Ok(configs) => {
                let wanted = r.configuration_keys.as_ref();
                let configs = configs
                    .into_iter()
                    .filter(|c| {
                        wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name.as_ref()))
                    })
                    .map(|c| {
                        // Synonyms (v1+, when asked): Kafka lists every source of a value in
                        // precedence order. kfdb lists the entry's own source when it is a topic
                        // override or a broker setting; for a topic config at its default Kafka
                        // names the broker-level config (e.g. log.retention.hours), which kfdb
                        // does not model, so that list stays empty.
                        let synonyms =
                            if req.include_synonyms && c.source != topic_configs::SOURCE_DEFAULT {
                                vec![
                                    DescribeConfigsSynonym::default()
                                        .with_name(s(c.name.to_string()))
                                        .with_value(Some(s(c.value.clone())))
                                        .with_source(c.source),
                                ]
                            } else {
                                Vec::new()
                            };
                        DescribeConfigsResourceResult::default()
                            .with_name(s(c.name.to_string()))
                            .with_value(Some(s(c.value)))
                            .with_read_only(c.read_only)
                            .with_config_source(c.source)
                            .with_config_type(if ctx.version >= 3 { c.kind as i8 } else { 0 })
                            .with_synonyms(synonyms)
                    })
                    .collect();
                base.with_configs(configs)
            }
            Err((code, message)) => base
                .with_error_code(code)
                .with_error_message(Some(s(message))),
        });
    }
    Some(DescribeConfigsResponse::default().with_results(results))
}
