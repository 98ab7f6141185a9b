//! Progress of a matrix run on a terminal: a bar per kernel, a line per result.

/// What a person sees while a run goes: on a terminal, a progress bar per kernel with result
/// lines printed above the bars; elsewhere (CI logs, pipes), one line per event.
pub struct RunProgress {
    bars: Option<(indicatif::MultiProgress, std::collections::BTreeMap<String, indicatif::ProgressBar>)>,
}

impl RunProgress {
    /// Bars for `kernels`, each `scenarios` long, when `tty`; else plain lines.
    pub fn new(kernels: &[String], scenarios: usize, tty: bool) -> Self {
        if !tty {
            return RunProgress { bars: None };
        }
        let mp = indicatif::MultiProgress::new();
        let style =
            indicatif::ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos:>3}/{len:3} {elapsed:>4} {msg}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let w = kernels.iter().map(|k| k.len()).max().unwrap_or(8);
        let bars = kernels
            .iter()
            .map(|k| {
                let b = mp.add(indicatif::ProgressBar::new(scenarios as u64));
                b.set_style(style.clone());
                b.set_prefix(format!("{k:>w$}"));
                b.set_message("waiting");
                (k.clone(), b)
            })
            .collect();
        RunProgress { bars: Some((mp, bars)) }
    }

    /// Shows one event of the run: a line on stderr (above the bars on a terminal), and the
    /// kernel's bar moved on; `color` colours result lines.
    pub fn event(&self, p: &crate::run::matrix::Progress, color: bool) {
        use crate::run::matrix::Progress;
        let line = match p {
            Progress::Preparing(k) => {
                self.msg(k, "preparing kernel and image".into());
                format!("{k}: preparing kernel and image")
            }
            Progress::Booted { kernel, release, hello_s } => {
                self.msg(kernel, format!("{release}, ready after {hello_s:.2} s"));
                format!("{kernel}: booted {release}, Hello after {hello_s:.2} s")
            }
            Progress::Result(r, _) => {
                if let Some((_, bars)) = &self.bars {
                    if let Some(b) = bars.get(&r.kernel) {
                        b.inc(1);
                        b.set_message(r.scenario.clone());
                    }
                }
                super::table::result_line(r, color)
            }
            Progress::Note { kernel, text } => format!("{kernel}: note: {text}"),
            Progress::KernelDone(t) => {
                if let Some((_, bars)) = &self.bars {
                    if let Some(b) = bars.get(&t.kernel) {
                        b.finish_with_message(format!("done in {:.1} s", t.wall_s));
                    }
                }
                format!(
                    "{}: done in {:.1} s ({} boot{}, {:.1} s booting, {:.1} s in scenarios)",
                    t.kernel,
                    t.wall_s,
                    t.boots,
                    if t.boots == 1 { "" } else { "s" },
                    t.boot_s,
                    t.scenarios_s
                )
            }
        };
        match &self.bars {
            Some((mp, _)) => {
                let _ = mp.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn msg(&self, kernel: &str, m: String) {
        if let Some((_, bars)) = &self.bars {
            if let Some(b) = bars.get(kernel) {
                b.set_message(m);
            }
        }
    }

    /// Clears the bars at the run's end (the lines printed stay).
    pub fn finish(&self) {
        if let Some((mp, _)) = &self.bars {
            let _ = mp.clear();
        }
    }
}
