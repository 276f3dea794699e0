//! Memory protections, with Linux's `PROT_*` values (`include/uapi/asm-generic/mman-common.h`).
//!
//! [`Prot`] is what the plan's VMAs carry and what [`crate::AddressSpace`] receives, so a
//! backend can hand [`Prot::bits`] straight to `mmap(2)`/`mprotect(2)`.

use core::fmt;

bitflags::bitflags! {
    /// A set of `PROT_READ`/`PROT_WRITE`/`PROT_EXEC`, with the kernel's bit values.
    ///
    /// Its [`Display`](fmt::Display) is the first three characters of the permission
    /// column of `/proc/PID/maps`, e.g. `r-x`.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    #[doc(alias = "PROT_READ")]
    #[doc(alias = "PROT_WRITE")]
    #[doc(alias = "PROT_EXEC")]
    pub struct Prot: u32 {
        /// `PROT_READ` (1).
        const READ = 1;
        /// `PROT_WRITE` (2).
        const WRITE = 2;
        /// `PROT_EXEC` (4).
        const EXEC = 4;
    }
}

impl Prot {
    /// `PROT_READ | PROT_WRITE`, plus `PROT_EXEC` when `exec`.
    pub fn rw_maybe_x(exec: bool) -> Prot {
        let rw = Prot::READ | Prot::WRITE;
        if exec {
            rw | Prot::EXEC
        } else {
            rw
        }
    }
}

impl fmt::Display for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |p: Prot, c: &'static str| if self.contains(p) { c } else { "-" };
        f.write_str(flag(Prot::READ, "r"))?;
        f.write_str(flag(Prot::WRITE, "w"))?;
        f.write_str(flag(Prot::EXEC, "x"))
    }
}

/// The text is not three characters of the form `[r-][w-][x-]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a protection of the form r-x")]
pub struct ParseProtError;

impl core::str::FromStr for Prot {
    type Err = ParseProtError;

    /// Parses the [`Display`](fmt::Display) form, e.g. `r-x`.
    fn from_str(s: &str) -> Result<Prot, ParseProtError> {
        let b = s.as_bytes();
        let [r, w, x] = b else {
            return Err(ParseProtError);
        };
        let mut prot = Prot::empty();
        for (c, on, flag) in [
            (*r, b'r', Prot::READ),
            (*w, b'w', Prot::WRITE),
            (*x, b'x', Prot::EXEC),
        ] {
            match c {
                b'-' => {}
                c if c == on => prot |= flag,
                _ => return Err(ParseProtError),
            }
        }
        Ok(prot)
    }
}

impl fmt::Debug for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prot({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::Prot;
    use alloc::format;

    #[test]
    fn values_are_linux_prot_bits() {
        // include/uapi/asm-generic/mman-common.h
        assert_eq!(Prot::READ.bits(), 0x1);
        assert_eq!(Prot::WRITE.bits(), 0x2);
        assert_eq!(Prot::EXEC.bits(), 0x4);
    }

    #[test]
    fn displays_as_proc_maps() {
        assert_eq!(format!("{}", Prot::READ | Prot::EXEC), "r-x");
        assert_eq!(format!("{}", Prot::rw_maybe_x(false)), "rw-");
        assert_eq!(format!("{}", Prot::empty()), "---");
        assert_eq!(format!("{:?}", Prot::all()), "Prot(rwx)");
    }

    #[test]
    fn parses_its_display() {
        for bits in 0..8 {
            let p = Prot::from_bits_truncate(bits);
            assert_eq!(format!("{p}").parse::<Prot>(), Ok(p));
        }
        assert!("rx".parse::<Prot>().is_err());
        assert!("x--".parse::<Prot>().is_err());
        assert!("r-xp".parse::<Prot>().is_err());
    }
}
