//! Nanoseconds per element of the elementary functions of src/math/vmath.rs, scalar and array
//! forms, against the C library's scalar functions, over 4096-element arrays of typical arguments;
//! and standard normal draws, in bulk against rand_distr's one at a time.
//!
//! cargo bench --bench vmath
use bnnc::math::vmath;
use std::hint::black_box;
use std::time::Instant;

fn per_element(n: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() * 1e9 / (n * reps) as f64
}

type Row = (&'static str, fn(f64) -> f64, fn(f64) -> f64, fn(&[f64], &mut [f64]), f64, f64);

fn main() {
    let n = 4096;
    let reps = 2000;
    let rows: [Row; 5] = [
        ("exp", f64::exp, vmath::exp, vmath::exp_array, -20.0, 20.0),
        ("expm1", f64::exp_m1, vmath::expm1, vmath::expm1_array, -2.0, 2.0),
        ("ln", f64::ln, vmath::ln, vmath::ln_array, 1e-3, 1e3),
        ("ln_1p", f64::ln_1p, vmath::ln_1p, vmath::ln_1p_array, -0.5, 5.0),
        ("tanh", f64::tanh, vmath::tanh, vmath::tanh_array, -4.0, 4.0),
    ];
    println!("| function | C library, ns/element | bnnc scalar | bnnc array | speed-up (array) |");
    println!("|---|---|---|---|---|");
    for (name, libc, scalar, array, lo, hi) in rows {
        let x: Vec<f64> = (0..n).map(|i| lo + (hi - lo) * (i as f64 + 0.5) / n as f64).collect();
        let mut y = vec![0.0; n];
        let c = per_element(n, reps, || {
            for (o, v) in y.iter_mut().zip(&x) {
                *o = libc(black_box(*v));
            }
            black_box(&y);
        });
        let sc = per_element(n, reps, || {
            for (o, v) in y.iter_mut().zip(&x) {
                *o = scalar(black_box(*v));
            }
            black_box(&y);
        });
        let v = per_element(n, reps, || {
            array(black_box(&x), &mut y);
            black_box(&y);
        });
        println!("| {name} | {c:.2} | {sc:.2} | {v:.2} | {:.1}× |", c / v);
    }
    // Standard normal draws: rand_distr's ziggurat on a small fast generator, one at a time,
    // against the bulk Box–Muller fill.
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let mut y = vec![0.0; n];
    let one = per_element(n, reps, || {
        y.iter_mut().for_each(|v| *v = StandardNormal.sample(&mut rng));
        black_box(&y);
    });
    let bulk = per_element(n, reps, || {
        vmath::fill_standard_normal(&mut rng, &mut y);
        black_box(&y);
    });
    println!();
    println!("| standard normal draws | ziggurat, one at a time, ns/draw | bnnc bulk | speed-up |");
    println!("|---|---|---|---|");
    println!("| normal | {one:.2} | {bulk:.2} | {:.1}× |", one / bulk);
}
