#!/usr/bin/env bash
# The soak (tests/soak.rs): three brokers on etcd and LocalStack under producers, a consumer
# group, retention, compaction, GC and a broker restart every few minutes, then checks of
# every acknowledged record and of etcd keys, bucket objects and RSS staying flat.
#
#   scripts/soak.sh                          30 minutes
#   STRATO_SOAK_MINUTES=240 scripts/soak.sh  four hours
#   STRATO_SOAK_RESTART_SECONDS=60           a restart every minute (default 180)
#
# It installs and starts what the tests need through scripts/test.sh (LocalStack, etcd),
# runs only the soak, and prints every sample (for docs/SOAK.md).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$repo_root/scripts/test.sh" --quick -- --profile soak --test soak --run-ignored only --no-capture
