#!/usr/bin/env bash
# Usage: vendor-tests/minio/minio.sh CMD [ARGS...]
#
# Runs CMD against a throw-away MinIO (vendor-tests/minio/compose.yaml) on 127.0.0.1, e.g.
#   vendor-tests/minio/minio.sh cargo test --test conformance
#   vendor-tests/minio/minio.sh benches/run.sh          # the benches, on MinIO
# CMD sees S4_TEST_ENDPOINT, S4_TEST_REGION (us-east-1), S4_TEST_ACCESS_KEY, S4_TEST_SECRET_KEY,
# S4_TEST_BUCKET (exists) and S4_TEST_STORE=minio.
# Needs docker compose, docker-compose, podman compose or podman-compose with a running engine;
# without one it says so and exits 77 (skipped). S4_MINIO_IMAGE picks another image.
# The container goes when this script exits (and in any case after S4_STORE_MAX_SECONDS,
# default 3600). Quiet on success; prints its log on failure. Exit code: CMD's, or 77.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=vendor-tests/lib.sh
. "$here/../lib.sh"

need_cmd "$@"
store_init minio

# The first compose whose engine answers.
compose=()
if docker info >/dev/null 2>&1; then
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        compose=(docker-compose)
    fi
fi
if [ "${#compose[@]}" -eq 0 ] && podman info >/dev/null 2>&1; then
    if podman compose version >/dev/null 2>&1; then
        compose=(podman compose)
    elif command -v podman-compose >/dev/null 2>&1; then
        compose=(podman-compose)
    fi
fi
if [ "${#compose[@]}" -eq 0 ]; then
    skip "no container engine with compose answers (docker info / podman info)" \
        "install Docker (with the compose plugin) or Podman (with podman-compose) and start it"
fi

# One project per run, so parallel runs do not share a container.
project="s4-minio-$$"
port=$(free_port)
dc() { S4_MINIO_PORT=$port "${compose[@]}" -f "$here/compose.yaml" -p "$project" "$@"; }

# shellcheck disable=SC2317  # called by cleanup
store_cleanup() {
    dc logs >"$server_log" 2>&1 || true
    dc down -v --remove-orphans >>"$log" 2>&1 || true
    # The watchdog has nothing left to do.
    if [ -n "${watchdog_pid:-}" ]; then
        pkill -P "$watchdog_pid" 2>/dev/null || true
        kill "$watchdog_pid" 2>/dev/null || true
    fi
}

dc up -d >>"$log" 2>&1 || fail "compose up failed"
# A container outlives a killed script: this watchdog takes it down after $MAX_SECONDS anyway.
(
    trap - EXIT
    sleep "$MAX_SECONDS"
    S4_MINIO_PORT=$port "${compose[@]}" -f "$here/compose.yaml" -p "$project" down -v >/dev/null 2>&1
) </dev/null >/dev/null 2>&1 &
watchdog_pid=$!

# MinIO's liveness probe answers 200 once it serves (the first pull of the image can take long).
for _ in $(seq 1200); do
    [ "$(http_status "$port" /minio/health/live)" = 200 ] && break
    sleep 0.5
done
[ "$(http_status "$port" /minio/health/live)" = 200 ] || fail "MinIO not live after 10 min"
export_store "http://127.0.0.1:$port" us-east-1 s4minioaccess s4miniosecretkey0123456789 s4-test
create_bucket
run_cmd "$@"
