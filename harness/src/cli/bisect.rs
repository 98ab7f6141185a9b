//! `kmatrix bisect`: the first build of a kernel line where a scenario stops passing, or where a
//! command stops exiting 0 (as `git bisect run`), over every build of the line the mirror
//! offers (Debian's, or Ubuntu's ABI builds with `--distro ubuntu`), with the changelog entries
//! between the last good and the first bad build. The
//! search is `bisect.rs`'s; this file picks the builds and the predicate and prints.

use super::{open_session, seconds, tag_kernel, MachineArgs, MirrorArgs};
use crate::bisect::{self, BisectError, Bisector, Predicate, Report, Search, Step};
use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::kernel;
use crate::kernel::{version, AvailableKernel};
use crate::run::results;
use crate::settings::{GuestSettings, SnapshotMode};
use crate::vm::AccelChoice;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `kmatrix bisect`: the line and its ends, the predicate (a scenario or a command), the guests.
#[derive(Debug, Args)]
pub struct BisectArgs {
    /// The kernel line (`6.12`): its builds on the mirror, oldest to newest, are bisected.
    /// Default: the line of --good/--bad.
    #[arg(long)]
    pub line: Option<String>,
    /// Whose builds: Debian's (`linux-image-*`) or Ubuntu's ABI builds
    /// (`linux-image-unsigned-<abi>-generic`).
    #[arg(long, value_enum, default_value = "debian")]
    pub distro: kernel::Distro,
    /// A build known good (package version `6.12.43-1~bpo12+1`, or `debian:<version>`; for
    /// Ubuntu `4.15.0-212.223`, its ABI `4.15.0-212`, or `ubuntu:4.15.0-212`);
    /// default: the line's oldest build. It is tested first.
    #[arg(long)]
    pub good: Option<String>,
    /// A build known bad; default: the line's newest build. It is tested first.
    #[arg(long)]
    pub bad: Option<String>,
    /// Predicate: this scenario passes (good) or fails or is unsupported (bad).
    #[arg(long, short = 's')]
    pub scenario: Option<String>,
    /// A parameter of --scenario, `key=value` (repeatable).
    #[arg(long = "param", short = 'p')]
    pub params: Vec<String>,
    /// Seconds the predicate may take on one build.
    #[arg(long, default_value_t = 600.0, value_parser = seconds)]
    pub timeout: f64,
    /// Print the outcome as JSON on stdout (progress lines stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Accelerator: auto (KVM when it works), kvm, tcg.
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Where kernels come from: the mirror and whether an unsigned Release is accepted.
    #[command(flatten)]
    pub fetch: MirrorArgs,
    /// The guest machine's size: `--cpus`, `--memory`.
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Seconds from QEMU start to the agent's Hello before a build counts as not booting.
    #[arg(long, default_value_t = crate::settings::BOOT_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    pub boot_timeout: f64,
    /// Where the step logs (console, command output) go, in a `bisect-<time>` directory.
    #[arg(long, default_value = "target/kmatrix")]
    pub out: PathBuf,
    /// Snapshots at Hello: off (default: each build boots once) or on (a later bisect over the
    /// same builds restores them).
    #[arg(long, value_enum)]
    pub snapshot: Option<SnapshotMode>,
    /// Predicate: this host command, run in the guest over the shared host root, exits 0 (good),
    /// 125 (skip this build) or 1-127 (bad). `$KMATRIX_GUEST` is the build (`debian:<version>`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub argv: Vec<String>,
}

/// `debian:6.12.57-1` or `6.12.57-1` → `6.12.57-1`; `ubuntu:4.15.0-212` → `4.15.0-212`.
fn version_of(s: &str) -> &str {
    s.strip_prefix("debian:").or_else(|| s.strip_prefix("ubuntu:")).unwrap_or(s)
}

/// Whether `given` (a version or, for Ubuntu, an ABI) names the build of version `v`:
/// `4.15.0-212` names `4.15.0-212.223`.
fn names(given: &str, v: &str) -> bool {
    let g = version_of(given);
    v == g || v.strip_prefix(g).is_some_and(|rest| rest.starts_with('.'))
}

/// `6.12.57-1~bpo12+1` → `6.12`.
fn line_of(v: &str) -> Option<String> {
    let mut parts = version::upstream(version_of(v)).split('.');
    let (a, b) = (parts.next()?, parts.next()?);
    (a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()) && !a.is_empty() && !b.is_empty())
        .then(|| format!("{a}.{b}"))
}

pub(crate) async fn bisect_cmd(a: BisectArgs) -> Result<i32> {
    let predicate = predicate(&a)?;
    let line = match (&a.line, a.good.as_deref().or(a.bad.as_deref())) {
        (Some(l), _) => l.clone(),
        (None, Some(v)) => line_of(v)
            .ok_or_else(|| anyhow::anyhow!("{v:?} is not a kernel package version such as 6.12.57-1"))
            .exit_code(exit::BAD_INPUT)?,
        (None, None) => {
            return Err(anyhow::anyhow!("bisect needs --line, or --good and --bad builds")).exit_code(exit::BAD_INPUT)
        }
    };
    for (flag, v) in [("--good", &a.good), ("--bad", &a.bad)] {
        if let Some(v) = v {
            if line_of(v).as_deref() != Some(line.as_str()) {
                return Err(anyhow::anyhow!("{flag} {v} is not a build of line {line}")).exit_code(exit::BAD_INPUT);
            }
        }
    }
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let fetch = a.fetch.fetch_options();
    let all = {
        let (l, c, f) = (line.clone(), cache.clone(), fetch.clone());
        let distro = a.distro;
        tokio::task::spawn_blocking(move || kernel::available(distro, &l, &c, &f))
            .await
            .context("listing builds died")?
            .map_err(tag_kernel)?
    };
    // Oldest first, each version once (a build can sit in two suites).
    let mut builds: Vec<AvailableKernel> = Vec::new();
    for b in all.into_iter().rev() {
        if !builds.iter().any(|x| x.version == b.version) {
            builds.push(b);
        }
    }
    builds.sort_by(|x, y| version::compare(&x.version, &y.version));
    if builds.len() < 2 {
        return Err(anyhow::anyhow!(
            "the mirror has {} build(s) of line {line}: nothing to bisect (see `kmatrix kernels available --line {line}`)",
            builds.len()
        ))
        .exit_code(exit::BAD_INPUT);
    }
    let find = |flag: &str, v: &Option<String>, default: usize| -> Result<usize> {
        let Some(v) = v else { return Ok(default) };
        builds.iter().position(|b| names(v, &b.version)).ok_or_else(|| {
            let known: Vec<&str> = builds.iter().map(|b| b.version.as_str()).collect();
            anyhow::Error::new(exit::Exit {
                code: exit::BAD_INPUT,
                error: anyhow::anyhow!(
                    "{flag} {v}: the mirror has no such build of {line}; it has {}",
                    known.join(", ")
                ),
            })
        })
    };
    let good = find("--good", &a.good, 0)?;
    let bad = find("--bad", &a.bad, builds.len() - 1)?;
    if good >= bad {
        return Err(anyhow::anyhow!(
            "the good build {} is not older than the bad build {}",
            builds[good].version,
            builds[bad].version
        ))
        .exit_code(exit::BAD_INPUT);
    }
    let builds: Vec<AvailableKernel> = builds[good..=bad].to_vec();
    let session = Arc::new(open_session(a.accel).await?);
    let out = results::stamped_dir(&a.out, "bisect");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display())).exit_code(exit::INFRA)?;
    let b = Bisector {
        guests: crate::run::guests::Guests {
            session,
            fetch,
            settings: settings(&a),
            scenario_timeout: Duration::from_secs_f64(a.timeout),
        },
        out: out.clone(),
        predicate,
    };
    eprintln!(
        "kmatrix: bisecting {} builds of {line}, {} to {}, for the first where {} does not hold; logs in {}",
        builds.len(),
        builds[0].version,
        builds[builds.len() - 1].version,
        b.predicate.describe(),
        out.display()
    );
    let n = builds.len();
    let report = bisect::bisect(&b, &line, builds, 0, n - 1, progress).await.map_err(|e| {
        let code = match e {
            BisectError::Endpoint { .. } => exit::BAD_INPUT,
            _ => exit::INFRA,
        };
        anyhow::Error::new(exit::Exit { code, error: e.into() })
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(exit::OK)
}

/// The guests' settings of a bisection: the machine and boot timeout of the flags, the default
/// channel, and each build booted once unless `--snapshot on` (bisect's default is a cold boot;
/// the rule is `SnapshotMode`'s, as every command's).
fn settings(a: &BisectArgs) -> GuestSettings {
    GuestSettings {
        boot_timeout: Duration::from_secs_f64(a.boot_timeout),
        snapshot: a.snapshot.unwrap_or(SnapshotMode::Off),
        ..a.machine.settings()
    }
}

/// The predicate the arguments ask for: exactly one of --scenario and a command.
fn predicate(a: &BisectArgs) -> Result<Predicate> {
    match (&a.scenario, a.argv.is_empty()) {
        (Some(id), true) => {
            let cache = Cache::from_env().exit_code(exit::INFRA)?;
            let cat =
                crate::catalogue::load(&cache).context("cannot list the agent's catalogue").exit_code(exit::INFRA)?;
            let Some(info) = cat.iter().find(|s| &s.id == id) else {
                return Err(anyhow::anyhow!("--scenario {id}: no such scenario (see `kmatrix scenarios list`)"))
                    .exit_code(exit::BAD_INPUT);
            };
            let mut params = info.params.clone();
            params.extend(super::run::parse_params(&a.params)?);
            Ok(Predicate::Scenario { id: id.clone(), params, host_root: info.host_root })
        }
        (None, false) => {
            if !a.params.is_empty() {
                return Err(anyhow::anyhow!("--param goes with --scenario, not with a command"))
                    .exit_code(exit::BAD_INPUT);
            }
            let (req, _) = crate::exec::request(&a.argv, &[], a.timeout, &[]).exit_code(exit::BAD_INPUT)?;
            Ok(Predicate::Command { req: Box::new(req), timeout: Duration::from_secs_f64(a.timeout) })
        }
        (Some(_), false) => Err(anyhow::anyhow!("give one predicate: --scenario or a command after --, not both"))
            .exit_code(exit::BAD_INPUT),
        (None, true) => Err(anyhow::anyhow!(
            "bisect needs a predicate: --scenario ID, or a command after -- (exit 0 good, 125 skip, 1-127 bad)"
        ))
        .exit_code(exit::BAD_INPUT),
    }
}

/// One line per step, as it ends.
fn progress(s: &Step, search: &Search) {
    let left = match search.bounds() {
        Some(_) => {
            format!("; {} untested between the bounds, ~{} steps left", search.untested().len(), search.steps_left())
        }
        None => String::new(),
    };
    eprintln!(
        "kmatrix: step {}: {} is {} ({}) in {:.1} s (prepare {:.1} s, {} {:.1} s, run {:.1} s){left}",
        s.n,
        s.build,
        s.verdict.as_str(),
        s.reason,
        s.secs,
        s.prepare_s,
        if s.restored { "restore" } else { "boot" },
        s.boot_s,
        s.run_s
    );
}

/// The outcome as a person reads it: the steps, the two builds, the changelog between them.
fn render(r: &Report) -> String {
    let mut t = format!(
        "bisect of {} ({} builds) for the first where {} does not hold\n\n",
        r.line,
        r.builds.len(),
        r.predicate
    );
    t.push_str(&format!("{:>4}  {:34} {:6} {:>8}  why\n", "step", "build", "result", "time"));
    for s in &r.steps {
        t.push_str(&format!("{:>4}  {:34} {:6} {:>7.1}s  {}\n", s.n, s.build, s.verdict.as_str(), s.secs, s.reason));
    }
    t.push_str(&format!(
        "\nlast good: {} ({})\nfirst bad: {} ({})\n",
        r.last_good.spec, r.last_good.package, r.first_bad.spec, r.first_bad.package
    ));
    if !r.could_also_be.is_empty() {
        let v: Vec<&str> = r.could_also_be.iter().map(|b| b.spec.as_str()).collect();
        t.push_str(&format!("(skipped builds hide the answer: the first bad build may also be {})\n", v.join(", ")));
    }
    t.push_str(&format!("{} steps in {:.1} s\n", r.steps.len(), r.wall_s));
    match &r.changelog_error {
        Some(e) => t.push_str(&format!("\nno changelog: {e}\n")),
        None => {
            t.push_str(&format!(
                "\nchangelog from {} to {} ({} entries, from {}):\n\n",
                r.last_good.version,
                r.first_bad.version,
                r.changelog.len(),
                r.first_bad.package
            ));
            for e in &r.changelog {
                t.push_str(&e.text);
                t.push('\n');
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use crate::settings::Channel;
    use clap::Parser;

    #[test]
    fn bisect_boots_each_build_cold_on_the_default_channel_unless_told() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["kmatrix", "bisect", "--line", "6.12", "-s", "x", "--cpus", "2"];
            argv.extend_from_slice(extra);
            let Command::Bisect(a) = Cli::try_parse_from(argv).unwrap().command else { panic!("not bisect") };
            settings(&a)
        };
        let s = parse(&[]);
        assert_eq!(s, GuestSettings { cpus: 2, snapshot: SnapshotMode::Off, ..Default::default() });
        assert_eq!(s.channel, Channel::Virtio);
        assert!(!s.snapshots());
        assert!(parse(&["--snapshot", "on"]).snapshots());
    }

    #[test]
    fn lines_come_from_package_versions() {
        assert_eq!(line_of("6.12.57-1~bpo12+1").as_deref(), Some("6.12"));
        assert_eq!(line_of("ubuntu:4.15.0-212").as_deref(), Some("4.15"));
        assert!(names("ubuntu:4.15.0-212", "4.15.0-212.223") && names("4.15.0-212.223", "4.15.0-212.223"));
        assert!(!names("4.15.0-21", "4.15.0-212.223") && !names("4.15.0-212", "4.15.0-2120.1"));
        assert!(names("debian:6.1.176-1", "6.1.176-1"));
        assert_eq!(line_of("debian:6.1.176-1").as_deref(), Some("6.1"));
        assert_eq!(line_of("1:7.3.4-1").as_deref(), Some("7.3"));
        assert_eq!(line_of("latest"), None);
    }
}
