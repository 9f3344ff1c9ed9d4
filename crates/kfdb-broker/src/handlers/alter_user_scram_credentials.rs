//! AlterUserScramCredentials (key 51): create, replace and delete users' SCRAM credentials. The
//! client sends the salt and the salted password (never the password); the broker derives the
//! stored and server keys from them. Checked as Kafka's controller checks: one alteration per
//! user per request (a second one, whatever its mechanism, makes the user DUPLICATE_RESOURCE and
//! nothing of theirs is applied), an empty user name or iterations outside 4,096..=16,384
//! UNACCEPTABLE_CREDENTIAL, an unknown mechanism UNSUPPORTED_SASL_MECHANISM, deleting a
//! credential that does not exist RESOURCE_NOT_FOUND. One result per user.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use crate::sasl::scram::{MAX_ITERATIONS, MIN_ITERATIONS, ScramMechanism};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
};
use kfdb_log::{ScramCredential, Users};

pub const KEY: ApiKey = ApiKey::AlterUserScramCredentials;
pub const VERSIONS: Versions = Versions::new(0, 0);
pub type Request = AlterUserScramCredentialsRequest;

/// One alteration: set a credential, or delete one.
enum Change {
    Upsert(ScramMechanism, ScramCredential),
    Delete(ScramMechanism),
}

type Failure = (i16, String);

/// A store fault, answered with its own code.
fn store_failure(e: kfdb_log::LogError) -> Failure {
    (error_code::from_log_error(&e), e.to_string())
}

fn fail(code: i16, message: &str) -> Failure {
    (code, message.to_string())
}

/// Kafka's checks of the user name and mechanism.
fn mechanism(user: &str, code: i8) -> Result<ScramMechanism, Failure> {
    if user.is_empty() {
        return Err(fail(
            error_code::UNACCEPTABLE_CREDENTIAL,
            "Username must not be empty",
        ));
    }
    ScramMechanism::from_code(code).ok_or_else(|| {
        fail(
            error_code::UNSUPPORTED_SASL_MECHANISM,
            "Unknown SCRAM mechanism",
        )
    })
}

async fn deletion(store: &Users, user: &str, code: i8) -> Result<Change, Failure> {
    let m = mechanism(user, code)?;
    match store.credential(user, m.name()).await {
        Ok(Some(_)) => Ok(Change::Delete(m)),
        Ok(None) => Err(fail(
            error_code::RESOURCE_NOT_FOUND,
            "Attempt to delete a user credential that does not exist",
        )),
        Err(e) => Err(store_failure(e)),
    }
}

fn upsertion(
    u: &kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion,
) -> Result<Change, Failure> {
    let m = mechanism(u.name.as_str(), u.mechanism)?;
    if u.iterations < MIN_ITERATIONS {
        return Err(fail(
            error_code::UNACCEPTABLE_CREDENTIAL,
            "Too few iterations",
        ));
    }
    if u.iterations > MAX_ITERATIONS {
        return Err(fail(
            error_code::UNACCEPTABLE_CREDENTIAL,
            "Too many iterations",
        ));
    }
    Ok(Change::Upsert(
        m,
        m.credential_from_salted(&u.salted_password, &u.salt, u.iterations),
    ))
}

pub async fn handle(
    ctx: &RequestCtx<'_>,
    req: Request,
) -> Option<AlterUserScramCredentialsResponse> {
    let store = ctx.broker.log.users();
    let allowed = ctx.allowed(op::ALTER, Resource::Cluster).await;
    // Per user, in the order users first appear: their one alteration, or why it fails.
    let mut users: Vec<(String, Result<Change, Failure>)> = Vec::new();
    let deletions = req
        .deletions
        .iter()
        .map(|d| (d.name.as_str(), Some(d), None));
    let upsertions = req
        .upsertions
        .iter()
        .map(|u| (u.name.as_str(), None, Some(u)));
    for (name, d, u) in deletions.chain(upsertions) {
        if let Some(i) = users.iter().position(|(n, _)| n == name) {
            if users[i].1.is_ok() {
                users[i].1 = Err(fail(
                    error_code::DUPLICATE_RESOURCE,
                    "A user credential cannot be altered twice in the same request",
                ));
            }
            continue;
        }
        let change = match (d, u) {
            _ if !allowed => Err(fail(
                error_code::CLUSTER_AUTHORIZATION_FAILED,
                "Cluster authorization failed.",
            )),
            (Some(d), _) => deletion(store, name, d.mechanism).await,
            (_, Some(u)) => upsertion(u),
            (None, None) => continue,
        };
        users.push((name.to_string(), change));
    }
    let mut results = Vec::with_capacity(users.len());
    for (user, change) in users {
        let outcome = match change {
            Err(f) => Err(f),
            Ok(Change::Upsert(m, credential)) => store
                .upsert(&user, m.name(), &credential)
                .await
                .map_err(store_failure),
            Ok(Change::Delete(m)) => store
                .delete(&user, m.name())
                .await
                .map(|_| ())
                .map_err(store_failure),
        };
        let (code, message) = match outcome {
            Ok(()) => (0, None),
            Err(f) => (f.0, Some(s(f.1))),
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
