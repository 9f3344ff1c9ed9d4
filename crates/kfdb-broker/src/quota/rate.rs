//! The rate a quota is measured with, as Kafka measures it (`quota.window.num` = 11 samples of
//! `quota.window.size.seconds` = 1 s): a sum over the samples of the last 11 s, divided by the
//! time they span — never less than 10 s, so a client's first burst is averaged over ten
//! seconds rather than judged on its own. A quota is exceeded when that rate passes the bound;
//! the client is throttled for as long as it takes the rate to fall back to it.
//!
//! `controller_mutation_rate` is measured with a token bucket instead (KIP-599): it holds up to
//! 11 seconds' worth of the quota, each created or deleted partition takes one token, and it
//! refills at the quota's rate; below zero the client is throttled until it is back at zero.

use std::collections::VecDeque;

/// Samples kept (Kafka's `quota.window.num`).
pub const SAMPLES: u64 = 11;
/// One sample's span in milliseconds (Kafka's `quota.window.size.seconds`).
pub const SAMPLE_MS: u64 = 1_000;

/// A windowed rate per second of whatever is recorded (bytes, or percent of a thread).
#[derive(Debug, Default)]
pub struct Rate {
    /// (start in ms, sum recorded in it), oldest first.
    samples: VecDeque<(u64, f64)>,
}

impl Rate {
    fn purge(&mut self, now_ms: u64) {
        while self
            .samples
            .front()
            .is_some_and(|(start, _)| start + SAMPLES * SAMPLE_MS <= now_ms)
        {
            self.samples.pop_front();
        }
    }

    /// Add `value` at `now_ms`.
    pub fn record(&mut self, now_ms: u64, value: f64) {
        self.purge(now_ms);
        match self.samples.back_mut() {
            Some((start, sum)) if now_ms < *start + SAMPLE_MS => *sum += value,
            _ => self.samples.push_back((now_ms, value)),
        }
    }

    /// Take back `value` recorded at `now_ms` (a throttled Fetch sends nothing).
    pub fn unrecord(&mut self, now_ms: u64, value: f64) {
        if let Some((_, sum)) = self.samples.back_mut() {
            *sum = (*sum - value).max(0.0);
        }
        self.purge(now_ms);
    }

    /// The span the rate is taken over at `now_ms`, in milliseconds (at least 10 samples).
    fn window_ms(&self, now_ms: u64) -> u64 {
        let elapsed = self
            .samples
            .front()
            .map_or(0, |(start, _)| now_ms.saturating_sub(*start));
        let full = elapsed / SAMPLE_MS;
        if full < SAMPLES - 1 {
            elapsed + (SAMPLES - 1 - full) * SAMPLE_MS
        } else {
            elapsed
        }
    }

    /// The rate per second at `now_ms`.
    pub fn per_second(&mut self, now_ms: u64) -> f64 {
        self.purge(now_ms);
        let total: f64 = self.samples.iter().map(|(_, v)| v).sum();
        total / (self.window_ms(now_ms) as f64 / 1_000.0)
    }

    /// How long to throttle a client whose rate must stay at `bound` per second: 0 within it,
    /// else the time over which the excess would spread at the bound.
    pub fn throttle_ms(&mut self, now_ms: u64, bound: f64) -> u64 {
        let rate = self.per_second(now_ms);
        if bound <= 0.0 || rate <= bound {
            return 0;
        }
        let ms = (rate - bound) / bound * self.window_ms(now_ms) as f64;
        ms.round().min(i32::MAX as f64) as u64
    }

    /// Whether nothing was recorded in the window.
    pub fn is_empty(&mut self, now_ms: u64) -> bool {
        self.purge(now_ms);
        self.samples.is_empty()
    }
}

/// A token bucket (see the module documentation).
#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    /// A full bucket for a quota of `rate` per second.
    pub fn full(now_ms: u64, rate: f64) -> Self {
        Self {
            tokens: Self::burst(rate),
            at_ms: now_ms,
        }
    }

    fn burst(rate: f64) -> f64 {
        rate * (SAMPLES * SAMPLE_MS) as f64 / 1_000.0
    }

    fn refill(&mut self, now_ms: u64, rate: f64) {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64 / 1_000.0;
        self.tokens = (self.tokens + elapsed * rate).min(Self::burst(rate));
        self.at_ms = self.at_ms.max(now_ms);
    }

    /// Whether the bucket is below zero (the quota is exceeded) at `now_ms`.
    pub fn exceeded(&mut self, now_ms: u64, rate: f64) -> bool {
        self.refill(now_ms, rate);
        self.tokens < 0.0
    }

    /// Take `n` tokens at `now_ms`.
    pub fn take(&mut self, now_ms: u64, rate: f64, n: f64) {
        self.refill(now_ms, rate);
        self.tokens -= n;
    }

    /// How long until the bucket is back at zero, in milliseconds.
    pub fn throttle_ms(&mut self, now_ms: u64, rate: f64) -> u64 {
        self.refill(now_ms, rate);
        if self.tokens >= 0.0 || rate <= 0.0 {
            return 0;
        }
        (-self.tokens / rate * 1_000.0).round().min(i32::MAX as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_eleven_seconds_worth_then_throttles() {
        let mut b = Bucket::full(0, 2.0);
        b.take(0, 2.0, 22.0);
        assert!(!b.exceeded(0, 2.0));
        b.take(0, 2.0, 4.0);
        assert!(b.exceeded(0, 2.0));
        assert_eq!(b.throttle_ms(0, 2.0), 2_000);
        assert_eq!(b.throttle_ms(1_000, 2.0), 1_000);
        assert!(!b.exceeded(2_000, 2.0));
        // Refilled, but never beyond the burst.
        assert!(!b.exceeded(1_000_000, 2.0));
        b.take(1_000_000, 2.0, 23.0);
        assert!(b.exceeded(1_000_000, 2.0));
    }

    #[test]
    fn a_first_burst_is_averaged_over_ten_seconds() {
        let mut r = Rate::default();
        r.record(0, 10_000.0);
        assert_eq!(r.per_second(0), 1_000.0);
        assert_eq!(r.throttle_ms(0, 1_000.0), 0);
        r.record(500, 10_000.0);
        // 20,000 over 10.5 s.
        assert!((r.per_second(500) - 20_000.0 / 10.5).abs() < 1e-9);
        // (1904.76 - 1000) / 1000 * 10,500 ms.
        assert_eq!(r.throttle_ms(500, 1_000.0), 9_500);
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut r = Rate::default();
        r.record(0, 50_000.0);
        r.record(5_000, 1_000.0);
        assert!(r.throttle_ms(5_000, 1_000.0) > 0);
        // At 11 s the first sample is gone: 1,000 over the 10 s minimum.
        assert_eq!(r.per_second(11_000), 100.0);
        assert_eq!(r.throttle_ms(11_000, 1_000.0), 0);
        assert!(!r.is_empty(11_000));
        assert!(r.is_empty(16_000));
    }

    #[test]
    fn unrecord_takes_a_value_back() {
        let mut r = Rate::default();
        r.record(0, 100.0);
        r.record(10, 900.0);
        r.unrecord(10, 900.0);
        // 100 over 10.01 s.
        assert!((r.per_second(10) - 100.0 / 10.01).abs() < 1e-9);
    }
}
