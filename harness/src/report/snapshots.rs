//! Snapshot tests of the three reports people and CI systems read — the terminal table with its
//! summary line, JUnit XML and the HTML matrix — rendered from a fixed run (twelve real results,
//! `tests/fixtures/runs/snapshot`, see its README). A renderer change shows up as a snapshot diff
//! to review (`cargo insta review`); under `CI=true` insta writes nothing and a diff fails the test.
//! The inputs are fixed (kernels from the results, a fixed title and run path), so nothing in the
//! snapshots varies between machines.

use super::{html, junit, table};
use kmatrix_proto::ScenarioResult;
use std::path::Path;

fn fixture() -> (Vec<ScenarioResult>, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/snapshot/results.jsonl");
    let results = crate::run::results::read(&path).expect("the snapshot fixture reads");
    let kernels = crate::run::results::kernels(&results);
    (results, kernels)
}

#[test]
fn terminal_table() {
    let (results, kernels) = fixture();
    let text = format!("{}\n{}\n", table::render(&results, &kernels, false), table::Summary::of(&results).line());
    insta::assert_snapshot!("table", text);
}

#[test]
fn terminal_result_lines() {
    let (results, _) = fixture();
    let lines: Vec<String> = results.iter().map(|r| table::result_line(r, false)).collect();
    insta::assert_snapshot!("result_lines", lines.join("\n"));
}

#[test]
fn junit_xml() {
    let (results, _) = fixture();
    insta::assert_snapshot!("junit", junit::render(&results));
}

#[test]
fn html_matrix() {
    let (results, kernels) = fixture();
    insta::assert_snapshot!("html", html::render(&results, &kernels, "kmatrix — snapshot", "runs/snapshot", "../"));
}
