//! `kfdb topic ...` over the Kafka protocol: list (paginated by DescribeTopicPartitions' cursor,
//! prefix-filtered, so it works with millions of topics), create and delete (many at once, in
//! batches, with a progress bar), describe (partitions, leaders, offsets, config overrides),
//! alter-config and add-partitions.

use super::{ConnArgs, Format, code_text, print_json, progress, table};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::describe_topic_partitions_request::{
    Cursor, DescribeTopicPartitionsRequest,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::{MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kfdb_client::{Client, Error};
use std::collections::BTreeMap;

/// Topics per CreateTopics/DeleteTopics request.
const BATCH: usize = 500;
/// Kafka's resource type of a topic (DescribeConfigs, IncrementalAlterConfigs).
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs' source of a topic's own override.
const TOPIC_CONFIG: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

/// Names given on the command line, or read one per line from standard input for `-`.
pub(crate) fn names_or_stdin(names: Vec<String>) -> Result<Vec<String>, String> {
    if names.len() == 1 && names[0] == "-" {
        use std::io::BufRead;
        return std::io::stdin()
            .lock()
            .lines()
            .map(|l| l.map(|l| l.trim().to_string()).map_err(|e| e.to_string()))
            .filter(|l| !matches!(l, Ok(l) if l.is_empty()))
            .collect();
    }
    Ok(names)
}

/// `kfdb topic list`: names (and partition counts) in order, from `after` or `prefix`.
pub(crate) async fn list(
    conn: &ConnArgs,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<(), String> {
    let mut client = conn.client().await?;
    let prefix = prefix.unwrap_or("");
    let start = match after {
        Some(a) if a >= prefix => a.to_string(),
        _ => prefix.to_string(),
    };
    let mut cursor = (!start.is_empty()).then(|| (start.clone(), 0));
    let mut topics: Vec<(String, usize)> = Vec::new();
    let limit = limit.unwrap_or(usize::MAX);
    let mut json = Vec::new();
    'pages: loop {
        let request = DescribeTopicPartitionsRequest::default()
            .with_response_partition_limit(2000)
            .with_cursor(cursor.take().map(|(t, p): (String, i32)| {
                Cursor::default()
                    .with_topic_name(name(&t))
                    .with_partition_index(p)
            }));
        let answer = match client.call(&request, 0).await {
            Ok(a) => a,
            Err(Error::Unsupported(_)) => {
                return list_by_metadata(conn, &mut client, prefix, after, limit).await;
            }
            Err(e) => return Err(e.to_string()),
        };
        for t in &answer.topics {
            if t.error_code == 3 {
                // UNKNOWN_TOPIC_OR_PARTITION: deleted while listing.
                continue;
            }
            let n = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if after == Some(n.as_str()) {
                continue;
            }
            if !n.starts_with(prefix) {
                if n.as_str() > prefix {
                    break 'pages;
                }
                continue;
            }
            match topics.last_mut() {
                Some((last, count)) if *last == n => *count += t.partitions.len(),
                _ => {
                    if topics.len() >= limit {
                        break 'pages;
                    }
                    topics.push((n, t.partitions.len()));
                }
            }
        }
        // Print all but the last topic of the page (its partitions may go on in the next).
        let done = answer.next_cursor.is_none();
        let keep = if done { 0 } else { 1.min(topics.len()) };
        for (n, count) in topics.drain(..topics.len() - keep) {
            match conn.format {
                Format::Table => println!("{n}"),
                Format::Json => json.push(serde_json::json!({"name": n, "partitions": count})),
            }
        }
        match answer.next_cursor {
            Some(c) => cursor = Some((c.topic_name.0.to_string(), c.partition_index)),
            None => break,
        }
    }
    for (n, count) in topics {
        match conn.format {
            Format::Table => println!("{n}"),
            Format::Json => json.push(serde_json::json!({"name": n, "partitions": count})),
        }
    }
    if conn.format == Format::Json {
        print_json(&serde_json::Value::Array(json));
    }
    Ok(())
}

/// `list` on a broker without DescribeTopicPartitions: one Metadata request for every topic.
async fn list_by_metadata(
    conn: &ConnArgs,
    client: &mut Client,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(), String> {
    let md = client.metadata(None).await.map_err(|e| e.to_string())?;
    let mut topics: Vec<(String, usize)> = md
        .topics
        .iter()
        .filter_map(|t| {
            t.name
                .as_ref()
                .map(|n| (n.0.to_string(), t.partitions.len()))
        })
        .filter(|(n, _)| n.starts_with(prefix) && after.is_none_or(|a| n.as_str() > a))
        .collect();
    topics.sort();
    topics.truncate(limit);
    match conn.format {
        Format::Table => topics.iter().for_each(|(n, _)| println!("{n}")),
        Format::Json => print_json(&serde_json::json!(
            topics
                .iter()
                .map(|(n, c)| serde_json::json!({"name": n, "partitions": c}))
                .collect::<Vec<_>>()
        )),
    }
    Ok(())
}

/// `kfdb topic create`: every name, in batches; existing topics are an error unless
/// `if_not_exists`.
pub(crate) async fn create(
    conn: &ConnArgs,
    names: Vec<String>,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
    if_not_exists: bool,
) -> Result<(), String> {
    let names = names_or_stdin(names)?;
    let mut client = conn.client().await?;
    let bar = (names.len() > 1).then(|| progress(names.len() as u64, "creating topics"));
    let mut failed = Vec::new();
    let mut created = Vec::new();
    for chunk in names.chunks(BATCH) {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                chunk
                    .iter()
                    .map(|n| {
                        CreatableTopic::default()
                            .with_name(name(n))
                            .with_num_partitions(partitions)
                            .with_replication_factor(replication_factor)
                            .with_configs(
                                configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(s(k))
                                            .with_value(Some(s(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let answer = client.call(&request, 7).await.map_err(|e| e.to_string())?;
        for t in answer.topics {
            let code = t.error_code;
            if code == 0 || (if_not_exists && code == 36) {
                created.push((t.name.0.to_string(), t.num_partitions, code == 36));
            } else {
                failed.push((
                    t.name.0.to_string(),
                    code_text(code, t.error_message.as_deref()),
                ));
            }
        }
        if let Some(b) = &bar {
            b.inc(chunk.len() as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match conn.format {
        Format::Json => print_json(&serde_json::json!({
            "created": created.iter().map(|(n, p, existed)| serde_json::json!({"name": n, "partitions": p, "existed": existed})).collect::<Vec<_>>(),
            "failed": failed.iter().map(|(n, e)| serde_json::json!({"name": n, "error": e})).collect::<Vec<_>>(),
        })),
        Format::Table => {
            for (n, p, existed) in &created {
                if *existed {
                    println!("{n}: exists");
                } else if *p > 0 {
                    println!("{n}: created with {p} partitions");
                } else {
                    println!("{n}: created");
                }
            }
            for (n, e) in &failed {
                eprintln!("{n}: {e}");
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} topics not created",
            failed.len(),
            names.len()
        ))
    }
}

/// `kfdb topic delete`: every name, in batches.
pub(crate) async fn delete(conn: &ConnArgs, names: Vec<String>) -> Result<(), String> {
    let names = names_or_stdin(names)?;
    let mut client = conn.client().await?;
    let bar = (names.len() > 1).then(|| progress(names.len() as u64, "deleting topics"));
    let mut failed = Vec::new();
    let mut deleted = Vec::new();
    for chunk in names.chunks(BATCH) {
        // v6 names topics in `topics` (by name or id); older versions in `topic_names`.
        let version = client
            .version::<DeleteTopicsRequest>(6)
            .map_err(|e| e.to_string())?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(30_000);
        if version >= 6 {
            request.topics = chunk
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(name(n))))
                .collect();
        } else {
            request.topic_names = chunk.iter().map(|n| name(n)).collect();
        }
        let answer = client
            .call(&request, version)
            .await
            .map_err(|e| e.to_string())?;
        for r in answer.responses {
            let n = r.name.map(|n| n.0.to_string()).unwrap_or_default();
            if r.error_code == 0 {
                deleted.push(n);
            } else {
                failed.push((n, code_text(r.error_code, r.error_message.as_deref())));
            }
        }
        if let Some(b) = &bar {
            b.inc(chunk.len() as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match conn.format {
        Format::Json => print_json(&serde_json::json!({
            "deleted": deleted,
            "failed": failed.iter().map(|(n, e)| serde_json::json!({"name": n, "error": e})).collect::<Vec<_>>(),
        })),
        Format::Table => {
            for n in &deleted {
                println!("{n}: deleted");
            }
            for (n, e) in &failed {
                eprintln!("{n}: {e}");
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} topics not deleted",
            failed.len(),
            names.len()
        ))
    }
}

/// Each partition's log start and high watermark (ListOffsets at each leader).
pub(crate) async fn offsets(
    client: &mut Client,
    md: &MetadataResponse,
    topic: &str,
) -> Result<BTreeMap<i32, (i64, i64)>, String> {
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .ok_or_else(|| format!("{topic}: no such topic"))?;
    let partitions: std::collections::BTreeSet<(String, i32)> = t
        .partitions
        .iter()
        .map(|p| (topic.to_string(), p.partition_index))
        .collect();
    let start = client
        .offsets_at(&partitions, -2)
        .await
        .map_err(|e| e.to_string())?;
    let end = client
        .offsets_at(&partitions, -1)
        .await
        .map_err(|e| e.to_string())?;
    Ok(start
        .into_iter()
        .map(|((_, p), s)| {
            (
                p,
                (s, end.get(&(topic.to_string(), p)).copied().unwrap_or(s)),
            )
        })
        .collect())
}

/// `kfdb topic describe`: id, partitions with leaders and offsets, config overrides.
pub(crate) async fn describe(conn: &ConnArgs, topic: &str) -> Result<(), String> {
    let mut client = conn.client().await?;
    let md = client
        .metadata(Some(&[topic.to_string()]))
        .await
        .map_err(|e| e.to_string())?;
    let t = md
        .topics
        .first()
        .ok_or_else(|| format!("{topic}: no answer"))?;
    Error::check(t.error_code, None, topic).map_err(|e| e.to_string())?;
    let offsets = offsets(&mut client, &md, topic).await?;
    let configs = client
        .call(
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(s(topic))
                    .with_configuration_keys(None),
            ]),
            4,
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut overrides = Vec::new();
    for r in configs.results {
        Error::check(r.error_code, r.error_message.as_deref(), topic).map_err(|e| e.to_string())?;
        for c in r.configs {
            if c.config_source == TOPIC_CONFIG {
                let v = if c.is_sensitive {
                    "(sensitive)".to_string()
                } else {
                    c.value.map(|v| v.to_string()).unwrap_or_default()
                };
                overrides.push((c.name.to_string(), v));
            }
        }
    }
    let mut partitions: Vec<_> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    match conn.format {
        Format::Json => print_json(&serde_json::json!({
            "name": topic,
            "id": t.topic_id.to_string(),
            "partitions": partitions.iter().map(|p| {
                let (start, end) = offsets.get(&p.partition_index).copied().unwrap_or((0, 0));
                serde_json::json!({"partition": p.partition_index, "leader": p.leader_id.0,
                    "leader_epoch": p.leader_epoch, "log_start_offset": start, "high_watermark": end})
            }).collect::<Vec<_>>(),
            "configs": overrides.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        })),
        Format::Table => {
            println!(
                "topic: {topic}\nid: {}\npartitions: {}",
                t.topic_id,
                partitions.len()
            );
            for (k, v) in &overrides {
                println!("config: {k}={v}");
            }
            println!();
            let rows: Vec<Vec<String>> = partitions
                .iter()
                .map(|p| {
                    let (start, end) = offsets.get(&p.partition_index).copied().unwrap_or((0, 0));
                    vec![
                        p.partition_index.to_string(),
                        p.leader_id.0.to_string(),
                        p.leader_epoch.to_string(),
                        start.to_string(),
                        end.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "PARTITION",
                        "LEADER",
                        "EPOCH",
                        "LOG-START",
                        "HIGH-WATERMARK"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}

/// `kfdb topic alter-config`: set and delete overrides (IncrementalAlterConfigs).
pub(crate) async fn alter_config(
    conn: &ConnArgs,
    topic: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), String> {
    if set.is_empty() && delete.is_empty() {
        return Err("nothing to change: give --set NAME=VALUE or --delete NAME".into());
    }
    let mut client = conn.client().await?;
    let configs = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(0)
                .with_value(Some(s(v)))
        })
        .chain(delete.iter().map(|k| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(1)
        }))
        .collect();
    let answer = client
        .call(
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(s(topic))
                    .with_configs(configs),
            ]),
            1,
        )
        .await
        .map_err(|e| e.to_string())?;
    for r in answer.responses {
        Error::check(r.error_code, r.error_message.as_deref(), topic).map_err(|e| e.to_string())?;
    }
    match conn.format {
        Format::Json => print_json(&serde_json::json!({"topic": topic, "altered": true})),
        Format::Table => println!("{topic}: configs altered"),
    }
    Ok(())
}

/// `kfdb topic add-partitions`: grow a topic to `total` partitions.
pub(crate) async fn add_partitions(conn: &ConnArgs, topic: &str, total: i32) -> Result<(), String> {
    let mut client = conn.client().await?;
    let answer = client
        .call(
            &CreatePartitionsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(name(topic))
                        .with_count(total)
                        .with_assignments(None),
                ]),
            3,
        )
        .await
        .map_err(|e| e.to_string())?;
    for r in answer.results {
        Error::check(r.error_code, r.error_message.as_deref(), topic).map_err(|e| e.to_string())?;
    }
    match conn.format {
        Format::Json => print_json(&serde_json::json!({"topic": topic, "partitions": total})),
        Format::Table => println!("{topic}: {total} partitions"),
    }
    Ok(())
}
