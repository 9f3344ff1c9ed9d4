//! FindCoordinator (key 10): this broker coordinates every group (its ownership is recorded in the
//! store when it loads the group) and every transactional id (key type 1; its state lives in the
//! store, so any broker can serve it). v4+ answers a batch of keys.

use super::{RequestCtx, Versions, s};
use crate::error_code;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

pub const KEY: ApiKey = ApiKey::FindCoordinator;
pub const VERSIONS: Versions = Versions::new(0, 6);
pub type Request = FindCoordinatorRequest;

/// Group coordinator key type.
const GROUP: i8 = 0;
/// Transaction coordinator key type.
const TRANSACTION: i8 = 1;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<FindCoordinatorResponse> {
    let c = &ctx.broker.config;
    let answer = |key: &str| -> (i16, Option<String>) {
        if req.key_type != GROUP && req.key_type != TRANSACTION {
            (
                error_code::INVALID_REQUEST,
                Some(format!("unknown key type {}", req.key_type)),
            )
        } else if key.is_empty() && req.key_type == TRANSACTION {
            (
                error_code::INVALID_REQUEST,
                Some("empty transactional id".into()),
            )
        } else if key.is_empty() {
            (error_code::INVALID_GROUP_ID, Some("empty group id".into()))
        } else {
            (error_code::NONE, None)
        }
    };
    let me = BrokerId(c.node_id);
    if ctx.version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (code, message) = answer(k);
                let found = code == error_code::NONE;
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(if found { me } else { BrokerId(-1) })
                    .with_host(if found {
                        s(c.advertised_host.clone())
                    } else {
                        s("")
                    })
                    .with_port(if found { c.advertised_port } else { -1 })
                    .with_error_code(code)
                    .with_error_message(message.map(s))
            })
            .collect();
        return Some(FindCoordinatorResponse::default().with_coordinators(coordinators));
    }
    let (code, message) = answer(&req.key);
    let r = FindCoordinatorResponse::default().with_error_code(code);
    let r = if ctx.version >= 1 {
        r.with_error_message(message.map(s))
    } else {
        r
    };
    Some(if code == error_code::NONE {
        r.with_node_id(me)
            .with_host(s(c.advertised_host.clone()))
            .with_port(c.advertised_port)
    } else {
        r.with_node_id(BrokerId(-1)).with_host(s("")).with_port(-1)
    })
}
