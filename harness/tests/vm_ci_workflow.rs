//! The generated CI workflow (`.github/workflows/kmatrix.yml`), checked two ways: against GitHub's
//! published workflow schema (SchemaStore's, vendored beside `harness/src/report/github.rs`), and
//! by running each job's `run:` steps in order in a clean clone of this repository, with what
//! GitHub would set: `CI`, `GITHUB_ACTIONS`, `GITHUB_WORKSPACE`, `RUNNER_OS`, `RUNNER_TEMP`, the
//! workflow's `env`, `${{ matrix.* }}` and the repository variable `KMATRIX_MIRROR` (this host's
//! mirror). What needs GitHub itself is stood in for: the checkout is the clone, the Rust build
//! cache is a target directory kept under this workspace's `target/`, artifacts are copied
//! between the jobs. The kernel job runs for one kernel (debian-6.1) and boots its guests: the
//! whole catalogue, as on a runner. Its shard is this repository's Action (`uses: ./`), run
//! step by step as `vm_action.rs` runs it (`common/action.rs`), its build restored from the
//! cache stand-in (this test's kmatrix, as a cache hit for the key would give it: a release
//! build takes 10+ minutes here).

mod common;

use common::action::{self, Ran};
use kmatrix_proto::Status;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator() -> jsonschema::Validator {
    let p = root().join("harness/src/report/github-workflow.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn errors(v: &jsonschema::Validator, w: &Value) -> Vec<String> {
    v.iter_errors(w).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

#[test]
fn committed_workflow_is_valid_against_githubs_schema() {
    let v = validator();
    let w = yaml(&root().join(".github/workflows/kmatrix.yml"));
    assert_eq!(errors(&v, &w), Vec::<String>::new());
    // The schema can fail: a job without `runs-on`, steps that are not a list, an unknown key.
    let mut no_runner = w.clone();
    no_runner["jobs"]["report"].as_object_mut().unwrap().remove("runs-on");
    let mut bad_steps = w.clone();
    bad_steps["jobs"]["kernel"]["steps"] = Value::String("./scripts/setup.sh".into());
    let mut unknown = w.clone();
    unknown["jobs"]["report"]["run-on"] = Value::String("ubuntu-latest".into());
    for (what, bad) in [("no runs-on", no_runner), ("steps as a string", bad_steps), ("run-on", unknown)] {
        assert!(!errors(&v, &bad).is_empty(), "{what} passed the schema");
    }
}

/// A job of the workflow run step by step, as a runner would.
struct Runner {
    clone: PathBuf,
    temp: PathBuf,
    /// `artifacts/<name>/`: what upload-artifact stored.
    artifacts: PathBuf,
    env: BTreeMap<String, String>,
    matrix: BTreeMap<String, String>,
    mirror: String,
    /// Where the Action's build cache goes (`XDG_CACHE_HOME` of its steps: not this host's).
    xdg: PathBuf,
}

impl Runner {
    /// `${{ ... }}` expressions: the contexts a `run:` or `env:` of this workflow may use.
    fn expand(&self, s: &str) -> String {
        action::expand_expressions(s, |expr| {
            let expr = expr.trim();
            match expr.split_once('.') {
                Some(("matrix", k)) => self.matrix.get(k).cloned().unwrap_or_else(|| panic!("no matrix.{k}")),
                Some(("vars", "KMATRIX_MIRROR")) => self.mirror.clone(),
                Some(("github", "workspace")) => self.clone.display().to_string(),
                Some(("strategy", "job-index")) => "0".into(),
                Some(("runner", "os")) => "Linux".into(),
                _ => panic!("the test does not know the expression {expr:?} (in {s:?})"),
            }
        })
    }

    /// Run the steps of `job`; returns the exit code of each `run:` step (and of the Action, by
    /// its last step) by name. A step that
    /// fails ends the job, except for those marked `if: always()`. `allowed` names the steps
    /// whose exit code 1 is not a failure of the workflow (the matrix's own verdict).
    fn run_job(&self, job: &Value, allowed: &[&str]) -> Vec<(String, i32)> {
        let mut codes = Vec::new();
        let mut failed = false;
        for step in job["steps"].as_array().unwrap() {
            let always = match step.get("if").and_then(Value::as_str) {
                None => false,
                Some("always()") => true,
                Some(c) => panic!("the test does not know the condition {c:?}"),
            };
            if failed && !always {
                continue;
            }
            let name = step["name"].as_str().unwrap_or("(unnamed)").to_string();
            if step.get("uses").and_then(Value::as_str) == Some("./") {
                let code = self.this_action(&step["with"]);
                eprintln!("ci: step {name:?} (the Action) exited {code}");
                if code != 0 && !(code == 1 && allowed.contains(&name.as_str())) {
                    failed = true;
                }
                codes.push((name, code));
                continue;
            }
            if let Some(action) = step.get("uses").and_then(Value::as_str) {
                self.action(action, &step["with"]);
                continue;
            }
            let script = self.expand(step["run"].as_str().unwrap());
            let mut env = self.env.clone();
            if let Some(e) = step.get("env").and_then(Value::as_object) {
                for (k, v) in e {
                    env.insert(k.clone(), self.expand(v.as_str().unwrap()));
                }
            }
            let code = self.bash(&script, &env);
            eprintln!("ci: step {name:?} exited {code}");
            if code != 0 && !(code == 1 && allowed.contains(&name.as_str())) {
                failed = true;
            }
            codes.push((name, code));
        }
        assert!(!failed, "a step failed: {codes:?}");
        codes
    }

    /// A `run:` script as GitHub runs one on Linux without a `shell:` (`bash -e {0}`), bounded.
    fn bash(&self, script: &str, env: &BTreeMap<String, String>) -> i32 {
        let file = self.temp.join("step.sh");
        std::fs::write(&file, script).unwrap();
        let st = Command::new("timeout")
            .args(["1800", "bash", "-e"])
            .arg(&file)
            .current_dir(&self.clone)
            .env_clear()
            .envs(env)
            .status()
            .unwrap();
        st.code().unwrap_or(-1)
    }

    /// `uses: ./`: this repository's Action with the step's inputs, its steps run as a runner
    /// runs them, in this job's environment; its upload goes where this job's would. Returns its
    /// exit code (its last step's).
    fn this_action(&self, with: &Value) -> i32 {
        let inputs: Vec<(String, String)> =
            with.as_object().unwrap().iter().map(|(k, v)| (k.clone(), self.expand(v.as_str().unwrap()))).collect();
        let inputs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let temp = self.temp.join("action");
        std::fs::create_dir_all(&temp).unwrap();
        let mut r = action::Runner::new(&self.clone, &temp, &inputs);
        r.env.extend(self.env.clone());
        r.env.insert("GITHUB_JOB".into(), "kernel".into());
        r.env.insert("XDG_CACHE_HOME".into(), self.xdg.display().to_string());
        r.artifacts = self.artifacts.clone();
        r.restore_build = Some(PathBuf::from(env!("CARGO_BIN_EXE_kmatrix")));
        let ran = r.run();
        match ran.last() {
            Some((_, Ran::Code(c))) => *c,
            other => panic!("the Action did not reach its last step: {other:?} ({ran:?})"),
        }
    }

    /// The actions this workflow uses, stood in for.
    fn action(&self, action: &str, with: &Value) {
        let name = action.split('@').next().unwrap();
        match name {
            // The clone is the checkout; the build cache is CARGO_TARGET_DIR; kernels are cached
            // by kmatrix itself in the cache this test shares.
            "actions/checkout" | "actions/cache" => {}
            "actions/upload-artifact" => {
                let from = self.clone.join(with["path"].as_str().unwrap());
                let to = self.artifacts.join(self.expand(with["name"].as_str().unwrap()));
                assert!(from.exists(), "upload-artifact: {} does not exist", from.display());
                copy(&from, &to);
            }
            "actions/download-artifact" => {
                let to = self.clone.join(with["path"].as_str().unwrap());
                std::fs::create_dir_all(&to).unwrap();
                for e in std::fs::read_dir(&self.artifacts).unwrap() {
                    let e = e.unwrap();
                    copy(&e.path(), &to.join(e.file_name()));
                }
            }
            other => panic!("the test does not know the action {other}"),
        }
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).lines().count()
}

#[test]
fn vm_ci_workflow_jobs_run_in_a_clean_clone() {
    let d = tempfile::tempdir().unwrap();
    let clone = d.path().join("clone");
    let head = Command::new("git").arg("-C").arg(root()).args(["rev-parse", "HEAD"]).output().unwrap();
    let head = String::from_utf8(head.stdout).unwrap().trim().to_string();
    for args in [
        vec![
            "clone".to_string(),
            "-q".into(),
            "--no-checkout".into(),
            root().display().to_string(),
            clone.display().to_string(),
        ],
        vec!["-C".into(), clone.display().to_string(), "checkout".into(), "-q".into(), head],
    ] {
        assert!(Command::new("git").args(&args).status().unwrap().success(), "git {args:?}");
    }
    let w = yaml(&clone.join(".github/workflows/kmatrix.yml"));
    let mirror = match std::env::var("KMATRIX_MIRROR") {
        Ok(m) if !m.is_empty() => m,
        _ => {
            kmatrix::kernel::Mirror::discover(None).expect("a Debian mirror in apt's configuration").base().to_string()
        }
    };
    let temp = d.path().join("runner-temp");
    std::fs::create_dir_all(&temp).unwrap();
    // A runner's environment: the basics of a login, the toolchain, and what GitHub sets.
    let mut env: BTreeMap<String, String> =
        ["PATH", "HOME", "USER", "LOGNAME", "LANG", "CARGO_HOME", "RUSTUP_HOME", "KMATRIX_CACHE"]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
    // The kernels in this host's kmatrix cache, whatever XDG_CACHE_HOME the Action is given.
    env.insert("KMATRIX_CACHE".into(), kmatrix::cache::Cache::from_env().unwrap().root().display().to_string());
    for (k, v) in [
        ("CI", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("RUNNER_OS", "Linux"),
        ("GITHUB_WORKSPACE", clone.to_str().unwrap()),
        ("RUNNER_TEMP", temp.to_str().unwrap()),
    ] {
        env.insert(k.into(), v.into());
    }
    let mut runner = Runner {
        clone: clone.clone(),
        temp,
        artifacts: d.path().join("artifacts"),
        env,
        matrix: BTreeMap::new(),
        mirror,
        xdg: d.path().join("xdg"),
    };
    for (k, v) in w["env"].as_object().unwrap() {
        let v = runner.expand(v.as_str().unwrap());
        runner.env.insert(k.clone(), v);
    }
    // The Rust build cache (actions/cache restores `target`): a target directory kept between
    // runs of this test, in kmatrix's cache (a clean clone of this repository, as CI makes,
    // would otherwise build the workflow's kmatrix from nothing, ~10 min on 2 cores).
    let target = kmatrix::cache::Cache::from_env().unwrap().dir("ci-workflow-target").unwrap();
    std::os::unix::fs::symlink(&target, clone.join("target")).unwrap();

    let kernel_job = &w["jobs"]["kernel"];
    let kernels: Vec<&str> =
        kernel_job["strategy"]["matrix"]["kernel"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert!(kernels.contains(&"debian-6.1"), "{kernels:?}");
    runner.matrix.insert("kernel".into(), "debian-6.1".into());

    // Without the repository variable the job stops at once, with the advice.
    let check = kernel_job["steps"].as_array().unwrap().iter().find(|s| s["name"] == "Check the mirror").unwrap();
    let mut no_mirror = runner.env.clone();
    no_mirror.insert("KMATRIX_MIRROR".into(), String::new());
    let out = Command::new("bash")
        .arg("-ec")
        .arg(check["run"].as_str().unwrap())
        .env_clear()
        .envs(&no_mirror)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(kmatrix::report::github::NO_MIRROR));

    let codes = runner.run_job(kernel_job, &["Matrix shard"]);
    let names: Vec<&str> = codes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Check the mirror", "Matrix shard"]);
    // The Action uploaded the run directory as `kmatrix-kernel-<kernel>-run-<time>`.
    let shard: Vec<PathBuf> = std::fs::read_dir(&runner.artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("kmatrix-kernel-debian-6.1-run-"))
        .map(|p| p.join("results.jsonl"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(shard.len(), 1, "one run directory uploaded: {shard:?}");
    let results = lines(&shard[0]);
    assert!(results >= 40, "the shard ran the catalogue: {results} results");
    // The shard passes: its exit code 1 ("a test failed") is let through by run_job only so the
    // failing cells can be named here; every cell is pass, xfail or unsupported by the
    // expectations the repository carries, and the job's own exit code is 0.
    let failing: Vec<String> = kmatrix::run::results::read(&shard[0])
        .unwrap()
        .iter()
        .filter(|r| !matches!(r.status, Status::Pass | Status::Xfail | Status::Unsupported | Status::Flaky))
        .map(|r| format!("{} {}: {} ({})", r.kernel, r.scenario, r.status.as_str(), r.reason))
        .collect();
    assert_eq!(failing, Vec::<String>::new(), "the shard's failing cells");
    assert_eq!(codes.last(), Some(&("Matrix shard".to_string(), 0)), "{codes:?}");

    let codes = runner.run_job(&w["jobs"]["report"], &[]);
    assert!(codes.iter().all(|(_, c)| *c == 0), "{codes:?}");
    let merged = clone.join("merged");
    assert_eq!(lines(&merged.join("results.jsonl")), results);
    let junit = std::fs::read_to_string(merged.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), results, "{junit}");
    assert!(std::fs::read_to_string(merged.join("matrix.html")).unwrap().contains("debian-6.1"));
    assert!(runner.artifacts.join("kmatrix-report/results.jsonl").is_file());
}
