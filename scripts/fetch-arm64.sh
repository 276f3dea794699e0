#!/usr/bin/env bash
# Fetch real Debian arm64 binaries for the aarch64 tests (crates/progload-host/tests/arm64_debian.rs)
# and unpack them into one tree used as the exec root:
#
#   <target>/arm64-debian/root/bin/busybox                              busybox-static (static ET_EXEC)
#   <target>/arm64-debian/root/bin/ls, bin/cat, ...                     coreutils (PIE, PT_INTERP)
#   <target>/arm64-debian/root/lib/ld-linux-aarch64.so.1 -> aarch64-linux-gnu/ld-linux-aarch64.so.1
#   <target>/arm64-debian/root/lib/aarch64-linux-gnu/{ld-linux-aarch64.so.1,libc.so.6,...}   libc6
#
# <target> is $CARGO_TARGET_DIR or the workspace's target/. The .debs are kept in
# <target>/arm64-debian/debs and the tree is marked complete by <target>/arm64-debian/STAMP, so a
# second run does nothing (no apt call at all). Uses `apt-get download` after enabling the arm64
# architecture (`dpkg --add-architecture arm64` + `apt-get update`, both only when needed), which
# needs root, as on CI. Nothing is installed: the packages are only unpacked with dpkg-deb -x.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$here/target}"
case "$target" in /*) ;; *) target="$here/$target" ;; esac
out="$target/arm64-debian"
root="$out/root"
debs="$out/debs"
packages=(busybox-static:arm64 coreutils:arm64 libc6:arm64)
# What the tests open; the tree is complete when all of these exist.
needed=(bin/busybox bin/ls lib/ld-linux-aarch64.so.1)

complete() {
    [ -f "$out/STAMP" ] || return 1
    local f
    for f in "${needed[@]}"; do
        [ -e "$root/$f" ] || return 1
    done
}

if complete; then
    echo "fetch-arm64: $root is up to date ($(tr '\n' ' ' < "$out/STAMP"))"
    exit 0
fi

for tool in apt-get apt-cache dpkg dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "fetch-arm64: $tool not found (Debian/Ubuntu only)" >&2; exit 1; }
done
sudo=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "fetch-arm64: needs root (dpkg --add-architecture, apt-get update)" >&2; exit 1; }
    sudo=(sudo)
fi

# (Outputs are captured first: `cmd | grep -q` can fail with SIGPIPE under pipefail.)
foreign="$(dpkg --print-foreign-architectures)"
if ! grep -qx arm64 <<<"$foreign"; then
    echo "fetch-arm64: dpkg --add-architecture arm64"
    "${sudo[@]}" dpkg --add-architecture arm64
fi
# The package lists know arm64 when libc6:arm64 has a candidate.
has_lists() {
    local policy
    policy="$(apt-cache policy libc6:arm64 2>/dev/null || true)"
    grep -q 'Candidate: [0-9]' <<<"$policy"
}
if ! has_lists; then
    echo "fetch-arm64: apt-get update"
    "${sudo[@]}" apt-get update -qq
    has_lists || { echo "fetch-arm64: no arm64 packages in the configured sources" >&2; exit 1; }
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
        file="${name}_${v//:/%3a}_arm64.deb"
        if [ ! -s "$file" ]; then
            rm -f "${name}"_*_arm64.deb
            want+=("$p=$v")
        fi
    done
    if [ "${#want[@]}" -gt 0 ]; then
        echo "fetch-arm64: apt-get download ${want[*]}"
        apt-get download -qq -o APT::Sandbox::User=root "${want[@]}"
    fi
)
for deb in "$debs"/*_arm64.deb; do
    dpkg-deb -x "$deb" "$root.tmp"
done
rm -rf "$root"
mv "$root.tmp" "$root"
for f in "${needed[@]}"; do
    [ -e "$root/$f" ] || { echo "fetch-arm64: $f missing after unpacking" >&2; exit 1; }
done
(cd "$debs" && ls ./*_arm64.deb | sed 's|^\./||') > "$out/STAMP"
echo "fetch-arm64: unpacked into $root: $(tr '\n' ' ' < "$out/STAMP")"
