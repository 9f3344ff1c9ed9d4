//! The handler registry: one module per API key, each declaring `KEY`, `VERSIONS`, its request
//! type and `handle`. The single `handlers!` list below generates both dispatch and the ApiVersions
//! answer, so ApiVersions cannot advertise an API that is not dispatched.
//!
//! Who may send what is checked here too, once: on a SASL listener nothing but ApiVersions and
//! SASL is served before the connection's [`Session`] is authenticated (or after its session
//! expired, KIP-368); such a request closes the connection, as Kafka does.
//!
//! Versions are checked here, once: a request outside a handler's range closes the connection with
//! a log line, except ApiVersions, which answers a too-new version with `UNSUPPORTED_VERSION` in the
//! v0 format plus the supported ranges (KIP-511), so the client can retry with one it knows.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_replica_log_dirs;
mod alter_user_scram_credentials;
mod api_versions;
mod commit_plan;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_topic_partitions;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod group_configs;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
mod throttle;
mod topic_configs;
mod txn_offset_commit;

use crate::Broker;
use crate::authz::acl::{Resource, op};
use crate::response::{Response, Splices, SplicingBuf};
use crate::sasl::Session;
use bytes::{BufMut, Bytes};
use futures::future::BoxFuture;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::sync::Arc;

/// Versions a handler accepts, and what ApiVersions advertises for it.
#[derive(Debug, Clone, Copy)]
pub struct Versions {
    /// Lowest version decoded.
    pub min: i16,
    /// Highest version decoded.
    pub max: i16,
    /// Lowest version advertised (Produce advertises 0 like Kafka, for librdkafka's feature checks,
    /// and rejects what it cannot decode).
    pub advertised_min: i16,
}

impl Versions {
    /// Accept and advertise `min..=max`.
    pub const fn new(min: i16, max: i16) -> Self {
        Self {
            min,
            max,
            advertised_min: min,
        }
    }
}

/// One supported API, as ApiVersions reports it.
#[derive(Debug, Clone, Copy)]
pub struct ApiEntry {
    /// The API.
    pub key: ApiKey,
    /// Its versions.
    pub versions: Versions,
}

/// What a handler gets: the broker and the request's header.
pub struct RequestCtx<'a> {
    /// Data model and settings.
    pub broker: &'a Arc<Broker>,
    /// The request's API version.
    pub version: i16,
    /// The request header.
    pub header: &'a RequestHeader,
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The connection's listener and who is on it.
    pub client: &'a Client,
    /// What the slow-request log records (only when it is on).
    pub trace: Option<Arc<crate::slowlog::Trace>>,
    /// The request's size on the wire (what a produce quota counts).
    pub size: usize,
    /// When the handler started.
    pub started: std::time::Instant,
    /// Nanoseconds the handler spent parked (a Fetch's long poll, a JoinGroup waiting for the
    /// rebalance), which a request quota does not count as busy.
    pub parked: std::sync::atomic::AtomicU64,
    /// Record batches the response carries as they are held (a Fetch's), spliced in when it is
    /// encoded: [`RequestCtx::splice`].
    splices: std::sync::Mutex<Splices>,
}

/// The connection a request came on.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The name of the listener it connected to (responses name brokers by that listener's
    /// addresses).
    pub listener: String,
    /// Its authentication state and principal.
    pub session: Arc<Session>,
    /// Until when a client quota mutes it.
    pub muted: Arc<Mute>,
}

/// A connection muted by a client quota, as Kafka mutes a throttled channel: nothing more is
/// read from it until the throttle time has passed (responses already due are still written).
#[derive(Debug, Default)]
pub struct Mute(std::sync::Mutex<Option<tokio::time::Instant>>);

impl Mute {
    /// Mute for `ms` from now (a longer mute already set stays).
    pub fn extend(&self, ms: u64) {
        let until = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_none_or(|t| t < until) {
            *m = Some(until);
        }
    }

    /// When the mute ends, if it has not yet.
    pub fn until(&self) -> Option<tokio::time::Instant> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.filter(|t| *t > tokio::time::Instant::now())
    }
}

impl RequestCtx<'_> {
    /// What to put in a response's `records` field for `records`: encoding the response splices
    /// the batches in as the `Bytes` they are held in instead of copying them (`crate::response`).
    pub fn splice(&self, records: kfdb_log::parts::RecordParts) -> Bytes {
        self.splices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(records)
    }

    fn take_splices(&self) -> Splices {
        std::mem::take(&mut *self.splices.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Note the topic this request touches, for the slow-request log (free when it is off).
    pub fn note_topic(&self, name: &str) {
        if let Some(t) = &self.trace {
            t.topic(name);
        }
    }

    /// Record `value` against the client's `key` quota (`crate::quota`); when it is over, mute
    /// the connection for the throttle time and answer it (ms, for `throttle_time_ms`), else 0.
    pub fn throttle(&self, key: &'static str, value: f64, cap_ms: u64) -> i32 {
        if !self.broker.quotas.current().has(key) {
            return 0;
        }
        let client_id = self.header.client_id.as_deref().unwrap_or("");
        let principal = self.client.session.principal();
        let ms = self
            .broker
            .quotas
            .record(key, &principal, client_id, value, cap_ms);
        if ms > 0 {
            self.client.muted.extend(ms);
            let m = &self.broker.metrics;
            m.quota_throttled.with_label_values(&[key]).inc();
            m.quota_throttle_ms.with_label_values(&[key]).inc_by(ms);
        }
        ms.min(i32::MAX as u64) as i32
    }

    /// The client's `controller_mutation_rate` quota for this request (strict from the version
    /// given: below it, THROTTLING_QUOTA_EXCEEDED is unknown to the client).
    pub fn mutations(&self, strict_from: i16) -> crate::quota::Mutations<'_> {
        let client_id = self.header.client_id.as_deref().unwrap_or("");
        let principal = self.client.session.principal();
        self.broker
            .quotas
            .mutations(&principal, client_id, self.version >= strict_from)
    }

    /// The most this client's `consumer_byte_rate` lets one Fetch carry (`None`: no quota).
    pub fn fetch_cap(&self) -> Option<usize> {
        let client_id = self.header.client_id.as_deref().unwrap_or("");
        self.broker
            .quotas
            .fetch_cap(&self.client.session.principal(), client_id)
    }

    /// After a request under `controller_mutation_rate`: mute the connection for its throttle
    /// and answer it (ms, for `throttle_time_ms`).
    pub fn mutations_done(&self, m: &crate::quota::Mutations<'_>) -> i32 {
        let ms = m.throttle_ms();
        if ms > 0 {
            self.client.muted.extend(ms);
            let key = crate::quota::CONTROLLER_MUTATION_RATE;
            let metrics = &self.broker.metrics;
            metrics.quota_throttled.with_label_values(&[key]).inc();
            metrics
                .quota_throttle_ms
                .with_label_values(&[key])
                .inc_by(ms);
        }
        ms.min(i32::MAX as u64) as i32
    }

    /// Await `f`, counting the wait as parked (see [`RequestCtx::parked`]).
    pub async fn park<F: std::future::Future>(&self, f: F) -> F::Output {
        let since = std::time::Instant::now();
        let out = f.await;
        self.parked.fetch_add(
            since.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        out
    }

    /// The client's host as Kafka reports it in group descriptions (`/` + IP address).
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip().to_canonical())
    }

    /// The client's principal and host, as ACLs name them.
    fn who(&self) -> (String, String) {
        // An IPv4 client of a dual-stack listener as Kafka names it (1.2.3.4, not ::ffff:1.2.3.4).
        (
            self.client.session.principal(),
            self.peer.ip().to_canonical().to_string(),
        )
    }

    /// Whether the client may do `operation` (`authz::acl::op`) on `r`.
    pub async fn allowed(&self, operation: i8, r: Resource<'_>) -> bool {
        if !self.broker.authorizer.enabled() {
            return true;
        }
        let (principal, host) = self.who();
        self.broker
            .authorizer
            .allowed(&principal, &host, operation, r)
            .await
    }

    /// Whether the client is allowed `operation` on some resource of `resource_type`.
    pub async fn allowed_on_some(&self, resource_type: i8, operation: i8) -> bool {
        let (principal, host) = self.who();
        self.broker
            .authorizer
            .allowed_on_some(&principal, &host, resource_type, operation)
            .await
    }

    /// What AddOffsetsToTxn and TxnOffsetCommit need: WRITE on the transactional id and READ on
    /// the group; the code to answer when one is missing.
    pub async fn txn_offsets_refusal(&self, transactional_id: &str, group: &str) -> Option<i16> {
        if !self
            .allowed(op::WRITE, Resource::TransactionalId(transactional_id))
            .await
        {
            Some(crate::error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        } else if !self.allowed(op::READ, Resource::Group(group)).await {
            Some(crate::error_code::GROUP_AUTHORIZATION_FAILED)
        } else {
            None
        }
    }

    /// The ACL APIs' gate: SECURITY_DISABLED without an authorizer, CLUSTER_AUTHORIZATION_FAILED
    /// without `operation` on the cluster; the code and message to answer.
    pub async fn acl_api_refusal(&self, operation: i8) -> Option<(i16, &'static str)> {
        if !self.broker.authorizer.enabled() {
            Some((
                crate::error_code::SECURITY_DISABLED,
                "No Authorizer is configured.",
            ))
        } else if !self.allowed(operation, Resource::Cluster).await {
            Some((
                crate::error_code::CLUSTER_AUTHORIZATION_FAILED,
                "Cluster authorization failed.",
            ))
        } else {
            None
        }
    }

    /// KIP-430's authorized operations of `r` for the client.
    pub async fn authorized_operations(&self, r: Resource<'_>) -> i32 {
        let (principal, host) = self.who();
        self.broker
            .authorizer
            .authorized_operations(&principal, &host, r)
            .await
    }
}

/// Most partitions one CreateTopics or CreatePartitions request may add (Kafka's controller:
/// 10,000 records per operation; beyond, POLICY_VIOLATION for every topic of the request).
pub(crate) const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Kafka's message for a topic refused under `controller_mutation_rate`.
pub(crate) const QUOTA_EXCEEDED: &str = "The throttling quota has been exceeded.";

/// Kafka's message for a request over [`MAX_PARTITIONS_PER_REQUEST`].
pub(crate) const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// Why a request could not be answered; the connection is closed.
#[derive(Debug)]
pub enum HandleError {
    /// Shorter than an API key and version.
    TooShort,
    /// An API key kfdb does not serve.
    UnknownApi(i16),
    /// A version outside the handler's range.
    UnsupportedVersion(ApiKey, i16),
    /// The request did not decode.
    Decode(ApiKey, i16, String),
    /// The response did not encode (a bug).
    Encode(ApiKey, i16, String),
    /// A request other than ApiVersions and SASL before authentication (or after the session
    /// expired).
    Unauthenticated(ApiKey),
    /// A request whose truthful answer needs the store, which failed, and whose response has no
    /// place for an error (Metadata listing every topic): closing makes the client ask again,
    /// where an empty answer would tell it every topic was gone.
    StoreUnavailable(ApiKey, String),
}

impl HandleError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HandleError::TooShort => "too_short",
            HandleError::UnknownApi(_) => "unknown_api",
            HandleError::UnsupportedVersion(..) => "unsupported_version",
            HandleError::Decode(..) => "decode",
            HandleError::Encode(..) => "encode",
            HandleError::Unauthenticated(..) => "unauthenticated",
            HandleError::StoreUnavailable(..) => "store_unavailable",
        }
    }
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandleError::TooShort => write!(f, "request shorter than its header"),
            HandleError::UnknownApi(k) => write!(f, "unsupported API key {k}"),
            HandleError::UnsupportedVersion(k, v) => write!(f, "unsupported version {v} of {k:?}"),
            HandleError::Decode(k, v, e) => write!(f, "{k:?} v{v} did not decode: {e}"),
            HandleError::Encode(k, v, e) => write!(f, "{k:?} v{v} response did not encode: {e}"),
            HandleError::StoreUnavailable(k, e) => {
                write!(f, "{k:?} cannot be answered while the store fails: {e}")
            }
            HandleError::Unauthenticated(k) => {
                write!(
                    f,
                    "{k:?} before SASL authentication (or after the session expired)"
                )
            }
        }
    }
}

/// A request's answer: ready now (`None`: no response is due), or later (Produce: queued, the
/// future completes when the appends are durable).
pub enum Answer {
    /// Answer now.
    Now(Option<Response>),
    /// Answer when the future completes; the connection keeps the response order.
    Later(BoxFuture<'static, Result<Option<Response>, HandleError>>),
}

/// What a handler returns: its response (`None`: no response is due), or, for the few that can
/// fail as a whole, a [`HandleError`] that closes the connection.
trait Reply {
    type Response;
    fn into_reply(self) -> Result<Option<Self::Response>, HandleError>;
}

impl<R> Reply for Option<R> {
    type Response = R;
    fn into_reply(self) -> Result<Option<R>, HandleError> {
        Ok(self)
    }
}

impl<R> Reply for Result<Option<R>, HandleError> {
    type Response = R;
    fn into_reply(self) -> Result<Option<R>, HandleError> {
        self
    }
}

macro_rules! handlers {
    (now: [$($module:ident),* $(,)?], later: [$($later:ident),* $(,)?] $(,)?) => {
        /// Every API kfdb serves.
        pub const APIS: &[ApiEntry] = &[
            $(ApiEntry { key: $module::KEY, versions: $module::VERSIONS },)*
            $(ApiEntry { key: $later::KEY, versions: $later::VERSIONS },)*
        ];

        async fn dispatch(
            ctx: &RequestCtx<'_>,
            key: ApiKey,
            body: &mut Bytes,
        ) -> Result<Answer, HandleError> {
            $(
                if key == $module::KEY {
                    let request = <$module::Request as Decodable>::decode(body, ctx.version)
                        .map_err(|e| HandleError::Decode(key, ctx.version, e.to_string()))?;
                    let reply = Reply::into_reply($module::handle(ctx, request).await);
                    let throttle_ms = request_throttle(ctx, key);
                    return match reply? {
                        Some(mut response) => {
                            throttle::ThrottleTime::set_throttle(&mut response, ctx.version, throttle_ms);
                            let splices = ctx.take_splices();
                            encode(ctx.trace.as_deref(), ctx.header.correlation_id, key, ctx.version, &response, splices)
                                .map(|b| Answer::Now(Some(b)))
                        }
                        None => Ok(Answer::Now(None)),
                    };
                }
            )*
            $(
                if key == $later::KEY {
                    let request = <$later::Request as Decodable>::decode(body, ctx.version)
                        .map_err(|e| HandleError::Decode(key, ctx.version, e.to_string()))?;
                    let pending = $later::begin(ctx, request).await;
                    let throttle_ms = request_throttle(ctx, key);
                    let (correlation_id, version) = (ctx.header.correlation_id, ctx.version);
                    let trace = ctx.trace.clone();
                    return Ok(Answer::Later(Box::pin(async move {
                        match pending.await {
                            Some(mut response) => {
                                throttle::ThrottleTime::set_throttle(&mut response, version, throttle_ms);
                                encode(trace.as_deref(), correlation_id, key, version, &response, Splices::default()).map(Some)
                            }
                            None => Ok(None),
                        }
                    })));
                }
            )*
            Err(HandleError::UnknownApi(key as i16))
        }
    };
}

handlers!(
    now: [
        api_versions,
        metadata,
        fetch,
        list_offsets,
        create_topics,
        delete_topics,
        create_partitions,
        describe_configs,
        alter_configs,
        incremental_alter_configs,
        delete_records,
        describe_cluster,
        describe_topic_partitions,
        find_coordinator,
        join_group,
        sync_group,
        heartbeat,
        leave_group,
        offset_commit,
        offset_fetch,
        list_groups,
        describe_groups,
        delete_groups,
        offset_delete,
        offset_for_leader_epoch,
        consumer_group_heartbeat,
        consumer_group_describe,
        init_producer_id,
        add_partitions_to_txn,
        add_offsets_to_txn,
        txn_offset_commit,
        end_txn,
        describe_producers,
        describe_transactions,
        list_transactions,
        describe_log_dirs,
        elect_leaders,
        alter_partition_reassignments,
        list_partition_reassignments,
        alter_replica_log_dirs,
        sasl_handshake,
        sasl_authenticate,
        describe_user_scram_credentials,
        alter_user_scram_credentials,
        describe_acls,
        create_acls,
        delete_acls,
        describe_client_quotas,
        alter_client_quotas,
    ],
    later: [produce],
);

/// The entry for `key`, if served.
pub fn entry(key: ApiKey) -> Option<&'static ApiEntry> {
    APIS.iter().find(|a| a.key == key)
}

/// `request_percentage`: the time the handler was busy so far (not parked), as percent-seconds
/// of one thread, against the client's request quota; the throttle, at most one quota sample
/// (as Kafka's request quota). The SASL exchange is not subject to it.
fn request_throttle(ctx: &RequestCtx<'_>, key: ApiKey) -> i32 {
    if matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
        return 0;
    }
    let parked = ctx.parked.load(std::sync::atomic::Ordering::Relaxed);
    let busy = ctx
        .started
        .elapsed()
        .saturating_sub(std::time::Duration::from_nanos(parked))
        .as_secs_f64()
        * 100.0;
    ctx.throttle(
        crate::quota::REQUEST_PERCENTAGE,
        busy,
        crate::quota::rate::SAMPLE_MS,
    )
}

/// Frame a response: size prefix, response header, body (with `splices`' records in place).
fn encode<R: Encodable>(
    trace: Option<&crate::slowlog::Trace>,
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    response: &R,
    splices: Splices,
) -> Result<Response, HandleError> {
    let started = trace.map(|_| std::time::Instant::now());
    let out = encode_response(correlation_id, key, version, response, splices);
    if let (Some(t), Some(s)) = (trace, started) {
        t.encoded(s.elapsed());
    }
    out
}

fn encode_response<R: Encodable>(
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    response: &R,
    splices: Splices,
) -> Result<Response, HandleError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = key.response_header_version(version);
    // Sized up front (growing by doubling would copy what is encoded several times over); the
    // spliced records are not copied into it, so they take no room.
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + response.compute_size(version)?))
        .map(|size| size.saturating_sub(splices.bytes()))
        .unwrap_or(256);
    let mut out = SplicingBuf::new(splices, 4 + size);
    out.put_i32(0);
    header
        .encode(&mut out, header_version)
        .map_err(|e| HandleError::Encode(key, version, e.to_string()))?;
    response
        .encode(&mut out, version)
        .map_err(|e| HandleError::Encode(key, version, e.to_string()))?;
    out.finish_frame()
        .map_err(|e| HandleError::Encode(key, version, e.to_string()))
}

/// True when the frame is a Produce request (answered later; see [`Answer`]).
pub fn is_produce(frame: &[u8]) -> bool {
    frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::Produce as i16
}

/// Answer one request frame (header and body), `received` when the connection read it.
pub async fn handle(
    broker: &Arc<Broker>,
    client: &Client,
    mut frame: Bytes,
    received: std::time::Instant,
) -> Result<Answer, HandleError> {
    if frame.len() < 8 {
        return Err(HandleError::TooShort);
    }
    let size = frame.len() + 4;
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = ApiKey::try_from(raw_key).map_err(|_| HandleError::UnknownApi(raw_key))?;
    let entry = entry(key).ok_or(HandleError::UnknownApi(raw_key))?;
    if version < entry.versions.min || version > entry.versions.max {
        if key == ApiKey::ApiVersions {
            let response = api_versions::unsupported_version();
            return encode(None, correlation_id, key, 0, &response, Splices::default())
                .map(|b| Answer::Now(Some(b)));
        }
        return Err(HandleError::UnsupportedVersion(key, version));
    }
    let sasl_exchange = matches!(
        key,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    );
    if !sasl_exchange && !client.session.authenticated() {
        return Err(HandleError::Unauthenticated(key));
    }
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| HandleError::Decode(key, version, e.to_string()))?;
    let ctx = RequestCtx {
        broker,
        version,
        header: &header,
        peer: client.peer,
        client,
        trace: broker
            .config
            .slow_request
            .map(|_| Arc::new(crate::slowlog::Trace::default())),
        size,
        started: std::time::Instant::now(),
        parked: Default::default(),
        splices: Default::default(),
    };
    let started = ctx.started;
    let result = dispatch(&ctx, key, &mut frame).await;
    let api = api_name(key);
    broker.metrics.requests.with_label_values(&[api]).inc();
    let metrics = broker.metrics.clone();
    let slow = broker
        .config
        .slow_request
        .zip(ctx.trace.clone())
        .map(|(t, trace)| {
            let client_id = header.client_id.clone();
            (t, trace, client_id, client.peer)
        });
    let observe = move || {
        metrics
            .latency
            .with_label_values(&[api])
            .observe(started.elapsed().as_secs_f64());
        if let Some((threshold, trace, client_id, peer)) = slow {
            let timing = crate::slowlog::Timing { received, started };
            crate::slowlog::finish(threshold, api, client_id.as_deref(), peer, timing, &trace);
        }
    };
    match result {
        Ok(Answer::Later(pending)) => Ok(Answer::Later(Box::pin(async move {
            let answered = pending.await;
            observe();
            answered
        }))),
        other => {
            observe();
            other
        }
    }
}

/// A stable metric label for an API: Kafka's name for it (`ListOffsets`), made once for every
/// entry of the `handlers!` list, so no second list of names is kept by hand.
fn api_name(key: ApiKey) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<(ApiKey, &'static str)>> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            APIS.iter()
                .map(|a| (a.key, &*Box::leak(format!("{:?}", a.key).into_boxed_str())))
                .collect()
        })
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, name)| *name)
        .unwrap_or("Other")
}

/// Partition `index` of a topic looked up by name, or the Kafka error (code and message) for why
/// there is none: a store fault answers its own code, a missing topic or partition
/// UNKNOWN_TOPIC_OR_PARTITION.
pub(crate) fn partition_of(
    meta: &kfdb_log::LogResult<Option<Arc<kfdb_log::TopicMeta>>>,
    index: i32,
) -> Result<kfdb_log::PartitionId, (i16, String)> {
    match meta {
        Err(e) => Err((crate::error_code::from_log_error(e), e.to_string())),
        Ok(None) => Err((
            crate::error_code::UNKNOWN_TOPIC_OR_PARTITION,
            "unknown topic".into(),
        )),
        Ok(Some(m)) => m.partition(index).ok_or_else(|| {
            (
                crate::error_code::UNKNOWN_TOPIC_OR_PARTITION,
                "unknown partition".into(),
            )
        }),
    }
}

/// A `StrBytes` from a `String`.
pub(crate) fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_are_kafkas_for_every_registered_api() {
        assert_eq!(api_name(ApiKey::Produce), "Produce");
        assert_eq!(api_name(ApiKey::ListOffsets), "ListOffsets");
        assert_eq!(
            api_name(ApiKey::ConsumerGroupHeartbeat),
            "ConsumerGroupHeartbeat"
        );
        for a in APIS {
            let name = api_name(a.key);
            assert!(
                name.chars().next().is_some_and(char::is_uppercase) && !name.contains('_'),
                "{name}"
            );
        }
        assert_eq!(
            api_name(ApiKey::DescribeDelegationToken),
            "Other",
            "not served"
        );
    }

    #[test]
    fn registry_has_no_duplicates_and_sane_ranges() {
        for (i, a) in APIS.iter().enumerate() {
            assert!(a.versions.min <= a.versions.max, "{:?}", a.key);
            assert!(a.versions.advertised_min <= a.versions.min, "{:?}", a.key);
            let range = a.key.valid_versions();
            assert!(
                a.versions.min >= range.min && a.versions.max <= range.max,
                "{:?} versions beyond what the protocol crate decodes",
                a.key
            );
            assert!(
                APIS[i + 1..].iter().all(|b| b.key != a.key),
                "{:?} registered twice",
                a.key
            );
        }
    }
}
