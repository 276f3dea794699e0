#!/usr/bin/env bash
# Builds a kernel-farm payload that runs the crafted corpus (crates/progload-host/tests/crafted.rs)
# in a guest of ARCH: the static test binary as `crafted`, the six load_address programs of the
# selftest family (built with the cross gcc) and run.sh.
#
#   crafted-payload.sh ARCH PAYLOAD_DIR      ARCH: x86_64, aarch64 or riscv64
#   kernels.sh run KERNEL PAYLOAD_DIR OUT    then OUT/crafted.txt is the test's output
#
# Debian's riscv64 cross glibc has no rcrt1.o (no -static-pie), so the riscv64 static-PIE
# programs are linked without libc (-nostdlib -pie --no-dynamic-linker, with a _start that
# calls exit(main())): the same kind of file, ET_DYN without PT_INTERP.
set -euo pipefail
arch="${1:?ARCH}"
out="${2:?PAYLOAD_DIR}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
case "$arch" in
    x86_64) triple=x86_64-unknown-linux-gnu cc=gcc ;;
    aarch64) triple=aarch64-unknown-linux-gnu cc=aarch64-linux-gnu-gcc ;;
    riscv64) triple=riscv64gc-unknown-linux-gnu cc=riscv64-linux-gnu-gcc ;;
    *) echo "crafted-payload: unknown ARCH $arch" >&2; exit 2 ;;
esac
tu="$(echo "$triple" | tr 'a-z-' 'A-Z_')"
mkdir -p "$out/load_address"
bin="$(cd "$repo" && env "CARGO_TARGET_${tu}_LINKER=$cc" \
    "CARGO_TARGET_${tu}_RUSTFLAGS=-C target-feature=+crt-static" \
    cargo test -q --release -p progload-host --test crafted --no-run --target "$triple" \
    --message-format=json 2>/dev/null |
    python3 "$repo/scripts/cargo-executables.py" test crafted | tail -n 1)"
[ -x "$bin" ] || { echo "crafted-payload: the $triple test binary did not build" >&2; exit 1; }
cp "$bin" "$out/crafted"
la="$out/load_address"
echo 'int main(void) { return 0; }' >"$la/load_address.c"
cat >"$la/start.c" <<'C'
int main(void) { return 0; }
void _start(void)
{
    register long a0 asm("a0") = main();
    register long a7 asm("a7") = 93; /* SYS_exit */
    asm volatile("ecall" : : "r"(a0), "r"(a7));
    for (;;)
        ;
}
C
for align in 0x1000 0x200000 0x1000000; do
    "$cc" -O1 -fPIE -pie -Wl,-z,max-page-size="$align" -o "$la/load_address.pie.$align" "$la/load_address.c"
    if [ "$arch" = riscv64 ]; then
        "$cc" -O1 -fPIE -pie -nostdlib -Wl,--no-dynamic-linker -Wl,-z,max-page-size="$align" \
            -o "$la/load_address.static-pie.$align" "$la/start.c"
    else
        "$cc" -O1 -fPIE -static-pie -Wl,-z,max-page-size="$align" \
            -o "$la/load_address.static-pie.$align" "$la/load_address.c"
    fi
done
cat >"$out/run.sh" <<'SH'
#!/bin/sh
cd /tmp && PROGLOAD_LOAD_ADDRESS_DIR=/payload/load_address /payload/crafted --test-threads 1 --nocapture >"$OUT/crafted.txt" 2>&1
echo "rc=$?" >>"$OUT/crafted.txt"
SH
chmod +x "$out/run.sh"
echo "$out"
