//! The accept loop: one task per connection, a cap on connections, and a graceful shutdown that
//! stops accepting, lets every connection finish the request it is on (a long-polling Fetch
//! answers at once with what it has), and waits for them — at most `shutdown_timeout`, after which
//! the connections still open (a client that stopped reading, a request stuck on the store) are
//! closed. A failing `accept` (out of file descriptors, say) is retried with a growing pause
//! instead of in a busy loop.

use crate::Broker;
use crate::connection::Connection;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Duration;

/// The pause after the `failures`-th accept error in a row: 5 ms doubling up to 1 s.
fn accept_backoff(failures: u32) -> Duration {
    Duration::from_millis(5u64.saturating_mul(1 << failures.min(8))).min(Duration::from_secs(1))
}

/// Serve Kafka clients on `listener` until `shutdown` completes, then drain and return.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(broker.config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let ticker = tokio::spawn(
        broker
            .groups
            .clone()
            .run_ticker(tokio::time::Duration::from_millis(200)),
    );
    tokio::pin!(shutdown);
    let mut accept_failures = 0u32;
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(s) => {
                    accept_failures = 0;
                    s
                }
                Err(e) => {
                    let pause = accept_backoff(accept_failures);
                    accept_failures = accept_failures.saturating_add(1);
                    tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "accept failed");
                    drop(permit);
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let conn = Connection::new(socket, peer, broker.clone(), stop_rx.clone());
        connections.spawn(async move {
            conn.run().await;
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    tracing::info!(
        open = connections.len(),
        "shutting down: draining connections"
    );
    let _ = stop_tx.send(true);
    broker.stopping.send_replace(true);
    let drained = tokio::time::timeout(broker.config.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            timeout_ms = broker.config.shutdown_timeout.as_millis() as u64,
            "shutdown: closing connections still open after the timeout"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    ticker.abort();
    let _ = ticker.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_up_to_a_second() {
        assert_eq!(accept_backoff(0), Duration::from_millis(5));
        assert_eq!(accept_backoff(1), Duration::from_millis(10));
        assert_eq!(accept_backoff(7), Duration::from_millis(640));
        assert_eq!(accept_backoff(8), Duration::from_secs(1));
        assert_eq!(accept_backoff(u32::MAX), Duration::from_secs(1));
    }
}
