//! The core-check report for people: one line per kernel, one per program with its counts, and
//! one per relocation with what became of it (status, kind, spec, access string, detail).
//!
//! What it is not: the JSON form (`--json` serialises [`Report`] as it is) nor the place where
//! statuses are decided (`relocate`).

use std::fmt::Write as _;

use super::{RelocStatus, Report};

/// Render a report for people.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} program{} ({}), {} CO-RE relocation{}",
        r.object,
        r.programs.len(),
        if r.programs.len() == 1 { "" } else { "s" },
        r.programs.join(", "),
        r.relocations,
        if r.relocations == 1 { "" } else { "s" }
    );
    for k in &r.kernels {
        let _ = write!(out, "{} ({}): {}", k.kernel, k.release, if k.ok { "ok" } else { "FAIL" });
        match (&k.btf, k.external_btf) {
            (Some(b), true) => {
                let _ = writeln!(out, " (no BTF of its own: against the external BTF {b})");
            }
            _ => out.push('\n'),
        }
        if let Some(e) = &k.error {
            let _ = writeln!(out, "  {e}");
        }
        for p in &k.programs {
            let count = |s| p.relocations.iter().filter(|x| x.status == s).count();
            let _ = writeln!(
                out,
                "  {} ({}): {}, {} applied, {} guarded, {} failed",
                p.program,
                p.kind,
                if p.ok { "ok" } else { "FAIL" },
                count(RelocStatus::Applied),
                count(RelocStatus::Guarded),
                count(RelocStatus::Failed)
            );
            let w = p.relocations.iter().map(|x| x.spec.len()).max().unwrap_or(0);
            for x in &p.relocations {
                let st = match x.status {
                    RelocStatus::Applied => "applied",
                    RelocStatus::Guarded => "guarded",
                    RelocStatus::Failed => "FAILED",
                };
                let _ = writeln!(out, "    {st:7}  {:17}  {:w$}  {:8}  {}", x.kind, x.spec, x.access, x.detail);
            }
        }
    }
    let failed = r.kernels.iter().filter(|k| !k.ok).count();
    let _ = writeln!(
        out,
        "{} kernel{}, {failed} with failures",
        r.kernels.len(),
        if r.kernels.len() == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core_check::{KernelReport, ProgramReport, Reloc};

    fn reloc(spec: &str, status: RelocStatus, detail: &str) -> Reloc {
        Reloc {
            kind: "field_byte_offset",
            type_name: "task_struct".into(),
            access: "0:1".into(),
            spec: spec.into(),
            function: "core_task".into(),
            insn: 3,
            status,
            detail: detail.into(),
        }
    }

    #[test]
    fn one_line_per_kernel_program_and_relocation() {
        let r = Report {
            object: "core.bpf.o".into(),
            programs: vec!["core_task".into()],
            relocations: 2,
            kernels: vec![
                KernelReport {
                    kernel: "debian-6.1".into(),
                    release: "6.1.0-50-amd64".into(),
                    btf: None,
                    external_btf: false,
                    ok: false,
                    error: None,
                    programs: vec![ProgramReport {
                        program: "core_task".into(),
                        kind: "kprobe".into(),
                        ok: false,
                        relocations: vec![
                            reloc("task_struct.pid", RelocStatus::Applied, "offset 2264"),
                            reloc("task_struct.x", RelocStatus::Failed, "gone"),
                        ],
                    }],
                },
                KernelReport {
                    kernel: "local".into(),
                    release: "7.0".into(),
                    btf: Some("/x/k.btf".into()),
                    external_btf: true,
                    ok: false,
                    error: Some("aya refuses the object's CO-RE relocations on local".into()),
                    programs: Vec::new(),
                },
            ],
        };
        assert_eq!(
            render(&r),
            "core.bpf.o: 1 program (core_task), 2 CO-RE relocations\n\
             debian-6.1 (6.1.0-50-amd64): FAIL\n  \
             core_task (kprobe): FAIL, 1 applied, 0 guarded, 1 failed\n    \
             applied  field_byte_offset  task_struct.pid  0:1       offset 2264\n    \
             FAILED   field_byte_offset  task_struct.x    0:1       gone\n\
             local (7.0): FAIL (no BTF of its own: against the external BTF /x/k.btf)\n  \
             aya refuses the object's CO-RE relocations on local\n\
             2 kernels, 2 with failures\n"
        );
    }
}
