// SPDX-License-Identifier: MIT OR Apache-2.0
//! A small least-recently-used cache, bounded by entries and by bytes, for the overlay's
//! rendered labels: a label is drawn on many frames in a row, so it is rendered once and
//! looked up by what it shows, and the one used longest ago makes room for a new one.
//!
//! Eviction scans for the oldest entry: the cache holds a few hundred entries and evicts only
//! when a new label is rendered, which costs far more than the scan. A hit touches no other
//! entry and allocates nothing.

use std::collections::HashMap;
use std::hash::Hash;

struct Slot<V> {
    value: V,
    bytes: usize,
    /// When it was last used, on the cache's own counter.
    used: u64,
}

/// Hits, misses and evictions since the cache was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

pub struct Lru<K, V> {
    slots: HashMap<K, Slot<V>>,
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    clock: u64,
    stats: CacheStats,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty cache holding at most `max_entries` values of `max_bytes` in all.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Lru {
            slots: HashMap::new(),
            max_entries: max_entries.max(1),
            max_bytes,
            bytes: 0,
            clock: 0,
            stats: CacheStats::default(),
        }
    }

    /// The value for `key`, now the most recently used; counted as a hit or a miss.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.clock += 1;
        match self.slots.get_mut(key) {
            Some(slot) => {
                slot.used = self.clock;
                self.stats.hits += 1;
                Some(&slot.value)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Keeps `value` (of `bytes`) under `key` as the most recently used, evicting the least
    /// recently used entries until both bounds hold. A value larger than the byte bound alone
    /// is not kept.
    pub fn insert(&mut self, key: K, value: V, bytes: usize) {
        if bytes > self.max_bytes {
            return;
        }
        self.clock += 1;
        let slot = Slot {
            value,
            bytes,
            used: self.clock,
        };
        if let Some(old) = self.slots.insert(key, slot) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        while self.slots.len() > self.max_entries || self.bytes > self.max_bytes {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        // The entry just inserted has the newest stamp, so it is never the one chosen while
        // others remain. The key is cloned only here, on the way to rendering a new label.
        let Some(oldest) = self
            .slots
            .iter()
            .min_by_key(|(_, s)| s.used)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        if let Some(slot) = self.slots.remove(&oldest) {
            self.bytes -= slot.bytes;
            self.stats.evictions += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The bytes of the values held, as given to [`Lru::insert`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    pub fn contains(&self, key: &K) -> bool {
        self.slots.contains_key(key)
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_one_at_a_time() {
        let mut lru = Lru::new(3, usize::MAX);
        for k in ["a", "b", "c"] {
            lru.insert(k.to_string(), k.len(), 1);
        }
        // "a" used again: "b" is now the oldest.
        assert!(lru.get(&"a".to_string()).is_some());
        lru.insert("d".into(), 1, 1);
        assert_eq!(lru.len(), 3);
        assert!(
            !lru.contains(&"b".to_string()),
            "the least recently used goes"
        );
        for k in ["a", "c", "d"] {
            assert!(lru.contains(&k.to_string()), "{k} kept");
        }
        assert_eq!(lru.stats().evictions, 1, "one entry made room, not all");
    }

    #[test]
    fn entries_and_bytes_stay_within_their_bounds() {
        let mut lru = Lru::new(8, 100);
        for i in 0..1000u32 {
            lru.insert(i, i, 1 + (i as usize % 30));
            assert!(lru.len() <= 8, "{} entries", lru.len());
            assert!(lru.bytes() <= 100, "{} bytes", lru.bytes());
            assert!(lru.contains(&i), "the newest entry {i} is kept");
        }
        assert_eq!(
            lru.stats().evictions as usize + lru.len(),
            1000,
            "every entry is either held or was evicted once"
        );
        // A value over the byte bound alone is not kept and evicts nothing.
        let before = lru.len();
        lru.insert(5000, 0, 101);
        assert!(!lru.contains(&5000));
        assert_eq!(lru.len(), before);
    }

    #[test]
    fn replacing_a_key_counts_its_bytes_once_and_hits_and_misses_are_counted() {
        let mut lru = Lru::new(4, 1000);
        lru.insert(1, "x", 10);
        lru.insert(1, "y", 30);
        assert_eq!(lru.bytes(), 30);
        assert_eq!(lru.get(&1), Some(&"y"));
        assert_eq!(lru.get(&2), None);
        assert_eq!(
            lru.stats(),
            CacheStats {
                hits: 1,
                misses: 1,
                evictions: 0
            }
        );
        lru.clear();
        assert!(lru.is_empty());
        assert_eq!(lru.bytes(), 0);
    }
}
