//! A small Kafka client for kfdb's admin command line (`kfdb cluster|topic|group|produce|consume`):
//! it speaks the Kafka protocol to any Kafka-compatible cluster, kfdb or Apache Kafka.
//!
//! It owns the transport only: connections with the 4-byte length framing, ApiVersions
//! negotiation (each request goes at the highest version both sides know, capped where a newer
//! version would change what the caller means, e.g. topic ids instead of names), correlation
//! ids, timeouts, and routing — the bootstrap broker for cluster-wide requests, a partition's
//! leader, a group's coordinator. The messages themselves are kafka-protocol's; what a command
//! does with them lives in the `kfdb` binary. TLS (rustls) and SASL PLAIN/SCRAM as Kafka clients
//! configure them (`security.rs`).

mod client;
mod conn;
mod error;
mod security;

pub use client::Client;
pub use conn::Connection;
pub use error::{Error, Result, error_name};
pub use security::{SaslSettings, Security, TlsSettings};
