//! What a broker does when the cluster, or another broker, changes what it serves:
//!
//! - membership: renew the lease and keep the view current (`Membership::run`);
//! - a new view: forget the claims of partitions this broker no longer leads and drop their
//!   cached tails (`Leadership::view_changed`, `Tails::retain`), waking their long-polling fetches;
//! - topics: another broker deleted or changed a topic: drop the topic cache (within a second:
//!   a watch on `topics_version`, and a poll every second);
//! - the inbox: partitions another broker changed that this one leads (a transaction marker
//!   written by the coordinator of another broker): drop their cached tails and wake their
//!   fetches, so a read_committed consumer sees the marker at once. Entries are read and cleared
//!   in one store transaction, so none is lost to a race with a new one.

use crate::catalog::TopicCatalog;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keys;
use crate::leadership::Leadership;
use crate::members::Membership;
use crate::partition;
use crate::tails::Tails;
use kfdb_kv::{Database, RangeOption};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long the inbox waits on its watch before looking anyway.
const INBOX_POLL: Duration = Duration::from_secs(1);

/// Start the watchers on the current runtime.
pub(crate) fn spawn(
    db: Database,
    membership: Arc<Membership>,
    leadership: Arc<Leadership>,
    tails: Arc<Tails>,
    topics: Arc<TopicCatalog>,
) -> Vec<JoinHandle<()>> {
    let node = membership.node_id();
    let mut views = membership.subscribe();
    let (l, t, m) = (leadership.clone(), tails.clone(), membership.clone());
    let topics_db = db.clone();
    vec![
        tokio::spawn(async move {
            let mut seen: Option<Vec<u8>> = None;
            loop {
                let version = async {
                    let tx = topics_db.create_transaction().ok()?;
                    let v = tx.get(&keys::topics_version(), false).await.ok()?;
                    let w = tx.watch(&keys::topics_version());
                    tx.commit().await.ok()?;
                    Some((v.map(|v| v.to_vec()).unwrap_or_default(), w))
                }
                .await;
                let Some((now, watch)) = version else {
                    tokio::time::sleep(INBOX_POLL).await;
                    continue;
                };
                if seen.as_ref().is_some_and(|s| *s != now) {
                    topics.invalidate();
                }
                seen = Some(now);
                let _ = tokio::time::timeout(INBOX_POLL, watch).await;
            }
        }),
        tokio::spawn(membership.clone().run()),
        tokio::spawn(async move {
            while views.changed().await.is_ok() {
                let lost = l.view_changed();
                let view = m.view();
                t.retain(|p| view.leader(p) == Some(node));
                if !lost.is_empty() {
                    tracing::info!(partitions = lost.len(), "no longer leading partitions");
                }
            }
        }),
        tokio::spawn(async move {
            loop {
                match drain_inbox(&db, node).await {
                    Ok(changed) => {
                        for (p, next) in changed {
                            tails.unsure(p, Some(next));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the broker inbox failed"),
                }
                let watch = async {
                    let tx = db.create_transaction().ok()?;
                    tx.get(&keys::inbox_version(node), false).await.ok()?;
                    let w = tx.watch(&keys::inbox_version(node));
                    tx.commit().await.ok()?;
                    w.await.ok()
                };
                let _ = tokio::time::timeout(INBOX_POLL, watch).await;
            }
        }),
    ]
}

/// Take this broker's inbox entries: each partition with its next offset now.
async fn drain_inbox(db: &Database, node: i32) -> LogResult<Vec<(PartitionId, i64)>> {
    db.run(|tx, _| async move {
        let (b, e) = keys::inbox(node);
        let rows = tx
            .get_range(&RangeOption::new(b, e).limit(1_000), false)
            .await?;
        let mut out = Vec::with_capacity(rows.kvs.len());
        for kv in &rows.kvs {
            let p = keys::parse_inbox_entry(node, &kv.key)?;
            let state = partition::read_state(&tx, p, true).await?;
            tx.clear(&kv.key);
            out.push((p, state.next_offset));
        }
        Ok::<_, LogError>(out)
    })
    .await
}
