//! Where each setting of `kfdb serve` comes from: a flag, its `KFDB_*` environment variable, a
//! Kafka `server.properties` file (`--config`), or the default — in that order of precedence.
//!
//! clap parses flags and environment; this module reads the file (Java properties syntax, by the
//! `java-properties` crate), maps its keys to flags (`properties.rs`), and parses again with the
//! file's values added for every flag that neither the command line nor the environment set. It
//! also renders `kfdb config print` (effective values and their sources) and the configuration
//! reference in docs/configuration.md, both from clap's own description of the flags, so neither
//! can drift from the code.

mod properties;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::Path;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Flag,
    Env(String),
    File { path: String, key: String },
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("flag"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::File { path, key } => write!(f, "file {path} ({key})"),
            Self::Default => f.write_str("default"),
        }
    }
}

/// The parsed command line, and for a command that serves, where each setting came from.
pub(crate) struct Resolved<T> {
    pub cli: T,
    /// (clap argument id, source) for every argument of the serving command that has a value.
    pub sources: BTreeMap<String, Source>,
    /// The final matches of the leaf command (values as given, and where they came from).
    pub matches: Option<ArgMatches>,
    /// Keys of the file that kfdb accepts and does not use (to log once).
    pub ignored: Vec<String>,
}

/// The subcommand path whose arguments a `--config` file fills (the leaf that has `config`).
fn leaf<'a>(m: &'a ArgMatches, path: &mut Vec<String>) -> &'a ArgMatches {
    match m.subcommand() {
        Some((name, sub)) => {
            path.push(name.to_string());
            leaf(sub, path)
        }
        None => m,
    }
}

fn find_command<'a>(cmd: &'a Command, path: &[String]) -> &'a Command {
    path.iter().fold(cmd, |c, name| {
        c.find_subcommand(name).expect("a parsed subcommand exists")
    })
}

fn parse_file(path: &Path) -> Result<HashMap<String, String>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    java_properties::read(std::io::BufReader::new(f))
        .map_err(|e| format!("--config {}: {e}", path.display()))
}

/// Parse `argv`, fill what flags and environment left unset from the `--config` file, and
/// record every setting's source.
pub(crate) fn resolve<T: CommandFactory + FromArgMatches>(
    argv: Vec<OsString>,
) -> Result<Resolved<T>, String> {
    let first = T::command()
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| e.exit());
    let mut path = Vec::new();
    let leaf_matches = leaf(&first, &mut path);
    let has_config = leaf_matches.ids().any(|id| id.as_str() == "config");
    if !has_config {
        let cli = T::from_arg_matches(&first).map_err(|e| e.to_string())?;
        return Ok(Resolved {
            cli,
            sources: BTreeMap::new(),
            matches: Some(leaf_matches.clone()),
            ignored: Vec::new(),
        });
    }
    let root = T::command();
    let cmd = find_command(&root, &path);
    let mut sources = BTreeMap::new();
    let mut extra: Vec<OsString> = Vec::new();
    let mut ignored = Vec::new();
    if let Some(file) = leaf_matches.get_one::<std::path::PathBuf>("config") {
        let props = parse_file(file)?;
        let file_name = file.display().to_string();
        let mut keys: Vec<&String> = props.keys().collect();
        keys.sort();
        let others = |k: &str| props.get(k).cloned();
        let mut set_by_file: Vec<(&'static str, String, String)> = Vec::new();
        for key in keys {
            let value = props[key].trim().to_string();
            if let Some((_, id)) = properties::DIRECT.iter().find(|(k, _)| k == key) {
                set_by_file.push((id, value, key.clone()));
            } else if properties::IGNORED.contains(&key.as_str()) {
                ignored.push(key.clone());
            } else {
                match properties::translate(key, &value, &others) {
                    Ok(pairs) => {
                        for (id, v) in pairs {
                            set_by_file.push((id, v, key.clone()));
                        }
                    }
                    Err(_) if !properties::known_keys().any(|k| k == key) => {
                        let hint = properties::closest(key)
                            .map(|k| format!(" (did you mean {k}?)"))
                            .unwrap_or_default();
                        return Err(format!("--config {file_name}: unknown setting {key}{hint}"));
                    }
                    Err(e) => return Err(format!("--config {file_name}: {e}")),
                }
            }
        }
        for (id, value, key) in set_by_file {
            let given = matches!(
                leaf_matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            if given {
                continue;
            }
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == id)
                .ok_or_else(|| format!("internal: {key} names no flag ({id})"))?;
            let long = arg.get_long().expect("every setting has a long flag");
            if arg.get_action().takes_values() {
                extra.push(format!("--{long}={value}").into());
            } else if matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "yes") {
                extra.push(format!("--{long}").into());
            } else if !matches!(value.to_ascii_lowercase().as_str(), "false" | "0" | "no") {
                return Err(format!(
                    "--config {file_name}: {key}={value}: expected true or false"
                ));
            }
            sources.insert(
                id.to_string(),
                Source::File {
                    path: file_name.clone(),
                    key,
                },
            );
        }
    }
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if sources.contains_key(id) {
            continue;
        }
        let source = match leaf_matches.value_source(id) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Env(
                arg.get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            Some(ValueSource::DefaultValue) => Source::Default,
            _ => continue,
        };
        sources.insert(id.to_string(), source);
    }
    let mut argv = argv;
    argv.extend(extra);
    let last = T::command()
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| e.exit());
    let cli = T::from_arg_matches(&last).map_err(|e| e.to_string())?;
    let mut p = Vec::new();
    let matches = leaf(&last, &mut p).clone();
    Ok(Resolved {
        cli,
        sources,
        matches: Some(matches),
        ignored,
    })
}

/// Arguments that are not settings (the file itself, help).
fn is_setting(arg: &clap::Arg) -> bool {
    let id = arg.get_id().as_str();
    id != "config" && id != "help" && id != "version" && arg.get_long().is_some()
}

/// A setting's value as given (a flag's `true`/`false`; several values comma-joined), or
/// `None` when it has none.
fn value_of(arg: &clap::Arg, matches: &ArgMatches) -> Option<String> {
    let id = arg.get_id().as_str();
    if !arg.get_action().takes_values() {
        return Some(matches.get_flag(id).to_string());
    }
    Some(
        matches
            .get_raw(id)?
            .map(|v| v.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `kfdb config print`: every setting's effective value and where it came from.
pub(crate) fn print(
    cmd: &Command,
    matches: &ArgMatches,
    sources: &BTreeMap<String, Source>,
) -> String {
    let mut rows = Vec::new();
    for arg in cmd.get_arguments().filter(|a| is_setting(a)) {
        let id = arg.get_id().as_str();
        let name = properties::property_of(id)
            .map(str::to_string)
            .unwrap_or_else(|| format!("--{}", arg.get_long().unwrap_or(id)));
        let value = value_of(arg, matches).unwrap_or_default();
        let source = sources
            .get(id)
            .map(ToString::to_string)
            .unwrap_or_else(|| "unset".into());
        rows.push((name, value, source));
    }
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).min(40);
    rows.iter()
        .map(|(n, v, s)| format!("{n:<w0$}  {v:<w1$}  {s}\n"))
        .collect()
}

/// Every setting with a server.properties name, its value and whether it was given (for
/// DescribeConfigs of the broker: STATIC_BROKER_CONFIG) or is the default (DEFAULT_CONFIG).
pub(crate) fn broker_settings(
    cmd: &Command,
    matches: &ArgMatches,
    sources: &BTreeMap<String, Source>,
) -> Vec<kfdb_broker::BrokerSetting> {
    cmd.get_arguments()
        .filter(|a| is_setting(a))
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let name = properties::property_of(id)?;
            let value = value_of(arg, matches)?;
            let source = match sources.get(id) {
                Some(Source::Default) | None => 5,
                Some(_) => 4,
            };
            Some(kfdb_broker::BrokerSetting {
                name: name.to_string(),
                value,
                source,
            })
        })
        .collect()
}

/// docs/configuration.md: every setting of `kfdb serve` with its file key, flag, environment
/// variable, default and description, then the Kafka keys kfdb accepts and ignores.
pub(crate) fn reference(serve: &Command) -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from the code by `kfdb config reference`; a test fails when this file \
         is stale (regenerate: `cargo run -p kfdb -- config reference > docs/configuration.md`). -->\n\n\
         Every setting of `kfdb serve` can be given as a flag, as its environment variable, or \
         as a key of a Kafka `server.properties` file (`kfdb serve --config FILE`). A flag \
         wins over the environment, the environment over the file, the file over the default; \
         `kfdb config print` (same arguments as `kfdb serve`) shows the effective value of each \
         setting and where it came from. Keys that are Kafka's have Kafka's names, units and \
         defaults; keys of kfdb's own start with `kfdb.`. An unknown key in the file is an \
         error that names the closest known key.\n\n\
         | file key | flag | environment | default | meaning |\n|---|---|---|---|---|\n",
    );
    for arg in serve.get_arguments().filter(|a| is_setting(a)) {
        let id = arg.get_id().as_str();
        let key = properties::property_of(id)
            .map(|k| format!("`{k}`"))
            .unwrap_or_else(|| "—".into());
        let flag = format!("`--{}`", arg.get_long().unwrap_or(id));
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_else(|| "—".into());
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(",");
        let default = if default.is_empty() {
            "—".to_string()
        } else {
            format!("`{default}`")
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string().replace('\n', " ").replace('|', "\\|"))
            .unwrap_or_default();
        out.push_str(&format!(
            "| {key} | {flag} | {env} | {default} | {help} |\n"
        ));
    }
    out.push_str(
        "\n## Kafka keys with another form\n\n\
         - `authorizer.class.name`: Kafka's standard authorizer \
         (`org.apache.kafka.metadata.authorizer.StandardAuthorizer`, or the older \
         `kafka.security.authorizer.AclAuthorizer`) turns on kfdb's ACL authorizer \
         (`--authorizer acl`); empty turns it off; another class is an error.\n\
         - `ssl.keystore.location` with `ssl.keystore.type=PEM`: one PEM file with the \
         certificate chain and the private key (`--ssl-cert-file` and `--ssl-key-file`). \
         `ssl.truststore.location` with `ssl.truststore.type=PEM`: the CA certificates \
         (`--ssl-ca-file`). JKS and PKCS12 stores are an error (kfdb reads PEM).\n\
         - `controller.listener.names`: listeners with these names are Kafka's controller \
         listeners; kfdb has no controller and does not open them.\n",
    );
    out.push_str("\n## Kafka keys accepted and ignored\n\nkfdb needs none of these (FoundationDB replicates and stores the data; there is no controller quorum, no segment file and no thread pool to size); a file may hold them, and they are logged once at start:\n\n");
    out.push_str(
        &properties::IGNORED
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push_str(".\n");
    out
}
