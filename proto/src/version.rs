//! The upstream kernel version (`6.1.0`), parsed once for host and agent alike.
//!
//! Not Debian package versions (`6.1.176-1`): those follow dpkg's rules and the harness's kernel
//! provider compares them.

/// An upstream kernel version, `major.minor.patch`: the one parser of versions for the host and
/// the agent alike, from a release (`6.1.0-47-amd64`, `6.12.57+deb13-amd64`), a `since` (`5.15`)
/// or an upstream version (`7.3.4`). Missing parts are 0. Debian *package* versions
/// (`6.1.176-1`, with epochs and `~bpo` suffixes) are another thing, compared by dpkg's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KernelVersion {
    /// `6` of 6.1.0.
    pub major: u32,
    /// `1` of 6.1.0.
    pub minor: u32,
    /// `0` of 6.1.0 (for Debian releases the ABI's first number, not the point release).
    pub patch: u32,
}

impl KernelVersion {
    /// A version by its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> KernelVersion {
        KernelVersion { major, minor, patch }
    }

    /// The leading `a.b[.c]` of `s`; `None` when it does not start with `a.b` or `a`.
    pub fn parse(s: &str) -> Option<KernelVersion> {
        let head: String = s.trim().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let mut it = head.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u32>());
        let major = it.next()?.ok()?;
        let minor = it.next().unwrap_or(Ok(0)).ok()?;
        let patch = it.next().unwrap_or(Ok(0)).ok()?;
        Some(KernelVersion { major, minor, patch })
    }

    /// `LINUX_VERSION_CODE` (`(a << 16) + (b << 8) + min(c, 255)`), as BPF_PROG_LOAD wants it.
    pub fn code(self) -> u32 {
        (self.major << 16) + (self.minor << 8) + self.patch.min(255)
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse_from_releases_since_and_upstream_versions() {
        assert_eq!(KernelVersion::parse("6.1.0-47-amd64"), Some(KernelVersion::new(6, 1, 0)));
        assert_eq!(KernelVersion::parse("6.12.57+deb13-amd64"), Some(KernelVersion::new(6, 12, 57)));
        assert_eq!(KernelVersion::parse("5.15"), Some(KernelVersion::new(5, 15, 0)));
        assert_eq!(KernelVersion::parse("7"), Some(KernelVersion::new(7, 0, 0)));
        assert_eq!(KernelVersion::parse("abc"), None);
        assert_eq!(KernelVersion::parse(""), None);
        assert!(KernelVersion::new(5, 10, 0) < KernelVersion::new(5, 15, 0));
        assert!(KernelVersion::new(6, 1, 0) > KernelVersion::new(5, 15, 300));
        assert_eq!(KernelVersion::new(6, 1, 300).code(), 0x0601ff);
        assert_eq!(KernelVersion::new(6, 1, 0).to_string(), "6.1.0");
    }
}
