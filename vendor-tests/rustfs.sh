#!/usr/bin/env bash
# Usage: vendor-tests/rustfs.sh CMD [ARGS...]
#
# Runs CMD against a throw-away single-volume RustFS on 127.0.0.1, e.g.
#   vendor-tests/rustfs.sh cargo test --test conformance
# CMD sees S4_TEST_ENDPOINT, S4_TEST_REGION (us-east-1), S4_TEST_ACCESS_KEY, S4_TEST_SECRET_KEY,
# S4_TEST_BUCKET (exists) and S4_TEST_STORE=rustfs.
# Uses the `rustfs` binary at S4_RUSTFS_BIN, on PATH or in ~/.cargo/bin. It does not install
# one: building RustFS takes over 45 minutes (~1,100 crates), a newer rustc and protoc, so
# without it the script says how to get it and exits 77 (skipped).
# RustFS stops when this script exits (and in any case after S4_STORE_MAX_SECONDS, default 3600).
# Quiet on success; prints its log on failure. Exit code: CMD's, or 77.
set -euo pipefail
# shellcheck source=vendor-tests/lib.sh
. "$(dirname "$0")/lib.sh"

need_cmd "$@"
store_init rustfs

RUSTFS=${S4_RUSTFS_BIN:-$(command -v rustfs 2>/dev/null || echo "$HOME/.cargo/bin/rustfs")}
if [ ! -x "$RUSTFS" ]; then
    skip "no rustfs binary (looked at \$S4_RUSTFS_BIN, PATH, ~/.cargo/bin)" \
        "apt-get install protobuf-compiler; cargo install rustfs --locked (> 45 min, a recent rustc); or S4_RUSTFS_BIN=/path/to/rustfs"
fi

port=$(free_port)
mkdir -p "$tmp/data"
# No console (it would take a second port); logs to stdout, warnings only.
RUST_LOG=warn RUSTFS_OBS_LOGGER_LEVEL=warn RUSTFS_CONSOLE_ENABLE=false start_server "$RUSTFS" server \
    --address "127.0.0.1:$port" --access-key s4rustfsaccess --secret-key s4rustfssecretkey0123456789 "$tmp/data"
wait_http "$port" /health 600
export_store "http://127.0.0.1:$port" us-east-1 s4rustfsaccess s4rustfssecretkey0123456789 s4-test
create_bucket
run_cmd "$@"
