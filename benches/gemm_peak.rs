//! The double-precision GEMM peak of this machine, single-threaded, with the kernels the JIT
//! calls for large matrix products (matrixmultiply): the yardstick for the GFLOP/s that
//! matrix-heavy models reach. Then the three products of a dense layer (forward, and the two
//! adjoints) through the unpacked kernels the JIT uses when the weights are small
//! (`bnnc::jit::gemm`), against matrixmultiply on the same shapes. Run with
//! `cargo bench --bench gemm_peak`.

use std::time::Instant;

fn best_of(seconds: f64, run: &mut dyn FnMut()) -> f64 {
    run();
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || times.len() < 5 {
        let t = Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|x, y| x.total_cmp(y));
    times[0]
}

fn data(n: usize, seed: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * seed) % 1000) as f64 / 1000.0 - 0.5).collect()
}

/// `C[m,n] = A[m,k] B[k,n]` (and, with `shape` "nt" / "tn", the two adjoint products
/// `dA[m,k] += dC[m,n] Bᵀ` and `dB[k,n] += Aᵀ dC`), by matrixmultiply or by bnnc's kernels.
fn layer(m: usize, k: usize, n: usize, shape: &str, ours: bool, seconds: f64) -> f64 {
    let (a, b, x) = (data(m * k, 7919), data(k * n, 104729), data(m * n, 15485863));
    let mut c = vec![0.0; m * n.max(k)];
    let mut g = vec![0.0; k * n];
    let mut run = || unsafe {
        match (shape, ours) {
            ("nn", true) => bnnc::jit::gemm::nn(m, k, n, &a, &b, &mut c, bnnc::jit::gemm::Plus::Nothing),
            ("nt", true) => bnnc::jit::gemm::nt(m, k, n, &x, &b, &mut c),
            ("tn", true) => bnnc::jit::gemm::tn(m, k, n, &a, &x, &mut g),
            ("nn", false) => matrixmultiply::dgemm(
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
            ),
            ("nt", false) => matrixmultiply::dgemm(
                m,
                n,
                k,
                1.0,
                x.as_ptr(),
                n as isize,
                1,
                b.as_ptr(),
                1,
                n as isize,
                1.0,
                c.as_mut_ptr(),
                k as isize,
                1,
            ),
            _ => matrixmultiply::dgemm(
                k,
                m,
                n,
                1.0,
                a.as_ptr(),
                1,
                k as isize,
                x.as_ptr(),
                n as isize,
                1,
                1.0,
                g.as_mut_ptr(),
                n as isize,
                1,
            ),
        }
    };
    let best = best_of(seconds, &mut run);
    std::hint::black_box((&c, &g));
    2.0 * (m * k * n) as f64 / best / 1e9
}

/// Σ v in 32 independent lanes (so that the additions do not wait on one another).
#[inline(always)]
fn sum32(v: &[f64]) -> [f64; 32] {
    let mut acc = [0.0f64; 32];
    for c in v.chunks_exact(32) {
        for j in 0..32 {
            acc[j] += c[j];
        }
    }
    acc
}

/// [`sum32`] in AVX-512 registers, the loads the kernels make.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum32_wide(v: &[f64]) -> [f64; 32] {
    sum32(v)
}

/// `v.fill(x)` in AVX-512 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fill_wide(v: &mut [f64], x: f64) {
    v.fill(x)
}

/// GB/s of reading `n` f64s (a sum) and of writing them (a fill), with the widest loads and
/// stores the CPU has.
fn bandwidth(n: usize, seconds: f64) -> (f64, f64) {
    let mut v = data(n, 31);
    let read = best_of(seconds, &mut || {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            std::hint::black_box(unsafe { sum32_wide(&v) });
            return;
        }
        std::hint::black_box(sum32(&v));
    });
    let mut x = 0.0;
    let write = best_of(seconds, &mut || {
        x += 1.0;
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            unsafe { fill_wide(&mut v, x) };
            std::hint::black_box(&v);
            return;
        }
        v.fill(x);
        std::hint::black_box(&v);
    });
    let bytes = (n * 8) as f64;
    (bytes / read / 1e9, bytes / write / 1e9)
}

fn main() {
    println!("dgemm, one thread, best of repeated runs (matrixmultiply 0.3):");
    for (m, k, n) in [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (45730, 9, 50), (5000, 24, 1)] {
        println!("  {m:>6} x {k:>5} x {n:>5}: {:>7.1} GFLOP/s", layer(m, k, n, "nn", false, 1.0));
    }
    println!("\nA dense layer's three products, GFLOP/s (bnnc's unpacked kernels / matrixmultiply):");
    for (m, k, n) in [(45730, 9, 50), (45730, 50, 50), (1000, 50, 50), (308, 6, 50)] {
        print!("  {m:>6} x {k:>3} x {n:>3}:");
        for shape in ["nn", "nt", "tn"] {
            print!("  {shape} {:>5.1} / {:>5.1}", layer(m, k, n, shape, true, 0.5), layer(m, k, n, shape, false, 0.5));
        }
        println!();
    }
    println!("\nMemory, one core, GB/s (read: a sum; write: a fill):");
    for (label, n) in [
        ("256 KiB (second-level cache)", 32 * 1024),
        ("1 MiB (second-level cache)", 128 * 1024),
        ("512 MiB (memory)", 64 * 1024 * 1024),
    ] {
        let (r, w) = bandwidth(n, 0.5);
        println!("  {label:>30}: read {r:>6.1}  write {w:>6.1}");
    }
}
