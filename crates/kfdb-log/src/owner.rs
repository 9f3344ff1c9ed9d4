//! Ownership keys: which broker writes a partition or coordinates a group, and since which epoch.
//!
//! Every store transaction that writes on an owner's behalf reads its owner key as a conflicting
//! read, so when several brokers share one FoundationDB a broker that takes over writes that key
//! and an append (or group write) still in flight on the old owner conflicts instead of forking
//! the log. Ownership policy today: a broker that writes a partition or group owned by another
//! node id takes it over (epoch + 1) and logs it.

use crate::error::LogResult;
use crate::values::Owner;
use kfdb_kv::Transaction;

/// Read an owner key in the transaction, so that a change of owner conflicts, and take ownership
/// when the key is absent or names another node (epoch + 1). Returns the owner now in force and
/// the one displaced, if any.
pub(crate) async fn claim(
    tx: &Transaction,
    key: &[u8],
    node: i32,
) -> LogResult<(Owner, Option<Owner>)> {
    let current = match tx.get(key, false).await? {
        Some(v) => Some(Owner::decode(&v)?),
        None => None,
    };
    match current {
        Some(o) if o.node == node => Ok((o, None)),
        other => {
            let owner = Owner {
                node,
                epoch: other.map(|o| o.epoch + 1).unwrap_or(0),
            };
            tx.set(key, &owner.encode());
            Ok((owner, other))
        }
    }
}
