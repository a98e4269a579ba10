//! Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018): draw
//! a parameter from its prior, data from the likelihood, and the posterior with NUTS; the
//! rank of the true value among (thinned) posterior draws is uniform when the sampler is
//! right. Checked with a chi-square test on two small models, with fixed seeds.

use bnnc::density::{EvalError, LogDensity};
use bnnc::infer::run::{sample, Method, Settings};
use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal, Normal};

/// Ranks of the true value among `l` thinned draws, over `reps` replications.
fn ranks<D: LogDensity>(
    reps: usize,
    l: usize,
    seed: u64,
    mut make: impl FnMut(&mut rand::rngs::StdRng) -> (D, f64),
    transform: impl Fn(f64) -> f64,
) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let thin = 5;
    let s = Settings {
        method: Method::Nuts,
        warmup: 300,
        draws: l * thin,
        max_depth: 10,
        adapt_delta: 0.8,
        dense: false,
        hmc_steps: 1,
    };
    let mut out = Vec::new();
    for r in 0..reps {
        let (mut d, truth) = make(&mut rng);
        let mut below = 0;
        sample(
            &mut d,
            &s,
            seed.wrapping_mul(1000).wrapping_add(r as u64),
            None,
            &mut |_, _, _| {},
            &mut |_, z, _, it| {
                if it % thin == 0 && transform(z.q[0]) < truth {
                    below += 1;
                }
            },
            &|_| {},
        )
        .expect("runs");
        out.push(below);
    }
    out
}

/// Pearson's chi-square statistic of the ranks (0..=l) in `bins` equal bins.
fn chi_square(ranks: &[usize], l: usize, bins: usize) -> f64 {
    let mut counts = vec![0.0; bins];
    for r in ranks {
        counts[(r * bins) / (l + 1)] += 1.0;
    }
    let e = ranks.len() as f64 / bins as f64;
    counts.iter().map(|c| (c - e) * (c - e) / e).sum()
}

/// theta ~ normal(0, 1); y_i ~ normal(theta, 1), i = 1..5.
struct NormalMean {
    y: Vec<f64>,
}

impl LogDensity for NormalMean {
    fn dim(&self) -> usize {
        1
    }
    fn logp_grad(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
        let t = q[0];
        g[0] = -t + self.y.iter().map(|y| y - t).sum::<f64>();
        Ok(-0.5 * t * t - 0.5 * self.y.iter().map(|y| (y - t) * (y - t)).sum::<f64>())
    }
}

/// sigma ~ lognormal(0, 1) sampled as log sigma (the Jacobian included); y_i ~ normal(0, sigma).
struct Scale {
    y: Vec<f64>,
}

impl LogDensity for Scale {
    fn dim(&self) -> usize {
        1
    }
    fn logp_grad(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
        let u = q[0]; // log sigma
        let n = self.y.len() as f64;
        let ss: f64 = self.y.iter().map(|y| y * y).sum();
        // log p(u) = −u²/2 (lognormal prior on sigma with its Jacobian), likelihood −n u − ss e^{−2u}/2.
        g[0] = -u - n + ss * (-2.0 * u).exp();
        Ok(-0.5 * u * u - n * u - 0.5 * ss * (-2.0 * u).exp())
    }
}

// 20 bins, 19 degrees of freedom: the 0.999 quantile of chi-square(19) is 43.8.
const CRITICAL: f64 = 43.8;

#[test]
fn sbc_normal_mean() {
    let (reps, l) = (400, 99);
    let r = ranks(
        reps,
        l,
        11,
        |rng| {
            let theta: f64 = Normal::new(0.0, 1.0).unwrap().sample(rng);
            let y = (0..5).map(|_| theta + Normal::new(0.0, 1.0).unwrap().sample(rng)).collect();
            (NormalMean { y }, theta)
        },
        |q| q,
    );
    let x2 = chi_square(&r, l, 20);
    assert!(x2 < CRITICAL, "rank histogram not uniform: chi-square {x2:.1}");
}

#[test]
fn sbc_scale_parameter() {
    let (reps, l) = (400, 99);
    let r = ranks(
        reps,
        l,
        12,
        |rng| {
            let sigma: f64 = LogNormal::new(0.0, 1.0).unwrap().sample(rng);
            let y = (0..8).map(|_| Normal::new(0.0, sigma).unwrap().sample(rng)).collect();
            (Scale { y }, sigma)
        },
        |u| u.exp(),
    );
    let x2 = chi_square(&r, l, 20);
    assert!(x2 < CRITICAL, "rank histogram not uniform: chi-square {x2:.1}");
}

#[test]
fn sbc_detects_a_wrong_posterior() {
    // The same procedure with a deliberately wrong likelihood (sd 2 instead of 1) must fail,
    // or the test above could not.
    struct Wrong {
        y: Vec<f64>,
    }
    impl LogDensity for Wrong {
        fn dim(&self) -> usize {
            1
        }
        fn logp_grad(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
            let t = q[0];
            g[0] = -t + self.y.iter().map(|y| (y - t) / 4.0).sum::<f64>();
            Ok(-0.5 * t * t - self.y.iter().map(|y| (y - t) * (y - t) / 8.0).sum::<f64>())
        }
    }
    let (reps, l) = (400, 99);
    let r = ranks(
        reps,
        l,
        13,
        |rng| {
            let theta: f64 = Normal::new(0.0, 1.0).unwrap().sample(rng);
            let y = (0..5).map(|_| theta + Normal::new(0.0, 1.0).unwrap().sample(rng)).collect();
            (Wrong { y }, theta)
        },
        |q| q,
    );
    assert!(chi_square(&r, l, 20) > CRITICAL, "a wrong posterior passed calibration");
}
