//! SaslHandshake (key 17): the client names its SASL mechanism; the answer lists the mechanisms
//! the connection's listener offers. After v1 the tokens travel in SaslAuthenticate requests
//! (KIP-152); after v0 as bare size-prefixed frames, which the connection hands to the session. A mechanism the listener does not offer, or a handshake
//! out of turn, is answered and the connection then closed (the session says so). On a listener
//! without SASL the answer is ILLEGAL_SASL_STATE.

use super::{RequestCtx, Versions, s};
use kafka_protocol::messages::{ApiKey, SaslHandshakeRequest, SaslHandshakeResponse};

pub const KEY: ApiKey = ApiKey::SaslHandshake;
pub const VERSIONS: Versions = Versions::new(0, 1);
pub type Request = SaslHandshakeRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<SaslHandshakeResponse> {
    let session = &ctx.client.session;
    let offered = if session.protocol().sasl() {
        ctx.broker.config.sasl.mechanisms_for(session.protocol())
    } else {
        Vec::new()
    };
    let code = session.handshake(ctx.version, req.mechanism.as_str(), &offered);
    if code != 0 {
        tracing::info!(
            peer = %ctx.peer,
            mechanism = req.mechanism.as_str(),
            code,
            "SASL handshake refused"
        );
    }
    Some(
        SaslHandshakeResponse::default()
            .with_error_code(code)
            .with_mechanisms(offered.iter().map(|m| s(m.name())).collect()),
    )
}
