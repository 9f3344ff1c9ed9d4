//! `kfdb group ...` over the Kafka protocol: list (every broker's groups), describe (state,
//! members and, per partition, committed offset, log end and lag — as Kafka's
//! kafka-consumer-groups shows them), reset-offsets (a plan, applied with --execute, only while
//! the group has no members, as Kafka requires) and delete.

use super::{ConnArgs, Format, code_text, print_json, table};
use bytes::Buf;
use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::{ConsumerProtocolAssignment, GroupId};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kfdb_client::{Client, Error};
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's GROUP_ID_NOT_FOUND: ConsumerGroupDescribe's answer for a classic group.
const GROUP_ID_NOT_FOUND: i16 = 69;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

type Tp = (String, i32);

/// One partition of `describe`: committed offset, log end, lag, and its member (id, client id,
/// host), if assigned.
type OffsetRow<'a> = (
    Tp,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<&'a (String, String, String)>,
);

/// How `reset-offsets` picks each partition's new offset.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    ShiftBy(i64),
    Timestamp(i64),
}

/// `kfdb group list`: groups of every broker, with their type and state.
pub(crate) async fn list(conn: &ConnArgs) -> Result<(), String> {
    let mut client = conn.client().await?;
    client
        .metadata(Some(&[]))
        .await
        .map_err(|e| e.to_string())?;
    let nodes: Vec<i32> = client.brokers().keys().copied().collect();
    let mut groups: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for node in nodes {
        let answer = client
            .call_node(node, &ListGroupsRequest::default(), 5)
            .await
            .map_err(|e| e.to_string())?;
        Error::check(answer.error_code, None, "ListGroups").map_err(|e| e.to_string())?;
        for g in answer.groups {
            groups.insert(
                g.group_id.0.to_string(),
                (
                    g.group_type.to_string(),
                    g.protocol_type.to_string(),
                    g.group_state.to_string(),
                ),
            );
        }
    }
    match conn.format {
        Format::Json => print_json(&serde_json::json!(
            groups
                .iter()
                .map(|(g, (ty, proto, state))| serde_json::json!({
                    "group": g, "type": ty, "protocol_type": proto, "state": state,
                }))
                .collect::<Vec<_>>()
        )),
        Format::Table => {
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|(g, (ty, proto, state))| {
                    vec![g.clone(), ty.clone(), proto.clone(), state.clone()]
                })
                .collect();
            print!("{}", table(&["GROUP", "TYPE", "PROTOCOL", "STATE"], &rows));
        }
    }
    Ok(())
}

/// A group's description: state and members (member id, client id, host, assigned partitions).
struct Described {
    kind: &'static str,
    state: String,
    members: Vec<(String, String, String, Vec<Tp>)>,
}

async fn describe_group(client: &mut Client, node: i32, group: &str) -> Result<Described, String> {
    let consumer = client
        .call_node(
            node,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
            1,
        )
        .await;
    if let Ok(answer) = consumer
        && let Some(g) = answer.groups.into_iter().next()
        && g.error_code != GROUP_ID_NOT_FOUND
    {
        Error::check(g.error_code, g.error_message.as_deref(), group).map_err(|e| e.to_string())?;
        return Ok(Described {
            kind: "consumer",
            state: g.group_state.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| {
                    let parts = m
                        .assignment
                        .topic_partitions
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| (t.topic_name.0.to_string(), *p))
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    (
                        m.member_id.to_string(),
                        m.client_id.to_string(),
                        m.client_host.to_string(),
                        parts,
                    )
                })
                .collect(),
        });
    }
    let answer = client
        .call_node(
            node,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
            5,
        )
        .await
        .map_err(|e| e.to_string())?;
    let g = answer
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| format!("{group}: no answer"))?;
    Error::check(g.error_code, g.error_message.as_deref(), group).map_err(|e| e.to_string())?;
    let consumer_protocol = g.protocol_type.as_str() == "consumer";
    Ok(Described {
        kind: "classic",
        state: g.group_state.to_string(),
        members: g
            .members
            .into_iter()
            .map(|m| {
                let parts = if consumer_protocol {
                    assigned(&m.member_assignment)
                } else {
                    Vec::new()
                };
                (
                    m.member_id.to_string(),
                    m.client_id.to_string(),
                    m.client_host.to_string(),
                    parts,
                )
            })
            .collect(),
    })
}

/// The partitions of a classic consumer member's assignment (Kafka's consumer protocol bytes).
fn assigned(bytes: &bytes::Bytes) -> Vec<Tp> {
    let mut b = bytes.clone();
    if b.remaining() < 2 {
        return Vec::new();
    }
    let version = b.get_i16();
    match ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic.0.to_string(), *p))
                    .collect::<Vec<_>>()
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Committed offsets of a group (every partition it committed).
async fn committed(client: &mut Client, group: &str) -> Result<BTreeMap<Tp, i64>, String> {
    client
        .committed_offsets(group, None)
        .await
        .map_err(|e| e.to_string())
}

/// The offset of each partition at `timestamp` (kfdb-client's ListOffsets at each leader).
async fn offsets_at(
    client: &mut Client,
    partitions: &BTreeSet<Tp>,
    timestamp: i64,
) -> Result<BTreeMap<Tp, i64>, String> {
    client
        .offsets_at(partitions, timestamp)
        .await
        .map_err(|e| e.to_string())
}

/// `kfdb group describe`: state, members, and per partition the committed offset, log end and lag.
pub(crate) async fn describe(conn: &ConnArgs, group: &str) -> Result<(), String> {
    let mut client = conn.client().await?;
    let node = client
        .coordinator(group, 0)
        .await
        .map_err(|e| e.to_string())?;
    let described = describe_group(&mut client, node, group).await?;
    let committed = committed(&mut client, group).await?;
    let mut owner: BTreeMap<Tp, (String, String, String)> = BTreeMap::new();
    for (member, client_id, host, parts) in &described.members {
        for tp in parts {
            owner.insert(
                tp.clone(),
                (member.clone(), client_id.clone(), host.clone()),
            );
        }
    }
    let partitions: BTreeSet<Tp> = committed.keys().chain(owner.keys()).cloned().collect();
    let ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        offsets_at(&mut client, &partitions, -1).await?
    };
    let rows: Vec<OffsetRow> = partitions
        .iter()
        .map(|tp| {
            let c = committed.get(tp).copied();
            let end = ends.get(tp).copied();
            let lag = match (c, end) {
                (Some(c), Some(e)) => Some((e - c).max(0)),
                _ => None,
            };
            (tp.clone(), c, end, lag, owner.get(tp))
        })
        .collect();
    let total: i64 = rows.iter().filter_map(|r| r.3).sum();
    match conn.format {
        Format::Json => print_json(&serde_json::json!({
            "group": group,
            "type": described.kind,
            "state": described.state,
            "coordinator": node,
            "members": described.members.iter().map(|(m, c, h, parts)| serde_json::json!({
                "member_id": m, "client_id": c, "host": h,
                "partitions": parts.iter().map(|(t, p)| serde_json::json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "offsets": rows.iter().map(|((t, p), c, e, lag, o)| serde_json::json!({
                "topic": t, "partition": p, "committed_offset": c, "log_end_offset": e, "lag": lag,
                "member_id": o.map(|o| o.0.clone()),
            })).collect::<Vec<_>>(),
            "total_lag": total,
        })),
        Format::Table => {
            println!(
                "group: {group}\ntype: {}\nstate: {}\ncoordinator: {node}\nmembers: {}\ntotal lag: {total}\n",
                described.kind,
                described.state,
                described.members.len()
            );
            let dash = || "-".to_string();
            let table_rows: Vec<Vec<String>> = rows
                .iter()
                .map(|((t, p), c, e, lag, o)| {
                    vec![
                        t.clone(),
                        p.to_string(),
                        c.map(|v| v.to_string()).unwrap_or_else(dash),
                        e.map(|v| v.to_string()).unwrap_or_else(dash),
                        lag.map(|v| v.to_string()).unwrap_or_else(dash),
                        o.map(|o| o.0.clone()).unwrap_or_else(dash),
                        o.map(|o| o.2.clone()).unwrap_or_else(dash),
                        o.map(|o| o.1.clone()).unwrap_or_else(dash),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "TOPIC",
                        "PARTITION",
                        "CURRENT-OFFSET",
                        "LOG-END-OFFSET",
                        "LAG",
                        "CONSUMER-ID",
                        "HOST",
                        "CLIENT-ID"
                    ],
                    &table_rows
                )
            );
        }
    }
    Ok(())
}

/// `kfdb group reset-offsets`: the new offset of each partition of `topics` (TOPIC or
/// TOPIC:P,P...; none: every partition the group committed); committed only with `execute`.
pub(crate) async fn reset_offsets(
    conn: &ConnArgs,
    group: &str,
    topics: &[String],
    to: ResetTo,
    execute: bool,
) -> Result<(), String> {
    let mut client = conn.client().await?;
    let current = committed(&mut client, group).await?;
    let mut partitions: BTreeSet<Tp> = BTreeSet::new();
    if topics.is_empty() {
        partitions.extend(current.keys().cloned());
    }
    for spec in topics {
        match spec.split_once(':') {
            Some((t, ps)) => {
                for p in ps.split(',') {
                    let p = p
                        .trim()
                        .parse::<i32>()
                        .map_err(|_| format!("{spec}: expected TOPIC:PARTITION,PARTITION..."))?;
                    partitions.insert((t.to_string(), p));
                }
            }
            None => {
                let md = client
                    .metadata(Some(std::slice::from_ref(spec)))
                    .await
                    .map_err(|e| e.to_string())?;
                for t in &md.topics {
                    Error::check(t.error_code, None, spec).map_err(|e| e.to_string())?;
                    for p in &t.partitions {
                        partitions.insert((spec.clone(), p.partition_index));
                    }
                }
            }
        }
    }
    if partitions.is_empty() {
        return Err(format!("{group}: no partitions to reset (give --topic)"));
    }
    let earliest = offsets_at(&mut client, &partitions, -2).await?;
    let latest = offsets_at(&mut client, &partitions, -1).await?;
    let at_time = match to {
        ResetTo::Timestamp(ts) => Some(offsets_at(&mut client, &partitions, ts).await?),
        _ => None,
    };
    let mut plan: Vec<(Tp, i64)> = Vec::new();
    for tp in &partitions {
        let (lo, hi) = (earliest[tp], latest[tp]);
        let target = match to {
            ResetTo::Earliest => lo,
            ResetTo::Latest => hi,
            ResetTo::Offset(o) => o,
            ResetTo::ShiftBy(n) => current.get(tp).copied().unwrap_or(lo).saturating_add(n),
            ResetTo::Timestamp(_) => {
                let o = at_time
                    .as_ref()
                    .and_then(|m| m.get(tp))
                    .copied()
                    .unwrap_or(-1);
                if o < 0 { hi } else { o }
            }
        };
        // As Kafka's tool: an offset outside the log is moved to its nearest end.
        plan.push((tp.clone(), target.clamp(lo, hi)));
    }
    let mut failures = Vec::new();
    if execute {
        let wanted: BTreeMap<Tp, i64> = plan.iter().cloned().collect();
        for ((t, p), code) in client
            .commit_offsets(group, &wanted)
            .await
            .map_err(|e| e.to_string())?
        {
            if code != 0 {
                failures.push(format!("{t}-{p}: {}", code_text(code, None)));
            }
        }
    }
    match conn.format {
        Format::Json => print_json(&serde_json::json!({
            "group": group,
            "executed": execute && failures.is_empty(),
            "offsets": plan.iter().map(|((t, p), o)| serde_json::json!({
                "topic": t, "partition": p, "new_offset": o,
                "previous_offset": current.get(&(t.clone(), *p)),
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|((t, p), o)| {
                    vec![
                        t.clone(),
                        p.to_string(),
                        current
                            .get(&(t.clone(), *p))
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into()),
                        o.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"],
                    &rows
                )
            );
            if !execute {
                println!(
                    "\n(a plan only: add --execute to commit it; the group must have no members)"
                );
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{group}: offsets not committed (a group with members cannot be reset): {}",
            failures.join("; ")
        ))
    }
}

/// `kfdb group delete`: each group at its coordinator.
pub(crate) async fn delete(conn: &ConnArgs, groups: &[String]) -> Result<(), String> {
    let mut client = conn.client().await?;
    let mut failed = Vec::new();
    let mut deleted = Vec::new();
    for group in groups {
        let node = client
            .coordinator(group, 0)
            .await
            .map_err(|e| e.to_string())?;
        let answer = client
            .call_node(
                node,
                &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]),
                2,
            )
            .await
            .map_err(|e| e.to_string())?;
        for r in answer.results {
            if r.error_code == 0 {
                deleted.push(r.group_id.0.to_string());
            } else {
                failed.push((r.group_id.0.to_string(), code_text(r.error_code, None)));
            }
        }
    }
    match conn.format {
        Format::Json => print_json(&serde_json::json!({
            "deleted": deleted,
            "failed": failed.iter().map(|(g, e)| serde_json::json!({"group": g, "error": e})).collect::<Vec<_>>(),
        })),
        Format::Table => {
            deleted.iter().for_each(|g| println!("{g}: deleted"));
            failed.iter().for_each(|(g, e)| eprintln!("{g}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} groups not deleted",
            failed.len(),
            groups.len()
        ))
    }
}
