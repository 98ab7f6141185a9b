//! `tool.bpftrace.*`: the host's `bpftrace` (Debian's bpftrace) in the guest: `-l` (the tplist
//! question of the notes) and one-liners run with `-c` on a workload, each counting exactly:
//! a tracepoint, kprobe + kretprobe with `retval`, uprobe + uretprobe on hello, and `usdt:`
//! probes of hello-dyn. A bpftrace build that cannot run on a kernel fails with its own error.

use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::host_tool::{self, step, Step, Tool, Workdir};
use crate::scenario::support::openat_loop::{self, OPENAT_LOOP};
use crate::scenario::support::verdict::{count, verdict};
use crate::scenario::support::workload::{HELLO, HELLO_DYN};
use anyhow::Result;
use kmatrix_proto::{Count, ScenarioResult};
use std::collections::BTreeMap;
use std::time::Duration;

pub const BPFTRACE: Tool = Tool::asking("bpftrace", "/usr/bin/bpftrace", "bpftrace", &["--version"]);
const REQ: Req = BPFTRACE.req();
/// bpftrace compiles its program with LLVM before attaching: slow under TCG.
const TIMEOUT: Duration = Duration::from_secs(90);

/// The maps bpftrace prints at exit: `@n: 10`, `@ret[3]: 10`.
fn maps(stdout: &str) -> BTreeMap<String, i64> {
    stdout
        .lines()
        .filter(|l| l.starts_with('@'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `bpftrace -l 'tracepoint:syscalls:sys_enter_open*'` lists exactly the matching events of the
/// guest's tracefs (what the notes ask `tplist` and `perf list` for).
// bpftrace lists tracepoints from tracefs (available since 4.1 for its BPF side).
pub const LIST: Scenario = Meta::new("tool.bpftrace.list", "4.1")
    .summary("bpftrace -l 'tracepoint:syscalls:sys_enter_open*' lists exactly tracefs' sys_enter_open* events")
    .requires(&[host_tool::SYS_ENTER_OPENAT, REQ])
    .run(list);

fn list(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let out = host_tool::run(&["/usr/bin/bpftrace", "-l", "tracepoint:syscalls:sys_enter_open*"], TIMEOUT)?;
    let out = step!(host_tool::checked(ctx, &BPFTRACE, out, "bpftrace -l failed"));
    let mut problems = Vec::new();
    let (listed, counted) = host_tool::syscall_listing(
        &out.stdout,
        "sys_enter_open",
        "tracepoint:",
        "bpftrace",
        "tracefs' sys_enter_open* events listed by bpftrace",
        &mut problems,
    )?;
    let mut r = verdict(ctx.id(), vec![counted], problems);
    r.detail = BPFTRACE.detail(serde_json::json!({ "listed": listed }));
    Ok(r.with_excerpt(&out.stdout))
}

/// Run `bpftrace -e program -c command` in `dir`: its maps, its stdout (the workload's output is
/// in it), or the failed result.
fn one_liner(ctx: &Ctx, dir: &Workdir, program: &str, command: &str) -> Step<(BTreeMap<String, i64>, String)> {
    let out = dir.run(&["/usr/bin/bpftrace", "-e", program, "-c", command], TIMEOUT)?;
    let why = format!("bpftrace -e '{program}' -c '{command}' failed");
    let out = step!(host_tool::checked(ctx, &BPFTRACE, out, why));
    Ok(Ok((maps(&out.stdout), out.stdout)))
}

fn map_count(maps: &BTreeMap<String, i64>, what: impl Into<String>, key: &str, expected: u64) -> Count {
    count(what, expected, maps.get(key).copied().unwrap_or(0).max(0) as u64)
}

fn judged(
    ctx: &Ctx,
    counts: Vec<Count>,
    problems: Vec<String>,
    program: &str,
    maps: &BTreeMap<String, i64>,
    stdout: &str,
) -> ScenarioResult {
    let mut r = verdict(ctx.id(), counts, problems);
    r.detail = BPFTRACE.detail(serde_json::json!({ "program": program, "maps": maps }));
    r.with_excerpt(stdout)
}

/// `bpftrace -e 'tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @n = count(); }' -c
/// 'openat-loop N PATH'`: @n is N.
// BPF tracepoint programs came in 4.7.
pub const TRACEPOINT: Scenario = host_tool::sys_enter_openat_loop(
    "tool.bpftrace.tracepoint",
    "4.7",
    "bpftrace tracepoint:syscalls:sys_enter_openat /pid == cpid/ count() -c 'openat-loop N': @n == N",
    REQ,
)
.run(tracepoint);

fn tracepoint(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, dir, argv) = Workdir::for_openat_loop(ctx)?;
    let command = argv.join(" ");
    let program = "tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @n = count(); }";
    let (maps, stdout) = step!(one_liner(ctx, &dir, program, &command));
    let mut problems = Vec::new();
    let summary = host_tool::openat_summary(&stdout, &mut problems);
    let counts = openat_loop::counts(
        n,
        &summary,
        "@n, sys_enter_openat of the workload",
        maps.get("@n").copied().unwrap_or(0).max(0) as u64,
    );
    Ok(judged(ctx, counts, problems, program, &maps, &stdout))
}

/// `kprobe:<openat function>` and `kretprobe:<openat function>` filtered to `cpid` on
/// `openat-loop N PATH`: N calls, N returns, every `retval` the workload's fd.
// BPF kprobe programs came in 4.1.
pub const KRETPROBE: Scenario = Meta::new("tool.bpftrace.kretprobe", "4.1")
    .summary("bpftrace kprobe + kretprobe on the openat function -c 'openat-loop N': N calls, N retvals all the workload's fd")
    .requires(&[Req::Program(OPENAT_LOOP), REQ])
    .params(&[("count", "100")])
    .run(kretprobe);

fn kretprobe(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let sym = openat_loop::symbol(ctx)?;
    let (n, dir, argv) = Workdir::for_openat_loop(ctx)?;
    let command = argv.join(" ");
    let program = format!(
        "kprobe:{sym} /pid == cpid/ {{ @calls = count(); }} kretprobe:{sym} /pid == cpid/ {{ @ret[retval] = count(); }}"
    );
    let (maps, stdout) = step!(one_liner(ctx, &dir, &program, &command));
    let mut problems = Vec::new();
    let summary = host_tool::openat_summary(&stdout, &mut problems);
    let fd_key = format!("@ret[{}]", summary.fd);
    let returns: i64 = maps.iter().filter(|(k, _)| k.starts_with("@ret[")).map(|(_, v)| v).sum();
    let mut counts = openat_loop::counts(
        n,
        &summary,
        format!("@calls, kprobe:{sym} hits of the workload"),
        maps.get("@calls").copied().unwrap_or(0).max(0) as u64,
    );
    counts.push(count(format!("kretprobe:{sym} returns of the workload"), n, returns.max(0) as u64));
    counts.push(map_count(&maps, format!("returns with retval == the workload's fd {}", summary.fd), &fd_key, n));
    Ok(judged(ctx, counts, problems, &program, &maps, &stdout))
}

/// `uprobe:hello:hello_greet` and `uretprobe:hello:hello_add` on `hello N`: N greetings, N adds
/// whose return values (1, 3, 5, ...) sum to N².
// BPF uprobe programs came in 4.3.
pub const UPROBE: Scenario = Meta::new("tool.bpftrace.uprobe", "4.3")
    .summary(
        "bpftrace uprobe:hello:hello_greet + uretprobe:hello:hello_add -c 'hello N': N hits each, sum(retval) == N²",
    )
    .requires(&[Req::Program(HELLO), REQ])
    .params(&[("count", "10")])
    .run(uprobe);

fn uprobe(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, dir, hello) = Workdir::with_copy(ctx, HELLO)?;
    let program = format!(
        "uprobe:{hello}:hello_greet /pid == cpid/ {{ @greet = count(); }} \
         uretprobe:{hello}:hello_add /pid == cpid/ {{ @add = count(); @sum = sum(retval); }}"
    );
    let (maps, stdout) = step!(one_liner(ctx, &dir, &program, &format!("{hello} {n}")));
    let counts = vec![
        count("hello, world! lines printed", n, stdout.lines().filter(|l| *l == "hello, world!").count() as u64),
        map_count(&maps, "@greet, uprobe hits on hello_greet", "@greet", n),
        map_count(&maps, "@add, uretprobe hits on hello_add", "@add", n),
        map_count(&maps, "@sum of hello_add's return values (N²)", "@sum", n * n),
    ];
    Ok(judged(ctx, counts, Vec::new(), &program, &maps, &stdout))
}

/// `usdt:hello-dyn:hello:greet` and `usdt:hello-dyn:hello:add` (hello built with <sys/sdt.h>
/// probes) on `hello-dyn N`: N greet probes, N add probes whose arg0 (i) peaks at N-1 and whose
/// arg1 (the sum) adds up to N².
// USDT probes are uprobes (4.3) at the probe notes' addresses.
pub const USDT: Scenario = Meta::new("tool.bpftrace.usdt", "4.3")
    .summary(
        "bpftrace usdt:hello-dyn:hello:greet + hello:add -c 'hello-dyn N': N each, max(arg0) == N-1, sum(arg1) == N²",
    )
    .requires(&[Req::Program(HELLO_DYN), REQ])
    .params(&[("count", "10"), ("program", HELLO_DYN)])
    .run(usdt);

fn usdt(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let dir = Workdir::new()?;
    let hello = dir.copy_program(ctx, HELLO_DYN)?;
    let program = format!(
        "usdt:{hello}:hello:greet {{ @greet = count(); }} \
         usdt:{hello}:hello:add {{ @add = count(); @last = max(arg0); @sum = sum(arg1); }}"
    );
    let (maps, stdout) = step!(one_liner(ctx, &dir, &program, &format!("{hello} {n}")));
    let counts = vec![
        count("hello, world! lines printed", n, stdout.lines().filter(|l| *l == "hello, world!").count() as u64),
        map_count(&maps, "@greet, hello:greet probes", "@greet", n),
        map_count(&maps, "@add, hello:add probes", "@add", n),
        map_count(&maps, "@last, max(arg0) of hello:add (N-1)", "@last", n - 1),
        map_count(&maps, "@sum of hello:add's arg1 (N²)", "@sum", n * n),
    ];
    Ok(judged(ctx, counts, Vec::new(), &program, &maps, &stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_as_bpftrace_prints_them() {
        let out = "Attaching 2 probes...\nopenat-loop: calls=10 ok=10 fd=3 errno=0\n\n\n@calls: 10\n@ret[3]: 10\n@ret[-2]: 1\n";
        let m = maps(out);
        assert_eq!(m.get("@calls"), Some(&10));
        assert_eq!(m.get("@ret[3]"), Some(&10));
        assert_eq!(m.get("@ret[-2]"), Some(&1));
        assert_eq!(m.len(), 3);
        // A count the tool got wrong fails against N.
        assert_ne!(map_count(&m, "x", "@calls", 11).observed, 11);
    }
}
