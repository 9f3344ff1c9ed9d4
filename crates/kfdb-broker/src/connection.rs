//! One client connection: reads frames, hands each to the handler registry, writes responses in
//! request order. A framing or decoding fault closes only this connection, with a log line.
//!
//! Requests are handled one at a time, in order, as Kafka does — except Produce: a Produce request
//! is queued on its partitions' writers and its response written when the appends are durable,
//! while the connection reads on. A client's pipelined Produce requests therefore share commits
//! instead of each waiting for its own. Any other request first waits for the Produce requests
//! before it (so it sees their effects), and responses always leave in request order.

use crate::handlers::{self, Answer, HandleError};
use crate::{Broker, frame};
use bytes::BytesMut;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Produce requests in flight on one connection before it stops reading (bounds memory).
const MAX_IN_FLIGHT: usize = 64;

type Pending = FuturesOrdered<BoxFuture<'static, Result<Option<BytesMut>, HandleError>>>;

pub(crate) struct Connection {
    socket: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
    buf: BytesMut,
}

/// Why the connection ends.
enum End {
    Closed,
    Fault,
}

impl Connection {
    pub(crate) fn new(
        socket: TcpStream,
        peer: SocketAddr,
        broker: Arc<Broker>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            socket,
            peer,
            broker,
            stop,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    pub(crate) async fn run(mut self) {
        tracing::debug!(peer = %self.peer, "connection opened");
        let metrics = self.broker.metrics.clone();
        metrics.connections.inc();
        let mut pending = Pending::new();
        let _ = self.serve(&mut pending).await;
        // Whatever was queued still completes; answer it if the socket is still there.
        while let Some(answer) = pending.next().await {
            if self.write(answer).await.is_err() {
                break;
            }
        }
        metrics.connections.dec();
    }

    /// Write one answer (or close on a fault).
    async fn write(&mut self, answer: Result<Option<BytesMut>, HandleError>) -> Result<(), End> {
        match answer {
            Ok(Some(response)) => {
                self.broker.metrics.bytes_out.inc_by(response.len() as u64);
                self.socket.write_all(&response).await.map_err(|e| {
                    tracing::debug!(peer = %self.peer, error = %e, "write failed");
                    End::Closed
                })
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.broker
                    .metrics
                    .protocol_errors
                    .with_label_values(&[e.reason()])
                    .inc();
                tracing::warn!(peer = %self.peer, error = %e, "closing connection");
                Err(End::Fault)
            }
        }
    }

    async fn serve(&mut self, pending: &mut Pending) -> Result<(), End> {
        let max = self.broker.config.max_request_bytes;
        loop {
            match frame::parse(&mut self.buf, max) {
                Ok(Some(body)) => {
                    self.broker.metrics.bytes_in.inc_by(body.len() as u64 + 4);
                    if !handlers::is_produce(&body) {
                        // Everything else sees the effects of the Produce requests before it.
                        while let Some(answer) = pending.next().await {
                            self.write(answer).await?;
                        }
                    }
                    match handlers::handle(&self.broker, self.peer, body).await {
                        Ok(Answer::Later(answer)) => pending.push_back(answer),
                        Ok(Answer::Now(response)) => self.write(Ok(response)).await?,
                        Err(e) => self.write(Err(e)).await?,
                    }
                    while pending.len() >= MAX_IN_FLIGHT {
                        if let Some(answer) = pending.next().await {
                            self.write(answer).await?;
                        }
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.broker
                        .metrics
                        .protocol_errors
                        .with_label_values(&["bad_frame"])
                        .inc();
                    tracing::warn!(peer = %self.peer, error = %e, "closing connection: bad frame");
                    return Err(End::Fault);
                }
            }
            if *self.stop.borrow() {
                return Ok(());
            }
            tokio::select! {
                read = self.socket.read_buf(&mut self.buf) => match read {
                    Ok(0) => {
                        if !self.buf.is_empty() {
                            tracing::debug!(peer = %self.peer, bytes = self.buf.len(), "closed mid-frame");
                        }
                        return Err(End::Closed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, error = %e, "read failed");
                        return Err(End::Closed);
                    }
                },
                Some(answer) = pending.next(), if !pending.is_empty() => self.write(answer).await?,
                _ = self.stop.changed() => return Ok(()),
            }
        }
    }
}
