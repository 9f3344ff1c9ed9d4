//! The partition owner's writer: dense offsets, grouped commits, one commit in flight.
//!
//! Appends to a partition queue up in its `PartitionWriter`. Whoever finds the writer idle becomes
//! its flusher: it takes everything queued (up to `max_append_txn_bytes`), appends it all in one
//! store transaction, answers each request, and repeats until the queue is empty. So concurrent
//! Produce requests to one partition share one commit (and, on the embedded store, one fsync), and
//! a partition never has two commits in flight — which is what makes dense offsets possible without
//! a hot counter: only the owner advances `next_offset`.
//!
//! The transaction reads the partition's owner key. When several brokers share one FoundationDB, a
//! broker that takes over a partition writes that key, so an append still in flight on the old owner
//! conflicts instead of forking the log. Ownership policy today: a broker that appends to a
//! partition owned by another node id takes it over (epoch + 1) and logs it; a lease protocol
//! between live brokers comes with multi-broker support.
//!
//! A retried transaction after `commit_unknown_result` checks whether its previous attempt landed
//! (only the owner moves `next_offset`, so a moved `next_offset` means it did) and never appends
//! twice.

use crate::batch::Batch;
use crate::error::{LogError, LogResult};
use crate::values::{BatchInfo, Owner, PartitionState, TopicMeta};
use crate::{Log, config::EffectiveConfig, keys, now_ms};
use bytes::Bytes;
use kfdb_kv::Transaction;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// What an append reports, per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the first record of the request's first batch.
    pub base_offset: i64,
    /// The append time stamped into the batches (`LogAppendTime` topics), else -1.
    pub log_append_time: i64,
    /// The partition's log start offset after the append.
    pub log_start_offset: i64,
}

struct Pending {
    batches: Vec<Batch>,
    bytes: usize,
    reply: oneshot::Sender<LogResult<AppendResult>>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    flushing: bool,
}

#[derive(Default)]
pub(crate) struct PartitionWriter {
    queue: Mutex<Queue>,
}

impl PartitionWriter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl Log {
    /// Append validated batches to a partition; returns once they are durable.
    pub async fn append(
        self: &Arc<Self>,
        topic: &Arc<TopicMeta>,
        partition: i32,
        batches: Vec<Batch>,
    ) -> LogResult<AppendResult> {
        if partition < 0 || partition >= topic.partitions {
            return Err(LogError::UnknownPartition);
        }
        let max = EffectiveConfig::new(&topic.configs).max_message_bytes();
        if let Some(b) = batches.iter().find(|b| b.size() as i64 > max) {
            return Err(LogError::MessageTooLarge(format!(
                "batch of {} bytes, max.message.bytes is {max}",
                b.size()
            )));
        }
        if let Some(b) = batches.iter().find(|b| b.producer_id >= 0) {
            return Err(LogError::UnknownProducerId(b.producer_id));
        }
        let bytes = batches.iter().map(Batch::size).sum();
        let (tx, rx) = oneshot::channel();
        let writer = self
            .writers
            .entry((topic.id, partition))
            .or_default()
            .clone();
        let start_flusher = {
            let mut q = writer.lock();
            q.pending.push_back(Pending {
                batches,
                bytes,
                reply: tx,
            });
            !std::mem::replace(&mut q.flushing, true)
        };
        if start_flusher {
            let log = self.clone();
            let topic = topic.clone();
            tokio::spawn(async move { log.flush(topic, partition, writer).await });
        }
        rx.await
            .unwrap_or_else(|_| Err(LogError::InvalidRequest("append abandoned".into())))
    }

    async fn flush(
        self: Arc<Self>,
        topic: Arc<TopicMeta>,
        partition: i32,
        writer: Arc<PartitionWriter>,
    ) {
        loop {
            let group: Vec<Pending> = {
                let mut q = writer.lock();
                let mut taken = Vec::new();
                let mut bytes = 0;
                while let Some(p) = q.pending.front() {
                    if !taken.is_empty() && bytes + p.bytes > self.config.max_append_txn_bytes {
                        break;
                    }
                    bytes += p.bytes;
                    taken.extend(q.pending.pop_front());
                }
                if taken.is_empty() {
                    q.flushing = false;
                    return;
                }
                taken
            };
            let batches: Vec<&[Batch]> = group.iter().map(|p| p.batches.as_slice()).collect();
            match self.append_txn(&topic, partition, &batches).await {
                Ok((bases, append_time, state)) => {
                    self.announce(topic.id, partition, state.next_offset);
                    for (p, base) in group.into_iter().zip(bases) {
                        let _ = p.reply.send(Ok(AppendResult {
                            base_offset: base,
                            log_append_time: append_time.unwrap_or(-1),
                            log_start_offset: state.log_start,
                        }));
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition, error = %e, "append failed");
                    for p in group {
                        let _ = p.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One store transaction appending every batch of `requests`, in order. Returns the base offset
    /// of each request, the append time used, and the partition state after.
    async fn append_txn(
        &self,
        topic: &TopicMeta,
        partition: i32,
        requests: &[&[Batch]],
    ) -> LogResult<(Vec<i64>, Option<i64>, PartitionState)> {
        let tid = topic.id;
        let node = self.config.node_id;
        let log_append_time = EffectiveConfig::new(&topic.configs).log_append_time();
        let total_records: i64 = requests
            .iter()
            .flat_map(|r| r.iter())
            .map(|b| i64::from(b.record_count))
            .sum();
        // The state this attempt started from, to recognise our own landed commit on a retry.
        let previous: Mutex<Option<PartitionState>> = Mutex::new(None);
        let previous = &previous;
        self.db
            .run(|tx, maybe_committed| async move {
                if tx.get(&keys::topic_meta(tid), false).await?.is_none() {
                    return Err(LogError::UnknownTopic);
                }
                let owner = self.claim(&tx, tid, partition, node).await?;
                let state = match tx
                    .get(&keys::partition_state(tid, partition), false)
                    .await?
                {
                    Some(v) => PartitionState::decode(&v)?,
                    None => PartitionState::default(),
                };
                let before = previous.lock().ok().and_then(|mut g| g.replace(state));
                if maybe_committed.0
                    && let Some(before) = before
                    && state.next_offset == before.next_offset + total_records
                {
                    // The earlier attempt committed: report its offsets, write nothing.
                    tracing::info!(tid, partition, "append found its earlier attempt committed");
                    let bases = base_offsets(before.next_offset, requests);
                    return Ok((bases, None, state));
                }
                let append_time = log_append_time.then(now_ms);
                let mut state = state;
                let bases = base_offsets(state.next_offset, requests);
                for batch in requests.iter().flat_map(|r| r.iter()) {
                    write_batch(
                        &tx,
                        tid,
                        partition,
                        owner.epoch,
                        batch,
                        append_time,
                        &mut state,
                    );
                }
                tx.set(&keys::partition_state(tid, partition), &state.encode());
                Ok((bases, append_time, state))
            })
            .await
    }

    /// Read the partition's owner; take it over when it is absent or another node's.
    async fn claim(
        &self,
        tx: &Transaction,
        tid: i64,
        partition: i32,
        node: i32,
    ) -> LogResult<Owner> {
        let key = keys::partition_owner(tid, partition);
        let current = match tx.get(&key, false).await? {
            Some(v) => Some(Owner::decode(&v)?),
            None => None,
        };
        match current {
            Some(o) if o.node == node => Ok(o),
            other => {
                let epoch = other.map(|o| o.epoch + 1).unwrap_or(0);
                if let Some(o) = other {
                    tracing::warn!(
                        tid,
                        partition,
                        from = o.node,
                        to = node,
                        epoch,
                        "taking over partition"
                    );
                }
                let owner = Owner { node, epoch };
                tx.set(&key, &owner.encode());
                Ok(owner)
            }
        }
    }

    /// The leader epoch of a partition (its owner epoch), 0 before anyone appended.
    pub async fn leader_epoch(&self, tid: i64, partition: i32) -> LogResult<i32> {
        let owner = self
            .db
            .run(|tx, _| async move {
                match tx.get(&keys::partition_owner(tid, partition), true).await? {
                    Some(v) => Ok(Some(Owner::decode(&v)?)),
                    None => Ok::<_, LogError>(None),
                }
            })
            .await?;
        Ok(owner.map(|o| o.epoch).unwrap_or(0))
    }
}

fn base_offsets(mut next: i64, requests: &[&[Batch]]) -> Vec<i64> {
    requests
        .iter()
        .map(|r| {
            let base = next;
            next += r.iter().map(|b| i64::from(b.record_count)).sum::<i64>();
            base
        })
        .collect()
}

/// Write one batch at `state.next_offset`: its chunks, its index row, a time-index row when it
/// raises the partition's max timestamp; advance `state`.
fn write_batch(
    tx: &Transaction,
    tid: i64,
    partition: i32,
    epoch: i32,
    batch: &Batch,
    append_time: Option<i64>,
    state: &mut PartitionState,
) {
    let base = state.next_offset;
    let last = base + i64::from(batch.last_offset_delta);
    let bytes: Bytes = batch.stamped(base, epoch, append_time);
    for (i, chunk) in bytes.chunks(keys::CHUNK_BYTES).enumerate() {
        let mut value = Vec::with_capacity(chunk.len() + 1);
        value.push(crate::read::CHUNK_FORMAT);
        value.extend_from_slice(chunk);
        tx.set(&keys::log_chunk(tid, partition, last, i as i32), &value);
    }
    let max_ts = batch.stored_max_timestamp(append_time);
    let info = BatchInfo {
        base_offset: base,
        last_offset: last,
        max_timestamp: max_ts,
        size: bytes.len() as i64,
    };
    tx.set(&keys::batch_index(tid, partition, last), &info.encode());
    if max_ts > state.max_timestamp {
        tx.set(&keys::time_index(tid, partition, max_ts, last), b"");
        state.max_timestamp = max_ts;
        state.max_timestamp_offset = last;
    }
    state.next_offset = last + 1;
    state.bytes += bytes.len() as i64;
}
