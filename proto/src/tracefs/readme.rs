//! Probe syntaxes announced by the tracefs `README`.
//!
//! The README documents `kprobe_events`/`dynamic_events` with one line per probe kind, the
//! first prefixed by `Format:`:
//! `p[:[<group>/][<event>]] <place> [<args>]`, `r[maxactive][:...]`, `f[:...]`, `e[:...]`,
//! `t[:...]`, `s:...`, `-:...`. The text after the kind tells what the kernel accepts (for
//! example `r[maxactive]` and `%return`), so the full line is kept beside the kind.

use crate::ProbeSyntax;

/// Every probe syntax line, in README order, without duplicates.
pub fn probe_syntaxes(readme: &str) -> Vec<ProbeSyntax> {
    let mut out: Vec<ProbeSyntax> = Vec::new();
    for line in readme.lines() {
        let text = line.trim();
        let text = text.strip_prefix("Format:").unwrap_or(text).trim();
        let mut chars = text.chars();
        let (Some(kind), Some(next)) = (chars.next(), chars.next()) else {
            continue;
        };
        // A kind letter (or `-` for removal) followed by its option bracket or its colon, and
        // a placeholder somewhere after: tells syntax lines from prose ("e.g.", "s: ...").
        let is_kind = kind.is_ascii_lowercase() || kind == '-';
        if !is_kind || !(next == '[' || next == ':') || !text.contains('<') {
            continue;
        }
        if out.iter().any(|s| s.text == text) {
            continue;
        }
        out.push(ProbeSyntax { kind: kind.to_string(), text: text.to_string() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_probe_kind_with_its_text() {
        let readme = "\
  kprobe_events\t\t- Add/remove/show the kernel dynamic events
\t  Write into this file to define/undefine new trace events.
\t  accepts: event-definitions (one definition per line)
\t   Format: p[:[<group>/][<event>]] <place> [<args>]
\t           r[maxactive][:[<group>/][<event>]] <place> [<args>]
\t           e[:[<group>/][<event>]] <attached-group>.<attached-event> [<args>] [if <filter>]
\t           -:[<group>/][<event>]
\t    where: <place>: [<module>:]<symbol>[+<offset>]|<memaddr>
\t\t  e.g. p:myprobe do_sys_open
";
        let s = probe_syntaxes(readme);
        let kinds: Vec<&str> = s.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["p", "r", "e", "-"]);
        assert_eq!(s[1].text, "r[maxactive][:[<group>/][<event>]] <place> [<args>]");
    }
}
