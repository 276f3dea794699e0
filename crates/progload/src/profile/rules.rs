//! What changed in exec between the kernel releases progload plans for (5.10 to 6.18): one
//! flag per change, each named after the kernel commit that made it, with the stable lines
//! it was back-ported to. The pipeline asks [`ExecRules`] instead of comparing versions, so
//! every version-dependent rule is listed here, in one place, and pinned by a unit test.
//!
//! Changes that only alter values the profile carries anyway (auxv entries read from the
//! host, the vvar pages, `AT_HWCAP3`, the rseq sizes) live in the presets
//! ([`super::presets`]), not here.

use super::KernelVersion;

/// The exec rules of one kernel release. `true` means the release has the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // one flag per kernel change, by design
pub struct ExecRules {
    /// 5.14, "x86/elf: Support a new ELF aux vector AT_MINSIGSTKSZ": x86's `ARCH_DLINFO`
    /// emits `AT_MINSIGSTKSZ` after `AT_SYSINFO_EHDR`. Not in 5.10.y.
    pub x86_at_minsigstksz: bool,
    /// 6.5, "riscv: signal: Report signal frame size to userspace via auxv": riscv's
    /// `ARCH_DLINFO` ends with `AT_MINSIGSTKSZ` (`AT_IGNORE` when unknown).
    pub riscv_at_minsigstksz: bool,
    /// 5.16, "binfmt_elf: reintroduce using MAP_FIXED_NOREPLACE": the first PT_LOAD of an
    /// ET_EXEC, and of an ET_DYN with an interpreter, is mapped `MAP_FIXED_NOREPLACE`, so a
    /// collision kills the exec; before, `MAP_FIXED` replaced what was there.
    pub first_load_noreplace: bool,
    /// 5.18, "ELF: fix overflow in total mapping size calculation": `total_mapping_size()`
    /// spans from the lowest PT_LOAD page to the highest segment end; before, from the first
    /// PT_LOAD to the end of the last one in table order.
    pub total_size_spans_all: bool,
    /// 5.18, "fs/binfmt_elf: Fix AT_PHDR for unusual ELF files" (5.10.110, 5.15.33):
    /// `AT_PHDR` is found through the PT_LOAD whose file range holds the program headers;
    /// before, it was the first PT_LOAD's `p_vaddr - p_offset` plus `e_phoff`.
    pub at_phdr_from_containing_load: bool,
    /// 5.18, "mm/readahead: Align file mappings for non-DAX": a non-fixed private file
    /// mapping of 2 MiB or more on ext4/xfs/btrfs (...) is placed 2 MiB-congruent to its
    /// offset (`thp_get_unmapped_area()`); before, only on DAX.
    pub thp_file_alignment: bool,
    /// 6.6, "mm: introduce vma_is_initial_heap() and vma_is_initial_stack()": /proc/PID/maps
    /// names an anonymous VMA `[heap]` when it overlaps `[start_brk, brk]` strictly; before,
    /// one touching it (the bss that ends at `start_brk`) was `[heap]` too.
    pub heap_name_strict: bool,
    /// 6.7, "binfmt_elf: Support segments with 0 filesz and misaligned starts" and the
    /// `elf_load()` series (6.1.140, 6.6.92): the program's bss is zeroed and mapped per
    /// segment, right after it and with its protection; before, `set_brk()` mapped one bss
    /// from the highest file end to the highest segment end, when the loop met it and at the
    /// end, and `padzero()` of a page that cannot be written was fatal.
    pub elf_load_program: bool,
    /// 6.7, "binfmt_elf: Only report padzero() errors when PROT_WRITE" (not back-ported with
    /// the rest of the series): `elf_load()`'s zeroing of a writable segment's last file page
    /// kills the exec when it faults; the 6.1.140/6.6.92 `elf_load()` ignores the fault.
    pub padzero_fault_fatal: bool,
    /// 6.7, "binfmt_elf: Use elf_load() for interpreter" (not back-ported): the same for the
    /// interpreter; before, `load_elf_interp()` zeroed the rest of the page at its highest
    /// file end (fatal when that faults) and mapped one bss up to its highest segment end.
    pub elf_load_interp: bool,
    /// 6.8, the top-down fix of `thp_get_unmapped_area()`: when the top-down search
    /// already returns an aligned address, the mapping is put 2 MiB higher in the padded
    /// range; before, at the address returned.
    pub thp_topdown_skips_aligned: bool,
    /// 6.8, "execve: open the executable file before doing anything else": the file is
    /// opened before argv and envp are counted, so a path error wins over E2BIG; before,
    /// E2BIG won.
    pub open_before_strings: bool,
    /// 6.9, "x86: Increase brk randomness entropy for 64-bit systems" (5.10.225, 5.15.166,
    /// 6.1.107, 6.6.48): x86_64's brk is randomized over 1 GiB; before, 32 MiB.
    pub x86_brk_1g: bool,
    /// 6.9, "x86/vdso: Move vDSO to mmap region": x86_64's vDSO is placed top-down like any
    /// mapping; before, at a random page above the stack within its 2 MiB when that is free
    /// (with randomization), else top-down.
    pub x86_vdso_in_mmap_region: bool,
    /// 6.9 (the FRED series; 6.1 has it not, 6.12 has it, in the booted kernels):
    /// x86_64's `start_thread_common()` sets the reserved bit 1 of rflags with IF, so the
    /// first instruction sees 0x202; before, 0x200.
    pub x86_rflags_fixed_bit: bool,
    /// 6.10, "binfmt_elf: Leave a gap between .bss and brk" (6.1.140, 6.6.92): a randomized
    /// brk that stays after the program starts one page above it.
    pub brk_gap: bool,
    /// 6.11, "binfmt_elf: Honor PT_LOAD alignment for static PIE" (6.1.140, 6.6.92): an
    /// ET_DYN without interpreter whose PT_LOADs ask for more than a page of alignment is
    /// placed where a probe mapping lands, aligned; before, wherever a mapping at hint 0
    /// lands.
    pub static_pie_alignment: bool,
    /// 6.14, "exec: fix up /proc/pid/comm in the execveat(AT_EMPTY_PATH) case" (6.1.129,
    /// 6.6.78, 6.12.14): an fd exec names the task after the file; before, after the last
    /// component of `/dev/fd/N`, the number.
    pub fd_exec_comm_from_dentry: bool,
    /// 6.15, "binfmt_elf: Move brk for static PIE even if ASLR disabled" (6.1.140, 6.6.92,
    /// 6.12.30): the brk of an ET_DYN without interpreter starts at `ELF_ET_DYN_BASE` always;
    /// before, only when the brk was randomized.
    pub static_pie_brk_always_moved: bool,
    /// 6.12, "riscv: Randomize lower bits of stack address": riscv's `arch_align_stack()`
    /// subtracts a random amount below a page and rounds down to 16 bytes, as arm64's does;
    /// before, it was the identity.
    pub riscv_align_stack: bool,
    /// 5.15, riscv's `STACK_RND_MASK` became `0x3ffff` (1 GiB of stack-top randomization);
    /// before, the generic `0x7ff` (8 MiB).
    pub riscv_stack_rnd_1g: bool,
    /// 5.12, "binfmt_misc: pass binfmt_misc flags to the interpreter" (5.10.225): `AT_FLAGS`
    /// is `AT_FLAGS_PRESERVE_ARGV0` when the binfmt_misc rule that matched has `P`; before,
    /// always 0.
    pub at_flags_preserve_argv0: bool,
    /// 6.17, "exec: Correct the permission check for unsafe exec" (337490f0007f; not back-ported,
    /// the farm's 6.12.118 has the old rule, this machine's 6.18 the new one):
    /// `cap_bprm_creds_from_file()` downgrades an unsafe exec (no_new_privs) to the real ids
    /// when it changes an id (a new euid, an egid the caller is not in) and AT_SECURE also
    /// counts such a change; before, when the new effective ids differed from the old real
    /// ones (`__is_setuid()`/`__is_setgid()`), which alone set AT_SECURE.
    pub exec_id_changed_from_effective: bool,
    /// 6.12, "tomoyo: fallback to realpath if symlink's pathname does not exist" (5.10.227,
    /// 6.1.113; other stable lines: from their first release after October 2024, not pinned
    /// here): TOMOYO's first `bprm_check_security` names the program by the file when the
    /// lookup of `bprm->filename` fails; before, it failed the exec with ENOENT, which an
    /// `execveat(dirfd, relative path)` meets when `/dev/fd/N/PATH` reaches `PATH_MAX`
    /// (observed on 5.10.223 in the kernel farm).
    pub tomoyo_realpath_fallback: bool,
    /// 6.17, "binfmt_elf: remove the 4k limitation of program header size": a program header
    /// table may fill up to 64 KiB; before, at most `ELF_MIN_ALIGN` (a page).
    pub phdrs_beyond_a_page: bool,
    /// 6.1, "mm/mmap: change do_brk_flags() to expand existing VMA and add do_brk_munmap()"
    /// (the maple tree series): `vm_brk_flags()` only extends the anonymous VMA that ends
    /// where the new range starts; before, `vma_merge()` also joined the one that follows,
    /// so a bss mapped below an earlier, larger one became one VMA with it.
    pub brk_extends_prev_only: bool,
}

impl KernelVersion {
    /// The exec rules of this release.
    pub fn rules(self) -> ExecRules {
        ExecRules {
            x86_at_minsigstksz: self.since(5, 14),
            riscv_at_minsigstksz: self.since(6, 5),
            first_load_noreplace: self.since(5, 16),
            total_size_spans_all: self.since(5, 18),
            at_phdr_from_containing_load: self.has(5, 18, &[(5, 10, 110), (5, 15, 33)]),
            thp_file_alignment: self.since(5, 18),
            heap_name_strict: self.since(6, 6),
            elf_load_program: self.has(6, 7, &[(6, 1, 140), (6, 6, 92)]),
            padzero_fault_fatal: self.since(6, 7),
            elf_load_interp: self.since(6, 7),
            thp_topdown_skips_aligned: self.since(6, 8),
            open_before_strings: self.since(6, 8),
            x86_brk_1g: self.has(6, 9, &[(5, 10, 225), (5, 15, 166), (6, 1, 107), (6, 6, 48)]),
            x86_vdso_in_mmap_region: self.since(6, 9),
            x86_rflags_fixed_bit: self.since(6, 9),
            brk_gap: self.has(6, 10, &[(6, 1, 140), (6, 6, 92)]),
            static_pie_alignment: self.has(6, 11, &[(6, 1, 140), (6, 6, 92)]),
            fd_exec_comm_from_dentry: self.has(6, 14, &[(6, 1, 129), (6, 6, 78), (6, 12, 14)]),
            static_pie_brk_always_moved: self.has(6, 15, &[(6, 1, 140), (6, 6, 92), (6, 12, 30)]),
            riscv_align_stack: self.since(6, 12),
            riscv_stack_rnd_1g: self.since(5, 15),
            phdrs_beyond_a_page: self.since(6, 17),
            brk_extends_prev_only: self.since(6, 1),
            exec_id_changed_from_effective: self.since(6, 17),
            at_flags_preserve_argv0: self.has(5, 12, &[(5, 10, 225)]),
            tomoyo_realpath_fallback: self.has(6, 12, &[(5, 10, 227), (6, 1, 113)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::KernelVersion as K;
    use super::ExecRules;

    /// Asserts that `rule` is off at `before` and on at `first`.
    fn pin(rule: fn(&ExecRules) -> bool, before: K, first: K) {
        assert!(!rule(&before.rules()), "{before} must not have it");
        assert!(rule(&first.rules()), "{first} must have it");
    }

    #[test]
    fn mainline_releases() {
        let k = K::new;
        pin(|r| r.x86_at_minsigstksz, k(5, 13, 19), k(5, 14, 0));
        pin(|r| r.first_load_noreplace, k(5, 15, 200), k(5, 16, 0));
        pin(|r| r.total_size_spans_all, k(5, 17, 15), k(5, 18, 0));
        pin(|r| r.thp_file_alignment, k(5, 17, 15), k(5, 18, 0));
        pin(|r| r.thp_topdown_skips_aligned, k(6, 7, 12), k(6, 8, 0));
        pin(|r| r.elf_load_interp, k(6, 6, 200), k(6, 7, 0));
        pin(|r| r.padzero_fault_fatal, k(6, 6, 200), k(6, 7, 0));
        pin(|r| r.heap_name_strict, k(6, 5, 13), k(6, 6, 0));
        pin(|r| r.open_before_strings, k(6, 7, 12), k(6, 8, 0));
        pin(|r| r.phdrs_beyond_a_page, k(6, 16, 12), k(6, 17, 0));
        pin(|r| r.x86_vdso_in_mmap_region, k(6, 8, 12), k(6, 9, 0));
        pin(|r| r.x86_rflags_fixed_bit, k(6, 8, 12), k(6, 9, 0));
        pin(|r| r.riscv_at_minsigstksz, k(6, 4, 16), k(6, 5, 0));
        pin(|r| r.riscv_align_stack, k(6, 11, 11), k(6, 12, 0));
        pin(|r| r.riscv_stack_rnd_1g, k(5, 14, 21), k(5, 15, 0));
        pin(
            |r| r.exec_id_changed_from_effective,
            k(6, 16, 12),
            k(6, 17, 0),
        );
        pin(|r| r.tomoyo_realpath_fallback, k(6, 11, 11), k(6, 12, 0));
        pin(|r| r.at_flags_preserve_argv0, k(5, 11, 22), k(5, 12, 0));
        pin(|r| r.brk_extends_prev_only, k(5, 19, 17), k(6, 1, 0));
    }

    #[test]
    fn stable_backports() {
        let k = K::new;
        pin(
            |r| r.at_phdr_from_containing_load,
            k(5, 10, 109),
            k(5, 10, 110),
        );
        pin(
            |r| r.at_phdr_from_containing_load,
            k(5, 15, 32),
            k(5, 15, 33),
        );
        pin(|r| r.x86_brk_1g, k(5, 10, 224), k(5, 10, 225));
        pin(|r| r.tomoyo_realpath_fallback, k(5, 10, 226), k(5, 10, 227));
        pin(|r| r.at_flags_preserve_argv0, k(5, 10, 224), k(5, 10, 225));
        pin(|r| r.tomoyo_realpath_fallback, k(6, 1, 112), k(6, 1, 113));
        // The farm's 6.12.118 computes the credentials the old way.
        assert!(!k(6, 12, 118).rules().exec_id_changed_from_effective);
        pin(|r| r.x86_brk_1g, k(6, 1, 106), k(6, 1, 107));
        pin(|r| r.brk_gap, k(6, 1, 139), k(6, 1, 140));
        pin(|r| r.elf_load_program, k(6, 1, 139), k(6, 1, 140));
        pin(|r| r.elf_load_program, k(6, 6, 91), k(6, 6, 92));
        pin(|r| r.static_pie_alignment, k(6, 6, 91), k(6, 6, 92));
        pin(|r| r.fd_exec_comm_from_dentry, k(6, 12, 13), k(6, 12, 14));
        pin(|r| r.fd_exec_comm_from_dentry, k(6, 1, 128), k(6, 1, 129));
        pin(
            |r| r.static_pie_brk_always_moved,
            k(6, 12, 29),
            k(6, 12, 30),
        );
        // Not back-ported to 5.10.y.
        assert!(!k(5, 10, 262).rules().static_pie_brk_always_moved);
        assert!(!k(5, 10, 262).rules().brk_gap);
        // 6.9's mainline change covers 6.9 and later whatever the point release.
        assert!(k(6, 9, 0).rules().x86_brk_1g);
    }

    #[test]
    fn newest_release_has_every_rule() {
        let r = K::new(6, 18, 0).rules();
        assert_eq!(
            r,
            ExecRules {
                x86_at_minsigstksz: true,
                riscv_at_minsigstksz: true,
                first_load_noreplace: true,
                total_size_spans_all: true,
                at_phdr_from_containing_load: true,
                thp_file_alignment: true,
                heap_name_strict: true,
                elf_load_program: true,
                padzero_fault_fatal: true,
                elf_load_interp: true,
                thp_topdown_skips_aligned: true,
                open_before_strings: true,
                x86_brk_1g: true,
                x86_vdso_in_mmap_region: true,
                x86_rflags_fixed_bit: true,
                brk_gap: true,
                static_pie_alignment: true,
                fd_exec_comm_from_dentry: true,
                static_pie_brk_always_moved: true,
                riscv_align_stack: true,
                riscv_stack_rnd_1g: true,
                phdrs_beyond_a_page: true,
                brk_extends_prev_only: true,
                exec_id_changed_from_effective: true,
                tomoyo_realpath_fallback: true,
                at_flags_preserve_argv0: true,
            }
        );
    }
}
