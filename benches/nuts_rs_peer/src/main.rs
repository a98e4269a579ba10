//! bnnc's NUTS against nuts-rs (the Rust NUTS behind nutpie), on the same compiled density.
//!
//! For each posteriordb model, bnnc compiles the log density once (`bnnc::jit::Jit`) and
//! both samplers draw from that very object, through a thin wrapper that counts gradient
//! evaluations. So the two differ only in the sampler: trajectory building, step-size and
//! mass-matrix adaptation, initialisation. Each runs 4 chains of 1000 warmup + 1000 draws
//! with a diagonal mass matrix, target acceptance 0.8, maximum tree depth 10 (bnnc's CLI
//! defaults; nuts-rs's `DiagNutsSettings::default()` with 1000 tuning draws).
//!
//! What is measured, per model and sampler:
//! - gradient evaluations: every call of the log density with its gradient, over all
//!   chains, warmup and initialisation included (each call computes both);
//! - the minimum over coordinates of the rank-normalised bulk ESS over the 4 chains,
//!   computed by bnnc's own `summary::stats::summarise` (ArviZ's `ess_bulk`) for both;
//! - min bulk ESS per 1000 gradient evaluations, the cost-independent efficiency, and the
//!   ratio of bnnc's to nuts-rs's (above 1: bnnc needs fewer gradients per effective draw);
//! - wall seconds (chains run one after another, compilation excluded; after warmup nuts-rs
//!   also extracts each draw's stats, as nutpie does). Other load on the machine changes this
//!   column but not the ones above.
//!
//! A second table shows how each sampler behaves after warmup (step size, tree depth, leapfrog
//! steps, the realised acceptance statistic against the 0.8 target, divergences, R-hat), which
//! is where differences in efficiency come from. The runs are deterministic for a given build,
//! but a single seed: the minimum ESS over coordinates varies by some tens of percent with it.
//!
//! Why unconstrained coordinates: they are what both samplers actually see and return
//! (nuts-rs knows nothing of bnnc's constraining transforms), and they are the coordinates
//! in which HMC's mixing is determined. The bulk ESS is invariant under monotone maps of a
//! single coordinate (it is rank based), so for scalar parameters with elementwise
//! transforms (`exp`, logistic) it equals the constrained parameter's bulk ESS anyway.
//!
//! Run: `cargo run --release --manifest-path benches/nuts_rs_peer/Cargo.toml -- [models...]`
//! where a model is a posteriordb directory name under `data/posteriordb` (of this
//! repository; `POSTERIORDB` overrides) or a path to a directory holding `model.bnn`
//! and `data.json`. `--no-grad-metric` makes nuts-rs estimate its mass matrix from the draws'
//! variance alone, as bnnc does, instead of its default mix of draw and gradient variances.

use bnnc::density::{EvalError, LogDensity};
use bnnc::infer::run::{sample, Method, Settings};
use bnnc::jit::Jit;
use bnnc::summary::stats::summarise;
use nuts_rs::{
    Chain, CpuLogpFunc, CpuMath, CpuMathError, DiagNutsSettings, HasDims, LogpError, Settings as _, Storable as _,
    Value,
};
use rand::{RngExt, SeedableRng};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const CHAINS: usize = 4;
const WARMUP: usize = 1000;
const DRAWS: usize = 1000;
/// The default seed; `--seed N` replaces it (the minimum ESS varies with it, so a claim
/// about one sampler against the other should rest on several).
const SEED: u64 = 20_251_122;

fn seed() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == "--seed").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(SEED)
}
/// The same as nuts-rs's defaults, so both samplers aim at the same target.
const MAX_DEPTH: usize = 10;
const ADAPT_DELTA: f64 = 0.8;

const DEFAULT_MODELS: [&str; 6] = [
    "eight_schools-eight_schools_noncentered",
    "kidiq-kidscore_momiq",
    "arK-arK",
    "garch-garch11",
    "low_dim_gauss_mix-low_dim_gauss_mix",
    "sblrc-blr",
];

/// The compiled density with a gradient-evaluation counter. Both samplers are handed this
/// same type: bnnc through `LogDensity`, nuts-rs through `CpuLogpFunc`. The counter is
/// borrowed so that it can be read after nuts-rs has taken the wrapper by value.
struct Counted<'j, 'p> {
    jit: &'j mut Jit<'p>,
    evals: &'j Cell<u64>,
}

impl LogDensity for Counted<'_, '_> {
    fn dim(&self) -> usize {
        LogDensity::dim(&*self.jit)
    }

    fn logp_grad(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<f64, EvalError> {
        self.evals.set(self.evals.get() + 1);
        self.jit.logp_grad(theta, grad)
    }
}

/// bnnc's evaluation error as nuts-rs's: a recoverable one (a proposal where the density
/// is not finite) becomes a divergence in nuts-rs, as it does in bnnc; any other stops the
/// chain.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message)]
struct LogpFailure(EvalError);

impl LogpError for LogpFailure {
    fn is_recoverable(&self) -> bool {
        self.0.recoverable
    }
}

impl HasDims for Counted<'_, '_> {
    /// nuts-rs names the position vector's dimension `unconstrained_parameter` in its stats.
    fn dim_sizes(&self) -> HashMap<String, u64> {
        HashMap::from([("unconstrained_parameter".to_string(), LogDensity::dim(self) as u64)])
    }
}

impl CpuLogpFunc for Counted<'_, '_> {
    type LogpError = LogpFailure;
    /// Only used by nuts-rs's normalising-flow adaptation, which is not used here.
    type FlowParameters = ();
    /// What nuts-rs stores per draw besides the position; we read positions directly.
    type ExpandedVector = Vec<f64>;

    fn dim(&self) -> usize {
        LogDensity::dim(self)
    }

    fn logp(&mut self, position: &[f64], gradient: &mut [f64]) -> Result<f64, LogpFailure> {
        match self.logp_grad(position, gradient) {
            Ok(v) if v.is_finite() => Ok(v),
            // bnnc's sampler also rejects a non-finite value (at initialisation) or treats it
            // as a divergence; say so explicitly rather than hand nuts-rs an infinity.
            Ok(v) => Err(LogpFailure(EvalError::recoverable(format!("the log density is {v}")))),
            Err(e) => Err(LogpFailure(e)),
        }
    }

    fn expand_vector<R: rand::Rng + ?Sized>(
        &mut self,
        _rng: &mut R,
        position: &[f64],
    ) -> Result<Vec<f64>, CpuMathError> {
        Ok(position.to_vec())
    }
}

/// One chain's draws (unconstrained positions after warmup) and cost.
struct ChainRun {
    draws: Vec<Vec<f64>>,
    grad_evals: u64,
    seconds: f64,
    /// The step size used for sampling (nuts-rs jitters it per draw by default: the mean).
    step_size: f64,
    /// Leapfrog steps over the draws (warmup excluded).
    leapfrog: u64,
    /// Sums over the draws of the acceptance statistic the step size is adapted to (the
    /// mean over the tree of min(1, exp(-energy error))) and of the tree depth.
    accept: f64,
    depth: u64,
    divergences: usize,
}

/// A fixed mix of the run's seed and the chain number (splitmix64).
fn chain_seed(seed: u64, chain: usize) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(chain as u64 + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One chain of bnnc's NUTS, exactly as `bnnc sample` runs it (diagonal metric), except that
/// the draws are the unconstrained positions.
fn run_bnnc(jit: &mut Jit, chain: usize) -> Result<ChainRun, String> {
    let evals = Cell::new(0);
    let mut density = Counted { jit, evals: &evals };
    let settings = Settings {
        method: Method::Nuts,
        warmup: WARMUP,
        draws: DRAWS,
        max_depth: MAX_DEPTH,
        adapt_delta: ADAPT_DELTA,
        dense: false,
        hmc_steps: 0, // static HMC only
    };
    let (mut draws, mut leapfrog, mut divergences) = (Vec::with_capacity(DRAWS), 0u64, 0usize);
    let (mut accept, mut depth) = (0.0, 0u64);
    let start = Instant::now();
    let out = sample(
        &mut density,
        &settings,
        chain_seed(seed(), chain),
        None, // uniform on (-2, 2), as Stan does
        &mut |_, _, _| {},
        &mut |_, z, st, _| {
            draws.push(z.q.clone());
            leapfrog += st.n_leapfrog as u64;
            divergences += st.divergent as usize;
            accept += st.accept_stat;
            depth += st.tree_depth as u64;
        },
        &|_| {},
    )?;
    let seconds = start.elapsed().as_secs_f64();
    if out.grad_evals as u64 != evals.get() {
        eprintln!("note: bnnc reports {} gradient evaluations, the wrapper counted {}", out.grad_evals, evals.get());
    }
    Ok(ChainRun {
        draws,
        grad_evals: evals.get(),
        seconds,
        step_size: out.step_size,
        leapfrog,
        accept,
        depth,
        divergences,
    })
}

/// One chain of nuts-rs with its default diagonal-mass-matrix settings.
/// `grad_metric`: nuts-rs's default mass-matrix estimate, which mixes the draws' variance with
/// the gradients' (sqrt(var(x) / var(∇logp))); false estimates it from the draws alone, as
/// Stan and bnnc do.
fn run_nuts_rs(jit: &mut Jit, chain: usize, grad_metric: bool) -> Result<ChainRun, String> {
    let evals = Cell::new(0);
    let dim = LogDensity::dim(&*jit);
    let mut settings =
        DiagNutsSettings { num_tune: WARMUP as u64, num_draws: DRAWS as u64, ..DiagNutsSettings::default() };
    settings.adapt_options.mass_matrix_options.use_grad_based_estimate = grad_metric;
    // The defaults match bnnc's settings; fail loudly should a nuts-rs release change them.
    assert_eq!(
        (settings.maxdepth as usize, settings.adapt_options.step_size_settings.target_accept),
        (MAX_DEPTH, ADAPT_DELTA)
    );
    // Its own seed stream, so that the two samplers' initial points are not tied together.
    let mut rng = rand::rngs::StdRng::seed_from_u64(chain_seed(seed() ^ 0x6e75_7473, chain));
    let start = Instant::now();
    let math = CpuMath::new(Counted { jit, evals: &evals });
    let mut sampler = settings.new_chain(chain as u64, math, &mut rng).map_err(|e| e.to_string())?;
    // Initial point: uniform on (-2, 2), retried until the density is finite (as bnnc).
    let mut init = Err(String::new());
    for _ in 0..100 {
        let q: Vec<f64> = (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect();
        init = sampler.set_position(&q).map_err(|e| e.to_string());
        if init.is_ok() {
            break;
        }
    }
    init.map_err(|e| format!("no initial point with a finite log density was found ({e})"))?;
    let (mut draws, mut leapfrog, mut divergences, mut step_sum) = (Vec::with_capacity(DRAWS), 0, 0, 0.0);
    let (mut grads_reported, mut tuning_draws, mut accept, mut depth) = (0, 0, 0.0, 0);
    for it in 0..WARMUP + DRAWS {
        if it < WARMUP {
            let (_, progress) = sampler.draw().map_err(|e| e.to_string())?;
            grads_reported += progress.num_gradients;
            tuning_draws += progress.tuning as usize;
            continue;
        }
        // After warmup, also the draw's stats (as nutpie stores them) for the diagnostics.
        let (position, _, mut stats, progress) = sampler.expanded_draw().map_err(|e| e.to_string())?;
        grads_reported += progress.num_gradients;
        tuning_draws += progress.tuning as usize;
        let dims = From::from(&*sampler.math());
        for (name, value) in stats.get_all(&dims) {
            match (name, value) {
                ("mean_tree_accept", Some(Value::ScalarF64(a))) => accept += a,
                ("depth", Some(Value::ScalarU64(d))) => depth += d,
                _ => {}
            }
        }
        draws.push(position.into_vec());
        leapfrog += progress.num_steps;
        divergences += progress.diverging as usize;
        step_sum += progress.step_size;
    }
    let seconds = start.elapsed().as_secs_f64();
    if tuning_draws != WARMUP {
        eprintln!("note: nuts-rs tuned for {tuning_draws} draws, not {WARMUP}");
    }
    // nuts-rs's own count covers the trajectories only, not initialisation.
    if grads_reported > evals.get() {
        eprintln!("note: nuts-rs reports {grads_reported} gradient evaluations, the wrapper counted {}", evals.get());
    }
    let step_size = step_sum / draws.len() as f64;
    Ok(ChainRun { draws, grad_evals: evals.get(), seconds, step_size, leapfrog, accept, depth, divergences })
}

/// What a sampler achieved on a model, over all chains.
struct Result4 {
    grad_evals: u64,
    min_ess: f64,
    seconds: f64,
    /// Mean over chains of the sampling step size.
    step_size: f64,
    leapfrog_per_draw: f64,
    accept: f64,
    depth: f64,
    divergences: usize,
    max_rhat: f64,
}

impl Result4 {
    fn ess_per_1k(&self) -> f64 {
        1000.0 * self.min_ess / self.grad_evals as f64
    }

    /// Minimum ESS per 1000 leapfrog steps after warmup: the sampler's efficiency once
    /// adapted, without the cost of warmup.
    fn ess_per_1k_sampling(&self) -> f64 {
        1000.0 * self.min_ess / (self.leapfrog_per_draw * (CHAINS * DRAWS) as f64)
    }
}

/// Minimum bulk ESS and maximum R-hat over the unconstrained coordinates. A coordinate
/// that never moved (ESS undefined) counts as 0 effective draws.
fn diagnostics(chains: &[ChainRun]) -> (f64, f64) {
    let dim = chains[0].draws.first().map_or(0, Vec::len);
    let (mut min_ess, mut max_rhat) = (f64::INFINITY, 0.0f64);
    for k in 0..dim {
        let per_chain: Vec<Vec<f64>> = chains.iter().map(|c| c.draws.iter().map(|d| d[k]).collect()).collect();
        let s = summarise(&per_chain);
        min_ess = min_ess.min(if s.ess_bulk.is_nan() { 0.0 } else { s.ess_bulk });
        // NaN (undefined) stays NaN: `f64::max` would drop it.
        max_rhat = if s.rhat.is_nan() || max_rhat.is_nan() { f64::NAN } else { max_rhat.max(s.rhat) };
    }
    (min_ess, max_rhat)
}

fn run_sampler(
    name: &str,
    model: &str,
    jit: &mut Jit,
    run: &dyn Fn(&mut Jit, usize) -> Result<ChainRun, String>,
) -> Result<Result4, String> {
    let mut chains = Vec::with_capacity(CHAINS);
    for c in 0..CHAINS {
        eprint!("\r{model}: {name} chain {}/{CHAINS}   ", c + 1);
        chains.push(run(jit, c)?);
    }
    eprintln!();
    let (min_ess, max_rhat) = diagnostics(&chains);
    let n = CHAINS as f64;
    Ok(Result4 {
        grad_evals: chains.iter().map(|c| c.grad_evals).sum(),
        min_ess,
        seconds: chains.iter().map(|c| c.seconds).sum(),
        step_size: chains.iter().map(|c| c.step_size).sum::<f64>() / n,
        leapfrog_per_draw: chains.iter().map(|c| c.leapfrog).sum::<u64>() as f64 / (n * DRAWS as f64),
        accept: chains.iter().map(|c| c.accept).sum::<f64>() / (n * DRAWS as f64),
        depth: chains.iter().map(|c| c.depth).sum::<u64>() as f64 / (n * DRAWS as f64),
        divergences: chains.iter().map(|c| c.divergences).sum(),
        max_rhat,
    })
}

fn model_dir(arg: &str) -> PathBuf {
    let p = Path::new(arg);
    if p.join("model.bnn").exists() {
        return p.to_path_buf();
    }
    let root = std::env::var_os("POSTERIORDB")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/posteriordb"));
    root.join(arg)
}

struct Row {
    model: String,
    dim: usize,
    outcome: Result<(Result4, Result4), String>,
}

fn bench_model(arg: &str, grad_metric: bool) -> Row {
    let dir = model_dir(arg);
    let (model, data) = (dir.join("model.bnn"), dir.join("data.json"));
    let data = data.exists().then_some(data);
    let mut fe = bnnc::driver::frontend_file(&model);
    let Some(program) = fe.program(&model, data.as_deref()) else {
        let shown = bnnc::diag::render(&fe.diags, &fe.sources, bnnc::diag::Format::Human { color: false });
        return Row { model: arg.into(), dim: 0, outcome: Err(format!("does not compile:\n{shown}")) };
    };
    let dim = program.dim();
    let outcome = (|| {
        let mut jit = Jit::new(&program)?;
        let b = run_sampler("bnnc", arg, &mut jit, &run_bnnc)?;
        let n = run_sampler("nuts-rs", arg, &mut jit, &|j, c| run_nuts_rs(j, c, grad_metric))?;
        Ok((b, n))
    })();
    Row { model: arg.into(), dim, outcome }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `--no-grad-metric`: nuts-rs estimates its diagonal mass matrix from the draws'
    // variance only (as bnnc does), to separate that choice from the rest of the sampler.
    let grad_metric = !args.iter().any(|a| a == "--no-grad-metric");
    args.retain(|a| a != "--no-grad-metric");
    if let Some(i) = args.iter().position(|a| a == "--seed") {
        args.drain(i..(i + 2).min(args.len()));
    }
    let models: Vec<String> =
        if args.is_empty() { DEFAULT_MODELS.iter().map(|s| s.to_string()).collect() } else { args };
    let rows: Vec<Row> = models.iter().map(|m| bench_model(m, grad_metric)).collect();

    println!(
        "\n{CHAINS} chains × ({WARMUP} warmup + {DRAWS} draws), diagonal metric, seed {}, nuts-rs mass matrix from {}. \
         grads: gradient evaluations over all chains, warmup included; ESS: minimum over \
         unconstrained coordinates of the bulk ESS; ratio: (bnnc ESS/grad) / (nuts-rs ESS/grad); \
         ratio after warmup: the same with the leapfrog steps of the draws only.\n",
        seed(),
        if grad_metric { "draws and gradients (its default)" } else { "draws only (--no-grad-metric)" }
    );
    println!(
        "| model | dim | bnnc grads | bnnc min ESS | bnnc ESS/1k grads | bnnc s | nuts-rs grads | nuts-rs min ESS | nuts-rs ESS/1k grads | nuts-rs s | ratio | ratio after warmup |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        match &r.outcome {
            Ok((b, n)) => println!(
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.model,
                r.dim,
                b.grad_evals,
                b.min_ess,
                b.ess_per_1k(),
                b.seconds,
                n.grad_evals,
                n.min_ess,
                n.ess_per_1k(),
                n.seconds,
                b.ess_per_1k() / n.ess_per_1k(),
                b.ess_per_1k_sampling() / n.ess_per_1k_sampling()
            ),
            Err(e) => println!("| {} | {} | failed: {} |", r.model, r.dim, e.lines().next().unwrap_or("")),
        }
    }
    println!(
        "\nSampler behaviour after warmup (averages over chains and draws; grads/iteration counts \
         warmup too; accept stat: the statistic the step size is adapted to, target {ADAPT_DELTA}):\n"
    );
    println!(
        "| model | sampler | step size | tree depth | leapfrog/draw | grads/iteration | accept stat | divergences | max R-hat |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        if let Ok((b, n)) = &r.outcome {
            for (name, s) in [("bnnc", b), ("nuts-rs", n)] {
                println!(
                    "| {} | {name} | {:.3} | {:.2} | {:.1} | {:.1} | {:.3} | {} | {:.3} |",
                    r.model,
                    s.step_size,
                    s.depth,
                    s.leapfrog_per_draw,
                    s.grad_evals as f64 / (CHAINS * (WARMUP + DRAWS)) as f64,
                    s.accept,
                    s.divergences,
                    s.max_rhat
                );
            }
        }
    }
    for r in &rows {
        if let Err(e) = &r.outcome {
            eprintln!("{}: {e}", r.model);
        }
    }
}
