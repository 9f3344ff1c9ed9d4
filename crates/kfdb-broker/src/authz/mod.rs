//! Authorization with Kafka's ACLs (`--authorizer acl`): each broker keeps a copy of the ACL
//! bindings, checked against the store's `acls_version` at most every [`REFRESH`] (so a change
//! made on any broker is enforced everywhere within a second), and decides each request with
//! `acl::decide`. Off (Kafka's default: no `authorizer.class.name`), everything is allowed and the
//! ACL APIs answer SECURITY_DISABLED. If the bindings cannot be read, the last copy is used; with
//! none yet, everything but a super user is refused (fail closed).

pub mod acl;

use acl::{Policy, Resource};
use bytes::Bytes;
use kfdb_log::{AclBinding, Log};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How stale the ACL copy may get.
pub const REFRESH: Duration = Duration::from_millis(500);

/// Authorizer settings (Kafka's names in comments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzConfig {
    /// `authorizer.class.name` set: ACLs are enforced.
    pub enabled: bool,
    /// `super.users` and `allow.everyone.if.no.acl.found`.
    pub policy: Policy,
}

struct Copy {
    checked: Option<Instant>,
    version: Option<Bytes>,
    bindings: Option<Arc<Vec<AclBinding>>>,
}

/// See the module documentation.
pub struct Authorizer {
    config: AuthzConfig,
    log: Arc<Log>,
    copy: tokio::sync::Mutex<Copy>,
}

impl Authorizer {
    /// An authorizer over `log`'s ACLs.
    pub fn new(log: Arc<Log>, config: AuthzConfig) -> Self {
        Self {
            config,
            log,
            copy: tokio::sync::Mutex::new(Copy {
                checked: None,
                version: None,
                bindings: None,
            }),
        }
    }

    /// Whether ACLs are enforced.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The bindings in force (refreshed when older than [`REFRESH`] and changed in the store).
    async fn bindings(&self) -> Option<Arc<Vec<AclBinding>>> {
        let mut copy = self.copy.lock().await;
        if copy.checked.is_some_and(|t| t.elapsed() < REFRESH) && copy.bindings.is_some() {
            return copy.bindings.clone();
        }
        let fresh = match self.log.acls().version().await {
            Ok(v) if copy.bindings.is_some() && v == copy.version => Ok(None),
            Ok(_) => self.log.acls().list().await.map(Some),
            Err(e) => Err(e),
        };
        match fresh {
            Ok(Some((version, bindings))) => {
                copy.version = version;
                copy.bindings = Some(Arc::new(bindings));
                copy.checked = Some(Instant::now());
            }
            Ok(None) => copy.checked = Some(Instant::now()),
            Err(e) => {
                // Back off: the next check in REFRESH, not every request meanwhile.
                copy.checked = Some(Instant::now());
                tracing::warn!(error = %e, "reading the ACLs failed; using the last copy")
            }
        }
        copy.bindings.clone()
    }

    /// Forget the copy (after a change made here, so it is seen at once).
    pub async fn invalidate(&self) {
        self.copy.lock().await.checked = None;
    }

    /// Whether everything is allowed to `principal` (no authorizer, or a super user).
    fn unrestricted(&self, principal: &str) -> bool {
        !self.config.enabled
            || self
                .config
                .policy
                .super_users
                .iter()
                .any(|s| s == principal)
    }

    /// Whether `principal` at `host` may do `operation` on `r`.
    pub async fn allowed(
        &self,
        principal: &str,
        host: &str,
        operation: i8,
        r: Resource<'_>,
    ) -> bool {
        if self.unrestricted(principal) {
            return true;
        }
        match self.bindings().await {
            Some(b) => acl::decide(&b, &self.config.policy, principal, host, operation, r),
            None => false,
        }
    }

    /// Whether `principal` at `host` is allowed `operation` on at least one resource of type
    /// `resource_type` (Kafka's `authorizeByResourceType`: an idempotent producer needs
    /// IDEMPOTENT_WRITE on the cluster or WRITE on some topic). DENY bindings are not weighed.
    pub async fn allowed_on_some(
        &self,
        principal: &str,
        host: &str,
        resource_type: i8,
        operation: i8,
    ) -> bool {
        if self.unrestricted(principal) {
            return true;
        }
        let Some(bindings) = self.bindings().await else {
            return false;
        };
        bindings.iter().any(|b| {
            b.resource_type == resource_type
                && b.permission == acl::permission::ALLOW
                && (b.operation == operation || b.operation == acl::op::ALL)
                && (b.principal == principal || b.principal == "User:*")
                && (b.host == host || b.host == "*")
        })
    }

    /// KIP-430: the operations on `r` that `principal` at `host` may do, as a bit field (bit `n`
    /// for operation code `n`).
    pub async fn authorized_operations(&self, principal: &str, host: &str, r: Resource<'_>) -> i32 {
        let mut bits = 0i32;
        for &o in r.operations() {
            if self.allowed(principal, host, o, r).await {
                bits |= 1 << o;
            }
        }
        bits
    }
}
