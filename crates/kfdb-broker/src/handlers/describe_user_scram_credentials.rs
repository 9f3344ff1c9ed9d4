//! DescribeUserScramCredentials (key 50): which SCRAM mechanisms each user has a credential for,
//! and their iterations (never the credential itself). No user list: every user. A user named
//! twice answers DUPLICATE_RESOURCE for it, an unknown one RESOURCE_NOT_FOUND, as Kafka does.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use crate::sasl::scram::ScramMechanism;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    ApiKey, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kfdb_log::UserCredentialInfo;

pub const KEY: ApiKey = ApiKey::DescribeUserScramCredentials;
pub const VERSIONS: Versions = Versions::new(0, 0);
pub type Request = DescribeUserScramCredentialsRequest;

fn infos(creds: &[UserCredentialInfo], user: &str) -> Vec<CredentialInfo> {
    creds
        .iter()
        .filter(|c| c.user == user)
        .filter_map(|c| {
            ScramMechanism::from_name(&c.mechanism).map(|m| {
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(c.iterations)
            })
        })
        .collect()
}

pub async fn handle(
    ctx: &RequestCtx<'_>,
    req: Request,
) -> Option<DescribeUserScramCredentialsResponse> {
    let users = ctx.broker.log.users();
    let response = DescribeUserScramCredentialsResponse::default();
    let result = |user: &str, code: i16, message: Option<&str>| {
        DescribeUserScramCredentialsResult::default()
            .with_user(s(user))
            .with_error_code(code)
            .with_error_message(message.map(s))
    };
    if !ctx.allowed(op::DESCRIBE, Resource::Cluster).await {
        return Some(
            response
                .with_error_code(error_code::CLUSTER_AUTHORIZATION_FAILED)
                .with_error_message(Some(s("Cluster authorization failed."))),
        );
    }
    let Some(names) = req.users.filter(|u| !u.is_empty()) else {
        return Some(match users.list(None).await {
            Ok(all) => {
                let mut names: Vec<&str> = all.iter().map(|c| c.user.as_str()).collect();
                names.dedup();
                response.with_results(
                    names
                        .into_iter()
                        .map(|u| result(u, 0, None).with_credential_infos(infos(&all, u)))
                        .collect(),
                )
            }
            Err(e) => response
                .with_error_code(error_code::from_log_error(&e))
                .with_error_message(Some(s(e.to_string()))),
        });
    };
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for n in &names {
        *counts.entry(n.name.as_str()).or_default() += 1;
    }
    let mut reported: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut results = Vec::with_capacity(names.len());
    for name in names.iter() {
        let user = name.name.as_str();
        if counts.get(user).copied().unwrap_or(0) > 1 {
            if reported.insert(user) {
                results.push(result(
                    user,
                    error_code::DUPLICATE_RESOURCE,
                    Some("Cannot describe SCRAM credentials for the same user twice in a single request"),
                ));
            }
            continue;
        }
        results.push(match users.list(Some(user)).await {
            Ok(creds) if creds.is_empty() => result(
                user,
                error_code::RESOURCE_NOT_FOUND,
                Some("Attempt to describe a user credential that does not exist"),
            ),
            Ok(creds) => result(user, 0, None).with_credential_infos(infos(&creds, user)),
            Err(e) => result(user, error_code::from_log_error(&e), Some(&e.to_string())),
        });
    }
    Some(response.with_results(results))
}
