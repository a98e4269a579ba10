//! `run --method bbb`: Bayes by Backprop on minibatches of the observation rows the compiler
//! found, then draws from q.

use crate::compiled::CompiledModel;
use crate::diag::Format;
use crate::driver::Frontend;
use crate::infer::minibatch::{self, Epoch, Programs};
use crate::infer::run::Config;
use crate::infer::vi::bbb::{self, Settings};
use crate::infer::vi::Gaussian;
use crate::ir::lower::Options as LowerOptions;
use crate::ir::Program;
use rand::SeedableRng;
use std::io::IsTerminal;
use std::path::Path;

/// What the command line gave (`None`: the default).
pub struct Options {
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub lr: f64,
    pub sgd_momentum: Option<f64>,
    pub kl_anneal: usize,
    pub temperature: f64,
    pub val_frac: f64,
    pub output_draws: usize,
    /// Drop-path's probabilities (local, global), for networks with `join`.
    pub drop_path: Option<(f64, f64)>,
    pub schedule: minibatch::Schedule,
}

/// Steps a run takes when `--epochs` is not given (the epochs are rounded up, between 10 and
/// 10,000).
pub const DEFAULT_STEPS: usize = 20_000;
/// Draws from q that score the held-out rows after each epoch.
const VAL_DRAWS: usize = 20;

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
    let options =
        LowerOptions { variational: true, local_reparam: true, drop_path: o.drop_path.is_some(), ..Default::default() };
    let setup =
        match crate::methods::batches::setup(fe, model, data, o.val_frac, (o.batch_size, 1), options, &mut rng, format)
        {
            Ok(s) => s,
            Err(code) => return code,
        };
    let (full, last) = (&setup.full, &setup.last);
    let (n_train, n_val, b) = (setup.train_rows.len(), setup.val_rows.len(), setup.batch_size);
    let train_rows = &setup.train_rows[..];
    let compile = |p| CompiledModel::new(p, cfg.backend);
    let (full_m, last_m, mut density) = match (compile(full), last.as_ref().map(compile).transpose(), compile(program))
    {
        (Ok(f), Ok(l), Ok(d)) => (f, l, d),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            eprintln!("error: {}", crate::compiled::internal_error(&e.to_string()));
            return 2;
        }
    };
    density.seed(cfg.seed ^ 0x5DEE_CE66);
    let mut progs = Programs { full: full_m, full_program: &full, last: last_m.zip(last.as_ref()) };
    let steps_per_epoch = n_train.div_ceil(b);
    let epochs = o.epochs.unwrap_or_else(|| DEFAULT_STEPS.div_ceil(steps_per_epoch).clamp(10, 10_000));
    let loop_settings = minibatch::Settings {
        epochs,
        batch_size: b,
        lr: o.lr,
        schedule: o.schedule,
        sgd_momentum: o.sgd_momentum,
        patience: (epochs / 10).max(20),
        drop_path: o.drop_path.unwrap_or((0.0, 0.0)),
    };
    let settings = Settings { kl_anneal: o.kl_anneal, temperature: o.temperature, init_sd: 1e-2 };
    let layout = full.variational.clone().unwrap_or_default();
    let names = |v: &[usize]| -> Vec<String> { v.iter().map(|&i| full.params[i].name.clone()).collect() };
    let local = names(&layout.local.iter().map(|l| l.0).collect::<Vec<_>>());
    let exact_kl = names(&layout.gaussian.iter().map(|g| g.0).collect::<Vec<_>>());
    eprintln!(
        "bbb: {n_train} training rows{}, batches of {b}, {} of {}; exact KL for {}; local reparameterisation for {}",
        if n_val > 0 { format!(" ({n_val} held out)") } else { String::new() },
        super::count(epochs, "epoch"),
        super::count(steps_per_epoch, "step"),
        list(&exact_kl),
        list(&local),
    );

    // The held-out score: the mean log predictive density over draws from q.
    let mut held_out = match crate::methods::batches::HeldOut::new(&setup, cfg.backend) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {}", crate::compiled::internal_error(&e));
            return 2;
        }
    };
    let mut val_rng = rand::rngs::SmallRng::seed_from_u64(cfg.seed ^ 0xA5A5);
    let mut scorer = |q: &Gaussian| -> Option<f64> {
        let h = held_out.as_mut()?;
        h.score(&mut density, &draws_from(q, VAL_DRAWS, &mut val_rng))
    };
    let mut validate: Option<&mut dyn FnMut(&Gaussian) -> Option<f64>> =
        if n_val > 0 { Some(&mut scorer) } else { None };

    let _ = ctrlc::set_handler(|| crate::infer::run::STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(epochs as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("bbb epoch {pos}/{len} {bar:30} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut mu = bbb::initial_means(program, &mut rng);
    if let Some(init) = &cfg.init {
        init.apply_to(&mut mu);
    }
    let t = std::time::Instant::now();
    let trained =
        bbb::train(&mut progs, mu, train_rows, &loop_settings, &settings, &mut rng, &mut validate, &mut |e, _| {
            bar.set_position(e.epoch as u64);
            bar.set_message(match e.val_log_lik {
                Some(v) => format!("ELBO {:.2}  held-out log-lik {v:.4}", e.objective),
                None => format!("ELBO {:.2}", e.objective),
            });
        });
    bar.finish_and_clear();
    drop(validate);
    let seconds = t.elapsed().as_secs_f64();
    let (q, o_) = match trained {
        Ok(o) => (o.q, o.run),
        Err(e) => {
            eprintln!("error: Bayes by Backprop failed: {e}");
            return 3;
        }
    };
    let mut times: Vec<f64> = o_.epochs.iter().map(|e| e.seconds).collect();
    times.sort_by(f64::total_cmp);
    let per_epoch = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    // The per-epoch estimates are noisy: the mean over the last tenth of the epochs.
    let tail = &o_.epochs[o_.epochs.len() - (o_.epochs.len() / 10).max(1).min(o_.epochs.len())..];
    let elbo =
        if tail.is_empty() { f64::NAN } else { tail.iter().map(|e| e.objective).sum::<f64>() / tail.len() as f64 };
    let converged = settled(&o_.epochs) && !o_.stopped && o_.diverged.is_none();
    eprintln!(
        "bbb: ELBO {elbo:.3} after {} epochs ({} steps, {:.3} ms per epoch){}",
        o_.epochs.len(),
        o_.steps,
        per_epoch * 1e3,
        if o_.early_stopped { format!("; stopped early, keeping epoch {}", o_.best_epoch) } else { String::new() }
    );
    let mut warnings = Vec::new();
    if let Some(why) = &o_.diverged {
        let kept = if n_val > 0 {
            format!("the best held-out epoch's ({})", o_.best_epoch)
        } else {
            "at the last step where all was finite".to_string()
        };
        warnings.push(format!("training diverged {why}; the draws are from q {kept}"));
    } else if o_.stopped {
        warnings.push(format!("stopped early after {} steps: the draws are from q as it was then", o_.steps));
    } else if !converged && !o_.early_stopped {
        warnings.push("the ELBO was still changing by more than 1% over the last epochs; train for more --epochs or with another --lr".into());
    }
    // The KL's weight at the epoch kept, as the objective weighs it.
    let kl_weight = if o.kl_anneal == 0 { 1.0 } else { (o_.best_epoch as f64 / o.kl_anneal as f64).min(1.0) };
    if kl_weight < 1.0 {
        warnings.push(format!(
            "the epoch kept ({}) is within --kl-anneal {}: the KL weighed {kl_weight:.2} there, so q fits a tempered objective, not the ELBO, and is over-confident; anneal over fewer epochs than training takes",
            o_.best_epoch, o.kl_anneal
        ));
    }
    let mut record = serde_json::Map::new();
    for (k, v) in [
        ("elbo", serde_json::json!(elbo)),
        ("iterations", serde_json::json!(o_.steps)),
        ("epochs", serde_json::json!(o_.epochs.len())),
        ("best_epoch", serde_json::json!(o_.best_epoch)),
        ("converged", serde_json::json!(converged)),
        ("early_stopped", serde_json::json!(o_.early_stopped)),
        ("diverged", serde_json::json!(o_.diverged)),
        ("stopped", serde_json::json!(o_.stopped)),
        ("batch_size", serde_json::json!(b)),
        ("training_rows", serde_json::json!(n_train)),
        ("held_out_rows", serde_json::json!(n_val)),
        ("lr", serde_json::json!(o.lr)),
        ("temperature", serde_json::json!(o.temperature)),
        ("kl_anneal", serde_json::json!(o.kl_anneal)),
        ("exact_kl", serde_json::json!(exact_kl)),
        ("local_reparameterisation", serde_json::json!(local)),
        ("seconds", serde_json::json!(seconds)),
        ("seconds_per_epoch", serde_json::json!(per_epoch)),
        (
            "trace",
            // At most about 500 epochs: every k-th, and the last.
            o_.epochs
                .iter()
                .enumerate()
                .filter(|(i, _)| i % o_.epochs.len().div_ceil(500).max(1) == 0 || *i + 1 == o_.epochs.len())
                .map(|(_, e)| serde_json::json!({"epoch": e.epoch, "elbo": e.objective, "val_log_lik": e.val_log_lik, "seconds": e.seconds}))
                .collect(),
        ),
    ] {
        record.insert(k.into(), v);
    }
    let settings_lines = vec![
        "variational".to_string(),
        "  algorithm = bbb (mean-field, softplus scales)".to_string(),
        format!("  epochs = {}", o_.epochs.len()),
        format!("  batch_size = {b}"),
        format!("  lr = {}", o.lr),
        format!("  optimizer = {}", if o.sgd_momentum.is_some() { "sgd" } else { "adam" }),
        format!("  temperature = {}", o.temperature),
        format!("  kl_anneal = {}", o.kl_anneal),
        format!("  val_frac = {}", o.val_frac),
    ];
    let out = crate::methods::vi::Output {
        method: "bbb",
        layout: crate::methods::vi::Layout::Variational,
        settings: settings_lines,
        record,
        warnings,
        output_draws: o.output_draws,
        all,
    };
    match crate::methods::vi::write(program, cfg, &mut density, &q, &mut rng, out) {
        0 if o_.diverged.is_some() => 3,
        code => code,
    }
}

/// `s` draws from q on the unconstrained space.
fn draws_from(q: &Gaussian, s: usize, rng: &mut impl rand::Rng) -> Vec<Vec<f64>> {
    use rand_distr::{Distribution, StandardNormal};
    let n = q.dim();
    let mut eps = vec![0.0; n];
    (0..s)
        .map(|_| {
            eps.iter_mut().for_each(|e| *e = StandardNormal.sample(rng));
            let mut theta = vec![0.0; n];
            q.transform(&eps, &mut theta);
            theta
        })
        .collect()
}

/// Whether the ELBO has stopped rising: the mean over the last tenth of the epochs (at least
/// 5) exceeds the mean over the tenth before by less than 1%, or by less than three
/// standard errors (the per-epoch values are noisy with few steps per epoch).
fn settled(epochs: &[Epoch]) -> bool {
    let w = (epochs.len() / 10).max(5);
    if epochs.len() < 2 * w {
        return false;
    }
    let stats = |s: &[Epoch]| {
        let m = s.iter().map(|e| e.objective).sum::<f64>() / s.len() as f64;
        let v = s.iter().map(|e| (e.objective - m).powi(2)).sum::<f64>() / (s.len() - 1) as f64;
        (m, v / s.len() as f64)
    };
    let ((a, va), (b, vb)) =
        (stats(&epochs[epochs.len() - 2 * w..epochs.len() - w]), stats(&epochs[epochs.len() - w..]));
    b - a < 0.01 * b.abs() || b - a < 3.0 * (va + vb).sqrt()
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else if v.len() > 4 {
        format!("{}, ... ({} parameters)", v[..4].join(", "), v.len())
    } else {
        v.join(", ")
    }
}
