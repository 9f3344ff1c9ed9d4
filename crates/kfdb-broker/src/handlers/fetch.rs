//! Fetch (key 1): whole record batches from each requested partition, within `max_bytes` overall
//! and `partition_max_bytes` each (the first batch always whole, so consumers make progress). When
//! less than `min_bytes` is available the request long-polls: it waits, without polling the store,
//! for an append to any of its partitions or for `max_wait_ms`.
//!
//! Fetch sessions (KIP-227) are not kept: every response has session id 0, which tells clients to
//! send full fetch requests.
//!
//! The partitions of one request are read concurrently (`PARALLEL_READS` at a time), each
//! up to its own limit, then laid out in request order within the request's budget: whole
//! batches, the first partition with data always getting at least one (as Kafka does), later
//! ones cut at a batch boundary once the budget runs out.
//!
//! A topic the store could not look up is answered with the store failure's code (retriable),
//! never as unknown.
//!
//! Who serves a partition: its leader; and, beyond what Kafka can do without replicas, any broker
//! in the consumer's rack (KIP-392): every broker reads the same store. A leader asked by a
//! consumer with a `rack_id` (v11+) that names another live broker's rack answers with that broker
//! as `preferred_read_replica`, and the consumer fetches from it. A broker that neither leads the
//! partition nor shares the consumer's rack answers NOT_LEADER_OR_FOLLOWER with the current leader
//! (v12+, KIP-951). `current_leader_epoch` (v9+) older than the leader's is FENCED_LEADER_EPOCH,
//! newer is UNKNOWN_LEADER_EPOCH. A broker reading as a rack replica is not told of new records
//! (its writers do not append to the partition), so its long poll looks again every 50 ms.
//!
//! read_committed fetches (isolation level 1) see records below the last stable offset only, with
//! the aborted transactions among them listed so the consumer drops those records; a long poll
//! wakes when a transaction marker moves the last stable offset.

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::{Broker, error_code};
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId};
use kfdb_log::parts::RecordParts;
use kfdb_log::{FetchResult, Isolation, Log, LogError, LogResult, PartitionId, TopicMeta};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const KEY: ApiKey = ApiKey::Fetch;
pub const VERSIONS: Versions = Versions::new(4, 18);
pub type Request = FetchRequest;

/// Longest long poll honoured, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Partitions of one request read at the same time.
const PARALLEL_READS: usize = 16;

/// How long a long poll served as a rack replica waits before reading again.
const REPLICA_POLL: Duration = Duration::from_millis(50);

struct Wanted {
    topic_index: usize,
    /// The topic, or the error code every partition of it gets.
    topic: Result<Arc<TopicMeta>, i16>,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
    role: Role,
}

/// How this broker serves one wanted partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Read it, as its leader (`true`) or as a broker in the consumer's rack.
    Read(bool),
    /// Refuse it with this code (and, for NOT_LEADER_OR_FOLLOWER, the leader and its epoch).
    Refuse(i16, Option<(i32, i32)>),
    /// Send the consumer to this broker in its rack (offsets only here).
    Elsewhere(i32),
}

/// Decide how this broker serves `w` (its topic known).
async fn role_of(broker: &Broker, listener: &str, version: i16, rack_id: &str, w: &Wanted) -> Role {
    let Ok(topic) = &w.topic else {
        return Role::Refuse(error_code::UNKNOWN_TOPIC_OR_PARTITION, None);
    };
    let Some(p) = topic.partition(w.partition) else {
        return Role::Refuse(error_code::UNKNOWN_TOPIC_OR_PARTITION, None);
    };
    let me = broker.node_id();
    let leader = broker.leader(p);
    let my_rack = broker.log.membership().rack().map(str::to_string);
    let in_rack = version >= 11 && !rack_id.is_empty() && my_rack.as_deref() == Some(rack_id);
    let epoch = if leader == Some(me) {
        match broker.log.leadership().claim(p).await {
            Ok(e) => e,
            Err(e) => return Role::Refuse(error_code::from_log_error(&e), None),
        }
    } else if in_rack {
        match broker.log.leadership().reported_epochs(&[p]).await {
            Ok(e) => e.first().copied().unwrap_or(0),
            Err(e) => return Role::Refuse(error_code::from_log_error(&e), None),
        }
    } else {
        let epoch = broker
            .log
            .leadership()
            .reported_epochs(&[p])
            .await
            .ok()
            .and_then(|e| e.first().copied())
            .unwrap_or(-1);
        return Role::Refuse(
            error_code::NOT_LEADER_OR_FOLLOWER,
            leader.map(|l| (l, epoch)),
        );
    };
    if w.current_leader_epoch >= 0 && w.current_leader_epoch < epoch {
        return Role::Refuse(error_code::FENCED_LEADER_EPOCH, None);
    }
    if w.current_leader_epoch > epoch {
        return Role::Refuse(error_code::UNKNOWN_LEADER_EPOCH, None);
    }
    if leader == Some(me) && version >= 11 && !rack_id.is_empty() && !in_rack {
        // A broker in the consumer's rack, chosen per partition so the load spreads.
        let in_its_rack: Vec<i32> = broker
            .nodes(listener)
            .into_iter()
            .filter(|n| n.rack.as_deref() == Some(rack_id))
            .map(|n| n.id)
            .collect();
        if let Some(n) = kfdb_log::partition_replica(p, &in_its_rack) {
            return Role::Elsewhere(n);
        }
    }
    Role::Read(leader == Some(me))
}

impl Wanted {
    fn partition_id(&self) -> Option<PartitionId> {
        self.topic
            .as_ref()
            .ok()
            .and_then(|t| t.partition(self.partition))
    }
}

/// Releases a fetch's watermark subscriptions (see `Tails::unwatch`).
struct Unwatch<'a> {
    log: &'a Log,
    keys: Vec<PartitionId>,
}

impl Drop for Unwatch<'_> {
    fn drop(&mut self) {
        for p in &self.keys {
            self.log.tails().unwatch(*p);
        }
    }
}

fn partition_error(partition: i32, code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
}

/// The size of the first batch of `records` (0 when not even its header is there).
fn first_batch_len(records: &RecordParts) -> usize {
    let mut head = [0u8; 12];
    if !records.cursor().peek(&mut head) {
        return 0;
    }
    let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    12 + len.max(0) as usize
}

/// The whole batches at the start of `records` that fit in `budget` bytes.
fn batches_within(records: RecordParts, budget: usize) -> RecordParts {
    let mut at = records.cursor();
    let mut head = [0u8; 12];
    while at.peek(&mut head) {
        let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        let next = at.position() + 12 + len.max(0) as usize;
        if next > budget || next > records.len() {
            break;
        }
        at.skip(next - at.position());
    }
    records.prefix(at.position())
}

/// Read one wanted partition, up to its own limit and the request's; `None` when its topic is
/// unknown or could not be looked up.
async fn read_one(
    log: &Log,
    w: &Wanted,
    request_max: usize,
    isolation: Isolation,
) -> Option<LogResult<FetchResult>> {
    let topic = w.topic.as_ref().ok()?;
    let max = match w.role {
        Role::Read(_) => w.max_bytes.min(request_max).max(1),
        // Offsets only: the consumer reads the records from the broker it is sent to.
        Role::Elsewhere(_) => 0,
        Role::Refuse(..) => return None,
    };
    Some(
        log.reader()
            .fetch_isolated(topic, w.partition, w.offset, max, isolation)
            .await,
    )
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<FetchResponse> {
    let log = &ctx.broker.log;
    let by_id = ctx.version >= 13;
    let missing = if by_id {
        error_code::UNKNOWN_TOPIC_ID
    } else {
        error_code::UNKNOWN_TOPIC_OR_PARTITION
    };
    let mut wanted = Vec::new();
    let mut topics_out: Vec<FetchableTopicResponse> = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        let meta = if by_id {
            log.topics().get_by_uuid(t.topic_id).await
        } else {
            log.topics().get(&t.topic).await
        };
        if let Ok(Some(m)) = &meta {
            ctx.note_topic(&m.name);
        }
        let topic = match meta {
            Ok(Some(m)) if !ctx.allowed(op::READ, Resource::Topic(&m.name)).await => {
                Err(error_code::TOPIC_AUTHORIZATION_FAILED)
            }
            Ok(Some(m)) => Ok(m),
            Ok(None) if !by_id && !ctx.allowed(op::READ, Resource::Topic(&t.topic)).await => {
                Err(error_code::TOPIC_AUTHORIZATION_FAILED)
            }
            Ok(None) => Err(missing),
            Err(e) => {
                tracing::warn!(topic = %t.topic.as_str(), error = %e, "fetch: topic lookup failed");
                Err(error_code::from_log_error(&e))
            }
        };
        topics_out.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id),
        );
        for p in &t.partitions {
            wanted.push(Wanted {
                topic_index: i,
                topic: topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: if ctx.version >= 9 {
                    p.current_leader_epoch
                } else {
                    -1
                },
                role: Role::Read(true),
            });
        }
    }
    for w in &mut wanted {
        if w.topic.is_ok() {
            w.role = role_of(
                ctx.broker,
                &ctx.client.listener,
                ctx.version,
                req.rack_id.as_str(),
                w,
            )
            .await;
        }
    }
    let replica_reads = wanted.iter().any(|w| w.role == Role::Read(false));
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    // The broker's `fetch.max.bytes` caps what a client asks for (from v3, which has the field).
    let request_max = if ctx.version >= 3 {
        (req.max_bytes.max(0) as usize).min(ctx.broker.config.fetch_max_bytes)
    } else {
        req.max_bytes.max(0) as usize
    };
    // A `consumer_byte_rate` quota caps a Fetch at what it allows over its window (as Kafka).
    let quota_cap = ctx.fetch_cap();
    let request_max = quota_cap.map_or(request_max, |cap| request_max.min(cap));
    let min_bytes = (req.min_bytes.max(0) as usize).min(request_max);
    let mut stopping = ctx.broker.stopping.subscribe();
    let isolation = if req.isolation_level == 1 {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    // Forget the partitions' watermark channels when this fetch ends, also when it is dropped
    // (declared before the receivers, so it runs after they are gone).
    let _unwatch = Unwatch {
        log,
        keys: wanted.iter().filter_map(Wanted::partition_id).collect(),
    };
    // Subscribe before the first read so an append between read and wait is not missed.
    let mut watches: Vec<watch::Receiver<i64>> = wanted
        .iter()
        .filter_map(Wanted::partition_id)
        .map(|p| log.tails().watch(p))
        .collect();
    for w in &mut watches {
        w.borrow_and_update();
    }
    let mut endpoints: Vec<i32> = Vec::new();
    loop {
        // Read every partition at once (bounded), each up to its own limit and the request's.
        let mut reads = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(PARALLEL_READS) {
            let round = chunk
                .iter()
                .map(|w| read_one(log, w, request_max, isolation));
            reads.extend(futures::future::join_all(round).await);
        }
        let mut budget = request_max;
        let mut total = 0usize;
        let mut results = Vec::with_capacity(wanted.len());
        let mut any_error = false;
        for (w, r) in wanted.iter().zip(reads) {
            let Some(r) = r else {
                // Not read: the topic is unknown or could not be looked up, or refused.
                let (code, leader) = match (w.role, &w.topic) {
                    (_, Err(code)) => (*code, None),
                    (Role::Refuse(code, leader), _) => (code, leader),
                    _ => (missing, None),
                };
                let mut e = partition_error(w.partition, code);
                if let Some((id, epoch)) = leader
                    && ctx.version >= 12
                {
                    e = e.with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(id))
                            .with_leader_epoch(epoch),
                    );
                    if !endpoints.contains(&id) {
                        endpoints.push(id);
                    }
                }
                results.push((e, None));
                any_error = true;
                continue;
            };
            results.push(match r {
                Ok(mut f) => {
                    // Until some partition returned data, each may return at least one batch;
                    // after that the request's remaining budget applies (0: offsets only).
                    if total > 0 && f.records.len() > budget {
                        f.records = batches_within(f.records, budget);
                    } else if quota_cap.is_some() && f.records.len() > budget {
                        // Under a byte-rate quota the response stays within its cap (but for a
                        // first batch larger than it): a larger one would be throttled, not
                        // counted, and asked for again.
                        let first = first_batch_len(&f.records);
                        f.records = batches_within(f.records, budget.max(first));
                    }
                    total += f.records.len();
                    budget = budget.saturating_sub(f.records.len());
                    let data = PartitionData::default()
                        .with_partition_index(w.partition)
                        .with_high_watermark(f.high_watermark)
                        .with_last_stable_offset(f.last_stable_offset)
                        .with_aborted_transactions(f.aborted.map(|list| {
                            list.into_iter()
                                .map(|(pid, first)| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(pid))
                                        .with_first_offset(first)
                                })
                                .collect()
                        }))
                        .with_log_start_offset(if ctx.version >= 5 {
                            f.log_start_offset
                        } else {
                            -1
                        })
                        .with_preferred_read_replica(BrokerId(-1));
                    // The records go in when the response is final (a long poll may read again).
                    (data, Some(f.records))
                }
                Err(e) => {
                    any_error = true;
                    if !matches!(e, LogError::OffsetOutOfRange) {
                        tracing::debug!(partition = w.partition, error = %e, "fetch failed");
                    }
                    (
                        partition_error(w.partition, error_code::from_log_error(&e)),
                        None,
                    )
                }
            });
        }
        let now = tokio::time::Instant::now();
        let elsewhere = wanted.iter().any(|w| matches!(w.role, Role::Elsewhere(_)));
        if total >= min_bytes
            || any_error
            || elsewhere
            || now >= deadline
            || (watches.is_empty() && !replica_reads)
            || *stopping.borrow()
        {
            // `consumer_byte_rate`: over it, the client gets no data this time (what was read
            // is not counted) and waits out the throttle, as Kafka answers a throttled Fetch.
            let throttle_ms =
                ctx.throttle(crate::quota::CONSUMER_BYTE_RATE, total as f64, u64::MAX);
            if throttle_ms > 0 {
                ctx.broker.quotas.unrecord(
                    crate::quota::CONSUMER_BYTE_RATE,
                    &ctx.client.session.principal(),
                    ctx.header.client_id.as_deref().unwrap_or(""),
                    total as f64,
                );
                return Some(FetchResponse::default().with_throttle_time_ms(throttle_ms));
            }
            for (w, (data, records)) in wanted.iter().zip(results) {
                let data = match records {
                    Some(records) => data.with_records(Some(ctx.splice(records))),
                    None => data,
                };
                topics_out[w.topic_index].partitions.push(data);
            }
            let node_endpoints = if ctx.version >= 12 {
                endpoints
                    .iter()
                    .filter_map(|n| ctx.broker.node(*n, &ctx.client.listener))
                    .map(|n| {
                        NodeEndpoint::default()
                            .with_node_id(BrokerId(n.id))
                            .with_host(kafka_protocol::protocol::StrBytes::from_string(n.host))
                            .with_port(n.port)
                            .with_rack(n.rack.map(kafka_protocol::protocol::StrBytes::from_string))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            return Some(
                FetchResponse::default()
                    .with_responses(topics_out)
                    .with_node_endpoints(node_endpoints),
            );
        }
        // Wake on an append to a partition this broker leads; a rack replica looks again soon.
        let wake_at = if replica_reads {
            deadline.min(now + REPLICA_POLL)
        } else {
            deadline
        };
        let woke = {
            let changed = async {
                if watches.is_empty() {
                    std::future::pending::<()>().await;
                }
                let (result, index, _rest) =
                    select_all(watches.iter_mut().map(|w| Box::pin(w.changed()))).await;
                (result.is_err(), index)
            };
            ctx.park(async {
                tokio::select! {
                    r = tokio::time::timeout_at(wake_at, changed) => r,
                    // Shutting down: one more read answers with what there is.
                    _ = stopping.wait_for(|s| *s) => Ok((false, usize::MAX)),
                }
            })
            .await
        };
        // A closed channel (topic deleted) is dropped so the loop cannot spin on it; at the
        // deadline one more read answers with what there is.
        if let Ok((true, index)) = woke {
            watches.swap_remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::batches_within;
    use bytes::Bytes;
    use kfdb_log::parts::RecordParts;

    fn batch(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; 12 + len];
        b[8..12].copy_from_slice(&(len as i32).to_be_bytes());
        b
    }

    #[test]
    fn first_batch_len_reads_the_batch_header() {
        let two: Bytes = [batch(100), batch(50)].concat().into();
        let two = RecordParts::from(two);
        assert_eq!(super::first_batch_len(&two), 112);
        assert_eq!(super::first_batch_len(&two.prefix(5)), 0);
        assert_eq!(batches_within(two.clone(), 120).len(), 112);
    }

    #[test]
    fn budget_cuts_at_batch_boundaries() {
        // In pieces as the cache or the store hands them out, one header split between two.
        let first = Bytes::from(batch(100));
        let second = Bytes::from(batch(50));
        let mut all = RecordParts::from(first);
        all.push(second.slice(..5));
        all.push(second.slice(5..));
        assert_eq!(batches_within(all.clone(), 200).len(), 174);
        assert_eq!(batches_within(all.clone(), 173).len(), 112);
        assert_eq!(batches_within(all.clone(), 111).len(), 0);
        assert_eq!(batches_within(all, 0).len(), 0);
    }
}
