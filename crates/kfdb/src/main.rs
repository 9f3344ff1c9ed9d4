//! The `kfdb` binary: parses configuration, opens the store, and serves Kafka clients.
//!
//! `kfdb serve` runs on the embedded store in `--data-dir` by default; built with `--features fdb`
//! it can use FoundationDB instead (`--store fdb`, `--fdb-cluster-file`).

mod admin;
mod alloc;
mod config;
mod health;
mod key;
mod topic;
mod user;

use clap::{Parser, Subcommand, ValueEnum};
use kfdb_broker::BrokerConfig;
use kfdb_broker::authz::AuthzConfig;
use kfdb_broker::authz::acl::Policy;
use kfdb_broker::listeners::{Listener, SecurityProtocol};
use kfdb_broker::node::{LocalCluster, LogOpener};
use kfdb_broker::sasl::{Mechanism, SaslConfig};
use kfdb_broker::tls::{ClientAuth, Tls, TlsFiles};
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_log::{Endpoint, Log, LogConfig, MembershipConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Hostile length prefixes must not abort the process (see `alloc.rs`).
#[global_allocator]
static ALLOC: alloc::GuardedAlloc = alloc::GuardedAlloc;

#[derive(Parser)]
#[command(
    name = "kfdb",
    version,
    about = "A Kafka-compatible broker on FoundationDB"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Kafka clients.
    Serve(Box<ServeArgs>),
    /// The cluster: id, controller, brokers (over the Kafka protocol).
    Cluster {
        #[command(flatten)]
        conn: admin::ConnArgs,
        #[command(subcommand)]
        command: admin::cluster::ClusterCommand,
    },
    /// Manage topics: with a running cluster over the Kafka protocol (--bootstrap-server,
    /// default 127.0.0.1:9092); with --data-dir or --store fdb directly in the store, for
    /// recovery and bootstrap (FoundationDB: while brokers run; the embedded store: while no
    /// kfdb serve has it open).
    Topic(topic::TopicArgs),
    /// Consumer groups: list, describe (with lag), reset-offsets, delete (over the Kafka
    /// protocol).
    Group {
        #[command(flatten)]
        conn: admin::ConnArgs,
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Produce each line of standard input as a record (over the Kafka protocol, acks=all).
    Produce(Box<ProduceArgs>),
    /// Print records of a topic (over the Kafka protocol).
    Consume(Box<ConsumeArgs>),
    /// Read the latest record of a key of a compacted (or kfdb.key.index) topic directly in the
    /// store (as `kfdb topic`).
    Key(key::KeyArgs),
    /// SASL/SCRAM users: over the Kafka protocol with a running cluster, or with --data-dir /
    /// --store fdb directly in the store (the first user, before any broker runs).
    User(user::UserArgs),
    /// ACLs (over the Kafka protocol): list, create, delete, as kafka-acls.
    Acl {
        #[command(flatten)]
        conn: admin::ConnArgs,
        #[command(subcommand)]
        command: admin::acls::AclCommand,
    },
    /// The configuration of `kfdb serve`: effective values and where they come from.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Ask a running kfdb whether it is alive (exit 0) — for container health checks.
    Healthcheck(health::HealthcheckArgs),
    /// The embedded store itself (while no kfdb serve has it open).
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Read every key and value of the embedded store so every block checksum is checked
    /// (exit 1 naming the first damaged entry). A full read: minutes for a large store.
    Verify {
        /// Directory of the embedded store.
        #[arg(long, env = "KFDB_DATA_DIR", default_value = "./kfdb-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Every group of the cluster with its type and state.
    List,
    /// A group's state, members and, per partition, committed offset, log end and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Move a group's committed offsets (a plan; --execute commits it). The group must have
    /// no members, as in Kafka.
    ResetOffsets {
        /// Group id.
        group: String,
        /// TOPIC or TOPIC:P,P,... (repeatable; none: every partition the group committed).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// To each partition's log start.
        #[arg(long, group = "to")]
        to_earliest: bool,
        /// To each partition's end.
        #[arg(long, group = "to")]
        to_latest: bool,
        /// To this offset (moved into the log when outside it).
        #[arg(long, group = "to")]
        to_offset: Option<i64>,
        /// By this many records from the committed offset (negative: back).
        #[arg(long, group = "to", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// To the first offset at or after this time (ms since the epoch).
        #[arg(long, group = "to")]
        to_timestamp: Option<i64>,
        /// Commit the new offsets (without it, only the plan is printed).
        #[arg(long)]
        execute: bool,
    },
    /// Delete groups (and their committed offsets); a group with members cannot be deleted.
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

#[derive(clap::Args)]
struct ProduceArgs {
    #[command(flatten)]
    conn: admin::ConnArgs,
    /// Topic to write to.
    topic: String,
    /// Write every record to this partition (default: by key, Kafka's murmur2; unkeyed records
    /// round-robin).
    #[arg(long)]
    partition: Option<i32>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A header NAME=VALUE on every record (repeatable).
    #[arg(long = "header", value_parser = parse_kv)]
    headers: Vec<(String, String)>,
    /// acks: all (-1) or 1.
    #[arg(long, default_value = "all", value_parser = ["all", "-1", "1"])]
    acks: String,
}

#[derive(clap::Args)]
struct ConsumeArgs {
    #[command(flatten)]
    conn: admin::ConnArgs,
    /// Topic to read.
    topic: String,
    /// Only these partitions (repeatable; default: all).
    #[arg(long = "partition")]
    partitions: Vec<i32>,
    /// Start at this group's committed offsets, and commit where it stopped.
    #[arg(long)]
    group: Option<String>,
    /// Start at each partition's log start (default: its end, as Kafka's console consumer).
    #[arg(long, group = "start")]
    from_beginning: bool,
    /// Start at this offset.
    #[arg(long, group = "start")]
    offset: Option<i64>,
    /// Start at the first record at or after this time (ms since the epoch).
    #[arg(long, group = "start")]
    from_timestamp: Option<i64>,
    /// Stop after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Stop each partition before this offset.
    #[arg(long, group = "end")]
    to_offset: Option<i64>,
    /// Stop each partition at its first record at or after this time (ms since the epoch).
    #[arg(long, group = "end")]
    to_timestamp: Option<i64>,
    /// Stop when no record came for this many ms.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print keys too (KEY<separator>VALUE).
    #[arg(long)]
    print_key: bool,
    /// What separates key and value with --print-key.
    #[arg(long, default_value = "\t")]
    key_separator: String,
    /// read_committed (default) or read_uncommitted.
    #[arg(long, default_value = "read_committed", value_parser = ["read_committed", "read_uncommitted"])]
    isolation_level: String,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s}: expected NAME=VALUE"))
}

/// Run one of the Kafka-protocol admin commands.
async fn run_group(conn: &admin::ConnArgs, command: GroupCommand) -> Result<(), String> {
    use admin::groups::{self, ResetTo};
    match command {
        GroupCommand::List => groups::list(conn).await,
        GroupCommand::Describe { group } => groups::describe(conn, &group).await,
        GroupCommand::ResetOffsets {
            group,
            topics,
            to_earliest,
            to_latest,
            to_offset,
            shift_by,
            to_timestamp,
            execute,
        } => {
            let to = match (to_earliest, to_latest, to_offset, shift_by, to_timestamp) {
                (true, ..) => ResetTo::Earliest,
                (_, true, ..) => ResetTo::Latest,
                (_, _, Some(o), ..) => ResetTo::Offset(o),
                (_, _, _, Some(n), _) => ResetTo::ShiftBy(n),
                (.., Some(t)) => ResetTo::Timestamp(t),
                _ => {
                    return Err("say where to: --to-earliest, --to-latest, --to-offset, \
                                --shift-by or --to-timestamp"
                        .into());
                }
            };
            groups::reset_offsets(conn, &group, &topics, to, execute).await
        }
        GroupCommand::Delete { groups: ids } => groups::delete(conn, &ids).await,
    }
}

async fn run_produce(args: ProduceArgs) -> Result<(), String> {
    let opts = admin::records::ProduceOptions {
        partition: args.partition,
        key_separator: args.key_separator,
        headers: args.headers,
        acks: if args.acks == "1" { 1 } else { -1 },
    };
    admin::records::produce(&args.conn, &args.topic, opts).await
}

async fn run_consume(args: ConsumeArgs) -> Result<(), String> {
    use admin::records::Start;
    let start = match (args.from_beginning, args.offset, args.from_timestamp) {
        (true, ..) => Start::Beginning,
        (_, Some(o), _) => Start::Offset(o),
        (.., Some(t)) => Start::Timestamp(t),
        _ => Start::End,
    };
    let opts = admin::records::ConsumeOptions {
        partitions: args.partitions,
        group: args.group,
        start,
        max: args.max_messages,
        end: match (args.to_offset, args.to_timestamp) {
            (Some(o), _) => Some(Start::Offset(o)),
            (_, Some(t)) => Some(Start::Timestamp(t)),
            _ => None,
        },
        idle_timeout: args.timeout_ms.map(Duration::from_millis),
        print_key: args.print_key,
        key_separator: args.key_separator.replace("\\t", "\t"),
        read_committed: args.isolation_level == "read_committed",
    };
    tokio::select! {
        r = admin::records::consume(&args.conn, &args.topic, opts) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every setting's effective value and its source (flag, environment, file,
    /// default); takes the same arguments as `kfdb serve`.
    Print(Box<ServeArgs>),
    /// Print the configuration reference (docs/configuration.md) in Markdown.
    Reference,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Store {
    /// The embedded durable store in --data-dir.
    Embedded,
    /// FoundationDB (needs a build with --features fdb).
    Fdb,
}

/// Where the data lives (shared by every subcommand that opens the store).
#[derive(clap::Args)]
pub(crate) struct StoreArgs {
    /// Directory of the embedded store.
    #[arg(
        long,
        global = true,
        env = "KFDB_DATA_DIR",
        default_value = "./kfdb-data"
    )]
    data_dir: PathBuf,
    /// Which store to use.
    #[arg(
        long,
        global = true,
        env = "KFDB_STORE",
        value_enum,
        default_value = "embedded"
    )]
    store: Store,
    /// FoundationDB cluster file (with --store fdb; default: FoundationDB's default).
    #[arg(long, global = true, env = "KFDB_FDB_CLUSTER_FILE")]
    fdb_cluster_file: Option<String>,
    /// Artificial commit latency of the embedded store in ms (mimics a networked FoundationDB).
    #[arg(
        long,
        global = true,
        env = "KFDB_COMMIT_LATENCY_MS",
        default_value_t = 0
    )]
    commit_latency_ms: u64,
    /// Block cache of the embedded store in bytes (blocks of keys and small values; record data
    /// is served from the hot-segment cache).
    #[arg(long, global = true, env = "KFDB_STORE_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    store_cache_bytes: u64,
}

#[derive(Parser)]
struct ServeArgs {
    /// A Kafka server.properties file (Kafka's keys, and kfdb's own `kfdb.*` keys): flags and
    /// environment variables win over it (docs/configuration.md).
    #[arg(long, env = "KFDB_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on: one PLAINTEXT listener (shorthand for --listeners).
    #[arg(long, env = "KFDB_LISTEN", default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// host:port clients are told to connect to (default: the listen address).
    #[arg(long, env = "KFDB_ADVERTISED_LISTENER")]
    advertised_listener: Option<String>,
    /// listeners, as Kafka writes them: NAME://host:port,... (e.g.
    /// PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093); replaces --listen.
    #[arg(long, env = "KFDB_LISTENERS", conflicts_with = "advertised_listener")]
    listeners: Option<String>,
    /// advertised.listeners: NAME://host:port,... what clients are told, per listener name
    /// (default: each listener's own address).
    #[arg(long, env = "KFDB_ADVERTISED_LISTENERS", requires = "listeners")]
    advertised_listeners: Option<String>,
    /// listener.security.protocol.map: NAME:PROTOCOL,... (PLAINTEXT, SSL, SASL_PLAINTEXT,
    /// SASL_SSL); without it each listener's name must be its protocol.
    #[arg(long, env = "KFDB_LISTENER_SECURITY_PROTOCOL_MAP", default_value = "")]
    listener_security_protocol_map: String,
    /// controller.listener.names: listeners of these names (comma-separated) are Kafka's
    /// controller listeners; kfdb has no controller and does not open them.
    #[arg(long, env = "KFDB_CONTROLLER_LISTENER_NAMES", default_value = "")]
    controller_listener_names: String,
    /// PEM certificate chain of the SSL and SASL_SSL listeners (ssl.keystore.location).
    #[arg(long, env = "KFDB_SSL_CERT_FILE")]
    ssl_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "KFDB_SSL_KEY_FILE")]
    ssl_key_file: Option<PathBuf>,
    /// PEM CA certificates client certificates are checked against (ssl.truststore.location).
    #[arg(long, env = "KFDB_SSL_CA_FILE")]
    ssl_ca_file: Option<PathBuf>,
    /// ssl.client.auth: none, requested or required.
    #[arg(long, env = "KFDB_SSL_CLIENT_AUTH", default_value = "none")]
    ssl_client_auth: String,
    /// sasl.enabled.mechanisms: of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.
    #[arg(
        long,
        env = "KFDB_SASL_ENABLED_MECHANISMS",
        default_value = "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
    )]
    sasl_enabled_mechanisms: String,
    /// Offer PLAIN on SASL_PLAINTEXT listeners too (passwords then cross the network in clear).
    #[arg(long, env = "KFDB_SASL_PLAIN_ALLOW_PLAINTEXT")]
    sasl_plain_allow_plaintext: bool,
    /// connections.max.reauth.ms: SASL sessions last this long, then clients re-authenticate
    /// (0: sessions do not expire).
    #[arg(long, env = "KFDB_CONNECTIONS_MAX_REAUTH_MS", default_value_t = 0)]
    connections_max_reauth_ms: u64,
    /// connection.failed.authentication.delay.ms: how long a failed authentication waits
    /// before it is answered and the connection closed.
    #[arg(
        long,
        env = "KFDB_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS",
        default_value_t = 100
    )]
    connection_failed_authentication_delay_ms: u64,
    /// authorizer.class.name: `acl` enforces Kafka's ACLs on every API; `none` (default, as
    /// Kafka without an authorizer) allows everything and refuses the ACL APIs.
    #[arg(long, env = "KFDB_AUTHORIZER", default_value = "none")]
    authorizer: String,
    /// super.users: principals allowed everything, e.g. "User:admin;User:ops".
    #[arg(long, env = "KFDB_SUPER_USERS", default_value = "")]
    super_users: String,
    /// allow.everyone.if.no.acl.found: a resource no ACL names is open to everyone.
    #[arg(long, env = "KFDB_ALLOW_EVERYONE_IF_NO_ACL_FOUND", default_value_t = false, action = clap::ArgAction::Set)]
    allow_everyone_if_no_acl_found: bool,
    #[command(flatten)]
    store: StoreArgs,
    /// This broker's node id (Kafka's node.id); without it, the id of this listener's earlier
    /// registration, else the smallest free one (0 first). With --brokers N, broker i is id + i.
    #[arg(long, env = "KFDB_NODE_ID")]
    node_id: Option<i32>,
    /// broker.rack: the rack (zone) of this broker; consumers with the same client.rack read
    /// from it (KIP-392).
    #[arg(long, env = "KFDB_BROKER_RACK")]
    broker_rack: Option<String>,
    /// broker.heartbeat.interval.ms: how often the broker renews its lease in the store.
    #[arg(
        long,
        env = "KFDB_BROKER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 2_000
    )]
    broker_heartbeat_interval_ms: u64,
    /// broker.session.timeout.ms: a broker that has not renewed its lease for this long is dead
    /// to the others, who take over its partitions and groups.
    #[arg(long, env = "KFDB_BROKER_SESSION_TIMEOUT_MS", default_value_t = 9_000)]
    broker_session_timeout_ms: u64,
    /// Run this many brokers in this process over one store (a whole cluster in one process):
    /// broker i listens on every listener's port + i and advertises its advertised port + i.
    #[arg(long, env = "KFDB_BROKERS", default_value_t = 1)]
    brokers: u16,
    /// auto.create.topics.enable
    #[arg(long, env = "KFDB_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// num.partitions: partitions of auto-created topics.
    #[arg(long, env = "KFDB_NUM_PARTITIONS", default_value_t = 1)]
    num_partitions: i32,
    /// max.connections: connections the broker holds at most (beyond: it stops accepting until
    /// one closes).
    #[arg(long, env = "KFDB_MAX_CONNECTIONS", default_value_t = 2_147_483_647)]
    max_connections: usize,
    /// max.connections.per.ip: connections from one address at most (beyond: closed at once).
    #[arg(
        long,
        env = "KFDB_MAX_CONNECTIONS_PER_IP",
        default_value_t = 2_147_483_647
    )]
    max_connections_per_ip: usize,
    /// connections.max.idle.ms: a connection that neither sends nor receives for this long is
    /// closed.
    #[arg(long, env = "KFDB_CONNECTIONS_MAX_IDLE_MS", default_value_t = 600_000)]
    connections_max_idle_ms: u64,
    /// queued.max.request.bytes: bytes of requests read and not yet answered, over all
    /// connections; beyond it connections stop reading until answers free room (backpressure).
    /// -1: no bound (Kafka's default).
    #[arg(
        long,
        env = "KFDB_QUEUED_MAX_REQUEST_BYTES",
        default_value_t = -1,
        allow_hyphen_values = true
    )]
    queued_max_request_bytes: i64,
    /// socket.send.buffer.bytes: each connection's socket send buffer (SO_SNDBUF); -1: the OS
    /// default (on Linux it grows to several MiB for a client that does not read).
    #[arg(
        long,
        env = "KFDB_SOCKET_SEND_BUFFER_BYTES",
        default_value_t = 102_400,
        allow_hyphen_values = true
    )]
    socket_send_buffer_bytes: i64,
    /// socket.receive.buffer.bytes: each connection's socket receive buffer (SO_RCVBUF); -1:
    /// the OS default.
    #[arg(
        long,
        env = "KFDB_SOCKET_RECEIVE_BUFFER_BYTES",
        default_value_t = 102_400,
        allow_hyphen_values = true
    )]
    socket_receive_buffer_bytes: i64,
    /// fetch.max.bytes: the most one Fetch response carries, whatever the consumer asks (the
    /// first batch is always whole).
    #[arg(long, env = "KFDB_FETCH_MAX_BYTES", default_value_t = 57_671_680)]
    fetch_max_bytes: usize,
    /// socket.request.max.bytes
    #[arg(
        long,
        env = "KFDB_SOCKET_REQUEST_MAX_BYTES",
        default_value_t = 104_857_600
    )]
    socket_request_max_bytes: usize,
    /// log.retention.check.interval.ms
    #[arg(
        long,
        env = "KFDB_LOG_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 300_000
    )]
    log_retention_check_interval_ms: u64,
    /// log.retention.ms: the default retention.ms of topics (wins over the minutes and hours).
    #[arg(long, env = "KFDB_LOG_RETENTION_MS", allow_hyphen_values = true)]
    log_retention_ms: Option<i64>,
    /// log.retention.minutes: the default retention of topics in minutes (wins over hours).
    #[arg(long, env = "KFDB_LOG_RETENTION_MINUTES", allow_hyphen_values = true)]
    log_retention_minutes: Option<i64>,
    /// log.retention.hours: the default retention of topics in hours.
    #[arg(
        long,
        env = "KFDB_LOG_RETENTION_HOURS",
        default_value_t = 168,
        allow_hyphen_values = true
    )]
    log_retention_hours: i64,
    /// log.retention.bytes: the default retention.bytes of topics (per partition; -1: none).
    #[arg(long, env = "KFDB_LOG_RETENTION_BYTES", default_value_t = -1, allow_hyphen_values = true)]
    log_retention_bytes: i64,
    /// log.cleaner.backoff.ms: how often compaction looks at compacted partitions written since.
    #[arg(long, env = "KFDB_LOG_CLEANER_BACKOFF_MS", default_value_t = 15_000)]
    log_cleaner_backoff_ms: u64,
    /// transaction.max.timeout.ms: the longest transaction.timeout.ms a producer may ask for.
    #[arg(
        long,
        env = "KFDB_TRANSACTION_MAX_TIMEOUT_MS",
        default_value_t = 900_000
    )]
    transaction_max_timeout_ms: i32,
    /// transaction.abort.timed.out.transaction.cleanup.interval.ms
    #[arg(
        long,
        env = "KFDB_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS",
        default_value_t = 10_000
    )]
    transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// transactional.id.expiration.ms: transactional ids idle this long are deleted.
    #[arg(
        long,
        env = "KFDB_TRANSACTIONAL_ID_EXPIRATION_MS",
        default_value_t = 604_800_000
    )]
    transactional_id_expiration_ms: i64,
    /// transaction.remove.expired.transaction.cleanup.interval.ms
    #[arg(
        long,
        env = "KFDB_TRANSACTION_REMOVE_EXPIRED_TRANSACTION_CLEANUP_INTERVAL_MS",
        default_value_t = 3_600_000
    )]
    transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    /// producer.id.expiration.ms: idempotent-producer state idle this long is forgotten.
    #[arg(
        long,
        env = "KFDB_PRODUCER_ID_EXPIRATION_MS",
        default_value_t = 86_400_000
    )]
    producer_id_expiration_ms: i64,
    /// producer.id.expiration.check.interval.ms
    #[arg(
        long,
        env = "KFDB_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS",
        default_value_t = 600_000
    )]
    producer_id_expiration_check_interval_ms: u64,
    /// group.initial.rebalance.delay.ms: how long a new group waits for more members.
    #[arg(
        long,
        env = "KFDB_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3_000
    )]
    group_initial_rebalance_delay_ms: u64,
    /// group.min.session.timeout.ms
    #[arg(
        long,
        env = "KFDB_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6_000
    )]
    group_min_session_timeout_ms: u64,
    /// group.max.session.timeout.ms
    #[arg(
        long,
        env = "KFDB_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000
    )]
    group_max_session_timeout_ms: u64,
    /// group.consumer.session.timeout.ms (KIP-848 consumer groups)
    #[arg(
        long,
        env = "KFDB_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        default_value_t = 45_000
    )]
    group_consumer_session_timeout_ms: u64,
    /// group.consumer.heartbeat.interval.ms (KIP-848 consumer groups)
    #[arg(
        long,
        env = "KFDB_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 5_000
    )]
    group_consumer_heartbeat_interval_ms: u64,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (off when not given).
    #[arg(long, env = "KFDB_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// How often the lag of consumer groups is sampled for the metric kfdb_group_lag_records
    /// (the 20 groups with the largest lag that this broker coordinates).
    #[arg(long, env = "KFDB_METRICS_LAG_INTERVAL_MS", default_value_t = 30_000)]
    metrics_lag_interval_ms: u64,
    /// Serve kfdb's own HTTP API (the latest record of a key: docs/http-api.md) at
    /// http://HOST:PORT/v1/ (off when not given).
    #[arg(long, env = "KFDB_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Most topics a Metadata request for all topics returns.
    #[arg(long, env = "KFDB_METADATA_MAX_TOPICS", default_value_t = 1_000_000)]
    metadata_max_topics: usize,
    /// Bytes of recent record batches kept in memory for tailing consumers (0: off).
    #[arg(long, env = "KFDB_HOT_CACHE_BYTES", default_value_t = 268_435_456)]
    hot_cache_bytes: usize,
    /// On SIGTERM, how long to wait for connections to finish their requests before closing them.
    #[arg(long, env = "KFDB_SHUTDOWN_TIMEOUT_MS", default_value_t = 30_000)]
    shutdown_timeout_ms: u64,
    /// Log lines as text (coloured only on a terminal) or as JSON objects, one per line.
    #[arg(long, env = "KFDB_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level, or a tracing filter (`info,kfdb_broker=debug`); when not given, the filter in
    /// KFDB_LOG or RUST_LOG, else info. Dependencies log at warn unless the filter names them.
    #[arg(long, env = "KFDB_LOG_LEVEL")]
    log_level: Option<String>,
    /// Log every request that takes longer than this many ms (0: off), with its API, client
    /// id, topic and where the time went.
    #[arg(long, env = "KFDB_SLOW_REQUEST_MS", default_value_t = 0)]
    slow_request_ms: u64,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum LogFormat {
    Text,
    Json,
}

fn split_host_port(s: &str) -> Result<(String, i32), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s}: expected host:port"))?;
    let port = port.parse().map_err(|_| format!("{s}: bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// An error and its causes, `: `-separated (the store's errors keep the OS's reason as a cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(&format!(": {c}"));
        cause = c.source();
    }
    out
}

fn open_store(args: &StoreArgs) -> Result<Database, String> {
    let db = open_backend(args)?;
    with_faults(db)
}

/// `KFDB_FAULTS`: inject store faults (a kfdb built with the `faults` feature, for tests).
#[cfg(feature = "faults")]
fn with_faults(db: Database) -> Result<Database, String> {
    match std::env::var("KFDB_FAULTS") {
        Ok(spec) => {
            let plan = kfdb_kv::faults::FaultPlan::parse(&spec)
                .map_err(|e| format!("KFDB_FAULTS: {e}"))?;
            tracing::warn!(?plan, "injecting store faults (KFDB_FAULTS)");
            Ok(db.with_faults(plan))
        }
        Err(_) => Ok(db),
    }
}

/// Without the `faults` feature a fault plan is refused rather than silently ignored.
#[cfg(not(feature = "faults"))]
fn with_faults(db: Database) -> Result<Database, String> {
    if std::env::var_os("KFDB_FAULTS").is_some() {
        return Err(
            "KFDB_FAULTS is set, but this kfdb was built without the `faults` feature".into(),
        );
    }
    Ok(db)
}

fn open_backend(args: &StoreArgs) -> Result<Database, String> {
    match args.store {
        Store::Embedded => {
            let options = EmbeddedOptions {
                commit_latency: Duration::from_millis(args.commit_latency_ms),
                cache_bytes: args.store_cache_bytes,
                ..EmbeddedOptions::default()
            };
            Database::open_embedded(&args.data_dir, options)
                .map_err(|e| format!("opening {}: {}", args.data_dir.display(), chain(&e)))
        }
        #[cfg(feature = "fdb")]
        Store::Fdb => Database::open_fdb(args.fdb_cluster_file.as_deref())
            .map_err(|e| format!("connecting to FoundationDB: {}", chain(&e))),
        #[cfg(not(feature = "fdb"))]
        Store::Fdb => {
            let _ = &args.fdb_cluster_file;
            Err("this kfdb was built without FoundationDB support (cargo feature `fdb`)".into())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn log_config(
    args: &ServeArgs,
    index: usize,
    listeners: &[Listener],
    settings: &[kfdb_broker::BrokerSetting],
) -> LogConfig {
    // Broker defaults of topic configs that were given (not left at Kafka's default).
    let broker_topic_defaults = settings
        .iter()
        .filter(|s| s.source == 4)
        .filter(|s| {
            kfdb_log::config::BROKER_SYNONYMS
                .iter()
                .any(|(name, ..)| *name == s.name)
        })
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    LogConfig {
        broker_topic_defaults,
        membership: Some(MembershipConfig {
            node_id: args.node_id.map(|n| n + index as i32),
            endpoints: listeners
                .iter()
                .map(|l| Endpoint {
                    listener: l.name.clone(),
                    host: l.advertised_host.clone(),
                    port: l.advertised_port,
                })
                .collect(),
            rack: args.broker_rack.clone(),
            heartbeat: Duration::from_millis(args.broker_heartbeat_interval_ms.max(1)),
            session_timeout: Duration::from_millis(args.broker_session_timeout_ms.max(1)),
        }),
        auto_create_topics: args.auto_create_topics,
        num_partitions: args.num_partitions,
        hot_cache_bytes: args.hot_cache_bytes,
        cleaner_backoff: Duration::from_millis(args.log_cleaner_backoff_ms.max(1)),
        retention_check_interval: Duration::from_millis(
            args.log_retention_check_interval_ms.max(1),
        ),
        transaction_max_timeout_ms: args.transaction_max_timeout_ms,
        txn_expiry_interval: Duration::from_millis(
            args.transaction_abort_timed_out_transaction_cleanup_interval_ms
                .max(1),
        ),
        transactional_id_expiration_ms: args.transactional_id_expiration_ms,
        txn_id_expiry_interval: Duration::from_millis(
            args.transaction_remove_expired_transaction_cleanup_interval_ms
                .max(1),
        ),
        producer_id_expiration_ms: args.producer_id_expiration_ms,
        producer_expiry_interval: Duration::from_millis(
            args.producer_id_expiration_check_interval_ms.max(1),
        ),
        ..LogConfig::default()
    }
}

fn broker_config(
    args: &ServeArgs,
    security: &Security,
    listeners: Vec<Listener>,
    settings: &std::sync::Arc<Vec<kfdb_broker::BrokerSetting>>,
) -> BrokerConfig {
    BrokerConfig {
        settings: settings.clone(),
        listeners,
        tls: security.tls.clone(),
        sasl: security.sasl.clone(),
        authz: security.authz.clone(),
        max_request_bytes: args.socket_request_max_bytes,
        max_connections: args.max_connections.max(1),
        max_connections_per_ip: args.max_connections_per_ip.max(1),
        connections_max_idle: Duration::from_millis(args.connections_max_idle_ms.max(1)),
        queued_max_request_bytes: usize::try_from(args.queued_max_request_bytes)
            .ok()
            .filter(|b| *b > 0),
        fetch_max_bytes: args.fetch_max_bytes.max(1),
        socket_send_buffer_bytes: usize::try_from(args.socket_send_buffer_bytes)
            .ok()
            .filter(|b| *b > 0),
        socket_receive_buffer_bytes: usize::try_from(args.socket_receive_buffer_bytes)
            .ok()
            .filter(|b| *b > 0),
        lag_sample_interval: Duration::from_millis(args.metrics_lag_interval_ms.max(100)),
        slow_request: (args.slow_request_ms > 0)
            .then(|| Duration::from_millis(args.slow_request_ms)),
        metadata_max_topics: args.metadata_max_topics.max(1),
        shutdown_timeout: Duration::from_millis(args.shutdown_timeout_ms),
        log_dir: log_dir(&args.store),
        group: kfdb_broker::group::GroupConfig {
            initial_rebalance_delay: Duration::from_millis(args.group_initial_rebalance_delay_ms),
            min_session_timeout: Duration::from_millis(args.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(args.group_max_session_timeout_ms),
            consumer_session_timeout: Duration::from_millis(args.group_consumer_session_timeout_ms),
            consumer_heartbeat_interval: Duration::from_millis(
                args.group_consumer_heartbeat_interval_ms,
            ),
            ..kfdb_broker::group::GroupConfig::default()
        },
        ..BrokerConfig::default()
    }
}

/// What DescribeLogDirs and `log.dirs` report: the embedded store's directory, or the
/// FoundationDB cluster file the brokers share.
fn log_dir(store: &StoreArgs) -> String {
    match store.store {
        Store::Embedded => std::fs::canonicalize(&store.data_dir)
            .unwrap_or_else(|_| store.data_dir.clone())
            .display()
            .to_string(),
        Store::Fdb => format!(
            "fdb:{}",
            store.fdb_cluster_file.as_deref().unwrap_or("default")
        ),
    }
}

/// This machine's host name: what a listener bound to every interface advertises by default.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A listener list without Kafka's controller listeners (`controller.listener.names`): a Kafka
/// server.properties names them, and kfdb, having no controller, does not open them.
fn without_controllers(list: &str, controllers: &str) -> String {
    let names: Vec<String> = controllers
        .split(',')
        .map(|n| n.trim().to_ascii_uppercase())
        .filter(|n| !n.is_empty())
        .collect();
    list.split(',')
        .map(str::trim)
        .filter(|e| {
            let name = e.split("://").next().unwrap_or("").to_ascii_uppercase();
            !e.is_empty() && !names.contains(&name)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The listeners of `kfdb serve`: `--listeners` (with the advertised listeners and the protocol
/// map), else one PLAINTEXT listener on `--listen`.
fn listeners(args: &ServeArgs) -> Result<Vec<Listener>, String> {
    match &args.listeners {
        Some(l) => kfdb_broker::listeners::parse(
            &without_controllers(l, &args.controller_listener_names),
            &without_controllers(
                args.advertised_listeners.as_deref().unwrap_or(""),
                &args.controller_listener_names,
            ),
            &args.listener_security_protocol_map,
            &host_name(),
        ),
        None => {
            let ip = args.listen.ip().to_string();
            let mut l = Listener::plaintext(&ip, args.listen.port());
            if args.listen.ip().is_unspecified() {
                l.advertised_host = host_name();
            }
            if let Some(a) = &args.advertised_listener {
                let (host, port) = split_host_port(a)?;
                l.advertised_host = host;
                l.advertised_port = port;
            }
            Ok(vec![l])
        }
    }
}

/// TLS and SASL settings, shared by every broker of the process.
struct Security {
    tls: Option<std::sync::Arc<kfdb_broker::tls::Tls>>,
    sasl: SaslConfig,
    authz: AuthzConfig,
}

fn security(args: &ServeArgs, listeners: &[Listener]) -> Result<Security, String> {
    let client_auth = ClientAuth::from_name(&args.ssl_client_auth).ok_or_else(|| {
        format!(
            "--ssl-client-auth {}: expected none, requested or required",
            args.ssl_client_auth
        )
    })?;
    let tls = match (&args.ssl_cert_file, &args.ssl_key_file) {
        (Some(cert), Some(key)) => Some(Tls::load(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: args.ssl_ca_file.clone(),
            client_auth,
        })?),
        (None, None) => None,
        _ => return Err("--ssl-cert-file and --ssl-key-file go together".into()),
    };
    if let Some(l) = listeners.iter().find(|l| l.protocol.tls())
        && tls.is_none()
    {
        return Err(format!(
            "listener {} is {}: it needs --ssl-cert-file and --ssl-key-file",
            l.name, l.protocol
        ));
    }
    let enabled_mechanisms = args
        .sasl_enabled_mechanisms
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            Mechanism::from_name(&m.to_ascii_uppercase()).ok_or_else(|| {
                format!("--sasl-enabled-mechanisms: {m} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let sasl = SaslConfig {
        enabled_mechanisms,
        plain_allow_plaintext: args.sasl_plain_allow_plaintext,
        max_reauth: (args.connections_max_reauth_ms > 0)
            .then(|| Duration::from_millis(args.connections_max_reauth_ms)),
        failed_authentication_delay: Duration::from_millis(
            args.connection_failed_authentication_delay_ms,
        ),
    };
    if args.sasl_plain_allow_plaintext
        && sasl.enabled_mechanisms.contains(&Mechanism::Plain)
        && listeners
            .iter()
            .any(|l| l.protocol == SecurityProtocol::SaslPlaintext)
    {
        tracing::warn!(
            "PLAIN is offered on a SASL_PLAINTEXT listener: passwords cross the network unencrypted"
        );
    }
    let enabled = match args.authorizer.as_str() {
        "acl" => true,
        "none" | "" => false,
        other => return Err(format!("--authorizer {other}: expected acl or none")),
    };
    let super_users: Vec<String> = args
        .super_users
        .split(';')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = super_users.iter().find(|u| !u.contains(':')) {
        return Err(format!(
            "--super-users: {bad} is not a principal (User:name)"
        ));
    }
    let authz = AuthzConfig {
        enabled,
        policy: Policy {
            super_users,
            allow_if_no_acl: args.allow_everyone_if_no_acl_found,
        },
    };
    Ok(Security { tls, sasl, authz })
}

/// Bind an HTTP listener, or say which setting names a taken address.
async fn bind_http(addr: SocketAddr, flag: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{flag} {addr}: {e}"))
}

/// Broker `i`'s listeners: every port + `i`.
fn offset_listeners(listeners: &[Listener], i: usize) -> Result<Vec<Listener>, String> {
    listeners
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.bind_port = l
                .bind_port
                .checked_add(i as u16)
                .ok_or("a listener's port + --brokers is past 65535")?;
            l.advertised_port += i as i32;
            Ok(l)
        })
        .collect()
}

async fn serve(args: ServeArgs, settings: Vec<kfdb_broker::BrokerSetting>) -> Result<(), String> {
    let settings = std::sync::Arc::new(settings);
    if args.queued_max_request_bytes > 0
        && (args.queued_max_request_bytes as u64) < args.socket_request_max_bytes as u64
    {
        // As Kafka: a request of the largest size must fit the pool.
        return Err(format!(
            "queued.max.request.bytes ({}) must be -1 or at least socket.request.max.bytes ({})",
            args.queued_max_request_bytes, args.socket_request_max_bytes
        ));
    }
    let listeners = listeners(&args)?;
    let security = security(&args, &listeners)?;
    let db = open_store(&args.store)?;
    let watched_db = db.clone();
    #[cfg(feature = "faults")]
    let faulty_db = db.clone();
    let brokers = usize::from(args.brokers.max(1));
    let mut per_broker = Vec::with_capacity(brokers);
    let mut configs = Vec::with_capacity(brokers);
    for i in 0..brokers {
        let l = offset_listeners(&listeners, i)?;
        configs.push(broker_config(&args, &security, l.clone(), &settings));
        per_broker.push(l);
    }
    if let Some(tls) = &security.tls {
        tokio::spawn(tls.clone().watch(Duration::from_secs(5)));
        #[cfg(unix)]
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            let tls = tls.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tls.reload_logged("SIGHUP");
                }
            });
        }
    }
    let advertised = listeners
        .iter()
        .map(|l| format!("{}://{}:{}", l.name, l.advertised_host, l.advertised_port))
        .collect::<Vec<_>>()
        .join(",");
    let args = std::sync::Arc::new(args);
    let settings_for_log = settings.clone();
    let opener: LogOpener = {
        let args = args.clone();
        std::sync::Arc::new(move |i| {
            let listeners = per_broker.get(i).cloned().unwrap_or_default();
            let (db, config) = (
                db.clone(),
                log_config(&args, i, &listeners, &settings_for_log),
            );
            Box::pin(async move { Log::open(db, config).await })
        })
    };
    let cluster = LocalCluster::start(opener, configs)
        .await
        .map_err(|e| e.to_string())?;
    let http = match args.metrics_listen {
        Some(addr) => {
            let l = bind_http(addr, "--metrics-listen").await;
            let l = match l {
                Ok(l) => l,
                Err(e) => {
                    cluster.shutdown().await;
                    return Err(e);
                }
            };
            Some(tokio::spawn(kfdb_broker::http::serve_http(
                l,
                cluster.clone(),
            )))
        }
        None => None,
    };
    let api = match args.http_listen {
        Some(addr) => {
            let l = bind_http(addr, "--http-listen").await;
            let l = match l {
                Ok(l) => l,
                Err(e) => {
                    cluster.shutdown().await;
                    return Err(e);
                }
            };
            Some(tokio::spawn(kfdb_broker::keyapi::serve_api(
                l,
                cluster.clone(),
            )))
        }
        None => None,
    };
    if let Some(b) = cluster.broker(0).await {
        tracing::info!(
            brokers,
            advertised = %advertised,
            store = b.log.store_stats().backend,
            cluster_id = b.log.cluster_id(),
            "kfdb serving"
        );
    }
    let store_failed = tokio::select! {
        _ = shutdown_signal() => false,
        _ = store_failure(&watched_db) => true,
    };
    if store_failed {
        // As Kafka halts when its last log dir fails: a store that refuses every write serves
        // nobody; a supervisor restarts kfdb once the disk is fixed, and it recovers from there.
        tracing::error!(
            "the store failed (a write or fsync error; see the error above — a full disk?) and \
             refuses every commit: kfdb stops. Fix the cause and restart; everything acknowledged \
             was durable and is served again"
        );
    } else {
        tracing::info!("shutting down: handing partitions and groups over");
    }
    cluster.shutdown().await;
    for h in [http, api].into_iter().flatten() {
        h.abort();
        let _ = h.await;
    }
    #[cfg(feature = "faults")]
    if std::env::var_os("KFDB_FAULTS").is_some() {
        let counts: Vec<String> = faulty_db
            .fault_counts()
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        tracing::warn!("store faults injected: {}", counts.join(" "));
    }
    if store_failed {
        return Err("stopped: the store failed (see the log above)".into());
    }
    tracing::info!("kfdb stopped");
    Ok(())
}

/// `kfdb store verify`: a full read of the embedded store, every checksum checked.
fn verify_store(data_dir: &std::path::Path) -> Result<(), String> {
    if !data_dir.join("keyspaces").is_dir() {
        return Err(format!("{}: no embedded store here", data_dir.display()));
    }
    let started = std::time::Instant::now();
    let db = kfdb_kv::embedded::EmbeddedDatabase::open(data_dir, EmbeddedOptions::default())
        .map_err(|e| format!("opening {}: {}", data_dir.display(), chain(&e)))?;
    let (entries, bytes) = db
        .verify()
        .map_err(|e| format!("{}: damaged: {}", data_dir.display(), chain(&e)))?;
    println!(
        "{}: {entries} entries, {bytes} bytes read in {:.1} s; every checksum matched",
        data_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Resolves once the store has failed for good (the embedded store after a write or fsync
/// error), checked twice a second.
async fn store_failure(db: &Database) {
    loop {
        if db.has_failed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Logging: `--log-level` (else `KFDB_LOG`/`RUST_LOG`, else info), dependencies' chatter at warn
/// unless the filter names them, colour only on a terminal, text or JSON lines.
fn init_logging(format: LogFormat, level: Option<&str>) {
    use std::io::IsTerminal;
    let filter = level
        .map(str::to_string)
        .or_else(|| std::env::var("KFDB_LOG").ok())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let mut directives = filter.clone();
    for dep in ["fjall", "lsm_tree", "hyper", "h2", "rustls", "foundationdb"] {
        if !filter.contains(dep) {
            directives.push_str(&format!(",{dep}=warn"));
        }
    }
    let env_filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("kfdb: log filter {filter:?}: {e}; logging at info");
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    alloc::disable_transparent_huge_pages();
    if let Err(e) = alloc::spawn_memory_purger(Duration::from_secs(5)) {
        eprintln!("kfdb: could not start the memory purger thread: {e}");
    }
    let resolved = match config::resolve::<Cli>(std::env::args_os().collect()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kfdb: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match &resolved.cli.command {
        Command::Serve(args) => init_logging(args.log_format, args.log_level.as_deref()),
        _ => init_logging(LogFormat::Text, None),
    }
    if !resolved.ignored.is_empty() {
        tracing::info!(
            keys = %resolved.ignored.join(","),
            "server.properties: Kafka settings kfdb does not need are ignored"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kfdb: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let config::Resolved {
        cli,
        sources,
        matches,
        ..
    } = resolved;
    // `kfdb topic` goes to the store when told where it is, else to a running cluster.
    let store_direct = matches.as_ref().is_some_and(|m| {
        ["data_dir", "store", "fdb_cluster_file"].iter().any(|id| {
            m.try_contains_id(id).unwrap_or(false)
                && m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
        })
    });
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let root = <Cli as clap::CommandFactory>::command();
                let settings = matches
                    .as_ref()
                    .map(|m| config::broker_settings(serve_command(&root), m, &sources))
                    .unwrap_or_default();
                serve(*args, settings).await
            }
            Command::Topic(args) if !store_direct => topic::run_protocol(args).await,
            Command::Topic(args) => {
                let db = open_store(&args.store)?;
                topic::run(db, args).await
            }
            Command::Cluster { conn, command } => admin::cluster::run(&conn, command).await,
            Command::Group { conn, command } => run_group(&conn, command).await,
            Command::Produce(args) => run_produce(*args).await,
            Command::Consume(args) => run_consume(*args).await,
            Command::Key(args) => {
                let db = open_store(&args.store)?;
                key::run(db, args).await
            }
            Command::User(args) if !store_direct => user::run_protocol(args).await,
            Command::Acl { conn, command } => admin::acls::run(&conn, command).await,
            Command::User(args) => {
                let db = open_store(&args.store)?;
                user::run(db, args).await
            }
            Command::Config(ConfigCommand::Print(_)) => {
                let root = <Cli as clap::CommandFactory>::command();
                let cmd = config_print_command(&root);
                let matches = matches.ok_or("internal: no matches for config print")?;
                print!("{}", config::print(cmd, &matches, &sources));
                Ok(())
            }
            Command::Config(ConfigCommand::Reference) => {
                let root = <Cli as clap::CommandFactory>::command();
                print!("{}", config::reference(serve_command(&root)));
                Ok(())
            }
            Command::Healthcheck(args) => health::run(args),
            Command::Store(StoreCommand::Verify { data_dir }) => verify_store(&data_dir),
        }
    });
    // Everything that used the store is gone with the runtime; a FoundationDB network thread
    // must be stopped before the process exits.
    drop(runtime);
    kfdb_kv::stop_fdb_network();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve_command(root: &clap::Command) -> &clap::Command {
    root.find_subcommand("serve")
        .expect("kfdb has a serve command")
}

fn config_print_command(root: &clap::Command) -> &clap::Command {
    root.find_subcommand("config")
        .and_then(|c| c.find_subcommand("print"))
        .expect("kfdb has a config print command")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/configuration.md is what `kfdb config reference` prints.
    #[test]
    fn configuration_reference_is_current() {
        let root = <Cli as clap::CommandFactory>::command();
        let generated = config::reference(serve_command(&root));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/configuration.md is stale: cargo run -p kfdb -- config reference > docs/configuration.md"
        );
    }

    #[test]
    fn controller_listeners_are_dropped() {
        assert_eq!(
            without_controllers("PLAINTEXT://:9092,CONTROLLER://:9093", "CONTROLLER"),
            "PLAINTEXT://:9092"
        );
        assert_eq!(
            without_controllers("A://h:1, B://h:2", ""),
            "A://h:1,B://h:2"
        );
    }

    #[test]
    fn the_cli_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
