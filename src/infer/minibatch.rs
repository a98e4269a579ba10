//! The training loop of the methods that learn on minibatches of the model's observation
//! rows (Bayes by Backprop, MAP with `--batch-size`, ensembles): epochs of shuffled batches
//! through the compiled minibatch programs, a gradient optimiser (Adam, or SGD with
//! momentum), a score on held-out rows after each epoch with early stopping, and a stop
//! request (Ctrl-C) that keeps what was learnt. What a step computes from the trained vector
//! is the method's [`Objective`].

use crate::compiled::CompiledModel;
use crate::infer::vi::adam::Adam;
use crate::ir::{InputKind, Part, Program};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use std::sync::atomic::Ordering;

#[derive(Clone, Debug)]
pub struct Settings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// `None`: Adam; `Some(m)`: SGD with momentum m.
    pub sgd_momentum: Option<f64>,
    /// Epochs without a better held-out score before training stops.
    pub patience: usize,
}

/// The compiled minibatch programs: one for full batches, one for the last, shorter batch
/// of an epoch when the batch size does not divide the training rows.
pub struct Programs<'p> {
    pub full: CompiledModel<'p>,
    pub full_program: &'p Program,
    pub last: Option<(CompiledModel<'p>, &'p Program)>,
}

/// Where each of a minibatch program's inputs is.
pub struct Inputs {
    pub rows: Option<usize>,
    pub likelihood: Option<usize>,
    pub prior: Option<usize>,
    /// Standard normal noise inputs.
    pub noise: Vec<usize>,
    /// Dropout masks, with their drop probabilities.
    pub masks: Vec<(usize, f64)>,
}

impl Inputs {
    pub fn of(p: &Program) -> Inputs {
        let find = |k: &InputKind| p.inputs.iter().position(|i| i.kind == *k);
        Inputs {
            rows: p.inputs.iter().position(|i| matches!(i.kind, InputKind::Rows { .. })),
            likelihood: find(&InputKind::Weight(Part::Likelihood)),
            prior: find(&InputKind::Weight(Part::Prior)),
            noise: p.inputs.iter().enumerate().filter(|(_, i)| i.kind == InputKind::Noise).map(|(k, _)| k).collect(),
            masks: p
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(k, i)| match i.kind {
                    InputKind::DropoutMask { p } => Some((k, p)),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Fresh dropout masks: each element kept (1) with probability 1 − p.
    pub fn draw_masks<R: Rng + ?Sized>(&self, m: &mut CompiledModel, rng: &mut R) {
        for &(k, p) in &self.masks {
            if let Some(buf) = m.input_mut(k) {
                buf.iter_mut().for_each(|v| *v = if rng.random::<f64>() >= p { 1.0 } else { 0.0 });
            }
        }
    }

    /// Weight the likelihood and the prior.
    pub fn set_weights(&self, m: &mut CompiledModel, likelihood: f64, prior: f64) -> Result<(), String> {
        if let Some(k) = self.likelihood {
            m.set_input(k, &[likelihood])?;
        }
        if let Some(k) = self.prior {
            m.set_input(k, &[prior])?;
        }
        Ok(())
    }
}

/// One step's batch.
pub struct Batch {
    /// N/B: the training rows over the batch's rows.
    pub scale: f64,
    pub epoch: usize,
}

/// What a method computes at a step: from the trained vector `x`, the objective to maximise
/// on the batch (whose rows are already set) and its gradient with respect to `x`.
pub trait Objective {
    fn step<R: Rng + ?Sized>(
        &mut self,
        model: &mut CompiledModel,
        inputs: &Inputs,
        batch: &Batch,
        x: &[f64],
        g: &mut [f64],
        rng: &mut R,
    ) -> Result<f64, String>;

    /// Terms of the objective that do not depend on the batch, at the epoch's end.
    fn epoch_constant(&self, _x: &[f64], _epoch: usize) -> f64 {
        0.0
    }
}

/// One epoch's record.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    /// The mean over the epoch's steps of the objective.
    pub objective: f64,
    /// The held-out score (mean log predictive density), when rows are held out.
    pub val_log_lik: Option<f64>,
    pub seconds: f64,
}

pub struct Outcome {
    /// The trained vector: the best held-out epoch's, or the last.
    pub x: Vec<f64>,
    pub epochs: Vec<Epoch>,
    pub steps: usize,
    pub best_epoch: usize,
    pub stopped: bool,
    pub early_stopped: bool,
}

/// Train `x` on shuffled batches of `train_rows`. `validate` is called with `x` after each
/// epoch: a score it returns (a held-out log-likelihood, higher is better) keeps the best
/// epoch's `x` and stops training when it has not improved for `patience` epochs; a hook
/// that only watches the iterates returns `None`. `progress` is told each epoch's record and
/// the steps so far.
#[allow(clippy::too_many_arguments)]
pub fn train<O: Objective, R: Rng>(
    progs: &mut Programs,
    mut x: Vec<f64>,
    train_rows: &[usize],
    s: &Settings,
    objective: &mut O,
    rng: &mut R,
    validate: &mut Option<&mut dyn FnMut(&[f64]) -> Option<f64>>,
    progress: &mut dyn FnMut(&Epoch, usize),
) -> Result<Outcome, String> {
    let n = train_rows.len();
    let b = s.batch_size.min(n).max(1);
    let full_in = Inputs::of(progs.full_program);
    let last_in = progs.last.as_ref().map(|(_, lp)| Inputs::of(lp));
    let mut adam = Adam::new(x.len(), s.lr);
    let mut velocity = vec![0.0; x.len()];
    let mut g = vec![0.0; x.len()];
    let mut order: Vec<usize> = train_rows.to_vec();
    let mut rows_f = Vec::with_capacity(b);
    let mut epochs = Vec::new();
    let mut best: Option<(f64, Vec<f64>, usize)> = None;
    let (mut steps, mut stopped, mut early_stopped) = (0, false, false);
    'epochs: for epoch in 1..=s.epochs {
        let t0 = std::time::Instant::now();
        order.shuffle(rng);
        let (mut total, mut batches) = (0.0, 0);
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
            rows_f.clear();
            rows_f.extend(chunk.iter().map(|&r| r as f64));
            if let Some(k) = inputs.rows {
                model.set_input(k, &rows_f)?;
            }
            let batch = Batch { scale: n as f64 / chunk.len() as f64, epoch };
            total += objective
                .step(model, inputs, &batch, &x, &mut g, rng)
                .map_err(|e| format!("at step {}: {e}", steps + 1))?;
            batches += 1;
            match s.sgd_momentum {
                None => adam.ascend(&mut x, &g),
                Some(mom) => {
                    for i in 0..x.len() {
                        velocity[i] = mom * velocity[i] + g[i];
                        x[i] += s.lr * velocity[i];
                    }
                }
            }
            steps += 1;
        }
        let val = validate.as_mut().and_then(|f| f(&x));
        let rec = Epoch {
            epoch,
            objective: total / batches.max(1) as f64 + objective.epoch_constant(&x, epoch),
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
    Ok(Outcome { x, epochs, steps, best_epoch, stopped, early_stopped })
}

/// The posterior mode's objective: log prior + (N/B) Σ_batch log lik at x itself, in the
/// model's own parameterisation (the program is compiled without the transforms'
/// log-Jacobian, as for MAP on the full data).
pub struct Mode {
    grad: Vec<f64>,
}

impl Mode {
    pub fn new(dim: usize) -> Mode {
        Mode { grad: vec![0.0; dim] }
    }
}

impl Objective for Mode {
    fn step<R: Rng + ?Sized>(
        &mut self,
        model: &mut CompiledModel,
        inputs: &Inputs,
        batch: &Batch,
        x: &[f64],
        g: &mut [f64],
        rng: &mut R,
    ) -> Result<f64, String> {
        inputs.set_weights(model, batch.scale, 1.0)?;
        inputs.draw_masks(model, rng);
        match model.eval_grad(x, &mut self.grad) {
            Ok(e) if e.logp.is_finite() && self.grad.iter().all(|v| v.is_finite()) => {
                g.copy_from_slice(&self.grad);
                Ok(e.logp)
            }
            Ok(_) => Err("the log density or its gradient is not finite; a smaller --lr may help".into()),
            Err(err) => Err(format!("{err}; a smaller --lr may help")),
        }
    }
}
