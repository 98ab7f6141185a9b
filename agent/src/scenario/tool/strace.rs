//! `tool.strace.*`: the notes' `strace ./hello` ("user process 추적") with the host's strace
//! (Debian's strace), built on ptrace(2)'s syscall stops in the guest's kernel.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::host_tool::{self, step, Tool, Workdir};
use crate::scenario::support::openat_loop::{self, OPENAT_LOOP};
use crate::scenario::support::verdict::{count, verdict};
use crate::scenario::support::workload::HELLO as HELLO_BIN;
use anyhow::Result;
use kmatrix_proto::{Count, ScenarioResult};

pub const STRACE: Tool = Tool::asking("strace", "/usr/bin/strace", "strace", &["-V"]);

/// The notes' `strace ./hello`, as `strace -e trace=openat -o FILE openat-loop N PATH`: exactly
/// N openat calls of PATH, each returning an fd.
// PTRACE_O_TRACESYSGOOD-era strace: 2.6 throughout.
pub const OPENAT: Scenario = Meta::new("tool.strace.openat", "2.6.33")
    .summary("strace -e trace=openat openat-loop N: exactly N openat calls of the path, each returning an fd")
    .requires(&[Req::Program(OPENAT_LOOP), STRACE.req()])
    .params(openat_loop::PARAMS_100)
    .run(openat);

fn openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, dir, prog) = Workdir::with_copy(ctx, OPENAT_LOOP)?;
    let path = openat_loop::target_path(ctx)?;
    let ns = n.to_string();
    let out = step!(dir.step(
        ctx,
        &STRACE,
        &["/usr/bin/strace", "-e", "trace=openat", "-o", "strace.txt", &prog, &ns, &path],
        "strace failed"
    ));
    let text = dir.read("strace.txt")?;
    // `openat(AT_FDCWD, "/tmp/kmatrix-openat", O_RDONLY|O_CLOEXEC) = 3`
    let calls: Vec<&str> = text.lines().filter(|l| l.starts_with("openat(")).collect();
    let of_path = calls.iter().filter(|l| l.contains(&format!("\"{path}\""))).count() as u64;
    let mut problems = Vec::new();
    let summary = host_tool::openat_summary(&out.stdout, &mut problems);
    let fd = format!(") = {}", summary.fd);
    let with_fd = calls.iter().filter(|l| l.ends_with(&fd)).count() as u64;
    let mut counts = openat_loop::counts(n, &summary, "openat calls strace printed", calls.len() as u64);
    counts.push(count(format!("calls of {path}"), n, of_path));
    counts.push(count(format!("calls returning fd {}", summary.fd), n, with_fd));
    let mut r = verdict(ctx.id(), counts, problems);
    r.detail = STRACE.detail(serde_json::json!({ "path": path }));
    Ok(r.with_excerpt(&excerpt::head(&text, 8)))
}

/// The notes' `strace ./hello` as written, every syscall traced: hello's N greetings reach its
/// stdout through write(2) calls whose return values strace shows; their sum must be the bytes
/// the agent read from hello's stdout (a witness apart from strace), N greetings of 14 bytes;
/// the rusage line on stderr is one write(2, "hello: ...") and the process exits with 0.
pub const HELLO: Scenario = Meta::new("tool.strace.hello", "2.6.33")
    .summary("strace ./hello N: the bytes of hello's write(1, ...) calls == the bytes read from its stdout == 14 N; one write(2, \"hello: ...\"); exit 0")
    .requires(&[Req::Program(HELLO_BIN), STRACE.req()])
    .params(&[("count", "1000")])
    .run(hello);

/// `hello, world!\n`
const GREETING: u64 = 14;

fn hello(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, dir, prog) = Workdir::with_copy(ctx, HELLO_BIN)?;
    let ns = n.to_string();
    let out = step!(dir.step(ctx, &STRACE, &["/usr/bin/strace", "-o", "strace.txt", &prog, &ns], "strace failed"));
    let text = dir.read("strace.txt")?;
    let mut r = verdict(ctx.id(), hello_counts(n, &text, out.stdout.len() as u64), Vec::new());
    r.detail = STRACE.detail(serde_json::json!({ "syscalls": text.lines().count() }));
    let writes: Vec<&str> = text.lines().filter(|l| l.starts_with("write(")).take(8).collect();
    Ok(r.with_excerpt(&writes.join("\n")))
}

/// The checks of `strace ./hello N`'s trace `text`, hello's stdout having been `stdout_bytes`.
fn hello_counts(n: u64, text: &str, stdout_bytes: u64) -> Vec<Count> {
    // `write(1, "hello, world!\nhello, world!\nhel"..., 4096) = 4096`
    let returned = |l: &str| l.rsplit_once(") = ").and_then(|(_, r)| r.trim().parse::<u64>().ok());
    let written: u64 = text.lines().filter(|l| l.starts_with("write(1, ")).filter_map(returned).sum();
    let rusage = text.lines().filter(|l| l.starts_with("write(2, \"hello: nvcsw=")).count() as u64;
    let exited = text.lines().filter(|l| l.trim() == "+++ exited with 0 +++").count() as u64;
    vec![
        count("bytes hello's write(1, ...) calls returned (== bytes read from its stdout)", stdout_bytes, written),
        count("bytes read from hello's stdout (N greetings)", GREETING * n, stdout_bytes),
        count("write(2, \"hello: ...\") calls", 1, rusage),
        count("+++ exited with 0 +++", 1, exited),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `strace -o strace.txt ./hello 1000` (strace 6.1, the static hello), abridged.
    const TRACE: &str = "execve(\"./hello\", [\"./hello\", \"1000\"], 0x7ffd5fd0 /* 8 vars */) = 0
getrusage(RUSAGE_SELF, {ru_utime={tv_sec=0, tv_usec=0}, ...}) = 0
write(1, \"hello, world!\\nhello, world!\\nhel\"..., 4096) = 4096
write(1, \"hello, world!\\nhello, world!\\nhel\"..., 4096) = 4096
write(1, \"hello, world!\\nhello, world!\\nhel\"..., 4096) = 4096
write(1, \"ld!\\nhello, world!\\nhello, world!\"..., 1712) = 1712
write(2, \"hello: nvcsw=0 nivcsw=3 minflt=0 \"..., 46) = 46
exit_group(0)                           = ?
+++ exited with 0 +++
";

    #[test]
    fn hellos_writes_are_checked_against_its_stdout() {
        let c = hello_counts(1000, TRACE, 14000);
        assert!(c.iter().all(|c| c.expected == c.observed), "{c:?}");
        // A write strace missed, or bytes the pipe lost: each side fails against the other.
        let missed = TRACE.replacen("write(1, \"ld!", "read(1, \"ld!", 1);
        assert_eq!(hello_counts(1000, &missed, 14000)[0].observed, 12288);
        assert_eq!(hello_counts(1000, TRACE, 13000)[1].observed, 13000);
        assert_eq!(hello_counts(1000, "+++ killed by SIGKILL +++\n", 14000)[3].observed, 0);
    }
}
