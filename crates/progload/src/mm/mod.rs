//! The new mm, as `exec_mmap()` installs it and the loader fills it: the mmap layout
//! (`arch_pick_mmap_layout()`, `mm/util.c`), private file mappings (`vm_mmap()` →
//! `do_mmap()`, with `round_hint_to_min()` and `get_unmapped_area()`), `vm_brk_flags()`,
//! `MAP_FIXED` and `munmap`, and `randomize_page()`.
//!
//! [`Mm`] keeps the VMA model ([`vmas`]), the files mapped so far, and the `padzero()` ranges,
//! so every later placement sees what the kernel's would see. Nothing here knows ELF: the ELF
//! loader (`binfmt::elf`) drives it.

pub mod vmas;

use alloc::vec::Vec;

use rand_core::Rng;

pub use vmas::{Backing, Search, Vma, Vmas, HUGE_SIZE};

use crate::errno::Errno;
use crate::fs::Metadata;
use crate::profile::rules::ExecRules;
use crate::profile::{Profile, ADDR_COMPAT_LAYOUT, READ_IMPLIES_EXEC};
use crate::prot::Prot;

/// `ELF_PAGESTART`: `v` rounded down to a page.
pub fn page_start(v: u64, page: u64) -> u64 {
    v & !page.wrapping_sub(1)
}

/// `ELF_PAGEOFFSET`: `v`'s offset in its page.
pub fn page_offset(v: u64, page: u64) -> u64 {
    v & page.wrapping_sub(1)
}

/// `ELF_PAGEALIGN`: `v` rounded up to a page (wrapping, as the kernel's unsigned arithmetic
/// does).
pub fn page_align(v: u64, page: u64) -> u64 {
    v.wrapping_add(page.wrapping_sub(1)) & !page.wrapping_sub(1)
}

/// A file the plan maps.
#[derive(Clone, Debug)]
pub struct PlanFile<N> {
    /// The file.
    pub node: N,
    /// Its path inside the root, as /proc/PID/maps shows it.
    pub path: Vec<u8>,
    /// Its metadata.
    pub meta: Metadata,
}

/// Why a mapping in the new mm failed: the errno `do_mmap()`/`vm_brk_flags()` returns. After
/// the point of no return every one of them kills the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `MAP_FIXED_NOREPLACE` over an existing mapping (EEXIST).
    Exists,
    /// Below `vm.mmap_min_addr` without CAP_SYS_RAWIO (EPERM).
    BelowMinAddr,
    /// The file offset or the fixed address is not page aligned (EINVAL).
    Misaligned,
    /// The file range overflows the file offset type (EOVERFLOW).
    OffsetOverflow,
    /// No room, or beyond `TASK_SIZE` (ENOMEM).
    NoMemory,
    /// The overcommit policy refuses the charge (ENOMEM).
    Overcommit,
    /// `padzero()` faulted on a page past the end of the file (EFAULT, from `elf_load()`).
    PadZeroFault,
}

impl MapError {
    /// The kernel's errno for it.
    pub fn errno(self) -> Errno {
        match self {
            MapError::Exists => Errno::EEXIST,
            MapError::BelowMinAddr => Errno::EPERM,
            MapError::Misaligned => Errno::EINVAL,
            MapError::OffsetOverflow => Errno::EOVERFLOW,
            MapError::NoMemory | MapError::Overcommit => Errno::ENOMEM,
            MapError::PadZeroFault => Errno::EFAULT,
        }
    }
}

/// The new mm while the loader fills it.
pub struct Mm<'a, N> {
    /// The profile planned for.
    pub profile: &'a Profile,
    /// The page size.
    pub page: u64,
    /// The exec rules of the profile's kernel.
    pub rules: ExecRules,
    rng: &'a mut dyn Rng,
    /// Whether the layout is randomized (`PF_RANDOMIZE`).
    pub randomize: bool,
    /// The VMAs so far.
    pub vmas: Vmas,
    /// The files mapped so far (index = [`Backing::File`]'s `file`).
    pub files: Vec<PlanFile<N>>,
    /// `padzero()` ranges still in effect: (address, length).
    pub zero: Vec<(u64, u64)>,
    search: Search,
    legacy_base: u64,
    /// `mm->mmap_base`.
    pub mmap_base: u64,
    /// The new credentials' CAP_SYS_RAWIO (mappings below `mmap_min_addr`).
    rawio: bool,
    /// The new personality's `READ_IMPLIES_EXEC` (set by [`Mm::pick_layout`]): `do_mmap()`
    /// adds `PROT_EXEC` to a readable mapping.
    read_implies_exec: bool,
    /// The new credentials' CAP_SYS_ADMIN (the overcommit admin reserve).
    pub cap_sys_admin: bool,
    /// Pages this exec committed so far (`vm_acct_memory()`).
    charged: u64,
}

impl<'a, N: Clone> Mm<'a, N> {
    /// An empty mm (`mm_alloc()`), before `arch_pick_mmap_layout()`.
    pub fn new(profile: &'a Profile, rng: &'a mut dyn Rng, randomize: bool, rawio: bool) -> Self {
        Mm {
            profile,
            page: profile.page_size,
            rules: profile.kernel.rules(),
            rng,
            randomize,
            vmas: Vmas::new(profile.stack_guard_gap),
            files: Vec::new(),
            zero: Vec::new(),
            search: Search {
                low: 0,
                high: 0,
                top_down: true,
                task_size: profile.task_size,
            },
            legacy_base: 0,
            mmap_base: 0,
            rawio,
            read_implies_exec: false,
            cap_sys_admin: false,
            charged: 0,
        }
    }

    /// `security_vm_enough_memory_mm()` of an accounted mapping of `len` bytes under the
    /// profile's overcommit policy.
    ///
    /// # Errors
    /// [`MapError::Overcommit`] when the policy refuses it.
    fn charge(&mut self, len: u64) -> Result<(), MapError> {
        let Some(oc) = &self.profile.overcommit else {
            return Ok(());
        };
        let pages = len.checked_div(self.page).unwrap_or(0);
        let total_vm = self.vmas.iter().fold(0u64, |a, v| {
            a.saturating_add(
                v.end
                    .saturating_sub(v.start)
                    .checked_div(self.page)
                    .unwrap_or(0),
            )
        });
        if !oc.allows(pages, self.charged, total_vm, self.cap_sys_admin) {
            return Err(MapError::Overcommit);
        }
        self.charged = self.charged.saturating_add(pages);
        Ok(())
    }

    /// A raw 64-bit draw from the exec's RNG (`get_random_long()`).
    pub fn rnd(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Fills `buf` from the exec's RNG (`get_random_bytes()`).
    pub fn fill_random(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
    }

    /// `arch_mmap_rnd()`: a page-aligned offset of `mmap_rnd_bits` random bits, or 0.
    pub fn mmap_rnd(&mut self) -> u64 {
        if !self.randomize {
            return 0;
        }
        let bits = self.profile.mmap_rnd_bits.min(63);
        (self.rnd() & (1u64 << bits).wrapping_sub(1)).wrapping_mul(self.page)
    }

    /// `STACK_RND_MASK` of the profile's architecture and kernel (in pages).
    pub fn stack_rnd_mask(&self) -> u64 {
        let arch = self.profile.arch;
        if arch == crate::arch::Arch::Riscv64 && !self.rules.riscv_stack_rnd_1g {
            return 0x7ff;
        }
        arch.spec().stack_rnd_mask
    }

    /// `arch_pick_mmap_layout()` (x86 `mm/mmap.c`, generic `mm/util.c`): legacy bottom-up or
    /// top-down below `mmap_base`, which keeps a gap for the stack of the stack rlimit (`None`:
    /// unlimited), clamped to 128 MiB ..= 5/6 of the stack top.
    pub fn pick_layout(&mut self, personality: u32, rlimit: Option<u64>) {
        self.read_implies_exec = personality & READ_IMPLIES_EXEC != 0;
        let profile = self.profile;
        let page = self.page;
        let spec = profile.arch.spec();
        let legacy = personality & ADDR_COMPAT_LAYOUT != 0
            || profile.legacy_va_layout
            || (spec.legacy_on_unlimited_stack && rlimit.is_none());
        let rnd = self.mmap_rnd();
        let task = profile.stack_top;
        let legacy_base = profile.task_unmapped_base.wrapping_add(rnd);
        let mmap_base = if legacy {
            legacy_base
        } else {
            let mut gap = rlimit.unwrap_or(u64::MAX);
            let mut pad = profile.stack_guard_gap;
            if self.randomize {
                pad = pad.saturating_add(self.stack_rnd_mask().saturating_mul(page));
            }
            if let Some(g) = gap.checked_add(pad) {
                gap = g;
            }
            let gap_min = 128 << 20;
            let gap_max = (task / 6).saturating_mul(5);
            let gap = gap.clamp(gap_min, gap_max);
            // gap <= task/6*5 and rnd < 2^40 pages of a profile that passed validate().
            page_align(task.saturating_sub(gap).saturating_sub(rnd), page)
        };
        self.legacy_base = legacy_base;
        self.mmap_base = mmap_base;
        self.search = Search {
            low: if legacy {
                mmap_base
            } else {
                page.max(profile.mmap_min_addr)
            },
            high: if legacy { profile.task_size } else { mmap_base },
            top_down: !legacy,
            task_size: profile.task_size,
        };
    }

    /// Registers a file the mappings refer to; the same file (path and inode) gets the same
    /// index.
    pub fn add_file(&mut self, node: &N, path: &[u8], meta: &Metadata) -> usize {
        if let Some(i) = self
            .files
            .iter()
            .position(|p| p.path == path && p.meta.inode == meta.inode)
        {
            return i;
        }
        self.files.push(PlanFile {
            node: node.clone(),
            path: path.to_vec(),
            meta: meta.clone(),
        });
        self.files.len().saturating_sub(1)
    }

    /// The size of file `file` (0 if unknown).
    pub fn file_size(&self, file: usize) -> u64 {
        self.files.get(file).map_or(0, |f| f.meta.size)
    }

    /// `get_unmapped_area()` for a non-fixed mapping of `len` bytes at `offset` of `file`
    /// (`None`: an anonymous or special mapping), with the 2 MiB THP rule for files on
    /// filesystems that use it (since 5.18: [`ExecRules::thp_file_alignment`]).
    pub fn get_unmapped_area(
        &self,
        file: Option<usize>,
        hint: u64,
        len: u64,
        offset: u64,
    ) -> Option<u64> {
        // 6.8 (with the top-down fix): no THP alignment in a compat syscall, which an ia32
        // exec is from SET_PERSONALITY on.
        let compat_exempt =
            self.profile.arch == crate::arch::Arch::I386 && self.rules.thp_topdown_skips_aligned;
        let thp = self.rules.thp_file_alignment
            && !compat_exempt
            && file
                .and_then(|f| self.files.get(f))
                .is_some_and(|f| f.meta.thp_aligned);
        let search = self.search_for(hint);
        if thp {
            self.vmas.get_unmapped_area_thp(
                hint,
                len,
                offset,
                &search,
                self.legacy_base,
                self.rules.thp_topdown_skips_aligned,
            )
        } else {
            self.vmas
                .get_unmapped_area(hint, len, &search, self.legacy_base)
        }
    }

    /// The search a hint selects when `TASK_SIZE` is larger than `DEFAULT_MAP_WINDOW` (the
    /// stack top: arm64 with 52-bit VA, x86_64 with 5-level paging): mappings stay below the
    /// window unless the hint lies above it, which opens the space up to `TASK_SIZE` and moves
    /// the top-down base up by as much (`arch_get_mmap_end()`, `arch_get_mmap_base()`).
    /// riscv's window has been the whole `TASK_SIZE` since 6.11.
    fn search_for(&self, hint: u64) -> Search {
        let (window, task) = (self.profile.stack_top, self.profile.task_size);
        let mut s = self.search;
        if self.profile.arch == crate::arch::Arch::Riscv64 || task <= window {
            return s;
        }
        if hint > window {
            s.high = if s.top_down {
                s.high.saturating_add(task.saturating_sub(window))
            } else {
                task
            };
        } else {
            s.task_size = window;
            s.high = s.high.min(window);
        }
        s
    }

    /// `vm_mmap()` of a private file mapping. `fixed` is MAP_FIXED, `noreplace`
    /// MAP_FIXED_NOREPLACE; returns the address.
    ///
    /// # Errors
    /// The [`MapError`] `do_mmap()` returns.
    #[allow(clippy::too_many_arguments)] // mirrors vm_mmap()'s own parameter list
    pub fn mmap_file(
        &mut self,
        file: usize,
        addr: u64,
        len: u64,
        prot: Prot,
        off: u64,
        fixed: bool,
        noreplace: bool,
    ) -> Result<u64, MapError> {
        if page_offset(off, self.page) != 0 {
            return Err(MapError::Misaligned);
        }
        let len = page_align(len, self.page);
        if len == 0 || len > self.profile.task_size {
            return Err(MapError::NoMemory);
        }
        // do_mmap(): file_mmap_ok() limits a regular file's range to MAX_LFS_FILESIZE.
        if off.checked_add(len).is_none() || off > (i64::MAX as u64).saturating_sub(len) {
            return Err(MapError::OffsetOverflow);
        }
        let addr = if fixed || noreplace {
            if page_offset(addr, self.page) != 0 {
                return Err(MapError::Misaligned);
            }
            addr
        } else {
            // round_hint_to_min(): a non-zero hint below mmap_min_addr is raised to it.
            let hint = match page_start(addr, self.page) {
                0 => 0,
                hint if hint < self.profile.mmap_min_addr => {
                    page_align(self.profile.mmap_min_addr, self.page)
                }
                hint => hint,
            };
            self.get_unmapped_area(Some(file), hint, len, off)
                .ok_or(MapError::NoMemory)?
        };
        // len <= task_size was checked above.
        let Some(end) = addr
            .checked_add(len)
            .filter(|&e| e <= self.profile.task_size)
        else {
            return Err(MapError::NoMemory);
        };
        if addr < self.profile.mmap_min_addr && !self.rawio {
            return Err(MapError::BelowMinAddr);
        }
        if noreplace && self.vmas.overlaps(addr, end) {
            return Err(MapError::Exists);
        }
        // accountable_mapping(): a private writable mapping is charged its whole length.
        if prot.contains(Prot::WRITE) {
            self.charge(len)?;
        }
        // READ_IMPLIES_EXEC: a readable mapping becomes executable, unless the file is on a
        // noexec mount.
        let noexec = self.files.get(file).is_some_and(|f| f.meta.noexec);
        let prot = if self.read_implies_exec && prot.contains(Prot::READ) && !noexec {
            prot | Prot::EXEC
        } else {
            prot
        };
        self.map_fixed(Vma {
            start: addr,
            end,
            prot,
            backing: Backing::File { file, offset: off },
        });
        Ok(addr)
    }

    /// `MAP_FIXED` of `vma` in the new mm, forgetting the `padzero()` of any page it replaces.
    pub fn map_fixed(&mut self, vma: Vma) {
        self.forget_zeroed(vma.start, vma.end);
        self.vmas.map_fixed(vma);
    }

    /// `munmap` of `[start, end)`, forgetting the `padzero()` of any page it removes.
    pub fn unmap(&mut self, start: u64, end: u64) {
        self.forget_zeroed(start, end);
        self.vmas.unmap(start, end);
    }

    /// Records a `padzero()`: `len` bytes at `addr` cleared in a private file page.
    pub fn pad_zero(&mut self, addr: u64, len: u64) {
        self.zero.push((addr, len));
    }

    /// `clear_user()` of `len` bytes at `addr`, within one page, into the mappings as they
    /// are now: it writes (and records the zeroing) when the page is mapped writable and,
    /// for a file page, lies within the file; otherwise the write faults (`-EFAULT`) and
    /// nothing is cleared.
    ///
    /// # Errors
    /// [`MapError::PadZeroFault`] where the kernel's write faults.
    pub fn clear_user(&mut self, addr: u64, len: u64) -> Result<(), MapError> {
        if len == 0 {
            return Ok(());
        }
        let Some(vma) = self.vmas.find(addr) else {
            return Err(MapError::PadZeroFault);
        };
        if !vma.prot.contains(Prot::WRITE) || !self.page_in_file(vma, addr) {
            return Err(MapError::PadZeroFault);
        }
        if matches!(vma.backing, Backing::File { .. }) {
            self.pad_zero(addr, len);
        }
        Ok(())
    }

    /// Whether the page of `vma` holding `addr` can be touched without a fault: any page of
    /// an anonymous or special mapping, a file mapping's page only within the file (past its
    /// end the access is SIGBUS).
    fn page_in_file(&self, vma: &Vma, addr: u64) -> bool {
        match vma.backing {
            Backing::File { file, offset } => {
                let page_off =
                    offset.wrapping_add(page_start(addr, self.page).wrapping_sub(vma.start));
                page_off < page_align(self.file_size(file), self.page)
            }
            _ => true,
        }
    }

    /// Drops the recorded `padzero()` ranges inside `[start, end)`. Mirrors the kernel, where
    /// `padzero()` clears bytes of the private page mapped at that moment: a later mapping
    /// that replaces or removes the page (`load_elf_interp()`'s MAP_FIXED over the program,
    /// `elf_map()`'s unmap of the reservation tail) takes the cleared bytes with it, so the
    /// plan must not zero whatever is mapped there in the end.
    fn forget_zeroed(&mut self, start: u64, end: u64) {
        self.zero
            .retain(|&(addr, len)| addr.saturating_add(len) <= start || addr >= end);
    }

    /// `vm_brk_flags()`: anonymous rw pages (plus x) at a fixed address.
    ///
    /// # Errors
    /// ENOMEM past `TASK_SIZE`, EPERM below `mmap_min_addr` without CAP_SYS_RAWIO.
    pub fn brk_map(&mut self, start: u64, len: u64, exec: bool) -> Result<(), MapError> {
        let len = page_align(len, self.page);
        if len == 0 {
            return Ok(());
        }
        let end = start.checked_add(len).ok_or(MapError::NoMemory)?;
        if end > self.profile.task_size {
            return Err(MapError::NoMemory);
        }
        if start < self.profile.mmap_min_addr && !self.rawio {
            return Err(MapError::BelowMinAddr);
        }
        // do_brk_flags(): the bss is always accounted.
        self.charge(len)?;
        // VM_DATA_DEFAULT_FLAGS: executable with READ_IMPLIES_EXEC where it follows the
        // personality.
        let exec = exec
            || (self.read_implies_exec && self.profile.arch.spec().data_exec_follows_personality);
        self.forget_zeroed(start, end);
        let merge_next = !self.rules.brk_extends_prev_only;
        self.vmas.map_brk(
            Vma {
                start,
                end,
                prot: Prot::rw_maybe_x(exec),
                backing: Backing::Anon,
            },
            merge_next,
        );
        Ok(())
    }

    /// What `create_elf_tables()` meets on the stack's pages from `sp` to `top`: it writes
    /// the tables below `arg_start` and reads the argument strings above it. `Ok(None)` when
    /// every page is still the stack's; `Ok(Some(page))`, the first page a segment replaced
    /// that the kernel can use all the same (write, or read); `Err(page)`, the first one it
    /// cannot: the exec faults there.
    pub fn stack_pages(&self, sp: u64, arg_start: u64, top: u64) -> Result<Option<u64>, u64> {
        let page = self.page;
        let mut at = page_start(sp, page);
        let mut replaced = None;
        while at < top {
            match self.vmas.find(at) {
                Some(v) if v.backing == Backing::Stack => {}
                v => {
                    // The tables are written below arg_start, the strings read above it.
                    let access = if at < arg_start {
                        Prot::WRITE
                    } else {
                        Prot::READ
                    };
                    let usable =
                        v.is_some_and(|v| v.prot.contains(access) && self.page_in_file(v, at));
                    if !usable {
                        return Err(at.max(sp));
                    }
                    replaced.get_or_insert(at);
                }
            }
            at = match at.checked_add(page) {
                Some(a) => a,
                None => break,
            };
        }
        Ok(replaced)
    }

    /// Whether the new credentials may map page 0 and below `mmap_min_addr`.
    pub fn may_map_low(&self) -> bool {
        self.profile.mmap_min_addr == 0 || self.rawio
    }

    /// `randomize_page()`: a random page in `[start, start + range)`.
    pub fn randomize_page(&mut self, start: u64, range: u64) -> u64 {
        let page = self.page;
        let (mut start, mut range) = (start, range);
        if page_offset(start, page) != 0 {
            let aligned = page_align(start, page);
            range = range.saturating_sub(aligned.saturating_sub(start));
            start = aligned;
        }
        range = range.min(u64::MAX.saturating_sub(start));
        let pages = range.checked_div(page).unwrap_or(0);
        if pages == 0 {
            return start;
        }
        start.saturating_add(
            self.rnd()
                .checked_rem(pages)
                .unwrap_or(0)
                .saturating_mul(page),
        )
    }

    /// Runs `f` on the mm and then forgets what it mapped and zeroed: a probe mapping the
    /// kernel makes and unmaps again.
    pub fn tentatively<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let (vmas, zero) = (self.vmas.clone(), self.zero.len());
        let got = f(self);
        self.vmas = vmas;
        self.zero.truncate(zero);
        got
    }
}
