//! Every (kernel, scenario) pair of the default matrix as a test: `cargo test --test matrix`,
//! `-- --list`, filters, `--exact`, and `cargo nextest run --test matrix`. The statuses the
//! default matrix must produce where a kernel's version or config decides are in `expected.toml`.

fn main() {
    kmatrix::testing::MatrixTest::new().expected_toml(include_str!("expected.toml")).main()
}
