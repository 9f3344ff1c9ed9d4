//! `kfdb user create|list|delete`: SASL/SCRAM users. With `--data-dir` or `--store fdb`, written
//! straight into the store — how the first (super) user is made before any broker runs, as
//! Kafka's `kafka-storage format --add-scram` does; otherwise through a running cluster
//! (Describe/AlterUserScramCredentials, as `kafka-configs --entity-type users` does). Brokers read credentials from the store at each authentication, so a user
//! made here can log in at once, on every broker. The password is read from standard input,
//! never from the command line.

use crate::StoreArgs;
use clap::{Args, Subcommand};
use kfdb_broker::sasl::scram::{MAX_ITERATIONS, MIN_ITERATIONS, ScramMechanism};
use kfdb_kv::Database;
use kfdb_log::Users;
use std::io::BufRead;

/// `kfdb user ...`
#[derive(Args)]
pub(crate) struct UserArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) conn: crate::admin::ConnArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user, or set a new password (one credential per mechanism).
    Create {
        /// The user name (the principal is User:NAME).
        name: String,
        /// Read the password from the first line of standard input (required: passwords do
        /// not belong on a command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default: both).
        #[arg(long)]
        mechanism: Vec<String>,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = 8192)]
        iterations: i32,
    },
    /// List users and their mechanisms.
    List,
    /// Delete a user's credentials (default: for every mechanism).
    Delete {
        /// The user name.
        name: String,
        /// Only this mechanism (repeatable).
        #[arg(long)]
        mechanism: Vec<String>,
    },
}

fn mechanisms(names: &[String]) -> Result<Vec<ScramMechanism>, String> {
    if names.is_empty() {
        return Ok(ScramMechanism::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ScramMechanism::from_name(&n.to_ascii_uppercase())
                .ok_or_else(|| format!("{n}: unknown mechanism (SCRAM-SHA-256 or SCRAM-SHA-512)"))
        })
        .collect()
}

/// The password: the first line of standard input.
fn read_password() -> Result<String, String> {
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(|e| format!("reading the password: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("the password (first line of standard input) is empty".into());
    }
    Ok(password)
}

/// `kfdb user ...` over the Kafka protocol (Describe/AlterUserScramCredentials): the salted
/// password is computed here, so the password never crosses the network.
pub(crate) async fn run_protocol(args: UserArgs) -> Result<(), String> {
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        AlterUserScramCredentialsRequest, ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_user_scram_credentials_request::DescribeUserScramCredentialsRequest;
    use kafka_protocol::protocol::StrBytes;
    let mut client = args.conn.client().await?;
    let name_of = |code: i8| {
        ScramMechanism::from_code(code)
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| format!("mechanism {code}"))
    };
    let results = match args.command {
        UserCommand::List => {
            let answer = client
                .call(
                    &DescribeUserScramCredentialsRequest::default().with_users(None),
                    0,
                )
                .await
                .map_err(|e| e.to_string())?;
            kfdb_client::Error::check(answer.error_code, answer.error_message.as_deref(), "users")
                .map_err(|e| e.to_string())?;
            for r in answer.results {
                for c in r.credential_infos {
                    println!("{}\t{}\t{}", r.user, name_of(c.mechanism), c.iterations);
                }
            }
            return Ok(());
        }
        UserCommand::Create {
            name,
            password_stdin: _,
            mechanism,
            iterations,
        } => {
            let mechanisms = mechanisms(&mechanism)?;
            let password = read_password()?;
            let upsertions = mechanisms
                .iter()
                .map(|m| {
                    let salt: [u8; 32] = rand::random();
                    let salted =
                        m.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(m.code())
                        .with_iterations(iterations)
                        .with_salt(bytes::Bytes::copy_from_slice(&salt))
                        .with_salted_password(bytes::Bytes::from(salted))
                })
                .collect::<Vec<_>>();
            // Kafka takes one alteration per user and request.
            let mut out = Vec::new();
            for u in upsertions {
                let m = name_of(u.mechanism);
                let answer = client
                    .call(
                        &AlterUserScramCredentialsRequest::default().with_upsertions(vec![u]),
                        0,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                out.extend(answer.results.into_iter().map(|r| (r, m.clone())));
            }
            out
        }
        UserCommand::Delete { name, mechanism } => {
            let mut out = Vec::new();
            for m in mechanisms(&mechanism)? {
                let answer = client
                    .call(
                        &AlterUserScramCredentialsRequest::default().with_deletions(vec![
                            ScramCredentialDeletion::default()
                                .with_name(StrBytes::from_string(name.clone()))
                                .with_mechanism(m.code()),
                        ]),
                        0,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                out.extend(
                    answer
                        .results
                        .into_iter()
                        .map(|r| (r, m.name().to_string())),
                );
            }
            out
        }
    };
    let mut failed = 0;
    for (r, mechanism) in results {
        if r.error_code == 0 {
            println!("{}\t{mechanism}\tok", r.user);
        } else {
            failed += 1;
            eprintln!(
                "{}\t{mechanism}\t{}",
                r.user,
                crate::admin::code_text(r.error_code, r.error_message.as_deref())
            );
        }
    }
    if failed > 0 {
        return Err(format!("{failed} alteration(s) failed"));
    }
    Ok(())
}

pub(crate) async fn run(db: Database, args: UserArgs) -> Result<(), String> {
    let users = Users::new(db);
    match args.command {
        UserCommand::Create {
            name,
            password_stdin: _,
            mechanism,
            iterations,
        } => {
            let mechanisms = mechanisms(&mechanism)?;
            if name.is_empty() {
                return Err("the user name must not be empty".into());
            }
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                return Err(format!(
                    "--iterations must be within {MIN_ITERATIONS}..={MAX_ITERATIONS}"
                ));
            }
            let password = read_password()?;
            for m in mechanisms {
                users
                    .upsert(&name, m.name(), &m.credential(&password, iterations))
                    .await
                    .map_err(|e| e.to_string())?;
                println!("{name}\t{}\t{iterations}", m.name());
            }
            Ok(())
        }
        UserCommand::List => {
            for c in users.list(None).await.map_err(|e| e.to_string())? {
                println!("{}\t{}\t{}", c.user, c.mechanism, c.iterations);
            }
            Ok(())
        }
        UserCommand::Delete { name, mechanism } => {
            let mut deleted = 0;
            for m in mechanisms(&mechanism)? {
                if users
                    .delete(&name, m.name())
                    .await
                    .map_err(|e| e.to_string())?
                {
                    deleted += 1;
                }
            }
            if deleted == 0 {
                return Err(format!("{name}: no such user"));
            }
            Ok(())
        }
    }
}
