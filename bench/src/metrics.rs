//! kfdb's Prometheus metrics (`--metrics-listen`): fetching the text over plain HTTP/1.0 and
//! reading one histogram or counter out of it (only the few series the reports quote); and the
//! same listener's control of an in-process cluster (`POST /brokers/{i}/stop|kill`).

use std::io::{Read, Write};
use std::net::TcpStream;

/// A histogram in the units the reports use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Histogram {
    pub count: u64,
    pub mean_ms: f64,
    /// Fractions of the observations within 1 ms and within 5 ms.
    pub within_1ms: f64,
    pub within_5ms: f64,
}

/// The whole /metrics response (headers included; the lookups skip them).
pub fn scrape(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: kfdb\r\n\r\n")?;
    let mut t = String::new();
    s.read_to_string(&mut t)?;
    Ok(t)
}

/// `POST path` on kfdb's HTTP listener; the status line and body if it did not answer 200.
pub fn post(addr: &str, path: &str) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    let request = format!("POST {path} HTTP/1.0\r\nHost: kfdb\r\nContent-Length: 0\r\n\r\n");
    s.write_all(request.as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut t = String::new();
    s.read_to_string(&mut t)
        .map_err(|e| format!("{addr}: {e}"))?;
    match t.lines().next() {
        Some(status) if status.split(' ').nth(1) == Some("200") => Ok(()),
        _ => Err(format!("POST {path}: {t}")),
    }
}

/// Histogram `metric` with `labels` (like `api="Produce"`, or empty), from seconds buckets.
pub fn histogram(text: &str, metric: &str, labels: &str) -> Option<Histogram> {
    let value = |prefix: String| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let (plain, sep) = if labels.is_empty() {
        (String::new(), "")
    } else {
        (format!("{{{labels}}}"), ",")
    };
    let count = value(format!("{metric}_count{plain} "))?;
    let sum = value(format!("{metric}_sum{plain} "))?;
    let le1 = value(format!("{metric}_bucket{{{labels}{sep}le=\"0.001\"}}"))?;
    let le5 = value(format!("{metric}_bucket{{{labels}{sep}le=\"0.005\"}}"))?;
    let c = count.max(1.0);
    Some(Histogram {
        count: count as u64,
        mean_ms: sum / c * 1e3,
        within_1ms: le1 / c,
        within_5ms: le5 / c,
    })
}

/// An unlabelled counter or gauge.
pub fn counter(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
HTTP/1.0 200 OK\r
\r
kfdb_request_duration_seconds_bucket{api=\"Produce\",le=\"0.001\"} 6
kfdb_request_duration_seconds_bucket{api=\"Produce\",le=\"0.005\"} 9
kfdb_request_duration_seconds_sum{api=\"Produce\"} 0.02
kfdb_request_duration_seconds_count{api=\"Produce\"} 10
kfdb_store_commit_duration_seconds_bucket{le=\"0.001\"} 1
kfdb_store_commit_duration_seconds_bucket{le=\"0.005\"} 2
kfdb_store_commit_duration_seconds_sum 0.004
kfdb_store_commit_duration_seconds_count 2
kfdb_store_commits_total_other 1
kfdb_store_commits_total 7
";

    #[test]
    fn labelled_and_plain_histograms() {
        let h = histogram(TEXT, "kfdb_request_duration_seconds", "api=\"Produce\"").unwrap();
        assert_eq!(h.count, 10);
        assert!((h.mean_ms - 2.0).abs() < 1e-9);
        assert_eq!((h.within_1ms, h.within_5ms), (0.6, 0.9));
        let h = histogram(TEXT, "kfdb_store_commit_duration_seconds", "").unwrap();
        assert_eq!((h.count, h.within_1ms), (2, 0.5));
        assert!(histogram(TEXT, "kfdb_request_duration_seconds", "api=\"Fetch\"").is_none());
    }

    #[test]
    fn counters_match_the_whole_name() {
        assert_eq!(counter(TEXT, "kfdb_store_commits_total"), Some(7.0));
        assert_eq!(counter(TEXT, "kfdb_store_fsyncs_total"), None);
    }
}
