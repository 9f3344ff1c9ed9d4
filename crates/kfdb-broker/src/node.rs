//! A running broker — a `Log` with its background work and a `Broker` serving one listener — and
//! the ways it stops: controlled (as on SIGTERM: it leaves the cluster first, so the other brokers
//! take its partitions and groups over at once, then drains its connections) or abrupt (as a
//! crash or kill -9: the others take over when its lease runs out).
//!
//! [`LocalCluster`] runs several of them in one process over one store (`kfdb serve --brokers N`):
//! each broker's listeners are in its `BrokerConfig` (`kfdb serve` gives broker `i` every
//! listener's port + `i`). Any of them can be stopped, killed and
//! started again, which is how failover is tested without FoundationDB.

use crate::listeners::Listener;
use crate::{Broker, BrokerConfig};
use futures::future::BoxFuture;
use kfdb_log::{Background, Log, LogResult};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

/// How long a broker that left the cluster keeps serving before it closes its connections.
const HANDOVER: std::time::Duration = std::time::Duration::from_millis(500);

/// See the module documentation.
pub struct BrokerNode {
    broker: Arc<Broker>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<std::io::Result<()>>,
    background: Option<Background>,
}

impl BrokerNode {
    /// Serve Kafka clients with `log` (opened, not yet running its background work) on
    /// `sockets`, bound for `config.listeners` in that order.
    pub fn start(
        log: Arc<Log>,
        config: BrokerConfig,
        sockets: Vec<TcpListener>,
    ) -> std::io::Result<Self> {
        if sockets.len() != config.listeners.len() || sockets.is_empty() {
            return Err(std::io::Error::other(format!(
                "{} sockets for {} listeners",
                sockets.len(),
                config.listeners.len()
            )));
        }
        let addr = sockets[0].local_addr()?;
        let listeners: Vec<(TcpListener, Listener)> =
            sockets.into_iter().zip(config.listeners.clone()).collect();
        let background = log.start_background();
        let broker = Broker::new(log, config)?;
        let (stop, stopped) = oneshot::channel::<()>();
        // A broker whose node id another process took over stops serving at once.
        let mut fenced = broker.log.membership().fenced();
        let serving = tokio::spawn(crate::serve(listeners, broker.clone(), async move {
            tokio::select! {
                _ = stopped => {}
                _ = fenced.wait_for(|f| *f) => {
                    tracing::error!("stopping: this broker's node id belongs to another broker now");
                }
            }
        }));
        Ok(Self {
            broker,
            addr,
            stop: Some(stop),
            serving,
            background: Some(background),
        })
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The address of its first listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Controlled shutdown: leave the cluster (the others take over at once), keep serving for
    /// half a second (requests for what it led get NOT_LEADER_OR_FOLLOWER with the new leader),
    /// then stop serving (connections finish their requests, up to the shutdown timeout) and the
    /// background work.
    pub async fn stop(mut self) -> std::io::Result<()> {
        match self.broker.log.membership().leave().await {
            // Keep answering for a moment: a client that sends to this broker now is told
            // NOT_LEADER_OR_FOLLOWER with the new leader (KIP-951) and moves at once, instead of
            // finding its connection closed and waiting for its retry backoff. Pointless when
            // no other broker is live.
            Ok(()) => {
                if !self.broker.log.membership().view().nodes().is_empty() {
                    tokio::time::sleep(HANDOVER.min(self.broker.config.shutdown_timeout)).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "leaving the cluster failed; the others take over when the lease runs out")
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.serving)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Some(background) = self.background.take() {
            background.stop().await;
        }
        served
    }

    /// Stop at once, as a crash would: no leaving, connections cut.
    pub fn kill(mut self) {
        self.serving.abort();
        drop(self.background.take());
    }

    /// Completes when serving ends (a shutdown, or an error of the listener).
    pub async fn finished(&mut self) -> std::io::Result<()> {
        (&mut self.serving)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }
}

/// Opens broker `i`'s `Log` (each broker its own, over the one shared store).
pub type LogOpener = Arc<dyn Fn(usize) -> BoxFuture<'static, LogResult<Arc<Log>>> + Send + Sync>;

/// Several brokers in one process (see the module documentation).
pub struct LocalCluster {
    opener: LogOpener,
    configs: Vec<BrokerConfig>,
    nodes: Mutex<Vec<Option<BrokerNode>>>,
}

/// One broker of a [`LocalCluster`], as `/brokers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBroker {
    /// Its index in the cluster.
    pub index: usize,
    /// Its node id (of the last start), -1 if never started.
    pub node_id: i32,
    /// Where its first listener binds (`host:port`).
    pub addr: String,
    /// Running now.
    pub running: bool,
}

impl LocalCluster {
    /// Start `configs.len()` brokers: broker `i` with `configs[i]`, on its listeners.
    pub async fn start(
        opener: LogOpener,
        configs: Vec<BrokerConfig>,
    ) -> std::io::Result<Arc<Self>> {
        let cluster = Arc::new(Self {
            opener,
            nodes: Mutex::new(configs.iter().map(|_| None).collect()),
            configs,
        });
        for i in 0..cluster.configs.len() {
            cluster.start_broker(i).await?;
        }
        Ok(cluster)
    }

    /// How many brokers the cluster has (running or not).
    pub fn size(&self) -> usize {
        self.configs.len()
    }

    /// Start broker `i` (again).
    pub async fn start_broker(&self, i: usize) -> std::io::Result<()> {
        let config = self
            .configs
            .get(i)
            .cloned()
            .ok_or_else(|| std::io::Error::other(format!("no broker {i}")))?;
        let mut nodes = self.nodes.lock().await;
        if nodes[i].is_some() {
            return Ok(());
        }
        let mut sockets = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let addr = l.bind_addr();
            sockets.push(TcpListener::bind(&addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("binding {} ({addr}): {e}", l.name))
            })?);
        }
        let log = (self.opener)(i)
            .await
            .map_err(|e| std::io::Error::other(format!("opening broker {i}: {e}")))?;
        tracing::info!(
            broker = i,
            node_id = log.node_id(),
            listeners = %config
                .listeners
                .iter()
                .map(|l| format!(
                    "{}({})={} advertised {}:{}",
                    l.name,
                    l.protocol,
                    l.bind_addr(),
                    l.advertised_host,
                    l.advertised_port
                ))
                .collect::<Vec<_>>()
                .join(" "),
            "broker serving"
        );
        nodes[i] = Some(BrokerNode::start(log, config, sockets)?);
        Ok(())
    }

    /// Controlled shutdown of broker `i`.
    pub async fn stop_broker(&self, i: usize) -> std::io::Result<()> {
        let node = self.nodes.lock().await.get_mut(i).and_then(Option::take);
        match node {
            Some(n) => n.stop().await,
            None => Ok(()),
        }
    }

    /// Stop broker `i` at once, as a crash would.
    pub async fn kill_broker(&self, i: usize) {
        if let Some(n) = self.nodes.lock().await.get_mut(i).and_then(Option::take) {
            n.kill();
        }
    }

    /// The brokers and whether each runs.
    pub async fn brokers(&self) -> Vec<LocalBroker> {
        let nodes = self.nodes.lock().await;
        self.configs
            .iter()
            .enumerate()
            .map(|(i, config)| LocalBroker {
                index: i,
                node_id: nodes[i].as_ref().map(|n| n.broker.node_id()).unwrap_or(-1),
                addr: config
                    .listeners
                    .first()
                    .map(Listener::bind_addr)
                    .unwrap_or_default(),
                running: nodes[i].is_some(),
            })
            .collect()
    }

    /// Broker `i`, if it runs.
    pub async fn broker(&self, i: usize) -> Option<Arc<Broker>> {
        self.nodes
            .lock()
            .await
            .get(i)
            .and_then(|n| n.as_ref().map(|n| n.broker.clone()))
    }

    /// Every broker that runs.
    pub async fn running_brokers(&self) -> Vec<Arc<Broker>> {
        self.nodes
            .lock()
            .await
            .iter()
            .filter_map(|n| n.as_ref().map(|n| n.broker.clone()))
            .collect()
    }

    /// Controlled shutdown of every broker, together.
    pub async fn shutdown(&self) {
        let nodes: Vec<BrokerNode> = self
            .nodes
            .lock()
            .await
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        let stopped = futures::future::join_all(nodes.into_iter().map(BrokerNode::stop)).await;
        for r in stopped {
            if let Err(e) = r {
                tracing::warn!(error = %e, "a broker stopped with an error");
            }
        }
    }
}
