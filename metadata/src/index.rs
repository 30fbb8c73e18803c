//! Reading a partition's chunk index (`keys::partition_index`) while its leader may be
//! swapping entries: compaction and the key cleaner replace a run of consecutive entries by
//! entries keyed at the run's first base offset, in one transaction, but a listing of many
//! keys is several reads (pages), not one snapshot.
//!
//! Promise: what [`read_index`] returns, put after the entries up to its anchor (or alone,
//! without one), covers every offset the index covered when the read ended: a swap that
//! landed between two of its reads is detected (the reads overlap by one entry, and a swap
//! reaching across that entry changes or removes it) and the caller reads again. Entries a
//! swap replaced wholly before the anchor may still be held by the caller: they cover the
//! same offsets, and their objects stay until garbage collection.

use uuid::Uuid;

use crate::model::{IndexEntry, Offset};
use crate::{LIST_PAGE, MetadataError, MetadataStore, keys};

/// Whole-index reads tried before giving up (each after a swap moved under the previous).
pub const WHOLE_READ_ATTEMPTS: usize = 5;

/// The entries after `anchor` (all of them without one) whose last offset is below
/// `below`, in offset order; `None` if the anchor, or the entry two reads overlap on, was
/// changed or removed meanwhile (read again, from further back).
pub async fn read_index(
    meta: &dyn MetadataStore,
    topic_id: Uuid,
    partition: i32,
    anchor: Option<&IndexEntry>,
    below: Offset,
) -> Result<Option<Vec<IndexEntry>>, MetadataError> {
    let prefix = keys::partition_index_prefix(topic_id, partition);
    // The entry each read must start with, unchanged.
    let mut expect = anchor.cloned();
    let mut entries = Vec::new();
    loop {
        let after = expect
            .as_ref()
            .filter(|e| e.base_offset > 0)
            .map(|e| keys::partition_index(topic_id, partition, e.base_offset - 1));
        let page = meta.list(&prefix, after.as_deref(), LIST_PAGE).await?;
        let mut rest = page.iter();
        if let Some(expected) = &expect {
            let Some((key, value)) = rest.next() else {
                return Ok(None);
            };
            if IndexEntry::decode(key, &value.value)? != *expected {
                return Ok(None);
            }
        }
        for (key, value) in rest {
            let entry = IndexEntry::decode(key, &value.value)?;
            if entry.last_offset < below {
                entries.push(entry);
            }
        }
        if page.len() < LIST_PAGE {
            return Ok(Some(entries));
        }
        let (key, value) = page.last().expect("a full page");
        expect = Some(IndexEntry::decode(key, &value.value)?);
    }
}

/// The whole index below `below` ([`read_index`] without an anchor), read again after a
/// swap moved under it, at most [`WHOLE_READ_ATTEMPTS`] times.
pub async fn read_whole_index(
    meta: &dyn MetadataStore,
    topic_id: Uuid,
    partition: i32,
    below: Offset,
) -> Result<Vec<IndexEntry>, MetadataError> {
    for _ in 0..WHOLE_READ_ATTEMPTS {
        if let Some(entries) = read_index(meta, topic_id, partition, None, below).await? {
            return Ok(entries);
        }
    }
    Err(index_kept_changing(topic_id, partition))
}

/// The error of an index that changed under every read.
pub fn index_kept_changing(topic_id: Uuid, partition: i32) -> MetadataError {
    MetadataError::Conflict {
        key: keys::partition_index_prefix(topic_id, partition),
        current_version: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Txn;
    use crate::embedded::EmbeddedStore;
    use crate::testing::faulty::FaultyMetadataStore;
    use crate::testing::index_entry as entry;

    /// Goal: a whole-index read with a compaction swap landing between its pages returns
    /// the index after the swap, without a hole; entries above `below` are left out.
    /// Method: a real embedded store behind the fault-injecting wrapper, which applies the
    /// swap right after the first page is read.
    #[tokio::test]
    async fn a_swap_between_pages_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            FaultyMetadataStore::new(Arc::new(EmbeddedStore::open(dir.path()).await.unwrap()));
        let topic = Uuid::new_v4();
        let key = |base: Offset| keys::partition_index(topic, 0, base);
        let n = LIST_PAGE as i64 + 5;
        for first in (0..n).step_by(100) {
            let mut txn = Txn::new();
            for i in first..(first + 100).min(n) {
                txn = txn.put(key(i), entry("a", i, i).encode());
            }
            store.txn(txn).await.unwrap();
        }
        // The first page's last entry and the two after it become one.
        let boundary = LIST_PAGE as i64 - 1;
        store.txn_after_list(
            0,
            Txn::new()
                .delete(key(boundary + 1))
                .delete(key(boundary + 2))
                .put(key(boundary), entry("m", boundary, boundary + 2).encode()),
        );
        let entries = read_whole_index(&store, topic, 0, n - 1).await.unwrap();
        let bases: Vec<Offset> = entries.iter().map(|e| e.base_offset).collect();
        let expected: Vec<Offset> = (0..=boundary).chain(boundary + 3..n - 1).collect();
        assert_eq!(bases, expected);
        assert_eq!(entries[boundary as usize].object, "m");
        for pair in entries.windows(2) {
            assert_eq!(pair[1].base_offset, pair[0].last_offset + 1, "no hole");
        }
    }
}
