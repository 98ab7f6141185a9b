//! Every (kernel, scenario) pair of the default matrix and the arm64 lane as a test: `cargo test
//! --test matrix`, `-- --list`, filters, `--exact`, and `cargo nextest run --test matrix`. The
//! statuses they must produce where a kernel's version or config decides are in `expected.toml`.
//! Ubuntu's kernels (not in the default matrix yet) have their own test, `vm_ubuntu_kernels`;
//! `KMATRIX_TEST_KERNELS=all` runs this one over every kernel of kernels/matrix.toml.

fn main() {
    kmatrix::testing::MatrixTest::new()
        .kernels(&["default", "arm64"])
        .expected_toml(include_str!("expected.toml"))
        .main()
}
