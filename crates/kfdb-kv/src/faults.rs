//! Fault injection for tests (cargo feature `faults`; not compiled otherwise).
//!
//! A [`FaultPlan`] wraps either backend: every read and every commit of a [`crate::Transaction`]
//! first asks the plan whether to fail, on a seeded random schedule and at fixed outage windows:
//!
//! - commits: `commit_unknown_result` after the commit landed and without it landing,
//!   `not_committed`, `io_error` (not committed), a stall of `stall_ms` before committing;
//! - reads: `transaction_too_old`, `io_error`, a stall;
//! - outages (`outage=START+LENGTH`, seconds after the store opened): every read and commit
//!   waits up to a second and then fails with `transaction_timed_out` ("store unavailable") until
//!   the window ends, as FoundationDB does when its cluster is down and a transaction timeout is
//!   set; nothing is written during the window.
//!
//! The plan is read from a spec string (the `KFDB_FAULTS` environment variable of `kfdb serve`):
//! `seed=7,commit_unknown_landed=0.02,commit_unknown_lost=0.02,not_committed=0.02,too_old=0.01,
//! io_error=0.005,stall=0.002,stall_ms=2000,outage=20+8`. Probabilities are per operation. The
//! schedule is seeded, but which transaction draws which number depends on task timing.

use crate::error::{KvError, KvResult};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a spec asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Seed of the random schedule.
    pub seed: u64,
    /// Per commit: commit, then report `commit_unknown_result`.
    pub commit_unknown_landed: f64,
    /// Per commit: report `commit_unknown_result` without committing.
    pub commit_unknown_lost: f64,
    /// Per commit: report `not_committed` without committing.
    pub not_committed: f64,
    /// Per read: report `transaction_too_old`.
    pub too_old: f64,
    /// Per read or commit: report `io_error` (a commit does not land).
    pub io_error: f64,
    /// Per read or commit: wait `stall` first.
    pub stall: f64,
    /// How long a stall lasts.
    pub stall_time: Duration,
    /// Windows `(start, length)` after opening during which the store is unavailable.
    pub outages: Vec<(Duration, Duration)>,
}

/// The kinds of fault, in the order [`Faults::counts`] reports them.
pub const KINDS: [&str; 7] = [
    "commit_unknown_landed",
    "commit_unknown_lost",
    "not_committed",
    "too_old",
    "io_error",
    "stall",
    "unavailable",
];

impl FaultPlan {
    /// Parse `key=value,...` (see the module documentation).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut plan = FaultPlan {
            stall_time: Duration::from_secs(2),
            ..Default::default()
        };
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item}: expected key=value"))?;
            let rate = || -> Result<f64, String> {
                let r: f64 = value
                    .parse()
                    .map_err(|_| format!("{key}: {value} is not a number"))?;
                if (0.0..=1.0).contains(&r) {
                    Ok(r)
                } else {
                    Err(format!("{key}: {value} is not a probability in [0, 1]"))
                }
            };
            match key {
                "seed" => plan.seed = value.parse().map_err(|_| format!("seed: {value}"))?,
                "commit_unknown_landed" => plan.commit_unknown_landed = rate()?,
                "commit_unknown_lost" => plan.commit_unknown_lost = rate()?,
                "not_committed" => plan.not_committed = rate()?,
                "too_old" => plan.too_old = rate()?,
                "io_error" => plan.io_error = rate()?,
                "stall" => plan.stall = rate()?,
                "stall_ms" => {
                    let ms: u64 = value.parse().map_err(|_| format!("stall_ms: {value}"))?;
                    plan.stall_time = Duration::from_millis(ms);
                }
                "outage" => {
                    let (start, length) = value
                        .split_once('+')
                        .ok_or_else(|| format!("outage: {value}: expected START+LENGTH"))?;
                    let secs = |s: &str| -> Result<Duration, String> {
                        s.parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite() && *v >= 0.0)
                            .map(Duration::from_secs_f64)
                            .ok_or_else(|| format!("outage: {s} is not a number of seconds"))
                    };
                    plan.outages.push((secs(start)?, secs(length)?));
                }
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(plan)
    }
}

/// What a commit should do.
pub(crate) enum CommitFault {
    /// Commit normally.
    None,
    /// Commit, then report this error.
    AfterCommit(KvError),
}

/// A plan in effect: its random source, its start and how often each fault fired.
pub(crate) struct Faults {
    plan: FaultPlan,
    rng: Mutex<StdRng>,
    opened: Instant,
    fired: [AtomicU64; KINDS.len()],
}

impl Faults {
    pub(crate) fn new(plan: FaultPlan) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(plan.seed)),
            plan,
            opened: Instant::now(),
            fired: Default::default(),
        }
    }

    /// How often each kind of [`KINDS`] fired.
    pub(crate) fn counts(&self) -> Vec<(&'static str, u64)> {
        KINDS
            .iter()
            .zip(&self.fired)
            .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
            .collect()
    }

    fn fire(&self, kind: usize, code: i32) -> KvError {
        self.fired[kind].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(fault = KINDS[kind], "injecting a store fault");
        KvError::new(code, format!("injected fault: {}", KINDS[kind]))
    }

    fn draw(&self) -> f64 {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random::<f64>()
    }

    /// The end of the outage window `now` falls in, if any.
    fn outage_end(&self) -> Option<Instant> {
        let now = self.opened.elapsed();
        self.plan
            .outages
            .iter()
            .find(|(start, len)| now >= *start && now < *start + *len)
            .map(|(start, len)| self.opened + *start + *len)
    }

    /// During an outage: wait up to a second, then fail unless the window ended meanwhile.
    async fn unavailable(&self) -> KvResult<()> {
        let Some(end) = self.outage_end() else {
            return Ok(());
        };
        let wait = end.saturating_duration_since(Instant::now());
        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
        if Instant::now() < end {
            return Err(self.fire(6, KvError::TRANSACTION_TIMED_OUT));
        }
        Ok(())
    }

    async fn maybe_stall(&self) {
        if self.plan.stall > 0.0 && self.draw() < self.plan.stall {
            self.fired[5].fetch_add(1, Ordering::Relaxed);
            tracing::debug!(fault = "stall", "injecting a store stall");
            tokio::time::sleep(self.plan.stall_time).await;
        }
    }

    /// Before a read: an outage, a stall, or an error instead of the read.
    pub(crate) async fn before_read(&self) -> KvResult<()> {
        self.unavailable().await?;
        self.maybe_stall().await;
        let r = self.draw();
        let p = &self.plan;
        if r < p.too_old {
            return Err(self.fire(3, KvError::TRANSACTION_TOO_OLD));
        }
        if r < p.too_old + p.io_error {
            return Err(self.fire(4, KvError::IO_ERROR));
        }
        Ok(())
    }

    /// Before a commit: an outage, a stall, an error instead of committing, or an error to report
    /// after committing.
    pub(crate) async fn before_commit(&self) -> KvResult<CommitFault> {
        self.unavailable().await?;
        self.maybe_stall().await;
        let r = self.draw();
        let p = &self.plan;
        let mut edge = p.commit_unknown_landed;
        if r < edge {
            return Ok(CommitFault::AfterCommit(
                self.fire(0, KvError::COMMIT_UNKNOWN_RESULT),
            ));
        }
        for (rate, kind, code) in [
            (p.commit_unknown_lost, 1, KvError::COMMIT_UNKNOWN_RESULT),
            (p.not_committed, 2, KvError::NOT_COMMITTED),
            (p.io_error, 4, KvError::IO_ERROR),
        ] {
            edge += rate;
            if r < edge {
                return Err(self.fire(kind, code));
            }
        }
        Ok(CommitFault::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_spec() {
        let p = FaultPlan::parse(
            "seed=7, commit_unknown_landed=0.02,commit_unknown_lost=0.01,not_committed=0.03,\
             too_old=0.04,io_error=0.005,stall=0.001,stall_ms=1500,outage=20+8,outage=60+2.5",
        )
        .unwrap();
        assert_eq!(p.seed, 7);
        assert_eq!(p.commit_unknown_landed, 0.02);
        assert_eq!(p.stall_time, Duration::from_millis(1500));
        assert_eq!(
            p.outages,
            vec![
                (Duration::from_secs(20), Duration::from_secs(8)),
                (Duration::from_secs(60), Duration::from_millis(2500))
            ]
        );
    }

    #[test]
    fn refuses_what_it_cannot_mean() {
        for bad in [
            "seed",
            "too_old=2",
            "too_old=x",
            "outage=5",
            "outage=-1+2",
            "flood=0.1",
        ] {
            assert!(FaultPlan::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_outage_fails_operations_until_it_ends() {
        let faults = Faults::new(FaultPlan::parse("outage=0+1.5").unwrap());
        let e = faults.before_read().await.unwrap_err();
        assert_eq!(e.code(), KvError::TRANSACTION_TIMED_OUT);
        faults.before_read().await.unwrap();
        assert!(matches!(
            faults.before_commit().await.unwrap(),
            CommitFault::None
        ));
        assert_eq!(faults.counts()[6], ("unavailable", 1));
    }

    #[tokio::test]
    async fn rates_fire_about_as_often_as_asked() {
        let faults = Faults::new(FaultPlan::parse("seed=1,not_committed=0.25").unwrap());
        let mut failed = 0;
        for _ in 0..4000 {
            if faults.before_commit().await.is_err() {
                failed += 1;
            }
        }
        assert!((800..1200).contains(&failed), "{failed}");
        assert_eq!(faults.counts()[2].1, failed);
    }
}
