//! Walking a key range page by page, one store transaction per page: how the sweeps and listings
//! that may meet millions of keys stay inside FoundationDB's limits (5 s, 10 MB per transaction).

use crate::error::{LogError, LogResult};
use kfdb_kv::{Database, KeyValue, RangeOption, Transaction};
use std::future::Future;

/// Read `[begin, end)` in pages of up to `limit` rows (snapshot reads, no conflicts); for each
/// page call `page` with the page's transaction and rows, inside that transaction (its reads and
/// writes commit with it; it may run again on a retry). Returns what `page` returned, in order.
pub(crate) async fn walk_pages<T, F, Fut>(
    db: &Database,
    begin: Vec<u8>,
    end: Vec<u8>,
    limit: usize,
    page: F,
) -> LogResult<Vec<T>>
where
    F: Fn(Transaction, Vec<KeyValue>) -> Fut,
    Fut: Future<Output = LogResult<T>>,
{
    let page = &page;
    let (mut from, mut out) = (begin, Vec::new());
    loop {
        let (value, next) = db
            .run(|tx, _| {
                let (from, end) = (from.clone(), end.clone());
                async move {
                    let rows = tx
                        .get_range(&RangeOption::new(from, end).limit(limit), true)
                        .await?;
                    // A full page may be followed by more rows even when `more` is not set.
                    let next = match rows.kvs.last() {
                        Some(last) if rows.more || rows.kvs.len() >= limit => {
                            Some(kfdb_kv::key_after(&last.key))
                        }
                        _ => None,
                    };
                    Ok::<_, LogError>((page(tx, rows.kvs).await?, next))
                }
            })
            .await?;
        out.push(value);
        match next {
            Some(k) => from = k,
            None => return Ok(out),
        }
    }
}
