//! The broker's HTTP listener (`kfdb serve --metrics-listen`): Prometheus metrics, and control of
//! the brokers of an in-process cluster (`kfdb serve --brokers N`), for scripts and tests:
//!
//! - `GET /metrics`: the first running broker's metrics (`?broker=i`: broker `i`'s), in the
//!   text format;
//! - `GET /healthz`: 200 while a broker of the process serves, 503 when none does (stopped, or
//!   fenced after its lease ran out) — liveness;
//! - `GET /readyz`: 200 when every running broker reaches the store and is registered and not
//!   fenced, else 503 with the reason (readiness; the store check gives up after 2 s);
//! - `GET /brokers`: one line per broker: `index node_id address running|stopped`;
//! - `POST /brokers/{i}/stop`: controlled shutdown of broker `i` (it leaves the cluster first);
//! - `POST /brokers/{i}/kill`: stop it at once, as a crash would (the others take over when its
//!   lease runs out);
//! - `POST /brokers/{i}/start`: start it again (same listener, same node id).

use crate::node::LocalCluster;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn reply(status: StatusCode, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

/// `/readyz`: every running broker reaches the store and is in the cluster.
async fn readiness(cluster: &LocalCluster) -> Reply {
    let brokers = cluster.running_brokers().await;
    if brokers.is_empty() {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "no broker is running\n".into(),
        );
    }
    for b in brokers {
        let check = tokio::time::timeout(std::time::Duration::from_secs(2), b.log.readiness());
        match check.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return reply(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
            Err(_) => {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store unreachable: no answer in 2 s\n".into(),
                );
            }
        }
    }
    reply(StatusCode::OK, "ready\n".into())
}

async fn route(cluster: &LocalCluster, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["metrics"]) => {
            let wanted = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("broker="))
                .and_then(|v| v.parse::<usize>().ok());
            let brokers = cluster.brokers().await;
            let index = wanted.or_else(|| brokers.iter().find(|b| b.running).map(|b| b.index));
            match index {
                Some(i) => match cluster.broker(i).await {
                    Some(b) => {
                        let mut r = reply(
                            StatusCode::OK,
                            String::from_utf8_lossy(&b.metrics.render(&b.log)).into_owned(),
                        );
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        r
                    }
                    None => reply(
                        StatusCode::NOT_FOUND,
                        format!("broker {i} is not running\n"),
                    ),
                },
                None => reply(StatusCode::NOT_FOUND, "no broker is running\n".into()),
            }
        }
        // Alive while a broker serves: a fenced broker stops serving, and a liveness probe
        // should then restart the process.
        (&Method::GET, ["healthz"]) => {
            if cluster.running_brokers().await.is_empty() {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no broker is serving (stopped or fenced)\n".into(),
                )
            } else {
                reply(StatusCode::OK, "ok\n".into())
            }
        }
        (&Method::GET, ["readyz"]) => readiness(cluster).await,
        (&Method::GET, ["brokers"]) => {
            let lines: String = cluster
                .brokers()
                .await
                .into_iter()
                .map(|b| {
                    format!(
                        "{} {} {} {}\n",
                        b.index,
                        b.node_id,
                        b.addr,
                        if b.running { "running" } else { "stopped" }
                    )
                })
                .collect();
            reply(StatusCode::OK, lines)
        }
        (&Method::POST, ["brokers", i, action]) => {
            let Ok(i) = i.parse::<usize>() else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!("not a broker index: {i}\n"),
                );
            };
            if i >= cluster.size() {
                return reply(StatusCode::NOT_FOUND, format!("no broker {i}\n"));
            }
            let done = match *action {
                "stop" => cluster.stop_broker(i).await,
                "kill" => {
                    cluster.kill_broker(i).await;
                    Ok(())
                }
                "start" => cluster.start_broker(i).await,
                other => {
                    return reply(StatusCode::NOT_FOUND, format!("unknown action {other}\n"));
                }
            };
            match done {
                Ok(()) => reply(StatusCode::OK, format!("broker {i}: {action}\n")),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("broker {i}: {e}\n"),
                ),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Serve the HTTP listener on `addr` until the task is dropped.
/// Serve the metrics listener on `listener` (bound by the caller, so a taken port fails the
/// start instead of a background task).
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    cluster: Arc<LocalCluster>,
) -> std::io::Result<()> {
    serve(
        listener,
        "HTTP listener (metrics, broker control)",
        cluster,
        |c, req| async move { route(&c, req).await },
    )
    .await
}

/// Accept HTTP/1 connections on `listener` and answer each request with `handle`, until the task is
/// dropped (shared by the metrics listener and kfdb's own API, `keyapi.rs`).
pub(crate) async fn serve<F, Fut>(
    listener: tokio::net::TcpListener,
    what: &'static str,
    cluster: Arc<LocalCluster>,
    handle: F,
) -> std::io::Result<()>
where
    F: Fn(Arc<LocalCluster>, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "{what}");
    loop {
        let (socket, _) = listener.accept().await?;
        let (cluster, handle) = (cluster.clone(), handle.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let reply = handle(cluster.clone(), req);
                async move { Ok::<_, std::convert::Infallible>(reply.await) }
            });
            let io = hyper_util::rt::TokioIo::new(socket);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(error = %e, "HTTP connection failed");
            }
        });
    }
}
