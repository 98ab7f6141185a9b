//! The trace data a result carries, as a Chrome trace-event JSON file (opens in Perfetto and
//! chrome://tracing): one track per task (pid and tid are the task's pid), function_graph calls
//! as nested slices (`B`/`E`), every other trace entry (tracepoints, probes, function hits) as an
//! instant (`i`) at its timestamp.
//!
//! The input is the result's whole capture of the raw trace when it carries one (else, for older
//! results, its bounded excerpt), parsed with the parsers the agent counts with
//! (`kmatrix_proto::ftrace`). function_graph lines with `funcgraph-abstime` sit at the kernel's
//! own timestamps: an open or a leaf starts at its line's time, a leaf ends its duration later,
//! a close ends its call at its line's time. A leaf's line carries the time its entry was
//! recorded, a little after the call began, so its duration can reach past the next line's time
//! on its task (seen under TCG: a parent's `}` 0.3 µs before its last child's end): such a leaf
//! ends at that next time, and says by how much it was cut (`clamped_us`). Without timestamps, slices keep the kernel's
//! durations and are laid out one after the other on their task's track, 1 µs apart at the top
//! level. `otherData` says which, and the source. Not for sampled stacks (`flamegraph.rs`).

use kmatrix_proto::ftrace::graph::{self, Kind};
use kmatrix_proto::ftrace::parse_entry;
use kmatrix_proto::ScenarioResult;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Gap between two top-level function_graph calls of a task, µs (their real gap is not printed).
const GAP_US: f64 = 1.0;

/// One track's events, in the order they happen.
#[derive(Default)]
struct Track {
    name: String,
    events: Vec<Value>,
}

fn track<'t>(tracks: &'t mut BTreeMap<i64, Track>, id: i64, name: &str) -> &'t mut Track {
    let t = tracks.entry(id).or_default();
    if t.name.is_empty() {
        t.name = name.to_string();
    }
    t
}

/// The function_graph lines of `text` as nested slices, per task.
fn graph_slices(text: &str, tracks: &mut BTreeMap<i64, Track>) -> usize {
    let lines = graph::parse(text);
    // Without funcgraph-proc there is no pid: one track per CPU (negative ids).
    let track_of = |l: &graph::Line| l.pid.map_or(-1 - i64::from(l.cpu), i64::from);
    // For each line, the time of the next timed line on its track (µs), if any.
    let mut next_at = vec![None; lines.len()];
    let mut later: BTreeMap<i64, f64> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate().rev() {
        next_at[i] = later.get(&track_of(l)).copied();
        if let Some(at) = l.abstime {
            later.insert(track_of(l), at * 1e6);
        }
    }
    // Per track: the clock, and the calls open on it (name, start).
    let mut state: BTreeMap<i64, (f64, Vec<(String, f64)>)> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let id = track_of(l);
        let name = match l.pid {
            Some(p) => format!("pid {p}"),
            None => format!("cpu {}", l.cpu),
        };
        let t = track(tracks, id, &name);
        let (clock, open) = state.entry(id).or_insert((0.0, Vec::new()));
        // The kernel's clock, where the line has it, in µs.
        if let Some(at) = l.abstime {
            *clock = at * 1e6;
        }
        let timed = l.abstime.is_some();
        let ev = |ph: &str, name: &str, ts: f64, args: Value| json!({"name": name, "cat": "function_graph", "ph": ph, "ts": ts, "pid": id, "tid": id, "args": args});
        match &l.kind {
            Kind::Open(f) => {
                if open.is_empty() && *clock > 0.0 && !timed {
                    *clock += GAP_US;
                }
                t.events.push(ev("B", f, *clock, json!({})));
                open.push((f.to_string(), *clock));
            }
            Kind::Leaf(f) => {
                if open.is_empty() && *clock > 0.0 && !timed {
                    *clock += GAP_US;
                }
                let d = l.duration_us.unwrap_or(0.0).max(0.0);
                let mut args = json!({"duration_us": l.duration_us});
                if let Some(r) = l.retval {
                    args["retval"] = json!(r);
                }
                t.events.push(ev("B", f, *clock, json!({})));
                let end = *clock + d;
                *clock = match next_at[i].filter(|&n| timed && n < end) {
                    Some(n) => {
                        args["clamped_us"] = json!(end - n.max(*clock));
                        n.max(*clock)
                    }
                    None => end,
                };
                t.events.push(ev("E", f, *clock, args));
            }
            Kind::Close(_) => {
                // A close whose open is before the excerpt has no slice to end.
                let Some((f, start)) = open.pop() else { continue };
                let end = if timed { *clock } else { (start + l.duration_us.unwrap_or(0.0)).max(*clock) };
                *clock = end;
                let mut args = json!({"duration_us": l.duration_us});
                if let Some(r) = l.retval {
                    args["retval"] = json!(r);
                }
                t.events.push(ev("E", &f, end, args));
            }
        }
    }
    // Calls still open where the excerpt was cut end where the track's clock is.
    for (id, (clock, open)) in state {
        let t = track(tracks, id, "");
        for (f, _) in open.into_iter().rev() {
            t.events.push(json!({"name": f, "cat": "function_graph", "ph": "E", "ts": clock, "pid": id, "tid": id,
                "args": {"cut": "the excerpt ends before this call returns"}}));
        }
    }
    lines.len()
}

/// The event's name in a trace entry's body: `openat` of `openat: (...)`, `sys_openat` of
/// `sys_openat(dfd: ...)`, `do_sys_openat2` of `do_sys_openat2 <-__x64_sys_openat`.
fn event_name(body: &str) -> &str {
    let end = body.find([':', '(', ' ']).unwrap_or(body.len());
    let name = body[..end].trim();
    if name.is_empty() {
        "event"
    } else {
        name
    }
}

/// The trace entries of `text` as instants, per task.
fn instants(text: &str, tracks: &mut BTreeMap<i64, Track>) -> usize {
    let mut n = 0;
    for line in text.lines() {
        let Some(e) = parse_entry(line) else { continue };
        let id = i64::from(e.pid);
        let t = track(tracks, id, &format!("{}-{}", e.task, e.pid));
        t.events.push(json!({
            "name": event_name(e.body), "cat": "event", "ph": "i", "s": "t",
            "ts": e.timestamp * 1e6, "pid": id, "tid": id,
            "args": {"cpu": e.cpu, "entry": e.body},
        }));
        n += 1;
    }
    // The trace file is in time order already; keep each track so even if CPUs interleave.
    for t in tracks.values_mut() {
        t.events.sort_by(|a, b| {
            let ts = |v: &Value| v["ts"].as_f64().unwrap_or(0.0);
            ts(a).total_cmp(&ts(b))
        });
    }
    n
}

/// The Chrome trace of `r`'s excerpt, `None` when it holds no trace data (no function_graph
/// line, no trace entry: a format file, a verifier log, a console tail).
pub fn from_result(r: &ScenarioResult) -> Option<Value> {
    let (text, source) = match &r.capture {
        Some(c) if c.cut() => (
            c.text.as_str(),
            format!("the scenario's capture of the raw trace, cut to its first {} of {} bytes", c.text.len(), c.bytes),
        ),
        Some(c) => (c.text.as_str(), format!("the scenario's whole capture of the raw trace ({} bytes)", c.bytes)),
        None => (r.excerpt.as_str(), "the result's excerpt of the raw trace (bounded)".to_string()),
    };
    if text.trim().is_empty() {
        return None;
    }
    let mut tracks: BTreeMap<i64, Track> = BTreeMap::new();
    let parsed = graph::parse(text);
    let timed = !parsed.is_empty() && parsed.iter().all(|l| l.abstime.is_some());
    let (graph_lines, entries) =
        if parsed.is_empty() { (0, instants(text, &mut tracks)) } else { (graph_slices(text, &mut tracks), 0) };
    if graph_lines + entries == 0 {
        return None;
    }
    let mut events: Vec<Value> = Vec::new();
    for (id, t) in &tracks {
        events.push(json!({"name": "process_name", "ph": "M", "pid": id, "tid": id, "args": {"name": t.name}}));
        events.push(json!({"name": "thread_name", "ph": "M", "pid": id, "tid": id, "args": {"name": t.name}}));
    }
    for t in tracks.into_values() {
        events.extend(t.events);
    }
    let layout = if timed {
        "function_graph calls at the kernel's own timestamps (funcgraph-abstime, us)"
    } else if graph_lines > 0 {
        "function_graph durations as the kernel printed them; start times are not in its output, so calls \
         follow one another on their task's track, 1 us apart at the top level"
    } else {
        "trace entries at their trace clock timestamps (us)"
    };
    Some(json!({
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "kernel": r.kernel,
            "build": r.build.as_ref().map(|b| b.spec.clone()),
            "scenario": r.scenario,
            "status": r.status.as_str(),
            "source": source,
            "function_graph_lines": graph_lines,
            "trace_entries": entries,
            "layout": layout,
        },
    }))
}

/// What is wrong with a trace-event file: the first event that breaks the nesting, with its
/// index, name and track (pid, tid).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceCheckError {
    /// The top-level object has no `traceEvents` array.
    #[error("no traceEvents array")]
    NoEvents,
    /// An event lacks a field the check needs.
    #[error("event {index} has no {field}")]
    Missing {
        /// The event's position in `traceEvents`, from 0.
        index: usize,
        /// The missing field (`ph`, `pid`, `tid`, `ts`).
        field: &'static str,
    },
    /// A timestamp is earlier than the one before it on the same track.
    #[error("event {index} ({name}) at {ts} goes back from {prev} on track {track:?}")]
    Backwards {
        /// The event's position in `traceEvents`, from 0.
        index: usize,
        /// The event's name.
        name: String,
        /// Its timestamp, in microseconds.
        ts: f64,
        /// The track's previous timestamp, in microseconds.
        prev: f64,
        /// The track, (pid, tid).
        track: (i64, i64),
    },
    /// An `E` closes a `B` of another name: the spans cross.
    #[error("event {index}: E {name} ends B {open} on track {track:?}")]
    Crossed {
        /// The event's position in `traceEvents`, from 0.
        index: usize,
        /// The event's name.
        name: String,
        /// The name of the innermost open `B`.
        open: String,
        /// The track, (pid, tid).
        track: (i64, i64),
    },
    /// An `E` on a track with no open `B`.
    #[error("event {index}: E {name} without a B on track {track:?}")]
    Unopened {
        /// The event's position in `traceEvents`, from 0.
        index: usize,
        /// The event's name.
        name: String,
        /// The track, (pid, tid).
        track: (i64, i64),
    },
    /// A phase other than `B`, `E`, `i`, `X` or `M`.
    #[error("event {index}: unexpected ph {ph:?}")]
    Phase {
        /// The event's position in `traceEvents`, from 0.
        index: usize,
        /// The phase found.
        ph: String,
    },
    /// The file ends with `B` spans still open.
    #[error("B {} never ends on track {track:?}", .open.join(", "))]
    NeverEnds {
        /// The names of the open spans, outermost first.
        open: Vec<String>,
        /// The track, (pid, tid).
        track: (i64, i64),
    },
}

/// What is wrong with a trace-event file, if anything: every `B` ends with an `E` of the same
/// name on its track, in order, and timestamps never go back on a track. For tests and for
/// `kmatrix trace --check`.
pub fn check(trace: &Value) -> Result<(), TraceCheckError> {
    let events = trace["traceEvents"].as_array().ok_or(TraceCheckError::NoEvents)?;
    let mut open: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    let mut last: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    for (index, e) in events.iter().enumerate() {
        let missing = |field| TraceCheckError::Missing { index, field };
        let ph = e["ph"].as_str().ok_or(missing("ph"))?;
        if ph == "M" {
            continue;
        }
        let track = (e["pid"].as_i64().ok_or(missing("pid"))?, e["tid"].as_i64().ok_or(missing("tid"))?);
        let ts = e["ts"].as_f64().ok_or(missing("ts"))?;
        let name = e["name"].as_str().unwrap_or("").to_string();
        if let Some(prev) = last.get(&track) {
            if ts < *prev {
                return Err(TraceCheckError::Backwards { index, name, ts, prev: *prev, track });
            }
        }
        last.insert(track, ts);
        match ph {
            "B" => open.entry(track).or_default().push(name),
            "E" => match open.entry(track).or_default().pop() {
                Some(b) if b == name => {}
                Some(b) => return Err(TraceCheckError::Crossed { index, name, open: b, track }),
                None => return Err(TraceCheckError::Unopened { index, name, track }),
            },
            "i" | "X" => {}
            other => return Err(TraceCheckError::Phase { index, ph: other.to_string() }),
        }
    }
    match open.into_iter().find(|(_, v)| !v.is_empty()) {
        Some((track, open)) => Err(TraceCheckError::NeverEnds { open, track }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmatrix_proto::Status;

    fn result(excerpt: &str) -> ScenarioResult {
        let mut r = ScenarioResult::new("ftrace.function_graph.nested", Status::Pass, "").on_kernel("debian-6.1");
        r.excerpt = excerpt.into();
        r
    }

    fn slices(v: &Value, ph: &str) -> Vec<(String, f64)> {
        v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == ph)
            .map(|e| (e["name"].as_str().unwrap().to_string(), e["ts"].as_f64().unwrap()))
            .collect()
    }

    /// The first call of the abstime fixture (proto/src/fixtures/graph-abstime-6.1.txt) with
    /// do_filp_open's duration 6.5 µs longer, reaching 0.5 µs past its parent's `}`, as a run
    /// of vm_artifacts under TCG printed it: the leaf ends at the `}`, and says it was cut.
    #[test]
    fn a_leaf_reaching_past_its_parents_close_ends_there() {
        let text = "   14.039421 |   0)   openat--83   |               |  do_sys_openat2() {\n\
                    14.039444 |   0)   openat--83   | + 48.090 us   |    getname();\n\
                    14.039514 |   0)   openat--83   | ! 151.500 us  |    do_filp_open();\n\
                    14.039665 |   0)   openat--83   | ! 259.054 us  |  } /* do_sys_openat2 */\n";
        let mut r = result(text);
        r.scenario = "ftrace.function_graph.openat".into();
        let v = from_result(&r).unwrap();
        check(&v).unwrap();
        let e = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["ph"] == "E" && e["name"] == "do_filp_open")
            .unwrap();
        assert_eq!(e["ts"].as_f64(), Some(14039665.0));
        assert!((e["args"]["clamped_us"].as_f64().unwrap() - 0.5).abs() < 1e-6, "{e}");
        let getname =
            v["traceEvents"].as_array().unwrap().iter().find(|e| e["ph"] == "E" && e["name"] == "getname").unwrap();
        assert!(getname["args"]["clamped_us"].is_null(), "a leaf that ends in time is not cut: {getname}");
    }

    #[test]
    fn a_real_nested_function_graph_becomes_balanced_nested_slices() {
        // The excerpt of ftrace.function_graph.nested on Debian 6.1 (kmatrix_proto's fixture).
        let text = include_str!("../../../proto/src/fixtures/graph-nested-6.1.txt");
        let v = from_result(&result(text)).unwrap();
        check(&v).unwrap();
        let b = slices(&v, "B");
        assert_eq!(b.iter().filter(|(n, _)| n == "do_sys_openat2").count(), 5);
        assert_eq!(b.len(), 15, "5 calls and their 10 children");
        assert_eq!(slices(&v, "E").len(), 15);
        // One track, the workload's pid, named.
        let tids: std::collections::BTreeSet<i64> =
            v["traceEvents"].as_array().unwrap().iter().map(|e| e["tid"].as_i64().unwrap()).collect();
        assert_eq!(tids.into_iter().collect::<Vec<_>>(), [89]);
        // The first call's slice lasts what the kernel printed, its children inside it.
        let e = slices(&v, "E");
        let first_end = e.iter().find(|(n, _)| n == "do_sys_openat2").unwrap().1;
        assert!((first_end - b[0].1 - 185.627).abs() < 1e-6, "{first_end}");
    }

    #[test]
    fn trace_entries_become_instants_on_their_tasks_track() {
        let text = "     openat-loop-82      [000] .....     2.658082: openat: (do_sys_openat2+0x0/0x170) dfd=-100 path=\"/tmp/kmatrix-openat\"\n     openat-loop-82      [000] .....     2.658486: openat: (do_sys_openat2+0x0/0x170) dfd=-100 path=\"/tmp/kmatrix-openat\"\n  <idle>-0 [000] d..2. 2.7: sched_switch: prev_comm=swapper";
        let v = from_result(&result(text)).unwrap();
        check(&v).unwrap();
        let mut i = slices(&v, "i");
        i.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(i.len(), 3);
        assert_eq!(i[0].0, "openat");
        assert!((i[0].1 - 2_658_082.0).abs() < 1e-3, "{}", i[0].1);
        assert_eq!(i[2].0, "sched_switch");
        let names: Vec<&str> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["<idle>-0", "openat-loop-82"]);
    }

    #[test]
    fn excerpts_without_trace_data_have_no_trace() {
        assert!(from_result(&result("name: sys_enter_openat\nID: 633\nformat:\n\tfield:int __syscall_nr;")).is_none());
        assert!(from_result(&result("")).is_none());
        assert!(from_result(&result("[    2.1] Kernel panic - not syncing: sysrq triggered crash")).is_none());
    }

    #[test]
    fn a_cut_call_is_closed_and_the_checker_catches_unbalanced_or_backward_tracks() {
        let cut = " 0)  openat--80    |               |  do_sys_openat2() {\n 0)  openat--80    |   3.456 us    |    do_filp_open();\n...";
        let v = from_result(&result(cut)).unwrap();
        check(&v).unwrap();
        assert_eq!(slices(&v, "E").len(), 2);
        let bad = json!({"traceEvents": [{"ph": "B", "name": "a", "pid": 1, "tid": 1, "ts": 1.0}]});
        assert!(check(&bad).unwrap_err().to_string().contains("never ends"));
        let back = json!({"traceEvents": [
            {"ph": "i", "name": "a", "pid": 1, "tid": 1, "ts": 2.0},
            {"ph": "i", "name": "b", "pid": 1, "tid": 1, "ts": 1.0}]});
        assert!(check(&back).unwrap_err().to_string().contains("goes back"));
        let crossed = json!({"traceEvents": [
            {"ph": "B", "name": "a", "pid": 1, "tid": 1, "ts": 1.0},
            {"ph": "B", "name": "b", "pid": 1, "tid": 1, "ts": 1.0},
            {"ph": "E", "name": "a", "pid": 1, "tid": 1, "ts": 2.0}]});
        assert!(check(&crossed).unwrap_err().to_string().contains("ends B b"));
    }
}
