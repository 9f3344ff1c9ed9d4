//! `kfdb user create|list|delete`: SASL/SCRAM users, written straight into the store — how the
//! first (super) user is made before any broker runs, as Kafka's `kafka-storage format
//! --add-scram` does. Brokers read credentials from the store at each authentication, so a user
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
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .map_err(|e| format!("reading the password: {e}"))?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err("the password (first line of standard input) is empty".into());
            }
            for m in mechanisms {
                users
                    .upsert(&name, m.name(), &m.credential(password, iterations))
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
