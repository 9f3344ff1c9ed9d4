//! # kfdb-broker: the Kafka protocol front end
//!
//! `server` accepts connections; `connection` owns one socket and deals only in frames (`frame`)
//! and answers requests in order; `handlers` has one module per API key, each decoding its request,
//! calling kfdb-log, and building its response. Handlers never build store keys and never see the
//! socket. `error_code` maps data-model errors to Kafka error codes in one place. `http` serves
//! metrics and broker control; `keyapi` kfdb's own HTTP API (the latest record of a key).

pub mod cluster;
mod connection;
pub mod error_code;
mod frame;
pub mod group;
pub mod handlers;
pub mod http;
pub mod keyapi;
pub mod metrics;
pub mod node;
mod server;

pub use server::serve;

use kfdb_log::Log;
use std::sync::Arc;

/// Broker settings (Kafka's names in comments where one exists).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// Host clients are told to connect to (`advertised.listeners`).
    pub advertised_host: String,
    /// Port clients are told to connect to.
    pub advertised_port: i32,
    /// `socket.request.max.bytes`: larger frames close the connection.
    pub max_request_bytes: usize,
    /// `max.connections`.
    pub max_connections: usize,
    /// Group coordinator settings.
    pub group: group::GroupConfig,
    /// Most topics a Metadata request for all topics returns (bounds the response's memory).
    pub metadata_max_topics: usize,
    /// How long a shutdown waits for connections to finish their requests before closing them.
    pub shutdown_timeout: std::time::Duration,
    /// The one "log dir" this broker reports (DescribeLogDirs, `log.dirs`): where its store is.
    pub log_dir: String,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            max_request_bytes: 100 * 1024 * 1024,
            max_connections: 10_000,
            group: group::GroupConfig::default(),
            metadata_max_topics: 1_000_000,
            shutdown_timeout: std::time::Duration::from_secs(30),
            log_dir: "kfdb-data".into(),
        }
    }
}

/// What every handler can reach: the data model and the broker's settings.
pub struct Broker {
    /// The data model.
    pub log: Arc<Log>,
    /// Settings.
    pub config: BrokerConfig,
    /// The consumer-group coordinator.
    pub groups: Arc<group::Coordinator>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Set when the server shuts down: long-polling requests answer at once.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

impl Broker {
    /// A broker over `log`.
    pub fn new(log: Arc<Log>, config: BrokerConfig) -> std::io::Result<Arc<Self>> {
        let groups = group::Coordinator::new(log.clone(), config.group.clone());
        let metrics = metrics::Metrics::new(&log)?;
        Ok(Arc::new(Self {
            log,
            config,
            groups,
            metrics,
            stopping: tokio::sync::watch::Sender::new(false),
        }))
    }
}
