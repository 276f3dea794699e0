#!/usr/bin/env bash
# The test command of the README: installs what the tests need on a fresh machine (Debian
# packages, Debian's arm64 and i386 binaries), then runs the whole suite and sums the
# per-binary results into one closing line. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# rsvg-convert renders the memory-map pictures; strace and gdb drive the debugger tests of
# progload run; gcc -m32 (and libc6-i386's /lib/ld-linux.so.2) builds the i386 oracle tests.
need=()
command -v rsvg-convert >/dev/null 2>&1 || need+=(librsvg2-bin)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v gdb >/dev/null 2>&1 || need+=(gdb)
[ -e /usr/lib32/crt1.o ] || need+=(gcc-multilib)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: the tests need ${need[*]}: install them (apt-get install ${need[*]})" >&2
        exit 2
    fi
    # (apt-get update can fail an unrelated index while a mirror syncs: the install decides.)
    (apt-get install -y "${need[@]}" || { apt-get update || true; apt-get install -y "${need[@]}"; }) >/dev/null
fi

# Real arm64 binaries (busybox-static, coreutils, libc6 from Debian's arm64 packages) for the
# aarch64 planning tests, and i386 ones (busybox-static, coreutils, bash, libc6) for the ia32
# oracle test; cached under target/.
bash scripts/fetch-debian.sh arm64
bash scripts/fetch-debian.sh i386
bash scripts/fetch-debian.sh amd64

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
