//! The guest's CPUs: which are online (`/sys/devices/system/cpu/online`) and pinning a task to
//! one (`sched_setaffinity`), for the scenarios whose path is per CPU and the requirement that
//! names how many CPUs they need.

use anyhow::{Context, Result};

/// Where the kernel lists its online CPUs (`0`, `0-1`, `0,2-3`).
pub const ONLINE: &str = "/sys/devices/system/cpu/online";

/// The CPUs of a kernel CPU list (`0-1,4`), in order; `None` when it does not parse.
pub fn parse_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 4096 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// The online CPUs and the file's text (for evidence).
pub fn online() -> Result<(Vec<u32>, String)> {
    let text = std::fs::read_to_string(ONLINE).with_context(|| format!("read({ONLINE}) failed"))?;
    let cpus = parse_list(&text).with_context(|| format!("{ONLINE} is not a CPU list: {text:?}"))?;
    Ok((cpus, text.trim().to_string()))
}

/// Let task `pid` run on `cpu` only.
pub fn pin(pid: i32, cpu: u32) -> Result<()> {
    anyhow::ensure!((cpu as usize) < libc::CPU_SETSIZE as usize, "cpu {cpu} beyond CPU_SETSIZE");
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit of the set we own; cpu is below CPU_SETSIZE (checked).
    unsafe { libc::CPU_SET(cpu as usize, &mut set) };
    // SAFETY: sched_setaffinity reads one cpu_set_t of the size given.
    if unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("sched_setaffinity({pid}, cpu {cpu})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_list("0\n"), Some(vec![0]));
        assert_eq!(parse_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_list("0,2-3"), Some(vec![0, 2, 3]));
        assert_eq!(parse_list(""), Some(vec![]));
        assert_eq!(parse_list("x"), None);
        assert_eq!(parse_list("3-1"), None);
    }
}
