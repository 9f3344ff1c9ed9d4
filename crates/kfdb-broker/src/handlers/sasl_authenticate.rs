//! SaslAuthenticate (key 36): one token of the SASL exchange the handshake chose (PLAIN in one
//! round, SCRAM in two). On success v1+ reports the session's lifetime (KIP-368,
//! `connections.max.reauth.ms`); a failure answers SASL_AUTHENTICATION_FAILED with a message, and
//! the connection closes after it.

use super::{RequestCtx, Versions, s};
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse};

pub const KEY: ApiKey = ApiKey::SaslAuthenticate;
pub const VERSIONS: Versions = Versions::new(0, 2);
pub type Request = SaslAuthenticateRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<SaslAuthenticateResponse> {
    let answer = ctx
        .client
        .session
        .authenticate(ctx.broker, ctx.peer.ip(), &req.auth_bytes)
        .await;
    Some(
        SaslAuthenticateResponse::default()
            .with_error_code(answer.error_code)
            .with_error_message(answer.message.map(s))
            .with_auth_bytes(Bytes::from(answer.bytes))
            .with_session_lifetime_ms(answer.session_lifetime_ms),
    )
}
