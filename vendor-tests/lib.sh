# Shared shell of the vendor-tests store scripts (garage.sh, moto.sh, rclone.sh, rustfs.sh,
# minio/minio.sh): sourced, never run. A script calls `store_init NAME` first; then it has a temp
# dir ($tmp, removed at exit), a setup log ($log), and the helpers below.
# shellcheck shell=bash

# Exit code of a store that cannot run on this machine (autotools' and meson's "skipped").
# shellcheck disable=SC2034  # used by the scripts that source this file
SKIPPED=77

# store_init NAME [TMP-PARENT]: the temp dir, the EXIT/INT/TERM traps, and usage checks.
# Everything the store writes lives in $tmp; the server's own log is $server_log.
store_init() {
    STORE_NAME=$1
    MAX_SECONDS=${S4_STORE_MAX_SECONDS:-3600}
    tmp=$(mktemp -d "${2:-${TMPDIR:-/tmp}}/s4-$STORE_NAME.XXXXXX")
    log="$tmp/setup.log"
    server_log="$tmp/$STORE_NAME.log"
    server_pid=""
    : >"$log"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Stop the server (politely, then for sure) and drop its data. Scripts with more to undo
# (a compose project) define store_cleanup, which runs first.
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    if declare -F store_cleanup >/dev/null; then store_cleanup || true; fi
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}

fail() {
    echo "$STORE_NAME.sh: $*" >&2
    echo "---- $log" >&2
    cat "$log" >&2 || true
    echo "---- $server_log (last 100 lines)" >&2
    tail -n 100 "$server_log" >&2 2>/dev/null || true
    exit 1
}

# skip WHY HOW: this store cannot run here; say why and how to get it, and exit $SKIPPED.
skip() {
    echo "$STORE_NAME.sh: not available here: $1" >&2
    echo "$STORE_NAME.sh: to run it: $2" >&2
    exit "$SKIPPED"
}

need_cmd() {
    if [ "$#" -eq 0 ]; then
        echo "usage: $0 CMD [ARGS...]" >&2
        exit 2
    fi
}

# free_port [HOST]: a free TCP port on HOST (default 127.0.0.1; a cluster spreads its nodes
# over 127.0.0.x, one address each).
free_port() {
    local host=${1:-127.0.0.1}
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1]); s.close()' "$host"
    else
        local p
        while :; do
            p=$((20000 + RANDOM % 40000))
            (exec 3<>"/dev/tcp/$host/$p") 2>/dev/null || { echo "$p"; return; }
        done
    fi
}

# http_status PORT PATH [HOST]: HTTP status of GET http://HOST:PORT/PATH (HOST default
# 127.0.0.1), or 000 (bash only, no curl needed).
http_status() {
    local port=$1 path=$2 host=${3:-127.0.0.1} line
    line=$( (exec 3<>"/dev/tcp/$host/$port" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$path" "$host" "$port" >&3
        timeout 5 head -n 1 <&3) 2>/dev/null) || { echo 000; return; }
    line=${line#HTTP/* }
    echo "${line:0:3}"
}

# wait_http PORT PATH [TENTHS]: until anything answers HTTP there (any status; 30 s by default).
wait_http() {
    for _ in $(seq "${3:-300}"); do
        if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
            fail "the server exited during start"
        fi
        [ "$(http_status "$1" "$2")" != 000 ] && return 0
        sleep 0.1
    done
    fail "nothing answers HTTP on 127.0.0.1:$1 after $(( ${3:-300} / 10 )) s"
}

# start_server CMD [ARGS...]: run the store in the background, output to $server_log. `timeout`
# is the watchdog: the store dies after $MAX_SECONDS even if this script is killed with -9.
start_server() {
    timeout "$MAX_SECONDS" "$@" >"$server_log" 2>&1 &
    server_pid=$!
}

# pip_install IMPORT-CHECK SPEC: install SPEC with pip unless `python3 -c IMPORT-CHECK` works.
# Debian's python refuses plain pip installs (PEP 668), hence the second try.
pip_install() {
    command -v python3 >/dev/null 2>&1 || fail "python3 is required"
    python3 -c "$1" >/dev/null 2>&1 && return 0
    { python3 -m pip install --quiet "$2" \
        || python3 -m pip install --quiet --break-system-packages "$2"; } >>"$log" 2>&1 \
        || fail "pip install '$2' failed"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
    hash -r
}

# export_store ENDPOINT REGION ACCESS-KEY SECRET-KEY BUCKET: what the suites read (support/mod.rs).
export_store() {
    export S4_TEST_ENDPOINT=$1 S4_TEST_REGION=$2 S4_TEST_ACCESS_KEY=$3 S4_TEST_SECRET_KEY=$4 S4_TEST_BUCKET=$5
    export S4_TEST_STORE=$STORE_NAME
}

# create_bucket: a path-style PUT of $S4_TEST_BUCKET with boto3 (the suites need it to exist).
create_bucket() {
    pip_install 'import boto3' boto3
    python3 - >>"$log" 2>&1 <<'EOF' || fail "could not create bucket $S4_TEST_BUCKET"
import os, time
import boto3
from botocore.config import Config

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S4_TEST_ENDPOINT"],
    region_name=os.environ["S4_TEST_REGION"],
    aws_access_key_id=os.environ["S4_TEST_ACCESS_KEY"],
    aws_secret_access_key=os.environ["S4_TEST_SECRET_KEY"],
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}),
)
# A store may answer HTTP a moment before it takes writes.
for attempt in range(50):
    try:
        s3.create_bucket(Bucket=os.environ["S4_TEST_BUCKET"])
        break
    except Exception as e:
        if attempt == 49:
            raise
        time.sleep(0.2)
s3.head_bucket(Bucket=os.environ["S4_TEST_BUCKET"])
EOF
}

# run_cmd CMD [ARGS...]: run the command against the store, show the store's log if it fails,
# and exit with its code.
run_cmd() {
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "$STORE_NAME.sh: '$*' exited $rc; $STORE_NAME log (last 50 lines):" >&2
        tail -n 50 "$server_log" >&2 2>/dev/null || true
    fi
    exit "$rc"
}
