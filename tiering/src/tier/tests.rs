//! Tests of `Tier` against real `ObjectStore` implementations and a fault-injecting wrapper.

use object_store::memory::InMemory;
use strato_metadata::model::TopicPartition;
use uuid::Uuid;

use super::*;
use crate::batch::test_support::simple_batch;
use crate::faulty::FaultyObjectStore;
use crate::keys::new_segment_key;
use crate::segment::{BuiltSegment, SegmentBuilder};
use crate::store::object_store_from_url;

/// A memory-only cache of 1 MiB.
async fn memory_cache() -> ChunkCache {
    ChunkCache::open(crate::cache::ChunkCacheConfig::memory(1 << 20))
        .await
        .unwrap()
}

/// A tier over `InMemory` with a memory-only cache and default settings.
async fn memory_tier() -> Tier {
    Tier::new(
        Arc::new(InMemory::new()),
        memory_cache().await,
        TierConfig::default(),
    )
}

fn two_partition_segment() -> BuiltSegment {
    let mut builder = SegmentBuilder::new(3);
    let tp = |partition| TopicPartition {
        topic_id: Uuid::from_u128(0x1234),
        partition,
    };
    builder.add_chunk(
        tp(0),
        &[
            Bytes::from(simple_batch(0, 5)),
            Bytes::from(simple_batch(5, 2)),
        ],
    );
    builder.add_chunk(tp(1), &[Bytes::from(simple_batch(40, 3))]);
    builder.finish().unwrap()
}

/// Goal: what is uploaded reads back byte-identical, chunk by chunk, and the second read of
/// a chunk comes from the cache. Method: upload a two-chunk segment, read each chunk through
/// the index entry built from its footer entry, twice, and watch the counters.
async fn round_trip(store: Arc<dyn ObjectStore>) {
    let tier = Tier::new(store, memory_cache().await, TierConfig::default());
    let built = two_partition_segment();
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    assert_eq!(tier.stats().puts, 1);

    for (meta, data) in built.chunk_data() {
        let entry = meta.to_index_entry(&key);
        assert_eq!(tier.read_chunk(&entry).await.unwrap(), data);
    }
    let stats = tier.stats();
    assert_eq!(
        (stats.gets, stats.cache_misses, stats.cache_hits()),
        (2, 2, 0)
    );

    for (meta, data) in built.chunk_data() {
        let entry = meta.to_index_entry(&key);
        assert_eq!(tier.read_chunk(&entry).await.unwrap(), data);
    }
    let stats = tier.stats();
    assert_eq!(
        (stats.gets, stats.cache_misses, stats.cache_hits()),
        (2, 2, 2)
    );
    let cached: u64 = built.chunks.iter().map(|c| c.uncompressed_length).sum();
    assert_eq!(stats.cache_bytes, cached);

    assert_eq!(tier.read_object(&key).await.unwrap(), built.bytes());
}

#[tokio::test]
async fn round_trip_in_memory() {
    round_trip(Arc::new(InMemory::new())).await;
}

#[tokio::test]
async fn round_trip_on_local_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_file_path(dir.path().join("objects")).unwrap();
    round_trip(object_store_from_url(url.as_str()).unwrap()).await;
}

#[tokio::test]
async fn cached_chunks_are_served_without_a_get() {
    let tier = memory_tier().await;
    let built = two_partition_segment();
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    tier.cache_chunks(&key, &built.chunk_data());
    for (meta, data) in built.chunk_data() {
        assert_eq!(
            tier.read_chunk(&meta.to_index_entry(&key)).await.unwrap(),
            data
        );
    }
    let stats = tier.stats();
    assert_eq!((stats.gets, stats.cache_hits()), (0, 2));
}

/// Goal: a flushed chunk that memory evicted is served from the disk tier without a GET,
/// and each tier's hits are counted. Method: a memory tier smaller than the segment's two
/// chunks together over a disk tier in a tempdir; cache both chunks (write-through), so the
/// first is evicted to disk, then read the second (memory) and the first (disk). The order
/// matters: promoting the first back into memory evicts the second, which may then be read
/// from disk or from foyer's queue of pending disk writes (counted as memory).
#[tokio::test]
async fn chunks_evicted_from_memory_are_served_from_disk_without_a_get() {
    let dir = tempfile::tempdir().unwrap();
    let built = two_partition_segment();
    let chunk_bytes: Vec<u64> = built.chunks.iter().map(|c| c.uncompressed_length).collect();
    let largest = *chunk_bytes.iter().max().unwrap();
    // Room for either chunk alone, not for both.
    let memory_bytes = largest;
    assert!(memory_bytes < chunk_bytes.iter().sum::<u64>());
    let cache = ChunkCache::open(crate::cache::ChunkCacheConfig {
        memory_bytes,
        disk: Some(crate::cache::DiskCacheConfig {
            dir: dir.path().join("cache"),
            capacity_bytes: 1 << 20,
            block_bytes: 64 * 1024,
        }),
    })
    .await
    .unwrap();
    let tier = Tier::new(Arc::new(InMemory::new()), cache, TierConfig::default());
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    tier.cache_chunks(&key, &built.chunk_data());
    tier.cache.wait_for_disk_writes().await;

    for (meta, data) in built.chunk_data().into_iter().rev() {
        assert_eq!(
            tier.read_chunk(&meta.to_index_entry(&key)).await.unwrap(),
            data
        );
    }
    let stats = tier.stats();
    assert_eq!(
        stats.gets, 0,
        "no GET: one chunk from memory, one from disk"
    );
    assert_eq!(
        (
            stats.cache_memory_hits,
            stats.cache_disk_hits,
            stats.cache_misses
        ),
        (1, 1, 0)
    );
    assert_eq!(stats.cache_hits(), 2);
}

/// Goal: a chunk in neither tier counts as a miss and costs one GET.
#[tokio::test]
async fn misses_are_counted_apart_from_hits() {
    let tier = memory_tier().await;
    let built = two_partition_segment();
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    let entry = built.chunks[0].to_index_entry(&key);
    tier.read_chunk(&entry).await.unwrap();
    tier.read_chunk(&entry).await.unwrap();
    let stats = tier.stats();
    assert_eq!(
        (
            stats.gets,
            stats.cache_misses,
            stats.cache_memory_hits,
            stats.cache_disk_hits
        ),
        (1, 1, 1, 0)
    );
}

#[tokio::test]
async fn missing_objects_are_not_found_without_retries() {
    let tier = memory_tier().await;
    let built = two_partition_segment();
    let entry = built.chunks[0].to_index_entry("segments/00/missing.seg");
    let err = tier.read_chunk(&entry).await.unwrap_err();
    assert!(matches!(err, TieringError::NotFound { .. }), "{err}");
    assert!(!err.is_retryable());
    let err = tier
        .read_object("segments/00/missing.seg")
        .await
        .unwrap_err();
    assert!(matches!(err, TieringError::NotFound { .. }), "{err}");
    assert_eq!(tier.stats().gets, 2);
}

#[tokio::test]
async fn index_entries_that_disagree_with_the_data_are_corrupt_and_not_cached() {
    let tier = memory_tier().await;
    let built = two_partition_segment();
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();

    let mut wrong_offsets = built.chunks[0].to_index_entry(&key);
    wrong_offsets.base_offset += 1;
    let mut wrong_range = built.chunks[0].to_index_entry(&key);
    wrong_range.byte_offset += 1;
    let mut empty_range = built.chunks[0].to_index_entry(&key);
    empty_range.byte_length = 0;
    let mut bad_key = built.chunks[0].to_index_entry(&key);
    bad_key.object = "segments//x.seg".to_string();
    for entry in [wrong_offsets, wrong_range, empty_range, bad_key] {
        let err = tier.read_chunk(&entry).await.unwrap_err();
        assert!(matches!(err, TieringError::Corrupt { .. }), "{err}");
        assert!(!err.is_retryable());
    }
    assert_eq!(tier.stats().cache_bytes, 0);
}

async fn flaky_tier(put_failures: u32, get_hangs: u32) -> Tier {
    let store = FaultyObjectStore::new(Arc::new(InMemory::new()));
    store.fail_next_puts(put_failures);
    store.hang_next_gets(get_hangs);
    let config = TierConfig {
        put_retries_max: 3,
        get_retries_max: 2,
        ..TierConfig::default()
    };
    Tier::new(Arc::new(store), memory_cache().await, config)
}

/// Goal: transient PUT failures are retried up to the limit, then reported as retryable.
/// Method: inject failures; paused time makes the backoff sleeps instant.
#[tokio::test(start_paused = true)]
async fn failed_puts_are_retried_up_to_the_limit() {
    let tier = flaky_tier(3, 0).await;
    tier.upload("segments/00/a.seg", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(tier.stats().puts, 4);

    let tier = flaky_tier(4, 0).await;
    let err = tier
        .upload("segments/00/a.seg", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, TieringError::Unavailable { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(error_chain(&err).contains("injected 503"), "{err}");
    assert_eq!(tier.stats().puts, 4);
}

/// Goal: every request attempt is one latency observation and every failed attempt one
/// failure, per operation; the readiness probe counts as a HEAD and a missing probe key
/// still means "reachable". Method: two failed PUTs then a good one, one probe.
#[tokio::test]
async fn request_latency_and_failures_are_counted_per_attempt() {
    let tier = flaky_tier(2, 0).await;
    tier.upload("segments/00/a.seg", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let put = StoreOperation::Put.index();
    assert_eq!(tier.request_latency(StoreOperation::Put).count, 3);
    assert_eq!(tier.stats().failures[put], 2);
    assert_eq!(tier.request_latency(StoreOperation::Get).count, 0);

    tier.probe(Duration::from_secs(1)).await.unwrap();
    assert_eq!(tier.request_latency(StoreOperation::Head).count, 1);
    assert_eq!(tier.stats().failures[StoreOperation::Head.index()], 0);
}

/// Goal: a GET that hangs is cut off by the timeout and retried. Method: hang the first
/// GETs; paused time auto-advances to the timeout.
#[tokio::test(start_paused = true)]
async fn hanging_gets_time_out_and_are_retried() {
    let built = two_partition_segment();
    let key = "segments/00/b.seg";
    let entry = built.chunks[1].to_index_entry(key);

    let tier = flaky_tier(0, 2).await;
    tier.upload(key, built.bytes()).await.unwrap();
    assert_eq!(
        tier.read_chunk(&entry).await.unwrap(),
        built.uncompressed[1]
    );
    assert_eq!(tier.stats().gets, 3);

    let tier = flaky_tier(0, 3).await;
    tier.upload(key, built.bytes()).await.unwrap();
    let err = tier.read_chunk(&entry).await.unwrap_err();
    assert!(matches!(err, TieringError::Timeout { .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(tier.stats().gets, 3);
}

#[test]
fn backoff_grows_is_capped_and_jittered() {
    let config = TierConfig {
        retry_backoff_base: Duration::from_millis(100),
        retry_backoff_max: Duration::from_millis(1000),
        ..TierConfig::default()
    };
    let tier = Tier::new(Arc::new(InMemory::new()), ChunkCache::disabled(), config);
    for retry in 0..40 {
        let cap = Duration::from_millis(100 * (1u64 << retry.min(10))).min(Duration::from_secs(1));
        let delay = tier.backoff(retry);
        assert!(delay >= cap / 2 && delay <= cap, "retry {retry}: {delay:?}");
    }
    let delays: std::collections::HashSet<Duration> = (0..20).map(|_| tier.backoff(5)).collect();
    assert!(delays.len() > 1, "no jitter");
}

/// Goal: an object above the multipart threshold is uploaded in parts and reads back
/// byte-identical.
#[tokio::test]
async fn large_objects_use_multipart_upload() {
    let config = TierConfig {
        multipart_threshold_bytes: 6 * 1024 * 1024,
        multipart_part_bytes: 5 * 1024 * 1024,
        ..TierConfig::default()
    };
    let tier = Tier::new(Arc::new(InMemory::new()), memory_cache().await, config);
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    tier.upload("segments/00/big.seg", Bytes::from(big.clone()))
        .await
        .unwrap();
    let back = tier.read_object("segments/00/big.seg").await.unwrap();
    assert_eq!(back.len(), big.len());
    assert!(back[..] == big[..]);
    assert_eq!(tier.stats().put_bytes, big.len() as u64);
}

/// Eight concurrent `read_chunk`s of the first chunk of `built`, through a store whose
/// latency keeps the first GETs in flight while the others arrive: what they read, the
/// chunk's index entry and the tier's counters.
async fn eight_concurrent_readers(built: &BuiltSegment) -> (Vec<Bytes>, IndexEntry, TierStats) {
    let store = FaultyObjectStore::new(Arc::new(InMemory::new()));
    store.set_latency(Duration::from_millis(50));
    let tier = Arc::new(Tier::new(
        Arc::new(store),
        memory_cache().await,
        TierConfig::default(),
    ));
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    let entry = built.chunks[0].to_index_entry(&key);
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let tier = tier.clone();
            let entry = entry.clone();
            tokio::spawn(async move { tier.read_chunk(&entry).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for reader in readers {
        results.push(reader.await.unwrap());
    }
    (results, entry, tier.stats())
}

/// Goal: concurrent readers of one uncached chunk cause a single GET (singleflight).
#[tokio::test]
async fn concurrent_readers_share_one_get() {
    let (results, _, stats) = eight_concurrent_readers(&two_partition_segment()).await;
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(stats.gets, 1, "one GET for eight readers");
    assert_eq!(stats.cache_misses, 1);
}

/// Goal: concurrent readers of a compacted chunk share one GET of its seek table, and one
/// per frame (10 frames).
#[tokio::test]
async fn concurrent_readers_share_one_seek_table_get() {
    let built = seekable_segment();
    let (results, entry, stats) = eight_concurrent_readers(&built).await;
    assert!(results.iter().all(|r| *r == built.uncompressed[0]));
    assert_eq!(stats.gets, 11, "one GET for the table and one per frame");
    assert_eq!(stats.get_bytes, entry.byte_length);
}

/// Goal: read-ahead fetches the next chunks in the background, so the reader then finds
/// them in the cache without a GET of its own.
#[tokio::test]
async fn read_ahead_fills_the_cache() {
    let tier = Arc::new(Tier::new(
        Arc::new(InMemory::new()),
        memory_cache().await,
        TierConfig::default(),
    ));
    let built = two_partition_segment();
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    let entries: Vec<_> = built
        .chunks
        .iter()
        .map(|c| c.to_index_entry(&key))
        .collect();
    let mut spans = Vec::new();
    for entry in &entries {
        spans.extend(tier.spans(entry, 0).await.unwrap());
    }
    tier.prefetch(&spans);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tier.stats().cache_misses < 2 || tier.stats().cache_bytes == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "read-ahead did not run"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Both chunks are now cached: reading them costs no GET.
    let gets = tier.stats().gets;
    for entry in &entries {
        tier.read_chunk(entry).await.unwrap();
    }
    assert_eq!(tier.stats().gets, gets);
    assert_eq!(tier.stats().prefetches, 2);
}

/// Goal: a reader cancelled while it leads a GET (its client hung up) does not leave the
/// chunk blocked: the next reader gets it. Method: the first GET hangs; its reader is
/// dropped after a timeout; a second reader must finish (bounded by a timeout of its own).
#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_does_not_block_later_readers() {
    let built = two_partition_segment();
    let key = "segments/00/c.seg";
    let entry = built.chunks[0].to_index_entry(key);
    let store = FaultyObjectStore::new(Arc::new(InMemory::new()));
    store.hang_next_gets(1);
    let tier = Tier::new(Arc::new(store), memory_cache().await, TierConfig::default());
    tier.upload(key, built.bytes()).await.unwrap();

    let cancelled = tokio::time::timeout(Duration::from_millis(10), tier.read_chunk(&entry)).await;
    assert!(cancelled.is_err(), "the first read hangs and is cancelled");
    let second = tokio::time::timeout(Duration::from_secs(5), tier.read_chunk(&entry))
        .await
        .expect("a later reader is not blocked by the cancelled one")
        .unwrap();
    assert_eq!(second, built.uncompressed[0]);
}

/// A seekable chunk (compaction's format) of 30 batches of 5 records, in frames of 3 batches.
fn seekable_segment() -> BuiltSegment {
    let batches: Vec<Bytes> = (0..30)
        .map(|i| Bytes::from(simple_batch(i * 5, 5)))
        .collect();
    let frame_bytes = 3 * batches[0].len() as u64;
    let mut builder = SegmentBuilder::new(3).with_frames(frame_bytes);
    builder.add_chunk(
        TopicPartition {
            topic_id: Uuid::from_u128(0x77),
            partition: 0,
        },
        &batches,
    );
    builder.finish().unwrap()
}

/// Goal: a reader of a compacted chunk fetches only the frames it needs, one ranged GET each
/// (plus one for the seek table, then remembered), and the whole chunk still reads back
/// identical. Method: upload a 10-frame seekable chunk; ask for the spans from offset 100;
/// read one; count GETs and bytes; read the whole chunk.
#[tokio::test]
async fn seekable_chunks_are_read_frame_by_frame() {
    let tier = memory_tier().await;
    let built = seekable_segment();
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    let entry = built.chunks[0].to_index_entry(&key);
    assert!(entry.seek_table_length > 0);

    let spans = tier.spans(&entry, 100).await.unwrap();
    // Frames of 15 offsets: 90..=104 holds offset 100, then 105.., ... up to 149.
    assert_eq!(spans.len(), 4);
    assert_eq!((spans[0].base_offset(), spans[0].last_offset()), (90, 104));
    assert_eq!(tier.stats().gets, 1, "one GET for the seek table");
    assert_eq!(tier.stats().get_bytes, entry.seek_table_length);

    let data = tier.read_span(&spans[0]).await.unwrap();
    assert_eq!(data.len() as u64, spans[0].uncompressed_length());
    let stats = tier.stats();
    assert_eq!(stats.gets, 2, "one more for the frame");
    assert_eq!(
        stats.get_bytes,
        entry.seek_table_length + spans[0].byte_length
    );

    // The seek table is remembered: asking again costs nothing.
    assert_eq!(tier.spans(&entry, 0).await.unwrap().len(), 10);
    assert_eq!(tier.stats().gets, 2);

    // The whole chunk: the other 9 frames (the one read is cached).
    assert_eq!(
        tier.read_chunk(&entry).await.unwrap(),
        built.uncompressed[0]
    );
    let stats = tier.stats();
    assert_eq!((stats.gets, stats.cache_hits()), (11, 1));
    assert_eq!(stats.get_bytes, entry.byte_length);
}

/// Goal: a seek table that disagrees with the index entry is an error, not a wrong read.
#[tokio::test]
async fn a_seek_table_that_disagrees_with_its_entry_is_refused() {
    let tier = memory_tier().await;
    let built = seekable_segment();
    let key = new_segment_key();
    tier.upload(&key, built.bytes()).await.unwrap();
    let mut entry = built.chunks[0].to_index_entry(&key);
    entry.record_count += 1;
    let err = tier.spans(&entry, 0).await.unwrap_err();
    assert!(matches!(err, TieringError::Corrupt { .. }), "{err:?}");
    entry.record_count -= 1;
    entry.seek_table_length += 1;
    let err = tier.read_chunk(&entry).await.unwrap_err();
    assert!(matches!(err, TieringError::Corrupt { .. }), "{err:?}");
}

mod whole_object;
