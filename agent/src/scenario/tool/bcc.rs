//! `tool.bcc.*`: the host's BCC (Debian's bpfcc-tools, python3-bpfcc) in the guest: `tplist`
//! (tracepoints and a program's USDT probes, as the notes list them), the notes'
//! `TRACEPOINT_PROBE(random, urandom_read)` program run exactly as written, and the same macro
//! on `syscalls:sys_enter_openat` counting a workload's calls.
//!
//! BCC compiles C at run time against the running kernel's headers: the kernel's own
//! `/sys/kernel/kheaders.tar.xz` (CONFIG_IKHEADERS, which no Debian kernel sets) or
//! `/lib/modules/<release>/build`. The host fetches the build's `linux-headers` packages through
//! the kernel's chain of trust and the agent mounts them there in the view ([`Req::KernelHeaders`]);
//! where neither works (a local kernel without them), a BCC program is `unsupported` with the
//! config line and the host's reason as the evidence.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::host_tool::{self, step, Step, Tool, Workdir};
use crate::scenario::support::openat_loop;
use crate::scenario::support::verdict::{count, verdict};
use crate::scenario::support::workload::{HELLO_DYN, URANDOM_READ};
use anyhow::Result;
use kmatrix_proto::{ExecOutcome, ScenarioResult, Status};
use std::collections::BTreeSet;
use std::time::Duration;

pub const TPLIST: Tool = Tool {
    version_args: &[],
    version_file: Some(BCC_VERSION),
    ..Tool::asking("tplist-bpfcc", "/usr/sbin/tplist-bpfcc", "bpfcc-tools", &[])
};
pub const BCC: Tool = Tool {
    version_args: &[],
    version_file: Some(BCC_VERSION),
    ..Tool::asking("bcc", "/usr/bin/python3", "python3-bpfcc", &[])
};
const BCC_VERSION: &str = "/usr/lib/python3/dist-packages/bcc/version.py";
/// The BCC module itself, beside python3.
const BCC_MODULE_FILE: Tool = Tool {
    version_args: &[],
    version_file: Some(BCC_VERSION),
    ..Tool::asking("bcc module", "/usr/lib/python3/dist-packages/bcc/__init__.py", "python3-bpfcc", &[])
};
const BCC_MODULE: Req = BCC_MODULE_FILE.req();
/// What a BCC program needs beyond its event and workload: python3 with the module, and the
/// kernel's headers to compile against.
const BCC_PROGRAM: Req = Req::All(&[BCC.req(), BCC_MODULE, Req::KernelHeaders]);
/// Importing bcc and compiling with its embedded clang is slow under TCG.
const TIMEOUT: Duration = Duration::from_secs(120);

/// `tplist-bpfcc 'syscalls:sys_enter_open*'` lists exactly tracefs' matching events, and
/// `tplist-bpfcc -l hello-dyn` the program's two USDT probes, hello:greet and hello:add.
// tplist reads tracefs' events directory: as old as event tracing (2.6.31).
pub const TPLIST_LIST: Scenario = Meta::new("tool.bcc.tplist", "2.6.31")
    .summary(
        "tplist-bpfcc 'syscalls:sys_enter_open*' == tracefs' events; tplist-bpfcc -l hello-dyn: hello:greet, hello:add",
    )
    .requires(&[host_tool::SYS_ENTER_OPENAT, Req::Program(HELLO_DYN), TPLIST.req()])
    .params(&[("program", HELLO_DYN)])
    .run(tplist);

fn tplist(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let out = host_tool::run(&["/usr/sbin/tplist-bpfcc", "syscalls:sys_enter_open*"], TIMEOUT)?;
    let out = step!(host_tool::checked(ctx, &TPLIST, out, "tplist-bpfcc failed"));
    let mut problems = Vec::new();
    let (listed, tracepoints_listed) = host_tool::syscall_listing(
        &out.stdout,
        "sys_enter_open",
        "",
        "tplist",
        "tracefs' sys_enter_open* events listed",
        &mut problems,
    )?;
    let dir = Workdir::new()?;
    let hello = dir.copy_program(ctx, HELLO_DYN)?;
    let usdt = dir.run(&["/usr/sbin/tplist-bpfcc", "-l", &hello], TIMEOUT)?;
    let usdt = step!(host_tool::checked(ctx, &TPLIST, usdt, "tplist-bpfcc -l failed"));
    // `/tmp/kmatrix-tool/hello-dyn hello:greet`
    let probes: BTreeSet<String> =
        usdt.stdout.lines().filter_map(|l| l.split_whitespace().nth(1)).map(str::to_string).collect();
    let want: BTreeSet<String> = ["hello:add", "hello:greet"].map(String::from).into();
    if probes != want {
        problems.push(format!("USDT probes of hello-dyn: {probes:?}, expected {want:?}"));
    }
    let mut r = verdict(
        ctx.id(),
        vec![tracepoints_listed, count("hello-dyn's USDT probes listed", 2, probes.intersection(&want).count() as u64)],
        problems,
    );
    r.detail = TPLIST.detail(serde_json::json!({ "tracepoints": listed, "usdt": probes }));
    Ok(r.with_excerpt(&format!("{}{}", out.stdout, usdt.stdout)))
}

/// The notes' program, exactly as written (the `\\n` of a Python string is C's `\n`).
const URANDOM_PROGRAM: &str = r#"TRACEPOINT_PROBE(random, urandom_read) {
    // args is from /sys/kernel/debug/tracing/events/random/urandom_read/format
    bpf_trace_printk("%d\n", args->got_bits);
    return 0;
}
"#;

/// The same macro on `syscalls:sys_enter_openat`, counting per process.
const OPENAT_PROGRAM: &str = r#"BPF_HASH(counts, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    counts.increment(tgid);
    return 0;
}
"#;

/// Load the C program in `argv[1]` with BCC, run the workload `argv[3:]`, then either read N lines
/// of bpf_trace_printk output (`argv[2] = "printk:N"`) or the `counts` entry of the workload's pid
/// (`argv[2] = "counts"`). Prints `pid <P>`, then `line <msg>` per trace line or `count <C>`.
const DRIVER: &str = r#"import ctypes, subprocess, sys, time
from bcc import BPF
b = BPF(text=open(sys.argv[1]).read())
w = subprocess.Popen(sys.argv[3:], stdout=subprocess.PIPE, text=True)
out, _ = w.communicate(timeout=60)
print(out, end="")
print("pid", w.pid, "exit", w.returncode, flush=True)
if sys.argv[2] == "counts":
    c = b["counts"]
    k = c.Key(w.pid)
    print("count", c[k].value if k in c else 0)
else:
    want = int(sys.argv[2].split(":")[1])
    got, deadline = 0, time.time() + 20
    while got < want and time.time() < deadline:
        line = b.trace_readline(nonblocking=True)
        if not line:
            time.sleep(0.05)
            continue
        got += 1
        print("line", line.decode(errors="replace").rstrip())
"#;

/// Run `program` through [`DRIVER`] with the workload `workload`; the run, or the failed result
/// when BCC could not load it (the headers are there: [`Req::KernelHeaders`] was checked).
fn run_bcc(ctx: &Ctx, dir: &Workdir, program: &str, mode: &str, workload: &[&str]) -> Step<ExecOutcome> {
    std::fs::write(dir.path("prog.c"), program)?;
    std::fs::write(dir.path("driver.py"), DRIVER)?;
    let (prog, driver) = (dir.path("prog.c"), dir.path("driver.py"));
    let mut argv = vec!["/usr/bin/python3", driver.as_str(), prog.as_str(), mode];
    argv.extend_from_slice(workload);
    let out = dir.run(&argv, TIMEOUT)?;
    if out.success() {
        return Ok(Ok(out));
    }
    Ok(Err(host_tool::failed(ctx, &BCC, Status::Fail, "BCC could not load and run the program", &out)))
}

/// The notes' `TRACEPOINT_PROBE(random, urandom_read)` program, run with BCC exactly as
/// written, on `urandom-read N`: N trace lines of `got_bits` 128. The event left the kernel in
/// 5.18 (and 5.10.119): unsupported there, with the missing event as the reason.
// BCC's TRACEPOINT_PROBE needs BPF tracepoint programs (4.7); random:urandom_read until 5.18.
pub const URANDOM_READ_PROBE: Scenario = Meta::new("tool.bcc.urandom_read", "4.7")
    .until("5.18")
    .summary(
        "the notes' BCC TRACEPOINT_PROBE(random, urandom_read) as written, on urandom-read N: N lines of got_bits 128",
    )
    .requires(&[Req::Tracefs, Req::Event("random/urandom_read"), Req::Program(URANDOM_READ), BCC_PROGRAM])
    .params(&[("count", "10")])
    .run(urandom_read);

fn urandom_read(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, dir, prog) = Workdir::with_copy(ctx, URANDOM_READ)?;
    let ns = n.to_string();
    let out = match run_bcc(ctx, &dir, URANDOM_PROGRAM, &format!("printk:{n}"), &[&prog, &ns])? {
        Ok(o) => o,
        Err(r) => return Ok(r),
    };
    let lines: Vec<&str> = out.stdout.lines().filter_map(|l| l.strip_prefix("line ")).collect();
    let bits = lines.iter().filter(|l| l.trim_end().ends_with(": 128")).count() as u64;
    let mut r = verdict(
        ctx.id(),
        vec![count("bpf_trace_printk lines", n, lines.len() as u64), count("lines reading got_bits 128", n, bits)],
        Vec::new(),
    );
    r.detail = BCC.detail(serde_json::json!({ "program": URANDOM_PROGRAM }));
    Ok(r.with_excerpt(&excerpt::head(&out.stdout, 20)))
}

/// `TRACEPOINT_PROBE(syscalls, sys_enter_openat)` in BCC, counting per process in a BPF_HASH,
/// on `openat-loop N PATH`: the workload's entry is N.
// As tool.bcc.urandom_read; syscalls:sys_enter_openat exists throughout.
pub const SYS_ENTER_OPENAT: Scenario = host_tool::sys_enter_openat_loop(
    "tool.bcc.sys_enter_openat",
    "4.7",
    "BCC TRACEPOINT_PROBE(syscalls, sys_enter_openat) counting per process on openat-loop N: N",
    BCC_PROGRAM,
)
.run(sys_enter_openat);

fn sys_enter_openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, dir, [prog, ns, file]) = Workdir::for_openat_loop(ctx)?;
    let out = match run_bcc(ctx, &dir, OPENAT_PROGRAM, "counts", &[&prog, &ns, &file])? {
        Ok(o) => o,
        Err(r) => return Ok(r),
    };
    let mut problems = Vec::new();
    let summary = host_tool::openat_summary(&out.stdout, &mut problems);
    let counted = out.stdout.lines().find_map(|l| l.strip_prefix("count ")).and_then(|v| v.trim().parse().ok());
    if counted.is_none() {
        problems.push("the driver printed no count".into());
    }
    let counts = openat_loop::counts(n, &summary, "the BPF_HASH count of the workload", counted.unwrap_or(0));
    let mut r = verdict(ctx.id(), counts, problems);
    r.detail = BCC.detail(serde_json::json!({ "program": OPENAT_PROGRAM }));
    Ok(r.with_excerpt(&out.stdout))
}
