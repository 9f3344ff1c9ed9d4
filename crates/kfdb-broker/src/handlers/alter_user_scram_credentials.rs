//! AlterUserScramCredentials (key 51): create, replace and delete users' SCRAM credentials. The
//! client sends the salt and the salted password (never the password); the broker derives the
//! stored and server keys from them. Checked as Kafka checks: an empty user name or iterations
//! outside 4,096..=16,384 are UNACCEPTABLE_CREDENTIAL, an unknown mechanism
//! UNSUPPORTED_SASL_MECHANISM, the same user and mechanism twice DUPLICATE_RESOURCE, deleting a
//! credential that does not exist RESOURCE_NOT_FOUND. One result per user: a user with any
//! failing alteration has none of its alterations applied.

use super::{RequestCtx, Versions, s};
use crate::error_code;
use crate::sasl::scram::{MAX_ITERATIONS, MIN_ITERATIONS, ScramMechanism};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
};
use kfdb_log::ScramCredential;

pub const KEY: ApiKey = ApiKey::AlterUserScramCredentials;
pub const VERSIONS: Versions = Versions::new(0, 0);
pub type Request = AlterUserScramCredentialsRequest;

/// One alteration: set a credential, or delete one.
enum Change {
    Upsert(ScramMechanism, ScramCredential),
    Delete(ScramMechanism),
}

type Failure = (i16, String);

fn mechanism(code: i8) -> Result<ScramMechanism, Failure> {
    ScramMechanism::from_code(code).ok_or((
        error_code::UNSUPPORTED_SASL_MECHANISM,
        "Unknown SCRAM mechanism".into(),
    ))
}

pub async fn handle(
    ctx: &RequestCtx<'_>,
    req: Request,
) -> Option<AlterUserScramCredentialsResponse> {
    // Per user, in the order users first appear: their alterations, or the first failure.
    let mut users: Vec<(String, Result<Vec<Change>, Failure>)> = Vec::new();
    let mut seen: Vec<(String, i8)> = Vec::new();
    let deletions = req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None));
    let upsertions = req
        .upsertions
        .iter()
        .map(|u| (u.name.to_string(), u.mechanism, Some(u)));
    for (name, code, upsert) in deletions.chain(upsertions) {
        let duplicate = seen.contains(&(name.clone(), code));
        seen.push((name.clone(), code));
        let change = (|| {
            if name.is_empty() {
                return Err((
                    error_code::UNACCEPTABLE_CREDENTIAL,
                    "Username must not be empty".to_string(),
                ));
            }
            if duplicate {
                return Err((
                    error_code::DUPLICATE_RESOURCE,
                    "A user credential cannot be altered twice in the same request".to_string(),
                ));
            }
            let m = mechanism(code)?;
            let Some(u) = upsert else {
                return Ok(Change::Delete(m));
            };
            if u.iterations < MIN_ITERATIONS {
                return Err((
                    error_code::UNACCEPTABLE_CREDENTIAL,
                    format!("Too few iterations: the minimum is {MIN_ITERATIONS}"),
                ));
            }
            if u.iterations > MAX_ITERATIONS {
                return Err((
                    error_code::UNACCEPTABLE_CREDENTIAL,
                    format!("Too many iterations: the maximum is {MAX_ITERATIONS}"),
                ));
            }
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err((
                    error_code::UNACCEPTABLE_CREDENTIAL,
                    "The salt and the salted password must not be empty".to_string(),
                ));
            }
            Ok(Change::Upsert(
                m,
                m.credential_from_salted(&u.salted_password, &u.salt, u.iterations),
            ))
        })();
        let entry = match users.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e,
            None => {
                users.push((name.clone(), Ok(Vec::new())));
                users.last_mut()?
            }
        };
        match (&mut entry.1, change) {
            (Ok(changes), Ok(c)) => changes.push(c),
            (Ok(_), Err(f)) => entry.1 = Err(f),
            (Err(_), _) => {}
        }
    }
    let store = ctx.broker.log.users();
    let mut results = Vec::with_capacity(users.len());
    for (user, changes) in users {
        let outcome = match changes {
            Err(f) => Err(f),
            Ok(changes) => apply(store, &user, changes).await,
        };
        let (code, message) = match outcome {
            Ok(()) => (0, None),
            Err((code, message)) => (code, Some(s(message))),
        };
        results.push(
            AlterUserScramCredentialsResult::default()
                .with_user(s(user))
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    Some(AlterUserScramCredentialsResponse::default().with_results(results))
}

/// Apply one user's alterations: deletions of missing credentials fail first, before anything
/// is written.
async fn apply(store: &kfdb_log::Users, user: &str, changes: Vec<Change>) -> Result<(), Failure> {
    let store_failure = |e: kfdb_log::LogError| (error_code::from_log_error(&e), e.to_string());
    for c in &changes {
        if let Change::Delete(m) = c
            && store
                .credential(user, m.name())
                .await
                .map_err(store_failure)?
                .is_none()
        {
            return Err((
                error_code::RESOURCE_NOT_FOUND,
                "Attempt to delete a user credential that does not exist".into(),
            ));
        }
    }
    for c in changes {
        match c {
            Change::Upsert(m, credential) => store
                .upsert(user, m.name(), &credential)
                .await
                .map_err(store_failure)?,
            Change::Delete(m) => {
                store.delete(user, m.name()).await.map_err(store_failure)?;
            }
        }
    }
    Ok(())
}
