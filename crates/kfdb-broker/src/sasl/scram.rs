//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) on the server side: making a stored
//! credential from a password or from a client's salted password (AlterUserScramCredentials), and
//! the two-round exchange that checks a client's proof against the stored credential without the
//! password. The primitives (HMAC, SHA-2, PBKDF2, constant-time comparison) are RustCrypto's; this
//! module only implements the message flow.

use hmac::{Hmac, Mac};
use kfdb_log::ScramCredential;
use rand::Rng;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Fewest PBKDF2 iterations a credential may have (Kafka's minimum).
pub const MIN_ITERATIONS: i32 = 4_096;
/// Most PBKDF2 iterations a credential may have (Kafka's maximum).
pub const MAX_ITERATIONS: i32 = 16_384;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The mechanism's SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// By SASL name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The type code of AlterUserScramCredentials / DescribeUserScramCredentials.
    pub fn code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// By type code.
    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length: `new_from_slice` cannot fail here.
        match self {
            Self::Sha256 => match <Hmac<Sha256> as Mac>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            Self::Sha512 => match <Hmac<Sha512> as Mac>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    fn hash(self, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(msg).to_vec(),
            Self::Sha512 => Sha512::digest(msg).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Self::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }

    /// The stored credential for a salted password.
    pub fn credential_from_salted(
        self,
        salted_password: &[u8],
        salt: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// A new credential for `password`, with a random salt.
    pub fn credential(self, password: &str, iterations: i32) -> ScramCredential {
        let salt: [u8; 32] = rand::rng().random();
        let salted = self.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
        self.credential_from_salted(&salted, &salt, iterations)
    }

    /// Whether `password` is the one `credential` was made from (PLAIN's check).
    pub fn password_matches(self, credential: &ScramCredential, password: &str) -> bool {
        let salted = self.salted_password(
            password.as_bytes(),
            &credential.salt,
            credential.iterations.max(1) as u32,
        );
        let stored = self.hash(&self.hmac(&salted, b"Client Key"));
        bool::from(stored.ct_eq(&credential.stored_key))
    }
}

/// The client's first message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The user (saslname-decoded).
    pub user: String,
    /// The GS2 header as sent (`n,,` or `n,a=user,`), checked again in the final message.
    gs2_header: String,
    /// The client's nonce.
    nonce: String,
    /// `client-first-message-bare`, part of the AuthMessage.
    bare: String,
}

/// Decode a saslname (`=2C` is `,`, `=3D` is `=`).
fn decode_saslname(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err("invalid user name encoding".into()),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse `client-first-message` (RFC 5802 §7).
pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, String> {
    let msg = std::str::from_utf8(msg).map_err(|_| "the message is not UTF-8".to_string())?;
    let (cbind, rest) = msg.split_once(',').ok_or("the message has no GS2 header")?;
    match cbind {
        "n" | "y" => {}
        _ if cbind.starts_with("p=") => return Err("channel binding is not supported".into()),
        _ => return Err("bad GS2 header".into()),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or("the message has no GS2 header")?;
    let gs2_header = format!("{cbind},{authzid},");
    let mut user = None;
    let mut nonce = None;
    for attr in bare.split(',') {
        if let Some(u) = attr.strip_prefix("n=") {
            user = Some(decode_saslname(u)?);
        } else if let Some(r) = attr.strip_prefix("r=") {
            nonce = Some(r.to_string());
        } else if attr.starts_with("m=") {
            return Err("mandatory extensions are not supported".into());
        } else if attr == "tokenauth=true" {
            return Err("delegation tokens are not supported".into());
        }
    }
    let user = user.filter(|u| !u.is_empty()).ok_or("no user name")?;
    let nonce = nonce.filter(|n| !n.is_empty()).ok_or("no nonce")?;
    if !authzid.is_empty() {
        let requested = authzid
            .strip_prefix("a=")
            .ok_or("bad authorization id")
            .and_then(|a| decode_saslname(a).map_err(|_| "bad authorization id"))?;
        if requested != user {
            return Err("the authorization id is not the user name".into());
        }
    }
    Ok(ClientFirst {
        user,
        gs2_header,
        nonce,
        bare: bare.to_string(),
    })
}

/// An exchange between the server's first message and the client's final one.
#[derive(Debug, Clone)]
pub struct Exchange {
    mechanism: ScramMechanism,
    credential: ScramCredential,
    first: ClientFirst,
    server_first: String,
    nonce: String,
}

impl Exchange {
    /// Answer `first` for a user with `credential`: the exchange and `server-first-message`.
    pub fn start(
        mechanism: ScramMechanism,
        first: ClientFirst,
        credential: ScramCredential,
    ) -> (Self, Vec<u8>) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let server_nonce: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            b64.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        (
            Self {
                mechanism,
                credential,
                first,
                server_first,
                nonce,
            },
            reply,
        )
    }

    /// The user being authenticated.
    pub fn user(&self) -> &str {
        &self.first.user
    }

    /// Check `client-final-message`; on success, `server-final-message`.
    pub fn finish(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let msg = std::str::from_utf8(msg).map_err(|_| "the message is not UTF-8".to_string())?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or("the message has no proof")?;
        let mut channel = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                channel = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        let channel = b64
            .decode(channel.ok_or("the message has no channel binding")?)
            .map_err(|_| "bad channel binding".to_string())?;
        if channel != self.first.gs2_header.as_bytes() {
            return Err("the channel binding does not match".into());
        }
        // The nonce echoed exactly (RFC 5802), as Kafka 4 checks it. Older librdkafka (kcat 1.7.1's
        // 2.0.2) sends its own nonce in front of the server's; Kafka 3 accepted that, Kafka 4 and
        // kfdb do not.
        if nonce != Some(self.nonce.as_str()) {
            return Err("the nonce does not match".into());
        }
        let proof = b64
            .decode(proof)
            .map_err(|_| "bad proof encoding".to_string())?;
        let auth_message = format!(
            "{},{},{}",
            self.first.bare, self.server_first, without_proof
        );
        let m = self.mechanism;
        let signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err("invalid credentials".into());
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        if !bool::from(m.hash(&client_key).ct_eq(&self.credential.stored_key)) {
            return Err("invalid credentials".into());
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", b64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// A client's side of the exchange, written from RFC 5802 to check the server's.
    fn client_final(
        m: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for a in server_first.split(',') {
            if let Some(r) = a.strip_prefix("r=") {
                nonce = r;
            } else if let Some(s) = a.strip_prefix("s=") {
                salt = b64.decode(s).unwrap();
            } else if let Some(i) = a.strip_prefix("i=") {
                iterations = i.parse().unwrap();
            }
        }
        let salted = m.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let server_sig = m.hmac(&m.hmac(&salted, b"Server Key"), auth.as_bytes());
        (
            format!("{without_proof},p={}", b64.encode(proof)),
            format!("v={}", b64.encode(server_sig)).into_bytes(),
        )
    }

    #[test]
    fn rfc7677_sha256_vector() {
        // RFC 7677 §3: user "user", password "pencil", 4096 iterations.
        let b64 = base64::engine::general_purpose::STANDARD;
        let m = ScramMechanism::Sha256;
        let salt = b64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let cred = m.credential_from_salted(&salted, &salt, 4096);
        let bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let exchange = Exchange {
            mechanism: m,
            credential: cred,
            first: parse_client_first(format!("n,,{bare}").as_bytes()).unwrap(),
            server_first: server_first.into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
        };
        let final_msg = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            exchange.finish(final_msg.as_bytes()).unwrap(),
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
        );
    }

    #[test]
    fn exchange_accepts_the_password_and_nothing_else() {
        for m in ScramMechanism::ALL {
            let cred = m.credential("s3cret", MIN_ITERATIONS);
            assert!(m.password_matches(&cred, "s3cret"));
            assert!(!m.password_matches(&cred, "s3cres"));
            for (password, ok) in [("s3cret", true), ("wrong", false)] {
                let bare = "n=alice,r=clientnonce123";
                let first = parse_client_first(format!("n,,{bare}").as_bytes()).unwrap();
                assert_eq!(first.user, "alice");
                let (ex, reply) = Exchange::start(m, first, cred.clone());
                let server_first = String::from_utf8(reply).unwrap();
                let (final_msg, expected) = client_final(m, password, bare, &server_first);
                let answer = ex.finish(final_msg.as_bytes());
                if ok {
                    assert_eq!(answer.unwrap(), expected, "{m:?}");
                } else {
                    assert!(answer.is_err(), "{m:?}");
                }
            }
        }
    }

    #[test]
    fn bad_messages_are_refused() {
        for bad in [
            &b"p=tls-unique,,n=a,r=x"[..],
            b"n,,n=,r=x",
            b"n,,n=a",
            b"x,,n=a,r=x",
            b"n,a=bob,n=alice,r=x",
            b"n,,n=a=zz,r=x",
            b"n,,n=a,r=x,m=ext",
            b"n",
            b"\xff\xfe",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
        let first = parse_client_first(b"n,a=al=2Cice,n=al=2Cice,r=abc").unwrap();
        assert_eq!(first.user, "al,ice");
        let m = ScramMechanism::Sha512;
        let (ex, reply) = Exchange::start(m, first, m.credential("pw", MIN_ITERATIONS));
        let server_first = String::from_utf8(reply).unwrap();
        let nonce = server_first
            .split(',')
            .next()
            .unwrap()
            .trim_start_matches("r=");
        for bad in [
            "c=biws,r=abc,p=AAAA".to_string(), // nonce mismatch
            format!("c=biws,r={},p=AAAA", &nonce[..nonce.len() - 1]), // server part cut
            format!("c=eSws,r={nonce},p=AAAA"), // channel binding mismatch
            format!("c=biws,r={nonce}"),       // no proof
            format!("c=bmssYT1hbD0yQ2ljZSw=,r={nonce},p=!!"), // bad base64
            format!("c=bmssYT1hbD0yQ2ljZSw=,r={nonce},p=AAAA"), // short proof
        ] {
            assert!(ex.finish(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn mechanism_names_and_codes() {
        for m in ScramMechanism::ALL {
            assert_eq!(ScramMechanism::from_name(m.name()), Some(m));
            assert_eq!(ScramMechanism::from_code(m.code()), Some(m));
        }
        assert_eq!(ScramMechanism::from_code(0), None);
        assert_eq!(ScramMechanism::from_name("SCRAM-SHA-1"), None);
    }
}
