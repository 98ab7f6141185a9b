//! `kmatrix boot`: one kernel to the agent's `Hello`, its capability record printed.

use super::{boot_options, prepare, GuestArgs};
use crate::exit::{self, ExitContext};
use crate::report as render;
use crate::settings::SnapshotMode;
use anyhow::{Context, Result};
use clap::Args;

/// `kmatrix boot`: the kernel to boot and how to print its record.
#[derive(Debug, Args)]
pub struct BootArgs {
    /// The kernel and how to boot it (flattened: `--kernel`, `--accel`, `--memory`, ...).
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Print the record as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn boot(a: BootArgs) -> Result<i32> {
    // A cold boot unless `--snapshot on`: this command measures boots.
    let settings = a.guest.settings(SnapshotMode::Off);
    let p = prepare(&a.guest, &settings).await?;
    let opts = boot_options(&p, &a.guest, &settings, "boot")?;
    let guest = p
        .session
        .start_guest(&p.kernel, &p.image, &opts)
        .await
        .with_context(|| format!("booting {} failed (console log: {})", p.kernel.id, opts.console_log.display()))
        .exit_code(exit::INFRA)?;
    let rec = render::BootRecord::new(&p.kernel, &p.session.accel.verdict(), &guest, &p.image);
    guest.shutdown().await.context("the guest did not power off cleanly").exit_code(exit::INFRA)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rec)?);
    } else {
        print!("{}", render::render_boot(&rec));
    }
    Ok(exit::OK)
}
