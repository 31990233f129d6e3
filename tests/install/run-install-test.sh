#!/usr/bin/env bash
# Installs a built libnbio into a temporary prefix, then builds and runs a
# small outside program against it twice: through find_package(nbio) and
# through pkg-config, each linked once with the shared and once with the
# static library. Fails if any of them fails.
#
# usage: run-install-test.sh BUILD_DIR WORK_DIR CONSUMER_SRC CC VERSION [EXTRA_FLAGS]
set -euo pipefail

build_dir=$1 work=$2 consumer=$3 cc=$4 version=$5 extra_flags=${6:-}
cmake=${CMAKE_COMMAND:-cmake}

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'install test FAILED: %s\n' "$*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

step "cmake --install into $prefix"
"$cmake" --install "$build_dir" --prefix "$prefix" >"$work/install.log" ||
    { cat "$work/install.log"; fail "cmake --install"; }
for f in include/nbio/nbio.h include/nbio/errors.h; do
    [ -f "$prefix/$f" ] || fail "$f was not installed"
done
pc=$(find "$prefix" -name nbio.pc -path '*/pkgconfig/*' | head -n 1)
config=$(find "$prefix" -name nbioConfig.cmake | head -n 1)
[ -n "$pc" ] || fail "nbio.pc was not installed"
[ -n "$config" ] || fail "nbioConfig.cmake was not installed"
for f in nbioConfigVersion.cmake nbioTargets.cmake; do
    [ -f "$(dirname "$config")/$f" ] || fail "$f was not installed"
done

# Does program $1 load libnbio.so? (prints yes/no)
loads_libnbio() {
    if readelf -d "$1" | grep -q 'NEEDED.*libnbio\.so'; then echo yes; else echo no; fi
}

# Runs a consumer program and checks what it prints.
run_consumer() {
    local prog=$1 out
    out=$("$prog") || { printf '%s\n' "$out"; fail "$prog exited with an error"; }
    printf '%s\n' "$out"
    grep -qx "nbio_version() = $version" <<<"$out" || fail "$prog: wrong version"
    grep -qx "nbio_strerror(NBIO_EPEERCLOSED) = closed by peer" <<<"$out" ||
        fail "$prog: wrong nbio_strerror output"
}

step "consumer 1: find_package(nbio)"
# shellcheck disable=SC2086
"$cmake" -S "$consumer" -B "$work/cmake-consumer" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_C_FLAGS="$extra_flags" -DCMAKE_EXE_LINKER_FLAGS="$extra_flags" \
    -DNBIO_EXPECTED_VERSION="$version" >"$work/cmake-consumer.log" 2>&1 ||
    { cat "$work/cmake-consumer.log"; fail "configuring the find_package consumer"; }
found=$(sed -n 's/^nbio_DIR:PATH=//p' "$work/cmake-consumer/CMakeCache.txt")
[ "$found" = "$(dirname "$config")" ] || fail "find_package found nbio in '$found', not in $prefix"
"$cmake" --build "$work/cmake-consumer" || fail "building the find_package consumer"
[ "$(loads_libnbio "$work/cmake-consumer/consumer_shared")" = yes ] ||
    fail "consumer_shared does not load libnbio.so"
[ "$(loads_libnbio "$work/cmake-consumer/consumer_static")" = no ] ||
    fail "consumer_static loads libnbio.so"
run_consumer "$work/cmake-consumer/consumer_shared"
run_consumer "$work/cmake-consumer/consumer_static"

step "consumer 2: pkg-config nbio"
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR || true
[ "$(pkg-config --modversion nbio)" = "$version" ] || fail "pkg-config --modversion nbio"
cflags=$(pkg-config --cflags nbio)
libs=$(pkg-config --libs nbio)
static_libs=$(pkg-config --static --libs nbio)
libdir=$(pkg-config --variable=libdir nbio)
echo "cflags: $cflags"
echo "libs: $libs"
echo "static libs: $static_libs"
# -l:libnbio.a picks the archive even though libnbio.so sits beside it.
static_libs=${static_libs/-lnbio /-l:libnbio.a }
mkdir -p "$work/pc-consumer"
warn=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
# shellcheck disable=SC2086
"$cc" "${warn[@]}" $extra_flags $cflags -DEXPECTED_VERSION="\"$version\"" \
    "$consumer/main.c" -o "$work/pc-consumer/shared" $libs -Wl,-rpath,"$libdir" ||
    fail "building the pkg-config consumer (shared)"
# shellcheck disable=SC2086
"$cc" "${warn[@]}" $extra_flags $cflags -DEXPECTED_VERSION="\"$version\"" \
    "$consumer/main.c" -o "$work/pc-consumer/static" $static_libs ||
    fail "building the pkg-config consumer (static: pkg-config --static --libs)"
[ "$(loads_libnbio "$work/pc-consumer/shared")" = yes ] || fail "pkg-config shared consumer does not load libnbio.so"
[ "$(loads_libnbio "$work/pc-consumer/static")" = no ] || fail "pkg-config static consumer loads libnbio.so"
run_consumer "$work/pc-consumer/shared"
run_consumer "$work/pc-consumer/static"

step "install test passed"
