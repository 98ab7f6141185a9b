//! The kernel's own ftrace selftests (`tools/testing/selftests/ftrace/ftracetest`) through
//! kmatrix: each kernel runs the ftracetest of its own source package (`kernel::selftests`), in a
//! guest, through the shared host root (it needs bash, coreutils, `nice`, `chrt` and the host's
//! `/etc/group`), and every test case becomes a kmatrix result `selftest.ftrace.<dir>.<file>`.
//!
//! ftracetest's own vocabulary maps onto kmatrix's (they are the same words): PASS → pass, FAIL →
//! fail, UNSUPPORTED → unsupported, XFAIL → xfail, UNRESOLVED / UNTESTED → error, with the case's
//! log as the excerpt. Parsing is here; booting is the caller's.

#![warn(missing_docs)]

use kmatrix_proto::{Cause, ExecOutcome, ScenarioResult, Status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Marks the start of the per-case log listing the runner script prints after ftracetest.
pub const LOGS_MARK: &str = "KMATRIX-FTRACETEST-LOGS";

/// The script run in the guest, in the extracted `ftrace/` directory: ftracetest with its logs in
/// the guest's /tmp (the host root is read-only), then each case's log, each after a line
/// `== <log file name>`.
pub fn runner_script() -> String {
    format!(
        r#"logs=/tmp/kmatrix-ftracetest
rm -rf "$logs"; mkdir -p "$logs"
./ftracetest -k -l "$logs" "$@"
rc=$?
echo "{LOGS_MARK}"
for f in $(find "$logs" -type f -name '*-log.*' | sort); do echo "== ${{f##*/}}"; head -c 4096 "$f"; echo; done
exit $rc
"#
    )
}

/// One test case as ftracetest reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Its number in ftracetest's output (`[12]`).
    pub number: u32,
    /// Its description, as printed.
    pub description: String,
    /// PASS, FAIL, UNSUPPORTED, XFAIL, UNRESOLVED, UNTESTED.
    pub result: String,
    /// The test file (`ftrace/func_set_ftrace_file.tc`), from its log's name.
    pub file: Option<String>,
    /// Its log, as ftracetest wrote it.
    pub log: String,
}

/// Parse ftracetest's output (`[N] description\t[RESULT]` lines) and the logs the runner script
/// printed after [`LOGS_MARK`]. Log files are named `<N>-<file>-log.<random>` by ftracetest, and
/// start with `execute: <path of the .tc>` (the path under `test.d/` is the case's file).
pub fn parse(output: &str) -> Vec<Case> {
    let (main, logs) = output.split_once(LOGS_MARK).unwrap_or((output, ""));
    let mut cases = Vec::new();
    for line in main.lines() {
        let l = line.trim_end();
        let Some(rest) = l.strip_prefix('[') else { continue };
        let Some((num, rest)) = rest.split_once(']') else { continue };
        let Ok(number) = num.trim().parse::<u32>() else { continue };
        let Some(open) = rest.rfind('[') else { continue };
        let result = rest[open + 1..].trim_end_matches(']').trim().to_string();
        if !matches!(result.as_str(), "PASS" | "FAIL" | "UNSUPPORTED" | "XFAIL" | "UNRESOLVED" | "UNTESTED") {
            continue;
        }
        let description = rest[..open].trim().to_string();
        cases.push(Case { number, description, result, file: None, log: String::new() });
    }
    // Logs: `== 12-kprobe_args.tc-log.AbC123` then its text.
    let mut by_number: BTreeMap<u32, (String, String)> = BTreeMap::new();
    let mut current: Option<u32> = None;
    for line in logs.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            current = None;
            if let Some((n, rest)) = name.split_once('-') {
                if let Ok(n) = n.parse::<u32>() {
                    let file = rest.rsplit_once("-log.").map(|x| x.0).unwrap_or(rest).to_string();
                    by_number.insert(n, (file, String::new()));
                    current = Some(n);
                }
            }
            continue;
        }
        if let Some(n) = current {
            if let Some((file, text)) = by_number.get_mut(&n) {
                if text.is_empty() && line.starts_with("execute") {
                    if let Some((_, rel)) = line.rsplit_once("test.d/") {
                        *file = rel.trim().to_string();
                    }
                }
                if text.len() < 4096 {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    for c in &mut cases {
        if let Some((file, log)) = by_number.remove(&c.number) {
            c.file = Some(file);
            c.log = log;
        }
    }
    cases
}

/// The result id of a case: `selftest.ftrace.<file without .tc>`, dots for directories; by number
/// when its log (and so its file) is unknown.
pub fn scenario_id(c: &Case) -> String {
    let base = match &c.file {
        Some(f) => format!("selftest.ftrace.{}", f.trim_end_matches(".tc").replace('/', ".")),
        None => format!("selftest.ftrace.case{}", c.number),
    };
    // ftracetest runs instance-capable cases a second time inside a tracing instance.
    if c.description.starts_with("(instance)") {
        format!("{base}.instance")
    } else {
        base
    }
}

/// ftracetest's log names carry only a test's file name: give it back its directory under
/// `test.d` (`kprobe/kprobe_args.tc`) when the name is unique there.
pub fn locate_files(cases: &mut [Case], test_d: &std::path::Path) {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut stack = vec![test_d.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let (Some(name), Ok(rel)) = (p.file_name(), p.strip_prefix(test_d)) {
                by_name.entry(name.to_string_lossy().into_owned()).or_default().push(rel.display().to_string());
            }
        }
    }
    for c in cases {
        if let Some(f) = &c.file {
            if let Some([only]) = by_name.get(f).map(Vec::as_slice) {
                c.file = Some(only.clone());
            }
        }
    }
}

/// A case as a kmatrix result.
pub fn result_of(c: &Case) -> ScenarioResult {
    let status = match c.result.as_str() {
        "PASS" => Status::Pass,
        "FAIL" => Status::Fail,
        "UNSUPPORTED" => Status::Unsupported,
        "XFAIL" => Status::Xfail,
        _ => Status::Error,
    };
    let mut r = ScenarioResult::new(
        &scenario_id(c),
        status,
        format!("ftracetest [{}] {}: {}", c.number, c.description, c.result),
    );
    if status != Status::Pass {
        r = r.with_excerpt(&c.log);
    }
    r.detail = serde_json::json!({ "ftracetest_case": c.number, "description": c.description, "file": c.file });
    r
}

/// The test files ftracetest runs for `tests` (its arguments, relative to `test_d`; all of
/// `test.d` when empty): every `.tc` under them, relative to `test_d`, sorted.
pub fn planned_files(test_d: &Path, tests: &[String]) -> Vec<String> {
    let roots: Vec<PathBuf> =
        if tests.is_empty() { vec![test_d.to_path_buf()] } else { tests.iter().map(|t| test_d.join(t)).collect() };
    let mut files = Vec::new();
    let mut stack = roots;
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
        } else if p.extension().is_some_and(|e| e == "tc") {
            if let Ok(rel) = p.strip_prefix(test_d) {
                files.push(rel.display().to_string());
            }
        }
    }
    files.sort();
    files.dedup();
    files
}

/// When ftracetest did not end on its own (killed at the timeout, by a signal, with an exit code
/// other than its 0 and 1, or with 1 though no case it reported failed: its `errexit`), every
/// planned file no case reached is an `error` result, with cause `timeout` when the run timed
/// out: a run cut short never reads as the cases it reached. When it was cut short after the
/// last planned file, one `error` result for the run (`selftest.ftrace`) says so.
/// Empty when ftracetest ended on its own.
pub fn unreached(cases: &[Case], planned: &[String], ended: &ExecOutcome) -> Vec<ScenarioResult> {
    // ftracetest exits 1 for a FAIL (and, with --fail-unresolved, an UNRESOLVED).
    let failed = cases.iter().any(|c| matches!(c.result.as_str(), "FAIL" | "UNRESOLVED" | "UNTESTED"));
    let on_its_own = !ended.timed_out && (ended.exit_code == Some(0) || (ended.exit_code == Some(1) && failed));
    if on_its_own {
        return Vec::new();
    }
    let cause = if ended.timed_out { Cause::Timeout } else { Cause::Infrastructure };
    let reached: std::collections::BTreeSet<&str> = cases.iter().filter_map(|c| c.file.as_deref()).collect();
    let left: Vec<&String> = planned.iter().filter(|f| !reached.contains(f.as_str())).collect();
    if left.is_empty() {
        let mut r = ScenarioResult::new(
            "selftest.ftrace",
            Status::Error,
            format!("ftracetest {} after its {} case(s)", ended.describe(), cases.len()),
        );
        r.cause = Some(cause);
        r.detail = serde_json::json!({ "reached": cases.len(), "planned": planned.len() });
        return vec![r];
    }
    left.into_iter()
        .map(|f| {
            let case = Case {
                number: 0,
                description: String::new(),
                result: String::new(),
                file: Some(f.clone()),
                log: String::new(),
            };
            let mut r = ScenarioResult::new(
                &scenario_id(&case),
                Status::Error,
                format!("ftracetest {} before it reached {f}", ended.describe()),
            );
            r.cause = Some(cause);
            r.detail = serde_json::json!({ "file": f, "reached": false });
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of ftracetest's summary and the runner's log listing (ftracetest 6.1: `prlog -n
    /// "[$CASENO]$INSTANCE$CASENAME"` then `[PASS]` etc. after a tab; logs named by mktemp
    /// `$LOG_DIR/${CASENO}-${testname}-log.XXXXXX`).
    const OUTPUT: &str = "=== Ftrace unit tests ===\n\
        [1] Basic trace file check\t[PASS]\n\
        [2] Basic test for tracers\t[FAIL]\n\
        [3] (instance)  Basic test for tracers\t[UNSUPPORTED]\n\
        [4] Kprobe dynamic event with arguments\t[UNRESOLVED]\n\
        \n# of passed:  1\n# of failed:  1\n\
        KMATRIX-FTRACETEST-LOGS\n\
        == 2-basic2.tc-log.Xy12ab\nexecute: /x/ftrace/test.d/00basic/basic2.tc\n+ echo nop\ntracer missing\n\
        == 4-kprobe_args.tc-log.QQ9\n+ echo p:myevent\n";

    #[test]
    fn cases_results_and_logs_are_read_and_mapped() {
        let cases = parse(OUTPUT);
        assert_eq!(cases.len(), 4);
        assert_eq!(cases[1].file.as_deref(), Some("00basic/basic2.tc"));
        assert_eq!(cases[3].file.as_deref(), Some("kprobe_args.tc"));
        assert!(cases[1].log.contains("tracer missing"));
        assert_eq!(cases[2].description, "(instance)  Basic test for tracers");
        let statuses: Vec<Status> = cases.iter().map(|c| result_of(c).status).collect();
        assert_eq!(statuses, vec![Status::Pass, Status::Fail, Status::Unsupported, Status::Error]);
        assert_eq!(scenario_id(&cases[3]), "selftest.ftrace.kprobe_args");
        assert_eq!(scenario_id(&cases[0]), "selftest.ftrace.case1");
        assert_eq!(scenario_id(&cases[2]), "selftest.ftrace.case3.instance");
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("kprobe")).unwrap();
        std::fs::write(d.path().join("kprobe/kprobe_args.tc"), "").unwrap();
        let mut cases = cases;
        locate_files(&mut cases, d.path());
        assert_eq!(scenario_id(&cases[3]), "selftest.ftrace.kprobe.kprobe_args");
        assert_eq!(cases[1].file.as_deref(), Some("00basic/basic2.tc"), "a path is left as it is");
        assert!(result_of(&cases[1]).excerpt.contains("tracer missing"));
        // Lines that only look like cases are not cases.
        assert!(parse("[x] not a case\t[PASS]\n[5] no result\n[6] odd\t[MAYBE]\n").is_empty());
    }

    #[test]
    fn a_run_cut_short_makes_every_case_it_did_not_reach_an_error() {
        let d = tempfile::tempdir().unwrap();
        for f in ["00basic/basic1.tc", "00basic/basic2.tc", "kprobe/kprobe_args.tc", "kprobe/README"] {
            std::fs::create_dir_all(d.path().join(f).parent().unwrap()).unwrap();
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let all = planned_files(d.path(), &[]);
        assert_eq!(all, ["00basic/basic1.tc", "00basic/basic2.tc", "kprobe/kprobe_args.tc"]);
        assert_eq!(planned_files(d.path(), &["kprobe".into()]), ["kprobe/kprobe_args.tc"]);
        let mut cases = parse(OUTPUT);
        cases.truncate(2);
        locate_files(&mut cases, d.path());
        let ended = |timed_out, exit_code, signal| ExecOutcome { timed_out, exit_code, signal, ..Default::default() };
        // Ended on its own (0, or 1 when a case failed): nothing is made up.
        assert!(unreached(&cases, &all, &ended(false, Some(1), None)).is_empty());
        assert!(unreached(&cases, &all, &ended(false, Some(0), None)).is_empty());
        let cut = unreached(&cases, &all, &ended(true, None, Some(9)));
        let got: Vec<(&str, Status, Option<Cause>)> =
            cut.iter().map(|r| (r.scenario.as_str(), r.status, r.cause)).collect();
        assert_eq!(
            got,
            [
                ("selftest.ftrace.00basic.basic1", Status::Error, Some(Cause::Timeout)),
                ("selftest.ftrace.kprobe.kprobe_args", Status::Error, Some(Cause::Timeout)),
            ]
        );
        assert_eq!(cut[0].reason, "ftracetest timed out before it reached 00basic/basic1.tc");
        let killed = unreached(&cases, &all, &ended(false, None, Some(9)));
        assert_eq!(killed.len(), 2);
        assert!(killed.iter().all(|r| r.cause == Some(Cause::Infrastructure)), "{killed:?}");
        // Exit 1 is ftracetest's "a case failed" only when one did; with every reported case
        // passing it is its errexit, and the cases it did not reach are errors.
        let mut passing = cases.clone();
        passing.truncate(1);
        assert_eq!(unreached(&passing, &all, &ended(false, Some(1), None)).len(), 3);
        // Cut short after the last planned file: the run itself is the error (was: nothing, exit 0).
        let one = ["00basic/basic2.tc".to_string()];
        let late = unreached(&cases, &one, &ended(true, None, Some(9)));
        let got: Vec<(&str, Status, Option<Cause>)> =
            late.iter().map(|r| (r.scenario.as_str(), r.status, r.cause)).collect();
        assert_eq!(got, [("selftest.ftrace", Status::Error, Some(Cause::Timeout))]);
        assert_eq!(late[0].reason, "ftracetest timed out after its 2 case(s)");
    }
}
