//! AddOffsetsToTxn (key 25): a producer will commit a group's offsets in its transaction
//! (`sendOffsetsToTransaction`); the offsets themselves follow in TxnOffsetCommit.

use super::{RequestCtx, Versions};
use crate::error_code;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};
use kfdb_log::TxnAddition;

pub const KEY: ApiKey = ApiKey::AddOffsetsToTxn;
pub const VERSIONS: Versions = Versions::new(0, 4);
pub type Request = AddOffsetsToTxnRequest;

/// First version told PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH (KIP-588).
const FENCED_FROM: i16 = 2;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<AddOffsetsToTxnResponse> {
    let code = if req.group_id.is_empty() {
        error_code::INVALID_GROUP_ID
    } else if let Some(code) = ctx
        .txn_offsets_refusal(&req.transactional_id, &req.group_id)
        .await
    {
        code
    } else {
        match ctx
            .broker
            .log
            .txns()
            .add(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                TxnAddition::Group(&req.group_id),
            )
            .await
        {
            Ok(()) => error_code::NONE,
            Err(e) => error_code::for_txn(&e, ctx.version, FENCED_FROM),
        }
    };
    Some(AddOffsetsToTxnResponse::default().with_error_code(code))
}
