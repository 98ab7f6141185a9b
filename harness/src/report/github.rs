//! The GitHub Actions workflow that fans the matrix out over runners, generated from
//! `kernels/matrix.toml`: a job per kernel, each a thin caller of this repository's Action
//! (`uses: ./`, `action.yml`: set-up, caches, `kmatrix run`, summary, upload), split into nextest
//! partitions when a kernel's shard would be long, then a job that merges the shards' results and
//! renders the reports. `kmatrix ci github` prints it; a test keeps the committed copy equal to what this
//! generates, validates it against GitHub's published workflow schema and runs its jobs' steps in
//! a clean clone (`harness/tests/integration/vm_ci_workflow.rs`).
//!
//! What the runners need that they do not have: a Debian mirror (their apt points at Ubuntu's
//! archive, which has no Debian kernels: the repository variable `KMATRIX_MIRROR`, checked first),
//! `/dev/kvm` opened to the runner user (a udev rule: `scripts/open-kvm.sh`, which the Action
//! runs too), and what `scripts/setup.sh` installs (every job runs it, the kernel jobs through
//! the Action). The Rust build and the kernels are cached between runs.
//!
//! `github-workflow.schema.json` beside this file is SchemaStore's `github-workflow.json`
//! (github.com/SchemaStore/schemastore, `src/schemas/json/github-workflow.json` as of commit
//! 3b6446ad8a077bac56f4a4796c0b7fd88927fc8e, Apache-2.0), the schema editors validate workflows
//! with; vendored so the test runs offline.

use std::fmt::Write as _;

/// Seconds one trial takes when nextest runs it in a process of its own (measured: 2.2-3.0 s,
/// README), the cost a partitioned shard pays per scenario.
pub const TRIAL_SECS: u64 = 3;
/// Longest a kernel's shard should run before it is split into nextest partitions.
pub const SHARD_BUDGET_SECS: u64 = 15 * 60;

/// One kernel's share of the CI matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The kernel id the shard runs.
    pub kernel: String,
    /// 1: one job runs `kmatrix run` for the kernel; more: that many nextest partitions.
    pub partitions: u32,
}

/// A shard per kernel for a catalogue of `scenarios`: split into partitions of at most
/// [`SHARD_BUDGET_SECS`] each, counted at [`TRIAL_SECS`] a scenario.
pub fn shards(kernel_ids: &[String], scenarios: usize) -> Vec<Shard> {
    let secs = scenarios as u64 * TRIAL_SECS;
    let partitions = secs.div_ceil(SHARD_BUDGET_SECS).max(1) as u32;
    kernel_ids.iter().map(|k| Shard { kernel: k.clone(), partitions }).collect()
}

/// The advice when the mirror variable is missing.
pub const NO_MIRROR: &str = "KMATRIX_MIRROR is not set: add a repository variable KMATRIX_MIRROR \
(Settings > Secrets and variables > Actions > Variables) with the URL of a Debian mirror; GitHub's \
Ubuntu runners' apt points at Ubuntu's archive, which has no Debian kernels";

/// Steps every job starts with after the checkout: scripts/setup.sh and the Rust build, cached.
/// (Results go outside `target/`: a cached `target/` would bring back an earlier run's.)
fn setup_steps(s: &mut String) {
    s.push_str(
        r#"      - name: Set up
        run: ./scripts/setup.sh
      - name: Cache the Rust build
        uses: actions/cache@v5
        with:
          path: |
            ~/.cargo/registry/index
            ~/.cargo/registry/cache
            ~/.cargo/git/db
            target
          key: kmatrix-rust-${{ runner.os }}-${{ hashFiles('Cargo.lock') }}
          restore-keys: |
            kmatrix-rust-${{ runner.os }}-
      - name: Build
        run: cargo build --locked -p kmatrix
"#,
    );
}

/// The first steps of a job that boots guests: the checkout and the mirror, checked.
fn checkout_and_mirror(s: &mut String) {
    let _ = write!(
        s,
        r#"      - uses: actions/checkout@v5
      - name: Check the mirror
        run: |
          if [ -z "${{KMATRIX_MIRROR:-}}" ]; then
            echo "::error::{NO_MIRROR}"
            exit 1
          fi
"#
    );
}

/// The steps that get a partition's runner ready to boot guests (the kernel jobs have the
/// Action do this): the mirror, /dev/kvm (the script the Action runs), set-up, kernels.
fn guest_steps(s: &mut String) {
    checkout_and_mirror(s);
    s.push_str(
        r#"      - name: Open /dev/kvm to the runner user
        run: ./scripts/open-kvm.sh
"#,
    );
    setup_steps(s);
    s.push_str(
        r#"      - name: Cache kernels
        uses: actions/cache@v5
        with:
          path: ~/.cache/kmatrix/kernels
          key: kmatrix-kernels-${{ matrix.kernel }}-${{ hashFiles('kernels/kernels.lock') }}
"#,
    );
}

fn list(items: impl Iterator<Item = String>) -> String {
    items.map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
}

/// The workflow for `shards`.
pub fn workflow(shards: &[Shard]) -> String {
    let whole: Vec<&Shard> = shards.iter().filter(|s| s.partitions <= 1).collect();
    let split: Vec<&Shard> = shards.iter().filter(|s| s.partitions > 1).collect();
    let mut s = String::from(
        r#"# Generated by `kmatrix ci github` from kernels/matrix.toml; do not edit by hand.
# Needs the repository variable KMATRIX_MIRROR (Settings > Secrets and variables > Actions >
# Variables): the URL of a Debian mirror. GitHub's Ubuntu runners' apt points at Ubuntu's
# archive, which has no Debian kernels.
name: kmatrix
on:
  push:
  pull_request:

env:
  KMATRIX_MIRROR: ${{ vars.KMATRIX_MIRROR }}
  CARGO_TERM_COLOR: never

jobs:
"#,
    );
    let mut needs = Vec::new();
    if !whole.is_empty() {
        needs.push("kernel");
        let _ = write!(
            s,
            r#"  kernel:
    name: ${{{{ matrix.kernel }}}}
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix:
        kernel: [{}]
    steps:
"#,
            list(whole.iter().map(|w| w.kernel.clone()))
        );
        checkout_and_mirror(&mut s);
        // The Action (action.yml, this repository's own) does the rest: /dev/kvm, set-up,
        // the kernel and build caches, the run, the job summary and the upload of the run.
        s.push_str(
            r#"      - name: Matrix shard
        uses: ./
        with:
          kernels: ${{ matrix.kernel }}

"#,
        );
    }
    if !split.is_empty() {
        needs.push("kernel-partition");
        s.push_str(
            r#"  kernel-partition:
    name: ${{ matrix.kernel }} (partition ${{ matrix.partition }})
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix:
        include:
"#,
        );
        for sh in &split {
            for i in 1..=sh.partitions {
                let _ = writeln!(
                    s,
                    "          - kernel: \"{}\"\n            partition: \"{i}/{}\"",
                    sh.kernel, sh.partitions
                );
            }
        }
        s.push_str("    steps:\n");
        guest_steps(&mut s);
        s.push_str(
            r#"      - name: Install cargo-nextest
        run: cargo nextest --version || cargo install --locked cargo-nextest
      - name: Matrix shard (a nextest partition)
        env:
          KMATRIX_TEST_KERNELS: ${{ matrix.kernel }}
          KMATRIX_TEST_OUT: ${{ github.workspace }}/kmatrix-shard
        run: cargo nextest run --locked -p kmatrix-tests --test matrix --no-fail-fast --partition "count:${{ matrix.partition }}"
      - uses: actions/upload-artifact@v6
        if: always()
        with:
          name: results-${{ matrix.kernel }}-${{ strategy.job-index }}
          path: kmatrix-shard
          if-no-files-found: error

"#,
        );
    }
    let _ = write!(
        s,
        r#"  report:
    needs: [{}]
    if: always()
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
"#,
        needs.join(", ")
    );
    setup_steps(&mut s);
    s.push_str(
        r#"      - uses: actions/download-artifact@v7
        with:
          path: shards
      - name: Merge and render
        run: |
          mkdir -p merged
          find shards -name 'results*.jsonl' -print0 | sort -z | xargs -0 ./target/debug/kmatrix report merge -o merged/results.jsonl
          ./target/debug/kmatrix report merged --format junit -o merged/junit.xml
          ./target/debug/kmatrix report merged --format html -o merged/matrix.html
          ./target/debug/kmatrix report merged
      - uses: actions/upload-artifact@v6
        if: always()
        with:
          name: kmatrix-report
          path: merged
"#,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shards of the default matrix, as `kmatrix ci github` computes them.
    fn default_shards() -> Vec<Shard> {
        let ids = crate::kernel::matrix_ids().unwrap();
        let cache = crate::cache::Cache::from_env().unwrap();
        let scenarios = crate::catalogue::load(&cache).unwrap().len();
        shards(&ids, scenarios)
    }

    #[test]
    fn committed_workflow_matches_the_matrix() {
        let want = workflow(&default_shards());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.github/workflows/kmatrix.yml");
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "{path} is stale: regenerate it with `kmatrix ci github > {path}`");
    }

    #[test]
    fn kernel_jobs_call_the_action_and_kvm_is_opened_in_one_place() {
        let w = workflow(&[Shard { kernel: "a".into(), partitions: 1 }, Shard { kernel: "b".into(), partitions: 2 }]);
        let shard =
            "      - name: Matrix shard\n        uses: ./\n        with:\n          kernels: ${{ matrix.kernel }}\n";
        assert!(w.contains(shard), "{w}");
        // Only the partition job opens /dev/kvm itself, with the script the Action runs.
        assert_eq!(w.matches("./scripts/open-kvm.sh").count(), 1, "{w}");
        let read = |f: &str| std::fs::read_to_string(format!("{}/../{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        for f in ["action.yml", ".github/workflows/kmatrix.yml"] {
            assert!(!read(f).contains("99-kmatrix-kvm.rules"), "{f} writes the udev rule itself");
        }
        assert!(read("scripts/open-kvm.sh").contains("99-kmatrix-kvm.rules"));
        assert!(read("action.yml").contains("run: bash \"$GITHUB_ACTION_PATH/scripts/open-kvm.sh\""));
    }

    #[test]
    fn long_shards_are_split_into_nextest_partitions() {
        let ids = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            shards(&ids, 60),
            [Shard { kernel: "a".into(), partitions: 1 }, Shard { kernel: "b".into(), partitions: 1 }]
        );
        // 300 scenarios at 3 s: 15 min, one partition; 301: two.
        assert_eq!(shards(&ids, 300)[0].partitions, 1);
        assert_eq!(shards(&ids, 301)[1].partitions, 2);
        let w = workflow(&[Shard { kernel: "a".into(), partitions: 1 }, Shard { kernel: "b".into(), partitions: 3 }]);
        assert!(w.contains("        kernel: [\"a\"]\n"), "{w}");
        for i in 1..=3 {
            assert!(w.contains(&format!("          - kernel: \"b\"\n            partition: \"{i}/3\"\n")), "{w}");
        }
        assert!(w.contains("--partition \"count:${{ matrix.partition }}\""));
        assert!(w.contains("    needs: [kernel, kernel-partition]\n"));
        let only_split = workflow(&[Shard { kernel: "b".into(), partitions: 2 }]);
        assert!(!only_split.contains("\n  kernel:\n") && only_split.contains("    needs: [kernel-partition]\n"));
    }
}
