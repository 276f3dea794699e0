//! The kernel version a profile plans for: rules that changed between Linux releases (or came
//! with a stable back-port) are applied by comparing against it.

use core::fmt;

/// A Linux release, `major.minor.patch`. The patch level (the stable point release) matters:
/// several exec changes reached the long-term lines as back-ports.
///
/// Ordered as releases are: `5.10.262 < 6.1.0 < 6.1.140`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// The major number (`6` in 6.1.140).
    pub major: u16,
    /// The minor number (`1` in 6.1.140).
    pub minor: u16,
    /// The stable point release (`140` in 6.1.140).
    pub patch: u16,
}

impl KernelVersion {
    /// `major.minor.patch`.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        KernelVersion {
            major,
            minor,
            patch,
        }
    }

    /// Whether this is `major.minor.patch` or later.
    pub fn at_least(self, major: u16, minor: u16, patch: u16) -> bool {
        self >= KernelVersion::new(major, minor, patch)
    }

    /// Whether this is `major.minor` (any point release) or later.
    pub fn since(self, major: u16, minor: u16) -> bool {
        self.at_least(major, minor, 0)
    }

    /// Whether this release has a change that came in mainline `major.minor` and was
    /// back-ported to the stable lines listed as `(major, minor, first point release)`:
    /// true from the mainline release on, and on a listed line from its point release on.
    pub fn has(self, major: u16, minor: u16, backports: &[(u16, u16, u16)]) -> bool {
        self.since(major, minor)
            || backports
                .iter()
                .any(|&(ma, mi, p)| self.major == ma && self.minor == mi && self.patch >= p)
    }

    /// Parses the start of a release string: `6.1.140`, `6.1`, `6.12.0-37-amd64` (the point
    /// release is then 0: Debian's `uname -r` hides it; see [`Self::from_proc_version`]),
    /// `6.18.44-fc-v1098`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut nums = [0u16; 3];
        let mut rest = s;
        for (i, slot) in nums.iter_mut().enumerate() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                if i < 2 {
                    return None;
                }
                break;
            }
            *slot = rest.get(..digits)?.parse().ok()?;
            rest = rest.get(digits..)?;
            match rest.strip_prefix('.') {
                Some(r) if i < 2 => rest = r,
                _ if i < 1 => return None,
                _ => break,
            }
        }
        Some(KernelVersion::new(nums[0], nums[1], nums[2]))
    }

    /// The release from the text of `/proc/version`: Debian's kernels name their ABI
    /// (`6.1.0-37-amd64`) and put the real release at the end (`... Debian 6.1.140-1 (...)`),
    /// which wins; otherwise the release after `Linux version`.
    pub fn from_proc_version(text: &str) -> Option<Self> {
        let release = text
            .strip_prefix("Linux version ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(Self::parse);
        let words = || text.split_whitespace();
        let debian = words()
            .zip(words().skip(1))
            .filter(|(w, _)| *w == "Debian")
            .filter_map(|(_, next)| Self::parse(next))
            .find(|d| release.is_none_or(|r| r.major == d.major && r.minor == d.minor));
        debian.or(release)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::KernelVersion as K;

    #[test]
    fn parses_release_strings() {
        assert_eq!(K::parse("6.1.140"), Some(K::new(6, 1, 140)));
        assert_eq!(K::parse("6.12"), Some(K::new(6, 12, 0)));
        assert_eq!(K::parse("6.12.0-37-amd64"), Some(K::new(6, 12, 0)));
        assert_eq!(K::parse("6.18.44-fc-v1098"), Some(K::new(6, 18, 44)));
        assert_eq!(K::parse("5.10.262-1"), Some(K::new(5, 10, 262)));
        assert_eq!(K::parse("6"), None);
        assert_eq!(K::parse("x6.1"), None);
        assert_eq!(K::parse("99999.1"), None);
    }

    #[test]
    fn debian_proc_version_names_the_point_release() {
        let t = "Linux version 6.1.0-37-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian \
                 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP \
                 PREEMPT_DYNAMIC Debian 6.1.140-1 (2025-05-22)";
        assert_eq!(K::from_proc_version(t), Some(K::new(6, 1, 140)));
        let t = "Linux version 6.18.44-fc-v1098 (root@host) (gcc 12) #1 SMP";
        assert_eq!(K::from_proc_version(t), Some(K::new(6, 18, 44)));
    }

    #[test]
    fn orders_and_backports() {
        assert!(K::new(5, 10, 262) < K::new(6, 1, 0));
        assert!(K::new(6, 1, 140).has(6, 7, &[(6, 1, 140), (6, 6, 92)]));
        assert!(!K::new(6, 1, 139).has(6, 7, &[(6, 1, 140), (6, 6, 92)]));
        assert!(K::new(6, 12, 0).has(6, 7, &[(6, 1, 140)]));
        assert!(!K::new(5, 10, 262).has(6, 7, &[(6, 1, 140)]));
    }
}
