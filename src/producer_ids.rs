//! Producer id allocation: blocks of ids reserved in the metadata store, so ids are unique
//! across brokers and restarts.

use strato_metadata::model::{ProducerIdBlockRecord, RECORD_FORMAT_V1};
use strato_metadata::{MetadataError, MetadataStore, Txn, keys};

/// Ids reserved per metadata round trip.
const PRODUCER_ID_BLOCK: i64 = 1000;

pub struct ProducerIdAllocator {
    block: tokio::sync::Mutex<std::ops::Range<i64>>,
}

impl Default for ProducerIdAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl ProducerIdAllocator {
    pub fn new() -> Self {
        Self {
            block: tokio::sync::Mutex::new(0..0),
        }
    }

    pub async fn next(&self, meta: &dyn MetadataStore) -> Result<i64, MetadataError> {
        let mut block = self.block.lock().await;
        if block.is_empty() {
            *block = reserve_block(meta).await?;
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }
}

async fn reserve_block(meta: &dyn MetadataStore) -> Result<std::ops::Range<i64>, MetadataError> {
    loop {
        let current = meta.get(keys::PRODUCERS_NEXT_ID).await?;
        let (version, start) = match &current {
            Some(v) => (
                v.version,
                ProducerIdBlockRecord::decode(keys::PRODUCERS_NEXT_ID, &v.value)?.next_id,
            ),
            None => (0, 0),
        };
        let next = ProducerIdBlockRecord {
            v: RECORD_FORMAT_V1,
            next_id: start + PRODUCER_ID_BLOCK,
        };
        match meta
            .txn(
                Txn::new()
                    .when_version(keys::PRODUCERS_NEXT_ID, version)
                    .put(keys::PRODUCERS_NEXT_ID, next.encode()),
            )
            .await
        {
            Ok(_) => return Ok(start..start + PRODUCER_ID_BLOCK),
            Err(MetadataError::Conflict { .. }) => continue,
            Err(err) => return Err(err),
        }
    }
}
