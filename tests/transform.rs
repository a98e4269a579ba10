//! Property tests of the constraint transforms (src/math/transform.rs): round trips, the
//! log-Jacobian against a finite-difference Jacobian, the reverse-mode gradient against finite
//! differences, and the support of the constrained values.

#![allow(clippy::needless_range_loop)]

use bnnc::math::transform::{constrain, constrain_vjp, unconstrain, Kind};
use proptest::collection::vec;
use proptest::prelude::*;

const INF: f64 = f64::INFINITY;

const KINDS: [Kind; 8] = [
    Kind::Identity,
    Kind::Lower,
    Kind::Upper,
    Kind::LowerUpper,
    Kind::Simplex,
    Kind::Ordered,
    Kind::PositiveOrdered,
    Kind::CholeskyCorr,
];

/// One transform call: the kind, the constrained size n, a point y and the bounds.
#[derive(Clone, Debug)]
struct Case {
    kind: Kind,
    n: usize,
    y: Vec<f64>,
    lb: Vec<f64>,
    ub: Vec<f64>,
}

/// A pair of bounds: lower in [-5, 5], width in [0.1, 10], and sometimes an infinite side.
fn bound_pair() -> impl Strategy<Value = (f64, f64)> {
    (-5.0..5.0f64, 0.1..10.0f64, 0u8..10).prop_map(|(lo, w, flag)| match flag {
        0 => (-INF, lo + w),
        1 => (lo, INF),
        2 => (-INF, INF),
        _ => (lo, lo + w),
    })
}

/// A kind, its size (K in 1..=5; 2..=6 for a simplex; n = K² for cholesky_corr), one bound or
/// one per element, and `extra` uniform numbers in (0, 1) per element for building points.
fn setup() -> impl Strategy<Value = (Kind, usize, Vec<(f64, f64)>)> {
    (0..KINDS.len(), 1usize..6, any::<bool>()).prop_flat_map(|(ki, k, per_elem)| {
        let kind = KINDS[ki];
        let n = match kind {
            Kind::Simplex => k + 1,
            Kind::CholeskyCorr => k * k,
            _ => k,
        };
        let nb = if per_elem { n } else { 1 };
        (Just(kind), Just(n), vec(bound_pair(), nb))
    })
}

/// Split bound pairs into the `lb`/`ub` slices the kind takes.
fn bounds(kind: Kind, pairs: &[(f64, f64)]) -> (Vec<f64>, Vec<f64>) {
    let lo: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let hi: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    match kind {
        Kind::Lower => (lo, vec![]),
        Kind::Upper => (vec![], hi),
        Kind::LowerUpper => (lo, hi),
        _ => (vec![], vec![]),
    }
}

/// A random unconstrained point with coordinates in [-r, r].
fn case(r: f64) -> impl Strategy<Value = Case> {
    setup().prop_flat_map(move |(kind, n, pairs)| {
        let (lb, ub) = bounds(kind, &pairs);
        vec(-r..r, kind.free_len(n)).prop_map(move |y| Case { kind, n, y, lb: lb.clone(), ub: ub.clone() })
    })
}

/// A random constrained point strictly inside the support, with its bounds.
fn point() -> impl Strategy<Value = (Kind, Vec<f64>, Vec<f64>, Vec<f64>)> {
    setup().prop_flat_map(|(kind, n, pairs)| {
        let (lb, ub) = bounds(kind, &pairs);
        vec(0.01..0.99f64, n).prop_map(move |u| {
            let x = build_point(kind, &u, &lb, &ub);
            (kind, x, lb.clone(), ub.clone())
        })
    })
}

fn at(b: &[f64], i: usize) -> f64 {
    if b.len() == 1 {
        b[0]
    } else {
        b[i]
    }
}

/// Map uniforms `u ∈ (0.01, 0.99)ⁿ` into the interior of the kind's support.
fn build_point(kind: Kind, u: &[f64], lb: &[f64], ub: &[f64]) -> Vec<f64> {
    let n = u.len();
    match kind {
        Kind::Identity => u.iter().map(|v| 20.0 * v - 10.0).collect(),
        Kind::Lower | Kind::Upper | Kind::LowerUpper => (0..n)
            .map(|i| {
                let l = if lb.is_empty() { -INF } else { at(lb, i) };
                let h = if ub.is_empty() { INF } else { at(ub, i) };
                match (l.is_finite(), h.is_finite()) {
                    (true, true) => l + (h - l) * u[i],
                    (true, false) => l + 10.0 * u[i],
                    (false, true) => h - 10.0 * u[i],
                    (false, false) => 20.0 * u[i] - 10.0,
                }
            })
            .collect(),
        Kind::Simplex => {
            let s: f64 = u.iter().sum();
            u.iter().map(|v| v / s).collect()
        }
        Kind::Ordered | Kind::PositiveOrdered => {
            let mut x = Vec::with_capacity(n);
            let start = if kind == Kind::Ordered { 20.0 * u[0] - 10.0 } else { 5.0 * u[0] };
            x.push(start);
            for i in 1..n {
                x.push(x[i - 1] + 5.0 * u[i]);
            }
            x
        }
        Kind::CholeskyCorr => {
            // Any lower-triangular matrix with a positive diagonal and unit rows is the Cholesky
            // factor of a correlation matrix.
            let k = n.isqrt();
            let mut x = vec![0.0; n];
            for i in 0..k {
                for j in 0..i {
                    x[i * k + j] = 2.0 * u[i * k + j] - 1.0;
                }
                x[i * k + i] = u[i * k + i] + 0.05;
                let norm = (0..=i).map(|j| x[i * k + j] * x[i * k + j]).sum::<f64>().sqrt();
                for j in 0..=i {
                    x[i * k + j] /= norm;
                }
            }
            x
        }
    }
}

fn run(c: &Case) -> (Vec<f64>, f64) {
    let mut x = vec![0.0; c.n];
    let lj = constrain(c.kind, &c.y, &c.lb, &c.ub, &mut x);
    (x, lj)
}

/// The coordinates of x that the Jacobian is taken with respect to.
fn free_coords(kind: Kind, x: &[f64]) -> Vec<f64> {
    match kind {
        Kind::Simplex => x[..x.len() - 1].to_vec(),
        Kind::CholeskyCorr => {
            let k = x.len().isqrt();
            (0..k).flat_map(|i| (0..i).map(move |j| (i, j))).map(|(i, j)| x[i * k + j]).collect()
        }
        _ => x.to_vec(),
    }
}

/// d/dt g(t) at t = 0 by central differences with one Richardson step (error O(h⁴)).
fn derivative(g: impl Fn(f64) -> Vec<f64>) -> Vec<f64> {
    let h = 1e-3;
    let d = |h: f64| -> Vec<f64> { g(h).iter().zip(g(-h)).map(|(a, b)| (a - b) / (2.0 * h)).collect() };
    let (d1, d2) = (d(h), d(h / 2.0));
    d1.iter().zip(&d2).map(|(a, b)| (4.0 * b - a) / 3.0).collect()
}

/// log |det A| by LU decomposition with partial pivoting.
fn log_abs_det(mut a: Vec<Vec<f64>>) -> f64 {
    let m = a.len();
    let mut s = 0.0;
    for c in 0..m {
        let p = (c..m).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap();
        a.swap(c, p);
        let piv = a[c][c];
        if piv == 0.0 {
            return -INF;
        }
        s += piv.abs().ln();
        for r in c + 1..m {
            let f = a[r][c] / piv;
            for k in c..m {
                a[r][k] -= f * a[c][k];
            }
        }
    }
    s
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// unconstrain(constrain(y)) = y.
    #[test]
    fn unconstrain_inverts_constrain(c in case(4.0)) {
        let (x, lj) = run(&c);
        prop_assert!(lj.is_finite(), "{c:?}: log|J| = {lj}");
        let mut y = vec![f64::NAN; c.y.len()];
        let res = unconstrain(c.kind, &x, &c.lb, &c.ub, &mut y);
        prop_assert!(res.is_ok(), "{c:?}: x = {x:?}: {res:?}");
        for (a, b) in y.iter().zip(&c.y) {
            prop_assert!(close(*a, *b, 1e-8), "{c:?}: x = {x:?}, back to {y:?}");
        }
    }

    /// constrain(unconstrain(x)) = x for x inside the support.
    #[test]
    fn constrain_inverts_unconstrain((kind, x, lb, ub) in point()) {
        let mut y = vec![f64::NAN; kind.free_len(x.len())];
        let res = unconstrain(kind, &x, &lb, &ub, &mut y);
        prop_assert!(res.is_ok(), "{kind:?} {x:?} {lb:?} {ub:?}: {res:?}");
        prop_assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
        let mut back = vec![f64::NAN; x.len()];
        let lj = constrain(kind, &y, &lb, &ub, &mut back);
        prop_assert!(lj.is_finite());
        for (a, b) in back.iter().zip(&x) {
            prop_assert!(close(*a, *b, 1e-10), "{kind:?}: {x:?} came back as {back:?}");
        }
    }

    /// log|J| equals log|det| of a finite-difference Jacobian of y → free coordinates of x.
    #[test]
    fn log_jacobian_matches_finite_differences(c in case(2.5)) {
        let (x, lj) = run(&c);
        let m = c.y.len();
        let mut jac = vec![vec![0.0; m]; m]; // jac[row = free coordinate][col = y index]
        for col in 0..m {
            let d = derivative(|t| {
                let mut y = c.y.clone();
                y[col] += t;
                let mut x = vec![0.0; c.n];
                constrain(c.kind, &y, &c.lb, &c.ub, &mut x);
                free_coords(c.kind, &x)
            });
            for (row, v) in d.into_iter().enumerate() {
                jac[row][col] = v;
            }
        }
        let fd = log_abs_det(jac);
        prop_assert!(
            (lj - fd).abs() <= 1e-6 * lj.abs().max(1.0),
            "{c:?}: x = {x:?}, log|J| = {lj}, finite differences give {fd}"
        );
    }

    /// constrain_vjp equals finite differences of w·x + c·log|J| in y and in the finite bounds,
    /// gives 0 for infinite bounds, and adds to the adjoints it is given.
    #[test]
    fn vjp_matches_finite_differences(
        c in case(2.5),
        wseed in vec(-2.0..2.0f64, 36),
        cw in -2.0..2.0f64,
        start in -1.0..1.0f64,
    ) {
        let w = &wseed[..c.n];
        let objective = |y: &[f64], lb: &[f64], ub: &[f64]| -> f64 {
            let mut x = vec![0.0; c.n];
            let lj = constrain(c.kind, y, lb, ub, &mut x);
            x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + cw * lj
        };
        let mut adj_y = vec![start; c.y.len()];
        let mut adj_lb = vec![start; c.lb.len()];
        let mut adj_ub = vec![start; c.ub.len()];
        constrain_vjp(c.kind, &c.y, &c.lb, &c.ub, w, cw, &mut adj_y, &mut adj_lb, &mut adj_ub);

        let check = |what: &str, i: usize, got: f64, base: &[f64], wrt: usize| -> Result<(), TestCaseError> {
            let got = got - start;
            if !base[i].is_finite() {
                prop_assert_eq!(got, 0.0, "{:?}: d/d{}[{}] at an infinite bound", c, what, i);
                return Ok(());
            }
            let fd = derivative(|t| {
                let (mut y, mut lb, mut ub) = (c.y.clone(), c.lb.clone(), c.ub.clone());
                [&mut y, &mut lb, &mut ub][wrt][i] += t;
                vec![objective(&y, &lb, &ub)]
            })[0];
            prop_assert!(
                (got - fd).abs() <= 1e-6 * fd.abs().max(1.0),
                "{:?}, w = {:?}, c = {}: d/d{}[{}] is {} by vjp, {} by finite differences",
                c, w, cw, what, i, got, fd
            );
            Ok(())
        };
        for i in 0..c.y.len() {
            check("y", i, adj_y[i], &c.y, 0)?;
        }
        for i in 0..c.lb.len() {
            check("lb", i, adj_lb[i], &c.lb, 1)?;
        }
        for i in 0..c.ub.len() {
            check("ub", i, adj_ub[i], &c.ub, 2)?;
        }
    }

    /// Constrained values lie in the support.
    #[test]
    fn constrained_values_satisfy_the_support(c in case(8.0)) {
        let (x, lj) = run(&c);
        prop_assert!(lj.is_finite() && x.iter().all(|v| v.is_finite()), "{c:?}: {x:?} {lj}");
        check_support(&c, &x, true)?;
    }

    /// Far out in the unconstrained space the values stay in the (closed) support and the
    /// log-Jacobian stays finite, for the kinds whose values stay finite.
    #[test]
    fn extreme_inputs_stay_in_the_support(c in case(1000.0)) {
        if matches!(c.kind, Kind::LowerUpper | Kind::Simplex | Kind::CholeskyCorr) {
            let finite_sides = c.lb.iter().chain(&c.ub).all(|v| v.is_finite());
            let (x, lj) = run(&c);
            if c.kind != Kind::LowerUpper || finite_sides {
                prop_assert!(lj.is_finite(), "{c:?}: log|J| = {lj}");
                check_support(&c, &x, false)?;
            }
        }
    }

    /// unconstrain rejects a value pushed outside the support, naming the problem.
    #[test]
    fn unconstrain_rejects_points_outside_the_support(
        (kind, x, lb, ub) in point(),
        pick in 0usize..36,
        push in 0.01..5.0f64,
    ) {
        let n = x.len();
        let mut bad = x.clone();
        let i = pick % n;
        let expect: String = match kind {
            Kind::Identity => {
                bad[i] = f64::NAN;
                format!("element [{i}] is NaN")
            }
            Kind::Lower | Kind::Upper | Kind::LowerUpper => {
                let l = if lb.is_empty() { -INF } else { at(&lb, i) };
                let h = if ub.is_empty() { INF } else { at(&ub, i) };
                if l.is_finite() {
                    bad[i] = l - push;
                    format!("element [{i}] is {}, below the lower bound {l}", bad[i])
                } else if h.is_finite() {
                    bad[i] = h + push;
                    format!("element [{i}] is {}, above the upper bound {h}", bad[i])
                } else {
                    bad[i] = INF;
                    format!("element [{i}] is inf")
                }
            }
            Kind::Simplex => {
                bad[i] *= 1.0 + push;
                "sum to".to_string()
            }
            Kind::Ordered | Kind::PositiveOrdered => {
                if i == 0 {
                    if kind == Kind::PositiveOrdered {
                        bad[0] = -push;
                        "element [0]".to_string()
                    } else {
                        bad[0] = -INF;
                        "element [0] is -inf".to_string()
                    }
                } else {
                    bad[i] = bad[i - 1] - push;
                    format!("element [{i}] is {}, not above element [{}]", bad[i], i - 1)
                }
            }
            Kind::CholeskyCorr => {
                let k = n.isqrt();
                let r = i % k;
                for j in 0..=r {
                    bad[r * k + j] *= 1.0 + push;
                }
                format!("row {r}")
            }
        };
        let mut y = vec![0.0; kind.free_len(n)];
        let res = unconstrain(kind, &bad, &lb, &ub, &mut y);
        prop_assert!(
            matches!(&res, Err(e) if e.contains(&expect)),
            "{kind:?} {bad:?} {lb:?} {ub:?}: {res:?} (expected a message containing {expect:?})"
        );
    }
}

/// The support of each kind; `strict` asks for the open interior (for moderate inputs).
fn check_support(c: &Case, x: &[f64], strict: bool) -> Result<(), TestCaseError> {
    let n = c.n;
    match c.kind {
        Kind::Identity => prop_assert_eq!(x, &c.y[..]),
        Kind::Lower | Kind::Upper | Kind::LowerUpper => {
            for (i, &xi) in x.iter().enumerate() {
                let l = if c.lb.is_empty() { -INF } else { at(&c.lb, i) };
                let h = if c.ub.is_empty() { INF } else { at(&c.ub, i) };
                if strict {
                    prop_assert!(l < xi && xi < h, "{c:?}: {x:?}");
                } else {
                    prop_assert!(l <= xi && xi <= h, "{c:?}: {x:?}");
                }
            }
        }
        Kind::Simplex => {
            prop_assert!((x.iter().sum::<f64>() - 1.0).abs() <= 1e-12, "{c:?}: {x:?}");
            prop_assert!(x.iter().all(|&v| if strict { v > 0.0 } else { v >= 0.0 }), "{c:?}: {x:?}");
        }
        Kind::Ordered | Kind::PositiveOrdered => {
            prop_assert!(x.windows(2).all(|p| p[0] < p[1]), "{c:?}: {x:?}");
            if c.kind == Kind::PositiveOrdered {
                prop_assert!(x[0] > 0.0, "{c:?}: {x:?}");
            }
        }
        Kind::CholeskyCorr => {
            let k = n.isqrt();
            for i in 0..k {
                let norm2: f64 = (0..k).map(|j| x[i * k + j] * x[i * k + j]).sum();
                prop_assert!((norm2 - 1.0).abs() <= 1e-12, "{c:?}: row {i} of {x:?}");
                let d = x[i * k + i];
                prop_assert!(if strict { d > 0.0 } else { d >= 0.0 }, "{c:?}: {x:?}");
                prop_assert!((i + 1..k).all(|j| x[i * k + j] == 0.0), "{c:?}: {x:?}");
            }
        }
    }
    Ok(())
}
