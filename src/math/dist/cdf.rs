//! Log cumulative distribution functions, `D_lcdf(x | ...)` = ln P(X ≤ x) and
//! `D_lccdf(x | ...)` = ln P(X > x), with their partials: the terms of censored data (a
//! survival time known only to exceed the end of follow-up, a reading below a detection
//! limit). One row per family with a closed form, in the parameterisations of
//! [`log_density`](super::log_density).
//!
//! Each is computed in logs without cancellation in its tails: the normal's through
//! `erfc` (and its asymptotic series past where `erfc` underflows), and the families whose
//! survival or distribution function is e^{−t} (exponential, Weibull, Rayleigh, Pareto,
//! Gumbel, Fréchet) as −t on that side and ln(−expm1(−t)) on the other.

use super::elementwise::{params_ok, Broadcast};
use super::{softplus, Arg, Family, HALF_LN_2PI, LN_2};
use statrs::function::erf::erfc;

/// Whether `f` has `_lcdf` and `_lccdf`.
pub fn has_cdf(f: Family) -> bool {
    use Family::*;
    matches!(
        f,
        Normal
            | StdNormal
            | Lognormal
            | Exponential
            | Weibull
            | Rayleigh
            | Pareto
            | Gumbel
            | Frechet
            | Logistic
            | Cauchy
            | Laplace
    )
}

/// ln Φ(z), the standard normal's log distribution function, and φ(z)/Φ(z), its derivative.
fn log_phi(z: f64) -> (f64, f64) {
    let log_density = -0.5 * z * z - HALF_LN_2PI;
    let l = if z < -30.0 {
        // Φ(z) = φ(z)/(−z) · (1 − 1/z² + 3/z⁴ − 15/z⁶ + …); the next term is below 2e-10 here.
        let w = 1.0 / (z * z);
        log_density - (-z).ln() + (w * (-1.0 + w * (3.0 - 15.0 * w))).ln_1p()
    } else {
        (0.5 * erfc(-z / std::f64::consts::SQRT_2)).ln()
    };
    (l, (log_density - l).exp())
}

/// ln(1 − e^{−t}) for t ≥ 0 and its derivative in t, 1/(e^t − 1).
fn log1m_exp_neg(t: f64) -> (f64, f64) {
    ((-(-t).exp_m1()).ln(), 1.0 / t.exp_m1())
}

/// One element: the log CDF (or, with `upper`, the log CCDF) of `f` at `x` with parameters
/// `p`, its partials in (x, p[0], p[1]) written to `d`. Assumes valid parameters and a
/// family with [`has_cdf`].
fn elem(f: Family, x: f64, p: &[f64; 3], upper: bool, d: &mut [f64; 4]) -> f64 {
    use Family::*;
    *d = [0.0; 4];
    match f {
        // z = (x − μ)/σ (x itself for std_normal); ln Φ(±z).
        Normal | StdNormal | Lognormal => {
            let (u, mu, s) = match f {
                StdNormal => (x, 0.0, 1.0),
                Lognormal if x <= 0.0 => return if upper { 0.0 } else { f64::NEG_INFINITY },
                Lognormal => (x.ln(), p[0], p[1]),
                _ => (x, p[0], p[1]),
            };
            let z = (u - mu) / s;
            let sign = if upper { -1.0 } else { 1.0 };
            let (l, r) = log_phi(sign * z);
            // ∂/∂z of ln Φ(±z) is ±r.
            let dz = sign * r;
            let du = if f == Lognormal { 1.0 / x } else { 1.0 };
            d[0] = dz / s * du;
            if f != StdNormal {
                d[1] = -dz / s;
                d[2] = -dz * z / s;
            }
            l
        }
        // P(X > x) = e^{−t}: exponential t = λx; Weibull (x/σ)^α; Rayleigh x²/(2σ²); Pareto
        // α ln(x/y_min). Below the support the CDF is 0.
        Exponential | Weibull | Rayleigh | Pareto => {
            let below = match f {
                Pareto => x <= p[0],
                _ => x <= 0.0,
            };
            if below {
                return if upper { 0.0 } else { f64::NEG_INFINITY };
            }
            // t and its partials in (x, p[0], p[1]).
            let (t, dt) = match f {
                Exponential => (p[0] * x, [p[0], x, 0.0]),
                Weibull => {
                    let (a, s) = (p[0], p[1]);
                    let t = (x / s).powf(a);
                    (t, [a * t / x, t * (x / s).ln(), -a * t / s])
                }
                Rayleigh => {
                    let s = p[0];
                    let t = x * x / (2.0 * s * s);
                    (t, [x / (s * s), -2.0 * t / s, 0.0])
                }
                _ => {
                    let (m, a) = (p[0], p[1]);
                    let lr = (x / m).ln();
                    (a * lr, [a / x, -a / m, lr])
                }
            };
            exp_tail(t, dt, upper, d)
        }
        // P(X ≤ x) = e^{−t}: Gumbel t = e^{−z}, z = (x − μ)/β; Fréchet t = (x/σ)^{−α}.
        Gumbel | Frechet => {
            if f == Frechet && x <= 0.0 {
                return if upper { 0.0 } else { f64::NEG_INFINITY };
            }
            let (t, dt) = if f == Gumbel {
                let (mu, b) = (p[0], p[1]);
                let z = (x - mu) / b;
                let t = (-z).exp();
                (t, [-t / b, t / b, t * z / b])
            } else {
                let (a, s) = (p[0], p[1]);
                let t = (x / s).powf(-a);
                (t, [-a * t / x, -t * (x / s).ln(), a * t / s])
            };
            exp_tail(t, dt, !upper, d)
        }
        // F = σ(z): ln F = −softplus(−z), ln(1 − F) = −softplus(z).
        Logistic => {
            let (mu, s) = (p[0], p[1]);
            let z = (x - mu) / s;
            let (l, dz) = if upper { (-softplus(z), -super::sigmoid(z)) } else { (-softplus(-z), super::sigmoid(-z)) };
            by_z(l, dz, z, s, d)
        }
        // F = atan2(1, −z)/π, accurate in both tails; 1 − F(z) = F(−z).
        Cauchy => {
            let (mu, s) = (p[0], p[1]);
            let z = (x - mu) / s;
            let w = if upper { -z } else { z };
            let cdf = 1.0f64.atan2(-w) / std::f64::consts::PI;
            let dw = 1.0 / (std::f64::consts::PI * (1.0 + w * w) * cdf);
            by_z(cdf.ln(), if upper { -dw } else { dw }, z, s, d)
        }
        // F = e^z/2 below the location, 1 − e^{−z}/2 above; 1 − F(z) = F(−z).
        Laplace => {
            let (mu, s) = (p[0], p[1]);
            let z = (x - mu) / s;
            let w = if upper { -z } else { z };
            let (l, dw) = if w < 0.0 {
                (w - LN_2, 1.0)
            } else {
                let h = 0.5 * (-w).exp();
                ((-h).ln_1p(), h / (1.0 - h))
            };
            by_z(l, if upper { -dw } else { dw }, z, s, d)
        }
        _ => f64::NAN,
    }
}

/// −t on the side whose probability is e^{−t}, ln(1 − e^{−t}) on the other, and the partials
/// from t's, `dt`.
fn exp_tail(t: f64, dt: [f64; 3], on_exp_side: bool, d: &mut [f64; 4]) -> f64 {
    let (l, k) = if on_exp_side { (-t, -1.0) } else { log1m_exp_neg(t) };
    for j in 0..3 {
        d[j] = k * dt[j];
    }
    l
}

/// A location-scale family's partials from ∂/∂z: x gets dz/σ, μ −dz/σ, σ −dz·z/σ.
fn by_z(l: f64, dz: f64, z: f64, s: f64, d: &mut [f64; 4]) -> f64 {
    d[0] = dz / s;
    d[1] = -dz / s;
    d[2] = -dz * z / s;
    l
}

/// The log CDF (`upper`: log CCDF) of `f` summed over its broadcast elements, with the
/// partials added into `grads` as [`log_density`](super::log_density) does. NaN for invalid
/// parameters, a NaN variate or a family without [`has_cdf`].
pub fn log_cdf(f: Family, args: &[Arg], upper: bool, grads: Option<&mut [&mut [f64]]>) -> f64 {
    if !has_cdf(f) || args.len() != f.n_params() + 1 {
        return f64::NAN;
    }
    let Some(b) = Broadcast::of(args) else { return f64::NAN };
    let (n, load) = (b.n, |i: usize| b.load(i));
    for i in 0..n {
        let (x, p) = load(i);
        if x.is_nan() || !params_ok(f, &p) {
            return f64::NAN;
        }
    }
    let mut grads = grads;
    let (mut total, mut d) = (0.0, [0.0; 4]);
    for i in 0..n {
        let (x, p) = load(i);
        total += elem(f, x, &p, upper, &mut d);
        if let Some(g) = grads.as_deref_mut() {
            for (j, gj) in g.iter_mut().enumerate().take(args.len()) {
                let k = if gj.len() == 1 { 0 } else { i };
                // A partial at an infinite variate is 0 (the probability is 0 or 1 there).
                gj[k] += if d[j].is_finite() { d[j] } else { 0.0 };
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{self as sd, ContinuousCDF};

    fn one(f: Family, x: f64, p: &[f64], upper: bool) -> (f64, Vec<f64>) {
        let mut vals: Vec<Vec<f64>> = vec![vec![x]];
        vals.extend(p.iter().map(|v| vec![*v]));
        let args: Vec<Arg> = vals.iter().map(|v| Arg { values: v, dims: &[] }).collect();
        let mut g: Vec<Vec<f64>> = vec![vec![0.0]; vals.len()];
        let lp = {
            let mut refs: Vec<&mut [f64]> = g.iter_mut().map(|v| v.as_mut_slice()).collect();
            log_cdf(f, &args, upper, Some(&mut refs))
        };
        (lp, g.into_iter().map(|v| v[0]).collect())
    }

    /// ln F and ln(1 − F) against statrs's CDF and survival function (or a closed form where
    /// statrs has none), and every partial against a central difference.
    #[test]
    fn log_cdfs_match_references_and_their_partials_finite_differences() {
        use Family::*;
        let cases: Vec<(Family, Vec<f64>, Box<dyn Fn(f64) -> (f64, f64)>)> = vec![
            (
                Normal,
                vec![0.5, 2.0],
                Box::new(|x| (sd::Normal::new(0.5, 2.0).unwrap().cdf(x), sd::Normal::new(0.5, 2.0).unwrap().sf(x))),
            ),
            (StdNormal, vec![], Box::new(|x| (sd::Normal::standard().cdf(x), sd::Normal::standard().sf(x)))),
            (
                Lognormal,
                vec![0.2, 0.7],
                Box::new(|x| {
                    (sd::LogNormal::new(0.2, 0.7).unwrap().cdf(x), sd::LogNormal::new(0.2, 0.7).unwrap().sf(x))
                }),
            ),
            (
                Exponential,
                vec![1.7],
                Box::new(|x| (sd::Exp::new(1.7).unwrap().cdf(x), sd::Exp::new(1.7).unwrap().sf(x))),
            ),
            (
                Weibull,
                vec![1.6, 1.3],
                Box::new(|x| (sd::Weibull::new(1.6, 1.3).unwrap().cdf(x), sd::Weibull::new(1.6, 1.3).unwrap().sf(x))),
            ),
            (
                Rayleigh,
                vec![0.8],
                Box::new(|x| {
                    let w = sd::Weibull::new(2.0, 0.8 * 2f64.sqrt()).unwrap();
                    (w.cdf(x), w.sf(x))
                }),
            ),
            (
                Pareto,
                vec![0.4, 2.5],
                Box::new(|x| (sd::Pareto::new(0.4, 2.5).unwrap().cdf(x), sd::Pareto::new(0.4, 2.5).unwrap().sf(x))),
            ),
            (
                Gumbel,
                vec![0.3, 1.4],
                Box::new(|x| (sd::Gumbel::new(0.3, 1.4).unwrap().cdf(x), sd::Gumbel::new(0.3, 1.4).unwrap().sf(x))),
            ),
            // 1/X is Weibull(α, 1/σ): P(X ≤ x) = P(1/X ≥ 1/x).
            (
                Frechet,
                vec![2.2, 0.9],
                Box::new(|x| {
                    let w = sd::Weibull::new(2.2, 1.0 / 0.9).unwrap();
                    (w.sf(1.0 / x), w.cdf(1.0 / x))
                }),
            ),
            (
                Logistic,
                vec![-0.4, 0.6],
                Box::new(|x| {
                    let f = 1.0 / (1.0 + (-(x + 0.4) / 0.6f64).exp());
                    (f, 1.0 - f)
                }),
            ),
            (
                Cauchy,
                vec![1.0, 0.5],
                Box::new(|x| (sd::Cauchy::new(1.0, 0.5).unwrap().cdf(x), sd::Cauchy::new(1.0, 0.5).unwrap().sf(x))),
            ),
            (
                Laplace,
                vec![0.2, 1.1],
                Box::new(|x| (sd::Laplace::new(0.2, 1.1).unwrap().cdf(x), sd::Laplace::new(0.2, 1.1).unwrap().sf(x))),
            ),
        ];
        for (f, p, reference) in &cases {
            assert!(has_cdf(*f));
            for x in [0.45, 0.9, 1.7, 3.2] {
                let (cdf, sf) = reference(x);
                for (upper, want) in [(false, cdf), (true, sf)] {
                    let (lp, g) = one(*f, x, p, upper);
                    assert!(
                        (lp - want.ln()).abs() < 1e-9 * want.ln().abs().max(1.0),
                        "{f:?} {upper} at {x}: {lp} vs {}",
                        want.ln()
                    );
                    // Five-point differences in each argument.
                    for j in 0..=p.len() {
                        let at = |h: f64| {
                            let mut q = p.clone();
                            let mut xx = x;
                            if j == 0 {
                                xx += h
                            } else {
                                q[j - 1] += h
                            }
                            one(*f, xx, &q, upper).0
                        };
                        let h = 1e-4;
                        let fd = (at(-2.0 * h) - 8.0 * at(-h) + 8.0 * at(h) - at(2.0 * h)) / (12.0 * h);
                        assert!(
                            (g[j] - fd).abs() < 1e-6 * g[j].abs().max(1.0),
                            "{f:?} {upper} at {x}: d{j} {} vs {fd}",
                            g[j]
                        );
                    }
                }
            }
        }
    }

    /// Far tails stay finite where the probability itself underflows, and the supports' edges
    /// give 0 and −∞.
    #[test]
    fn tails_and_edges() {
        use Family::*;
        // ln Φ(−40) ≈ −804.608.
        let (l, g) = one(StdNormal, -40.0, &[], false);
        assert!((l - -804.6084420137538).abs() < 1e-6, "{l}");
        assert!((g[0] - 40.025).abs() < 0.01, "{}", g[0]);
        assert!((one(Normal, 50.0, &[0.0, 1.0], true).0 - -1254.8313).abs() < 1e-3);
        assert_eq!(one(Weibull, 1e4, &[2.0, 1.0], true).0, -1e8);
        assert_eq!(one(Exponential, -1.0, &[1.0], false).0, f64::NEG_INFINITY);
        assert_eq!(one(Exponential, -1.0, &[1.0], true).0, 0.0);
        assert_eq!(one(Pareto, 0.2, &[0.5, 2.0], true).0, 0.0);
        assert!((one(Cauchy, -1e12, &[0.0, 1.0], false).0 - (1.0 / (std::f64::consts::PI * 1e12)).ln()).abs() < 1e-9);
        // Invalid parameters and families without a CDF give NaN.
        assert!(one(Normal, 0.0, &[0.0, -1.0], false).0.is_nan());
        assert!(one(Poisson, 1.0, &[2.0], false).0.is_nan());
    }
}
