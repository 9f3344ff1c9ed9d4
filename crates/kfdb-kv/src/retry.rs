//! The retry loop ([`crate::Database::run`]) and the batched range stream, written once over the
//! backend-neutral [`Transaction`] so both backends retry and page identically.

use crate::error::{KvError, TxError};
use crate::types::{CommitInfo, KeySelector, KeyValue, MaybeCommitted, RangeOption};
use crate::{Database, KvResult, Transaction};
use futures::Stream;
use std::future::Future;
use std::time::{Duration, Instant};

/// Settings of the retry loop.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Most attempts after the first; the last retryable error is returned after that.
    pub retry_limit: u32,
    /// Whole-loop deadline; past it the loop returns `transaction_timed_out` (1031).
    pub timeout: Duration,
    /// First backoff after a retryable error; doubles per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Ceiling for the backoff (FoundationDB's default is 1 s).
    pub max_backoff: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            retry_limit: 100,
            timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_secs(1),
        }
    }
}

pub(crate) async fn run<T, E, F, Fut>(db: &Database, mut f: F) -> Result<(T, CommitInfo), E>
where
    F: FnMut(Transaction, MaybeCommitted) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: TxError,
{
    let options = db.run_options();
    let started = Instant::now();
    let mut maybe_committed = false;
    let mut attempt: u32 = 0;
    loop {
        let tx = db.create_transaction()?;
        let outcome: Result<(T, CommitInfo), E> = async {
            let value = f(tx.clone(), MaybeCommitted(maybe_committed)).await?;
            let timer = db.commit_seconds().start_timer();
            let info = tx.commit().await;
            timer.observe_duration();
            Ok((value, info?))
        }
        .await;
        let err = match outcome {
            Ok(done) => return Ok(done),
            Err(err) => err,
        };
        let retryable = err.kv_error().is_some_and(KvError::is_retryable);
        if !retryable {
            tx.cancel();
            return Err(err);
        }
        if attempt >= options.retry_limit {
            tracing::debug!(attempt, "retry limit reached");
            return Err(err);
        }
        if started.elapsed() >= options.timeout {
            return Err(KvError::new(
                KvError::TRANSACTION_TIMED_OUT,
                format!("retry loop ran past {:?}", options.timeout),
            )
            .into());
        }
        maybe_committed |= err.kv_error().is_some_and(KvError::is_maybe_committed);
        db.count_retry();
        tokio::time::sleep(backoff(options, attempt)).await;
        attempt += 1;
    }
}

/// Exponential backoff with jitter in `[d/2, d]`, so colliding writers spread out.
fn backoff(options: &RunOptions, attempt: u32) -> Duration {
    let exp = options
        .initial_backoff
        .saturating_mul(1u32 << attempt.min(20))
        .min(options.max_backoff);
    let half = exp / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Rows per batch when the caller gave no byte target.
const DEFAULT_BATCH_ROWS: usize = 1_000;

struct Cursor {
    tx: Transaction,
    range: RangeOption,
    snapshot: bool,
    remaining: Option<usize>,
    done: bool,
}

pub(crate) fn range_stream(
    tx: Transaction,
    range: RangeOption,
    snapshot: bool,
) -> impl Stream<Item = KvResult<Vec<KeyValue>>> + Send + 'static {
    let remaining = range.limit;
    let cursor = Cursor {
        tx,
        range,
        snapshot,
        remaining,
        done: false,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        if c.done || c.remaining == Some(0) {
            return None;
        }
        let mut batch = c.range.clone();
        batch.limit = Some(
            c.remaining
                .unwrap_or(DEFAULT_BATCH_ROWS)
                .min(DEFAULT_BATCH_ROWS),
        );
        match c.tx.get_range(&batch, c.snapshot).await {
            Err(e) => {
                c.done = true;
                Some((Err(e), c))
            }
            Ok(result) => {
                let n = result.kvs.len();
                if let Some(r) = c.remaining.as_mut() {
                    *r -= n.min(*r);
                }
                match result.kvs.last() {
                    Some(last) if result.more => {
                        if c.range.reverse {
                            c.range.end = KeySelector::first_greater_or_equal(last.key.to_vec());
                        } else {
                            c.range.begin = KeySelector::first_greater_than(last.key.to_vec());
                        }
                    }
                    _ => c.done = true,
                }
                if n == 0 {
                    return None;
                }
                Some((Ok(result.kvs), c))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let o = RunOptions::default();
        for attempt in 0..40 {
            let d = backoff(&o, attempt);
            assert!(d <= o.max_backoff, "{attempt}: {d:?}");
        }
        assert!(backoff(&o, 0) <= Duration::from_millis(1));
        assert!(backoff(&o, 30) >= o.max_backoff / 2);
    }
}
