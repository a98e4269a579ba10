//! `run --method advi`: Stan's ADVI on the full data, then draws from q.

use crate::infer::run::Config;
use crate::infer::vi::advi::{self, Progress, Settings};
use crate::ir::Program;
use rand::SeedableRng;
use std::io::IsTerminal;

/// Random starting points tried.
const START_TRIES: usize = 20;

#[allow(clippy::too_many_arguments)]
pub fn run(
    p: &Program,
    cfg: &Config,
    s: &Settings,
    output_draws: usize,
    all: bool,
    format: crate::diag::Format,
    sources: &crate::source::SourceMap,
) -> i32 {
    let mut density = match super::compiled_density(p, cfg) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    // A network starts as the minibatch methods do: its weights drawn at the scale of their
    // fan-in, and q narrow (sd 0.1, as NumPyro's AutoNormal), so that its first draws do
    // not push every unit into saturation (or an exp link to overflow).
    let network = crate::summary::network::has_layers(p);
    let s = &Settings { start_sd: if network { 0.1 } else { s.start_sd }, ..s.clone() };
    // From --init, or the best of a few random starts (uniform on (−2, 2), or a network's): a
    // start where the density is astronomically small (a recursion that explodes) leaves the
    // ELBO's gradient useless.
    let start: Vec<f64> = match &cfg.init {
        Some(t) if t.complete() => t.theta.clone(),
        init => {
            let mut best: Option<(f64, Vec<f64>)> = None;
            let mut grad = vec![0.0; p.dim()];
            for _ in 0..START_TRIES {
                let theta = if network {
                    let mut t = crate::infer::vi::bbb::initial_means(p, &mut rng);
                    if let Some(i) = init {
                        i.apply_to(&mut t);
                    }
                    t
                } else {
                    crate::ir::point::random_start(init.as_ref(), p.dim(), &mut rng)
                };
                let lp = crate::density::LogDensity::logp_grad(&mut density, &theta, &mut grad).unwrap_or(f64::NAN);
                if lp.is_finite() && best.as_ref().is_none_or(|(b, _)| lp > *b) {
                    best = Some((lp, theta));
                }
            }
            match best {
                Some((_, theta)) => theta,
                None => {
                    let locate = crate::summary::Locate { program: p, sources, init: init.as_ref(), seed: cfg.seed };
                    let tried = crate::summary::starts_tried(init.as_ref(), START_TRIES, "");
                    let message = format!("no starting point: {tried}, the log density is not finite");
                    return crate::summary::no_initial_point(&message, format, Some(locate));
                }
            }
        }
    };
    let _ = ctrlc::set_handler(|| crate::infer::run::STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(s.iter as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("advi {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t = std::time::Instant::now();
    let fitted = advi::fit(&mut density, start, s, &mut rng, &mut |pr| match pr {
        Progress::Adapting { eta } => bar.set_message(format!("adapting: trying eta = {eta}")),
        Progress::Iteration { iter, elbo } => {
            bar.set_position(iter as u64);
            if let Some(e) = elbo {
                bar.set_message(format!("ELBO {e:.2}"));
            }
        }
    });
    bar.finish_and_clear();
    let seconds = t.elapsed().as_secs_f64();
    let o = match fitted {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: ADVI failed: {e}");
            return 3;
        }
    };
    let algorithm = if s.full_rank { "fullrank" } else { "meanfield" };
    eprintln!(
        "advi ({algorithm}): ELBO {:.3} after {} iterations, eta = {} ({})",
        o.elbo,
        o.iterations,
        o.eta,
        if o.converged { "converged".to_string() } else { o.message.clone() }
    );
    let mut warnings = Vec::new();
    if !o.retries.is_empty() {
        warnings.push(format!(
            "the adapted step size was too large: {}; eta = {} was used",
            o.retries.join("; "),
            o.eta
        ));
    }
    if o.stopped {
        warnings.push(format!("stopped early after {} iterations: the draws are from q as it was then", o.iterations));
    } else if o.diverging {
        warnings.push(format!(
            "the ELBO is diverging: its recent estimates change by more than half from one to the next (the last {:.4e}); the draws are from q as it was at the end. Try a smaller --eta, --init a better start, or --method nuts",
            o.elbo
        ));
    } else if !o.converged {
        warnings.push(format!(
            "the ELBO did not converge in {} iterations (relative change above --tol-rel-obj {}); run more --iter, or try another --eta",
            s.iter, s.tol_rel_obj
        ));
    }
    let mut record = serde_json::Map::new();
    record.insert("algorithm".into(), algorithm.into());
    record.insert("elbo".into(), o.elbo.into());
    record.insert("iterations".into(), o.iterations.into());
    record.insert("converged".into(), o.converged.into());
    record.insert("diverging".into(), o.diverging.into());
    record.insert("eta".into(), o.eta.into());
    record.insert("message".into(), o.message.clone().into());
    record.insert("seconds".into(), seconds.into());
    record.insert(
        "trace".into(),
        o.trace.iter().map(|(i, e, r)| serde_json::json!({"iter": i, "elbo": e, "rel_change": r})).collect(),
    );
    let settings = vec![
        "variational".to_string(),
        format!("  algorithm = {algorithm}"),
        format!("  iter = {}", s.iter),
        format!("  grad_samples = {}", s.grad_samples),
        format!("  elbo_samples = {}", s.elbo_samples),
        format!("  eta = {}", o.eta),
        format!("  adapt engaged = {}", s.eta.is_none()),
        format!("  tol_rel_obj = {}", s.tol_rel_obj),
        format!("  eval_elbo = {}", s.eval_elbo),
    ];
    let out = crate::methods::vi::Output {
        method: "advi",
        layout: crate::methods::vi::Layout::Variational,
        settings,
        record,
        warnings,
        output_draws,
        all,
    };
    match crate::methods::vi::write(p, cfg, &mut density, &o.q, &mut rng, out) {
        0 if o.diverging => 3,
        code => code,
    }
}
