//! Exit codes of the `kmatrix` binary, so scripts can tell a test failure from a broken setup.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every verdict is pass, expected-unsupported, xfail or flaky (or the command succeeded) |
//! | 1 | at least one scenario failed (a test failure) |
//! | 2 | bad input: usage, unknown kernel id, a file that is not a kernel, malformed files |
//! | 3 | infrastructure: QEMU missing, download failed, guest panicked or timed out, agent died |

use std::fmt;

pub const OK: i32 = 0;
pub const TEST_FAILED: i32 = 1;
pub const BAD_INPUT: i32 = 2;
pub const INFRA: i32 = 3;

/// An error that knows which exit code it maps to. Wrap an `anyhow::Error` at the call site
/// that knows the category; anything unwrapped exits with [`INFRA`].
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub error: anyhow::Error,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Exit {}

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
