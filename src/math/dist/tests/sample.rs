use super::*;
use crate::math::dist::multivariate::cholesky;
use rand::SeedableRng;

// ---------------------------------------------------------------- sampling

/// (values, dims) of one argument.
type Owned = (Vec<f64>, Vec<usize>);

fn draws(f: Family, params: &[Owned], n: usize, seed: u64) -> Vec<f64> {
    let args: Vec<Arg> = params.iter().map(|(v, d)| Arg { values: v, dims: d }).collect();
    let mut out = vec![0.0; n];
    let mut rng = StdRng::seed_from_u64(seed);
    sample(f, &args, &mut out, &mut rng);
    out
}

fn sc(v: f64) -> Owned {
    (vec![v], vec![])
}

/// Sample mean and variance within 5 standard errors of the truth.
fn check_moments(what: &str, xs: &[f64], mean: f64, var: f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    let m4 = xs.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n;
    let se_m = (var / n).sqrt();
    let se_v = ((m4 - v * v).max(0.0) / n).sqrt();
    assert!((m - mean).abs() <= 5.0 * se_m, "{what}: mean {m} vs {mean} (se {se_m})");
    assert!((v - var).abs() <= 5.0 * se_v, "{what}: var {v} vs {var} (se {se_v})");
}

const N: usize = 20_000;

#[test]
fn scalar_sample_moments() {
    let pi = std::f64::consts::PI;
    let cases: Vec<(Family, Vec<f64>, f64, f64)> = vec![
        (Normal, vec![1.5, 2.0], 1.5, 4.0),
        (StdNormal, vec![], 0.0, 1.0),
        (StudentT, vec![6.0, 1.0, 2.0], 1.0, 4.0 * 6.0 / 4.0),
        (HalfNormal, vec![2.0], 2.0 * (2.0 / pi).sqrt(), 4.0 * (1.0 - 2.0 / pi)),
        (Exponential, vec![2.5], 0.4, 0.16),
        (Gamma, vec![3.0, 2.0], 1.5, 0.75),
        (Gamma, vec![0.3, 1.0], 0.3, 0.3),
        (InvGamma, vec![6.0, 2.0], 0.4, 4.0 / (25.0 * 4.0)),
        (Lognormal, vec![0.2, 0.5], (0.2f64 + 0.125).exp(), (0.25f64.exp() - 1.0) * (0.4f64 + 0.25).exp()),
        (Beta, vec![2.0, 3.0], 0.4, 6.0 / (25.0 * 6.0)),
        (Uniform, vec![-1.0, 3.0], 1.0, 16.0 / 12.0),
        (Laplace, vec![0.5, 1.5], 0.5, 2.0 * 2.25),
        (Logistic, vec![-1.0, 0.7], -1.0, 0.49 * pi * pi / 3.0),
        (Bernoulli, vec![0.3], 0.3, 0.21),
        (BernoulliLogit, vec![0.0], 0.5, 0.25),
        (Binomial, vec![12.0, 0.3], 3.6, 12.0 * 0.21),
        (BinomialLogit, vec![12.0, 0.0], 6.0, 3.0),
        (Poisson, vec![3.5], 3.5, 3.5),
        (Poisson, vec![40.0], 40.0, 40.0),
        (PoissonLog, vec![1.0], 1f64.exp(), 1f64.exp()),
        (NegBinomial2, vec![4.0, 2.0], 4.0, 4.0 + 16.0 / 2.0),
        (NegBinomial2Log, vec![4f64.ln(), 2.0], 4.0, 4.0 + 16.0 / 2.0),
        (NegBinomial, vec![3.0, 0.5], 6.0, 3.0 * 1.5 / 0.25),
        (BetaBinomial, vec![10.0, 2.0, 3.0], 4.0, 10.0 * 6.0 * 15.0 / (25.0 * 6.0)),
        // Γ(1 + 1/2) = √π/2, Γ(2) = 1.
        (Weibull, vec![2.0, 1.5], 1.5 * pi.sqrt() / 2.0, 2.25 * (1.0 - pi / 4.0)),
        // Γ(1 − 1/4) and Γ(1 − 2/4) = √π.
        (Frechet, vec![4.0, 2.0], 2.0 * 1.225_416_702_465_178, 4.0 * (pi.sqrt() - 1.225_416_702_465_178f64.powi(2))),
        (Rayleigh, vec![1.5], 1.5 * (pi / 2.0).sqrt(), (4.0 - pi) / 2.0 * 2.25),
        (Pareto, vec![0.5, 5.0], 5.0 * 0.5 / 4.0, 0.25 * 5.0 / (16.0 * 3.0)),
        (Gumbel, vec![1.0, 2.0], 1.0 + 2.0 * 0.577_215_664_901_532_9, pi * pi * 4.0 / 6.0),
        (ChiSquare, vec![3.0], 3.0, 6.0),
        (InvChiSquare, vec![9.0], 1.0 / 7.0, 2.0 / (49.0 * 5.0)),
        (ScaledInvChiSquare, vec![9.0, 0.5], 9.0 * 0.25 / 7.0, 2.0 * 81.0 * 0.0625 / (49.0 * 5.0)),
    ];
    for (i, (f, p, mean, var)) in cases.into_iter().enumerate() {
        let params: Vec<_> = p.iter().map(|&v| sc(v)).collect();
        let xs = draws(f, &params, N, 100 + i as u64);
        if f.is_discrete() {
            assert!(xs.iter().all(|x| x.fract() == 0.0 && *x >= 0.0), "{f:?} draws are counts");
        }
        check_moments(&format!("{f:?} {p:?}"), &xs, mean, var);
    }
    // Heavy tails: check medians and quartiles instead.
    for (f, p, q1, q2, q3) in [
        (Cauchy, vec![1.0, 2.0], -1.0, 1.0, 3.0),
        (HalfCauchy, vec![2.0], 2.0 * (pi / 8.0).tan(), 2.0, 2.0 * (3.0 * pi / 8.0).tan()),
    ] {
        let params: Vec<_> = p.iter().map(|&v| sc(v)).collect();
        let mut xs = draws(f, &params, N, 7);
        xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        // Fraction below each true quartile within 5 se of 1/4, 1/2, 3/4.
        for (q, frac) in [(q1, 0.25), (q2, 0.5), (q3, 0.75)] {
            let below = xs.iter().filter(|&&x| x < q).count() as f64 / N as f64;
            let se = (frac * (1.0 - frac) / N as f64).sqrt();
            assert!((below - frac).abs() < 5.0 * se, "{f:?} quantile {frac}: {below}");
        }
    }
    // Broadcast vector parameters.
    let xs = draws(Normal, &[(vec![0.0, 100.0], vec![2]), sc(1.0)], 2, 1);
    assert!(xs[0].abs() < 6.0 && (xs[1] - 100.0).abs() < 6.0);
}

#[test]
fn categorical_sample_frequencies() {
    let th = vec![0.1, 0.2, 0.3, 0.4];
    let logits: Vec<f64> = th.iter().map(|p: &f64| p.ln() + 3.0).collect();
    for (f, p) in [(Categorical, th.clone()), (CategoricalLogit, logits)] {
        let xs = draws(f, &[(p, vec![4])], N, 11);
        for (k, &pk) in th.iter().enumerate() {
            let ind: Vec<f64> = xs.iter().map(|&x| (x == k as f64) as u8 as f64).collect();
            check_moments(&format!("{f:?} label {k}"), &ind, pk, pk * (1.0 - pk));
        }
        assert!(xs.iter().all(|&x| (0.0..4.0).contains(&x) && x.fract() == 0.0));
    }
    // One label per row of a matrix.
    let m = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    let xs = draws(Categorical, &[(m, vec![2, 3])], 2, 3);
    assert_eq!(xs, vec![0.0, 2.0]);
    let xs = draws(Categorical, &[(vec![0.5, 0.5, 0.0, 0.0, 0.0, 1.0], vec![2, 3])], 3, 3);
    assert!(xs.iter().all(|x| x.is_nan()), "wrong number of rows");
}

#[test]
fn ordered_logistic_sample_frequencies() {
    let sig = |t: f64| 1.0 / (1.0 + (-t).exp());
    let (eta, c) = (0.4, vec![-1.0, 0.5, 2.0]);
    let xs = draws(OrderedLogistic, &[(vec![eta], vec![]), (c.clone(), vec![3])], N, 13);
    for l in 0..4 {
        let above = if l == 0 { 1.0 } else { sig(eta - c[l - 1]) };
        let below = if l == 3 { 0.0 } else { sig(eta - c[l]) };
        let pk = above - below;
        let ind: Vec<f64> = xs.iter().map(|&x| (x == l as f64) as u8 as f64).collect();
        check_moments(&format!("ordered_logistic label {l}"), &ind, pk, pk * (1.0 - pk));
    }
    // A location per draw: three draws, and NaN for cutpoints out of order.
    let xs = draws(OrderedLogistic, &[(vec![-50.0, 0.0, 50.0], vec![3]), (c.clone(), vec![3])], 3, 4);
    assert_eq!((xs[0], xs[2]), (0.0, 3.0));
    let xs = draws(OrderedLogistic, &[(vec![0.0], vec![]), (vec![1.0, 0.0], vec![2])], 2, 4);
    assert!(xs.iter().all(|x| x.is_nan()));
}

#[test]
fn dirichlet_sample_moments() {
    for al in [vec![2.0, 3.0, 5.0], vec![0.1, 0.3, 0.2, 0.4]] {
        let k = al.len();
        let a0: f64 = al.iter().sum();
        let xs = draws(Dirichlet, &[(al.clone(), vec![k])], N * k, 12);
        for row in xs.chunks(k) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
        }
        for j in 0..k {
            let comp: Vec<f64> = xs.chunks(k).map(|r| r[j]).collect();
            let m = al[j] / a0;
            check_moments(&format!("dirichlet {al:?} comp {j}"), &comp, m, m * (1.0 - m) / (a0 + 1.0));
        }
    }
}

#[test]
fn multivariate_sample_moments() {
    let mu = vec![1.0, -2.0];
    let s = vec![2.0, 0.8, 0.8, 1.0];
    let l = cholesky(&s, 2).unwrap();
    for (f, m) in [(MultiNormal, s.clone()), (MultiNormalCholesky, l)] {
        let xs = draws(f, &[(mu.clone(), vec![2]), (m, vec![2, 2])], 2 * N, 13);
        let c0: Vec<f64> = xs.chunks(2).map(|r| r[0]).collect();
        let c1: Vec<f64> = xs.chunks(2).map(|r| r[1]).collect();
        check_moments(&format!("{f:?} 0"), &c0, 1.0, 2.0);
        check_moments(&format!("{f:?} 1"), &c1, -2.0, 1.0);
        // Covariance via the variance of the sum: Var(x0 + x1) = 2 + 1 + 2·0.8.
        let sum: Vec<f64> = xs.chunks(2).map(|r| r[0] + r[1]).collect();
        check_moments(&format!("{f:?} sum"), &sum, -1.0, 4.6);
    }
    // LKJ: every correlation of a K×K draw is marginally 2·Beta(b, b) − 1 with
    // b = η − 1 + K/2, so it has mean 0 and variance 1/(2η + K − 1).
    for (k, eta) in [(2usize, 1.5), (3, 1.0), (4, 2.0)] {
        let kk = k * k;
        // One K×K factor per call.
        let mut rng = StdRng::seed_from_u64(14);
        let mut xs = vec![0.0; kk * N / 2];
        for block in xs.chunks_mut(kk) {
            sample(LkjCorrCholesky, &[Arg { values: &[eta], dims: &[] }], block, &mut rng);
        }
        let mut corr = vec![Vec::new(); kk];
        for l in xs.chunks(kk) {
            for i in 0..k {
                let norm: f64 = (0..=i).map(|j| l[i * k + j] * l[i * k + j]).sum();
                assert!((norm - 1.0).abs() < 1e-12 && l[i * k + i] > 0.0, "{l:?}");
                for j in 0..i {
                    corr[i * k + j].push((0..=j).map(|q| l[i * k + q] * l[j * k + q]).sum::<f64>());
                }
            }
        }
        for (idx, c) in corr.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
            check_moments(&format!("lkj K={k} entry {idx}"), c, 0.0, 1.0 / (2.0 * eta + k as f64 - 1.0));
        }
    }
}

#[test]
fn invalid_sample_parameters_fill_nan() {
    let bad: Vec<(Family, Vec<Owned>, usize)> = vec![
        (Normal, vec![sc(0.0), sc(-1.0)], 3),
        (Normal, vec![sc(0.0)], 3),
        (Gamma, vec![sc(0.0), sc(1.0)], 3),
        (Bernoulli, vec![sc(1.5)], 3),
        (Poisson, vec![(vec![1.0, 2.0], vec![2])], 3),
        (Categorical, vec![(vec![0.5, 0.6], vec![2])], 3),
        (Dirichlet, vec![(vec![1.0, 1.0], vec![2])], 3),
        (Dirichlet, vec![(vec![1.0, -1.0], vec![2])], 4),
        (MultiNormal, vec![(vec![0.0; 2], vec![2]), (vec![1.0, 2.0, 2.0, 1.0], vec![2, 2])], 2),
        (LkjCorrCholesky, vec![sc(1.0)], 5),
        (LkjCorrCholesky, vec![sc(-1.0)], 4),
    ];
    for (f, p, n) in bad {
        let xs = draws(f, &p, n, 1);
        assert!(xs.iter().all(|x| x.is_nan()), "{f:?} {p:?}: {xs:?}");
    }
    // Poisson with λ = 0 is valid and always 0.
    assert_eq!(draws(Poisson, &[sc(0.0)], 3, 1), vec![0.0; 3]);
}
