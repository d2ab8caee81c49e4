#!/usr/bin/env bash
# Usage: vendor-tests/garage.sh CMD [ARGS...]
#
# Runs CMD against a throw-away single-node Garage 2.5.0 on 127.0.0.1, e.g.
#   vendor-tests/garage.sh cargo test --test conformance
# CMD sees S4_TEST_ENDPOINT, S4_TEST_REGION, S4_TEST_ACCESS_KEY, S4_TEST_SECRET_KEY,
# S4_TEST_BUCKET (exists, key has read/write/owner) and S4_TEST_STORE=garage.
# Installs Garage with `cargo install garage --version 2.5.0 --locked` if it is missing (~9 min).
# Garage stops when this script exits (and in any case after S4_STORE_MAX_SECONDS, default 3600).
# Knobs: S4_GARAGE_DB_ENGINE (sqlite; benches use lmdb), S4_GARAGE_COMPRESSION (1; benches
# use none), S4_GARAGE_DIR (where the store keeps its data), S4_GARAGE_REGION (garage).
# Quiet on success; prints its log on failure. Exit code: CMD's.
set -euo pipefail

GARAGE_VERSION=2.5.0
REGION=${S4_GARAGE_REGION:-garage}        # Garage rejects signatures for any other region
ACCESS_KEY=GK5a4e5f0e2b1c3d4e5f6a7b8c    # Garage key IDs: "GK" + 24 hex digits
SECRET_KEY=5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b  # 64 hex digits
BUCKET=s4-test

# shellcheck source=vendor-tests/lib.sh
. "$(dirname "$0")/lib.sh"

need_cmd "$@"
store_init garage "${S4_GARAGE_DIR:-}"

# ---- find or install garage
find_garage() {
    local g
    for g in "$(command -v garage 2>/dev/null || true)" "$HOME/.cargo/bin/garage"; do
        if [ -n "$g" ] && [ -x "$g" ] && "$g" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
            echo "$g"
            return 0
        fi
    done
    return 1
}

GARAGE=$(find_garage) || GARAGE=""
if [ -z "$GARAGE" ]; then
    # One install at a time on this machine; also wait for one started by hand elsewhere.
    while pgrep -f "cargo install garage" >/dev/null 2>&1; do
        echo "garage.sh: waiting for a running 'cargo install garage'..." >&2
        sleep 20
    done
    GARAGE=$(find_garage) || GARAGE=""
    if [ -z "$GARAGE" ]; then
        echo "garage.sh: installing garage $GARAGE_VERSION (cargo install, ~9 min)..." >&2
        (
            command -v flock >/dev/null 2>&1 && exec 9>"${TMPDIR:-/tmp}/s4-garage-install.lock" && flock 9
            find_garage >/dev/null || cargo install garage --version "$GARAGE_VERSION" --locked
        ) >"$log" 2>&1 || fail "cargo install garage $GARAGE_VERSION failed"
        GARAGE=$(find_garage) || fail "garage $GARAGE_VERSION not found after install"
    fi
fi

# ---- config and start
rpc_port=$(free_port)
s3_port=$(free_port)
admin_port=$(free_port)
while [ "$s3_port" = "$rpc_port" ]; do s3_port=$(free_port); done
while [ "$admin_port" = "$rpc_port" ] || [ "$admin_port" = "$s3_port" ]; do admin_port=$(free_port); done
rpc_secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
admin_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

compression=${S4_GARAGE_COMPRESSION:-1}   # a zstd level, or none
case "$compression" in none) compression='"none"' ;; esac
cat >"$tmp/garage.toml" <<EOF
metadata_dir = "$tmp/meta"
data_dir = "$tmp/data"
db_engine = "${S4_GARAGE_DB_ENGINE:-sqlite}"
compression_level = $compression
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$rpc_secret"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$admin_token"
EOF

garage() { "$GARAGE" -c "$tmp/garage.toml" "$@"; }

RUST_LOG=${S4_GARAGE_LOG:-warn} start_server "$GARAGE" -c "$tmp/garage.toml" server

# Wait for the RPC side: `garage status` answers once the node serves RPC (`garage node id`
# alone is not enough: it reads the node key file, which exists before RPC listens).
node_id=""
for _ in $(seq 300); do
    kill -0 "$server_pid" 2>/dev/null || fail "garage server exited during start"
    if garage status >>"$log" 2>&1; then
        node_id=$(garage node id -q 2>>"$log") || node_id=""
        [ -n "$node_id" ] && break
    fi
    sleep 0.1
done
[ -n "$node_id" ] || fail "garage did not start in 30 s"
node_id=${node_id%%@*}

ok=0
for _ in $(seq 20); do
    if garage layout assign -z dc1 -c 1GB "$node_id" >>"$log" 2>&1 \
        && garage layout apply --version 1 >>"$log" 2>&1; then
        ok=1
        break
    fi
    sleep 0.5
done
[ "$ok" = 1 ] || fail "layout failed"

# Healthy once the layout is live (admin API /health answers 200).
for _ in $(seq 300); do
    [ "$(http_status "$admin_port" /health)" = 200 ] && break
    sleep 0.1
done
[ "$(http_status "$admin_port" /health)" = 200 ] || fail "garage not healthy after 30 s"

{
    garage key import --yes -n s4-test "$ACCESS_KEY" "$SECRET_KEY"
    garage key allow --create-bucket "$ACCESS_KEY"
    garage bucket create "$BUCKET"
    garage bucket allow --read --write --owner "$BUCKET" --key "$ACCESS_KEY"
} >>"$log" 2>&1 || fail "key/bucket setup failed"

# The S3 endpoint answers (403 to an anonymous request) once it serves.
wait_http "$s3_port" "/$BUCKET/" 100

export_store "http://127.0.0.1:$s3_port" "$REGION" "$ACCESS_KEY" "$SECRET_KEY" "$BUCKET"
# For the bench harness's cost columns: requests per S3 operation, and the store's CPU time.
export S4_BENCH_METRICS_URL="http://127.0.0.1:$admin_port/metrics"
store_pid=$(pgrep -P "$server_pid" -x garage 2>/dev/null | head -n 1 || true)   # server_pid is `timeout`
export S4_BENCH_STORE_PID="${store_pid:-$server_pid}"

run_cmd "$@"
