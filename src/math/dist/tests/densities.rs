use super::*;
use crate::math::dist::multivariate::cholesky;
use rand::SeedableRng;
use statrs::distribution as sd;
use statrs::distribution::{Continuous, Discrete};
use statrs::function::gamma::gamma;

// ---------------------------------------------------------------- densities vs references

/// Reference log density of a scalar family at scalar arguments, from statrs where it has
/// the distribution and from an independently written closed form otherwise.
fn reference(f: Family, x: f64, p: [f64; 3]) -> f64 {
    let xu = x as u64;
    let sig = |a: f64| 1.0 / (1.0 + (-a).exp());
    match f {
        Normal => sd::Normal::new(p[0], p[1]).unwrap().ln_pdf(x),
        StdNormal => sd::Normal::new(0.0, 1.0).unwrap().ln_pdf(x),
        StudentT => sd::StudentsT::new(p[1], p[2], p[0]).unwrap().ln_pdf(x),
        Cauchy => sd::Cauchy::new(p[0], p[1]).unwrap().ln_pdf(x),
        // Twice the density centred at 0.
        HalfNormal => (2.0 * sd::Normal::new(0.0, p[0]).unwrap().pdf(x)).ln(),
        HalfCauchy => (2.0 / (std::f64::consts::PI * p[0] * (1.0 + (x / p[0]).powi(2)))).ln(),
        Exponential => sd::Exp::new(p[0]).unwrap().ln_pdf(x),
        Gamma => sd::Gamma::new(p[0], p[1]).unwrap().ln_pdf(x),
        InvGamma => sd::InverseGamma::new(p[0], p[1]).unwrap().ln_pdf(x),
        Lognormal => sd::LogNormal::new(p[0], p[1]).unwrap().ln_pdf(x),
        Beta => sd::Beta::new(p[0], p[1]).unwrap().ln_pdf(x),
        Uniform => sd::Uniform::new(p[0], p[1]).unwrap().ln_pdf(x),
        Laplace => sd::Laplace::new(p[0], p[1]).unwrap().ln_pdf(x),
        Logistic => {
            let e = (-(x - p[0]) / p[1]).exp();
            (e / (p[1] * (1.0 + e) * (1.0 + e))).ln()
        }
        Bernoulli => sd::Bernoulli::new(p[0]).unwrap().ln_pmf(xu),
        BernoulliLogit => sd::Bernoulli::new(sig(p[0])).unwrap().ln_pmf(xu),
        Binomial => sd::Binomial::new(p[1], p[0] as u64).unwrap().ln_pmf(xu),
        BinomialLogit => sd::Binomial::new(sig(p[1]), p[0] as u64).unwrap().ln_pmf(xu),
        Poisson => sd::Poisson::new(p[0]).unwrap().ln_pmf(xu),
        PoissonLog => sd::Poisson::new(p[0].exp()).unwrap().ln_pmf(xu),
        // NB2(μ, φ) is NegativeBinomial(r = φ, p = φ/(μ+φ)).
        NegBinomial2 => sd::NegativeBinomial::new(p[1], p[1] / (p[0] + p[1])).unwrap().ln_pmf(xu),
        NegBinomial2Log => {
            let mu = p[0].exp();
            sd::NegativeBinomial::new(p[1], p[1] / (mu + p[1])).unwrap().ln_pmf(xu)
        }
        // NegBinomial(α, β) is NegativeBinomial(r = α, p = β/(1+β)).
        NegBinomial => sd::NegativeBinomial::new(p[0], p[1] / (1.0 + p[1])).unwrap().ln_pmf(xu),
        // The binomial's probability integrated against Beta(α, β), term by term.
        BetaBinomial => {
            let (n, a, b) = (p[0], p[1], p[2]);
            let lbeta = |a: f64, b: f64| statrs::function::beta::ln_beta(a, b);
            let choose = statrs::function::factorial::ln_binomial(n as u64, xu);
            choose + lbeta(x + a, n - x + b) - lbeta(a, b)
        }
        Weibull => sd::Weibull::new(p[0], p[1]).unwrap().ln_pdf(x),
        // 1/X is Weibull(α, 1/σ): f(x) = f_W(1/x) / x².
        Frechet => sd::Weibull::new(p[0], 1.0 / p[1]).unwrap().ln_pdf(1.0 / x) - 2.0 * x.ln(),
        // Rayleigh(σ) is Weibull(2, σ√2).
        Rayleigh => sd::Weibull::new(2.0, p[0] * 2f64.sqrt()).unwrap().ln_pdf(x),
        Pareto => sd::Pareto::new(p[0], p[1]).unwrap().ln_pdf(x),
        Gumbel => sd::Gumbel::new(p[0], p[1]).unwrap().ln_pdf(x),
        ChiSquare => sd::ChiSquared::new(p[0]).unwrap().ln_pdf(x),
        InvChiSquare => sd::InverseGamma::new(p[0] / 2.0, 0.5).unwrap().ln_pdf(x),
        ScaledInvChiSquare => sd::InverseGamma::new(p[0] / 2.0, p[0] * p[1] * p[1] / 2.0).unwrap().ln_pdf(x),
        _ => unreachable!(),
    }
}

#[test]
fn scalar_densities_match_references() {
    let mut rng = StdRng::seed_from_u64(1);
    for &f in Family::ALL.iter().filter(|f| f.is_elementwise()) {
        for _ in 0..40 {
            let p = gen_params(f, &mut rng);
            let x = gen_x(f, &p, &mut rng);
            let mut v = vec![x];
            v.extend_from_slice(&p[..f.n_params()]);
            let got = lp_s(f, &v);
            let want = reference(f, x, p);
            assert_close(got, want, 1e-10, &format!("{f:?} at {v:?}"));
        }
    }
}

#[test]
fn scalar_densities_fixed_points() {
    // A few hand-picked points, including support edges where the density is finite.
    let cases: &[(Family, &[f64])] = &[
        (Normal, &[1.5, 0.5, 2.0]),
        (StdNormal, &[-0.3]),
        (StudentT, &[0.7, 3.0, -1.0, 2.5]),
        (StudentT, &[10.0, 1.0, 0.0, 1.0]),
        (Cauchy, &[100.0, 1.0, 0.2]),
        (HalfNormal, &[0.0, 1.3]),
        (HalfCauchy, &[0.0, 2.0]),
        (Exponential, &[0.0, 2.0]),
        (Gamma, &[0.0, 1.0, 3.0]),
        (Gamma, &[2.5, 7.0, 0.5]),
        (InvGamma, &[0.3, 2.0, 1.5]),
        (Lognormal, &[3.0, 0.1, 0.8]),
        (Beta, &[0.0, 1.0, 3.0]),
        (Beta, &[1.0, 2.0, 1.0]),
        (Beta, &[0.999, 0.5, 0.5]),
        (Uniform, &[-1.0, -1.0, 2.0]),
        (Laplace, &[1.0, 1.0, 2.0]),
        (Logistic, &[50.0, 0.0, 1.0]),
        (Logistic, &[-50.0, 0.0, 1.0]),
        (Bernoulli, &[0.0, 0.0]),
        (Bernoulli, &[1.0, 1.0]),
        (BernoulliLogit, &[1.0, 30.0]),
        (Binomial, &[0.0, 10.0, 0.0]),
        (Binomial, &[10.0, 10.0, 1.0]),
        (Binomial, &[3.0, 200.0, 0.01]),
        (BinomialLogit, &[7.0, 10.0, -2.0]),
        (Poisson, &[300.0, 280.0]),
        (PoissonLog, &[4.0, 1.2]),
        (NegBinomial2, &[0.0, 3.0, 0.5]),
        (NegBinomial2, &[40.0, 25.0, 3.0]),
        (NegBinomial2Log, &[40.0, 25f64.ln(), 3.0]),
        (NegBinomial2Log, &[0.0, -30.0, 2.0]),
        (NegBinomial, &[7.0, 2.5, 0.4]),
        (BetaBinomial, &[0.0, 10.0, 2.0, 3.0]),
        (BetaBinomial, &[10.0, 10.0, 0.5, 0.5]),
        (Weibull, &[0.0, 1.0, 2.0]),
        (Weibull, &[3.5, 1.5, 2.0]),
        (Frechet, &[0.2, 2.0, 1.0]),
        (Pareto, &[1.0, 1.0, 3.0]),
        (Gumbel, &[-3.0, 0.0, 1.0]),
        (ChiSquare, &[0.0, 2.0]),
        (ChiSquare, &[12.0, 7.0]),
        (InvChiSquare, &[0.05, 3.0]),
        (ScaledInvChiSquare, &[2.0, 5.0, 1.5]),
    ];
    for (f, v) in cases {
        let mut p = [0.0; 3];
        p[..v.len() - 1].copy_from_slice(&v[1..]);
        assert_close(lp_s(*f, v), reference(*f, v[0], p), 1e-10, &format!("{f:?} {v:?}"));
    }
    // Values that need no library at all.
    assert_eq!(lp_s(Poisson, &[0.0, 0.0]), 0.0);
    assert_close(lp_s(StdNormal, &[0.0]), -0.5 * (2.0 * std::f64::consts::PI).ln(), 1e-15, "N(0)");
    assert_close(lp_s(Uniform, &[0.3, 0.0, 4.0]), -(4.0f64).ln(), 1e-15, "U");
    assert_close(lp_s(BernoulliLogit, &[1.0, 0.0]), -(2.0f64).ln(), 1e-15, "bern_logit");
    // Stable tails: no overflow for huge logits.
    assert_close(lp_s(BernoulliLogit, &[0.0, 800.0]), -800.0, 1e-15, "bern_logit tail");
    assert_close(lp_s(BernoulliLogit, &[1.0, 800.0]), 0.0, 1e-15, "bern_logit tail 2");
    assert_close(lp_s(BinomialLogit, &[0.0, 3.0, 900.0]), -2700.0, 1e-15, "binom_logit tail");
    assert_close(lp_s(Logistic, &[1000.0, 0.0, 1.0]), -1000.0, 1e-15, "logistic tail");
}

/// P(y = l) = σ(η − c[l − 1]) − σ(η − c[l]) with σ(η − c[−1]) = 1 and σ(η − c[K − 1]) = 0,
/// directly (the densities take it in logs); the probabilities sum to one.
#[test]
fn ordered_logistic_matches_closed_form() {
    let sig = |t: f64| 1.0 / (1.0 + (-t).exp());
    let c = [-1.0, 0.5, 2.0];
    for eta in [-3.0, 0.2, 1.7] {
        let mut total = 0.0;
        for l in 0..4 {
            let above = if l == 0 { 1.0 } else { sig(eta - c[l - 1]) };
            let below = if l == 3 { 0.0 } else { sig(eta - c[l]) };
            let pt = Pt { vals: vec![vec![l as f64], vec![eta], c.to_vec()], dims: vec![vec![], vec![], vec![3]] };
            let lp = eval(OrderedLogistic, &pt, true);
            assert_close(lp, (above - below).ln(), 1e-12, &format!("eta {eta} label {l}"));
            total += lp.exp();
        }
        assert_close(total, 1.0, 1e-12, "sum");
    }
    // Far in the tails the logs stay finite, without cancellation.
    let pt = Pt { vals: vec![vec![1.0], vec![60.0], c.to_vec()], dims: vec![vec![], vec![], vec![3]] };
    assert_close(eval(OrderedLogistic, &pt, true), (0.5f64 - 60.0) + (1.0f64 - (-1.5f64).exp()).ln(), 1e-9, "tail");
    // Cutpoints out of order are invalid; a label past the last class is outside the support.
    let bad = Pt { vals: vec![vec![0.0], vec![0.0], vec![1.0, 0.0]], dims: vec![vec![], vec![], vec![2]] };
    assert!(eval(OrderedLogistic, &bad, true).is_nan());
    let out = Pt { vals: vec![vec![4.0], vec![0.0], c.to_vec()], dims: vec![vec![], vec![], vec![3]] };
    assert_eq!(eval(OrderedLogistic, &out, true), f64::NEG_INFINITY);
}

#[test]
fn categorical_matches_closed_form() {
    let th = [0.1, 0.2, 0.3, 0.4];
    let y = [0.0, 3.0, 3.0, 2.0];
    let pt = Pt { vals: vec![y.to_vec(), th.to_vec()], dims: vec![vec![4], vec![4]] };
    let want: f64 = y.iter().map(|&l| th[l as usize].ln()).sum();
    assert_close(eval(Categorical, &pt, true), want, 1e-12, "categorical");
    // Scalar label.
    let pt1 = Pt { vals: vec![vec![1.0], th.to_vec()], dims: vec![vec![], vec![4]] };
    assert_close(eval(Categorical, &pt1, true), 0.2f64.ln(), 1e-12, "categorical scalar");

    let beta = [0.5, -1.0, 2.0, 0.0];
    let pt = Pt { vals: vec![y.to_vec(), beta.to_vec()], dims: vec![vec![4], vec![4]] };
    let z: f64 = beta.iter().map(|b| b.exp()).sum();
    let want: f64 = y.iter().map(|&l| (beta[l as usize].exp() / z).ln()).sum();
    assert_close(eval(CategoricalLogit, &pt, true), want, 1e-12, "categorical_logit");
    // Matrix of logits, one row per label; also huge logits (naive softmax would overflow).
    let m = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0, 1000.0, 1001.0, 999.0];
    let y = [2.0, 0.0, 1.0];
    let pt = Pt { vals: vec![y.to_vec(), m.to_vec()], dims: vec![vec![3], vec![3, 3]] };
    let row = |r: usize, l: usize| {
        let b = &m[r * 3..r * 3 + 3];
        let mx = b.iter().copied().fold(f64::MIN, f64::max);
        let z: f64 = b.iter().map(|v| (v - mx).exp()).sum();
        ((b[l] - mx).exp() / z).ln()
    };
    let want = row(0, 2) + row(1, 0) + row(2, 1);
    assert_close(eval(CategoricalLogit, &pt, true), want, 1e-12, "categorical_logit matrix");
    // Matrix of probabilities.
    let m = [0.5, 0.5, 0.1, 0.9];
    let pt = Pt { vals: vec![vec![1.0, 0.0], m.to_vec()], dims: vec![vec![2], vec![2, 2]] };
    assert_close(eval(Categorical, &pt, true), 0.5f64.ln() + 0.1f64.ln(), 1e-12, "cat matrix");
}

#[test]
fn dirichlet_matches_closed_form() {
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..20 {
        let k = rng.random_range(2..=5usize);
        let th = simplex(&mut rng, k);
        let al: Vec<f64> = (0..k).map(|_| u(&mut rng, 0.3, 6.0)).collect();
        let a0: f64 = al.iter().sum();
        let dens = gamma(a0) / al.iter().map(|&a| gamma(a)).product::<f64>()
            * th.iter().zip(&al).map(|(t, a)| t.powf(a - 1.0)).product::<f64>();
        let pt = Pt { vals: vec![th, al], dims: vec![vec![k], vec![k]] };
        assert_close(eval(Dirichlet, &pt, true), dens.ln(), 1e-10, "dirichlet");
    }
    // Two rows sharing α equal the sum of single calls.
    let al = vec![1.5, 2.0, 0.7];
    let (t1, t2) = (vec![0.2, 0.3, 0.5], vec![0.6, 0.1, 0.3]);
    let one =
        |t: &Vec<f64>| eval(Dirichlet, &Pt { vals: vec![t.clone(), al.clone()], dims: vec![vec![3], vec![3]] }, true);
    let both: Vec<f64> = t1.iter().chain(&t2).copied().collect();
    let pt = Pt { vals: vec![both, al.clone()], dims: vec![vec![2, 3], vec![3]] };
    assert_close(eval(Dirichlet, &pt, true), one(&t1) + one(&t2), 1e-12, "dirichlet rows");
    // α = 1 is uniform on the simplex: density (K−1)!.
    let pt = Pt { vals: vec![vec![0.0, 0.25, 0.75], vec![1.0; 3]], dims: vec![vec![3], vec![3]] };
    assert_close(eval(Dirichlet, &pt, true), 2.0f64.ln(), 1e-12, "dirichlet flat");
}

/// Independent 2×2 bivariate normal density via the explicit inverse and determinant.
fn bvn(y: [f64; 2], mu: [f64; 2], s: [f64; 4]) -> f64 {
    let (a, b, c) = (s[0], s[1], s[3]);
    let det = a * c - b * b;
    let (r1, r2) = (y[0] - mu[0], y[1] - mu[1]);
    let q = (c * r1 * r1 - 2.0 * b * r1 * r2 + a * r2 * r2) / det;
    -(2.0 * std::f64::consts::PI).ln() - 0.5 * det.ln() - 0.5 * q
}

/// Independent 3×3 multivariate normal density via cofactors.
fn tvn(y: &[f64], mu: &[f64], s: &[f64]) -> f64 {
    let m = |i: usize, j: usize| s[i * 3 + j];
    let cof = |i: usize, j: usize| {
        let (r0, r1) = ([1, 0, 0][i], [2, 2, 1][i]);
        let (c0, c1) = ([1, 0, 0][j], [2, 2, 1][j]);
        let minor = m(r0, c0) * m(r1, c1) - m(r0, c1) * m(r1, c0);
        if (i + j) % 2 == 0 {
            minor
        } else {
            -minor
        }
    };
    let det = (0..3).map(|j| m(0, j) * cof(0, j)).sum::<f64>();
    let r: Vec<f64> = (0..3).map(|i| y[i] - mu[i]).collect();
    // Σ⁻¹ = adj(Σ)/det, adj_ij = cof_ji.
    let mut q = 0.0;
    for i in 0..3 {
        for j in 0..3 {
            q += r[i] * cof(j, i) / det * r[j];
        }
    }
    -1.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * det.ln() - 0.5 * q
}

#[test]
fn multi_normal_matches_closed_form() {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..30 {
        let y = [nrm(&mut rng), nrm(&mut rng)];
        let mu = [nrm(&mut rng), nrm(&mut rng)];
        let (s1, s2, rho) = (u(&mut rng, 0.3, 3.0), u(&mut rng, 0.3, 3.0), u(&mut rng, -0.9, 0.9));
        let s = [s1 * s1, rho * s1 * s2, rho * s1 * s2, s2 * s2];
        let pt = Pt { vals: vec![y.to_vec(), mu.to_vec(), s.to_vec()], dims: vec![vec![2], vec![2], vec![2, 2]] };
        let want = bvn(y, mu, s);
        assert_close(eval(MultiNormal, &pt, true), want, 1e-10, "multi_normal 2x2");
        // Cholesky parameterisation of the same covariance.
        let l = [s1, 0.0, rho * s2, s2 * (1.0 - rho * rho).sqrt()];
        let pt = Pt { vals: vec![y.to_vec(), mu.to_vec(), l.to_vec()], dims: vec![vec![2], vec![2], vec![2, 2]] };
        assert_close(eval(MultiNormalCholesky, &pt, true), want, 1e-10, "multi_normal_cholesky 2x2");

        let pt3 = gen_point(MultiNormal, &mut rng);
        let (ry, rm) = (pt3.vals[0].len() / 3, pt3.vals[1].len() / 3);
        let want: f64 = (0..ry.max(rm))
            .map(|r| {
                let y = &pt3.vals[0][if ry == 1 { 0 } else { 3 * r }..][..3];
                let mu = &pt3.vals[1][if rm == 1 { 0 } else { 3 * r }..][..3];
                tvn(y, mu, &pt3.vals[2])
            })
            .sum();
        assert_close(eval(MultiNormal, &pt3, true), want, 1e-10, "multi_normal 3x3");
    }
    // K = 1 reduces to the univariate normal.
    let pt = Pt { vals: vec![vec![0.4], vec![1.0], vec![4.0]], dims: vec![vec![1], vec![1], vec![1, 1]] };
    assert_close(eval(MultiNormal, &pt, true), lp_s(Normal, &[0.4, 1.0, 2.0]), 1e-14, "K=1");
}

/// ln B(a, b) written independently with the gamma function.
fn lbeta(a: f64, b: f64) -> f64 {
    (gamma(a) * gamma(b) / gamma(a + b)).ln()
}

#[test]
fn lkj_matches_hand_formulas() {
    let ln2 = 2.0f64.ln();
    for &eta in &[0.5, 1.0, 1.7, 4.0] {
        // K = 2: the correlation ρ = L21 has density (1−ρ²)^{η−1} / (2^{2η−1} B(η, η)).
        for &rho in &[-0.8, 0.0, 0.3, 0.95] {
            let l = vec![1.0, 0.0, rho, (1.0f64 - rho * rho).sqrt()];
            let want = (eta - 1.0) * (1.0 - rho * rho).ln() - (2.0 * eta - 1.0) * ln2 - lbeta(eta, eta);
            assert_close(eval(LkjCorrCholesky, &lkj_pt(l, 2, eta), true), want, 1e-10, "lkj K=2");
        }
        // K = 3: (η−1) ln det Ω + ln L22 (Jacobian of L ↦ Ω) − ln c3,
        // c3 = [2^{2η} B(η+½, η+½)]² · 2^{2η−1} B(η, η).
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..5 {
            let mut l = vec![0.0; 9];
            sample(LkjCorrCholesky, &[Arg { values: &[2.0], dims: &[] }], &mut l, &mut rng);
            let det = (l[4] * l[8]).powi(2);
            let lc3 = 2.0 * (2.0 * eta * ln2 + lbeta(eta + 0.5, eta + 0.5)) + (2.0 * eta - 1.0) * ln2 + lbeta(eta, eta);
            let want = (eta - 1.0) * det.ln() + l[4].ln() - lc3;
            assert_close(eval(LkjCorrCholesky, &lkj_pt(l, 3, eta), true), want, 1e-10, "lkj K=3");
        }
    }
    // η = 1 is uniform over correlation matrices: the density at the identity is 1/volume,
    // with the known volumes 2 (K=2), π²/2 (K=3), 32π²/27 (K=4); K = 1 is a point mass.
    let pi2 = std::f64::consts::PI.powi(2);
    for (k, vol) in [(1usize, 1.0), (2, 2.0), (3, pi2 / 2.0), (4, 32.0 * pi2 / 27.0)] {
        let mut id = vec![0.0; k * k];
        for i in 0..k {
            id[i * k + i] = 1.0;
        }
        assert_close(eval(LkjCorrCholesky, &lkj_pt(id, k, 1.0), true), -vol.ln(), 1e-12, "lkj volume");
    }
}

/// The K = 3 LKJ density, turned back into a density over the three correlations, integrates
/// to one (midpoint rule over the cube; outside the elliptope the integrand is 0).
#[test]
fn lkj_k3_integrates_to_one() {
    for &eta in &[1.0, 2.0, 3.5] {
        let n = 60;
        let h = 2.0 / n as f64;
        let mut total = 0.0;
        for a in 0..n {
            for b in 0..n {
                for c in 0..n {
                    let r = |i: usize| -1.0 + (i as f64 + 0.5) * h;
                    let (r12, r13, r23) = (r(a), r(b), r(c));
                    let omega = [1.0, r12, r13, r12, 1.0, r23, r13, r23, 1.0];
                    let Some(l) = cholesky(&omega, 3) else { continue };
                    let lp = eval(LkjCorrCholesky, &lkj_pt(l.clone(), 3, eta), true);
                    // Density over Ω = density over L divided by the Jacobian L22.
                    total += (lp - l[4].ln()).exp() * h * h * h;
                }
            }
        }
        assert!((total - 1.0).abs() < 2e-2, "eta {eta}: integral {total}");
    }
}
