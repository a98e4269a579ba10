//! The double-precision GEMM peak of this machine, single-threaded, with the same kernels the
//! JIT calls for matrix products (matrixmultiply): the yardstick for the GFLOP/s that
//! matrix-heavy models reach. Run with `cargo bench --bench gemm_peak`.

use std::time::Instant;

fn gflops(m: usize, k: usize, n: usize, seconds: f64) -> f64 {
    let a: Vec<f64> = (0..m * k).map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5).collect();
    let b: Vec<f64> = (0..k * n).map(|i| ((i * 104729) % 1000) as f64 / 1000.0 - 0.5).collect();
    let mut c = vec![0.0; m * n];
    let mut run = || unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    };
    run();
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || times.len() < 5 {
        let t = Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|x, y| x.total_cmp(y));
    let best = times[0];
    std::hint::black_box(&c);
    2.0 * (m * k * n) as f64 / best / 1e9
}

fn main() {
    println!("dgemm, one thread, best of repeated runs (matrixmultiply 0.3):");
    for (m, k, n) in [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (45730, 9, 50), (5000, 24, 1)] {
        println!("  {m:>6} x {k:>5} x {n:>5}: {:>7.1} GFLOP/s", gflops(m, k, n, 1.0));
    }
}
