#!/usr/bin/env bash
# The progload kernel farm: real Debian kernels booted under qemu, each with its own release's
# userland, to run a payload (e.g. `progload check --sweep`) against the real exec().
#
#   kernels.sh list                          KERNEL names, the package version and `uname -r` found
#   kernels.sh fetch KERNEL|all              download the kernel .deb and the userland .debs (cached)
#                                            and unpack them (kernel image, userland staging dir)
#   kernels.sh run KERNEL PAYLOAD_DIR OUT_DIR
#                                            boot KERNEL with PAYLOAD_DIR at /payload; /init runs
#                                            /payload/run.sh with OUT=/out; /out comes back in OUT_DIR
#                                            (plus OUT_DIR/console.log and OUT_DIR/farm-run.json)
#   kernels.sh selftest [KERNEL...]          run scripts/farm/selftest on KERNELs (default: all)
#                                            into ${FARM_SELFTEST_OUT:-/tmp/farm-selftest}/KERNEL
#
# KERNEL: x86_64-5.10 x86_64-6.1 x86_64-6.12 aarch64-5.10 aarch64-6.1 aarch64-6.12 riscv64-6.12
# (Debian 11 bullseye, 12 bookworm, 13 trixie: the newest linux-image-<release>.*-<flavour> of
# suite, suite-updates and suite-security, read from the Packages.xz indices on deb.debian.org).
#
# Environment:
#   FARM_CACHE      cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/progload/farm)
#   FARM_REFRESH=1  read the indices again and re-resolve the newest versions (else the lock stays)
#   FARM_TIMEOUT    seconds a guest may run before it counts as failed (default 1200)
#   FARM_ACCEL      tcg (default) or kvm (x86_64 only; -cpu host)
#   FARM_CPU        qemu -cpu (default x86_64: max,la57=off; aarch64: max,pauth-impdef=on;
#                   riscv64: qemu's default)
#   FARM_MEM FARM_SMP  guest memory and CPUs (2G, 2)
#   FARM_APPEND     extra kernel command line
#   FARM_COMPRESS   none (default) or gzip (level 1): the initramfs
#   FARM_QEMU_EXTRA extra qemu arguments (split at spaces)
#   FARM_ECHO=1     copy the guest console to stderr while it runs
#   FARM_OPENSBI    riscv64 -bios (default: opensbi's generic fw_jump.bin)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py() { python3 "$here/farm.py" "$@"; }

usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

apt_updated=0
# Installs Debian packages (of the host's suite) that are not installed yet.
need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    echo "farm: apt-get install ${missing[*]}" >&2
    if [ "$apt_updated" = 0 ]; then
        "${sudo[@]}" apt-get update -qq >&2
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

need_qemu() {
    local arch
    arch="$(py arch "$1")"
    case "$arch" in
        amd64) need_pkgs qemu-system-x86 ;;
        arm64) need_pkgs qemu-system-arm ;;
        riscv64) need_pkgs qemu-system-misc opensbi ;;
    esac
}

kernels_of() {
    if [ "$#" -eq 0 ] || [ "$1" = all ]; then py kernels; else printf '%s\n' "$@"; fi
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
shift
case "$cmd" in
    list)
        [ "$#" -eq 0 ] || usage
        py list
        ;;
    fetch)
        [ "$#" -ge 1 ] || usage
        for k in $(kernels_of "$@"); do
            py fetch "$k"
            py prepare "$k" >/dev/null   # unpack the kernel image and the userland once
            need_qemu "$k"
        done
        ;;
    run)
        [ "$#" -eq 3 ] || usage
        need_qemu "$1"
        py fetch "$1"
        py run "$1" "$2" "$3"
        ;;
    selftest)
        out="${FARM_SELFTEST_OUT:-/tmp/farm-selftest}"
        rc=0
        for k in $(kernels_of "$@"); do
            need_qemu "$k"
            py fetch "$k"
            rm -rf "${out:?}/$k"
            if py run "$k" "$here/selftest" "$out/$k"; then
                echo "== $k: ok ($out/$k)"
            else
                echo "== $k: FAILED ($out/$k/console.log)"
                rc=1
            fi
        done
        exit "$rc"
        ;;
    -h|--help|help) usage ;;
    *) usage ;;
esac
