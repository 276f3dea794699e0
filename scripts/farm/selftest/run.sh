#!/bin/sh
# Selftest payload of the kernel farm: what the guest looks like, written to $OUT.
# If /payload/progload exists (a static build, see scripts/farm/cross-build.sh), it runs
# `progload --help` and `progload profile` too.
OUT="${OUT:-/out}"
B=/bin/busybox
cd /payload || exit 1

uname -a >"$OUT/uname" 2>&1
cat /proc/version >"$OUT/proc_version"
head -30 /proc/cpuinfo >"$OUT/cpuinfo"
id >"$OUT/id" 2>&1
echo "$PATH" >"$OUT/path"

# Executable regular files (not symlinks) in /usr/bin /bin /usr/sbin /sbin; a directory that is a
# symlink (usrmerge: /bin -> usr/bin) is counted once, under its target.
count() {
    seen=""
    total=0 elf=0 script=0 other=0
    elfmagic=$(printf '\177ELF')
    for d in /usr/bin /bin /usr/sbin /sbin; do
        r=$($B readlink -f "$d") || continue
        [ -d "$r" ] || continue
        case " $seen " in *" $r "*) continue ;; esac
        seen="$seen $r"
        for f in "$r"/*; do
            [ -f "$f" ] && [ ! -L "$f" ] && [ -x "$f" ] || continue
            total=$((total + 1))
            magic=$($B head -c 4 "$f" 2>/dev/null)
            case "$magic" in
                "$elfmagic") elf=$((elf + 1)) ;;
                '#!'*) script=$((script + 1)) ;;
                *) other=$((other + 1)) ;;
            esac
        done
    done
    echo "dirs:$seen"
    echo "total=$total elf=$elf script=$script other=$other"
}
count >"$OUT/exec_count" 2>&1
ls -ld /bin /sbin /lib /lib64 /usr/bin 2>&1 >"$OUT/layout"

# /proc/self/maps of a few programs: busybox (static), coreutils cat (PIE + ld.so), bash, perl.
$B cat /proc/self/maps >"$OUT/maps.busybox-cat" 2>&1
cat /proc/self/maps >"$OUT/maps.cat" 2>&1
bash -c 'cat /proc/$$/maps' >"$OUT/maps.bash" 2>&1
perl -e 'open(F, "/proc/self/maps"); print <F>' >"$OUT/maps.perl" 2>&1

{ getconf PAGESIZE || echo "getconf: not available"; } >"$OUT/pagesize" 2>&1
for f in /proc/sys/vm/mmap_rnd_bits /proc/sys/vm/mmap_rnd_compat_bits /proc/sys/kernel/randomize_va_space \
         /proc/sys/vm/mmap_min_addr /proc/sys/vm/overcommit_memory /proc/sys/kernel/yama/ptrace_scope; do
    printf '%s=%s\n' "$f" "$(cat "$f" 2>&1)"
done >"$OUT/sysctl"
ls -la /proc/sys/fs/binfmt_misc >"$OUT/binfmt_misc" 2>&1
cat /proc/cmdline >"$OUT/cmdline"
$B df -k / /tmp >"$OUT/df" 2>&1

if [ -x /payload/progload ]; then
    file_out=$(/payload/progload --help 2>&1); echo "rc=$?" >"$OUT/progload.help.rc"
    printf '%s\n' "$file_out" >"$OUT/progload.help"
    /payload/progload profile >"$OUT/progload.profile" 2>&1; echo "rc=$?" >"$OUT/progload.profile.rc"
fi

# A short summary on the console.
echo "selftest: $(cat "$OUT/proc_version")"
echo "selftest: $(tail -1 "$OUT/exec_count")"
echo "selftest: pagesize $(cat "$OUT/pagesize"); $(tr '\n' ' ' <"$OUT/sysctl")"
[ -f "$OUT/progload.profile.rc" ] && echo "selftest: progload profile $(cat "$OUT/progload.profile.rc")"
exit 0
