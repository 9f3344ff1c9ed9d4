//! OffsetFetch (key 9): a group's committed offsets, for named partitions or all; v8+ answers
//! several groups at once. With `require_stable` (v7+, sent by read_committed consumers) a
//! partition whose offset is pending in an open transaction answers UNSTABLE_OFFSET_COMMIT, and
//! the client retries until the transaction ends. ACLs: DESCRIBE on the group
//! (GROUP_AUTHORIZATION_FAILED); topics the client may not DESCRIBE are left out of "all", and
//! named ones answer TOPIC_AUTHORIZATION_FAILED.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kfdb_log::{CommittedOffset, Log, LogError, PartitionId};
use std::collections::BTreeMap;

pub const KEY: ApiKey = ApiKey::OffsetFetch;
pub const VERSIONS: Versions = Versions::new(1, 9);
pub type Request = OffsetFetchRequest;

/// (topic name → partition → committed offset or none, or an error code), for one group.
type Found = BTreeMap<String, BTreeMap<i32, Result<Option<CommittedOffset>, i16>>>;

async fn lookup(
    log: &Log,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Found, LogError> {
    let unstable = if require_stable {
        log.groups().unstable_offsets(group).await?
    } else {
        Vec::new()
    };
    let mut found: Found = BTreeMap::new();
    match wanted {
        Some(list) => {
            for (name, partitions) in list {
                let entry = found.entry(name.clone()).or_default();
                let Some(meta) = log.topics().get(&name).await? else {
                    for p in partitions {
                        entry.insert(p, Ok(None));
                    }
                    continue;
                };
                let keys: Vec<PartitionId> = partitions
                    .iter()
                    .map(|p| PartitionId::new(meta.id, *p))
                    .collect();
                let got = log.groups().fetch_offsets(group, Some(&keys)).await?;
                for id in keys {
                    if unstable.contains(&id) {
                        entry.insert(id.partition, Err(error_code::UNSTABLE_OFFSET_COMMIT));
                        continue;
                    }
                    let o = got.iter().find(|(q, _)| *q == id).map(|(_, o)| o.clone());
                    entry.insert(id.partition, Ok(o));
                }
            }
        }
        None => {
            for (id, o) in log.groups().fetch_offsets(group, None).await? {
                if let Some(meta) = log.topics().get_by_tid(id.tid).await? {
                    let value = if unstable.contains(&id) {
                        Err(error_code::UNSTABLE_OFFSET_COMMIT)
                    } else {
                        Ok(Some(o))
                    };
                    found
                        .entry(meta.name.clone())
                        .or_default()
                        .insert(id.partition, value);
                }
            }
        }
    }
    Ok(found)
}

/// Leave out (all topics asked) or refuse (named) the topics the client may not DESCRIBE.
async fn authorized(ctx: &RequestCtx<'_>, found: Found, named: bool) -> Found {
    let mut out = Found::new();
    for (name, mut ps) in found {
        if ctx.allowed(op::DESCRIBE, Resource::Topic(&name)).await {
            out.insert(name, ps);
        } else if named {
            for v in ps.values_mut() {
                *v = Err(error_code::TOPIC_AUTHORIZATION_FAILED);
            }
            out.insert(name, ps);
        }
    }
    out
}

fn parts(o: &Result<Option<CommittedOffset>, i16>, version: i16) -> (i64, i32, String, i16) {
    match o {
        Ok(Some(o)) => (
            o.offset,
            if version >= 5 { o.leader_epoch } else { -1 },
            o.metadata.clone(),
            error_code::NONE,
        ),
        Ok(None) => (-1, -1, String::new(), error_code::NONE),
        Err(code) => (-1, -1, String::new(), *code),
    }
}

/// The topics of an answer, in the per-group (v8+) or the single-group message types, which have
/// the same fields under different names.
macro_rules! response_topics {
    ($found:expr, $v:expr, $topic:ident, $partition:ident) => {
        $found
            .into_iter()
            .map(|(name, ps)| {
                $topic::default()
                    .with_name(TopicName(s(name)))
                    .with_partitions(
                        ps.iter()
                            .map(|(p, o)| {
                                let (off, epoch, meta, code) = parts(o, $v);
                                $partition::default()
                                    .with_partition_index(*p)
                                    .with_error_code(code)
                                    .with_committed_offset(off)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(s(meta)))
                            })
                            .collect(),
                    )
            })
            .collect()
    };
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<OffsetFetchResponse> {
    let log = &ctx.broker.log;
    let v = ctx.version;
    if v >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let wanted = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            if !ctx
                .allowed(op::DESCRIBE, Resource::Group(&g.group_id))
                .await
            {
                groups.push(group.with_error_code(error_code::GROUP_AUTHORIZATION_FAILED));
                continue;
            }
            if let Err(code) = ctx.broker.groups.check(&g.group_id) {
                groups.push(group.with_error_code(code));
                continue;
            }
            let named = wanted.is_some();
            let found = match lookup(log, &g.group_id, wanted, req.require_stable).await {
                Ok(found) => Ok(authorized(ctx, found, named).await),
                Err(e) => Err(e),
            };
            groups.push(match found {
                Ok(found) => group.with_topics(response_topics!(
                    found,
                    v,
                    OffsetFetchResponseTopics,
                    OffsetFetchResponsePartitions
                )),
                Err(e) => group.with_error_code(error_code::for_group(&e)),
            });
        }
        return Some(OffsetFetchResponse::default().with_groups(groups));
    }
    if !ctx
        .allowed(op::DESCRIBE, Resource::Group(&req.group_id))
        .await
    {
        return Some(
            OffsetFetchResponse::default().with_error_code(error_code::GROUP_AUTHORIZATION_FAILED),
        );
    }
    if let Err(code) = ctx.broker.groups.check(&req.group_id) {
        return Some(OffsetFetchResponse::default().with_error_code(code));
    }
    let wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let named = wanted.is_some();
    let found = match lookup(log, &req.group_id, wanted, v >= 7 && req.require_stable).await {
        Ok(found) => Ok(authorized(ctx, found, named).await),
        Err(e) => Err(e),
    };
    match found {
        Ok(found) => Some(OffsetFetchResponse::default().with_topics(response_topics!(
            found,
            v,
            OffsetFetchResponseTopic,
            OffsetFetchResponsePartition
        ))),
        Err(e) => {
            let r = OffsetFetchResponse::default();
            Some(if v >= 2 {
                r.with_error_code(error_code::for_group(&e))
            } else {
                r
            })
        }
    }
}
