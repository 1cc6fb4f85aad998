//! Counts of what each key (a client address) holds open at once: connections, sockets.
//! A count is taken with [`OpenCounts::try_open`] and given back when its guard drops.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// How many things each key holds open now (connections, sockets).
pub struct OpenCounts<K: Hash + Eq + Clone> {
    counts: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Clone> Default for OpenCounts<K> {
    fn default() -> Self {
        OpenCounts { counts: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq + Clone> OpenCounts<K> {
    /// Count one more for `key` unless it holds `max` already; the guard gives it back.
    pub fn try_open(self: &Arc<Self>, key: K, max: usize) -> Option<OpenGuard<K>> {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                m.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(OpenGuard { counts: self.clone(), key })
    }

    /// What `key` holds now.
    pub fn count(&self, key: &K) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied().unwrap_or(0)
    }

    /// What every key holds now.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }
}

/// One open thing, counted until dropped.
pub struct OpenGuard<K: Hash + Eq + Clone> {
    counts: Arc<OpenCounts<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for OpenGuard<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenGuard")
    }
}

impl<K: Hash + Eq + Clone> Drop for OpenGuard<K> {
    fn drop(&mut self) {
        let mut m = self.counts.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_counts_are_given_back() {
        let c: Arc<OpenCounts<u8>> = Arc::default();
        let a = c.try_open(1, 2).unwrap();
        let _b = c.try_open(1, 2).unwrap();
        assert!(c.try_open(1, 2).is_none());
        drop(a);
        assert!(c.try_open(1, 2).is_some());
        assert_eq!(c.count(&1), 1);
        assert_eq!(c.count(&9), 0);
    }
}
