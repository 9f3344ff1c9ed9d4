//! One client connection: on a TLS listener the handshake first (its client certificate, if any,
//! naming the principal), then it reads frames, hands each to the handler registry, writes
//! responses in request order. A framing or decoding fault, a failed TLS handshake, a request
//! before SASL authentication or a failed authentication closes only this connection, with a log
//! line.
//!
//! A connection a client quota throttled is muted: nothing more is read from it until the
//! throttle time has passed, as Kafka mutes a throttled channel.
//!
//! Requests are handled one at a time, in order, as Kafka does — except Produce: a Produce request
//! is queued on its partitions' writers and its response written when the appends are durable,
//! while the connection reads on. A client's pipelined Produce requests therefore share commits
//! instead of each waiting for its own. Any other request first waits for the Produce requests
//! before it (so it sees their effects), and responses always leave in request order.

use crate::handlers::{self, Answer, Client, HandleError};
use crate::listeners::Listener;
use crate::response::Response;
use crate::sasl::Session;
use crate::{Broker, frame, tls};
use bytes::BytesMut;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

/// The largest frame a SASL listener reads before the client authenticated.
const PRE_AUTH_MAX_BYTES: usize = 512 * 1024;

/// How long a client has to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection's byte stream: a TCP socket, or TLS over one.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Room reserved for a read when less than `MIN_READ_BYTES` is free (a frame whose size is known
/// reserves all of its own room: `frame::parse`).
const READ_CHUNK_BYTES: usize = 4 * 1024;
const MIN_READ_BYTES: usize = 1024;
/// A read buffer larger than this is dropped once it is empty.
const RETAINED_BUFFER_BYTES: usize = 64 * 1024;

/// Produce requests in flight on one connection before it stops reading (bounds memory).
const MAX_IN_FLIGHT: usize = 64;

type Pending = FuturesOrdered<BoxFuture<'static, Result<Option<Response>, HandleError>>>;

/// Most pieces one vectored write hands the kernel (Linux's `IOV_MAX` is 1024).
const MAX_IOVECS: usize = 1024;

pub(crate) struct Connection {
    socket: Box<dyn Stream>,
    peer: SocketAddr,
    client: Client,
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
    buf: BytesMut,
    /// Room taken under `queued.max.request.bytes` for the frame being read.
    room: Option<OwnedSemaphorePermit>,
}

/// Why the connection ends.
enum End {
    Closed,
    Fault,
}

/// Set a new connection up: the TLS handshake on a TLS listener (its client certificate, if any,
/// naming the principal), and the session.
async fn open(
    tcp: TcpStream,
    peer: SocketAddr,
    listener: &Listener,
    broker: &Broker,
) -> Result<(Box<dyn Stream>, Client), String> {
    let mut tls_principal = None;
    let socket: Box<dyn Stream> = if listener.protocol.tls() {
        let tls = broker.config.tls.as_ref().ok_or_else(|| {
            format!(
                "listener {} needs TLS settings (--ssl-cert-file)",
                listener.name
            )
        })?;
        let stream = tokio::time::timeout(
            TLS_HANDSHAKE_TIMEOUT,
            tls.acceptor(!listener.protocol.sasl()).accept(tcp),
        )
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
        if let Some(cert) = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            let subject =
                tls::subject_name(cert).ok_or("the client certificate's subject does not parse")?;
            tls_principal = Some(format!("User:{subject}"));
        }
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let client = Client {
        peer,
        listener: listener.name.clone(),
        session: Session::new(listener.protocol, tls_principal),
        muted: Default::default(),
    };
    Ok((socket, client))
}

impl Connection {
    /// Open the connection accepted on `listener` and serve it until it ends.
    pub(crate) async fn run(
        tcp: TcpStream,
        peer: SocketAddr,
        listener: Arc<Listener>,
        broker: Arc<Broker>,
        stop: watch::Receiver<bool>,
    ) {
        tracing::debug!(peer = %peer, listener = %listener.name, "connection opened");
        let metrics = broker.metrics.clone();
        let (socket, client) = match open(tcp, peer, &listener, &broker).await {
            Ok(opened) => opened,
            Err(e) => {
                metrics
                    .protocol_errors
                    .with_label_values(&["tls_handshake"])
                    .inc();
                tracing::warn!(peer = %peer, listener = %listener.name, error = %e, "closing connection");
                return;
            }
        };
        let mut conn = Connection {
            socket,
            peer,
            client,
            broker,
            stop,
            // Grown on demand (a frame's size reserves its room), so an idle connection holds
            // a few KiB, not a large buffer.
            buf: BytesMut::new(),
            room: None,
        };
        metrics.connections.inc();
        let mut pending = Pending::new();
        let _ = conn.serve(&mut pending).await;
        // Whatever was queued still completes; answer it if the socket is still there.
        while let Some(answer) = pending.next().await {
            if conn.write(answer).await.is_err() {
                break;
            }
        }
        metrics.connections.dec();
    }

    /// Write one answer (or close on a fault).
    async fn write(&mut self, answer: Result<Option<Response>, HandleError>) -> Result<(), End> {
        match answer {
            Ok(Some(response)) => {
                self.broker.metrics.bytes_out.inc_by(response.len() as u64);
                // TLS buffers what it encrypts: flush, or a response could wait for the next.
                let written = match write_parts(&mut self.socket, response.parts()).await {
                    Ok(()) => self.socket.flush().await,
                    Err(e) => Err(e),
                };
                written.map_err(|e| {
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

    /// `queued.max.request.bytes`: once the next frame's size is known, and before its room is
    /// reserved and its body read, take that much room from the broker's pool, waiting (answering
    /// this connection's finished Produce requests meanwhile) while other requests hold it.
    async fn take_room(&mut self, max: usize, pending: &mut Pending) -> Result<(), End> {
        let Some(pool) = self.broker.request_bytes.clone() else {
            return Ok(());
        };
        if self.room.is_some() || self.buf.len() < 4 {
            return Ok(());
        }
        let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let Ok(size) = usize::try_from(size) else {
            return Ok(()); // a negative size: frame::parse closes the connection
        };
        if size > max {
            return Ok(()); // too large: frame::parse closes the connection
        }
        let cap = self
            .broker
            .config
            .queued_max_request_bytes
            .unwrap_or(usize::MAX);
        let want = (size + 4).min(cap).min(u32::MAX as usize) as u32;
        if let Ok(room) = pool.clone().try_acquire_many_owned(want) {
            self.room = Some(room);
            return Ok(());
        }
        self.broker.metrics.request_bytes_waits.inc();
        loop {
            tokio::select! {
                room = pool.clone().acquire_many_owned(want) => {
                    self.room = Some(room.map_err(|_| End::Closed)?);
                    return Ok(());
                }
                Some(answer) = pending.next(), if !pending.is_empty() => self.write(answer).await?,
                _ = self.stop.changed() => return Err(End::Closed),
            }
        }
    }

    /// A client quota muted the connection: read nothing until `until`, answering this
    /// connection's finished Produce requests meanwhile.
    async fn wait_muted(
        &mut self,
        until: tokio::time::Instant,
        pending: &mut Pending,
    ) -> Result<(), End> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return Ok(()),
                Some(answer) = pending.next(), if !pending.is_empty() => self.write(answer).await?,
                _ = self.stop.changed() => return Err(End::Closed),
            }
        }
    }

    async fn serve(&mut self, pending: &mut Pending) -> Result<(), End> {
        let client = self.client.clone();
        let idle = self.broker.config.connections_max_idle;
        let mut last_active = tokio::time::Instant::now();
        loop {
            // Before SASL authentication a frame may be 512 KiB at most (Kafka's
            // `sasl.server.max.receive.size`), so nobody unauthenticated makes the broker buffer
            // `socket.request.max.bytes`.
            let max = if client.session.authenticated() {
                self.broker.config.max_request_bytes
            } else {
                PRE_AUTH_MAX_BYTES.min(self.broker.config.max_request_bytes)
            };
            if let Some(until) = client.muted.until() {
                self.wait_muted(until, pending).await?;
                last_active = tokio::time::Instant::now();
            }
            self.take_room(max, pending).await?;
            match frame::parse(&mut self.buf, max) {
                Ok(Some(body)) => {
                    // Held until this request is answered (a Produce: until durable).
                    let room = self.room.take();
                    let received = std::time::Instant::now();
                    self.broker.metrics.bytes_in.inc_by(body.len() as u64 + 4);
                    if client.session.expects_raw_token() {
                        // After a v0 SaslHandshake: a bare token, answered with a bare token.
                        let answer = client
                            .session
                            .authenticate(&self.broker, self.peer.ip(), &body)
                            .await;
                        if answer.error_code != 0 {
                            tracing::info!(peer = %self.peer, "closing connection: SASL authentication failed");
                            return Err(End::Closed);
                        }
                        let mut out = BytesMut::with_capacity(4 + answer.bytes.len());
                        out.extend_from_slice(&(answer.bytes.len() as i32).to_be_bytes());
                        out.extend_from_slice(&answer.bytes);
                        self.write(Ok(Some(out.into()))).await?;
                        continue;
                    }
                    if !handlers::is_produce(&body) {
                        // Everything else sees the effects of the Produce requests before it.
                        while let Some(answer) = pending.next().await {
                            self.write(answer).await?;
                        }
                    }
                    match handlers::handle(&self.broker, &client, body, received).await {
                        Ok(Answer::Later(answer)) => pending.push_back(match room {
                            None => answer,
                            Some(room) => Box::pin(async move {
                                let answered = answer.await;
                                drop(room);
                                answered
                            }),
                        }),
                        Ok(Answer::Now(response)) => {
                            drop(room);
                            self.write(Ok(response)).await?
                        }
                        Err(e) => self.write(Err(e)).await?,
                    }
                    if client.session.closing() {
                        let _ = self.socket.flush().await;
                        tracing::info!(peer = %self.peer, "closing connection after a failed SASL exchange");
                        return Err(End::Closed);
                    }
                    while pending.len() >= MAX_IN_FLIGHT {
                        if let Some(answer) = pending.next().await {
                            self.write(answer).await?;
                        }
                    }
                    // A request handled (and maybe answered) just now: not idle.
                    last_active = tokio::time::Instant::now();
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
            if self.buf.is_empty() && self.buf.capacity() > RETAINED_BUFFER_BYTES {
                // A large request is done: give its room back rather than keep it per connection.
                self.buf = BytesMut::new();
            }
            if self.buf.capacity() - self.buf.len() < MIN_READ_BYTES {
                self.buf.reserve(READ_CHUNK_BYTES);
            }
            tokio::select! {
                read = self.socket.read_buf(&mut self.buf) => match read {
                    Ok(0) => {
                        if !self.buf.is_empty() {
                            tracing::debug!(peer = %self.peer, bytes = self.buf.len(), "closed mid-frame");
                        }
                        return Err(End::Closed);
                    }
                    Ok(_) => last_active = tokio::time::Instant::now(),
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, error = %e, "read failed");
                        return Err(End::Closed);
                    }
                },
                Some(answer) = pending.next(), if !pending.is_empty() => {
                    self.write(answer).await?;
                    last_active = tokio::time::Instant::now();
                }
                // `connections.max.idle.ms`: nothing read or written for that long.
                _ = tokio::time::sleep_until(last_active + idle), if pending.is_empty() => {
                    tracing::debug!(peer = %self.peer, idle_ms = idle.as_millis() as u64, "closing idle connection");
                    return Err(End::Closed);
                }
                _ = self.stop.changed() => return Ok(()),
            }
        }
    }
}

/// Write `parts` in order: one piece with `write_all`, several with vectored writes (a Fetch
/// response's record batches go from where they are held straight to the socket).
async fn write_parts(socket: &mut Box<dyn Stream>, parts: &[bytes::Bytes]) -> std::io::Result<()> {
    if let [one] = parts {
        return socket.write_all(one).await;
    }
    let mut slices: Vec<std::io::IoSlice<'_>> =
        parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = socket
            .write_vectored(&rest[..rest.len().min(MAX_IOVECS)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}
