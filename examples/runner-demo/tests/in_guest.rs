//! Run with `CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="kmatrix exec --kernels ... --"`.

#[test]
fn tracefs_lists_the_function_tracer() {
    let tracers = kmatrix_runner_demo::available_tracers().expect("read /sys/kernel/tracing/available_tracers");
    assert!(tracers.iter().any(|t| t == "function"), "{tracers:?}");
}

#[test]
fn runs_in_the_guest_with_the_callers_environment_and_cwd() {
    // Set by the caller on the host: it must reach the guest.
    assert_eq!(std::env::var("KMATRIX_DEMO_TOKEN").as_deref(), Ok("passed-through"));
    // Set by kmatrix: the kernel this runs on, which is the running one.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(std::env::var("KMATRIX_KERNEL_RELEASE").unwrap(), release.trim());
    // cargo runs test binaries in the package's directory: the guest keeps that cwd.
    assert!(std::path::Path::new("Cargo.toml").is_file(), "cwd {:?}", std::env::current_dir());
}
