//! DescribeClientQuotas (key 48): the stored quota entities a filter selects, with their values.
//! Each filter component names an entity type (`user`, `client-id`, `ip`) once and matches it
//! exactly (a name), as the default entity, or as any entity of the type; `strict` drops entities
//! that also name other types. Filters Kafka refuses (a type twice, an exact match without a name,
//! `ip` together with `user` or `client-id`) answer INVALID_REQUEST, an unknown entity type or
//! match type UNSUPPORTED_VERSION, as Kafka does. Needs DESCRIBE_CONFIGS on the cluster.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{ApiKey, DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kfdb_log::{EntityName, QuotaEntity};

pub const KEY: ApiKey = ApiKey::DescribeClientQuotas;
pub const VERSIONS: Versions = Versions::new(0, 1);
pub type Request = DescribeClientQuotasRequest;

/// Entity type names on the wire.
pub(crate) const USER: &str = "user";
pub(crate) const CLIENT_ID: &str = "client-id";
pub(crate) const IP: &str = "ip";

/// One filter component: the entity type's part must be this name (`Some(Some)`), the default
/// (`Some(None)`), or merely present (`None`).
type Component = (&'static str, Option<Option<String>>);

fn part<'a>(entity: &'a QuotaEntity, kind: &str) -> &'a Option<EntityName> {
    match kind {
        USER => &entity.user,
        CLIENT_ID => &entity.client_id,
        _ => &entity.ip,
    }
}

/// The filter, or Kafka's error code and message for it.
fn filter(req: &Request) -> Result<Vec<Component>, (i16, String)> {
    let invalid = |m: String| (error_code::INVALID_REQUEST, m);
    let mut components: Vec<Component> = Vec::new();
    for c in &req.components {
        let kind = c.entity_type.as_str();
        if kind.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if components.iter().any(|(k, _)| *k == kind) {
            return Err(invalid(format!(
                "Entity type {kind} cannot appear more than once in the filter."
            )));
        }
        let kind = match kind {
            USER => USER,
            CLIENT_ID => CLIENT_ID,
            IP => IP,
            other => {
                return Err((
                    error_code::UNSUPPORTED_VERSION,
                    format!("Unsupported entity type {other}"),
                ));
            }
        };
        let name = c._match.as_ref().map(|m| m.to_string());
        let matching = match (c.match_type, name) {
            (0, Some(n)) => Some(Some(n)),
            (0, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ));
            }
            (1, None) => Some(None),
            (2, None) => None,
            (1 | 2, Some(_)) => {
                let which = if c.match_type == 1 {
                    "DEFAULT"
                } else {
                    "SPECIFIED"
                };
                return Err(invalid(format!(
                    "Request specified MATCH_TYPE_{which}, but also specified a match string."
                )));
            }
            (other, _) => {
                return Err((
                    error_code::UNSUPPORTED_VERSION,
                    format!("Unknown match type {other}"),
                ));
            }
        };
        components.push((kind, matching));
    }
    let has = |k: &str| components.iter().any(|(c, _)| *c == k);
    if has(IP) && (has(USER) || has(CLIENT_ID)) {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component."
                .into(),
        ));
    }
    Ok(components)
}

fn matches(entity: &QuotaEntity, components: &[Component], strict: bool) -> bool {
    let parts = [&entity.user, &entity.client_id, &entity.ip]
        .iter()
        .filter(|p| p.is_some())
        .count();
    if strict && parts != components.len() {
        return false;
    }
    components
        .iter()
        .all(|(kind, want)| match (part(entity, kind), want) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(have), Some(name)) => have.as_wire() == name.as_deref(),
        })
}

/// An entity as responses name it, in Kafka's type order.
pub(crate) fn entity_parts(entity: &QuotaEntity) -> Vec<(&'static str, Option<String>)> {
    [
        (USER, &entity.user),
        (CLIENT_ID, &entity.client_id),
        (IP, &entity.ip),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.as_ref().map(|n| (k, n.as_wire().map(str::to_string))))
    .collect()
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeClientQuotasResponse> {
    let response = DescribeClientQuotasResponse::default();
    let refuse = |code: i16, message: String| {
        Some(
            DescribeClientQuotasResponse::default()
                .with_error_code(code)
                .with_error_message(Some(s(message))),
        )
    };
    if !ctx.allowed(op::DESCRIBE_CONFIGS, Resource::Cluster).await {
        return refuse(
            error_code::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.".into(),
        );
    }
    let components = match filter(&req) {
        Ok(c) => c,
        Err((code, message)) => return refuse(code, message),
    };
    let stored = match ctx.broker.log.quotas().list().await {
        Ok((_, stored)) => stored,
        Err(e) => return refuse(error_code::from_log_error(&e), e.to_string()),
    };
    let entries = stored
        .iter()
        .filter(|(entity, _)| matches(entity, &components, req.strict))
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity_parts(entity)
                        .into_iter()
                        .map(|(k, n)| {
                            EntityData::default()
                                .with_entity_type(s(k))
                                .with_entity_name(n.map(s))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(s(k.as_str())).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    Some(response.with_entries(Some(entries)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
        QuotaEntity {
            user: user.map(EntityName::from_wire),
            client_id: client.map(EntityName::from_wire),
            ip: None,
        }
    }

    #[test]
    fn components_match_by_name_default_or_presence() {
        let alice_app = entity(Some(Some("alice")), Some(Some("app")));
        let alice = entity(Some(Some("alice")), None);
        let default_user = entity(Some(None), None);
        let exact: Vec<Component> = vec![(USER, Some(Some("alice".into())))];
        assert!(matches(&alice_app, &exact, false));
        assert!(!matches(&alice_app, &exact, true));
        assert!(matches(&alice, &exact, true));
        assert!(!matches(&default_user, &exact, false));
        let default: Vec<Component> = vec![(USER, Some(None))];
        assert!(matches(&default_user, &default, true));
        assert!(!matches(&alice, &default, false));
        let any: Vec<Component> = vec![(USER, None)];
        assert!(matches(&default_user, &any, true));
        assert!(matches(&alice_app, &any, false));
        assert!(!matches(&entity(None, Some(Some("app"))), &any, false));
        // No component: everything, unless strict.
        assert!(matches(&alice_app, &[], false));
        assert!(!matches(&alice_app, &[], true));
    }
}
