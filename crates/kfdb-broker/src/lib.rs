//! # kfdb-broker: the Kafka protocol front end
//!
//! `server` accepts connections; `connection` owns one socket and deals only in frames (`frame`)
//! and answers requests in order; `handlers` has one module per API key, each decoding its request,
//! calling kfdb-log, and building its response. Handlers never build store keys and never see the
//! socket. `error_code` maps data-model errors to Kafka error codes in one place. `http` serves
//! metrics and broker control; `keyapi` kfdb's own HTTP API (the latest record of a key).
//! `listeners` parses Kafka's listener settings; `tls` terminates TLS on SSL listeners and `sasl`
//! authenticates clients on SASL listeners (a connection's `Session` and principal); `authz`
//! decides what a principal may do (ACLs).

pub mod authz;
pub mod cluster;
mod connection;
pub mod error_code;
mod frame;
pub mod fuzzing;
pub mod group;
pub mod handlers;
pub mod http;
pub mod keyapi;
pub mod listeners;
pub mod metrics;
pub mod node;
pub mod quota;
pub mod response;
pub mod sasl;
mod server;
pub mod slowlog;
pub mod tls;

pub use server::serve;

use kfdb_log::Log;
use std::sync::Arc;

/// One setting of `kfdb serve` as DescribeConfigs reports it for the broker.
#[derive(Debug, Clone)]
pub struct BrokerSetting {
    /// Its server.properties name (`num.partitions`, `kfdb.hot.cache.bytes`).
    pub name: String,
    /// Its value as given.
    pub value: String,
    /// Kafka's config source: 4 (STATIC_BROKER_CONFIG: a flag, the environment or the file) or
    /// 5 (DEFAULT_CONFIG).
    pub source: i8,
}

/// Broker settings (Kafka's names in comments where one exists).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The settings this broker was started with, by their server.properties names, with their
    /// sources (DescribeConfigs of the broker reports them).
    pub settings: Arc<Vec<BrokerSetting>>,
    /// Log requests slower than this (`--slow-request-ms`; `None`: off).
    pub slow_request: Option<std::time::Duration>,
    /// How often consumer-group lag is sampled for `kfdb_group_lag_records`.
    pub lag_sample_interval: std::time::Duration,
    /// `node.id`.
    pub node_id: i32,
    /// `listeners` with their `advertised.listeners` and protocols; the first is the one
    /// addresses are reported for when a request's listener is not known (the HTTP API).
    pub listeners: Vec<listeners::Listener>,
    /// TLS for the SSL and SASL_SSL listeners.
    pub tls: Option<Arc<tls::Tls>>,
    /// SASL for the SASL_PLAINTEXT and SASL_SSL listeners.
    pub sasl: sasl::SaslConfig,
    /// ACL enforcement.
    pub authz: authz::AuthzConfig,
    /// `socket.request.max.bytes`: larger frames close the connection.
    pub max_request_bytes: usize,
    /// `max.connections`: beyond it the broker stops accepting until one closes.
    pub max_connections: usize,
    /// `max.connections.per.ip`: a connection beyond it from one address is closed at once.
    pub max_connections_per_ip: usize,
    /// `connections.max.idle.ms`: a connection that neither sent nor received for this long is
    /// closed.
    pub connections_max_idle: std::time::Duration,
    /// `queued.max.request.bytes`: bytes of requests read and not yet answered, over all
    /// connections (`None`: no bound). Beyond it connections wait before reading a frame's body.
    pub queued_max_request_bytes: Option<usize>,
    /// `fetch.max.bytes`: the most a Fetch response (v3+) carries, whatever the client asks
    /// (the first batch is always whole, so a consumer makes progress).
    pub fetch_max_bytes: usize,
    /// `socket.send.buffer.bytes`: each connection's SO_SNDBUF (`None`: the OS default, which
    /// Linux grows up to `tcp_wmem`'s maximum for a client that does not read).
    pub socket_send_buffer_bytes: Option<usize>,
    /// `socket.receive.buffer.bytes`: each connection's SO_RCVBUF (`None`: the OS default).
    pub socket_receive_buffer_bytes: Option<usize>,
    /// Group coordinator settings.
    pub group: group::GroupConfig,
    /// Most topics a Metadata request for all topics returns (bounds the response's memory).
    pub metadata_max_topics: usize,
    /// How long a shutdown waits for connections to finish their requests before closing them.
    pub shutdown_timeout: std::time::Duration,
    /// The one "log dir" this broker reports (DescribeLogDirs, `log.dirs`): where its store is.
    pub log_dir: String,
}

impl BrokerConfig {
    /// The listener named `name`, else the first.
    pub fn listener(&self, name: &str) -> Option<&listeners::Listener> {
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .or_else(|| self.listeners.first())
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            settings: Arc::default(),
            slow_request: None,
            lag_sample_interval: std::time::Duration::from_secs(30),
            node_id: 1,
            listeners: vec![listeners::Listener::plaintext("127.0.0.1", 9092)],
            tls: None,
            sasl: sasl::SaslConfig::default(),
            authz: authz::AuthzConfig::default(),
            max_request_bytes: 100 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: usize::MAX,
            connections_max_idle: std::time::Duration::from_secs(600),
            queued_max_request_bytes: None,
            fetch_max_bytes: 57_671_680,
            socket_send_buffer_bytes: Some(102_400),
            socket_receive_buffer_bytes: Some(102_400),
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
    /// Decides what each principal may do (ACLs).
    pub authorizer: authz::Authorizer,
    /// Failed authentications per client address.
    pub auth_failures: sasl::FailureLimiter,
    /// Set when the server shuts down: long-polling requests answer at once.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
    /// Client quotas and the rates they are measured on.
    pub quotas: quota::Quotas,
    /// Room for request bytes in flight (`queued.max.request.bytes`), one permit per byte.
    pub(crate) request_bytes: Option<Arc<tokio::sync::Semaphore>>,
}

impl Broker {
    /// A broker over `log`.
    pub fn new(log: Arc<Log>, config: BrokerConfig) -> std::io::Result<Arc<Self>> {
        let groups = group::Coordinator::new(log.clone(), config.group.clone());
        let metrics = metrics::Metrics::new(&log)?;
        let authorizer = authz::Authorizer::new(log.clone(), config.authz.clone());
        let request_bytes = config
            .queued_max_request_bytes
            .map(|b| Arc::new(tokio::sync::Semaphore::new(b.min(u32::MAX as usize))));
        Ok(Arc::new(Self {
            quotas: quota::Quotas::new(log.clone()),
            request_bytes,
            authorizer,
            log,
            config,
            groups,
            metrics,
            auth_failures: sasl::FailureLimiter::new(10, 2.0, std::time::Duration::from_secs(5)),
            stopping: tokio::sync::watch::Sender::new(false),
        }))
    }
}
