//! `kmatrix report site RUN… --out DIR`: the compatibility table of one or more runs as a static
//! site a CI job can publish (GitHub Pages, any web server, a file browser): `index.html` holds
//! the table of [`super::compat`] with every cell a link to its detail, the findings, and the
//! runs' kernel builds, accelerators and guest machines; `scenario/<id>.html` holds one
//! scenario's cells on every kernel, each in a section named after its kernel (`#debian-6.1`):
//! the status and the whole explanation, evidence, counts (expected and observed), errno,
//! timings, the build, the guest, the raw excerpt, its artifacts and the `kmatrix rerun` command
//! line that runs it again. Plain HTML and CSS, no script, so it reads anywhere.
//!
//! Not here: the table's rules (`compat`), and publishing (the caller's CI). The site is made in
//! a directory beside `DIR` and renamed into place, so a failure leaves no half-written site.

use super::compat::{self, Cell, Compat};
use super::html_escape as esc;
use kmatrix_proto::{ScenarioResult, Status};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why a site could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The runs hold no result.
    #[error("no results in {runs}: nothing to publish")]
    Empty {
        /// The runs, as given.
        runs: String,
    },
    /// The output directory exists and holds something: a site is never written over files.
    #[error("the output directory {0} exists and is not empty")]
    NotEmpty(PathBuf),
    /// A file of the site could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// One run's results and the path they were read from (what its rerun command lines name).
#[derive(Debug, Clone)]
pub struct Run {
    /// The run directory or results file, as given.
    pub path: String,
    /// Its results, in file order.
    pub results: Vec<ScenarioResult>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Pages in all (the index and one per scenario).
    pub pages: usize,
    /// Cells linked from the index.
    pub cells: usize,
}

/// The page of a scenario, relative to the site's root.
pub fn scenario_page(scenario: &str) -> String {
    format!("scenario/{}.html", crate::cache::sanitize(scenario))
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}a{color:inherit}\
.pass,.flaky{background:#dfd}.fail,.error{background:#fcc}.unsupported{background:#eee}.xfail{background:#ffd}\
section{border:1px solid #ccc;margin:1em 0;padding:0 1em}section:target{outline:3px solid #36c}\
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:12px}dt{font-weight:bold}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        esc(title)
    )
}

/// Write the site of `runs` into `out` (which must not exist or be empty); `since` is each
/// scenario's declared `since` (the catalogue's).
pub fn write(out: &Path, runs: &[Run], since: &BTreeMap<String, String>) -> Result<Written, SiteError> {
    let all: Vec<ScenarioResult> = runs.iter().flat_map(|r| r.results.iter().cloned()).collect();
    if all.is_empty() {
        let names: Vec<&str> = runs.iter().map(|r| r.path.as_str()).collect();
        return Err(SiteError::Empty { runs: names.join(", ") });
    }
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(SiteError::NotEmpty(out.to_path_buf()));
    }
    // The last result of a pair wins, as in the table; its run is the one its rerun names.
    let mut cell_of: BTreeMap<(&str, &str), (&str, &ScenarioResult)> = BTreeMap::new();
    for run in runs {
        for r in &run.results {
            cell_of.insert((r.kernel.as_str(), r.scenario.as_str()), (run.path.as_str(), r));
        }
    }
    let table = compat::build(&all, since);
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SiteError::Write { path: path.clone(), source }
    };
    std::fs::create_dir_all(&parent).map_err(werr(&parent))?;
    let tmp = tempfile::Builder::new().prefix(".kmatrix-site-").tempdir_in(&parent).map_err(werr(&parent))?;
    let scen_dir = tmp.path().join("scenario");
    std::fs::create_dir(&scen_dir).map_err(werr(&scen_dir))?;
    let mut pages = 0;
    for row in &table.rows {
        let cells: Vec<(&str, &ScenarioResult)> = table
            .kernels
            .iter()
            .filter_map(|k| cell_of.get(&(k.kernel.as_str(), row.scenario.as_str())).copied())
            .collect();
        let p = tmp.path().join(scenario_page(&row.scenario));
        std::fs::write(&p, scenario_html(row, &cells)).map_err(werr(&p))?;
        pages += 1;
    }
    let (index, cells) = index_html(&table, runs);
    let p = tmp.path().join("index.html");
    std::fs::write(&p, index).map_err(werr(&p))?;
    pages += 1;
    // Into place: an empty directory already there gives way to the finished site.
    if out.is_dir() {
        std::fs::remove_dir(out).map_err(werr(out))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, out).map_err(|source| {
        let _ = std::fs::remove_dir_all(&kept);
        SiteError::Write { path: out.to_path_buf(), source }
    })?;
    Ok(Written { pages, cells })
}

/// The index: counts, the table with each cell a link to its detail, findings, builds.
fn index_html(t: &Compat, runs: &[Run]) -> (String, usize) {
    let mut b = String::from("<h1>kmatrix compatibility</h1>\n");
    let all: Vec<&ScenarioResult> = runs.iter().flat_map(|r| &r.results).collect();
    let count = |s: Status| t.rows.iter().flat_map(|r| &r.cells).flatten().filter(|c| c.status == s).count();
    let _ = writeln!(
        b,
        "<p id=\"summary\">{} scenarios × {} kernels: {} pass, {} fail, {} unsupported, {} xfail, {} flaky, {} error.</p>",
        t.rows.len(),
        t.kernels.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Unsupported),
        count(Status::Xfail),
        count(Status::Flaky),
        count(Status::Error)
    );
    b.push_str("<table id=\"compat\">\n<tr><th>scenario</th><th>since</th><th>first pass</th>");
    for k in &t.kernels {
        let _ = write!(b, "<th>{}<br><small>{}</small></th>", esc(&k.kernel), esc(k.release.as_deref().unwrap_or("")));
    }
    b.push_str("</tr>\n");
    let mut linked = 0;
    for r in &t.rows {
        let href = scenario_page(&r.scenario);
        let _ = write!(
            b,
            "<tr><td><a href=\"{href}\"><code>{}</code></a></td><td>{}</td><td>{}</td>",
            esc(&r.scenario),
            esc(&r.since),
            esc(r.first_pass.as_deref().unwrap_or(""))
        );
        for (k, c) in t.kernels.iter().zip(&r.cells) {
            match c {
                None => b.push_str("<td>—</td>"),
                Some(c) => {
                    linked += 1;
                    let _ = write!(
                        b,
                        "<td class=\"{s}\" title=\"{}\"><a class=\"cell\" href=\"{href}#{}\">{s}</a></td>",
                        esc(&cell_title(c)),
                        esc(&k.kernel),
                        s = c.status.as_str()
                    );
                }
            }
        }
        b.push_str("</tr>\n");
    }
    b.push_str("</table>\n");
    let findings: Vec<String> = t
        .rows
        .iter()
        .filter_map(|r| r.finding.as_ref().map(|f| format!("<li><code>{}</code>: {}</li>", esc(&r.scenario), esc(f))))
        .collect();
    if !findings.is_empty() {
        let _ = writeln!(b, "<h2>Findings</h2>\n<ul id=\"findings\">\n{}\n</ul>", findings.join("\n"));
    }
    b.push_str("<h2>Kernels</h2>\n<table id=\"builds\">\n<tr><th>kernel</th><th>release</th><th>package</th><th>suite</th><th>accelerator</th><th>guest</th><th>cells</th></tr>\n");
    for k in &t.kernels {
        let mine: Vec<&&ScenarioResult> = all.iter().filter(|r| r.kernel == k.kernel).collect();
        let build = mine.iter().rev().find_map(|r| r.build.as_ref());
        let mut accels: Vec<&str> = mine.iter().map(|r| r.accel.as_str()).filter(|a| !a.is_empty()).collect();
        accels.sort();
        accels.dedup();
        let mut guests: Vec<String> =
            mine.iter().map(|r| format!("{} CPU, {} MiB", r.cpus.unwrap_or(1), r.memory_mb.unwrap_or(512))).collect();
        guests.sort();
        guests.dedup();
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.kernel),
            esc(build.map(|b| b.release.as_str()).unwrap_or("")),
            esc(build.and_then(|b| b.package.as_deref()).unwrap_or("")),
            esc(build.and_then(|b| b.suite.as_deref()).unwrap_or("")),
            esc(&accels.join(", ")),
            esc(&guests.join("; ")),
            mine.len()
        );
    }
    b.push_str("</table>\n");
    let paths: Vec<String> = runs.iter().map(|r| format!("<code>{}</code>", esc(&r.path))).collect();
    let _ = writeln!(b, "<p>From {}.</p>", paths.join(", "));
    (page("kmatrix compatibility", &b), linked)
}

fn cell_title(c: &Cell) -> String {
    if c.why.is_empty() {
        c.status.as_str().to_string()
    } else {
        format!("{}: {}", c.status.as_str(), c.why)
    }
}

/// One scenario's page: a section per kernel that ran it, in the table's order.
fn scenario_html(row: &compat::Row, cells: &[(&str, &ScenarioResult)]) -> String {
    let mut b =
        format!("<p><a href=\"../index.html\">all scenarios</a></p>\n<h1><code>{}</code></h1>\n", esc(&row.scenario));
    let _ = writeln!(
        b,
        "<p>since {}; first passes on {}.</p>",
        if row.since.is_empty() { "(none declared)".to_string() } else { esc(&row.since) },
        esc(row.first_pass.as_deref().unwrap_or("no kernel of these runs"))
    );
    if let Some(f) = &row.finding {
        let _ = writeln!(b, "<p class=\"finding\">Finding: {}</p>", esc(f));
    }
    for (run, r) in cells {
        let _ = writeln!(
            b,
            "<section id=\"{k}\" class=\"{s}\">\n<h2>{k}: <span class=\"status\">{s}</span></h2>\n<dl>",
            k = esc(&r.kernel),
            s = r.status.as_str()
        );
        let mut field = |name: &str, value: String| {
            if !value.is_empty() {
                let _ = writeln!(b, "<dt>{name}</dt><dd>{value}</dd>");
            }
        };
        field("why", esc(&r.explanation()));
        field("cause", r.cause.map(|c| esc(&format!("{c:?}").to_lowercase())).unwrap_or_default());
        field("evidence", r.evidence.as_deref().map(|e| format!("<pre>{}</pre>", esc(e))).unwrap_or_default());
        field("host lacks", r.host_lacks.as_deref().map(esc).unwrap_or_default());
        field("errno", r.errno.map(|e| e.to_string()).unwrap_or_default());
        let counts: Vec<String> = r
            .counts
            .iter()
            .map(|c| {
                let mark = if c.expected == c.observed { "" } else { " ✗" };
                format!("{}: expected {}, observed {}{mark}", esc(&c.what), c.expected, c.observed)
            })
            .collect();
        field("counts", counts.join("<br>"));
        let t = &r.timings;
        field("timings", format!("attach {:.1} ms, run {:.1} ms, detach {:.1} ms", t.attach_ms, t.run_ms, t.detach_ms));
        if let Some(bd) = &r.build {
            let pkg = bd.package.as_deref().map(|p| format!(", {}", esc(p))).unwrap_or_default();
            field("build", format!("{}{pkg}", esc(&bd.release)));
        }
        field(
            "guest",
            format!(
                "{} CPU, {} MiB, under {}",
                r.cpus.unwrap_or(1),
                r.memory_mb.unwrap_or(512),
                esc(if r.accel.is_empty() { "an unrecorded accelerator" } else { &r.accel })
            ),
        );
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{}={}", esc(k), esc(v))).collect();
        field("params", params.join(" "));
        let arts: Vec<String> = r.artifacts.iter().map(|a| format!("<code>{}</code>", esc(a))).collect();
        field("artifacts", arts.join(", "));
        field("excerpt", if r.excerpt.is_empty() { String::new() } else { format!("<pre>{}</pre>", esc(&r.excerpt)) });
        field("rerun", format!("<code class=\"rerun\">{}</code>", esc(&crate::run::rerun::command_line(run, r))));
        b.push_str("</dl>\n</section>\n");
    }
    page(&row.scenario, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kernel: &str, scenario: &str, status: Status, reason: &str) -> ScenarioResult {
        let mut r = ScenarioResult::new(scenario, status, reason).on_kernel(kernel);
        r.build = Some(kmatrix_proto::KernelBuild {
            release: format!("{}.0-1", kernel.rsplit('-').next().unwrap_or("")),
            ..Default::default()
        });
        r
    }

    #[test]
    fn every_cell_links_to_its_section_and_the_site_is_never_written_over_files() {
        let d = tempfile::tempdir().unwrap();
        let mut failed = res("debian-6.1", "kprobe.x", Status::Fail, "kprobe_profile hits: expected 100, observed 99");
        failed.counts = vec![kmatrix_proto::Count { what: "hits".into(), expected: 100, observed: 99 }];
        let runs = vec![
            Run { path: "run-a".into(), results: vec![res("debian-5.10", "kprobe.x", Status::Pass, ""), failed] },
            Run { path: "run-b".into(), results: vec![res("debian-5.10", "ftrace.<y>", Status::Pass, "")] },
        ];
        let out = d.path().join("site");
        let w = write(&out, &runs, &BTreeMap::new()).unwrap();
        assert_eq!(w, Written { pages: 3, cells: 3 });
        let index = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert_eq!(index.matches("class=\"cell\"").count(), 3, "{index}");
        assert!(index.contains("href=\"scenario/kprobe.x.html#debian-6.1\">fail</a>"), "{index}");
        assert!(index.contains("<code>ftrace.&lt;y&gt;</code>"), "escaped: {index}");
        let page = std::fs::read_to_string(out.join(scenario_page("kprobe.x"))).unwrap();
        let section = page.split("<section id=\"debian-6.1\"").nth(1).unwrap();
        assert!(section.contains("hits: expected 100, observed 99 ✗"), "{section}");
        assert!(section.contains("kmatrix rerun run-a --kernel debian-6.1 --scenario kprobe.x"), "{section}");
        // A second write into the same directory is refused, and leaves the site as it was.
        match write(&out, &runs, &BTreeMap::new()) {
            Err(SiteError::NotEmpty(p)) => assert_eq!(p, out),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_to_string(out.join("index.html")).unwrap(), index);
        // No temporary directory is left beside it.
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("site")]);
        assert!(matches!(write(&d.path().join("e"), &[], &BTreeMap::new()), Err(SiteError::Empty { .. })));
    }
}
