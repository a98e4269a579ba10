//! Bayes by Backprop (Blundell et al. 2015): a mean-field Gaussian q with σ = softplus(ρ)
//! over the model's unconstrained parameters, trained on shuffled minibatches of the
//! observation rows by a gradient optimiser. Each step's objective is
//!
//!   (n/B)/T · Σ_batch log p(y | θ) − β · KL(q ‖ p),   θ ~ q,
//!
//! for n training rows, batch size B, temperature T and KL weight β (rising from 0 to 1
//! over the first `kl_anneal` epochs). The KL is counted once per step. It is exact for the
//! parameters whose priors the compiler left out of the program ([`Layout::gaussian`]) and a
//! one-draw estimate, log q(θ) − log p(θ), for the others; locally reparameterised matrices
//! ([`Layout::local`]) enter the program as their means and standard deviations.

use super::adam::Adam;
use super::{Gaussian, Scale};
use crate::compiled::CompiledModel;
use crate::ir::variational::Layout;
use crate::ir::{InputKind, Part, Program};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};
use std::sync::atomic::Ordering;

#[derive(Clone, Debug)]
pub struct Settings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// `None`: Adam; `Some(m)`: SGD with momentum m.
    pub sgd_momentum: Option<f64>,
    /// Epochs over which the KL weight rises linearly from 0 to 1 (0: always 1).
    pub kl_anneal: usize,
    pub temperature: f64,
    /// Epochs without a better held-out score before training stops.
    pub patience: usize,
    /// q's standard deviation at the start.
    pub init_sd: f64,
}

/// One epoch's record.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    /// The mean over the epoch's steps of the objective (the ELBO once β = 1 and T = 1).
    pub elbo: f64,
    /// The held-out mean log predictive density, when rows are held out.
    pub val_log_lik: Option<f64>,
    pub seconds: f64,
}

pub struct Outcome {
    pub q: Gaussian,
    pub epochs: Vec<Epoch>,
    pub steps: usize,
    /// The epoch whose q is returned (the best held-out score, or the last).
    pub best_epoch: usize,
    pub stopped: bool,
    pub early_stopped: bool,
}

/// The compiled minibatch programs: one for full batches, one for the last, shorter batch
/// of an epoch when the batch size does not divide the training rows.
pub struct Programs<'p> {
    pub full: CompiledModel<'p>,
    pub full_program: &'p Program,
    pub last: Option<(CompiledModel<'p>, &'p Program)>,
}

/// Where each of a program's inputs comes from.
struct Inputs {
    rows: Option<usize>,
    lik: Option<usize>,
    prior: Option<usize>,
    noise: Vec<(usize, usize)>,
}

impl Inputs {
    fn of(p: &Program) -> Inputs {
        let find = |k: &InputKind| p.inputs.iter().position(|i| i.kind == *k);
        Inputs {
            rows: p.inputs.iter().position(|i| matches!(i.kind, InputKind::Rows { .. })),
            lik: find(&InputKind::Weight(Part::Likelihood)),
            prior: find(&InputKind::Weight(Part::Prior)),
            noise: p
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, i)| i.kind == InputKind::Noise)
                .map(|(k, i)| (k, i.len()))
                .collect(),
        }
    }
}

/// How each coordinate of the model's unconstrained vector is treated.
struct Coords {
    /// The standard deviation's position in the program's vector, for local coordinates.
    local: Vec<Option<usize>>,
    /// (loc, scale) of a closed-form Gaussian prior.
    gaussian: Vec<Option<(f64, f64)>>,
}

impl Coords {
    fn of(p: &Program, layout: &Layout) -> Coords {
        let dim = p.params[..layout.model_params].iter().map(|pl| pl.free_len).sum();
        let mut c = Coords { local: vec![None; dim], gaussian: vec![None; dim] };
        for &(i, loc, scale) in &layout.gaussian {
            let pl = &p.params[i];
            (pl.offset..pl.offset + pl.free_len).for_each(|j| c.gaussian[j] = Some((loc, scale)));
        }
        for &(i, k) in &layout.local {
            let (pl, sd) = (&p.params[i], &p.params[k]);
            (0..pl.free_len).for_each(|e| c.local[pl.offset + e] = Some(sd.offset + e));
        }
        c
    }
}

impl Coords {
    /// −KL for the closed-form coordinates plus the entropy of the others (whose prior the
    /// program holds), at q's parameters `x` (μ then ρ).
    fn kl_free_part(&self, x: &[f64]) -> f64 {
        let dim = self.gaussian.len();
        let mut v = 0.0;
        for j in 0..dim {
            let sd = softplus(x[dim + j]);
            v += match self.gaussian[j] {
                Some((loc, scale)) => {
                    let z = (x[j] - loc) / scale;
                    -((scale / sd).ln() + 0.5 * ((sd / scale).powi(2) + z * z) - 0.5)
                }
                None => sd.ln() + 0.5 * (1.0 + super::LOG_2PI),
            };
        }
        v
    }
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// ρ with softplus(ρ) = σ.
pub fn softplus_inverse(s: f64) -> f64 {
    if s > 30.0 {
        s
    } else {
        s.exp_m1().ln()
    }
}

/// Train from means `mu`. `train_rows` are the rows batches are drawn from; `validate`
/// scores a q on held-out rows (higher is better) after each epoch, or is `None`;
/// `progress` is told each epoch's record.
#[allow(clippy::too_many_arguments)]
pub fn train(
    progs: &mut Programs,
    mu: Vec<f64>,
    train_rows: &[usize],
    s: &Settings,
    rng: &mut impl Rng,
    validate: &mut Option<&mut dyn FnMut(&Gaussian) -> Option<f64>>,
    progress: &mut dyn FnMut(&Epoch, usize),
) -> Result<Outcome, String> {
    let p = progs.full_program;
    let layout = p.variational.clone().ok_or("internal: the program is not a variational one")?;
    let coords = Coords::of(p, &layout);
    let dim = mu.len();
    let vdim = p.dim();
    let n = train_rows.len();
    let b = s.batch_size.min(n).max(1);
    let full_in = Inputs::of(p);
    let last_in = progs.last.as_ref().map(|(_, lp)| Inputs::of(lp));
    // q's parameters: μ then ρ.
    let mut x = mu;
    x.extend(std::iter::repeat_n(softplus_inverse(s.init_sd), dim));
    let mut adam = Adam::new(2 * dim, s.lr);
    let mut velocity = vec![0.0; 2 * dim];
    let (mut theta, mut vgrad, mut g) = (vec![0.0; vdim], vec![0.0; vdim], vec![0.0; 2 * dim]);
    let mut eps = vec![0.0; dim];
    let (mut e_rho, mut sd, mut dsd) = (vec![0.0; dim], vec![0.0; dim], vec![0.0; dim]);
    let mut order: Vec<usize> = train_rows.to_vec();
    let mut rows_f = Vec::with_capacity(b);
    let mut epochs = Vec::new();
    let mut best: Option<(f64, Vec<f64>, usize)> = None;
    let (mut steps, mut stopped, mut early_stopped) = (0, false, false);
    let as_q = |x: &[f64]| Gaussian {
        mu: x[..dim].to_vec(),
        scale: Scale::LogSd(x[dim..].iter().map(|r| softplus(*r).ln()).collect()),
    };
    'epochs: for epoch in 1..=s.epochs {
        let t0 = std::time::Instant::now();
        let beta = if s.kl_anneal == 0 { 1.0 } else { (epoch as f64 / s.kl_anneal as f64).min(1.0) };
        order.shuffle(rng);
        let mut objective = 0.0;
        let mut batches = 0;
        for chunk in order.chunks(b) {
            if crate::infer::run::STOP.load(Ordering::Relaxed) {
                stopped = true;
                break 'epochs;
            }
            let (model, inputs) = if chunk.len() == b {
                (&mut progs.full, &full_in)
            } else {
                match (&mut progs.last, &last_in) {
                    (Some((m, _)), Some(i)) => (m, i),
                    _ => continue,
                }
            };
            // The batch, weights and fresh noise.
            rows_f.clear();
            rows_f.extend(chunk.iter().map(|&r| r as f64));
            let set = |m: &mut CompiledModel, k: Option<usize>, v: &[f64]| -> Result<(), String> {
                match k {
                    Some(k) => m.set_input(k, v),
                    None => Ok(()),
                }
            };
            set(model, inputs.rows, &rows_f)?;
            set(model, inputs.lik, &[n as f64 / chunk.len() as f64 / s.temperature])?;
            set(model, inputs.prior, &[beta])?;
            for &(k, _) in &inputs.noise {
                if let Some(buf) = model.input_mut(k) {
                    buf.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
                }
            }
            // σ = softplus(ρ) and its derivative, the logistic function, for every coordinate.
            crate::math::vmath::exp_array(&x[dim..], &mut e_rho);
            crate::math::vmath::ln_1p_array(&e_rho, &mut sd);
            for j in 0..dim {
                dsd[j] = if e_rho[j].is_finite() { e_rho[j] / (1.0 + e_rho[j]) } else { 1.0 };
                if !sd[j].is_finite() {
                    sd[j] = x[dim + j];
                }
            }
            // θ: a draw for sampled coordinates, the means and sds for local ones.
            eps.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
            for j in 0..dim {
                match coords.local[j] {
                    Some(at) => {
                        theta[j] = x[j];
                        theta[at] = sd[j];
                    }
                    None => theta[j] = x[j] + sd[j] * eps[j],
                }
            }
            let e = match model.eval_grad(&theta, &mut vgrad) {
                Ok(e) if e.logp.is_finite() && vgrad.iter().all(|v| v.is_finite()) => e,
                Ok(_) => {
                    return Err(format!(
                        "at step {} the objective or its gradient is not finite; a smaller --lr may help",
                        steps + 1
                    ))
                }
                Err(err) => return Err(format!("at step {}: {err}; a smaller --lr may help", steps + 1)),
            };
            // The gradient of the rest of −β·KL: the closed forms, and the entropy of sampled
            // coordinates whose prior is in the program (their values are added per epoch).
            let value = e.logp + e.jacobian;
            for j in 0..dim {
                let (m, sdj) = (x[j], sd[j]);
                let (mut gm, mut gs) = match coords.local[j] {
                    Some(at) => (vgrad[j], vgrad[at]),
                    None => (vgrad[j], vgrad[j] * eps[j]),
                };
                match coords.gaussian[j] {
                    Some((loc, scale)) => {
                        gm -= beta * (m - loc) / (scale * scale);
                        gs -= beta * (sdj / (scale * scale) - 1.0 / sdj);
                    }
                    None => gs += beta / sdj,
                }
                g[j] = gm;
                g[dim + j] = gs * dsd[j];
            }
            objective += value;
            batches += 1;
            match s.sgd_momentum {
                None => adam.ascend(&mut x, &g),
                Some(mom) => {
                    for i in 0..2 * dim {
                        velocity[i] = mom * velocity[i] + g[i];
                        x[i] += s.lr * velocity[i];
                    }
                }
            }
            steps += 1;
        }
        // −β·KL's terms that do not depend on the draw, at the epoch's q.
        let constant = beta * coords.kl_free_part(&x);
        let val = validate.as_mut().and_then(|f| f(&as_q(&x)));
        let rec = Epoch {
            epoch,
            elbo: objective / batches.max(1) as f64 + constant,
            val_log_lik: val,
            seconds: t0.elapsed().as_secs_f64(),
        };
        progress(&rec, steps);
        epochs.push(rec);
        if let Some(v) = val {
            if best.as_ref().is_none_or(|(bv, ..)| v > *bv) {
                best = Some((v, x.clone(), epoch));
            } else if best.as_ref().is_some_and(|(_, _, be)| epoch - be >= s.patience) {
                early_stopped = true;
                break;
            }
        }
    }
    let last_epoch = epochs.last().map_or(0, |e| e.epoch);
    let (x, best_epoch) = match best {
        Some((_, bx, be)) if !stopped => (bx, be),
        _ => (x, last_epoch),
    };
    Ok(Outcome { q: as_q(&x), epochs, steps, best_epoch, stopped, early_stopped })
}

/// Initial means: a matrix parameter's (a layer's weights) uniform in ±1/√(rows), its
/// fan-in, as common network initialisations do; every other coordinate uniform in ±1.
pub fn initial_means(p: &Program, rng: &mut impl Rng) -> Vec<f64> {
    let mut mu = Vec::with_capacity(p.dim());
    for pl in &p.params {
        let bound = match pl.shape.as_slice() {
            [k, _] if pl.kind == crate::math::transform::Kind::Identity => 1.0 / (*k as f64).sqrt(),
            _ => 1.0,
        };
        mu.extend((0..pl.free_len).map(|_| rng.random_range(-bound..bound)));
    }
    mu
}
