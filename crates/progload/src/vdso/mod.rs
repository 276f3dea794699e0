//! The vDSO: where the kernel maps it (`ARCH_SETUP_ADDITIONAL_PAGES`: x86's `map_vdso()`,
//! arm64's `__setup_additional_pages()`), and its image ([`image`]).

pub mod image;

pub use image::{placeholder, validate, VdsoError};

use alloc::string::String;

use crate::error::{Error, Result};
use crate::mm::{Backing, Mm, Vma};
use crate::prot::Prot;

/// Maps the profile's vDSO (its data pages, then `[vdso]`) into `mm` at the address a
/// non-fixed mapping of the whole block gets, and returns the text's address
/// (`AT_SYSINFO_EHDR`); `None` when the profile has no vDSO.
///
/// # Errors
/// [`Error::NoSpace`] when no room is left (fatal).
pub fn map<N: Clone>(mm: &mut Mm<'_, N>) -> Result<Option<u64>> {
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
    let base = mm
        .get_unmapped_area(None, 0, len, 0)
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
