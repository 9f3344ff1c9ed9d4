//! SASL users: each user's salted SCRAM credentials, one per mechanism, in the store so that
//! every broker of a cluster authenticates against the same ones. This module only stores and
//! lists them; computing a credential from a password and checking a client's proof is the
//! broker's (kfdb-broker's `sasl`). Every write is a plain set or clear, so a retry after
//! `commit_unknown_result` is harmless.

use crate::error::{LogError, LogResult};
use crate::keys;
use crate::values::ScramCredential;
use kfdb_kv::{Database, RangeOption};

/// One stored credential as listings show it (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentialInfo {
    /// The user name.
    pub user: String,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// Its PBKDF2 iterations.
    pub iterations: i32,
}

/// See the module documentation.
#[derive(Clone)]
pub struct Users {
    db: Database,
}

impl Users {
    /// Users in `db` (also used store-direct, with no broker running).
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// `user`'s credential for `mechanism`, if there is one.
    pub async fn credential(
        &self,
        user: &str,
        mechanism: &str,
    ) -> LogResult<Option<ScramCredential>> {
        let key = keys::scram_credential(user, mechanism);
        self.db
            .run(|tx, _| {
                let key = &key;
                async move {
                    match tx.get(key, true).await? {
                        Some(v) => ScramCredential::decode(&v).map(Some),
                        None => Ok(None),
                    }
                }
            })
            .await
    }

    /// Set (create or replace) `user`'s credential for `mechanism`.
    pub async fn upsert(
        &self,
        user: &str,
        mechanism: &str,
        credential: &ScramCredential,
    ) -> LogResult<()> {
        let (key, value) = (keys::scram_credential(user, mechanism), credential.encode());
        self.db
            .run(|tx, _| {
                let (key, value) = (&key, &value);
                async move {
                    tx.set(key, value);
                    Ok::<_, LogError>(())
                }
            })
            .await
    }

    /// Delete `user`'s credential for `mechanism`; false when there was none.
    pub async fn delete(&self, user: &str, mechanism: &str) -> LogResult<bool> {
        let key = keys::scram_credential(user, mechanism);
        self.db
            .run(|tx, _| {
                let key = &key;
                async move {
                    let existed = tx.get(key, false).await?.is_some();
                    tx.clear(key);
                    Ok::<_, LogError>(existed)
                }
            })
            .await
    }

    /// The credentials of `user` (`None`: every user's), by user and mechanism.
    pub async fn list(&self, user: Option<&str>) -> LogResult<Vec<UserCredentialInfo>> {
        let (b, e) = match user {
            Some(u) => keys::scram_user(u),
            None => keys::scram_credentials(),
        };
        let rows =
            self.db
                .run(|tx, _| {
                    let (b, e) = (b.clone(), e.clone());
                    async move {
                        Ok::<_, LogError>(tx.get_range_all(RangeOption::new(b, e), true).await?)
                    }
                })
                .await?;
        rows.iter()
            .map(|kv| {
                let (user, mechanism) = keys::parse_scram_credential(&kv.key)?;
                let c = ScramCredential::decode(&kv.value)?;
                Ok(UserCredentialInfo {
                    user,
                    mechanism,
                    iterations: c.iterations,
                })
            })
            .collect()
    }
}
