//! A broker to feed raw request frames to, for the fuzz target (`fuzz/`) and the corpus replay
//! test (`crates/kfdb/tests/fuzz_corpus.rs`).
//!
//! [`Harness::new`] owns a tokio runtime and a broker over the log it is given, served on a
//! loopback port nobody uses (so the group ticker and the rest of `serve` run as in production).
//! [`Harness::request`] runs one frame — header, decode, handler, encode — through
//! [`crate::handlers::handle`], exactly what a connection does with a frame it read, and gives up
//! waiting after a short time limit (a long poll or a rebalance wait is not a finding). A panic
//! anywhere on that path propagates to the caller, which is what the fuzzer reports.

use crate::handlers::{self, Answer, Client};
use crate::listeners::{Listener, SecurityProtocol};
use crate::{Broker, BrokerConfig};
use bytes::Bytes;
use kfdb_log::Log;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What became of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response of this many bytes (or none due, e.g. acks=0).
    Answered(usize),
    /// The connection would be closed (the reason's metric label).
    Closed(&'static str),
    /// Still waiting when the time limit passed.
    TimedOut,
}

/// One broker and runtime; requests run one at a time.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    client: Client,
    limit: Duration,
}

impl Harness {
    /// A broker over the log `open` makes (e.g. an embedded store without fsync in a temporary
    /// directory), answering within `limit` or not at all.
    pub fn new(open: impl Future<Output = Arc<Log>>, limit: Duration) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let log = runtime.block_on(open);
        let (broker, listener) = runtime.block_on(async {
            let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let port = socket.local_addr()?.port();
            let listener = Listener::plaintext("127.0.0.1", port);
            let config = BrokerConfig {
                listeners: vec![listener.clone()],
                ..BrokerConfig::default()
            };
            let broker = Broker::new(log, config)?;
            Ok::<_, std::io::Error>((broker, (socket, listener)))
        })?;
        runtime.spawn(crate::serve(
            vec![listener],
            broker.clone(),
            futures::future::pending(),
        ));
        let client = Client {
            peer: "127.0.0.1:40000".parse().expect("a socket address"),
            listener: "PLAINTEXT".into(),
            session: crate::sasl::Session::new(SecurityProtocol::Plaintext, None),
            muted: Default::default(),
        };
        Ok(Self {
            runtime,
            broker,
            client,
            limit,
        })
    }

    /// Run one request frame (header and body, without the size prefix).
    pub fn request(&self, frame: &[u8]) -> Outcome {
        let frame = Bytes::copy_from_slice(frame);
        self.runtime.block_on(async {
            let answered = tokio::time::timeout(self.limit, async {
                match handlers::handle(&self.broker, &self.client, frame, Instant::now()).await {
                    Ok(Answer::Now(r)) => Ok(r),
                    Ok(Answer::Later(pending)) => pending.await,
                    Err(e) => Err(e),
                }
            })
            .await;
            match answered {
                Ok(Ok(r)) => Outcome::Answered(r.map_or(0, |b| b.len())),
                Ok(Err(e)) => Outcome::Closed(e.reason()),
                Err(_) => Outcome::TimedOut,
            }
        })
    }
}
