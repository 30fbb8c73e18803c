//! `ChunkCache`: decompressed chunks keyed by (object key, byte offset of the chunk in the
//! object), in a foyer `HybridCache`: a byte-bounded memory tier (LRU) over an optional
//! disk tier (foyer's block engine in a directory, bounded by its capacity).
//!
//! Chunks evicted from memory are written to disk (`WriteOnEviction`, with direct IO where
//! the file system allows it, so blocks are not copied into the page cache); a disk hit is
//! promoted back into memory. Objects are immutable and keys never reused, so a cached chunk
//! is never stale. The disk tier is only a cache: it is not recovered on restart
//! (`RecoverMode::None`), so its on-disk format (`ChunkKey`/`ChunkData` below, versioned)
//! never has to be read by another build. foyer types stay inside this file.

use std::hash::Hash;
use std::io::{Read, Write};
use std::path::PathBuf;

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, Code, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy, LruConfig, PsyncIoEngineConfig, RecoverMode, Source,
};

use crate::error::{StoreError, TieringError};
use crate::segment::CHUNK_UNCOMPRESSED_MAX;

/// Default size of a disk tier block: the unit foyer writes and evicts, and the largest chunk
/// the disk tier can hold. Chunks are at most about `flush_bytes` (8 MiB by default).
pub const DISK_BLOCK_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;

/// Blocks the disk tier has at least: foyer writes into one block while it reclaims
/// others, so a tier of one or two blocks would thrash.
pub const DISK_BLOCKS_MIN: u64 = 4;

/// Bytes of memory a shard of the memory tier holds at least: each shard is an LRU of its own
/// and must hold several chunks for eviction to be close to a global LRU.
const MEMORY_SHARD_BYTES_MIN: u64 = 64 * 1024 * 1024;
/// Shards of the memory tier at most (each has its own lock).
const MEMORY_SHARDS_MAX: u64 = 8;

/// Version of the disk encoding of keys and values. A mismatch is a decode error, which
/// the cache reports as a miss.
const ENCODING_VERSION: u8 = 1;

/// Sizes and place of the cache tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkCacheConfig {
    /// Bytes of chunk data held in memory (0 disables the cache, disk tier included).
    pub memory_bytes: u64,
    /// The disk tier, if any.
    pub disk: Option<DiskCacheConfig>,
}

impl ChunkCacheConfig {
    /// A memory-only cache of `memory_bytes`.
    pub fn memory(memory_bytes: u64) -> Self {
        Self {
            memory_bytes,
            disk: None,
        }
    }
}

/// The disk tier: a directory that only the cache uses; [`ChunkCache::open`] empties it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCacheConfig {
    pub dir: PathBuf,
    /// Bytes of disk the tier may use (rounded down to whole blocks).
    pub capacity_bytes: u64,
    /// Block size; also the largest chunk the disk tier holds. See [`DISK_BLOCK_BYTES_DEFAULT`].
    pub block_bytes: u64,
}

impl DiskCacheConfig {
    pub fn new(dir: PathBuf, capacity_bytes: u64) -> Self {
        Self {
            dir,
            capacity_bytes,
            block_bytes: DISK_BLOCK_BYTES_DEFAULT,
        }
    }
}

/// Which tier answered a cache lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTier {
    Memory,
    Disk,
}

/// A chunk found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheHit {
    pub data: Bytes,
    pub tier: CacheTier,
}

/// Cache key: the chunk at `byte_offset` of object `object`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ChunkKey {
    object: String,
    byte_offset: u64,
}

/// Cache value: the decompressed record batches of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChunkData(Bytes);

fn invalid_data(reason: &'static str) -> foyer::Error {
    foyer::Error::io_error(std::io::Error::new(std::io::ErrorKind::InvalidData, reason))
}

fn read_u64(reader: &mut impl Read) -> foyer::Result<u64> {
    let mut buf = [0u8; 8];
    reader
        .read_exact(&mut buf)
        .map_err(foyer::Error::io_error)?;
    Ok(u64::from_le_bytes(buf))
}

fn read_version(reader: &mut impl Read) -> foyer::Result<()> {
    let mut version = [0u8; 1];
    reader
        .read_exact(&mut version)
        .map_err(foyer::Error::io_error)?;
    if version[0] != ENCODING_VERSION {
        return Err(invalid_data(
            "chunk cache entry of another encoding version",
        ));
    }
    Ok(())
}

/// Reads `len` bytes, refusing lengths over `max` (the length comes from disk).
fn read_bytes(reader: &mut impl Read, max: u64) -> foyer::Result<Vec<u8>> {
    let len = read_u64(reader)?;
    if len > max {
        return Err(invalid_data("chunk cache entry longer than any chunk"));
    }
    let len = usize::try_from(len).map_err(|_| invalid_data("length overflows usize"))?;
    let mut data = vec![0u8; len];
    reader
        .read_exact(&mut data)
        .map_err(foyer::Error::io_error)?;
    Ok(data)
}

/// Longest object key stored: S3 keys are at most 1024 bytes (S3 documentation).
const OBJECT_KEY_BYTES_MAX: u64 = 1024;

/// Disk layout: version (u8), key length (u64 LE), key (UTF-8), byte offset (u64 LE).
impl Code for ChunkKey {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        writer
            .write_all(&[ENCODING_VERSION])
            .and_then(|()| writer.write_all(&(self.object.len() as u64).to_le_bytes()))
            .and_then(|()| writer.write_all(self.object.as_bytes()))
            .and_then(|()| writer.write_all(&self.byte_offset.to_le_bytes()))
            .map_err(foyer::Error::io_error)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        read_version(reader)?;
        let object = String::from_utf8(read_bytes(reader, OBJECT_KEY_BYTES_MAX)?)
            .map_err(|_| invalid_data("object key is not UTF-8"))?;
        let byte_offset = read_u64(reader)?;
        Ok(Self {
            object,
            byte_offset,
        })
    }

    fn estimated_size(&self) -> usize {
        1 + 8 + self.object.len() + 8
    }
}

/// Disk layout: version (u8), length (u64 LE), data.
impl Code for ChunkData {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        writer
            .write_all(&[ENCODING_VERSION])
            .and_then(|()| writer.write_all(&(self.0.len() as u64).to_le_bytes()))
            .and_then(|()| writer.write_all(&self.0))
            .map_err(foyer::Error::io_error)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        read_version(reader)?;
        Ok(Self(Bytes::from(read_bytes(
            reader,
            CHUNK_UNCOMPRESSED_MAX,
        )?)))
    }

    fn estimated_size(&self) -> usize {
        1 + 8 + self.0.len()
    }
}

/// The chunk cache. Only chunk bytes count towards the memory bound (keys are small).
pub struct ChunkCache {
    /// `None` when the cache is disabled (`memory_bytes == 0`).
    inner: Option<HybridCache<ChunkKey, ChunkData>>,
    config: ChunkCacheConfig,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache")
            .field("config", &self.config)
            .field("memory_usage_bytes", &self.memory_bytes())
            .finish()
    }
}

/// Whether files in `dir` (created if missing) can be opened for direct IO. Written through
/// the page cache, every block of the disk tier was copied into freshly allocated kernel
/// pages: 42% of the broker's CPU producing to S3 at full speed in docs/BENCHMARKS.md. Some
/// file systems (tmpfs before Linux 6.6, some network file systems) refuse `O_DIRECT`; the
/// tier then writes through the page cache as before.
async fn direct_io_supported(dir: &std::path::Path) -> bool {
    let dir = dir.to_path_buf();
    let probe = move || {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("direct-io-probe");
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path);
        let _ = std::fs::remove_file(&path);
        opened.map(drop)
    };
    match tokio::task::spawn_blocking(probe).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::info!(error = %err, "the chunk cache's disk tier writes through the page cache: no direct IO here");
            false
        }
        Err(_) => false,
    }
}

impl ChunkCache {
    /// Opens the cache. A disk tier starts empty: its directory is removed and created again.
    pub async fn open(config: ChunkCacheConfig) -> Result<Self, TieringError> {
        if config.memory_bytes == 0 {
            return Ok(Self::disabled());
        }
        let shards = (config.memory_bytes / MEMORY_SHARD_BYTES_MIN).clamp(1, MEMORY_SHARDS_MAX);
        // A chunk larger than a shard would evict the whole shard and still overflow it; such
        // chunks are not cached at all (as before foyer), so the memory bound holds.
        let shard_bytes = config.memory_bytes / shards;
        let memory = HybridCacheBuilder::new()
            .with_name("strato_chunk_cache")
            .with_policy(HybridCachePolicy::WriteOnEviction)
            .with_flush_on_close(false)
            .memory(usize_of(config.memory_bytes))
            .with_shards(usize_of(shards))
            .with_eviction_config(LruConfig {
                high_priority_pool_ratio: 0.0,
            })
            .with_weighter(|_key: &ChunkKey, value: &ChunkData| value.0.len())
            .with_filter(move |_key: &ChunkKey, value: &ChunkData| {
                value.0.len() as u64 <= shard_bytes
            });
        let storage = memory.storage();
        let cache = match &config.disk {
            None => storage.build().await,
            Some(disk) => {
                assert!(
                    disk.capacity_bytes >= DISK_BLOCKS_MIN * disk.block_bytes,
                    "the disk tier needs at least {DISK_BLOCKS_MIN} blocks (config validation)"
                );
                let open_error = |err: foyer::Error| TieringError::Unavailable {
                    operation: "open chunk cache disk tier",
                    source: StoreError::other(err),
                };
                // The tier is not recovered, so files of an earlier run are garbage; removing
                // them also drops blocks beyond a capacity that has since been lowered.
                match tokio::fs::remove_dir_all(&disk.dir).await {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(TieringError::Unavailable {
                            operation: "empty chunk cache directory",
                            source: StoreError::io(err),
                        });
                    }
                }
                // Direct IO: the tier is itself the cache, so a copy of every block in the
                // page cache would only cost a copy and memory (see `direct_io_supported`).
                let direct = direct_io_supported(&disk.dir).await;
                let device = FsDeviceBuilder::new(&disk.dir)
                    .with_capacity(usize_of(disk.capacity_bytes))
                    .with_direct(direct)
                    .build()
                    .map_err(open_error)?;
                let block_bytes = usize_of(disk.block_bytes);
                let engine = BlockEngineConfig::new(device)
                    .with_block_size(block_bytes)
                    .with_flushers(1)
                    .with_reclaimers(1)
                    // Bounded write path: chunks waiting to be written are at most one block
                    // in the flush buffer plus two blocks in the submit queue; beyond that
                    // foyer drops the write (the chunk is just not on disk), never queues it.
                    .with_buffer_pool_size(block_bytes)
                    .with_submit_queue_size_threshold(2 * block_bytes);
                storage
                    .with_io_engine_config(PsyncIoEngineConfig::new())
                    .with_engine_config(engine)
                    .with_recover_mode(RecoverMode::None)
                    .build()
                    .await
            }
        };
        let cache = cache.map_err(|err| TieringError::Unavailable {
            operation: "open chunk cache",
            source: StoreError::other(err),
        })?;
        Ok(Self {
            inner: Some(cache),
            config,
        })
    }

    /// A cache that holds nothing (for tools that read objects once).
    pub fn disabled() -> Self {
        Self {
            inner: None,
            config: ChunkCacheConfig::memory(0),
        }
    }

    /// The chunk at `byte_offset` of `object`, from memory or else from disk. A disk tier
    /// that fails to read is logged and counts as a miss.
    pub async fn get(&self, object: &str, byte_offset: u64) -> Option<CacheHit> {
        let cache = self.inner.as_ref()?;
        let key = ChunkKey {
            object: object.to_string(),
            byte_offset,
        };
        let entry = match cache.get(&key).await {
            Ok(entry) => entry?,
            Err(err) => {
                tracing::warn!(object, byte_offset, "failed to read chunk cache: {err}");
                return None;
            }
        };
        // foyer records where a looked-up entry came from. `Outer` is only for entries a
        // `get_or_fetch` loaded, which this cache never uses.
        let tier = match entry.source() {
            Source::Disk => CacheTier::Disk,
            Source::Memory | Source::Outer => CacheTier::Memory,
        };
        Some(CacheHit {
            data: entry.value().0.clone(),
            tier,
        })
    }

    /// Whether the chunk is (probably) cached in either tier, without reading it: a disk
    /// lookup may give a false positive on a hash collision.
    pub fn contains(&self, object: &str, byte_offset: u64) -> bool {
        self.inner.as_ref().is_some_and(|cache| {
            cache.contains(&ChunkKey {
                object: object.to_string(),
                byte_offset,
            })
        })
    }

    /// Caches `data` as the chunk at `byte_offset` of `object` (in memory; it moves to disk
    /// when memory evicts it). A chunk larger than a memory shard is not cached.
    pub fn insert(&self, object: &str, byte_offset: u64, data: Bytes) {
        if let Some(cache) = &self.inner {
            let key = ChunkKey {
                object: object.to_string(),
                byte_offset,
            };
            cache.insert(key, ChunkData(data));
        }
    }

    /// Bytes of chunk data in the memory tier now.
    pub fn memory_bytes(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |cache| cache.memory().usage() as u64)
    }

    pub fn config(&self) -> &ChunkCacheConfig {
        &self.config
    }

    /// Waits until chunks handed to the disk tier so far are written (tests).
    #[cfg(test)]
    pub(crate) async fn wait_for_disk_writes(&self) {
        if let Some(cache) = &self.inner {
            cache.storage().wait().await;
        }
    }
}

/// `u64` -> `usize`; every size here fits (64-bit targets only: see the static assert).
fn usize_of(value: u64) -> usize {
    usize::try_from(value).expect("usize is 64 bits")
}

const _: () = assert!(usize::BITS == 64, "sizes are u64 and converted to usize");

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(size: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; size])
    }

    async fn data(cache: &ChunkCache, object: &str, byte_offset: u64) -> Option<Bytes> {
        cache.get(object, byte_offset).await.map(|hit| hit.data)
    }

    #[tokio::test]
    async fn evicts_least_recently_used_chunks_by_bytes() {
        let cache = ChunkCache::open(ChunkCacheConfig::memory(100))
            .await
            .unwrap();
        cache.insert("a", 0, chunk(40, 1));
        cache.insert("a", 40, chunk(40, 2));
        assert_eq!(cache.memory_bytes(), 80);
        // Touch ("a", 0) so ("a", 40) becomes the least recently used.
        assert_eq!(data(&cache, "a", 0).await, Some(chunk(40, 1)));
        cache.insert("b", 0, chunk(30, 3));
        assert_eq!(cache.memory_bytes(), 70);
        assert_eq!(data(&cache, "a", 40).await, None);
        assert!(data(&cache, "a", 0).await.is_some());
        assert!(data(&cache, "b", 0).await.is_some());

        // Two evictions to make room for a large chunk.
        cache.insert("c", 0, chunk(90, 4));
        assert_eq!(cache.memory_bytes(), 90);
        assert!(data(&cache, "c", 0).await.is_some());
        assert!(!cache.contains("a", 0));
        assert!(!cache.contains("b", 0));
    }

    #[tokio::test]
    async fn replacing_an_entry_and_oversized_chunks_keep_the_accounting_right() {
        let cache = ChunkCache::open(ChunkCacheConfig::memory(100))
            .await
            .unwrap();
        cache.insert("a", 0, chunk(40, 1));
        cache.insert("a", 0, chunk(60, 2));
        assert_eq!(cache.memory_bytes(), 60);
        assert_eq!(data(&cache, "a", 0).await, Some(chunk(60, 2)));

        cache.insert("huge", 0, chunk(101, 3));
        assert_eq!(data(&cache, "huge", 0).await, None);
        assert_eq!(cache.memory_bytes(), 60);

        let disabled = ChunkCache::open(ChunkCacheConfig::memory(0)).await.unwrap();
        disabled.insert("a", 0, chunk(1, 1));
        assert_eq!(disabled.memory_bytes(), 0);
        assert!(!disabled.contains("a", 0));
        assert_eq!(data(&disabled, "a", 0).await, None);
    }

    /// Goal: chunks evicted from memory are served from the disk tier, which stays within its
    /// capacity, including files of an earlier run. Method: a memory tier of two chunks over a
    /// disk tier of a few blocks.
    #[tokio::test]
    async fn evicted_chunks_are_served_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        // Left by an earlier run: opening the cache removes it.
        let stale = dir.path().join("cache").join("stale");
        std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
        std::fs::write(&stale, vec![0u8; 1 << 20]).unwrap();
        let cache = ChunkCache::open(ChunkCacheConfig {
            memory_bytes: 2 * 4096,
            disk: Some(DiskCacheConfig {
                dir: dir.path().join("cache"),
                capacity_bytes: 4 * 64 * 1024,
                block_bytes: 64 * 1024,
            }),
        })
        .await
        .unwrap();
        assert!(!stale.exists());
        for offset in 0..3u8 {
            cache.insert("a", u64::from(offset) * 4096, chunk(4096, offset));
        }
        cache.wait_for_disk_writes().await;
        // ("a", 0) was evicted by the third insert.
        let hit = cache.get("a", 0).await.unwrap();
        assert_eq!(
            hit,
            CacheHit {
                data: chunk(4096, 0),
                tier: CacheTier::Disk
            }
        );
        // A disk hit is promoted back into memory.
        assert_eq!(cache.get("a", 0).await.unwrap().tier, CacheTier::Memory);

        // Far more chunks than the disk holds: its files stay within capacity.
        for offset in 0..200u64 {
            cache.insert("b", offset * 4096, chunk(4096, 9));
            cache.wait_for_disk_writes().await;
        }
        let on_disk: u64 = std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .sum();
        assert!(on_disk <= 4 * 64 * 1024, "disk tier holds {on_disk} bytes");
    }

    #[test]
    fn encodings_round_trip_and_reject_other_versions() {
        let key = ChunkKey {
            object: "segments/ab/x.seg".to_string(),
            byte_offset: 77,
        };
        let mut buf = Vec::new();
        key.encode(&mut buf).unwrap();
        assert_eq!(buf.len(), key.estimated_size());
        assert_eq!(ChunkKey::decode(&mut buf.as_slice()).unwrap(), key);

        let value = ChunkData(chunk(10, 5));
        let mut buf = Vec::new();
        value.encode(&mut buf).unwrap();
        assert_eq!(buf.len(), value.estimated_size());
        assert_eq!(ChunkData::decode(&mut buf.as_slice()).unwrap(), value);

        buf[0] = ENCODING_VERSION + 1;
        assert!(ChunkData::decode(&mut buf.as_slice()).is_err());
        let mut truncated = &buf[..5];
        assert!(ChunkData::decode(&mut truncated).is_err());
    }
}
