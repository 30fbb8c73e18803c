#!/usr/bin/env bash
# Builds librdkafka's own test suite (its tests/test-runner) for tests/librdkafka_suite.rs,
# which runs the suite's transaction tests (0103, 0105, 0129) against a real Strato broker
# (issue 17). scripts/test.sh runs it during setup; it also runs on its own:
#
#   scripts/librdkafka-tests.sh            build or reuse the runner, print its path on stdout
#
# The source is the librdkafka release the `rdkafka` dev-dependency bundles: crate rdkafka-sys
# at its Cargo.lock version, under $CARGO_HOME/registry/src/*/rdkafka-sys-<version>/librdkafka
# (`cargo fetch` is run once if it is missing). It is copied to
# $STRATO_CACHE_DIR/librdkafka-<release>-tests/ and built there with mklove's ./configure
# (never --install-deps: nothing is downloaded; the system OpenSSL) and make. test.c's table
# refers to every test's main function, so the runner cannot be linked with only some tests:
# the whole runner is built once and cached. The build is skipped when the cached runner was
# built from the same recipe: a sha256 of the source files, the configure options and the
# compilers' versions. Each step's time goes to stderr, the runner's path to stdout.
#
# Environment (all optional):
#   STRATO_CACHE_DIR  where the build and its log live (default ~/.cache/strato)
#   CARGO_HOME        cargo's home, holding the registry sources (default ~/.cargo)
set -euo pipefail

case "${1:-}" in
    "") ;;
    -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${STRATO_CACHE_DIR:-$HOME/.cache/strato}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
mkdir -p "$cache_dir"

# mklove's configure options. Each library it would only "try" is named, so that the runner is
# the same on every machine, whatever -dev packages happen to be installed (the hash below
# covers these options, not the machine's packages).
configure_options=(
    # mklove's modules all ship with the source: never fetch one.
    --no-download
    # The system OpenSSL (libssl-dev, which scripts/test.sh installs); fail rather than
    # silently build without SSL.
    --enable-ssl
    # Cyrus libsasl2 (Kerberos), libcurl (OIDC) and libzstd are not installed by
    # scripts/test.sh, and the transaction tests need none of them.
    --disable-gssapi
    --disable-curl
    --disable-zstd
    # LZ4 (0103 produces lz4-compressed transactions): librdkafka's builtin copy.
    --disable-lz4-ext
)

step() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The rdkafka-sys version of Cargo.lock, e.g. 4.10.0+2.12.1 (librdkafka 2.12.1).
rdkafka_sys_version() {
    awk '/^name = "rdkafka-sys"$/ { getline; gsub(/^version = "|"$/, ""); print; exit }' \
        "$repo_root/Cargo.lock"
}

# The librdkafka source directory of rdkafka-sys VERSION in cargo's registry, if extracted.
find_source() { # find_source VERSION
    local dir
    for dir in "$cargo_home"/registry/src/*/"rdkafka-sys-$1"/librdkafka; do
        if [ -f "$dir/tests/test.c" ] && [ -x "$dir/configure" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

# The hash of everything the runner is built from: the source files (names and contents),
# the configure options and the first line of each compiler's --version.
build_hash() { # build_hash SOURCE-DIR
    {
        (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
        printf '%s\n' "${configure_options[@]}"
        cc --version | head -n 1
        c++ --version | head -n 1
    } | sha256sum | cut -d' ' -f1
}

# Runs COMMAND... in DIR with its output appended to the build log; on failure prints the
# log's tail and stops.
run_logged() { # run_logged WHAT DIR COMMAND...
    local what="$1" dir="$2" start=$SECONDS
    shift 2
    printf '\n### %s: %s\n' "$what" "$*" >>"$log"
    if ! (cd "$dir" && "$@") >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "$what failed (full log: $log)"
    fi
    note "$what: $((SECONDS - start)) s"
}

# Exits 0 when RUNNER loads librdkafka and librdkafka++ from its own build (DIR/src and
# DIR/src-cpp), never a system copy (Debian's librdkafka1 comes with kcat).
links_own_build() { # links_own_build RUNNER DIR
    local lib resolved
    for lib in src/librdkafka.so.1 src-cpp/librdkafka++.so.1; do
        resolved="$(ldd "$1" | awk -v l="${lib##*/}" '$1 == l { print $3 }')"
        [ -n "$resolved" ] && [ "$(realpath "$resolved")" = "$(realpath "$2/$lib")" ] || return 1
    done
}

for tool in cc c++ make ldd sha256sum; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found; ./scripts/test.sh --setup-only installs what the build needs (gcc, g++, make, libssl-dev)"
done

version="$(rdkafka_sys_version)"
[ -n "$version" ] || die "no rdkafka-sys in $repo_root/Cargo.lock: is the rdkafka dev-dependency gone?"
release="${version#*+}"
step "librdkafka $release test runner (rdkafka-sys $version)"

source_dir="$(find_source "$version")" || {
    note "rdkafka-sys-$version is not in $cargo_home/registry/src: running cargo fetch"
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$cargo_home/env" ]; then
        # shellcheck source=/dev/null
        . "$cargo_home/env"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from https://rustup.rs"
    (cd "$repo_root" && cargo fetch) >&2 ||
        die "cargo fetch failed; it needs network access once (or copy the crate's source into $cargo_home/registry/src)"
    source_dir="$(find_source "$version")" ||
        die "cargo fetch did not extract rdkafka-sys-$version/librdkafka into $cargo_home/registry/src/*/" \
            "(set CARGO_HOME to the cargo home that builds this repository)"
}
note "source: $source_dir"

build_root="$cache_dir/librdkafka-$release-tests"
runner="$build_root/librdkafka/tests/test-runner"
hash_file="$build_root/build.sha256"
log="$build_root/build.log"
mkdir -p "$build_root"

# Two runs at once (e.g. two worktrees) must not build into the same directory.
if command -v flock >/dev/null 2>&1; then
    exec 8>"$build_root.lock"
    flock 8
fi

hash="$(build_hash "$source_dir")"
if [ -x "$runner" ] && [ "$(cat "$hash_file" 2>/dev/null)" = "$hash" ]; then
    note "cached runner is up to date: $runner"
    printf '%s\n' "$runner"
    exit 0
fi

total_start=$SECONDS
new="$build_root/librdkafka.new"
rm -rf "$new" "$hash_file"
: >"$log"
note "building (log: $log)"
start=$SECONDS
cp -R "$source_dir" "$new"
chmod -R u+w "$new"
note "copy: $((SECONDS - start)) s"
run_logged configure "$new" ./configure "${configure_options[@]}"
jobs="$(nproc 2>/dev/null || echo 2)"
run_logged "make libs" "$new" make -j"$jobs" libs
# The runner finds librdkafka next to it ($ORIGIN is tests/) rather than a system copy, with
# no LD_LIBRARY_PATH. The tests' Makefile appends its own LDFLAGS to this one; `\$$` is `$`
# after make and then the shell.
run_logged "make test-runner" "$new/tests" \
    env LDFLAGS="-Wl,-rpath,\\\$\$ORIGIN/../src:\\\$\$ORIGIN/../src-cpp" make -j"$jobs" test-runner
links_own_build "$new/tests/test-runner" "$new" || {
    ldd "$new/tests/test-runner" >&2 || true
    die "the runner does not load librdkafka from $new (see ldd above)"
}
# Objects and static archives are three quarters of the tree (180 of 240 MB) and the runner
# needs neither: it loads the shared libraries.
find "$new" \( -name '*.o' -o -name '*.a' \) -delete
rm -rf "$build_root/librdkafka"
mv "$new" "$build_root/librdkafka"
links_own_build "$runner" "$build_root/librdkafka" || die "the moved runner does not load its own librdkafka"
printf '%s\n' "$hash" >"$hash_file"
note "built in $((SECONDS - total_start)) s: $runner"
printf '%s\n' "$runner"
