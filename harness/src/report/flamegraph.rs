//! Sampled stacks a result carries, as a flame graph: the folded ("collapsed") stacks the
//! sampling scenarios put in `detail.collapsed` (`main;hello_greet;hello_add 12`, as
//! stackcollapse-perf.pl writes them), and their SVG drawn by the `inferno` crate.
//!
//! Not for ftrace output (`chrome_trace.rs`).

use kmatrix_proto::ScenarioResult;

/// The folded stack lines of `r`, `None` when it carries none. Lines that are not
/// `frames count` are left out: the agent checked them, this is a picture.
pub fn collapsed(r: &ScenarioResult) -> Option<Vec<String>> {
    let lines: Vec<String> = r
        .detail
        .get("collapsed")?
        .as_array()?
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.rsplit_once(' ').is_some_and(|(stack, n)| !stack.trim().is_empty() && n.parse::<u64>().is_ok()))
        .map(str::to_string)
        .collect();
    (!lines.is_empty()).then_some(lines)
}

/// The flame graph SVG of folded `lines`, titled `title`.
pub fn svg(lines: &[String], title: &str, subtitle: &str) -> std::io::Result<Vec<u8>> {
    let mut opt = inferno::flamegraph::Options::default();
    opt.title = title.to_string();
    opt.subtitle = Some(subtitle.to_string());
    // The same stacks give the same picture (colours from the names, not random).
    opt.hash = true;
    opt.deterministic = true;
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(&mut opt, lines.iter().map(String::as_str), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmatrix_proto::Status;

    #[test]
    fn folded_stacks_become_an_svg_naming_every_frame() {
        let mut r = ScenarioResult::new("tool.perf.flamegraph", Status::Pass, "");
        r.detail = serde_json::json!({
            "collapsed": ["hello;_start;__libc_start_main;main;hello_greet 40", "hello;_start;__libc_start_main;main;hello_add 2", "not folded"],
        });
        let lines = collapsed(&r).unwrap();
        assert_eq!(lines.len(), 2);
        let svg = String::from_utf8(svg(&lines, "debian-6.1 tool.perf.flamegraph", "42 samples").unwrap()).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..100]);
        for f in ["hello_greet (40 samples", "hello_add (2 samples", "main (42 samples"] {
            assert!(svg.contains(f), "{f} not in the SVG");
        }
        r.detail = serde_json::json!({"samples": 3});
        assert!(collapsed(&r).is_none());
    }
}
