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

/// How the learning rate moves over the run's steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Schedule {
    #[default]
    Constant,
    /// Cosine decay from the rate to 0 over all the epochs (Loshchilov & Hutter 2017).
    Cosine,
    /// The cosine decay restarted `cycles` times (warm restarts; the cyclical schedule of
    /// snapshot ensembles and Zhang et al. 2020).
    Cyclical { cycles: usize },
}

impl Schedule {
    /// The factor on the rate at `step` of `total`.
    pub fn factor(self, step: usize, total: usize) -> f64 {
        let cosine = |t: f64| 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
        match self {
            Schedule::Constant => 1.0,
            Schedule::Cosine => cosine(step as f64 / total.max(1) as f64),
            Schedule::Cyclical { cycles } => {
                let len = total.div_ceil(cycles.max(1)).max(1);
                cosine((step % len) as f64 / len as f64)
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub schedule: Schedule,
    /// `None`: Adam; `Some(m)`: SGD with momentum m, whose rate `lr` is per training row.
    pub sgd_momentum: Option<f64>,
    /// Epochs without a better held-out score before training stops.
    pub patience: usize,
    /// Drop-path's probabilities (local, global) for a program lowered with join masks.
    pub drop_path: (f64, f64),
}

impl Settings {
    /// `epochs` passes over the rows at rate 0, which leave the point where it is: for
    /// scoring it (each step's objective and gradient) rather than training it.
    pub fn still(epochs: usize, batch_size: usize, drop_path: (f64, f64)) -> Settings {
        Settings {
            epochs,
            batch_size,
            lr: 0.0,
            schedule: Schedule::Constant,
            sgd_momentum: Some(0.0),
            patience: usize::MAX,
            drop_path,
        }
    }
}

/// The compiled minibatch programs: one for full batches, one for the last, shorter batch
/// of an epoch when the batch size does not divide the training rows.
pub struct Programs<'p> {
    pub full: CompiledModel<'p>,
    pub full_program: &'p Program,
    pub last: Option<(CompiledModel<'p>, &'p Program)>,
}

impl<'p> Programs<'p> {
    /// The program for a batch of `chunk`'s rows with its inputs, the rows set: the full
    /// batches' program, or the last, shorter batch's; `None` when there is none of that
    /// length. `rows` is scratch.
    pub fn for_batch<'a>(
        &'a mut self,
        chunk: &[usize],
        b: usize,
        full_in: &'a Inputs,
        last_in: Option<&'a Inputs>,
        rows: &mut Vec<f64>,
    ) -> Result<Option<(&'a mut CompiledModel<'p>, &'a Inputs)>, String> {
        let (model, inputs) = if chunk.len() == b {
            (&mut self.full, full_in)
        } else {
            match (&mut self.last, last_in) {
                (Some((m, _)), Some(i)) => (m, i),
                _ => return Ok(None),
            }
        };
        rows.clear();
        rows.extend(chunk.iter().map(|&r| r as f64));
        if let Some(k) = inputs.rows {
            model.set_input(k, rows)?;
        }
        Ok(Some((model, inputs)))
    }
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
    /// Each join's masks (input buffers, in the join's input order) and the columns each of
    /// its inputs carries.
    pub joins: Vec<(Vec<usize>, Vec<usize>)>,
    /// Drop-path's probabilities (local, global); (0, 0) keeps every path.
    pub drop_path: (f64, f64),
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
            joins: joins_of(p),
            drop_path: (0.0, 0.0),
        }
    }

    /// Fresh dropout masks: each element kept (1) with probability 1 − p; and drop-path's
    /// join masks.
    pub fn draw_masks<R: Rng + ?Sized>(&self, m: &mut CompiledModel, rng: &mut R) {
        for &(k, p) in &self.masks {
            if let Some(buf) = m.input_mut(k) {
                buf.iter_mut().for_each(|v| *v = if rng.random::<f64>() >= p { 1.0 } else { 0.0 });
            }
        }
        if !self.joins.is_empty() {
            for (k, keep) in drop_path_masks(&self.joins, self.drop_path, rng) {
                if let Some(buf) = m.input_mut(k) {
                    buf.fill(if keep { 1.0 } else { 0.0 });
                }
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

/// Each join's mask inputs (in the join's input order) and the columns each input carries.
pub fn joins_of(p: &Program) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut joins: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    for (k, i) in p.inputs.iter().enumerate() {
        if let InputKind::JoinMask { join, columns, .. } = &i.kind {
            if joins.len() <= *join {
                joins.resize(join + 1, (Vec::new(), columns.clone()));
            }
            joins[*join].0.push(k);
        }
    }
    joins
}

/// The number of columns of the widest join (1 with no join).
pub fn columns(joins: &[(Vec<usize>, Vec<usize>)]) -> usize {
    joins.iter().map(|(_, c)| c.iter().sum::<usize>()).max().unwrap_or(1).max(1)
}

/// The masks that keep one column of the whole fractal: each join passes the input that
/// carries `column` (0 is the deepest, the first input of every join), and every input of a
/// join the column does not reach. Yields (mask input, kept).
pub fn column_masks(joins: &[(Vec<usize>, Vec<usize>)], column: usize) -> Vec<(usize, bool)> {
    let mut out = Vec::new();
    for (inputs, cols) in joins {
        let mut start = 0;
        let carrier = cols.iter().position(|&c| {
            start += c;
            column < start
        });
        for (i, &k) in inputs.iter().enumerate() {
            out.push((k, carrier.is_none_or(|c| c == i)));
        }
    }
    out
}

/// FractalNet's drop-path (Larsson et al. 2017) for one step: with probability `global`, one
/// column is drawn for the whole network and each join keeps the input that carries it (every
/// input of a join the column does not reach); otherwise each join drops each input with
/// probability `local`, keeping at least one (drawn uniformly when all would be dropped).
/// Yields (mask input, kept).
pub fn drop_path_masks<R: Rng + ?Sized>(
    joins: &[(Vec<usize>, Vec<usize>)],
    (local, global): (f64, f64),
    rng: &mut R,
) -> Vec<(usize, bool)> {
    if global > 0.0 && rng.random::<f64>() < global {
        return column_masks(joins, rng.random_range(0..columns(joins)));
    }
    let mut out = Vec::new();
    for (inputs, _) in joins {
        let kept: Vec<bool> = inputs.iter().map(|_| rng.random::<f64>() >= local).collect();
        let forced = (!kept.iter().any(|k| *k)).then(|| rng.random_range(0..inputs.len()));
        for (i, &k) in inputs.iter().enumerate() {
            out.push((k, kept[i] || forced == Some(i)));
        }
    }
    out
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
    /// Why training ended at a step whose objective or gradient was not finite (a rate too
    /// large, say): `x` is then the best held-out epoch's, or the last point where the
    /// objective and its gradient were finite.
    pub diverged: Option<String>,
}

impl Outcome {
    /// The run, or why it diverged as an error (for the loops whose result is useless then).
    pub fn or_diverged(self) -> Result<Outcome, String> {
        match self.diverged {
            Some(why) => Err(why),
            None => Ok(self),
        }
    }
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
    let full_in = Inputs { drop_path: s.drop_path, ..Inputs::of(progs.full_program) };
    let last_in = progs.last.as_ref().map(|(_, lp)| Inputs { drop_path: s.drop_path, ..Inputs::of(lp) });
    let mut adam = Adam::new(x.len(), s.lr);
    let mut velocity = vec![0.0; x.len()];
    let mut g = vec![0.0; x.len()];
    let mut order: Vec<usize> = train_rows.to_vec();
    let mut rows_f = Vec::with_capacity(b);
    let mut epochs = Vec::new();
    let mut best: Option<(f64, Vec<f64>, usize)> = None;
    let (mut steps, mut stopped, mut early_stopped) = (0, false, false);
    let mut diverged = None;
    // The last point whose objective and gradient were finite.
    let mut finite = x.clone();
    let total_steps = s.epochs * n.div_ceil(b);
    'epochs: for epoch in 1..=s.epochs {
        let t0 = std::time::Instant::now();
        order.shuffle(rng);
        let (mut total, mut batches) = (0.0, 0);
        for chunk in order.chunks(b) {
            if crate::infer::run::STOP.load(Ordering::Relaxed) {
                stopped = true;
                break 'epochs;
            }
            let Some((model, inputs)) = progs.for_batch(chunk, b, &full_in, last_in.as_ref(), &mut rows_f)? else {
                continue;
            };
            let batch = Batch { scale: n as f64 / chunk.len() as f64, epoch };
            match objective.step(model, inputs, &batch, &x, &mut g, rng) {
                Ok(v) => total += v,
                Err(e) => {
                    diverged = Some(format!("at step {}: {e}", steps + 1));
                    // The step before moved here from a point where all was finite.
                    if steps > 0 {
                        x.copy_from_slice(&finite);
                    }
                    break 'epochs;
                }
            }
            finite.copy_from_slice(&x);
            batches += 1;
            let lr = s.lr * s.schedule.factor(steps, total_steps);
            match s.sgd_momentum {
                None => {
                    adam.lr = lr;
                    adam.ascend(&mut x, &g)
                }
                Some(mom) => {
                    // The gradient is of the log density on all rows (the batch's scaled by
                    // N/B): the rate is per row, as on a mean loss.
                    let step = lr / n as f64;
                    for i in 0..x.len() {
                        velocity[i] = mom * velocity[i] + g[i];
                        x[i] += step * velocity[i];
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
    Ok(Outcome { x, epochs, steps, best_epoch, stopped, early_stopped, diverged })
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The fractal example's minibatch program with join masks.
    fn fractal_inputs() -> Inputs {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let model = root.join("examples/fractal_regression.bnn");
        let mut fe = crate::driver::frontend_file(&model);
        let (el, bound) = fe.elaborated_with_data(&model, None).expect("the example checks");
        let options =
            crate::ir::lower::Options { batch: Some(8), part_weights: true, drop_path: true, ..Default::default() };
        let p = crate::ir::lower::lower_with(&el, &bound, crate::ir::lower::Purpose::Density, options, &mut fe.diags)
            .expect("the example lowers");
        Inputs::of(&p)
    }

    #[test]
    fn schedules_decay_and_restart() {
        assert_eq!(Schedule::Constant.factor(70, 100), 1.0);
        assert_eq!(Schedule::Cosine.factor(0, 100), 1.0);
        assert!((Schedule::Cosine.factor(50, 100) - 0.5).abs() < 1e-12);
        assert!(Schedule::Cosine.factor(99, 100) < 1e-3);
        let c = Schedule::Cyclical { cycles: 4 };
        assert_eq!(c.factor(25, 100), 1.0, "a restart at each quarter");
        assert!((c.factor(37, 100) - Schedule::Cosine.factor(12, 25)).abs() < 1e-12);
    }

    #[test]
    fn a_depth_three_fractal_has_three_joins_and_three_columns() {
        let inputs = fractal_inputs();
        // f(3) = join(f(2) ∘ f(2), block), each f(2) = join(block ∘ block, block).
        let mut columns: Vec<Vec<usize>> = inputs.joins.iter().map(|(_, c)| c.clone()).collect();
        columns.sort();
        assert_eq!(columns, vec![vec![1, 1], vec![1, 1], vec![2, 1]]);
        assert!(inputs.joins.iter().all(|(k, _)| k.len() == 2));
    }

    #[test]
    fn drop_path_keeps_an_input_of_every_join_and_one_column_globally() {
        let joins = fractal_inputs().joins;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut dropped = 0;
        let mut total = 0;
        for _ in 0..2000 {
            let masks = drop_path_masks(&joins, (0.5, 0.0), &mut rng);
            for (inputs, _) in &joins {
                let kept = inputs.iter().filter(|k| masks.iter().any(|(m, keep)| m == *k && *keep)).count();
                assert!(kept >= 1, "a join lost every input");
                dropped += inputs.len() - kept;
                total += inputs.len();
            }
        }
        // Each input is dropped with probability 0.5, unless it is the one kept: P(drop) =
        // 0.5 − P(both dropped and it is the one restored) = 0.5 − 0.25/2.
        let rate = dropped as f64 / total as f64;
        assert!((rate - 0.375).abs() < 0.02, "drop rate {rate}");
        // Global: every join the chosen column reaches passes exactly one input, and the top
        // join (3 columns) passes its shallow input a third of the time.
        let top = joins.iter().find(|(_, c)| *c == vec![2, 1]).unwrap();
        let mut shallow = 0;
        for _ in 0..3000 {
            let masks = drop_path_masks(&joins, (0.5, 1.0), &mut rng);
            let keep = |k: usize| masks.iter().any(|(m, kept)| *m == k && *kept);
            assert_eq!(top.0.iter().filter(|k| keep(**k)).count(), 1);
            shallow += usize::from(keep(top.0[1]));
        }
        let share = shallow as f64 / 3000.0;
        assert!((share - 1.0 / 3.0).abs() < 0.03, "shallow column share {share}");
    }
}
