//! The commit pipeline: one thread that owns every write to the embedded store.
//!
//! It takes all commit requests waiting in its queue as one group, gives the group one commit
//! version, and for each transaction in order: checks its age and read conflicts against the
//! history (`resolver`), resolves versionstamps (version ++ position in the group), applies its
//! mutations as one atomic fjall batch and records its writes. Then one fsync makes the whole group
//! durable, a new read view is published, watches fire, and only then is anyone answered. Many
//! concurrent committers therefore share one fsync.

use super::resolver::{ConflictHistory, KeyRange};
use super::{Core, META_VERSION_KEY, ReadView};
use crate::atomic;
use crate::error::{KvError, KvResult};
use crate::types::{CommitInfo, MAX_TRANSACTION_AGE, MutationType, key_after};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// One buffered write, in the order the transaction issued it.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    Set(Bytes, Bytes),
    Clear(Bytes),
    ClearRange(Bytes, Bytes),
    /// An atomic operation, including the two versionstamp operations.
    Atomic(Bytes, Bytes, MutationType),
}

pub(crate) struct CommitRequest {
    /// Read version and when it was taken; `None` for a transaction that never read.
    pub(crate) read: Option<(u64, Instant)>,
    pub(crate) read_conflicts: Vec<KeyRange>,
    pub(crate) write_conflicts: Vec<KeyRange>,
    pub(crate) mutations: Vec<Mutation>,
    pub(crate) reply: oneshot::Sender<KvResult<CommitInfo>>,
}

pub(crate) enum PipelineMsg {
    Commit(CommitRequest),
}

/// How often an idle pipeline prunes its conflict history.
const PRUNE_WHEN_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// FoundationDB-like versions: about one million per second, strictly increasing, also across
/// restarts (the last one is stored with every commit).
fn next_version(last: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    now.max(last + 1)
}

fn versionstamp(version: u64, order: u16) -> [u8; 10] {
    let mut s = [0u8; 10];
    s[..8].copy_from_slice(&version.to_be_bytes());
    s[8..].copy_from_slice(&order.to_be_bytes());
    s
}

pub(crate) fn run(core: Arc<Core>, rx: Receiver<PipelineMsg>) {
    let start = core.current_view().version;
    let mut history = ConflictHistory::new(MAX_TRANSACTION_AGE, start);
    let mut last_version = start;
    loop {
        // Idle: still forget history past the window, so the memory a burst of commits used for
        // conflict checks is given back without waiting for the next commit.
        let first = match rx.recv_timeout(PRUNE_WHEN_IDLE) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                history.prune(Instant::now());
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group = vec![first];
        while group.len() < core.options.max_group {
            match rx.try_recv() {
                Ok(m) => group.push(m),
                Err(_) => break,
            }
        }
        let version = next_version(last_version);
        let now = Instant::now();
        history.prune(now);
        let watching = !lock_watches(&core).is_empty();
        let mut changed: Vec<(Vec<u8>, Option<Bytes>)> = Vec::new();
        let mut answers = Vec::with_capacity(group.len());
        let mut wrote = false;
        for (order, PipelineMsg::Commit(req)) in group.into_iter().enumerate() {
            let stamp = versionstamp(version, order as u16);
            let result = commit_one(&core, &mut history, &req, version, stamp, now).map(
                |(overlay, writes)| {
                    history.record(version, now, &writes);
                    wrote = true;
                    if watching {
                        changed.extend(overlay);
                    }
                    CommitInfo {
                        version: version as i64,
                        versionstamp: Some(stamp),
                    }
                },
            );
            match &result {
                Ok(_) => core.stats.commits.fetch_add(1, Ordering::Relaxed),
                Err(e) if e.code() == KvError::NOT_COMMITTED => {
                    core.stats.conflicts.fetch_add(1, Ordering::Relaxed)
                }
                Err(_) => 0,
            };
            answers.push((req.reply, result));
        }
        core.stats.groups.fetch_add(1, Ordering::Relaxed);
        if wrote {
            let durable = if core.options.fsync {
                core.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                // fdatasync: the journal's data and the block allocations needed to read it
                // back; skips the inode's timestamps, which cost a second write per group.
                core.db.persist(fjall::PersistMode::SyncData)
            } else {
                Ok(())
            };
            if let Err(e) = durable {
                tracing::error!(error = %e, "fsync of commit group failed; store is now read-only");
                core.poisoned.store(true, Ordering::SeqCst);
                for (reply, result) in answers {
                    let r = result.and(Err(KvError::new(KvError::IO_ERROR, format!("fsync: {e}"))));
                    let _ = reply.send(r);
                }
                continue;
            }
            last_version = version;
            publish(&core, version);
            if watching {
                let mut w = lock_watches(&core);
                for (k, v) in &changed {
                    w.changed(k, v.as_deref());
                }
            }
        }
        for (reply, result) in answers {
            let _ = reply.send(result);
        }
    }
}

fn lock_watches(core: &Core) -> std::sync::MutexGuard<'_, super::watches::WatchRegistry> {
    match core.watches.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn publish(core: &Core, version: u64) {
    let view = ReadView {
        version,
        snapshot: core.db.snapshot(),
        keyspace: core.data.clone(),
    };
    match core.read_view.write() {
        Ok(mut g) => *g = view,
        Err(p) => *p.into_inner() = view,
    }
}

type Overlay = BTreeMap<Vec<u8>, Option<Bytes>>;

/// Resolve and apply one transaction (not yet durable). Returns the final value of every key it
/// changed and the ranges it wrote.
fn commit_one(
    core: &Core,
    history: &mut ConflictHistory,
    req: &CommitRequest,
    version: u64,
    stamp: [u8; 10],
    now: Instant,
) -> KvResult<(Overlay, Vec<KeyRange>)> {
    if core.poisoned.load(Ordering::SeqCst) {
        return Err(KvError::new(
            KvError::IO_ERROR,
            "store failed earlier; restart kfdb",
        ));
    }
    if let Some((rv, at)) = req.read {
        if history.too_old(rv) || now.duration_since(at) > MAX_TRANSACTION_AGE {
            return Err(KvError::new(
                KvError::TRANSACTION_TOO_OLD,
                "read version older than 5 s",
            ));
        }
        if history.conflicts(rv, &req.read_conflicts) {
            return Err(KvError::new(KvError::NOT_COMMITTED, "read conflict"));
        }
    }
    if core
        .injected_conflicts
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(KvError::new(KvError::NOT_COMMITTED, "injected conflict"));
    }
    let mut writes = req.write_conflicts.clone();
    let overlay = build_overlay(core, &req.mutations, &stamp, &mut writes)?;
    let mut batch = core.db.batch();
    for (k, v) in &overlay {
        match v {
            Some(v) => batch.insert(&core.data, k.clone(), v.clone()),
            None => batch.remove(&core.data, k.clone()),
        }
    }
    batch.insert(&core.meta, META_VERSION_KEY, version.to_be_bytes().to_vec());
    batch.commit().map_err(|e| {
        core.poisoned.store(true, Ordering::SeqCst);
        tracing::error!(error = %e, "write to store failed; store is now read-only");
        KvError::new(KvError::IO_ERROR, format!("write batch: {e}"))
    })?;
    Ok((overlay, writes))
}

/// Fold a transaction's mutations, in order, into the final value of each key it touches.
fn build_overlay(
    core: &Core,
    mutations: &[Mutation],
    stamp: &[u8; 10],
    writes: &mut Vec<KeyRange>,
) -> KvResult<Overlay> {
    let io = |e: fjall::Error| KvError::new(KvError::IO_ERROR, format!("read: {e}"));
    let mut overlay = Overlay::new();
    for m in mutations {
        match m {
            Mutation::Set(k, v) => {
                overlay.insert(k.to_vec(), Some(v.clone()));
            }
            Mutation::Clear(k) => {
                overlay.insert(k.to_vec(), None);
            }
            Mutation::ClearRange(b, e) => {
                for (_, v) in overlay.range_mut(b.to_vec()..e.to_vec()) {
                    *v = None;
                }
                for guard in core.data.range(b.as_ref()..e.as_ref()) {
                    let key = guard.key().map_err(io)?;
                    overlay.entry(key.to_vec()).or_insert(None);
                }
            }
            Mutation::Atomic(k, template, MutationType::SetVersionstampedKey) => {
                let key = atomic::place_versionstamp(k, stamp)?;
                writes.push((key.clone(), key_after(&key)));
                overlay.insert(key, Some(template.clone()));
            }
            Mutation::Atomic(k, template, MutationType::SetVersionstampedValue) => {
                let value = atomic::place_versionstamp(template, stamp)?;
                overlay.insert(k.to_vec(), Some(Bytes::from(value)));
            }
            Mutation::Atomic(k, param, op) => {
                let current = match overlay.get(k.as_ref()) {
                    Some(v) => v.clone(),
                    None => core.data.get(k.as_ref()).map_err(io)?.map(Bytes::from),
                };
                let new = atomic::apply(*op, current.as_deref(), param).map(Bytes::from);
                overlay.insert(k.to_vec(), new);
            }
        }
    }
    Ok(overlay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase_even_if_the_clock_does_not() {
        let far_future = u64::MAX / 2;
        assert_eq!(next_version(far_future), far_future + 1);
        let v = next_version(0);
        assert!(
            v > 1_600_000_000_000_000,
            "versions follow wall-clock micros: {v}"
        );
    }

    #[test]
    fn versionstamps_order_by_version_then_position() {
        assert!(versionstamp(5, 1) < versionstamp(5, 2));
        assert!(versionstamp(5, 65535) < versionstamp(6, 0));
    }
}
