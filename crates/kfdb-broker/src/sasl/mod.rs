//! Who is on the other end of a connection: its principal and, on SASL listeners, the
//! authentication that establishes it (KIP-43 SaslHandshake, KIP-152 SaslAuthenticate, KIP-368
//! re-authentication). A connection's [`Session`] is a small state machine; the SaslHandshake and
//! SaslAuthenticate handlers drive it and the handler registry asks it, before every request,
//! whether that request may be served (before authentication, only ApiVersions and SASL).
//!
//! Credentials are the store's (kfdb-log `Users`), so every broker of a cluster checks the same
//! ones. PLAIN is checked against the same salted SCRAM credentials. `scram` is the SCRAM exchange,
//! `limiter` the per-address brake on failed attempts.

mod limiter;
pub mod scram;

pub use limiter::FailureLimiter;

use crate::Broker;
use crate::listeners::SecurityProtocol;
use scram::{Exchange, ScramMechanism};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The principal of a connection nobody authenticated (Kafka's `User:ANONYMOUS`).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A SASL mechanism kfdb serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// PLAIN (RFC 4616), against the stored SCRAM credentials.
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(ScramMechanism),
}

impl Mechanism {
    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
        }
    }

    /// By SASL name.
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "PLAIN" {
            Some(Self::Plain)
        } else {
            ScramMechanism::from_name(name).map(Self::Scram)
        }
    }
}

/// SASL settings (Kafka's names in comments).
#[derive(Debug, Clone)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`.
    pub enabled_mechanisms: Vec<Mechanism>,
    /// Allow PLAIN on a listener without TLS (the password crosses the network in clear).
    pub plain_allow_plaintext: bool,
    /// `connections.max.reauth.ms`: sessions last this long, then the client must
    /// re-authenticate (`None`: forever, Kafka's 0).
    pub max_reauth: Option<Duration>,
    /// `connection.failed.authentication.delay.ms`: a failed authentication is answered (and the
    /// connection closed) this much later.
    pub failed_authentication_delay: Duration,
}

impl Default for SaslConfig {
    fn default() -> Self {
        Self {
            enabled_mechanisms: vec![
                Mechanism::Scram(ScramMechanism::Sha256),
                Mechanism::Scram(ScramMechanism::Sha512),
                Mechanism::Plain,
            ],
            plain_allow_plaintext: false,
            max_reauth: None,
            failed_authentication_delay: Duration::from_millis(100),
        }
    }
}

impl SaslConfig {
    /// The mechanisms a listener of `protocol` offers: the enabled ones, without PLAIN on a
    /// listener without TLS unless that is allowed.
    pub fn mechanisms_for(&self, protocol: SecurityProtocol) -> Vec<Mechanism> {
        self.enabled_mechanisms
            .iter()
            .copied()
            .filter(|m| *m != Mechanism::Plain || protocol.tls() || self.plain_allow_plaintext)
            .collect()
    }
}

#[derive(Debug)]
enum State {
    /// No SASL on this listener.
    Open,
    /// A SASL listener waiting for SaslHandshake.
    AwaitHandshake,
    /// Handshake done; waiting for SaslAuthenticate (`reauth`: the principal being renewed;
    /// `raw`: after a v0 handshake the tokens come as bare size-prefixed frames, not requests).
    AwaitToken {
        raw: bool,
        mechanism: Mechanism,
        exchange: Option<Box<Exchange>>,
        reauth: Option<String>,
    },
    /// Authenticated with `mechanism` until `expires`.
    Authenticated {
        mechanism: Mechanism,
        expires: Option<Instant>,
    },
    /// A failure was answered; the connection closes after the response.
    Closing,
}

/// One connection's authentication state (see the module documentation).
#[derive(Debug)]
pub struct Session {
    protocol: SecurityProtocol,
    principal: Mutex<String>,
    state: Mutex<State>,
}

/// What SaslAuthenticate answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthAnswer {
    /// The error code (0 on success or a step of an exchange).
    pub error_code: i16,
    /// The failure's message.
    pub message: Option<String>,
    /// The server's token.
    pub bytes: Vec<u8>,
    /// How long the session lasts (ms; 0 when it does not expire).
    pub session_lifetime_ms: i64,
}

impl AuthAnswer {
    fn failed(code: i16, message: impl Into<String>) -> Self {
        Self {
            error_code: code,
            message: Some(message.into()),
            bytes: Vec::new(),
            session_lifetime_ms: 0,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Session {
    /// A session on a listener of `protocol`; `tls_principal` is the client certificate's, if any.
    pub fn new(protocol: SecurityProtocol, tls_principal: Option<String>) -> Arc<Self> {
        let state = if protocol.sasl() {
            State::AwaitHandshake
        } else {
            State::Open
        };
        Arc::new(Self {
            protocol,
            principal: Mutex::new(tls_principal.unwrap_or_else(|| ANONYMOUS.to_string())),
            state: Mutex::new(state),
        })
    }

    /// The principal (`User:name`).
    pub fn principal(&self) -> String {
        lock(&self.principal).clone()
    }

    /// Whether a request other than ApiVersions and SASL may be served now.
    pub fn authenticated(&self) -> bool {
        match &*lock(&self.state) {
            State::Open => true,
            State::Authenticated { expires, .. } => expires.is_none_or(|e| Instant::now() < e),
            _ => false,
        }
    }

    /// Whether the connection must close once the current response is written.
    pub fn closing(&self) -> bool {
        matches!(*lock(&self.state), State::Closing)
    }

    /// Whether the next frame is a bare SASL token (after a v0 handshake), not a request.
    pub fn expects_raw_token(&self) -> bool {
        matches!(*lock(&self.state), State::AwaitToken { raw: true, .. })
    }

    /// SaslHandshake (`version` 0: the tokens follow as bare frames): pick `mechanism` among
    /// `offered`. An error code closes the connection.
    pub fn handshake(&self, version: i16, mechanism: &str, offered: &[Mechanism]) -> i16 {
        use crate::error_code::{ILLEGAL_SASL_STATE, NONE, UNSUPPORTED_SASL_MECHANISM};
        let mut state = lock(&self.state);
        // Re-authentication (KIP-368) as Kafka allows it: before the session expired, with v1
        // and the mechanism the session was made with.
        let (reauth, same) = match &*state {
            State::AwaitHandshake => (None, None),
            State::Authenticated { mechanism, expires }
                if version >= 1 && expires.is_none_or(|e| Instant::now() < e) =>
            {
                (Some(self.principal()), Some(*mechanism))
            }
            State::Open => return ILLEGAL_SASL_STATE,
            _ => {
                *state = State::Closing;
                return ILLEGAL_SASL_STATE;
            }
        };
        let chosen = Mechanism::from_name(mechanism)
            .filter(|m| offered.contains(m))
            .filter(|m| same.is_none_or(|s| s == *m));
        match chosen {
            Some(mechanism) => {
                *state = State::AwaitToken {
                    raw: version == 0,
                    mechanism,
                    exchange: None,
                    reauth,
                };
                NONE
            }
            None => {
                *state = State::Closing;
                UNSUPPORTED_SASL_MECHANISM
            }
        }
    }

    /// SaslAuthenticate: take one token of the exchange.
    pub async fn authenticate(
        &self,
        broker: &Broker,
        peer: std::net::IpAddr,
        token: &[u8],
    ) -> AuthAnswer {
        use crate::error_code::{ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED};
        let (raw, mechanism, exchange, reauth) = {
            let mut state = lock(&self.state);
            match std::mem::replace(&mut *state, State::Closing) {
                State::AwaitToken {
                    raw,
                    mechanism,
                    exchange,
                    reauth,
                } => (raw, mechanism, exchange, reauth),
                State::Open => {
                    *state = State::Open;
                    return AuthAnswer::failed(
                        ILLEGAL_SASL_STATE,
                        "SASL is not enabled on this listener",
                    );
                }
                _ => {
                    return AuthAnswer::failed(
                        ILLEGAL_SASL_STATE,
                        "SaslAuthenticate before a SaslHandshake",
                    );
                }
            }
        };
        let counter = |result: &str| {
            broker
                .metrics
                .sasl_authentications
                .with_label_values(&[mechanism.name(), result])
                .inc()
        };
        let limiter = &broker.auth_failures;
        if exchange.is_none() {
            let wait = limiter.wait(peer);
            if !wait.is_zero() {
                counter("throttled");
                tracing::info!(%peer, wait_ms = wait.as_millis() as u64, "authentication delayed: recent failures from this address");
                tokio::time::sleep(wait).await;
            }
        }
        let step = match (mechanism, exchange) {
            (Mechanism::Plain, _) => plain(broker, token).await.map(|user| (user, Vec::new())),
            (Mechanism::Scram(m), None) => match scram_first(broker, m, token).await {
                Ok((exchange, reply)) => {
                    *lock(&self.state) = State::AwaitToken {
                        raw,
                        mechanism,
                        exchange: Some(Box::new(exchange)),
                        reauth,
                    };
                    return AuthAnswer {
                        error_code: 0,
                        message: None,
                        bytes: reply,
                        session_lifetime_ms: 0,
                    };
                }
                Err(e) => Err(e),
            },
            (Mechanism::Scram(_), Some(exchange)) => exchange
                .finish(token)
                .map(|reply| (exchange.user().to_string(), reply))
                .map_err(|e| {
                    format!(
                        "Authentication failed during authentication due to invalid credentials \
                         with SASL mechanism {}: {e}",
                        mechanism.name()
                    )
                }),
        };
        let step = step.and_then(|(user, reply)| {
            let principal = format!("User:{user}");
            match &reauth {
                Some(before) if *before != principal => Err(format!(
                    "Cannot change principals during re-authentication from {before} to {principal}"
                )),
                _ => Ok((principal, reply)),
            }
        });
        match step {
            Ok((principal, reply)) => {
                counter("ok");
                let lifetime = broker.config.sasl.max_reauth;
                *lock(&self.principal) = principal;
                *lock(&self.state) = State::Authenticated {
                    mechanism,
                    expires: lifetime.and_then(|d| Instant::now().checked_add(d)),
                };
                AuthAnswer {
                    error_code: 0,
                    message: None,
                    bytes: reply,
                    session_lifetime_ms: lifetime.map_or(0, |d| d.as_millis() as i64),
                }
            }
            Err(message) => {
                counter("failed");
                limiter.failed(peer);
                tracing::info!(%peer, mechanism = mechanism.name(), reason = %message, "authentication failed");
                tokio::time::sleep(broker.config.sasl.failed_authentication_delay).await;
                AuthAnswer::failed(SASL_AUTHENTICATION_FAILED, message)
            }
        }
    }

    /// The listener's protocol.
    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }
}

/// PLAIN: `authzid NUL user NUL password`, checked against the user's stored SCRAM credential.
async fn plain(broker: &Broker, token: &[u8]) -> Result<String, String> {
    const INVALID: &str = "Authentication failed: Invalid username or password";
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Authentication failed: invalid PLAIN token".into());
    };
    let (Ok(authzid), Ok(user), Ok(password)) = (
        std::str::from_utf8(authzid),
        std::str::from_utf8(user),
        std::str::from_utf8(password),
    ) else {
        return Err("Authentication failed: invalid PLAIN token".into());
    };
    if user.is_empty() || password.is_empty() {
        return Err("Authentication failed: username or password is empty".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err(
            "Authentication failed: Client requested an authorization id that is different \
             from username"
                .into(),
        );
    }
    let mut found = None;
    for m in ScramMechanism::ALL {
        let credential = broker
            .log
            .users()
            .credential(user, m.name())
            .await
            .map_err(|e| format!("Authentication failed: the store failed: {e}"))?;
        if let Some(c) = credential {
            found = Some((m, c));
            break;
        }
    }
    // PBKDF2 runs off the async workers; an unknown user costs the same as a wrong password, so
    // the time taken does not tell which users exist.
    let known = found.is_some();
    let (m, c) = found.unwrap_or_else(|| {
        let m = ScramMechanism::Sha256;
        (
            m,
            m.credential_from_salted(&[0; 32], b"no such user", 4_096),
        )
    });
    let password = password.to_string();
    let matches = tokio::task::spawn_blocking(move || m.password_matches(&c, &password))
        .await
        .unwrap_or(false);
    if known && matches {
        Ok(user.to_string())
    } else {
        Err(INVALID.into())
    }
}

/// SCRAM's first round: the client's first message, answered with the server's.
async fn scram_first(
    broker: &Broker,
    m: ScramMechanism,
    token: &[u8],
) -> Result<(Exchange, Vec<u8>), String> {
    let first = scram::parse_client_first(token)
        .map_err(|e| format!("Authentication failed: invalid SCRAM client-first message: {e}"))?;
    let credential = broker
        .log
        .users()
        .credential(&first.user, m.name())
        .await
        .map_err(|e| format!("Authentication failed: the store failed: {e}"))?
        .ok_or_else(|| "Authentication failed: Invalid user credentials".to_string())?;
    Ok(Exchange::start(m, first, credential))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_is_offered_on_plaintext_only_when_allowed() {
        let mut c = SaslConfig::default();
        assert!(
            !c.mechanisms_for(SecurityProtocol::SaslPlaintext)
                .contains(&Mechanism::Plain)
        );
        assert!(
            c.mechanisms_for(SecurityProtocol::SaslSsl)
                .contains(&Mechanism::Plain)
        );
        c.plain_allow_plaintext = true;
        assert!(
            c.mechanisms_for(SecurityProtocol::SaslPlaintext)
                .contains(&Mechanism::Plain)
        );
    }

    #[test]
    fn handshake_states() {
        use crate::error_code::*;
        let offered = SaslConfig::default().mechanisms_for(SecurityProtocol::SaslSsl);
        let s = Session::new(SecurityProtocol::Plaintext, None);
        assert!(s.authenticated());
        assert_eq!(s.handshake(1, "PLAIN", &offered), ILLEGAL_SASL_STATE);
        assert!(!s.closing());
        assert_eq!(s.principal(), ANONYMOUS);

        let s = Session::new(SecurityProtocol::SaslSsl, None);
        assert!(!s.authenticated());
        assert_eq!(
            s.handshake(1, "GSSAPI", &offered),
            UNSUPPORTED_SASL_MECHANISM
        );
        assert!(s.closing());

        let s = Session::new(SecurityProtocol::SaslSsl, None);
        assert_eq!(s.handshake(1, "SCRAM-SHA-512", &offered), NONE);
        assert!(!s.authenticated());
        assert!(!s.expects_raw_token());
        assert_eq!(
            s.handshake(1, "SCRAM-SHA-512", &offered),
            ILLEGAL_SASL_STATE
        );
        assert!(s.closing());

        let s = Session::new(SecurityProtocol::SaslPlaintext, None);
        assert_eq!(s.handshake(0, "SCRAM-SHA-256", &offered), NONE);
        assert!(s.expects_raw_token());
    }
}
