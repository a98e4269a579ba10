//! `run --method swag`: SWA-Gaussian (Maddox et al. 2019). A posterior mode found on
//! minibatches (as `map --batch-size`, stopped early on held-out rows) starts SGD with momentum
//! at a constant learning rate; the iterate after each of `--swag-epochs` epochs updates the
//! running mean θ̄ and second moment of the unconstrained vector, and the last K deviations
//! θᵢ − θ̄ᵢ are kept. Draws are θ̄ + Σ_diag^{1/2} z₁ / √2 + D z₂ / √(2(K − 1)), mapped to the
//! constrained space.

use crate::compiled::CompiledModel;
use crate::diag::Format;
use crate::driver::Frontend;
use crate::infer::minibatch::{self, Mode, Programs};
use crate::infer::run::Config;
use crate::ir::Program;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::path::Path;

pub struct Options {
    /// The pretraining's (as `map --batch-size`).
    pub modes: crate::methods::modes::Options,
    pub swag_epochs: usize,
    /// SGD's learning rate on the mean log density per training row; chosen when `None`.
    pub swag_lr: Option<f64>,
    pub rank: usize,
    pub output_draws: usize,
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    fe: &mut Frontend,
    model: &Path,
    data: Option<&Path>,
    program: &Program,
    cfg: &Config,
    o: &Options,
    all: bool,
    format: Format,
) -> i32 {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(cfg.seed);
    let t = std::time::Instant::now();
    let (setup, mode) = match crate::methods::modes::pretrain(fe, model, data, program, cfg, &o.modes, &mut rng, format)
    {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (b, n) = (setup.batch_size, setup.train_rows.len());
    eprintln!("swag: the mode after {} epochs (kept epoch {})", mode.run.epochs.len(), mode.run.best_epoch);

    // The SWA phase: SGD with momentum from the mode, moments after every epoch.
    let compile = |p| CompiledModel::new(p, cfg.backend).map(|c| c.without_jacobian());
    let (full, last, mut density) =
        match (compile(&setup.full), setup.last.as_ref().map(compile).transpose(), compile(program)) {
            (Ok(f), Ok(l), Ok(d)) => (f, l, d),
            (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
                eprintln!("error: internal compiler error: {e} (`--backend interp` runs without compiling)");
                return 2;
            }
        };
    let mut progs = Programs { full, full_program: &setup.full, last: last.zip(setup.last.as_ref()) };
    let dim = program.dim();
    // The mode's objective (the scaled log density of a batch, averaged over its best epoch).
    let at_mode = mode.run.epochs.iter().find(|e| e.epoch == mode.run.best_epoch).map_or(f64::NAN, |e| e.objective);
    let rates: Vec<f64> = match o.swag_lr {
        Some(lr) => vec![lr],
        None => LEARNING_RATES.to_vec(),
    };
    let mut srng = rand::rngs::SmallRng::seed_from_u64(crate::infer::run::chain_seed(cfg.seed, 1));
    let mut chosen = None;
    let mut tried = Vec::new();
    for &lr in &rates {
        let phase = swa_phase(&mut progs, &setup, &mode.run.x, o, lr, n, &mut srng);
        // Iterates that stay among the posterior's bulk.
        let (ok, why) = match &phase {
            Ok((_, mean_objective)) if crate::methods::batches::within_bulk(at_mode - mean_objective, dim) => {
                (true, String::new())
            }
            Ok((_, mean_objective)) => (
                false,
                format!("at lr {lr} the iterates' log density fell {:.3e} below the mode's", at_mode - mean_objective),
            ),
            Err(e) => (false, format!("at lr {lr}: {e}")),
        };
        if ok || o.swag_lr.is_some() {
            if !ok {
                eprintln!("warning: {why}; the SWAG covariance is too wide; try a smaller --swag-lr");
            }
            match phase {
                Ok((m, _)) => chosen = Some((lr, m)),
                Err(e) => {
                    eprintln!("error: SWAG's SGD phase failed: {e}; a smaller --swag-lr may help");
                    return 3;
                }
            }
            break;
        }
        tried.push(why);
    }
    let Some((lr, Moments { mean, sq, deviations, count })) = chosen else {
        eprintln!(
            "error: SWAG's SGD phase left the mode at every learning rate tried ({}); give --swag-lr",
            tried.join("; ")
        );
        return 3;
    };
    if count < 2 {
        eprintln!("error: SWAG needs at least two epochs of its SGD phase to estimate a covariance");
        return 3;
    }
    // Draws from the SWAG Gaussian.
    let k = deviations.len();
    let diag: Vec<f64> = (0..dim).map(|j| (sq[j] - mean[j] * mean[j]).max(1e-30).sqrt()).collect();
    let mut rows = Vec::with_capacity(o.output_draws);
    let mut theta = vec![0.0; dim];
    for _ in 0..o.output_draws * 10 {
        if rows.len() == o.output_draws {
            break;
        }
        for j in 0..dim {
            let z: f64 = StandardNormal.sample(&mut srng);
            theta[j] = mean[j] + diag[j] * z / std::f64::consts::SQRT_2;
        }
        if k > 1 {
            let scale = 1.0 / (2.0 * (k - 1) as f64).sqrt();
            for d in &deviations {
                let z: f64 = StandardNormal.sample(&mut srng);
                theta.iter_mut().zip(d).for_each(|(t, d)| *t += scale * z * d);
            }
        }
        let Ok(v) = density.constrained(&theta, true) else { continue };
        let lp = density.eval(&theta).map(|e| e.logp).unwrap_or(f64::NAN);
        rows.push([vec![lp], v.into_iter().flat_map(|(_, _, x)| x).collect()].concat());
    }
    if rows.is_empty() {
        eprintln!("error: no SWAG draw could be mapped to the constrained space");
        return 3;
    }
    let seconds = t.elapsed().as_secs_f64();
    eprintln!("swag: {count} iterates of SGD at lr {lr} collected, rank {k}, {seconds:.1} s");
    let record = serde_json::json!({
        "swag": {
            "pretraining_epochs": mode.run.epochs.len(),
            "best_epoch": mode.run.best_epoch,
            "swag_epochs": count,
            "swag_lr": lr,
            "rank": k,
            "batch_size": b,
            "held_out_rows": setup.val_rows.len(),
            "seconds": seconds,
        }
    });
    let settings = vec![
        "swag".to_string(),
        format!("  swag_epochs = {count}"),
        format!("  swag_lr = {lr}"),
        format!("  rank = {k}"),
        format!("  batch_size = {b}"),
    ];
    let leading = ["lp__".to_string()];
    let draws = crate::methods::draws::Draws {
        method: "swag",
        csv_method: "swag",
        settings: &settings,
        leading: &leading,
        first_row: None,
        rows: &rows,
    };
    crate::methods::draws::write(program, cfg, &draws, record, Vec::new(), all)
}

/// Learning rates tried, largest first, when `--swag-lr` is not given.
const LEARNING_RATES: [f64; 7] = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8];

/// The running moments of the SWA iterates.
struct Moments {
    mean: Vec<f64>,
    sq: Vec<f64>,
    deviations: std::collections::VecDeque<Vec<f64>>,
    count: usize,
}

/// SGD with momentum from `start` at learning rate `lr` per row, the moments collected after
/// each epoch; with the mean objective over the epochs.
#[allow(clippy::too_many_arguments)]
fn swa_phase(
    progs: &mut Programs,
    setup: &crate::methods::batches::Setup,
    start: &[f64],
    o: &Options,
    lr: f64,
    n: usize,
    rng: &mut rand::rngs::SmallRng,
) -> Result<(Moments, f64), String> {
    let dim = start.len();
    let mut m = Moments { mean: vec![0.0; dim], sq: vec![0.0; dim], deviations: Default::default(), count: 0 };
    let mut collect = |x: &[f64]| -> Option<f64> {
        m.count += 1;
        let w = 1.0 / m.count as f64;
        for j in 0..dim {
            m.mean[j] += w * (x[j] - m.mean[j]);
            m.sq[j] += w * (x[j] * x[j] - m.sq[j]);
        }
        if m.deviations.len() == o.rank {
            m.deviations.pop_front();
        }
        m.deviations.push_back(x.iter().zip(&m.mean).map(|(a, b)| a - b).collect());
        None
    };
    let swa = minibatch::Settings {
        epochs: o.swag_epochs,
        batch_size: setup.batch_size,
        lr: lr / n as f64,
        schedule: minibatch::Schedule::Constant,
        sgd_momentum: Some(0.9),
        patience: usize::MAX,
        drop_path: o.modes.drop_path.unwrap_or((0.0, 0.0)),
    };
    let mut after: Option<&mut dyn FnMut(&[f64]) -> Option<f64>> = Some(&mut collect);
    let run = minibatch::train(
        progs,
        start.to_vec(),
        &setup.train_rows,
        &swa,
        &mut Mode::new(setup.full.dim()),
        rng,
        &mut after,
        &mut |_, _| {},
    )?;
    drop(after);
    let objectives: Vec<f64> = run.epochs.iter().map(|e| e.objective).collect();
    let mean = objectives.iter().sum::<f64>() / objectives.len().max(1) as f64;
    Ok((m, if mean.is_finite() { mean } else { f64::NEG_INFINITY }))
}
