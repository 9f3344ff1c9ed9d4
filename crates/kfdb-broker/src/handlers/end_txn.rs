//! EndTxn (key 26): commit or abort the producer's transaction. Returns once every marker, the
//! transaction's offsets and its new state are durable (one store transaction when it spans at
//! most `kfdb_log::MARKERS_PER_TXN` partitions).

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse};

pub const KEY: ApiKey = ApiKey::EndTxn;
/// v5 (KIP-890 part 2: an epoch bump on every EndTxn) is not implemented.
pub const VERSIONS: Versions = Versions::new(0, 4);
pub type Request = EndTxnRequest;

/// First version told PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH (KIP-588).
const FENCED_FROM: i16 = 2;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<EndTxnResponse> {
    if !ctx
        .allowed(op::WRITE, Resource::TransactionalId(&req.transactional_id))
        .await
    {
        return Some(
            EndTxnResponse::default()
                .with_error_code(error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        );
    }
    let code = match ctx
        .broker
        .log
        .txns()
        .end(
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
        )
        .await
    {
        Ok(()) => error_code::NONE,
        Err(e) => {
            tracing::debug!(transactional_id = %req.transactional_id.0, error = %e, "EndTxn refused");
            error_code::for_txn(&e, ctx.version, FENCED_FROM)
        }
    };
    Some(EndTxnResponse::default().with_error_code(code))
}
