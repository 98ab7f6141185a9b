//! What the scenarios share about the workloads besides `openat-loop` (`support::openat_loop`):
//! their paths in the image and their one-line summaries.
//!
//! Every workload prints one line `<name>: key=value ...` on stdout after its work; scenarios
//! compare those numbers (what the workload did, or what the kernel told it through getrusage)
//! with what the tracing path observed.

use crate::process::{self, Running};
use anyhow::{Context, Result};
use std::collections::BTreeMap;

pub const HELLO: &str = "/bin/hello";
/// `hello` as the seeds build it (`gcc -g -pg`, dynamically linked) with USDT probes: runnable
/// only in the shared host root (its libc is the host's), for the host's tools.
pub const HELLO_DYN: &str = "/bin/hello-dyn";
pub const YIELD_LOOP: &str = "/bin/yield-loop";
pub const MOUNT_TMPFS: &str = "/bin/mount-tmpfs";
pub const URANDOM_READ: &str = "/bin/urandom-read";
pub const PAUSE_CROWD: &str = "/bin/pause-crowd";
/// `direct-io N DEV`: N writes then N reads of 4 KiB with `O_DIRECT` on a block device.
pub const DIRECT_IO: &str = "/bin/direct-io";

/// The line `hello` prints per greeting.
pub const GREETING: &str = "hello, world!\n";

/// Start `hello N`, blocked on its gate until [`Running::release`].
pub fn start_hello(n: u64) -> Result<Running> {
    process::spawn(&[HELLO.to_string(), n.to_string()], true)
}

/// The greetings in `hello`'s output.
pub fn greetings(stdout: &str) -> u64 {
    stdout.lines().filter(|l| *l == GREETING.trim_end()).count() as u64
}

/// The `key=value` pairs of the line starting with `<name>:` in `text`.
pub fn summary(text: &str, name: &str) -> Result<BTreeMap<String, String>> {
    let prefix = format!("{name}:");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .with_context(|| format!("no `{prefix}` summary line in the workload's output {text:?}"))?;
    Ok(line[prefix.len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// What every block-layer scenario checks around `direct-io N` on the scratch disk: the N
/// writes and N reads the workload's summary says it made, and the completed writes and reads the
/// block layer counted (`/sys/block/<disk>/stat`, `before` and `after` as `disk::stat` reads them:
/// reads, writes). A summary that is missing or malformed is a problem, its counts 0.
pub fn direct_io_counts(
    stdout: &str,
    n: u64,
    (before, after): ((u64, u64), (u64, u64)),
    problems: &mut Vec<String>,
) -> Vec<kmatrix_proto::Count> {
    use super::verdict::count;
    let made = summary(stdout, "direct-io").and_then(|m| Ok((num(&m, "writes")?, num(&m, "reads")?)));
    let (writes, reads) = match made {
        Ok((w, r)) => (w.max(0) as u64, r.max(0) as u64),
        Err(e) => {
            problems.push(format!("{e:#}"));
            (0, 0)
        }
    };
    vec![
        count("4 KiB O_DIRECT writes the workload made", n, writes),
        count("4 KiB O_DIRECT reads the workload made", n, reads),
        count("completed writes in /sys/block/vda/stat", n, after.1.saturating_sub(before.1)),
        count("completed reads in /sys/block/vda/stat", n, after.0.saturating_sub(before.0)),
    ]
}

/// A numeric value of a summary; a missing or malformed one is an error naming it.
pub fn num(map: &BTreeMap<String, String>, key: &str) -> Result<i64> {
    let v = map.get(key).with_context(|| format!("summary has no {key}= ({map:?})"))?;
    v.parse().with_context(|| format!("summary {key}={v:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_summary_pairs() {
        let m = summary("noise\nyield-loop: calls=10 nvcsw=3 nivcsw=0 partner=91\n", "yield-loop").unwrap();
        assert_eq!(num(&m, "nvcsw").unwrap(), 3);
        assert_eq!(num(&m, "partner").unwrap(), 91);
        assert!(num(&m, "missing").is_err());
        assert!(summary("hello, world!\n", "yield-loop").is_err());
        assert_eq!(greetings("hello, world!\nhello, world!\nhello\n"), 2);
    }
}
