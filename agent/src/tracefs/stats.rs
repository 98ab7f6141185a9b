//! Reading `per_cpu/cpu<N>/stats` of every CPU. The file's parser is `kmatrix_proto::tracefs::stats`
//! (pure, fuzzed); this module only finds and reads the files.

use super::Tracefs;
use anyhow::{Context, Result};
pub use kmatrix_proto::tracefs::stats::{parse, BufferStats};

/// The counters of every CPU of the global buffer, by CPU name (`cpu0`, ...).
pub fn per_cpu(tfs: &Tracefs) -> Result<Vec<(String, BufferStats)>> {
    let dir = tfs.path("per_cpu");
    let entries = std::fs::read_dir(&dir).with_context(|| format!("read_dir({}) failed", dir.display()))?;
    let mut cpus: Vec<String> =
        entries.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.starts_with("cpu")).collect();
    cpus.sort_by_key(|n| n[3..].parse::<u32>().unwrap_or(u32::MAX));
    let mut out = Vec::new();
    for cpu in cpus {
        let rel = format!("per_cpu/{cpu}/stats");
        let text = tfs.read(&rel)?;
        let stats = parse(&text).with_context(|| format!("{rel} has no overrun: line: {text:?}"))?;
        out.push((cpu, stats));
    }
    Ok(out)
}
