//! The vDSO: where the kernel maps it (`ARCH_SETUP_ADDITIONAL_PAGES`: x86's `map_vdso()`,
//! arm64's `__setup_additional_pages()`), and its image ([`image`]).

pub mod image;

pub use image::{placeholder, validate, VdsoError};

use alloc::string::String;

use crate::arch::Arch;
use crate::error::{Error, Result};
use crate::mm::{page_align, Backing, Mm, Vma};
use crate::prot::Prot;

/// x86_64's `vdso_addr()` before 6.9 ("x86/vdso: Move vDSO to mmap region"): a hint at a
/// random page from the page of `start_stack` up to where the block still ends within the
/// same 2 MiB (and below `DEFAULT_MAP_WINDOW`). The hint only holds above the stack, so
/// without stack randomization (the stack then ends at the window) it never does, and the
/// block lands where a hint of 0 puts it.
fn x86_vdso_hint<N: Clone>(mm: &mut Mm<'_, N>, start_stack: u64, len: u64) -> u64 {
    const PMD_SIZE: u64 = 2 << 20;
    let start = page_align(start_stack, mm.page);
    let window = crate::arch::x86_64::DEFAULT_MAP_WINDOW;
    let end = start.saturating_add(len).saturating_add(PMD_SIZE - 1) & !(PMD_SIZE - 1);
    let end = end.min(window).saturating_sub(len);
    if end <= start {
        return start;
    }
    let pages = end
        .wrapping_sub(start)
        .checked_div(mm.page)
        .unwrap_or(0)
        .saturating_add(1);
    let offset = mm.rnd().checked_rem(pages).unwrap_or(0);
    start.saturating_add(offset.saturating_mul(mm.page))
}

/// Maps the profile's vDSO (its data pages, then `[vdso]`) into `mm` at the address a
/// non-fixed mapping of the whole block gets, and returns the text's address
/// (`AT_SYSINFO_EHDR`); `None` when the profile has no vDSO. `start_stack` is
/// `mm->start_stack` as `setup_arg_pages()` left it (the first string byte), which x86_64
/// kernels before 6.9 place the vDSO above when randomizing.
///
/// # Errors
/// [`Error::NoSpace`] when no room is left (fatal).
pub fn map<N: Clone>(mm: &mut Mm<'_, N>, start_stack: u64) -> Result<Option<u64>> {
    let profile = mm.profile;
    let Some(v) = &profile.vdso else {
        return Ok(None);
    };
    let page = mm.page;
    let data_pages: u64 = v.data.iter().map(|d| d.pages).sum();
    // validate() bounds the vDSO block to 1024 pages.
    let len = data_pages
        .saturating_add(v.text_pages(page))
        .saturating_mul(page);
    let hint = if profile.arch == Arch::X86_64 && !mm.rules.x86_vdso_in_mmap_region && mm.randomize
    {
        x86_vdso_hint(mm, start_stack, len)
    } else {
        0
    };
    let base = mm
        .get_unmapped_area(None, hint, len, 0)
        .ok_or(Error::NoSpace { len })?;
    let mut at = base;
    for d in &v.data {
        let end = at.saturating_add(d.pages.saturating_mul(page));
        mm.map_fixed(Vma {
            start: at,
            end,
            prot: d.prot,
            backing: Backing::Special(d.name.clone()),
        });
        at = end;
    }
    let end = at.saturating_add(v.text_pages(page).saturating_mul(page));
    mm.map_fixed(Vma {
        start: at,
        end,
        prot: Prot::READ | Prot::EXEC,
        backing: Backing::Special(String::from("[vdso]")),
    });
    Ok(Some(at))
}
