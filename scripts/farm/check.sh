#!/usr/bin/env bash
# The kernel farm's oracle run: progload checked against real Debian kernels booted under qemu.
#
#   scripts/farm/check.sh [KERNEL...]      (default: every KERNEL of kernels.sh, and riscv64
#                                            on sv39 and sv48)
#
# A riscv64 KERNEL may end in -sv39 or -sv48 (riscv64-6.12-sv39): the same kernel booted with
# no4lvl / no5lvl, checked against the preset of that name.
#
# For each KERNEL:
#   1. a static progload for its architecture (cross-build.sh) and the kernel-oracle tests
#      (crates/progload-host/tests/{crafted,credentials,personality,misc,mutants}.rs) as static test binaries
#      with their programs (oracle-payload.sh);
#   2. kernels.sh run with scripts/farm/guest/run.sh: in the guest, `progload profile`,
#      `progload check --sweep --record` over the guest's userland, and the three tests;
#   3. on this host: the cross-plan, `progload check --replay` of every recorded exec with the
#      guest's captured profile (--profile) over the guest's files (--root: the farm's copy of
#      its userland), and the preset of that kernel against the captured profile
#      (`progload profile --compare`).
# Every step must agree 100 %. Results: ${FARM_OUT:-<repo>/target/farm}/KERNEL/ and a table in
# summary.md there; exit 1 if anything disagrees or a guest fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${FARM_OUT:-$repo/target/farm}"
mkdir -p "$out"
kernels=("$@")
if [ "${#kernels[@]}" -eq 0 ]; then
    mapfile -t kernels < <(python3 "$here/farm.py" kernels)
    kernels+=(riscv64-6.12-sv39 riscv64-6.12-sv48)
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
cross="$CARGO_TARGET_DIR/cross"
host_progload="$CARGO_TARGET_DIR/release/progload"
(cd "$repo" && cargo build -q --release --locked -p progload-cli --bin progload)

arch_of() { case "$1" in x86_64-*) echo x86_64 ;; aarch64-*) echo aarch64 ;; riscv64-*) echo riscv64 ;; esac; }

# Build the oracle tests afresh in each run (cargo rebuilds only what changed).
rm -rf "$out"/oracle-*
declare -A built=()
fail=0
summary="$out/summary.md"
{
    echo "| kernel | release | sweep: files | identical | set-id, identical but random | same errno | not modelled | disagree | crafted cases | crafted disagree | credentials | personality | binfmt_misc | mutants | replayed | replay disagree | preset |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$summary.tmp"

for k in "${kernels[@]}"; do
    # The kernel to boot, and the command-line switch of a paging-mode variant.
    boot="$k" append="${FARM_APPEND:-}"
    case "$k" in
        riscv64-*-sv39) boot="${k%-sv39}" append="$append no4lvl" ;;
        riscv64-*-sv48) boot="${k%-sv48}" append="$append no5lvl" ;;
    esac
    arch="$(arch_of "$k")"
    [ -n "$arch" ] || { echo "farm-check: unknown KERNEL $k" >&2; exit 2; }
    if [ -z "${built[$arch]:-}" ]; then
        bash "$here/cross-build.sh" "$arch" "$cross/$arch" >&2
        built[$arch]=1
    fi
    payload="$out/$k.payload"
    rm -rf "$payload" "$out/$k"
    mkdir -p "$payload"
    cp "$cross/$arch/progload" "$here/guest/run.sh" "$payload/"
    # The oracle tests for this architecture (test binaries and their programs).
    if [ ! -x "$out/oracle-$arch/crafted" ]; then
        bash "$here/oracle-payload.sh" "$arch" "$out/oracle-$arch" >&2
    fi
    cp "$out/oracle-$arch"/{crafted,credentials,personality,misc,mutants} "$payload/"
    cp -r "$out/oracle-$arch"/{load_address,testprogs} "$payload/"
    echo "farm-check: $k: booting" >&2
    if ! FARM_APPEND="$append" bash "$here/kernels.sh" run "$boot" "$payload" "$out/$k" >&2; then
        echo "farm-check: $k: the guest failed (see $out/$k/console.log)" >&2
        fail=1
        continue
    fi
    g="$out/$k"
    root="$(python3 "$here/farm.py" prepare "$boot" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')"
    # The cross-plan: every recorded exec, planned here from the guest's profile and files.
    set +e
    "$host_progload" check --replay --json --profile "$g/profile.json" --root "$root" "$g/rec" >"$g/replay.json" 2>"$g/replay.err"
    # The preset of this kernel against the profile the guest captured.
    "$host_progload" profile --preset "$k" --compare "$g/profile.json" >"$g/preset.txt" 2>&1
    preset_rc=$?
    set -e
    row="$(python3 - "$k" "$g" "$preset_rc" <<'EOF'
import json, os, re, sys
k, g, preset_rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(name):
    try:
        return json.load(open(os.path.join(g, name)))
    except (OSError, ValueError):
        return None
sweep, replay, profile = load("sweep.json"), load("replay.json"), load("profile.json")
bad = 0
def counts(r):
    c = (r or {}).get("counts", {})
    disagree = sum(v for key, v in c.items() if key in ("differing", "mismatched_outcome", "probe_error"))
    return c, disagree, (r or {}).get("files", 0)
sc, sd, sf = counts(sweep)
rc, rd, rf = counts(replay)
if sweep is None or sd or sf == 0:
    bad = 1
if replay is None or rd or rf == 0:
    bad = 1
crafted_cases, crafted_bad = "-", "-"
path = os.path.join(g, "crafted.txt")
if os.path.exists(path):
    text = open(path, errors="replace").read()
    m = re.search(r"^total\s+(\d+)\s+(\d+)$", text, re.M)
    crafted_cases, crafted_bad = (m.group(1), m.group(2)) if m else ("?", "?")
    if not m or m.group(2) != "0" or "test result: ok" not in text:
        bad = 1
# credentials.rs, personality.rs, misc.rs: tests that compare each case with the kernel (the
# first two print "N cases:" lines).
def oracle(name):
    global bad
    path = os.path.join(g, name + ".txt")
    text = open(path, errors="replace").read() if os.path.exists(path) else ""
    m = re.search(r"^test result: (\w+)\. (\d+) passed; (\d+) failed", text, re.M)
    if not m or m.group(1) != "ok" or m.group(2) == "0":
        bad = 1
        return "FAILED" if m else "missing"
    cases = sum(int(n) for n in re.findall(r"(\d+) (?:cases:|mutants \(seed)", text))
    return f"{cases} agree" if cases else f"{m.group(2)} tests pass"
creds, pers, misc = oracle("credentials"), oracle("personality"), oracle("misc")
mutants = oracle("mutants")
if preset_rc != 0:
    bad = 1
release = (profile or {}).get("kernel", "?")
print(f"| {k} | {release} | {sf} | {sc.get('identical', 0)} | {sc.get('identical_modulo_randomization', 0)} "
      f"| {sc.get('refused_with_same_errno', 0)} | {sc.get('not_modelled', 0)} | {sd} | {crafted_cases} | {crafted_bad} "
      f"| {creds} | {pers} | {misc} | {mutants} "
      f"| {rf} | {rd} | {'equal' if preset_rc == 0 else 'DIFFERS'} |")
sys.exit(bad)
EOF
)" || fail=1
    echo "$row" >>"$summary.tmp"
    echo "farm-check: $row" >&2
done
mv "$summary.tmp" "$summary"
cat "$summary"
exit "$fail"
