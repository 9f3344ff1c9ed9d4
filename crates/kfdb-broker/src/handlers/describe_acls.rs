//! DescribeAcls (key 29): the bindings a filter selects, grouped by resource. Needs DESCRIBE on
//! the cluster; a filter with unknown codes is INVALID_REQUEST; without an authorizer,
//! SECURITY_DISABLED.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Filter, filter_of, op};
use crate::error_code;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse};
use std::collections::BTreeMap;

pub const KEY: ApiKey = ApiKey::DescribeAcls;
pub const VERSIONS: Versions = Versions::new(1, 3);
pub type Request = DescribeAclsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeAclsResponse> {
    let fail = |code: i16, message: &str| {
        Some(
            DescribeAclsResponse::default()
                .with_error_code(code)
                .with_error_message(Some(s(message))),
        )
    };
    if let Some((code, message)) = ctx.acl_api_refusal(op::DESCRIBE).await {
        return fail(code, message);
    }
    let filter: Filter = filter_of!(req);
    if filter.has_unknown() {
        return fail(
            error_code::INVALID_REQUEST,
            "The filter contained unknown elements",
        );
    }
    let bindings = match ctx.broker.log.acls().list().await {
        Ok((_, b)) => b,
        Err(e) => return fail(error_code::from_log_error(&e), &e.to_string()),
    };
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in bindings.into_iter().filter(|b| filter.matches(b)) {
        by_resource
            .entry((b.resource_type, b.resource_name, b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(s(b.principal))
                    .with_host(s(b.host))
                    .with_operation(b.operation)
                    .with_permission_type(b.permission),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(s(name))
                .with_pattern_type(pt)
                .with_acls(acls)
        })
        .collect();
    Some(DescribeAclsResponse::default().with_resources(resources))
}
