//! `DirectFileStore`: the `file://` object store. Everything is `object_store`'s
//! `LocalFileSystem` (with fsync), except a whole-object PUT, which is written with direct
//! IO (`O_DIRECT`) where the file system allows it.
//!
//! Why: a flush's PUT is on the acknowledgement path. Written through the page cache, every
//! block is first copied into kernel pages (fresh ones, as objects are new files; on this
//! project's VM a first touch of a page costs microseconds) and then written back by the
//! fsync; 2 MiB took 6.4 ms to write and fsync here, against 2.0 ms direct
//! (docs/BENCHMARKS.md, session 16). Reads of recent data come from the chunk cache (flushes
//! write through it), so the page cache gained little.
//!
//! A PUT here is durable and atomic as `LocalFileSystem`'s is: the bytes go to a staging file
//! `<path>#<digits>` (hidden from listings, like `LocalFileSystem`'s own), are fsynced, and the
//! file is renamed to `<path>` and its directory fsynced. Direct IO needs aligned memory,
//! offsets and lengths: a part of the payload that starts at an aligned address and at an
//! aligned offset of the object has its whole [`ALIGN`] pieces written from where it is (a
//! flush's large chunks: `SegmentBuilder::uncompressed` lays them out so, and the flusher's
//! chunk buffers are aligned); the rest is copied, [`POOL_BUFFER_BYTES`] at a time, into a
//! buffer aligned to [`ALIGN`] and written from it; the last piece is padded to a multiple of
//! [`ALIGN`] and the file then cut to the payload's length. The buffers are reused (at most
//! [`POOL_BUFFERS`] kept), so a PUT of any size touches no fresh memory and holds at most one
//! buffer beside its payload. Anything else (a missing directory, other put modes, attributes,
//! a file system that refuses `O_DIRECT`) goes to `LocalFileSystem`.
//!
//! Reads of at least [`DIRECT_READ_MIN`] bytes (chunks and whole flush objects, read when
//! they are not in the chunk cache) go direct too: the covering aligned range is read into a
//! fresh aligned buffer and the caller gets a slice of it. Through the page cache the disk
//! filled kernel pages and the kernel then copied them into the caller's buffer: that copy
//! was half of the broker's CPU while a consumer read older data (docs/BENCHMARKS.md,
//! session 18). `LocalFileSystem` still opens the object and answers everything else
//! (preconditions, ranges, errors, metadata); the direct read opens the path again and
//! leaves the read to that first file if the path now holds another object.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, IoSlice, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Alignment of direct IO buffers, offsets and lengths: the page size, a multiple of every
/// common logical block size (512, 4096).
pub const ALIGN: usize = 4096;
/// Largest buffer kept for reuse (flush objects are 2 MiB by default on `file://`).
pub const POOL_BUFFER_BYTES: usize = 8 << 20;
/// Buffers kept for reuse: concurrent flush uploads each hold one.
pub const POOL_BUFFERS: usize = 4;
/// Reads of at least this many bytes go direct; smaller ones (footers, seek tables) through
/// the page cache, where rounding them up to [`ALIGN`] would cost more than the copy saves.
pub const DIRECT_READ_MIN: usize = 64 << 10;
/// Most pieces one `writev` takes (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;
/// Attempts at a staging name not taken by a concurrent upload of the same object.
const STAGING_ATTEMPTS: u32 = 100;
/// A staging file this much older than its last write was left by a PUT that never ended
/// (the process died in it): a PUT takes milliseconds. Such files are invisible to listings,
/// so garbage collection never sees them; [`sweep_stale_staging`] removes them.
pub const STAGING_STALE_AFTER: Duration = Duration::from_secs(600);

pub struct DirectFileStore {
    inner: LocalFileSystem,
    /// Cleared for good when the file system refuses direct IO.
    direct: AtomicBool,
    buffers: Arc<Mutex<Vec<Vec<u8>>>>,
    staging_suffix: Arc<AtomicU64>,
    direct_puts: AtomicU64,
    uncopied_bytes: AtomicU64,
    /// Cleared for good when the file system refuses direct IO for a read.
    direct_reads: AtomicBool,
    direct_reads_done: AtomicU64,
}

impl fmt::Debug for DirectFileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectFileStore")
            .field("inner", &self.inner)
            .field("direct", &self.direct.load(Ordering::Relaxed))
            .finish()
    }
}

impl fmt::Display for DirectFileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirectFileStore({})", self.inner)
    }
}

/// What a direct PUT did.
enum Written {
    /// Written; `uncopied` bytes of it from the payload's own memory.
    Done { result: PutResult, uncopied: usize },
    /// Not written; `LocalFileSystem` must (a missing directory, no direct IO here).
    Fallback { direct_unsupported: bool },
}

impl DirectFileStore {
    /// Wraps `inner`, which must have fsync on (`LocalFileSystem::with_fsync(true)`): its
    /// writes are the fallback and must be as durable as these.
    pub fn new(inner: LocalFileSystem) -> Self {
        // Staging suffixes far above `LocalFileSystem`'s (which count from 1), different per
        // process; a taken name is skipped anyway.
        let start = (u64::from(std::process::id()) << 32) | 1 << 63;
        Self {
            inner,
            direct: AtomicBool::new(true),
            buffers: Arc::new(Mutex::new(Vec::new())),
            staging_suffix: Arc::new(AtomicU64::new(start)),
            direct_puts: AtomicU64::new(0),
            uncopied_bytes: AtomicU64::new(0),
            direct_reads: AtomicBool::new(true),
            direct_reads_done: AtomicU64::new(0),
        }
    }

    /// Whether PUTs still go direct (false after the file system refused `O_DIRECT`).
    pub fn writes_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// PUTs written with direct IO so far.
    pub fn direct_puts(&self) -> u64 {
        self.direct_puts.load(Ordering::Relaxed)
    }

    /// Ranges read with direct IO so far (those of at least [`DIRECT_READ_MIN`] bytes).
    pub fn direct_reads(&self) -> u64 {
        self.direct_reads_done.load(Ordering::Relaxed)
    }

    /// Bytes of direct PUTs written from their payload's memory, not copied (aligned parts).
    pub fn uncopied_bytes(&self) -> u64 {
        self.uncopied_bytes.load(Ordering::Relaxed)
    }
}

/// A buffer of `len` bytes rounded up to [`ALIGN`], whose usable part starts at an aligned
/// address: the returned offset into the vector. Reuses a pooled one when it is big enough.
/// PUTs ask for at most [`POOL_BUFFER_BYTES`], so every buffer they use can be pooled.
fn aligned_buffer(pool: &Mutex<Vec<Vec<u8>>>, len: usize) -> (Vec<u8>, usize) {
    let padded = len.div_ceil(ALIGN) * ALIGN;
    let needed = padded + ALIGN;
    let pooled = {
        let mut pool = pool.lock().expect("direct IO buffer pool");
        pool.iter()
            .position(|b| b.len() >= needed)
            .map(|i| pool.swap_remove(i))
    };
    // Rounded up so that the next, slightly bigger flush fits the pooled buffer too.
    let size = if needed <= POOL_BUFFER_BYTES + ALIGN {
        needed.next_power_of_two().min(POOL_BUFFER_BYTES + ALIGN)
    } else {
        needed
    };
    let buf = pooled.unwrap_or_else(|| vec![0; size]);
    let offset = buf.as_ptr().align_offset(ALIGN);
    (buf, offset)
}

fn return_buffer(pool: &Mutex<Vec<Vec<u8>>>, buf: Vec<u8>) {
    if buf.len() > POOL_BUFFER_BYTES + ALIGN {
        return;
    }
    let mut pool = pool.lock().expect("direct IO buffer pool");
    if pool.len() < POOL_BUFFERS {
        pool.push(buf);
    }
}

/// Bytes of `part` written with direct IO from where it is, `copied` bytes of the payload
/// having gone through the buffer before it (the rest of what came before went from memory
/// in multiples of [`ALIGN`]): its whole [`ALIGN`] pieces if it starts at an aligned address
/// and the file at an aligned offset, else none.
fn from_memory(copied: usize, part: &[u8]) -> usize {
    if copied.is_multiple_of(ALIGN) && (part.as_ptr() as usize).is_multiple_of(ALIGN) {
        part.len() / ALIGN * ALIGN
    } else {
        0
    }
}

/// Something to write: bytes of the IO buffer (a range from its aligned start) or of the
/// payload itself.
enum Piece<'a> {
    Buffer(std::ops::Range<usize>),
    Memory(&'a [u8]),
}

/// Writes `pieces` (then empties the list) at the file's position with as few `writev`
/// calls as it takes; `buf` starts at the IO buffer's aligned start.
fn write_pieces(file: &mut File, buf: &[u8], pieces: &mut Vec<Piece<'_>>) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Buffer(range) => IoSlice::new(&buf[range.clone()]),
            Piece::Memory(bytes) => IoSlice::new(bytes),
        })
        .collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    pieces.clear();
    Ok(())
}

/// Whether `err` says the file system does not do direct IO (or not with these buffers).
fn refuses_direct_io(err: &std::io::Error) -> bool {
    err.raw_os_error() == Some(libc::EINVAL)
}

/// The entity tag `LocalFileSystem` gives the same file (inode, mtime, size), so a PUT's tag
/// matches later reads'.
fn etag(metadata: &std::fs::Metadata) -> String {
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{:x}-{:x}-{:x}\"", metadata.ino(), mtime, metadata.len())
}

fn fsync_parent(path: &FsPath) -> std::io::Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "object path has no parent"))?;
    File::open(parent)?.sync_all()
}

/// Writes `payload` to `path` through a staging file with direct IO (module docs).
fn put_direct(
    path: &FsPath,
    payload: &PutPayload,
    pool: &Mutex<Vec<Vec<u8>>>,
    suffix: &AtomicU64,
) -> std::io::Result<Written> {
    let mut attempts = 0;
    let (file, staging) = loop {
        let mut staging = path.as_os_str().to_owned();
        staging.push(format!("#{}", suffix.fetch_add(1, Ordering::Relaxed)));
        let staging = PathBuf::from(staging);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(&staging)
        {
            Ok(file) => break (file, staging),
            Err(err) if err.kind() == ErrorKind::AlreadyExists && attempts < STAGING_ATTEMPTS => {
                attempts += 1;
            }
            Err(err) if err.kind() == ErrorKind::NotFound => {
                return Ok(Written::Fallback {
                    direct_unsupported: false,
                });
            }
            Err(err) if refuses_direct_io(&err) => {
                return Ok(Written::Fallback {
                    direct_unsupported: true,
                });
            }
            Err(err) => return Err(err),
        }
    };
    let len = payload.content_length();
    // Aligned parts go from where they are; the rest through one buffer of at most
    // POOL_BUFFER_BYTES, piece by piece.
    let to_copy = payload.iter().fold(0, |copied, part| {
        copied + part.len() - from_memory(copied, part)
    });
    let piece = (to_copy.div_ceil(ALIGN) * ALIGN).clamp(ALIGN, POOL_BUFFER_BYTES);
    let (mut buf, offset) = aligned_buffer(pool, piece);
    let written = (|| {
        let mut file = file;
        // What to write next, in order: ranges of the buffer and pieces of the payload,
        // written by one `writev` when the buffer is full, at the end, or at IOV_MAX pieces.
        let mut pieces: Vec<Piece<'_>> = Vec::new();
        let mut copied = 0;
        let mut filled = 0;
        let mut region = 0;
        for part in payload.iter() {
            let whole = from_memory(copied, part);
            if whole > 0 {
                // The buffer's open region is a multiple of ALIGN long here, as `copied` is.
                if filled > region {
                    pieces.push(Piece::Buffer(region..filled));
                    region = filled;
                }
                pieces.push(Piece::Memory(&part[..whole]));
                if pieces.len() >= IOV_MAX - 1 {
                    write_pieces(&mut file, &buf[offset..], &mut pieces)?;
                }
            }
            let mut part = &part[whole..];
            copied += part.len();
            while !part.is_empty() {
                let n = part.len().min(piece - filled);
                buf[offset + filled..offset + filled + n].copy_from_slice(&part[..n]);
                filled += n;
                part = &part[n..];
                if filled == piece {
                    pieces.push(Piece::Buffer(region..filled));
                    write_pieces(&mut file, &buf[offset..], &mut pieces)?;
                    (filled, region) = (0, 0);
                }
            }
        }
        let mut cut = false;
        if filled > region {
            // The last piece is padded to the alignment and the file cut to `len` after:
            // zeros, so no earlier object's bytes land in the file even for a moment.
            let padded = filled.div_ceil(ALIGN) * ALIGN;
            buf[offset + filled..offset + padded].fill(0);
            pieces.push(Piece::Buffer(region..padded));
            cut = padded != filled;
        }
        write_pieces(&mut file, &buf[offset..], &mut pieces)?;
        if cut {
            file.set_len(len as u64)?;
        }
        file.sync_all()?;
        let metadata = file.metadata()?;
        drop(file);
        std::fs::rename(&staging, path)?;
        fsync_parent(path)?;
        Ok(etag(&metadata))
    })();
    return_buffer(pool, buf);
    match written {
        Ok(e_tag) => Ok(Written::Done {
            result: PutResult {
                e_tag: Some(e_tag),
                version: None,
                extensions: Default::default(),
            },
            uncopied: len - to_copy,
        }),
        Err(err) => {
            let _ = std::fs::remove_file(&staging);
            if refuses_direct_io(&err) {
                Ok(Written::Fallback {
                    direct_unsupported: true,
                })
            } else {
                Err(err)
            }
        }
    }
}

#[async_trait]
impl ObjectStore for DirectFileStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let plain = matches!(opts.mode, PutMode::Overwrite) && opts.attributes.is_empty();
        if !plain || !self.direct.load(Ordering::Relaxed) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let path = self.inner.path_to_filesystem(location)?;
        let pool = self.buffers.clone();
        let suffix = self.staging_suffix.clone();
        let written = {
            let payload = payload.clone();
            tokio::task::spawn_blocking(move || put_direct(&path, &payload, &pool, &suffix))
                .await
                .map_err(generic_error)?
        };
        match written {
            Ok(Written::Done { result, uncopied }) => {
                self.direct_puts.fetch_add(1, Ordering::Relaxed);
                self.uncopied_bytes
                    .fetch_add(uncopied as u64, Ordering::Relaxed);
                Ok(result)
            }
            Ok(Written::Fallback { direct_unsupported }) => {
                if direct_unsupported && self.direct.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        "object PUTs write through the page cache: the file system refuses direct IO"
                    );
                }
                self.inner.put_opts(location, payload, opts).await
            }
            Err(err) => Err(generic_error(err)),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        // `LocalFileSystem` resolves everything (preconditions, range, metadata, errors);
        // only the reading of a large range is ours (a head request reads nothing).
        let head = options.head;
        let mut result = self.inner.get_opts(location, options).await?;
        let large = result.range.end - result.range.start >= DIRECT_READ_MIN as u64;
        let object_store::GetResultPayload::File(_, path) = &result.payload else {
            return Ok(result);
        };
        if head || !large || !self.direct_reads.load(Ordering::Relaxed) {
            return Ok(result);
        }
        let (path, range, e_tag) = (
            path.clone(),
            result.range.clone(),
            result.meta.e_tag.clone(),
        );
        let read = tokio::task::spawn_blocking(move || read_direct(&path, range, e_tag.as_deref()))
            .await
            .map_err(generic_error)?
            .map_err(generic_error)?;
        match read {
            Read::Done(bytes) => {
                self.direct_reads_done.fetch_add(1, Ordering::Relaxed);
                // Replaces (and closes) the file `LocalFileSystem` opened.
                result.payload = object_store::GetResultPayload::Stream(
                    futures::stream::once(futures::future::ready(Ok(bytes))).boxed(),
                );
            }
            Read::Fallback { direct_unsupported } => {
                if direct_unsupported && self.direct_reads.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        "object reads go through the page cache: the file system refuses direct IO"
                    );
                }
            }
        }
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// An error of this store's own IO (or of its blocking task) as `object_store` reports it.
fn generic_error(err: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "DirectFileStore",
        source: Box::new(err),
    }
}

/// What a direct read did.
enum Read {
    /// The range's bytes (a slice of the aligned buffer they were read into).
    Done(bytes::Bytes),
    /// Not read; the caller reads through the page cache (the object was replaced since it
    /// was opened, or the file system refuses direct IO).
    Fallback { direct_unsupported: bool },
}

/// Reads `range` of the object at `path` with direct IO: the covering aligned range into a
/// fresh aligned buffer, returned as a slice of it (no copy: the disk writes into the memory
/// the caller gets). `e_tag`: the tag of the object the caller opened; another file at the
/// path now (a PUT replaced it) is left to the caller's open file.
fn read_direct(
    path: &FsPath,
    range: std::ops::Range<u64>,
    e_tag: Option<&str>,
) -> std::io::Result<Read> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if refuses_direct_io(&err) => {
            return Ok(Read::Fallback {
                direct_unsupported: true,
            });
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Ok(Read::Fallback {
                direct_unsupported: false,
            });
        }
        Err(err) => return Err(err),
    };
    if e_tag != Some(etag(&file.metadata()?).as_str()) {
        return Ok(Read::Fallback {
            direct_unsupported: false,
        });
    }
    let align = ALIGN as u64;
    let start = range.start / align * align;
    let wanted = usize::try_from(range.end - start).map_err(|_| ErrorKind::InvalidInput)?;
    let padded = wanted.div_ceil(ALIGN) * ALIGN;
    // Zeroed, not uninitialised (no unsafe code): for a large read `calloc` maps fresh
    // zero pages, which the read then fills.
    let mut buf = vec![0_u8; padded + ALIGN];
    let offset = buf.as_ptr().align_offset(ALIGN);
    let mut filled = 0;
    while filled < wanted {
        // `filled` stays a multiple of ALIGN until the end of the file cuts a read short.
        if !filled.is_multiple_of(ALIGN) {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        let into = &mut buf[offset + filled..offset + padded];
        match std::os::unix::fs::FileExt::read_at(&file, into, start + filled as u64) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if refuses_direct_io(&err) => {
                return Ok(Read::Fallback {
                    direct_unsupported: true,
                });
            }
            Err(err) => return Err(err),
        }
    }
    let head = offset + (range.start - start) as usize;
    let len = (range.end - range.start) as usize;
    Ok(Read::Done(bytes::Bytes::from(buf).slice(head..head + len)))
}

/// Whether `name` is a staging file's, `<name>#<digits>` (ours and `LocalFileSystem`'s):
/// exactly the names `LocalFileSystem` leaves out of listings.
fn is_staging_name(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .and_then(|name| name.split_once('#'))
        .is_some_and(|(_, digits)| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the staging files under `root` last written before `written_before`: what PUTs
/// interrupted by a crash left (each up to an object's size). Walks the tree once, one
/// directory at a time (the pending ones on a list: a store's tree is shallow), not
/// following symbolic links; what cannot be read or removed is skipped. Returns the number
/// removed.
pub fn sweep_stale_staging(root: &FsPath, written_before: SystemTime) -> u64 {
    let mut removed = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file()
                && is_staging_name(&entry.file_name())
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified < written_before)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// [`sweep_stale_staging`] of what was written over [`STAGING_STALE_AFTER`] ago, on a
/// thread of its own (a large store's walk takes a while; nothing waits for it).
pub fn sweep_stale_staging_in_background(root: PathBuf) {
    let spawned = std::thread::Builder::new()
        .name("staging-sweep".into())
        .spawn(move || {
            let Some(written_before) = SystemTime::now().checked_sub(STAGING_STALE_AFTER) else {
                return;
            };
            let removed = sweep_stale_staging(&root, written_before);
            if removed > 0 {
                tracing::info!(
                    removed,
                    root = %root.display(),
                    "removed staging files of PUTs a crash interrupted"
                );
            }
        });
    if let Err(err) = spawned {
        tracing::warn!("staging files not swept: {err}");
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::StreamExt;
    use object_store::ObjectStoreExt;

    use super::*;

    fn store(dir: &FsPath) -> DirectFileStore {
        DirectFileStore::new(
            LocalFileSystem::new_with_prefix(dir)
                .unwrap()
                .with_fsync(true),
        )
    }

    /// Whether `dir`'s file system takes `O_DIRECT` at all.
    fn direct_io_here(dir: &FsPath) -> bool {
        let path = dir.join("probe");
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path);
        let _ = std::fs::remove_file(&path);
        opened.is_ok()
    }

    /// A payload of `len` bytes in parts of at most 100,000 bytes (as a segment's are).
    fn payload(len: usize, seed: u8) -> (PutPayload, Vec<u8>) {
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        let parts: Vec<Bytes> = bytes.chunks(100_000).map(Bytes::copy_from_slice).collect();
        (PutPayload::from_iter(parts), bytes)
    }

    /// `len` bytes of `seed` starting `skew` bytes past an [`ALIGN`] boundary of memory.
    fn placed(len: usize, skew: usize, seed: u8) -> Bytes {
        let mut buffer: Vec<u8> = Vec::with_capacity(len + skew + ALIGN);
        let start = buffer.as_ptr().align_offset(ALIGN) + skew;
        buffer.resize(start, 0);
        buffer.extend((0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
        Bytes::from(buffer).slice(start..)
    }

    #[test]
    fn stale_staging_files_are_swept_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let old = SystemTime::now() - STAGING_STALE_AFTER - Duration::from_secs(60);
        let write = |path: &str, modified: SystemTime| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let file = File::create(&path).unwrap();
            file.set_modified(modified).unwrap();
        };
        let stale = [
            "segments/0a/A.seg#9223372036854775809",
            "segments/ff/B.seg#1",
            "x#42",
        ];
        let kept = [
            // A PUT under way (fresh), objects, and names that only look like staging ones.
            "segments/0a/C.seg#9223372036854775810",
            "segments/0a/A.seg",
            "segments/0a/D.seg#",
            "segments/0a/E.seg#1a",
            "segments/0b/#notdigits",
            "segments/0b/F#G.seg#12",
        ];
        for path in stale {
            write(path, old);
        }
        for (i, path) in kept.iter().enumerate() {
            write(path, if i == 0 { SystemTime::now() } else { old });
        }
        let written_before = SystemTime::now() - STAGING_STALE_AFTER;
        assert_eq!(
            sweep_stale_staging(root, written_before),
            stale.len() as u64
        );
        for path in stale {
            assert!(!root.join(path).exists(), "{path} swept");
        }
        for path in kept {
            assert!(root.join(path).exists(), "{path} kept");
        }
        assert_eq!(sweep_stale_staging(root, written_before), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aligned_parts_at_aligned_offsets_are_written_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store
            .put(&Path::from("made/dir"), PutPayload::new())
            .await
            .unwrap();
        if !direct_io_here(dir.path()) {
            panic!("this test needs a file system that takes O_DIRECT (tmpfs does not)");
        }
        // (parts, bytes expected from memory): aligned parts go direct (their whole ALIGN
        // pieces) only where the object is at an aligned offset; a tail goes through the
        // buffer, and padding there brings the offset back to a boundary.
        let a = ALIGN;
        let cases: Vec<(Vec<Bytes>, usize)> = vec![
            (vec![placed(3 * a + 10, 0, 1)], 3 * a),
            (vec![placed(100, 1, 2), placed(2 * a, 0, 3)], 0),
            (
                vec![
                    placed(2 * a + 5, 0, 4),
                    placed(a - 5, 1, 5),
                    placed(2 * a, 0, 6),
                ],
                4 * a,
            ),
            (
                vec![
                    placed(8, 3, 7),
                    placed(a - 8, 0, 8),
                    placed(a, 0, 9),
                    placed(9, 0, 10),
                ],
                a,
            ),
            (vec![placed(a - 1, 0, 11), placed(5 * a, 0, 12)], 0),
            // More copied bytes than a buffer holds, between aligned parts.
            (
                vec![
                    placed(2 * a, 0, 13),
                    placed(POOL_BUFFER_BYTES + a, 1, 14),
                    placed(a, 0, 15),
                ],
                3 * a,
            ),
            // More pieces than one writev takes.
            (
                (0..IOV_MAX)
                    .flat_map(|i| [placed(a + 3, 0, i as u8), placed(a - 3, 1, 0)])
                    .collect(),
                IOV_MAX * a,
            ),
        ];
        for (i, (parts, uncopied)) in cases.into_iter().enumerate() {
            let key = Path::from(format!("made/{i}"));
            let expected: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            let before = store.uncopied_bytes();
            store.put(&key, PutPayload::from_iter(parts)).await.unwrap();
            assert_eq!(
                store.uncopied_bytes() - before,
                uncopied as u64,
                "case {i}: bytes written from the payload's memory"
            );
            let got = store.get(&key).await.unwrap().bytes().await.unwrap();
            assert_eq!(got, expected, "case {i} reads back exactly");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn objects_of_every_length_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        // Across one buffer (POOL_BUFFER_BYTES) too: written in pieces.
        let lengths = [
            0,
            1,
            511,
            4095,
            4096,
            4097,
            100_000,
            (2 << 20) + 3,
            POOL_BUFFER_BYTES,
            POOL_BUFFER_BYTES + 1,
            2 * POOL_BUFFER_BYTES + 4097,
        ];
        for (i, len) in lengths.into_iter().enumerate() {
            let key = Path::from(format!("segments/{i}"));
            let (payload, bytes) = payload(len, i as u8);
            let put = store.put(&key, payload).await.unwrap();
            let got = store.get(&key).await.unwrap();
            assert_eq!(put.e_tag, got.meta.e_tag, "the PUT's tag is the file's");
            assert_eq!(got.bytes().await.unwrap(), bytes, "length {len}");
        }
        let direct = direct_io_here(dir.path());
        assert_eq!(store.writes_direct(), direct);
        assert_eq!(
            store.direct_puts(),
            // The first PUT made the directory, through LocalFileSystem.
            if direct { lengths.len() as u64 - 1 } else { 0 },
            "direct IO used where the file system takes it"
        );
        let pooled: Vec<usize> = store.buffers.lock().unwrap().iter().map(Vec::len).collect();
        assert!(pooled.len() <= POOL_BUFFERS);
        assert!(
            pooled.iter().all(|len| *len <= POOL_BUFFER_BYTES + ALIGN),
            "objects bigger than a buffer went through one in pieces: {pooled:?}"
        );
        let listed: Vec<ObjectMeta> = store.list(None).map(Result::unwrap).collect().await;
        assert_eq!(
            listed.len(),
            lengths.len(),
            "no staging file left or listed"
        );
        let files = std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count();
        assert_eq!(files, lengths.len(), "staging files were renamed");
    }

    /// Goal: a large range is read with direct IO into memory the caller gets, whatever its
    /// alignment (start, end, an object whose length is no multiple of [`ALIGN`]), and
    /// returns exactly its bytes; small ranges and `LocalFileSystem`'s answers (missing
    /// objects, ranges past the end, failed preconditions, head requests) are as before.
    #[tokio::test]
    async fn large_ranges_are_read_direct_and_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        assert!(
            direct_io_here(dir.path()),
            "the test directory's file system refuses O_DIRECT: run the tests on ext4 or xfs"
        );
        let len = (3 << 20) + 1234;
        let key = Path::from("segments/00/big.seg");
        store.put(&key, payload(len, 9).0).await.unwrap(); // makes the directory
        let (payload, bytes) = payload(len, 9);
        store.put(&key, payload).await.unwrap();
        let len = len as u64;
        let large = DIRECT_READ_MIN as u64;
        let ranges = [
            0..len,
            0..large,
            1..large + 1,
            4095..4096 + large,
            (1 << 20) + 17..(2 << 20) + 4099,
            len - large - 5..len,
            len - large - 1..len - 1,
        ];
        for range in ranges.clone() {
            let got = store.get_range(&key, range.clone()).await.unwrap();
            assert_eq!(
                got,
                bytes[range.start as usize..range.end as usize],
                "range {range:?}"
            );
            let buffer_start = got.as_ptr() as usize - (range.start as usize % ALIGN);
            assert!(
                buffer_start.is_multiple_of(ALIGN),
                "read into an aligned buffer: {range:?}"
            );
        }
        assert_eq!(store.direct_reads(), ranges.len() as u64);
        // The whole object through get() too.
        let whole = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole, bytes);
        assert_eq!(store.direct_reads(), ranges.len() as u64 + 1);

        // Small ranges go through the page cache.
        let small = store.get_range(&key, 10..large - 1).await.unwrap();
        assert_eq!(small, bytes[10..large as usize - 1]);
        assert_eq!(store.direct_reads(), ranges.len() as u64 + 1);

        // LocalFileSystem's answers stay.
        let missing = store
            .get_range(&Path::from("segments/00/none"), 0..large)
            .await;
        assert!(
            matches!(missing, Err(object_store::Error::NotFound { .. })),
            "{missing:?}"
        );
        // A range past the end is cut to it (and the rest still read direct).
        let past_end = store
            .get_range(&key, len - large - 10..len + large)
            .await
            .unwrap();
        assert_eq!(past_end, bytes[(len - large - 10) as usize..]);
        let stale = GetOptions {
            if_match: Some("\"not-the-tag\"".to_string()),
            ..GetOptions::default()
        };
        let refused = store.get_opts(&key, stale).await;
        assert!(
            matches!(refused, Err(object_store::Error::Precondition { .. })),
            "{refused:?}"
        );
        let head = store.head(&key).await.unwrap();
        assert_eq!(head.size, len);
        assert_eq!(store.direct_reads(), ranges.len() as u64 + 2);
    }

    /// Goal: a direct read of a path that holds another object than the one opened (a PUT
    /// replaced it in between) or none leaves the read to the opened file.
    #[test]
    fn a_replaced_object_is_not_read_direct() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        std::fs::write(&path, vec![7_u8; 3 * DIRECT_READ_MIN]).unwrap();
        let tag = etag(&std::fs::metadata(&path).unwrap());
        let range = 0..2 * DIRECT_READ_MIN as u64;
        let another = read_direct(&path, range.clone(), Some("\"another-object\"")).unwrap();
        assert!(matches!(
            another,
            Read::Fallback {
                direct_unsupported: false
            }
        ));
        let gone = read_direct(&dir.path().join("gone"), range.clone(), Some(&tag)).unwrap();
        assert!(matches!(
            gone,
            Read::Fallback {
                direct_unsupported: false
            }
        ));
        match read_direct(&path, range, Some(&tag)).unwrap() {
            Read::Done(bytes) => assert_eq!(bytes, vec![7_u8; 2 * DIRECT_READ_MIN]),
            Read::Fallback { .. } => panic!("the opened object itself was not read direct"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_put_replaces_an_object_and_creates_missing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let key = Path::from("a/b/c/object");
        let (first, _) = payload(10_000, 1);
        store.put(&key, first).await.unwrap();
        assert_eq!(
            store.direct_puts(),
            0,
            "no directory yet: LocalFileSystem wrote it"
        );
        let (second, bytes) = payload(5_000, 2);
        store.put(&key, second).await.unwrap();
        if direct_io_here(&dir.path().join("a/b/c")) {
            assert_eq!(store.direct_puts(), 1);
        }
        assert_eq!(store.get(&key).await.unwrap().bytes().await.unwrap(), bytes);
        // Create mode is LocalFileSystem's: an existing object is refused.
        let (third, _) = payload(1, 3);
        let created = store
            .put_opts(&key, third, PutOptions::from(PutMode::Create))
            .await;
        assert!(matches!(
            created,
            Err(object_store::Error::AlreadyExists { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_of_one_object_each_land_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store(dir.path()));
        let key = Path::from("object");
        let puts: Vec<_> = (0..8u8)
            .map(|i| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let (payload, bytes) = payload(300_000, i);
                    store.put(&key, payload).await.unwrap();
                    bytes
                })
            })
            .collect();
        let mut written = Vec::new();
        for put in puts {
            written.push(put.await.unwrap());
        }
        let got = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert!(written.iter().any(|w| *w == got), "one whole payload won");
    }

    #[test]
    fn buffers_are_aligned_and_the_pool_is_bounded() {
        let pool = Mutex::new(Vec::new());
        let mut held = Vec::new();
        for len in [1, 2 << 20, 3 << 20, 4095, 7 << 20, 20 << 20] {
            let (buf, offset) = aligned_buffer(&pool, len);
            assert_eq!(buf[offset..].as_ptr() as usize % ALIGN, 0);
            assert!(buf.len() - offset >= len.div_ceil(ALIGN) * ALIGN);
            held.push(buf);
        }
        for buf in held {
            return_buffer(&pool, buf);
        }
        let pool = pool.into_inner().unwrap();
        assert_eq!(pool.len(), POOL_BUFFERS);
        assert!(pool.iter().all(|b| b.len() <= POOL_BUFFER_BYTES + ALIGN));
        let pool = Mutex::new(pool);
        let (again, _) = aligned_buffer(&pool, 2 << 20);
        assert!(again.len() <= POOL_BUFFER_BYTES + ALIGN);
        assert_eq!(
            pool.lock().unwrap().len(),
            POOL_BUFFERS - 1,
            "a pooled buffer is reused"
        );
    }
}
