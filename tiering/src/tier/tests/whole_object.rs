//! Tests of whole-object cold reads: one GET for many chunks of a flush object, and when not.

use super::*;

const PARTITIONS: i32 = 12;

/// A flush object of one chunk per partition (12), each of 10 batches of `partition + 1`
/// records, so that every chunk holds different data.
fn flush_segment() -> BuiltSegment {
    let mut builder = SegmentBuilder::new(3);
    for partition in 0..PARTITIONS {
        let records = usize::try_from(partition + 1).unwrap();
        let batches: Vec<Bytes> = (0..10)
            .map(|i| Bytes::from(simple_batch(i * records as i64, records)))
            .collect();
        let tp = TopicPartition {
            topic_id: Uuid::from_u128(0x5eed),
            partition,
        };
        builder.add_chunk(tp, &batches);
    }
    builder.finish().unwrap()
}

/// A tier over `store` with a memory cache of `cache_bytes` and default settings but `config`.
async fn tier_over(store: Arc<dyn ObjectStore>, cache_bytes: u64, config: TierConfig) -> Arc<Tier> {
    let cache = ChunkCache::open(crate::cache::ChunkCacheConfig::memory(cache_bytes))
        .await
        .unwrap();
    Arc::new(Tier::new(store, cache, config))
}

/// Uploads `count` flush objects: their keys and segments.
async fn upload_objects(tier: &Tier, count: usize) -> Vec<(String, BuiltSegment)> {
    let mut objects = Vec::new();
    for _ in 0..count {
        let built = flush_segment();
        let key = new_segment_key();
        tier.upload(&key, built.bytes()).await.unwrap();
        objects.push((key, built));
    }
    objects
}

/// Reads every chunk of `built` (in order) and checks each against what was written.
async fn read_every_chunk(tier: &Tier, key: &str, built: &BuiltSegment) {
    for (meta, data) in built.chunk_data() {
        let read = tier.read_chunk(&meta.to_index_entry(key)).await.unwrap();
        assert_eq!(read, data, "chunk at byte {} of {key}", meta.byte_offset);
    }
}

/// Goal: a reader of every partition pays one GET per flush object once the tier has seen
/// that readers want several chunks of each object, and every chunk reads back exactly as
/// written. Method: 10 objects of 12 chunks, every chunk of each read in turn from a cold
/// cache. The first objects cost 2 GETs (the first chunk is read alone, the second reads the
/// object whole); from the 5th on (4 objects judged "several"), the first miss reads whole.
#[tokio::test]
async fn every_chunk_of_a_flush_object_costs_one_get_for_many_partition_readers() {
    let tier = tier_over(Arc::new(InMemory::new()), 64 << 20, TierConfig::default()).await;
    let objects = upload_objects(&tier, 10).await;
    let mut gets_per_object = Vec::new();
    for (key, built) in &objects {
        let before = tier.stats().gets;
        read_every_chunk(&tier, key, built).await;
        gets_per_object.push(tier.stats().gets - before);
    }
    assert_eq!(gets_per_object, [2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
    let stats = tier.stats();
    assert_eq!(stats.whole_object_reads, 10);
    // Objects 1-4: 10 chunks cached besides the asked-for one; 5-10: 11.
    assert_eq!(stats.whole_object_chunks, 4 * 10 + 6 * 11);
    let object_bytes: u64 = objects.iter().map(|(_, b)| b.object_len() as u64).sum();
    let first_chunks: u64 = objects[..4]
        .iter()
        .map(|(_, b)| b.chunks[0].byte_length)
        .sum();
    assert_eq!(stats.get_bytes, object_bytes + first_chunks);
    assert_eq!(stats.whole_object_bytes, object_bytes);

    // Everything is cached now: a second pass costs nothing.
    for (key, built) in &objects {
        read_every_chunk(&tier, key, built).await;
    }
    assert_eq!(tier.stats().gets, 14);
}

/// Goal: a reader of one partition of many-partition objects pays one ranged GET of its
/// own chunk per object, never the whole object. Method: read chunk 3 of each of 40
/// objects; count GETs and bytes.
#[tokio::test]
async fn a_one_partition_reader_reads_its_chunks_alone() {
    let tier = tier_over(Arc::new(InMemory::new()), 64 << 20, TierConfig::default()).await;
    let objects = upload_objects(&tier, 40).await;
    for (key, built) in &objects {
        let (meta, data) = &built.chunk_data()[3];
        assert_eq!(
            tier.read_chunk(&meta.to_index_entry(key)).await.unwrap(),
            data
        );
    }
    let stats = tier.stats();
    assert_eq!((stats.gets, stats.whole_object_reads), (40, 0));
    let chunk_bytes: u64 = objects.iter().map(|(_, b)| b.chunks[3].byte_length).sum();
    assert_eq!(stats.get_bytes, chunk_bytes);
}

/// Goal: readers of different chunks of one object that miss together share one GET of the
/// object. Method: the first chunk is read (alone); then 11 concurrent readers of the other
/// chunks through a store whose 50 ms latency keeps the whole read in flight while they
/// arrive. Whatever their timing, one more GET serves them all.
#[tokio::test]
async fn concurrent_readers_of_different_chunks_share_one_get() {
    let store = Arc::new(FaultyObjectStore::new(Arc::new(InMemory::new())));
    let tier = tier_over(store.clone(), 64 << 20, TierConfig::default()).await;
    let (key, built) = upload_objects(&tier, 1).await.remove(0);
    let chunks = built.chunk_data();
    tier.read_chunk(&chunks[0].0.to_index_entry(&key))
        .await
        .unwrap();
    store.set_latency(Duration::from_millis(50));
    let readers: Vec<_> = chunks[1..]
        .iter()
        .map(|(meta, data)| {
            let tier = tier.clone();
            let entry = meta.to_index_entry(&key);
            let data = data.clone();
            tokio::spawn(async move { assert_eq!(tier.read_chunk(&entry).await.unwrap(), data) })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
    let stats = tier.stats();
    assert_eq!((stats.gets, stats.whole_object_reads), (2, 1));
    assert_eq!(store.gets_seen(), 2);
    assert_eq!(
        stats.get_bytes,
        chunks[0].0.byte_length + built.object_len() as u64
    );
}

/// Goal: a whole read whose GET fails reports the error to its reader and leaves nothing
/// stuck: the next miss on the object tries the whole read again. Method: GETs fail once
/// (no retries); read chunk 0 (alone), fail the whole read of chunk 1, read chunk 1 again,
/// then every other chunk hits the cache.
#[tokio::test]
async fn a_failed_whole_read_is_reported_and_tried_again() {
    let store = Arc::new(FaultyObjectStore::new(Arc::new(InMemory::new())));
    let config = TierConfig {
        get_retries_max: 0,
        ..TierConfig::default()
    };
    let tier = tier_over(store.clone(), 64 << 20, config).await;
    let (key, built) = upload_objects(&tier, 1).await.remove(0);
    let entries: Vec<_> = built
        .chunks
        .iter()
        .map(|c| c.to_index_entry(&key))
        .collect();
    tier.read_chunk(&entries[0]).await.unwrap();
    store.fail_next_gets(1);
    let err = tier.read_chunk(&entries[1]).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(tier.stats().failures[StoreOperation::Get.index()], 1);
    assert_eq!(tier.stats().whole_object_reads, 0);

    read_every_chunk(&tier, &key, &built).await;
    let stats = tier.stats();
    assert_eq!((stats.gets, stats.whole_object_reads), (3, 1));
    assert_eq!(
        stats.cache_hits(),
        11,
        "chunk 0 and ten cached by the whole read"
    );
}

/// Goal: chunks of compacted (seekable) objects are never read whole, however many are
/// asked for. Method: read every frame of a 10-frame chunk: one GET per frame and one for
/// the seek table, exactly the chunk's bytes.
#[tokio::test]
async fn seekable_chunks_are_not_read_whole() {
    let tier = tier_over(Arc::new(InMemory::new()), 64 << 20, TierConfig::default()).await;
    let built = seekable_segment();
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    let entry = built.chunks[0].to_index_entry(&key);
    assert_eq!(
        tier.read_chunk(&entry).await.unwrap(),
        built.uncompressed[0]
    );
    let stats = tier.stats();
    assert_eq!((stats.gets, stats.whole_object_reads), (11, 0));
    assert_eq!(stats.get_bytes, entry.byte_length);
}

/// Goal: an object larger than `whole_object_bytes_max` is not read into memory: a chunk
/// ending past the bound is read alone without trying, and one within it costs a GET whose
/// body is dropped unread once its size is known, then a ranged GET; the object is not tried
/// again. Method: a bound between the end of chunk 1 and the object's size.
#[tokio::test]
async fn objects_over_the_bound_are_not_read_whole() {
    let built = flush_segment();
    let bound = built.chunks[1].byte_offset + built.chunks[1].byte_length;
    assert!(bound < built.object_len() as u64);
    let config = TierConfig {
        whole_object_bytes_max: bound,
        ..TierConfig::default()
    };
    let tier = tier_over(Arc::new(InMemory::new()), 64 << 20, config).await;
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    let chunks = built.chunk_data();
    let entries: Vec<_> = built
        .chunks
        .iter()
        .map(|c| c.to_index_entry(&key))
        .collect();
    let read = |n: usize| tier.read_chunk(&entries[n]);
    assert_eq!(read(0).await.unwrap(), chunks[0].1);
    assert_eq!(
        read(1).await.unwrap(),
        chunks[1].1,
        "tried whole, then alone"
    );
    assert_eq!(read(2).await.unwrap(), chunks[2].1, "past the bound: alone");
    let stats = tier.stats();
    assert_eq!((stats.gets, stats.whole_object_reads), (4, 0));
    let ranged: u64 = built.chunks[..3].iter().map(|c| c.byte_length).sum();
    assert_eq!(
        stats.get_bytes, ranged,
        "no byte of the whole object counted as read"
    );
}

/// Goal: a whole read decodes and caches no more than its budget (a sixteenth of the
/// cache's memory) of other chunks; the rest are read alone when asked for. Method: a cache
/// whose budget holds three of the other chunks; read every chunk.
#[tokio::test]
async fn whole_reads_decode_within_their_share_of_the_cache() {
    let built = flush_segment();
    // Chunks grow with the partition number: the budget is the sum of chunks 2, 3 and 4,
    // so a read led by chunk 1 decodes exactly those (chunk 5 on does not fit).
    let budget: u64 = built.chunks[2..5]
        .iter()
        .map(|c| c.uncompressed_length)
        .sum();
    let tier = tier_over(
        Arc::new(InMemory::new()),
        budget * WHOLE_OBJECT_CACHE_SHARE,
        TierConfig::default(),
    )
    .await;
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    read_every_chunk(&tier, &key, &built).await;
    let stats = tier.stats();
    assert_eq!(
        (stats.whole_object_reads, stats.whole_object_chunks),
        (1, 3)
    );
    // Chunk 0 alone, the whole object for chunk 1 (+2, 3, 4), then chunks 5..11 alone
    // (the object was read whole once already).
    assert_eq!(stats.gets, 1 + 1 + 7);
}

/// Goal: with no cache to keep the other chunks, no object is read whole.
#[tokio::test]
async fn no_whole_reads_without_a_cache() {
    let tier = Arc::new(Tier::new(
        Arc::new(InMemory::new()),
        ChunkCache::disabled(),
        TierConfig::default(),
    ));
    let (key, built) = upload_objects(&tier, 1).await.remove(0);
    read_every_chunk(&tier, &key, &built).await;
    let stats = tier.stats();
    assert_eq!((stats.gets, stats.whole_object_reads), (12, 0));
}
