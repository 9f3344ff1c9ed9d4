//! ACL bindings in the store, so that every broker of a cluster enforces the same ones. Each
//! binding is one key holding Kafka's codes (resource type, pattern type, name, principal, host,
//! operation, permission) and no value; every change bumps `acls_version` in the same
//! transaction, which brokers read to know when their cached copy is stale. What the codes mean
//! and how bindings match a request is the broker's (kfdb-broker's `authz`).

use crate::error::{LogError, LogResult};
use crate::keys;
use bytes::Bytes;
use kfdb_kv::{Database, MutationType, RangeOption};

/// One ACL binding, with Kafka's codes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// Resource type (2 topic, 3 group, 4 cluster, 5 transactional id, ...).
    pub resource_type: i8,
    /// Pattern type (3 literal, 4 prefixed).
    pub pattern_type: i8,
    /// Resource name (or prefix; `*` literal: every resource of the type).
    pub resource_name: String,
    /// `User:name` (or `User:*`).
    pub principal: String,
    /// Client host (`*`: any).
    pub host: String,
    /// Operation (2 all, 3 read, 4 write, ...).
    pub operation: i8,
    /// Permission (2 deny, 3 allow).
    pub permission: i8,
}

impl AclBinding {
    fn key(&self) -> Vec<u8> {
        keys::acl(&(
            i64::from(self.resource_type),
            i64::from(self.pattern_type),
            self.resource_name.clone(),
            self.principal.clone(),
            self.host.clone(),
            i64::from(self.operation),
            i64::from(self.permission),
        ))
    }

    fn parse(key: &[u8]) -> LogResult<Self> {
        let (rt, pt, resource_name, principal, host, op, perm) = keys::parse_acl(key)?;
        let code =
            |v: i64| i8::try_from(v).map_err(|_| LogError::corrupt("acl key", format!("code {v}")));
        Ok(Self {
            resource_type: code(rt)?,
            pattern_type: code(pt)?,
            resource_name,
            principal,
            host,
            operation: code(op)?,
            permission: code(perm)?,
        })
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Acls {
    db: Database,
}

impl Acls {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }

    /// Store `bindings` (one that exists already stays as it is).
    pub async fn create(&self, bindings: &[AclBinding]) -> LogResult<()> {
        let keys: Vec<Vec<u8>> = bindings.iter().map(AclBinding::key).collect();
        self.db
            .run(|tx, _| {
                let keys = &keys;
                async move {
                    for k in keys {
                        tx.set(k, b"");
                    }
                    tx.atomic_op(
                        &keys::acls_version(),
                        &1i64.to_le_bytes(),
                        MutationType::Add,
                    );
                    Ok::<_, LogError>(())
                }
            })
            .await
    }

    /// Delete every binding `matches` selects, in one transaction; the deleted bindings.
    pub async fn delete_matching(
        &self,
        matches: impl Fn(&AclBinding) -> bool,
    ) -> LogResult<Vec<AclBinding>> {
        let matches = &matches;
        self.db
            .run(|tx, _| async move {
                let (b, e) = keys::acls();
                let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
                let mut deleted = Vec::new();
                for kv in &rows {
                    let binding = AclBinding::parse(&kv.key)?;
                    if matches(&binding) {
                        tx.clear(&kv.key);
                        deleted.push(binding);
                    }
                }
                if !deleted.is_empty() {
                    tx.atomic_op(
                        &keys::acls_version(),
                        &1i64.to_le_bytes(),
                        MutationType::Add,
                    );
                }
                Ok::<_, LogError>(deleted)
            })
            .await
    }

    /// Every binding, with the version they were read at (compare it with [`Self::version`]).
    pub async fn list(&self) -> LogResult<(Option<Bytes>, Vec<AclBinding>)> {
        self.db
            .run(|tx, _| async move {
                let version = tx.get(&keys::acls_version(), false).await?;
                let (b, e) = keys::acls();
                let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
                let bindings = rows
                    .iter()
                    .map(|kv| AclBinding::parse(&kv.key))
                    .collect::<LogResult<Vec<_>>>()?;
                Ok::<_, LogError>((version, bindings))
            })
            .await
    }

    /// The current ACL version (changes with every change of the bindings).
    pub async fn version(&self) -> LogResult<Option<Bytes>> {
        self.db
            .run(|tx, _| async move { Ok::<_, LogError>(tx.get(&keys::acls_version(), true).await?) })
            .await
    }
}
