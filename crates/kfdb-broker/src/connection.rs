//! One client connection: reads frames, hands each to the handler registry, writes responses in
//! request order. A framing or decoding fault closes only this connection, with a log line.

use crate::handlers;
use crate::{Broker, frame};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub(crate) struct Connection {
    socket: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
    buf: BytesMut,
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
        self.serve().await;
        metrics.connections.dec();
    }

    async fn serve(&mut self) {
        let max = self.broker.config.max_request_bytes;
        let metrics = self.broker.metrics.clone();
        loop {
            match frame::parse(&mut self.buf, max) {
                Ok(Some(body)) => {
                    metrics.bytes_in.inc_by(body.len() as u64 + 4);
                    let answer = handlers::handle(&self.broker, body).await;
                    match answer {
                        Ok(Some(response)) => {
                            metrics.bytes_out.inc_by(response.len() as u64);
                            if let Err(e) = self.socket.write_all(&response).await {
                                tracing::debug!(peer = %self.peer, error = %e, "write failed");
                                return;
                            }
                            continue;
                        }
                        Ok(None) => continue,
                        Err(e) => {
                            metrics
                                .protocol_errors
                                .with_label_values(&[e.reason()])
                                .inc();
                            tracing::warn!(peer = %self.peer, error = %e, "closing connection");
                            return;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    metrics
                        .protocol_errors
                        .with_label_values(&["bad_frame"])
                        .inc();
                    tracing::warn!(peer = %self.peer, error = %e, "closing connection: bad frame");
                    return;
                }
            }
            if *self.stop.borrow() {
                return;
            }
            tokio::select! {
                read = self.socket.read_buf(&mut self.buf) => match read {
                    Ok(0) => {
                        if !self.buf.is_empty() {
                            tracing::debug!(peer = %self.peer, bytes = self.buf.len(), "closed mid-frame");
                        }
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, error = %e, "read failed");
                        return;
                    }
                },
                _ = self.stop.changed() => return,
            }
        }
    }
}
