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
//!
//! Transaction markers are written by the transaction coordinator, not by Produce: it takes each
//! partition's writer exclusively (a place in the same queue, so appends queued before it commit
//! first and appends queued after it wait), writes every marker of the transaction in one store
//! transaction, and releases the writers ([`Log::acquire_writer`]).
//!
//! A transactional batch opens the producer's transaction in the partition (an `open` key and the
//! partition's `first_open`, which is the last stable offset) only if the coordinator added the
//! partition to that producer's transaction, with the same epoch: a fenced or timed-out producer
//! cannot leave a transaction open that no marker will ever close.

use crate::batch::Batch;
use crate::error::{LogError, LogResult};
use crate::producer::{self, ProducerState, SeqCheck};
use crate::txn;
use crate::values::{BatchInfo, Owner, PartitionState, TopicMeta};
use crate::{Log, config::EffectiveConfig, keys, now_ms, read};
use bytes::Bytes;
use kfdb_kv::Transaction;
use std::collections::{HashMap, VecDeque};
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

/// Per-request answers, the append time used, the partition state after, and the batches written
/// (base offset, last offset, stored bytes) for the hot-segment cache.
type Appended = (
    Vec<LogResult<i64>>,
    Option<i64>,
    PartitionState,
    Vec<(i64, i64, Bytes)>,
);

struct PendingAppend {
    batches: Vec<Batch>,
    bytes: usize,
    reply: oneshot::Sender<LogResult<AppendResult>>,
}

/// A place in a partition writer's queue.
enum Pending {
    Append(PendingAppend),
    /// Exclusive use of the writer: the flusher hands over a release handle and waits for it.
    Exclusive(oneshot::Sender<oneshot::Sender<()>>),
}

/// Exclusive use of one partition's writer (see [`Log::acquire_writer`]); dropping it releases.
pub(crate) struct WriterGrant {
    _release: Option<oneshot::Sender<()>>,
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
        self.enqueue_append(topic, partition, batches)?.await
    }

    /// Queue an append on the partition's writer now and return a future for its outcome. Appends
    /// queued one after another are appended in that order (a connection's pipelined Produce
    /// requests keep their order) and may share one commit.
    pub fn enqueue_append(
        self: &Arc<Self>,
        topic: &Arc<TopicMeta>,
        partition: i32,
        batches: Vec<Batch>,
    ) -> LogResult<impl std::future::Future<Output = LogResult<AppendResult>> + Send + 'static>
    {
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
        let bytes = batches.iter().map(Batch::size).sum();
        let (tx, rx) = oneshot::channel();
        self.enqueue(
            topic,
            partition,
            Pending::Append(PendingAppend {
                batches,
                bytes,
                reply: tx,
            }),
        );
        Ok(async move {
            rx.await
                .unwrap_or_else(|_| Err(LogError::InvalidRequest("append abandoned".into())))
        })
    }

    /// Wait for exclusive use of a partition's writer: appends queued before this call commit
    /// first, later ones wait until the grant is dropped.
    pub(crate) async fn acquire_writer(
        self: &Arc<Self>,
        topic: &Arc<TopicMeta>,
        partition: i32,
    ) -> WriterGrant {
        let (tx, rx) = oneshot::channel();
        self.enqueue(topic, partition, Pending::Exclusive(tx));
        WriterGrant {
            _release: rx.await.ok(),
        }
    }

    /// Drop an idle writer from the map, so a partition nobody writes to costs no memory. Only
    /// when no one else holds it (checked under the map's shard lock, which `enqueue` needs to
    /// find it): a request about to queue on it keeps it alive and gets it flushed.
    fn retire_writer(&self, key: (i64, i32), writer: &Arc<PartitionWriter>) {
        self.writers.remove_if(&key, |_, w| {
            Arc::ptr_eq(w, writer) && Arc::strong_count(w) == 2 && {
                let q = w.lock();
                q.pending.is_empty() && !q.flushing
            }
        });
    }

    /// Partitions with a writer in memory (appends queued or committing).
    pub fn active_writers(&self) -> usize {
        self.writers.len()
    }

    fn enqueue(self: &Arc<Self>, topic: &Arc<TopicMeta>, partition: i32, item: Pending) {
        let writer = self
            .writers
            .entry((topic.id, partition))
            .or_default()
            .clone();
        let start_flusher = {
            let mut q = writer.lock();
            q.pending.push_back(item);
            !std::mem::replace(&mut q.flushing, true)
        };
        if start_flusher {
            let log = self.clone();
            let topic = topic.clone();
            tokio::spawn(async move { log.flush(topic, partition, writer).await });
        }
    }

    async fn flush(
        self: Arc<Self>,
        topic: Arc<TopicMeta>,
        partition: i32,
        writer: Arc<PartitionWriter>,
    ) {
        loop {
            let next = {
                let mut q = writer.lock();
                let mut taken = Vec::new();
                let mut bytes = 0;
                let mut exclusive = None;
                while let Some(p) = q.pending.front() {
                    match p {
                        Pending::Append(a) => {
                            if !taken.is_empty()
                                && bytes + a.bytes > self.config.max_append_txn_bytes
                            {
                                break;
                            }
                            bytes += a.bytes;
                        }
                        Pending::Exclusive(_) if !taken.is_empty() => break,
                        Pending::Exclusive(_) => {}
                    }
                    match q.pending.pop_front() {
                        Some(Pending::Append(a)) => taken.push(a),
                        Some(Pending::Exclusive(grant)) => {
                            exclusive = Some(grant);
                            break;
                        }
                        None => break,
                    }
                }
                if taken.is_empty() && exclusive.is_none() {
                    q.flushing = false;
                    None
                } else {
                    Some((taken, exclusive))
                }
            };
            let Some((group, exclusive)) = next else {
                self.retire_writer((topic.id, partition), &writer);
                return;
            };
            if let Some(grant) = exclusive {
                let (release, released) = oneshot::channel::<()>();
                if grant.send(release).is_ok() {
                    // Resolves (with an error) when the holder drops its grant.
                    let _ = released.await;
                }
                continue;
            }
            let batches: Vec<&[Batch]> = group.iter().map(|p| p.batches.as_slice()).collect();
            match self.append_txn(&topic, partition, &batches).await {
                Ok((results, append_time, state, written)) => {
                    if written.is_empty() {
                        // Nothing written here: every request refused, or an earlier attempt
                        // landed unseen (commit_unknown_result); the cache may be behind.
                        self.cache.forget((topic.id, partition));
                    } else {
                        self.cache.appended(
                            (topic.id, partition),
                            written,
                            state.log_start,
                            state.next_offset,
                            state.last_stable(),
                        );
                    }
                    self.announce(topic.id, partition, state.next_offset);
                    for (p, result) in group.into_iter().zip(results) {
                        let _ = p.reply.send(result.map(|base| AppendResult {
                            base_offset: base,
                            log_append_time: append_time.unwrap_or(-1),
                            log_start_offset: state.log_start,
                        }));
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition, error = %e, "append failed");
                    // It may have committed anyway (commit_unknown_result on the last attempt).
                    self.cache.forget((topic.id, partition));
                    for p in group {
                        let _ = p.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One store transaction appending every batch of `requests`, in order. Returns, per request,
    /// its base offset or why it was refused (idempotent-producer checks), the append time used,
    /// and the partition state after.
    async fn append_txn(
        &self,
        topic: &TopicMeta,
        partition: i32,
        requests: &[&[Batch]],
    ) -> LogResult<Appended> {
        let tid = topic.id;
        let node = self.config.node_id;
        let expiration = self.config.producer_id_expiration_ms;
        let log_append_time = EffectiveConfig::new(&topic.configs).log_append_time();
        // The previous attempt: the state it started from, how many records it appended and its
        // answers, to recognise our own landed commit on a retry after commit_unknown_result.
        type Attempt = (PartitionState, i64, Vec<LogResult<i64>>);
        let previous: Mutex<Option<Attempt>> = Mutex::new(None);
        let previous = &previous;
        self.db
            .run(|tx, maybe_committed| async move {
                let (owner, state) = begin_partition_write(&tx, tid, partition, node)
                    .await?
                    .ok_or(LogError::UnknownTopic)?;
                let before = previous.lock().ok().and_then(|mut g| g.take());
                if maybe_committed.0
                    && let Some((before, appended, results)) = before
                    && appended > 0
                    && state.next_offset == before.next_offset + appended
                {
                    // The earlier attempt committed: report its answers, write nothing.
                    tracing::info!(tid, partition, "append found its earlier attempt committed");
                    return Ok((results, None, state, Vec::new()));
                }
                let now = now_ms();
                let append_time = log_append_time.then_some(now);
                let start = state;
                let mut state = state;
                let mut producers: HashMap<i64, Option<ProducerState>> = HashMap::new();
                // Producers with a transaction open in this partition (first offset), as loaded.
                let mut open: HashMap<i64, Option<i64>> = HashMap::new();
                let mut opened: Vec<(i64, i64)> = Vec::new();
                let mut written = Vec::new();
                let mut dirty: Vec<i64> = Vec::new();
                let mut results = Vec::with_capacity(requests.len());
                for request in requests {
                    // Check the request's batches first; it is appended whole or not at all.
                    let mut planned: Vec<&Batch> = Vec::with_capacity(request.len());
                    let mut duplicate_base = None;
                    let mut refused = None;
                    // Producer states as they will be after this request, batch by batch, so a
                    // request carrying several batches of one producer is checked in sequence.
                    let mut scratch: HashMap<i64, Option<ProducerState>> = HashMap::new();
                    let mut scratch_open: Vec<(i64, i64)> = Vec::new();
                    let mut next = state.next_offset;
                    for batch in request.iter() {
                        if batch.producer_id < 0 {
                            planned.push(batch);
                            next += i64::from(batch.record_count);
                            continue;
                        }
                        let pid = batch.producer_id;
                        let entry = match (scratch.get(&pid), producers.get(&pid)) {
                            (Some(e), _) | (None, Some(e)) => e.clone(),
                            (None, None) => {
                                let key = keys::producer_state(tid, partition, pid);
                                let loaded = match tx.get(&key, false).await? {
                                    Some(v) => Some(ProducerState::decode(&v)?)
                                        .filter(|s| now - s.last_ms <= expiration),
                                    None => None,
                                };
                                producers.insert(pid, loaded.clone());
                                loaded
                            }
                        };
                        let check = producer::check(entry.as_ref(), batch);
                        if check == SeqCheck::Append
                            && batch.is_transactional()
                            && !scratch_open.iter().any(|(p, _)| *p == pid)
                        {
                            let first = match open.get(&pid) {
                                Some(o) => *o,
                                None => {
                                    let o = read_open(&tx, tid, partition, pid).await?;
                                    open.insert(pid, o);
                                    o
                                }
                            };
                            if first.is_none() {
                                if let Err(e) = txn::check_in_transaction(
                                    &tx,
                                    pid,
                                    batch.producer_epoch,
                                    tid,
                                    partition,
                                )
                                .await
                                {
                                    refused = Some(e);
                                    break;
                                }
                                scratch_open.push((pid, next));
                            }
                        }
                        match check {
                            SeqCheck::Append => {
                                let mut entry = entry;
                                producer::record(&mut entry, batch, next, now);
                                scratch.insert(pid, entry);
                                planned.push(batch);
                                next += i64::from(batch.record_count);
                            }
                            SeqCheck::Duplicate(base) => {
                                duplicate_base.get_or_insert(base);
                            }
                            SeqCheck::Reject(e) => {
                                refused = Some(e);
                                break;
                            }
                        }
                    }
                    if let Some(e) = refused {
                        results.push(Err(e));
                        continue;
                    }
                    let base = state.next_offset;
                    for batch in planned {
                        written.push(write_batch(
                            &tx,
                            tid,
                            partition,
                            owner.epoch,
                            batch,
                            append_time,
                            &mut state,
                        ));
                    }
                    for (pid, entry) in scratch {
                        producers.insert(pid, entry);
                        if !dirty.contains(&pid) {
                            dirty.push(pid);
                        }
                    }
                    for (pid, first) in scratch_open {
                        open.insert(pid, Some(first));
                        opened.push((pid, first));
                        if state.first_open < 0 || first < state.first_open {
                            state.first_open = first;
                        }
                    }
                    results.push(Ok(duplicate_base.unwrap_or(base)));
                }
                for pid in dirty {
                    if let Some(Some(p)) = producers.get(&pid) {
                        tx.set(&keys::producer_state(tid, partition, pid), &p.encode());
                    }
                }
                for (pid, first) in opened {
                    tx.set(
                        &keys::open_txn(tid, partition, pid),
                        &kfdb_kv::tuple::pack(&first),
                    );
                }
                let appended = state.next_offset - start.next_offset;
                if appended > 0 {
                    tx.set(&keys::partition_state(tid, partition), &state.encode());
                }
                if let Ok(mut g) = previous.lock() {
                    *g = Some((start, appended, results.clone()));
                }
                Ok((results, append_time, state, written))
            })
            .await
    }
}

/// What every transaction that writes a partition's log does first: check the topic still exists
/// (`None` if not), claim the partition for `node` (logging a takeover), and read its state, all
/// as conflicting reads.
pub(crate) async fn begin_partition_write(
    tx: &Transaction,
    tid: i64,
    partition: i32,
    node: i32,
) -> LogResult<Option<(Owner, PartitionState)>> {
    if tx.get(&keys::topic_meta(tid), false).await?.is_none() {
        return Ok(None);
    }
    let (owner, displaced) = claim_owner(tx, &keys::partition_owner(tid, partition), node).await?;
    if let Some(o) = displaced {
        tracing::warn!(
            tid,
            partition,
            from = o.node,
            to = node,
            epoch = owner.epoch,
            "taking over partition"
        );
    }
    let state = read::partition_state(tx, tid, partition, false).await?;
    Ok(Some((owner, state)))
}

/// Read an owner key (partition or group) in the transaction, so that a change of owner conflicts,
/// and take ownership when the key is absent or names another node (epoch + 1). Returns the owner
/// now in force and the one displaced, if any.
pub(crate) async fn claim_owner(
    tx: &Transaction,
    key: &[u8],
    node: i32,
) -> LogResult<(Owner, Option<Owner>)> {
    let current = match tx.get(key, false).await? {
        Some(v) => Some(Owner::decode(&v)?),
        None => None,
    };
    match current {
        Some(o) if o.node == node => Ok((o, None)),
        other => {
            let owner = Owner {
                node,
                epoch: other.map(|o| o.epoch + 1).unwrap_or(0),
            };
            tx.set(key, &owner.encode());
            Ok((owner, other))
        }
    }
}

/// The first offset of `pid`'s open transaction in the partition, if one is open.
pub(crate) async fn read_open(
    tx: &Transaction,
    tid: i64,
    partition: i32,
    pid: i64,
) -> LogResult<Option<i64>> {
    match tx.get(&keys::open_txn(tid, partition, pid), false).await? {
        Some(v) => kfdb_kv::tuple::unpack::<i64>(&v)
            .map(Some)
            .map_err(|e| LogError::Corrupt(format!("open transaction: {e}"))),
        None => Ok(None),
    }
}

/// Write one batch at `state.next_offset`: its chunks, its index row, a time-index row when it
/// raises the partition's max timestamp; advance `state`.
pub(crate) fn write_batch(
    tx: &Transaction,
    tid: i64,
    partition: i32,
    epoch: i32,
    batch: &Batch,
    append_time: Option<i64>,
    state: &mut PartitionState,
) -> (i64, i64, Bytes) {
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
    (base, last, bytes)
}
