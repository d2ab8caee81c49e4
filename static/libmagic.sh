#!/usr/bin/env bash
# Usage: static/libmagic.sh DEST
#
# Builds libmagic for s4's static (musl) binary: DEST/lib/libmagic.a, made with musl-gcc without
# any compression library, and DEST/magic.mgc.gz, the database compiled by the `file` of the
# same build (so its format is the library's own), gzipped for embedding. build.rs runs it for
# `--target x86_64-unknown-linux-musl`; it does nothing when DEST/VERSION exists (delete DEST to
# rebuild). The source is Debian's `file` package (`apt-get source`, verified against the
# archive's signed index, Debian's patches applied, so the database is Debian's own), or
# S4_LIBMAGIC_SRC, an unpacked `file` source tree (any libmagic >= 5.38).
# Needs: musl-gcc (musl-tools), make, dpkg-dev, and a deb-src entry for apt (see README).
set -euo pipefail

dest=${1:?usage: static/libmagic.sh DEST}
cc=${S4_LIBMAGIC_CC:-musl-gcc}

[ -e "$dest/VERSION" ] && exit 0

mkdir -p "$(dirname "$dest")"
dest=$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")
# A `cargo build` and a `cargo clippy` may both get here: one builds, the other waits.
exec 9>"$dest.lock"
flock 9
[ -e "$dest/VERSION" ] && exit 0

command -v "$cc" >/dev/null || { echo "libmagic.sh: $cc not found (Debian: apt-get install musl-tools)" >&2; exit 1; }
t0=$SECONDS
work=$(mktemp -d "$dest.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "${S4_LIBMAGIC_SRC:-}" ]; then
    src=$S4_LIBMAGIC_SRC
else
    (cd "$work" && apt-get source --download-only file >fetch.log 2>&1) || {
        cat "$work/fetch.log" >&2
        echo "libmagic.sh: 'apt-get source file' failed: add a deb-src entry for apt (see README)," \
            "or set S4_LIBMAGIC_SRC to an unpacked file source tree" >&2
        exit 1
    }
    command -v dpkg-source >/dev/null || { echo "libmagic.sh: dpkg-source not found (apt-get install dpkg-dev)" >&2; exit 1; }
    (cd "$work" && dpkg-source -x ./*.dsc src >>fetch.log 2>&1) || { cat "$work/fetch.log" >&2; exit 1; }
    src=$work/src
    # Debian's patches edit Makefile.am files and Debian regenerates with autoreconf; the
    # generated files we build with are up to date for what we build (src/), so make them look
    # newer than their inputs rather than require autotools.
    (cd "$src" && touch aclocal.m4 && sleep 1 && touch configure config.h.in && sleep 1 \
        && find . -name Makefile.in -exec touch {} +)
fi

mkdir -p "$work/build"
cd "$work/build"
# No compression libraries: s4 sniffs the first 4 KiB of a file, never decompresses it. -fPIC:
# Rust links musl binaries as static PIE. HOWMANY as Debian builds it, so both read alike.
CC=$cc CFLAGS="-O2 -fPIC -DHOWMANY=0x18000" "$src/configure" --quiet --enable-static --disable-shared \
    --disable-zlib --disable-bzlib --disable-xzlib --disable-zstdlib --disable-lzlib \
    --disable-libseccomp >configure.log 2>&1 || { cat configure.log >&2; exit 1; }
make -C src -j"$(nproc 2>/dev/null || echo 2)" >make.log 2>&1 || { tail -n 50 make.log >&2; exit 1; }
version=$(./src/file --version | sed -e 's/^file-//' -e q)

# The database as Debian's magic/Makefile.am makes it: Header, Localstuff, Debian's extra magic
# and every Magdir fragment in one folder, compiled by this build's `file -C`.
mkdir "$work/db" && cd "$work/db"
mkdir magic
cp -p "$src/magic/Header" "$src/magic/Localstuff" "$src"/magic/Magdir/* magic/
if [ -e "$src/debian/debian-extra-magic" ]; then cp -p "$src/debian/debian-extra-magic" magic/; fi
"$work/build/src/file" -C -m magic >>"$work/build/make.log" 2>&1 || { tail -n 20 "$work/build/make.log" >&2; exit 1; }
cd "$work/build"

out=$work/out
mkdir -p "$out/lib"
cp src/.libs/libmagic.a "$out/lib/"
gzip -9 -n -c "$work/db/magic.mgc" >"$out/magic.mgc.gz"
echo "$version" >"$out/VERSION"
rm -rf "$dest"
mv "$out" "$dest"
echo "libmagic.sh: libmagic $version built into $dest ($((SECONDS - t0)) s)" >&2
