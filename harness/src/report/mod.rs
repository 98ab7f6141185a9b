//! Rendering for people and programs: the boot record and benchmark statistics (here), the
//! result matrix as a terminal table, JUnit XML, KTAP, an HTML page and a GitHub summary, run
//! diffs (and the baseline/candidate classes CI gates on), the compatibility table and its static
//! site, progress bars, and a cell's artifacts
//! (Chrome trace JSON, flame graph SVG). Nothing here runs guests or reads kernels; it formats
//! what others produced. Snapshot tests (`snapshots`) pin the table, JUnit and HTML output.

#![warn(missing_docs)]

pub mod artifacts;
pub mod chrome_trace;
pub mod compat;
pub mod diff;
pub mod flamegraph;
pub mod github;
pub mod html;
pub mod junit;
pub mod ktap;
pub mod progress;
pub mod site;
#[cfg(test)]
mod snapshots;
pub mod table;

/// Text for HTML, in an element or a quoted attribute: the report pages' one escape.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

use crate::guest::Guest;
use crate::image::Image;
use crate::kernel::PreparedKernel;
use crate::vm::AccelVerdict;
use kmatrix_proto::Capabilities;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What `kmatrix boot` reports: the kernel, how it booted, and the agent's capability record
/// merged with the package's config (Debian kernels carry no /proc/config.gz).
#[derive(Debug, Serialize)]
pub struct BootRecord {
    /// The kernel id (`debian-6.1`, `local:<path>`).
    pub kernel: String,
    /// Its `uname -r`.
    pub release: String,
    /// The Debian package version; `None` for a local kernel.
    pub package_version: Option<String>,
    /// Which file was booted and how (`vmlinux (PVH)`, `bzImage`), and whether from a snapshot.
    pub boot_path: String,
    /// The accelerator the guest ran under (`kvm`, `tcg`).
    pub accel: String,
    /// Why that accelerator, in the verdict's words.
    pub accel_reason: String,
    /// Seconds from QEMU's start to the agent's `Hello`.
    pub hello_after_s: f64,
    /// The channel the agent answered on (`ttyS1`, `virtio`).
    pub channel: String,
    /// SHA-256 of the guest image, hex.
    pub image_sha256: String,
    /// The console log's path.
    pub console_log: String,
    /// Tracing-related options from the kernel's config file (host side, before boot).
    pub config: BTreeMap<String, String>,
    /// What the agent found in the running kernel (its `Hello`).
    pub caps: Capabilities,
}

impl BootRecord {
    /// The record of guest `g`, booted from kernel `k` and `image` under verdict `v`; reads the
    /// kernel's config file.
    pub fn new(k: &PreparedKernel, v: &AccelVerdict, g: &Guest, image: &Image) -> Self {
        BootRecord {
            kernel: k.id.clone(),
            release: k.release.clone(),
            package_version: k.origin.package_version.clone(),
            boot_path: g.boot_path.clone(),
            accel: v.accel.as_str().to_string(),
            accel_reason: v.reason.clone(),
            hello_after_s: g.hello_after.as_secs_f64(),
            channel: g.channel().to_string(),
            image_sha256: image.sha256.clone(),
            console_log: g.console_log().display().to_string(),
            config: crate::kernel::tracing_config(k),
            caps: g.caps.clone(),
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The record for a person.
pub fn render_boot(r: &BootRecord) -> String {
    let (c, t, bpf) = (&r.caps, &r.caps.tracefs, &r.caps.bpf);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kernel          {} ({}{})",
        r.kernel,
        c.kernel.release,
        r.package_version.as_ref().map(|v| format!(", package {v}")).unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "boot            {} under {}, Hello after {:.2} s, channel {}",
        r.boot_path, r.accel, r.hello_after_s, r.channel
    );
    let _ = writeln!(s, "accelerator     {}", r.accel_reason);
    let _ = writeln!(s, "tracefs         {}", c.mounted.tracefs.as_deref().unwrap_or("NOT MOUNTED"));
    let _ = writeln!(s, "tracers         {}", t.available_tracers.join(" "));
    let _ = writeln!(s, "events          {}   filter functions {}", t.event_count, t.filter_function_count);
    let _ = writeln!(
        s,
        "probe files     kprobe_events {}  uprobe_events {}  dynamic_events {}",
        yes(t.kprobe_events),
        yes(t.uprobe_events),
        yes(t.dynamic_events)
    );
    let kinds: Vec<&str> = t.probe_syntaxes.iter().map(|p| p.kind.as_str()).collect();
    let _ = writeln!(s, "probe syntaxes  {}", kinds.join(" "));
    for p in &t.probe_syntaxes {
        let _ = writeln!(s, "                  {}", p.text);
    }
    let _ = writeln!(
        s,
        "kprobe blacklist {}",
        t.kprobe_blacklist.map(|n| n.to_string()).unwrap_or_else(|| "unreadable".into())
    );
    let _ = writeln!(s, "BTF             vmlinux {}  modules {}", yes(c.btf.vmlinux), c.btf.modules);
    let _ = writeln!(
        s,
        "BPF             syscall {}  jit {}",
        yes(bpf.syscall),
        bpf.jit_enable.map(|j| j.to_string()).unwrap_or_else(|| "?".into())
    );
    if !bpf.prog_types.is_empty() {
        let _ = writeln!(s, "BPF programs    {}", bpf.prog_types.join(" "));
    }
    if !bpf.attach_types.is_empty() {
        let _ = writeln!(s, "BPF attach      {}", bpf.attach_types.join(" "));
    }
    let pmus: Vec<String> = c.perf_pmus.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(s, "perf PMUs       {}", pmus.join(" "));
    let mods: Vec<String> =
        c.agent.modules.iter().map(|m| format!("{} ({}, {} ms)", m.name, m.outcome, m.ms)).collect();
    let _ = writeln!(s, "modules         {}", if mods.is_empty() { "none".to_string() } else { mods.join(", ") });
    if !r.config.is_empty() {
        let cfg: Vec<String> = r.config.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "config          {}", cfg.join(" "));
    }
    let _ = writeln!(s, "console log     {}", r.console_log);
    s
}

/// min / median / max of a sample.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stats {
    /// The smallest value.
    pub min: f64,
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The largest value.
    pub max: f64,
}

impl Stats {
    /// Statistics of `v`; an empty sample gives NaNs.
    pub fn of(v: &[f64]) -> Stats {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return Stats { min: f64::NAN, median: f64::NAN, max: f64::NAN };
        }
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
        Stats { min: s[0], median, max: s[n - 1] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_median_odd_and_even() {
        assert_eq!(Stats::of(&[3.0, 1.0, 2.0]), Stats { min: 1.0, median: 2.0, max: 3.0 });
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert!(Stats::of(&[]).median.is_nan());
    }
}
