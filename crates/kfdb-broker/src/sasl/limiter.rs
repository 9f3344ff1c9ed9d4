//! A per-address brake on failed authentications, so that a password cannot be guessed at line
//! speed: each client address has a bucket of `burst` failures that refills at `per_second`. A
//! failure takes one (the bucket may go into debt, down to `max_wait` of refill); while a bucket
//! is below one, every authentication from that address first waits until it is back at one.
//! Successes cost nothing, so many clients of one host logging in together are not slowed, and a
//! correct password from a throttled address is delayed (at most `max_wait`), never refused.
//! The map is pruned of full buckets when it grows past `MAX_ADDRESSES`, so a scan from many
//! addresses cannot grow it without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_ADDRESSES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// See the module documentation.
#[derive(Debug)]
pub struct FailureLimiter {
    burst: f64,
    per_second: f64,
    floor: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl FailureLimiter {
    /// `burst` failures at once, then `per_second`; waits are at most `max_wait`.
    pub fn new(burst: u32, per_second: f64, max_wait: Duration) -> Self {
        let per_second = per_second.max(0.001);
        Self {
            burst: f64::from(burst.max(1)),
            per_second,
            floor: 1.0 - max_wait.as_secs_f64() * per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn with_bucket<T>(&self, ip: IpAddr, now: Instant, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&ip) {
            let (burst, rate) = (self.burst, self.per_second);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_second).min(self.burst);
        b.at = now;
        f(b)
    }

    /// How long an authentication from `ip` waits before it is tried (zero unless the address
    /// failed too often lately).
    pub fn wait(&self, ip: IpAddr) -> Duration {
        self.wait_at(ip, Instant::now())
    }

    fn wait_at(&self, ip: IpAddr, now: Instant) -> Duration {
        let rate = self.per_second;
        self.with_bucket(ip, now, |b| {
            Duration::from_secs_f64(((1.0 - b.tokens) / rate).max(0.0))
        })
    }

    /// Count a failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        self.failed_at(ip, Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) {
        let floor = self.floor;
        self.with_bucket(ip, now, |b| b.tokens = (b.tokens - 1.0).max(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_waits_after_its_burst_and_never_longer_than_max_wait() {
        let l = FailureLimiter::new(3, 2.0, Duration::from_secs(5));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.wait_at(a, t0), Duration::ZERO);
            l.failed_at(a, t0);
        }
        assert_eq!(l.wait_at(a, t0), Duration::from_millis(500));
        assert_eq!(
            l.wait_at(b, t0),
            Duration::ZERO,
            "other addresses are not affected"
        );
        assert_eq!(
            l.wait_at(a, t0 + Duration::from_millis(500)),
            Duration::ZERO
        );
        for _ in 0..100 {
            l.failed_at(a, t0);
        }
        assert_eq!(l.wait_at(a, t0), Duration::from_secs(5), "debt is bounded");
    }
}
