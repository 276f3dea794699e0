#!/usr/bin/env bash
# Fetch real Debian binaries of another architecture and unpack them into one tree:
#
#   fetch-debian.sh arm64   for crates/progload-host/tests/arm64_debian.rs (the exec root):
#     <target>/arm64-debian/root/bin/busybox                            busybox-static (static ET_EXEC)
#     <target>/arm64-debian/root/bin/ls, bin/cat, ...                   coreutils (PIE, PT_INTERP)
#     <target>/arm64-debian/root/lib/ld-linux-aarch64.so.1 -> aarch64-linux-gnu/ld-linux-aarch64.so.1
#     <target>/arm64-debian/root/lib/aarch64-linux-gnu/{ld-linux-aarch64.so.1,libc.so.6,...} libc6
#   fetch-debian.sh i386    for crates/progload-host/tests/i386_debian.rs (i386 programs this
#     x86_64 kernel runs): busybox-static, coreutils, bash and libc6 of i386 in
#     <target>/i386-debian/root/{bin,usr/bin,lib/ld-linux.so.2,...}
#   fetch-debian.sh amd64   for the `run --root` tests of crates/progload-cli/tests/run.rs: a
#     busybox-only root: busybox-static of amd64 in <target>/amd64-debian/root/bin/busybox
#
# <target> is $CARGO_TARGET_DIR or the workspace's target/. The .debs are kept in
# <target>/ARCH-debian/debs and the tree is marked complete by <target>/ARCH-debian/STAMP, so a
# second run does nothing (no apt call at all). Uses `apt-get download` after enabling the
# architecture (`dpkg --add-architecture ARCH` + `apt-get update`, both only when needed), which
# needs root, as on CI. Nothing is installed: the packages are only unpacked with dpkg-deb -x.
set -euo pipefail
arch="${1:-arm64}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$here/target}"
case "$target" in /*) ;; *) target="$here/$target" ;; esac
out="$target/$arch-debian"
root="$out/root"
debs="$out/debs"
# What the tests open; the tree is complete when all of these exist.
case "$arch" in
    arm64)
        packages=(busybox-static:arm64 coreutils:arm64 libc6:arm64)
        needed=(bin/busybox bin/ls lib/ld-linux-aarch64.so.1)
        ;;
    i386)
        packages=(busybox-static:i386 coreutils:i386 bash:i386 libc6:i386)
        needed=(bin/busybox bin/ls bin/bash lib/ld-linux.so.2)
        ;;
    amd64)
        packages=(busybox-static:amd64)
        needed=(bin/busybox)
        ;;
    *) echo "fetch-debian: unknown ARCH $arch (arm64, i386 or amd64)" >&2; exit 2 ;;
esac

complete() {
    [ -f "$out/STAMP" ] || return 1
    local f
    for f in "${needed[@]}"; do
        [ -e "$root/$f" ] || return 1
    done
}

if complete; then
    echo "fetch-$arch: $root is up to date ($(tr '\n' ' ' < "$out/STAMP"))"
    exit 0
fi

for tool in apt-get apt-cache dpkg dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "fetch-$arch: $tool not found (Debian/Ubuntu only)" >&2; exit 1; }
done
sudo=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "fetch-$arch: needs root (dpkg --add-architecture, apt-get update)" >&2; exit 1; }
    sudo=(sudo)
fi

# (Outputs are captured first: `cmd | grep -q` can fail with SIGPIPE under pipefail.)
foreign="$(dpkg --print-foreign-architectures)"
native="$(dpkg --print-architecture)"
if [ "$arch" != "$native" ] && ! grep -qx "$arch" <<<"$foreign"; then
    echo "fetch-$arch: dpkg --add-architecture $arch"
    "${sudo[@]}" dpkg --add-architecture "$arch"
fi
# The package lists know ARCH when libc6:ARCH has a candidate.
has_lists() {
    local policy
    policy="$(apt-cache policy "libc6:$arch" 2>/dev/null || true)"
    grep -q 'Candidate: [0-9]' <<<"$policy"
}
if ! has_lists; then
    echo "fetch-$arch: apt-get update"
    # (A mirror in mid-sync can fail an unrelated index: the check below decides.)
    "${sudo[@]}" apt-get update -qq || echo "fetch-$arch: apt-get update reported errors" >&2
    has_lists || { echo "fetch-$arch: no $arch packages in the configured sources" >&2; exit 1; }
fi

mkdir -p "$debs"
rm -rf "$root.tmp"
mkdir -p "$root.tmp"
(
    cd "$debs"
    # Keep only the candidate versions: a stale .deb of another version is replaced.
    want=()
    for p in "${packages[@]}"; do
        v="$(apt-cache policy "$p" | sed -n 's/^ *Candidate: //p')"
        name="${p%%:*}"
        # apt-get download names files NAME_VERSION_ARCH.deb with ':' escaped as %3a.
        file="${name}_${v//:/%3a}_$arch.deb"
        if [ ! -s "$file" ]; then
            rm -f "${name}"_*_"$arch".deb
            want+=("$p=$v")
        fi
    done
    if [ "${#want[@]}" -gt 0 ]; then
        echo "fetch-$arch: apt-get download ${want[*]}"
        apt-get download -qq -o APT::Sandbox::User=root "${want[@]}"
    fi
)
for deb in "$debs"/*_"$arch".deb; do
    dpkg-deb -x "$deb" "$root.tmp"
done
rm -rf "$root"
mv "$root.tmp" "$root"
for f in "${needed[@]}"; do
    [ -e "$root/$f" ] || { echo "fetch-$arch: $f missing after unpacking" >&2; exit 1; }
done
(cd "$debs" && ls ./*_"$arch".deb | sed 's|^\./||') > "$out/STAMP"
echo "fetch-$arch: unpacked into $root: $(tr '\n' ' ' < "$out/STAMP")"
