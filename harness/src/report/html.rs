//! A single-file HTML matrix: scenarios down, kernels across, a coloured cell per result; a cell
//! opens the result's detail (reason, evidence, counts, timings, raw excerpt). No external assets:
//! the page works from a CI artifact store or a mail attachment.

use super::html_escape as esc;
use kmatrix_proto::ScenarioResult;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The page for `results`; `run` is where they were read from (a run directory or results.jsonl),
/// which the `kmatrix rerun` command lines of failed cells name; `links` goes before each
/// artifact's path (relative to the run directory) to make its link from where the page is.
pub fn render(results: &[ScenarioResult], kernels: &[String], title: &str, run: &str, links: &str) -> String {
    let mut scenarios: Vec<&str> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut idx: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, r) in results.iter().enumerate() {
        if seen.insert(r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
        idx.insert((r.scenario.as_str(), r.kernel.as_str()), i);
    }
    // Embedded as JSON; `</` is escaped so no result text can close the script element.
    let data = serde_json::to_string(results).unwrap_or_else(|_| "[]".into()).replace("</", "<\\/");
    let reruns: Vec<Option<String>> =
        results.iter().map(|r| crate::run::rerun::failed(r).then(|| crate::run::rerun::command_line(run, r))).collect();
    let rerun_data = serde_json::to_string(&reruns).unwrap_or_else(|_| "[]".into()).replace("</", "<\\/");
    let summary = super::table::Summary::of(results).line();
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}}
table{{border-collapse:collapse}} th,td{{border:1px solid #ccc;padding:4px 8px}}
th{{background:#f4f4f4;position:sticky;top:0}} td.s{{font-family:monospace;text-align:left}}
td.c{{cursor:pointer;text-align:center;font-weight:600}}
.pass{{background:#c8f0c8}} .fail{{background:#f7b0b0}} .unsupported{{background:#fbe8a6}}
.xfail{{background:#e2c6f0}} .error{{background:#e04040;color:#fff}} .flaky{{background:#a6e3e9}}
#detail{{white-space:pre-wrap;font-family:monospace;background:#fafafa;border:1px solid #ddd;padding:1em;margin-top:1em}}
</style></head><body>
<h1>{t}</h1><p id="summary">{summary}</p>
<table id="matrix"><thead><tr><th>scenario</th>"#,
        t = esc(title)
    );
    for k in kernels {
        let _ = write!(h, "<th>{}</th>", esc(k));
    }
    h.push_str("</tr></thead><tbody>\n");
    for s in &scenarios {
        let _ = write!(h, "<tr><td class=\"s\">{}</td>", esc(s));
        for k in kernels {
            match idx.get(&(*s, k.as_str())) {
                Some(i) => {
                    let st = results[*i].status.as_str();
                    let r = &results[*i];
                    let accel = if r.accel.is_empty() { String::new() } else { format!(" [{}]", r.accel) };
                    let _ = write!(
                        h,
                        "<td class=\"c {st}\" data-i=\"{i}\" title=\"{}{}\">{st}</td>",
                        esc(&r.explanation()),
                        esc(&accel)
                    );
                }
                None => h.push_str("<td>-</td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
    let with_artifacts: Vec<&ScenarioResult> = results.iter().filter(|r| !r.artifacts.is_empty()).collect();
    if !with_artifacts.is_empty() {
        h.push_str("<h2>Traces and flame graphs</h2>\n<p>Chrome trace-event JSON opens in Perfetto or chrome://tracing; SVG flame graphs open in a browser.</p>\n<ul id=\"artifacts\">\n");
        for r in with_artifacts {
            let _ = write!(h, "<li>{} {}:", esc(&r.kernel), esc(&r.scenario));
            for a in &r.artifacts {
                let name = a.rsplit('/').next().unwrap_or(a);
                let _ = write!(h, " <a href=\"{}\">{}</a>", esc(&format!("{links}{a}")), esc(name));
            }
            h.push_str("</li>\n");
        }
        h.push_str("</ul>\n");
    }
    let failed: Vec<(&ScenarioResult, &String)> =
        results.iter().zip(&reruns).filter_map(|(r, c)| c.as_ref().map(|c| (r, c))).collect();
    if !failed.is_empty() {
        h.push_str("<h2>Run a failed cell again</h2>\n<p>The same kernel build, parameters and accelerator; add <code>--shell</code> for a shell on the scenario's kept tracefs state.</p>\n<ul id=\"reruns\">\n");
        for (r, c) in failed {
            let _ = writeln!(h, "<li>{} {}: <code>{}</code></li>", esc(&r.kernel), esc(&r.scenario), esc(c));
        }
        h.push_str("</ul>\n");
    }
    let links_js = serde_json::to_string(links).unwrap_or_else(|_| "\"\"".into()).replace("</", "<\\/");
    let _ = write!(
        h,
        r#"<div id="detail">Click a cell for its result.</div>
<script id="results" type="application/json">{data}</script>
<script id="reruns-data" type="application/json">{rerun_data}</script>
<script>
const R = JSON.parse(document.getElementById('results').textContent);
const RERUN = JSON.parse(document.getElementById('reruns-data').textContent);
const LINKS = {links_js};
function show(i) {{
    const r = R[i];
    const lines = [r.kernel + '  ' + r.scenario + '  ' + r.status, 'reason: ' + r.reason];
    if (r.verdict) lines.push('verdict: ' + r.verdict + ' (the agent reported ' + r.agent_status + ')');
    if (r.accel) lines.push('accelerator: ' + r.accel);
    if (r.build) lines.push('build: ' + r.build.spec + (r.build.release ? ' (' + r.build.release + ')' : '') + (r.build.sha256 ? ' sha256 ' + r.build.sha256 : ''));
    if (r.params && Object.keys(r.params).length) lines.push('parameters: ' + Object.entries(r.params).map(([k, v]) => k + '=' + v).join(' '));
    if (r.cause) lines.push('cause: ' + r.cause);
    if (r.previous) lines.push('first attempt: ' + r.previous.status + ': ' + r.previous.reason);
    if (r.evidence) lines.push('evidence: ' + r.evidence);
    if (r.errno != null) lines.push('errno: ' + r.errno);
    for (const c of r.counts || []) lines.push(c.what + ': expected ' + c.expected + ', observed ' + c.observed);
    const t = r.timings || {{}};
    lines.push('timings: attach ' + t.attach_ms + ' ms, run ' + t.run_ms + ' ms, detach ' + t.detach_ms + ' ms');
    if (r.detail != null) lines.push('detail: ' + JSON.stringify(r.detail, null, 2));
    if (RERUN[i]) lines.push('rerun: ' + RERUN[i]);
    for (const a of r.artifacts || []) lines.push('artifact: ' + LINKS + a);
    if (r.excerpt) lines.push('--- excerpt ---\n' + r.excerpt);
    document.getElementById('detail').textContent = lines.join('\n');
}}
for (const td of document.querySelectorAll('td.c')) td.addEventListener('click', () => show(+td.dataset.i));
// A link can open a cell: matrix.html#open=<index>.
const m = location.hash.match(/^#open=(\d+)$/);
if (m && R[+m[1]]) show(+m[1]);
</script></body></html>
"#
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmatrix_proto::Status;

    #[test]
    fn page_has_cells_and_cannot_be_broken_out_of() {
        let mut r = ScenarioResult::new("a.b.c", Status::Fail, "bad <b>").on_kernel("debian-6.1");
        r.excerpt = "</script><script>alert(1)</script>".into();
        let mut ok = ScenarioResult::new("a.b.d", Status::Pass, "").on_kernel("debian-6.1");
        ok.artifacts = vec!["artifacts/debian-6.1/a.b.d.trace.json".into()];
        let h = render(&[r, ok], &["debian-6.1".into(), "debian-6.12".into()], "run 1", "runs/run 1", "");
        assert!(h.contains("<td class=\"c fail\" data-i=\"0\" title=\"bad &lt;b&gt;\">fail</td><td>-</td>"), "{h}");
        assert!(!h.contains("</script><script>alert"));
        assert!(h.contains("1 passed, 1 failed"));
        // The failed cell, and only it, has its rerun command line, quoted for a shell.
        assert!(h.contains("<li>debian-6.1 a.b.c: <code>kmatrix rerun 'runs/run 1' --kernel debian-6.1 --scenario a.b.c</code></li>"), "{h}");
        assert!(!h.contains("--scenario a.b.d"), "{h}");
        assert!(h.contains(r#"["kmatrix rerun 'runs/run 1' --kernel debian-6.1 --scenario a.b.c",null]"#), "{h}");
        // Each artifact is linked, relative to the run directory.
        assert!(
            h.contains(
                r#"<li>debian-6.1 a.b.d: <a href="artifacts/debian-6.1/a.b.d.trace.json">a.b.d.trace.json</a></li>"#
            ),
            "{h}"
        );
    }
}
