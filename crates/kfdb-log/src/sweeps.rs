//! The background sweeps, each a loop on its own interval: retention
//! (`log.retention.check.interval.ms`), compaction (`log.cleaner.backoff.ms` for the partitions
//! written since, and every compacted partition this broker leads on the first pass and once per
//! retention interval), transaction timeouts
//! (`transaction.abort.timed.out.transaction.cleanup.interval.ms`), transactional-id expiry
//! (`transaction.remove.expired.transaction.cleanup.interval.ms`) and producer-state expiry
//! (`producer.id.expiration.check.interval.ms`). A pass that did something is logged with its
//! count; a failed pass is logged and the next one runs on schedule.

use crate::compaction::Compactor;
use crate::error::LogResult;
use crate::producers::ProducerStates;
use crate::retention::Retention;
use crate::txn::TxnCoordinator;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often each sweep runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SweepIntervals {
    pub retention: Duration,
    pub compaction: Duration,
    pub txn_timeouts: Duration,
    pub txn_id_expiry: Duration,
    pub producer_expiry: Duration,
}

/// Start every sweep on the current tokio runtime; the caller owns (and stops) the tasks.
pub(crate) fn spawn(
    every: SweepIntervals,
    retention: Arc<Retention>,
    compactor: Arc<Compactor>,
    txns: Arc<TxnCoordinator>,
    producers: Arc<ProducerStates>,
) -> Vec<JoinHandle<()>> {
    let txns2 = txns.clone();
    let full_every = (every.retention.as_millis() / every.compaction.as_millis().max(1)).max(1);
    let mut compactions: u128 = 0;
    vec![
        tokio::spawn(run_every(
            every.retention,
            Some("retention deleted batches"),
            "retention pass failed",
            move || {
                let r = retention.clone();
                async move { r.pass().await }
            },
        )),
        tokio::spawn(run_every(
            every.compaction,
            Some("compacted partitions"),
            "compaction pass failed",
            move || {
                let c = compactor.clone();
                let all = compactions.is_multiple_of(full_every);
                compactions += 1;
                async move { c.pass(all).await }
            },
        )),
        // Each timed-out transaction is logged by the sweep itself.
        tokio::spawn(run_every(
            every.txn_timeouts,
            None,
            "transaction timeout sweep failed",
            move || {
                let t = txns.clone();
                async move { t.abort_expired().await }
            },
        )),
        tokio::spawn(run_every(
            every.txn_id_expiry,
            Some("expired idle transactional ids"),
            "transactional id expiry sweep failed",
            move || {
                let t = txns2.clone();
                async move { t.expire_ids().await }
            },
        )),
        tokio::spawn(run_every(
            every.producer_expiry,
            Some("expired idle producer states"),
            "producer expiry sweep failed",
            move || {
                let p = producers.clone();
                async move { p.expire().await }
            },
        )),
    ]
}

/// Run `pass` every `interval` (the first one interval from now) until the task is dropped. A
/// pass that did something is logged as `done` (when given) with its count; a failed one as
/// `failed`, and the next one runs on schedule.
async fn run_every<F, Fut>(
    interval: Duration,
    done: Option<&'static str>,
    failed: &'static str,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = LogResult<usize>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        match (pass().await, done) {
            (Ok(n), Some(done)) if n > 0 => tracing::info!(count = n, "{done}"),
            (Ok(_), _) => {}
            (Err(e), _) => tracing::warn!(error = %e, "{failed}"),
        }
    }
}
