//! After the first evaluation, the interpreter allocates nothing per log density and
//! gradient evaluation (its buffers are sized by the first one). Counted with a global
//! allocator in this test binary.

use bnnc::driver::frontend_file;
use bnnc::infer::density::LogDensity;
use bnnc::ir::interp::Interp;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static COUNT: AtomicUsize = AtomicUsize::new(0);
static ON: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
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

#[test]
fn no_allocation_per_gradient_after_the_first() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/posteriordb");
    let mut report = Vec::new();
    for name in [
        "eight_schools-eight_schools_noncentered",
        "kidiq-kidscore_interaction",
        "earnings-logearn_height",
        "mesquite-logmesquite_logvolume",
        "nes1972-nes",
        "sblrc-blr",
        "arK-arK",
        "arma-arma11",
        "garch-garch11",
        "low_dim_gauss_mix-low_dim_gauss_mix",
        "diamonds-diamonds",
        // Not yet: gp_pois_regr-gp_regr (multi_normal_cholesky in math::dist allocates
        // its working vectors per call).
    ] {
        let model = root.join(name).join("model.bnn");
        let mut fe = frontend_file(&model);
        let program = fe.program(&model, Some(&root.join(name).join("data.json"))).expect("lowers");
        let mut interp = Interp::new(&program);
        let theta: Vec<f64> = (0..program.dim()).map(|i| 0.1 * (i % 7) as f64 - 0.2).collect();
        let mut grad = vec![0.0; program.dim()];
        interp.logp_grad(&theta, &mut grad).expect("finite");
        COUNT.store(0, Ordering::SeqCst);
        ON.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            let _ = interp.logp_grad(&theta, &mut grad);
        }
        ON.store(false, Ordering::SeqCst);
        let n = COUNT.load(Ordering::SeqCst);
        if n > 0 {
            report.push(format!("{name}: {} allocations per evaluation", n / 5));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}
