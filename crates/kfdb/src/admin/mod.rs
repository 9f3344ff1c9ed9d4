//! The admin commands that talk to a running cluster over the Kafka protocol (`kfdb cluster`,
//! `kfdb topic`, `kfdb group`, `kfdb produce`, `kfdb consume`), through `kfdb-client`: they work
//! against any Kafka-compatible cluster. This module owns the shared options (where the cluster
//! is, how to print) and the output helpers; each command family has its own file. The store-direct
//! forms (`kfdb topic --data-dir ...`) live in `topic.rs` beside `main.rs`.

pub(crate) mod acls;
pub(crate) mod cluster;
pub(crate) mod groups;
pub(crate) mod records;
pub(crate) mod topics;

use kfdb_client::Client;
use std::time::Duration;

/// Where the cluster is and how to answer.
#[derive(clap::Args, Clone)]
pub(crate) struct ConnArgs {
    /// A broker of the cluster to talk to (host:port[,host:port...]), as Kafka's tools name it.
    #[arg(
        long,
        global = true,
        env = "KFDB_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_server: String,
    /// How to print: human-readable tables, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub format: Format,
    /// Give up on a broker that does not answer for this many ms.
    #[arg(long, global = true, default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// A Kafka client properties file, as Kafka's tools take it: `security.protocol`,
    /// `sasl.mechanism`, `sasl.jaas.config` (username/password), `ssl.truststore.location` and
    /// `ssl.keystore.location` (type PEM).
    #[arg(long, global = true, env = "KFDB_COMMAND_CONFIG")]
    pub command_config: Option<std::path::PathBuf>,
}

/// Output format.
#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub(crate) enum Format {
    Table,
    Json,
}

impl ConnArgs {
    pub(crate) async fn client(&self) -> Result<Client, String> {
        let security = match &self.command_config {
            None => kfdb_client::Security::default(),
            Some(path) => {
                let f = std::fs::File::open(path)
                    .map_err(|e| format!("--command-config {}: {e}", path.display()))?;
                let props = java_properties::read(std::io::BufReader::new(f))
                    .map_err(|e| format!("--command-config {}: {e}", path.display()))?;
                kfdb_client::Security::from_properties(&props)
                    .map_err(|e| format!("--command-config {}: {e}", path.display()))?
            }
        };
        Client::connect(
            &self.bootstrap_server,
            "kfdb-cli",
            Duration::from_millis(self.request_timeout_ms.max(1)),
            security,
        )
        .await
        .map_err(|e| format!("{}: {e}", self.bootstrap_server))
    }
}

/// Rows as an aligned table with a header line.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Print JSON (one document).
pub(crate) fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A progress bar on standard error for `n` steps of `what` (drawn only on a terminal).
pub(crate) fn progress(n: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(n);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A Kafka error code of one item (a topic, a group) as text: "" when none.
pub(crate) fn code_text(code: i16, message: Option<&str>) -> String {
    if code == 0 {
        return String::new();
    }
    match message {
        Some(m) if !m.is_empty() => format!("{}: {m}", kfdb_client::error_name(code)),
        _ => kfdb_client::error_name(code),
    }
}
