//! Support for the matrix test harness (`matrix.rs`): which (kernel, scenario) pairs exist, and
//! the statuses the default matrix must produce (`expected.toml`, data rather than asserts).
