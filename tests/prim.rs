//! The primitives table (src/ir/prim.rs), primitive by primitive: each evaluation against a
//! closed form written here, each vector-Jacobian product against five-point central finite
//! differences of ⟨w, prim(args)⟩ for random weights w, the shape rules, the index errors, and
//! (tests/prim/pipeline.rs) small models through the whole compiler and interpreter.
//!
//! Every VJP is called with its adjoints pre-seeded and dirty scratch space (see helpers.rs),
//! so a VJP that overwrites instead of adding, or that reads stale scratch, fails.

#![allow(clippy::needless_range_loop, clippy::type_complexity)]

#[path = "prim/closed.rs"]
mod closed;
#[path = "prim/helpers.rs"]
mod helpers;
#[path = "prim/pipeline.rs"]
mod pipeline;

use bnnc::ir::prim::{self, Bin, Ix, Pool, Prim, Red, Un};
use bnnc::ir::Slot;
use bnnc::math::dist::Family;
use helpers::Rng;
use helpers::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// `cases` cases; failures are saved under tests/prim/ (not beside this file).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/prim/proptest-regressions.txt"))),
        ..ProptestConfig::default()
    }
}

/// A scalar, a vector or a matrix, with small sizes.
fn any_shape() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![Just(vec![]), (1usize..6).prop_map(|n| vec![n]), (1usize..4, 1usize..4).prop_map(|(r, c)| vec![r, c]),]
}

// ---------------------------------------------------------------------------------------------
// Elementwise functions of one argument
// ---------------------------------------------------------------------------------------------

type Draw = fn(&mut Rng) -> f64;

fn away_from_zero(r: &mut Rng) -> f64 {
    r.sign() * r.uniform(0.1, 3.0)
}

/// An integer plus a fraction in [0.15, 0.35] or [0.65, 0.85]: away from the jumps of
/// floor, ceil and round.
fn away_from_steps(r: &mut Rng) -> f64 {
    let k = r.below(0, 11) as f64 - 5.0;
    let f = r.uniform(0.15, 0.35);
    k + if r.sign() > 0.0 { f } else { 1.0 - f }
}

/// Where to draw points (a domain where the function is smooth), the closed form and the
/// tolerance for the value. No wildcard: a new `Un` does not compile until it is covered.
fn un_case(u: Un) -> (Draw, fn(f64) -> f64, f64) {
    fn wide(r: &mut Rng) -> f64 {
        r.uniform(-3.0, 3.0)
    }
    fn positive(r: &mut Rng) -> f64 {
        r.uniform(0.2, 4.0)
    }
    const T: f64 = 1e-12;
    match u {
        Un::Neg => (wide, |x| 0.0 - x, T),
        Un::Not => (away_from_zero, |x| if x == 0.0 { 1.0 } else { 0.0 }, 0.0),
        Un::Exp => (wide, |x| std::f64::consts::E.powf(x), T),
        Un::Log => (positive, |x| x.log2() / std::f64::consts::LOG2_E, T),
        Un::Log1p => (|r| r.uniform(-0.8, 3.0), |x| (1.0 + x).ln(), 1e-11),
        Un::Expm1 => (wide, |x| x.exp() - 1.0, T),
        Un::Sqrt => (positive, |x| x.powf(0.5), T),
        Un::Square => (wide, |x| x.powi(2), T),
        Un::Abs => (away_from_zero, |x| if x < 0.0 { -x } else { x }, 0.0),
        Un::Tanh => (wide, |x| (x.exp() - (-x).exp()) / (x.exp() + (-x).exp()), T),
        Un::Sigmoid => (wide, |x| 1.0 / (1.0 + (-x).exp()), T),
        Un::Logit => (|r| r.uniform(0.05, 0.95), |x| x.ln() - (1.0 - x).ln(), T),
        Un::Softplus => (wide, |x| (1.0 + x.exp()).ln(), T),
        Un::Relu => (away_from_zero, |x| if x > 0.0 { x } else { 0.0 }, 0.0),
        Un::Lgamma => (|r| r.uniform(0.5, 8.0), closed::lgamma, 1e-10),
        Un::Digamma => (|r| r.uniform(0.5, 8.0), closed::digamma, 1e-10),
        Un::Sin => (wide, |x| x.sin(), T),
        Un::Cos => (wide, |x| x.cos(), T),
        Un::Erf => (wide, closed::erf, 1e-12),
        Un::Phi => (wide, closed::phi, 1e-12),
        Un::Log1m => (|r| r.uniform(-3.0, 0.8), |x| (1.0 - x).ln(), 1e-11),
        Un::LogInvLogit => (wide, |x| -(1.0 + (-x).exp()).ln(), T),
        Un::Inv => (away_from_zero, |x| x.powi(-1), T),
        Un::Floor => (away_from_steps, closed::floor, 0.0),
        Un::Ceil => (away_from_steps, |x| -closed::floor(-x), 0.0),
        Un::Round => (away_from_steps, closed::round, 0.0),
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Every `Un`: value against its closed form, VJP against finite differences, on a
    /// scalar, a vector or a matrix of points in the function's smooth domain.
    #[test]
    fn unary_values_and_vjps(seed in any::<u64>(), dims in any_shape()) {
        let mut rng = Rng::new(seed);
        for u in Un::ALL {
            let (draw, f, tol) = un_case(u);
            let x: Vec<f64> = (0..numel(&dims)).map(|_| draw(&mut rng)).collect();
            let p = Prim::Unary(u);
            let (out, shape) = eval(&p, std::slice::from_ref(&x), std::slice::from_ref(&dims));
            prop_assert_eq!(&shape, &dims);
            let want: Vec<f64> = x.iter().map(|v| f(*v)).collect();
            assert_all_close(&out, &want, tol, &|| format!("{u:?} at {x:?}"));
            check_vjp(&p, &[x], std::slice::from_ref(&dims), &[true], &mut rng);
        }
    }
}

#[test]
fn unary_edge_values() {
    let p = |u: Un, x: f64| eval(&Prim::Unary(u), &[vec![x]], &[vec![]]).0[0];
    assert_eq!(p(Un::Not, 0.0), 1.0);
    assert_eq!(p(Un::Not, -0.0), 1.0);
    assert_eq!(p(Un::Not, 3.0), 0.0);
    assert_eq!(p(Un::Round, 2.5), 3.0);
    assert_eq!(p(Un::Round, -2.5), -3.0);
    assert_eq!(p(Un::Relu, -1.0), 0.0);
    // Stable where the naive forms overflow.
    assert_close(p(Un::Softplus, 800.0), 800.0, 1e-15, &|| "softplus(800)".into());
    assert_close(p(Un::Sigmoid, -800.0).max(1e-300), 1e-300, 1.0, &|| "sigmoid(-800)".into());
    assert_close(p(Un::LogInvLogit, -800.0), -800.0, 1e-15, &|| "log_inv_logit(-800)".into());
}

/// erf and Phi to double precision. Regression: with statrs 0.19's `erf` they were off by
/// about 1e-10 relative for |x| ≥ 0.5, e.g. erf(0.5) = 0.52049987776365381 against the true
/// 0.52049987781304654, Phi(-1) = 0.15865525394505725 against 0.15865525393145705.
#[test]
fn erf_and_phi_to_double_precision() {
    for x in [0.5, -0.7555175381098871, -1.0, 1.3, -2.0, 2.7] {
        let erf = eval(&Prim::Unary(Un::Erf), &[vec![x]], &[vec![]]).0[0];
        let phi = eval(&Prim::Unary(Un::Phi), &[vec![x]], &[vec![]]).0[0];
        assert_close(erf, closed::erf(x), 1e-14, &|| format!("erf({x})"));
        assert_close(phi / closed::phi(x), 1.0, 1e-14, &|| format!("Phi({x}), relative"));
    }
}

/// ψ' for negative non-integer arguments comes from the reflection formula: check it
/// against finite differences of ψ (the VJP of `digamma`).
#[test]
fn digamma_vjp_on_negative_arguments() {
    let mut rng = Rng::new(11);
    for _ in 0..40 {
        let x = -(rng.below(0, 4) as f64) - rng.uniform(0.2, 0.8);
        check_vjp(&Prim::Unary(Un::Digamma), &[vec![x]], &[vec![]], &[true], &mut rng);
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise functions of two arguments
// ---------------------------------------------------------------------------------------------

struct BinCase {
    a: Draw,
    b: Draw,
    /// A pair is away from the function's kinks.
    ok: fn(f64, f64) -> bool,
    f: fn(f64, f64) -> f64,
    differentiable: bool,
}

fn bin_case(op: Bin) -> BinCase {
    fn wide(r: &mut Rng) -> f64 {
        r.uniform(-3.0, 3.0)
    }
    fn small_int(r: &mut Rng) -> f64 {
        r.below(0, 5) as f64 - 2.0
    }
    fn int(r: &mut Rng) -> f64 {
        r.below(0, 41) as f64 - 20.0
    }
    fn nonzero_int(r: &mut Rng) -> f64 {
        r.sign() * r.below(1, 8) as f64
    }
    fn any(_: f64, _: f64) -> bool {
        true
    }
    fn apart(a: f64, b: f64) -> bool {
        (a - b).abs() > 0.2
    }
    fn t(c: bool) -> f64 {
        if c {
            1.0
        } else {
            0.0
        }
    }
    let c = |a: Draw, b: Draw, ok: fn(f64, f64) -> bool, f: fn(f64, f64) -> f64, differentiable| BinCase {
        a,
        b,
        ok,
        f,
        differentiable,
    };
    match op {
        Bin::Add => c(wide, wide, any, |a, b| a + b, true),
        Bin::Sub => c(wide, wide, any, |a, b| a + (-b), true),
        Bin::Mul => c(wide, wide, any, |a, b| a * b, true),
        Bin::Div => c(wide, away_from_zero, any, |a, b| a * b.powi(-1), true),
        Bin::IntDiv => c(int, nonzero_int, any, |a, b| ((a as i64) / (b as i64)) as f64, false),
        Bin::Mod => c(int, nonzero_int, any, |a, b| ((a as i64) % (b as i64)) as f64, false),
        Bin::Pow => c(|r| r.uniform(0.3, 3.0), |r| r.uniform(-2.0, 2.0), any, |a, b| (b * a.ln()).exp(), true),
        Bin::Min => c(wide, wide, apart, |a, b| if a < b { a } else { b }, true),
        Bin::Max => c(wide, wide, apart, |a, b| if a > b { a } else { b }, true),
        Bin::LogSumExp => {
            c(|r| r.uniform(-6.0, 6.0), |r| r.uniform(-6.0, 6.0), any, |a, b| (a.exp() + b.exp()).ln(), true)
        }
        Bin::Eq => c(small_int, small_int, any, |a, b| t(a == b), false),
        Bin::Ne => c(small_int, small_int, any, |a, b| t(a != b), false),
        Bin::Lt => c(small_int, small_int, any, |a, b| t(a < b), false),
        Bin::Le => c(small_int, small_int, any, |a, b| t(a <= b), false),
        Bin::Gt => c(small_int, small_int, any, |a, b| t(a > b), false),
        Bin::Ge => c(small_int, small_int, any, |a, b| t(a >= b), false),
        Bin::And => c(small_int, small_int, any, |a, b| t(a != 0.0 && b != 0.0), false),
        Bin::Or => c(small_int, small_int, any, |a, b| t(a != 0.0 || b != 0.0), false),
    }
}

/// Draw a and b (shapes sa, sb) with every broadcast pair away from the kinks; None if the
/// rejection sampler gives up.
fn draw_pair(rng: &mut Rng, case: &BinCase, sa: &[usize], sb: &[usize], out: &[usize]) -> Option<(Vec<f64>, Vec<f64>)> {
    for _ in 0..500 {
        let a: Vec<f64> = (0..numel(sa)).map(|_| (case.a)(rng)).collect();
        let b: Vec<f64> = (0..numel(sb)).map(|_| (case.b)(rng)).collect();
        let fine = (0..numel(out)).all(|i| (case.ok)(a[expect_bidx(i, out, sa)], b[expect_bidx(i, out, sb)]));
        if fine {
            return Some((a, b));
        }
    }
    None
}

/// The element of an argument of shape `s` that element i of a broadcast result of shape
/// `out` reads, by the language's rules: a scalar (or one-element tensor) everywhere; the
/// same position when the shapes agree; a vector of length c along each row of an r × c
/// matrix (so column i % c).
fn expect_bidx(i: usize, out: &[usize], s: &[usize]) -> usize {
    if numel(s) == 1 {
        0
    } else if s == out {
        i
    } else {
        assert!(out.len() == 2 && s.len() == 1 && s[0] == out[1], "{s:?} does not broadcast to {out:?}");
        i % out[1]
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Every `Bin` on two arguments of one shape: value against its closed form; VJP against
    /// finite differences with respect to both arguments for the differentiable ones, and
    /// exactly zero for the others.
    #[test]
    fn binary_values_and_vjps(seed in any::<u64>(), dims in any_shape()) {
        let mut rng = Rng::new(seed);
        for op in Bin::ALL {
            let case = bin_case(op);
            let Some((a, b)) = draw_pair(&mut rng, &case, &dims, &dims, &dims) else { continue };
            let p = Prim::Binary(op);
            let shapes = [dims.clone(), dims.clone()];
            let args = [a.clone(), b.clone()];
            let (out, shape) = eval(&p, &args, &shapes);
            prop_assert_eq!(&shape, &dims);
            let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (case.f)(*x, *y)).collect();
            assert_all_close(&out, &want, 1e-12, &|| format!("{op:?} on {a:?}, {b:?}"));
            if case.differentiable {
                check_vjp(&p, &args, &shapes, &[true, true], &mut rng);
            } else {
                let w = rng.vec(out.len(), -1.0, 1.0);
                let (adj, _) = vjp_with(&p, &args, &shapes, &w, &[true, true], None);
                for g in adj.into_iter().flatten() {
                    prop_assert!(g.iter().all(|v| *v == 0.0), "{:?} has a gradient {:?}", op, g);
                }
            }
        }
    }

    /// Broadcasting: a scalar with a vector or matrix (either side), and a vector of length c
    /// along the rows of an r × c matrix (either side): the value reads the right elements and
    /// the VJP matches finite differences (the small argument's adjoint sums over the
    /// positions it was broadcast to).
    #[test]
    fn binary_broadcasting(seed in any::<u64>(), r in 1usize..4, c in 2usize..5) {
        let mut rng = Rng::new(seed);
        let m = vec![r, c];
        let combos: [(Vec<usize>, Vec<usize>); 6] = [
            (vec![], m.clone()),
            (m.clone(), vec![]),
            (vec![c], m.clone()),
            (m.clone(), vec![c]),
            (vec![], vec![c]),
            (vec![1], m.clone()),
        ];
        for op in Bin::ALL {
            let case = bin_case(op);
            if !case.differentiable {
                continue;
            }
            for (sa, sb) in &combos {
                let p = Prim::Binary(op);
                let shapes = [sa.clone(), sb.clone()];
                let out_shape = shape_of(&p, &shapes, None).unwrap_or_else(|e| panic!("{sa:?} with {sb:?}: {e}"));
                let want_shape = if sa.len() >= sb.len() && numel(sa) >= numel(sb) { sa.clone() } else { sb.clone() };
                prop_assert_eq!(&out_shape, &want_shape);
                let Some((a, b)) = draw_pair(&mut rng, &case, sa, sb, &out_shape) else { continue };
                let args = [a.clone(), b.clone()];
                let (out, _) = eval(&p, &args, &shapes);
                let want: Vec<f64> = (0..numel(&out_shape))
                    .map(|i| (case.f)(a[expect_bidx(i, &out_shape, sa)], b[expect_bidx(i, &out_shape, sb)]))
                    .collect();
                assert_all_close(&out, &want, 1e-12, &|| format!("{op:?} on {sa:?} {a:?} with {sb:?} {b:?}"));
                check_vjp(&p, &args, &shapes, &[true, true], &mut rng);
            }
        }
        // The adjoints of `+` written out: a vector along the rows gets column sums of w, a
        // scalar the sum of all of w.
        let v = rng.vec(c, -1.0, 1.0);
        let x = rng.vec(r * c, -1.0, 1.0);
        let w = rng.vec(r * c, -1.0, 1.0);
        let (adj, _) = vjp_with(&Prim::Binary(Bin::Add), &[x, v], &[m.clone(), vec![c]], &w, &[true, true], None);
        let col_sums: Vec<f64> = (0..c).map(|j| (0..r).map(|i| w[i * c + j]).sum()).collect();
        assert_all_close(adj[1].as_ref().unwrap(), &col_sums, 1e-14, &|| "adjoint of a row-broadcast vector".into());
        assert_all_close(adj[0].as_ref().unwrap(), &w, 1e-14, &|| "adjoint of the matrix".into());
        let s = vec![rng.uniform(-1.0, 1.0)];
        let x = rng.vec(r * c, -1.0, 1.0);
        let (adj, _) = vjp_with(&Prim::Binary(Bin::Mul), &[s.clone(), x.clone()], &[vec![], m.clone()], &w, &[true, true], None);
        assert_close(adj[0].as_ref().unwrap()[0], dot(&w, &x), 1e-13, &|| "adjoint of a broadcast scalar".into());
    }
}

// ---------------------------------------------------------------------------------------------
// Select
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn select_values_and_vjps(seed in any::<u64>(), r in 1usize..4, c in 1usize..4, cond in prop_oneof![Just(0.0), Just(1.0), Just(-2.0), Just(3.0)]) {
        let mut rng = Rng::new(seed);
        let combos: [(Vec<usize>, Vec<usize>); 5] = [
            (vec![r, c], vec![r, c]),
            (vec![], vec![c]),
            (vec![c], vec![]),
            (vec![c], vec![r, c]),
            (vec![], vec![]),
        ];
        for (sa, sb) in combos {
            let p = Prim::Select;
            let a = rng.vec(numel(&sa), -2.0, 2.0);
            let b = rng.vec(numel(&sb), -2.0, 2.0);
            let shapes = [vec![], sa.clone(), sb.clone()];
            let args = [vec![cond], a.clone(), b.clone()];
            let (out, out_shape) = eval(&p, &args, &shapes);
            let want: Vec<f64> = (0..numel(&out_shape))
                .map(|i| if cond != 0.0 { a[expect_bidx(i, &out_shape, &sa)] } else { b[expect_bidx(i, &out_shape, &sb)] })
                .collect();
            assert_all_close(&out, &want, 0.0, &|| format!("select({cond}, {a:?}, {b:?})"));
            check_vjp(&p, &args, &shapes, &[false, true, true], &mut rng);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Images: Conv2d, Pool2d
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(32))]

    /// Convolution against its definition written out, and its VJP (input, filters and bias)
    /// against finite differences, for strides and paddings that tile the input; then max
    /// (away from ties) and average pooling.
    #[test]
    fn convolution_and_pooling(seed in any::<u64>(), n in 1usize..3, c in 1usize..3, f in 1usize..3, k in 1usize..4, h in 3usize..7, w in 3usize..7) {
        let mut rng = Rng::new(seed);
        for (stride, pad) in [(1usize, 0usize), (1, 1), (2, 0), (2, 1)] {
            let (sh, sw) = (h + 2 * pad, w + 2 * pad);
            if k > sh.min(sw) || (sh - k) % stride != 0 || (sw - k) % stride != 0 {
                continue;
            }
            let (oh, ow) = ((sh - k) / stride + 1, (sw - k) / stride + 1);
            let x = rng.vec(n * c * h * w, -2.0, 2.0);
            let wt = rng.vec(f * c * k * k, -1.0, 1.0);
            let b = rng.vec(f, -1.0, 1.0);
            let mut want = vec![0.0; n * f * oh * ow];
            for img in 0..n {
                for fi in 0..f {
                    for i in 0..oh {
                        for j in 0..ow {
                            let mut s = b[fi];
                            for ci in 0..c {
                                for di in 0..k {
                                    for dj in 0..k {
                                        let (r, q) = ((i * stride + di) as isize - pad as isize, (j * stride + dj) as isize - pad as isize);
                                        if r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < w {
                                            s += wt[((fi * c + ci) * k + di) * k + dj] * x[((img * c + ci) * h + r as usize) * w + q as usize];
                                        }
                                    }
                                }
                            }
                            want[((img * f + fi) * oh + i) * ow + j] = s;
                        }
                    }
                }
            }
            let p = Prim::Conv2d { stride, padding: pad };
            let shapes = [vec![n, c, h, w], vec![f, c, k, k], vec![f]];
            let args = [x, wt, b];
            let (out, shape) = eval(&p, &args, &shapes);
            prop_assert_eq!(&shape, &vec![n, f, oh, ow]);
            assert_all_close(&out, &want, 1e-12, &|| format!("conv2d stride {stride} padding {pad}"));
            check_vjp(&p, &args, &shapes, &[true, true, true], &mut rng);
            if oh >= 2 && ow >= 2 {
                // Distinct values a window apart, so the maximum is not a tie.
                let y: Vec<f64> = (0..out.len()).map(|i| i as f64 * 0.1 + rng.uniform(0.0, 0.05)).collect();
                let ys = vec![n, f, oh, ow];
                for pool in [Pool::Max, Pool::Avg] {
                    let q = Prim::Pool2d(pool, 2);
                    let (pooled, pshape) = eval(&q, std::slice::from_ref(&y), std::slice::from_ref(&ys));
                    prop_assert_eq!(&pshape, &vec![n, f, oh / 2, ow / 2]);
                    let at = |pl: usize, i: usize, j: usize| y[(pl * oh + i) * ow + j];
                    for pl in 0..n * f {
                        for i in 0..oh / 2 {
                            for j in 0..ow / 2 {
                                let win = [at(pl, 2 * i, 2 * j), at(pl, 2 * i, 2 * j + 1), at(pl, 2 * i + 1, 2 * j), at(pl, 2 * i + 1, 2 * j + 1)];
                                let want = match pool {
                                    Pool::Max => win.iter().cloned().fold(f64::MIN, f64::max),
                                    Pool::Avg => win.iter().sum::<f64>() / 4.0,
                                };
                                assert_close(pooled[(pl * (oh / 2) + i) * (ow / 2) + j], want, 1e-14, &|| format!("{pool:?}"));
                            }
                        }
                    }
                    check_vjp(&q, std::slice::from_ref(&y), std::slice::from_ref(&ys), &[true], &mut rng);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// A draw m + √(v + 10⁻¹²)·ε against its definition, and its VJP in all three arguments
    /// against finite differences (v away from 0, where the square root bends sharply).
    #[test]
    fn reparam_draw_and_vjp(seed in any::<u64>(), n in 1usize..40) {
        let mut rng = Rng::new(seed);
        let (m, v, e) = (rng.vec(n, -2.0, 2.0), rng.vec(n, 0.1, 3.0), rng.vec(n, -2.0, 2.0));
        let shapes = [vec![n], vec![n], vec![n]];
        let args = [m, v, e];
        let (out, shape) = eval(&Prim::Reparam, &args, &shapes);
        prop_assert_eq!(&shape, &vec![n]);
        let want: Vec<f64> = (0..n).map(|i| args[0][i] + (args[1][i] + 1e-12).sqrt() * args[2][i]).collect();
        assert_all_close(&out, &want, 1e-15, &|| "reparam".into());
        check_vjp(&Prim::Reparam, &args, &shapes, &[true, true, true], &mut rng);
    }
}

#[test]
fn reparam_shapes_must_agree() {
    let err = Prim::Reparam.shape(&[&[2, 3], &[2, 3], &[3]], &[], None).unwrap_err();
    assert!(err.contains("differ in shape"), "{err}");
    assert_eq!(Prim::Reparam.shape(&[&[2, 3], &[2, 3], &[2, 3]], &[], None).unwrap(), vec![2, 3]);
}

#[test]
fn convolution_shape_errors_say_why() {
    let err = |p: Prim, shapes: &[&[usize]]| p.shape(shapes, &[], None).unwrap_err();
    assert!(
        err(Prim::Conv2d { stride: 2, padding: 0 }, &[&[1, 1, 8, 8], &[2, 1, 3, 3], &[2]]).contains("does not divide")
    );
    assert!(err(Prim::Conv2d { stride: 1, padding: 0 }, &[&[1, 3, 8, 8], &[2, 1, 3, 3], &[2]]).contains("channels"));
    assert!(err(Prim::Conv2d { stride: 1, padding: 0 }, &[&[1, 1, 8, 8], &[2, 1, 3, 3], &[3]]).contains("bias"));
    assert!(err(Prim::Pool2d(Pool::Max, 3), &[&[1, 1, 2, 2]]).contains("does not fit"));
}

// ---------------------------------------------------------------------------------------------
// Linear algebra: MatMul, Transpose
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    /// [r,k]@[k,c], [r,k]@[k], [k]@[k,c] and [k]@[k] against the sums written out.
    #[test]
    fn matmul_all_four_shapes(seed in any::<u64>(), r in 1usize..5, k in 1usize..5, c in 1usize..5) {
        let mut rng = Rng::new(seed);
        let a_m = rng.vec(r * k, -2.0, 2.0);
        let b_m = rng.vec(k * c, -2.0, 2.0);
        let a_v = rng.vec(k, -2.0, 2.0);
        let b_v = rng.vec(k, -2.0, 2.0);
        let mm = |a: &[f64], b: &[f64], rr: usize, cc: usize| -> Vec<f64> {
            let mut o = vec![0.0; rr * cc];
            for i in 0..rr {
                for j in 0..cc {
                    o[i * cc + j] = (0..k).map(|p| a[i * k + p] * b[p * cc + j]).sum();
                }
            }
            o
        };
        let cases = [
            (a_m.clone(), vec![r, k], b_m.clone(), vec![k, c], vec![r, c], mm(&a_m, &b_m, r, c)),
            (a_m.clone(), vec![r, k], b_v.clone(), vec![k], vec![r], mm(&a_m, &b_v, r, 1)),
            (a_v.clone(), vec![k], b_m.clone(), vec![k, c], vec![c], mm(&a_v, &b_m, 1, c)),
            (a_v.clone(), vec![k], b_v.clone(), vec![k], vec![], vec![dot(&a_v, &b_v)]),
        ];
        for (a, sa, b, sb, want_shape, want) in cases {
            let shapes = [sa.clone(), sb.clone()];
            let args = [a, b];
            let (out, shape) = eval(&Prim::MatMul, &args, &shapes);
            prop_assert_eq!(&shape, &want_shape);
            assert_all_close(&out, &want, 1e-13, &|| format!("{sa:?} @ {sb:?}"));
            check_vjp(&Prim::MatMul, &args, &shapes, &[true, true], &mut rng);
        }
    }

    #[test]
    fn transpose_matrix_and_vector(seed in any::<u64>(), r in 1usize..5, c in 1usize..5) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(r * c, -2.0, 2.0);
        let (out, shape) = eval(&Prim::Transpose, std::slice::from_ref(&x), &[vec![r, c]]);
        prop_assert_eq!(shape, vec![c, r]);
        for i in 0..r {
            for j in 0..c {
                prop_assert_eq!(out[j * r + i], x[i * c + j]);
            }
        }
        check_vjp(&Prim::Transpose, &[x], &[vec![r, c]], &[true], &mut rng);
        let v = rng.vec(c, -2.0, 2.0);
        let (out, shape) = eval(&Prim::Transpose, std::slice::from_ref(&v), &[vec![c]]);
        prop_assert_eq!(shape, vec![1, c]);
        prop_assert_eq!(&out, &v);
        check_vjp(&Prim::Transpose, &[v], &[vec![c]], &[true], &mut rng);
    }
}

// ---------------------------------------------------------------------------------------------
// Reductions and row-wise functions
// ---------------------------------------------------------------------------------------------

const ALL_RED: [Red; 8] = [Red::Sum, Red::Mean, Red::Sd, Red::Variance, Red::Prod, Red::Min, Red::Max, Red::LogSumExp];

fn red_closed(r: Red, x: &[f64]) -> f64 {
    let n = x.len() as f64;
    // Variance as the mean squared pairwise difference: Σ_{i<j} (x_i − x_j)² / (n (n − 1)).
    let pairwise = || {
        let mut s = 0.0;
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                s += (x[i] - x[j]).powi(2);
            }
        }
        s / (n * (n - 1.0))
    };
    match r {
        Red::Sum => x.iter().fold(0.0, |a, b| a + b),
        Red::Mean => x.iter().fold(0.0, |a, b| a + b / n),
        Red::Sd => pairwise().sqrt(),
        Red::Variance => pairwise(),
        Red::Prod => x.iter().fold(1.0, |a, b| a * b),
        Red::Min => *x.iter().min_by(|a, b| a.partial_cmp(b).unwrap()).unwrap(),
        Red::Max => *x.iter().max_by(|a, b| a.partial_cmp(b).unwrap()).unwrap(),
        Red::LogSumExp => x.iter().map(|v| v.exp()).sum::<f64>().ln(),
    }
}

/// `sd` and `variance` of one element are 0 with no gradient, as Stan's; of none, no value.
#[test]
fn sd_and_variance_of_one_element_and_of_none() {
    for red in [Red::Sd, Red::Variance] {
        let p = Prim::Reduce(red);
        let (out, _) = eval(&p, &[vec![2.5]], &[vec![1]]);
        assert_eq!(out[0], 0.0, "{red:?} of one element");
        let mut rng = Rng::new(1);
        if red == Red::Variance {
            check_vjp(&p, &[vec![2.5]], &[vec![1]], &[true], &mut rng);
        }
        let (out, _) = eval(&p, &[vec![]], &[vec![0]]);
        assert!(out[0].is_nan(), "{red:?} of no elements: {}", out[0]);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Every `Red` on a vector or a matrix (n ≥ 2).
    #[test]
    fn reductions(seed in any::<u64>(), dims in prop_oneof![(2usize..7).prop_map(|n| vec![n]), (1usize..4, 2usize..4).prop_map(|(r, c)| vec![r, c])]) {
        let mut rng = Rng::new(seed);
        let n = numel(&dims);
        for red in ALL_RED {
            let x = match red {
                // Away from the kinks: ties for min/max, sd = 0 (all elements equal).
                Red::Min | Red::Max | Red::Sd => rng.spread(n, 0.1),
                Red::Prod => {
                    let mut x: Vec<f64> = (0..n).map(|_| rng.sign() * rng.uniform(0.5, 1.5)).collect();
                    // Sometimes an exact zero: the product's gradient must not divide by it.
                    if rng.below(0, 3) == 0 {
                        let i = rng.below(0, n);
                        x[i] = 0.0;
                    }
                    x
                }
                _ => rng.vec(n, -3.0, 3.0),
            };
            let p = Prim::Reduce(red);
            let (out, shape) = eval(&p, std::slice::from_ref(&x), std::slice::from_ref(&dims));
            prop_assert_eq!(shape, Vec::<usize>::new());
            assert_close(out[0], red_closed(red, &x), 1e-12, &|| format!("{red:?} of {x:?}"));
            check_vjp(&p, &[x], std::slice::from_ref(&dims), &[true], &mut rng);
        }
    }

    #[test]
    fn log_mix_scalar(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (t, a, b) = (rng.uniform(0.05, 0.95), rng.uniform(-6.0, 2.0), rng.uniform(-6.0, 2.0));
        let args = [vec![t], vec![a], vec![b]];
        let shapes = [vec![], vec![], vec![]];
        let (out, shape) = eval(&Prim::LogMix, &args, &shapes);
        prop_assert_eq!(shape, Vec::<usize>::new());
        assert_close(out[0], (t * a.exp() + (1.0 - t) * b.exp()).ln(), 1e-12, &|| format!("log_mix({t}, {a}, {b})"));
        check_vjp(&Prim::LogMix, &args, &shapes, &[true, true, true], &mut rng);
    }

    #[test]
    fn log_mix_vector(seed in any::<u64>(), n in 1usize..7) {
        let mut rng = Rng::new(seed);
        let w = rng.vec(n, 0.05, 1.0);
        let l = rng.vec(n, -6.0, 2.0);
        let args = [w.clone(), l.clone()];
        let shapes = [vec![n], vec![n]];
        let (out, _) = eval(&Prim::LogMixVec, &args, &shapes);
        let want = w.iter().zip(&l).map(|(a, b)| a * b.exp()).sum::<f64>().ln();
        assert_close(out[0], want, 1e-12, &|| format!("log_mix({w:?}, {l:?})"));
        check_vjp(&Prim::LogMixVec, &args, &shapes, &[true, true], &mut rng);
    }

    /// Softmax and log-softmax of a vector, and of each row of a matrix.
    #[test]
    fn softmax_and_log_softmax(seed in any::<u64>(), r in 1usize..4, c in 1usize..5, matrix in any::<bool>()) {
        let mut rng = Rng::new(seed);
        let dims = if matrix { vec![r, c] } else { vec![c] };
        let rows = if matrix { r } else { 1 };
        let x = rng.vec(rows * c, -4.0, 4.0);
        let mut soft = vec![0.0; x.len()];
        for i in 0..rows {
            let z: f64 = (0..c).map(|j| x[i * c + j].exp()).sum();
            for j in 0..c {
                soft[i * c + j] = x[i * c + j].exp() / z;
            }
        }
        for (p, want) in [(Prim::Softmax, soft.clone()), (Prim::LogSoftmax, soft.iter().map(|v| v.ln()).collect())] {
            let (out, shape) = eval(&p, std::slice::from_ref(&x), std::slice::from_ref(&dims));
            prop_assert_eq!(&shape, &dims);
            assert_all_close(&out, &want, 1e-12, &|| format!("{p:?} of {x:?} ({dims:?})"));
            check_vjp(&p, std::slice::from_ref(&x), std::slice::from_ref(&dims), &[true], &mut rng);
        }
    }

    /// Layer normalisation of each row of a matrix, and of each image of a tensor: mean 0 and
    /// variance v / (v + 1e-5) in every row; its VJP against finite differences.
    #[test]
    fn layer_norm_rows_and_images(seed in any::<u64>(), r in 1usize..4, c in 1usize..5, tensor in any::<bool>()) {
        let mut rng = Rng::new(seed);
        let dims = if tensor { vec![r, 2, c, 2] } else { vec![r, c] };
        let w: usize = dims[1..].iter().product();
        // A ramp along each row keeps its spread away from 0, where the normalisation bends
        // too sharply for finite differences.
        let x: Vec<f64> = rng.vec(r * w, -1.0, 1.0).iter().enumerate().map(|(k, v)| v + 2.5 * (k % w) as f64).collect();
        let (out, shape) = eval(&Prim::LayerNorm, std::slice::from_ref(&x), std::slice::from_ref(&dims));
        prop_assert_eq!(&shape, &dims);
        for i in 0..r {
            let (xi, yi) = (&x[i * w..(i + 1) * w], &out[i * w..(i + 1) * w]);
            let m = xi.iter().sum::<f64>() / w as f64;
            let v = xi.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / w as f64;
            let want: Vec<f64> = xi.iter().map(|a| (a - m) / (v + 1e-5).sqrt()).collect();
            assert_all_close(yi, &want, 1e-12, &|| format!("row {i} of {x:?} ({dims:?})"));
            let var_y = yi.iter().map(|a| a * a).sum::<f64>() / w as f64;
            assert_close(var_y, v / (v + 1e-5), 1e-12, &|| format!("variance of row {i}"));
        }
        check_vjp(&Prim::LayerNorm, std::slice::from_ref(&x), std::slice::from_ref(&dims), &[true], &mut rng);
    }

    #[test]
    fn column_and_row_means_and_sums(seed in any::<u64>(), r in 1usize..5, c in 1usize..5) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(r * c, -3.0, 3.0);
        let col: Vec<f64> = (0..c).map(|j| (0..r).map(|i| x[i * c + j]).sum()).collect();
        let row: Vec<f64> = (0..r).map(|i| (0..c).map(|j| x[i * c + j]).sum()).collect();
        let cases = [
            (Prim::ColSums, col.clone()),
            (Prim::ColMeans, col.iter().map(|v| v / r as f64).collect()),
            (Prim::RowSums, row.clone()),
            (Prim::RowMeans, row.iter().map(|v| v / c as f64).collect()),
        ];
        for (p, want) in cases {
            let (out, shape) = eval(&p, std::slice::from_ref(&x), &[vec![r, c]]);
            prop_assert_eq!(shape, vec![want.len()]);
            assert_all_close(&out, &want, 1e-13, &|| format!("{p:?} of {x:?} [{r}, {c}]"));
            check_vjp(&p, std::slice::from_ref(&x), &[vec![r, c]], &[true], &mut rng);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Index and Load
// ---------------------------------------------------------------------------------------------

/// A random index expression on `base`: up to one position per dimension, each Single, All,
/// Range or Gather (gathers of 1–4 positions, repeats allowed). Returns the positions, their
/// int arguments with shapes, and the expected result (shape and, per element, its flat
/// position in the base), computed by walking the result's coordinates.
fn random_index(rng: &mut Rng, base: &[usize]) -> (Vec<Ix>, Vec<Vec<f64>>, Vec<Vec<usize>>, Vec<usize>, Vec<usize>) {
    let npos = rng.below(0, base.len() + 1);
    let mut ix = Vec::new();
    let mut args = Vec::new();
    let mut shapes = Vec::new();
    // Per position: how a result coordinate maps to a base coordinate.
    enum Map {
        Fixed(usize),
        Same,
        Offset(usize),
        List(Vec<usize>),
    }
    let mut maps = Vec::new();
    let mut out_shape = Vec::new();
    for d in 0..npos {
        match rng.below(0, 4) {
            0 => {
                let i = rng.below(0, base[d]);
                ix.push(Ix::Single);
                args.push(vec![i as f64]);
                shapes.push(vec![]);
                maps.push(Map::Fixed(i));
            }
            1 => {
                ix.push(Ix::All);
                out_shape.push(base[d]);
                maps.push(Map::Same);
            }
            2 => {
                let lo = rng.below(0, base[d]);
                let len = rng.below(1, base[d] - lo + 1);
                ix.push(Ix::Range(len));
                args.push(vec![lo as f64]);
                shapes.push(vec![]);
                out_shape.push(len);
                maps.push(Map::Offset(lo));
            }
            _ => {
                let m = rng.below(1, 5);
                let g: Vec<usize> = (0..m).map(|_| rng.below(0, base[d])).collect();
                ix.push(Ix::Gather);
                args.push(g.iter().map(|v| *v as f64).collect());
                shapes.push(vec![m]);
                out_shape.push(m);
                maps.push(Map::List(g));
            }
        }
    }
    for d in npos..base.len() {
        out_shape.push(base[d]);
        maps.push(Map::Same);
    }
    // Walk the result's coordinates in row-major order.
    let total = numel(&out_shape);
    let mut positions = Vec::with_capacity(total);
    let mut oc = vec![0usize; out_shape.len()];
    for _ in 0..total {
        let mut k = 0;
        let mut flat = 0;
        for (d, m) in maps.iter().enumerate() {
            let coord = match m {
                Map::Fixed(i) => *i,
                Map::Same => {
                    k += 1;
                    oc[k - 1]
                }
                Map::Offset(lo) => {
                    k += 1;
                    lo + oc[k - 1]
                }
                Map::List(g) => {
                    k += 1;
                    g[oc[k - 1]]
                }
            };
            flat = flat * base[d] + coord;
        }
        positions.push(flat);
        for d in (0..oc.len()).rev() {
            oc[d] += 1;
            if oc[d] < out_shape[d] {
                break;
            }
            oc[d] = 0;
        }
    }
    (ix, args, shapes, out_shape, positions)
}

fn base_shape() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        (1usize..6).prop_map(|n| vec![n]),
        (1usize..5, 1usize..5).prop_map(|(r, c)| vec![r, c]),
        (1usize..4, 1usize..4, 1usize..4).prop_map(|(a, b, c)| vec![a, b, c]),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Index with random Single/All/Range/Gather positions on vectors, matrices and 3-d
    /// tensors: the elements read, `index_positions`, and the VJP (which must accumulate
    /// repeated gather positions).
    #[test]
    fn index_combinations(seed in any::<u64>(), base in base_shape()) {
        let mut rng = Rng::new(seed);
        let (ix, idx, idx_shapes, want_shape, want_pos) = random_index(&mut rng, &base);
        let x = rng.vec(numel(&base), -3.0, 3.0);
        let p = Prim::Index(ix.clone());
        let mut args = vec![x.clone()];
        args.extend(idx.iter().cloned());
        let mut shapes = vec![base.clone()];
        shapes.extend(idx_shapes.iter().cloned());
        let (out, shape) = eval(&p, &args, &shapes);
        prop_assert_eq!(&shape, &want_shape, "{:?} on {:?} with {:?}", ix, base, idx);
        let want: Vec<f64> = want_pos.iter().map(|p| x[*p]).collect();
        prop_assert_eq!(&out, &want, "{:?} on {:?} with {:?}", ix, base, idx);
        let idx_refs: Vec<&[f64]> = idx.iter().map(|v| v.as_slice()).collect();
        let mut pos = vec![99, 98];
        prim::index_positions(&ix, &base, &idx_refs, &mut pos).unwrap();
        prop_assert_eq!(&pos, &want_pos);
        let mut diff = vec![false; args.len()];
        diff[0] = true;
        check_vjp(&p, &args, &shapes, &diff, &mut rng);
    }

    /// Load: the same index expressions on a slot's contents; the adjoint goes to the slot.
    #[test]
    fn load_combinations(seed in any::<u64>(), base in base_shape()) {
        let mut rng = Rng::new(seed);
        let (ix, idx, idx_shapes, want_shape, want_pos) = random_index(&mut rng, &base);
        let x = rng.vec(numel(&base), -3.0, 3.0);
        let p = Prim::Load(Slot(3), ix.clone());
        let (out, shape) = eval_with(&p, &idx, &idx_shapes, &[], Some((&x, &base))).unwrap();
        prop_assert_eq!(&shape, &want_shape);
        let want: Vec<f64> = want_pos.iter().map(|p| x[*p]).collect();
        prop_assert_eq!(&out, &want);
        // VJP into the slot against finite differences over the slot's contents.
        let w = rng.vec(out.len(), -1.0, 1.0);
        let (adj, sadj) = vjp_with(&p, &idx, &idx_shapes, &w, &vec![false; idx.len()], Some((&x, &base)));
        prop_assert!(adj.iter().all(Option::is_none));
        let sadj = sadj.unwrap();
        for i in 0..x.len() {
            let fd = five_point(step(x[i]), |d| {
                let mut y = x.clone();
                y[i] += d;
                dot(&w, &eval_with(&p, &idx, &idx_shapes, &[], Some((&y, &base))).unwrap().0)
            });
            assert_close(sadj[i], fd, GRAD_TOL, &|| format!("Load {ix:?} on {base:?} slot element {i}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building and reshaping
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn fill(seed in any::<u64>(), dims in any_shape()) {
        let mut rng = Rng::new(seed);
        let v = rng.uniform(-3.0, 3.0);
        let p = Prim::Fill(dims.clone());
        let (out, shape) = eval(&p, &[vec![v]], &[vec![]]);
        prop_assert_eq!(&shape, &dims);
        prop_assert!(out.len() == numel(&dims) && out.iter().all(|x| *x == v));
        check_vjp(&p, &[vec![v]], &[vec![]], &[true], &mut rng);
    }

    #[test]
    fn diag_matrix_and_diagonal(seed in any::<u64>(), k in 1usize..6) {
        let mut rng = Rng::new(seed);
        let v = rng.vec(k, -3.0, 3.0);
        let (out, shape) = eval(&Prim::DiagMatrix, std::slice::from_ref(&v), &[vec![k]]);
        prop_assert_eq!(shape, vec![k, k]);
        for i in 0..k {
            for j in 0..k {
                prop_assert_eq!(out[i * k + j], if i == j { v[i] } else { 0.0 });
            }
        }
        check_vjp(&Prim::DiagMatrix, &[v], &[vec![k]], &[true], &mut rng);
        let m = rng.vec(k * k, -3.0, 3.0);
        let (out, shape) = eval(&Prim::Diagonal, std::slice::from_ref(&m), &[vec![k, k]]);
        prop_assert_eq!(shape, vec![k]);
        let want: Vec<f64> = (0..k).map(|i| m[i * (k + 1)]).collect();
        prop_assert_eq!(out, want);
        check_vjp(&Prim::Diagonal, &[m], &[vec![k, k]], &[true], &mut rng);
    }

    /// Cholesky of random SPD matrices A = B Bᵀ + I: L is lower-triangular with a positive
    /// diagonal and L Lᵀ = A.
    ///
    /// The VJP is the *symmetrised* gradient with respect to A's entries (the factorisation
    /// reads only A's lower triangle, and A is symmetric), so it is checked against finite
    /// differences that perturb A[i,j] and A[j,i] together: that directional derivative is
    /// g[i,j] + g[j,i] off the diagonal and g[i,i] on it. The gradient must also be symmetric.
    #[test]
    fn cholesky_value_and_symmetric_vjp(seed in any::<u64>(), k in 1usize..6) {
        let mut rng = Rng::new(seed);
        let b = rng.vec(k * k, -1.0, 1.0);
        let mut a = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                a[i * k + j] = (0..k).map(|p| b[i * k + p] * b[j * k + p]).sum::<f64>() + if i == j { 1.0 } else { 0.0 };
            }
        }
        let (l, shape) = eval(&Prim::Cholesky, std::slice::from_ref(&a), &[vec![k, k]]);
        prop_assert_eq!(shape, vec![k, k]);
        for i in 0..k {
            prop_assert!(l[i * k + i] > 0.0);
            for j in i + 1..k {
                prop_assert_eq!(l[i * k + j], 0.0);
            }
            for j in 0..k {
                let llt: f64 = (0..k).map(|p| l[i * k + p] * l[j * k + p]).sum();
                assert_close(llt, a[i * k + j], 1e-12, &|| format!("(L Lᵀ)[{i},{j}] for A = {a:?}"));
            }
        }
        let w = rng.vec(k * k, -1.0, 1.0);
        let (adj, _) = vjp_with(&Prim::Cholesky, std::slice::from_ref(&a), &[vec![k, k]], &w, &[true], None);
        let g = adj[0].clone().unwrap();
        for i in 0..k {
            for j in 0..=i {
                assert_close(g[i * k + j], g[j * k + i], 1e-12, &|| format!("symmetry of the Cholesky gradient at [{i},{j}]"));
                let fd = five_point(1e-4, |d| {
                    let mut a2 = a.clone();
                    a2[i * k + j] += d;
                    if i != j {
                        a2[j * k + i] += d;
                    }
                    dot(&w, &eval(&Prim::Cholesky, &[a2], &[vec![k, k]]).0)
                });
                let got = if i == j { g[i * k + i] } else { g[i * k + j] + g[j * k + i] };
                assert_close(got, fd, GRAD_TOL, &|| format!("Cholesky VJP at [{i},{j}] for A = {a:?}, w = {w:?}"));
            }
        }
    }

    #[test]
    fn gp_exp_quad_cov(seed in any::<u64>(), k in 1usize..6) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(k, -2.0, 2.0);
        let alpha = rng.sign() * rng.uniform(0.3, 2.0);
        let rho = rng.uniform(0.4, 2.0);
        let args = [x.clone(), vec![alpha], vec![rho]];
        let shapes = [vec![k], vec![], vec![]];
        let (out, shape) = eval(&Prim::GpExpQuadCov, &args, &shapes);
        prop_assert_eq!(shape, vec![k, k]);
        for i in 0..k {
            for j in 0..k {
                let want = alpha.powi(2) * (-(x[i] - x[j]).powi(2) / (2.0 * rho.powi(2))).exp();
                assert_close(out[i * k + j], want, 1e-13, &|| format!("gp_exp_quad_cov[{i},{j}]"));
            }
        }
        check_vjp(&Prim::GpExpQuadCov, &args, &shapes, &[true, true, true], &mut rng);
    }

    #[test]
    fn reshape(seed in any::<u64>(), r in 1usize..5, c in 1usize..5) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(r * c, -3.0, 3.0);
        for (from, to) in [(vec![r, c], vec![r * c]), (vec![r * c], vec![c, r]), (vec![r, c], vec![c, r])] {
            let p = Prim::Reshape(to.clone());
            let (out, shape) = eval(&p, std::slice::from_ref(&x), std::slice::from_ref(&from));
            prop_assert_eq!(&shape, &to);
            prop_assert_eq!(&out, &x);
            check_vjp(&p, std::slice::from_ref(&x), &[from], &[true], &mut rng);
        }
    }

    /// One smoke test of `LogDensity` (the densities themselves are tested in math::dist).
    #[test]
    fn log_density_normal_smoke(seed in any::<u64>(), n in 1usize..5) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(n, -3.0, 3.0);
        let mu = rng.uniform(-1.0, 1.0);
        let sigma = rng.uniform(0.5, 2.0);
        let p = Prim::LogDensity(Family::Normal);
        let args = [x.clone(), vec![mu], vec![sigma]];
        let shapes = [vec![n], vec![], vec![]];
        let (out, shape) = eval(&p, &args, &shapes);
        prop_assert_eq!(shape, Vec::<usize>::new());
        let want: f64 = x.iter().map(|v| closed::normal_lpdf(*v, mu, sigma)).sum();
        assert_close(out[0], want, 1e-12, &|| "normal log density".into());
        check_vjp(&p, &args, &shapes, &[true, true, true], &mut rng);
    }
}

#[test]
fn cholesky_of_a_matrix_that_is_not_positive_definite_is_nan() {
    for a in [vec![-1.0, 0.0, 0.0, 1.0], vec![1.0, 2.0, 2.0, 1.0], vec![0.0; 4]] {
        let (l, _) = eval(&Prim::Cholesky, std::slice::from_ref(&a), &[vec![2, 2]]);
        assert!(l.iter().all(|v| v.is_nan()), "cholesky({a:?}) = {l:?}");
    }
}

/// d/dα of α² exp(…) is 2α exp(…), which is 0 at α = 0. Regression: the VJP computed
/// 2·K/α = 0/0 = NaN there.
#[test]
fn gp_exp_quad_cov_vjp_at_zero_amplitude() {
    let args = [vec![0.0, 1.0], vec![0.0], vec![1.0]];
    let shapes = [vec![2], vec![], vec![]];
    let (adj, _) = vjp_with(&Prim::GpExpQuadCov, &args, &shapes, &[1.0; 4], &[true, true, true], None);
    let ga = adj[1].as_ref().unwrap()[0];
    assert_eq!(ga, 0.0, "d/dalpha at alpha = 0");
}

// ---------------------------------------------------------------------------------------------
// Shape rules
// ---------------------------------------------------------------------------------------------

fn rule(p: &Prim, shapes: &[&[usize]]) -> Result<Vec<usize>, String> {
    p.shape(shapes, &[], None)
}

#[test]
fn shape_rules_accept_valid_combinations() {
    let e: &[usize] = &[];
    let ok: Vec<(Prim, Vec<&[usize]>, Vec<usize>)> = vec![
        (Prim::Unary(Un::Exp), vec![&[2, 3]], vec![2, 3]),
        (Prim::Unary(Un::Exp), vec![e], vec![]),
        (Prim::Binary(Bin::Add), vec![&[4], &[4]], vec![4]),
        (Prim::Binary(Bin::Add), vec![e, &[2, 3]], vec![2, 3]),
        (Prim::Binary(Bin::Mul), vec![&[2, 3], e], vec![2, 3]),
        (Prim::Binary(Bin::Sub), vec![&[2, 3], &[3]], vec![2, 3]),
        (Prim::Binary(Bin::Div), vec![&[3], &[2, 3]], vec![2, 3]),
        (Prim::Binary(Bin::Add), vec![&[1], &[4]], vec![4]),
        (Prim::Binary(Bin::Add), vec![e, &[4]], vec![4]),
        (Prim::Select, vec![e, &[3], &[3]], vec![3]),
        (Prim::Select, vec![&[1], e, &[2, 2]], vec![2, 2]),
        (Prim::MatMul, vec![&[2, 3], &[3, 4]], vec![2, 4]),
        (Prim::MatMul, vec![&[2, 3], &[3]], vec![2]),
        (Prim::MatMul, vec![&[3], &[3, 4]], vec![4]),
        (Prim::MatMul, vec![&[3], &[3]], vec![]),
        (Prim::Transpose, vec![&[2, 3]], vec![3, 2]),
        (Prim::Transpose, vec![&[3]], vec![1, 3]),
        (Prim::Reduce(Red::Sum), vec![&[2, 3]], vec![]),
        (Prim::LogMix, vec![e, e, e], vec![]),
        (Prim::LogMixVec, vec![&[3], &[3]], vec![]),
        (Prim::Softmax, vec![&[3]], vec![3]),
        (Prim::LogSoftmax, vec![&[2, 3]], vec![2, 3]),
        (Prim::LayerNorm, vec![&[2, 3]], vec![2, 3]),
        (Prim::LayerNorm, vec![&[2, 1, 4, 4]], vec![2, 1, 4, 4]),
        (Prim::ColMeans, vec![&[2, 3]], vec![3]),
        (Prim::ColSums, vec![&[2, 3]], vec![3]),
        (Prim::RowMeans, vec![&[2, 3]], vec![2]),
        (Prim::RowSums, vec![&[2, 3]], vec![2]),
        (Prim::Index(vec![Ix::Single]), vec![&[5], e], vec![]),
        (Prim::Index(vec![Ix::Gather]), vec![&[5], &[3]], vec![3]),
        (Prim::Index(vec![Ix::Range(2)]), vec![&[5], e], vec![2]),
        (Prim::Index(vec![Ix::All, Ix::Single]), vec![&[2, 3], e], vec![2]),
        (Prim::Index(vec![Ix::Single]), vec![&[2, 3], e], vec![3]),
        (Prim::Index(vec![Ix::Range(2), Ix::Gather]), vec![&[4, 5], e, &[3]], vec![2, 3]),
        (Prim::Index(vec![]), vec![&[4, 5]], vec![4, 5]),
        (Prim::Fill(vec![2, 3]), vec![e], vec![2, 3]),
        (Prim::DiagMatrix, vec![&[3]], vec![3, 3]),
        (Prim::Diagonal, vec![&[3, 3]], vec![3]),
        (Prim::Cholesky, vec![&[3, 3]], vec![3, 3]),
        (Prim::GpExpQuadCov, vec![&[4], e, e], vec![4, 4]),
        (Prim::Reshape(vec![6]), vec![&[2, 3]], vec![6]),
        (Prim::Reshape(vec![3, 2]), vec![&[6]], vec![3, 2]),
        (Prim::LogDensity(Family::Normal), vec![&[4], e, e], vec![]),
    ];
    for (p, shapes, want) in ok {
        assert_eq!(rule(&p, &shapes), Ok(want), "{p:?} on {shapes:?}");
    }
    assert_eq!(Prim::Load(Slot(0), vec![Ix::Single]).shape(&[e], &[], Some(&[5])), Ok(vec![]));
    assert_eq!(Prim::Load(Slot(0), vec![]).shape(&[], &[], Some(&[2, 3])), Ok(vec![2, 3]));
    assert_eq!(Prim::Load(Slot(0), vec![Ix::All, Ix::Gather]).shape(&[&[4]], &[], Some(&[2, 3])), Ok(vec![2, 4]));
}

#[test]
fn shape_rules_reject_invalid_combinations() {
    let e: &[usize] = &[];
    let bad: Vec<(Prim, Vec<&[usize]>)> = vec![
        // mismatched inner sizes in every product form, and a 3-d operand
        (Prim::MatMul, vec![&[2, 3], &[4, 2]]),
        (Prim::MatMul, vec![&[2, 3], &[4]]),
        (Prim::MatMul, vec![&[3], &[4, 2]]),
        (Prim::MatMul, vec![&[3], &[4]]),
        (Prim::MatMul, vec![&[2, 3, 4], &[4]]),
        (Prim::MatMul, vec![e, &[3]]),
        // broadcasting
        (Prim::Binary(Bin::Add), vec![&[3], &[4]]),
        (Prim::Binary(Bin::Add), vec![&[4], &[3]]),
        (Prim::Binary(Bin::Mul), vec![&[2, 3], &[2]]),
        (Prim::Binary(Bin::Mul), vec![&[2, 3], &[3, 2]]),
        (Prim::Binary(Bin::Sub), vec![&[2, 3], &[4, 3]]),
        (Prim::Select, vec![e, &[3], &[4]]),
        (Prim::Select, vec![&[2], &[3], &[3]]),
        // square matrices
        (Prim::Diagonal, vec![&[2, 3]]),
        (Prim::Diagonal, vec![&[3]]),
        (Prim::Cholesky, vec![&[2, 3]]),
        (Prim::DiagMatrix, vec![&[2, 2]]),
        (Prim::GpExpQuadCov, vec![&[2, 2], e, e]),
        // layer normalisation needs rows
        (Prim::LayerNorm, vec![&[4]]),
        (Prim::LayerNorm, vec![e]),
        // element counts
        (Prim::Reshape(vec![5]), vec![&[2, 3]]),
        (Prim::Reshape(vec![2, 2]), vec![&[5]]),
        // too many index positions, or index arguments that do not match the positions
        (Prim::Index(vec![Ix::Single, Ix::Single]), vec![&[5], e, e]),
        (Prim::Index(vec![Ix::Single, Ix::All, Ix::Single]), vec![&[2, 3], e, e]),
        (Prim::Index(vec![Ix::Single]), vec![&[5]]),
        (Prim::Index(vec![Ix::All]), vec![&[5], e]),
        // others
        (Prim::Transpose, vec![e]),
        (Prim::ColSums, vec![&[3]]),
        (Prim::RowMeans, vec![&[2, 3, 4]]),
        (Prim::LogMixVec, vec![&[3], &[4]]),
        (Prim::LogMixVec, vec![&[2, 2], &[2, 2]]),
        (Prim::Unary(Un::Exp), vec![&[2], &[2]]),
        (Prim::Binary(Bin::Add), vec![&[2]]),
        (Prim::Fill(vec![2]), vec![]),
        (Prim::LogDensity(Family::Normal), vec![&[4], e]),
    ];
    for (p, shapes) in bad {
        assert!(rule(&p, &shapes).is_err(), "{p:?} on {shapes:?} gave {:?}", rule(&p, &shapes));
    }
    assert!(Prim::Load(Slot(0), vec![Ix::Single, Ix::Single]).shape(&[e, e], &[], Some(&[5])).is_err());
    assert!(Prim::Load(Slot(0), vec![]).shape(&[], &[], None).is_err(), "Load without a slot shape");
}

/// The shape rule says why a call is malformed with an `Err`. Regression: with no arguments
/// at all, `Index`'s rule indexed `args[0]` and panicked.
#[test]
fn index_shape_rule_without_arguments_is_an_error() {
    let r = std::panic::catch_unwind(|| Prim::Index(vec![]).shape(&[], &[], None));
    assert!(matches!(r, Ok(Err(_))), "panicked or accepted: {r:?}");
}

// ---------------------------------------------------------------------------------------------
// index_positions: errors, never panics
// ---------------------------------------------------------------------------------------------

/// `index_positions` without unwinding: Ok(positions), Err(message), or "PANIC".
fn positions(ix: &[Ix], base: &[usize], idx: &[&[f64]]) -> Result<Result<Vec<usize>, String>, String> {
    let (ix, base, idx): (Vec<Ix>, Vec<usize>, Vec<Vec<f64>>) =
        (ix.to_vec(), base.to_vec(), idx.iter().map(|v| v.to_vec()).collect());
    std::panic::catch_unwind(move || {
        let refs: Vec<&[f64]> = idx.iter().map(|v| v.as_slice()).collect();
        let mut out = Vec::new();
        prim::index_positions(&ix, &base, &refs, &mut out).map(|_| out)
    })
    .map_err(|_| "PANIC".to_string())
}

#[test]
fn index_positions_reject_out_of_range_indices() {
    let inf = f64::INFINITY;
    let errs: Vec<(Vec<Ix>, Vec<usize>, Vec<Vec<f64>>)> = vec![
        // single indices
        (vec![Ix::Single], vec![5], vec![vec![5.0]]),
        (vec![Ix::Single], vec![5], vec![vec![-1.0]]),
        (vec![Ix::Single], vec![5], vec![vec![2.5]]),
        (vec![Ix::Single], vec![5], vec![vec![f64::NAN]]),
        (vec![Ix::Single], vec![5], vec![vec![inf]]),
        (vec![Ix::Single], vec![5], vec![vec![1e300]]),
        (vec![Ix::Single], vec![2, 3], vec![vec![2.0]]),
        (vec![Ix::All, Ix::Single], vec![2, 3], vec![vec![3.0]]),
        (vec![Ix::Single, Ix::Single], vec![2, 3], vec![vec![1.0], vec![-0.5]]),
        // gathers
        (vec![Ix::Gather], vec![5], vec![vec![0.0, 5.0]]),
        (vec![Ix::Gather], vec![5], vec![vec![-1.0]]),
        (vec![Ix::Gather], vec![5], vec![vec![1.5, 2.0]]),
        (vec![Ix::All, Ix::Gather], vec![2, 3], vec![vec![0.0, 3.0]]),
        // slices
        (vec![Ix::Range(3)], vec![5], vec![vec![3.0]]),
        (vec![Ix::Range(1)], vec![5], vec![vec![5.0]]),
        (vec![Ix::Range(2)], vec![5], vec![vec![-1.0]]),
        (vec![Ix::Range(6)], vec![5], vec![vec![0.0]]),
        (vec![Ix::All, Ix::Range(2)], vec![2, 3], vec![vec![2.0]]),
    ];
    for (ix, base, idx) in errs {
        let refs: Vec<&[f64]> = idx.iter().map(|v| v.as_slice()).collect();
        let r = positions(&ix, &base, &refs);
        assert!(matches!(r, Ok(Err(_))), "{ix:?} on {base:?} with {idx:?}: expected an Err, got {r:?}");
        // The same through eval and vjp of Index: an Err, not a panic.
        let p = Prim::Index(ix.clone());
        let mut args = vec![vec![1.0; numel(&base)]];
        args.extend(idx.iter().cloned());
        let mut shapes = vec![base.clone()];
        let kinds = ix.iter().filter(|i| !matches!(i, Ix::All));
        shapes.extend(kinds.zip(&idx).map(|(i, v)| if matches!(i, Ix::Gather) { vec![v.len()] } else { vec![] }));
        if let Ok(out_shape) = shape_of(&p, &shapes, None) {
            let refs: Vec<&[f64]> = args.iter().map(|v| v.as_slice()).collect();
            let srefs: Vec<&[usize]> = shapes.iter().map(|v| v.as_slice()).collect();
            let mut out = vec![0.0; numel(&out_shape)];
            let r = prim::eval(&p, &refs, &srefs, &out_shape, &mut out, &[], &mut dirty_scratch(), None);
            assert!(r.is_err(), "eval of {ix:?} on {base:?} with {idx:?}");
            let mut g = vec![0.0; numel(&base)];
            let mut adj: Vec<Option<&mut [f64]>> = vec![Some(&mut g)];
            adj.extend(idx.iter().map(|_| None));
            let w = vec![1.0; out.len()];
            let r = prim::vjp(&p, &refs, &srefs, &out, &out_shape, &w, &mut adj, &mut dirty_scratch(), None);
            assert!(r.is_err(), "vjp of {ix:?} on {base:?} with {idx:?}");
        }
    }
    // The edges that are in range.
    assert_eq!(positions(&[Ix::Range(2)], &[5], &[&[3.0]]), Ok(Ok(vec![3, 4])));
    assert_eq!(positions(&[Ix::Range(0)], &[5], &[&[5.0]]), Ok(Ok(vec![])));
    assert_eq!(positions(&[Ix::Single], &[5], &[&[4.0]]), Ok(Ok(vec![4])));
    assert_eq!(positions(&[Ix::All, Ix::Single], &[2, 3], &[&[2.0]]), Ok(Ok(vec![2, 5])));
    // A load from a slot with a bad index: an Err too.
    let r = eval_with(&Prim::Load(Slot(0), vec![Ix::Single]), &[vec![7.0]], &[vec![]], &[], Some((&[1.0; 5], &[5])));
    assert!(r.is_err(), "{r:?}");
}

/// A huge slice start is an error. Regression: it saturated in `lo as usize` and the bound
/// check `lo as usize + len > base[d]` overflowed (a panic in debug builds, a silent empty
/// slice in release builds).
#[test]
fn index_positions_huge_slice_start_is_an_error() {
    for lo in [1e20, f64::INFINITY, 1.8446744073709552e19] {
        let r = positions(&[Ix::Range(2)], &[5], &[&[lo]]);
        assert!(matches!(r, Ok(Err(_))), "slice start {lo}: {r:?}");
    }
}

/// A slice start that is not a whole number (NaN from an int division by zero, which
/// `Bin::IntDiv` returns as NaN) is an error, as it is for a single index. Regression: it was
/// accepted and read as 0 (x[NaN..NaN+2] read x[0..2]).
#[test]
fn index_positions_non_integer_slice_start_is_an_error() {
    for lo in [f64::NAN, 1.5] {
        let r = positions(&[Ix::Range(2)], &[5], &[&[lo]]);
        assert!(matches!(r, Ok(Err(_))), "slice start {lo}: {r:?}");
    }
}
