//! The request loop: read `HostMsg` lines from the channel and answer each, the guest's clock
//! set first from the host's time in the request (`clock`).
//!
//! A malformed or over-long line gets an `Error` reply and the loop goes on: hostile or broken
//! host output must not take the guest down. EOF on the channel (the host went away) and
//! `Shutdown` end the loop; the caller powers off.

use crate::channel::{Channel, Line};
use crate::{clock, console, exec, reap, scenario};
use anyhow::Result;
use kmatrix_proto::{Capabilities, GuestMsg, HostMsg};

/// Serve until `Shutdown` (Bye sent) or EOF. Errors are channel failures: the caller powers off.
pub fn serve(ch: &mut Channel, caps: &Capabilities) -> Result<()> {
    loop {
        reap::orphans();
        let line = match ch.recv()? {
            Line::Eof => {
                console::say("channel closed by the host");
                return Ok(());
            }
            Line::TooLong(len) => {
                ch.send(&GuestMsg::Error {
                    message: format!("request line of {len} bytes exceeds the limit, ignored"),
                })?;
                continue;
            }
            Line::Text(t) => t,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let msg: HostMsg = match serde_json::from_slice(&line) {
            Ok(m) => m,
            Err(e) => {
                let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
                ch.send(&GuestMsg::Error { message: format!("malformed request ({e}): {shown}") })?;
                continue;
            }
        };
        match msg {
            HostMsg::Shutdown => {
                ch.send(&GuestMsg::Bye)?;
                return Ok(());
            }
            HostMsg::Warm => ch.send(&GuestMsg::Warmed { ms: crate::bpf::vmlinux::warm() })?,
            HostMsg::Run(req) => {
                let offset = clock::set_from_host(req.host_time_ns);
                crate::share::offer(req.root.clone());
                let mut result = scenario::run_one(&req.scenario, &req.params, caps, req.keep_state);
                result.clock_offset_ms = offset;
                console::say(&format!("{}: {}", result.scenario, result.status));
                ch.send(&GuestMsg::Result(Box::new(result)))?;
            }
            HostMsg::Exec(req) => {
                // A program of the host's may write tracefs: the next scenario resets it fully.
                crate::tracefs::state_unknown();
                let offset = clock::set_from_host(req.host_time_ns);
                match exec::run(Some(ch), &req) {
                    Ok(mut done) => {
                        done.clock_offset_ms = offset;
                        ch.send(&GuestMsg::ExecDone(done))?
                    }
                    Err(e) => ch.send(&GuestMsg::Error { message: format!("{e:#}") })?,
                }
            }
            // Only meaningful while a program runs (`exec::run` handles them then).
            HostMsg::Input { .. } | HostMsg::Winsize { .. } | HostMsg::Signal { .. } => {
                ch.send(&GuestMsg::Error { message: "no program is running".into() })?
            }
        }
    }
}
