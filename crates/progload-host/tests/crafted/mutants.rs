//! Regression cases from the mutation campaign (`tests/mutants.rs`): each family of
//! disagreement it found, reduced to a crafted file.

use super::*;

const F: &str = "mutant-regressions";

pub(super) fn cases(t: &mut Table) {
    // A first PT_LOAD with a large bss, then a writable segment inside that bss with a bss of
    // its own: `vm_brk_flags()` of the second bss lands just below the rest of the first. From
    // 6.1 it only extends the VMA before it, so the two stay apart; 5.10's `vma_merge()`
    // joins them.
    let mut b = native(ET_EXEC);
    b.header.e_entry = BASE + CODE;
    b.phdr(ProgramHeader::load(PF_R | PF_X, 0, BASE, LEN, 0x10_0000));
    b.phdr(ProgramHeader::load(
        PF_R | PF_W,
        0,
        BASE + 0x4000,
        0x100,
        0x2000,
    ));
    b.phdr(ProgramHeader::gnu_stack(PF_R | PF_W));
    b.payload(CODE, ARCH.exit0()).min_len(LEN);
    t.elf(
        F,
        "a bss below the rest of a larger one",
        "mr-bss-in-bss",
        &b,
    );

    // A bss larger than RAM and swap together: under overcommit_memory 0 (the default)
    // `vm_brk_flags()` fails and the kernel kills the exec. The same bss sizes cross every
    // machine's memory: 64 GiB and 1 TiB.
    for (size, file) in [(1u64 << 36, "mr-bss-64g"), (1 << 40, "mr-bss-1t")] {
        let b = prog(
            ET_EXEC,
            &[ProgramHeader::load(PF_R | PF_W, 0, 0x1000_0000, 0, size)],
        );
        t.elf(F, &format!("a bss of {} GiB", size >> 30), file, &b);
    }
    // The same size as a writable file mapping's reservation: an ET_DYN whose first (and
    // writable) PT_LOAD opens a 64 GiB image: the whole image is charged.
    let mut b = native(ET_DYN);
    b.header.e_entry = CODE;
    b.phdr(ProgramHeader::load(PF_R | PF_W | PF_X, 0, 0, LEN, LEN));
    b.phdr(ProgramHeader::load(PF_R, 0, 1 << 36, LEN, LEN));
    b.phdr(ProgramHeader::gnu_stack(PF_R | PF_W));
    b.payload(CODE, ARCH.exit0()).min_len(LEN);
    t.elf(
        F,
        "an ET_DYN image of 64 GiB whose first segment is writable",
        "mr-dyn-64g-writable",
        &b,
    );

    // A read-only segment mapped over the top page of the stack (MAP_FIXED, not the first
    // PT_LOAD): `create_elf_tables()` cannot write there, the exec is killed.
    for (flags, file) in [(PF_R | PF_X, "mr-over-stack-rx"), (PF_R, "mr-over-stack-r")] {
        let b = prog(
            ET_EXEC,
            &[ProgramHeader::load(
                flags,
                0,
                stack_top() - 0x1000,
                LEN,
                LEN,
            )],
        );
        t.elf(
            F,
            &format!("a PT_LOAD ({flags:#x}) over the stack's top page"),
            file,
            &b,
        );
    }
}
