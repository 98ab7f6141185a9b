//! The GitHub Action (`action.yml` at the repository root) run as a runner runs a composite
//! action, in a fresh clone of this repository (`GITHUB_WORKSPACE`, and the action's own
//! directory, as `uses: ./` gives): each `run:` step with `bash --noprofile --norc -eo pipefail`
//! in the workspace, its `env:` evaluated from the inputs and earlier steps' outputs, a fresh
//! `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY` and `GITHUB_ENV` file per step read back as the runner
//! reads them, `if:` conditions evaluated, a failed step skipping the rest but for `always()`.
//! The `uses:` steps need GitHub and are stood in for: `actions/cache` is skipped (the kernels are
//! in this host's kmatrix cache already; its key and path are checked to be set),
//! `actions/upload-artifact` copies its path into a directory of the test. kmatrix itself is not
//! built in the clone (10+ minutes): the Action's `kmatrix` input is this test's own binary, so
//! the Action's build step must skip. One Debian 6.1 guest boots per run (three scenarios, one of
//! them made to fail by `expect-runs`), and a second run diffs against the first (`baseline`).
//!
//! What GitHub's own checker says of the Action is in [`actionlint_passes_the_action`]: actionlint
//! reads action metadata only through a workflow that uses it, so it is given one, and the
//! Action's steps as a workflow job of their own (so shellcheck sees their scripts).

use crate::common;

use common::action::{action, Ran, Runner};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A fresh clone of this repository at HEAD (what a runner checks out).
fn clone_into(dir: &Path) -> PathBuf {
    let clone = dir.join("workspace");
    let st = Command::new("git").args(["clone", "-q"]).arg(root()).arg(&clone).status().unwrap();
    assert!(st.success(), "git clone {}", root().display());
    clone
}

/// The statuses in a results.jsonl, read apart from the Action: scenario → status.
fn statuses(results: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(results)
        .unwrap_or_else(|e| panic!("{}: {e}", results.display()))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["scenario"].as_str().unwrap().to_string(), r["status"].as_str().unwrap().to_string()))
        .collect()
}

fn count(s: &BTreeMap<String, String>, status: &str) -> String {
    s.values().filter(|v| *v == status).count().to_string()
}

const SCENARIOS: &str = "ftrace.function.openat,kprobe.tracefs.openat,kprobe.tracefs.any";

#[test]
fn vm_action_runs_as_a_runner_would() {
    let d = tempfile::tempdir().unwrap();
    let clone = clone_into(d.path());
    let bin = env!("CARGO_BIN_EXE_kmatrix");
    let started = std::time::Instant::now();
    // The probe of kprobe.tracefs.any on openat's path fires once per openat of the workload:
    // 20 of them, so expecting 19 fails the cell (and kmatrix exits 1).
    let first_temp = d.path().join("first");
    std::fs::create_dir_all(&first_temp).unwrap();
    let mut first = Runner::new(
        &clone,
        &first_temp,
        &[
            ("kernels", "debian-6.1"),
            ("scenarios", SCENARIOS),
            ("workload", "openat-loop:20"),
            ("expect-runs", "19"),
            ("args", "--param function=do_sys_openat2\n--retries 0"),
            ("kmatrix", bin),
        ],
    );
    let ran = first.run();
    eprintln!("action: first run in {:.1} s", started.elapsed().as_secs_f64());
    let expected = [
        ("Check the inputs and name the caches", Ran::Code(0)),
        ("Open /dev/kvm to the runner user", Ran::Code(0)),
        ("Cache kernels", Ran::StoodIn),
        // The kmatrix input is given: nothing to cache or build.
        ("Cache the kmatrix build", Ran::Skipped),
        ("Set up the host", Ran::Code(0)),
        ("Build kmatrix", Ran::Code(0)),
        ("Run the matrix", Ran::Code(0)),
        ("Write the job summary", Ran::Code(0)),
        ("Upload the run", Ran::StoodIn),
        ("Exit with kmatrix's code", Ran::Code(1)),
    ];
    let ran_ref: Vec<(&str, Ran)> = ran.iter().map(|(n, r)| (n.as_str(), r.clone())).collect();
    assert_eq!(ran_ref, expected);
    assert_eq!(first.outputs["build"]["bin"], bin, "the build step used the given binary");

    let out = first.action_outputs();
    let results = PathBuf::from(&out["results"]);
    assert_eq!(results.file_name().unwrap(), "results.jsonl", "{out:?}");
    assert_eq!(results.parent().unwrap(), Path::new(&out["run-dir"]));
    let s = statuses(&results);
    let want: BTreeMap<String, String> =
        [("ftrace.function.openat", "pass"), ("kprobe.tracefs.openat", "pass"), ("kprobe.tracefs.any", "fail")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    assert_eq!(s, want, "{}", results.display());
    // The counts the Action gives, against the results file it names.
    for (output, status) in [("passed", "pass"), ("failed", "fail"), ("errors", "error")] {
        assert_eq!(out[output], count(&s, status), "output {output}: {out:?}");
    }
    assert_eq!(out["exit-code"], "1", "{out:?}");
    // The job summary: the run's table, one row per scenario with its verdict.
    let summary = &first.summary;
    assert!(summary.starts_with("### kmatrix\n"), "{summary}");
    for (scenario, verdict) in
        [("ftrace.function.openat", "ok"), ("kprobe.tracefs.openat", "ok"), ("kprobe.tracefs.any", "FAIL")]
    {
        assert!(
            summary.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [scenario, verdict]),
            "no row {scenario} {verdict} in the summary:\n{summary}"
        );
    }
    assert!(summary.contains("debian-6.1"), "{summary}");
    // The artifact is the run directory.
    let uploaded = first.artifacts.join(&out["artifact"]);
    assert_eq!(std::fs::read(uploaded.join("results.jsonl")).unwrap(), std::fs::read(&results).unwrap());
    assert!(uploaded.join("summary.json").is_file());

    // Again with the expectation met, against the first run as the baseline: every cell passes,
    // and the summary names the one that changed.
    let second_temp = d.path().join("second");
    std::fs::create_dir_all(&second_temp).unwrap();
    let mut second = Runner::new(
        &clone,
        &second_temp,
        &[
            ("kernels", "debian-6.1"),
            ("scenarios", SCENARIOS),
            ("workload", "openat-loop:20"),
            ("expect-runs", "20"),
            ("args", "--param function=do_sys_openat2 --retries 0"),
            ("baseline", results.to_str().unwrap()),
            ("kmatrix", bin),
        ],
    );
    let ran = second.run();
    assert_eq!(ran.last().unwrap().1, Ran::Code(0), "{ran:?}");
    let out2 = second.action_outputs();
    let s2 = statuses(Path::new(&out2["results"]));
    assert_eq!((out2["passed"].as_str(), out2["failed"].as_str(), out2["errors"].as_str()), ("3", "0", "0"));
    assert_eq!(out2["passed"], count(&s2, "pass"));
    // The cell went from fail to pass under other parameters (expect_runs): inconclusive, the
    // parameter named, and no class of the gate.
    let changes: Vec<&str> = second.summary.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(changes.len(), 2, "{}", second.summary);
    let words: Vec<&str> = changes[0].split_whitespace().take(6).collect();
    assert_eq!(words, ["inconclusive", "debian-6.1", "kprobe.tracefs.any", "fail", "->", "pass"], "{}", second.summary);
    assert!(changes[1].contains("parameters differs: expect_runs=19 -> expect_runs=20"), "{}", second.summary);

    // The first run's inputs again, against the first run: kmatrix run exits 1 (the cell fails
    // again), but the failure is the baseline's own (still-failing), so the gate (new-regression)
    // passes and so does the job; with `fail-on: still-failing` the same run fails it.
    for (fail_on, code) in [("", 0), ("still-failing", 1)] {
        let temp = d.path().join(format!("third{fail_on}"));
        std::fs::create_dir_all(&temp).unwrap();
        let mut inputs = vec![
            ("kernels", "debian-6.1"),
            ("scenarios", SCENARIOS),
            ("workload", "openat-loop:20"),
            ("expect-runs", "19"),
            ("args", "--param function=do_sys_openat2 --retries 0"),
            ("baseline", results.to_str().unwrap()),
            ("kmatrix", bin),
        ];
        if !fail_on.is_empty() {
            inputs.push(("fail-on", fail_on));
        }
        let mut third = Runner::new(&clone, &temp, &inputs);
        let ran = third.run();
        assert_eq!(ran.last().unwrap().1, Ran::Code(code), "fail-on {fail_on:?}: {ran:?}");
        let out3 = third.action_outputs();
        assert_eq!(out3["exit-code"], code.to_string(), "{out3:?}");
        assert_eq!(out3["failed"], "1", "the run itself failed the cell: {out3:?}");
        let still: Vec<&str> = third.summary.lines().filter(|l| l.starts_with("still-failing ")).collect();
        assert_eq!(still.len(), 1, "{}", third.summary);
        assert!(still[0].contains("kprobe.tracefs.any"), "{}", third.summary);
    }
    eprintln!("action: four runs in {:.1} s", started.elapsed().as_secs_f64());
}

/// The `command` input: the user's commands, one per line, as judged cells (`kmatrix run
/// --command`) in a project of the user's (the workspace), named through `args`: one reads a
/// file of the workspace (passes only in its directory), one exits 77 (unsupported), one exits 3
/// (fail). The outputs count them as the results file has them, the summary shows their rows,
/// the Action exits 1.
#[test]
fn vm_action_runs_the_users_commands_as_cells() {
    let d = tempfile::tempdir().unwrap();
    let clone = clone_into(d.path());
    let project = d.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let token = format!("workspace-file-{}", std::process::id());
    std::fs::write(project.join("data.txt"), format!("{token}\n")).unwrap();
    let temp = d.path().join("run");
    std::fs::create_dir_all(&temp).unwrap();
    let started = std::time::Instant::now();
    let mut r = Runner::new(
        &clone,
        &temp,
        &[
            ("kernels", "debian-6.1"),
            ("command", "grep -qx workspace-file-[0-9]* data.txt\n\n  sh -c 'echo no frobnicator; exit 77'\nsh -c 'echo broken; exit 3'\n"),
            ("args", "--name data --name skip --name broken --retries 0"),
            ("kmatrix", env!("CARGO_BIN_EXE_kmatrix")),
        ],
    );
    r.in_workspace(&project);
    let ran = r.run();
    eprintln!("action: the user's commands in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(ran.last().unwrap().1, Ran::Code(1), "{ran:?}");
    let out = r.action_outputs();
    let s = statuses(Path::new(&out["results"]));
    let want: BTreeMap<String, String> = [("user.data", "pass"), ("user.skip", "unsupported"), ("user.broken", "fail")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(s, want, "{}", out["results"]);
    assert_eq!((out["passed"].as_str(), out["failed"].as_str(), out["errors"].as_str()), ("1", "1", "0"));
    assert_eq!(out["exit-code"], "1");
    for (cell, verdict) in [("user.data", "ok"), ("user.skip", "unsup"), ("user.broken", "FAIL")] {
        assert!(
            r.summary.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [cell, verdict]),
            "no row {cell} {verdict} in the summary:\n{}",
            r.summary
        );
    }
    // The command ran in the workspace: its recorded directory, and the file it read.
    let results = std::fs::read_to_string(&out["results"]).unwrap();
    let data: Value = results
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["scenario"] == "user.data")
        .unwrap();
    assert_eq!(data["params"]["cwd"], project.display().to_string());
}

/// The build step without the `kmatrix` input, used from a project of the user's (not this
/// repository): `cargo install` of the Action's own `harness` into the cached directory, once
/// per build key. A release build takes 10+ minutes here, so
/// `cargo` is a stand-in on `PATH` that records its arguments and installs this test's binary
/// where `--root` says; everything else (the key, the stamp, the step's choice) is the Action's.
#[test]
fn vm_action_builds_kmatrix_once_per_key() {
    let d = tempfile::tempdir().unwrap();
    let clone = clone_into(d.path());
    let fake = d.path().join("fake-bin");
    std::fs::create_dir_all(&fake).unwrap();
    let log = d.path().join("cargo.log");
    std::fs::write(
        fake.join("cargo"),
        "#!/bin/sh\necho \"$*\" >> \"$FAKE_CARGO_LOG\"\n\
         while [ $# -gt 0 ] && [ \"$1\" != --root ]; do shift; done\n\
         [ $# -gt 1 ] || exit 1\nmkdir -p \"$2/bin\" && cp \"$FAKE_CARGO_INSTALLS\" \"$2/bin/kmatrix\"\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(fake.join("cargo")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(fake.join("cargo"), perms).unwrap();
    // A user's project, not this repository: no kernels/ of its own (the built-in matrix).
    let project = d.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    // The build goes under XDG_CACHE_HOME; kmatrix's own cache stays this host's.
    let xdg = d.path().join("xdg");
    let kmatrix_cache = kmatrix::cache::Cache::from_env().unwrap().root().to_path_buf();
    let run = |n: usize| {
        let temp = d.path().join(format!("run{n}"));
        std::fs::create_dir_all(&temp).unwrap();
        let mut r = Runner::new(&clone, &temp, &[("kernels", "debian-6.1"), ("scenarios", "ftrace.function.openat")]);
        r.in_workspace(&project);
        let path = format!("{}:{}", fake.display(), r.env["PATH"]);
        for (k, v) in [
            ("PATH", path),
            ("XDG_CACHE_HOME", xdg.display().to_string()),
            ("KMATRIX_CACHE", kmatrix_cache.display().to_string()),
            ("FAKE_CARGO_LOG", log.display().to_string()),
            ("FAKE_CARGO_INSTALLS", env!("CARGO_BIN_EXE_kmatrix").to_string()),
        ] {
            r.env.insert(k.into(), v);
        }
        let ran = r.run();
        (ran, r)
    };
    let installs = || std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    let bin_dir = xdg.join("kmatrix-action");
    let (ran, r) = run(1);
    let step = |ran: &[(String, Ran)], name: &str| ran.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(step(&ran, "Cache the kmatrix build"), Ran::StoodIn);
    assert_eq!(step(&ran, "Build kmatrix"), Ran::Code(0));
    assert_eq!(step(&ran, "Exit with kmatrix's code"), Ran::Code(0), "{ran:?}");
    let want = format!("install --locked --force --root {} --path {}/harness", bin_dir.display(), clone.display());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), format!("{want}\n"));
    assert_eq!(r.outputs["build"]["bin"], bin_dir.join("bin/kmatrix").display().to_string());
    let key = r.outputs["keys"]["bin-key"].clone();
    assert!(key.starts_with("kmatrix-bin-Linux-") && key.len() == "kmatrix-bin-Linux-".len() + 16, "{key}");
    assert_eq!(std::fs::read_to_string(bin_dir.join("stamp")).unwrap().trim(), key);
    assert_eq!(r.action_outputs()["passed"], "1");
    // The same key: the cached build, no cargo.
    let (ran, _) = run(2);
    assert_eq!(step(&ran, "Exit with kmatrix's code"), Ran::Code(0), "{ran:?}");
    assert_eq!(installs(), 1, "built again for the same key");
    // An older build restored by the key's prefix: built again.
    std::fs::write(bin_dir.join("stamp"), "kmatrix-bin-Linux-0000000000000000\n").unwrap();
    let (ran, _) = run(3);
    assert_eq!(step(&ran, "Exit with kmatrix's code"), Ran::Code(0), "{ran:?}");
    assert_eq!(installs(), 2, "an older build was used");
}

/// What the Action refuses, and what it passes on as kmatrix's own verdict on its input.
#[test]
fn action_says_bad_input_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let clone = clone_into(d.path());
    let bin = env!("CARGO_BIN_EXE_kmatrix");
    let run = |name: &str, with: &[(&str, &str)]| {
        let temp = d.path().join(name);
        std::fs::create_dir_all(&temp).unwrap();
        let mut r = Runner::new(&clone, &temp, with);
        let ran = r.run();
        (ran, r)
    };
    // Refused before anything is installed: the first step fails, every other is skipped.
    for (what, with) in [
        ("baseline", vec![("baseline", "no-such-dir/results.jsonl")]),
        ("kmatrix", vec![("kmatrix", "/nonexistent/kmatrix")]),
    ] {
        let (ran, _) = run(what, &with);
        assert_eq!(ran[0].1, Ran::Code(2), "input {what}: {ran:?}");
        assert!(ran[1..].iter().all(|(_, r)| *r == Ran::Skipped), "input {what}: {ran:?}");
    }
    // An input is a value, never shell text: a scenario glob that is a command substitution
    // reaches kmatrix as it is, which says it matches nothing (exit 2), and nothing ran it.
    let mark = d.path().join("injected");
    let glob = format!("$(touch {})", mark.display());
    let (ran, r) = run("injection", &[("scenarios", &glob), ("kmatrix", bin)]);
    assert_eq!(ran.last().unwrap(), &("Exit with kmatrix's code".to_string(), Ran::Code(2)), "{ran:?}");
    assert!(!mark.exists(), "an input ran as a command");
    let out = r.action_outputs();
    assert_eq!(out["exit-code"], "2", "{out:?}");
    assert_eq!(out["results"], "", "no run, no results: {out:?}");
    assert!(ran.iter().any(|(n, r)| n == "Write the job summary" && *r == Ran::Skipped), "{ran:?}");
    // Nor is a command: its words are split, never expanded, and `$(touch` is no program here.
    let (ran, r) = run("command-injection", &[("command", &glob), ("kmatrix", bin)]);
    assert_eq!(ran.last().unwrap(), &("Exit with kmatrix's code".to_string(), Ran::Code(2)), "{ran:?}");
    assert!(!mark.exists(), "a command input ran as shell text");
    assert_eq!(r.action_outputs()["results"], "");
}

/// No `${{ }}` in a script: every value reaches the scripts through `env:` (GitHub splices an
/// expression in a `run:` into the script's text before bash reads it); and every input is
/// read by some step.
#[test]
fn action_scripts_take_their_values_from_the_environment() {
    let a = action(&root());
    let steps = a["runs"]["steps"].as_array().unwrap();
    for s in steps {
        if let Some(run) = s.get("run").and_then(Value::as_str) {
            assert!(!run.contains("${{"), "an expression in the script of {:?}", s["name"]);
        }
    }
    let text = serde_json::to_string(steps).unwrap();
    for name in a["inputs"].as_object().unwrap().keys() {
        assert!(text.contains(&format!("inputs.{name} ")), "input {name} is read by no step");
    }
}

/// actionlint (scripts/setup.sh installs it): a workflow that uses the Action with every input,
/// and the Action's steps as a job of their own; then broken copies, to see it can fail.
#[test]
fn actionlint_passes_the_action() {
    let venv = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"))
        .join("kmatrix-toolchain/actionlint/bin/actionlint");
    let actionlint = if venv.exists() { venv } else { PathBuf::from("actionlint") };
    let d = tempfile::tempdir().unwrap();
    let clone = clone_into(d.path());
    let a = action(&clone);
    let inputs: Vec<String> = a["inputs"].as_object().unwrap().keys().cloned().collect();
    let workflows = clone.join(".github/workflows");
    let lint = |file: &str, text: &str| {
        std::fs::write(workflows.join(file), text).unwrap();
        let out = Command::new(&actionlint)
            .args(["-oneline", "-no-color"])
            .arg(workflows.join(file))
            .current_dir(&clone)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup.sh", actionlint.display()));
        std::fs::remove_file(workflows.join(file)).unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    // The caller's side: `uses: ./` with every input.
    let mut uses = String::from(
        "on: push\njobs:\n  kmatrix:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v5\n      - id: k\n        uses: ./\n        with:\n",
    );
    for i in &inputs {
        uses.push_str(&format!("          {i}: x\n"));
    }
    uses.push_str("      - run: echo \"$R\"\n        env:\n          R: ${{ steps.k.outputs.results }}\n");
    assert_eq!(lint("uses.yml", &uses), (Some(0), String::new()));
    let (code, text) = lint("uses.yml", &uses.replace("          kernels: x\n", "          kernelz: x\n"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("input \"kernelz\" is not defined"), "{text}");

    // The Action's steps as a job (inputs as a reusable workflow's): expressions, the actions'
    // inputs, and shellcheck on every script.
    let mut job: serde_json::Map<String, Value> = serde_json::Map::new();
    job.insert("runs-on".into(), "ubuntu-latest".into());
    job.insert("steps".into(), a["runs"]["steps"].clone());
    let call_inputs: serde_json::Map<String, Value> =
        inputs.iter().map(|i| (i.clone(), serde_json::json!({"type": "string", "required": false}))).collect();
    let wf = serde_json::json!({
        "on": {"workflow_call": {"inputs": call_inputs}},
        "jobs": {"action": Value::Object(job)},
    });
    let steps_yml = serde_yaml::to_string(&wf).unwrap();
    let (code, text) = lint("steps.yml", &steps_yml);
    assert_eq!((code, text.as_str()), (Some(0), ""), "{steps_yml}");
    let broken = steps_yml.replace("steps.run.outputs.run-dir", "steps.runn.outputs.run-dir");
    assert_ne!(broken, steps_yml);
    let (code, text) = lint("steps.yml", &broken);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("runn"), "{text}");
    // shellcheck is there and reads the scripts: an unquoted expansion is reported.
    let mut unquoted = wf.clone();
    let run = &mut unquoted["jobs"]["action"]["steps"][0]["run"];
    *run = Value::String(format!("{}echo $INPUT_KERNELS\n", run.as_str().unwrap()));
    let (code, text) = lint("steps.yml", &serde_yaml::to_string(&unquoted).unwrap());
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("SC2086"), "{text}");
}
