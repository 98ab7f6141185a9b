//! `tool.uftrace.*`: the host's `uftrace` (Debian's uftrace) on `hello-dyn`, hello built as the
//! seeds build it (`gcc -g -pg`, dynamically linked: uftrace preloads its libmcount), as in the
//! seeds: `uftrace record` + `replay`, `-k` (kernel functions through the function_graph
//! tracer), `dump --chrome` (Chrome trace JSON for chrome://tracing and Perfetto) and
//! `dump --flame-graph` (folded stacks).
//!
//! uftrace needs POSIX shared memory (the agent mounts `/dev/shm`) and, for `-k`, finds tracefs
//! through `/proc/self/mountinfo` (the share makes mounts shared, as on a systemd host).

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::host_tool::{self, step, Step, Tool, Workdir};
use crate::scenario::support::stacks;
use crate::scenario::support::verdict::{count, verdict};
use crate::scenario::support::workload::HELLO_DYN;
use anyhow::{Context, Result};
use kmatrix_proto::{Count, ScenarioResult, Status};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};

pub const UFTRACE: Tool = Tool::asking("uftrace", "/usr/bin/uftrace", "uftrace", &["--version"]);
const REQ: Req = UFTRACE.req();
/// `program`: the image's program to record (hello-dyn; a static one shows uftrace's refusal).
const PARAMS: &[(&str, &str)] = &[("count", "10"), ("program", HELLO_DYN)];

/// The entry of a scenario on a user-space recording of hello-dyn (`-pg`, mcount: nothing of
/// the kernel beyond perf-less basics, hence 2.6.32).
const fn user_recording(id: &'static str, summary: &'static str) -> Meta {
    Meta::new(id, "2.6.32").summary(summary).requires(&[Req::Program(HELLO_DYN), REQ]).params(PARAMS)
}

/// One call in `uftrace replay`: its name, the function it was called from, and its duration
/// (`12.679 us`) when the replay printed one.
#[derive(Debug, PartialEq)]
struct Call {
    name: String,
    parent: Option<String>,
    duration: Option<String>,
}

/// `uftrace replay`'s call tree: `  12.679 us [   112] |   hello_add();` (a leaf), `... |
/// main() {` (opens), `  1.566 ms [    88] | } /* main */` (closes, with the duration).
/// Comments (`/* linux:schedule */`) are skipped.
fn parse_replay(text: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((left, right)) = line.split_once(" | ") else {
            continue;
        };
        let duration = left.split('[').next().map(str::trim).filter(|d| !d.is_empty()).map(str::to_string);
        let what = right.trim();
        let parent = open.last().map(|&i| calls[i].name.clone());
        if let Some(name) = what.strip_suffix("() {") {
            open.push(calls.len());
            calls.push(Call { name: name.to_string(), parent, duration: None });
        } else if let Some(name) = what.strip_suffix("();") {
            calls.push(Call { name: name.to_string(), parent, duration });
        } else if what.starts_with('}') {
            if let Some(i) = open.pop() {
                calls[i].duration = duration;
            }
        }
    }
    calls
}

/// `uftrace record [-k] -d uftrace.data hello-dyn N` in a fresh directory, N the declared
/// count: N and the directory of the run, or the failed result.
fn record(ctx: &mut Ctx, kernel: bool) -> Step<(u64, Workdir)> {
    let n = ctx.declared_count()?;
    ctx.tfs.remember_settings()?;
    let dir = Workdir::new()?;
    let prog = dir.copy_program(ctx, HELLO_DYN)?;
    let ns = n.to_string();
    let mut argv = vec!["/usr/bin/uftrace", "record"];
    if kernel {
        // The seeds' `uftrace record -K 5`: kernel functions, 5 levels deep.
        argv.extend_from_slice(&["-K", "5"]);
    }
    argv.extend_from_slice(&["-d", "uftrace.data", &prog, &ns]);
    let out = step!(dir.step(ctx, &UFTRACE, &argv, "uftrace record failed"));
    if kernel {
        // uftrace goes on without the kernel part when it cannot set function_graph up.
        if let Some(l) = out.stderr.lines().find(|l| l.contains("kernel tracing disabled")) {
            return Ok(Err(host_tool::failed(
                ctx,
                &UFTRACE,
                Status::Fail,
                format!("uftrace record -k: {}", l.trim()),
                &out,
            )));
        }
    }
    Ok(Ok((n, dir)))
}

/// The hello-dyn calls a replay must show: N hello_greet and N hello_add called from main,
/// each with its duration.
fn hello_counts(n: u64, calls: &[Call]) -> Vec<Count> {
    let from_main =
        |name: &str| calls.iter().filter(|c| c.name == name && c.parent.as_deref() == Some("main")).collect::<Vec<_>>();
    let (greet, add) = (from_main("hello_greet"), from_main("hello_add"));
    vec![
        count("main calls in the replay", 1, calls.iter().filter(|c| c.name == "main").count() as u64),
        count("hello_greet calls from main", n, greet.len() as u64),
        count("hello_add calls from main", n, add.len() as u64),
        count(
            "hello_greet and hello_add calls with a duration",
            2 * n,
            greet.iter().chain(&add).filter(|c| c.duration.is_some()).count() as u64,
        ),
    ]
}

fn replay(ctx: &Ctx, dir: &Workdir) -> Step<(Vec<Call>, String)> {
    let out =
        step!(dir.step(ctx, &UFTRACE, &["/usr/bin/uftrace", "replay", "-d", "uftrace.data"], "uftrace replay failed"));
    Ok(Ok((parse_replay(&out.stdout), out.stdout)))
}

/// The seeds' `uftrace record ./hello` + `uftrace replay` + `uftrace report`: the call tree
/// main → hello_greet and hello_add, N each, with durations, and N calls of each in the report.
// uftrace records user functions with -pg (mcount): no kernel feature beyond perf-less basics.
pub const REPLAY: Scenario = user_recording(
    "tool.uftrace.replay",
    "uftrace record + replay + report of hello-dyn N: main calls hello_greet and hello_add N times each, with durations",
)
    .run(replay_tree);

fn replay_tree(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, dir) = step!(record(ctx, false));
    let (calls, text) = step!(replay(ctx, &dir));
    // The seeds' `uftrace report`: the calls column of hello_greet and hello_add is N.
    let rep =
        step!(dir.step(ctx, &UFTRACE, &["/usr/bin/uftrace", "report", "-d", "uftrace.data"], "uftrace report failed"));
    let mut counts = hello_counts(n, &calls);
    for f in ["hello_greet", "hello_add"] {
        counts.push(count(format!("uftrace report's calls of {f}"), n, report_calls(&rep.stdout, f).unwrap_or(0)));
    }
    let mut r = verdict(ctx.id(), counts, Vec::new());
    r.detail = UFTRACE.detail(serde_json::json!({ "calls": calls.len() }));
    Ok(r.with_excerpt(&format!("{}\n{}", excerpt::head(&text, 24), excerpt::head(&rep.stdout, 12))))
}

/// The `Calls` column of `uftrace report` for `function`:
/// `   175.455 us   30.294 us           2  hello_greet`.
fn report_calls(text: &str, function: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.last() == Some(&function) && w.len() >= 6).then(|| w[w.len() - 2].parse().ok()).flatten()
    })
}

/// The seeds' `uftrace -k ./hello` / `uftrace record -K 5 ./hello`: kernel functions, recorded
/// through the function_graph tracer for hello's pid, appear in the replay among hello's calls.
// uftrace's kernel tracing drives function_graph with set_ftrace_pid (3.x).
pub const KERNEL: Scenario = Meta::new("tool.uftrace.kernel", "3.10")
    .summary(
        "uftrace record -K 5 + replay of hello-dyn N: hello's N calls and kernel functions (function_graph) in one tree",
    )
    .requires(&[Req::Tracefs, Req::Tracer("function_graph"), Req::File("set_ftrace_pid"), Req::Program(HELLO_DYN), REQ])
    .params(PARAMS)
    .run(kernel);

fn kernel(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, dir) = step!(record(ctx, true));
    let (calls, text) = step!(replay(ctx, &dir));
    let names: BTreeSet<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    let kernel = kernel_text_symbols(&names)?;
    let kernel_calls = calls.iter().filter(|c| kernel.contains(c.name.as_str())).count() as u64;
    let mut counts = hello_counts(n, &calls);
    counts.push(count("kernel function calls in the replay (at least one)", 1, kernel_calls.min(1)));
    let mut r = verdict(ctx.id(), counts, Vec::new());
    r.detail = UFTRACE.detail(serde_json::json!({ "kernel_functions": kernel, "kernel_calls": kernel_calls }));
    Ok(r.with_excerpt(&excerpt::head(&text, 40)))
}

/// Which of `names` are text symbols of the running kernel, in one pass over /proc/kallsyms.
fn kernel_text_symbols(names: &BTreeSet<&str>) -> Result<BTreeSet<String>> {
    let f = std::fs::File::open("/proc/kallsyms").context("open(/proc/kallsyms) failed")?;
    let mut out = BTreeSet::new();
    for line in BufReader::with_capacity(256 * 1024, f).lines().map_while(Result::ok) {
        let mut w = line.split_whitespace();
        let (Some(_), Some(kind), Some(name)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        if (kind == "t" || kind == "T") && names.contains(name) {
            out.insert(name.to_string());
        }
    }
    Ok(out)
}

/// The seeds' `uftrace dump --chrome` (for chrome://tracing and ui.perfetto.dev): valid JSON with
/// a `traceEvents` array holding N begin and N end events of hello_greet.
// As tool.uftrace.replay.
pub const CHROME: Scenario = user_recording(
    "tool.uftrace.chrome",
    "uftrace dump --chrome of hello-dyn N: valid Chrome trace JSON, N B and N E events of hello_greet",
)
.run(chrome);

fn chrome(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, dir) = step!(record(ctx, false));
    step!(dir.step_to_file(
        ctx,
        &UFTRACE,
        &["/usr/bin/uftrace", "dump", "-d", "uftrace.data", "--chrome"],
        "chrome.json",
        "uftrace dump --chrome failed"
    ));
    let text = dir.read("chrome.json")?;
    let json: serde_json::Value = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => {
            let mut r = verdict(ctx.id(), Vec::new(), vec![format!("uftrace dump --chrome is not valid JSON: {e}")]);
            r.detail = UFTRACE.detail(serde_json::json!({}));
            return Ok(r.with_excerpt(&excerpt::head(&text, 20)));
        }
    };
    let events = json.get("traceEvents").and_then(|e| e.as_array()).cloned().unwrap_or_default();
    let phase = |ph: &str| {
        events
            .iter()
            .filter(|e| e.get("ph").and_then(|p| p.as_str()) == Some(ph))
            .filter(|e| e.get("name").and_then(|p| p.as_str()) == Some("hello_greet"))
            .count() as u64
    };
    let mut problems = Vec::new();
    if events.is_empty() {
        problems.push("no traceEvents array".into());
    }
    let mut r = verdict(
        ctx.id(),
        vec![count("hello_greet begin (B) events", n, phase("B")), count("hello_greet end (E) events", n, phase("E"))],
        problems,
    );
    r.detail = UFTRACE.detail(serde_json::json!({ "trace_events": events.len() }));
    Ok(r.with_excerpt(&excerpt::head(&text, 12)))
}

/// The seeds' `uftrace dump --flame-graph`: folded stacks (`a;b;c <usec>`), every line well
/// formed, naming main and hello_greet; kept in `detail.collapsed` for the host's SVG. (uftrace
/// leaves out stacks whose total time is under 1 us, which hello_add's N short calls can be
/// under TCG: it is listed in the detail, not judged.)
// As tool.uftrace.replay.
pub const FLAME_GRAPH: Scenario = user_recording(
    "tool.uftrace.flame_graph",
    "uftrace dump --flame-graph of hello-dyn N: well-formed folded stacks naming main and hello_greet (detail.collapsed)",
)
    .run(flame_graph);

fn flame_graph(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (_n, dir) = step!(record(ctx, false));
    let out = step!(dir.step(
        ctx,
        &UFTRACE,
        &["/usr/bin/uftrace", "dump", "-d", "uftrace.data", "--flame-graph"],
        "uftrace dump --flame-graph failed"
    ));
    let mut problems = Vec::new();
    let folded = stacks::parse_folded(&out.stdout).unwrap_or_else(|line| {
        problems.push(format!("not a folded stack line: {line:?}"));
        Vec::new()
    });
    let frames: BTreeSet<&str> = folded.iter().flat_map(|(s, _)| s.iter().map(String::as_str)).collect();
    let named = ["main", "hello_greet"].iter().filter(|f| frames.contains(*f)).count() as u64;
    // uftrace 0.13 folds a call made after a `linux:schedule` (preempted) record at main's depth
    // as a root of its own: kept as an observation, not judged (preemption is not deterministic).
    let outside_main = folded.iter().filter(|(s, _)| s.first().map(String::as_str) == Some("hello_greet")).count();
    let mut r = verdict(ctx.id(), vec![count("frames main and hello_greet in the folded stacks", 2, named)], problems);
    r.detail = UFTRACE.detail(serde_json::json!({
        "collapsed": out.stdout.lines().collect::<Vec<_>>(),
        "hello_add_folded": frames.contains("hello_add"),
        "hello_greet_stacks_not_under_main": outside_main,
    }));
    Ok(r.with_excerpt(&excerpt::head(&out.stdout, 20)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `uftrace replay` of `uftrace record ./hello-dyn 2` (uftrace 0.13, Debian 6.1 guest).
    const REPLAY_TEXT: &str = "# DURATION     TID     FUNCTION
 166.561 us [    88] | __monstartup();
            [    88] | main() {
            [    88] |   wait_for_start() {
  51.978 us [    88] |     getenv();
  99.831 us [    88] |   } /* wait_for_start */
 118.969 us [    88] |   /* linux:schedule (pre-empted) */
            [    88] |   hello_greet() {
 140.161 us [    88] |     fputs();
 175.455 us [    88] |   } /* hello_greet */
   3.475 us [    88] |   hello_add();
            [    88] |   hello_greet() {
   6.560 us [    88] |     fputs();
  13.330 us [    88] |   } /* hello_greet */
   0.371 us [    88] |   hello_add();
   1.566 ms [    88] | } /* main */
";

    #[test]
    fn replay_tree_with_parents_and_durations() {
        let calls = parse_replay(REPLAY_TEXT);
        let greet: Vec<&Call> = calls.iter().filter(|c| c.name == "hello_greet").collect();
        assert_eq!(greet.len(), 2);
        assert_eq!(greet[0].parent.as_deref(), Some("main"));
        assert_eq!(greet[0].duration.as_deref(), Some("175.455 us"));
        let fputs = calls.iter().find(|c| c.name == "fputs").unwrap();
        assert_eq!(fputs.parent.as_deref(), Some("hello_greet"));
        let c = hello_counts(2, &calls);
        assert!(c.iter().all(|c| c.expected == c.observed), "{c:?}");
        let report = "  Total time   Self time       Calls  Function\n  ==========  ==========  ==========  ====\n\
                      1.566 ms  100.137 us           1  main\n  175.455 us   30.294 us           2  hello_greet\n";
        assert_eq!(report_calls(report, "hello_greet"), Some(2));
        assert_eq!(report_calls(report, "main"), Some(1));
        assert_eq!(report_calls(report, "hello_add"), None);
        // Three greetings expected from two recorded: the check fails.
        let c = hello_counts(3, &calls);
        assert!(c.iter().any(|c| c.expected != c.observed));
    }
}
