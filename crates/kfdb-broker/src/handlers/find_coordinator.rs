//! FindCoordinator (key 10): the broker that coordinates a group (key type 0) or a transactional
//! id (key type 1), placed over the live brokers by hashing the key (`kfdb_log::CoordinatorKind`);
//! COORDINATOR_NOT_AVAILABLE while no broker is live. v4+ answers a batch of keys.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kfdb_log::CoordinatorKind;

pub const KEY: ApiKey = ApiKey::FindCoordinator;
pub const VERSIONS: Versions = Versions::new(0, 6);
pub type Request = FindCoordinatorRequest;

/// Group coordinator key type.
const GROUP: i8 = 0;
/// Transaction coordinator key type.
const TRANSACTION: i8 = 1;

/// Where a coordinator key is served: (code, message, node id, host, port).
type Found = (i16, Option<String>, i32, String, i32);

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<FindCoordinatorResponse> {
    let broker = ctx.broker;
    // DESCRIBE on the group or transactional id (ACLs), decided before the answers are built.
    let keys: Vec<&str> = if ctx.version >= 4 {
        req.coordinator_keys.iter().map(|k| k.as_str()).collect()
    } else {
        vec![req.key.as_str()]
    };
    let mut denied = Vec::new();
    for k in keys {
        let r = match req.key_type {
            TRANSACTION => Resource::TransactionalId(k),
            _ => Resource::Group(k),
        };
        if !k.is_empty() && !ctx.allowed(op::DESCRIBE, r).await {
            denied.push(k.to_string());
        }
    }
    let answer = |key: &str| -> Found {
        let invalid =
            |code, message: &str| (code, Some(message.to_string()), -1, String::new(), -1);
        let kind = match req.key_type {
            GROUP => CoordinatorKind::Group,
            TRANSACTION => CoordinatorKind::Transaction,
            other => {
                return invalid(
                    error_code::INVALID_REQUEST,
                    &format!("unknown key type {other}"),
                );
            }
        };
        if denied.iter().any(|d| d == key) {
            return match kind {
                CoordinatorKind::Transaction => invalid(
                    error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    "Transactional Id authorization failed.",
                ),
                CoordinatorKind::Group => invalid(
                    error_code::GROUP_AUTHORIZATION_FAILED,
                    "Group authorization failed.",
                ),
            };
        }
        if key.is_empty() {
            return match kind {
                CoordinatorKind::Transaction => {
                    invalid(error_code::INVALID_REQUEST, "empty transactional id")
                }
                CoordinatorKind::Group => invalid(error_code::INVALID_GROUP_ID, "empty group id"),
            };
        }
        match broker
            .coordinator(kind, key)
            .and_then(|n| broker.node(n, &ctx.client.listener))
        {
            Some(n) => (error_code::NONE, None, n.id, n.host, n.port),
            None => invalid(error_code::COORDINATOR_NOT_AVAILABLE, "no broker is live"),
        }
    };
    if ctx.version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (code, message, node, host, port) = answer(k);
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(s(host))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message.map(s))
            })
            .collect();
        return Some(FindCoordinatorResponse::default().with_coordinators(coordinators));
    }
    let (code, message, node, host, port) = answer(&req.key);
    let r = FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(node))
        .with_host(s(host))
        .with_port(port);
    Some(if ctx.version >= 1 {
        r.with_error_message(message.map(s))
    } else {
        r
    })
}
