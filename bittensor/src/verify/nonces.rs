//! The axon's nonce memory: the last accepted nonce per `"{hotkey}:{uuid}"`.
//!
//! The real axon keeps a plain dict that grows forever; this one holds at most
//! [`MAX_NONCE_KEYS`] keys and forgets the oldest-inserted key first.

use std::collections::{HashMap, VecDeque};

use super::MAX_NONCE_KEYS;

/// Last accepted nonce per `"hotkey:uuid"`, at most [`MAX_NONCE_KEYS`] keys (oldest evicted).
#[derive(Debug, Default)]
pub(super) struct NonceStore {
    last: HashMap<String, i128>,
    order: VecDeque<String>,
}

impl NonceStore {
    /// Number of keys held.
    pub(super) fn len(&self) -> usize {
        self.last.len()
    }

    /// The last nonce accepted for `key`.
    pub(super) fn get(&self, key: &str) -> Option<i128> {
        self.last.get(key).copied()
    }

    /// Records `nonce` for `key`, evicting the oldest keys beyond the cap.
    pub(super) fn store(&mut self, key: String, nonce: i128) {
        if let Some(slot) = self.last.get_mut(&key) {
            *slot = nonce;
            return;
        }
        while self.order.len() >= MAX_NONCE_KEYS {
            match self.order.pop_front() {
                Some(old) => {
                    self.last.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(key.clone());
        self.last.insert(key, nonce);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_store_is_bounded_and_evicts_the_oldest_key() {
        let mut store = NonceStore::default();
        for i in 0..MAX_NONCE_KEYS + 10 {
            store.store(format!("hk:{i}"), i as i128);
        }
        assert_eq!(store.last.len(), MAX_NONCE_KEYS);
        assert_eq!(store.order.len(), MAX_NONCE_KEYS);
        assert_eq!(store.get("hk:0"), None);
        assert_eq!(store.get("hk:9"), None);
        assert_eq!(store.get("hk:10"), Some(10));
        // Updating a known key does not grow the store.
        store.store("hk:10".into(), 99);
        assert_eq!(store.get("hk:10"), Some(99));
        assert_eq!(store.last.len(), MAX_NONCE_KEYS);
    }
}
