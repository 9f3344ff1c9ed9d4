//! Ownership keys of groups: which broker coordinates a group, and since which epoch.
//!
//! Every store transaction that writes on a group coordinator's behalf reads the group's owner key
//! as a conflicting read, so when several brokers share one store a broker that takes a group over
//! writes that key and a write still in flight on the old coordinator conflicts. A broker that
//! writes a group owned by another node id takes it over (epoch + 1). (Partitions have their own
//! claims: `leadership.rs`.)

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
