//! AlterClientQuotas (key 49): set and remove quota values of user, client-id, user + client-id
//! and IP entities, each entity named or its type's default. Each entity is checked on its own, as
//! Kafka's controller does — a known entity type, a valid combination (`ip` alone), no empty name,
//! a key that exists for the entity, a value above 0 and whole for integral keys — and answers
//! INVALID_REQUEST with Kafka's message when it fails; the valid ones are stored in one
//! transaction (none with `validate_only`). Needs ALTER_CONFIGS on the cluster.

use super::describe_client_quotas::{CLIENT_ID, IP, USER};
use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use crate::quota::{self, ValueType};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData};
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as EntityOut, EntryData as EntryOut,
};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey};
use kfdb_log::{EntityName, QuotaChange, QuotaEntity};

pub const KEY: ApiKey = ApiKey::AlterClientQuotas;
pub const VERSIONS: Versions = Versions::new(0, 1);
pub type Request = AlterClientQuotasRequest;

type Refusal = (i16, String);

fn invalid(message: String) -> Refusal {
    (error_code::INVALID_REQUEST, message)
}

fn entity_of(parts: &[EntityData]) -> Result<QuotaEntity, Refusal> {
    if parts.is_empty() {
        return Err(invalid("Invalid empty client quota entity".into()));
    }
    let mut entity = QuotaEntity::default();
    for p in parts {
        let kind = p.entity_type.as_str();
        let name = p.entity_name.as_ref().map(|n| n.as_str());
        let slot = match kind {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            IP => &mut entity.ip,
            other => {
                return Err(invalid(format!(
                    "Unhandled client quota entity type: {other}"
                )));
            }
        };
        if slot.is_some() {
            return Err(invalid(format!(
                "Invalid empty client quota entity, duplicate entity entry {kind}"
            )));
        }
        if kind == IP
            && let Some(n) = name
            && n.parse::<std::net::IpAddr>().is_err()
        {
            return Err(invalid(format!("Invalid IP address {n}")));
        }
        if name == Some("") {
            return Err(invalid(format!("Empty {kind} not supported")));
        }
        *slot = Some(EntityName::from_wire(name));
    }
    if entity.ip.is_some() && (entity.user.is_some() || entity.client_id.is_some()) {
        return Err(invalid(
            "Invalid quota entity combination, IP entity should not be combined with User or \
             ClientId"
                .into(),
        ));
    }
    Ok(entity)
}

fn check_value(entity: &QuotaEntity, key: &str, value: f64) -> Result<(), Refusal> {
    let Some(kind) = quota::value_type(entity, key) else {
        return Err(invalid(format!("Invalid configuration key {key}")));
    };
    if value.is_nan() || value <= 0.0 {
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    let (max, name) = match kind {
        ValueType::Double => return Ok(()),
        ValueType::Int => (i32::MAX as f64, "an INT"),
        ValueType::Long => (i64::MAX as f64, "a LONG"),
    };
    if value > max {
        return Err(invalid(format!(
            "Proposed value for {key} is too large for {name}."
        )));
    }
    if (value - value.round()).abs() > 1e-8 {
        return Err(invalid(format!(
            "Proposed value for {key} must be an integer."
        )));
    }
    Ok(())
}

/// The change one entry asks for, or why it is refused.
fn change_of(entry: &EntryData) -> Result<QuotaChange, Refusal> {
    let entity = entity_of(&entry.entity)?;
    let mut ops: Vec<(String, Option<f64>)> = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let key = op.key.to_string();
        let value = if op.remove {
            None
        } else {
            check_value(&entity, &key, op.value)?;
            Some(op.value)
        };
        // A key named twice: the last op wins.
        ops.retain(|(k, _)| *k != key);
        ops.push((key, value));
    }
    Ok((entity, ops))
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<AlterClientQuotasResponse> {
    let denied = !ctx.allowed(op::ALTER_CONFIGS, Resource::Cluster).await;
    let mut results: Vec<(Vec<EntityOut>, Result<(), Refusal>)> = Vec::new();
    let mut changes: Vec<QuotaChange> = Vec::new();
    for entry in &req.entries {
        let echo = entry
            .entity
            .iter()
            .map(|e| {
                EntityOut::default()
                    .with_entity_type(e.entity_type.clone())
                    .with_entity_name(e.entity_name.clone())
            })
            .collect();
        let outcome = if denied {
            Err((
                error_code::CLUSTER_AUTHORIZATION_FAILED,
                "Cluster authorization failed.".into(),
            ))
        } else {
            change_of(entry).map(|change| changes.push(change))
        };
        results.push((echo, outcome));
    }
    let stored: Result<(), Refusal> = if req.validate_only || changes.is_empty() {
        Ok(())
    } else {
        let written = ctx.broker.log.quotas().alter(&changes).await;
        ctx.broker.quotas.reload().await;
        written.map_err(|e| (error_code::from_log_error(&e), e.to_string()))
    };
    let entries = results
        .into_iter()
        .map(|(entity, outcome)| {
            let refusal = match outcome {
                Ok(_) => stored.clone().err(),
                Err(r) => Some(r),
            };
            let (code, message) = refusal.map_or((0, None), |(c, m)| (c, Some(s(m))));
            EntryOut::default()
                .with_entity(entity)
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    Some(AlterClientQuotasResponse::default().with_entries(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_client_quotas_request::OpData;

    fn part(kind: &str, name: Option<&str>) -> EntityData {
        EntityData::default()
            .with_entity_type(s(kind))
            .with_entity_name(name.map(s))
    }

    fn entry(parts: Vec<EntityData>, ops: &[(&str, f64, bool)]) -> EntryData {
        EntryData::default().with_entity(parts).with_ops(
            ops.iter()
                .map(|(k, v, remove)| {
                    OpData::default()
                        .with_key(s(*k))
                        .with_value(*v)
                        .with_remove(*remove)
                })
                .collect(),
        )
    }

    fn refusal(e: EntryData) -> Option<String> {
        change_of(&e).err().map(|(code, m)| {
            assert_eq!(code, error_code::INVALID_REQUEST);
            m
        })
    }

    #[test]
    fn entities_and_values_are_checked_as_kafka_does() {
        let user = || vec![part(USER, Some("alice"))];
        assert_eq!(
            refusal(entry(user(), &[("producer_byte_rate", 1024.0, false)])),
            None
        );
        assert_eq!(
            refusal(entry(
                vec![part(USER, None), part(CLIENT_ID, Some("app"))],
                &[("request_percentage", 12.5, false)]
            )),
            None
        );
        assert_eq!(
            refusal(entry(
                vec![part(IP, Some("10.0.0.1"))],
                &[("connection_creation_rate", 5.0, false)]
            )),
            None
        );
        let refused = [
            entry(vec![], &[]),
            entry(vec![part("group", Some("g"))], &[]),
            entry(vec![part(USER, Some(""))], &[]),
            entry(vec![part(USER, Some("a")), part(USER, Some("b"))], &[]),
            entry(vec![part(IP, Some("not an ip"))], &[]),
            entry(vec![part(IP, None), part(USER, Some("a"))], &[]),
            entry(user(), &[("bogus", 1.0, false)]),
            entry(user(), &[("producer_byte_rate", 0.0, false)]),
            entry(user(), &[("producer_byte_rate", -5.0, false)]),
            entry(user(), &[("producer_byte_rate", 1.5, false)]),
            entry(user(), &[("connection_creation_rate", 1.0, false)]),
            entry(vec![part(IP, None)], &[("producer_byte_rate", 1.0, false)]),
        ];
        for e in refused {
            assert!(refusal(e.clone()).is_some(), "{e:?}");
        }
        // Removing is not checked (a key that is not set is simply not there).
        assert_eq!(refusal(entry(user(), &[("bogus", 0.0, true)])), None);
    }
}
