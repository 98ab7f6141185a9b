//! Exit codes of the `kmatrix` binary, so scripts can tell a test failure from a broken setup.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every verdict is pass, expected-unsupported, xfail or flaky (or the command succeeded) |
//! | 1 | at least one scenario failed (a test failure) |
//! | 2 | bad input: usage, unknown kernel id, a file that is not a kernel, malformed files |
//! | 3 | infrastructure: QEMU missing, download failed, guest panicked or timed out, agent died |

#![warn(missing_docs)]

use std::fmt;

/// Success: every check held.
pub const OK: i32 = 0;
/// A test failed: a scenario, a predicate or a check did not hold.
pub const TEST_FAILED: i32 = 1;
/// Bad input: an unknown kernel or scenario, a malformed flag or file.
pub const BAD_INPUT: i32 = 2;
/// Infrastructure: QEMU, the network, the cache or the guest failed.
pub const INFRA: i32 = 3;

/// An error that knows which exit code it maps to. Wrap an `anyhow::Error` at the call site
/// that knows the category; anything unwrapped exits with [`INFRA`].
#[derive(Debug)]
pub struct Exit {
    /// The exit code: one of the constants above.
    pub code: i32,
    /// The error, printed with its whole chain.
    pub error: anyhow::Error,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Exit {}

/// Tag a result's error with the exit code the process ends with.
pub trait ExitContext<T> {
    /// Tag the error with an exit code.
    fn exit_code(self, code: i32) -> Result<T, anyhow::Error>;
}

impl<T, E: Into<anyhow::Error>> ExitContext<T> for Result<T, E> {
    fn exit_code(self, code: i32) -> Result<T, anyhow::Error> {
        self.map_err(|e| anyhow::Error::new(Exit { code, error: e.into() }))
    }
}

/// The exit code for an error chain: the first tagged error wins; untagged errors are [`INFRA`].
pub fn code_of(err: &anyhow::Error) -> i32 {
    err.chain().find_map(|e| e.downcast_ref::<Exit>().map(|x| x.code)).unwrap_or(INFRA)
}
