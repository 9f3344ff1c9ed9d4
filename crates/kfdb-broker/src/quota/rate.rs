//! The rate a quota is measured with, as Kafka measures it (`quota.window.num` = 11 samples of
//! `quota.window.size.seconds` = 1 s): a sum over the samples of the last 11 s, divided by the
//! time they span — never less than 10 s, so a client's first burst is averaged over ten
//! seconds rather than judged on its own. A quota is exceeded when that rate passes the bound;
//! the client is throttled for as long as it takes the rate to fall back to it.

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

#[cfg(test)]
mod tests {
    use super::*;

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
