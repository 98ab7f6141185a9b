//! `tool.strace.*`: the notes' `strace ./hello` ("user process 추적") with the host's strace
//! (Debian's strace), built on ptrace(2)'s syscall stops in the guest's kernel.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::host_tool::{self, step, Tool, Workdir};
use crate::scenario::support::openat_loop::{self, OPENAT_LOOP};
use crate::scenario::support::verdict::{count, verdict};
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

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
