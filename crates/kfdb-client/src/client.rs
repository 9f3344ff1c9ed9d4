//! A client of one cluster: a bootstrap connection for cluster-wide requests, one connection
//! per broker it had to reach (a partition's leader, a group's coordinator), and the brokers'
//! addresses as the last Metadata answer gave them.

use crate::conn::Connection;
use crate::error::{Error, Result};
use crate::security::Security;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestTopic};
use kafka_protocol::messages::{BrokerId, GroupId, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// A client of one Kafka(-compatible) cluster.
pub struct Client {
    bootstrap: Connection,
    nodes: HashMap<i32, Connection>,
    brokers: BTreeMap<i32, String>,
    client_id: String,
    timeout: Duration,
    security: Security,
    /// Coordinators found, by (key type, key): a command asks once.
    coordinators: HashMap<(i8, String), i32>,
}

impl Client {
    /// Connect to the first reachable of `bootstrap` (host:port,host:port...).
    pub async fn connect(
        bootstrap: &str,
        client_id: &str,
        timeout: Duration,
        security: Security,
    ) -> Result<Self> {
        let mut last = Error::Io(format!("no bootstrap server in {bootstrap:?}"));
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Connection::connect(addr, client_id, timeout, &security).await {
                Ok(conn) => {
                    return Ok(Self {
                        bootstrap: conn,
                        nodes: HashMap::new(),
                        brokers: BTreeMap::new(),
                        client_id: client_id.to_string(),
                        timeout,
                        security,
                        coordinators: HashMap::new(),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The brokers (node id → host:port) of the last Metadata answer.
    pub fn brokers(&self) -> &BTreeMap<i32, String> {
        &self.brokers
    }

    /// Metadata of `topics` (`None`: every topic), never creating one.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let answer = self.bootstrap.call(&request, 12).await?;
        self.brokers = answer
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        Ok(answer)
    }

    /// The version the bootstrap broker takes `R` at (at most `cap`).
    pub fn version<R: Request>(&self, cap: i16) -> Result<i16> {
        self.bootstrap.version::<R>(cap)
    }

    /// Send a cluster-wide request to the bootstrap broker, at most at version `cap`.
    pub async fn call<R: Request>(&mut self, request: &R, cap: i16) -> Result<R::Response> {
        self.bootstrap.call(request, cap).await
    }

    /// Send a request to broker `node` (a partition's leader, a coordinator).
    pub async fn call_node<R: Request>(
        &mut self,
        node: i32,
        request: &R,
        cap: i16,
    ) -> Result<R::Response> {
        self.connection(node).await?.call(request, cap).await
    }

    /// The connection to broker `node`, opened on first use.
    async fn connection(&mut self, node: i32) -> Result<&mut Connection> {
        if !self.nodes.contains_key(&node) {
            if !self.brokers.contains_key(&node) {
                self.metadata(Some(&[])).await?;
            }
            let addr = self
                .brokers
                .get(&node)
                .ok_or_else(|| Error::Protocol(format!("broker {node} is not in the cluster")))?
                .clone();
            let conn =
                Connection::connect(&addr, &self.client_id, self.timeout, &self.security).await?;
            self.nodes.insert(node, conn);
        }
        Ok(self.nodes.get_mut(&node).expect("inserted above"))
    }

    /// The coordinator of group `group` (key type 0) or transactional id (1), asked once per
    /// client.
    pub async fn coordinator(&mut self, key: &str, key_type: i8) -> Result<i32> {
        if let Some(node) = self.coordinators.get(&(key_type, key.to_string())) {
            return Ok(*node);
        }
        let conn = &mut self.bootstrap;
        let version = conn.version::<FindCoordinatorRequest>(6)?;
        let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
        if version >= 4 {
            request.coordinator_keys = vec![StrBytes::from_string(key.to_string())];
        } else {
            request.key = StrBytes::from_string(key.to_string());
        }
        let answer = conn.send(&request, version).await?;
        let (code, message, node, host, port) = if version >= 4 {
            let c = answer
                .coordinators
                .first()
                .ok_or_else(|| Error::Protocol("FindCoordinator answered no coordinator".into()))?;
            (
                c.error_code,
                c.error_message.as_ref().map(|m| m.to_string()),
                c.node_id,
                c.host.to_string(),
                c.port,
            )
        } else {
            (
                answer.error_code,
                answer.error_message.as_ref().map(|m| m.to_string()),
                answer.node_id,
                answer.host.to_string(),
                answer.port,
            )
        };
        Error::check(
            code,
            message.as_deref(),
            &format!("finding the coordinator of {key}"),
        )?;
        let BrokerId(id) = node;
        self.brokers.insert(id, format!("{host}:{port}"));
        self.coordinators.insert((key_type, key.to_string()), id);
        Ok(id)
    }

    /// The offset of each partition at `timestamp` (-2: its log start, -1: its end, else the
    /// first offset at or after that time, or -1 when there is none), asked of each partition's
    /// leader. Partitions of unknown topics are an error.
    pub async fn offsets_at(
        &mut self,
        partitions: &BTreeSet<(String, i32)>,
        timestamp: i64,
    ) -> Result<BTreeMap<(String, i32), i64>> {
        let topics: Vec<String> = partitions
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let md = self.metadata(Some(&topics)).await?;
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for t in &md.topics {
            let Some(name) = &t.name else { continue };
            Error::check(t.error_code, None, name.0.as_str())?;
            for p in &t.partitions {
                if partitions.contains(&(name.0.to_string(), p.partition_index)) {
                    by_leader
                        .entry(p.leader_id.0)
                        .or_default()
                        .entry(name.0.to_string())
                        .or_default()
                        .push(p.partition_index);
                }
            }
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t.clone())))
                                .with_partitions(
                                    ps.iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(*p)
                                                .with_current_leader_epoch(-1)
                                                .with_timestamp(timestamp)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let answer = self.call_node(leader, &request, 9).await?;
            for t in answer.topics {
                for p in t.partitions {
                    let tp = (t.name.0.to_string(), p.partition_index);
                    Error::check(p.error_code, None, &format!("offsets of {}-{}", tp.0, tp.1))?;
                    out.insert(tp, p.offset);
                }
            }
        }
        Ok(out)
    }

    /// Commit `offsets` for `group` outside any group membership (generation -1, no member id),
    /// as Kafka's tools do; Kafka accepts it only while the group has no members. The error code
    /// of each partition (0: committed).
    pub async fn commit_offsets(
        &mut self,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<Vec<((String, i32), i16)>> {
        let node = self.coordinator(group, 0).await?;
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for ((t, p), o) in offsets {
            by_topic.entry(t).or_default().push((*p, *o));
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_topics(
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(
                                ps.iter()
                                    .map(|(p, o)| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(*o)
                                            .with_committed_leader_epoch(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let answer = self.call_node(node, &request, 8).await?;
        Ok(answer
            .topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partitions
                    .into_iter()
                    .map(move |p| ((name.clone(), p.partition_index), p.error_code))
            })
            .collect())
    }

    /// The offsets `group` committed (those at -1, i.e. none, left out): of every partition, or
    /// of `only` (a topic and its partitions). Asked of the group's coordinator.
    pub async fn committed_offsets(
        &mut self,
        group: &str,
        only: Option<(&str, &[i32])>,
    ) -> Result<BTreeMap<(String, i32), i64>> {
        let node = self.coordinator(group, 0).await?;
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(only.map(|(topic, partitions)| {
                vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partition_indexes(partitions.to_vec()),
                ]
            }));
        let answer = self.call_node(node, &request, 7).await?;
        Error::check(answer.error_code, None, group)?;
        let mut out = BTreeMap::new();
        for t in answer.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        Ok(out)
    }
}
