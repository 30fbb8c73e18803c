//! `ChunkCache`: a byte-bounded in-memory LRU of decompressed chunks, keyed by
//! (object key, byte offset of the chunk in the object).
//!
//! A `HashMap` finds entries and a `BTreeMap` ordered by access tick finds the least recently
//! used one, so every operation is O(log n) under one `std::sync::Mutex`, which is never held
//! across an await. Objects are immutable, so a cached chunk is never stale.
//! A later issue replaces it with foyer's hybrid memory + disk cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

type CacheKey = (String, u64);

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<CacheKey, (Bytes, u64)>,
    /// Access tick -> key; the first entry is the least recently used.
    by_tick: BTreeMap<u64, CacheKey>,
    next_tick: u64,
    len_bytes: u64,
}

/// Byte-bounded LRU of decompressed chunks. Only the chunk bytes count towards the bound.
#[derive(Debug)]
pub struct ChunkCache {
    capacity_bytes: u64,
    inner: Mutex<Inner>,
}

impl ChunkCache {
    /// A cache holding at most `capacity_bytes` of chunk data (0 disables caching).
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            capacity_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections only move entries between maps and cannot leave them
        // inconsistent in a way that matters, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The chunk at `byte_offset` of `object`, marking it most recently used.
    pub fn get(&self, object: &str, byte_offset: u64) -> Option<Bytes> {
        let mut inner = self.lock();
        let tick = inner.next_tick;
        let key = (object.to_string(), byte_offset);
        let (data, old_tick) = inner.entries.get_mut(&key)?;
        let data = data.clone();
        let old_tick = std::mem::replace(old_tick, tick);
        inner.next_tick += 1;
        inner.by_tick.remove(&old_tick);
        inner.by_tick.insert(tick, key);
        Some(data)
    }

    /// Caches `data` as the chunk at `byte_offset` of `object`, evicting least recently used
    /// chunks to stay within capacity. A chunk larger than the whole capacity is not cached.
    pub fn insert(&self, object: &str, byte_offset: u64, data: Bytes) {
        let size = data.len() as u64;
        if size > self.capacity_bytes {
            return;
        }
        let mut inner = self.lock();
        let key = (object.to_string(), byte_offset);
        let tick = inner.next_tick;
        inner.next_tick += 1;
        if let Some((old_data, old_tick)) = inner.entries.insert(key.clone(), (data, tick)) {
            inner.by_tick.remove(&old_tick);
            inner.len_bytes -= old_data.len() as u64;
        }
        inner.by_tick.insert(tick, key);
        inner.len_bytes += size;
        while inner.len_bytes > self.capacity_bytes {
            let (_, oldest) = inner
                .by_tick
                .pop_first()
                .expect("bytes are cached, so some entry is");
            let (evicted, _) = inner
                .entries
                .remove(&oldest)
                .expect("by_tick and entries hold the same keys");
            inner.len_bytes -= evicted.len() as u64;
        }
        debug_assert_eq!(inner.entries.len(), inner.by_tick.len());
    }

    /// Bytes of chunk data currently cached.
    pub fn len_bytes(&self) -> u64 {
        self.lock().len_bytes
    }

    /// Number of chunks currently cached.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(size: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; size])
    }

    #[test]
    fn evicts_least_recently_used_chunks_by_bytes() {
        let cache = ChunkCache::new(100);
        cache.insert("a", 0, chunk(40, 1));
        cache.insert("a", 40, chunk(40, 2));
        assert_eq!(cache.len_bytes(), 80);
        // Touch ("a", 0) so ("a", 40) becomes the least recently used.
        assert_eq!(cache.get("a", 0), Some(chunk(40, 1)));
        cache.insert("b", 0, chunk(30, 3));
        assert_eq!(cache.len_bytes(), 70);
        assert_eq!(cache.get("a", 40), None);
        assert!(cache.get("a", 0).is_some());
        assert!(cache.get("b", 0).is_some());

        // Two evictions to make room for a large chunk.
        cache.insert("c", 0, chunk(90, 4));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.len_bytes(), 90);
        assert!(cache.get("c", 0).is_some());
    }

    #[test]
    fn replacing_an_entry_and_oversized_chunks_keep_the_accounting_right() {
        let cache = ChunkCache::new(100);
        cache.insert("a", 0, chunk(40, 1));
        cache.insert("a", 0, chunk(60, 2));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.len_bytes(), 60);
        assert_eq!(cache.get("a", 0), Some(chunk(60, 2)));

        cache.insert("huge", 0, chunk(101, 3));
        assert_eq!(cache.get("huge", 0), None);
        assert_eq!(cache.len_bytes(), 60);

        let disabled = ChunkCache::new(0);
        disabled.insert("a", 0, chunk(1, 1));
        assert!(disabled.is_empty());
    }
}
