use super::*;
use rand::SeedableRng;

// ---------------------------------------------------------------- gradients

#[test]
fn gradients_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(5);
    for &f in Family::ALL {
        for _ in 0..60 {
            let pt = gen_point(f, &mut rng);
            grad_check(f, &pt);
        }
    }
}

#[test]
fn gradients_at_fixed_points() {
    // Support edges where the density is finite, and extreme logits.
    let cases: &[(Family, &[f64])] = &[
        (Beta, &[0.3, 1.0, 1.0]),
        (Gamma, &[2.0, 1.0, 0.5]),
        (BernoulliLogit, &[1.0, 40.0]),
        (BernoulliLogit, &[0.0, -40.0]),
        (BinomialLogit, &[3.0, 5.0, 30.0]),
        (Binomial, &[0.0, 4.0, 0.3]),
        (Binomial, &[4.0, 4.0, 0.3]),
        (Poisson, &[0.0, 2.0]),
        (NegBinomial2, &[0.0, 2.0, 5.0]),
        (StudentT, &[3.0, 1e3, 1.0, 2.0]),
    ];
    for (f, v) in cases {
        grad_check(*f, &Pt::scalars(v));
    }
    // At x = 0 (edge of the support) finite differences are impossible; closed forms.
    let (_, g) = eval_grad(HalfNormal, &Pt::scalars(&[0.0, 1.3]), true);
    assert_eq!((g[0][0], g[1][0]), (0.0, -1.0 / 1.3));
    let (_, g) = eval_grad(Exponential, &Pt::scalars(&[0.0, 2.0]), true);
    assert_eq!((g[0][0], g[1][0]), (-2.0, 0.5));
    // Poisson at λ = 0 with y = 0: d/dλ = −1 (one-sided), value 0.
    let (lp, g) = eval_grad(Poisson, &Pt::scalars(&[0.0, 0.0]), true);
    assert_eq!((lp, g[1][0]), (0.0, -1.0));
    // Laplace at the kink: subgradient 0 in x and μ.
    let (_, g) = eval_grad(Laplace, &Pt::scalars(&[1.0, 1.0, 2.0]), true);
    assert_eq!((g[0][0], g[1][0]), (0.0, 0.0));
    // Softmax gradient of categorical_logit sums to zero per row.
    let pt = Pt { vals: vec![vec![1.0, 2.0], vec![0.3, 1e3, -2.0]], dims: vec![vec![2], vec![3]] };
    let (_, g) = eval_grad(CategoricalLogit, &pt, true);
    assert!(g[1].iter().sum::<f64>().abs() < 1e-12 && g[1].iter().all(|v| v.is_finite()));
}

#[test]
fn multi_normal_gradient_closed_form() {
    // dΣ = ½ (Σ⁻¹ r rᵀ Σ⁻¹ − Σ⁻¹), written with the explicit 2×2 inverse.
    let (y, mu, s) = ([1.0, -0.5], [0.2, 0.1], [2.0, 0.6, 0.6, 1.0]);
    let pt = Pt { vals: vec![y.to_vec(), mu.to_vec(), s.to_vec()], dims: vec![vec![2], vec![2], vec![2, 2]] };
    let (_, g) = eval_grad(MultiNormal, &pt, true);
    let det = s[0] * s[3] - s[1] * s[2];
    let inv = [s[3] / det, -s[1] / det, -s[2] / det, s[0] / det];
    let r = [y[0] - mu[0], y[1] - mu[1]];
    let a = [inv[0] * r[0] + inv[1] * r[1], inv[2] * r[0] + inv[3] * r[1]];
    for i in 0..2 {
        assert_close(g[0][i], -a[i], 1e-12, "dy");
        assert_close(g[1][i], a[i], 1e-12, "dmu");
        for j in 0..2 {
            assert_close(g[2][i * 2 + j], 0.5 * (a[i] * a[j] - inv[i * 2 + j]), 1e-12, "dSigma");
        }
    }
    // Upper triangle of L gets exactly zero.
    let l = [1.5, 0.0, 0.4, 0.8];
    let pt = Pt { vals: vec![y.to_vec(), mu.to_vec(), l.to_vec()], dims: vec![vec![2], vec![2], vec![2, 2]] };
    let (_, g) = eval_grad(MultiNormalCholesky, &pt, true);
    assert_eq!(g[2][1], 0.0);
}

// ---------------------------------------------------------------- broadcasting

#[test]
fn broadcasting_is_sum_of_scalar_calls() {
    let mut rng = StdRng::seed_from_u64(6);
    for &f in Family::ALL.iter().filter(|f| f.is_elementwise()) {
        for _ in 0..20 {
            let pt = gen_point(f, &mut rng);
            let n = pt.vals.iter().map(|v| v.len()).max().unwrap();
            let (lp, g) = eval_grad(f, &pt, true);
            let mut sum = 0.0;
            let mut gsum: Vec<Vec<f64>> = pt.vals.iter().map(|v| vec![0.0; v.len()]).collect();
            for i in 0..n {
                let at = |v: &Vec<f64>| if v.len() == 1 { v[0] } else { v[i] };
                let one = Pt::scalars(&pt.vals.iter().map(at).collect::<Vec<_>>());
                let (l1, g1) = eval_grad(f, &one, true);
                sum += l1;
                for j in 0..pt.vals.len() {
                    let idx = if pt.vals[j].len() == 1 { 0 } else { i };
                    gsum[j][idx] += g1[j][0];
                }
            }
            assert_close(lp, sum, 1e-12, &format!("{f:?} broadcast value"));
            for j in 0..pt.vals.len() {
                for e in 0..pt.vals[j].len() {
                    assert_close(g[j][e], gsum[j][e], 1e-12, &format!("{f:?} broadcast grad {j}"));
                }
            }
        }
    }
    // Explicit case: vector variate, scalar parameters.
    let pt = Pt { vals: vec![vec![0.1, -0.4, 2.0], vec![0.5], vec![1.5]], dims: vec![vec![3], vec![], vec![]] };
    let want: f64 = [0.1, -0.4, 2.0].iter().map(|&x| lp_s(Normal, &[x, 0.5, 1.5])).sum();
    assert_close(eval(Normal, &pt, true), want, 1e-14, "normal broadcast");
    // Empty variate: zero.
    let pt = Pt { vals: vec![vec![], vec![0.5], vec![1.5]], dims: vec![vec![0], vec![], vec![]] };
    assert_eq!(eval(Normal, &pt, true), 0.0);
}
