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
# shellcheck source=vendor-tests/lib.sh
. "$(dirname "$0")/lib.sh"

need_cmd "$@"
store_init moto
pip_install 'import moto.server, boto3' 'moto[server]>=5,<6'

port=$(free_port)
start_server python3 -m moto.server -H 127.0.0.1 -p "$port"
wait_http "$port" /moto-api/ 600
export_store "http://127.0.0.1:$port" us-east-1 s4motoaccess s4motosecretkey0123456789 s4-test
create_bucket
run_cmd "$@"
