//! Range clears that cost what they cost on FoundationDB: a range tombstone now, the keys deleted
//! later in bounded steps.
//!
//! A `clear_range` over more than `INLINE_CLEAR_KEYS` stored keys is not expanded key by key on the
//! commit thread (which stalled every other commit and held every key in memory). Its commit
//! writes one tombstone record instead; from that commit's version on, readers treat the range as
//! cleared, except for keys written after the clear (each remembered, with the version of its
//! first write after it, in the tombstone's `rewritten` map). The commit thread then deletes the
//! range's old keys in steps between commit groups (at most 1,024 keys or 2 ms while commits
//! wait, 4,096 keys or 20 ms while idle: `pipeline.rs`), and drops the tombstone when it reaches
//! the range's end.
//!
//! Visibility for a reader at read version `rv`: a stored key inside a tombstone's range is hidden
//! when the tombstone's version is `<= rv` and the key was not rewritten at a version in
//! `[tombstone version, rv]`. A key cleared by one transaction and rewritten later in the same
//! transaction, or by a later transaction of the same commit group, carries the clear's version:
//! writes apply in order, so it was written after the clear.
//!
//! Tombstones and their rewritten keys are stored in the store's metadata keyspace in the same
//! atomic batch as the clearing (or rewriting) commit, with each tombstone's purge cursor, so a
//! restart resumes where it stopped; a purge step replayed after a crash deletes nothing new.

use crate::error::KvResult;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Clears over at most this many stored keys are expanded inline, as before.
pub(crate) const INLINE_CLEAR_KEYS: usize = 256;
/// Keys a purge step examines.
pub(crate) const PURGE_STEP_KEYS: usize = 4_096;

/// Metadata-keyspace prefixes: tombstones (`tomb/` + id → begin/end), their cursors
/// (`tcur/` + id → next key to purge) and rewritten keys (`rewr/` + id + key → version).
pub(crate) const TOMB_PREFIX: &[u8] = b"tomb/";
pub(crate) const CURSOR_PREFIX: &[u8] = b"tcur/";
pub(crate) const REWRITTEN_PREFIX: &[u8] = b"rewr/";

/// A tombstone's id: the clearing commit's version, its place in its commit group, and the clear's
/// place in its transaction. Ids order tombstones by when they were written.
pub(crate) type TombId = [u8; 12];

pub(crate) fn tomb_id(version: u64, order: u16, index: u16) -> TombId {
    let mut id = [0u8; 12];
    id[..8].copy_from_slice(&version.to_be_bytes());
    id[8..10].copy_from_slice(&order.to_be_bytes());
    id[10..].copy_from_slice(&index.to_be_bytes());
    id
}

fn id_version(id: &TombId) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&id[..8]);
    u64::from_be_bytes(v)
}

pub(crate) fn meta_key(prefix: &[u8], id: &TombId, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + id.len() + rest.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(id);
    k.extend_from_slice(rest);
    k
}

/// `begin` and `end` as one metadata value: `len(begin)` (4 bytes) + begin + end.
pub(crate) fn encode_range(begin: &[u8], end: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + begin.len() + end.len());
    v.extend_from_slice(&(begin.len() as u32).to_be_bytes());
    v.extend_from_slice(begin);
    v.extend_from_slice(end);
    v
}

pub(crate) fn decode_range(v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let n = u32::from_be_bytes(v.get(..4)?.try_into().ok()?) as usize;
    let begin = v.get(4..4 + n)?.to_vec();
    let end = v.get(4 + n..)?.to_vec();
    Some((begin, end))
}

/// One pending range clear.
pub(crate) struct Tombstone {
    pub(crate) id: TombId,
    /// The clearing commit's version.
    pub(crate) version: u64,
    pub(crate) begin: Vec<u8>,
    pub(crate) end: Vec<u8>,
    /// Keys in the range written after the clear: the version of the first such write.
    rewritten: RwLock<BTreeMap<Vec<u8>, u64>>,
}

impl Tombstone {
    pub(crate) fn new(id: TombId, begin: Vec<u8>, end: Vec<u8>) -> Self {
        Self {
            version: id_version(&id),
            id,
            begin,
            end,
            rewritten: RwLock::new(BTreeMap::new()),
        }
    }

    pub(crate) fn covers(&self, key: &[u8]) -> bool {
        key >= self.begin.as_slice() && key < self.end.as_slice()
    }

    fn rewritten_at(&self, key: &[u8]) -> Option<u64> {
        self.rewritten
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    /// Whether this tombstone hides stored `key` (inside its range) from a reader at `rv`.
    fn hides(&self, key: &[u8], rv: u64) -> bool {
        self.version <= rv && self.rewritten_at(key).is_none_or(|w| w > rv)
    }

    /// Remember that `key` was written at `version`, after this clear. Returns true the first
    /// time (the caller persists it).
    pub(crate) fn record_rewrite(&self, key: &[u8], version: u64) -> bool {
        let mut map = self.rewritten.write().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(key) {
            return false;
        }
        map.insert(key.to_vec(), version);
        true
    }

    /// Keys rewritten at or before `rv` within `[begin, end)`.
    fn rewritten_in(&self, begin: &[u8], end: &[u8], rv: u64) -> Vec<Vec<u8>> {
        let map = self.rewritten.read().unwrap_or_else(|p| p.into_inner());
        map.range::<[u8], _>((
            std::ops::Bound::Included(begin),
            std::ops::Bound::Excluded(end),
        ))
        .filter(|(_, v)| **v <= rv)
        .map(|(k, _)| k.clone())
        .collect()
    }

    /// Whether the purge must keep `key` (written after the clear).
    pub(crate) fn keeps(&self, key: &[u8]) -> bool {
        self.rewritten_at(key).is_some()
    }
}

/// The tombstones pending at some moment, oldest first; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct TombstoneSet(pub(crate) Arc<Vec<Arc<Tombstone>>>);

/// A part of a range read: a span to read from the store as it is, or (inside cleared ranges) the
/// keys written after the clear that a reader may see.
pub(crate) enum Piece {
    Span(Vec<u8>, Vec<u8>),
    Keys(Vec<Vec<u8>>),
}

impl TombstoneSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether stored `key` is hidden from a reader at `rv` (or, with `rv = u64::MAX`, at the
    /// head of the store).
    pub(crate) fn hides(&self, key: &[u8], rv: u64) -> bool {
        self.0.iter().any(|t| t.covers(key) && t.hides(key, rv))
    }

    /// `[begin, end)` for a reader at `rv`, split into pieces in key order.
    pub(crate) fn pieces(&self, begin: &[u8], end: &[u8], rv: u64) -> Vec<Piece> {
        let mut covered: Vec<(&[u8], &[u8])> = self
            .0
            .iter()
            .filter(|t| t.version <= rv && t.begin.as_slice() < end && t.end.as_slice() > begin)
            .map(|t| (t.begin.as_slice().max(begin), t.end.as_slice().min(end)))
            .collect();
        if covered.is_empty() {
            return vec![Piece::Span(begin.to_vec(), end.to_vec())];
        }
        covered.sort();
        let mut merged: Vec<(&[u8], &[u8])> = Vec::new();
        for (b, e) in covered {
            match merged.last_mut() {
                Some(last) if b <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((b, e)),
            }
        }
        let mut pieces = Vec::new();
        let mut at = begin;
        for (b, e) in merged {
            if at < b {
                pieces.push(Piece::Span(at.to_vec(), b.to_vec()));
            }
            let mut keys: Vec<Vec<u8>> = self
                .0
                .iter()
                .filter(|t| t.version <= rv)
                .flat_map(|t| t.rewritten_in(b, e, rv))
                .collect();
            keys.sort();
            keys.dedup();
            keys.retain(|k| !self.hides(k, rv));
            if !keys.is_empty() {
                pieces.push(Piece::Keys(keys));
            }
            at = e;
        }
        if at < end {
            pieces.push(Piece::Span(at.to_vec(), end.to_vec()));
        }
        pieces
    }
}

/// Load the pending tombstones, their rewritten keys and cursors from the metadata keyspace.
pub(crate) fn load(meta: &fjall::Keyspace) -> KvResult<Vec<(Arc<Tombstone>, Vec<u8>)>> {
    let io = |e: fjall::Error| {
        crate::KvError::caused_by(crate::KvError::IO_ERROR, "load range tombstones", e)
    };
    let corrupt = |what: &str| {
        crate::KvError::new(
            crate::KvError::INTERNAL_ERROR,
            format!("unreadable range tombstone record: {what}"),
        )
    };
    let mut out: Vec<(Arc<Tombstone>, Vec<u8>)> = Vec::new();
    for guard in meta.prefix(TOMB_PREFIX) {
        let (k, v) = guard.into_inner().map_err(io)?;
        let id: TombId = k[TOMB_PREFIX.len()..]
            .try_into()
            .map_err(|_| corrupt("id"))?;
        let (begin, end) = decode_range(&v).ok_or_else(|| corrupt("range"))?;
        let cursor = match meta.get(meta_key(CURSOR_PREFIX, &id, b"")).map_err(io)? {
            Some(c) => c.to_vec(),
            None => begin.clone(),
        };
        out.push((Arc::new(Tombstone::new(id, begin, end)), cursor));
    }
    for (t, _) in &out {
        let prefix = meta_key(REWRITTEN_PREFIX, &t.id, b"");
        for guard in meta.prefix(&prefix) {
            let (k, v) = guard.into_inner().map_err(io)?;
            let version =
                u64::from_be_bytes(v.as_ref().try_into().map_err(|_| corrupt("version"))?);
            t.record_rewrite(&k[prefix.len()..], version);
        }
    }
    out.sort_by_key(|a| a.0.id);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ts: Vec<Tombstone>) -> TombstoneSet {
        TombstoneSet(Arc::new(ts.into_iter().map(Arc::new).collect()))
    }

    #[test]
    fn hides_old_keys_but_not_later_writes_or_older_readers() {
        let t = Tombstone::new(tomb_id(10, 0, 0), b"b".to_vec(), b"d".to_vec());
        t.record_rewrite(b"c2", 12);
        let s = set(vec![t]);
        assert!(s.hides(b"c", 10));
        assert!(
            !s.hides(b"c", 9),
            "a reader older than the clear sees the key"
        );
        assert!(!s.hides(b"a", 10), "outside the range");
        assert!(s.hides(b"c2", 11), "rewritten later than this reader");
        assert!(!s.hides(b"c2", 12));
    }

    #[test]
    fn pieces_split_a_read_around_cleared_ranges() {
        let t1 = Tombstone::new(tomb_id(10, 0, 0), b"b".to_vec(), b"d".to_vec());
        t1.record_rewrite(b"c", 11);
        let t2 = Tombstone::new(tomb_id(20, 0, 0), b"c5".to_vec(), b"f".to_vec());
        let s = set(vec![t1, t2]);
        let shape = |rv| {
            s.pieces(b"a", b"z", rv)
                .into_iter()
                .map(|p| match p {
                    Piece::Span(b, e) => format!(
                        "span {}..{}",
                        String::from_utf8_lossy(&b),
                        String::from_utf8_lossy(&e)
                    ),
                    Piece::Keys(k) => format!(
                        "keys {:?}",
                        k.iter()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .collect::<Vec<_>>()
                    ),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(5), ["span a..z"]);
        assert_eq!(shape(10), ["span a..b", "span d..z"]);
        assert_eq!(shape(11), ["span a..b", "keys [\"c\"]", "span d..z"]);
        assert_eq!(shape(20), ["span a..b", "keys [\"c\"]", "span f..z"]);
    }

    #[test]
    fn ranges_and_ids_encode() {
        let v = encode_range(b"abc", b"xyz\xff");
        assert_eq!(
            decode_range(&v).unwrap(),
            (b"abc".to_vec(), b"xyz\xff".to_vec())
        );
        assert!(decode_range(b"\x00\x00\x00\x09ab").is_none());
        assert!(tomb_id(1, 0, 1) < tomb_id(1, 1, 0));
        assert!(tomb_id(1, 9, 9) < tomb_id(2, 0, 0));
        assert_eq!(id_version(&tomb_id(77, 3, 4)), 77);
    }
}
