//! DeleteAcls (key 31): delete the bindings each filter selects, and name them. Needs ALTER on
//! the cluster; a filter with unknown codes is INVALID_REQUEST; without an authorizer,
//! SECURITY_DISABLED.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Filter, filter_of, op};
use crate::error_code;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{ApiKey, DeleteAclsRequest, DeleteAclsResponse};

pub const KEY: ApiKey = ApiKey::DeleteAcls;
pub const VERSIONS: Versions = Versions::new(1, 3);
pub type Request = DeleteAclsRequest;

fn failed(code: i16, message: &str) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code)
        .with_error_message(Some(s(message)))
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DeleteAclsResponse> {
    let refuse = |code: i16, message: &str| {
        Some(
            DeleteAclsResponse::default()
                .with_filter_results(req.filters.iter().map(|_| failed(code, message)).collect()),
        )
    };
    if let Some((code, message)) = ctx.acl_api_refusal(op::ALTER).await {
        return refuse(code, message);
    }
    let mut results = Vec::with_capacity(req.filters.len());
    for f in &req.filters {
        let filter: Filter = filter_of!(f);
        if filter.has_unknown() {
            results.push(failed(
                error_code::INVALID_REQUEST,
                "The filter contained unknown elements",
            ));
            continue;
        }
        results.push(
            match ctx
                .broker
                .log
                .acls()
                .delete_matching(|b| filter.matches(b))
                .await
            {
                Ok(deleted) => DeleteAclsFilterResult::default().with_matching_acls(
                    deleted
                        .into_iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type)
                                .with_resource_name(s(b.resource_name))
                                .with_pattern_type(b.pattern_type)
                                .with_principal(s(b.principal))
                                .with_host(s(b.host))
                                .with_operation(b.operation)
                                .with_permission_type(b.permission)
                        })
                        .collect(),
                ),
                Err(e) => failed(error_code::from_log_error(&e), &e.to_string()),
            },
        );
    }
    ctx.broker.authorizer.invalidate().await;
    Some(DeleteAclsResponse::default().with_filter_results(results))
}
