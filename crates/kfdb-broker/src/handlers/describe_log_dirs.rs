//! DescribeLogDirs (key 35): each broker has one "log dir", its store (`log.dirs` in its broker
//! configs), and reports in it the partitions it leads with their sizes, read from the store
//! (monitoring tools and UIs show partition sizes from this). No offset lag: there are no replicas
//! to lag. Without a topic list, every topic (page by page); partitions led elsewhere are left out,
//! so an admin client asking every broker sees each partition once.

use super::{RequestCtx, Versions, s};
use crate::Broker;
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kfdb_log::{LogResult, PartitionId, TopicMeta};
use std::sync::Arc;

pub const KEY: ApiKey = ApiKey::DescribeLogDirs;
pub const VERSIONS: Versions = Versions::new(1, 4);
pub type Request = DescribeLogDirsRequest;

/// Topics per page when describing every topic.
const PAGE: usize = 1_000;
/// Partitions whose states one store transaction reads.
const STATES_PER_READ: usize = 1_000;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeLogDirsResponse> {
    let broker = ctx.broker;
    let log = &broker.log;
    let failed = |code: i16| {
        Some(
            DescribeLogDirsResponse::default()
                .with_error_code(if ctx.version >= 3 { code } else { 0 })
                .with_results(vec![
                    DescribeLogDirsResult::default()
                        .with_error_code(code)
                        .with_log_dir(s(broker.config.log_dir.clone())),
                ]),
        )
    };
    if !ctx.allowed(op::DESCRIBE, Resource::Cluster).await {
        return failed(crate::error_code::CLUSTER_AUTHORIZATION_FAILED);
    }
    let mut topics = Vec::new();
    match &req.topics {
        Some(asked) => {
            // (topic, the partitions asked for)
            let mut wanted: Vec<(Arc<TopicMeta>, Option<Vec<i32>>)> = Vec::new();
            for t in asked {
                match log.topics().get(&t.topic).await {
                    Ok(Some(m)) => wanted.push((m, Some(t.partitions.clone()))),
                    Ok(None) => {}
                    Err(e) => return failed(error_code::from_log_error(&e)),
                }
            }
            match describe(broker, wanted).await {
                Ok(t) => topics.extend(t),
                Err(e) => return failed(error_code::from_log_error(&e)),
            }
        }
        // Every topic, a page at a time.
        None => {
            let mut after: Option<String> = None;
            loop {
                let page = match log.topics().list(after.as_deref(), PAGE).await {
                    Ok(p) => p,
                    Err(e) => return failed(error_code::from_log_error(&e)),
                };
                let full = page.len() == PAGE;
                after = page.last().map(|t| t.name.clone());
                match describe(broker, page.into_iter().map(|m| (m, None)).collect()).await {
                    Ok(t) => topics.extend(t),
                    Err(e) => return failed(error_code::from_log_error(&e)),
                }
                if !full {
                    break;
                }
            }
        }
    }
    Some(DescribeLogDirsResponse::default().with_results(vec![
            DescribeLogDirsResult::default()
                .with_log_dir(s(broker.config.log_dir.clone()))
                .with_topics(topics)
                .with_total_bytes(-1)
                .with_usable_bytes(-1),
        ]))
}

/// The partitions of `wanted` (all of a topic's when None) that this broker leads, with their
/// sizes; topics it leads none of are left out. States are read a bounded batch at a time.
async fn describe(
    broker: &Broker,
    wanted: Vec<(Arc<TopicMeta>, Option<Vec<i32>>)>,
) -> LogResult<Vec<DescribeLogDirsTopic>> {
    let led: Vec<(Arc<TopicMeta>, Vec<PartitionId>)> = wanted
        .into_iter()
        .map(|(meta, parts)| {
            let led: Vec<PartitionId> = parts
                .unwrap_or_else(|| (0..meta.partitions).collect())
                .into_iter()
                .filter_map(|p| meta.partition(p))
                .filter(|p| broker.log.leadership().leads(*p))
                .collect();
            (meta, led)
        })
        .filter(|(_, led)| !led.is_empty())
        .collect();
    let all: Vec<PartitionId> = led.iter().flat_map(|(_, ps)| ps.iter().copied()).collect();
    let mut states = Vec::with_capacity(all.len());
    for chunk in all.chunks(STATES_PER_READ) {
        states.extend(broker.log.reader().partition_states(chunk).await?);
    }
    let mut states = states.into_iter();
    Ok(led
        .into_iter()
        .map(|(meta, ps)| {
            DescribeLogDirsTopic::default()
                .with_name(TopicName(s(meta.name.clone())))
                .with_partitions(
                    ps.iter()
                        .zip(states.by_ref())
                        .map(|(p, st)| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(p.partition)
                                .with_partition_size(st.bytes)
                                .with_offset_lag(0)
                                .with_is_future_key(false)
                        })
                        .collect(),
                )
        })
        .collect())
}
