//! The fuzz targets of `strato::fuzzing` on the stable toolchain, in the test command: each
//! target replays its committed corpus (`fuzz/corpus/<target>/`, grown by cargo-fuzz, see
//! docs/FUZZING.md) and its regression inputs (`fuzz/regressions/<target>/`, every finding
//! fixed), then runs mutations of them for a bounded time (`STRATO_FUZZ_SECONDS`, default
//! 30 per target) from a fixed seed (`STRATO_FUZZ_SEED`).
//!
//! An input fails the test when the target panics, holds more than [`LIVE_MAX`] bytes at
//! once (a counting allocator measures it) or asks for more than [`ALLOCATION_MAX`] in one
//! allocation (refused: the process aborts, after the allocator saved the input): bad bytes
//! get an error, never a crash or unbounded memory. The failing input is written to
//! `$CARGO_TARGET_DIR/fuzz-findings/` and printed in hex.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Largest single allocation one input may cause.
const ALLOCATION_MAX: usize = 64 << 20;
/// Most bytes one input may hold at once.
const LIVE_MAX: usize = 256 << 20;
/// Largest mutated input.
const INPUT_MAX: usize = 64 << 10;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak, refusing huge requests.
struct Counting;

// The one unsafe block outside src/protocol/frame.rs: a `GlobalAlloc` cannot be written
// without it, and it only forwards to `System`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if refuse_huge(layout.size()) {
            return std::ptr::null_mut();
        }
        note_alloc(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if refuse_huge(layout.size()) {
            return std::ptr::null_mut();
        }
        note_alloc(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if refuse_huge(new_size) {
            return std::ptr::null_mut();
        }
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        note_alloc(new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The input being checked (pointer and length, valid during [`check`]) and its target's
/// name, for the allocator to save when an allocation is too big to survive.
static INPUT_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static INPUT_LEN: AtomicUsize = AtomicUsize::new(0);
static TARGET_NAME: OnceLock<String> = OnceLock::new();

/// An allocation over [`ALLOCATION_MAX`] is refused (the process aborts: it cannot be
/// caught), after the input that asked for it is saved and printed.
fn refuse_huge(size: usize) -> bool {
    if size <= ALLOCATION_MAX {
        return false;
    }
    let ptr = INPUT_PTR.load(Ordering::Relaxed);
    let len = INPUT_LEN.load(Ordering::Relaxed);
    if !ptr.is_null() {
        // SAFETY: `check` publishes the slice it is running and clears it after.
        #[allow(unsafe_code)]
        let input = unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec();
        INPUT_PTR.store(std::ptr::null_mut(), Ordering::Relaxed);
        let name = TARGET_NAME.get().map_or("unknown", String::as_str);
        let dir = target_dir().join("fuzz-findings");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{name}-{:016x}", fnv(&input)));
        let _ = std::fs::write(&file, &input);
        eprintln!(
            "fuzz target {name}: asked for {size} bytes at once ({} bytes of input, saved as {}):\n{}",
            input.len(),
            file.display(),
            hex(&input)
        );
    }
    true
}

fn note_alloc(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one call of a target did wrong.
#[derive(Debug)]
enum Finding {
    Panic(String),
    Live(usize),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Panic(message) => write!(f, "panicked: {message}"),
            Finding::Live(bytes) => write!(f, "held {bytes} bytes"),
        }
    }
}

/// Runs `target` on `input`, measuring what it allocates.
fn check(target: fn(&[u8]), input: &[u8]) -> Result<(), Finding> {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    INPUT_LEN.store(input.len(), Ordering::Relaxed);
    INPUT_PTR.store(input.as_ptr().cast_mut(), Ordering::Relaxed);
    let outcome = std::panic::catch_unwind(|| target(input));
    INPUT_PTR.store(std::ptr::null_mut(), Ordering::Relaxed);
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        return Err(Finding::Panic(message));
    }
    let held = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    if held > LIVE_MAX {
        return Err(Finding::Live(held));
    }
    Ok(())
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, sorted by name; none if it does not exist.
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("read corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read corpus file");
            (p, bytes)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Saves a failing input and fails the test with it.
fn report(name: &str, origin: &str, input: &[u8], finding: Finding) -> ! {
    let _ = std::panic::take_hook();
    let dir = target_dir().join("fuzz-findings");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{name}-{:016x}", fnv(input)));
    let _ = std::fs::write(&file, input);
    panic!(
        "fuzz target {name}: {finding} on {origin} ({} bytes, saved as {}):\n{}",
        input.len(),
        file.display(),
        hex(input)
    );
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// xorshift64*: a fixed seed gives the same mutations on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Values that sit on the edges of length and count fields.
const INTERESTING: &[i64] = &[
    0,
    1,
    -1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    -0x8000_0000,
    i64::MAX,
    i64::MIN,
    16,
    61,
    64,
    1 << 20,
];

/// One to eight random changes to `input`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                out[at] = rng.next() as u8;
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                out.drain(at..at + n);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                let copy = out[at..at + n].to_vec();
                let to = rng.below(len + 1);
                out.splice(to..to, copy);
            }
            5 if len > 0 => {
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let width = [1, 2, 4, 8][rng.below(4)];
                let at = rng.below(len);
                let bytes = value.to_be_bytes();
                let bytes = &bytes[8 - width..];
                let n = bytes.len().min(len - at);
                out[at..at + n].copy_from_slice(&bytes[..n]);
            }
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => out.truncate(rng.below(len)),
            _ => {
                let at = rng.below(len + 1);
                out.insert(at, b"{}[]\",:\0\n"[rng.below(9)]);
            }
        }
    }
    out.truncate(INPUT_MAX);
    out
}

/// Targets whose mutations find a fault not fixed yet (listed in docs/FUZZING.md):
/// their seeds, corpus and regressions still run, their mutation phase does not, as it would
/// abort the test process within a second. Empty this list by fixing them.
const OPEN_FINDINGS: &[&str] = &[];

fn seconds() -> u64 {
    std::env::var("STRATO_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

fn fuzz(name: &str) {
    let _ = TARGET_NAME.set(name.to_string());
    let target = strato::fuzzing::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name} in strato::fuzzing::TARGETS"))
        .1;
    let seeds = strato::fuzzing::seeds(name);
    assert!(
        !seeds.is_empty(),
        "strato::fuzzing::seeds({name:?}) is empty"
    );
    // Where `cargo fuzz` finds them (scripts/fuzz.sh).
    let seed_dir = target_dir().join("fuzz-seeds").join(name);
    let _ = std::fs::create_dir_all(&seed_dir);
    for (i, seed) in seeds.iter().enumerate() {
        let _ = std::fs::write(seed_dir.join(format!("seed-{i}")), seed);
        if let Err(finding) = check(target, seed) {
            report(name, &format!("seed {i}"), seed, finding);
        }
    }
    let corpus = inputs(&repo().join("fuzz/corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{name}/ is empty or missing: the corpus is committed (docs/FUZZING.md)"
    );
    let regressions = inputs(&repo().join("fuzz/regressions").join(name));
    for (path, input) in corpus.iter().chain(&regressions) {
        if let Err(finding) = check(target, input) {
            report(name, &path.display().to_string(), input, finding);
        }
    }
    let seed = std::env::var("STRATO_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed ^ fnv(name.as_bytes()) | 1);
    let pool: Vec<&[u8]> = corpus
        .iter()
        .chain(&regressions)
        .map(|(_, b)| b.as_slice())
        .chain(seeds.iter().map(Vec::as_slice))
        .collect();
    // Third-party parsers that panic on some inputs are wrapped in catch_unwind by the
    // broker (a caught panic is an error, not a finding): keep their messages out of the
    // output. A finding is reported with its own message.
    std::panic::set_hook(Box::new(|_| {}));
    let budget = if OPEN_FINDINGS.contains(&name) {
        println!("fuzz target {name}: open finding (docs/FUZZING.md), no mutations");
        0
    } else {
        seconds()
    };
    let deadline = Instant::now() + Duration::from_secs(budget);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let (base, other) = (pool[rng.below(pool.len())], pool[rng.below(pool.len())]);
        let input = mutate(&mut rng, base, other);
        if let Err(finding) = check(target, &input) {
            report(
                name,
                &format!("mutation {runs} (seed {seed})"),
                &input,
                finding,
            );
        }
        runs += 1;
    }
    println!(
        "fuzz target {name}: {} corpus inputs, {} regressions, {} seeds, {runs} mutations",
        corpus.len(),
        regressions.len(),
        seeds.len()
    );
}

#[test]
fn fuzz_request_frame() {
    fuzz("request_frame");
}

#[test]
fn fuzz_record_batches() {
    fuzz("record_batches");
}

#[test]
fn fuzz_segment() {
    fuzz("segment");
}

#[test]
fn fuzz_metadata_record() {
    fuzz("metadata_record");
}

#[test]
fn fuzz_sasl_scram() {
    fuzz("sasl_scram");
}

#[test]
fn fuzz_sasl_plain() {
    fuzz("sasl_plain");
}

#[test]
fn fuzz_connection_frames() {
    fuzz("connection_frames");
}

#[test]
fn fuzz_schema() {
    fuzz("schema");
}

#[test]
fn every_target_is_fuzzed_here_and_has_a_cargo_fuzz_binary() {
    let here = include_str!("fuzz.rs");
    for (name, _) in strato::fuzzing::TARGETS {
        assert!(
            here.contains(&format!("fn fuzz_{name}()")),
            "tests/fuzz.rs has no fuzz_{name} test"
        );
        let binary = repo().join("fuzz/fuzz_targets").join(format!("{name}.rs"));
        assert!(binary.is_file(), "{} is missing", binary.display());
    }
}

#[test]
fn the_checker_catches_a_panic_and_a_huge_allocation() {
    fn panics(data: &[u8]) {
        assert!(data.is_empty(), "non-empty");
    }
    fn allocates(data: &[u8]) {
        // Under the single-allocation bound, over the live bound together.
        let held: Vec<Vec<u8>> = (0..data.len() * 5)
            .map(|_| vec![1u8; ALLOCATION_MAX - 1])
            .collect();
        std::hint::black_box(held);
    }
    assert!(check(panics, b"").is_ok());
    assert!(matches!(check(panics, b"x"), Err(Finding::Panic(m)) if m == "non-empty"));
    assert!(check(allocates, b"").is_ok());
    assert!(matches!(check(allocates, b"x"), Err(Finding::Live(_))));
}
