//! The arithmetic of the reports: rates, medians, percentiles, ranges and the yes/no of a target.
//! No I/O.

/// MB/s (10^6 bytes).
pub fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// The middle value (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nearest-rank percentile of sorted values (NaN if there are none).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `lo-hi` of the values, one decimal.
pub fn range(v: &[f64]) -> String {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(0.0, f64::max);
    format!("{lo:.1}-{hi:.1}")
}

/// A target's `met=` value.
pub fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct(&v, 50.0), 50.0);
        assert_eq!(pct(&v, 99.0), 99.0);
        assert_eq!(pct(&v, 99.9), 100.0);
        assert_eq!(pct(&v, 100.0), 100.0);
        assert_eq!(pct(&v, 0.0), 1.0);
        assert!(pct(&[], 50.0).is_nan());
    }

    #[test]
    fn median_range_rate() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(range(&[2.25, 1.0, 3.0]), "1.0-3.0");
        assert_eq!(mb_s(2_000_000, 2.0), 1.0);
        assert_eq!(met(true), "yes");
    }
}
