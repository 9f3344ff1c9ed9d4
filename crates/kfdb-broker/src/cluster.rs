//! The cluster as the handlers see it: this broker's node id, the live brokers and their
//! addresses, who leads a partition and who coordinates a group or transactional id. It all comes
//! from kfdb-log's view of the cluster (`Membership`, `Leadership`); this module only shapes it for
//! responses. A broker that does not register (a standalone `Log`, as in tests) sees only itself,
//! at the address in its `BrokerConfig`.

use crate::{Broker, error_code};
use kfdb_log::{CoordinatorKind, PartitionId};

/// A live broker as responses name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
}

impl Broker {
    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.log.node_id()
    }

    fn this_node(&self, listener: &str) -> Option<Node> {
        self.config.listener(listener).map(|l| Node {
            id: self.node_id(),
            host: l.advertised_host.clone(),
            port: l.advertised_port,
            rack: self.log.membership().rack().map(str::to_string),
        })
    }

    /// Every live broker, by node id (this one always among them while it serves), at its
    /// address on the listener named `listener` (the one the client connected to; a broker
    /// without a listener of that name is left out, as Kafka does).
    pub fn nodes(&self, listener: &str) -> Vec<Node> {
        let view = self.log.membership().view();
        let me = self.node_id();
        let mut nodes: Vec<Node> = view
            .brokers
            .iter()
            .filter(|b| b.node_id != me)
            .filter_map(|b| {
                b.endpoints
                    .iter()
                    .find(|e| e.listener == listener)
                    .map(|e| Node {
                        id: b.node_id,
                        host: e.host.clone(),
                        port: e.port,
                        rack: b.rack.clone(),
                    })
            })
            .collect();
        nodes.extend(self.this_node(listener));
        nodes.sort_by_key(|n| n.id);
        nodes
    }

    /// The node ids of the live brokers (this one always among them while it serves).
    pub fn live_nodes(&self) -> Vec<i32> {
        let me = self.node_id();
        let mut ids: Vec<i32> = self.log.membership().view().nodes().to_vec();
        if !ids.contains(&me) {
            ids.push(me);
        }
        ids.sort_unstable();
        ids
    }

    /// A live broker by node id, at its address on `listener`.
    pub fn node(&self, id: i32, listener: &str) -> Option<Node> {
        if id == self.node_id() {
            return self.this_node(listener);
        }
        self.nodes(listener).into_iter().find(|n| n.id == id)
    }

    /// The broker leading `p` (`None`: no broker is live).
    pub fn leader(&self, p: PartitionId) -> Option<i32> {
        self.log.leadership().leader(p)
    }

    /// The broker coordinating `key`.
    pub fn coordinator(&self, kind: CoordinatorKind, key: &str) -> Option<i32> {
        self.log.membership().view().coordinator(kind, key)
    }

    /// Whether this broker coordinates `key`.
    pub fn coordinates(&self, kind: CoordinatorKind, key: &str) -> bool {
        self.coordinator(kind, key) == Some(self.node_id())
    }

    /// Serve a request on `p` as its leader: its leader epoch, or the error code to answer —
    /// NOT_LEADER_OR_FOLLOWER when another broker leads it; FENCED_LEADER_EPOCH /
    /// UNKNOWN_LEADER_EPOCH when the client's `current_leader_epoch` (-1: not given) is older /
    /// newer than the leader's (KIP-320).
    pub async fn lead(&self, p: PartitionId, current_leader_epoch: i32) -> Result<i32, i16> {
        if !self.log.leadership().leads(p) {
            return Err(error_code::NOT_LEADER_OR_FOLLOWER);
        }
        let epoch = self
            .log
            .leadership()
            .claim(p)
            .await
            .map_err(|e| error_code::from_log_error(&e))?;
        if current_leader_epoch >= 0 && current_leader_epoch < epoch {
            return Err(error_code::FENCED_LEADER_EPOCH);
        }
        if current_leader_epoch > epoch {
            return Err(error_code::UNKNOWN_LEADER_EPOCH);
        }
        Ok(epoch)
    }

    /// The broker reported as the controller: the live broker with the lowest node id.
    pub fn controller(&self) -> i32 {
        self.log
            .membership()
            .view()
            .controller()
            .unwrap_or_else(|| self.node_id())
    }
}
