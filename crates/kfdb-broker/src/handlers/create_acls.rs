//! CreateAcls (key 30): store ACL bindings. Needs ALTER on the cluster
//! (CLUSTER_AUTHORIZATION_FAILED); a binding Kafka would not accept (unknown or filter-only
//! codes, an empty name, a cluster resource not named `kafka-cluster`, a principal that is not
//! `Type:name`) is INVALID_REQUEST, the others are stored. Without an authorizer every creation
//! answers SECURITY_DISABLED, as Kafka does.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{self, op};
use crate::error_code;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, CreateAclsResponse};
use kfdb_log::AclBinding;

pub const KEY: ApiKey = ApiKey::CreateAcls;
pub const VERSIONS: Versions = Versions::new(1, 3);
pub type Request = CreateAclsRequest;

fn result(code: i16, message: Option<&str>) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code)
        .with_error_message(message.map(s))
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<CreateAclsResponse> {
    let all = |code: i16, message: &str| {
        Some(
            CreateAclsResponse::default().with_results(
                req.creations
                    .iter()
                    .map(|_| result(code, Some(message)))
                    .collect(),
            ),
        )
    };
    if let Some((code, message)) = ctx.acl_api_refusal(op::ALTER).await {
        return all(code, message);
    }
    let bindings: Vec<AclBinding> = req
        .creations
        .iter()
        .map(|c| AclBinding {
            resource_type: c.resource_type,
            pattern_type: c.resource_pattern_type,
            resource_name: c.resource_name.to_string(),
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        })
        .collect();
    let valid: Vec<AclBinding> = bindings
        .iter()
        .filter(|b| acl::invalid_binding(b).is_none())
        .cloned()
        .collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        ctx.broker.log.acls().create(&valid).await
    };
    ctx.broker.authorizer.invalidate().await;
    let results = bindings
        .iter()
        .map(|b| match (acl::invalid_binding(b), &stored) {
            (Some(why), _) => result(error_code::INVALID_REQUEST, Some(why)),
            (None, Ok(())) => result(0, None),
            (None, Err(e)) => result(error_code::from_log_error(e), Some(&e.to_string())),
        })
        .collect();
    Some(CreateAclsResponse::default().with_results(results))
}
