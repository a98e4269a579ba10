//! Running chains: initialisation, warmup with adaptation, sampling, and streaming each
//! draw to its chain's CSV file as it is made. Chains run on threads; each has its own
//! generator seeded from (seed, chain), so results do not depend on the thread count. A
//! stop request (Ctrl-C) ends every chain after its current iteration, keeping its draws.

use crate::compiled::{Backend, CompiledModel};
use crate::density::LogDensity;
use crate::infer::adapt::{Moments, StepSizeAdapter, Windows, EARLY_UPDATE};
use crate::infer::nuts::{Metric, Sampler, State, Stats};
use crate::infer::stan_csv;
use crate::ir::Program;
use rand::SeedableRng;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Nuts,
    Hmc,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub method: Method,
    pub chains: usize,
    pub warmup: usize,
    pub draws: usize,
    pub seed: u64,
    pub threads: usize,
    pub max_depth: usize,
    pub adapt_delta: f64,
    pub dense: bool,
    /// Leapfrog steps per transition for static HMC.
    pub hmc_steps: usize,
    /// An unconstrained starting point for every chain.
    pub init: Option<crate::ir::point::Init>,
    /// Where each chain's `draws-<chain>.csv` is written as it goes (none when `None`).
    pub out_dir: Option<PathBuf>,
    pub model_name: String,
    /// [`crate::source::fingerprint`] of the model's text, written to summary.json.
    pub model_hash: String,
    pub data_file: String,
    /// How the density is evaluated.
    pub backend: Backend,
}

/// One chain's outcome.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    /// Per draw: the constrained parameters and generated quantities, flattened.
    pub draws: Vec<Vec<f64>>,
    pub stats: Vec<Stats>,
    pub step_size: f64,
    pub inv_metric: Vec<f64>,
    pub seconds_warmup: f64,
    pub seconds_sampling: f64,
    pub grad_evals: usize,
    /// Why the chain could not run, if it could not.
    pub error: Option<String>,
    /// Stopped early by a request.
    pub stopped: bool,
    /// The random starts given up (see `Outcome::restarts`).
    pub restarts: Vec<Restart>,
    /// Draws whose generated quantities could not be computed (kept with their parameters,
    /// the generated columns NaN).
    pub generated_failures: crate::compiled::GeneratedFailures,
}

/// Set by the Ctrl-C handler; chains stop after their current iteration.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The seed of chain `c`: a fixed mix of the run's seed and the chain number.
pub fn chain_seed(seed: u64, c: usize) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(c as u64 + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Output column names: (bnnc's 0-based, CmdStan's 1-based) for every scalar.
pub fn column_names(p: &Program) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for pl in &p.params {
        v.extend(stan_csv::element_names(&pl.name, &pl.shape));
    }
    for o in &p.outputs {
        v.extend(stan_csv::element_names(&o.name, &p.values[o.value.0 as usize].shape));
    }
    v
}

/// Run every chain. `progress` is called with (chain, iteration) now and then.
pub fn run(p: &Program, cfg: &Config, progress: &(dyn Fn(usize, usize) + Sync)) -> Vec<Chain> {
    let names = column_names(p);
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Chain>> = vec![None; cfg.chains];
    let threads = cfg.threads.clamp(1, cfg.chains.max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let next = &next;
                let names = &names;
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let c = next.fetch_add(1, Ordering::SeqCst);
                        if c >= cfg.chains || STOP.load(Ordering::Relaxed) {
                            break;
                        }
                        done.push((c, run_chain(p, cfg, c, names, progress)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            if let Ok(done) = h.join() {
                for (c, r) in done {
                    results[c] = Some(r);
                }
            }
        }
    });
    // A chain with no result was never begun because a stop was requested, or its thread died.
    let stopped = STOP.load(Ordering::Relaxed);
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| match stopped {
                true => Chain { stopped: true, ..Chain::default() },
                false => Chain { error: Some("the chain's thread failed".into()), ..Chain::default() },
            })
        })
        .collect()
}

fn run_chain(
    p: &Program,
    cfg: &Config,
    c: usize,
    names: &[(String, String)],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Chain {
    let seed = chain_seed(cfg.seed, c);
    let mut out = Chain::default();
    let mut interp = match CompiledModel::new(p, cfg.backend) {
        Ok(d) => d,
        Err(e) => {
            out.error = Some(crate::compiled::internal_error(&e));
            return out;
        }
    };
    interp.seed(seed ^ 0x5DEE_CE66);
    // The draws file, written as the chain goes.
    let mut file: Box<dyn Write> = match &cfg.out_dir {
        None => Box::new(std::io::sink()),
        Some(dir) => {
            let path = dir.join(format!("draws-{}.csv", c + 1));
            match std::fs::File::create(&path) {
                Ok(f) => Box::new(BufWriter::new(f)),
                Err(e) => {
                    out.error = Some(format!("cannot write `{}`: {e}", path.display()));
                    return out;
                }
            }
        }
    };
    let mut columns: Vec<String> = stan_csv::SAMPLER_COLUMNS.iter().map(|s| s.to_string()).collect();
    columns.extend(names.iter().map(|(_, stan)| stan.clone()));
    let header = stan_csv::Header {
        model: &cfg.model_name,
        method: if cfg.method == Method::Nuts { "nuts" } else { "static" },
        chain: c,
        seed: cfg.seed,
        warmup: cfg.warmup,
        draws: cfg.draws,
        max_depth: cfg.max_depth,
        adapt_delta: cfg.adapt_delta,
        metric: if cfg.dense { "dense_e" } else { "diag_e" },
        data_file: &cfg.data_file,
    };
    let _ = stan_csv::write_header(&mut file, &header, &columns);

    let settings = Settings {
        method: cfg.method,
        warmup: cfg.warmup,
        draws: cfg.draws,
        max_depth: cfg.max_depth,
        adapt_delta: cfg.adapt_delta,
        dense: cfg.dense,
        hmc_steps: cfg.hmc_steps,
    };
    let mut row = Vec::with_capacity(7 + names.len());

    // Both callbacks write to the chain's file.
    let file = std::cell::RefCell::new(file);
    let result = sample(
        &mut interp,
        &settings,
        seed,
        cfg.init.clone(),
        &mut |step_size, inv_metric, restarts| {
            let mut f = file.borrow_mut();
            let _ = stan_csv::write_restarts(&mut *f, restarts);
            let _ = stan_csv::write_adaptation(&mut *f, step_size, inv_metric);
        },
        &mut |density, z, st, it| {
            let values: Vec<f64> = match density.constrained_keeping_params(&z.q) {
                Ok((v, _)) => v.into_iter().flat_map(|(_, _, x)| x).collect(),
                Err(_) => vec![f64::NAN; names.len()],
            };
            row.clear();
            row.extend([
                st.logp,
                st.accept_stat,
                st.step_size,
                st.tree_depth as f64,
                st.n_leapfrog as f64,
                st.divergent as i64 as f64,
                st.energy,
            ]);
            row.extend(&values);
            let _ = stan_csv::write_row(&mut *file.borrow_mut(), &row);
            out.draws.push(values);
            out.stats.push(*st);
            if it % 50 == 0 {
                let _ = file.borrow_mut().flush();
            }
        },
        &|it| {
            if it % 10 == 0 || it + 1 == cfg.warmup + cfg.draws {
                progress(c, it);
            }
        },
    );
    match result {
        Ok(r) => {
            out.step_size = r.step_size;
            out.inv_metric = r.inv_metric;
            out.seconds_warmup = r.seconds_warmup;
            out.seconds_sampling = r.seconds_sampling;
            out.grad_evals = r.grad_evals;
            out.stopped = r.stopped;
            out.restarts = r.restarts;
            let _ = stan_csv::write_timing(&mut *file.borrow_mut(), out.seconds_warmup, out.seconds_sampling);
        }
        Err(e) => out.error = Some(e),
    }
    let _ = file.borrow_mut().flush();
    out.generated_failures = interp.generated_failures().clone();
    out
}

/// What one chain does, independent of where its density comes from.
#[derive(Clone, Debug)]
pub struct Settings {
    pub method: Method,
    pub warmup: usize,
    pub draws: usize,
    pub max_depth: usize,
    pub adapt_delta: f64,
    pub dense: bool,
    pub hmc_steps: usize,
}

/// What the sampler settled on.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub step_size: f64,
    pub inv_metric: Vec<f64>,
    pub seconds_warmup: f64,
    pub seconds_sampling: f64,
    pub grad_evals: usize,
    pub stopped: bool,
    /// The random starts given up because the chain could not get going from them.
    pub restarts: Vec<Restart>,
}

/// A random start given up.
#[derive(Clone, Copy, Debug)]
pub struct Restart {
    /// The log density at the start.
    pub start_logp: f64,
    /// Warmup iterations run from it.
    pub iterations: usize,
    /// The step size after them.
    pub step_size: f64,
}

/// A chain that cannot get going from a random start (no move at all, or a step size below the
/// resolution of its position) after 25, 50 or 75 warmup iterations begins again from another,
/// at most five times.
pub const STUCK_START: usize = 25;
pub const MAX_RESTARTS: usize = 5;

/// Run one chain on any density: find an initial point, warm up (adapting step size and
/// metric), then sample, calling `on_draw(density, state, stats, iteration)` for each draw.
/// `Err` when no initial point with a finite density is found.
#[allow(clippy::type_complexity)]
pub fn sample<D: LogDensity>(
    density: &mut D,
    s: &Settings,
    seed: u64,
    init: Option<crate::ir::point::Init>,
    on_adapted: &mut dyn FnMut(f64, &[f64], &[Restart]),
    on_draw: &mut dyn FnMut(&mut D, &State, &Stats, usize),
    progress: &dyn Fn(usize),
) -> Result<Outcome, String> {
    let dim = density.dim();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut sampler = Sampler::new(
        density,
        rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(1)),
        Metric::unit(dim),
        1.0,
        s.max_depth,
    );
    let mut restarts = Vec::new();
    let mut stopped = false;
    let (mut z, step) = 'start: loop {
        let mut z = initial_state(&mut sampler, &mut rng, init.as_ref())?;
        let start_logp = z.logp;
        // Warmup.
        sampler.metric = Metric::unit(dim);
        sampler.step_size = 1.0;
        let mut step = StepSizeAdapter::new(s.adapt_delta);
        let mut windows = Windows::new(s.warmup);
        let mut moments = Moments::new(dim, s.dense);
        let mut buffer = Moments::new(dim, false);
        if s.warmup > 0 {
            sampler.init_step_size(&z);
        }
        step.restart(sampler.step_size);
        let mut moved = false;
        for it in 0..s.warmup {
            if STOP.load(Ordering::Relaxed) {
                stopped = true;
                break;
            }
            let before = (!moved).then(|| z.q.clone());
            let st = transition(&mut sampler, &mut z, s);
            moved = moved || before.is_some_and(|q| q != z.q);
            // A random start where the chain cannot get going: no transition has moved it, or
            // the step size has fallen so far that a leapfrog step changes no coordinate beyond
            // the last few bits. The density there is so curved (an MA recursion that explodes,
            // an overflow at the edge of a transform) that the step size adapts towards zero and
            // the chain would stay for good. Start again elsewhere: the draws do not depend on
            // a warmup that is thrown away.
            if (it + 1) % STUCK_START == 0
                && it < 3 * STUCK_START
                && init.as_ref().is_none_or(|i| !i.complete())
                && restarts.len() < MAX_RESTARTS
                && (!moved || frozen(sampler.step_size, &sampler.metric.diagonal(), &z.q))
            {
                restarts.push(Restart { start_logp, iterations: it + 1, step_size: sampler.step_size });
                continue 'start;
            }
            sampler.step_size = step.learn(st.accept_stat);
            if windows.in_window() {
                moments.add(&z.q);
            }
            if !s.dense && it < windows.init_buffer() {
                // The initial buffer: a diagonal estimate from the last few draws every
                // EARLY_UPDATE iterations (infer::adapt), so that the trees of the rest of the
                // buffer and of the first window are not those of the unit metric. Not for the
                // dense metric, whose first window estimates the scales anyway (and which ran
                // slower with it: diamonds' ESS per second halved).
                buffer.add(&z.q);
                if (it + 1) % EARLY_UPDATE == 0 && it + 1 < windows.init_buffer() {
                    let before = sampler.metric.diagonal();
                    sampler.metric = Metric::Diag(buffer.regularised(&before));
                    buffer.reset();
                    if changed_much(&before, &sampler.metric.diagonal()) {
                        sampler.init_step_size(&z);
                        step.restart(sampler.step_size);
                    }
                }
            }
            if windows.step() {
                let before = sampler.metric.diagonal();
                let est = moments.regularised(&before);
                sampler.metric = if s.dense {
                    Metric::dense(est).unwrap_or_else(|| sampler.metric.clone())
                } else {
                    Metric::Diag(est)
                };
                moments.reset();
                // A new step size search and a fresh dual averaging when the metric changed much
                // (as the first estimate after the unit metric usually does); otherwise the
                // averaging runs on (infer::adapt).
                if changed_much(&before, &sampler.metric.diagonal()) {
                    sampler.init_step_size(&z);
                    step.restart(sampler.step_size);
                }
            }
            progress(it);
        }
        break (z, step);
    };
    if s.warmup > 0 {
        sampler.step_size = step.final_step_size();
    }
    let inv_metric = sampler.metric.diagonal();
    let seconds_warmup = start.elapsed().as_secs_f64();
    on_adapted(sampler.step_size, &inv_metric, &restarts);
    // Sampling.
    let sampling = Instant::now();
    for it in 0..s.draws {
        if stopped || STOP.load(Ordering::Relaxed) {
            stopped = true;
            break;
        }
        let st = transition(&mut sampler, &mut z, s);
        on_draw(&mut *sampler.density, &z, &st, it);
        progress(s.warmup + it);
    }
    Ok(Outcome {
        step_size: sampler.step_size,
        inv_metric,
        seconds_warmup,
        seconds_sampling: sampling.elapsed().as_secs_f64(),
        grad_evals: sampler.grad_evals,
        stopped,
        restarts,
    })
}

/// How a chain's error begins when it found no point to start from.
pub const NO_INITIAL_POINT: &str = "no initial point with a finite log density was found";
/// Random starting points a chain tries before it gives up.
pub const INIT_TRIES: usize = 100;

/// The initial point: the one given, or uniform on (-2, 2), retried until the log density and
/// its gradient are finite.
fn initial_state<D: LogDensity, R: rand::Rng>(
    sampler: &mut Sampler<D, R>,
    rng: &mut impl rand::Rng,
    init: Option<&crate::ir::point::Init>,
) -> Result<State, String> {
    let dim = sampler.density.dim();
    find_start(dim, init, rng, |q| match sampler.state_at(q) {
        Ok(st) if st.logp.is_finite() && st.grad.iter().all(|g| g.is_finite()) => Ok(Some(st)),
        Ok(_) => Ok(None),
        Err(e) => Err(e.message),
    })
    .map_err(|why| format!("{NO_INITIAL_POINT} ({why})"))
}

/// A starting point: the one given, or up to [`INIT_TRIES`] points with every coordinate not
/// given uniform on (−2, 2), the first at which `at` finds the log density and its gradient
/// finite (`Ok(Some(..))`; `Ok(None)` when they are not). `Err` says why the last point
/// failed.
pub fn find_start<T>(
    dim: usize,
    init: Option<&crate::ir::point::Init>,
    rng: &mut impl rand::Rng,
    mut at: impl FnMut(Vec<f64>) -> Result<Option<T>, String>,
) -> Result<T, String> {
    let mut last_err = String::new();
    for attempt in 0..INIT_TRIES {
        let q: Vec<f64> = match (init, attempt) {
            (Some(init), a) if a > 0 && init.complete() => break,
            _ => crate::ir::point::random_start(init, dim, rng),
        };
        match at(q) {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => last_err = "the log density or its gradient is not finite".into(),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// Whether a leapfrog step of `step_size` under the inverse metric `inv_metric` moves no
/// coordinate of `q` by more than 1e-10 of its magnitude (or of 1): over the rest of warmup
/// such a chain cannot leave where it is.
fn frozen(step_size: f64, inv_metric: &[f64], q: &[f64]) -> bool {
    q.iter().zip(inv_metric).all(|(q, v)| step_size * v.sqrt() < 1e-10 * q.abs().max(1.0))
}

/// Whether some coordinate's variance in the metric moved by more than a factor of 3 (the
/// step size it allows by more than √3).
fn changed_much(before: &[f64], after: &[f64]) -> bool {
    // A ratio that is not a number (a variance of zero or infinity) counts as a large change.
    before.iter().zip(after).any(|(b, a)| {
        let r = (a / b).ln().abs();
        r.is_nan() || r > 3f64.ln()
    })
}

fn transition<D: LogDensity + ?Sized, R: rand::Rng>(s: &mut Sampler<D, R>, z: &mut State, set: &Settings) -> Stats {
    match set.method {
        Method::Nuts => s.nuts(z),
        Method::Hmc => s.hmc(z, set.hmc_steps),
    }
}
