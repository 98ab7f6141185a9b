//! `ftrace.format.*`: a syscall tracepoint's `format` file parsed into fields, checked against
//! the layout the syscall tracer promises: `__syscall_nr` then one 8-byte slot per argument
//! (kernel/trace/trace_syscalls.c; the format file: Documentation/trace/events.rst, "Event
//! formats").
//!
//! Not for the events' records (`event.rs`), only their declared layout.

use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::verdict::{count, verdict};
use crate::tracefs::format;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// The format of `syscalls/sys_enter_openat`.
// Syscall tracepoints and their format files came in 2.6.33.
pub const SYS_ENTER_OPENAT: Scenario = Meta::new("ftrace.format.sys_enter_openat", "2.6.33")
    .summary(
        "events/syscalls/sys_enter_openat/format parsed into fields: __syscall_nr then dfd, filename, \
        flags, mode in 8-byte slots",
    )
    .requires(&[Req::Tracefs, Req::Event("syscalls/sys_enter_openat")])
    .run(|ctx| syscall_format(ctx, "syscalls/sys_enter_openat", &["dfd", "filename", "flags", "mode"]));

/// The format of `syscalls/sys_enter_mount`.
// Syscall tracepoints and their format files came in 2.6.33.
pub const SYS_ENTER_MOUNT: Scenario = Meta::new("ftrace.format.sys_enter_mount", "2.6.33")
    .summary(
        "events/syscalls/sys_enter_mount/format parsed into fields: __syscall_nr then dev_name, dir_name, \
        type, flags, data in 8-byte slots",
    )
    .requires(&[Req::Tracefs, Req::Event("syscalls/sys_enter_mount")])
    .run(|ctx| syscall_format(ctx, "syscalls/sys_enter_mount", &["dev_name", "dir_name", "type", "flags", "data"]));

/// A syscall event's own fields split in two: the argument slots (`__syscall_nr` and one per
/// argument) and the `__<arg>_val` strings newer kernels (7.x) append to record the user
/// strings behind pointer arguments, which are drift to show rather than a broken layout.
pub fn slots_and_strings<'a>(f: &'a format::Format, args: &[&str]) -> (Vec<&'a str>, Vec<&'a str>) {
    let is_string = |x: &format::Field| {
        x.ctype.starts_with("__data_loc char") && args.iter().any(|a| x.name == format!("__{a}_val"))
    };
    let (strings, slots): (Vec<&format::Field>, Vec<&format::Field>) = f.own_fields().partition(|x| is_string(x));
    (slots.iter().map(|x| x.name.as_str()).collect(), strings.iter().map(|x| x.name.as_str()).collect())
}

/// Parse `events/<event>/format` and check its name, `common_pid`, and the argument slots `args`.
fn syscall_format(ctx: &mut Ctx, event: &str, args: &[&str]) -> Result<ScenarioResult> {
    let text = ctx.tfs.read(&format!("events/{event}/format"))?;
    let f = format::parse(&text)?;
    let mut problems = Vec::new();
    let expected_name = event.rsplit('/').next().unwrap_or(event);
    if f.name != expected_name {
        problems.push(format!("name is {:?}, expected {expected_name:?}", f.name));
    }
    match f.field("common_pid") {
        Some(p) if p.size == 4 && p.signed => {}
        other => problems.push(format!("common_pid is {other:?}, expected int (4, signed)")),
    }
    let (own, strings) = slots_and_strings(&f, args);
    let mut want = vec!["__syscall_nr"];
    want.extend(args);
    if own != want {
        problems.push(format!("fields {own:?}, expected {want:?}"));
    }
    // The syscall tracer stores `int __syscall_nr` then every argument as an unsigned long.
    let mut layout_ok = 0u64;
    if let Some(nr) = f.field("__syscall_nr") {
        let mut next = (nr.offset + nr.size).next_multiple_of(8);
        if nr.size == 4 && nr.signed {
            layout_ok += 1;
        } else {
            problems.push(format!("__syscall_nr is {nr:?}, expected 4 bytes signed"));
        }
        for name in args {
            match f.field(name) {
                Some(a) if a.offset == next && a.size == 8 => layout_ok += 1,
                Some(a) => problems
                    .push(format!("{name} at offset {} size {}, expected offset {next} size 8", a.offset, a.size)),
                None => {}
            }
            next += 8;
        }
    }
    let mut r = verdict(
        ctx.id(),
        vec![
            count("own fields", want.len() as u64, own.len() as u64),
            count("fields at the expected offset and size", want.len() as u64, layout_ok),
        ],
        problems,
    );
    r.detail = serde_json::to_value(&f)?;
    r.detail["user_string_fields"] = serde_json::json!(strings);
    Ok(r.with_excerpt(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_string_fields_of_7_x_are_drift_not_slots() {
        let f =
            format::parse(include_str!("../../../../proto/src/tracefs/fixtures/sys_enter_mount-7.3.format")).unwrap();
        let (slots, strings) = slots_and_strings(&f, &["dev_name", "dir_name", "type", "flags", "data"]);
        assert_eq!(slots, ["__syscall_nr", "dev_name", "dir_name", "type", "flags", "data"]);
        assert_eq!(strings, ["__dev_name_val", "__dir_name_val", "__type_val"]);
    }
}
