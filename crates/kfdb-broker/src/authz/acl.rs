//! Kafka's ACL model: the codes of resource types, pattern types, operations and permissions, and
//! how a binding applies to a request — the pure part of authorization, kept apart from where the
//! bindings come from (`authz/mod.rs`).
//!
//! As Kafka's standard authorizer decides: a super user may do anything; a DENY binding that
//! applies wins over any ALLOW; an ALLOW of READ, WRITE, DELETE or ALTER implies DESCRIBE, and one
//! of ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL covers every operation; a resource no binding
//! names at all is allowed only with `allow.everyone.if.no.acl.found`.

use kfdb_log::AclBinding;

/// Resource type codes.
pub mod resource {
    /// Any type (filters only).
    pub const ANY: i8 = 1;
    /// A topic.
    pub const TOPIC: i8 = 2;
    /// A consumer group.
    pub const GROUP: i8 = 3;
    /// The cluster (its one resource is named `kafka-cluster`).
    pub const CLUSTER: i8 = 4;
    /// A transactional id.
    pub const TRANSACTIONAL_ID: i8 = 5;
    /// A delegation token (not supported).
    pub const DELEGATION_TOKEN: i8 = 6;
    /// A user (not supported).
    pub const USER: i8 = 7;
}

/// Pattern type codes.
pub mod pattern {
    /// Any pattern (filters only).
    pub const ANY: i8 = 1;
    /// Bindings that apply to the named resource (filters only).
    pub const MATCH: i8 = 2;
    /// The name exactly (or `*`: every resource of the type).
    pub const LITERAL: i8 = 3;
    /// Every resource whose name starts with the name.
    pub const PREFIXED: i8 = 4;
}

/// Operation codes.
pub mod op {
    /// Any operation (filters only).
    pub const ANY: i8 = 1;
    /// Every operation.
    pub const ALL: i8 = 2;
    /// Read.
    pub const READ: i8 = 3;
    /// Write.
    pub const WRITE: i8 = 4;
    /// Create.
    pub const CREATE: i8 = 5;
    /// Delete.
    pub const DELETE: i8 = 6;
    /// Alter.
    pub const ALTER: i8 = 7;
    /// Describe.
    pub const DESCRIBE: i8 = 8;
    /// Cluster action (inter-broker).
    pub const CLUSTER_ACTION: i8 = 9;
    /// Describe configs.
    pub const DESCRIBE_CONFIGS: i8 = 10;
    /// Alter configs.
    pub const ALTER_CONFIGS: i8 = 11;
    /// Idempotent write.
    pub const IDEMPOTENT_WRITE: i8 = 12;
    /// Create delegation tokens (not supported).
    pub const CREATE_TOKENS: i8 = 13;
    /// Describe delegation tokens (not supported).
    pub const DESCRIBE_TOKENS: i8 = 14;
}

/// Permission codes.
pub mod permission {
    /// Any permission (filters only).
    pub const ANY: i8 = 1;
    /// Deny.
    pub const DENY: i8 = 2;
    /// Allow.
    pub const ALLOW: i8 = 3;
}

/// The cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// A resource a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A topic.
    Topic(&'a str),
    /// A consumer group.
    Group(&'a str),
    /// The cluster.
    Cluster,
    /// A transactional id.
    TransactionalId(&'a str),
}

impl Resource<'_> {
    /// Its type code.
    pub fn type_code(&self) -> i8 {
        match self {
            Resource::Topic(_) => resource::TOPIC,
            Resource::Group(_) => resource::GROUP,
            Resource::Cluster => resource::CLUSTER,
            Resource::TransactionalId(_) => resource::TRANSACTIONAL_ID,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Resource::Topic(n) | Resource::Group(n) | Resource::TransactionalId(n) => n,
            Resource::Cluster => CLUSTER_NAME,
        }
    }

    /// The operations that make sense on it (what KIP-430's authorized operations list).
    pub fn operations(&self) -> &'static [i8] {
        match self {
            Resource::Topic(_) => &[
                op::READ,
                op::WRITE,
                op::CREATE,
                op::DELETE,
                op::ALTER,
                op::DESCRIBE,
                op::DESCRIBE_CONFIGS,
                op::ALTER_CONFIGS,
            ],
            Resource::Group(_) => &[
                op::READ,
                op::DESCRIBE,
                op::DELETE,
                op::DESCRIBE_CONFIGS,
                op::ALTER_CONFIGS,
            ],
            Resource::Cluster => &[
                op::CREATE,
                op::CLUSTER_ACTION,
                op::DESCRIBE_CONFIGS,
                op::ALTER_CONFIGS,
                op::IDEMPOTENT_WRITE,
                op::ALTER,
                op::DESCRIBE,
            ],
            Resource::TransactionalId(_) => &[op::DESCRIBE, op::WRITE],
        }
    }
}

/// Whether a binding of `pattern_type` and `pattern` names the resource `name`.
pub fn names(pattern_type: i8, pattern: &str, name: &str) -> bool {
    match pattern_type {
        pattern::LITERAL => pattern == name || pattern == "*",
        pattern::PREFIXED => name.starts_with(pattern),
        _ => false,
    }
}

/// Whether an ALLOW of `granted` allows `wanted`.
fn allow_covers(granted: i8, wanted: i8) -> bool {
    granted == wanted
        || granted == op::ALL
        || (wanted == op::DESCRIBE
            && matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (wanted == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

/// The settings a decision depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// `super.users`: principals allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

/// Whether `principal` at `host` may do `operation` on `r`, given `bindings`.
pub fn decide(
    bindings: &[AclBinding],
    policy: &Policy,
    principal: &str,
    host: &str,
    operation: i8,
    r: Resource<'_>,
) -> bool {
    if policy.super_users.iter().any(|s| s == principal) {
        return true;
    }
    let (rtype, name) = (r.type_code(), r.name());
    let mut named = false;
    let mut allowed = false;
    for b in bindings
        .iter()
        .filter(|b| b.resource_type == rtype && names(b.pattern_type, &b.resource_name, name))
    {
        named = true;
        let who = b.principal == principal || b.principal == "User:*";
        let from = b.host == host || b.host == "*";
        if !(who && from) {
            continue;
        }
        match b.permission {
            permission::DENY if b.operation == operation || b.operation == op::ALL => return false,
            permission::ALLOW if allow_covers(b.operation, operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!named && policy.allow_if_no_acl)
}

/// A filter over bindings (DescribeAcls, DeleteAcls), as Kafka's `AclBindingFilter` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Resource type, or ANY.
    pub resource_type: i8,
    /// Resource name (`None`: any).
    pub name: Option<String>,
    /// Pattern type, ANY, or MATCH (the bindings that apply to `name`).
    pub pattern_type: i8,
    /// Principal (`None`: any).
    pub principal: Option<String>,
    /// Host (`None`: any).
    pub host: Option<String>,
    /// Operation, or ANY.
    pub operation: i8,
    /// Permission, or ANY.
    pub permission: i8,
}

/// The filter of a DescribeAcls request or a DeleteAcls filter (their fields share names).
macro_rules! filter_of {
    ($f:expr) => {
        $crate::authz::acl::Filter {
            resource_type: $f.resource_type_filter,
            name: $f.resource_name_filter.as_ref().map(|n| n.to_string()),
            pattern_type: $f.pattern_type_filter,
            principal: $f.principal_filter.as_ref().map(|p| p.to_string()),
            host: $f.host_filter.as_ref().map(|h| h.to_string()),
            operation: $f.operation,
            permission: $f.permission_type,
        }
    };
}
pub(crate) use filter_of;

impl Filter {
    /// Whether a code is unknown (0, or past the known ones): such a filter is refused.
    pub fn has_unknown(&self) -> bool {
        !(resource::ANY..=resource::USER).contains(&self.resource_type)
            || !(pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type)
            || !(op::ANY..=op::DESCRIBE_TOKENS).contains(&self.operation)
            || !(permission::ANY..=permission::ALLOW).contains(&self.permission)
    }

    /// Whether `b` passes the filter.
    pub fn matches(&self, b: &AclBinding) -> bool {
        let any = |want: i8, any: i8, got: i8| want == any || want == got;
        if !any(self.resource_type, resource::ANY, b.resource_type)
            || !any(self.operation, op::ANY, b.operation)
            || !any(self.permission, permission::ANY, b.permission)
        {
            return false;
        }
        if self.principal.as_ref().is_some_and(|p| *p != b.principal)
            || self.host.as_ref().is_some_and(|h| *h != b.host)
        {
            return false;
        }
        match (self.pattern_type, &self.name) {
            (pattern::MATCH, None) => true,
            (pattern::MATCH, Some(n)) => names(b.pattern_type, &b.resource_name, n),
            (pt, name) => {
                (pt == pattern::ANY || pt == b.pattern_type)
                    && name.as_ref().is_none_or(|n| *n == b.resource_name)
            }
        }
    }
}

/// Why a binding cannot be created (Kafka answers INVALID_REQUEST), if it cannot.
pub fn invalid_binding(b: &AclBinding) -> Option<&'static str> {
    if !matches!(
        b.resource_type,
        resource::TOPIC | resource::GROUP | resource::CLUSTER | resource::TRANSACTIONAL_ID
    ) {
        return Some("Invalid resource type: only TOPIC, GROUP, CLUSTER and TRANSACTIONAL_ID");
    }
    if !matches!(b.pattern_type, pattern::LITERAL | pattern::PREFIXED) {
        return Some("Invalid pattern type: LITERAL or PREFIXED");
    }
    if b.resource_name.is_empty() {
        return Some("Resource name should not be empty");
    }
    if b.resource_type == resource::CLUSTER && b.resource_name != CLUSTER_NAME {
        return Some("The only valid name for the CLUSTER resource is kafka-cluster");
    }
    if !(op::ALL..=op::DESCRIBE_TOKENS).contains(&b.operation) {
        return Some("Invalid operation");
    }
    if !matches!(b.permission, permission::DENY | permission::ALLOW) {
        return Some("Invalid permission type: DENY or ALLOW");
    }
    match b.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => return Some("Could not parse principal: expected Type:name, e.g. User:alice"),
    }
    if b.host.is_empty() {
        return Some("Invalid host: an address or *");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(rt: i8, pt: i8, name: &str, who: &str, operation: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: rt,
            pattern_type: pt,
            resource_name: name.into(),
            principal: who.into(),
            host: "*".into(),
            operation,
            permission: perm,
        }
    }

    #[test]
    fn kafkas_rules() {
        let policy = Policy {
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        };
        let acls = vec![
            binding(
                resource::TOPIC,
                pattern::LITERAL,
                "orders",
                "User:alice",
                op::READ,
                permission::ALLOW,
            ),
            binding(
                resource::TOPIC,
                pattern::PREFIXED,
                "logs-",
                "User:alice",
                op::WRITE,
                permission::ALLOW,
            ),
            binding(
                resource::TOPIC,
                pattern::PREFIXED,
                "logs-secret",
                "User:alice",
                op::ALL,
                permission::DENY,
            ),
            binding(
                resource::GROUP,
                pattern::LITERAL,
                "*",
                "User:*",
                op::READ,
                permission::ALLOW,
            ),
            binding(
                resource::TOPIC,
                pattern::LITERAL,
                "cfg",
                "User:bob",
                op::ALTER_CONFIGS,
                permission::ALLOW,
            ),
        ];
        let ok = |who: &str, o: i8, r: Resource<'_>| decide(&acls, &policy, who, "10.0.0.1", o, r);
        assert!(ok("User:alice", op::READ, Resource::Topic("orders")));
        assert!(
            ok("User:alice", op::DESCRIBE, Resource::Topic("orders")),
            "READ implies DESCRIBE"
        );
        assert!(!ok("User:alice", op::WRITE, Resource::Topic("orders")));
        assert!(!ok("User:bob", op::READ, Resource::Topic("orders")));
        assert!(ok("User:alice", op::WRITE, Resource::Topic("logs-app")));
        assert!(
            !ok("User:alice", op::WRITE, Resource::Topic("logs-secret-1")),
            "deny wins"
        );
        assert!(!ok(
            "User:alice",
            op::DESCRIBE,
            Resource::Topic("logs-secret-1")
        ));
        assert!(
            ok("User:carol", op::READ, Resource::Group("any-group")),
            "wildcards"
        );
        assert!(ok("User:bob", op::DESCRIBE_CONFIGS, Resource::Topic("cfg")));
        assert!(!ok("User:bob", op::DESCRIBE, Resource::Topic("cfg")));
        assert!(
            !ok("User:alice", op::CREATE, Resource::Cluster),
            "no ACL: denied by default"
        );
        assert!(
            ok("User:admin", op::CREATE, Resource::Cluster),
            "super user"
        );
        let open = Policy {
            allow_if_no_acl: true,
            ..policy.clone()
        };
        assert!(decide(
            &acls,
            &open,
            "User:x",
            "h",
            op::CREATE,
            Resource::Cluster
        ));
        assert!(
            !decide(
                &acls,
                &open,
                "User:x",
                "h",
                op::READ,
                Resource::Topic("orders")
            ),
            "a resource with ACLs is not open to everyone"
        );
    }

    #[test]
    fn filters_match_as_kafkas() {
        let lit = binding(
            resource::TOPIC,
            pattern::LITERAL,
            "orders",
            "User:a",
            op::READ,
            permission::ALLOW,
        );
        let pre = binding(
            resource::TOPIC,
            pattern::PREFIXED,
            "ord",
            "User:a",
            op::READ,
            permission::ALLOW,
        );
        let star = binding(
            resource::TOPIC,
            pattern::LITERAL,
            "*",
            "User:b",
            op::WRITE,
            permission::DENY,
        );
        let f = |rt, name: Option<&str>, pt, principal: Option<&str>| Filter {
            resource_type: rt,
            name: name.map(str::to_string),
            pattern_type: pt,
            principal: principal.map(str::to_string),
            host: None,
            operation: op::ANY,
            permission: permission::ANY,
        };
        let hits = |f: &Filter| [&lit, &pre, &star].iter().filter(|b| f.matches(b)).count();
        assert_eq!(hits(&f(resource::ANY, None, pattern::ANY, None)), 3);
        assert_eq!(
            hits(&f(resource::TOPIC, Some("orders"), pattern::ANY, None)),
            1
        );
        assert_eq!(
            hits(&f(resource::TOPIC, Some("orders"), pattern::MATCH, None)),
            3
        );
        assert_eq!(hits(&f(resource::TOPIC, None, pattern::PREFIXED, None)), 1);
        assert_eq!(hits(&f(resource::GROUP, None, pattern::ANY, None)), 0);
        assert_eq!(
            hits(&f(resource::ANY, None, pattern::ANY, Some("User:b"))),
            1
        );
        assert!(f(0, None, pattern::ANY, None).has_unknown());
        assert!(invalid_binding(&lit).is_none());
        let mut bad = lit.clone();
        bad.pattern_type = pattern::MATCH;
        assert!(invalid_binding(&bad).is_some());
        bad = lit.clone();
        bad.principal = "alice".into();
        assert!(invalid_binding(&bad).is_some());
    }

    #[test]
    fn hosts_must_match() {
        let mut b = binding(
            resource::TOPIC,
            pattern::LITERAL,
            "t",
            "User:a",
            op::READ,
            permission::ALLOW,
        );
        b.host = "10.0.0.1".into();
        let p = Policy::default();
        assert!(decide(
            &[b.clone()],
            &p,
            "User:a",
            "10.0.0.1",
            op::READ,
            Resource::Topic("t")
        ));
        assert!(!decide(
            &[b],
            &p,
            "User:a",
            "10.0.0.2",
            op::READ,
            Resource::Topic("t")
        ));
    }
}
