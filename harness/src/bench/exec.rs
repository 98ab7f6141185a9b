//! `kmatrix bench exec`: where the time of `kmatrix exec -- PROGRAM` goes, phase by phase, as
//! `exec` does it (a guest restored from its snapshot, the host root shared): opening the
//! session (the accelerator's verdict), preparing the kernel and its image (lock, cache, image
//! index), starting the guest (QEMU restored and running), the agent's set-up before the
//! program's spawn (the share's mount on a guest's first request, host paths), the program
//! itself (the agent's spawn-to-end), the rest of the round trip (channel, output), and the
//! power-off. The CLI adds what a whole `kmatrix exec` process costs around these
//! (`process`): the difference is its own start, argument parsing and exit.
//!
//! Not a test: it prints figures, and judges nothing.

use crate::cache::Cache;
use crate::exec::{guest_env, request};
use crate::kernel::FetchOptions;
use crate::session::Session;
use crate::settings::GuestSettings;
use crate::vm::AccelChoice;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One exec's phases, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Phases {
    /// The session: cache, QEMU, the accelerator's verdict.
    pub session: f64,
    /// The kernel resolved and verified from the lock, its image found or built.
    pub prepare: f64,
    /// The guest started: QEMU restored from the snapshot (or booted) until running.
    pub start: f64,
    /// In the guest, from the request's arrival to the program's spawn (the share's mount).
    pub setup: f64,
    /// The program, spawn to end, as the agent timed it.
    pub program: f64,
    /// The rest of the exec round trip: the request, the channel, the outcome's way back.
    pub channel: f64,
    /// The guest powered off and QEMU gone.
    pub shutdown: f64,
    /// All of the above, as this process timed it.
    pub total: f64,
}

/// Why a measured exec failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchExecError {
    /// The program could not be turned into a request (bad argv or cwd).
    #[error(transparent)]
    Request(#[from] crate::exec::ExecError),
    /// The kernel or the guest could not be prepared or started.
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    /// The guest failed while the program ran.
    #[error(transparent)]
    Vm(#[from] crate::vm::VmError),
    /// The program itself did not exit 0: its figures would not be the ones asked for.
    #[error("`{argv}` did not succeed in the guest: {how}")]
    Program {
        /// The program, as given.
        argv: String,
        /// How it ended.
        how: String,
    },
}

/// The guest an exec runs in: the kernel, its machine, where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// A matrix id, a build or a path, as `exec --kernel` takes it.
    pub kernel: &'a str,
    /// The guest's settings (snapshots on, as `exec` has them).
    pub settings: &'a GuestSettings,
    /// The mirror and the trust.
    pub fetch: &'a FetchOptions,
}

/// Run `argv` once in a guest of `target` as `kmatrix exec` does, timing each phase; console
/// logs go to `dir`.
pub async fn once(
    cache: &Cache,
    qemu: &Path,
    accel: AccelChoice,
    target: Target<'_>,
    argv: &[String],
    dir: &Path,
) -> Result<Phases, BenchExecError> {
    let Target { kernel, settings, fetch } = target;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let t = Instant::now();
    let session = Arc::new(Session::with(cache.clone(), qemu.to_path_buf(), accel).await);
    let session_ms = ms(t.elapsed());
    let (mut req, rw) = request(argv, &[], 60.0, &[])?;
    let t1 = Instant::now();
    let p = session.prepare_guest(kernel, fetch, settings, true, &[]).await?;
    let prepare_ms = ms(t1.elapsed());
    let t2 = Instant::now();
    let mut g = p.start_shared(settings, fetch, dir, "bench-exec", rw, false).await?;
    let start_ms = ms(t2.elapsed());
    req.root = g.share.clone();
    req.env = guest_env(std::mem::take(&mut req.env), kernel, &p.kernel.release);
    let t3 = Instant::now();
    let out = g.exec(req, Duration::from_secs(60)).await?;
    let round_trip = ms(t3.elapsed());
    if !out.success() {
        return Err(BenchExecError::Program { argv: argv.join(" "), how: out.describe() });
    }
    let t4 = Instant::now();
    g.shutdown().await?;
    let shutdown_ms = ms(t4.elapsed());
    let setup = out.setup_ms.unwrap_or(0) as f64;
    let program = out.wall_ms as f64;
    Ok(Phases {
        session: session_ms,
        prepare: prepare_ms,
        start: start_ms,
        setup,
        program,
        channel: (round_trip - setup - program).max(0.0),
        shutdown: shutdown_ms,
        total: ms(t.elapsed()),
    })
}
