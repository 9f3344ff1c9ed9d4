//! The accept loop: one task per connection, a cap on connections, and a graceful shutdown that
//! stops accepting, lets every connection finish the request it is on (a long-polling Fetch
//! answers at once with what it has), and waits for them.

use crate::Broker;
use crate::connection::Connection;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

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
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
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
    while connections.join_next().await.is_some() {}
    ticker.abort();
    Ok(())
}
