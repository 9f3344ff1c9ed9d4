//! `kfdb healthcheck`: asks a running kfdb's HTTP listener (`--metrics-listen`) whether it is
//! alive, for container health checks where no HTTP client is installed. Plain HTTP/1.0 over a
//! blocking socket: one request, the status line decides.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(clap::Args)]
pub(crate) struct HealthcheckArgs {
    /// What to ask: /healthz (alive) or /readyz (store reachable, broker registered).
    #[arg(
        long,
        env = "KFDB_HEALTHCHECK_URL",
        default_value = "http://127.0.0.1:9100/healthz"
    )]
    url: String,
    /// Give up after this many ms.
    #[arg(long, default_value_t = 3_000)]
    timeout_ms: u64,
}

pub(crate) fn run(args: HealthcheckArgs) -> Result<(), String> {
    let rest = args
        .url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{}: only http:// URLs", args.url))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| format!("{addr}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or("");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    match status.split_whitespace().nth(1) {
        Some("200") => {
            println!("{body}");
            Ok(())
        }
        _ => Err(format!("{}: {status} {body}", args.url)),
    }
}
