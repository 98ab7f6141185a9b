//! What a refusal by the kernel looks like to the scenarios: [`Rejected`], the step that was
//! refused (object load, program load, attach), its errno and the verifier's log.
//!
//! Scenarios turn it into `fail` (or `unsupported`) with that evidence. Not for infrastructure
//! errors (a missing map, a workload that cannot start): those stay plain `anyhow` errors.

use aya::programs::ProgramError;
use std::fmt;

/// A step the kernel (or the loader on its behalf) refused: the object, a program load (the
/// verifier), an attach. Scenarios turn it into `fail` (or `unsupported`) with the errno and
/// the verifier log as evidence.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// What was attempted: `load tracepoint_openat`, `attach kprobe do_sys_openat2`.
    pub step: String,
    pub errno: Option<i32>,
    /// The error chain, one line.
    pub message: String,
    /// The verifier's log when the step was a program load (empty otherwise).
    pub verifier_log: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.step, self.message)
    }
}

impl std::error::Error for Rejected {}

impl Rejected {
    /// From any error, keeping the first OS error of its source chain as errno.
    pub fn new(step: impl Into<String>, err: &(dyn std::error::Error + 'static)) -> Rejected {
        let mut message = err.to_string();
        let mut errno = None;
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(c) = cause {
            if errno.is_none() {
                errno = c.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error);
            }
            cause = c.source();
            if let Some(next) = cause {
                let text = next.to_string();
                if !message.contains(&text) {
                    message = format!("{message}: {text}");
                }
            }
        }
        Rejected { step: step.into(), errno, message, verifier_log: String::new() }
    }

    /// From a program error; a load error keeps the verifier's log apart from the message.
    pub fn program(step: impl Into<String>, err: ProgramError) -> Rejected {
        match &err {
            ProgramError::LoadError { io_error, verifier_log } => Rejected {
                step: step.into(),
                errno: io_error.raw_os_error(),
                message: format!("BPF_PROG_LOAD: {io_error}"),
                verifier_log: verifier_log.to_string(),
            },
            _ => Rejected::new(step, &err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_keeps_the_os_error_of_the_chain() {
        let io = std::io::Error::from_raw_os_error(libc::EINVAL);
        let r = Rejected::new("attach x", &io);
        assert_eq!(r.errno, Some(libc::EINVAL));
        assert!(r.to_string().starts_with("attach x failed: "));
    }
}
