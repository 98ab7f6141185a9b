//! A single-file HTML matrix: scenarios down, kernels across, a coloured cell per result; a cell
//! opens the result's detail (reason, evidence, counts, timings, raw excerpt). No external assets:
//! the page works from a CI artifact store or a mail attachment.

use kmatrix_proto::ScenarioResult;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn render(results: &[ScenarioResult], kernels: &[String], title: &str) -> String {
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
.xfail{{background:#e2c6f0}} .error{{background:#e04040;color:#fff}}
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
    let _ = write!(
        h,
        r#"</tbody></table>
<div id="detail">Click a cell for its result.</div>
<script id="results" type="application/json">{data}</script>
<script>
const R = JSON.parse(document.getElementById('results').textContent);
function show(i) {{
    const r = R[i];
    const lines = [r.kernel + '  ' + r.scenario + '  ' + r.status, 'reason: ' + r.reason];
    if (r.verdict) lines.push('verdict: ' + r.verdict + ' (the agent reported ' + r.agent_status + ')');
    if (r.accel) lines.push('accelerator: ' + r.accel);
    if (r.build) lines.push('build: ' + r.build.spec + (r.build.release ? ' (' + r.build.release + ')' : '') + (r.build.sha256 ? ' sha256 ' + r.build.sha256 : ''));
    if (r.params && Object.keys(r.params).length) lines.push('parameters: ' + Object.entries(r.params).map(([k, v]) => k + '=' + v).join(' '));
    if (r.evidence) lines.push('evidence: ' + r.evidence);
    if (r.errno != null) lines.push('errno: ' + r.errno);
    for (const c of r.counts || []) lines.push(c.what + ': expected ' + c.expected + ', observed ' + c.observed);
    const t = r.timings || {{}};
    lines.push('timings: attach ' + t.attach_ms + ' ms, run ' + t.run_ms + ' ms, detach ' + t.detach_ms + ' ms');
    if (r.detail != null) lines.push('detail: ' + JSON.stringify(r.detail, null, 2));
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
        let mut r = ScenarioResult::new("a.b.c", Status::Fail, "bad <b>");
        r.kernel = "debian-6.1".into();
        r.excerpt = "</script><script>alert(1)</script>".into();
        let h = render(&[r], &["debian-6.1".into(), "debian-6.12".into()], "run 1");
        assert!(h.contains("<td class=\"c fail\" data-i=\"0\" title=\"bad &lt;b&gt;\">fail</td><td>-</td>"), "{h}");
        assert!(!h.contains("</script><script>alert"));
        assert!(h.contains("0 passed, 1 failed"));
    }
}
