//! A per-address limit on failed authentications, so that a password cannot be guessed at line
//! speed: each client address has a bucket of `burst` attempts that refills at `per_second`; a
//! failure takes one, and an address with an empty bucket is refused without its password being
//! checked. Successful authentications cost nothing. The map is pruned of full buckets when it
//! grows past `MAX_ADDRESSES`, so a scan from many addresses cannot grow it without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

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
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl FailureLimiter {
    /// `burst` failures at once, then `per_second`.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: per_second.max(0.0),
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

    /// Whether `ip` may try to authenticate now.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allows_at(ip, Instant::now())
    }

    fn allows_at(&self, ip: IpAddr, now: Instant) -> bool {
        self.with_bucket(ip, now, |b| b.tokens >= 1.0)
    }

    /// Count a failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        self.failed_at(ip, Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) {
        self.with_bucket(ip, now, |b| b.tokens = (b.tokens - 1.0).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_address_is_refused_after_its_burst_then_refills() {
        let l = FailureLimiter::new(3, 1.0);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.allows_at(a, t0));
            l.failed_at(a, t0);
        }
        assert!(!l.allows_at(a, t0));
        assert!(l.allows_at(b, t0), "other addresses are not affected");
        assert!(!l.allows_at(a, t0 + Duration::from_millis(500)));
        assert!(l.allows_at(a, t0 + Duration::from_millis(1_100)));
    }
}
