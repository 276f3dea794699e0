#!/usr/bin/env bash
# Builds the progload CLI (package progload-cli, binary `progload`) as a static Linux binary for the
# kernel farm's guests:
#
#   cross-build.sh ARCH OUTDIR      ARCH: x86_64 | aarch64 | riscv64 | all
#
# writes OUTDIR/progload (for `all`: OUTDIR/ARCH/progload) and checks with `file` that it is
# statically linked. Rust targets x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu,
# riscv64gc-unknown-linux-gnu (rustup target add when missing) with -C target-feature=+crt-static;
# the linker is Debian's (cross) gcc: gcc-aarch64-linux-gnu + libc6-dev-arm64-cross,
# gcc-riscv64-linux-gnu + libc6-dev-riscv64-cross (apt-get install when missing).
# CARGO_TARGET_DIR defaults to <repo>/target/cross. Extra cargo flags: CROSS_CARGO_FLAGS.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[ "$#" -eq 2 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
arch="$1"
outdir="$2"

if [ "$arch" = all ]; then
    rc=0
    for a in x86_64 aarch64 riscv64; do
        "$0" "$a" "$outdir/$a" || { echo "cross-build: $a FAILED" >&2; rc=1; }
    done
    exit "$rc"
fi

case "$arch" in
    x86_64) triple=x86_64-unknown-linux-gnu; cc=gcc; pkgs=(gcc libc6-dev) ;;
    aarch64) triple=aarch64-unknown-linux-gnu; cc=aarch64-linux-gnu-gcc; pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
    riscv64) triple=riscv64gc-unknown-linux-gnu; cc=riscv64-linux-gnu-gcc; pkgs=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross) ;;
    *) echo "cross-build: ARCH is x86_64, aarch64, riscv64 or all" >&2; exit 2 ;;
esac
# x86_64 on a non-x86_64 host needs the cross gcc too.
if [ "$arch" = x86_64 ] && [ "$(uname -m)" != x86_64 ]; then
    cc=x86_64-linux-gnu-gcc; pkgs=(gcc-x86-64-linux-gnu libc6-dev-amd64-cross)
fi

missing=()
for p in "${pkgs[@]}" file; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    echo "cross-build: apt-get install ${missing[*]}" >&2
    # A mirror in mid-sync can fail one index (apt-get update exits 100) while the lists
    # the install needs are fine: go on, and let the install say whether they are.
    "${sudo[@]}" apt-get update -qq >&2 || echo "cross-build: apt-get update reported errors; installing from the lists it got" >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

installed="$(rustup target list --installed)"
if ! grep -qx "$triple" <<<"$installed"; then
    echo "cross-build: rustup target add $triple" >&2
    rustup target add "$triple" >&2
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/cross}"
T="$(tr 'a-z-' 'A-Z_' <<<"$triple")"
export "CARGO_TARGET_${T}_LINKER=$cc"
export "CARGO_TARGET_${T}_RUSTFLAGS=-C target-feature=+crt-static"
# cc-rs (if a dependency compiles C) uses the same compiler.
export "CC_${triple//-/_}=$cc"

echo "cross-build: cargo build --release -p progload-cli --bin progload --target $triple (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
start=$(date +%s)
# shellcheck disable=SC2086
(cd "$repo" && cargo build --release --locked -p progload-cli --bin progload --target "$triple" ${CROSS_CARGO_FLAGS:-})
bin="$CARGO_TARGET_DIR/$triple/release/progload"
mkdir -p "$outdir"
cp "$bin" "$outdir/progload"
desc="$(file -b "$outdir/progload")"
echo "cross-build: $outdir/progload ($(( $(date +%s) - start ))s, $(stat -c %s "$outdir/progload") bytes): $desc" >&2
case "$desc" in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) echo "cross-build: $outdir/progload is not static" >&2; exit 1 ;;
esac
case "$arch:$desc" in
    x86_64:*x86-64*|aarch64:*aarch64*|riscv64:*RISC-V*) ;;
    *) echo "cross-build: $outdir/progload is not a $arch binary" >&2; exit 1 ;;
esac
