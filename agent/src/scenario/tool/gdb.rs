//! `tool.gdb.*`: the notes' gdb session on `hello` (`b main`, `info break`, `x/20x`, `info
//! frame`, `p message`, `disas main`) with the host's gdb (Debian's gdb), built on ptrace(2) and
//! breakpoints in the guest's kernel.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::host_tool::{step, Tool, Workdir};
use crate::scenario::support::verdict::{count, verdict};
use crate::scenario::support::workload::HELLO_DYN;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

pub const GDB: Tool = Tool::asking("gdb", "/usr/bin/gdb", "gdb", &["--version"]);

/// The notes' gdb session on hello, in batch mode: `b main` and a breakpoint on hello_greet,
/// both listed by `info break`; the program stops at main first, where `x/20x $sp` prints 20
/// words from the address `p/x $sp` printed; then the hello_greet breakpoint stops it exactly N
/// times (`Breakpoint 2, hello_greet (message=...)`), `p message` prints the greeting, `info
/// frame` describes the frame, the program exits normally, and `disas main` shows the call to
/// hello_greet.
// ptrace breakpoints are as old as Linux; PTRACE_GETREGSET-era gdb needs 2.6.33.
pub const HELLO: Scenario = Meta::new("tool.gdb.hello", "2.6.33")
    .summary("gdb -batch on hello-dyn N: b main, info break, x/20x $sp at main, break hello_greet stops N times, p message, info frame, exits normally, disas main calls hello_greet")
    .requires(&[Req::Program(HELLO_DYN), GDB.req()])
    .params(&[("count", "3"), ("program", HELLO_DYN)])
    .run(hello);

fn hello(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    anyhow::ensure!(n <= 50, "parameter count={n}: at most 50 breakpoint stops");
    let dir = Workdir::new()?;
    let prog = dir.copy_program(ctx, HELLO_DYN)?;
    let ns = n.to_string();
    let mut argv = vec!["/usr/bin/gdb", "-batch", "-nx", "-ex", "break main", "-ex", "break hello_greet"];
    argv.extend_from_slice(&["-ex", "info break", "-ex", "run", "-ex", "p/x $sp", "-ex", "x/20x $sp"]);
    argv.extend_from_slice(&["-ex", "continue", "-ex", "p message", "-ex", "info frame"]);
    for _ in 0..n {
        argv.extend_from_slice(&["-ex", "continue"]);
    }
    argv.extend_from_slice(&["-ex", "disas main", "--args", &prog, &ns]);
    let out = step!(dir.step(ctx, &GDB, &argv, "gdb -batch failed"));
    let mut r = verdict(ctx.id(), session_counts(n, &out.stdout), Vec::new());
    r.detail = GDB.detail(serde_json::json!({}));
    Ok(r.with_excerpt(&excerpt::head(&out.stdout, 40)))
}

/// The checks of the session's output `text` for N stops at hello_greet.
fn session_counts(n: u64, text: &str) -> Vec<kmatrix_proto::Count> {
    // `1       breakpoint     keep y   0x0000000000001322 in main at hello.c:56`
    let lists = |l: &str, num: &str, func: &str| {
        l.split_whitespace().take(4).eq([num, "breakpoint", "keep", "y"]) && l.contains(&format!(" in {func} at "))
    };
    let listed = text.lines().filter(|l| lists(l, "1", "main") || lists(l, "2", "hello_greet")).count() as u64;
    let at_main = text.lines().filter(|l| l.starts_with("Breakpoint 1, main (")).count() as u64;
    let stops = text.lines().filter(|l| l.starts_with("Breakpoint 2, hello_greet")).count() as u64;
    let sp = text.lines().find_map(|l| l.strip_prefix("$1 = 0x")).and_then(|h| u64::from_str_radix(h.trim(), 16).ok());
    let words = examined_words(text, sp);
    let printed = text.lines().filter(|l| l.starts_with("$2 = ") && l.contains("hello, world!")).count() as u64;
    let exited = u64::from(text.contains("exited normally"));
    let frame = u64::from(text.contains("Stack level 0, frame at"));
    let calls = u64::from(text.lines().any(|l| l.contains("call") && l.contains("<hello_greet>")));
    vec![
        count("info break listing main (1) and hello_greet (2)", 2, listed),
        count("stops at the main breakpoint", 1, at_main),
        count("x/20x words from the address p/x $sp printed", 20, words),
        count("stops at the hello_greet breakpoint", n, stops),
        count("p message printing the greeting", 1, printed),
        count("info frame describing frame 0", 1, frame),
        count("program exited normally", 1, exited),
        count("disas main showing the call to hello_greet", 1, calls),
    ]
}

/// The words `x/NNx` printed in lines `0xADDR:\t0x........\t...` that follow one another from
/// the address `from` on (16 bytes a line); 0 when `from` is unknown or no line starts there.
fn examined_words(text: &str, from: Option<u64>) -> u64 {
    let Some(mut next) = from else { return 0 };
    let mut words = 0;
    for l in text.lines() {
        let Some((addr, rest)) = l.split_once(":\t") else { continue };
        let Some(addr) = addr.strip_prefix("0x").and_then(|a| u64::from_str_radix(a, 16).ok()) else { continue };
        if addr != next {
            continue;
        }
        let w = rest.split_whitespace().filter(|w| w.len() == 10 && w.starts_with("0x")).count() as u64;
        words += w;
        next += 4 * w;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gdb 13.1 (Debian 12) on hello-dyn 3, the scenario's commands, as printed (abridged: the
    /// hello_greet stops after the first and `disas main` to the call).
    const SESSION: &str = "Breakpoint 1 at 0x1322: file hello.c, line 56.
Breakpoint 2 at 0x1309: file hello.c, line 46.
Num     Type           Disp Enb Address            What
1       breakpoint     keep y   0x0000000000001322 in main at hello.c:56
2       breakpoint     keep y   0x0000000000001309 in hello_greet at hello.c:46

Breakpoint 1, main (argc=2, argv=0x7fffffffe768) at hello.c:56
56\t{
$1 = 0x7fffffffe658
0x7fffffffe658:\t0xf7dfb24a\t0x00007fff\t0x00000000\t0x00000000
0x7fffffffe668:\t0x55555322\t0x00005555\t0x00000000\t0x00000002
0x7fffffffe678:\t0xffffe768\t0x00007fff\t0xffffe768\t0x00007fff
0x7fffffffe688:\t0xc5408c8e\t0x2ec968c5\t0x00000000\t0x00000000
0x7fffffffe698:\t0xffffe780\t0x00007fff\t0x55557dd0\t0x00005555

Breakpoint 2, hello_greet (message=message@entry=0x7fffffffe621 \"hello, world!\\n\") at hello.c:46
46\t{
$2 = 0x7fffffffe621 \"hello, world!\\n\"
Stack level 0, frame at 0x7fffffffe500:
[Inferior 1 (process 18317) exited normally]
   0x000055555555535f <+61>:\tcall   0x555555555269 <hello_greet>
";

    #[test]
    fn the_session_is_checked_line_by_line() {
        let c = session_counts(1, SESSION);
        assert!(c.iter().all(|c| c.expected == c.observed), "{c:?}");
        // x/20x from another address than $sp, or cut short, is not the notes' x/20x.
        assert_eq!(examined_words(SESSION, Some(0x7fffffffe668)), 16);
        assert_eq!(examined_words(SESSION, None), 0);
        let cut: String =
            SESSION.lines().filter(|l| !l.starts_with("0x7fffffffe698")).map(|l| format!("{l}\n")).collect();
        let c = session_counts(1, &cut);
        assert_eq!(c[2].observed, 16);
        // A session without `b main` stops at hello_greet as breakpoint 1 and lists one.
        let no_main = SESSION.replace("Breakpoint 1, main", "").replace("1       breakpoint", "");
        let c = session_counts(1, &no_main);
        assert_eq!((c[0].observed, c[1].observed), (1, 0));
    }
}
