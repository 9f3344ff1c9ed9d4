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
//! Reads are strongly consistent: a lookup after an acknowledged acks=all produce returns that
//! record, on any broker of the cluster (one store transaction, `PartitionReader::latest_by_key`).

use crate::http::{Reply, reply};
use crate::node::LocalCluster;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use kfdb_log::{KeyedRecord, Log, LogError, StoreFault, default_partition};
use percent_encoding::percent_decode_str;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// Serve the API on `addr` until the task is dropped, reading through any running broker.
pub async fn serve_api(addr: SocketAddr, cluster: Arc<LocalCluster>) -> std::io::Result<()> {
    crate::http::serve(addr, "HTTP API (keys)", cluster, |c, req| async move {
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
    let Some(broker) = cluster.running_broker().await else {
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

fn failed(e: LogError) -> Reply {
    let message = e.to_string();
    match e {
        LogError::UnknownTopic | LogError::UnknownPartition => {
            error(StatusCode::NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION", message)
        }
        LogError::InvalidRequest(_) => error(StatusCode::BAD_REQUEST, "NO_KEY_INDEX", message),
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
