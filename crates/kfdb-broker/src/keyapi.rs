//! kfdb's own HTTP API (`kfdb serve --http-listen`, off by default): reading the latest record
//! of a key, which Kafka cannot do, from the key index of compacted (and `kfdb.key.index`)
//! topics. Documented in docs/http-api.md.
//!
//! - `GET /v1/topics/{topic}/keys/{key}` (`{key}` percent-encoded bytes; `?partition=N`, else
//!   the partition Kafka's default partitioner picks for the key): `200` with the record as JSON
//!   (key, value and header values base64), or the raw value with `Accept:
//!   application/octet-stream` (offset, partition and timestamp in `kfdb-*` headers); `404` when
//!   the topic, partition or key is unknown or the key's latest record is a tombstone; `400` for
//!   a topic without a key index; `503` when the store fails.
//!
//! - `POST /v1/topics/{topic}/partitions/{p}/records`: append records (JSON, base64 keys, values
//!   and header values), optionally only if the partition's end offset is still
//!   `expected_end_offset` or a key's latest offset is still `expected_key_offset` (-1: the key has
//!   no record) — checked inside the append's own store transaction, so exact with any number of
//!   brokers; `409` with the current value when it does not hold. The records are ordinary Kafka
//!   records to consumers.
//!
//! Reads are strongly consistent: a lookup after an acknowledged acks=all produce returns that
//! record, on any broker of the cluster (one store transaction, `PartitionReader::latest_by_key`).

use crate::http::{Reply, reply};
use crate::node::LocalCluster;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use kfdb_log::batch::NewRecord;
use kfdb_log::{Condition, KeyedRecord, Log, LogError, StoreFault, default_partition};
use percent_encoding::percent_decode_str;
use serde_json::json;
use std::sync::Arc;

/// Serve the API on `addr` until the task is dropped, reading through any running broker.
pub async fn serve_api(
    listener: tokio::net::TcpListener,
    cluster: Arc<LocalCluster>,
) -> std::io::Result<()> {
    crate::http::serve(listener, "HTTP API (keys)", cluster, |c, req| async move {
        route(&c, req).await
    })
    .await
}

fn json_reply(status: StatusCode, body: serde_json::Value) -> Reply {
    let mut r = reply(status, format!("{body}\n"));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, code: &str, message: String) -> Reply {
    json_reply(status, json!({ "error": code, "message": message }))
}

async fn route(cluster: &LocalCluster, req: Request<Incoming>) -> Reply {
    // Split the raw path: a percent-encoded '/' inside a key stays part of the key.
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (topic, key) = match (req.method(), parts.as_slice()) {
        (&Method::GET, ["v1", "topics", topic, "keys", key]) => (*topic, *key),
        (&Method::POST, ["v1", "topics", topic, "partitions", partition, "records"]) => {
            let (topic, partition) = (topic.to_string(), partition.to_string());
            return post_records(cluster, &topic, &partition, req).await;
        }
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no route {path}"),
            );
        }
    };
    let Ok(topic) = percent_decode_str(topic).decode_utf8() else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "the topic name is not UTF-8".into(),
        );
    };
    let key: Vec<u8> = percent_decode_str(key).collect();
    let partition = match req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("partition="))
        .map(str::parse::<i32>)
    {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "partition is not an integer".into(),
            );
        }
    };
    let raw = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/octet-stream"));
    // Any running broker reads the whole store.
    let Some(broker) = cluster.running_brokers().await.into_iter().next() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "BROKER_NOT_AVAILABLE",
            "no broker of this process is running".into(),
        );
    };
    match lookup(&broker.log, &topic, &key, partition).await {
        Ok(Some(r)) if r.value.is_some() => found(&topic, &key, r, raw),
        Ok(Some(r)) => error(
            StatusCode::NOT_FOUND,
            "KEY_DELETED",
            format!(
                "the latest record of the key (partition {}, offset {}) is a tombstone",
                r.partition, r.offset
            ),
        ),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "KEY_NOT_FOUND",
            "the key has no record in that partition".into(),
        ),
        Err(e) => failed(e),
    }
}

async fn lookup(
    log: &Log,
    topic: &str,
    key: &[u8],
    partition: Option<i32>,
) -> Result<Option<KeyedRecord>, LogError> {
    let meta = log
        .topics()
        .get(topic)
        .await?
        .ok_or(LogError::UnknownTopic)?;
    let partition = partition.unwrap_or_else(|| default_partition(key, meta.partitions));
    log.reader().latest_by_key(&meta, partition, key).await
}

fn found(topic: &str, key: &[u8], r: KeyedRecord, raw: bool) -> Reply {
    let value = r.value.clone().unwrap_or_default();
    if raw {
        let mut resp = Response::new(Full::new(value));
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert("kfdb-partition", HeaderValue::from(r.partition));
        h.insert("kfdb-offset", HeaderValue::from(r.offset));
        h.insert("kfdb-timestamp", HeaderValue::from(r.timestamp));
        return resp;
    }
    let headers: Vec<serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v.as_ref().map(|v| BASE64.encode(v)) }))
        .collect();
    json_reply(
        StatusCode::OK,
        json!({
            "topic": topic,
            "partition": r.partition,
            "offset": r.offset,
            "timestamp": r.timestamp,
            "key": BASE64.encode(key),
            "value": BASE64.encode(&value),
            "headers": headers,
        }),
    )
}

/// Largest request body the append accepts (a batch must fit `max.message.bytes` anyway).
const MAX_BODY: usize = 16 * 1024 * 1024;

fn bad(message: impl Into<String>) -> Reply {
    error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message.into())
}

/// A base64 field of a JSON object: `None` for JSON null or absent.
fn b64_field(v: &serde_json::Value, name: &str) -> Result<Option<Bytes>, String> {
    match v.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => BASE64
            .decode(s)
            .map(|b| Some(Bytes::from(b)))
            .map_err(|e| format!("{name} is not base64: {e}")),
        Some(_) => Err(format!("{name} must be a base64 string or null")),
    }
}

/// The records of a POST body as one v2 batch (no producer id, timestamps now, uncompressed).
fn batch_of(body: &serde_json::Value) -> Result<Vec<kfdb_log::batch::Batch>, String> {
    let items = body
        .get("records")
        .and_then(|r| r.as_array())
        .filter(|r| !r.is_empty())
        .ok_or("records must be a non-empty array")?;
    let now = kfdb_log::now_ms();
    let mut records = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut headers = Vec::new();
        for h in item
            .get("headers")
            .and_then(|h| h.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let name = h
                .get("key")
                .and_then(|k| k.as_str())
                .ok_or(format!("record {i}: a header needs a string key"))?;
            headers.push((name.to_string(), b64_field(h, "value")?));
        }
        records.push(NewRecord {
            key: b64_field(item, "key").map_err(|e| format!("record {i}: {e}"))?,
            value: b64_field(item, "value").map_err(|e| format!("record {i}: {e}"))?,
            headers,
            timestamp: now,
        });
    }
    kfdb_log::batch::new_batch(&records, kafka_protocol::records::Compression::None)
        .map_err(|e| e.to_string())
}

/// The condition of a POST body, if it names one.
fn condition_of(body: &serde_json::Value) -> Result<Option<Condition>, String> {
    let end = body.get("expected_end_offset").filter(|v| !v.is_null());
    let key = body.get("expected_key_offset").filter(|v| !v.is_null());
    match (end, key) {
        (Some(_), Some(_)) => {
            Err("give expected_end_offset or expected_key_offset, not both".into())
        }
        (Some(e), None) => e
            .as_i64()
            .map(|o| Some(Condition::EndOffset(o)))
            .ok_or_else(|| "expected_end_offset must be an integer".into()),
        (None, Some(k)) => {
            let key = b64_field(k, "key")?.ok_or("expected_key_offset needs a key")?;
            let offset = k
                .get("offset")
                .and_then(|o| o.as_i64())
                .ok_or("expected_key_offset needs an integer offset (-1: no record)")?;
            Ok(Some(Condition::KeyOffset { key, offset }))
        }
        (None, None) => Ok(None),
    }
}

async fn post_records(
    cluster: &LocalCluster,
    topic: &str,
    partition: &str,
    req: Request<Incoming>,
) -> Reply {
    use http_body_util::BodyExt;
    let Ok(topic) = percent_decode_str(topic).decode_utf8() else {
        return bad("the topic name is not UTF-8");
    };
    let Ok(partition) = partition.parse::<i32>() else {
        return bad("the partition is not an integer");
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "MESSAGE_TOO_LARGE",
                format!("the body is over {MAX_BODY} bytes"),
            );
        }
        Err(e) => return bad(format!("the body could not be read: {e}")),
    };
    let body: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("the body is not JSON: {e}")),
    };
    let (batches, condition) = match (batch_of(&body), condition_of(&body)) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    // The append runs on the partition's leader: in this process, the running broker leading it.
    let brokers = cluster.running_brokers().await;
    let Some(any) = brokers.first() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "BROKER_NOT_AVAILABLE",
            "no broker of this process is running".into(),
        );
    };
    let meta = match any.log.topics().get(&topic).await {
        Ok(Some(m)) => m,
        Ok(None) => return failed(LogError::UnknownTopic),
        Err(e) => return failed(e),
    };
    let Some(p) = meta.partition(partition) else {
        return failed(LogError::UnknownPartition);
    };
    let Some(leader) = brokers.iter().find(|b| b.log.leadership().leads(p)) else {
        let node = any.log.leadership().leader(p).unwrap_or(-1);
        return json_reply(
            StatusCode::MISDIRECTED_REQUEST,
            json!({
                "error": "NOT_LEADER_OR_FOLLOWER",
                "message": "another broker leads the partition: send it there",
                "leader": node,
            }),
        );
    };
    let writers = leader.log.writers();
    let appended = match condition.clone() {
        Some(c) => writers.append_if(&meta, partition, batches, c).await,
        None => writers.append(&meta, partition, batches).await,
    };
    match appended {
        Ok(r) => {
            let count = body["records"].as_array().map_or(0, Vec::len) as i64;
            json_reply(
                StatusCode::OK,
                json!({
                    "topic": &*topic,
                    "partition": partition,
                    "base_offset": r.base_offset,
                    "end_offset": r.base_offset + count,
                }),
            )
        }
        Err(LogError::ConditionFailed { current }) => {
            let what = match condition {
                Some(Condition::EndOffset(_)) => "the partition's end offset",
                _ => "the key's latest offset",
            };
            json_reply(
                StatusCode::CONFLICT,
                json!({
                    "error": "CONDITION_FAILED",
                    "message": format!("{what} is {current}"),
                    "current": current,
                }),
            )
        }
        Err(e) => failed(e),
    }
}

fn failed(e: LogError) -> Reply {
    let message = e.to_string();
    match e {
        LogError::UnknownTopic | LogError::UnknownPartition => {
            error(StatusCode::NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION", message)
        }
        LogError::InvalidRequest(_) => error(StatusCode::BAD_REQUEST, "NO_KEY_INDEX", message),
        LogError::InvalidRecord { .. } | LogError::CorruptMessage(_) => {
            error(StatusCode::BAD_REQUEST, "INVALID_RECORD", message)
        }
        LogError::InvalidTimestamp(_) => {
            error(StatusCode::BAD_REQUEST, "INVALID_TIMESTAMP", message)
        }
        LogError::MessageTooLarge(_) => {
            error(StatusCode::PAYLOAD_TOO_LARGE, "MESSAGE_TOO_LARGE", message)
        }
        LogError::NotLeader => error(
            StatusCode::MISDIRECTED_REQUEST,
            "NOT_LEADER_OR_FOLLOWER",
            message,
        ),
        e => match e.store_fault() {
            Some(StoreFault::TimedOut) => {
                error(StatusCode::GATEWAY_TIMEOUT, "REQUEST_TIMED_OUT", message)
            }
            Some(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "KAFKA_STORAGE_ERROR",
                message,
            ),
            None => {
                tracing::warn!(error = %message, "key lookup failed");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN_SERVER_ERROR",
                    message,
                )
            }
        },
    }
}
