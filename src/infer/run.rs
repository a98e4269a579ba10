//! Running chains: initialisation, warmup with adaptation, sampling, and streaming each
//! draw to its chain's CSV file as it is made. Chains run on threads; each has its own
//! generator seeded from (seed, chain), so results do not depend on the thread count. A
//! stop request (Ctrl-C) ends every chain after its current iteration, keeping its draws.

use crate::infer::adapt::{Moments, StepSizeAdapter, Windows};
use crate::infer::density::LogDensity;
use crate::infer::nuts::{Metric, Sampler, State, Stats};
use crate::ir::interp::Interp;
use crate::ir::Program;
use crate::summary::stan_csv;
use rand::{RngExt, SeedableRng};
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
    pub init: Option<Vec<f64>>,
    pub out_dir: PathBuf,
    pub model_name: String,
    pub data_file: String,
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
}

/// Set by the Ctrl-C handler; chains stop after their current iteration.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The seed of chain `c`: a fixed mix of the run's seed and the chain number.
fn chain_seed(seed: u64, c: usize) -> u64 {
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
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Chain { error: Some("the chain's thread failed".into()), ..Chain::default() }))
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
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut interp = Interp::new(p);
    interp.seed(seed ^ 0x5DEE_CE66);
    let dim = interp.dim();
    let mut out = Chain::default();
    // The draws file, written as the chain goes.
    let path = cfg.out_dir.join(format!("draws-{}.csv", c + 1));
    let mut file = match std::fs::File::create(&path) {
        Ok(f) => BufWriter::new(f),
        Err(e) => {
            out.error = Some(format!("cannot write `{}`: {e}", path.display()));
            return out;
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

    // Initial point: the one given, or uniform on (-2, 2), retried until finite.
    let start = Instant::now();
    let mut sampler = Sampler::new(
        &mut interp,
        rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(1)),
        Metric::unit(dim),
        1.0,
        cfg.max_depth,
    );
    let mut z: Option<State> = None;
    let mut last_err = String::new();
    for attempt in 0..100 {
        let q: Vec<f64> = match (&cfg.init, attempt) {
            (Some(init), 0) => init.clone(),
            (Some(_), _) => break,
            (None, _) => (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect(),
        };
        match sampler.state_at(q) {
            Ok(s) if s.logp.is_finite() && s.grad.iter().all(|g| g.is_finite()) => {
                z = Some(s);
                break;
            }
            Ok(_) => last_err = "the log density or its gradient is not finite".into(),
            Err(e) => last_err = e.message,
        }
    }
    let Some(mut z) = z else {
        out.error = Some(format!("no initial point with a finite log density was found ({last_err})"));
        return out;
    };

    // Warmup.
    let mut step = StepSizeAdapter::new(cfg.adapt_delta);
    let mut windows = Windows::new(cfg.warmup);
    let mut moments = Moments::new(dim, cfg.dense);
    if cfg.warmup > 0 {
        sampler.init_step_size(&z);
    }
    step.restart(sampler.step_size);
    for it in 0..cfg.warmup {
        if STOP.load(Ordering::Relaxed) {
            out.stopped = true;
            break;
        }
        let st = transition(&mut sampler, &mut z, cfg);
        sampler.step_size = step.learn(st.accept_stat);
        if windows.in_window() {
            moments.add(&z.q);
        }
        if windows.step() {
            let est = moments.regularised();
            sampler.metric = if cfg.dense {
                Metric::dense(est).unwrap_or_else(|| sampler.metric.clone())
            } else {
                Metric::Diag(est)
            };
            moments.reset();
            sampler.init_step_size(&z);
            step.restart(sampler.step_size);
        }
        if it % 50 == 0 {
            progress(c, it);
        }
    }
    if cfg.warmup > 0 {
        sampler.step_size = step.final_step_size();
    }
    out.step_size = sampler.step_size;
    out.inv_metric = sampler.metric.diagonal();
    out.seconds_warmup = start.elapsed().as_secs_f64();
    let _ = stan_csv::write_adaptation(&mut file, out.step_size, &out.inv_metric);

    // Sampling.
    let sampling = Instant::now();
    let mut row = Vec::with_capacity(7 + names.len());
    for it in 0..cfg.draws {
        if out.stopped || STOP.load(Ordering::Relaxed) {
            out.stopped = true;
            break;
        }
        let st = transition(&mut sampler, &mut z, cfg);
        let values: Vec<f64> = match sampler.density.constrained(&z.q, true) {
            Ok(v) => v.into_iter().flat_map(|(_, _, x)| x).collect(),
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
        let _ = stan_csv::write_row(&mut file, &row);
        out.draws.push(values);
        out.stats.push(st);
        if it % 50 == 0 {
            progress(c, cfg.warmup + it);
            let _ = file.flush();
        }
    }
    out.seconds_sampling = sampling.elapsed().as_secs_f64();
    out.grad_evals = sampler.grad_evals;
    let _ = stan_csv::write_timing(&mut file, out.seconds_warmup, out.seconds_sampling);
    let _ = file.flush();
    out
}

fn transition<D: LogDensity + ?Sized, R: rand::Rng>(s: &mut Sampler<D, R>, z: &mut State, cfg: &Config) -> Stats {
    match cfg.method {
        Method::Nuts => s.nuts(z),
        Method::Hmc => s.hmc(z, cfg.hmc_steps),
    }
}
