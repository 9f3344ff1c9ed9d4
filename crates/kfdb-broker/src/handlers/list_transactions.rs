//! ListTransactions (key 66): transactional ids with their producer id and state, filtered by
//! state names, producer ids and (v1) by running longer than `duration_filter` ms.
//! v2 (regular-expression filter on the id) is not advertised.

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ApiKey, ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kfdb_log::{TxnStatus, now_ms};

pub const KEY: ApiKey = ApiKey::ListTransactions;
pub const VERSIONS: Versions = Versions::new(0, 1);
pub type Request = ListTransactionsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<ListTransactionsResponse> {
    let mut wanted_states = Vec::new();
    let mut unknown = Vec::new();
    for name in &req.state_filters {
        match TxnStatus::from_name(name) {
            Some(s) => wanted_states.push(s),
            None => unknown.push(name.clone()),
        }
    }
    let now = now_ms();
    let all = match ctx.broker.log.txns().list().await {
        Ok(all) => all,
        Err(e) => {
            return Some(
                ListTransactionsResponse::default().with_error_code(error_code::for_group(&e)),
            );
        }
    };
    let mut visible = Vec::with_capacity(all.len());
    for (id, st) in all {
        if ctx
            .allowed(op::DESCRIBE, Resource::TransactionalId(&id))
            .await
        {
            visible.push((id, st));
        }
    }
    let states = visible
        .into_iter()
        .filter(|(_, s)| {
            (req.state_filters.is_empty() || wanted_states.contains(&s.status))
                && (req.producer_id_filters.is_empty()
                    || req.producer_id_filters.contains(&ProducerId(s.producer_id)))
                && (req.duration_filter < 0
                    || (s.start_ms >= 0 && now - s.start_ms > req.duration_filter))
        })
        .map(|(id, s)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(super::s(id)))
                .with_producer_id(ProducerId(s.producer_id))
                .with_transaction_state(super::s(s.status.name()))
        })
        .collect();
    Some(
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(states),
    )
}
