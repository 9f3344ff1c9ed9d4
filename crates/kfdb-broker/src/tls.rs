//! TLS for SSL and SASL_SSL listeners, with rustls: the broker's certificate chain and key from PEM
//! files, optional client authentication against a CA file, TLS 1.2 and 1.3. The files are read
//! again on `reload` (SIGHUP, or a change of their modification time seen by `watch`); a
//! connection takes the configuration current at its handshake, so a reload never drops one, and
//! a reload that fails (a half-written file) keeps the old configuration with a log line.
//!
//! Client certificates are asked for on SSL listeners only: on SASL_SSL the principal comes from
//! SASL, and Kafka likewise applies `ssl.client.auth` to SASL_SSL listeners only when set for that
//! listener. A client certificate's subject becomes an SSL connection's principal, as Kafka's
//! default principal builder makes it: `User:` and the subject in RFC 2253 form (`CN=app,O=acme`).

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// A certificate is asked for and checked if given.
    Requested,
    /// A certificate signed by the CA is required.
    Required,
}

impl ClientAuth {
    /// Parse Kafka's value (`none`, `requested`, `required`).
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Some(Self::None),
            "requested" => Some(Self::Requested),
            "required" => Some(Self::Required),
            _ => None,
        }
    }
}

/// Every certificate of a PEM file (an error names the file).
fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Where the TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the broker's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates client certificates are checked against.
    pub ca: Option<PathBuf>,
    /// Whether to ask clients for certificates.
    pub client_auth: ClientAuth,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        [Some(&self.cert), Some(&self.key), self.ca.as_ref()]
            .into_iter()
            .flatten()
    }

    /// The files' modification times (what `watch` compares).
    fn stamp(&self) -> Vec<Option<SystemTime>> {
        self.paths()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Build the server configurations from the files: with client authentication as set, and
    /// without any.
    fn load(&self) -> Result<Configs, String> {
        let with = Arc::new(self.load_with(self.client_auth)?);
        let without = if self.client_auth == ClientAuth::None {
            with.clone()
        } else {
            Arc::new(self.load_with(ClientAuth::None)?)
        };
        Ok(Configs {
            client_auth: with,
            no_client_auth: without,
        })
    }

    fn load_with(&self, client_auth: ClientAuth) -> Result<ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = read_certs(&self.cert)?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate", self.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("{}: {e}", self.key.display()))?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match (client_auth, &self.ca) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (_, None) => {
                return Err("client authentication needs a CA file (--ssl-ca-file)".into());
            }
            (auth, Some(ca)) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in read_certs(ca)? {
                    roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
            }
        };
        builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("{}: {e}", self.key.display()))
    }
}

/// The server configurations in force.
#[derive(Clone)]
struct Configs {
    /// For SSL listeners: client certificates as `ssl.client.auth` says.
    client_auth: Arc<ServerConfig>,
    /// For SASL_SSL listeners: no client certificates.
    no_client_auth: Arc<ServerConfig>,
}

/// The TLS settings of the broker's TLS listeners (see the module documentation).
pub struct Tls {
    files: TlsFiles,
    current: RwLock<(Configs, Vec<Option<SystemTime>>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Load the files (an error names the file and what is wrong with it).
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, String> {
        let stamp = files.stamp();
        let config = files.load()?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new((config, stamp)),
        }))
    }

    /// The acceptor for a new connection (`client_auth`: ask for a client certificate as
    /// `ssl.client.auth` says, else never).
    pub fn acceptor(&self, client_auth: bool) -> tokio_rustls::TlsAcceptor {
        let configs = match self.current.read() {
            Ok(c) => c.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        };
        tokio_rustls::TlsAcceptor::from(if client_auth {
            configs.client_auth
        } else {
            configs.no_client_auth
        })
    }

    /// Read the files again; on an error the old configuration stays.
    pub fn reload(&self) -> Result<(), String> {
        let stamp = self.files.stamp();
        let config = self.files.load()?;
        let mut current = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = (config, stamp);
        Ok(())
    }

    /// Reload whenever the files' modification times change, checking every `every`.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let known = match self.current.read() {
                Ok(c) => c.1.clone(),
                Err(poisoned) => poisoned.into_inner().1.clone(),
            };
            if self.files.stamp() != known {
                self.reload_logged("the certificate files changed");
            }
        }
    }

    /// `reload`, with a log line either way.
    pub fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(why, "TLS certificates reloaded"),
            Err(e) => {
                tracing::error!(why, error = %e, "TLS reload failed; the old certificates stay")
            }
        }
    }
}

/// A certificate's subject as Kafka's default principal builder names it (RFC 2253: the
/// relative names last-first, `,` between them, `+` inside one), or `None` if it does not parse.
pub fn subject_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type();
                    let key = match oid.to_id_string().as_str() {
                        "2.5.4.3" => "CN".to_string(),
                        "2.5.4.6" => "C".to_string(),
                        "2.5.4.7" => "L".to_string(),
                        "2.5.4.8" => "ST".to_string(),
                        "2.5.4.9" => "STREET".to_string(),
                        "2.5.4.10" => "O".to_string(),
                        "2.5.4.11" => "OU".to_string(),
                        "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                        "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                        id => id.to_string(),
                    };
                    let value = attr.as_str().map(escape_rfc2253).unwrap_or_else(|_| {
                        let hex: String =
                            attr.as_slice().iter().map(|b| format!("{b:02x}")).collect();
                        format!("#{hex}")
                    });
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// Escape an attribute value as RFC 2253 asks.
fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2253_escapes() {
        assert_eq!(escape_rfc2253("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc2253(" x "), "\\ x\\ ");
        assert_eq!(escape_rfc2253("#1"), "\\#1");
        assert_eq!(escape_rfc2253("plain"), "plain");
    }

    #[test]
    fn client_auth_names() {
        assert_eq!(
            ClientAuth::from_name("REQUIRED"),
            Some(ClientAuth::Required)
        );
        assert_eq!(
            ClientAuth::from_name("requested"),
            Some(ClientAuth::Requested)
        );
        assert_eq!(ClientAuth::from_name("none"), Some(ClientAuth::None));
        assert_eq!(ClientAuth::from_name("want"), None);
    }

    #[test]
    fn missing_files_are_named() {
        let e = Tls::load(TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            ca: None,
            client_auth: ClientAuth::None,
        })
        .unwrap_err();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    }
}
