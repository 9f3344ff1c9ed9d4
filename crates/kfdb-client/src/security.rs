//! How a connection authenticates, as Kafka clients configure it: `security.protocol`
//! (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), TLS from PEM files (rustls: the CA to trust, and a
//! client certificate when the broker asks for one), and SASL PLAIN or SCRAM-SHA-256/512
//! (RFC 5802/7677, client side). `Security::from_properties` reads a Kafka client properties file
//! (`--command-config`, as Kafka's tools take it).

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256, Sha512};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// TLS settings (PEM files).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// CA certificates the broker's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// The client's certificate chain and private key (one PEM file may hold both).
    pub cert: Option<PathBuf>,
    /// The client's private key.
    pub key: Option<PathBuf>,
}

/// SASL settings.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: String,
    /// The user.
    pub username: String,
    /// Its password.
    pub password: String,
}

/// How to connect: TLS or not, SASL or not.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// TLS (SSL, SASL_SSL).
    pub tls: Option<TlsSettings>,
    /// SASL (SASL_PLAINTEXT, SASL_SSL).
    pub sasl: Option<SaslSettings>,
}

impl Security {
    /// From a Kafka client properties file's entries: `security.protocol`, `sasl.mechanism`,
    /// `sasl.jaas.config` (PlainLoginModule or ScramLoginModule with `username` and `password`),
    /// `ssl.truststore.location` and `ssl.keystore.location` with type PEM (`ssl.key.location`
    /// for a separate key file).
    pub fn from_properties(props: &HashMap<String, String>) -> Result<Self> {
        let get = |k: &str| props.get(k).map(|v| v.trim().to_string());
        let protocol = get("security.protocol").unwrap_or_else(|| "PLAINTEXT".into());
        let (tls, sasl) = match protocol.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => return Err(Error::Io(format!("security.protocol={other}: unknown"))),
        };
        let pem = |type_key: &str, location_key: &str| -> Result<Option<PathBuf>> {
            let Some(location) = get(location_key) else {
                return Ok(None);
            };
            match get(type_key) {
                Some(t) if t.eq_ignore_ascii_case("PEM") => Ok(Some(PathBuf::from(location))),
                other => Err(Error::Io(format!(
                    "{location_key}: set {type_key}=PEM (got {other:?}); kfdb reads PEM files"
                ))),
            }
        };
        let tls = if tls {
            let keystore = pem("ssl.keystore.type", "ssl.keystore.location")?;
            Some(TlsSettings {
                ca: pem("ssl.truststore.type", "ssl.truststore.location")?,
                key: get("ssl.key.location")
                    .map(PathBuf::from)
                    .or(keystore.clone()),
                cert: keystore,
            })
        } else {
            None
        };
        let sasl = if sasl {
            let mechanism = get("sasl.mechanism").unwrap_or_else(|| "GSSAPI".into());
            let jaas = get("sasl.jaas.config").unwrap_or_default();
            let field = |name: &str| -> Option<String> {
                let start = jaas.find(&format!("{name}=\""))? + name.len() + 2;
                let end = jaas[start..].find('"')? + start;
                Some(jaas[start..end].to_string())
            };
            match (field("username"), field("password")) {
                (Some(username), Some(password)) => Some(SaslSettings {
                    mechanism: mechanism.to_ascii_uppercase(),
                    username,
                    password,
                }),
                _ => {
                    return Err(Error::Io(
                        "sasl.jaas.config needs username=\"...\" and password=\"...\"".into(),
                    ));
                }
            }
        } else {
            None
        };
        Ok(Self { tls, sasl })
    }

    /// The TLS client configuration.
    pub(crate) fn tls_config(tls: &TlsSettings) -> Result<Arc<rustls::ClientConfig>> {
        let io = |what: &PathBuf, e: &dyn std::fmt::Display| {
            Error::Io(format!("{}: {e}", what.display()))
        };
        let ca = tls.ca.as_ref().ok_or_else(|| {
            Error::Io("TLS needs the CA to trust (ssl.truststore.location, type PEM)".into())
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| io(ca, &e))? {
            roots
                .add(c.map_err(|e| io(ca, &e))?)
                .map_err(|e| io(ca, &e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Io(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| io(cert, &e))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| io(cert, &e))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| io(key, &e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Io(e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// The name the broker's certificate must carry: the host of `addr`.
    pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>> {
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(addr)
            .trim_matches(['[', ']']);
        ServerName::try_from(host.to_string())
            .map_err(|e| Error::Io(format!("{host}: not a host name for TLS: {e}")))
    }
}

/// A SCRAM hash.
#[derive(Clone, Copy)]
pub(crate) enum Scram {
    Sha256,
    Sha512,
}

impl Scram {
    pub(crate) fn from_mechanism(m: &str) -> Option<Self> {
        match m {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn hmac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => <Hmac<Sha256> as Mac>::new_from_slice(key)
                .map(|mut m| {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                })
                .unwrap_or_default(),
            Self::Sha512 => <Hmac<Sha512> as Mac>::new_from_slice(key)
                .map(|mut m| {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                })
                .unwrap_or_default(),
        }
    }

    fn hash(self, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(msg).to_vec(),
            Self::Sha512 => Sha512::digest(msg).to_vec(),
        }
    }

    /// Hi(password, salt, i): PBKDF2 with this hash's HMAC.
    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
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
}

/// The client side of one SCRAM exchange.
pub(crate) struct ScramClient {
    scram: Scram,
    username: String,
    password: String,
    nonce: String,
    first_bare: String,
    /// The server's signature the final message must carry (after `final_message`).
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub(crate) fn new(scram: Scram, username: &str, password: &str) -> Self {
        let nonce: [u8; 24] = rand::random();
        Self::with_nonce(scram, username, password, &BASE64.encode(nonce))
    }

    fn with_nonce(scram: Scram, username: &str, password: &str, nonce: &str) -> Self {
        let name = username.replace('=', "=3D").replace(',', "=2C");
        Self {
            scram,
            username: username.to_string(),
            password: password.to_string(),
            nonce: nonce.to_string(),
            first_bare: format!("n={name},r={nonce}"),
            expected_server_signature: None,
        }
    }

    /// client-first-message.
    pub(crate) fn first_message(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// client-final-message for the server's first message.
    pub(crate) fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>> {
        let bad = |why: &str| Error::Kafka {
            code: 58,
            message: format!("SCRAM for {}: {why}", self.username),
        };
        let server_first = std::str::from_utf8(server_first).map_err(|_| bad("not UTF-8"))?;
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|p| p.strip_prefix(&format!("{k}=")))
        };
        let nonce = attr("r").ok_or_else(|| bad("no nonce"))?;
        if !nonce.starts_with(&self.nonce) {
            return Err(bad("the server's nonce does not extend ours"));
        }
        let salt = BASE64
            .decode(attr("s").ok_or_else(|| bad("no salt"))?)
            .map_err(|_| bad("salt not base64"))?;
        let iterations: u32 = attr("i")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| bad("no iteration count"))?;
        let salted = self
            .scram
            .salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = self.scram.hmac(&salted, b"Client Key");
        let stored_key = self.scram.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = self.scram.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = self.scram.hmac(&salted, b"Server Key");
        self.expected_server_signature =
            Some(self.scram.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Check the server's final message (it proves the server knew the credential).
    pub(crate) fn verify(&self, server_final: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(server_final);
        let given = text
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .and_then(|v| BASE64.decode(v).ok());
        match (&self.expected_server_signature, given) {
            (Some(expected), Some(given)) if *expected == given => Ok(()),
            _ => Err(Error::Kafka {
                code: 58,
                message: format!(
                    "SCRAM for {}: the server's signature is wrong",
                    self.username
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example.
    #[test]
    fn rfc7677_exchange() {
        let mut c =
            ScramClient::with_nonce(Scram::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.first_message(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = c
            .final_message(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c.verify(b"v=AAAA").is_err());
    }

    #[test]
    fn properties_as_kafkas_tools_take_them() {
        let props: HashMap<String, String> = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"s3cret\";",
            ),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "/ca.pem"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = Security::from_properties(&props).unwrap();
        let sasl = s.sasl.unwrap();
        assert_eq!(
            (
                sasl.mechanism.as_str(),
                sasl.username.as_str(),
                sasl.password.as_str()
            ),
            ("SCRAM-SHA-512", "alice", "s3cret")
        );
        assert_eq!(s.tls.unwrap().ca, Some(PathBuf::from("/ca.pem")));
        let mut jks = props.clone();
        jks.insert("ssl.truststore.type".into(), "JKS".into());
        assert!(Security::from_properties(&jks).is_err());
    }
}
