//! The sampler on densities with known answers, written by hand against `LogDensity`.

use bnnc::density::{EvalError, LogDensity};
use bnnc::infer::nuts::Stats;
use bnnc::infer::run::{sample, Method, Settings};

fn settings(dense: bool) -> Settings {
    Settings { method: Method::Nuts, warmup: 1000, draws: 1000, max_depth: 10, adapt_delta: 0.8, dense, hmc_steps: 16 }
}

/// Run one chain; the draws (unconstrained) and the sampler's statistics.
fn chain<D: LogDensity>(d: &mut D, s: &Settings, seed: u64) -> (Vec<Vec<f64>>, Vec<Stats>) {
    let mut draws = Vec::new();
    let mut stats = Vec::new();
    sample(
        d,
        s,
        seed,
        None,
        &mut |_, _, _| {},
        &mut |_, z, st, _| {
            draws.push(z.q.clone());
            stats.push(*st);
        },
        &|_| {},
    )
    .expect("the chain runs");
    (draws, stats)
}

/// A Gaussian with precision matrix `prec` (row-major), mean zero.
struct Gaussian {
    d: usize,
    prec: Vec<f64>,
}

impl LogDensity for Gaussian {
    fn dim(&self) -> usize {
        self.d
    }
    fn logp_grad(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
        let d = self.d;
        let mut lp = 0.0;
        for i in 0..d {
            g[i] = -(0..d).map(|j| self.prec[i * d + j] * q[j]).sum::<f64>();
            lp += 0.5 * q[i] * g[i];
        }
        Ok(lp)
    }
}

#[test]
fn a_100_dimensional_standard_normal() {
    let d = 100;
    let mut prec = vec![0.0; d * d];
    for i in 0..d {
        prec[i * d + i] = 1.0;
    }
    let (draws, stats) = chain(&mut Gaussian { d, prec }, &settings(false), 1);
    assert!(stats.iter().all(|s| !s.divergent));
    let n = draws.len() as f64;
    let mut worst_mean: f64 = 0.0;
    let mut var_sum = 0.0;
    for i in 0..d {
        let m = draws.iter().map(|q| q[i]).sum::<f64>() / n;
        let v = draws.iter().map(|q| (q[i] - m) * (q[i] - m)).sum::<f64>() / (n - 1.0);
        worst_mean = worst_mean.max(m.abs());
        var_sum += v;
    }
    // NUTS draws for a standard normal are nearly independent: 100 means of 1000 draws stay
    // within about 4.5/sqrt(1000); the average variance is 1 within a few percent.
    assert!(worst_mean < 0.15, "a mean is {worst_mean}");
    assert!((var_sum / d as f64 - 1.0).abs() < 0.05, "average variance {}", var_sum / d as f64);
}

#[test]
fn a_dense_metric_wins_on_a_correlated_gaussian() {
    // Two dimensions, unit variances, correlation 0.99: the narrow direction has sd 0.1.
    let d = 2;
    let rho = 0.99;
    // Inverse of (1 − rho) I + rho 11ᵀ: (I − rho/(1 + (d − 1) rho) 11ᵀ) / (1 − rho).
    let c = rho / (1.0 + (d as f64 - 1.0) * rho);
    let prec: Vec<f64> = (0..d * d).map(|k| ((k / d == k % d) as i64 as f64 - c) / (1.0 - rho)).collect();
    let mean_leapfrogs = |dense: bool| {
        let (draws, stats) = chain(&mut Gaussian { d, prec: prec.clone() }, &settings(dense), 2);
        // Both recover the correlation.
        let n = draws.len() as f64;
        let m: Vec<f64> = (0..2).map(|i| draws.iter().map(|q| q[i]).sum::<f64>() / n).collect();
        let cov = draws.iter().map(|q| (q[0] - m[0]) * (q[1] - m[1])).sum::<f64>() / (n - 1.0);
        let v0 = draws.iter().map(|q| (q[0] - m[0]).powi(2)).sum::<f64>() / (n - 1.0);
        let v1 = draws.iter().map(|q| (q[1] - m[1]).powi(2)).sum::<f64>() / (n - 1.0);
        let r = cov / (v0 * v1).sqrt();
        assert!((r - rho).abs() < 0.01, "correlation {r} with dense = {dense}");
        stats.iter().map(|s| s.n_leapfrog as f64).sum::<f64>() / n
    };
    let (diag, dense) = (mean_leapfrogs(false), mean_leapfrogs(true));
    assert!(dense * 3.0 < diag, "leapfrog steps per draw: dense {dense}, diagonal {diag}");
}

/// Neal's funnel: v ~ N(0, 3), x_i ~ N(0, exp(v / 2)), i = 1..9.
struct Funnel;

impl LogDensity for Funnel {
    fn dim(&self) -> usize {
        10
    }
    fn logp_grad(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
        let v = q[0];
        let mut lp = -v * v / 18.0;
        g[0] = -v / 9.0;
        for i in 1..10 {
            // log N(x | 0, e^{v/2}) = −x² e^{−v} / 2 − v/2 + const
            let x = q[i];
            lp += -0.5 * x * x * (-v).exp() - 0.5 * v;
            g[i] = -x * (-v).exp();
            g[0] += 0.5 * x * x * (-v).exp() - 0.5;
        }
        Ok(lp)
    }
}

/// The neck of the funnel is too narrow for one step size. A single chain may adapt a step
/// size too large to enter it and then miss it without a divergence (so do Stan's chains), so
/// this runs four, as a user would, and asks that the run's own diagnostics flag the problem:
/// divergent transitions, or chains that disagree on v (R-hat above 1.01).
#[test]
fn the_funnel_is_flagged_by_divergences_or_r_hat() {
    let mut divergences = 0;
    let mut v = Vec::new();
    for seed in 1..=4 {
        let (draws, stats) = chain(&mut Funnel, &settings(false), seed);
        divergences += stats.iter().filter(|s| s.divergent).count();
        v.push(draws.iter().map(|q| q[0]).collect::<Vec<f64>>());
    }
    let rhat = bnnc::summary::stats::summarise(&v).rhat;
    assert!(divergences > 0 || rhat > 1.01, "Neal's funnel: no divergence, R-hat of v {rhat}");
}

#[test]
fn static_hmc_also_draws_a_normal() {
    let d = 5;
    let mut prec = vec![0.0; d * d];
    for i in 0..d {
        prec[i * d + i] = 1.0;
    }
    // Static HMC on a standard normal is periodic: when L ε is near a multiple of π every
    // trajectory maps q to about ±q, and q² barely moves. With 8 steps the adapted ε gave
    // L ε of 8.0–9.0 and variances of 0.92–1.06 at seeds 1–7; 10 steps straddle 3π (a
    // variance of 1.67 at this seed).
    let s = Settings { method: Method::Hmc, hmc_steps: 8, ..settings(false) };
    let (draws, _) = chain(&mut Gaussian { d, prec }, &s, 4);
    let n = draws.len() as f64;
    let v = draws.iter().map(|q| q[0] * q[0]).sum::<f64>() / n;
    assert!((v - 1.0).abs() < 0.2, "variance {v}");
}

/// A standard normal in two dimensions with a trap: for x > 1.2 the density falls like
/// exp(−10³⁰ (x − 1.2)² (x − y)²), a diagonal ravine so narrow that the step size adapts to
/// about 10⁻¹⁵ and a chain started there cannot leave it (as an ARMA chain started outside the
/// stable region cannot). The trap holds next to no mass; a fifth of the random starts on
/// (−2, 2)² land in it.
struct Ravine;

impl LogDensity for Ravine {
    fn dim(&self) -> usize {
        2
    }
    fn logp_grad(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
        let (x, y) = (q[0], q[1]);
        let (d, r) = ((x - 1.2).max(0.0), x - y);
        let k = 1e30;
        g[0] = -x - 2.0 * k * d * r * r - 2.0 * k * d * d * r;
        g[1] = -y + 2.0 * k * d * d * r;
        Ok(-0.5 * (x * x + y * y) - k * d * d * r * r)
    }
}

fn ravine_chain(seed: u64) -> (Vec<f64>, bnnc::infer::run::Outcome) {
    let mut draws = Vec::new();
    let out = sample(
        &mut Ravine,
        &settings(false),
        seed,
        None,
        &mut |_, _, _| {},
        &mut |_, z, _, _| draws.push(z.q[0]),
        &|_| {},
    )
    .expect("the chain runs");
    (draws, out)
}

#[test]
fn a_chain_stuck_at_its_random_start_starts_again() {
    let mut restarted = 0;
    for seed in 1..=16 {
        let (draws, out) = ravine_chain(seed);
        restarted += usize::from(!out.restarts.is_empty());
        for r in &out.restarts {
            assert!(r.step_size < 1e-10, "seed {seed}: a start with step size {} was given up", r.step_size);
        }
        let n = draws.len() as f64;
        let m = draws.iter().sum::<f64>() / n;
        let v = draws.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        // x is a standard normal cut at 1.2 (the trap's mass is negligible): mean −0.22, variance 0.69.
        assert!((m + 0.22).abs() < 0.15 && (v - 0.69).abs() < 0.15, "seed {seed}: mean {m}, variance {v}");
    }
    assert!(restarted > 0, "no seed started in the trap");
}

/// Finite only at one point: every move from it fails.
struct Pit(f64);

impl LogDensity for Pit {
    fn dim(&self) -> usize {
        1
    }
    fn logp_grad(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
        g[0] = -q[0];
        if q[0] == self.0 {
            Ok(-0.5 * q[0] * q[0])
        } else {
            Err(EvalError { recoverable: true, message: "outside the pit".into() })
        }
    }
}

#[test]
fn a_chain_stuck_at_the_users_start_is_left_there() {
    let mut draws = Vec::new();
    let out = sample(
        &mut Pit(1.9),
        &settings(false),
        1,
        Some(bnnc::ir::point::Init { theta: vec![1.9], given: vec![true], missing: vec![] }),
        &mut |_, _, _| {},
        &mut |_, z, _, _| draws.push(z.q[0]),
        &|_| {},
    )
    .expect("the chain runs");
    assert!(out.restarts.is_empty(), "a start the user gave was given up");
    assert!(draws.len() == 1000 && draws.iter().all(|x| *x == 1.9));
}

#[test]
fn a_partial_init_keeps_what_it_gives_and_draws_the_rest() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("examples/eight_schools.bnn");
    let mut fe = bnnc::driver::frontend_file(&model);
    let program = fe.program(&model, None).expect("lowers with the data beside it");
    let values: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"mu": 1.5, "tau": 2.0}"#).expect("JSON");
    let init = bnnc::ir::point::unconstrain(&program, &values).expect("a partial point");
    assert!(!init.complete() && init.missing == ["eta"], "{:?}", init.missing);
    assert_eq!(init.given.iter().filter(|g| **g).count(), 2);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let (a, b) = (init.draw(&mut rng), init.draw(&mut rng));
    for (k, g) in init.given.iter().enumerate() {
        if *g {
            assert_eq!((a[k], b[k]), (init.theta[k], init.theta[k]));
        } else {
            assert!(a[k] != b[k] && a[k].abs() < 2.0 && b[k].abs() < 2.0);
        }
    }
    // tau = 2 on the log scale.
    assert!(init.theta.iter().zip(&init.given).any(|(t, g)| *g && (t - 2f64.ln()).abs() < 1e-15));
}
