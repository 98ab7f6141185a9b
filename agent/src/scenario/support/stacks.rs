//! Sampled stacks as `perf script` prints them, and folded ("collapsed") stacks, the input of a
//! flame graph: `comm;outermost;...;leaf count`, one line per distinct stack, as Brendan Gregg's
//! stackcollapse-perf.pl folds them and the `inferno` crate's flame graph renderer reads them.
//!
//! The host renders the SVG; the agent only folds what the tool printed, so the result carries
//! the stacks (`detail.collapsed`) rather than a picture. Not for ftrace's `<stack trace>`
//! entries (`tracefs::trace`).

use std::collections::BTreeMap;

/// One frame of a sample: the symbol without its offset (`[unknown]` when perf had none) and the
/// object it is in (`[kernel.kallsyms]`, a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub sym: String,
    pub dso: String,
}

impl Frame {
    /// A kernel frame: perf names the kernel `[kernel.kallsyms]` when it symbolizes from
    /// /proc/kallsyms, but prints the file's path when it found a vmlinux to read (Debian's
    /// headers ship one at `/lib/modules/<release>/build/vmlinux` from 6.12 on).
    pub fn is_kernel(&self) -> bool {
        let file = self.dso.rsplit('/').next().unwrap_or(&self.dso);
        self.dso.starts_with("[kernel.") || self.dso.starts_with("[guest.kernel") || file.starts_with("vmlinux")
    }

    /// Whether perf resolved the address to a symbol.
    pub fn resolved(&self) -> bool {
        self.sym != "[unknown]" && !self.sym.starts_with("0x") && !self.sym.is_empty()
    }
}

/// One sample: the task and its frames, leaf first (as perf prints them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub comm: String,
    pub pid: u32,
    pub frames: Vec<Frame>,
}

impl Sample {
    /// Whether the stack has `outer` somewhere below `inner` (closer to the root): the call
    /// chain went through `outer` into `inner`.
    pub fn calls(&self, outer: &str, inner: &str) -> bool {
        let pos = |name: &str| self.frames.iter().position(|f| f.sym == name);
        matches!((pos(outer), pos(inner)), (Some(o), Some(i)) if i < o)
    }

    pub fn has(&self, sym: &str) -> bool {
        self.frames.iter().any(|f| f.sym == sym)
    }
}

/// The samples of `perf script`'s default output: a header line per sample
/// (`comm pid[/tid] [cpu] time: period event:`, possibly with the leaf frame on it when no call
/// chain was recorded), then one indented line per frame (`addr sym+0xoff (dso)`), then a blank
/// line. Lines that fit neither are skipped.
pub fn parse_perf_script(text: &str) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let (Some(s), Some(f)) = (out.last_mut(), frame(line.trim())) {
                s.frames.push(f);
            }
            continue;
        }
        if let Some(s) = header(line) {
            out.push(s);
        }
    }
    out
}

/// `hello   110 [000]    10.168503:     250000 cpu-clock:ppp:` → comm and pid; the comm is
/// everything before the first all-digit (or `pid/tid`) word.
fn header(line: &str) -> Option<Sample> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| {
        let pid = w.split('/').next().unwrap_or("");
        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
    })?;
    if at == 0 {
        return None;
    }
    let pid = words[at].split('/').next()?.parse().ok()?;
    Some(Sample { comm: words[..at].join(" "), pid, frames: Vec::new() })
}

/// `ffffffff81a4f129 _raw_spin_unlock_irqrestore+0x19 ([kernel.kallsyms])`.
fn frame(line: &str) -> Option<Frame> {
    let (addr, rest) = line.split_once(char::is_whitespace)?;
    if !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (sym, dso) = rest.trim().rsplit_once(" (")?;
    let dso = dso.strip_suffix(')')?;
    let sym = match sym.rfind("+0x") {
        Some(i) => &sym[..i],
        None => sym,
    };
    Some(Frame { sym: sym.trim().to_string(), dso: dso.to_string() })
}

/// Fold samples: `comm;outermost;...;leaf` → number of samples, sorted by stack.
pub fn collapse(samples: &[Sample]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in samples {
        let mut key = s.comm.replace(';', ":");
        for f in s.frames.iter().rev() {
            key.push(';');
            key.push_str(&f.sym.replace(';', ":"));
        }
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// Folded stacks as text lines (`stack count`), the flame graph's input.
pub fn folded_lines(folded: &BTreeMap<String, u64>) -> Vec<String> {
    folded.iter().map(|(k, v)| format!("{k} {v}")).collect()
}

/// Parse folded lines (`a;b;c 12`) as a flame graph tool reads them; a malformed line is `Err`
/// with the line.
pub fn parse_folded(text: &str) -> Result<Vec<(Vec<String>, u64)>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (stack, n) = l.trim_end().rsplit_once(' ').ok_or_else(|| l.to_string())?;
            let n = n.parse::<u64>().map_err(|_| l.to_string())?;
            Ok((stack.split(';').map(str::to_string).collect(), n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `perf record -g -- ./hello 30000` then `perf script` on Debian 6.1 (perf 6.1.192), two
    /// samples, the second with an unresolved frame.
    const SCRIPT: &str = "hello   110    10.168503:     250000 cpu-clock:ppp: \n\
\t          4011b6 hello_greet+0x6 (/tmp/kmatrix-tool/hello)\n\
\t          40125f main+0x5f (/tmp/kmatrix-tool/hello)\n\
\t          401c1a __libc_start_call_main+0x6a (/tmp/kmatrix-tool/hello)\n\
\n\
perf 1/1 [000]    10.169099:     250000 cpu-clock:ppp: \n\
\tffffffff81a4f129 _raw_spin_unlock_irqrestore+0x19 ([kernel.kallsyms])\n\
\tffffffff8113b514 [unknown] ([kernel.kallsyms])\n\
\n";

    #[test]
    fn perf_script_samples_and_frames() {
        let s = parse_perf_script(SCRIPT);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].comm.as_str(), s[0].pid, s[0].frames.len()), ("hello", 110, 3));
        assert_eq!(s[0].frames[0], Frame { sym: "hello_greet".into(), dso: "/tmp/kmatrix-tool/hello".into() });
        assert!(!s[0].frames[0].is_kernel());
        assert!(s[0].calls("main", "hello_greet"));
        assert!(!s[0].calls("hello_greet", "main"));
        assert_eq!((s[1].comm.as_str(), s[1].pid), ("perf", 1));
        assert!(s[1].frames[0].is_kernel() && s[1].frames[0].resolved());
        assert!(!s[1].frames[1].resolved());
    }

    /// A kernel frame as perf 6.1 prints it when it read the vmlinux Debian 6.12's headers ship
    /// (`perf record -e cpu-clock -a -g` in a 6.12 guest with `/lib/modules/<release>/build`).
    #[test]
    fn a_vmlinux_path_is_a_kernel_frame() {
        let s = parse_perf_script(
            "sleep   119 [000]    30.579880:     250000 cpu-clock: \n\
\tffffffff8144547e __fput+0x14e (/lib/modules/6.12.107+deb13-amd64/build/vmlinux)\n\
\t          2724a __libc_start_call_main+0x7a (/usr/lib/x86_64-linux-gnu/libc.so.6)\n\n",
        );
        assert_eq!(s[0].frames.len(), 2);
        assert!(s[0].frames[0].is_kernel() && s[0].frames[0].resolved());
        assert!(!s[0].frames[1].is_kernel());
    }

    #[test]
    fn folds_outermost_first_and_counts() {
        let mut s = parse_perf_script(SCRIPT);
        s.push(s[0].clone());
        let f = collapse(&s);
        assert_eq!(f.get("hello;__libc_start_call_main;main;hello_greet"), Some(&2));
        assert_eq!(f.get("perf;[unknown];_raw_spin_unlock_irqrestore"), Some(&1));
        let lines = folded_lines(&f).join("\n");
        let back = parse_folded(&lines).unwrap();
        assert_eq!(back.iter().map(|(_, n)| n).sum::<u64>(), 3);
        assert!(parse_folded("a;b x").is_err());
    }
}
