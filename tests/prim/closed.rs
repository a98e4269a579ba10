//! Closed forms written independently of src/ (no statrs, no bnnc::math): the special
//! functions the primitives table takes from statrs, by series the tests own.

#![allow(dead_code)]

use std::f64::consts::PI;

/// ln Γ(x) for x > 0: shift to x ≥ 15 with Γ(x + 1) = x Γ(x), then Stirling's series.
pub fn lgamma(x: f64) -> f64 {
    assert!(x > 0.0);
    let mut z = x;
    let mut shift = 0.0;
    while z < 15.0 {
        shift += z.ln();
        z += 1.0;
    }
    let z2 = 1.0 / (z * z);
    let series = (1.0 / z) * (1.0 / 12.0 - z2 * (1.0 / 360.0 - z2 * (1.0 / 1260.0 - z2 * (1.0 / 1680.0))));
    (z - 0.5) * z.ln() - z + 0.5 * (2.0 * PI).ln() + series - shift
}

/// ψ(x) for x > 0: ψ(x) = ψ(x + 1) − 1/x up to x ≥ 15, then the asymptotic series.
pub fn digamma(x: f64) -> f64 {
    assert!(x > 0.0);
    let mut z = x;
    let mut acc = 0.0;
    while z < 15.0 {
        acc -= 1.0 / z;
        z += 1.0;
    }
    let z2 = 1.0 / (z * z);
    acc + z.ln() - 0.5 / z - z2 * (1.0 / 12.0 - z2 * (1.0 / 120.0 - z2 * (1.0 / 252.0 - z2 * (1.0 / 240.0))))
}

/// erf(x) by its Maclaurin series (|x| ≤ 3.5 keeps the cancellation below 1e-12).
pub fn erf(x: f64) -> f64 {
    assert!(x.abs() <= 3.5);
    let mut term = x; // (-1)^n x^(2n+1) / n!
    let mut sum = 0.0;
    let mut n = 0.0;
    loop {
        let t = term / (2.0 * n + 1.0);
        sum += t;
        if t.abs() < 1e-18 {
            break;
        }
        n += 1.0;
        term *= -x * x / n;
    }
    2.0 / PI.sqrt() * sum
}

/// The standard normal CDF.
pub fn phi(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / 2f64.sqrt()))
}

/// floor by integer truncation (for |x| < 2^52).
pub fn floor(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// Round half away from zero.
pub fn round(x: f64) -> f64 {
    if x >= 0.0 {
        floor(x + 0.5)
    } else {
        -floor(-x + 0.5)
    }
}

pub fn normal_lpdf(x: f64, mu: f64, sigma: f64) -> f64 {
    let z = (x - mu) / sigma;
    -0.5 * z * z - sigma.ln() - 0.5 * (2.0 * PI).ln()
}
