//! What differs between the guest architectures the agent is built for (x86_64, aarch64), in one
//! place: syscall wrapper names, the registers that carry function arguments in kprobe fetch
//! args, the syscall entry function stacks reach, syscalls that exist on one only. Scenarios take
//! names from here and report the ones they used, so a result says which architecture's names
//! it probed. Picked at build time (`cfg(target_arch)`): one agent binary runs one architecture.

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the agent is built for x86_64 and aarch64 guests only");

/// The one switch on the build target: `x86_64`'s value on x86_64, `arm64`'s on aarch64.
const fn pick<T: Copy>(x86_64: T, arm64: T) -> T {
    if cfg!(target_arch = "x86_64") {
        x86_64
    } else {
        arm64
    }
}

/// The architecture's name as results and reasons give it.
pub const NAME: &str = pick("x86_64", "arm64");

/// The prefix of the syscall wrappers (`__x64_sys_openat`, `__arm64_sys_openat`; 4.17+).
pub const SYSCALL_PREFIX: &str = pick("__x64_sys_", "__arm64_sys_");

/// kprobe fetch-arg registers of a function's first arguments (the C calling convention).
pub const ARG_REGS: [&str; 4] = pick(["%di", "%si", "%dx", "%cx"], ["%x0", "%x1", "%x2", "%x3"]);

/// The function every syscall's kernel stack goes through, the syscall's own frames and the
/// sys_enter tracepoint's alike (on arm64 the tracepoint fires from el0_svc_common, before
/// invoke_syscall: do_el0_svc is below both).
pub const SYSCALL_ENTRY: &str = pick("do_syscall_64", "do_el0_svc");

/// The console UART's name in /proc/interrupts (the 8250's ttyS0, the PL011 of QEMU's virt).
pub const CONSOLE_IRQ: &str = pick("ttyS0", "uart-pl011");

/// The syscall wrapper of `name` on this architecture, then the generic name older kernels use.
pub fn syscall_symbols(name: &str) -> [String; 2] {
    [format!("{SYSCALL_PREFIX}{name}"), format!("sys_{name}")]
}

/// The ELF machine of this architecture (`e_machine`).
const EM_SELF: u16 = pick(62, 183);

/// Why the program `path` of the file tree at `root` (the shared host root) cannot run on this
/// CPU: its ELF, or for a `#!` script its interpreter's (`/usr/bin/env python3` too).
pub fn foreign_program(root: &std::path::Path, path: &str) -> Option<String> {
    let inside = root.join(path.trim_start_matches('/'));
    let head = std::fs::read(&inside).ok().map(|b| b[..b.len().min(256)].to_vec())?;
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = String::from_utf8_lossy(rest.split(|&c| c == b'\n').next().unwrap_or(&[])).into_owned();
        let mut words = line.split_whitespace();
        let mut interp = words.next()?.to_string();
        if interp.ends_with("/env") {
            interp = format!("/usr/bin/{}", words.next()?);
        }
        let why = foreign_elf(&root.join(interp.trim_start_matches('/')))?;
        return Some(format!("is a script whose interpreter {interp} {why}"));
    }
    foreign_elf(&inside)
}

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
        // A script is judged by its interpreter, through /usr/bin/env too.
        let root = std::env::temp_dir().join(format!("km-arch-root-{}", std::process::id()));
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/python3"), &elf).unwrap();
        std::fs::write(root.join("usr/bin/tool"), "#!/usr/bin/env python3\nprint(1)\n").unwrap();
        std::fs::write(root.join("usr/bin/ok"), "#!/bin/nothing-here\n").unwrap();
        let why = foreign_program(&root, "/usr/bin/tool").unwrap();
        assert!(why.starts_with("is a script whose interpreter /usr/bin/python3 is built for"), "{why}");
        assert_eq!(foreign_program(&root, "/usr/bin/ok"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
