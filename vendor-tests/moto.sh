#!/usr/bin/env bash
# Usage: vendor-tests/moto.sh CMD [ARGS...]
#
# Runs CMD against a throw-away moto 5 S3 server on 127.0.0.1, e.g.
#   vendor-tests/moto.sh cargo test --test conformance
# CMD sees S4_TEST_ENDPOINT, S4_TEST_REGION (us-east-1), S4_TEST_ACCESS_KEY, S4_TEST_SECRET_KEY,
# S4_TEST_BUCKET (exists) and S4_TEST_STORE=moto.
# moto has versioning and conditional PUT but ACCEPTS ANY SIGNATURE: never the only store a
# suite runs against. Installs `moto[server]` with pip if missing.
# moto stops when this script exits (and in any case after S4_STORE_MAX_SECONDS, default 3600).
# Quiet on success; prints its log on failure. Exit code: CMD's.
set -euo pipefail

REGION=us-east-1
ACCESS_KEY=s4motoaccess
SECRET_KEY=s4motosecretkey0123456789
BUCKET=s4-test
MAX_SECONDS=${S4_STORE_MAX_SECONDS:-3600}

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/s4-moto.XXXXXX")
log="$tmp/setup.log"
server_pid=""

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "moto.sh: $*" >&2
    echo "---- $log" >&2
    cat "$log" >&2 || true
    echo "---- $tmp/moto.log (last 100 lines)" >&2
    tail -n 100 "$tmp/moto.log" >&2 2>/dev/null || true
    exit 1
}

command -v python3 >/dev/null 2>&1 || fail "python3 is required"

if ! python3 -c 'import moto.server, boto3' >/dev/null 2>&1; then
    { python3 -m pip install --quiet 'moto[server]>=5,<6' \
        || python3 -m pip install --quiet --break-system-packages 'moto[server]>=5,<6'; } >"$log" 2>&1 \
        || fail "pip install 'moto[server]' failed"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

timeout "$MAX_SECONDS" python3 -m moto.server -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 &
server_pid=$!

export S4_TEST_ENDPOINT="http://127.0.0.1:$port"
export S4_TEST_REGION="$REGION"
export S4_TEST_ACCESS_KEY="$ACCESS_KEY"
export S4_TEST_SECRET_KEY="$SECRET_KEY"
export S4_TEST_BUCKET="$BUCKET"
export S4_TEST_STORE=moto

# Wait until it serves, then create the bucket (boto3 comes with moto).
python3 - >>"$log" 2>&1 <<'EOF' || fail "moto did not start or the bucket could not be created"
import os, time, urllib.request
import boto3
from botocore.config import Config

ep = os.environ["S4_TEST_ENDPOINT"]
deadline = time.time() + 60
while True:
    try:
        urllib.request.urlopen(ep + "/moto-api/", timeout=2).read()
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
s3 = boto3.client(
    "s3",
    endpoint_url=ep,
    region_name=os.environ["S4_TEST_REGION"],
    aws_access_key_id=os.environ["S4_TEST_ACCESS_KEY"],
    aws_secret_access_key=os.environ["S4_TEST_SECRET_KEY"],
    config=Config(s3={"addressing_style": "path"}),
)
s3.create_bucket(Bucket=os.environ["S4_TEST_BUCKET"])
s3.head_bucket(Bucket=os.environ["S4_TEST_BUCKET"])
EOF

set +e
"$@"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "moto.sh: '$*' exited $rc; moto log (last 50 lines):" >&2
    tail -n 50 "$tmp/moto.log" >&2 || true
fi
exit "$rc"
