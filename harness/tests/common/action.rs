//! A runner running this repository's composite Action (`action.yml`), as GitHub runs one: each
//! `run:` step with `bash --noprofile --norc -eo pipefail` in the workspace, its `env:` evaluated
//! from the inputs and earlier steps' outputs, a fresh `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY` and
//! `GITHUB_ENV` file per step read back as the runner reads them, `if:` conditions evaluated, a
//! failed step skipping the rest but for `always()`. The `uses:` steps need GitHub and are stood
//! in for: `actions/cache` checks its key and path are set, and restores the kmatrix build when
//! the test gives one ([`Runner::restore_build`], as a cache hit of this key would);
//! `actions/upload-artifact` copies its path into [`Runner::artifacts`]. Used by `vm_action.rs`
//! (the Action itself) and `vm_ci_workflow.rs` (the generated workflow's `uses: ./`).

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `action.yml` of `clone`, parsed.
pub fn action(clone: &Path) -> Value {
    let p = clone.join("action.yml");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What became of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Ran {
    /// A `run:` step and its exit code.
    Code(i32),
    /// A `uses:` step, stood in for.
    StoodIn,
    /// Its `if:` was false.
    Skipped,
}

/// A runner running the Action once.
pub struct Runner {
    /// The Action's directory (`GITHUB_ACTION_PATH`): the clone.
    pub clone: PathBuf,
    /// `GITHUB_WORKSPACE`, where the steps run: the clone too, as `uses: ./` has it, unless
    /// [`Runner::in_workspace`] moves it to a project of the user's.
    pub workspace: PathBuf,
    pub temp: PathBuf,
    /// `artifacts/<name>/`: what upload-artifact stored.
    pub artifacts: PathBuf,
    pub env: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, String>,
    /// Outputs of the steps so far, by step id.
    pub outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// The job summary: every step's `GITHUB_STEP_SUMMARY`, in order.
    pub summary: String,
    /// A step has failed: only `always()` steps run from now on.
    pub failed: bool,
    /// `run:` steps so far (their files are numbered).
    pub steps_run: usize,
    /// A kmatrix binary `actions/cache` restores as the Action's build for the key it is given
    /// (what a cache hit of an earlier job's `cargo install` at this ref gives), so the build
    /// step uses it instead of building.
    pub restore_build: Option<PathBuf>,
}

impl Runner {
    pub fn new(clone: &Path, temp: &Path, with: &[(&str, &str)]) -> Runner {
        let a = action(clone);
        // Inputs as GitHub gives them: every declared one, the caller's value or its default; a
        // name the Action does not declare is the caller's mistake (GitHub warns), so a test
        // using one fails here.
        let declared = a["inputs"].as_object().unwrap();
        for (k, _) in with {
            assert!(declared.contains_key(*k), "input {k} is not declared in action.yml");
        }
        let inputs = declared
            .iter()
            .map(|(k, v)| {
                let given = with.iter().find(|(n, _)| n == k).map(|(_, v)| v.to_string());
                (k.clone(), given.unwrap_or_else(|| v["default"].as_str().unwrap_or("").to_string()))
            })
            .collect();
        let runner_temp = temp.join("runner-temp");
        std::fs::create_dir_all(&runner_temp).unwrap();
        // A runner's environment: the basics of a login, the toolchain, this host's kmatrix cache
        // and mirror, and what GitHub sets for a composite action's steps.
        let mut env: BTreeMap<String, String> =
            ["PATH", "HOME", "USER", "LOGNAME", "LANG", "CARGO_HOME", "RUSTUP_HOME", "KMATRIX_CACHE", "KMATRIX_MIRROR"]
                .into_iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
                .collect();
        for (k, v) in [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_JOB", "matrix"),
            ("RUNNER_OS", "Linux"),
            ("GITHUB_WORKSPACE", clone.to_str().unwrap()),
            ("GITHUB_ACTION_PATH", clone.to_str().unwrap()),
            ("RUNNER_TEMP", runner_temp.to_str().unwrap()),
        ] {
            env.insert(k.into(), v.into());
        }
        Runner {
            clone: clone.to_path_buf(),
            workspace: clone.to_path_buf(),
            temp: temp.to_path_buf(),
            artifacts: temp.join("artifacts"),
            env,
            inputs,
            outputs: BTreeMap::new(),
            summary: String::new(),
            failed: false,
            steps_run: 0,
            restore_build: None,
        }
    }

    /// Run in `dir`, a user's project, as `uses: owner/kmatrix@ref` from another repository does.
    pub fn in_workspace(&mut self, dir: &Path) {
        self.workspace = dir.to_path_buf();
        self.env.insert("GITHUB_WORKSPACE".into(), dir.display().to_string());
    }

    /// The value of an expression's operand: the contexts the Action may use.
    fn value(&self, expr: &str) -> String {
        let parts: Vec<&str> = expr.trim().split('.').collect();
        match parts.as_slice() {
            ["inputs", name] => self.inputs.get(*name).cloned().unwrap_or_else(|| panic!("no input {name}")),
            // An output a step did not set is empty, as on GitHub.
            ["steps", id, "outputs", name] => {
                self.outputs.get(*id).and_then(|o| o.get(*name)).cloned().unwrap_or_default()
            }
            ["runner", "os"] => "Linux".into(),
            _ => panic!("the test does not know the expression {expr:?}"),
        }
    }

    /// `${{ ... }}` expressions in a string.
    fn expand(&self, s: &str) -> String {
        expand_expressions(s, |expr| self.value(expr))
    }

    /// An `if:` condition: `always()` or comparisons with `''`, joined by `&&`.
    fn condition(&self, cond: Option<&str>) -> bool {
        let Some(cond) = cond else { return !self.failed };
        let mut always = false;
        let mut holds = true;
        for term in cond.split("&&").map(str::trim) {
            if term == "always()" {
                always = true;
            } else if let Some(lhs) = term.strip_suffix("== ''") {
                holds &= self.value(lhs).is_empty();
            } else if let Some(lhs) = term.strip_suffix("!= ''") {
                holds &= !self.value(lhs).is_empty();
            } else {
                panic!("the test does not know the condition {term:?}");
            }
        }
        holds && (always || !self.failed)
    }

    /// Every step of the Action, in order; what became of each, by name.
    pub fn run(&mut self) -> Vec<(String, Ran)> {
        let a = action(&self.clone);
        assert_eq!(a["runs"]["using"], "composite");
        let mut ran = Vec::new();
        for step in a["runs"]["steps"].as_array().unwrap() {
            let name = step["name"].as_str().expect("every step has a name").to_string();
            let r = if !self.condition(step.get("if").and_then(Value::as_str)) {
                Ran::Skipped
            } else if let Some(uses) = step.get("uses").and_then(Value::as_str) {
                self.stand_in(uses, &step["with"]);
                Ran::StoodIn
            } else {
                let t = std::time::Instant::now();
                let code = self.run_step(step);
                eprintln!("action: step {name:?} exited {code} in {:.2} s", t.elapsed().as_secs_f64());
                if code != 0 {
                    self.failed = true;
                }
                Ran::Code(code)
            };
            ran.push((name, r));
        }
        ran
    }

    /// A `run:` step as the runner runs one with `shell: bash`.
    fn run_step(&mut self, step: &Value) -> i32 {
        assert_eq!(step["shell"], "bash", "{step:?}");
        self.steps_run += 1;
        let n = self.steps_run;
        let files = |what: &str| self.temp.join(format!("{what}-{n}"));
        let (script, output, summary, genv) = (files("step.sh"), files("output"), files("summary"), files("env"));
        std::fs::write(&script, step["run"].as_str().unwrap()).unwrap();
        for f in [&output, &summary, &genv] {
            std::fs::write(f, "").unwrap();
        }
        let mut env = self.env.clone();
        if let Some(e) = step.get("env").and_then(Value::as_object) {
            for (k, v) in e {
                env.insert(k.clone(), self.expand(v.as_str().unwrap()));
            }
        }
        for (k, f) in [("GITHUB_OUTPUT", &output), ("GITHUB_STEP_SUMMARY", &summary), ("GITHUB_ENV", &genv)] {
            env.insert(k.into(), f.display().to_string());
        }
        let st = Command::new("timeout")
            .args(["1800", "bash", "--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script)
            .current_dir(&self.workspace)
            .env_clear()
            .envs(&env)
            .status()
            .unwrap();
        let id = step.get("id").and_then(Value::as_str).map_or_else(|| format!("#{n}"), str::to_string);
        self.outputs.insert(id, key_values(&std::fs::read_to_string(&output).unwrap()));
        self.env.extend(key_values(&std::fs::read_to_string(&genv).unwrap()));
        self.summary.push_str(&std::fs::read_to_string(&summary).unwrap());
        st.code().unwrap_or(-1)
    }

    /// The actions the Action uses, stood in for.
    fn stand_in(&self, uses: &str, with: &Value) {
        let with: BTreeMap<String, String> = with
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), self.expand(v.as_str().unwrap()).trim().to_string()))
            .collect();
        match uses.split('@').next().unwrap() {
            // The kernels are in this host's cache already, and kmatrix is this test's binary.
            "actions/cache" => {
                for k in ["path", "key", "restore-keys"] {
                    assert!(with.get(k).is_some_and(|v| !v.is_empty()), "actions/cache without {k}: {with:?}");
                }
                let bin_dir = self.value("steps.keys.outputs.bin-dir");
                if let (Some(bin), true) = (&self.restore_build, with["path"].lines().any(|l| l.trim() == bin_dir)) {
                    let dir = Path::new(&bin_dir);
                    std::fs::create_dir_all(dir.join("bin")).unwrap();
                    std::fs::copy(bin, dir.join("bin/kmatrix")).unwrap();
                    std::fs::write(dir.join("stamp"), format!("{}\n", with["key"])).unwrap();
                }
            }
            "actions/upload-artifact" => {
                let (name, path) = (&with["name"], Path::new(&with["path"]));
                assert!(!name.is_empty() && path.is_dir(), "upload-artifact: {with:?}");
                let to = self.artifacts.join(name);
                std::fs::create_dir_all(&self.artifacts).unwrap();
                let st = Command::new("cp").arg("-a").arg(path).arg(&to).status().unwrap();
                assert!(st.success(), "cp -a {} {}", path.display(), to.display());
            }
            other => panic!("the test does not know the action {other}"),
        }
    }

    /// The Action's outputs, as the caller's `steps.<id>.outputs` sees them.
    pub fn action_outputs(&self) -> BTreeMap<String, String> {
        let a = action(&self.clone);
        a["outputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), self.expand(v["value"].as_str().unwrap())))
            .collect()
    }
}

/// A `GITHUB_OUTPUT`/`GITHUB_ENV` file: `name=value` lines and `name<<DELIMITER` blocks.
fn key_values(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some((k, delim)) = l.split_once("<<") {
            let v: Vec<&str> = lines.by_ref().take_while(|x| *x != delim).collect();
            m.insert(k.to_string(), v.join("\n"));
        } else if let Some((k, v)) = l.split_once('=') {
            m.insert(k.to_string(), v.to_string());
        } else if !l.is_empty() {
            panic!("not an output line: {l:?}");
        }
    }
    m
}

/// `s` with each `${{ expr }}` replaced by `value(expr)` (the expression as written, untrimmed):
/// the one expander of this file's Action runner and of the workflow runner in
/// `vm_ci_workflow`, each with its own contexts.
pub fn expand_expressions(s: &str, mut value: impl FnMut(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${{") {
        out.push_str(&rest[..i]);
        let j = rest[i..].find("}}").map(|j| i + j).unwrap_or_else(|| panic!("unclosed expression in {s}"));
        out.push_str(&value(&rest[i + 3..j]));
        rest = &rest[j + 2..];
    }
    out.push_str(rest);
    out
}
