#!/usr/bin/env bash
# Usage: vendor-tests/static.sh
#
# The static binary's proof (a step of .ci/run): builds `--target x86_64-unknown-linux-musl`,
# checks that it is static and at most 15 MB stripped, then syncs with it inside an empty root,
# a folder that holds only the stripped binary and the data, entered with chroot (no libc, no
# /etc, no CA files, no magic database, no /proc), against a throw-away Garage
# (vendor-tests/garage.sh), with keys, endpoint and region from the environment only, as a
# container runs it. One folder goes up, a second target brings it down into another folder,
# and the two must match; a PNG without an extension must arrive as image/png (the embedded
# magic database at work). Needs root, or unprivileged user namespaces, for chroot.
# S4_STATIC_STORE=moto (or rclone, ...: a vendor-tests/STORE.sh) runs it against another store.
set -euo pipefail

cd "$(dirname "$0")/.."
triple=x86_64-unknown-linux-musl
max_bytes=$((15 * 1000 * 1000))

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else "$@"; fi
}

# What the README's set-up does by hand: musl-gcc, dpkg-source, and a deb-src entry for
# `apt-get source file`. Not needed once target/libmagic-musl is built (CI caches target/).
install_deps() {
    rustup target list --installed 2>/dev/null | grep -qx "$triple" || rustup target add "$triple"
    [ -e target/libmagic-musl/VERSION ] && return 0
    local pkgs=()
    command -v musl-gcc >/dev/null || pkgs+=(musl-tools)
    command -v dpkg-source >/dev/null || pkgs+=(dpkg-dev)
    if ! apt-get indextargets --format '$(IDENTIFIER)' 2>/dev/null | grep -qx Sources; then
        echo "static.sh: adding a deb-src entry like the system's deb ones, for apt-get source"
        if [ -e /etc/apt/sources.list.d/debian.sources ]; then
            sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
                | as_root tee /etc/apt/sources.list.d/s4-deb-src.sources >/dev/null
        else
            sed -n 's/^deb /deb-src /p' /etc/apt/sources.list | as_root tee /etc/apt/sources.list.d/s4-deb-src.list >/dev/null
        fi
        as_root apt-get update -qq
    fi
    if [ "${#pkgs[@]}" -gt 0 ]; then
        echo "static.sh: installing ${pkgs[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
    fi
}

if [ "${1:-}" != --in-store ]; then
    install_deps
    t0=$SECONDS
    cargo build --release --target "$triple" --bin s4
    echo "static.sh: musl release build: $((SECONDS - t0)) s (libmagic: $(cat target/libmagic-musl/VERSION 2>/dev/null || echo '?'))"
    bin=target/$triple/release/s4
    stripped=target/$triple/release/s4.stripped
    strip -o "$stripped" "$bin"
    echo "static.sh: $(file -b "$stripped")"
    echo "static.sh: ldd: $(ldd "$stripped" 2>&1 || true)"
    size=$(stat -c %s "$stripped")
    echo "static.sh: stripped size $size bytes ($((size / 1000)) kB; at most $max_bytes)"
    file -b "$stripped" | grep -Eq 'static(-pie)? linked|statically linked' || { echo "static.sh: not a static binary" >&2; exit 1; }
    [ "$size" -le "$max_bytes" ] || { echo "static.sh: the stripped binary is over 15 MB" >&2; exit 1; }
    exec "vendor-tests/${S4_STATIC_STORE:-garage}.sh" "$PWD/vendor-tests/static.sh" --in-store "$PWD/$stripped"
fi

# ---- inside garage.sh: S4_TEST_ENDPOINT, _REGION, _ACCESS_KEY, _SECRET_KEY, _BUCKET are set.
bin=$2
root=$(mktemp -d "${TMPDIR:-/tmp}/s4-empty-root.XXXXXX")
trap 'rm -rf "$root"' EXIT
cp "$bin" "$root/s4"
mkdir -p "$root/data/up/docs/deep" "$root/data/down"
printf 'hello from an empty root\n' >"$root/data/up/hello.txt"
printf 'a space, a plus + and unicode\n' >"$root/data/up/docs/ünï cödé + more.md"
head -c 300000 /dev/urandom >"$root/data/up/docs/deep/random.bin"
# A PNG with no extension: only libmagic can name it.
printf '\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde' >"$root/data/up/picture"
: >"$root/data/up/empty"

# Full paths: `env -i` below leaves no PATH to find them by.
chroot=$(command -v chroot || echo /usr/sbin/chroot)
if [ "$(id -u)" -eq 0 ]; then
    enter=("$chroot" "$root")
else
    enter=("$(command -v unshare)" --user --map-root-user "$chroot" "$root")
fi
prefix="static-$$-$RANDOM"

# Nothing from this machine's environment but what a container would be given.
s4() {
    env -i S4_CONFIG=/data/sync.conf \
        AWS_ACCESS_KEY_ID="$S4_TEST_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S4_TEST_SECRET_KEY" \
        AWS_ENDPOINT_URL="$S4_TEST_ENDPOINT" AWS_REGION="$S4_TEST_REGION" \
        "${enter[@]}" /s4 --no-colors "$@"
}

echo "static.sh: the empty root: $(cd "$root" && find . -maxdepth 2 | sort | tr '\n' ' ')"
s4 version
s4 add --name up --local-folder /data/up --s3-uri "s3://$S4_TEST_BUCKET/$prefix"
s4 add --name down --local-folder /data/down --s3-uri "s3://$S4_TEST_BUCKET/$prefix"
echo "--- s4 sync up"
s4 sync up
echo "--- s4 sync down"
s4 sync down

# s4's own files (.index, .s4lock) differ between the two folders by design.
diff -r -x .index -x .s4lock -x '.s4tmp-*' "$root/data/up" "$root/data/down"
echo "static.sh: /data/down matches /data/up ($(find "$root/data/down" -type f ! -name '.*' | wc -l) files)"

# The Content-Type the store got, read with an independent client.
if command -v curl >/dev/null && curl --help all 2>/dev/null | grep -q -- --aws-sigv4; then
    # Garage, as S3, wants the payload hash header, which curl 7.88 does not send by itself.
    head=$(curl -fsS -I --aws-sigv4 "aws:amz:$S4_TEST_REGION:s3" --user "$S4_TEST_ACCESS_KEY:$S4_TEST_SECRET_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$S4_TEST_ENDPOINT/$S4_TEST_BUCKET/$prefix/picture") \
        || { echo "static.sh: HEAD $prefix/picture with curl failed" >&2; exit 1; }
    ct=$(printf '%s\n' "$head" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Tt]ype: *//p')
    echo "static.sh: Content-Type of 'picture' (a PNG with no extension): $ct"
    [ "$ct" = image/png ] || { echo "static.sh: expected image/png: the embedded magic database did not sniff it" >&2; exit 1; }
else
    echo "static.sh: note: no curl with --aws-sigv4 here; Content-Type not checked"
fi
echo "static.sh: the root afterwards, outside the synced folders: $(cd "$root" && find . -path ./data/up -prune -o -path ./data/down -prune -o -print | sort | tr '\n' ' ')"
echo "static.sh: empty-root sync against $S4_TEST_STORE: ok"
