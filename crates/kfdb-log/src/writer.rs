//! The partition writers: dense offsets, grouped commits, one commit in flight per partition.
//!
//! Appends to a partition queue up in its writer. Whoever finds the writer idle becomes its
//! flusher: it takes everything queued (up to `max_append_txn_bytes`), appends it all in one store
//! transaction (`append.rs`), answers each request, and repeats until the queue is empty. So
//! concurrent Produce requests to one partition share one commit (and, on the embedded store, one
//! fsync), and a partition never has two commits in flight — which is what makes dense offsets
//! possible without a hot counter: only the writer advances `next_offset`.
//!
//! Transaction markers are written by the transaction coordinator, not by Produce: it takes each
//! partition's writer exclusively ([`PartitionWriters::acquire`]: a place in the same queue, so
//! appends queued before it commit first and appends queued after it wait), writes its markers,
//! and releases the writers.
//!
//! A writer appends only to a partition this broker leads: it claims the partition first
//! (`leadership.rs`), and the append transaction refuses to write if the owner key names another
//! broker by then (`NotLeader`, answered NOT_LEADER_OR_FOLLOWER).
//!
//! A flusher that fails (a panic in the append path) answers every request it held or that was
//! queued behind it with an error and leaves the writer idle, so the next append starts afresh
//! instead of waiting forever. A writer with nothing queued is dropped, so an idle partition
//! costs no memory.

use crate::append::{self, AppendSettings, Condition};
use crate::batch::Batch;
use crate::config::EffectiveConfig;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keyindex::{self, IndexedRecord};
use crate::leadership::Leadership;
use crate::tails::Tails;
use crate::values::TopicMeta;
use dashmap::DashMap;
use kfdb_kv::Database;
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

/// Settings of the writers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterSettings {
    /// The node id this broker writes as.
    pub node: i32,
    /// Upper bound on record bytes one append transaction carries.
    pub max_txn_bytes: usize,
    /// `producer.id.expiration.ms`.
    pub producer_expiration_ms: i64,
}

struct PendingAppend {
    batches: Vec<Batch>,
    /// Each batch's records as the key index sees them, when the topic keeps one.
    records: Option<Vec<Vec<IndexedRecord>>>,
    /// What must hold for the append to happen (kfdb's conditional append).
    condition: Option<Condition>,
    bytes: usize,
    reply: oneshot::Sender<LogResult<AppendResult>>,
}

/// A place in a partition writer's queue.
enum Pending {
    Append(PendingAppend),
    /// Exclusive use of the writer: the flusher hands over a release handle and waits for it.
    Exclusive(oneshot::Sender<oneshot::Sender<()>>),
}

/// What a flusher takes from its queue next.
enum Next {
    /// Appends for one store transaction.
    Appends(Vec<PendingAppend>),
    /// A request for exclusive use.
    Exclusive(oneshot::Sender<oneshot::Sender<()>>),
}

/// Exclusive use of one partition's writer (see [`PartitionWriters::acquire`]); dropping it
/// releases.
pub(crate) struct WriterGrant {
    _release: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    flushing: bool,
}

#[derive(Default)]
struct Writer {
    queue: Mutex<Queue>,
}

impl Writer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Kafka's CreateTime check (KIP-937): a batch's first and largest timestamps lie within
/// `before` ms before and `after` ms after `now` (-1, "no timestamp", is not checked).
fn check_timestamps(batches: &[Batch], now: i64, before: i64, after: i64) -> LogResult<()> {
    for b in batches {
        for ts in [b.base_timestamp, b.max_timestamp] {
            if ts == -1 {
                continue;
            }
            if ts < now.saturating_sub(before) || ts > now.saturating_add(after) {
                return Err(LogError::InvalidTimestamp(format!(
                    "timestamp {ts} is out of range: the broker's time is {now}, \
                     message.timestamp.before.max.ms {before}, message.timestamp.after.max.ms {after}"
                )));
            }
        }
    }
    Ok(())
}

/// Makes a flusher that stops other than by emptying its queue (a panic) leave the writer idle,
/// answering what was queued behind it.
struct FlushGuard<'a> {
    writer: &'a Writer,
    done: bool,
}

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let abandoned: Vec<Pending> = {
            let mut q = self.writer.lock();
            q.flushing = false;
            q.pending.drain(..).collect()
        };
        tracing::error!(
            queued = abandoned.len(),
            "partition writer failed; answering its queued appends with an error"
        );
        for p in abandoned {
            if let Pending::Append(a) = p {
                let _ = a.reply.send(Err(LogError::Abandoned(
                    "the partition writer failed".into(),
                )));
            }
            // An exclusive waiter sees its sender dropped and retries its own way.
        }
    }
}

/// See the module documentation.
pub struct PartitionWriters {
    db: Database,
    settings: WriterSettings,
    tails: Arc<Tails>,
    leadership: Arc<Leadership>,
    writers: DashMap<PartitionId, Arc<Writer>>,
}

#[cfg(test)]
pub(crate) static PANIC_NEXT_FLUSH: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

impl PartitionWriters {
    pub(crate) fn new(
        db: Database,
        settings: WriterSettings,
        tails: Arc<Tails>,
        leadership: Arc<Leadership>,
    ) -> Self {
        Self {
            db,
            settings,
            tails,
            leadership,
            writers: DashMap::new(),
        }
    }

    /// Append validated batches to a partition; returns once they are durable.
    pub async fn append(
        self: &Arc<Self>,
        topic: &Arc<TopicMeta>,
        partition: i32,
        batches: Vec<Batch>,
    ) -> LogResult<AppendResult> {
        self.enqueue(topic, partition, batches)?.await
    }

    /// Append only if `condition` holds when the append's own store transaction runs (exact with
    /// any number of brokers); else `ConditionFailed` with the current value, nothing written.
    pub async fn append_if(
        self: &Arc<Self>,
        topic: &Arc<TopicMeta>,
        partition: i32,
        batches: Vec<Batch>,
        condition: Condition,
    ) -> LogResult<AppendResult> {
        if matches!(condition, Condition::KeyOffset { .. })
            && !EffectiveConfig::new(&topic.configs).indexes_keys()
        {
            return Err(LogError::InvalidRequest(format!(
                "topic {} keeps no key index, so an append cannot expect a key's offset",
                topic.name
            )));
        }
        self.enqueue_with(topic, partition, batches, Some(condition))?
            .await
    }

    /// Queue an append on the partition's writer now and return a future for its outcome. Appends
    /// queued one after another are appended in that order (a connection's pipelined Produce
    /// requests keep their order) and may share one commit.
    pub fn enqueue(
        self: &Arc<Self>,
        topic: &Arc<TopicMeta>,
        partition: i32,
        batches: Vec<Batch>,
    ) -> LogResult<impl std::future::Future<Output = LogResult<AppendResult>> + Send + 'static>
    {
        self.enqueue_with(topic, partition, batches, None)
    }

    fn enqueue_with(
        self: &Arc<Self>,
        topic: &Arc<TopicMeta>,
        partition: i32,
        batches: Vec<Batch>,
        condition: Option<Condition>,
    ) -> LogResult<impl std::future::Future<Output = LogResult<AppendResult>> + Send + 'static>
    {
        let p = topic
            .partition(partition)
            .ok_or(LogError::UnknownPartition)?;
        let config = EffectiveConfig::new(&topic.configs);
        let max = config.max_message_bytes();
        if let Some(b) = batches.iter().find(|b| b.size() as i64 > max) {
            return Err(LogError::MessageTooLarge(format!(
                "batch of {} bytes, max.message.bytes is {max}",
                b.size()
            )));
        }
        if !config.log_append_time() {
            let (before, after) = config.timestamp_bounds_ms();
            check_timestamps(&batches, crate::clock::now_ms(), before, after)?;
        }
        // The key index needs each record's key (decoded here, off the partition's writer); a
        // compacted topic keeps the latest record of each key, so a record needs one.
        let records = if config.indexes_keys() {
            let mut all = Vec::with_capacity(batches.len());
            for b in &batches {
                let records = keyindex::records_of(b)?;
                if config.compacts()
                    && let Some(index) = keyindex::first_keyless(&records)
                {
                    return Err(LogError::InvalidRecord {
                        index,
                        message: format!(
                            "record {index} of the batch has no key, which compacted topic {} \
                             (partition {partition}) requires",
                            topic.name
                        ),
                    });
                }
                all.push(records);
            }
            Some(all)
        } else {
            // Kafka reads every batch's records before appending it; so does kfdb (with a
            // bound on decompression), so that no consumer is served a batch it cannot read.
            for b in &batches {
                crate::records::validate(b)?;
            }
            None
        };
        let bytes = batches.iter().map(Batch::size).sum();
        let (tx, rx) = oneshot::channel();
        self.push(
            topic,
            p,
            Pending::Append(PendingAppend {
                batches,
                records,
                condition,
                bytes,
                reply: tx,
            }),
        );
        Ok(async move {
            rx.await.unwrap_or_else(|_| {
                Err(LogError::Abandoned(
                    "the partition writer stopped before answering".into(),
                ))
            })
        })
    }

    /// Wait for exclusive use of a partition's writer: appends queued before this call commit
    /// first, later ones wait until the grant is dropped.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        topic: &Arc<TopicMeta>,
        p: PartitionId,
    ) -> WriterGrant {
        let (tx, rx) = oneshot::channel();
        self.push(topic, p, Pending::Exclusive(tx));
        WriterGrant {
            _release: rx.await.ok(),
        }
    }

    /// Partitions with a writer in memory (appends queued or committing).
    pub fn active(&self) -> usize {
        self.writers.len()
    }

    /// Forget the writers of a deleted topic (their flushers finish with an unknown topic).
    pub(crate) fn forget_topic(&self, tid: i64) {
        self.writers.retain(|p, _| p.tid != tid);
    }

    /// Drop an idle writer from the map, so a partition nobody writes to costs no memory. Only
    /// when no one else holds it (checked under the map's shard lock, which `push` needs to find
    /// it): a request about to queue on it keeps it alive and gets it flushed.
    fn retire(&self, p: PartitionId, writer: &Arc<Writer>) {
        self.writers.remove_if(&p, |_, w| {
            Arc::ptr_eq(w, writer) && Arc::strong_count(w) == 2 && {
                let q = w.lock();
                q.pending.is_empty() && !q.flushing
            }
        });
    }

    fn push(self: &Arc<Self>, topic: &Arc<TopicMeta>, p: PartitionId, item: Pending) {
        let writer = self.writers.entry(p).or_default().clone();
        let start_flusher = {
            let mut q = writer.lock();
            q.pending.push_back(item);
            !std::mem::replace(&mut q.flushing, true)
        };
        if start_flusher {
            let writers = self.clone();
            let topic = topic.clone();
            tokio::spawn(async move { writers.flush(topic, p, writer).await });
        }
    }

    /// Take what is queued: appends up to the byte bound, or one exclusive grant; `None` (and
    /// the writer marked idle) when nothing is.
    fn take(&self, writer: &Writer) -> Option<Next> {
        let mut q = writer.lock();
        let mut taken = Vec::new();
        let mut bytes = 0;
        while let Some(p) = q.pending.front() {
            match p {
                Pending::Append(a) => {
                    if !taken.is_empty() && bytes + a.bytes > self.settings.max_txn_bytes {
                        break;
                    }
                    bytes += a.bytes;
                }
                Pending::Exclusive(_) if !taken.is_empty() => break,
                Pending::Exclusive(_) => {}
            }
            match q.pending.pop_front() {
                Some(Pending::Append(a)) => taken.push(a),
                Some(Pending::Exclusive(grant)) => return Some(Next::Exclusive(grant)),
                None => break,
            }
        }
        if taken.is_empty() {
            q.flushing = false;
            None
        } else {
            Some(Next::Appends(taken))
        }
    }

    async fn flush(self: Arc<Self>, topic: Arc<TopicMeta>, p: PartitionId, writer: Arc<Writer>) {
        let mut guard = FlushGuard {
            writer: &writer,
            done: false,
        };
        let config = EffectiveConfig::new(&topic.configs);
        let settings = AppendSettings {
            node: self.settings.node,
            producer_expiration_ms: self.settings.producer_expiration_ms,
            log_append_time: config.log_append_time(),
        };
        let compacts = config.compacts();
        loop {
            let group = match self.take(&writer) {
                None => {
                    guard.done = true;
                    drop(guard);
                    self.retire(p, &writer);
                    return;
                }
                Some(Next::Exclusive(grant)) => {
                    let (release, released) = oneshot::channel::<()>();
                    if grant.send(release).is_ok() {
                        // Resolves (with an error) when the holder drops its grant.
                        let _ = released.await;
                    }
                    continue;
                }
                Some(Next::Appends(group)) => group,
            };
            #[cfg(test)]
            if PANIC_NEXT_FLUSH.swap(false, std::sync::atomic::Ordering::SeqCst) {
                panic!("injected writer failure");
            }
            let requests: Vec<append::Request<'_>> = group
                .iter()
                .map(|a| append::Request {
                    batches: &a.batches,
                    records: a.records.as_deref(),
                    condition: a.condition.as_ref(),
                })
                .collect();
            // This broker must hold the partition (a no-op once claimed).
            let appended = match self.leadership.claim(p).await {
                Ok(_) => append::append(&self.db, p, settings, &requests).await,
                Err(e) => Err(e),
            };
            if matches!(appended, Err(LogError::NotLeader)) {
                // Another broker took the partition over: no claim, no cached tail here.
                self.leadership.forget(p);
                self.tails.unsure(p, None);
            }
            match appended {
                Ok(done) => {
                    if done.written.is_empty() {
                        // Nothing written here: every request refused, or an earlier attempt
                        // landed unseen (commit_unknown_result); the cache may be behind.
                        self.tails.unsure(p, Some(done.state.next_offset));
                    } else {
                        self.tails.appended(p, done.written, &done.state);
                        if compacts {
                            self.tails.mark_dirty(p);
                        }
                    }
                    for (a, result) in group.into_iter().zip(done.results) {
                        let _ = a.reply.send(result.map(|base| AppendResult {
                            base_offset: base,
                            log_append_time: done.append_time.unwrap_or(-1),
                            log_start_offset: done.state.log_start,
                        }));
                    }
                }
                Err(e) => {
                    if !matches!(e, LogError::NotLeader) {
                        tracing::warn!(topic = %topic.name, partition = p.partition, error = %e, "append failed");
                    }
                    // It may have committed anyway (commit_unknown_result on the last attempt).
                    self.tails.unsure(p, None);
                    for a in group {
                        let _ = a.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::parse_batches;
    use crate::batch::tests::batch;
    use crate::{Log, LogConfig, NewTopic};
    use bytes::Bytes;

    #[tokio::test]
    async fn a_failed_flusher_answers_its_queue_and_leaves_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_embedded(dir.path(), Default::default()).unwrap();
        let log = Log::open(db, LogConfig::default()).await.unwrap();
        let spec = NewTopic {
            name: "t".into(),
            partitions: 1,
            replication_factor: -1,
            configs: Vec::new(),
        };
        let t = log
            .topics()
            .create(vec![spec], false)
            .await
            .remove(0)
            .unwrap();
        let records = || parse_batches(&Bytes::from(batch(3, 1, 1))).unwrap();
        PANIC_NEXT_FLUSH.store(true, std::sync::atomic::Ordering::SeqCst);
        let failed = log.writers().append(&t, 0, records()).await;
        assert!(
            matches!(failed, Err(LogError::Abandoned(_))),
            "the request held by the failed flusher is answered: {failed:?}"
        );
        // The writer is idle again: the next append starts a new flusher and lands at offset 0
        // (the failed one never reached the store).
        let ok = log.writers().append(&t, 0, records()).await.unwrap();
        assert_eq!(ok.base_offset, 0);
        let next = log.writers().append(&t, 0, records()).await.unwrap();
        assert_eq!(next.base_offset, 3);
    }
}
