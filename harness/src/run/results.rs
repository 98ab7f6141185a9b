//! Results on disk: one JSON object a line in `<run dir>/results.jsonl`, appended and flushed as
//! each result arrives, so a run killed half way keeps everything it produced. Reading skips a
//! torn last line (the run died mid-write) but reports any other malformed line by number.

use kmatrix_proto::ScenarioResult;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Why a results file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// Creating, appending to or syncing the file failed.
    #[error("cannot write results to {path}")]
    Write {
        /// The results file.
        path: PathBuf,
        /// The I/O error (or the serializer's, wrapped as one).
        #[source]
        source: std::io::Error,
    },
    /// Opening or reading the file failed.
    #[error("cannot read results from {path}")]
    Read {
        /// The results file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line other than a torn last one is not a `ScenarioResult`.
    #[error("{path}:{line}: not a result ({detail})")]
    Malformed {
        /// The results file.
        path: PathBuf,
        /// The bad line's number, from 1.
        line: usize,
        /// The JSON parser's error.
        detail: String,
    },
}

/// Appends results to a JSON-lines file.
pub struct ResultsWriter {
    file: File,
    path: PathBuf,
}

impl ResultsWriter {
    /// Open `path` for appending (created if missing; existing results are kept).
    pub fn open(path: &Path) -> Result<Self, ResultsError> {
        let err = |source| ResultsError::Write { path: path.to_path_buf(), source };
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(err)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(err)?;
        Ok(ResultsWriter { file, path: path.to_path_buf() })
    }

    /// The file this writer appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one result as one line and flush it to the file.
    pub fn append(&mut self, r: &ScenarioResult) -> Result<(), ResultsError> {
        let err = |source| ResultsError::Write { path: self.path.clone(), source };
        let mut line = serde_json::to_string(r).map_err(|e| err(std::io::Error::other(e)))?;
        line.push('\n');
        // One write call per line: concurrent appenders (O_APPEND) never interleave within it.
        self.file.write_all(line.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)
    }
}

/// The name of a run directory's results file.
pub const FILE_NAME: &str = "results.jsonl";

/// A new run directory's path under `out`: `<out>/run-<milliseconds since the epoch>`, the one
/// rule every command that writes results (run, rerun, selftest) names its directory by.
/// Nothing is created.
pub fn run_dir(out: &Path) -> PathBuf {
    stamped_dir(out, "run")
}

/// `<out>/<prefix>-<milliseconds since the epoch>`: [`run_dir`]'s rule for the other commands'
/// output directories (`exec-…`, `bisect-…`). Nothing is created.
pub fn stamped_dir(out: &Path, prefix: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    out.join(format!("{prefix}-{stamp}"))
}

/// The results file a path names: a run directory's `results.jsonl`, or the path itself when it
/// is not a directory (a results file given directly).
pub fn file_in(run: &Path) -> PathBuf {
    if run.is_dir() {
        run.join(FILE_NAME)
    } else {
        run.to_path_buf()
    }
}

/// [`read`] the results of a run directory or results file ([`file_in`]).
pub fn read_run(run: &Path) -> Result<Vec<ScenarioResult>, ResultsError> {
    read(&file_in(run))
}

/// The kernels of `results`, each once, in the order they first appear: a report's columns.
pub fn kernels(results: &[ScenarioResult]) -> Vec<String> {
    let mut ks: Vec<String> = Vec::new();
    for r in results {
        if !ks.contains(&r.kernel) {
            ks.push(r.kernel.clone());
        }
    }
    ks
}

/// Read a results file. A torn final line (no newline, unparsable) is dropped; any other bad line
/// is an error naming its number.
pub fn read(path: &Path) -> Result<Vec<ScenarioResult>, ResultsError> {
    let f = File::open(path).map_err(|source| ResultsError::Read { path: path.to_path_buf(), source })?;
    read_from(BufReader::new(f), path)
}

/// [`read`] from `reader`; `path` names it in errors.
pub fn read_from(mut reader: impl BufRead, path: &Path) -> Result<Vec<ScenarioResult>, ResultsError> {
    let rerr = |source| ResultsError::Read { path: path.to_path_buf(), source };
    let mut lines: Vec<(usize, String, bool)> = Vec::new();
    let mut n = 0;
    loop {
        let mut buf = String::new();
        let got = reader.read_line(&mut buf).map_err(rerr)?;
        if got == 0 {
            break;
        }
        n += 1;
        let complete = buf.ends_with('\n');
        lines.push((n, buf.trim_end().to_string(), complete));
    }
    let mut out = Vec::new();
    let last = lines.len();
    for (i, (no, text, complete)) in lines.into_iter().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ScenarioResult>(&text) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == last && !complete => break,
            Err(e) => {
                return Err(ResultsError::Malformed { path: path.to_path_buf(), line: no, detail: e.to_string() })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmatrix_proto::Status;

    #[test]
    fn appends_survive_reopen_and_torn_tail_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/results.jsonl");
        let mut w = ResultsWriter::open(&p).unwrap();
        w.append(&ScenarioResult::new("a.b.c", Status::Pass, "")).unwrap();
        drop(w);
        let mut w = ResultsWriter::open(&p).unwrap();
        w.append(&ScenarioResult::new("a.b.d", Status::Fail, "count 9 != 10")).unwrap();
        // The run dies mid-line.
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"{\"kernel\":\"x\",\"sce").unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].status, Status::Fail);
    }

    #[test]
    fn a_run_is_named_by_its_directory_or_its_file() {
        let d = tempfile::tempdir().unwrap();
        let dir = run_dir(d.path());
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(name.strip_prefix("run-").is_some_and(|t| t.parse::<u128>().is_ok()), "{name}");
        assert_eq!(file_in(d.path()), d.path().join("results.jsonl"));
        let file = d.path().join("shard.jsonl");
        assert_eq!(file_in(&file), file);
    }

    #[test]
    fn kernels_are_listed_once_in_first_seen_order() {
        let r = |k: &str| ScenarioResult { kernel: k.into(), ..ScenarioResult::new("a.b.c", Status::Pass, "") };
        assert_eq!(kernels(&[r("b"), r("a"), r("b")]), ["b", "a"]);
    }

    #[test]
    fn malformed_middle_line_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("results.jsonl");
        std::fs::write(&p, "garbage\n{}\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("results.jsonl:1"), "{e}");
    }
}
