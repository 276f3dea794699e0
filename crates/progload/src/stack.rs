//! The initial stack: the string area `copy_strings()` builds (`fs/exec.c`), the `[stack]` VMA
//! `setup_arg_pages()` makes of it (`fs/exec.c`), and the tables `create_elf_tables()` writes
//! below it (`fs/binfmt_elf.c`).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::arch::{AlignStack, Arch};
use crate::error::{Error, Result};
use crate::mm::{page_align, page_start, Backing, Mm, Vma};
use crate::prot::Prot;

/// `_STK_LIM`.
pub const STK_LIM: u64 = 8 << 20;
/// `ARG_MAX` (the kernel constant: the minimum argument space always allowed).
pub const ARG_MAX: u64 = 131_072;
/// `MAX_ARG_STRINGS`.
pub const MAX_ARG_STRINGS: u64 = 0x7fff_ffff;

/// The exec's argument strings as the kernel holds them at the stack top: `argv... envp...
/// execfn`, contiguous, with the running E2BIG budget of `bprm_stack_limits()`.
#[derive(Clone, Debug)]
pub struct ArgStrings {
    /// The argument strings (without NULs), argv\[0\] first.
    pub argv: VecDeque<Vec<u8>>,
    /// The environment strings.
    pub envp: Vec<Vec<u8>>,
    /// The exec filename (`bprm->filename`), at the very top.
    pub execfn: Vec<u8>,
    used: u64,
    max_used: u64,
    budget: u64,
    max_strlen: u64,
}

impl ArgStrings {
    /// `do_execveat_common()` from `bprm_stack_limits()` to the NULL-argv fix-up: count,
    /// compute the limit, push execfn, envp and argv.
    ///
    /// # Errors
    /// E2BIG for too many strings, a string over `MAX_ARG_STRLEN`, or a total over the limit.
    pub fn new(
        argv: Option<&[Vec<u8>]>,
        envp: &[Vec<u8>],
        execfn: &[u8],
        stack_rlimit: Option<u64>,
        max_strlen: u64,
    ) -> Result<Self> {
        let argc = argv.map_or(0, <[_]>::len) as u64;
        let envc = envp.len() as u64;
        if argc > MAX_ARG_STRINGS || envc > MAX_ARG_STRINGS {
            return Err(Error::ArgsTooBig {
                limit: MAX_ARG_STRINGS,
            });
        }
        let rlim = stack_rlimit.unwrap_or(u64::MAX);
        let limit = (STK_LIM / 4 * 3).min(rlim / 4).max(ARG_MAX);
        let ptr_size = argc.max(1).saturating_add(envc).saturating_mul(8);
        if limit <= ptr_size {
            return Err(Error::ArgsTooBig { limit });
        }
        let mut s = ArgStrings {
            argv: VecDeque::new(),
            envp: Vec::new(),
            execfn: Vec::new(),
            used: 0,
            max_used: 0,
            budget: limit.saturating_sub(ptr_size),
            max_strlen,
        };
        s.charge(execfn)?;
        s.execfn = execfn.to_vec();
        for e in envp.iter().rev() {
            s.charge(e)?;
        }
        s.envp = envp.to_vec();
        for a in argv.unwrap_or(&[]).iter().rev() {
            s.charge(a)?;
        }
        s.argv = argv.unwrap_or(&[]).iter().cloned().collect();
        if s.argv.is_empty() {
            s.push_front(b"")?;
        }
        Ok(s)
    }

    fn limit_error(&self) -> Error {
        Error::ArgsTooBig { limit: self.budget }
    }

    /// Accounts one pushed string (`copy_strings`/`copy_string_kernel`).
    fn charge(&mut self, s: &[u8]) -> Result<()> {
        let len = (s.len() as u64).saturating_add(1);
        if len > self.max_strlen {
            return Err(Error::ArgTooLong {
                limit: self.max_strlen,
            });
        }
        let used = self
            .used
            .checked_add(len)
            .ok_or_else(|| self.limit_error())?;
        if used > self.budget {
            return Err(self.limit_error());
        }
        self.used = used;
        self.max_used = self.max_used.max(used);
        Ok(())
    }

    /// `copy_string_kernel()` of a new argv\[0\] (the `#!`/binfmt_misc rewrites).
    ///
    /// # Errors
    /// E2BIG as [`ArgStrings::new`].
    pub fn push_front(&mut self, s: &[u8]) -> Result<()> {
        self.charge(s)?;
        self.argv.push_front(s.to_vec());
        Ok(())
    }

    /// `remove_arg_zero()`.
    pub fn remove_arg_zero(&mut self) {
        if let Some(a) = self.argv.pop_front() {
            self.used = self.used.saturating_sub((a.len() as u64).saturating_add(1));
        }
    }

    /// Total bytes of the string area now (all strings with their NULs).
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The most the string area ever held (its lowest byte sets the stack VMA size).
    pub fn max_used(&self) -> u64 {
        self.max_used
    }

    /// The string area's bytes, lowest address first: argv, envp, execfn, NUL-terminated.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.used as usize);
        for s in self
            .argv
            .iter()
            .chain(self.envp.iter())
            .chain(core::iter::once(&self.execfn))
        {
            out.extend_from_slice(s);
            out.push(0);
        }
        out
    }
}

/// The finished stack: bytes from the stack pointer up to the stack top.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackImage {
    /// The initial stack pointer (`mm->start_stack`).
    pub sp: u64,
    /// The end of the `[stack]` VMA.
    pub top: u64,
    /// `[sp, top)`.
    pub bytes: Vec<u8>,
    /// Address of the platform string.
    pub platform_addr: u64,
    /// Address of the 16 random bytes.
    pub random_addr: u64,
    /// `mm->arg_start`.
    pub arg_start: u64,
    /// `mm->arg_end` (= `env_start`).
    pub arg_end: u64,
    /// `mm->env_end` (= address of execfn).
    pub env_end: u64,
}

/// Inputs of `create_elf_tables()` once the layout is known.
pub struct Tables<'a> {
    /// The string area.
    pub strings: &'a ArgStrings,
    /// Address of the first string byte (`bprm->p` after the shift).
    pub arg_start: u64,
    /// The stack top (end of the stack VMA).
    pub top: u64,
    /// What `arch_align_stack()` does.
    pub align: AlignStack,
    /// Random amount `arch_align_stack` subtracts (0 without randomization).
    pub align_sub: u64,
    /// The platform string (without NUL), if any.
    pub platform: &'a [u8],
    /// The 16 AT_RANDOM bytes.
    pub random: [u8; 16],
    /// The size of the new process's words (`elf_addr_t`): 8, or 4 for an ia32 program.
    pub word: u64,
}

impl Tables<'_> {
    /// Where the auxv block must end (its `AT_RANDOM`/`AT_PLATFORM` values), computed before
    /// the auxv is built: returns (platform address, random address).
    ///
    /// # Errors
    /// [`Error::Stack`] when the stack top is too low to hold them.
    pub fn string_addrs(&self) -> Result<(u64, u64)> {
        let p = align_stack(self.align, self.arg_start, self.align_sub);
        let platform = if self.platform.is_empty() {
            p
        } else {
            let len = (self.platform.len() as u64).saturating_add(1);
            p.checked_sub(len).ok_or(Error::Stack)?
        };
        Ok((platform, platform.checked_sub(16).ok_or(Error::Stack)?))
    }

    /// Lays the stack out: argc, argv pointers, NULL, envp pointers, NULL, auxv (with the
    /// caller's `auxv` already holding AT_NULL at the end), rounded down to 16 bytes.
    ///
    /// # Errors
    /// [`Error::Stack`] when the stack top is too low to hold it all, or when the string area
    /// does not end 8 bytes below `top`.
    pub fn build(&self, auxv: &[(u64, u64)]) -> Result<StackImage> {
        // Mirrors fs/exec.c: bprm->p starts at STACK_TOP_MAX - sizeof(void *) and
        // copy_strings() fills downwards (setup_arg_pages() shifts it with the stack), so the
        // strings always end 8 bytes below the stack top. Any other arg_start is no stack the
        // kernel builds, and would make the image (sp to top) as large as the distance.
        let strings_end = self
            .arg_start
            .checked_add(self.strings.used())
            .and_then(|e| e.checked_add(8));
        if strings_end != Some(self.top) {
            return Err(Error::Stack);
        }
        let (platform_addr, random_addr) = self.string_addrs()?;
        let argc = self.strings.argv.len() as u64;
        let envc = self.strings.envp.len() as u64;
        // The string budget (at most 6 MiB) bounds argc and envc, so these cannot overflow;
        // the subtractions are checked against a stack top too low for the tables.
        let word_size = if self.word == 4 { 4u64 } else { 8 };
        let auxv_bytes = (auxv.len() as u64)
            .saturating_mul(word_size)
            .saturating_mul(2);
        let items = argc.saturating_add(envc).saturating_add(3);
        let sp = random_addr
            .checked_sub(auxv_bytes)
            .and_then(|a| a.checked_sub(items.saturating_mul(word_size)))
            .ok_or(Error::Stack)?
            & !0xf;
        let len = usize::try_from(self.top.checked_sub(sp).ok_or(Error::Stack)?)
            .map_err(|_| Error::Stack)?;
        let mut bytes = alloc::vec![0u8; len];
        let mut put = |addr: u64, data: &[u8]| {
            let off = usize::try_from(addr.wrapping_sub(sp)).unwrap_or(usize::MAX);
            if let Some(dst) = bytes.get_mut(off..off.saturating_add(data.len())) {
                dst.copy_from_slice(data);
            }
        };
        put(self.arg_start, &self.strings.bytes());
        if !self.platform.is_empty() {
            put(platform_addr, self.platform);
        }
        put(random_addr, &self.random);
        let mut at = sp;
        // elf_addr_t: a 32-bit word keeps the low half (the values fit: the address space
        // of an ia32 task ends below 4 GiB).
        let mut word = |v: u64| {
            let b = v.to_le_bytes();
            let n = usize::try_from(word_size).unwrap_or(8);
            put(at, b.get(..n).unwrap_or(&b));
            at = at.wrapping_add(word_size);
        };
        word(argc);
        let mut p = self.arg_start;
        let step = |s: &Vec<u8>| (s.len() as u64).saturating_add(1);
        for a in &self.strings.argv {
            word(p);
            p = p.wrapping_add(step(a));
        }
        word(0);
        let arg_end = p;
        for e in &self.strings.envp {
            word(p);
            p = p.wrapping_add(step(e));
        }
        word(0);
        for &(k, v) in auxv {
            word(k);
            word(v);
        }
        Ok(StackImage {
            sp,
            top: self.top,
            bytes,
            platform_addr,
            random_addr,
            arg_start: self.arg_start,
            arg_end,
            env_end: p,
        })
    }
}

/// The `[stack]` VMA as `setup_arg_pages()` leaves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackVma {
    /// The stack top (`mm->stack_top` after randomization): the VMA's end.
    pub top: u64,
    /// The VMA's start, after the initial 128 KiB expansion.
    pub start: u64,
    /// The address of the first string byte (`bprm->p` after the shift).
    pub arg_start: u64,
}

/// What `arch_align_stack()` does on the profile's kernel.
pub fn align_stack_kind<N: Clone>(mm: &Mm<'_, N>) -> AlignStack {
    let arch = mm.profile.arch;
    if arch == Arch::Riscv64 && !mm.rules.riscv_align_stack {
        return AlignStack::Identity;
    }
    arch.spec().align_stack
}

/// `arch_align_stack()`'s random part: the bytes it subtracts (0 without randomization, or
/// when it is the identity).
pub fn align_stack_rnd<N: Clone>(mm: &mut Mm<'_, N>) -> u64 {
    let range = match align_stack_kind(mm) {
        _ if !mm.randomize => return 0,
        AlignStack::Identity => return 0,
        AlignStack::Below8k => 8192,
        AlignStack::BelowPage => mm.page,
    };
    mm.rnd().checked_rem(range).unwrap_or(0)
}

/// `arch_align_stack()` of `sp` with the random amount `sub` already drawn.
pub fn align_stack(kind: AlignStack, sp: u64, sub: u64) -> u64 {
    match kind {
        AlignStack::Identity => sp,
        AlignStack::Below8k | AlignStack::BelowPage => sp.wrapping_sub(sub) & !0xf,
    }
}

/// `setup_arg_pages()` with the stack top `randomize_stack_top()` and `arch_align_stack()`
/// pick: moves the string area from `STACK_TOP_MAX` to the stack top, and maps the `[stack]`
/// VMA with the 128 KiB initial expansion (less when the stack rlimit is near), executable
/// when `exec` (PT_GNU_STACK or READ_IMPLIES_EXEC).
///
/// # Errors
/// [`Error::Stack`] when the strings do not fit above `mmap_min_addr` (fatal).
pub fn setup_arg_pages<N: Clone>(
    mm: &mut Mm<'_, N>,
    strings: &ArgStrings,
    rlimit: Option<u64>,
    exec: bool,
) -> Result<StackVma> {
    let profile = mm.profile;
    let page = mm.page;
    let mut stack_top = page_align(profile.stack_top, page);
    if mm.randomize {
        let r = (mm.rnd() & mm.stack_rnd_mask()).saturating_mul(page);
        stack_top = stack_top.saturating_sub(r);
    }
    let kind = align_stack_kind(mm);
    let sub = align_stack_rnd(mm);
    stack_top = page_align(align_stack(kind, stack_top.saturating_sub(sub), 0), page);
    let top_max = profile.stack_top_max;
    // The strings are at most 6 MiB (the E2BIG budget) and stack_top_max >= stack_top >=
    // 64 GiB (validate()), so the subtractions below stay far from zero.
    let p_min = top_max.saturating_sub(8).saturating_sub(strings.max_used());
    let vm_start0 = page_start(p_min, page).min(top_max.saturating_sub(page));
    let vm_size0 = top_max.saturating_sub(vm_start0);
    if stack_top < profile.mmap_min_addr
        || vm_size0 >= stack_top.saturating_sub(profile.mmap_min_addr)
    {
        return Err(Error::Stack);
    }
    let shift = top_max.saturating_sub(stack_top);
    let mut vm_start = vm_start0.saturating_sub(shift);
    let vm_end = stack_top;
    let arg_start = top_max
        .saturating_sub(8)
        .saturating_sub(strings.used())
        .saturating_sub(shift);
    let stack_size = vm_end.saturating_sub(vm_start);
    let rlim_stack = rlimit.unwrap_or(u64::MAX) & !page.wrapping_sub(1);
    let stack_expand = 131_072u64;
    let stack_base = if stack_size.saturating_add(stack_expand) > rlim_stack {
        vm_end.saturating_sub(rlim_stack)
    } else {
        vm_start.saturating_sub(stack_expand)
    };
    if stack_base < vm_start {
        vm_start = stack_base;
    }
    mm.map_fixed(Vma {
        start: vm_start,
        end: vm_end,
        prot: Prot::rw_maybe_x(exec),
        backing: Backing::Stack,
    });
    Ok(StackVma {
        top: stack_top,
        start: vm_start,
        arg_start,
    })
}

/// `find_extend_vma()` from `create_elf_tables()`: grows the `[stack]` VMA down to cover
/// `sp`, within the stack rlimit.
///
/// # Errors
/// [`Error::Stack`] when the growth exceeds the rlimit (fatal).
pub fn expand_to<N: Clone>(
    mm: &mut Mm<'_, N>,
    vma: &StackVma,
    sp: u64,
    rlimit: Option<u64>,
) -> Result<()> {
    if sp >= vma.start {
        return Ok(());
    }
    let new_start = page_start(sp, mm.page);
    if rlimit.is_some_and(|r| vma.top.saturating_sub(new_start) > r) {
        return Err(Error::Stack);
    }
    mm.vmas.set_bounds(vma.start, new_start, vma.top);
    Ok(())
}
