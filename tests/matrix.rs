//! Every (kernel, scenario) pair of the default matrix and the arm64 lane as a test: `cargo test
//! --test matrix`, `-- --list`, filters, `--exact`, and `cargo nextest run --test matrix`. The
//! statuses they must produce where a kernel's version or config decides are in `expected.toml`.
//! Ubuntu's lines are in the default matrix with their core lane (each kernel's trials are the
//! lane its matrix entry names); `vm_ubuntu_kernels` pins exact reasons on 4.15 and 5.4.
//! `KMATRIX_TEST_KERNELS=all` runs this one over every kernel of kernels/matrix.toml.

fn main() {
    kmatrix::testing::MatrixTest::new()
        .kernels(&["default", "arm64"])
        .expected_toml(include_str!("expected.toml"))
        .main()
}
