//! How much the local reparameterisation trick (Kingma et al. 2015) lowers the variance of
//! Bayes by Backprop's gradient, on examples/bnn_regression (UCI yacht, one hidden layer of
//! 50 tanh units). q is first trained for 300 epochs (batches of 32, the compiler's choices:
//! exact KL, local reparameterisation for both weight matrices). Then, on one fixed batch,
//! the gradient of a step's objective with respect to q's means and scales of the first
//! layer's weights is drawn 2,000 times from fresh noise, by the program that samples the
//! weights once per step and by the locally reparameterised one; the mean variance over
//! the coordinates is printed for each, and their ratio. Run with
//! `cargo bench --bench lrt_variance`.

use bnnc::compiled::{Backend, CompiledModel};
use bnnc::driver::frontend_file;
use bnnc::infer::minibatch::{self, Programs};
use bnnc::infer::vi::bbb::{self, Settings};
use bnnc::ir::lower::{lower_with, Options, Purpose};
use bnnc::ir::{InputKind, Part, Program};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::path::Path;

const BATCH: usize = 32;
const REPEATS: usize = 2000;

fn main() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bnn_regression.bnn");
    let mut fe = frontend_file(&model);
    let bound = fe.bind_data(&model.with_extension("json")).expect("data");
    let el = fe.elaborated.clone().expect("model");
    let n = bound.int("N").expect("N") as usize;
    let opts = |b: usize, local: bool| Options {
        batch: Some(b),
        part_weights: true,
        variational: true,
        local_reparam: local,
        ..Default::default()
    };
    let lower = |fe: &mut bnnc::driver::Frontend, o| {
        lower_with(&el, &bound, Purpose::Density, o, &mut fe.diags).expect("lowers")
    };
    let full = lower(&mut fe, Options::default());
    let local = lower(&mut fe, opts(BATCH, true));
    let sampled = lower(&mut fe, opts(BATCH, false));
    let last = lower(&mut fe, opts(n % BATCH, true));

    // Train q as `bnnc run --method bbb` does.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let mut progs = Programs {
        full: CompiledModel::new(&local, Backend::Jit).expect("compiles"),
        full_program: &local,
        last: Some((CompiledModel::new(&last, Backend::Jit).expect("compiles"), &last)),
    };
    let loop_settings = minibatch::Settings {
        epochs: 300,
        batch_size: BATCH,
        lr: 0.01,
        schedule: minibatch::Schedule::Constant,
        sgd_momentum: None,
        patience: 300,
        drop_path: (0.0, 0.0),
    };
    let settings = Settings { kl_anneal: 0, temperature: 1.0, init_sd: 1e-2 };
    let rows: Vec<usize> = (0..n).collect();
    let mu = bbb::initial_means(&full, &mut rng);
    let q = bbb::train(&mut progs, mu, &rows, &loop_settings, &settings, &mut rng, &mut None, &mut |_, _| {})
        .expect("trains")
        .q;
    let sd = q.sd();

    // The first layer's weights, by coordinate of the model's vector.
    let w = full.params.iter().find(|p| p.name == "h.W").expect("h.W");
    let coords = w.offset..w.offset + w.free_len;
    let batch: Vec<f64> = (0..BATCH).map(|i| (i * 7 % n) as f64).collect();
    let mut report = Vec::new();
    for (name, p) in [("weights drawn once per step", &sampled), ("local reparameterisation", &local)] {
        let mut m = CompiledModel::new(p, Backend::Jit).expect("compiles");
        set(&mut m, p, &batch, n);
        let sd_at = sd_offsets(p);
        let dim = q.dim();
        let mut theta = vec![0.0; p.dim()];
        let mut grad = vec![0.0; p.dim()];
        let (mut sum, mut sq) = (vec![0.0; 2 * coords.len()], vec![0.0; 2 * coords.len()]);
        for _ in 0..REPEATS {
            let mut eps = vec![0.0; dim];
            for j in 0..dim {
                match sd_at[j] {
                    Some(at) => {
                        theta[j] = q.mu[j];
                        theta[at] = sd[j];
                    }
                    None => {
                        eps[j] = StandardNormal.sample(&mut rng);
                        theta[j] = q.mu[j] + sd[j] * eps[j];
                    }
                }
            }
            for (k, i) in p.inputs.iter().enumerate() {
                if i.kind == InputKind::Noise {
                    let noise: Vec<f64> = (0..i.len()).map(|_| StandardNormal.sample(&mut rng)).collect();
                    m.set_input(k, &noise).expect("noise");
                }
            }
            m.eval_grad(&theta, &mut grad).expect("finite");
            for (c, j) in coords.clone().enumerate() {
                let g_sd = match sd_at[j] {
                    Some(at) => grad[at],
                    None => grad[j] * eps[j],
                };
                for (slot, g) in [(c, grad[j]), (coords.len() + c, g_sd)] {
                    sum[slot] += g;
                    sq[slot] += g * g;
                }
            }
        }
        let r = REPEATS as f64;
        let var = |range: std::ops::Range<usize>| -> f64 {
            range.clone().map(|i| sq[i] / r - (sum[i] / r).powi(2)).sum::<f64>() / range.len() as f64
        };
        let (vm, vs) = (var(0..coords.len()), var(coords.len()..2 * coords.len()));
        println!("{name:<30} mean gradient variance: means {vm:.4e}, scales {vs:.4e}");
        report.push((vm, vs));
    }
    println!(
        "local reparameterisation lowers it {:.1}x for the means and {:.1}x for the scales of h.W (batch {BATCH}, {REPEATS} draws)",
        report[0].0 / report[1].0,
        report[0].1 / report[1].1
    );
}

/// The batch and the weights of a step: the likelihood scaled by N/B.
fn set(m: &mut CompiledModel, p: &Program, batch: &[f64], n: usize) {
    for (k, i) in p.inputs.iter().enumerate() {
        match i.kind {
            InputKind::Rows { .. } => m.set_input(k, batch).expect("rows"),
            InputKind::Weight(Part::Likelihood) => m.set_input(k, &[n as f64 / batch.len() as f64]).expect("weight"),
            _ => {}
        }
    }
}

/// For each coordinate of the model's vector, where its standard deviation goes in the
/// program's vector when it is locally reparameterised.
fn sd_offsets(p: &Program) -> Vec<Option<usize>> {
    let layout = p.variational.clone().expect("variational");
    let dim: usize = p.params[..layout.model_params].iter().map(|pl| pl.free_len).sum();
    let mut at = vec![None; dim];
    for (i, k) in layout.local {
        let (pl, sd) = (&p.params[i], &p.params[k]);
        (0..pl.free_len).for_each(|e| at[pl.offset + e] = Some(sd.offset + e));
    }
    at
}
