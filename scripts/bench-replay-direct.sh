#!/usr/bin/env bash
# Replay benchmark of issue 21: `strato replay` straight from the bucket against a consumer
# replaying the same data through a broker (`strato bench replay`), on etcd + an S3 endpoint.
#
#   cargo build --release && scripts/bench-replay-direct.sh
#
# Environment: STRATO (binary, default target/release/strato or $CARGO_TARGET_DIR's),
# S3 (endpoint, default http://127.0.0.1:14566: LocalStack as scripts/test.sh starts it),
# SIZE_MIB (1024), PARTITIONS (4), VALUE_BYTES (1000), COMPACT (1: compact the topic first).
# Needs etcd on PATH. Prints one JSON document: the broker's replay, one direct process, and
# two direct processes (--shard 0/2 and 1/2 at once), each with MB/s, records/s and GETs/GiB.
set -euo pipefail

target=${CARGO_TARGET_DIR:-target}
STRATO=${STRATO:-$target/release/strato}
S3=${S3:-http://127.0.0.1:14566}
SIZE_MIB=${SIZE_MIB:-1024}
PARTITIONS=${PARTITIONS:-4}
VALUE_BYTES=${VALUE_BYTES:-1000}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1}

work=$(mktemp -d)
etcd_pid=
cleanup() {
    [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
client=$(port)
peer=$(port)
etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" >"$work/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$client" endpoint health >/dev/null 2>&1 && break
    sleep 0.1
done
ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$client" endpoint health >/dev/null

bucket="strato-bench-replay-$(date +%s)-$$"
curl -sf -X PUT "$S3/$bucket" >/dev/null
meta="etcd://127.0.0.1:$client/bench"
store="s3://$bucket/c"
topic=strato-bench-replay
compact_flag=()
[ "${COMPACT:-0}" = 1 ] && compact_flag=(--compact)

# Write, restart the broker (empty cache), replay through it with a consumer.
"$STRATO" bench replay --size-mib "$SIZE_MIB" --partitions "$PARTITIONS" \
    --value-bytes "$VALUE_BYTES" --object-store "$store" --s3-endpoint "$S3" \
    --serve-arg="--metadata=$meta" --data-dir "$work/data" "${compact_flag[@]}" \
    --output json >"$work/broker.json"

direct=("$STRATO" replay "$topic" --metadata "$meta" --object-store "$store" --s3-endpoint "$S3"
    --count --progress false)
start=$(date +%s.%N)
"${direct[@]}" >"$work/one.json"
one_seconds=$(python3 -c "print($(date +%s.%N) - $start)")
start=$(date +%s.%N)
"${direct[@]}" --shard 0/2 >"$work/shard0.json" &
first=$!
"${direct[@]}" --shard 1/2 >"$work/shard1.json"
wait "$first"
two_seconds=$(python3 -c "print($(date +%s.%N) - $start)")

python3 - "$work" "$one_seconds" "$two_seconds" "$VALUE_BYTES" <<'PY'
import json, sys
work, one_s, two_s, value_bytes = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
broker = json.load(open(f"{work}/broker.json"))
one = json.load(open(f"{work}/one.json"))
shards = [json.load(open(f"{work}/shard{i}.json")) for i in (0, 1)]
gib = 1 << 30
def row(records, value, seconds, gets, get_bytes):
    return {
        "records": records, "seconds": round(seconds, 2),
        "value_mb_per_s": round(value / seconds / 1e6, 1),
        "records_per_s": round(records / seconds),
        "gets": gets, "gets_per_gib": round(gets / (value / gib), 1) if value else None,
        "get_bytes": get_bytes,
    }
r = broker["replay"]
# Values only (the direct count's bytes are keys plus values; the benchmark's keys are empty).
print(json.dumps({
    "size_mib": round(r["value_bytes"] / (1 << 20)),
    "partitions": broker["partitions"],
    "compacted": broker["compaction"] is not None,
    "consumer_through_broker": row(r["records"], r["value_bytes"], r["seconds"], r["object_store_gets"], r["object_store_get_bytes"]),
    "replay_one_process": row(one["records"], one["bytes"], one_s, one["cost"]["gets"], one["cost"]["get_bytes"]),
    "replay_two_shards": row(sum(s["records"] for s in shards), sum(s["bytes"] for s in shards), two_s,
                             sum(s["cost"]["gets"] for s in shards), sum(s["cost"]["get_bytes"] for s in shards)),
}, indent=2))
PY
