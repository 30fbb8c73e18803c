//! The seek tables of seekable chunks read lately, kept in memory so that reading a frame
//! costs one GET, not two. Bounded by an estimate of their bytes; when full, arbitrary tables
//! make room (a table evicted is read again with one small GET).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::segment::FrameMeta;

/// Bytes of seek tables kept (about 150,000 frames, i.e. ~600 GiB of compacted data in 4 MiB
/// frames).
const SEEK_TABLES_BYTES_MAX: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
pub(super) struct SeekTables {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By (object, byte offset of the chunk).
    tables: HashMap<(String, u64), Arc<[FrameMeta]>>,
    bytes: usize,
}

fn weight(object: &str, frames: &[FrameMeta]) -> usize {
    object.len() + std::mem::size_of_val(frames) + 64
}

impl SeekTables {
    pub(super) fn get(&self, object: &str, byte_offset: u64) -> Option<Arc<[FrameMeta]>> {
        let inner = self.inner.lock().expect("seek tables lock");
        inner
            .tables
            .get(&(object.to_string(), byte_offset))
            .cloned()
    }

    pub(super) fn insert(&self, object: &str, byte_offset: u64, frames: Arc<[FrameMeta]>) {
        let added = weight(object, &frames);
        if added > SEEK_TABLES_BYTES_MAX {
            return;
        }
        let mut inner = self.inner.lock().expect("seek tables lock");
        while inner.bytes + added > SEEK_TABLES_BYTES_MAX {
            let Some(key) = inner.tables.keys().next().cloned() else {
                break;
            };
            if let Some(old) = inner.tables.remove(&key) {
                inner.bytes -= weight(&key.0, &old);
            }
        }
        if let Some(old) = inner
            .tables
            .insert((object.to_string(), byte_offset), frames)
        {
            inner.bytes -= weight(object, &old);
        }
        inner.bytes += added;
    }
}
