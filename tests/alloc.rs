//! After the first evaluation, neither the interpreter nor the compiled code allocates per log
//! density and gradient evaluation (buffers are sized by the first one, or when compiling).
//! Counted with a global allocator in this test binary.

use bnnc::density::LogDensity;
use bnnc::driver::frontend_file;
use bnnc::ir::interp::Interp;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static COUNT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Counting is on for this thread only: the test harness's own threads (reporting a
    /// finished test, say) allocate while another test measures.
    static ON: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.try_with(|c| c.get()).unwrap_or(false) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The counter is global: the tests of this file take turns.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn count_per_evaluation(d: &mut dyn LogDensity, dim: usize) -> usize {
    let theta: Vec<f64> = (0..dim).map(|i| 0.1 * (i % 7) as f64 - 0.2).collect();
    let mut grad = vec![0.0; dim];
    d.logp_grad(&theta, &mut grad).expect("finite");
    COUNT.store(0, Ordering::SeqCst);
    ON.with(|c| c.set(true));
    for _ in 0..5 {
        let _ = d.logp_grad(&theta, &mut grad);
    }
    ON.with(|c| c.set(false));
    COUNT.load(Ordering::SeqCst) / 5
}

/// Every posteriordb model and every example, with its data: (name, model, data).
fn cases() -> Vec<(String, PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/posteriordb");
    let mut out: Vec<(String, PathBuf, PathBuf)> = std::fs::read_dir(&root)
        .expect("posteriordb")
        .flatten()
        .filter(|e| e.path().join("model.bnn").exists())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path().join("model.bnn"), e.path().join("data.json")))
        .collect();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for e in std::fs::read_dir(&examples).expect("examples").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "bnn") {
            let data = bnnc::driver::data_path(&p, None).unwrap_or_else(|| p.with_extension("json"));
            out.push((format!("examples/{}", e.file_name().to_string_lossy()), p.clone(), data));
        }
    }
    out.sort();
    out
}

/// For every case, the allocations per evaluation of the density `count` makes and measures;
/// a line for each case that allocates.
fn allocating(count: impl Fn(&bnnc::ir::Program) -> usize) -> Vec<String> {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut report = Vec::new();
    for (name, model, data) in cases() {
        let mut fe = frontend_file(&model);
        let program = fe.program(&model, Some(&data)).expect("lowers");
        let n = count(&program);
        if n > 0 {
            report.push(format!("{name}: {n} allocations per evaluation"));
        }
    }
    report
}

#[test]
fn compiled_code_allocates_nothing_per_gradient() {
    let report = allocating(|p| count_per_evaluation(&mut bnnc::jit::Jit::new(p).expect("compiles"), p.dim()));
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn no_allocation_per_gradient_after_the_first() {
    let report = allocating(|p| count_per_evaluation(&mut Interp::new(p), p.dim()));
    assert!(report.is_empty(), "{}", report.join("\n"));
}
