//! Minibatches of observation rows as variational training uses them: the scaled minibatch
//! gradient is an unbiased estimate of the full-data one, and the variational program
//! (closed-form KL left out, local reparameterisation) computes what it claims.

use bnnc::compiled::{Backend, CompiledModel};
use bnnc::driver::frontend_file;
use bnnc::ir::lower::{lower_for, lower_with, row_size, Options, Purpose};
use bnnc::ir::{InputKind, Part, Program};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use std::path::Path;

fn input(p: &Program, kind: &InputKind) -> Option<usize> {
    p.inputs.iter().position(|i| i.kind == *kind)
}

fn rows_input(p: &Program) -> usize {
    p.inputs.iter().position(|i| matches!(i.kind, InputKind::Rows { .. })).expect("a rows input")
}

/// The scaled minibatch gradient is an unbiased estimate of the full-data one, on the
/// examples' networks and a logistic regression.
#[test]
fn the_scaled_minibatch_gradient_averages_to_the_full_gradient_over_an_epoch() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for (name, b) in [("bnn_regression", 32), ("logistic_regression", 50), ("bnn_classification", 13)] {
        let model = root.join("examples").join(format!("{name}.bnn"));
        epoch_average_is_the_full_gradient(&model, &model.with_extension("json"), b, &mut rng);
    }
}

/// The same for a likelihood written as `target +=` of a mixture of each row's densities (a
/// zero-inflated Poisson): a function of one row's values alone is that row's term.
#[test]
fn a_mixture_of_each_rows_densities_is_minibatched_without_bias() {
    let dir = std::env::temp_dir().join(format!("bnnc-minibatch-zip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (model, data) = (dir.join("zip.bnn"), dir.join("zip.json"));
    std::fs::write(&model, ZERO_INFLATED).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let y: Vec<String> = (0..90).map(|i| if i % 3 == 0 { 0 } else { rng.random_range(0..7) }.to_string()).collect();
    std::fs::write(&data, format!("{{\"N\": 90, \"y\": [{}]}}", y.join(", "))).unwrap();
    epoch_average_is_the_full_gradient(&model, &data, 16, &mut rng);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A zero-inflated Poisson written as Stan users write it.
const ZERO_INFLATED: &str = include_str!("common/zero_inflated.bnn");

/// Over a random partition of `model`'s rows into batches of `b` (the last one shorter), the
/// batches' gradients, each with its likelihood scaled by N/|batch|, average — weighted by
/// |batch|/N — to the full-data gradient: every row's likelihood is counted exactly once
/// and the prior once per batch. With equal batches that is their plain mean, the epoch's
/// average of what a step uses.
fn epoch_average_is_the_full_gradient(model: &Path, data: &Path, b: usize, rng: &mut rand::rngs::StdRng) {
    let name = model.display();
    let mut fe = frontend_file(model);
    let bound = fe.bind_data(data).expect("data");
    let el = fe.elaborated.clone().expect("elaborated");
    let n = bound.int(&row_size(&el).expect("rows")).expect("row count") as usize;
    let opts = |b| Options { batch: Some(b), part_weights: true, ..Default::default() };
    let full = lower_for(&el, &bound, Purpose::Density, &mut fe.diags).expect("lowers");
    let batch = lower_with(&el, &bound, Purpose::Density, opts(b), &mut fe.diags).expect("lowers");
    let last =
        (n % b > 0).then(|| lower_with(&el, &bound, Purpose::Density, opts(n % b), &mut fe.diags).expect("lowers"));
    let mut fm = CompiledModel::new(&full, Backend::Jit).expect("compiles");
    let mut bm = CompiledModel::new(&batch, Backend::Jit).expect("compiles");
    let mut lm = last.as_ref().map(|p| CompiledModel::new(p, Backend::Jit).expect("compiles"));
    let dim = full.dim();
    let theta: Vec<f64> = (0..dim).map(|_| rng.random_range(-0.5..0.5)).collect();
    let mut g_full = vec![0.0; dim];
    fm.eval_grad(&theta, &mut g_full).expect("finite");
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut avg = vec![0.0; dim];
    let mut g = vec![0.0; dim];
    let mut batches = 0;
    for chunk in order.chunks(b) {
        let (m, p) = if chunk.len() == b {
            (&mut bm, &batch)
        } else {
            (lm.as_mut().expect("last"), last.as_ref().expect("last"))
        };
        let rows: Vec<f64> = chunk.iter().map(|r| *r as f64).collect();
        m.set_input(rows_input(p), &rows).expect("rows");
        let w = input(p, &InputKind::Weight(Part::Likelihood)).expect("likelihood weight");
        m.set_input(w, &[n as f64 / chunk.len() as f64]).expect("weight");
        m.eval_grad(&theta, &mut g).expect("finite");
        let share = chunk.len() as f64 / n as f64;
        avg.iter_mut().zip(&g).for_each(|(a, g)| *a += share * g);
        batches += 1;
    }
    assert!(batches > 3, "{name}: several batches");
    let norm = g_full.iter().map(|v| v * v).sum::<f64>().sqrt();
    for (j, (a, f)) in avg.iter().zip(&g_full).enumerate() {
        assert!((a - f).abs() <= 1e-9 * norm.max(1.0), "{name}: coordinate {j}: epoch average {a} vs full {f}");
    }
    // One batch alone is not the full gradient (the test can fail).
    assert!(g.iter().zip(&g_full).any(|(a, f)| (a - f).abs() > 1e-6 * norm), "{name}");
}

/// The variational program of a network: the dense layers' matrices are locally
/// reparameterised, every Gaussian prior is left to the trainer, and with standard
/// deviations of zero the program is the plain minibatch likelihood at the means.
#[test]
fn the_variational_program_is_the_likelihood_at_the_means_when_q_has_no_spread() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("examples/bnn_regression.bnn");
    let mut fe = frontend_file(&model);
    let bound = fe.bind_data(&model.with_extension("json")).expect("data");
    let el = fe.elaborated.clone().expect("elaborated");
    let b = 16;
    let plain = Options { batch: Some(b), part_weights: true, ..Default::default() };
    let var = Options { variational: true, local_reparam: true, ..plain };
    let p = lower_with(&el, &bound, Purpose::Density, plain, &mut fe.diags).expect("lowers");
    let v = lower_with(&el, &bound, Purpose::Density, var, &mut fe.diags).expect("lowers");
    let layout = v.variational.clone().expect("a variational layout");
    let name = |i: usize| v.params[i].name.clone();
    let mut local: Vec<String> = layout.local.iter().map(|l| name(l.0)).collect();
    local.sort();
    assert_eq!(local, ["f.W", "h.W"]);
    let mut exact: Vec<String> = layout.gaussian.iter().map(|g| name(g.0)).collect();
    exact.sort();
    assert_eq!(exact, ["f.W", "f.b", "h.W", "h.b"]);
    assert_eq!(v.dim(), p.dim() + 6 * 50 + 50);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let theta: Vec<f64> = (0..p.dim()).map(|_| rng.random_range(-0.5..0.5)).collect();
    let rows: Vec<f64> = (0..b).map(|i| (i * 17 % 277) as f64).collect();
    let mut pm = CompiledModel::new(&p, Backend::Jit).expect("compiles");
    let mut vm = CompiledModel::new(&v, Backend::Jit).expect("compiles");
    pm.set_input(rows_input(&p), &rows).expect("rows");
    vm.set_input(rows_input(&v), &rows).expect("rows");
    let mut noise = |vm: &mut CompiledModel, spread: f64| {
        for (k, i) in v.inputs.iter().enumerate() {
            if i.kind == InputKind::Noise {
                let e: Vec<f64> = (0..i.len()).map(|_| spread * rng.random_range(-3.0..3.0)).collect();
                vm.set_input(k, &e).expect("noise");
            }
        }
    };
    // (Noise of zero: the square root's guard against a zero variance then adds nothing.)
    noise(&mut vm, 0.0);
    let mut vtheta = theta.clone();
    vtheta.resize(v.dim(), 0.0);
    let (mut gp, mut gv) = (vec![0.0; p.dim()], vec![0.0; v.dim()]);
    let ep = pm.eval_grad(&theta, &mut gp).expect("finite");
    let ev = vm.eval_grad(&vtheta, &mut gv).expect("finite");
    // The plain program has every prior; the variational one only sigma's.
    assert!(
        (ep.likelihood - ev.likelihood).abs() < 1e-9 * ep.likelihood.abs(),
        "{} vs {}",
        ep.likelihood,
        ev.likelihood
    );
    let sigma = &v.params[0];
    assert_eq!(sigma.name, "sigma");
    // The means' gradients are the likelihood's (priors apart, which only the plain one has).
    for pl in &p.params[1..] {
        let prior_grad = |j: usize| -theta[j];
        for j in pl.offset..pl.offset + pl.free_len {
            let lik = gp[j] - prior_grad(j);
            assert!(
                (lik - gv[j]).abs() < 1e-7 * (1.0 + lik.abs()),
                "{}[{}]: {lik} vs {}",
                pl.name,
                j - pl.offset,
                gv[j]
            );
        }
    }
    // With spread, the noise moves the likelihood.
    noise(&mut vm, 1.0);
    vtheta[p.dim()..].iter_mut().for_each(|s| *s = 0.3);
    let moved = vm.eval_grad(&vtheta, &mut gv).expect("finite");
    assert!((moved.likelihood - ev.likelihood).abs() > 1e-3);
}
