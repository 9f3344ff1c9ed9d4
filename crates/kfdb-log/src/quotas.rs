//! Client quotas in the store, so that every broker of a cluster applies the same ones. A quota
//! entity names a user, a client id, both, or an IP address — each either a name or that type's
//! default entity — and holds values by Kafka's quota keys (`producer_byte_rate`, ...). Each value
//! is one key; every change bumps `quotas_version` in the same transaction, which brokers read to
//! know when their cached copy is stale. Which keys and entity combinations are valid and how a
//! request's quota is resolved is the broker's (kfdb-broker's `quota`). Every write is a plain set
//! or clear, so a retry after `commit_unknown_result` is harmless.

use crate::error::{LogError, LogResult};
use crate::keys;
use bytes::Bytes;
use kfdb_kv::{Database, MutationType, RangeOption};

/// One part of a quota entity: the type's default entity, or a named one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityName {
    /// The default for every name of the type (Kafka's `<default>`, a null name on the wire).
    Default,
    /// One user, client id or address.
    Named(String),
}

impl EntityName {
    /// From the wire: a null name is the default entity.
    pub fn from_wire(name: Option<&str>) -> Self {
        match name {
            None => EntityName::Default,
            Some(n) => EntityName::Named(n.to_string()),
        }
    }

    /// For the wire: the default entity is a null name.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

/// A quota entity: which of user, client id and IP it names (validity is the broker's concern).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuotaEntity {
    /// `user`.
    pub user: Option<EntityName>,
    /// `client-id`.
    pub client_id: Option<EntityName>,
    /// `ip`.
    pub ip: Option<EntityName>,
}

fn slot(part: &Option<EntityName>) -> (i64, String) {
    match part {
        None => (0, String::new()),
        Some(EntityName::Default) => (1, String::new()),
        Some(EntityName::Named(n)) => (2, n.clone()),
    }
}

fn unslot(kind: i64, name: String) -> LogResult<Option<EntityName>> {
    match kind {
        0 => Ok(None),
        1 => Ok(Some(EntityName::Default)),
        2 => Ok(Some(EntityName::Named(name))),
        k => Err(LogError::corrupt("client quota key", format!("kind {k}"))),
    }
}

impl QuotaEntity {
    fn key(&self, quota: &str) -> Vec<u8> {
        let (uk, u) = slot(&self.user);
        let (ck, c) = slot(&self.client_id);
        let (ik, i) = slot(&self.ip);
        keys::client_quota(&(uk, u, ck, c, ik, i, quota.to_string()))
    }

    fn parse(key: &[u8]) -> LogResult<(Self, String)> {
        let (uk, u, ck, c, ik, i, quota) = keys::parse_client_quota(key)?;
        Ok((
            Self {
                user: unslot(uk, u)?,
                client_id: unslot(ck, c)?,
                ip: unslot(ik, i)?,
            },
            quota,
        ))
    }
}

/// One entity's quota values, by key.
pub type QuotaValues = Vec<(String, f64)>;

/// A change to one entity: each key set to a value, or removed (`None`).
pub type QuotaChange = (QuotaEntity, Vec<(String, Option<f64>)>);

/// See the module documentation.
#[derive(Clone)]
pub struct ClientQuotas {
    db: Database,
}

fn decode_value(v: &[u8]) -> LogResult<f64> {
    let bytes: [u8; 8] = v
        .try_into()
        .map_err(|_| LogError::corrupt("client quota value", format!("{} bytes", v.len())))?;
    Ok(f64::from_le_bytes(bytes))
}

impl ClientQuotas {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }

    /// Apply `changes` in one transaction (removing a key that is not set does nothing).
    pub async fn alter(&self, changes: &[QuotaChange]) -> LogResult<()> {
        self.db
            .run(|tx, _| async move {
                for (entity, ops) in changes {
                    for (quota, value) in ops {
                        let key = entity.key(quota);
                        match value {
                            Some(v) => tx.set(&key, &v.to_le_bytes()),
                            None => tx.clear(&key),
                        }
                    }
                }
                tx.atomic_op(
                    &keys::quotas_version(),
                    &1i64.to_le_bytes(),
                    MutationType::Add,
                );
                Ok::<_, LogError>(())
            })
            .await
    }

    /// Every entity with at least one value, with the version they were read at (compare it
    /// with [`Self::version`]).
    pub async fn list(&self) -> LogResult<(Option<Bytes>, Vec<(QuotaEntity, QuotaValues)>)> {
        self.db
            .run(|tx, _| async move {
                let version = tx.get(&keys::quotas_version(), false).await?;
                let (b, e) = keys::client_quotas();
                let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
                let mut out: Vec<(QuotaEntity, QuotaValues)> = Vec::new();
                for kv in &rows {
                    let (entity, quota) = QuotaEntity::parse(&kv.key)?;
                    let value = decode_value(&kv.value)?;
                    // Keys sort by entity first, so one entity's values are adjacent.
                    match out.last_mut() {
                        Some((last, values)) if *last == entity => values.push((quota, value)),
                        _ => out.push((entity, vec![(quota, value)])),
                    }
                }
                Ok::<_, LogError>((version, out))
            })
            .await
    }

    /// The current quota version (changes with every change of a quota).
    pub async fn version(&self) -> LogResult<Option<Bytes>> {
        self.db
            .run(|tx, _| async move {
                Ok::<_, LogError>(tx.get(&keys::quotas_version(), true).await?)
            })
            .await
    }
}
