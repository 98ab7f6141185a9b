//! A stand-in for a user's tracing crate. Its kernel-compatibility test is `tests/kernels.rs`:
//! a few lines that make every (kernel, scenario) pair a cargo test.
