//! ADVI as Stan runs it (Kucukelbir et al. 2017, and Stan's reference manual): stochastic
//! gradient ascent on the ELBO with the adaptive step sequence
//! ρ_k = η k^(-1/2) / (1 + √s_k), s_k = 0.1 g_k² + 0.9 s_{k−1}; η chosen, when not given, by
//! trying 100, 10, 1, 0.1, 0.01 for a few iterations each from the start and keeping the one
//! whose ELBO is highest; convergence when the mean or the median of the recent relative
//! ELBO changes falls below `tol_rel_obj`.

use super::Gaussian;
use crate::density::LogDensity;
use rand::Rng;
use std::sync::atomic::Ordering;

#[derive(Clone, Debug)]
pub struct Settings {
    pub full_rank: bool,
    /// The most iterations.
    pub iter: usize,
    /// Draws per gradient.
    pub grad_samples: usize,
    /// Draws per ELBO estimate.
    pub elbo_samples: usize,
    /// Iterations between ELBO estimates.
    pub eval_elbo: usize,
    /// The step size; adapted when `None`.
    pub eta: Option<f64>,
    /// Iterations per candidate η.
    pub adapt_iter: usize,
    pub tol_rel_obj: f64,
    /// q's standard deviations at the start (Stan's: 1).
    pub start_sd: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            full_rank: false,
            iter: 10_000,
            grad_samples: 1,
            elbo_samples: 100,
            eval_elbo: 100,
            eta: None,
            adapt_iter: 50,
            tol_rel_obj: 0.01,
            start_sd: 1.0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub q: Gaussian,
    pub elbo: f64,
    pub iterations: usize,
    pub converged: bool,
    pub eta: f64,
    /// Why it stopped.
    pub message: String,
    /// (iteration, ELBO, relative change) at each estimate.
    pub trace: Vec<(usize, f64, f64)>,
    /// Stopped by a request; `q` is where it was.
    pub stopped: bool,
    /// Why runs with larger adapted step sizes were given up, in order.
    pub retries: Vec<String>,
    /// Not converged, and the mean or median of the recent ELBO changes above half the
    /// ELBO's magnitude (Stan's sign that the algorithm may be diverging), or half the
    /// dimension where the ELBO is nearer 0 than that (there a relative change is the noise
    /// of its estimate over a small number).
    pub diverging: bool,
}

/// What the progress callback is told.
pub enum Progress {
    Adapting { eta: f64 },
    Iteration { iter: usize, elbo: Option<f64> },
}

const ETAS: [f64; 5] = [100.0, 10.0, 1.0, 0.1, 0.01];

/// Fit q from `start` (the mean; standard deviations `start_sd`). When η was adapted and the run with it
/// fails (a draw where the density cannot be evaluated) or ends with an ELBO below the
/// start's, the run starts again with the next smaller candidate, and says so.
pub fn fit<D: LogDensity + ?Sized>(
    d: &mut D,
    start: Vec<f64>,
    s: &Settings,
    rng: &mut impl Rng,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, String> {
    let q0 = Gaussian::isotropic(start, s.full_rank, s.start_sd);
    let elbo0 = q0
        .elbo(d, rng, s.elbo_samples)
        .map_err(|e| format!("the ELBO cannot be estimated at the starting point: {e}"))?;
    if let Some(eta) = s.eta {
        return run_at(d, q0, elbo0, eta, s, rng, progress);
    }
    let first = adapt_eta(d, &q0, elbo0, s, rng, progress)?;
    let mut notes = Vec::new();
    for eta in ETAS.into_iter().filter(|e| *e <= first) {
        // An ELBO within the convergence tolerance of the start's is the estimate's noise.
        let floor = elbo0 - s.tol_rel_obj * elbo0.abs();
        let why = match run_at(d, q0.clone(), elbo0, eta, s, rng, progress) {
            Ok(o) if o.stopped || o.elbo >= floor => {
                let mut o = o;
                o.retries = notes;
                return Ok(o);
            }
            Ok(o) => format!("with eta = {eta} the ELBO fell from {elbo0:.4e} to {:.4e}", o.elbo),
            Err(e) => format!("with eta = {eta}: {e}"),
        };
        notes.push(why);
    }
    Err(format!("{}; give a smaller --eta, or --init a better start", notes.join("; ")))
}

/// One run of stochastic gradient ascent with step size `eta`.
#[allow(clippy::too_many_arguments)]
fn run_at<D: LogDensity + ?Sized>(
    d: &mut D,
    q0: Gaussian,
    elbo0: f64,
    eta: f64,
    s: &Settings,
    rng: &mut impl Rng,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, String> {
    let mut q = q0;
    let mut sgd = StepSequence::new(q.params().len(), eta);
    let mut g = vec![0.0; q.params().len()];
    let window = ((0.1 * s.iter as f64 / s.eval_elbo as f64) as usize).max(2);
    let mut recent: std::collections::VecDeque<f64> = Default::default();
    let mut swings: std::collections::VecDeque<f64> = Default::default();
    let scale_floor = q.dim() as f64;
    let mut trace = Vec::new();
    // As Stan, the first estimate's relative change is against an ELBO of 0, so it is 1: no
    // run converges at its first estimate, and the mean of the changes carries it until it
    // leaves the window.
    let (mut elbo, mut prev) = (0.0, 0.0);
    let mut message = format!("reached {} iterations", s.iter);
    let mut converged = false;
    let mut stopped = false;
    let mut iterations = 0;
    for it in 1..=s.iter {
        if crate::infer::run::STOP.load(Ordering::Relaxed) {
            stopped = true;
            message = "stopped by request".into();
            break;
        }
        q.elbo_grad(d, rng, s.grad_samples, &mut g).map_err(|e| {
            format!("at iteration {it} the gradient cannot be evaluated at draws from q: {e}; a smaller --eta may help")
        })?;
        let step = sgd.step(&g);
        q.add(&step);
        iterations = it;
        if it % s.eval_elbo == 0 {
            prev = elbo;
            elbo = q.elbo(d, rng, s.elbo_samples).map_err(|e| {
                format!("at iteration {it} the ELBO cannot be estimated: {e}; a smaller --eta may help")
            })?;
            let rel = ((elbo - prev) / elbo).abs();
            trace.push((it, elbo, rel));
            if recent.len() == window {
                recent.pop_front();
                swings.pop_front();
            }
            recent.push_back(rel);
            swings.push_back(((elbo - prev) / elbo.abs().max(scale_floor)).abs());
            progress(Progress::Iteration { iter: it, elbo: Some(elbo) });
            let (mean, median) = mean_and_median(&recent);
            if mean < s.tol_rel_obj || median < s.tol_rel_obj {
                converged = true;
                message = format!(
                    "the {} relative ELBO change fell below {}",
                    if mean < s.tol_rel_obj { "mean" } else { "median" },
                    s.tol_rel_obj
                );
                break;
            }
        } else if it % 10 == 0 {
            progress(Progress::Iteration { iter: it, elbo: None });
        }
    }
    let _ = prev;
    if trace.is_empty() {
        elbo = elbo0;
    }
    let (mean, median) = mean_and_median(&swings);
    let diverging = !converged && !stopped && trace.len() > 10 && (mean > 0.5 || median > 0.5);
    Ok(Outcome { q, elbo, iterations, converged, eta, message, trace, stopped, retries: Vec::new(), diverging })
}

/// The mean and the median of a window of changes (0 and 0 when it is empty).
fn mean_and_median(window: &std::collections::VecDeque<f64>) -> (f64, f64) {
    if window.is_empty() {
        return (0.0, 0.0);
    }
    let mean = window.iter().sum::<f64>() / window.len() as f64;
    let mut sorted: Vec<f64> = window.iter().copied().collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    (mean, crate::summary::stats::quantile_sorted(&sorted, 0.5))
}

/// Stan's choice of η: each candidate runs `adapt_iter` iterations from the start; the first
/// that does worse than the best so far, once the best beats the start, ends the search.
fn adapt_eta<D: LogDensity + ?Sized>(
    d: &mut D,
    q0: &Gaussian,
    elbo0: f64,
    s: &Settings,
    rng: &mut impl Rng,
    progress: &mut dyn FnMut(Progress),
) -> Result<f64, String> {
    let mut best: Option<(f64, f64)> = None;
    let mut g = vec![0.0; q0.params().len()];
    for eta in ETAS {
        if crate::infer::run::STOP.load(Ordering::Relaxed) {
            break;
        }
        progress(Progress::Adapting { eta });
        let mut q = q0.clone();
        let mut sgd = StepSequence::new(g.len(), eta);
        let mut failed = false;
        for _ in 0..s.adapt_iter {
            if q.elbo_grad(d, rng, s.grad_samples, &mut g).is_err() {
                failed = true;
                break;
            }
            let step = sgd.step(&g);
            q.add(&step);
        }
        let elbo = if failed { f64::NEG_INFINITY } else { q.elbo(d, rng, s.elbo_samples).unwrap_or(f64::NEG_INFINITY) };
        match best {
            Some((_, b)) if elbo < b && b > elbo0 => break,
            Some((_, b)) if elbo <= b => {}
            _ if elbo.is_finite() => best = Some((eta, elbo)),
            _ => {}
        }
    }
    match best {
        Some((eta, _)) => Ok(eta),
        None => Err("with every step size η in 100, 10, 1, 0.1, 0.01 the ELBO could not be evaluated after a few iterations; give a smaller --eta, or --init a better start".into()),
    }
}

/// Stan's adaptive step sequence.
struct StepSequence {
    eta: f64,
    k: usize,
    s: Vec<f64>,
}

impl StepSequence {
    fn new(n: usize, eta: f64) -> StepSequence {
        StepSequence { eta, k: 0, s: vec![0.0; n] }
    }

    fn step(&mut self, g: &[f64]) -> Vec<f64> {
        self.k += 1;
        let scaled = self.eta / (self.k as f64).sqrt();
        g.iter()
            .zip(&mut self.s)
            .map(|(g, s)| {
                *s = if self.k == 1 { g * g } else { 0.1 * g * g + 0.9 * *s };
                scaled * g / (1.0 + s.sqrt())
            })
            .collect()
    }
}
