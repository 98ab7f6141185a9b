//! `kmatrix exec`: a host program run inside guests, with its exit status.

use super::*;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Kernels to run on, comma-separated (default: --kernel).
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Seconds the program may run.
    #[arg(long, default_value_t = 600.0, value_parser = seconds)]
    pub timeout: f64,
    #[command(flatten)]
    pub guest: GuestArgs,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    pub argv: Vec<String>,
}

pub(crate) async fn exec_cmd(a: ExecArgs) -> Result<i32> {
    let program = PathBuf::from(&a.argv[0]);
    let (guest_path, files) = crate::exec::gather(&program).exit_code(exit::BAD_INPUT)?;
    let mut kernels = a.guest.kernels_or(&a.kernels)?;
    if kernels.is_empty() {
        kernels.push(a.guest.kernel().to_string());
    }
    let cwd = std::env::current_dir().ok().map(|d| d.display().to_string());
    let mut worst = exit::OK;
    for k in &kernels {
        let mut ga = a.guest.clone();
        ga.kernel = Some(k.clone());
        let p = prepare_with(&ga, files.clone()).await?;
        let mut opts = p.guest_options(&ga, "exec")?;
        if ga.snapshots(true) {
            opts.snapshots = Some(p.session.cache.clone());
        }
        let mut g = p
            .session
            .start_guest(&p.kernel, &p.image, &opts)
            .await
            .with_context(|| format!("booting {k} failed (console log: {})", opts.console_log.display()))
            .exit_code(exit::INFRA)?;
        let mut argv = vec![guest_path.clone()];
        argv.extend(a.argv[1..].iter().cloned());
        let req = kmatrix_proto::ExecRequest {
            argv,
            timeout_ms: (a.timeout * 1000.0) as u64,
            env: std::env::vars().filter(|(k, _)| k.starts_with("RUST_") || k == "KMATRIX_GUEST").collect(),
            cwd: cwd.clone().filter(|_| false),
        };
        let out = g.exec(req, Duration::from_secs_f64(a.timeout + 10.0)).await.exit_code(exit::INFRA)?;
        let _ = g.shutdown().await;
        if kernels.len() > 1 {
            eprintln!(
                "== {k} ({}): exit {:?} signal {:?} in {} ms",
                p.kernel.release, out.exit_code, out.signal, out.wall_ms
            );
        }
        print!("{}", out.stdout);
        eprint!("{}", out.stderr);
        let code = match (out.exit_code, out.signal) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            _ => exit::INFRA,
        };
        if code != 0 {
            worst = code;
        }
    }
    Ok(worst)
}
