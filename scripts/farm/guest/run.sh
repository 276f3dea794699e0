#!/bin/sh
# The farm's check payload, run by the guest's /init as root with OUT=/out:
#   - progload profile (the guest's captured profile);
#   - progload check --sweep of the guest's userland, recording each exec for the host's
#     cross-plan (--record);
#   - the kernel-oracle tests: crafted corpus, credentials, personality, binfmt_misc and the
#     seeded mutation campaign (static test binaries of crates/progload-host/tests/), when the
#     payload has them.
set -u
P=/payload/progload
echo "farm-check: $(uname -r) $(uname -m)"
"$P" profile >"$OUT/profile.json" 2>"$OUT/profile.err"
echo "profile rc=$?"

# Each real directory once (bullseye has /bin and /usr/bin apart; later releases link them).
dirs=""
for d in /usr/bin /usr/sbin /bin /sbin; do
    if [ -d "$d" ] && [ ! -L "$d" ]; then
        dirs="$dirs $d"
    fi
done
cd /
start=$(date +%s)
# shellcheck disable=SC2086 # one word per directory
"$P" check --sweep --json --jobs 2 --record "$OUT/rec" $dirs >"$OUT/sweep.json" 2>"$OUT/sweep.err"
echo "sweep rc=$? in $(( $(date +%s) - start )) s over$dirs"

# The kernel-oracle tests (static test binaries, scripts/farm/oracle-payload.sh), those the
# payload has: the crafted corpus, credentials, personality, binfmt_misc, mutants
# (PROGLOAD_MUTANTS of them, 1000 by default).
[ -e /usr/bin/true ] || cp /bin/true /usr/bin/true  # the tests read it; bullseye has /bin/true
for t in crafted credentials personality misc mutants; do
    [ -x "/payload/$t" ] || continue
    start=$(date +%s)
    (cd /tmp && PROGLOAD_LOAD_ADDRESS_DIR=/payload/load_address \
        PROGLOAD_MUTANTS="${PROGLOAD_MUTANTS:-1000}" \
        PROGLOAD_TESTPROGS_DIR=/payload/testprogs PROGLOAD_TESTPROGS_PREBUILT=1 \
        "/payload/$t" --test-threads 1 --nocapture >"$OUT/$t.txt" 2>&1)
    echo "$t rc=$? in $(( $(date +%s) - start )) s"
done
