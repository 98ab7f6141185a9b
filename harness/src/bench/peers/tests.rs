use super::*;

/// What virtme-ng 1.42 printed for the task on Debian 6.1 (a real run of `vng -r ... -e TASK`).
const VNG_61: &str = "6.1.0-50-amd64\nblk mmiotrace function_graph function nop\n";
/// What vmtest printed out of the box on 6.1: the kernel cannot mount its 9p root.
const VMTEST_OOB: &str = "=> vmlinuz\n===> Booting\n[    2.9] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n";

fn attempt(seconds: f64, failure: Option<&str>) -> Attempt {
    Attempt {
        seconds,
        exit_code: Some(if failure.is_some() { 1 } else { 0 }),
        failure: failure.map(str::to_string),
        tail: vec!["last".into()],
    }
}

fn cell(tool: Tool, mode: Mode, secs: &[(f64, bool)]) -> Cell {
    Cell {
        tool,
        kernel: "debian-6.1".into(),
        release: "6.1.0-50-amd64".into(),
        mode,
        needs: if tool == Tool::Kmatrix || mode == Mode::OutOfTheBox {
            vec![]
        } else {
            vec!["a wrapper".into(), "an initramfs".into()]
        },
        command: vec![],
        attempts: secs.iter().map(|&(s, ok)| attempt(s, (!ok).then_some("no tracer list"))).collect(),
    }
}

fn report(cells: Vec<Cell>) -> Report {
    Report {
        runs: 3,
        accel: "tcg".into(),
        host: HostInfo {
            cpu: "x".into(),
            cores: 2,
            load_start: "1 1 1".into(),
            load_end: "1 1 1".into(),
            date: "d".into(),
        },
        bench_dir: "/b".into(),
        versions: vec![],
        cells,
    }
}

#[test]
fn output_check_wants_the_release_and_a_tracer_list() {
    // The table's words for each miss.
    assert_eq!(
        WrongOutput::NoRelease("6.12.74+deb13-amd64".into()).to_string(),
        "no line \"6.12.74+deb13-amd64\" (uname -r) in the output"
    );
    assert_eq!(WrongOutput::NoTracers.to_string(), "no tracer list (a line of tracer names with nop) in the output");
    assert_eq!(
        WrongOutput::Neither("6.1.0-50-amd64".into()).to_string(),
        "neither \"6.1.0-50-amd64\" nor a tracer list in the output"
    );
    assert_eq!(check_output(VNG_61, "6.1.0-50-amd64"), Ok(()));
    // The other kernel's release is not this one's.
    assert_eq!(check_output(VNG_61, "6.12.74+deb13-amd64"), Err(WrongOutput::NoRelease("6.12.74+deb13-amd64".into())));
    // `cat` failing (tracefs not mounted there) leaves the release alone.
    assert_eq!(
        check_output(
            "6.1.0-50-amd64\ncat: /sys/kernel/tracing/available_tracers: No such file or directory\n",
            "6.1.0-50-amd64"
        ),
        Err(WrongOutput::NoTracers)
    );
    assert_eq!(check_output(VMTEST_OOB, "6.1.0-50-amd64"), Err(WrongOutput::Neither("6.1.0-50-amd64".into())));
    // A release inside a longer line (a boot banner) is not `uname -r`'s output.
    assert!(check_output("Linux version 6.1.0-50-amd64 (gcc)\nnop\n", "6.1.0-50-amd64").is_err());
}

#[test]
fn tail_keeps_the_last_non_empty_lines() {
    assert_eq!(tail_lines("a\n\nb\nc\n\n", 2), ["b", "c"]);
    assert_eq!(tail_lines("\u{1b}[0mx\n", 4), ["[0mx"]);
    assert!(tail_lines("", 3).is_empty());
}

#[test]
fn stats_ignore_failed_runs_and_ratios_compare_medians() {
    let r = report(vec![
        cell(Tool::Kmatrix, Mode::Cold, &[(3.0, true), (4.0, true), (5.0, true)]),
        cell(Tool::Kmatrix, Mode::Snapshot, &[(0.5, true), (0.4, true), (0.6, true)]),
        // A failed run of 1 s must not make vmtest look faster.
        cell(Tool::Vmtest, Mode::Minimum, &[(12.0, true), (1.0, false), (8.0, true)]),
        cell(Tool::VirtmeNg, Mode::OutOfTheBox, &[(21.5, false)]),
    ]);
    let vm = &r.cells[2];
    let st = vm.stats().unwrap();
    assert_eq!((st.min, st.median, st.max), (8.0, 10.0, 12.0));
    assert_eq!(vm.successes(), 2);
    assert_eq!(r.ratio(vm, Mode::Cold), Some(2.5));
    assert_eq!(r.ratio(vm, Mode::Snapshot), Some(20.0));
    assert_eq!(r.cells[3].stats(), None);
    assert_eq!(r.ratio(&r.cells[3], Mode::Cold), None);
    assert_eq!(r.out_of_the_box(&r.cells[0]), "yes");
    assert_eq!(r.out_of_the_box(&r.cells[2]), "needs a wrapper; an initramfs");
    assert_eq!(r.out_of_the_box(&r.cells[3]), "no: exit 1 after 21.5 s: no tracer list");
}

#[test]
fn markdown_table_rows_and_failures() {
    let r = report(vec![
        cell(Tool::Kmatrix, Mode::Cold, &[(3.0, true), (4.0, true), (5.0, true)]),
        cell(Tool::Vmtest, Mode::Minimum, &[(12.0, true), (1.0, false), (8.0, true)]),
    ]);
    let md = r.markdown();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(
        lines[2],
        "| kmatrix | debian-6.1 (6.1.0-50-amd64) | cold | 3/3 | 3.00 | 4.00 | 5.00 | 1.0× | — | yes |"
    );
    assert_eq!(lines[3], "| vmtest | debian-6.1 (6.1.0-50-amd64) | minimum | 2/3 | 8.00 | 10.00 | 12.00 | 2.5× | — | needs a wrapper; an initramfs |");
    assert!(
        md.contains("- vmtest debian-6.1 minimum run 2: exit 1 after 1.0 s: no tracer list — last lines: `last`"),
        "{md}"
    );
}

#[test]
fn peer_names_parse_and_unknown_ones_are_named() {
    assert_eq!("vmtest".parse::<Peer>(), Ok(Peer::Vmtest));
    assert_eq!("virtme-ng".parse::<Peer>(), Ok(Peer::VirtmeNg));
    let e = "qemu-run".parse::<Peer>().unwrap_err();
    assert_eq!(e.to_string(), "unknown peer \"qemu-run\": expected one of vmtest, virtme-ng");
}

fn sh(script: &str) -> run::Job {
    run::Job {
        tool: Tool::Vmtest,
        mode: Mode::Minimum,
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        env: vec![],
        cwd: std::env::temp_dir(),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn a_real_process_is_judged_by_its_exit_and_its_output() {
    let t = std::time::Duration::from_secs(30);
    let ok = block_on(run::run_once(&sh("echo 6.1.0-50-amd64; echo 'blk function nop'"), "6.1.0-50-amd64", t));
    assert_eq!((ok.exit_code, ok.failure.as_deref()), (Some(0), None));
    let bad = block_on(run::run_once(&sh("echo 6.1.0-50-amd64; echo 'blk nop' >&2; exit 3"), "6.1.0-50-amd64", t));
    assert_eq!((bad.exit_code, bad.failure.as_deref()), (Some(3), Some("right output, but exit 3")));
    // The output of a killed run is kept as evidence, and the run ends at the timeout, not when
    // its sleeping child would.
    let t = std::time::Duration::from_secs(1);
    let hung = block_on(run::run_once(&sh("echo booting; sleep 30 & wait"), "6.1.0-50-amd64", t));
    assert_eq!(hung.exit_code, None);
    assert_eq!(hung.failure.as_deref(), Some("still running after 1 s: killed"));
    assert_eq!(hung.tail, ["booting"]);
    assert!(hung.seconds < 10.0, "{}", hung.seconds);
    let missing = block_on(run::run_once(&run::Job { program: "/nonexistent/vng".into(), ..sh("") }, "x", t));
    assert!(missing.failure.unwrap().starts_with("cannot run /nonexistent/vng"));
}
