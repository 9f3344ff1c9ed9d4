//! Listeners as Kafka configures them: `listeners` (`NAME://host:port,...`), `advertised.listeners`
//! (what clients are told, per listener name) and `listener.security.protocol.map`
//! (`NAME:PROTOCOL,...`; without it a listener's name must be a security protocol). This module
//! only parses and checks those three settings; `server` binds and accepts, `tls` and `sasl` do
//! what a listener's protocol asks for.

use std::fmt;

/// A listener's security protocol (Kafka's `security.protocol` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// Neither encryption nor authentication.
    Plaintext,
    /// TLS; the principal is the client certificate's subject, if any.
    Ssl,
    /// SASL authentication without encryption.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Parse Kafka's name of a protocol.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections are TLS.
    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before anything but ApiVersions is served.
    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One listener: where it binds, what clients are told, and its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The listener's name (`PLAINTEXT`, `INTERNAL`, ...), upper case as Kafka keeps it.
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// The host it binds (empty: every interface).
    pub bind_host: String,
    /// The port it binds.
    pub bind_port: u16,
    /// The host clients connect to.
    pub advertised_host: String,
    /// The port clients connect to.
    pub advertised_port: i32,
}

impl Listener {
    /// A PLAINTEXT listener on `host:port`, advertised as itself (`--listen`'s shorthand).
    pub fn plaintext(host: &str, port: u16) -> Self {
        Self {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            bind_host: host.into(),
            bind_port: port,
            advertised_host: host.into(),
            advertised_port: i32::from(port),
        }
    }

    /// The bind address as `host:port` (every interface when no host was given).
    pub fn bind_addr(&self) -> String {
        let host = if self.bind_host.is_empty() {
            "0.0.0.0"
        } else {
            &self.bind_host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.bind_port)
        } else {
            format!("{host}:{}", self.bind_port)
        }
    }
}

/// One `NAME://host:port` entry.
fn parse_entry(entry: &str) -> Result<(String, String, u16), String> {
    let (name, rest) = entry
        .split_once("://")
        .ok_or_else(|| format!("{entry}: expected NAME://host:port"))?;
    let name = name.trim().to_ascii_uppercase();
    if name.is_empty() {
        return Err(format!("{entry}: the listener has no name"));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{entry}: expected NAME://host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{entry}: bad port {port:?}"))?;
    Ok((name, host.trim_matches(['[', ']']).to_string(), port))
}

/// Split a comma-separated list, ignoring blanks.
fn entries(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Kafka's `listener.security.protocol.map`: `NAME:PROTOCOL,...` (empty: the default map, in
/// which each protocol is a listener of its own name).
pub fn parse_protocol_map(s: &str) -> Result<Vec<(String, SecurityProtocol)>, String> {
    entries(s)
        .map(|e| {
            let (name, protocol) = e
                .split_once(':')
                .ok_or_else(|| format!("{e}: expected NAME:PROTOCOL"))?;
            let p = SecurityProtocol::from_name(protocol.trim())
                .ok_or_else(|| format!("{e}: unknown security protocol {protocol:?}"))?;
            Ok((name.trim().to_ascii_uppercase(), p))
        })
        .collect()
}

/// Parse `listeners`, `advertised.listeners` (may be empty: each listener advertises its own
/// address, `fallback_host` for one bound to every interface) and the protocol map.
pub fn parse(
    listeners: &str,
    advertised: &str,
    protocol_map: &str,
    fallback_host: &str,
) -> Result<Vec<Listener>, String> {
    let map = parse_protocol_map(protocol_map)?;
    let mut out: Vec<Listener> = Vec::new();
    for entry in entries(listeners) {
        let (name, host, port) = parse_entry(entry)?;
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener {name} is given twice"));
        }
        let protocol = match map.iter().find(|(n, _)| *n == name) {
            Some((_, p)) => *p,
            None if map.is_empty() => SecurityProtocol::from_name(&name).ok_or_else(|| {
                format!(
                    "listener {name} is not a security protocol; name its protocol in \
                     --listener-security-protocol-map"
                )
            })?,
            None => {
                return Err(format!(
                    "listener {name} is not in --listener-security-protocol-map"
                ));
            }
        };
        let advertised_host = if host.is_empty() || host == "0.0.0.0" || host == "::" {
            fallback_host.to_string()
        } else {
            host.clone()
        };
        out.push(Listener {
            name,
            protocol,
            bind_host: host,
            bind_port: port,
            advertised_host,
            advertised_port: i32::from(port),
        });
    }
    if out.is_empty() {
        return Err("no listeners given".into());
    }
    for entry in entries(advertised) {
        let (name, host, port) = parse_entry(entry)?;
        let listener = out
            .iter_mut()
            .find(|l| l.name == name)
            .ok_or_else(|| format!("advertised listener {name} is not one of the listeners"))?;
        if host.is_empty() || host == "0.0.0.0" || host == "::" {
            return Err(format!(
                "{entry}: an advertised listener needs a host clients can reach"
            ));
        }
        listener.advertised_host = host;
        listener.advertised_port = i32::from(port);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_by_name_and_by_map() {
        let l = parse(
            "PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093",
            "",
            "",
            "broker1",
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].advertised_host, "127.0.0.1");
        assert_eq!(l[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[1].bind_addr(), "0.0.0.0:9093");
        assert_eq!(l[1].advertised_host, "broker1");

        let l = parse(
            "internal://127.0.0.1:9092,EXTERNAL://0.0.0.0:9093",
            "EXTERNAL://kafka.example.com:19093",
            "INTERNAL:SASL_PLAINTEXT,EXTERNAL:SSL",
            "h",
        )
        .unwrap();
        assert_eq!(l[0].name, "INTERNAL");
        assert_eq!(l[0].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(l[1].protocol, SecurityProtocol::Ssl);
        assert_eq!(
            (l[1].advertised_host.as_str(), l[1].advertised_port),
            ("kafka.example.com", 19093)
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (listeners, advertised, map) in [
            ("INTERNAL://h:1", "", ""),
            ("INTERNAL://h:1", "", "EXTERNAL:SSL"),
            ("PLAINTEXT://h:1,PLAINTEXT://h:2", "", ""),
            ("PLAINTEXT://h:1", "SSL://h:2", ""),
            ("PLAINTEXT://h:1", "PLAINTEXT://0.0.0.0:2", ""),
            ("PLAINTEXT://h", "", ""),
            ("PLAINTEXT://h:99999", "", ""),
            ("h:1", "", ""),
            ("", "", ""),
            ("A://h:1", "", "A:TLS"),
        ] {
            assert!(
                parse(listeners, advertised, map, "x").is_err(),
                "{listeners} {advertised} {map}"
            );
        }
    }

    #[test]
    fn ipv6_hosts() {
        let l = parse("PLAINTEXT://[::1]:9092", "", "", "x").unwrap();
        assert_eq!(l[0].bind_host, "::1");
        assert_eq!(l[0].bind_addr(), "[::1]:9092");
    }
}
