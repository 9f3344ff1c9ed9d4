//! The slow-request log (`kfdb serve --slow-request-ms`): one warning per request that took
//! longer than the threshold, naming its API, client id, the first topic it touched and where
//! the time went — queued behind the connection's earlier Produce requests, in the handler (the
//! store's work included; for Produce, until the appends were durable), and encoding the
//! response. Off by default; when off a request carries no trace and nothing is measured.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one request noted about itself while it was handled.
#[derive(Debug, Default)]
pub struct Trace {
    topic: OnceLock<String>,
    encode_nanos: AtomicU64,
}

impl Trace {
    /// Note the topic the request touched (the first one noted stays).
    pub fn topic(&self, name: &str) {
        if self.topic.get().is_none() {
            let _ = self.topic.set(name.to_string());
        }
    }

    /// Add time spent encoding the response.
    pub(crate) fn encoded(&self, took: Duration) {
        self.encode_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The times of one finished request, split.
pub(crate) struct Timing {
    pub received: Instant,
    pub started: Instant,
}

/// Log the request if it was slow.
pub(crate) fn finish(
    threshold: Duration,
    api: &str,
    client_id: Option<&str>,
    peer: std::net::SocketAddr,
    timing: Timing,
    trace: &Trace,
) {
    let total = timing.received.elapsed();
    if total < threshold {
        return;
    }
    let queue = timing.started.saturating_duration_since(timing.received);
    let encode = Duration::from_nanos(trace.encode_nanos.load(Ordering::Relaxed));
    let handler = total.saturating_sub(queue).saturating_sub(encode);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    tracing::warn!(
        target: "kfdb::slow_request",
        api,
        client_id = client_id.unwrap_or(""),
        %peer,
        topic = trace.topic.get().map(String::as_str).unwrap_or(""),
        total_ms = format_args!("{:.1}", ms(total)),
        queue_ms = format_args!("{:.1}", ms(queue)),
        handler_ms = format_args!("{:.1}", ms(handler)),
        encode_ms = format_args!("{:.1}", ms(encode)),
        "slow request"
    );
}
