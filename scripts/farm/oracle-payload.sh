#!/usr/bin/env bash
# Builds the kernel-oracle tests as a kernel-farm payload for a guest of ARCH:
#   - the static test binaries of crates/progload-host/tests/{crafted,credentials,personality,
#     misc,mutants}.rs (misc: binfmt_misc rules registered with the guest's kernel; mutants:
#     the seeded mutation campaign, PROGLOAD_MUTANTS of them, 1000 by default);
#   - the testkit's programs (crates/progload-testkit/src/progs.rs, built with the cross gcc by
#     the build_testprogs example) in testprogs/, which the tests take with
#     PROGLOAD_TESTPROGS_PREBUILT;
#   - the six load_address programs of the crafted selftest family in load_address/;
#   - run.sh, which runs them all (outputs OUT/TEST.txt).
#
#   oracle-payload.sh ARCH PAYLOAD_DIR      ARCH: x86_64, aarch64 or riscv64
#   kernels.sh run KERNEL PAYLOAD_DIR OUT    then OUT/crafted.txt, OUT/credentials.txt, ...
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
    *) echo "oracle-payload: unknown ARCH $arch" >&2; exit 2 ;;
esac
tests=(crafted credentials personality misc mutants)
tu="$(echo "$triple" | tr 'a-z-' 'A-Z_')"
mkdir -p "$out/load_address" "$out/testprogs"
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
json="$out/.cargo-messages.json"
(cd "$repo" && env "CARGO_TARGET_${tu}_LINKER=$cc" \
    "CARGO_TARGET_${tu}_RUSTFLAGS=-C target-feature=+crt-static" \
    cargo test -q --release -p progload-host "${args[@]}" --no-run --target "$triple" \
    --message-format=json 2>/dev/null >"$json") || true
for t in "${tests[@]}"; do
    bin="$(python3 "$repo/scripts/cargo-executables.py" test "$t" <"$json" | tail -n 1)"
    [ -x "$bin" ] || { echo "oracle-payload: the $triple test binary $t did not build" >&2; exit 1; }
    cp "$bin" "$out/$t"
done
rm -f "$json"

# The testkit's programs, with the same recipes as on the host but the cross gcc. The x86
# assembler program and riscv64's static PIE do not build for every ARCH.
tp="$(cd "$out/testprogs" && pwd)"
(cd "$repo" && PROGLOAD_TESTPROGS_CC="$cc" PROGLOAD_TESTPROGS_DIR="$tp" \
    cargo run -q -p progload-testkit --example build_testprogs -- pie no-pie static pie-execstack big-bss >&2)
# x86_64 guests also run the assembler program and the i386 builds (mutants.rs mutates them).
if [ "$arch" = x86_64 ]; then
    (cd "$repo" && PROGLOAD_TESTPROGS_CC="$cc" PROGLOAD_TESTPROGS_DIR="$tp" \
        cargo run -q -p progload-testkit --example build_testprogs -- asm-exit pie-m32 no-pie-m32 \
        static-m32 static-pie-m32 >&2)
fi
la="$out/load_address"
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
if [ "$arch" = riscv64 ]; then
    "$cc" -O1 -fPIE -pie -nostdlib -Wl,--no-dynamic-linker -o "$tp/static-pie" "$la/start.c"
fi
[ -x "$tp/static-pie" ] || { echo "oracle-payload: no static-pie for $arch" >&2; exit 1; }

echo 'int main(void) { return 0; }' >"$la/load_address.c"
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
# The tests read /usr/bin/true; bullseye's coreutils installs /bin/true only.
[ -e /usr/bin/true ] || cp /bin/true /usr/bin/true
for t in crafted credentials personality misc mutants; do
    (cd /tmp && PROGLOAD_LOAD_ADDRESS_DIR=/payload/load_address \
        PROGLOAD_MUTANTS="${PROGLOAD_MUTANTS:-1000}" \
        PROGLOAD_TESTPROGS_DIR=/payload/testprogs PROGLOAD_TESTPROGS_PREBUILT=1 \
        "/payload/$t" --test-threads 1 --nocapture >"$OUT/$t.txt" 2>&1)
    echo "rc=$?" >>"$OUT/$t.txt"
done
SH
chmod +x "$out/run.sh"
echo "$out"
