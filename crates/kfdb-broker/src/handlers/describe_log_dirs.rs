//! DescribeLogDirs (key 35): each broker has one "log dir", its store (`log.dirs` in its broker
//! configs), and reports in it the partitions it leads with their sizes, read from the store
//! (monitoring tools and UIs show partition sizes from this). No offset lag: there are no replicas
//! to lag. Without a topic list, every topic (page by page); partitions led elsewhere are left out,
//! so an admin client asking every broker sees each partition once.

use super::{RequestCtx, Versions, s};
use crate::error_code;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kfdb_log::{PartitionId, TopicMeta};
use std::sync::Arc;

pub const KEY: ApiKey = ApiKey::DescribeLogDirs;
pub const VERSIONS: Versions = Versions::new(1, 4);
pub type Request = DescribeLogDirsRequest;

/// Topics per page when describing every topic.
const PAGE: usize = 1_000;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeLogDirsResponse> {
    let broker = ctx.broker;
    let log = &broker.log;
    // (topic, the partitions asked for; None: all).
    let mut wanted: Vec<(Arc<TopicMeta>, Option<Vec<i32>>)> = Vec::new();
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
    match &req.topics {
        Some(topics) => {
            for t in topics {
                match log.topics().get(&t.topic).await {
                    Ok(Some(m)) => wanted.push((m, Some(t.partitions.clone()))),
                    Ok(None) => {}
                    Err(e) => return failed(error_code::from_log_error(&e)),
                }
            }
        }
        None => {
            let mut after: Option<String> = None;
            loop {
                let page = match log.topics().list(after.as_deref(), PAGE).await {
                    Ok(p) => p,
                    Err(e) => return failed(error_code::from_log_error(&e)),
                };
                let full = page.len() == PAGE;
                after = page.last().map(|t| t.name.clone());
                wanted.extend(page.into_iter().map(|m| (m, None)));
                if !full {
                    break;
                }
            }
        }
    }
    let mut topics = Vec::new();
    for (meta, parts) in wanted {
        let led: Vec<PartitionId> = parts
            .unwrap_or_else(|| (0..meta.partitions).collect())
            .into_iter()
            .filter_map(|p| meta.partition(p))
            .filter(|p| broker.leader(*p) == Some(broker.node_id()))
            .collect();
        if led.is_empty() {
            continue;
        }
        let states = match log.reader().partition_states(&led).await {
            Ok(s) => s,
            Err(e) => return failed(error_code::from_log_error(&e)),
        };
        topics.push(
            DescribeLogDirsTopic::default()
                .with_name(TopicName(s(meta.name.clone())))
                .with_partitions(
                    led.iter()
                        .zip(states)
                        .map(|(p, st)| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(p.partition)
                                .with_partition_size(st.bytes)
                                .with_offset_lag(0)
                                .with_is_future_key(false)
                        })
                        .collect(),
                ),
        );
    }
    Some(DescribeLogDirsResponse::default().with_results(vec![
            DescribeLogDirsResult::default()
                .with_log_dir(s(broker.config.log_dir.clone()))
                .with_topics(topics)
                .with_total_bytes(-1)
                .with_usable_bytes(-1),
        ]))
}
