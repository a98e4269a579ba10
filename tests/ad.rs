//! Reverse-mode gradients equal finite differences on every posteriordb model and example,
//! at random points of the unconstrained space.

use bnnc::diag::{render, Format};
use bnnc::driver::frontend_file;
use bnnc::ir::interp::Interp;
use rand::{RngExt, SeedableRng};
use std::path::Path;

#[path = "common/models.rs"]
mod common_models;
use common_models::models;

/// Five-point central difference of f at theta along coordinate i, step `h0` (relative).
fn fd(interp: &mut Interp, theta: &[f64], i: usize, h0: f64) -> f64 {
    let h = h0 * theta[i].abs().max(1.0);
    let mut at = |d: f64| {
        let mut t = theta.to_vec();
        t[i] += d;
        let e = interp.eval(&t).expect("finite near the point");
        e.logp + e.jacobian
    };
    (-at(2.0 * h) + 8.0 * at(h) - 8.0 * at(-h) + at(-2.0 * h)) / (12.0 * h)
}

#[test]
fn gradients_match_finite_differences_on_every_model() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261122);
    let mut checked = 0;
    for (model, data) in models() {
        // relu's kinks make finite differences meaningless near many points of a network;
        // the same structure with a smooth activation checks the same code paths.
        let src = std::fs::read_to_string(&model).expect("readable");
        // Likewise max pooling's (ties between a window's elements), checked apart in
        // tests/prim.rs away from ties.
        let mut fe = if src.contains("relu") || src.contains("max_pool2d") {
            let smooth = src.replace("relu", "softplus").replace("max_pool2d", "avg_pool2d") + "\nlayer fractal(x: matrix[n, d], depth: int, act: fn = softplus) -> matrix[n, d] {\n  if depth == 1 {\n    return dense(x, d, act = act)\n  }\n  return join(fractal(fractal(x, depth - 1, act = act), depth - 1, act = act), dense(x, d, act = act))\n}\n\nlayer fractal_conv(x: tensor[n, c, h, w], depth: int, filters: int, act: fn = softplus, prior: dist = normal(0, 1)) -> tensor[n, filters, h, w] {\n  if depth == 1 {\n    return conv2d(x, filters, 3, padding = 1, act = act, prior = prior)\n  }\n  return join(fractal_conv(fractal_conv(x, depth - 1, filters, act = act, prior = prior), depth - 1, filters, act = act, prior = prior), conv2d(x, filters, 3, padding = 1, act = act, prior = prior))\n}\n";
            bnnc::driver::frontend_text(&model.display().to_string(), &smooth, model.parent())
        } else {
            frontend_file(&model)
        };
        let program = fe.program(&model, Some(&data));
        let shown = render(&fe.diags, &fe.sources, Format::Human { color: false });
        let program = program.unwrap_or_else(|| panic!("{} should lower:\n{shown}", model.display()));
        bnnc::ir::verify::verify(&program).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
        let mut interp = Interp::new(&program);
        let dim = program.dim();
        // A few random points in (-2, 2), as a sampler's initialisation draws them.
        let mut points = 0;
        for _attempt in 0..50 {
            if points == 3 || (points == 1 && dim > 5000) {
                break;
            }
            // Weights of a deep image network at the scale of an initialisation: drawn in
            // (-2, 2), four convolutions deep, its activations are in the thousands, where a
            // smooth activation bends within a finite difference's step.
            let r = if dim > 5000 { 0.2 } else { 2.0 };
            let theta: Vec<f64> = (0..dim).map(|_| rng.random_range(-r..r)).collect();
            if interp.eval(&theta).is_err() {
                continue;
            }
            let mut grad = vec![0.0; dim];
            interp.eval(&theta).expect("finite");
            interp.gradient(&mut grad).expect("finite gradient");
            // Check every coordinate for small models, a sample of them for large ones.
            // Image networks (thousands of weights over a thousand images) at one point and
            // fewer coordinates: each difference is a pass over every image.
            let wanted = if dim > 5000 { 12 } else { 40 };
            let coords: Vec<usize> = if dim <= wanted {
                (0..dim).collect()
            } else {
                (0..wanted).map(|_| rng.random_range(0..dim)).collect()
            };
            let f0 = {
                let e = interp.eval(&theta).expect("finite");
                (e.logp + e.jacobian).abs()
            };
            for i in coords {
                // Agreement up to the stencil's own error: truncation (relative 1e-6 here) plus
                // roundoff, about eps·|f|/h. A stencil straddling a kink (relu, abs) is off at
                // one step size but not at all three; a wrong gradient is off at all of them.
                let ok = |num: f64, h0: f64| {
                    let h = h0 * theta[i].abs().max(1.0);
                    (num - grad[i]).abs() <= 1e-6 * num.abs().max(grad[i].abs()).max(1.0) + 1e-14 * f0 / h
                };
                let tries: Vec<(f64, f64)> =
                    [1e-4, 1e-3, 1e-5].iter().map(|h| (fd(&mut interp, &theta, i, *h), *h)).collect();
                assert!(
                    tries.iter().any(|(num, h)| ok(*num, *h)),
                    "{}: d/dtheta[{i}] is {} by reverse mode but {:?} by finite differences (value, step)",
                    model.display(),
                    grad[i],
                    tries
                );
            }
            points += 1;
        }
        assert!(points > 0, "{}: no finite point found", model.display());
        checked += 1;
    }
    assert!(checked >= 16, "checked {checked} models");
}

#[test]
fn eight_schools_matches_a_hand_computed_density() {
    // Non-centred eight schools at theta: mu = 1, log tau = 0.5, eta = 0.1·k; the density
    // written out here independently of the compiler (normalising constants included).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("examples/eight_schools.bnn");
    let mut fe = frontend_file(&model);
    let program = fe.program(&model, None).expect("lowers with the data beside it");
    let y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0];
    let sigma = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0];
    let (mu, ltau) = (1.0f64, 0.5f64);
    let tau = ltau.exp();
    let eta: Vec<f64> = (0..8).map(|k| 0.1 * k as f64).collect();
    let lnorm =
        |x: f64, m: f64, s: f64| -0.5 * ((x - m) / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
    let mut lp = lnorm(mu, 0.0, 5.0);
    lp += (1.0 / (std::f64::consts::PI * 5.0 * (1.0 + (tau / 5.0).powi(2)))).ln();
    for k in 0..8 {
        lp += lnorm(eta[k], 0.0, 1.0);
        lp += lnorm(y[k], mu + tau * eta[k], sigma[k]);
    }
    let mut theta = vec![mu, ltau];
    theta.extend(&eta);
    let e = Interp::new(&program).eval(&theta).expect("finite");
    assert!((e.logp - lp).abs() < 1e-10 * lp.abs(), "{} vs {lp}", e.logp);
    assert!((e.jacobian - ltau).abs() < 1e-14);
}
