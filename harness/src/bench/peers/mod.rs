//! `kmatrix bench peers`: the same task — boot a kernel, `uname -r; cat
//! /sys/kernel/tracing/available_tracers`, power off — run with kmatrix (cold and from a
//! snapshot) and with each peer (vmtest, virtme-ng) on the very files of kmatrix's kernel cache,
//! the same accelerator, one run after the other. Each peer is first tried exactly as its README
//! says, then with the least it needs to work here, and that list is part of the result.
//!
//! This file holds the vocabulary and the pure parts — what a run must print to count, the
//! statistics, the ratios, the table; `install` puts the peers in the bench directory, `prepare`
//! makes what they need per kernel, `run` runs and times the commands. Not a general benchmark
//! framework: the task is fixed, so the numbers of different tools compare.

pub mod install;
pub mod prepare;
pub mod run;

use crate::report::Stats;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// What every tool runs in the guest.
pub const TASK: &str = "uname -r; cat /sys/kernel/tracing/available_tracers";

/// The tools compared with kmatrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// danobi/vmtest, run with `-k <kernel> <command>`.
    Vmtest,
    /// virtme-ng (`vng --run <kernel> --exec <command>`).
    VirtmeNg,
}

impl Peer {
    /// Every peer, in the order the bench runs and shows them.
    pub const ALL: [Peer; 2] = [Peer::Vmtest, Peer::VirtmeNg];

    /// Its name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Vmtest => "vmtest",
            Peer::VirtmeNg => "virtme-ng",
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A peer name on the command line that is none of [`Peer::ALL`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown peer {given:?}: expected one of vmtest, virtme-ng")]
pub struct UnknownPeer {
    /// The name given.
    pub given: String,
}

impl FromStr for Peer {
    type Err = UnknownPeer;
    fn from_str(s: &str) -> Result<Peer, UnknownPeer> {
        Peer::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| UnknownPeer { given: s.to_string() })
    }
}

/// Who ran the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// kmatrix itself (`kmatrix exec`), the baseline of the ratios.
    Kmatrix,
    /// [`Peer::Vmtest`].
    Vmtest,
    /// [`Peer::VirtmeNg`].
    VirtmeNg,
}

impl Tool {
    /// Its name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Kmatrix => "kmatrix",
            Tool::Vmtest => "vmtest",
            Tool::VirtmeNg => "virtme-ng",
        }
    }
}

impl From<Peer> for Tool {
    fn from(p: Peer) -> Tool {
        match p {
            Peer::Vmtest => Tool::Vmtest,
            Peer::VirtmeNg => Tool::VirtmeNg,
        }
    }
}

/// How it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// kmatrix: `exec --snapshot off`, a boot from QEMU start.
    Cold,
    /// kmatrix: `exec --snapshot on`, restored from the snapshot taken at the agent's Hello.
    Snapshot,
    /// A peer exactly as its README says, on the kernel image alone (tried once).
    OutOfTheBox,
    /// A peer with the least it needs to work here (see [`Cell::needs`]).
    Minimum,
}

impl Mode {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Cold => "cold",
            Mode::Snapshot => "snapshot",
            Mode::OutOfTheBox => "out of the box",
            Mode::Minimum => "minimum",
        }
    }
}

/// One run of one command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// Wall seconds from spawning the command to its exit (its QEMU gone).
    pub seconds: f64,
    /// The command's exit code; `None` when a signal ended it or it was killed at the timeout.
    pub exit_code: Option<i32>,
    /// Why it does not count as a success; `None` for a success.
    pub failure: Option<String>,
    /// The last lines of its output (stdout, then stderr), the evidence for a failure.
    pub tail: Vec<String>,
}

impl Attempt {
    /// The run counts: it exited 0 in time and printed the task's output.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Whether `output` is the task's: a line that is exactly `release` and a line that is a tracer
/// list (names only, `nop` among them: every kernel has the nop tracer). The error says what is
/// missing, for the table.
pub fn check_output(output: &str, release: &str) -> Result<(), WrongOutput> {
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    let has_release = lines.contains(&release);
    let has_tracers = lines.iter().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.contains(&"nop") && words.iter().all(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    });
    match (has_release, has_tracers) {
        (true, true) => Ok(()),
        (false, true) => Err(WrongOutput::NoRelease(release.to_string())),
        (true, false) => Err(WrongOutput::NoTracers),
        (false, false) => Err(WrongOutput::Neither(release.to_string())),
    }
}

/// What a run's output lacks to be the task's (the release it should print is kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrongOutput {
    /// The tracers are there, the release (held) is not.
    #[error("no line {0:?} (uname -r) in the output")]
    NoRelease(String),
    /// The release is there, the tracer list is not.
    #[error("no tracer list (a line of tracer names with nop) in the output")]
    NoTracers,
    /// Neither the release (held) nor the tracer list.
    #[error("neither {0:?} nor a tracer list in the output")]
    Neither(String),
}

/// The last `n` non-empty lines of `text`, without terminal control sequences' ESC bytes.
pub fn tail_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<String> =
        text.lines().map(|l| l.replace('\u{1b}', "").trim_end().to_string()).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// All runs of one (tool, kernel, mode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Who ran it.
    pub tool: Tool,
    /// The kernel id (`debian-6.1`).
    pub kernel: String,
    /// The kernel's release, what `uname -r` must print.
    pub release: String,
    /// How it ran.
    pub mode: Mode,
    /// What the tool needed beyond its README's command to work here; empty for kmatrix and
    /// for out-of-the-box attempts.
    pub needs: Vec<String>,
    /// The command line of the last attempt, for reproducing it by hand.
    pub command: Vec<String>,
    /// Every run, in order (one for out-of-the-box).
    pub attempts: Vec<Attempt>,
}

impl Cell {
    /// Statistics over the successful attempts only: a failed run is not a time.
    pub fn stats(&self) -> Option<Stats> {
        let ok: Vec<f64> = self.attempts.iter().filter(|a| a.ok()).map(|a| a.seconds).collect();
        (!ok.is_empty()).then(|| Stats::of(&ok))
    }

    /// How many attempts count.
    pub fn successes(&self) -> usize {
        self.attempts.iter().filter(|a| a.ok()).count()
    }
}

/// The whole comparison, as `--json` prints it and the table renders it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Timed runs per (tool, kernel, mode), out-of-the-box attempts aside.
    pub runs: u32,
    /// The accelerator every tool ran under (always `tcg`: the same for all).
    pub accel: String,
    /// The machine the numbers come from.
    pub host: HostInfo,
    /// Where the peers and their files were (`<cache>/bench`).
    pub bench_dir: PathBuf,
    /// (tool, version) of kmatrix and each peer installed.
    pub versions: Vec<(String, String)>,
    /// Every (tool, kernel, mode), kmatrix's first for each kernel.
    pub cells: Vec<Cell>,
}

/// Where the numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostInfo {
    /// `/proc/cpuinfo`'s model name (`unknown` when absent).
    pub cpu: String,
    /// CPUs this process may use.
    pub cores: usize,
    /// `/proc/loadavg`'s three averages at the start and at the end of the bench.
    pub load_start: String,
    /// See `load_start`.
    pub load_end: String,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub date: String,
}

impl Report {
    fn find(&self, tool: Tool, kernel: &str, mode: Mode) -> Option<&Cell> {
        self.cells.iter().find(|c| c.tool == tool && c.kernel == kernel && c.mode == mode)
    }

    /// `cell`'s median over kmatrix's median on the same kernel in `mode`: how many times slower
    /// the cell is. `None` when either side has no successful run.
    pub fn ratio(&self, cell: &Cell, mode: Mode) -> Option<f64> {
        let base = self.find(Tool::Kmatrix, &cell.kernel, mode)?.stats()?.median;
        let mine = cell.stats()?.median;
        (base > 0.0).then(|| mine / base)
    }

    /// The "out of the box?" column of a cell.
    pub fn out_of_the_box(&self, cell: &Cell) -> String {
        match (cell.tool, cell.mode) {
            (Tool::Kmatrix, _) => "yes".into(),
            (_, Mode::OutOfTheBox) => match cell.attempts.first() {
                Some(a) if a.ok() => "yes".into(),
                Some(a) => format!("no: {}", describe_failure(a)),
                None => "not tried".into(),
            },
            (_, _) if cell.needs.is_empty() => "yes".into(),
            (_, _) => format!("needs {}", cell.needs.join("; ")),
        }
    }

    /// The result as a Markdown table, one row per cell, then each failure's evidence.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| tool | kernel | mode | ok/runs | min s | median s | max s | × kmatrix cold | × kmatrix snapshot | out of the box? |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
        let secs = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into());
        let ratio = |v: Option<f64>| v.map(|x| format!("{x:.1}×")).unwrap_or_else(|| "—".into());
        for c in &self.cells {
            let st = c.stats();
            s.push_str(&format!(
                "| {} | {} ({}) | {} | {}/{} | {} | {} | {} | {} | {} | {} |\n",
                c.tool.name(),
                c.kernel,
                c.release,
                c.mode.name(),
                c.successes(),
                c.attempts.len(),
                secs(st.map(|s| s.min)),
                secs(st.map(|s| s.median)),
                secs(st.map(|s| s.max)),
                ratio(self.ratio(c, Mode::Cold)),
                ratio(self.ratio(c, Mode::Snapshot)),
                self.out_of_the_box(c).replace('|', "\\|"),
            ));
        }
        let failures: Vec<String> = self
            .cells
            .iter()
            .flat_map(|c| {
                c.attempts.iter().enumerate().filter(|(_, a)| !a.ok()).map(move |(i, a)| {
                    format!(
                        "- {} {} {} run {}: {} — last lines: {}\n",
                        c.tool.name(),
                        c.kernel,
                        c.mode.name(),
                        i + 1,
                        describe_failure(a),
                        a.tail.iter().map(|l| format!("`{}`", l.replace('`', "'"))).collect::<Vec<_>>().join(" / ")
                    )
                })
            })
            .collect();
        if !failures.is_empty() {
            s.push_str("\nFailed runs (not timed as successes):\n\n");
            for f in failures {
                s.push_str(&f);
            }
        }
        s
    }
}

/// `exit 255 after 21.5 s: <why>`.
pub fn describe_failure(a: &Attempt) -> String {
    let code = a.exit_code.map(|c| format!("exit {c}")).unwrap_or_else(|| "killed".into());
    format!("{code} after {:.1} s: {}", a.seconds, a.failure.as_deref().unwrap_or("ok"))
}

#[cfg(test)]
mod tests;
