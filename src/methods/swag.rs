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
    let (setup, settings, first) =
        match crate::methods::modes::pretrain(fe, model, data, program, cfg, &o.modes, &mut rng, format, "swag", all) {
            Ok(x) => x,
            Err(code) => return code,
        };
    let (mut progs, mut density) = match setup.compile(program, cfg.backend) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // MultiSWAG (Wilson & Izmailov 2020): a SWAG Gaussian around each of --members modes, the
    // draws shared out equally.
    let members = o.modes.members.max(1);
    let mut first = Some(first);
    let mut held_out = match crate::methods::batches::HeldOut::new(&setup, cfg.backend) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {}", crate::compiled::internal_error(&e.to_string()));
            return 3;
        }
    };
    let (mut rows, mut records) = (Vec::with_capacity(o.output_draws), Vec::new());
    for m in 0..members {
        if crate::infer::run::STOP.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let mode = match first.take() {
            Some(mode) => mode,
            None => match crate::methods::modes::member(program, &setup, &settings, cfg, m, &mut |_, _| {})
                .and_then(crate::methods::modes::Member::or_diverged)
            {
                Ok(mode) => mode,
                Err(e) => {
                    eprintln!("error: member {}: {e}", m + 1);
                    continue;
                }
            },
        };
        let share = o.output_draws * (m + 1) / members - o.output_draws * m / members;
        let seed = crate::infer::run::chain_seed(cfg.seed.wrapping_add(7919 * m as u64), 1);
        match around(&mut progs, &mut density, held_out.as_mut(), &setup, &mode, o, share, seed) {
            Ok((mut r, record)) => {
                rows.append(&mut r);
                records.push(record);
            }
            Err(e) => {
                eprintln!("error: {}{e}", if members > 1 { format!("member {}: ", m + 1) } else { String::new() })
            }
        }
    }
    if rows.is_empty() {
        return 3;
    }
    let seconds = t.elapsed().as_secs_f64();
    let b = setup.batch_size;
    let first = &records[0];
    eprintln!(
        "swag: {} iterates of SGD at lr {} collected, rank {}{}, {seconds:.1} s",
        first["swag_epochs"],
        first["swag_lr"],
        first["rank"],
        if members > 1 { format!(", around {} of {members} modes", records.len()) } else { String::new() }
    );
    let mut warnings: Vec<String> = density.generated_failures().warning(rows.len()).into_iter().collect();
    if records.len() < members {
        warnings.push(format!("{} of {members} SWAG members trained: the predictive mixes those", records.len()));
    }
    let mut record = serde_json::json!({
        "pretraining_epochs": first["pretraining_epochs"],
        "best_epoch": first["best_epoch"],
        "swag_epochs": first["swag_epochs"],
        "swag_lr": first["swag_lr"],
        "rank": first["rank"],
        "batch_size": b,
        "held_out_rows": setup.val_rows.len(),
        "seconds": seconds,
    });
    if members > 1 {
        record["members"] = records.len().into();
        record["per_member"] = records.clone().into();
    }
    let settings_lines = vec![
        "swag".to_string(),
        format!("  members = {}", records.len()),
        format!("  swag_epochs = {}", first["swag_epochs"]),
        format!("  swag_lr = {}", first["swag_lr"]),
        format!("  rank = {}", first["rank"]),
        format!("  batch_size = {b}"),
    ];
    let leading = ["lp__".to_string()];
    let draws = crate::methods::draws::Draws {
        method: "swag",
        csv_method: "swag",
        settings: &settings_lines,
        leading: &leading,
        first_row: None,
        rows: &rows,
    };
    crate::methods::draws::write(program, cfg, &draws, serde_json::json!({ "swag": record }), warnings, all)
}

/// One SWAG Gaussian around `mode`: the SGD phase at the largest learning rate whose iterates
/// stay in the posterior's bulk and whose Gaussian predicts the held-out rows about as well as
/// the mode (or --swag-lr), then `share` draws (with their log density first) and the
/// member's record.
#[allow(clippy::too_many_arguments)]
fn around(
    progs: &mut Programs,
    density: &mut CompiledModel,
    mut held_out: Option<&mut crate::methods::batches::HeldOut>,
    setup: &crate::methods::batches::Setup,
    mode: &crate::methods::modes::Member,
    o: &Options,
    share: usize,
    seed: u64,
) -> Result<(Vec<Vec<f64>>, serde_json::Value), String> {
    let dim = mode.run.x.len();
    let mut srng = rand::rngs::SmallRng::seed_from_u64(seed);
    // The mode's objective, over one pass of the rows at the mode itself (the pretraining's
    // best epoch averaged its batches along a moving point, tens of nats off on a small model).
    let drop_path = o.modes.drop_path.unwrap_or((0.0, 0.0));
    let mut pass_rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0x0B1E_C71E);
    let at_mode = crate::methods::batches::objective_at(progs, setup, &mode.run.x, drop_path, &mut pass_rng)?;
    let rates: Vec<f64> = match o.swag_lr {
        Some(lr) => vec![lr],
        None => {
            let start = noise_matched_rate(progs, setup, &mode.run.x, drop_path, &mut pass_rng)?;
            (0..RATES_TRIED).map(|k| start / 10f64.powf(k as f64 / 2.0)).collect()
        }
    };
    let mode_held_out = held_out.as_mut().and_then(|h| h.pointwise(density, std::slice::from_ref(&mode.run.x)));
    let mut chosen = None;
    let mut tried = Vec::new();
    for &lr in &rates {
        let phase = swa_phase(progs, setup, &mode.run.x, o, lr, &mut srng);
        // Iterates that stay among the posterior's bulk, and a Gaussian that predicts.
        let (ok, why) = match &phase {
            Ok((_, mean_objective)) if !crate::methods::batches::within_bulk(at_mode - mean_objective, dim) => (
                false,
                format!("at lr {lr} the iterates' log density fell {:.3e} below the mode's", at_mode - mean_objective),
            ),
            Ok((moments, _)) => match (held_out.as_mut(), mode_held_out.as_deref()) {
                (Some(h), Some(at)) if moments.count >= 2 => {
                    let diag = moments.diagonal();
                    let mut check_rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0x5EED_0F_5A6);
                    let xs: Vec<Vec<f64>> = (0..HELD_OUT_DRAWS)
                        .map(|_| {
                            let mut x = vec![0.0; dim];
                            moments.draw(&diag, &mut check_rng, &mut x);
                            x
                        })
                        .collect();
                    match h.pointwise(density, &xs).map(|s| crate::methods::batches::predicts_as_well(at, &s)) {
                        Some(Ok(())) => (true, String::new()),
                        fall => (
                            false,
                            format!(
                                "at lr {lr} the Gaussian's held-out log predictive density per row {}",
                                match fall {
                                    Some(Err(d)) if d.is_finite() => format!("fell {:.3} below the mode's", -d),
                                    _ => "could not be computed".to_string(),
                                }
                            ),
                        ),
                    }
                }
                _ => (true, String::new()),
            },
            Err(e) => (false, format!("at lr {lr}: {e}")),
        };
        if ok || o.swag_lr.is_some() {
            if !ok {
                eprintln!("warning: {why}; the SWAG covariance is too wide; try a smaller --swag-lr");
            }
            match phase {
                Ok((m, _)) => chosen = Some((lr, m)),
                Err(e) => return Err(format!("SWAG's SGD phase failed: {e}; a smaller --swag-lr may help")),
            }
            break;
        }
        tried.push(why);
    }
    let Some((lr, moments)) = chosen else {
        return Err(format!(
            "SWAG's SGD phase left the mode at every learning rate tried ({}); give --swag-lr",
            tried.join("; ")
        ));
    };
    let count = moments.count;
    if count < 2 {
        return Err("SWAG needs at least two epochs of its SGD phase to estimate a covariance".into());
    }
    // Draws from the SWAG Gaussian.
    let k = moments.deviations.len();
    let diag = moments.diagonal();
    let mut rows = Vec::with_capacity(share);
    let mut theta = vec![0.0; dim];
    for _ in 0..share * 10 {
        if rows.len() == share {
            break;
        }
        moments.draw(&diag, &mut srng, &mut theta);
        let Ok((v, _)) = density.constrained_keeping_params(&theta) else { continue };
        let lp = density.eval(&theta).map(|e| e.logp).unwrap_or(f64::NAN);
        rows.push([vec![lp], v.into_iter().flat_map(|(_, _, x)| x).collect()].concat());
    }
    if rows.is_empty() {
        return Err("no SWAG draw could be mapped to the constrained space".into());
    }
    let record = serde_json::json!({
        "pretraining_epochs": mode.run.epochs.len(),
        "best_epoch": mode.run.best_epoch,
        "swag_epochs": count,
        "swag_lr": lr,
        "rank": k,
    });
    Ok((rows, record))
}

/// Draws from a candidate SWAG Gaussian whose held-out predictive is compared with the mode's.
const HELD_OUT_DRAWS: usize = 20;

/// How many rates, each √10 below the last, are tried from the noise-matched one.
const RATES_TRIED: usize = 13;

/// SGD's momentum in the SWA phase.
const MOMENTUM: f64 = 0.9;

/// The constant learning rate at which SGD's stationary spread best matches the posterior
/// (Mandt, Hoffman & Blei 2017, Theorem 2): ε* = 2 d / (N tr Var ĝ), for `d` coordinates, `N`
/// training rows and ĝ a batch's gradient of the mean log density per row, its variance over
/// the batches at the mode (five passes), and ε*(1 − β) with momentum β.
fn noise_matched_rate(
    progs: &mut Programs,
    setup: &crate::methods::batches::Setup,
    mode: &[f64],
    drop_path: (f64, f64),
    rng: &mut rand::rngs::SmallRng,
) -> Result<f64, String> {
    struct Recording {
        inner: Mode,
        sum: Vec<f64>,
        sq: Vec<f64>,
        count: usize,
    }
    impl minibatch::Objective for Recording {
        fn step<R: rand::Rng + ?Sized>(
            &mut self,
            model: &mut CompiledModel,
            inputs: &minibatch::Inputs,
            batch: &minibatch::Batch,
            x: &[f64],
            g: &mut [f64],
            rng: &mut R,
        ) -> Result<f64, String> {
            let v = self.inner.step(model, inputs, batch, x, g, rng)?;
            for ((s, q), gi) in self.sum.iter_mut().zip(self.sq.iter_mut()).zip(g.iter()) {
                *s += gi;
                *q += gi * gi;
            }
            self.count += 1;
            Ok(v)
        }
    }
    let dim = mode.len();
    let pass = minibatch::Settings::still(5, setup.batch_size, drop_path);
    let mut rec = Recording { inner: Mode::new(setup.full.dim()), sum: vec![0.0; dim], sq: vec![0.0; dim], count: 0 };
    minibatch::train(progs, mode.to_vec(), &setup.train_rows, &pass, &mut rec, rng, &mut None, &mut |_, _| {})?
        .or_diverged()?;
    let (n, c) = (setup.train_rows.len() as f64, rec.count as f64);
    // Each step's gradient is of log prior + (N/B) Σ log lik: ĝ is it over N.
    let trace: f64 =
        rec.sum.iter().zip(&rec.sq).map(|(s, q)| (q / c - (s / c) * (s / c)).max(0.0)).sum::<f64>() / (n * n);
    if rec.count < 2 || !(trace > 0.0 && trace.is_finite()) {
        return Ok(1.0);
    }
    Ok((2.0 * dim as f64 / (n * trace) * (1.0 - MOMENTUM)).min(1.0))
}

/// The running moments of the SWA iterates.
struct Moments {
    mean: Vec<f64>,
    sq: Vec<f64>,
    deviations: std::collections::VecDeque<Vec<f64>>,
    count: usize,
}

impl Moments {
    fn new(dim: usize) -> Moments {
        Moments { mean: vec![0.0; dim], sq: vec![0.0; dim], deviations: Default::default(), count: 0 }
    }

    /// One more iterate: the running mean and second moment, and its deviation from the
    /// mean so far among the last `rank`.
    fn add(&mut self, x: &[f64], rank: usize) {
        self.count += 1;
        let w = 1.0 / self.count as f64;
        for j in 0..x.len() {
            self.mean[j] += w * (x[j] - self.mean[j]);
            self.sq[j] += w * (x[j] * x[j] - self.sq[j]);
        }
        if self.deviations.len() == rank {
            self.deviations.pop_front();
        }
        self.deviations.push_back(x.iter().zip(&self.mean).map(|(a, b)| a - b).collect());
    }

    /// The diagonal part's standard deviations.
    fn diagonal(&self) -> Vec<f64> {
        self.mean.iter().zip(&self.sq).map(|(m, s)| (s - m * m).max(1e-30).sqrt()).collect()
    }

    /// A draw θ̄ + Σ_diag^{1/2} z₁ / √2 + D z₂ / √(2(K − 1)) into `theta`.
    fn draw<R: rand::Rng + ?Sized>(&self, diag: &[f64], rng: &mut R, theta: &mut [f64]) {
        for j in 0..theta.len() {
            let z: f64 = StandardNormal.sample(rng);
            theta[j] = self.mean[j] + diag[j] * z / std::f64::consts::SQRT_2;
        }
        let k = self.deviations.len();
        if k > 1 {
            let scale = 1.0 / (2.0 * (k - 1) as f64).sqrt();
            for d in &self.deviations {
                let z: f64 = StandardNormal.sample(rng);
                theta.iter_mut().zip(d).for_each(|(t, d)| *t += scale * z * d);
            }
        }
    }
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
    rng: &mut rand::rngs::SmallRng,
) -> Result<(Moments, f64), String> {
    let dim = start.len();
    let mut m = Moments::new(dim);
    let mut collect = |x: &[f64]| -> Option<f64> {
        m.add(x, o.rank);
        None
    };
    let swa = minibatch::Settings {
        epochs: o.swag_epochs,
        batch_size: setup.batch_size,
        lr,
        schedule: minibatch::Schedule::Constant,
        sgd_momentum: Some(MOMENTUM),
        patience: usize::MAX,
        drop_path: o.modes.drop_path.unwrap_or((0.0, 0.0)),
    };
    let mut after: Option<&mut dyn FnMut(&[f64]) -> Option<f64>> = Some(&mut collect);
    let bar = crate::methods::modes::progress_bar(&format!("swag (lr {lr:e})"), o.swag_epochs);
    let run = minibatch::train(
        progs,
        start.to_vec(),
        &setup.train_rows,
        &swa,
        &mut Mode::new(setup.full.dim()),
        rng,
        &mut after,
        &mut |_, _| bar.inc(1),
    )?
    .or_diverged()?;
    bar.finish_and_clear();
    drop(after);
    let objectives: Vec<f64> = run.epochs.iter().map(|e| e.objective).collect();
    let mean = objectives.iter().sum::<f64>() / objectives.len().max(1) as f64;
    Ok((m, if mean.is_finite() { mean } else { f64::NEG_INFINITY }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swag_moments_of_gaussian_iterates_give_the_swag_covariance() {
        // Iterates from N(μ, Σ), as SGD at a constant rate leaves them on a quadratic: the
        // running moments recover μ and diag Σ, the last K deviations Σ's low-rank part, and
        // the draws have covariance (diag Σ + D Dᵀ / (K − 1)) / 2 ≈ (diag Σ + Σ) / 2.
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let (mu, l) = ([1.0, -2.0], [[1.0, 0.0], [0.8, 0.6]]); // Σ = L Lᵀ = [[1, .8], [.8, 1]]
        let mut m = Moments::new(2);
        for _ in 0..20_000 {
            let (a, b): (f64, f64) = (StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng));
            m.add(&[mu[0] + l[0][0] * a, mu[1] + l[1][0] * a + l[1][1] * b], 2_000);
        }
        assert_eq!(m.deviations.len(), 2_000);
        assert!((m.mean[0] - 1.0).abs() < 0.03 && (m.mean[1] + 2.0).abs() < 0.03, "{:?}", m.mean);
        let diag = m.diagonal();
        assert!((diag[0] - 1.0).abs() < 0.03 && (diag[1] - 1.0).abs() < 0.03, "{diag:?}");
        let n = 40_000;
        let (mut c00, mut c01, mut c11) = (0.0, 0.0, 0.0);
        let mut theta = [0.0; 2];
        for _ in 0..n {
            m.draw(&diag, &mut rng, &mut theta);
            let (x, y) = (theta[0] - m.mean[0], theta[1] - m.mean[1]);
            c00 += x * x;
            c01 += x * y;
            c11 += y * y;
        }
        let (c00, c01, c11) = (c00 / n as f64, c01 / n as f64, c11 / n as f64);
        assert!((c00 - 1.0).abs() < 0.08 && (c11 - 1.0).abs() < 0.08, "variances {c00} {c11}");
        assert!((c01 - 0.4).abs() < 0.06, "covariance {c01}: half the off-diagonal");
    }
}
