//! Cyclical stochastic-gradient MCMC (Zhang et al. 2020) on minibatches of the observation
//! rows. The step size follows a cosine from α₀ down to 0 in each of C cycles,
//! α_k = α₀/2 · (cos(π · (k mod L)/L) + 1) for cycles of L steps; the first `explore` part of
//! a cycle moves without noise (towards a mode), the rest samples:
//!
//! - SGLD (Welling & Teh 2011): θ ← θ + α ĝ + √(2α) ξ,
//! - SGHMC (Chen et al. 2014), with friction η: v ← (1 − η) v + α ĝ + √(2ηα) ξ, θ ← θ + v,
//!
//! where ĝ is the minibatch estimate of the log density's gradient (prior once, likelihood
//! scaled by N/B) and ξ standard normal. Draws are taken at evenly spaced steps of each
//! cycle's sampling part, the last at its end.

use crate::infer::minibatch::{Batch, Inputs, Mode, Objective, Programs};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::sync::atomic::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    Sgld,
    Sghmc,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub sampler: Sampler,
    pub cycles: usize,
    /// Steps per cycle.
    pub cycle_steps: usize,
    /// The largest step size, on the log density.
    pub step: f64,
    /// The fraction of a cycle spent exploring, without noise.
    pub explore: f64,
    pub draws_per_cycle: usize,
    pub batch_size: usize,
    /// SGHMC's friction.
    pub friction: f64,
    /// Drop-path's probabilities (local, global).
    pub drop_path: (f64, f64),
}

pub struct Outcome {
    /// The unconstrained draws, cycle by cycle.
    pub draws: Vec<Vec<f64>>,
    pub steps: usize,
    pub stopped: bool,
}

/// Sample from `start`.
pub fn sample<R: Rng>(
    progs: &mut Programs,
    start: Vec<f64>,
    train_rows: &[usize],
    s: &Settings,
    rng: &mut R,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Outcome, String> {
    let n = train_rows.len();
    let b = s.batch_size.min(n).max(1);
    let full_in = Inputs { drop_path: s.drop_path, ..Inputs::of(progs.full_program) };
    let last_in = progs.last.as_ref().map(|(_, lp)| Inputs { drop_path: s.drop_path, ..Inputs::of(lp) });
    let dim = start.len();
    let mut x = start;
    let mut v = vec![0.0; dim];
    let mut g = vec![0.0; dim];
    let mut objective = Mode::new(progs.full_program.dim());
    let mut order: Vec<usize> = train_rows.to_vec();
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut rows_f = Vec::with_capacity(b);
    let sampling_from = ((s.explore * s.cycle_steps as f64).ceil() as usize).min(s.cycle_steps - 1);
    let sampling_len = s.cycle_steps - sampling_from;
    // Steps of a cycle after which a draw is taken: evenly spaced, the last at the end.
    let take: Vec<usize> = (1..=s.draws_per_cycle.min(sampling_len))
        .map(|i| sampling_from + (i * sampling_len) / s.draws_per_cycle.min(sampling_len) - 1)
        .collect();
    let mut out = Outcome { draws: Vec::new(), steps: 0, stopped: false };
    for cycle in 0..s.cycles {
        for k in 0..s.cycle_steps {
            if crate::infer::run::STOP.load(Ordering::Relaxed) {
                out.stopped = true;
                return Ok(out);
            }
            if batches.is_empty() {
                order.shuffle(rng);
                batches = order.chunks(b).map(|c| c.to_vec()).rev().collect();
            }
            let chunk = batches.pop().unwrap_or_default();
            let Some((model, inputs)) = progs.for_batch(&chunk, b, &full_in, last_in.as_ref(), &mut rows_f)? else {
                continue;
            };
            let batch = Batch { scale: n as f64 / chunk.len() as f64, epoch: cycle + 1 };
            objective
                .step(model, inputs, &batch, &x, &mut g, rng)
                .map_err(|e| format!("at step {}: {e}", out.steps + 1))?;
            let alpha = s.step / 2.0 * ((std::f64::consts::PI * k as f64 / s.cycle_steps as f64).cos() + 1.0);
            let noisy = k >= sampling_from;
            match s.sampler {
                Sampler::Sgld => {
                    let sd = (2.0 * alpha).sqrt();
                    for j in 0..dim {
                        x[j] += alpha * g[j];
                        if noisy {
                            x[j] += sd * Distribution::<f64>::sample(&StandardNormal, rng);
                        }
                    }
                }
                Sampler::Sghmc => {
                    let sd = (2.0 * s.friction * alpha).sqrt();
                    for j in 0..dim {
                        v[j] = (1.0 - s.friction) * v[j] + alpha * g[j];
                        if noisy {
                            v[j] += sd * Distribution::<f64>::sample(&StandardNormal, rng);
                        }
                        x[j] += v[j];
                    }
                }
            }
            out.steps += 1;
            if take.contains(&k) {
                out.draws.push(x.clone());
            }
        }
        progress(cycle + 1, out.draws.len());
    }
    Ok(out)
}
