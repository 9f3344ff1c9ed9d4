//! The accept loops, one per listener, feeding one task per connection, a cap on connections
//! shared by all listeners (`max.connections`: accepting waits for a slot) and per client address
//! (`max.connections.per.ip`: the connection is closed at once; over its address's
//! `connection_creation_rate` client quota: held for the throttle time, then closed), and a
//! graceful shutdown that
//! stops accepting, lets every connection finish the request it is on (a long-polling Fetch
//! answers at once with what it has), and waits for them — at most `shutdown_timeout`, after which
//! the connections still open (a client that stopped reading, a request stuck on the store) are
//! closed. A failing `accept` (out of file descriptors, say) is retried with a growing pause
//! instead of in a busy loop.

use crate::Broker;
use crate::connection::Connection;
use crate::listeners::Listener;
use std::future::Future;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Duration;

/// The pause after the `failures`-th accept error in a row: 5 ms doubling up to 1 s.
fn accept_backoff(failures: u32) -> Duration {
    Duration::from_millis(5u64.saturating_mul(1 << failures.min(8))).min(Duration::from_secs(1))
}

/// Accept connections on one listener and hand them over, each with its connection permit,
/// until the receiving side goes away.
async fn accept_loop(
    listener: TcpListener,
    index: usize,
    limit: Arc<Semaphore>,
    accepted: mpsc::Sender<(TcpStream, std::net::SocketAddr, usize, OwnedSemaphorePermit)>,
) {
    let mut accept_failures = 0u32;
    loop {
        let permit = tokio::select! {
            _ = accepted.closed() => return,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accept = tokio::select! {
            _ = accepted.closed() => return,
            r = listener.accept() => r,
        };
        match accept {
            Ok((socket, peer)) => {
                accept_failures = 0;
                if accepted.send((socket, peer, index, permit)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let pause = accept_backoff(accept_failures);
                accept_failures = accept_failures.saturating_add(1);
                tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "accept failed");
                drop(permit);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Serve Kafka clients on `listeners` (each bound socket with its listener's settings) until
/// `shutdown` completes, then drain and return.
pub async fn serve(
    listeners: Vec<(TcpListener, Listener)>,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(
        broker.config.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    // Open connections per client address (`max.connections.per.ip`).
    let per_ip: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
        Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let ticker = tokio::spawn(
        broker
            .groups
            .clone()
            .run_ticker(tokio::time::Duration::from_millis(200)),
    );
    let lag = tokio::spawn(crate::metrics::sample_lag(
        broker.clone(),
        broker.config.lag_sample_interval,
    ));
    let (accepted_tx, mut accepted) = mpsc::channel(64);
    let mut settings = Vec::with_capacity(listeners.len());
    let mut acceptors = JoinSet::new();
    for (index, (socket, listener)) in listeners.into_iter().enumerate() {
        settings.push(Arc::new(listener));
        acceptors.spawn(accept_loop(
            socket,
            index,
            limit.clone(),
            accepted_tx.clone(),
        ));
    }
    drop(accepted_tx);
    tokio::pin!(shutdown);
    loop {
        let (socket, peer, index, permit) = tokio::select! {
            _ = &mut shutdown => break,
            a = accepted.recv() => match a {
                Some(a) => a,
                None => break,
            },
        };
        let ip = peer.ip().to_canonical();
        let throttle_ms = broker.quotas.connection_throttle(ip);
        if throttle_ms > 0 {
            // As Kafka (KIP-612): a connection over its address's `connection_creation_rate` is
            // held for the throttle time, then closed.
            let key = crate::quota::CONNECTION_CREATION_RATE;
            broker
                .metrics
                .quota_throttled
                .with_label_values(&[key])
                .inc();
            broker
                .metrics
                .quota_throttle_ms
                .with_label_values(&[key])
                .inc_by(throttle_ms);
            tracing::info!(peer = %peer, throttle_ms, "closing connection after the throttle time: connection_creation_rate exceeded for its address");
            // Not counted against `max.connections` while it waits (as in Kafka).
            drop(permit);
            connections.spawn(async move {
                tokio::time::sleep(Duration::from_millis(throttle_ms)).await;
                drop(socket);
            });
            continue;
        }
        let admitted = {
            let mut counts = per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = counts.entry(ip).or_insert(0);
            if *n >= broker.config.max_connections_per_ip {
                false
            } else {
                *n += 1;
                true
            }
        };
        if !admitted {
            // As Kafka: the connection is closed at once, and the broker says why.
            broker
                .metrics
                .protocol_errors
                .with_label_values(&["max_connections_per_ip"])
                .inc();
            tracing::info!(
                peer = %peer,
                limit = broker.config.max_connections_per_ip,
                "closing connection: max.connections.per.ip reached for its address"
            );
            drop(socket);
            drop(permit);
            continue;
        }
        let _ = socket.set_nodelay(true);
        // `socket.send.buffer.bytes` / `socket.receive.buffer.bytes`, as Kafka sets them: a
        // client that stops reading holds at most that much in the kernel, not megabytes.
        let sock = socket2::SockRef::from(&socket);
        if let Some(bytes) = broker.config.socket_send_buffer_bytes {
            let _ = sock.set_send_buffer_size(bytes);
        }
        if let Some(bytes) = broker.config.socket_receive_buffer_bytes {
            let _ = sock.set_recv_buffer_size(bytes);
        }
        let conn = Connection::run(
            socket,
            peer,
            settings[index].clone(),
            broker.clone(),
            stop_rx.clone(),
        );
        let counts = per_ip.clone();
        connections.spawn(async move {
            conn.await;
            drop(permit);
            let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    acceptors.abort_all();
    drop(accepted);
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
    lag.abort();
    let _ = lag.await;
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
