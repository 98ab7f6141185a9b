//! `kmatrix run --command`: the user's own commands as judged cells on a real kernel (Debian 6.1,
//! one guest), run through the shared host root in the caller's directory. Real programs: a
//! script that passes (and prints the guest's `uname -r`, checked against the build the result
//! records), one that exits 77 (unsupported, its last lines the evidence), one that exits 1
//! (fail, its output the excerpt), `cat` of a file of the caller's directory (proves the cwd:
//! the file's random token is in its output), and a `sleep` past its timeout (error, cause
//! timeout). Every cell's whole output is an artifact; the cells are in every report; `kmatrix
//! rerun` from another directory runs a cell again with its command and cwd. Bad input (an empty
//! command, an unreadable file, twice the same name, a program this host does not have) is
//! refused before anything boots.

use crate::common;

use kmatrix_proto::{Cause, Status};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn run_in(cwd: &Path, args: &[&str]) -> Output {
    common::kmatrix().current_dir(cwd).args(args).output().unwrap()
}

/// The cell's whole output, from its artifact.
fn output_artifact(run: &Path, r: &kmatrix_proto::ScenarioResult) -> String {
    let rel = r.artifacts.iter().find(|a| a.ends_with(".capture.txt.gz")).unwrap_or_else(|| panic!("{r:?}"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(run.join(rel)).unwrap()).read_to_string(&mut text).unwrap();
    text
}

#[test]
fn vm_user_commands_are_judged_cells_with_artifacts_reports_and_rerun() {
    let d = tempfile::tempdir().unwrap();
    let (work, out) = (d.path().join("project"), d.path().join("out"));
    std::fs::create_dir_all(&work).unwrap();
    let token = format!("token-{}-{}", std::process::id(), d.path().display().to_string().len());
    std::fs::write(work.join("data.txt"), format!("{token}\n")).unwrap();
    script(&work, "pass.sh", "echo pass-ok on $(uname -r) as $KMATRIX_GUEST");
    script(&work, "skip.sh", "echo checking the frobnicator\necho no frobnicator on $(uname -r)\nexit 77");
    script(&work, "fail.sh", "echo broken on purpose >&2\nexit 1");
    let o = out.to_str().unwrap();
    let t0 = std::time::Instant::now();
    let first = run_in(
        &work,
        &[
            "run",
            "--kernels",
            "debian-6.1",
            "--retries",
            "0",
            "--scenario-timeout",
            "10",
            "--json",
            "--out",
            o,
            "--command",
            "./pass.sh",
            "--name",
            "pass",
            "--command",
            "./skip.sh",
            "--name",
            "skip",
            "--command",
            "./fail.sh",
            "--name",
            "fail",
            "--command",
            "cat data.txt",
            "--name",
            "cwd",
            "--command",
            "sleep 600",
            "--name",
            "slow",
        ],
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    eprintln!("run with 5 commands: {:.1} s", t0.elapsed().as_secs_f64());
    // An error (the timeout) outranks the failure.
    assert_eq!(first.status.code(), Some(3), "{stderr}");
    let results = common::json_results(&first.stdout);
    let cell = |id: &str| results.iter().find(|r| r.scenario == id).unwrap_or_else(|| panic!("no {id}: {stderr}"));
    assert_eq!(results.len(), 5, "{results:?}");
    let run = common::run_dirs(&out)[0].clone();

    let pass = cell("user.pass");
    assert_eq!((pass.status, pass.kernel.as_str()), (Status::Pass, "debian-6.1"), "{pass:?}");
    let release = pass.build.as_ref().map(|b| b.release.clone()).unwrap();
    assert!(!release.is_empty());
    assert_eq!(output_artifact(&run, pass).trim(), format!("pass-ok on {release} as debian-6.1"));

    let skip = cell("user.skip");
    assert_eq!(skip.status, Status::Unsupported, "{skip:?}");
    assert!(skip.reason.contains("exited 77"), "{}", skip.reason);
    assert_eq!(
        skip.evidence.as_deref(),
        Some(format!("checking the frobnicator\nno frobnicator on {release}").as_str())
    );

    let fail = cell("user.fail");
    assert_eq!((fail.status, fail.reason.as_str()), (Status::Fail, "the command exited 1"), "{fail:?}");
    assert_eq!(fail.excerpt, "broken on purpose\n");

    let cwd = cell("user.cwd");
    assert_eq!(cwd.status, Status::Pass, "{cwd:?}");
    assert_eq!(cwd.params["cwd"], work.display().to_string());
    assert_eq!(output_artifact(&run, cwd), format!("{token}\n"));

    let slow = cell("user.slow");
    assert_eq!((slow.status, slow.cause), (Status::Error, Some(Cause::Timeout)), "{slow:?}");
    assert!(slow.timings.run_ms >= 9_500.0, "{slow:?}");

    // Every report shows the cells.
    for (format, want) in [("table", "user.fail"), ("junit", "user.skip"), ("ktap", "user.cwd"), ("html", "user.slow")]
    {
        let r = run_in(&work, &["report", run.to_str().unwrap(), "--format", format]);
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(text.contains(want) && text.contains("user.pass"), "{format}: {text}");
    }
    let compat = run_in(&work, &["report", "compat", run.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&compat.stdout).contains("user.skip"));

    // A rerun from elsewhere runs the same command in the same directory.
    let t1 = std::time::Instant::now();
    let again =
        run_in(Path::new("/"), &["rerun", run.to_str().unwrap(), "--scenario", "user.cwd", "--json", "--out", o]);
    eprintln!("rerun of one command: {:.1} s", t1.elapsed().as_secs_f64());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("debian-6.1 user.cwd: was pass, now pass"), "{stderr}");
    let now = common::json_results(&again.stdout);
    assert_eq!(now.len(), 1);
    assert_eq!((now[0].params.clone(), now[0].build.clone()), (cwd.params.clone(), cwd.build.clone()));
    assert_eq!(output_artifact(&common::run_dirs(&out)[1], &now[0]), format!("{token}\n"));
}

#[test]
fn user_command_bad_input_is_named_before_anything_boots() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--kernels", "debian-6.1"];
        all.extend_from_slice(args);
        run_in(d.path(), &all)
    };
    common::assert_bad_input(&run(&["--command", ""]), &["--command \"\"", "empty command"]);
    common::assert_bad_input(&run(&["--command", "kmatrix-no-such-program --x"]), &["kmatrix-no-such-program"]);
    let missing = d.path().join("no-commands.txt");
    common::assert_bad_input(&run(&["--command-file", missing.to_str().unwrap()]), &[missing.to_str().unwrap()]);
    common::assert_bad_input(
        &run(&["--command", "true", "--name", "a", "--command", "false", "--name", "a"]),
        &["user.a", "--name"],
    );
    common::assert_bad_input(&run(&["--name", "a"]), &["--name"]);
}
