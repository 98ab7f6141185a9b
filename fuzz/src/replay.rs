//! Every target's corpus (`corpus/<target>/`: real fixtures as seeds, and each crash cargo-fuzz
//! found, as a regression input) replayed on stable in `cargo test --workspace`, each input as it
//! is and then [`MUTATIONS`] deterministic mutations of them. Each input must return without a
//! panic, within [`TIME_BOUND`] (a watchdog thread names the input that hangs), and without its
//! live allocations passing [`ALLOC_BOUND`] (a counting global allocator, per thread).
//!
//! A failing input is written to the system's temporary directory, to be fed to
//! `cargo +nightly fuzz run <target> <file>` or added to the corpus once fixed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::mutate::{mutate, seed_of, Rng};
use crate::TARGETS;

/// Mutated inputs per target, on top of the corpus itself.
const MUTATIONS: usize = 2000;
/// Longest a mutation may grow an input to.
const MAX_INPUT: usize = 64 << 10;
/// Longest one input may take (debug build, a loaded 2-core machine).
const TIME_BOUND: Duration = Duration::from_secs(5);
/// Most memory one input may hold at once: a length field that claims 4 GB must not get it.
const ALLOC_BOUND: usize = 256 << 20;
/// The stack of the thread the targets run on: std's default for spawned threads, which is
/// where core-check and blocking work run in the CLI (smaller than the main thread's).
const STACK: usize = 2 << 20;

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = LIVE.try_with(|live| {
        let v = live.get().saturating_add(n);
        live.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn shrank(n: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// thread-local cells with constant initialisers and no destructors, so they never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        shrank(layout.size());
        grew(new_size);
        // SAFETY: as for `dealloc`, and `new_size` is the caller's, under realloc's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The corpus of `target`, sorted by file name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The inputs of one replay: the corpus, then its mutations, each with a name that says how to
/// make it again.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let seeds = corpus(target);
    assert!(!seeds.is_empty(), "corpus/{target} is empty");
    let mut rng = Rng::new(seed_of(target));
    let mut out = seeds.clone();
    for k in 0..MUTATIONS {
        let (name, seed) = &seeds[k % seeds.len()];
        let other = &seeds[rng.below(seeds.len())].1;
        out.push((format!("{name}, mutation {k}"), mutate(seed, other, &mut rng, MAX_INPUT)));
    }
    out
}

#[derive(Default)]
struct Current {
    label: String,
    data: Vec<u8>,
    started: Option<Instant>,
}

/// Save a failing input where a person can pick it up.
fn save(target: &str, c: &Current) -> String {
    let p = std::env::temp_dir().join(format!("kmatrix-fuzz-{target}-{}", std::process::id()));
    match std::fs::write(&p, &c.data) {
        Ok(()) => p.display().to_string(),
        Err(e) => format!("(not saved: {e})"),
    }
}

fn replay(target: &str) {
    let run = TARGETS.iter().find(|t| t.name == target).unwrap_or_else(|| panic!("no target {target}")).run;
    check(target, run, inputs(target), TIME_BOUND);
}

/// Run `inputs` through `run` on a thread of its own, watched: a panic, an input that takes
/// longer than `time_bound` or one that holds more than [`ALLOC_BOUND`] fails the test, naming
/// the input.
fn check(target: &str, run: fn(&[u8]), inputs: Vec<(String, Vec<u8>)>, time_bound: Duration) {
    let total = inputs.len();
    let current = Arc::new(Mutex::new(Current::default()));
    let shared = current.clone();
    let started = Instant::now();
    let worker = std::thread::Builder::new()
        .name(format!("fuzz-{target}"))
        .stack_size(STACK)
        .spawn(move || {
            let mut over = Vec::new();
            for (label, data) in inputs {
                *shared.lock().unwrap() =
                    Current { label: label.clone(), data: data.clone(), started: Some(Instant::now()) };
                let base = LIVE.with(Cell::get);
                PEAK.with(|p| p.set(base));
                run(&data);
                let peak = PEAK.with(Cell::get) - base;
                if peak > ALLOC_BOUND {
                    over.push(format!("{label}: {peak} bytes live at once ({} byte input)", data.len()));
                }
                shared.lock().unwrap().started = None;
            }
            over
        })
        .unwrap();
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
        let c = current.lock().unwrap();
        if let Some(t) = c.started.filter(|t| t.elapsed() > time_bound) {
            let saved = save(target, &c);
            panic!("{target}: input {:?} still running after {:?}: a hang; saved to {saved}", c.label, t.elapsed());
        }
    }
    match worker.join() {
        Ok(over) => assert!(over.is_empty(), "{target}: allocations over {ALLOC_BOUND} bytes:\n{}", over.join("\n")),
        Err(_) => {
            let c = current.lock().unwrap_or_else(|p| p.into_inner());
            let saved = save(target, &c);
            panic!("{target}: input {:?} panicked (its message is above); saved to {saved}", c.label);
        }
    }
    eprintln!("{target}: {total} inputs in {:.2} s", started.elapsed().as_secs_f64());
}

macro_rules! replay_tests {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_replayed() {
            let mut tested = vec![$(stringify!($name)),*];
            let mut all: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
            tested.sort();
            all.sort();
            assert_eq!(tested, all);
        }
    };
}

replay_tests!(
    channel console release packages deb compress kernel_image config matrix lock expectations elf btf btf_ext
    bpf_object results trace function_graph format kprobe_profile hist readme stats
);

/// The seeds are what the parsers accept, so mutations start deep inside them rather than at
/// the first check.
#[test]
fn seeds_are_valid_inputs() {
    use kmatrix::vm::channel::{decode, Frame, LineDecoder};
    use std::path::Path;
    let valid = |target: &str, name: &str, data: &[u8]| -> bool {
        let text = String::from_utf8_lossy(data);
        match target {
            "channel" => {
                let mut d = LineDecoder::new(1 << 20);
                let mut frames = Vec::new();
                d.push(&data[1..], &mut frames);
                !frames.is_empty() && frames.iter().all(|f| matches!(f, Frame::Line(l) if decode(l).is_ok()))
            }
            "release" => {
                let inner = kmatrix::kernel::index::strip_clearsign(&text).unwrap_or(text.to_string());
                kmatrix::kernel::index::parse_release(&inner, name).is_ok()
            }
            "packages" => !kmatrix::kernel::index::parse_packages(&text).is_empty(),
            "deb" => {
                let mut n = 0;
                kmatrix::kernel::deb::read_files(data, name, |_, _, _| {
                    n += 1;
                    Ok(())
                })
                .is_ok()
                    && n == 4
            }
            "matrix" => kmatrix::kernel::Matrix::parse(&text, name).is_ok(),
            "lock" => kmatrix::kernel::Lock::parse(&text, name).is_ok(),
            "expectations" => {
                use kmatrix::run::verdict::{Expectations, Role};
                let role = if name == "expected.toml" { Role::Pins } else { Role::Verdicts };
                Expectations::parse(&text, name, role).is_ok()
            }
            "bpf_object" if !name.starts_with("regress-") => {
                kmatrix::bpf_object::parse(Path::new(name), data.to_vec()).is_ok()
            }
            "btf" => kmatrix::btf::BtfTable::parse(data).is_ok(),
            "results" => kmatrix::run::results::read_from(data, Path::new(name)).is_ok_and(|r| r.len() >= 4),
            _ => true,
        }
    };
    for t in TARGETS {
        for (name, data) in corpus(t.name) {
            assert!(valid(t.name, &name, &data), "corpus/{}/{name} is not a valid input", t.name);
        }
    }
}

/// The crashes cargo-fuzz found in `bpf_object` are named by the harness's own checks, not
/// left to the containment of aya-obj's panics: each regression input is a clear error.
#[test]
fn bpf_object_regressions_are_named_before_aya_sees_them() {
    let regressions: Vec<_> = corpus("bpf_object").into_iter().filter(|(n, _)| n.starts_with("regress-")).collect();
    assert!(!regressions.is_empty());
    for (name, data) in regressions {
        let e = kmatrix::bpf_object::parse(std::path::Path::new(&name), data).unwrap_err();
        assert!(matches!(e, kmatrix::bpf_object::ObjectError::Btf { .. }), "{name}: {e}");
    }
}

/// The bounds themselves can fail: a hang, a panic and a large reservation are each caught.
mod bounds {
    use super::*;

    fn one(data: &[u8]) -> Vec<(String, Vec<u8>)> {
        vec![("good".into(), b"fine".to_vec()), ("bad".into(), data.to_vec())]
    }

    #[test]
    #[should_panic(expected = "input \"bad\" still running after")]
    fn a_hang_is_named() {
        fn slow(d: &[u8]) {
            if d == b"slow" {
                std::thread::sleep(Duration::from_millis(400));
            }
        }
        check("test", slow, one(b"slow"), Duration::from_millis(100));
    }

    #[test]
    #[should_panic(expected = "input \"bad\" panicked")]
    fn a_panic_is_named() {
        fn boom(d: &[u8]) {
            assert_ne!(d, b"boom");
        }
        check("test", boom, one(b"boom"), TIME_BOUND);
    }

    #[test]
    #[should_panic(expected = "bad: 268435457 bytes live at once")]
    fn a_large_reservation_is_named() {
        fn greedy(d: &[u8]) {
            if d == b"4 GB" {
                std::hint::black_box(Vec::<u8>::with_capacity(ALLOC_BOUND + 1));
            }
        }
        check("test", greedy, one(b"4 GB"), TIME_BOUND);
    }
}
