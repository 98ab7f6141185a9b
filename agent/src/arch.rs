//! What differs between the guest architectures the agent is built for (x86_64, aarch64), in one
//! place: syscall wrapper names, the registers that carry function arguments in kprobe fetch
//! args, the syscall entry function stacks reach, syscalls that exist on one only. Scenarios take
//! names from here and report the ones they used, so a result says which architecture's names
//! it probed. Picked at build time (`cfg(target_arch)`): one agent binary runs one architecture.

/// The architecture's name as results and reasons give it.
#[cfg(target_arch = "x86_64")]
pub const NAME: &str = "x86_64";
#[cfg(target_arch = "aarch64")]
pub const NAME: &str = "arm64";

/// The prefix of the syscall wrappers (`__x64_sys_openat`, `__arm64_sys_openat`; 4.17+).
#[cfg(target_arch = "x86_64")]
pub const SYSCALL_PREFIX: &str = "__x64_sys_";
#[cfg(target_arch = "aarch64")]
pub const SYSCALL_PREFIX: &str = "__arm64_sys_";

/// kprobe fetch-arg registers of a function's first arguments (the C calling convention).
#[cfg(target_arch = "x86_64")]
pub const ARG_REGS: [&str; 4] = ["%di", "%si", "%dx", "%cx"];
#[cfg(target_arch = "aarch64")]
pub const ARG_REGS: [&str; 4] = ["%x0", "%x1", "%x2", "%x3"];

/// The function every syscall's kernel stack goes through.
#[cfg(target_arch = "x86_64")]
pub const SYSCALL_ENTRY: &str = "do_syscall_64";
#[cfg(target_arch = "aarch64")]
pub const SYSCALL_ENTRY: &str = "invoke_syscall";

/// The syscall wrapper of `name` on this architecture, then the generic name older kernels use.
pub fn syscall_symbols(name: &str) -> [String; 2] {
    [format!("{SYSCALL_PREFIX}{name}"), format!("sys_{name}")]
}

/// The ELF machine of this architecture (`e_machine`).
#[cfg(target_arch = "x86_64")]
const EM_SELF: u16 = 62;
#[cfg(target_arch = "aarch64")]
const EM_SELF: u16 = 183;

/// Why the ELF executable at `path` cannot run on this CPU (a host tool of an x86_64 host in an
/// arm64 guest), or None when it can or is not an ELF file (a script: its interpreter decides).
pub fn foreign_elf(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).ok()?;
    if &head[..4] != b"\x7fELF" {
        return None;
    }
    let machine = u16::from_le_bytes([head[18], head[19]]);
    let name = match machine {
        62 => "x86_64",
        183 => "arm64",
        _ => "another architecture",
    };
    (machine != EM_SELF).then(|| format!("is built for {name} (ELF machine {machine}) and this guest is {NAME}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_build_target() {
        let [w, g] = syscall_symbols("openat");
        assert!(w.ends_with("_sys_openat") && w.starts_with("__"), "{w}");
        assert_eq!(g, "sys_openat");
        #[cfg(target_arch = "x86_64")]
        assert_eq!((w.as_str(), ARG_REGS[1]), ("__x64_sys_openat", "%si"));
    }

    #[test]
    fn own_executable_runs_here_and_a_foreign_one_is_named() {
        let me = std::env::current_exe().unwrap();
        assert_eq!(foreign_elf(&me), None);
        let d = std::env::temp_dir().join(format!("km-arch-{}", std::process::id()));
        let mut elf = std::fs::read(&me).unwrap()[..64].to_vec();
        let other: u16 = if EM_SELF == 62 { 183 } else { 62 };
        elf[18..20].copy_from_slice(&other.to_le_bytes());
        std::fs::write(&d, &elf).unwrap();
        let why = foreign_elf(&d).unwrap();
        std::fs::remove_file(&d).unwrap();
        assert!(why.contains(&format!("ELF machine {other}")), "{why}");
        assert_eq!(foreign_elf(std::path::Path::new("/nonexistent")), None);
    }
}
