//! The user's own command as a judged cell (`kmatrix run --command 'CMD ARGS'`): one cell per
//! kernel, id `user.<name>`, run in the guest through the shared host root in the caller's
//! directory with the caller's environment, exactly as `kmatrix exec` runs a program (the request
//! is built by [`crate::exec`]). Its exit code is the verdict: 0 `pass`; 4 or 77 (kselftest's and
//! automake's skip codes) `unsupported`, with the output's last lines as evidence; anything else
//! `fail`, with the output's tail as the excerpt; killed at its timeout `error` (cause timeout).
//! Its whole output (stdout and stderr as they came) is the cell's capture, which the run keeps
//! as an artifact.
//!
//! Everything a rerun needs is in the cell's parameters (`command`, `argv`, `cwd`): a results file
//! replays it with the same program, arguments and directory.
//!
//! Not here: scheduling (the scheduler's worker calls [`run`] for a `user.*` cell instead of
//! asking the agent for a scenario), judging against expectations (`run::verdict`, as for any
//! cell), and the command line's flags (`cli/run.rs`).

#![warn(missing_docs)]

use crate::exec::{self, ExecError};
use crate::guest::Guest;
use crate::vm::VmError;
use kmatrix_proto::{Cause, ExecOutcome, ExecRequest, ScenarioInfo, ScenarioResult, Status, StdinMode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The family of the user's cells: every id starts with it.
pub const PREFIX: &str = "user.";

/// The name of a command given without `--name`.
pub const DEFAULT_NAME: &str = "command";

/// Exit codes that mean "skipped: this machine lacks something" (kselftest's `KSFT_SKIP`,
/// automake's `SKIP`).
pub const SKIP_CODES: [i32; 2] = [4, 77];

/// Lines of output an `unsupported` cell shows as its evidence.
const EVIDENCE_LINES: usize = 10;

/// Seconds the host waits past the command's own timeout for the agent to say it killed it.
const KILL_GRACE: Duration = Duration::from_secs(15);

/// Why the user's commands cannot become cells; each names the flag and what it was given.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CommandError {
    /// A command line that cannot run (empty, bad quotes, a program this host does not have).
    #[error("--command {line:?}: {why}")]
    Command {
        /// The command line, as given.
        line: String,
        /// Why it cannot run.
        why: ExecError,
    },
    /// `--command-file` could not be read.
    #[error("--command-file {path}: cannot read it: {detail}")]
    File {
        /// The file, as given.
        path: PathBuf,
        /// The I/O error.
        detail: String,
    },
    /// `--command-file` holds no command.
    #[error("--command-file {0}: no command in it (one command per line; blank lines and # comments are skipped)")]
    EmptyFile(PathBuf),
    /// A `--name` that cannot be part of a cell id.
    #[error("--name {0:?}: a name is letters, digits, '-' and '_' (it becomes the cell id user.<name>)")]
    BadName(String),
    /// More names than commands.
    #[error("{names} --name for {commands} commands: each --name names one command, in order")]
    TooManyNames {
        /// Names given.
        names: usize,
        /// Commands given.
        commands: usize,
    },
    /// Two commands would be the same cell.
    #[error("two commands are both cell {0}: give each its own --name")]
    Duplicate(String),
    /// A results file's user cell without the parameters that say what it ran.
    #[error("{kernel} {scenario}: the result records no command to run (parameters argv and cwd)")]
    NotRecorded {
        /// The cell's kernel.
        kernel: String,
        /// The cell's id.
        scenario: String,
    },
}

/// One of the user's commands, checked on the host and ready to run on every kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct UserCommand {
    /// The cell id, `user.<name>`.
    pub id: String,
    /// The command line as the user gave it.
    pub line: String,
    /// Its words, the program resolved to its host path.
    pub argv: Vec<String>,
    /// Where it runs: the caller's directory.
    pub cwd: PathBuf,
}

impl UserCommand {
    /// The cell's parameters: all a rerun needs to run it again.
    pub fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("command".to_string(), self.line.clone()),
            ("argv".to_string(), serde_json::to_string(&self.argv).unwrap_or_default()),
            ("cwd".to_string(), self.cwd.display().to_string()),
        ])
    }

    /// The cell as a run plans and judges a scenario: no `since` (nothing to judge an
    /// `unsupported` against but the user's expectations), the host root shared.
    pub fn info(&self) -> ScenarioInfo {
        info(&self.id, &self.line, self.params())
    }
}

fn info(id: &str, line: &str, params: BTreeMap<String, String>) -> ScenarioInfo {
    ScenarioInfo {
        id: id.to_string(),
        summary: format!("the user's command `{line}`: exit 0 pass, 4 or 77 unsupported, else fail"),
        since: String::new(),
        until: None,
        requires: Vec::new(),
        params,
        host_root: true,
        kernel_headers: false,
    }
}

/// Whether `scenario` is one of the user's cells.
pub fn is_user(scenario: &str) -> bool {
    scenario.starts_with(PREFIX)
}

/// The user's commands: `commands` (`--command`, in order), then the lines of `file`
/// (`--command-file`: one command per line, blank lines and `#` comments skipped), named by
/// `names` (`--name`) in the same order. A command without a name is `user.command`, and the
/// n-th of several such `user.command-n`. Every program is looked up on this host, every name
/// checked, before anything boots.
pub fn plan(commands: &[String], file: Option<&Path>, names: &[String]) -> Result<Vec<UserCommand>, CommandError> {
    let mut lines: Vec<String> = commands.to_vec();
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| CommandError::File { path: f.to_path_buf(), detail: e.to_string() })?;
        let before = lines.len();
        lines.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
        if lines.len() == before {
            return Err(CommandError::EmptyFile(f.to_path_buf()));
        }
    }
    if names.len() > lines.len() {
        return Err(CommandError::TooManyNames { names: names.len(), commands: lines.len() });
    }
    if let Some(bad) =
        names.iter().find(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(CommandError::BadName(bad.clone()));
    }
    let unnamed = lines.len() - names.len();
    let mut out: Vec<UserCommand> = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        let name = match names.get(i) {
            Some(n) => n.clone(),
            None if unnamed == 1 => DEFAULT_NAME.to_string(),
            None => format!("{DEFAULT_NAME}-{}", i - names.len() + 1),
        };
        let id = format!("{PREFIX}{name}");
        if out.iter().any(|c| c.id == id) {
            return Err(CommandError::Duplicate(id));
        }
        let (argv, cwd) = exec::command_line(&line).map_err(|why| CommandError::Command { line: line.clone(), why })?;
        out.push(UserCommand { id, line, argv, cwd });
    }
    Ok(out)
}

/// A results file's user cell as a rerun plans it: its recorded parameters must say what ran.
pub fn info_of(r: &ScenarioResult) -> Result<ScenarioInfo, CommandError> {
    recorded(&r.params)
        .ok_or_else(|| CommandError::NotRecorded { kernel: r.kernel.clone(), scenario: r.scenario.clone() })?;
    let line = r.params.get("command").cloned().unwrap_or_default();
    Ok(info(&r.scenario, &line, r.params.clone()))
}

/// The argv and cwd a cell's parameters record.
fn recorded(params: &BTreeMap<String, String>) -> Option<(Vec<String>, String)> {
    let argv: Vec<String> = serde_json::from_str(params.get("argv")?).ok()?;
    let cwd = params.get("cwd")?.clone();
    (!argv.is_empty() && cwd.starts_with('/')).then_some((argv, cwd))
}

/// Run the cell `scenario` with `params` in `g` (a guest of `kernel`, `uname -r` `release`,
/// sharing the host root), the command killed after `timeout`, and judge how it ended. A guest
/// that stops answering is the caller's to handle (the error), as for any scenario.
pub async fn run(
    g: &mut Guest,
    scenario: &str,
    params: &BTreeMap<String, String>,
    kernel: &str,
    release: &str,
    timeout: Duration,
) -> Result<ScenarioResult, VmError> {
    let Some((argv, cwd)) = recorded(params) else {
        let mut r = ScenarioResult::new(scenario, Status::Error, "the cell records no command to run (argv, cwd)");
        r.cause = Some(Cause::Infrastructure);
        return Ok(r);
    };
    let Some(mut root) = g.share.clone() else {
        let mut r = ScenarioResult::new(scenario, Status::Error, "the guest does not share the host root");
        r.cause = Some(Cause::Infrastructure);
        return Ok(r);
    };
    // As `kmatrix exec` gives it: the modules' files for modprobe, the kernel's headers if any.
    root.module_files = true;
    let mut env = exec::guest_env(std::env::vars(), kernel, release);
    exec::headers_env(g, &mut env);
    let req = ExecRequest {
        argv,
        timeout_ms: timeout.as_millis() as u64,
        env,
        cwd: Some(cwd),
        root: Some(root),
        stream: true,
        stdin: StdinMode::Null,
        winsize: None,
        host_time_ns: None,
    };
    let mut output = Vec::new();
    let out = g
        .exec_streaming(req, timeout + KILL_GRACE, |_, data| {
            // Kept up to what a capture holds (and a little more, so the cut is said).
            if output.len() <= kmatrix_proto::MAX_CAPTURE {
                output.extend_from_slice(data);
            }
        })
        .await?;
    let mut text = String::from_utf8_lossy(&output).into_owned();
    if out.timed_out {
        text.push_str(&format!("\nkmatrix: killed after its timeout of {:.0} s\n", timeout.as_secs_f64()));
    }
    Ok(judge(scenario, &out, &text))
}

/// The cell's result from how the command ended (`out`) and its whole output (`text`).
pub fn judge(scenario: &str, out: &ExecOutcome, text: &str) -> ScenarioResult {
    let tail = tail(text, kmatrix_proto::MAX_EXCERPT);
    let mut r = match (out.timed_out, out.exit_code, out.signal) {
        (true, _, _) => {
            let mut r =
                ScenarioResult::new(scenario, Status::Error, format!("the command timed out after {} ms", out.wall_ms));
            r.cause = Some(Cause::Timeout);
            r
        }
        (_, Some(0), _) => ScenarioResult::new(scenario, Status::Pass, ""),
        (_, Some(c), _) if SKIP_CODES.contains(&c) => {
            let mut r = ScenarioResult::new(
                scenario,
                Status::Unsupported,
                format!("the command exited {c}: skipped (4 is kselftest's skip code, 77 automake's)"),
            );
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let last = lines[lines.len().saturating_sub(EVIDENCE_LINES)..].join("\n");
            r.evidence = Some(if last.is_empty() { "the command printed nothing".into() } else { last });
            r
        }
        (_, Some(c), _) => ScenarioResult::new(scenario, Status::Fail, format!("the command exited {c}")),
        (_, None, Some(s)) => {
            ScenarioResult::new(scenario, Status::Fail, format!("the command was killed by signal {s}"))
        }
        (_, None, None) => {
            let mut r = ScenarioResult::new(scenario, Status::Error, "the command ended without an exit status");
            r.cause = Some(Cause::Infrastructure);
            r
        }
    };
    r.excerpt = tail;
    r.timings.run_ms = out.wall_ms as f64;
    r.clock_offset_ms = out.clock_offset_ms;
    if !text.is_empty() {
        r = r.with_capture("the command's output (stdout and stderr as they came)", text);
    }
    r
}

/// The last `max` bytes of `s` at most, from a line start when one is in them.
fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    let t = &s[start..];
    t.find('\n').map_or(t, |i| &t[i + 1..]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(code: Option<i32>, signal: Option<i32>, timed_out: bool) -> ExecOutcome {
        ExecOutcome { exit_code: code, signal, timed_out, wall_ms: 7, ..Default::default() }
    }

    #[test]
    fn the_exit_code_is_the_verdict() {
        let text = "line 1\n\nskip: no BTF on this kernel\n";
        let pass = judge("user.a", &ended(Some(0), None, false), text);
        assert_eq!((pass.status, pass.cause), (Status::Pass, None));
        assert_eq!(pass.capture.as_ref().map(|c| c.text.as_str()), Some(text));
        for code in SKIP_CODES {
            let r = judge("user.a", &ended(Some(code), None, false), text);
            assert_eq!(r.status, Status::Unsupported);
            assert!(r.reason.contains(&format!("exited {code}")), "{}", r.reason);
            assert_eq!(r.evidence.as_deref(), Some("line 1\nskip: no BTF on this kernel"));
        }
        let fail = judge("user.a", &ended(Some(1), None, false), text);
        assert_eq!(
            (fail.status, fail.reason.as_str(), fail.excerpt.as_str()),
            (Status::Fail, "the command exited 1", text)
        );
        let killed = judge("user.a", &ended(None, Some(9), false), "");
        assert_eq!((killed.status, killed.capture.is_none()), (Status::Fail, true));
        assert!(killed.reason.contains("signal 9"));
        let slow = judge("user.a", &ended(None, Some(9), true), text);
        assert_eq!((slow.status, slow.cause), (Status::Error, Some(Cause::Timeout)));
        let silent = judge("user.a", &ended(Some(77), None, false), "");
        assert_eq!(silent.evidence.as_deref(), Some("the command printed nothing"));
    }

    #[test]
    fn the_excerpt_is_the_outputs_tail() {
        let long: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        let r = judge("user.a", &ended(Some(2), None, false), &long);
        assert!(r.excerpt.ends_with("line 1999\n") && r.excerpt.starts_with("line "), "{}", &r.excerpt[..20]);
        assert!(r.excerpt.len() <= kmatrix_proto::MAX_EXCERPT);
        assert_eq!(r.capture.map(|c| c.bytes), Some(long.len() as u64));
    }

    #[test]
    fn commands_are_named_checked_and_recorded() {
        let one = plan(&["true".into()], None, &[]).unwrap();
        assert_eq!(one[0].id, "user.command");
        assert!(one[0].argv[0].ends_with("/true"), "{:?}", one[0].argv);
        assert_eq!(one[0].cwd, std::env::current_dir().unwrap());
        let info = one[0].info();
        assert!(info.host_root && info.since.is_empty());
        let r = ScenarioResult { params: info.params.clone(), ..ScenarioResult::new(&info.id, Status::Fail, "") };
        assert_eq!(info_of(&r).unwrap(), info);
        assert!(matches!(
            info_of(&ScenarioResult::new("user.x", Status::Fail, "")),
            Err(CommandError::NotRecorded { .. })
        ));

        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("cmds");
        std::fs::write(&f, "# mine\n\nsh -c 'exit 0'\n  true  \n").unwrap();
        let three = plan(&["false".into()], Some(&f), &["first".into()]).unwrap();
        let ids: Vec<&str> = three.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["user.first", "user.command-1", "user.command-2"]);
        assert_eq!(three[1].argv[1..], ["-c".to_string(), "exit 0".into()]);

        let e = |r: Result<Vec<UserCommand>, CommandError>| r.unwrap_err().to_string();
        assert!(e(plan(&["".into()], None, &[])).contains("empty command"));
        assert!(e(plan(&["kmatrix-no-such-program -x".into()], None, &[])).contains("kmatrix-no-such-program"));
        assert!(e(plan(&["true".into(), "false".into()], None, &["a".into(), "a".into()])).contains("user.a"));
        assert!(e(plan(&["true".into()], None, &["a b".into()])).contains("--name \"a b\""));
        assert!(e(plan(&["true".into()], None, &["a".into(), "b".into()])).contains("2 --name for 1"));
        let missing = d.path().join("none");
        assert!(e(plan(&[], Some(&missing), &[])).contains(&format!("--command-file {}", missing.display())));
        std::fs::write(&f, "# only a comment\n").unwrap();
        assert!(e(plan(&[], Some(&f), &[])).contains("no command in it"));
    }
}
