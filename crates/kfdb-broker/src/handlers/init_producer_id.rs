//! InitProducerId (key 22): a producer id and epoch for an idempotent producer, from this
//! broker's reserved block of ids (kfdb-log `producer.rs`). Transactional ids are refused until
//! transactions land (their FindCoordinator already answers COORDINATOR_NOT_AVAILABLE).

use super::{RequestCtx, Versions};
use crate::error_code;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub const KEY: ApiKey = ApiKey::InitProducerId;
pub const VERSIONS: Versions = Versions::new(0, 5);
pub type Request = InitProducerIdRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<InitProducerIdResponse> {
    let refuse = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        return Some(refuse(error_code::COORDINATOR_NOT_AVAILABLE));
    }
    // An idempotent producer (re)initialising always gets a fresh id at epoch 0: its sequence state
    // starts over, which is what an epoch bump achieves for it too.
    match ctx.broker.log.allocate_producer_id().await {
        Ok(id) => Some(
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
        ),
        Err(e) => Some(refuse(error_code::from_log_error(&e))),
    }
}
