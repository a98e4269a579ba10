//! The methods built on posterior modes found on minibatches of the observation rows, each
//! stopped early on held-out rows:
//!
//! - `run --method ensemble`: deep ensembles (Lakshminarayanan et al. 2017). M modes from
//!   independent initial points and batch orders; the predictive is their equal mixture.
//!   Members run on threads, each from its own seed, so the result does not depend on the
//!   thread count.
//! - `run --method map --batch-size B`: one mode.
//! - `run --method mc-dropout`: one mode trained with the network's dropout masks drawn
//!   afresh at every step (Gal & Ghahramani 2016); `predict` averages `--mc-samples` passes
//!   with fresh masks.

use crate::diag::Format;
use crate::driver::Frontend;
use crate::infer::minibatch::{self, Mode};
use crate::infer::run::{chain_seed, Config};
use crate::ir::lower::Options as LowerOptions;
use crate::ir::Program;
use rand::SeedableRng;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the command line gave (`None`: the default).
pub struct Options {
    pub members: usize,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    /// Without `batch_size`, batches of 128 rows, or fewer so that an epoch has at least
    /// this many.
    pub min_batches: usize,
    pub lr: f64,
    pub sgd_momentum: Option<f64>,
    pub val_frac: f64,
    pub threads: usize,
    /// Drop-path's probabilities (local, global), for networks with `join`.
    pub drop_path: Option<(f64, f64)>,
    pub schedule: minibatch::Schedule,
}

impl Options {
    /// The rows, the held-out split and the batch programs, with these options.
    pub(crate) fn setup(
        &self,
        fe: &mut Frontend,
        model: &Path,
        data: Option<&Path>,
        options: LowerOptions,
        rng: &mut impl rand::Rng,
        format: Format,
    ) -> Result<crate::methods::batches::Setup, i32> {
        let batching = (self.batch_size, self.min_batches);
        crate::methods::batches::setup(fe, model, data, self.val_frac, batching, options, rng, format)
    }

    /// The training loop's settings for `setup`'s rows: by default epochs enough for 20,000
    /// steps (10 to 10,000), stopping after a tenth of them (at least 20) without a better
    /// held-out score.
    pub(crate) fn settings(&self, setup: &crate::methods::batches::Setup) -> minibatch::Settings {
        let steps_per_epoch = setup.train_rows.len().div_ceil(setup.batch_size);
        let epochs = self
            .epochs
            .unwrap_or_else(|| crate::methods::bbb::DEFAULT_STEPS.div_ceil(steps_per_epoch).clamp(10, 10_000));
        minibatch::Settings {
            epochs,
            batch_size: setup.batch_size,
            lr: self.lr,
            schedule: self.schedule,
            sgd_momentum: self.sgd_momentum,
            patience: (epochs / 10).max(20),
            drop_path: self.drop_path.unwrap_or((0.0, 0.0)),
        }
    }
}

/// One member's outcome.
pub(crate) struct Member {
    /// The log density at the mode (without the Jacobian) and the constrained values.
    pub logp: f64,
    pub values: Vec<f64>,
    pub named: Vec<(String, Vec<usize>, Vec<f64>)>,
    pub run: minibatch::Outcome,
    /// The elements of bounded parameters the log density keeps rising towards the bound of
    /// ([`crate::methods::map::at_bounds`]), with their values.
    pub at_bound: Vec<(String, f64)>,
}

impl Member {
    /// The member, or why its training diverged as an error (an ensemble leaves it out).
    pub fn or_diverged(self) -> Result<Member, String> {
        match &self.run.diverged {
            Some(why) => Err(why.clone()),
            None => Ok(self),
        }
    }
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
    // The rows and the held-out split are the ensemble's, shared by its members.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(cfg.seed);
    let setup = match o.setup(
        fe,
        model,
        data,
        LowerOptions { drop_path: o.drop_path.is_some(), ..LowerOptions::default() },
        &mut rng,
        format,
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let b = setup.batch_size;
    let steps_per_epoch = setup.train_rows.len().div_ceil(b);
    let settings = o.settings(&setup);
    let epochs = settings.epochs;
    eprintln!(
        "ensemble: {}, {} training rows{}, batches of {b}, at most {} of {} each",
        super::count(o.members, "member"),
        setup.train_rows.len(),
        if setup.val_rows.is_empty() {
            String::new()
        } else {
            format!(" ({} held out to stop each member)", setup.val_rows.len())
        },
        super::count(epochs, "epoch"),
        super::count(steps_per_epoch, "step"),
    );
    let _ = ctrlc::set_handler(|| crate::infer::run::STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new((o.members * epochs) as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("ensemble {bar:30} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Member, String>>> = (0..o.members).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.threads.clamp(1, o.members))
            .map(|_| {
                let (next, done, setup, settings, bar) = (&next, &done, &setup, &settings, &bar);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let m = next.fetch_add(1, Ordering::SeqCst);
                        if m >= o.members || crate::infer::run::STOP.load(Ordering::Relaxed) {
                            break;
                        }
                        let r = member(program, setup, settings, cfg, m, &mut |e, _| {
                            bar.inc(1);
                            if let Some(v) = e.val_log_lik {
                                bar.set_message(format!("member {} epoch {}: held-out log-lik {v:.4}", m + 1, e.epoch));
                            }
                        });
                        done.fetch_add(1, Ordering::SeqCst);
                        mine.push((m, r.and_then(Member::or_diverged)));
                    }
                    mine
                })
            })
            .collect();
        for h in handles {
            if let Ok(mine) = h.join() {
                for (m, r) in mine {
                    results[m] = Some(r);
                }
            }
        }
    });
    bar.finish_and_clear();
    let seconds = t.elapsed().as_secs_f64();
    let mut members = Vec::new();
    for (m, r) in results.into_iter().enumerate() {
        match r {
            Some(Ok(member)) => members.push(member),
            Some(Err(e)) => eprintln!("error: member {}: {e}", m + 1),
            None => {}
        }
    }
    if members.is_empty() {
        eprintln!("error: no member of the ensemble could be trained");
        return 3;
    }
    let stopped = crate::infer::run::STOP.load(Ordering::Relaxed);
    let mut warnings = Vec::new();
    if members.len() < o.members {
        warnings.push(format!(
            "{} of {} members trained{}: the predictive mixes those",
            members.len(),
            o.members,
            if stopped { " before the stop request" } else { "" }
        ));
    }
    let bounded: Vec<&Member> = members.iter().filter(|m| !m.at_bound.is_empty()).collect();
    if let Some(first) = bounded.first() {
        let what = format!(
            "in {} of {} members the estimate is where training ended on its way",
            bounded.len(),
            members.len()
        );
        warnings.push(crate::methods::map::bound_warning(&first.at_bound, &what));
    }
    eprintln!(
        "ensemble: {} members in {seconds:.1} s; epochs kept {}",
        members.len(),
        members.iter().map(|m| m.run.best_epoch.to_string()).collect::<Vec<_>>().join(", ")
    );
    let rows: Vec<Vec<f64>> = members.iter().map(|m| [vec![m.logp], m.values.clone()].concat()).collect();
    let record = serde_json::json!({
        "ensemble": {
            "members": members.len(),
            "batch_size": b,
            "training_rows": setup.train_rows.len(),
            "held_out_rows": setup.val_rows.len(),
            "lr": o.lr,
            "seconds": seconds,
            "per_member": members.iter().map(|m| serde_json::json!({
                "logp": m.logp,
                "epochs": m.run.epochs.len(),
                "best_epoch": m.run.best_epoch,
                "steps": m.run.steps,
                "early_stopped": m.run.early_stopped,
                "val_log_lik": m.run.epochs.iter().find(|e| e.epoch == m.run.best_epoch).and_then(|e| e.val_log_lik),
            })).collect::<Vec<_>>(),
        }
    });
    let settings_lines = vec![
        "ensemble".to_string(),
        format!("  members = {}", members.len()),
        format!("  batch_size = {b}"),
        format!("  lr = {}", o.lr),
        format!("  val_frac = {}", o.val_frac),
    ];
    let leading = ["lp__".to_string()];
    let draws = crate::methods::draws::Draws {
        method: "ensemble",
        csv_method: "ensemble",
        settings: &settings_lines,
        leading: &leading,
        first_row: None,
        rows: &rows,
    };
    match crate::methods::draws::write(program, cfg, &draws, record, warnings, all) {
        0 if bounded.len() == members.len() => 3,
        code => code,
    }
}

/// A single mode: `map --batch-size`, or MC Dropout's network trained with its masks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Single {
    Map,
    McDropout { samples: usize },
}

/// `run --method map --batch-size B` or `--method mc-dropout`: one posterior mode found on
/// minibatches with the ensemble's loop (early stopping on held-out rows by default),
/// reported as MAP's.
#[allow(clippy::too_many_arguments)]
pub fn single(
    fe: &mut Frontend,
    model: &Path,
    data: Option<&Path>,
    program: &Program,
    cfg: &Config,
    o: &Options,
    kind: Single,
    all: bool,
    format: Format,
) -> i32 {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(cfg.seed);
    let options = LowerOptions {
        dropout_masks: matches!(kind, Single::McDropout { .. }),
        drop_path: o.drop_path.is_some(),
        ..Default::default()
    };
    let setup = match o.setup(fe, model, data, options, &mut rng, format) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let b = setup.batch_size;
    let steps_per_epoch = setup.train_rows.len().div_ceil(b);
    let settings = o.settings(&setup);
    let _ = ctrlc::set_handler(|| crate::infer::run::STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    let t = std::time::Instant::now();
    let bar = progress_bar(if kind == Single::Map { "map" } else { "mc-dropout" }, settings.epochs);
    let trained = member(program, &setup, &settings, cfg, 0, &mut epoch_progress(&bar));
    bar.finish_and_clear();
    let m = match trained {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    let masks = setup.full.inputs.iter().filter(|i| matches!(i.kind, crate::ir::InputKind::DropoutMask { .. })).count();
    let mut warnings = Vec::new();
    if matches!(kind, Single::McDropout { .. }) && masks == 0 {
        warnings.push("the model has no `dropout` layer, so MC Dropout's passes all give the same prediction: this is MAP on minibatches".to_string());
    }
    eprintln!(
        "{}: {} of {} on {} training rows{}; kept epoch {}",
        if kind == Single::Map { "map" } else { "mc-dropout" },
        super::count(m.run.epochs.len(), "epoch"),
        super::count(steps_per_epoch, "step"),
        setup.train_rows.len(),
        if setup.val_rows.is_empty() { String::new() } else { format!(" ({} held out)", setup.val_rows.len()) },
        m.run.best_epoch
    );
    if m.run.stopped {
        warnings.push(format!(
            "stopped during epoch {} of at most {}: the fit is the weights as they were then",
            m.run.epochs.len() + 1,
            settings.epochs
        ));
    }
    if let Some(why) = &m.run.diverged {
        warnings.push(diverged_warning(why, &m.run));
    }
    if !m.at_bound.is_empty() {
        warnings
            .push(crate::methods::map::bound_warning(&m.at_bound, "the estimate is where training ended on its way"));
    }
    let mut optimizer = serde_json::json!({
        "logp": m.logp,
        "batch_size": b,
        "iterations": m.run.steps,
        "epochs": m.run.epochs.len(),
        "best_epoch": m.run.best_epoch,
        "early_stopped": m.run.early_stopped,
        "stopped": m.run.stopped,
        "diverged": m.run.diverged,
        "held_out_rows": setup.val_rows.len(),
        "seconds": t.elapsed().as_secs_f64(),
    });
    let (name, key) = match kind {
        Single::Map => ("map", "optimizer"),
        Single::McDropout { samples } => {
            optimizer["mc_samples"] = samples.into();
            optimizer["dropout_layers"] = masks.into();
            ("mc-dropout", "mc_dropout")
        }
    };
    match crate::methods::map::report(program, cfg, name, &m.named, m.logp, (key, optimizer), warnings, all) {
        0 if m.run.diverged.is_some() || !m.at_bound.is_empty() => 3,
        code => code,
    }
}

/// The warning for a training run that ended at a step that was not finite, saying what the
/// fit holds.
pub(crate) fn diverged_warning(why: &str, run: &minibatch::Outcome) -> String {
    let kept = if run.epochs.iter().any(|e| e.val_log_lik.is_some()) {
        format!("the fit is the best held-out epoch's ({})", run.best_epoch)
    } else {
        "the fit is the last point where the log density and its gradient were finite".to_string()
    };
    format!("training diverged {why}; {kept}")
}

/// Train member `m`: its own initial point and batch order from its seed.
pub(crate) fn member(
    program: &Program,
    setup: &crate::methods::batches::Setup,
    settings: &minibatch::Settings,
    cfg: &Config,
    m: usize,
    progress: &mut dyn FnMut(&minibatch::Epoch, usize),
) -> Result<Member, String> {
    let (mut progs, mut density) = setup.compile(program, cfg.backend)?;
    let ice = |e: String| crate::compiled::internal_error(&e);
    let mut held_out = crate::methods::batches::HeldOut::new(setup, cfg.backend).map_err(ice)?;
    let has_val = held_out.is_some();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(chain_seed(cfg.seed, m));
    let mut start = crate::infer::vi::bbb::initial_means(program, &mut rng);
    if let Some(init) = &cfg.init {
        init.apply_to(&mut start);
    }
    let mut score = |x: &[f64]| -> Option<f64> { held_out.as_mut()?.score(&mut density, &[x]) };
    let mut validate: Option<&mut dyn FnMut(&[f64]) -> Option<f64>> = if has_val { Some(&mut score) } else { None };
    let mut objective = Mode::new(setup.full.dim());
    let run = minibatch::train(
        &mut progs,
        start,
        &setup.train_rows,
        settings,
        &mut objective,
        &mut rng,
        &mut validate,
        progress,
    )?;
    drop(validate);
    let theta = run.x.clone();
    let logp = density.eval(&theta).map(|e| e.logp).unwrap_or(f64::NAN);
    // The generated quantities' random numbers: a stream of the member's own.
    density.seed(chain_seed(cfg.seed, m) ^ 0x5DEE_CE66);
    let (named, _) = density
        .constrained_keeping_params(&theta)
        .map_err(|e| format!("the mode cannot be mapped to the constrained space: {e}"))?;
    let values = named.iter().flat_map(|(_, _, x)| x.iter().copied()).collect();
    let at_bound = if run.diverged.is_none() && logp.is_finite() {
        crate::methods::map::at_bounds(program, &mut density, &theta, logp, &named)
    } else {
        Vec::new()
    };
    Ok(Member { logp, values, named, run, at_bound })
}

/// When a stop was requested (Ctrl-C) during a method's pretraining: the mode reached is
/// written as `map --batch-size` writes one, so that what was learnt is kept. `None` when no
/// stop was requested.
fn keep_stopped_mode(program: &Program, cfg: &Config, method: &str, mode: &Member, all: bool) -> Option<i32> {
    let stopped = crate::infer::run::STOP.load(Ordering::Relaxed);
    if !stopped && mode.run.diverged.is_none() {
        return None;
    }
    let mut warnings = vec![match &mode.run.diverged {
        Some(why) => diverged_warning(why, &mode.run),
        None => "stopped while finding the mode".to_string(),
    }];
    warnings.push(format!("the mode is written as `map` writes one, without {method}'s spread"));
    let record = serde_json::json!({
        "logp": mode.logp,
        "epochs": mode.run.epochs.len(),
        "best_epoch": mode.run.best_epoch,
        "stopped": stopped,
        "diverged": mode.run.diverged,
    });
    let code =
        crate::methods::map::report(program, cfg, "map", &mode.named, mode.logp, ("optimizer", record), warnings, all);
    Some(if code == 0 && mode.run.diverged.is_some() { 3 } else { code })
}

/// A progress bar of `len` steps labelled `label` on a terminal; hidden otherwise.
pub(crate) fn progress_bar(label: &str, len: usize) -> indicatif::ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(len as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("{label} {{bar:30}} {{pos}}/{{len}} {{msg}}"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The progress of one mode's training on `bar`: an epoch a step, the held-out score shown.
pub(crate) fn epoch_progress(bar: &indicatif::ProgressBar) -> impl FnMut(&minibatch::Epoch, usize) + '_ {
    move |e, _| {
        bar.inc(1);
        if let Some(v) = e.val_log_lik {
            bar.set_message(format!("epoch {}: held-out log-lik {v:.4}", e.epoch));
        }
    }
}

/// The pretraining of the methods that start from one mode found on minibatches (SWAG,
/// SG-MCMC, Laplace): the rows split as `o` says, the default epochs, and member 0 trained
/// with early stopping. `Err` holds the exit code, the error already printed — or, when a
/// stop was requested meanwhile, the mode written as `map` writes it ([`keep_stopped_mode`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pretrain(
    fe: &mut Frontend,
    model: &Path,
    data: Option<&Path>,
    program: &Program,
    cfg: &Config,
    o: &Options,
    rng: &mut rand::rngs::SmallRng,
    format: Format,
    method: &str,
    all: bool,
) -> Result<(crate::methods::batches::Setup, minibatch::Settings, Member), i32> {
    let setup = o.setup(
        fe,
        model,
        data,
        LowerOptions { drop_path: o.drop_path.is_some(), ..LowerOptions::default() },
        rng,
        format,
    )?;
    let settings = o.settings(&setup);
    let _ = ctrlc::set_handler(|| crate::infer::run::STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    let bar = progress_bar("mode", settings.epochs);
    let trained = member(program, &setup, &settings, cfg, 0, &mut epoch_progress(&bar));
    bar.finish_and_clear();
    match trained {
        Ok(m) => match keep_stopped_mode(program, cfg, method, &m, all) {
            Some(code) => Err(code),
            None => Ok((setup, settings, m)),
        },
        Err(e) => {
            eprintln!("error: {e}");
            Err(3)
        }
    }
}
