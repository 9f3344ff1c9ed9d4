//! Cluster membership: each broker registers in the store with a lease it renews, and keeps a view
//! of the live brokers (and the operators' leader pins) that placement is computed from.
//!
//! A broker's record (`("kfdb", "broker", node_id)`) holds its advertised listeners, rack, start
//! time, a random incarnation and `lease_until_ms`; it renews the lease every
//! `broker.heartbeat.interval.ms` to now + `broker.session.timeout.ms`. A broker is live while its
//! lease runs and it is not leaving. Joining and leaving bump `members_version`, which every broker
//! watches, so a controlled shutdown is seen at once; a crashed broker is seen when its lease runs
//! out (each broker also re-reads the records at every heartbeat).
//!
//! Node ids: an explicit id is refused while another live process holds it — unless that process
//! advertised the very endpoint this one advertises (it was this broker before a crash: the port
//! could not have been bound otherwise), whose lease is taken over. Without an id, a broker takes
//! the id of a record with its own endpoint, else the smallest id that is free or expired (0
//! first). A broker whose record was taken over (its lease lapsed while it was stalled) learns at
//! its next renewal that it is fenced and must stop.
//!
//! Leases compare wall-clock milliseconds between brokers: clocks must agree to well within the
//! session timeout (9 s by default), as NTP keeps them.

use crate::clock::now_ms;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keys;
use crate::placement::{self, CoordinatorKind};
use crate::values::{self, BrokerRecord, Endpoint};
use kfdb_kv::{Database, MutationType, RangeOption};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How a broker joins the cluster (Kafka's names in comments).
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// `node.id`; `None`: take one from the store.
    pub node_id: Option<i32>,
    /// `advertised.listeners`.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat: Duration,
    /// `broker.session.timeout.ms`.
    pub session_timeout: Duration,
}

/// The live brokers and the leader pins, as one broker last saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Live brokers, by node id.
    pub brokers: Vec<BrokerRecord>,
    /// Operators' leader pins.
    pub pins: HashMap<PartitionId, i32>,
    nodes: Vec<i32>,
    /// Every broker registered in the store, live or not, ascending: where partitions are at
    /// home (see `placement`).
    universe: Vec<i32>,
}

impl ClusterView {
    fn new(
        mut brokers: Vec<BrokerRecord>,
        mut universe: Vec<i32>,
        pins: HashMap<PartitionId, i32>,
    ) -> Self {
        brokers.sort_by_key(|b| b.node_id);
        let nodes: Vec<i32> = brokers.iter().map(|b| b.node_id).collect();
        universe.extend(&nodes);
        universe.sort_unstable();
        universe.dedup();
        Self {
            brokers,
            pins,
            nodes,
            universe,
        }
    }

    /// Live node ids, ascending.
    pub fn nodes(&self) -> &[i32] {
        &self.nodes
    }

    /// A live broker's record.
    pub fn broker(&self, node: i32) -> Option<&BrokerRecord> {
        self.brokers.iter().find(|b| b.node_id == node)
    }

    /// The leader of partition `p` (`None`: no broker is live).
    pub fn leader(&self, p: PartitionId) -> Option<i32> {
        placement::partition_leader(p, &self.universe, &self.nodes, self.pins.get(&p).copied())
    }

    /// The coordinator of a group or transactional id.
    pub fn coordinator(&self, kind: CoordinatorKind, key: &str) -> Option<i32> {
        placement::coordinator(kind, key, &self.nodes)
    }

    /// The broker reported as controller: the live broker with the lowest node id.
    pub fn controller(&self) -> Option<i32> {
        self.nodes.first().copied()
    }
}

/// See the module documentation.
pub struct Membership {
    /// `None`: a standalone broker with a fixed view of itself (no record in the store).
    db: Option<Database>,
    me: BrokerRecord,
    config: Option<MembershipConfig>,
    view: watch::Sender<Arc<ClusterView>>,
    fenced: watch::Sender<bool>,
}

fn same_endpoint(a: &BrokerRecord, b: &BrokerRecord) -> bool {
    a.endpoints.iter().any(|e| b.endpoints.contains(e))
}

impl Membership {
    /// A broker that does not register: it alone is live, forever (tests and tools that open
    /// the data model without serving).
    pub(crate) fn standalone(node_id: i32) -> Self {
        let me = BrokerRecord {
            node_id,
            incarnation: 0,
            endpoints: Vec::new(),
            rack: None,
            started_ms: now_ms(),
            lease_until_ms: i64::MAX,
            leaving: false,
        };
        let view = ClusterView::new(vec![me.clone()], Vec::new(), HashMap::new());
        Self {
            db: None,
            me,
            config: None,
            view: watch::Sender::new(Arc::new(view)),
            fenced: watch::Sender::new(false),
        }
    }

    /// Register in the store (see the module documentation for how the node id is chosen).
    pub(crate) async fn join(db: Database, config: MembershipConfig) -> LogResult<Self> {
        let session = config.session_timeout.as_millis() as i64;
        let template = BrokerRecord {
            node_id: -1,
            incarnation: rand::random::<i64>(),
            endpoints: config.endpoints.clone(),
            rack: config.rack.clone(),
            started_ms: now_ms(),
            lease_until_ms: 0,
            leaving: false,
        };
        let wanted = config.node_id;
        let template_ref = &template;
        let me = db
            .run(|tx, _| async move {
                let now = now_ms();
                let (b, e) = keys::brokers();
                let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
                let records = rows
                    .iter()
                    .map(|kv| BrokerRecord::decode(&kv.value))
                    .collect::<LogResult<Vec<_>>>()?;
                let node = match wanted {
                    Some(n) => {
                        if let Some(held) = records.iter().find(|r| r.node_id == n)
                            && held.live(now)
                            && held.incarnation != template_ref.incarnation
                            && !same_endpoint(held, template_ref)
                        {
                            let at = held
                                .endpoints
                                .first()
                                .map(|e| format!("{}:{}", e.host, e.port))
                                .unwrap_or_default();
                            return Err(LogError::NodeIdInUse(format!(
                                "node id {n} is held by a live broker at {at} (its lease runs \
                                 for {} ms more); stop it or choose another --node-id",
                                held.lease_until_ms - now
                            )));
                        }
                        n
                    }
                    None => match records.iter().find(|r| same_endpoint(r, template_ref)) {
                        Some(r) => r.node_id,
                        None => (0..)
                            .find(|n| {
                                records
                                    .iter()
                                    .find(|r| r.node_id == *n)
                                    .is_none_or(|r| !r.live(now))
                            })
                            .unwrap_or(0),
                    },
                };
                let me = BrokerRecord {
                    node_id: node,
                    lease_until_ms: now + session,
                    ..template_ref.clone()
                };
                tx.set(&keys::broker(node), &me.encode());
                tx.atomic_op(
                    &keys::members_version(),
                    &1i64.to_le_bytes(),
                    MutationType::Add,
                );
                Ok(me)
            })
            .await?;
        tracing::info!(node_id = me.node_id, rack = ?me.rack, "joined the cluster");
        let m = Self {
            db: Some(db),
            me,
            config: Some(config),
            view: watch::Sender::new(Arc::new(ClusterView::default())),
            fenced: watch::Sender::new(false),
        };
        m.refresh().await?;
        Ok(m)
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.me.node_id
    }

    /// This broker's rack (`broker.rack`).
    pub fn rack(&self) -> Option<&str> {
        self.me.rack.as_deref()
    }

    /// The cluster as last seen.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// A receiver that changes whenever the view does.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.subscribe()
    }

    /// Becomes true when this broker finds its node id taken over by another process: it must
    /// stop serving.
    pub fn fenced(&self) -> watch::Receiver<bool> {
        self.fenced.subscribe()
    }

    /// Renew the lease. Marks this broker fenced if its record now belongs to someone else.
    pub(crate) async fn renew(&self) -> LogResult<()> {
        let (Some(db), Some(config)) = (&self.db, &self.config) else {
            return Ok(());
        };
        let session = config.session_timeout.as_millis() as i64;
        let me = &self.me;
        let still_mine = db
            .run(|tx, _| async move {
                let key = keys::broker(me.node_id);
                let current = match tx.get(&key, false).await? {
                    Some(v) => Some(BrokerRecord::decode(&v)?),
                    None => None,
                };
                match current {
                    Some(r) if r.incarnation != me.incarnation => Ok::<_, LogError>(false),
                    Some(r) if r.leaving => Ok(true),
                    _ => {
                        let renewed = BrokerRecord {
                            lease_until_ms: now_ms() + session,
                            ..me.clone()
                        };
                        tx.set(&key, &renewed.encode());
                        Ok(true)
                    }
                }
            })
            .await?;
        if !still_mine && !*self.fenced.borrow() {
            tracing::error!(
                node_id = me.node_id,
                "another broker took over this node id (our lease had lapsed): fenced"
            );
            self.fenced.send_replace(true);
        }
        Ok(())
    }

    /// Re-read the brokers and pins; publish a new view if it changed.
    pub(crate) async fn refresh(&self) -> LogResult<()> {
        self.refresh_watching().await.map(drop)
    }

    /// [`Self::refresh`], and a watch on `members_version` set in the same transaction: it fires
    /// on any join or leave committed after what this refresh read, so none is missed between
    /// the two. Also when the first lease of another live broker runs out (wall clock, ms), so
    /// a killed broker's partitions move as soon as its lease ends, not at the next heartbeat.
    /// None without a store.
    async fn refresh_watching(&self) -> LogResult<Option<(kfdb_kv::Watch, Option<i64>)>> {
        let Some(db) = &self.db else {
            return Ok(None);
        };
        let (records, pins, watch) = db
            .run(|tx, _| async move {
                tx.get(&keys::members_version(), false).await?;
                let watch = tx.watch(&keys::members_version());
                let (b, e) = keys::brokers();
                let rows = tx.get_range_all(RangeOption::new(b, e), true).await?;
                let records = rows
                    .iter()
                    .map(|kv| BrokerRecord::decode(&kv.value))
                    .collect::<LogResult<Vec<_>>>()?;
                let (b, e) = keys::pins();
                let rows = tx.get_range_all(RangeOption::new(b, e), true).await?;
                let pins = rows
                    .iter()
                    .map(|kv| Ok((keys::parse_pin(&kv.key)?, values::decode_node(&kv.value)?)))
                    .collect::<LogResult<HashMap<_, _>>>()?;
                Ok::<_, LogError>((records, pins, watch))
            })
            .await?;
        let now = now_ms();
        let universe: Vec<i32> = records.iter().map(|r| r.node_id).collect();
        let live: Vec<BrokerRecord> = records.into_iter().filter(|r| r.live(now)).collect();
        let next_expiry = live
            .iter()
            .filter(|r| r.node_id != self.me.node_id)
            .map(|r| r.lease_until_ms)
            .min();
        let view = ClusterView::new(live, universe, pins);
        let changed = {
            let old = self.view.borrow();
            old.nodes != view.nodes
                || old.universe != view.universe
                || old.pins != view.pins
                || old
                    .brokers
                    .iter()
                    .zip(&view.brokers)
                    .any(|(a, b)| a.endpoints != b.endpoints || a.rack != b.rack)
        };
        if changed {
            tracing::info!(live = ?view.nodes, pins = view.pins.len(), "cluster view changed");
            self.view.send_replace(Arc::new(view));
        }
        Ok(Some((watch, next_expiry)))
    }

    /// Controlled shutdown: mark this broker as leaving, so the others take over at once.
    pub async fn leave(&self) -> LogResult<()> {
        let Some(db) = &self.db else {
            return Ok(());
        };
        let me = &self.me;
        db.run(|tx, _| async move {
            let key = keys::broker(me.node_id);
            if let Some(v) = tx.get(&key, false).await?
                && BrokerRecord::decode(&v)?.incarnation == me.incarnation
            {
                let leaving = BrokerRecord {
                    leaving: true,
                    ..me.clone()
                };
                tx.set(&key, &leaving.encode());
                tx.atomic_op(
                    &keys::members_version(),
                    &1i64.to_le_bytes(),
                    MutationType::Add,
                );
            }
            Ok::<_, LogError>(())
        })
        .await?;
        tracing::info!(node_id = me.node_id, "left the cluster");
        self.refresh().await
    }

    /// Renew and refresh every heartbeat interval, as soon as `members_version` changes, and
    /// when another broker's lease runs out, until the task is dropped.
    pub(crate) async fn run(self: Arc<Self>) {
        let (Some(_), Some(config)) = (&self.db, &self.config) else {
            return;
        };
        let mut tick = tokio::time::interval(config.heartbeat);
        // The watch set by the last refresh, and the first lease end it saw.
        let mut changed: Option<kfdb_kv::Watch> = None;
        let mut next_expiry: Option<i64> = None;
        loop {
            let watch = changed.take();
            // A millisecond past the lease end, so the refresh sees it ended.
            let expiry = next_expiry
                .take()
                .map(|at| Duration::from_millis((at + 1 - now_ms()).max(0) as u64));
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.renew().await {
                        tracing::warn!(error = %e, "renewing the broker lease failed");
                    }
                }
                fired = async {
                    match watch {
                        Some(w) => w.await.is_ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    if !fired {
                        // The store could not watch: fall back to the heartbeat alone.
                        tick.tick().await;
                    }
                }
                _ = async {
                    match expiry {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            match self.refresh_watching().await {
                Ok(Some((w, e))) => {
                    changed = Some(w);
                    next_expiry = e;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading the cluster's brokers failed"),
            }
        }
    }
}
