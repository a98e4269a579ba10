//! The array elementary functions: accuracy against the C library's, the same bits from the
//! array kernels as from the scalar functions, and the special values.
use bnnc::math::vmath;
use rand::{RngExt, SeedableRng};

/// Distance in units in the last place between two finite doubles of the same sign, or 0
/// when both are the same non-finite value.
fn ulps(a: f64, b: f64) -> u64 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    if !a.is_finite() || !b.is_finite() || a.signum() != b.signum() {
        return u64::MAX;
    }
    a.abs().to_bits().abs_diff(b.abs().to_bits())
}

type Case = (&'static str, fn(f64) -> f64, fn(f64) -> f64, fn(&[f64], &mut [f64]), u64);

fn cases() -> Vec<Case> {
    vec![
        ("exp", vmath::exp, f64::exp, vmath::exp_array, 1),
        ("expm1", vmath::expm1, f64::exp_m1, vmath::expm1_array, 2),
        ("ln", vmath::ln, f64::ln, vmath::ln_array, 1),
        ("ln_1p", vmath::ln_1p, f64::ln_1p, vmath::ln_1p_array, 2),
        ("tanh", vmath::tanh, f64::tanh, vmath::tanh_array, 3),
    ]
}

/// Sample points: uniform over several ranges (small, moderate, the whole finite range by
/// exponent) and the function's own boundaries.
fn points(name: &str, rng: &mut rand::rngs::StdRng) -> Vec<f64> {
    let mut xs = Vec::new();
    let ranges: &[(f64, f64)] = match name {
        "exp" => &[(-1.0, 1.0), (-745.2, 709.78), (-30.0, 30.0), (-709.0, -700.0), (700.0, 709.78), (-745.2, -708.0)],
        "expm1" => &[(-1e-10, 1e-10), (-0.5, 0.5), (-2.0, 2.0), (-40.0, 40.0), (-60.0, 709.78), (700.0, 709.78)],
        "tanh" => &[(-1e-8, 1e-8), (-0.6, 0.6), (-3.0, 3.0), (-25.0, 25.0)],
        "ln" => &[(0.5, 2.0), (0.9, 1.1), (0.0, 1e-300), (0.0, 10.0), (1.0, 1e300)],
        _ => &[(-1e-10, 1e-10), (-0.3, 0.5), (-1.0, 1.0), (-1.0, 10.0), (1.0, 1e300)],
    };
    for &(lo, hi) in ranges {
        for _ in 0..40_000 {
            xs.push(lo + (hi - lo) * rng.random::<f64>());
        }
    }
    // Log-uniform magnitudes across the exponent range.
    for _ in 0..40_000 {
        let m = 1.0 + rng.random::<f64>();
        let e = rng.random_range(-1074i32..1024);
        let x = m * 2f64.powi(e.max(-1022)) * if e < -1022 { 2f64.powi(e + 1022) } else { 1.0 };
        xs.push(x);
        xs.push(-x);
    }
    xs
}

#[test]
fn accuracy_against_the_c_library() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261122);
    for (name, ours, libc, _, bound) in cases() {
        let mut worst = (0u64, 0.0f64);
        for x in points(name, &mut rng) {
            let (a, b) = (ours(x), libc(x));
            // Subnormal results: compare absolutely, in units of the smallest subnormal.
            let d = if b.abs() < f64::MIN_POSITIVE { (a - b).abs().to_bits().min(ulps(a, b)) } else { ulps(a, b) };
            if d > worst.0 {
                worst = (d, x);
            }
        }
        println!("{name}: max {} ulps (at {:e})", worst.0, worst.1);
        assert!(worst.0 <= bound, "{name}: {} ulps from the C library at {:e} (bound {bound})", worst.0, worst.1);
    }
}

#[test]
fn arrays_give_the_scalar_functions_bits() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (name, ours, _, array, _) in cases() {
        for n in 0..=70 {
            let x: Vec<f64> = (0..n).map(|_| 40.0 * rng.random::<f64>() - 20.0).collect();
            let mut y = vec![0.0; n];
            array(&x, &mut y);
            for (xi, yi) in x.iter().zip(&y) {
                assert_eq!(yi.to_bits(), ours(*xi).to_bits(), "{name}({xi}) in an array of {n}");
            }
        }
        let x = points(name, &mut rng);
        let mut y = vec![0.0; x.len()];
        array(&x, &mut y);
        for (xi, yi) in x.iter().zip(&y) {
            assert_eq!(yi.to_bits(), ours(*xi).to_bits(), "{name}({xi:e})");
        }
    }
}

#[test]
fn special_values() {
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    let same = |a: f64, b: f64| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
    type Check = (&'static str, fn(f64) -> f64, f64, f64);
    let checks: &[Check] = &[
        ("exp", vmath::exp, 0.0, 1.0),
        ("exp", vmath::exp, -0.0, 1.0),
        ("exp", vmath::exp, inf, inf),
        ("exp", vmath::exp, -inf, 0.0),
        ("exp", vmath::exp, 710.0, inf),
        ("exp", vmath::exp, -746.0, 0.0),
        ("exp", vmath::exp, nan, nan),
        ("expm1", vmath::expm1, 0.0, 0.0),
        ("expm1", vmath::expm1, -0.0, -0.0),
        ("expm1", vmath::expm1, inf, inf),
        ("expm1", vmath::expm1, -inf, -1.0),
        ("expm1", vmath::expm1, 710.0, inf),
        ("expm1", vmath::expm1, 1e-300, 1e-300),
        ("expm1", vmath::expm1, nan, nan),
        ("ln", vmath::ln, 1.0, 0.0),
        ("ln", vmath::ln, 0.0, -inf),
        ("ln", vmath::ln, -0.0, -inf),
        ("ln", vmath::ln, -1.0, nan),
        ("ln", vmath::ln, inf, inf),
        ("ln", vmath::ln, -inf, nan),
        ("ln", vmath::ln, std::f64::consts::E, 1.0),
        ("ln", vmath::ln, nan, nan),
        ("ln_1p", vmath::ln_1p, 0.0, 0.0),
        ("ln_1p", vmath::ln_1p, -0.0, -0.0),
        ("ln_1p", vmath::ln_1p, -1.0, -inf),
        ("ln_1p", vmath::ln_1p, -2.0, nan),
        ("ln_1p", vmath::ln_1p, inf, inf),
        ("ln_1p", vmath::ln_1p, 1e-300, 1e-300),
        ("ln_1p", vmath::ln_1p, nan, nan),
        ("tanh", vmath::tanh, 0.0, 0.0),
        ("tanh", vmath::tanh, -0.0, -0.0),
        ("tanh", vmath::tanh, inf, 1.0),
        ("tanh", vmath::tanh, -inf, -1.0),
        ("tanh", vmath::tanh, 30.0, 1.0),
        ("tanh", vmath::tanh, 1e-300, 1e-300),
        ("tanh", vmath::tanh, nan, nan),
    ];
    for &(name, f, x, want) in checks {
        assert!(same(f(x), want), "{name}({x:e}) = {:e}, expected {want:e}", f(x));
    }
    assert!(ulps(vmath::exp(1.0), std::f64::consts::E) <= 1);
    // The smallest subnormal and the largest finite argument of ln.
    assert_eq!(vmath::ln(f64::from_bits(1)), f64::from_bits(1).ln());
    assert_eq!(vmath::ln(f64::MAX), f64::MAX.ln());
}

/// bernoulli_logit's terms and partials against the C library's softplus and sigmoid; the
/// array sum against the terms one by one; broadcast arguments.
#[test]
fn bernoulli_logit_terms_sums_and_partials() {
    let softplus = |t: f64| if t > 0.0 { t + (-t).exp().ln_1p() } else { t.exp().ln_1p() };
    let sigmoid = |t: f64| if t >= 0.0 { 1.0 / (1.0 + (-t).exp()) } else { t.exp() / (1.0 + t.exp()) };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let n = 1001;
    let a: Vec<f64> = (0..n).map(|_| 60.0 * rng.random::<f64>() - 30.0).collect();
    let y: Vec<f64> = (0..n).map(|_| f64::from(rng.random::<bool>())).collect();
    let mut worst = (0, 0);
    for (yi, ai) in y.iter().zip(&a) {
        let want = if *yi == 1.0 { -softplus(-ai) } else { -softplus(*ai) };
        let dwant = if *yi == 1.0 { sigmoid(-ai) } else { -sigmoid(*ai) };
        worst.0 = worst.0.max(ulps(vmath::bernoulli_logit_term(*yi, *ai), want));
        worst.1 = worst.1.max(ulps(vmath::bernoulli_logit_term_da(*yi, *ai), dwant));
    }
    assert!(worst.0 <= 4 && worst.1 <= 4, "terms {} and partials {} ulps from the C library", worst.0, worst.1);
    let sum = vmath::bernoulli_logit_checked(&y, &a, n, None).expect("valid arguments");
    let one_by_one: f64 = y.iter().zip(&a).map(|(yi, ai)| vmath::bernoulli_logit_term(*yi, *ai)).sum();
    assert!((sum - one_by_one).abs() <= 1e-12 * one_by_one.abs(), "{sum} vs {one_by_one}");
    let mut d = vec![f64::NAN; n];
    vmath::bernoulli_logit_partials(&y, &a, n, |i, di| d[i] = di);
    for i in 0..n {
        assert_eq!(d[i].to_bits(), vmath::bernoulli_logit_term_da(y[i], a[i]).to_bits());
    }
    // A broadcast logit and a broadcast label.
    let b = vmath::bernoulli_logit_checked(&y, &[0.3], n, None).expect("valid arguments");
    let b1: f64 = y.iter().map(|yi| vmath::bernoulli_logit_term(*yi, 0.3)).sum();
    assert!((b - b1).abs() <= 1e-12 * b1.abs());
    let c = vmath::bernoulli_logit_checked(&[1.0], &a, n, None).expect("valid arguments");
    let c1: f64 = a.iter().map(|ai| vmath::bernoulli_logit_term(1.0, *ai)).sum();
    assert!((c - c1).abs() <= 1e-12 * c1.abs());
}

/// Two-argument log-sum-exp: its value and partials against the C library's `exp` and `log1p`,
/// the array form (blocks of 32, groups of four, a tail; broadcast arguments) with the bits of
/// the scalar form, and the infinities.
#[test]
fn log_add_exp_values_partials_and_arrays() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(29);
    let mut worst = (0u64, 0u64, 0u64);
    for scale in [1e-3, 1.0, 30.0, 800.0] {
        for _ in 0..20_000 {
            let a = scale * (2.0 * rng.random::<f64>() - 1.0);
            let b = scale * (2.0 * rng.random::<f64>() - 1.0);
            let (y, da, db) = vmath::log_add_exp(a, b);
            let (m, e) = (a.max(b), (-(a - b).abs()).exp());
            let want = m + e.ln_1p();
            let (big, small) = (1.0 / (1.0 + e), e / (1.0 + e));
            let (wa, wb) = if a >= b { (big, small) } else { (small, big) };
            // m + ln(1 + e) can cancel: the error is measured against the terms' size.
            let err = (y - want).abs() / (f64::EPSILON * (m.abs() + e.ln_1p()));
            worst.0 = worst.0.max(err.ceil() as u64);
            if wa > 1e-300 && wb > 1e-300 {
                worst.1 = worst.1.max(ulps(da, wa));
                worst.2 = worst.2.max(ulps(db, wb));
            } else {
                assert!((da - wa).abs() <= 1e-300 && (db - wb).abs() <= 1e-300, "partials at ({a}, {b})");
            }
        }
    }
    assert!(
        worst.0 <= 2 && worst.1 <= 3 && worst.2 <= 3,
        "value (in ε of its terms), partials (ulps) {worst:?} from the C library"
    );
    // Arrays of every length up to 70, and with either argument broadcast.
    for n in 0..70 {
        let a: Vec<f64> = (0..n).map(|_| 40.0 * rng.random::<f64>() - 20.0).collect();
        let b: Vec<f64> = (0..n).map(|_| 40.0 * rng.random::<f64>() - 20.0).collect();
        for (x, z) in [(&a[..], &b[..]), (&a[..], &[0.7][..]), (&[-1.5][..], &b[..])] {
            if n == 0 && (x.len() == 1 || z.len() == 1) {
                continue;
            }
            let at = |v: &[f64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
            let mut y = vec![f64::NAN; n];
            let mut d = vec![f64::NAN; 2 * n];
            vmath::log_add_exp_array(x, z, &mut y, Some(&mut d));
            let mut y2 = vec![f64::NAN; n];
            vmath::log_add_exp_array(x, z, &mut y2, None);
            for i in 0..n {
                let (v, da, db) = vmath::log_add_exp(at(x, i), at(z, i));
                assert_eq!(y[i].to_bits(), v.to_bits(), "value {i} of {n}");
                assert_eq!(y2[i].to_bits(), v.to_bits(), "value {i} of {n} without partials");
                assert_eq!(d[i].to_bits(), da.to_bits(), "partial in a, {i} of {n}");
                assert_eq!(d[n + i].to_bits(), db.to_bits(), "partial in b, {i} of {n}");
            }
        }
    }
    let inf = f64::INFINITY;
    assert_eq!(vmath::log_add_exp(-inf, -inf).0, -inf);
    assert_eq!(vmath::log_add_exp(inf, 3.0).0, inf);
    assert_eq!(vmath::log_add_exp(inf, inf).0, inf);
    assert_eq!(vmath::log_add_exp(-inf, 2.5), (2.5, 0.0, 1.0));
    assert_eq!(vmath::log_add_exp(1.0, 1.0), (1.0 + std::f64::consts::LN_2, 0.5, 0.5));
    assert!(vmath::log_add_exp(f64::NAN, 1.0).0.is_nan() && vmath::log_add_exp(1.0, f64::NAN).0.is_nan());
}

/// The bulk normal generator against the standard normal: the mean, variance and tail mass of
/// 400,000 draws within five standard errors, the Kolmogorov–Smirnov distance below its 0.1%
/// critical value, the two draws of each Box–Muller pair uncorrelated in their squares, and
/// a short fill the start of a longer one from the same state.
#[test]
fn normal_draws_are_standard_normal() {
    use statrs::distribution::{ContinuousCDF, Normal};
    let n = 400_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut z = vec![0.0; n];
    // In pieces of several lengths, as callers fill buffers.
    let mut at = 0;
    for len in [1usize, 7, 16, 33, 1000].iter().cycle() {
        let end = (at + len).min(n);
        vmath::fill_standard_normal(&mut rng, &mut z[at..end]);
        at = end;
        if at == n {
            break;
        }
    }
    assert!(z.iter().all(|v| v.is_finite()));
    let nf = n as f64;
    let mean = z.iter().sum::<f64>() / nf;
    let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (nf - 1.0);
    assert!(mean.abs() < 5.0 / nf.sqrt(), "mean {mean}");
    assert!((var - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(), "variance {var}");
    let phi = Normal::new(0.0, 1.0).unwrap();
    for t in [1.0, 2.0, 3.0] {
        let p = 2.0 * phi.cdf(-t);
        let got = z.iter().filter(|v| v.abs() > t).count() as f64 / nf;
        assert!((got - p).abs() < 5.0 * (p * (1.0 - p) / nf).sqrt(), "P(|z| > {t}) = {got}, want {p}");
    }
    let mut s = z.clone();
    s.sort_by(f64::total_cmp);
    let d = s
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let f = phi.cdf(*v);
            (f - i as f64 / nf).abs().max(((i + 1) as f64 / nf - f).abs())
        })
        .fold(0.0, f64::max);
    assert!(d < 1.95 / nf.sqrt(), "Kolmogorov-Smirnov distance {d}");
    // Pairs: element k and k + 8 of each block of 16 share u1.
    let mut big = vec![0.0; 160_000];
    vmath::fill_standard_normal(&mut rng, &mut big);
    let (a, b): (Vec<f64>, Vec<f64>) =
        big.chunks_exact(16).flat_map(|c| (0..8).map(move |k| (c[k] * c[k], c[k + 8] * c[k + 8]))).unzip();
    let corr = {
        let m = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / m, b.iter().sum::<f64>() / m);
        let cov = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>();
        let va = a.iter().map(|x| (x - ma) * (x - ma)).sum::<f64>();
        let vb = b.iter().map(|y| (y - mb) * (y - mb)).sum::<f64>();
        cov / (va * vb).sqrt()
    };
    assert!(corr.abs() < 5.0 / (a.len() as f64).sqrt(), "correlation of a pair's squares {corr}");
    let (mut r1, mut r2) = (rand::rngs::StdRng::seed_from_u64(3), rand::rngs::StdRng::seed_from_u64(3));
    let (mut short, mut long) = (vec![0.0; 37], vec![0.0; 64]);
    vmath::fill_standard_normal(&mut r1, &mut short);
    vmath::fill_standard_normal(&mut r2, &mut long);
    assert_eq!(short[..], long[..37]);
}

/// The local reparameterisation's reciprocal square root (bit estimate and four Newton steps)
/// against 1/√x, and √x as x·r against the correctly rounded root, over x from 10⁻¹² (its
/// smallest argument) to 10¹²: within 3 ulps each.
#[test]
fn reciprocal_square_root_within_three_ulps() {
    use bnnc::math::reparam::rsqrt;
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let (mut worst_r, mut worst_s) = (0, 0);
    for i in 0..200_000 {
        let x = if i < 100 { (i * i + 1) as f64 } else { 10f64.powf(rng.random_range(-12.0..12.0)) };
        let r = rsqrt(x);
        worst_r = worst_r.max(ulps(r, 1.0 / x.sqrt()));
        worst_s = worst_s.max(ulps(x * r, x.sqrt()));
    }
    assert!(worst_r <= 3 && worst_s <= 3, "1/sqrt within {worst_r} ulps, sqrt within {worst_s}");
}
