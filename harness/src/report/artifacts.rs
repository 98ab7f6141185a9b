//! Per-cell artifacts a person can open, written next to `results.jsonl` as results arrive:
//! `artifacts/<kernel>/<scenario>.trace.json` (Chrome trace-event JSON of captured ftrace data),
//! `<scenario>.svg` (flame graph of sampled stacks) and `<scenario>.folded` (the collapsed
//! stacks it was drawn from), and `<scenario>.capture.txt.gz`, the scenario's whole raw capture
//! when the result carries one (the results file then leaves it out: [`write()`] moves it here).
//! Made on the host from what the result carries, so an older results file gets them too
//! (`kmatrix trace`, which reads a capture back from its file). Each file is bounded by
//! [`MAX_BYTES`].
//!
//! Not here: the conversions themselves (`chrome_trace.rs`, `flamegraph.rs`).

use super::{chrome_trace, flamegraph};
use crate::cache::sanitize;
use kmatrix_proto::ScenarioResult;
use std::path::{Path, PathBuf};

/// Largest artifact file kept; a larger rendering is left out (the result says so).
pub const MAX_BYTES: usize = 2 << 20;

/// Why a result's artifacts could not be written; the result itself is kept either way.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Creating the artifacts folder or writing a file failed.
    #[error("cannot write artifact {path}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The flame graph renderer refused the result's stacks.
    #[error("cannot draw the flame graph of {kernel} {scenario}")]
    Flamegraph {
        /// The result's kernel label.
        kernel: String,
        /// The result's scenario id.
        scenario: String,
        /// The renderer's error.
        #[source]
        source: std::io::Error,
    },
}

/// Where `kernel`'s artifacts go in a run directory.
pub fn dir(run_dir: &Path, kernel: &str) -> PathBuf {
    run_dir.join("artifacts").join(sanitize(kernel))
}

/// The file a result's capture is kept in, beside its other artifacts.
fn capture_file(r: &ScenarioResult) -> String {
    format!("{}.capture.txt.gz", sanitize(&r.scenario))
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(text.as_bytes());
    gz.finish().unwrap_or_default()
}

/// The capture kept for `r` under `run_dir` by an earlier [`write()`], if any.
fn read_capture(run_dir: &Path, r: &ScenarioResult) -> Option<kmatrix_proto::Capture> {
    use std::io::Read;
    let p = dir(run_dir, &r.kernel).join(capture_file(r));
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).ok()?).read_to_string(&mut text).ok()?;
    let bytes = text.len() as u64;
    Some(kmatrix_proto::Capture { what: "the capture kept beside the results".into(), text, bytes })
}

/// The artifacts of `r` as (file name, bytes); empty when it carries no trace data.
pub fn render(r: &ScenarioResult) -> Result<Vec<(String, Vec<u8>)>, ArtifactError> {
    let base = sanitize(&r.scenario);
    let mut out = Vec::new();
    if let Some(c) = &r.capture {
        out.push((capture_file(r), gzip(&c.text)));
    }
    // A user's command's output is kept as it is; it is no trace to lay out.
    if let Some(t) = chrome_trace::from_result(r).filter(|_| !crate::user_command::is_user(&r.scenario)) {
        out.push((format!("{base}.trace.json"), serde_json::to_vec(&t).unwrap_or_default()));
    }
    if let Some(lines) = flamegraph::collapsed(r) {
        let samples: u64 = lines.iter().filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok()).sum();
        let title = format!("{} {}", r.kernel, r.scenario);
        let sub = format!(
            "{samples} samples, {} stacks{}",
            lines.len(),
            r.build.as_ref().map(|b| format!(", {}", b.spec)).unwrap_or_default()
        );
        let svg = flamegraph::svg(&lines, &title, &sub).map_err(|source| ArtifactError::Flamegraph {
            kernel: r.kernel.clone(),
            scenario: r.scenario.clone(),
            source,
        })?;
        out.push((format!("{base}.svg"), svg));
        out.push((format!("{base}.folded"), (lines.join("\n") + "\n").into_bytes()));
    }
    out.retain(|(_, b)| b.len() <= MAX_BYTES);
    Ok(out)
}

/// Write `r`'s artifacts under `run_dir` and record their paths, relative to it, in
/// `r.artifacts`; its capture, once in its own file, leaves the result (so the results file stays
/// small). A result without a capture whose capture an earlier write kept is rendered from that.
pub fn write(run_dir: &Path, r: &mut ScenarioResult) -> Result<(), ArtifactError> {
    let kept = if r.capture.is_none() { read_capture(run_dir, r) } else { None };
    let files = match kept {
        Some(c) => render(&ScenarioResult { capture: Some(c), ..r.clone() })?,
        None => render(r)?,
    };
    r.artifacts = write_files(run_dir, r, files)?;
    r.capture = None;
    // A retry's first attempt keeps its verdict and counts; its capture is not kept.
    if let Some(first) = r.previous.as_mut() {
        first.capture = None;
    }
    Ok(())
}

fn write_files(
    run_dir: &Path,
    r: &ScenarioResult,
    files: Vec<(String, Vec<u8>)>,
) -> Result<Vec<String>, ArtifactError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let d = dir(run_dir, &r.kernel);
    std::fs::create_dir_all(&d).map_err(|source| ArtifactError::Write { path: d.clone(), source })?;
    let mut rel = Vec::new();
    for (name, bytes) in files {
        let p = d.join(&name);
        crate::cache::write_atomic(&p, &bytes)
            .map_err(|e| ArtifactError::Write { path: p.clone(), source: std::io::Error::other(e) })?;
        rel.push(format!("artifacts/{}/{name}", sanitize(&r.kernel)));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmatrix_proto::Status;

    #[test]
    fn writes_a_trace_and_a_flame_graph_next_to_the_results() {
        let d = tempfile::tempdir().unwrap();
        let mut r = ScenarioResult::new("tool.perf.flamegraph", Status::Pass, "").on_kernel("debian:6.12.57-1~bpo12+1");
        r.detail = serde_json::json!({"collapsed": ["hello;main;hello_greet 3"]});
        r.excerpt = " hello-90 [000] ..... 1.5: sched_switch: prev_comm=hello".into();
        write(d.path(), &mut r).unwrap();
        let rel = r.artifacts.clone();
        assert_eq!(
            rel,
            [
                "artifacts/debian_6.12.57-1_bpo12_1/tool.perf.flamegraph.trace.json",
                "artifacts/debian_6.12.57-1_bpo12_1/tool.perf.flamegraph.svg",
                "artifacts/debian_6.12.57-1_bpo12_1/tool.perf.flamegraph.folded",
            ]
        );
        for p in &rel {
            assert!(d.path().join(p).is_file(), "{p}");
        }
        assert_eq!(std::fs::read_to_string(d.path().join(&rel[2])).unwrap(), "hello;main;hello_greet 3\n");
        let mut plain = ScenarioResult::new("ftrace.tracers.available", Status::Pass, "");
        write(d.path(), &mut plain).unwrap();
        assert!(plain.artifacts.is_empty());
    }
}
