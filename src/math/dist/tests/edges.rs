use super::*;
use proptest::prelude::*;
use rand::SeedableRng;

// ---------------------------------------------------------------- edges and errors

#[test]
fn support_edges_and_invalid_parameters() {
    let ninf = f64::NEG_INFINITY;
    let out: &[(Family, &[f64])] = &[
        (Exponential, &[-1.0, 2.0]),
        (HalfNormal, &[-0.1, 1.0]),
        (HalfCauchy, &[-0.1, 1.0]),
        (Gamma, &[-1.0, 2.0, 1.0]),
        (Gamma, &[0.0, 2.0, 1.0]),
        (InvGamma, &[0.0, 2.0, 1.0]),
        (Lognormal, &[0.0, 0.0, 1.0]),
        (Beta, &[1.2, 2.0, 2.0]),
        (Beta, &[0.0, 2.0, 2.0]),
        (Uniform, &[3.0, 0.0, 1.0]),
        (Normal, &[f64::INFINITY, 0.0, 1.0]),
        (Bernoulli, &[2.0, 0.5]),
        (Bernoulli, &[0.5, 0.5]),
        (Bernoulli, &[1.0, 0.0]),
        (BernoulliLogit, &[-1.0, 0.0]),
        (Binomial, &[6.0, 5.0, 0.5]),
        (Binomial, &[2.0, 5.0, 0.0]),
        (BinomialLogit, &[1.5, 5.0, 0.0]),
        (Poisson, &[1.5, 2.0]),
        (Poisson, &[-1.0, 2.0]),
        (Poisson, &[1.0, 0.0]),
        (PoissonLog, &[f64::INFINITY, 0.0]),
        (NegBinomial2, &[2.5, 1.0, 1.0]),
        (NegBinomial, &[-1.0, 1.0, 1.0]),
        (NegBinomial2Log, &[0.5, 0.0, 1.0]),
        (BetaBinomial, &[6.0, 5.0, 1.0, 1.0]),
        (Weibull, &[-0.5, 2.0, 1.0]),
        (Weibull, &[0.0, 2.0, 1.0]),
        (Frechet, &[0.0, 2.0, 1.0]),
        (Rayleigh, &[0.0, 1.0]),
        (Pareto, &[0.5, 1.0, 2.0]),
        (Gumbel, &[f64::INFINITY, 0.0, 1.0]),
        (ChiSquare, &[0.0, 3.0]),
        (InvChiSquare, &[0.0, 3.0]),
        (ScaledInvChiSquare, &[-1.0, 3.0, 1.0]),
    ];
    for (f, v) in out {
        assert_eq!(lp_s(*f, v), ninf, "{f:?} {v:?} should be outside the support");
    }
    let bad: &[(Family, &[f64])] = &[
        (Normal, &[0.0, 0.0, 0.0]),
        (Normal, &[0.0, 0.0, -1.0]),
        (Normal, &[0.0, f64::NAN, 1.0]),
        (Normal, &[0.0, f64::INFINITY, 1.0]),
        (Normal, &[f64::NAN, 0.0, 1.0]),
        (StudentT, &[0.0, 0.0, 0.0, 1.0]),
        (Cauchy, &[0.0, 0.0, f64::INFINITY]),
        (HalfNormal, &[1.0, 0.0]),
        (Exponential, &[1.0, -2.0]),
        (Gamma, &[1.0, 0.0, 1.0]),
        (InvGamma, &[1.0, 1.0, -1.0]),
        (Beta, &[0.5, -1.0, 1.0]),
        (Uniform, &[0.5, 1.0, 1.0]),
        (Uniform, &[0.5, 2.0, 1.0]),
        (Laplace, &[0.0, 0.0, 0.0]),
        (Logistic, &[0.0, 0.0, -3.0]),
        (Bernoulli, &[1.0, 1.5]),
        (Bernoulli, &[1.0, -0.1]),
        (BernoulliLogit, &[1.0, f64::NAN]),
        (Binomial, &[1.0, 2.5, 0.5]),
        (Binomial, &[1.0, -1.0, 0.5]),
        (Binomial, &[1.0, 3.0, 1.5]),
        (BinomialLogit, &[1.0, 3.0, f64::INFINITY]),
        (Poisson, &[1.0, -1.0]),
        (Poisson, &[1.0, f64::INFINITY]),
        (NegBinomial2, &[1.0, 0.0, 1.0]),
        (NegBinomial2, &[1.0, 1.0, 0.0]),
        (NegBinomial, &[1.0, 1.0, 0.0]),
        (NegBinomial2Log, &[1.0, f64::NAN, 1.0]),
        (BetaBinomial, &[1.0, 2.5, 1.0, 1.0]),
        (BetaBinomial, &[1.0, 3.0, 0.0, 1.0]),
        (Weibull, &[1.0, 0.0, 1.0]),
        (Frechet, &[1.0, 1.0, -1.0]),
        (Rayleigh, &[1.0, 0.0]),
        (Pareto, &[2.0, 0.0, 1.0]),
        (Gumbel, &[0.0, 0.0, 0.0]),
        (ChiSquare, &[1.0, -2.0]),
        (InvChiSquare, &[1.0, 0.0]),
        (ScaledInvChiSquare, &[1.0, 2.0, 0.0]),
        (Bernoulli, &[f64::NAN, 0.5]),
    ];
    for (f, v) in bad {
        assert!(lp_s(*f, v).is_nan(), "{f:?} {v:?} should be NaN");
    }
    // Invalid parameters win over an out-of-support variate elsewhere in the vector.
    let pt = Pt { vals: vec![vec![-1.0, 1.0], vec![1.0, -1.0]], dims: vec![vec![2], vec![2]] };
    assert!(eval(Exponential, &pt, true).is_nan());
    // Wrong number of arguments, mismatched lengths, inconsistent dims.
    assert!(lp_s(Normal, &[0.0, 1.0]).is_nan());
    assert!(lp_s(StdNormal, &[0.0, 1.0]).is_nan());
    let pt = Pt { vals: vec![vec![0.0; 3], vec![0.0; 2], vec![1.0]], dims: vec![vec![3], vec![2], vec![]] };
    assert!(eval(Normal, &pt, true).is_nan());
    let pt = Pt { vals: vec![vec![0.0; 3], vec![0.0], vec![1.0]], dims: vec![vec![2], vec![], vec![]] };
    assert!(eval(Normal, &pt, true).is_nan());
    // Gradient slices of the wrong shape.
    let pt = Pt::scalars(&[0.0, 0.0, 1.0]);
    let (mut g0, mut g1, mut g2) = (vec![0.0], vec![0.0, 0.0], vec![0.0]);
    let mut gs: Vec<&mut [f64]> = vec![&mut g0, &mut g1, &mut g2];
    assert!(log_density(Normal, &pt.args(), Some(&mut gs)).is_nan());
    let mut gs: Vec<&mut [f64]> = vec![&mut g0, &mut g2];
    assert!(log_density(Normal, &pt.args(), Some(&mut gs)).is_nan());
}

#[test]
fn multivariate_edges() {
    let v = |vals: Vec<Vec<f64>>, dims: Vec<Vec<usize>>| Pt { vals, dims };
    let th = vec![0.2, 0.3, 0.5];
    // Categorical labels: 0-based, so K is out of range; non-integers and negatives too.
    for bad in [3.0, -1.0, 1.5, f64::INFINITY] {
        let pt = v(vec![vec![0.0, bad], th.clone()], vec![vec![2], vec![3]]);
        assert_eq!(eval(Categorical, &pt, true), f64::NEG_INFINITY, "label {bad}");
        assert_eq!(eval(CategoricalLogit, &pt, true), f64::NEG_INFINITY, "logit label {bad}");
    }
    let pt = v(vec![vec![2.0], th.clone()], vec![vec![], vec![3]]);
    assert!(eval(Categorical, &pt, true).is_finite());
    // Label with zero probability.
    let pt = v(vec![vec![0.0], vec![0.0, 0.5, 0.5]], vec![vec![], vec![3]]);
    assert_eq!(eval(Categorical, &pt, true), f64::NEG_INFINITY);
    // θ not a simplex, or negative.
    let pt = v(vec![vec![0.0], vec![0.2, 0.3, 0.6]], vec![vec![], vec![3]]);
    assert!(eval(Categorical, &pt, true).is_nan());
    let pt = v(vec![vec![0.0], vec![-0.2, 0.7, 0.5]], vec![vec![], vec![3]]);
    assert!(eval(Categorical, &pt, true).is_nan());
    // Matrix of logits with the wrong number of labels.
    let pt = v(vec![vec![0.0, 1.0, 2.0], vec![0.0; 4]], vec![vec![3], vec![2, 2]]);
    assert!(eval(CategoricalLogit, &pt, true).is_nan());
    let pt = v(vec![vec![0.0], vec![f64::NAN, 1.0]], vec![vec![], vec![2]]);
    assert!(eval(CategoricalLogit, &pt, true).is_nan());
    let pt = v(vec![vec![f64::NAN], vec![0.0, 1.0]], vec![vec![], vec![2]]);
    assert!(eval(CategoricalLogit, &pt, true).is_nan());

    // Dirichlet.
    let al = vec![1.0, 2.0, 3.0];
    let pt = v(vec![vec![0.2, 0.3, 0.6], al.clone()], vec![vec![3], vec![3]]);
    assert_eq!(eval(Dirichlet, &pt, true), f64::NEG_INFINITY);
    let pt = v(vec![vec![-0.2, 0.7, 0.5], al.clone()], vec![vec![3], vec![3]]);
    assert_eq!(eval(Dirichlet, &pt, true), f64::NEG_INFINITY);
    let pt = v(vec![vec![0.0, 0.5, 0.5], al.clone()], vec![vec![3], vec![3]]);
    assert!(eval(Dirichlet, &pt, true).is_finite()); // α₁ = 1: zero allowed
    let pt = v(vec![vec![0.5, 0.0, 0.5], al.clone()], vec![vec![3], vec![3]]);
    assert_eq!(eval(Dirichlet, &pt, true), f64::NEG_INFINITY); // α₂ > 1: density 0
    let pt = v(vec![vec![0.2, 0.3, 0.5], vec![1.0, 0.0, 1.0]], vec![vec![3], vec![3]]);
    assert!(eval(Dirichlet, &pt, true).is_nan());
    let pt = v(vec![vec![0.5, 0.5], al.clone()], vec![vec![2], vec![3]]);
    assert!(eval(Dirichlet, &pt, true).is_nan());

    // Multi-normal: non-square, non-PD, asymmetric, wrong mean length.
    let y = vec![0.0, 0.0];
    let pt = v(vec![y.clone(), y.clone(), vec![1.0; 6]], vec![vec![2], vec![2], vec![2, 3]]);
    assert!(eval(MultiNormal, &pt, true).is_nan());
    let pt = v(vec![y.clone(), y.clone(), vec![1.0, 2.0, 2.0, 1.0]], vec![vec![2], vec![2], vec![2, 2]]);
    assert!(eval(MultiNormal, &pt, true).is_nan());
    let pt = v(vec![y.clone(), y.clone(), vec![1.0, 0.5, 0.4, 1.0]], vec![vec![2], vec![2], vec![2, 2]]);
    assert!(eval(MultiNormal, &pt, true).is_nan());
    let pt = v(vec![y.clone(), vec![0.0; 3], vec![1.0, 0.0, 0.0, 1.0]], vec![vec![2], vec![3], vec![2, 2]]);
    assert!(eval(MultiNormal, &pt, true).is_nan());
    let pt = v(vec![y.clone(), y.clone(), vec![1.0, 0.0, 0.0, 1.0]], vec![vec![2], vec![2], vec![4]]);
    assert!(eval(MultiNormal, &pt, true).is_nan());
    let pt = v(vec![vec![0.0; 6], vec![0.0; 4], vec![1.0, 0.0, 0.0, 1.0]], vec![vec![3, 2], vec![2, 2], vec![2, 2]]);
    assert!(eval(MultiNormal, &pt, true).is_nan()); // 3 rows vs 2 rows
    let pt = v(vec![y.clone(), y.clone(), vec![1.0, 0.0, 0.3, -1.0]], vec![vec![2], vec![2], vec![2, 2]]);
    assert!(eval(MultiNormalCholesky, &pt, true).is_nan()); // negative diagonal
    let pt = v(vec![vec![f64::INFINITY, 0.0], y.clone(), vec![1.0, 0.0, 0.0, 1.0]], vec![vec![2], vec![2], vec![2, 2]]);
    assert_eq!(eval(MultiNormal, &pt, true), f64::NEG_INFINITY);

    // LKJ: non-square, bad η, not a correlation Cholesky factor.
    let pt = v(vec![vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0], vec![1.0]], vec![vec![2, 3], vec![]]);
    assert!(eval(LkjCorrCholesky, &pt, true).is_nan());
    let pt = lkj_pt(vec![1.0, 0.0, 0.0, 1.0], 2, 0.0);
    assert!(eval(LkjCorrCholesky, &pt, true).is_nan());
    let pt = lkj_pt(vec![1.0, 0.0, 0.5, 1.0], 2, 1.0);
    assert_eq!(eval(LkjCorrCholesky, &pt, true), f64::NEG_INFINITY);
    let pt = lkj_pt(vec![1.0, 0.2, 0.0, 1.0], 2, 1.0);
    assert_eq!(eval(LkjCorrCholesky, &pt, true), f64::NEG_INFINITY);
    let pt = lkj_pt(vec![1.0, 0.0, 0.6, -0.8], 2, 1.0);
    assert_eq!(eval(LkjCorrCholesky, &pt, true), f64::NEG_INFINITY);
}

#[test]
fn gradients_untouched_on_nan_or_neg_inf() {
    let cases: Vec<(Family, Pt)> = vec![
        (Exponential, Pt { vals: vec![vec![1.0, -1.0], vec![2.0]], dims: vec![vec![2], vec![]] }),
        (Normal, Pt { vals: vec![vec![1.0, 2.0], vec![0.0], vec![1.0, -1.0]], dims: vec![vec![2], vec![], vec![2]] }),
        (Dirichlet, Pt { vals: vec![vec![0.5, 0.6], vec![1.0, 1.0]], dims: vec![vec![2], vec![2]] }),
        (
            MultiNormal,
            Pt {
                vals: vec![vec![0.0; 2], vec![0.0; 2], vec![1.0, 2.0, 2.0, 1.0]],
                dims: vec![vec![2], vec![2], vec![2, 2]],
            },
        ),
        (LkjCorrCholesky, lkj_pt(vec![1.0, 0.0, 0.5, 1.0], 2, 2.0)),
        (CategoricalLogit, Pt { vals: vec![vec![0.0, 5.0], vec![0.0, 1.0]], dims: vec![vec![2], vec![2]] }),
        (Categorical, Pt { vals: vec![vec![1.0, 0.0], vec![0.0, 1.0]], dims: vec![vec![2], vec![2]] }),
    ];
    for (f, pt) in cases {
        let (lp, g) = eval_grad(f, &pt, true);
        assert!(lp.is_nan() || lp == f64::NEG_INFINITY, "{f:?}");
        assert!(g.iter().flatten().all(|&v| v == 0.0), "{f:?} touched the gradient");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Arbitrary (mostly nonsensical) arguments never panic, for density and sampling.
    #[test]
    fn never_panics(
        fi in 0usize..27,
        nargs in 0usize..5,
        lens in proptest::collection::vec(0usize..10, 5),
        picks in proptest::collection::vec(0usize..14, 50),
        modes in proptest::collection::vec(0usize..4, 5),
        grad_mode in 0usize..3,
        out_len in 0usize..10,
        seed in any::<u64>(),
    ) {
        const PALETTE: [f64; 14] = [
            f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0,
            1e300, -1e-300, 0.3, 1e-300, 4.0,
        ];
        let f = Family::ALL[fi];
        let mut it = picks.iter().cycle();
        let mut vals = Vec::new();
        let mut dims = Vec::new();
        for a in 0..nargs {
            let len = lens[a];
            vals.push((0..len).map(|_| PALETTE[*it.next().unwrap()]).collect::<Vec<f64>>());
            let s = (len as f64).sqrt() as usize;
            dims.push(match modes[a] {
                0 if len == 1 => vec![],
                0 | 1 => vec![len],
                2 if s * s == len => vec![s, s],
                2 => vec![1, len],
                _ => vec![len, 2],
            });
        }
        let pt = Pt { vals, dims };
        let args = pt.args();
        let mut g: Vec<Vec<f64>> = pt.vals.iter().map(|v| vec![0.0; v.len() + (grad_mode == 2) as usize]).collect();
        let mut refs: Vec<&mut [f64]> = g.iter_mut().map(|v| v.as_mut_slice()).collect();
        let lp = log_density(f, &args, if grad_mode > 0 { Some(&mut refs) } else { None });
        prop_assert!(!(lp == f64::INFINITY && f.is_discrete()));
        let mut out = vec![0.0; out_len];
        let mut rng = StdRng::seed_from_u64(seed);
        if !args.is_empty() {
            sample(f, &args[1..], &mut out, &mut rng);
        }
        sample(f, &args, &mut out, &mut rng);
    }
}
