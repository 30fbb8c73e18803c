#!/usr/bin/env bash
# Coverage-guided fuzzing of strato::fuzzing's targets with cargo-fuzz (libFuzzer), on the
# nightly toolchain; grows the committed corpus in fuzz/corpus/<target>/ (docs/FUZZING.md).
# The test command does not need this: tests/fuzz.rs runs the same targets on stable.
#
#   scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]     (default 60 s, every target)
#
# Needs `rustup toolchain list` to show a nightly and `cargo install cargo-fuzz` (done here
# when missing). A crash stops the run; its input is in fuzz/artifacts/<target>/: fix it,
# then copy the input to fuzz/regressions/<target>/ so tests/fuzz.rs replays it forever.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^strato-fuzz$')
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "scripts/fuzz.sh: no nightly toolchain (rustup toolchain list); tests/fuzz.rs runs the targets on stable" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/strato-target}"
# The seeds (valid inputs built by strato::fuzzing::seeds) land in $target_dir/fuzz-seeds.
echo "==> writing seeds (tests/fuzz.rs with no mutation time)"
STRATO_FUZZ_SECONDS=0 CARGO_TARGET_DIR="$target_dir" cargo test --quiet --test fuzz >/dev/null

for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    seeds="$target_dir/fuzz-seeds/$target"
    mkdir -p "$corpus"
    echo "==> $target: ${seconds} s"
    # -rss_limit_mb and -malloc_limit_mb: an input that makes a decoder hold or ask for
    # this much is a finding. One allocation may reach 128 MiB by design: a zstd frame's
    # window (docs/FUZZING.md, "zstd windows"), so the single-allocation limit sits above
    # it. -max_len: inputs stay small.
    cargo +nightly fuzz run "$target" "$corpus" "$seeds" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024 -malloc_limit_mb=160 \
        -print_final_stats=1
    echo "==> $target: minimising the corpus"
    cargo +nightly fuzz cmin "$target" "$corpus" -- -max_len=65536 >/dev/null
done
