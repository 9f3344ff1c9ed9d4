//! Watched keys of the embedded store. A watch remembers the value its transaction saw; the commit
//! pipeline reports every durable change, and a watch fires as soon as the key's value differs from
//! the remembered one. Dropped watches are forgotten lazily.

use crate::error::{KvError, KvResult};
use bytes::Bytes;
use std::collections::HashMap;
use tokio::sync::oneshot;

/// The sending half a watch resolves through.
pub(crate) type WatchSender = oneshot::Sender<KvResult<()>>;

struct Watcher {
    expected: Option<Bytes>,
    notify: WatchSender,
}

pub(crate) struct WatchRegistry {
    by_key: HashMap<Vec<u8>, Vec<Watcher>>,
    count: usize,
    limit: usize,
}

impl WatchRegistry {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            count: 0,
            limit,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Start watching `key`, which this transaction saw as `expected` and is now `current`.
    pub(crate) fn register(
        &mut self,
        key: Vec<u8>,
        expected: Option<Bytes>,
        current: Option<Bytes>,
        notify: WatchSender,
    ) {
        if expected != current {
            let _ = notify.send(Ok(()));
            return;
        }
        if self.count >= self.limit {
            self.forget_dropped();
        }
        if self.count >= self.limit {
            let _ = notify.send(Err(KvError::new(
                KvError::TOO_MANY_WATCHES,
                format!("more than {} outstanding watches", self.limit),
            )));
            return;
        }
        self.by_key
            .entry(key)
            .or_default()
            .push(Watcher { expected, notify });
        self.count += 1;
    }

    /// A commit made `key` hold `value`: fire the watches that expected something else.
    pub(crate) fn changed(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Some(list) = self.by_key.get_mut(key) else {
            return;
        };
        let before = list.len();
        let mut kept = Vec::with_capacity(list.len());
        for w in list.drain(..) {
            if w.expected.as_deref() != value {
                let _ = w.notify.send(Ok(()));
            } else if !w.notify.is_closed() {
                kept.push(w);
            }
        }
        self.count -= before - kept.len();
        if kept.is_empty() {
            self.by_key.remove(key);
        } else {
            *list = kept;
        }
    }

    /// A commit cleared `[begin, end)`: fire the watches on keys in it that expected a value,
    /// except keys the same commit wrote again (`rewritten`: their final value is reported
    /// through [`WatchRegistry::changed`]).
    pub(crate) fn cleared(&mut self, begin: &[u8], end: &[u8], rewritten: impl Fn(&[u8]) -> bool) {
        let keys: Vec<Vec<u8>> = self
            .by_key
            .keys()
            .filter(|k| k.as_slice() >= begin && k.as_slice() < end && !rewritten(k))
            .cloned()
            .collect();
        for k in keys {
            self.changed(&k, None);
        }
    }

    fn forget_dropped(&mut self) {
        let mut count = 0;
        self.by_key.retain(|_, list| {
            list.retain(|w| !w.notify.is_closed());
            count += list.len();
            !list.is_empty()
        });
        self.count = count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_change_only() {
        let mut r = WatchRegistry::new(10);
        let (tx, mut rx) = oneshot::channel();
        let v = Some(Bytes::from_static(b"1"));
        r.register(b"k".to_vec(), v.clone(), v.clone(), tx);
        r.changed(b"k", Some(b"1"));
        assert!(rx.try_recv().is_err());
        r.changed(b"k", Some(b"2"));
        assert!(matches!(rx.try_recv(), Ok(Ok(()))));
        assert!(r.is_empty());
    }

    #[test]
    fn fires_at_once_when_already_changed_and_enforces_limit() {
        let mut r = WatchRegistry::new(1);
        let (tx, mut rx) = oneshot::channel();
        r.register(b"k".to_vec(), None, Some(Bytes::from_static(b"x")), tx);
        assert!(matches!(rx.try_recv(), Ok(Ok(()))));
        let (tx1, _rx1) = oneshot::channel();
        r.register(b"a".to_vec(), None, None, tx1);
        let (tx2, mut rx2) = oneshot::channel();
        r.register(b"b".to_vec(), None, None, tx2);
        assert_eq!(
            rx2.try_recv().unwrap().unwrap_err().code(),
            KvError::TOO_MANY_WATCHES
        );
    }
}
