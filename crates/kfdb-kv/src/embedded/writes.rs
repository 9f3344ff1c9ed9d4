//! Read-your-writes: a transaction's buffered writes laid over the store's snapshot.
//!
//! `WriteMap` keeps, per key written by the transaction, its known value, the atomic operations
//! still to apply to an unknown base, or "unreadable" (a versionstamped value), plus the ranges the
//! transaction cleared. Point reads and merged range reads answer from it first and from the store
//! second, exactly as FoundationDB's RYW layer does.

use crate::atomic;
use crate::error::{KvError, KvResult};
use crate::types::MutationType;
use bytes::Bytes;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;

/// A read-only view of committed data.
pub(crate) trait StoreRead {
    fn get(&self, key: &[u8]) -> KvResult<Option<Bytes>>;
    /// Rows of `[begin, end)`, ascending or (`reverse`) descending.
    fn range<'a>(
        &'a self,
        begin: &[u8],
        end: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = KvResult<(Bytes, Bytes)>> + 'a>;
}

/// What this transaction knows about one key it wrote.
#[derive(Debug, Clone)]
pub(crate) enum Local {
    /// The value is known: set (`Some`) or cleared (`None`).
    Value(Option<Bytes>),
    /// Atomic operations to apply, in order, to the committed value.
    Ops(Vec<(MutationType, Bytes)>),
    /// Only known at commit (versionstamped value).
    Unreadable,
}

#[derive(Debug, Default)]
pub(crate) struct WriteMap {
    entries: BTreeMap<Vec<u8>, Local>,
    /// Cleared ranges, sorted and disjoint. Entries inside them were written after the clear.
    cleared: Vec<(Vec<u8>, Vec<u8>)>,
}

fn unreadable() -> KvError {
    KvError::new(
        KvError::ACCESSED_UNREADABLE,
        "read of a key whose value is only known at commit",
    )
}

impl WriteMap {
    pub(crate) fn set(&mut self, key: &[u8], value: Bytes) {
        self.entries.insert(key.to_vec(), Local::Value(Some(value)));
    }

    pub(crate) fn clear(&mut self, key: &[u8]) {
        self.entries.insert(key.to_vec(), Local::Value(None));
    }

    pub(crate) fn set_unreadable(&mut self, key: &[u8]) {
        self.entries.insert(key.to_vec(), Local::Unreadable);
    }

    pub(crate) fn clear_range(&mut self, begin: &[u8], end: &[u8]) {
        if begin >= end {
            return;
        }
        let doomed: Vec<Vec<u8>> = self
            .entries
            .range::<[u8], _>((Bound::Included(begin), Bound::Excluded(end)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.entries.remove(&k);
        }
        // Merge into the sorted disjoint list.
        let (mut b, mut e) = (begin.to_vec(), end.to_vec());
        let mut kept = Vec::with_capacity(self.cleared.len() + 1);
        for (cb, ce) in self.cleared.drain(..) {
            if ce < b || e < cb {
                kept.push((cb, ce));
            } else {
                b = b.min(cb);
                e = e.max(ce);
            }
        }
        kept.push((b, e));
        kept.sort();
        self.cleared = kept;
    }

    pub(crate) fn atomic(&mut self, key: &[u8], op: MutationType, param: Bytes) {
        let cleared = self.is_cleared(key);
        match self.entries.get_mut(key) {
            Some(Local::Value(v)) => {
                *v = atomic::apply(op, v.as_deref(), &param).map(Bytes::from);
            }
            Some(Local::Ops(ops)) => ops.push((op, param)),
            Some(Local::Unreadable) => {}
            None if cleared => {
                let v = atomic::apply(op, None, &param).map(Bytes::from);
                self.entries.insert(key.to_vec(), Local::Value(v));
            }
            None => {
                self.entries
                    .insert(key.to_vec(), Local::Ops(vec![(op, param)]));
            }
        }
    }

    pub(crate) fn is_cleared(&self, key: &[u8]) -> bool {
        let i = self.cleared.partition_point(|(b, _)| b.as_slice() <= key);
        i > 0 && key < self.cleared[i - 1].1.as_slice()
    }

    /// The value of `key` as this transaction sees it.
    pub(crate) fn get(&self, store: &dyn StoreRead, key: &[u8]) -> KvResult<Option<Bytes>> {
        match self.entries.get(key) {
            Some(local) => resolve(local, || store.get(key)),
            None if self.is_cleared(key) => Ok(None),
            None => store.get(key),
        }
    }

    /// True when the transaction has a buffered entry for `key` (for watches: value known locally).
    pub(crate) fn has_entry(&self, key: &[u8]) -> bool {
        self.entries.contains_key(key) || self.is_cleared(key)
    }

    /// Rows of `[begin, end)` as this transaction sees them, lazily merged.
    pub(crate) fn range<'a>(
        &'a self,
        store: &'a dyn StoreRead,
        begin: &[u8],
        end: &[u8],
        reverse: bool,
    ) -> impl Iterator<Item = KvResult<(Bytes, Bytes)>> + 'a {
        let bounds = (
            Bound::Included(begin.to_vec()),
            Bound::Excluded(end.to_vec()),
        );
        let locals: Box<dyn Iterator<Item = (&'a Vec<u8>, &'a Local)> + 'a> = if begin < end {
            if reverse {
                Box::new(self.entries.range(bounds).rev())
            } else {
                Box::new(self.entries.range(bounds))
            }
        } else {
            Box::new(std::iter::empty())
        };
        let committed: Box<dyn Iterator<Item = KvResult<(Bytes, Bytes)>> + 'a> = if begin < end {
            store.range(begin, end, reverse)
        } else {
            Box::new(std::iter::empty())
        };
        Merge {
            map: self,
            committed: committed.peekable(),
            locals: locals.peekable(),
            reverse,
        }
    }
}

fn resolve(
    local: &Local,
    committed: impl FnOnce() -> KvResult<Option<Bytes>>,
) -> KvResult<Option<Bytes>> {
    match local {
        Local::Value(v) => Ok(v.clone()),
        Local::Unreadable => Err(unreadable()),
        Local::Ops(ops) => {
            let mut v: Option<Vec<u8>> = committed()?.map(|b| b.to_vec());
            for (op, param) in ops {
                v = atomic::apply(*op, v.as_deref(), param);
            }
            Ok(v.map(Bytes::from))
        }
    }
}

struct Merge<
    'a,
    C: Iterator<Item = KvResult<(Bytes, Bytes)>>,
    L: Iterator<Item = (&'a Vec<u8>, &'a Local)>,
> {
    map: &'a WriteMap,
    committed: Peekable<C>,
    locals: Peekable<L>,
    reverse: bool,
}

impl<'a, C, L> Iterator for Merge<'a, C, L>
where
    C: Iterator<Item = KvResult<(Bytes, Bytes)>>,
    L: Iterator<Item = (&'a Vec<u8>, &'a Local)>,
{
    type Item = KvResult<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // Committed rows hidden by a local clear are skipped before comparing.
            if let Some(Ok((k, _))) = self.committed.peek()
                && self.map.is_cleared(k)
                && !self.map.entries.contains_key(k.as_ref())
            {
                self.committed.next();
                continue;
            }
            let order = match (self.committed.peek(), self.locals.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.committed.next(),
                (Some(Ok(_)), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(Ok((ck, _))), Some((lk, _))) => {
                    let o = ck.as_ref().cmp(lk.as_slice());
                    if self.reverse { o.reverse() } else { o }
                }
            };
            match order {
                Ordering::Less => return self.committed.next(),
                Ordering::Equal => {
                    let committed = self.committed.next().and_then(Result::ok).map(|(_, v)| v);
                    let (k, local) = self.locals.next()?;
                    match resolve(local, || Ok(committed)) {
                        Ok(Some(v)) => return Some(Ok((Bytes::from(k.clone()), v))),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
                Ordering::Greater => {
                    let (k, local) = self.locals.next()?;
                    match resolve(local, || Ok(None)) {
                        Ok(Some(v)) => return Some(Ok((Bytes::from(k.clone()), v))),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store in a B-tree, for testing the merge alone.
    pub(crate) struct MemStore(pub BTreeMap<Vec<u8>, Vec<u8>>);

    impl StoreRead for MemStore {
        fn get(&self, key: &[u8]) -> KvResult<Option<Bytes>> {
            Ok(self.0.get(key).map(|v| Bytes::from(v.clone())))
        }
        fn range<'a>(
            &'a self,
            begin: &[u8],
            end: &[u8],
            reverse: bool,
        ) -> Box<dyn Iterator<Item = KvResult<(Bytes, Bytes)>> + 'a> {
            let it = self
                .0
                .range(begin.to_vec()..end.to_vec())
                .map(|(k, v)| Ok((Bytes::from(k.clone()), Bytes::from(v.clone()))));
            if reverse {
                Box::new(it.rev())
            } else {
                Box::new(it)
            }
        }
    }

    fn store(keys: &[&str]) -> MemStore {
        MemStore(
            keys.iter()
                .map(|k| (k.as_bytes().to_vec(), format!("s{k}").into_bytes()))
                .collect(),
        )
    }

    fn keys(w: &WriteMap, s: &MemStore, b: &str, e: &str, rev: bool) -> Vec<String> {
        w.range(s, b.as_bytes(), e.as_bytes(), rev)
            .map(|r| {
                let (k, v) = r.unwrap();
                format!(
                    "{}={}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                )
            })
            .collect()
    }

    #[test]
    fn merge_overlays_sets_clears_and_ranges() {
        let s = store(&["a", "b", "c", "d", "e"]);
        let mut w = WriteMap::default();
        w.set(b"bb", Bytes::from_static(b"l"));
        w.clear(b"a");
        w.clear_range(b"c", b"e");
        w.set(b"d", Bytes::from_static(b"new"));
        assert_eq!(
            keys(&w, &s, "", "z", false),
            ["b=sb", "bb=l", "d=new", "e=se"]
        );
        assert_eq!(
            keys(&w, &s, "", "z", true),
            ["e=se", "d=new", "bb=l", "b=sb"]
        );
        assert_eq!(keys(&w, &s, "b\x00", "d", false), ["bb=l"]);
        assert_eq!(w.get(&s, b"c").unwrap(), None);
        assert_eq!(w.get(&s, b"e").unwrap(), Some(Bytes::from_static(b"se")));
    }

    #[test]
    fn atomic_ops_apply_over_committed_and_cleared_values() {
        let mut s = MemStore(BTreeMap::new());
        s.0.insert(b"n".to_vec(), 5u64.to_le_bytes().to_vec());
        let mut w = WriteMap::default();
        w.atomic(
            b"n",
            MutationType::Add,
            Bytes::copy_from_slice(&2u64.to_le_bytes()),
        );
        w.atomic(
            b"n",
            MutationType::Add,
            Bytes::copy_from_slice(&3u64.to_le_bytes()),
        );
        assert_eq!(
            w.get(&s, b"n").unwrap().unwrap().as_ref(),
            10u64.to_le_bytes()
        );
        w.clear_range(b"a", b"z");
        w.atomic(
            b"n",
            MutationType::Add,
            Bytes::copy_from_slice(&1u64.to_le_bytes()),
        );
        assert_eq!(
            w.get(&s, b"n").unwrap().unwrap().as_ref(),
            1u64.to_le_bytes()
        );
    }

    #[test]
    fn unreadable_keys_fail_reads() {
        let s = store(&["a"]);
        let mut w = WriteMap::default();
        w.set_unreadable(b"v");
        assert_eq!(
            w.get(&s, b"v").unwrap_err().code(),
            KvError::ACCESSED_UNREADABLE
        );
        assert!(w.range(&s, b"", b"z", false).any(|r| r.is_err()));
        assert_eq!(keys(&w, &s, "", "b", false), ["a=sa"]);
    }

    #[test]
    fn cleared_ranges_merge() {
        let mut w = WriteMap::default();
        w.clear_range(b"a", b"c");
        w.clear_range(b"e", b"g");
        w.clear_range(b"b", b"f");
        assert_eq!(w.cleared, vec![(b"a".to_vec(), b"g".to_vec())]);
        assert!(w.is_cleared(b"a") && w.is_cleared(b"f\xff") && !w.is_cleared(b"g"));
    }
}
