//! Profiles as JSON files: `progload profile` writes the host's, `--profile FILE` reads one.

use std::sync::Arc;

use progload::arch::Arch;
use progload::contract::{from_hex, to_hex};
use progload::profile::{
    Compat, Credentials, KernelVersion, Overcommit, OvercommitPolicy, Profile, Vdso, VdsoPart,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct VdsoPartFile {
    name: String,
    pages: u64,
    /// As /proc/PID/maps shows it: `r--`.
    prot: String,
}

#[derive(Serialize, Deserialize)]
struct VdsoFile {
    data: Vec<VdsoPartFile>,
    /// The vDSO image as hex; absent means a zero-filled image of `text_pages` pages.
    #[serde(default)]
    image_hex: Option<String>,
    #[serde(default)]
    text_pages: Option<u64>,
}

/// [`Compat`]: what an ia32 task gets.
#[derive(Serialize, Deserialize)]
struct CompatFile {
    mmap_rnd_bits: u32,
    hwcap: u64,
    hwcap2: u64,
    minsigstksz: u64,
    #[serde(default)]
    vdso: Option<VdsoFile>,
    vdso_entry: u64,
}

impl VdsoFile {
    fn of(v: &Vdso, page_size: u64) -> Self {
        VdsoFile {
            data: v
                .data
                .iter()
                .map(|d| VdsoPartFile {
                    name: d.name.clone(),
                    pages: d.pages,
                    prot: d.prot.to_string(),
                })
                .collect(),
            image_hex: Some(to_hex(&v.image)),
            text_pages: Some(v.text_pages(page_size)),
        }
    }

    fn into_vdso(self, arch: Arch, page_size: u64) -> Result<Vdso, String> {
        let image = match (self.image_hex, self.text_pages) {
            (Some(h), _) => from_hex(&h).ok_or("vdso.image_hex is not hex")?,
            (None, Some(n)) => progload::vdso::placeholder(arch, n, page_size),
            (None, None) => return Err("vdso needs image_hex or text_pages".into()),
        };
        let data = self
            .data
            .into_iter()
            .map(|d| {
                let prot = d
                    .prot
                    .parse()
                    .map_err(|e| format!("vdso {}: {e}", d.name))?;
                Ok(VdsoPart {
                    name: d.name,
                    pages: d.pages,
                    prot,
                })
            })
            .collect::<Result<_, String>>()?;
        Vdso::new(data, Arc::from(image), arch, page_size).map_err(|e| format!("vdso: {e}"))
    }
}

#[derive(Serialize, Deserialize)]
struct CredentialsFile {
    uid: u32,
    euid: u32,
    gid: u32,
    egid: u32,
    #[serde(default)]
    groups: Vec<u32>,
    #[serde(default)]
    no_new_privs: bool,
}

/// The JSON form of a [`Profile`]; every field is required except where a default is noted.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    arch: String,
    /// The kernel release, `6.1.140`.
    kernel: String,
    page_size: u64,
    task_size: u64,
    stack_top: u64,
    stack_top_max: u64,
    elf_et_dyn_base: u64,
    task_unmapped_base: u64,
    hwcap: u64,
    hwcap2: u64,
    #[serde(default)]
    hwcap3: Option<u64>,
    /// riscv64's cache entries, `[[type, value], ...]`; empty elsewhere.
    #[serde(default)]
    cache_auxv: Vec<(u64, u64)>,
    /// arm64's initial PSTATE (0 elsewhere).
    #[serde(default)]
    pstate: u64,
    minsigstksz: u64,
    platform: String,
    clock_ticks: u64,
    #[serde(default)]
    rseq: Option<(u64, u64)>,
    #[serde(default)]
    vdso: Option<VdsoFile>,
    vsyscall: bool,
    /// Bytes; null is unlimited.
    stack_rlimit: Option<u64>,
    mmap_min_addr: u64,
    stack_guard_gap: u64,
    legacy_va_layout: bool,
    randomize_va_space: u8,
    mmap_rnd_bits: u32,
    personality: u32,
    credentials: CredentialsFile,
    cap_sys_rawio: bool,
    /// Absent in files of progload before 0.2: false.
    #[serde(default)]
    tomoyo: bool,
    /// The overcommit policy and memory; absent or null: not modelled.
    #[serde(default)]
    overcommit: Option<OvercommitFile>,
    /// What an ia32 program gets (x86_64); absent: 32-bit programs are not modelled.
    #[serde(default)]
    compat: Option<CompatFile>,
}

/// The JSON form of [`progload::profile::Overcommit`] (pages of `page_size`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OvercommitFile {
    /// `vm.overcommit_memory`: 0, 1 or 2.
    overcommit_memory: u8,
    ram_pages: u64,
    swap_pages: u64,
    commit_limit_pages: u64,
    committed_pages: u64,
    admin_reserve_pages: u64,
    user_reserve_pages: u64,
}

impl From<&Profile> for ProfileFile {
    fn from(p: &Profile) -> Self {
        ProfileFile {
            arch: p.arch.name().to_string(),
            kernel: p.kernel.to_string(),
            page_size: p.page_size,
            task_size: p.task_size,
            stack_top: p.stack_top,
            stack_top_max: p.stack_top_max,
            elf_et_dyn_base: p.elf_et_dyn_base,
            task_unmapped_base: p.task_unmapped_base,
            hwcap: p.hwcap,
            hwcap2: p.hwcap2,
            hwcap3: p.hwcap3,
            cache_auxv: p.cache_auxv.clone(),
            pstate: p.pstate,
            minsigstksz: p.minsigstksz,
            platform: p.platform.clone(),
            clock_ticks: p.clock_ticks,
            rseq: p.rseq,
            vdso: p.vdso.as_ref().map(|v| VdsoFile::of(v, p.page_size)),
            vsyscall: p.vsyscall,
            stack_rlimit: p.stack_rlimit,
            mmap_min_addr: p.mmap_min_addr,
            stack_guard_gap: p.stack_guard_gap,
            legacy_va_layout: p.legacy_va_layout,
            randomize_va_space: p.randomize_va_space,
            mmap_rnd_bits: p.mmap_rnd_bits,
            personality: p.personality,
            credentials: CredentialsFile {
                uid: p.credentials.uid,
                euid: p.credentials.euid,
                gid: p.credentials.gid,
                egid: p.credentials.egid,
                groups: p.credentials.groups.clone(),
                no_new_privs: p.credentials.no_new_privs,
            },
            cap_sys_rawio: p.cap_sys_rawio,
            tomoyo: p.tomoyo,
            overcommit: p.overcommit.as_ref().map(|o| OvercommitFile {
                overcommit_memory: o.policy.value(),
                ram_pages: o.ram_pages,
                swap_pages: o.swap_pages,
                commit_limit_pages: o.commit_limit_pages,
                committed_pages: o.committed_pages,
                admin_reserve_pages: o.admin_reserve_pages,
                user_reserve_pages: o.user_reserve_pages,
            }),
            compat: p.compat.as_ref().map(|c| CompatFile {
                mmap_rnd_bits: c.mmap_rnd_bits,
                hwcap: c.hwcap,
                hwcap2: c.hwcap2,
                minsigstksz: c.minsigstksz,
                vdso: c.vdso.as_ref().map(|v| VdsoFile::of(v, p.page_size)),
                vdso_entry: c.vdso_entry,
            }),
        }
    }
}

impl TryFrom<ProfileFile> for Profile {
    type Error = String;
    fn try_from(f: ProfileFile) -> Result<Self, String> {
        let arch = Arch::from_name(&f.arch).ok_or_else(|| format!("unknown arch {:?}", f.arch))?;
        if !f.page_size.is_power_of_two() || f.page_size < 4096 {
            return Err(format!(
                "page_size {} is not a power of two ≥ 4096",
                f.page_size
            ));
        }
        let vdso = f.vdso.map(|v| v.into_vdso(arch, f.page_size)).transpose()?;
        let compat = match f.compat {
            None => None,
            Some(c) => Some(Compat {
                mmap_rnd_bits: c.mmap_rnd_bits,
                hwcap: c.hwcap,
                hwcap2: c.hwcap2,
                minsigstksz: c.minsigstksz,
                vdso: c
                    .vdso
                    .map(|v| v.into_vdso(Arch::I386, f.page_size))
                    .transpose()
                    .map_err(|e| format!("compat {e}"))?,
                vdso_entry: c.vdso_entry,
            }),
        };
        let overcommit = match f.overcommit {
            None => None,
            Some(o) => Some(Overcommit {
                policy: OvercommitPolicy::from_value(o.overcommit_memory).ok_or_else(|| {
                    format!("overcommit_memory {} is not 0, 1 or 2", o.overcommit_memory)
                })?,
                ram_pages: o.ram_pages,
                swap_pages: o.swap_pages,
                commit_limit_pages: o.commit_limit_pages,
                committed_pages: o.committed_pages,
                admin_reserve_pages: o.admin_reserve_pages,
                user_reserve_pages: o.user_reserve_pages,
            }),
        };
        let kernel = KernelVersion::parse(&f.kernel)
            .ok_or_else(|| format!("kernel {:?} is not a release like 6.1.140", f.kernel))?;
        Ok(Profile {
            arch,
            kernel,
            page_size: f.page_size,
            task_size: f.task_size,
            stack_top: f.stack_top,
            stack_top_max: f.stack_top_max,
            elf_et_dyn_base: f.elf_et_dyn_base,
            task_unmapped_base: f.task_unmapped_base,
            hwcap: f.hwcap,
            hwcap2: f.hwcap2,
            hwcap3: f.hwcap3,
            cache_auxv: f.cache_auxv,
            pstate: f.pstate,
            minsigstksz: f.minsigstksz,
            platform: f.platform,
            clock_ticks: f.clock_ticks,
            rseq: f.rseq,
            vdso,
            vsyscall: f.vsyscall,
            stack_rlimit: f.stack_rlimit,
            mmap_min_addr: f.mmap_min_addr,
            stack_guard_gap: f.stack_guard_gap,
            legacy_va_layout: f.legacy_va_layout,
            randomize_va_space: f.randomize_va_space,
            mmap_rnd_bits: f.mmap_rnd_bits,
            personality: f.personality,
            credentials: Credentials {
                uid: f.credentials.uid,
                euid: f.credentials.euid,
                gid: f.credentials.gid,
                egid: f.credentials.egid,
                groups: f.credentials.groups,
                no_new_privs: f.credentials.no_new_privs,
            },
            cap_sys_rawio: f.cap_sys_rawio,
            tomoyo: f.tomoyo,
            overcommit,
            compat,
        })
    }
}

/// The fields a preset cannot know (see `progload profile --help`): left out of [`compare`].
const MACHINE_FIELDS: &[&str] = &[
    "hwcap",
    "hwcap2",
    "hwcap3",
    "platform",
    "minsigstksz",
    "cache_auxv",
    // The vdso32 image and its entry are the build's (a preset has none).
    "compat",
    // The machine's memory and commit state.
    "overcommit",
];

/// `progload profile --compare FILE`: `p` against the profile in `file`, in every field but
/// [`MACHINE_FIELDS`] and the vDSO image's bytes (its size in pages is compared).
pub fn compare(p: &Profile, file: &std::path::Path) -> std::process::ExitCode {
    use std::process::ExitCode;
    // Read through ProfileFile, so that fields an older capture lacks take their defaults.
    let theirs: serde_json::Value = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<ProfileFile>(&t).map_err(|e| e.to_string()))
        .and_then(|f| serde_json::to_value(f).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("progload: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let ours = serde_json::to_value(ProfileFile::from(p)).unwrap_or_default();
    // The vDSO without its image's bytes (its size in pages stays).
    let pages = |v: &serde_json::Value| -> serde_json::Value {
        let mut v = v.clone();
        if let Some(vdso) = v.as_object_mut() {
            vdso.remove("image_hex");
        }
        v
    };
    let mut differ = 0;
    if let (Some(a), Some(b)) = (ours.as_object(), theirs.as_object()) {
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            if MACHINE_FIELDS.contains(&k.as_str()) {
                continue;
            }
            let strip = |v: Option<&serde_json::Value>| {
                v.map(|v| if k == "vdso" { pages(v) } else { v.clone() })
            };
            let (x, y) = (strip(a.get(k)), strip(b.get(k)));
            if x != y {
                differ += 1;
                let show =
                    |v: Option<serde_json::Value>| v.map_or("(none)".into(), |v| v.to_string());
                println!("{k}: preset {} / {}: {}", show(x), file.display(), show(y));
            }
        }
    }
    if differ == 0 {
        println!("equal in every field a preset can know");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
