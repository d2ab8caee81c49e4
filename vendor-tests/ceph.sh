#!/usr/bin/env bash
# Usage: vendor-tests/ceph.sh CMD [ARGS...]
#
# Runs CMD against a throw-away single-node Ceph 16.2 (pacific) RADOS Gateway on 127.0.0.1, e.g.
#   vendor-tests/ceph.sh cargo test --test conformance
# CMD sees S4_TEST_ENDPOINT, S4_TEST_REGION (us-east-1), S4_TEST_ACCESS_KEY, S4_TEST_SECRET_KEY,
# S4_TEST_BUCKET (exists, empty) and S4_TEST_STORE=ceph.
# The cluster: one ceph-mon, one ceph-osd on `memstore` (objects in RAM, nothing on disk), no mgr,
# and radosgw (beast frontend). Config, data, logs, sockets all live in a temp dir: nothing in
# /etc/ceph or /var/lib/ceph. Installs Debian's ceph-mon, ceph-osd and radosgw when missing.
# RGW verifies SigV4, has versioning, and URL-encodes '/' in listed keys (`s4test%2Ff1.txt`).
# Everything stops when this script exits (and in any case after S4_STORE_MAX_SECONDS, default
# 3600). Quiet on success; prints its logs on failure. Exit code: CMD's.
# S4_CEPH_MEMSTORE_BYTES: the OSD's RAM for objects (default 2 GiB; a full store hangs writers,
# so benches/run.sh asks for more).
set -euo pipefail

REGION=us-east-1                 # RGW's default zonegroup accepts signatures for any region
ACCESS_KEY=s4cephaccess
SECRET_KEY=s4cephsecretkey0123456789
BUCKET=s4-test

# shellcheck source=vendor-tests/lib.sh
. "$(dirname "$0")/lib.sh"

need_cmd "$@"
store_init ceph

# ---- install (Debian packages; one apt at a time on this machine)
need_install() {
    local c
    for c in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph; do
        command -v "$c" >/dev/null 2>&1 || return 0
    done
    return 1
}
if need_install; then
    as_root() {
        if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
    }
    command -v apt-get >/dev/null 2>&1 \
        || skip "ceph-mon, ceph-osd or radosgw is missing and there is no apt-get" \
            "install Ceph 16.2+ (ceph-mon ceph-osd radosgw) from your distribution"
    [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null \
        || skip "ceph-mon, ceph-osd or radosgw is missing and apt-get needs root (no password-less sudo)" \
            "sudo apt-get install --no-install-recommends ceph-mon ceph-osd radosgw"
    # dpkg takes one apt at a time: wait for another one (by hand, CI, unattended-upgrades).
    while pgrep -x apt-get >/dev/null 2>&1 || pgrep -x dpkg >/dev/null 2>&1; do
        echo "ceph.sh: waiting for a running apt-get/dpkg..." >&2
        sleep 10
    done
    if need_install; then
        echo "ceph.sh: installing ceph-mon ceph-osd radosgw (apt-get, ~2 min)..." >&2
        {
            as_root apt-get update -qq \
                && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                    ceph-mon ceph-osd radosgw
        } >>"$log" 2>&1 || fail "apt-get install ceph-mon ceph-osd radosgw failed"
        ! need_install || fail "ceph-mon, ceph-osd or radosgw still missing after apt-get install"
    fi
fi

# ---- config: everything under $tmp
mon_port=$(free_port)
rgw_port=$(free_port)
while [ "$rgw_port" = "$mon_port" ]; do rgw_port=$(free_port); done
fsid=$(cat /proc/sys/kernel/random/uuid)
conf="$tmp/ceph.conf"
mkdir -p "$tmp/mon/ceph-a" "$tmp/osd/ceph-0" "$tmp/run" "$tmp/log" "$tmp/rgw"
cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
public addr = 127.0.0.1
; no cephx: a throw-away cluster on loopback, and no keyrings to hand around
auth cluster required = none
auth service required = none
auth client required = none
keyring = /dev/null
; one OSD: pools of one replica, no complaints about it
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
; the OSD would place itself in the CRUSH map with commands it sometimes sends before it
; knows the fsid ('wrong fsid', then it exits): the script places it instead
osd crush update on start = false
osd class update on start = false
; a mon commits map changes at once, not in 1 s batches (RGW's first start creates ~8 pools)
paxos propose interval = 0.01
paxos min wait = 0.01
; objects in RAM: fast start, nothing to clean on disk
osd objectstore = memstore
memstore device bytes = ${S4_CEPH_MEMSTORE_BYTES:-2147483648}
run dir = $tmp/run
admin socket = $tmp/run/\$name.asok
pid file = $tmp/run/\$name.pid
log file = $tmp/log/\$name.log
mon data = $tmp/mon/\$cluster-\$id
osd data = $tmp/osd/\$cluster-\$id
crash dir = $tmp/crash
exporter sock dir = $tmp/run
mon cluster log file = $tmp/log/cluster.log
log to stderr = false
err to stderr = true

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $tmp/rgw
; radosgw's log is lib.sh's \$server_log (its stderr): what run_cmd shows when CMD fails
log file = /dev/null
log to stderr = true
EOF
export CEPH_CONF="$conf"

# Every daemon runs in the foreground (-f) under `timeout`, the watchdog that ends it after
# $MAX_SECONDS even if this script is killed with -9. store_cleanup (run by lib.sh's cleanup
# before anything else) stops them gateway first: a radosgw whose cluster is already gone
# hangs in its shutdown, and a `timeout` killed with -9 would leave it running.
mon_pid=""
osd_pid=""
# stop_daemon PID: TERM to the watchdog (it passes it on), then -9 to the daemon and the watchdog.
stop_daemon() {
    local p=$1 child
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
    child=$(pgrep -P "$p" 2>/dev/null || true)
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    # shellcheck disable=SC2086  # $child: zero or one PID
    kill -9 $child "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
# shellcheck disable=SC2317  # called from lib.sh's cleanup
store_cleanup() {
    stop_daemon "$server_pid"
    stop_daemon "$osd_pid"
    stop_daemon "$mon_pid"
}
# The setup failed: show the daemons' own logs too (lib.sh's fail shows $log and $server_log).
ceph_fail() {
    local f
    for f in "$tmp"/log/*.log "$tmp"/log/*.out; do
        [ -s "$f" ] || continue
        { echo "---- $f (last 40 lines)"; tail -n 40 "$f"; } >>"$log"
    done
    fail "$@"
}

# ---- mon
monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$tmp/monmap" >>"$log" 2>&1 \
    || ceph_fail "monmaptool failed"
ceph-mon --mkfs -i a --monmap "$tmp/monmap" >>"$log" 2>&1 || ceph_fail "ceph-mon --mkfs failed"
timeout "$MAX_SECONDS" ceph-mon -f -i a >"$tmp/log/mon.out" 2>&1 &
mon_pid=$!

# `ceph` (the CLI) talks to the mon; every call bounded, since a mon not yet up makes it hang.
ceph_cli() { timeout 20 ceph --connect-timeout 10 "$@"; }
ok=0
for _ in $(seq 100); do
    kill -0 "$mon_pid" 2>/dev/null || ceph_fail "ceph-mon exited during start"
    if ceph_cli mon stat >>"$log" 2>&1; then ok=1; break; fi
    sleep 0.2
done
[ "$ok" = 1 ] || ceph_fail "ceph-mon does not answer after 20 s"

# ---- osd
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
osd_id=$(ceph_cli osd new "$osd_uuid" 2>>"$log") || ceph_fail "ceph osd new failed"
ceph_cli osd crush add "osd.$osd_id" 1 root=default >>"$log" 2>&1 || ceph_fail "ceph osd crush add failed"
ceph-osd -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$log" 2>&1 || ceph_fail "ceph-osd --mkfs failed"
timeout "$MAX_SECONDS" ceph-osd -f -i "$osd_id" >"$tmp/log/osd.out" 2>&1 &
osd_pid=$!
ok=0
for _ in $(seq 150); do
    kill -0 "$osd_pid" 2>/dev/null || ceph_fail "ceph-osd exited during start"
    if ceph_cli osd stat 2>>"$log" | grep -q '1 up'; then ok=1; break; fi
    sleep 0.2
done
[ "$ok" = 1 ] || ceph_fail "ceph-osd is not up after 30 s"

# ---- the S3 user, BEFORE radosgw starts: one made while radosgw starts is refused (403).
timeout 120 radosgw-admin -n client.rgw user create --uid s4-test --display-name "s4 test" \
    --access-key "$ACCESS_KEY" --secret "$SECRET_KEY" >>"$log" 2>&1 \
    || ceph_fail "radosgw-admin user create failed"

# ---- radosgw
start_server radosgw -f -n client.rgw
# RGW answers an anonymous GET / (200, an empty bucket list) once it serves.
wait_http "$rgw_port" / 300

export_store "http://127.0.0.1:$rgw_port" "$REGION" "$ACCESS_KEY" "$SECRET_KEY" "$BUCKET"
create_bucket
# For benches/: the store's CPU is all three daemons' (each pid here is its `timeout`'s).
export S4_BENCH_STORE_PID=$(for p in "$server_pid" "$osd_pid" "$mon_pid"; do pgrep -P "$p" | head -n 1; done | paste -sd,)
run_cmd "$@"
