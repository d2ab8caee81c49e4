#!/usr/bin/env bash
# Usage: vendor-tests/garage-cluster.sh CMD [ARGS...]
#
# Runs CMD against a throw-away 3-node Garage 2.5.0 cluster, replication factor 3, one node per
# loopback address (127.0.0.2, .3, .4), e.g.
#   vendor-tests/garage-cluster.sh cargo test --release --test cluster -- --nocapture
# CMD sees what garage.sh gives (S4_TEST_ENDPOINT is node 1's S3 API, S4_TEST_STORE=garage-cluster),
# and for node-loss tests:
#   S4_CLUSTER_DIR        the cluster's temp dir; node N's garage PID is in $S4_CLUSTER_DIR/nN.pid
#   S4_CLUSTER_ENDPOINTS  the three S3 endpoints, node 1 first, space-separated
#   $S4_CLUSTER_DIR/node start N   (re)starts node N (after a kill); its data dir is kept
#   $S4_CLUSTER_DIR/node wait N    waits (30 s at most) until node N answers /health again
# Garage must be installed (vendor-tests/garage.sh installs it). Every node stops when this
# script exits, and in any case S4_STORE_MAX_SECONDS (default 3600) after it started, restarted
# nodes included. Quiet on success; prints its log on failure. Exit code: CMD's.
set -euo pipefail

GARAGE_VERSION=2.5.0
REGION=garage
ACCESS_KEY=GK5a4e5f0e2b1c3d4e5f6a7b8c
SECRET_KEY=5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b
BUCKET=s4-test
NODES=(1 2 3)

# shellcheck source=vendor-tests/lib.sh
. "$(dirname "$0")/lib.sh"

need_cmd "$@"
store_init garage-cluster

GARAGE=""
for g in "$(command -v garage 2>/dev/null || true)" "$HOME/.cargo/bin/garage"; do
    if [ -n "$g" ] && [ -x "$g" ] && "$g" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
        GARAGE=$g
        break
    fi
done
[ -n "$GARAGE" ] || skip "garage $GARAGE_VERSION is not installed" \
    "vendor-tests/garage.sh true   (installs it: cargo install garage --version $GARAGE_VERSION --locked)"

# Node N listens on 127.0.0.(N+1): its own RPC, S3 and admin ports, its own data. The nodes
# share the RPC secret, which is what lets them join one cluster.
rpc_secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
admin_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
declare -A host rpc s3 admin
for n in "${NODES[@]}"; do
    host[$n]=127.0.0.$((n + 1))
    rpc[$n]=$(free_port "${host[$n]}")
    s3[$n]=$(free_port "${host[$n]}")
    while [ "${s3[$n]}" = "${rpc[$n]}" ]; do s3[$n]=$(free_port "${host[$n]}"); done
    admin[$n]=$(free_port "${host[$n]}")
    while [ "${admin[$n]}" = "${rpc[$n]}" ] || [ "${admin[$n]}" = "${s3[$n]}" ]; do
        admin[$n]=$(free_port "${host[$n]}")
    done
    cat >"$tmp/n$n.toml" <<EOF
metadata_dir = "$tmp/n$n/meta"
data_dir = "$tmp/n$n/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "${host[$n]}:${rpc[$n]}"
rpc_public_addr = "${host[$n]}:${rpc[$n]}"
rpc_secret = "$rpc_secret"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "${host[$n]}:${s3[$n]}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "${host[$n]}:${admin[$n]}"
admin_token = "$admin_token"
EOF
done

# The node control the test drives: a node killed with SIGKILL comes back with `node start N`.
# Each garage runs under `timeout` until the cluster's deadline, so a node restarted by a test
# also stops by itself even if nobody is left to stop it.
deadline=$(($(date +%s) + MAX_SECONDS))
cat >"$tmp/node" <<EOF
#!/usr/bin/env bash
# node start N | node wait N: see vendor-tests/garage-cluster.sh.
set -eu
dir=$tmp
n=\$2
case \$1 in
    start)
        left=\$(($deadline - \$(date +%s)))
        [ "\$left" -gt 0 ] || { echo "node: the cluster's time is up" >&2; exit 1; }
        RUST_LOG=\${S4_GARAGE_LOG:-warn} timeout "\$left" "$GARAGE" -c "\$dir/n\$n.toml" server \\
            >>"\$dir/garage-n\$n.log" 2>&1 </dev/null &
        watchdog=\$!
        echo "\$watchdog" >"\$dir/n\$n.watchdog"
        for _ in \$(seq 200); do
            pid=\$(pgrep -P "\$watchdog" -x garage 2>/dev/null | head -n 1) && [ -n "\$pid" ] && break
            sleep 0.05
        done
        [ -n "\${pid:-}" ] || { echo "node: garage \$n did not start" >&2; exit 1; }
        echo "\$pid" >"\$dir/n\$n.pid"
        ;;
    wait)
        for _ in \$(seq 300); do
            "$GARAGE" -c "\$dir/n\$n.toml" status >/dev/null 2>&1 && exit 0
            sleep 0.1
        done
        echo "node: garage \$n not back after 30 s" >&2
        exit 1
        ;;
    *) echo "usage: node start|wait N" >&2; exit 2 ;;
esac
EOF
chmod +x "$tmp/node"

# shellcheck disable=SC2317  # called through the EXIT trap (lib.sh's cleanup)
store_cleanup() {
    local n pid
    for n in "${NODES[@]}"; do
        for pid in $(cat "$tmp/n$n.pid" "$tmp/n$n.watchdog" 2>/dev/null); do
            kill "$pid" 2>/dev/null || true
        done
    done
    for n in "${NODES[@]}"; do
        for pid in $(cat "$tmp/n$n.pid" "$tmp/n$n.watchdog" 2>/dev/null); do
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        done
    done
    cat "$tmp"/garage-n*.log >"$server_log" 2>/dev/null || true
}

garage() { local n=$1; shift; "$GARAGE" -c "$tmp/n$n.toml" "$@"; }

for n in "${NODES[@]}"; do
    "$tmp/node" start "$n" >>"$log" 2>&1 || fail "node $n did not start"
done

declare -A id
for n in "${NODES[@]}"; do
    for _ in $(seq 300); do
        if garage "$n" status >>"$log" 2>&1; then
            id[$n]=$(garage "$n" node id -q 2>>"$log") || id[$n]=""
            [ -n "${id[$n]}" ] && break
        fi
        sleep 0.1
    done
    [ -n "${id[$n]:-}" ] || fail "garage node $n did not start in 30 s"
    id[$n]=${id[$n]%%@*}
done

# Node 1 introduces the others; the cluster gossips the rest.
for n in 2 3; do
    ok=0
    for _ in $(seq 50); do
        garage 1 node connect "${id[$n]}@${host[$n]}:${rpc[$n]}" >>"$log" 2>&1 && { ok=1; break; }
        sleep 0.2
    done
    [ "$ok" = 1 ] || fail "node 1 could not connect to node $n"
done

# One zone per node: with replication factor 3, each partition lives on all three.
ok=0
for _ in $(seq 20); do
    if garage 1 layout assign -z z1 -c 1GB "${id[1]}" >>"$log" 2>&1 \
        && garage 1 layout assign -z z2 -c 1GB "${id[2]}" >>"$log" 2>&1 \
        && garage 1 layout assign -z z3 -c 1GB "${id[3]}" >>"$log" 2>&1 \
        && garage 1 layout apply --version 1 >>"$log" 2>&1; then
        ok=1
        break
    fi
    sleep 0.5
done
[ "$ok" = 1 ] || fail "layout failed"

for n in "${NODES[@]}"; do
    for _ in $(seq 300); do
        [ "$(http_status "${admin[$n]}" /health "${host[$n]}")" = 200 ] && break
        sleep 0.1
    done
    [ "$(http_status "${admin[$n]}" /health "${host[$n]}")" = 200 ] || fail "node $n not healthy after 30 s"
done

{
    garage 1 key import --yes -n s4-test "$ACCESS_KEY" "$SECRET_KEY"
    garage 1 key allow --create-bucket "$ACCESS_KEY"
    garage 1 bucket create "$BUCKET"
    garage 1 bucket allow --read --write --owner "$BUCKET" --key "$ACCESS_KEY"
} >>"$log" 2>&1 || fail "key/bucket setup failed"

# Every node's S3 API answers once it serves (403 to an anonymous request), and knows the
# bucket (404 NoSuchBucket until the bucket table reached it).
for n in "${NODES[@]}"; do
    for _ in $(seq 300); do
        case $(http_status "${s3[$n]}" "/$BUCKET/" "${host[$n]}") in 000 | 404) sleep 0.1 ;; *) break ;; esac
    done
done

export_store "http://${host[1]}:${s3[1]}" "$REGION" "$ACCESS_KEY" "$SECRET_KEY" "$BUCKET"
export S4_CLUSTER_DIR=$tmp
export S4_CLUSTER_ENDPOINTS="http://${host[1]}:${s3[1]} http://${host[2]}:${s3[2]} http://${host[3]}:${s3[3]}"

run_cmd "$@"
