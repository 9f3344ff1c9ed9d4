//! InitProducerId (key 22): a producer id and epoch. Without a transactional id: a fresh id from
//! this broker's reserved block (kfdb-log `producer.rs`) at epoch 0. With one: the transaction
//! coordinator's id for it with the epoch bumped, fencing older producers of that id and aborting
//! their open transaction (kfdb-log `txn.rs`).

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub const KEY: ApiKey = ApiKey::InitProducerId;
pub const VERSIONS: Versions = Versions::new(0, 5);
pub type Request = InitProducerIdRequest;

/// First version told PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH (KIP-588).
const FENCED_FROM: i16 = 4;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<InitProducerIdResponse> {
    let refuse = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let log = &ctx.broker.log;
    let granted = match req.transactional_id.as_ref() {
        Some(id) if id.is_empty() => Err(error_code::INVALID_REQUEST),
        Some(id) if !ctx.allowed(op::WRITE, Resource::TransactionalId(id)).await => {
            Err(error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        }
        None if !ctx.allowed(op::IDEMPOTENT_WRITE, Resource::Cluster).await
            && !ctx
                .allowed_on_some(crate::authz::acl::resource::TOPIC, op::WRITE)
                .await =>
        {
            Err(error_code::CLUSTER_AUTHORIZATION_FAILED)
        }
        Some(id) => {
            let expected = (ctx.version >= 3 && req.producer_id.0 >= 0)
                .then_some((req.producer_id.0, req.producer_epoch));
            log.txns()
                .init_producer(id, req.transaction_timeout_ms, expected)
                .await
                .map_err(|e| {
                    tracing::debug!(transactional_id = %id.0, error = %e, "InitProducerId refused");
                    error_code::for_txn(&e, ctx.version, FENCED_FROM)
                })
        }
        // An idempotent producer (re)initialising always gets a fresh id at epoch 0: its sequence
        // state starts over, which is what an epoch bump achieves for it too.
        None => log
            .producers()
            .allocate_id()
            .await
            .map(|id| (id, 0))
            .map_err(|e| error_code::from_log_error(&e)),
    };
    Some(match granted {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(code) => refuse(code),
    })
}
