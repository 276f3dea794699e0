//! The host profile: what this kernel, CPU and process would put into an exec, read from
//! /proc (the process's own auxv, maps, vDSO and status).

use std::fs;
use std::sync::Arc;

use progload::arch::riscv64::{AT_L1I_CACHESIZE, AT_L3_CACHEGEOMETRY};
use progload::auxv::*;
use progload::profile::{Compat, Credentials, KernelVersion, Profile, Vdso, VdsoPart};
use rustix::thread::CapabilitySet;

use crate::proc::{Proc, Status};

fn read_u64(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn read_self_mem(addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    Proc::Current.read_mem(addr, &mut buf)?;
    Ok(buf)
}

/// The calling process's auxiliary vector, with its terminating `(0, 0)` (empty when
/// `/proc/self/auxv` cannot be read).
pub fn self_auxv() -> Vec<(u64, u64)> {
    Proc::Current.auxv().unwrap_or_default()
}

/// The running kernel's release, from `/proc/version` (where Debian's kernels name their
/// point release), else from `uname -r`.
///
/// # Errors
/// When neither names a release.
pub fn kernel_version() -> std::io::Result<KernelVersion> {
    let text = fs::read_to_string("/proc/version").unwrap_or_default();
    KernelVersion::from_proc_version(&text)
        .or_else(|| {
            let uname = rustix::system::uname();
            KernelVersion::parse(&uname.release().to_string_lossy())
        })
        .ok_or_else(|| {
            std::io::Error::other("the kernel release is neither in /proc/version nor in uname")
        })
}

/// Detects the host profile: this process's credentials and limits, this kernel's release, vDSO and
/// sysctls, this CPU's hwcaps.
///
/// # Errors
/// When /proc cannot be read.
pub fn host_profile() -> std::io::Result<Profile> {
    let kernel = kernel_version()?;
    let mut p = if cfg!(target_arch = "aarch64") {
        Profile::linux_aarch64(kernel)
    } else if cfg!(target_arch = "riscv64") {
        riscv64_layout(Profile::linux_riscv64(kernel))
    } else {
        Profile::linux_x86_64(kernel)
    };
    p.page_size = rustix::param::page_size() as u64;
    if cfg!(target_arch = "aarch64") {
        p.pstate = arm64_pstate();
        // 52-bit VA: TASK_SIZE 2^52 above the 2^48 window, when a page up there maps.
        let high = progload::arch::aarch64::TASK_SIZE_52 - (1 << 20);
        p.task_size = if crate::sys::can_map_page_at(high as usize) {
            progload::arch::aarch64::TASK_SIZE_52
        } else {
            progload::arch::aarch64::DEFAULT_MAP_WINDOW_64
        };
        p.stack_top_max = p.task_size;
    }
    let auxv = self_auxv();
    p.cache_auxv = auxv
        .iter()
        .copied()
        .filter(|(t, _)| (AT_L1I_CACHESIZE..=AT_L3_CACHEGEOMETRY).contains(t))
        .collect();
    let get = |t: u64| auxv.iter().find(|(k, _)| *k == t).map(|&(_, v)| v);
    if let Some(v) = get(AT_HWCAP) {
        p.hwcap = v;
    }
    p.hwcap2 = get(AT_HWCAP2).unwrap_or(0);
    p.hwcap3 = get(AT_HWCAP3);
    if let Some(v) = get(AT_MINSIGSTKSZ) {
        p.minsigstksz = v;
    }
    if let Some(v) = get(AT_CLKTCK) {
        p.clock_ticks = v;
    }
    p.rseq = match (get(AT_RSEQ_FEATURE_SIZE), get(AT_RSEQ_ALIGN)) {
        (Some(s), Some(a)) => Some((s, a)),
        _ => None,
    };
    if let Some(addr) = get(AT_PLATFORM) {
        if let Ok(bytes) = read_self_mem(addr, 64) {
            let end = bytes.iter().position(|&c| c == 0).unwrap_or(0);
            p.platform = String::from_utf8_lossy(&bytes[..end]).into_owned();
        }
    }

    // vDSO: the special mappings of this process, in address order.
    let maps = Proc::Current.maps()?;
    let data = vdso_data(&maps, p.page_size);
    let vdso = maps
        .iter()
        .find(|m| m.path == b"[vdso]")
        .map(|m| (m.start, m.end));
    p.vsyscall = maps.iter().any(|m| m.path == b"[vsyscall]");
    p.vdso = match (vdso, get(AT_SYSINFO_EHDR)) {
        (Some((a, b)), Some(_)) => {
            let image = read_self_mem(a, (b - a) as usize)?;
            let vdso = Vdso::new(data, Arc::from(image), p.arch, p.page_size)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            Some(vdso)
        }
        _ => None,
    };

    let lim = rustix::process::getrlimit(rustix::process::Resource::Stack);
    p.stack_rlimit = lim.current;
    p.mmap_min_addr = read_u64("/proc/sys/vm/mmap_min_addr").unwrap_or(4096);
    p.legacy_va_layout = read_u64("/proc/sys/vm/legacy_va_layout").unwrap_or(0) != 0;
    p.randomize_va_space = read_u64("/proc/sys/kernel/randomize_va_space").unwrap_or(2) as u8;
    if let Some(bits) = read_u64("/proc/sys/vm/mmap_rnd_bits") {
        p.mmap_rnd_bits = bits as u32;
    }
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let gap_pages = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("stack_guard_gap="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(256);
    p.stack_guard_gap = gap_pages * p.page_size;
    if let Ok(v) = Proc::Current.personality() {
        p.personality = v;
    }
    let status = Proc::CurrentThread.status()?;
    p.credentials = credentials_in(&status);
    // The bounding set: what a new effective uid 0 gets (see Profile::cap_sys_rawio). The
    // kernel checks CAP_SYS_RAWIO in the initial user namespace, so inside another one
    // (a rootless container, `unshare -r`) it never applies.
    let initial_ns = fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().eq(["0", "0", "4294967295"]));
    p.cap_sys_rawio = initial_ns
        && status
            .capabilities("CapBnd")
            .contains(CapabilitySet::SYS_RAWIO);
    p.tomoyo = tomoyo_active(&cmdline);
    p.overcommit = overcommit(p.page_size);
    Ok(p)
}

/// The overcommit policy and memory figures (/proc/sys/vm and /proc/meminfo), or `None` when
/// they cannot be read (then the plan does not model overcommit).
fn overcommit(page: u64) -> Option<progload::profile::Overcommit> {
    use progload::profile::{Overcommit, OvercommitPolicy};
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kb = |name: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    let pages = |kbytes: u64| kbytes.saturating_mul(1024) / page;
    let policy = OvercommitPolicy::from_value(read_u64("/proc/sys/vm/overcommit_memory")? as u8)?;
    Some(Overcommit {
        policy,
        ram_pages: pages(kb("MemTotal")?),
        swap_pages: pages(kb("SwapTotal").unwrap_or(0)),
        commit_limit_pages: pages(kb("CommitLimit")?),
        committed_pages: pages(kb("Committed_AS")?),
        admin_reserve_pages: pages(read_u64("/proc/sys/vm/admin_reserve_kbytes").unwrap_or(0)),
        user_reserve_pages: pages(read_u64("/proc/sys/vm/user_reserve_kbytes").unwrap_or(0)),
    })
}

/// [`host_profile`] with its compat part ([`Profile::compat`]): on x86_64, what this kernel
/// gives an ia32 task, from a 32-bit probe (a fork and a traced exec, once per process), so
/// that i386 programs can be planned. Elsewhere, or where the probe cannot run, the same as
/// [`host_profile`].
///
/// # Errors
/// As [`host_profile`].
pub fn host_profile_with_compat() -> std::io::Result<Profile> {
    let mut p = host_profile()?;
    #[cfg(target_arch = "x86_64")]
    {
        static COMPAT: std::sync::OnceLock<Option<Compat>> = std::sync::OnceLock::new();
        let page = p.page_size;
        p.compat = COMPAT.get_or_init(|| ia32_compat(page)).clone();
    }
    Ok(p)
}

/// A static i386 program that exits at once: the ELF32 header, a PT_LOAD of the file (r-x, at
/// 0x08048000), a non-executable PT_GNU_STACK, and `mov $1, %eax; xor %ebx, %ebx; int $0x80`.
#[cfg(target_arch = "x86_64")]
fn ia32_exit_program() -> Vec<u8> {
    const BASE: u32 = 0x0804_8000;
    const CODE: [u8; 9] = [0xb8, 0x01, 0x00, 0x00, 0x00, 0x31, 0xdb, 0xcd, 0x80];
    let code_at: u32 = 52 + 2 * 32;
    let len = code_at + CODE.len() as u32;
    let mut f = Vec::with_capacity(len as usize);
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&progload::arch::i386::EM_386.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&(BASE + code_at).to_le_bytes()); // e_entry
    f.extend_from_slice(&52u32.to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [52u16, 32, 2, 0, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        f.extend_from_slice(&half.to_le_bytes());
    }
    // PT_LOAD r-x over the whole file, then PT_GNU_STACK rw-.
    for word in [1, 0, BASE, BASE, len, len, 5, 0x1000] {
        f.extend_from_slice(&word.to_le_bytes());
    }
    for word in [0x6474_e551u32, 0, 0, 0, 0, 0, 6, 16] {
        f.extend_from_slice(&word.to_le_bytes());
    }
    f.extend_from_slice(&CODE);
    f
}

/// What this kernel gives an ia32 task: a tiny static i386 program run under the probe
/// (stopped at its first instruction, then killed) shows the vdso32 layout, its image and
/// `__kernel_vsyscall` entry, and the compat auxv values. `None` when the kernel does not run
/// it (no IA32 emulation, `ia32_emulation=0`) or the probe cannot trace here.
#[cfg(target_arch = "x86_64")]
fn ia32_compat(page: u64) -> Option<Compat> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir();
    let path = dir.join(format!(".progload-ia32-probe.{}", std::process::id()));
    fs::write(&path, ia32_exit_program()).ok()?;
    let outcome = fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).and_then(|()| {
        let mut req = crate::probe::ProbeRequest::new(path.as_os_str().as_encoded_bytes());
        req.no_randomize = true;
        crate::probe::probe(&req)
    });
    let _ = fs::remove_file(&path);
    let crate::probe::ProbeOutcome::Stopped(img) = outcome.ok()? else {
        return None;
    };
    let get = |t: u64| img.auxv_get(t);
    let data = vdso_data(&img.maps, page);
    let (vdso, vdso_entry) = match (img.vdso_image.clone(), get(AT_SYSINFO_EHDR)) {
        (Some(image), Some(base)) => {
            let entry = get(progload::arch::i386::AT_SYSINFO)?.checked_sub(base)?;
            let v = Vdso::new(data, Arc::from(image), progload::arch::Arch::I386, page).ok()?;
            (Some(v), entry)
        }
        _ => (None, 0),
    };
    Some(Compat {
        mmap_rnd_bits: read_u64("/proc/sys/vm/mmap_rnd_compat_bits")
            .map_or(progload::arch::i386::MMAP_RND_COMPAT_BITS, |b| b as u32),
        hwcap: get(AT_HWCAP).unwrap_or(0),
        hwcap2: get(AT_HWCAP2).unwrap_or(0),
        minsigstksz: get(AT_MINSIGSTKSZ).unwrap_or(0),
        vdso,
        vdso_entry,
    })
}

/// The vDSO's data mappings (`[vvar]`, `[vvar_vclock]`) of a process's maps, in address order.
fn vdso_data(maps: &[crate::proc::MapsLine], page: u64) -> Vec<VdsoPart> {
    maps.iter()
        .filter(|m| m.path == b"[vvar]" || m.path == b"[vvar_vclock]")
        .map(|m| VdsoPart {
            name: String::from_utf8_lossy(&m.path).into_owned(),
            pages: (m.end - m.start) / page,
            prot: progload::Prot::READ,
        })
        .collect()
}

/// Whether TOMOYO is among the active security modules: /sys/kernel/security/lsm (securityfs,
/// which systemd mounts), else an `lsm=` on the kernel command line (`cmdline`), else not
/// known: false.
fn tomoyo_active(cmdline: &str) -> bool {
    let listed = |list: &str| list.trim().split(',').any(|m| m == "tomoyo");
    if let Ok(list) = fs::read_to_string("/sys/kernel/security/lsm") {
        return listed(&list);
    }
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix("lsm="))
        .is_some_and(listed)
}

/// arm64's initial PSTATE: `PSR_SSBS_BIT` unless this task's Spectre-v4 mitigation is on
/// (`Speculation_Store_Bypass:` of /proc/self/status says mitigated), which an exec keeps.
fn arm64_pstate() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mitigated = status
        .lines()
        .find_map(|l| l.strip_prefix("Speculation_Store_Bypass:"))
        .is_some_and(|v| v.contains("mitigated"));
    if mitigated {
        0
    } else {
        progload::arch::aarch64::PSR_SSBS_BIT
    }
}

/// riscv64's paging mode, from the `mmu` line of /proc/cpuinfo (sv39, sv48, sv57).
fn riscv64_layout(p: Profile) -> Profile {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mmu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("mmu")?.split(':').nth(1))
        .map(str::trim);
    let va_bits = match mmu {
        Some("sv39") => 39,
        Some("sv57") => 57,
        _ => 48,
    };
    p.with_riscv64_paging(va_bits)
}

fn credentials_in(status: &Status) -> Credentials {
    let ids = |name: &str| status.ids(name).unwrap_or_default();
    let (uids, gids) = (ids("Uid"), ids("Gid"));
    Credentials {
        uid: uids.first().copied().unwrap_or(0),
        euid: uids.get(1).copied().unwrap_or(0),
        gid: gids.first().copied().unwrap_or(0),
        egid: gids.get(1).copied().unwrap_or(0),
        groups: ids("Groups"),
        no_new_privs: status.flag("NoNewPrivs"),
    }
}

/// This thread's own credentials (ids, groups, no_new_privs), from /proc.
///
/// # Errors
/// When /proc cannot be read.
pub fn current_credentials() -> std::io::Result<Credentials> {
    Ok(credentials_in(&Proc::CurrentThread.status()?))
}

/// Whether this thread has CAP_SYS_PTRACE in effect: as a tracer it then leaves set-id execs
/// alone (`ptracer_capable()`); without it the kernel downgrades them.
///
/// # Errors
/// When /proc cannot be read.
pub fn can_trace_set_id() -> std::io::Result<bool> {
    Ok(Proc::CurrentThread
        .status()?
        .capabilities("CapEff")
        .contains(CapabilitySet::SYS_PTRACE))
}
