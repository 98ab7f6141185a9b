//! `tool.bpftool.*`: the host's `bpftool` (Debian's bpftool) against the guest's kernel:
//! `feature probe kernel -j` cross-checked with the agent's own probes of the capability record,
//! `prog show -j` while an agent program is attached, and `btf dump ... format c` (the vmlinux.h
//! of seed 002).

use crate::bpf::{self, Loaded};
use crate::elf;
use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{attach, detach, guarded, release, Hook};
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::host_tool::{self, step, Packages, Tool, Workdir, MINUTE};
use crate::scenario::support::verdict::{count, unsupported, verdict};
use crate::scenario::support::workload::{self, HELLO};
use anyhow::{Context, Result};
use kmatrix_proto::{ScenarioResult, Status};
use std::collections::BTreeSet;
use std::path::Path;

/// Debian's bpftool package; on Ubuntu `/usr/sbin/bpftool` is linux-tools-common's wrapper of
/// the real one under /usr/lib/linux-tools/ABI/, which linux-tools-generic installs.
pub const BPFTOOL: Tool = Tool {
    packages: Packages { debian: "bpftool", ubuntu: "linux-tools-generic" },
    linux_tools: Some("bpftool"),
    ..Tool::asking("bpftool", "/usr/sbin/bpftool", "bpftool", &["version"])
};
const REQ: Req = BPFTOOL.req();

/// `bpftool feature probe kernel -j`: bpftool's answers for the program and map types, compared
/// with what the agent probed at boot (`bpf.prog_types`, `bpf.map_types` of the capability
/// record) for every type both probe. Any disagreement fails, naming both answers. (bpftool
/// probes no attach types, the agent no helpers: those are not compared.)
// BPF_PROG_LOAD and BPF_MAP_CREATE came in 3.18; bpftool's probe needs no more.
pub const FEATURE_PROBE: Scenario = Meta::new("tool.bpftool.feature_probe", "3.18")
    .summary("bpftool feature probe kernel -j: program and map types agree with the agent's own probes (each disagreement named)")
    .requires(&[REQ])
    .run(feature_probe);

fn feature_probe(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let bpftool = BPFTOOL.program();
    let out = host_tool::run(&[&bpftool, "feature", "probe", "kernel", "-j"], MINUTE)?;
    let out = step!(host_tool::checked(ctx, &BPFTOOL, out, "bpftool feature probe failed"));
    let json: serde_json::Value = match serde_json::from_str(&out.stdout) {
        Ok(j) => j,
        Err(e) => {
            let why = format!("bpftool feature probe -j printed no JSON: {e}");
            return Ok(host_tool::failed(ctx, &BPFTOOL, Status::Fail, why, &out));
        }
    };
    let (progs, prog_diff, prog_only) =
        compare(&json, "program_types", "prog_type", bpf::probed_prog_types(), &ctx.caps.bpf.prog_types);
    let (maps, map_diff, map_only) =
        compare(&json, "map_types", "map_type", bpf::probed_map_types(), &ctx.caps.bpf.map_types);
    let problems: Vec<String> = prog_diff
        .iter()
        .map(|d| format!("program type {d}"))
        .chain(map_diff.iter().map(|d| format!("map type {d}")))
        .collect();
    let mut r = verdict(ctx.id(), feature_counts(&progs, &prog_diff, &maps, &map_diff), problems);
    r.detail = BPFTOOL.detail(serde_json::json!({
        "prog_types_compared": progs,
        "map_types_compared": maps,
        "prog_types_only_bpftool_probes": prog_only,
        "map_types_only_bpftool_probes": map_only,
        "syscall_config": json.get("syscall_config"),
    }));
    let disagreements = prog_diff.iter().chain(&map_diff).cloned().collect::<Vec<_>>().join("\n");
    Ok(r.with_excerpt(&disagreements))
}

/// The program types bpftool's first `feature probe` (Linux 5.1's bpftool) already named, under
/// the names the agent probes them by: bpftool answers for each on every kernel (`false` where
/// the kernel lacks it), so each must be compared. A floor on what was compared: keys that stop
/// matching would otherwise compare nothing and pass.
const PROG_FLOOR: &[&str] = &[
    "socket_filter",
    "kprobe",
    "sched_cls",
    "sched_act",
    "tracepoint",
    "xdp",
    "perf_event",
    "cgroup_skb",
    "cgroup_sock",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "sock_ops",
    "sk_skb",
    "cgroup_device",
    "sk_msg",
    "raw_tracepoint",
];
/// The map types of the same bpftool, as [`PROG_FLOOR`].
const MAP_FLOOR: &[&str] = &[
    "hash",
    "array",
    "prog_array",
    "perf_event_array",
    "percpu_hash",
    "percpu_array",
    "stack_trace",
    "cgroup_array",
    "lru_hash",
    "lru_percpu_hash",
    "lpm_trie",
    "array_of_maps",
    "hash_of_maps",
    "devmap",
    "sockmap",
    "cpumap",
    "xskmap",
    "sockhash",
];

/// The feature probe's counts: the answers that agree among the types compared, and the floor
/// types among those compared (`progs`, `maps`: the types both probed).
fn feature_counts(
    progs: &BTreeSet<String>,
    prog_diff: &[String],
    maps: &BTreeSet<String>,
    map_diff: &[String],
) -> Vec<kmatrix_proto::Count> {
    let floor = |floor: &[&str], compared: &BTreeSet<String>| floor.iter().filter(|t| compared.contains(**t)).count();
    let (np, nm) = (progs.len() as u64, maps.len() as u64);
    vec![
        count("program types both probed, answers agreeing", np, np - prog_diff.len() as u64),
        count("map types both probed, answers agreeing", nm, nm - map_diff.len() as u64),
        count("program types of bpftool 5.1 compared", PROG_FLOOR.len() as u64, floor(PROG_FLOOR, progs) as u64),
        count("map types of bpftool 5.1 compared", MAP_FLOOR.len() as u64, floor(MAP_FLOOR, maps) as u64),
    ]
}

/// For the `section` of bpftool's JSON (`"have_kprobe_prog_type": true`), against the agent's
/// probed `names` and the ones it found (`accepted`): the types both probed, the disagreements
/// (`lirc_mode2: agent no, bpftool yes`), and the types only bpftool probes.
fn compare<'a>(
    json: &serde_json::Value,
    section: &str,
    suffix: &str,
    names: impl Iterator<Item = &'a str>,
    accepted: &[String],
) -> (BTreeSet<String>, Vec<String>, Vec<String>) {
    let empty = serde_json::Map::new();
    let tool = json.get(section).and_then(|v| v.as_object()).unwrap_or(&empty);
    let key = |name: &str| format!("have_{name}_{suffix}");
    let probed: BTreeSet<&str> = names.collect();
    let mut both = BTreeSet::new();
    let mut diff = Vec::new();
    for name in &probed {
        let Some(says) = tool.get(&key(name)).and_then(|v| v.as_bool()) else {
            continue;
        };
        both.insert(name.to_string());
        let agent = accepted.iter().any(|a| a == name);
        if agent != says {
            let yn = |b: bool| if b { "yes" } else { "no" };
            diff.push(format!("{name}: agent {}, bpftool {}", yn(agent), yn(says)));
        }
    }
    let only: Vec<String> = tool
        .keys()
        .filter_map(|k| k.strip_prefix("have_").and_then(|k| k.strip_suffix(&format!("_{suffix}"))))
        .filter(|n| !probed.contains(n))
        .map(str::to_string)
        .collect();
    (both, diff, only)
}

/// `bpftool prog show -j` while the agent's uprobe program is attached to `hello N`, with the
/// kernel's BPF statistics on: bpftool lists the program under its full name (the kernel keeps
/// 15 characters; bpftool reads the rest from the program's BTF) with run_cnt N, as the agent's
/// own BPF_OBJ_GET_INFO_BY_FD reads it.
// BPF_ENABLE_STATS (run counts without the sysctl) came in 5.8.
pub const PROG_SHOW: Scenario = Meta::new("tool.bpftool.prog_show", "5.8")
    .summary("bpftool prog show -j during the agent's uprobe on hello N: the program, its name and run_cnt N")
    .requires(&[Req::Program(HELLO), REQ])
    .params(&[("count", "10")])
    .run(prog_show);

const PROGRAM: &str = "uprobe_hello_greet";

fn prog_show(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let bpftool = BPFTOOL.program();
    let id = ctx.id();
    guarded(id, || {
        let n = ctx.declared_count()?;
        // Held until the end: the kernel counts runs while this fd is open.
        let stats = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => fd,
            Err(e) => {
                let mut r = unsupported(id, "BPF_ENABLE_STATS refused: no run counts", format!("{e}"), None);
                r.detail = BPFTOOL.detail(serde_json::json!({}));
                return Ok(r);
            }
        };
        let offset = elf::function_offset(Path::new(HELLO), "hello_greet")?;
        let w = workload::start_hello(n)?;
        let pid = w.pid() as u32;
        let mut l = Loaded::new(bpf::PROBES, pid)?;
        attach(&mut l, PROGRAM, &Hook::UProbe { path: HELLO, offset, pid })?;
        let (done, _) = release(w, ctx)?;
        let hits = l.counts()?.hits;
        let info = l.ebpf.program(PROGRAM).context("the program is gone")?.info().context("BPF_OBJ_GET_INFO_BY_FD")?;
        let (prog_id, agent_runs) = (info.id(), info.run_count());
        let out = host_tool::run(&[&bpftool, "prog", "show", "-j"], MINUTE);
        detach(&mut l, PROGRAM)?;
        drop(stats);
        let out = step!(host_tool::checked(ctx, &BPFTOOL, out?, "bpftool prog show failed"));
        let progs: Vec<serde_json::Value> = match serde_json::from_str(&out.stdout) {
            Ok(p) => p,
            Err(e) => {
                let why = format!("bpftool prog show -j printed no JSON array: {e}");
                return Ok(host_tool::failed(ctx, &BPFTOOL, Status::Fail, why, &out));
            }
        };
        let shown = progs.iter().find(|p| p.get("id").and_then(|v| v.as_u64()) == Some(u64::from(prog_id)));
        let field = |k: &str| shown.and_then(|p| p.get(k)).cloned().unwrap_or(serde_json::Value::Null);
        let name = field("name");
        let runs = field("run_cnt").as_u64().unwrap_or(0);
        let mut problems = workload_problems(&done);
        if shown.is_none() {
            problems.push(format!("bpftool does not list program id {prog_id} ({} programs listed)", progs.len()));
        } else if name.as_str() != Some(PROGRAM) {
            problems.push(format!("bpftool names program {prog_id} {name}, expected {PROGRAM:?}"));
        }
        let mut r = verdict(
            id,
            vec![
                count("hello_greet hits the program counted", n, hits),
                count("run_cnt by bpftool", n, runs),
                count("run count by the agent (BPF_OBJ_GET_INFO_BY_FD)", n, agent_runs),
            ],
            problems,
        );
        r.detail = BPFTOOL.detail(serde_json::json!({ "prog_id": prog_id, "shown": shown }));
        Ok(r.with_excerpt(&shown.map(|p| p.to_string()).unwrap_or_default()))
    })
}

/// Seed 002's vmlinux.h: `bpftool btf dump file /sys/kernel/btf/vmlinux format c` defines
/// `struct trace_event_raw_sys_enter` exactly as the notes show it: `ent`, `id`, `args[6]`,
/// `__data[0]`.
// Kernel BTF in /sys/kernel/btf/vmlinux came in 5.4.
pub const BTF_DUMP: Scenario = Meta::new("tool.bpftool.btf_dump", "5.4")
    .summary("bpftool btf dump file /sys/kernel/btf/vmlinux format c: struct trace_event_raw_sys_enter { ent; id; args[6]; __data[0]; }")
    .requires(&[REQ])
    .run(btf_dump);

/// The members seed 002 shows, in order.
const SYS_ENTER_MEMBERS: [&str; 4] =
    ["struct trace_entry ent;", "long int id;", "long unsigned int args[6];", "char __data[0];"];

fn btf_dump(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let bpftool = BPFTOOL.program();
    if let Some((reason, evidence)) = bpf::btf_absent() {
        let mut r = unsupported(ctx.id(), reason, evidence, None);
        r.detail = BPFTOOL.detail(serde_json::json!({}));
        return Ok(r);
    }
    let dir = Workdir::new()?;
    let argv = [&bpftool, "btf", "dump", "file", bpf::BTF_VMLINUX, "format", "c"];
    step!(dir.step_to_file(ctx, &BPFTOOL, &argv, "vmlinux.h", "bpftool btf dump failed"));
    let header = dir.read("vmlinux.h")?;
    let members = struct_members(&header, "trace_event_raw_sys_enter");
    let mut problems = Vec::new();
    match &members {
        None => problems.push("vmlinux.h has no struct trace_event_raw_sys_enter".into()),
        Some(m) if m != &SYS_ENTER_MEMBERS => {
            problems.push(format!("members {m:?}, seed 002 shows {SYS_ENTER_MEMBERS:?}"))
        }
        Some(_) => {}
    }
    let matching = members.as_ref().map_or(0, |m| m.iter().zip(SYS_ENTER_MEMBERS).filter(|(a, b)| a == b).count());
    let mut r =
        verdict(ctx.id(), vec![count("members as seed 002 shows them, in order", 4, matching as u64)], problems);
    r.detail = BPFTOOL.detail(serde_json::json!({ "vmlinux_h_bytes": header.len(), "members": members }));
    let block = header.find("struct trace_event_raw_sys_enter {").map(|i| excerpt::head(&header[i..], 7));
    Ok(r.with_excerpt(&block.unwrap_or_default()))
}

/// The member lines of `struct <name> { ... };` in C text, trimmed, or None without it.
fn struct_members(text: &str, name: &str) -> Option<Vec<String>> {
    let start = text.find(&format!("struct {name} {{"))?;
    let body = &text[start..];
    let end = body.find("\n};")?;
    Some(body[..end].lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bpftool feature probe kernel -j` (bpftool 7.1, Debian 6.1 guest), two sections abridged.
    const PROBE: &str = r#"{"program_types":{"have_socket_filter_prog_type":true,"have_kprobe_prog_type":true,
        "have_lirc_mode2_prog_type":false},"map_types":{"have_hash_map_type":true,"have_array_map_type":true}}"#;

    #[test]
    fn the_feature_probe_fails_when_it_compared_less_than_its_floor() {
        let agent: Vec<String> = ["socket_filter", "kprobe"].map(String::from).to_vec();
        let json: serde_json::Value = serde_json::from_str(PROBE).unwrap();
        let (progs, prog_diff, _) = compare(&json, "program_types", "prog_type", PROG_FLOOR.iter().copied(), &agent);
        assert_eq!(progs.len(), 2);
        assert!(prog_diff.is_empty());
        // Keys that stop matching (bpftool renamed them, or printed another shape): nothing is
        // compared and 0 == 0 agreed, which used to pass; the floor fails it.
        let renamed: serde_json::Value = serde_json::from_str(&PROBE.replace("have_", "")).unwrap();
        let (none, none_diff, _) = compare(&renamed, "program_types", "prog_type", PROG_FLOOR.iter().copied(), &agent);
        assert!(none.is_empty());
        let r = verdict("tool.bpftool.feature_probe", feature_counts(&none, &none_diff, &none, &none_diff), Vec::new());
        assert_eq!(r.status, Status::Fail);
        assert_eq!(
            r.reason,
            format!(
                "program types of bpftool 5.1 compared: expected {}, observed 0; \
                 map types of bpftool 5.1 compared: expected {}, observed 0",
                PROG_FLOOR.len(),
                MAP_FLOOR.len()
            )
        );
        // Every floor type compared passes.
        let all: BTreeSet<String> = PROG_FLOOR.iter().chain(MAP_FLOOR).map(|t| t.to_string()).collect();
        let r = verdict("tool.bpftool.feature_probe", feature_counts(&all, &[], &all, &[]), Vec::new());
        assert_eq!(r.status, Status::Pass, "{}", r.reason);
    }

    #[test]
    fn struct_members_as_bpftool_prints_them() {
        let h = "struct x {\n\tint a;\n};\n\nstruct trace_event_raw_sys_enter {\n\tstruct trace_entry ent;\n\tlong int id;\n\
                 \tlong unsigned int args[6];\n\tchar __data[0];\n};\n";
        assert_eq!(struct_members(h, "trace_event_raw_sys_enter").unwrap(), SYS_ENTER_MEMBERS);
        assert_eq!(struct_members(h, "x").unwrap(), ["int a;"]);
        assert!(struct_members(h, "y").is_none());
    }

    #[test]
    fn feature_answers_are_compared_where_both_probe() {
        let json = serde_json::json!({ "program_types": {
            "have_kprobe_prog_type": true, "have_lirc_mode2_prog_type": false, "have_lsm_prog_type": true } });
        let accepted = vec!["kprobe".to_string(), "lirc_mode2".to_string()];
        let (both, diff, only) =
            compare(&json, "program_types", "prog_type", ["kprobe", "lirc_mode2", "xdp"].into_iter(), &accepted);
        assert_eq!(both, BTreeSet::from(["kprobe".to_string(), "lirc_mode2".to_string()]));
        assert_eq!(diff, ["lirc_mode2: agent yes, bpftool no"]);
        assert_eq!(only, ["lsm"]);
    }
}
