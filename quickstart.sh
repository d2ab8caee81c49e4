#!/usr/bin/env bash
# s4 quickstart: build s4, start a local S3 store on 127.0.0.1, add two targets (a "laptop"
# and a "desktop" folder on one S3 prefix), and sync a change from one to the other.
# Everything lives in a temp dir and stops by itself; your own ~/.config/s4 is not touched.
set -euo pipefail
cd "$(dirname "$0")"

if ! [ -e /usr/include/magic.h ]; then
    echo "s4 needs libmagic: sudo apt-get install libmagic-dev" >&2
    exit 2
fi
echo "==> building s4 and the local store (first time: a few minutes)"
cargo build --quiet --bin s4 --example local_store
s4=$PWD/target/debug/s4

work=$(mktemp -d)
target/debug/examples/local_store --seconds 900 > "$work/store.env" &
store_pid=$!
trap 'kill "$store_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# A loaded machine can take a while to start it: wait up to a minute, and say so if it never came.
for _ in $(seq 600); do
    grep -q SECRET "$work/store.env" 2>/dev/null && break
    kill -0 "$store_pid" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q SECRET "$work/store.env" 2>/dev/null; then
    echo "the local store did not start (target/debug/examples/local_store); run it by hand to see why" >&2
    exit 1
fi
# shellcheck disable=SC1091
source "$work/store.env"
echo "==> local S3 store at $S4_STORE_ENDPOINT, bucket $S4_STORE_BUCKET"

export S4_CONFIG=$work/sync.conf
mkdir -p "$work/laptop/notes" "$work/desktop"
echo "hello from the laptop" > "$work/laptop/hello.txt"
echo "- buy milk" > "$work/laptop/notes/todo.md"
printf '*.tmp\n' > "$work/laptop/.syncignore"
echo "scratch" > "$work/laptop/ignored.tmp"

for machine in laptop desktop; do
    echo "$S4_STORE_SECRET_KEY" | "$s4" add --name "$machine" --local-folder "$work/$machine" \
        --s3-uri "s3://$S4_STORE_BUCKET/quickstart" --endpoint-url "$S4_STORE_ENDPOINT" \
        --region "$S4_STORE_REGION" --access-key-id "$S4_STORE_ACCESS_KEY" --secret-access-key-stdin
done
echo "==> s4 targets"
"$s4" targets
echo "==> s4 sync laptop (uploads)"
"$s4" sync laptop
echo "==> s4 sync desktop (downloads)"
"$s4" sync desktop
echo "==> the desktop now has:"
(cd "$work/desktop" && find . -type f ! -name .index | sort)
echo "- call mum" >> "$work/desktop/notes/todo.md"
touch -d '+2 seconds' "$work/desktop/notes/todo.md"
echo "==> edit on the desktop, then s4 sync (all targets)"
"$s4" sync
echo "==> the laptop's todo.md:"
cat "$work/laptop/notes/todo.md"
echo "==> s4 ls laptop"
"$s4" ls laptop
echo "==> a second sync has nothing to do"
"$s4" sync
