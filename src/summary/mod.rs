//! Posterior summaries of a run's chains: diagnostics, the table and summary.json. (The draws
//! files are written while sampling, by `infer::stan_csv`.)
pub mod network;
pub mod stats;
pub mod table;

use crate::infer::run::{column_names, Chain, Config, Method, INIT_TRIES, NO_INITIAL_POINT};
use crate::ir::point::Init;
use crate::ir::Program;
use std::path::Path;

/// How the summary is shown.
pub struct View<'a> {
    /// The forward program on the training data, for the predictions' convergence rows of a
    /// model with layers ([`network`]).
    pub forward: Option<&'a Program>,
    /// Every row, layer weights included.
    pub all: bool,
    /// How diagnostics are printed, and the model's sources they point into.
    pub format: crate::diag::Format,
    pub sources: &'a crate::source::SourceMap,
}

/// The starting points E0604 says were tried: the one `--init` gives, or `tries` random ones
/// (`where_` says whose: "in each chain"), around the values of a partial `--init`.
pub fn starts_tried(init: Option<&Init>, tries: usize, where_: &str) -> String {
    match init {
        Some(i) if i.complete() => "at the point --init gives".to_string(),
        Some(i) => format!(
            "at {tries} points{where_} (the values --init gives; {}, which it does not give, uniform on (-2, 2) unconstrained)",
            i.missing.join(", ")
        ),
        None => format!("at {tries} random points{where_} (every unconstrained parameter uniform on (-2, 2))"),
    }
}

/// The label of a diagnostic at the operation where the log density stops being finite
/// (E0603, E0604).
pub const NOT_FINITE_HERE: &str = "the log density stops being finite here, from finite values";

/// Where a program's log density stops being finite, for E0604: the model and its sources,
/// and the starting point given (`--init`) or the seed of random ones.
pub struct Locate<'a> {
    pub program: &'a Program,
    pub sources: &'a crate::source::SourceMap,
    pub init: Option<&'a Init>,
    pub seed: u64,
}

/// E0604 with `message`: no point where the log density is finite was found to start from.
/// With `locate`, the diagnostic points at the operation where the log density first stops
/// being finite at such a point (a log of a negative number, a value outside its
/// distribution's support). Returns the exit code, 1: a model error with its diagnostic (SPEC
/// §8), not a failure of inference's checks.
pub fn no_initial_point(message: &str, format: crate::diag::Format, locate: Option<Locate>) -> i32 {
    use crate::diag::{Code, Diagnostic};
    let at = locate.as_ref().and_then(|l| {
        use rand::SeedableRng;
        let mut interp = crate::ir::interp::Interp::new(l.program);
        let mut rng = rand::rngs::StdRng::seed_from_u64(l.seed);
        (0..10).find_map(|k| {
            let theta: Vec<f64> = match (l.init, k) {
                (Some(i), k) if k > 0 && i.complete() => return None,
                _ => crate::ir::point::random_start(l.init, l.program.dim(), &mut rng),
            };
            interp.first_not_finite_span(&theta)
        })
    });
    let d = match at {
        Some((span, label)) => Diagnostic::error(Code::NoInitialPoint, span, message.to_string()).with_label(label),
        None => Diagnostic::error_nowhere(Code::NoInitialPoint, message.to_string()),
    }
    .with_help("look for arithmetic outside its domain there (the log of a negative number, a scale that can be 0 or negative: declare it `<lower=0>`), or give a point where the density is finite with --init; `bnnc logp` evaluates the model at one point");
    let mut diags = crate::diag::Diagnostics::new();
    diags.push(d);
    let empty = crate::source::SourceMap::new();
    eprint!("{}", crate::diag::render(&diags, locate.as_ref().map_or(&empty, |l| l.sources), format));
    1
}

/// The warning for variables whose draws are not all finite (a generated quantity outside
/// its function's domain): each with how many of `draws` draws, or `None` when all are.
pub fn non_finite_warning<'a>(columns: impl Iterator<Item = (&'a str, usize)>, draws: usize) -> Option<String> {
    let bad: Vec<String> = columns.filter(|(_, k)| *k > 0).map(|(n, k)| format!("{n} ({k} of {draws})")).collect();
    if bad.is_empty() {
        return None;
    }
    let shown = bad.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    let more = if bad.len() > 5 { format!(" and {} more", bad.len() - 5) } else { String::new() };
    Some(format!(
        "not finite (NaN or infinite) in some draws: {shown}{more}; a value outside a function's domain (the log of a negative number, a division by 0), or a quantity whose moments do not exist; their summaries are NaN or infinite"
    ))
}

/// Summarise a run: print the table and warnings, write summary.json. Returns the exit code
/// (0; 1 when no chain could start, a model error; 3 when inference failed its own checks).
pub fn report(p: &Program, cfg: &Config, chains: &[Chain], out_dir: &Path, view: &View) -> i32 {
    let names = column_names(p);
    // Every chain without a starting point: one diagnostic for all of them.
    fn no_start(c: &Chain) -> Option<&str> {
        c.error.as_deref().and_then(|e| e.strip_prefix(NO_INITIAL_POINT))
    }
    if !chains.is_empty() && chains.iter().all(|c| no_start(c).is_some()) {
        let why = no_start(&chains[0]).unwrap_or_default().trim().trim_start_matches('(').trim_end_matches(')');
        let tried = starts_tried(cfg.init.as_ref(), INIT_TRIES, " in each chain");
        let locate = Locate { program: p, sources: view.sources, init: cfg.init.as_ref(), seed: cfg.seed };
        return no_initial_point(&format!("no chain could start: {tried}, {why}"), view.format, Some(locate));
    }
    for (c, ch) in chains.iter().enumerate() {
        if let Some(e) = &ch.error {
            eprintln!("error: chain {}: {e}", c + 1);
        }
    }
    let ok: Vec<&Chain> = chains.iter().filter(|c| c.error.is_none() && !c.draws.is_empty()).collect();
    if ok.is_empty() {
        if chains.iter().any(|c| c.stopped) {
            eprintln!("warning: stopped during warmup: no draws yet, so no fit was written");
            return 3;
        }
        eprintln!("error: no chain produced draws");
        return 3;
    }
    // Equal lengths (a stopped run keeps what every chain has).
    let n = ok.iter().map(|c| c.draws.len()).min().unwrap_or(0);
    let mut rows = Vec::new();
    let mut non_finite = Vec::new();
    for (j, (name, _)) in names.iter().enumerate() {
        let per_chain: Vec<Vec<f64>> = ok.iter().map(|c| c.draws[..n].iter().map(|d| d[j]).collect()).collect();
        non_finite.push(per_chain.iter().flatten().filter(|v| !v.is_finite()).count());
        rows.push((name.clone(), stats::summarise(&per_chain)));
    }
    let lp: Vec<Vec<f64>> = ok.iter().map(|c| c.stats[..n].iter().map(|s| s.logp).collect()).collect();
    let mut with_lp = vec![("lp__".to_string(), stats::summarise(&lp))];
    // A network: the identifiable rows one by one, each layer's weights folded into a line.
    let layered = network::has_layers(p);
    let predictive = match view.forward {
        Some(f) if layered => network::predictive_rows(f, &ok, n, 4),
        _ => Vec::new(),
    };
    let (shown, layers) = if layered { network::fold(p, &rows) } else { (rows.clone(), Vec::new()) };
    // What the convergence warnings look at: for a network, not the weights.
    let checked: Vec<(String, stats::Summary)> = shown.iter().chain(&predictive).cloned().collect();
    // Printed once summary.json is written (a reader that closes the pipe early must not cost
    // the fit).
    let text = if view.all || !layered {
        with_lp.extend(rows.iter().cloned());
        with_lp.extend(predictive.iter().cloned());
        table::table(&with_lp)
    } else {
        with_lp.extend(checked.iter().cloned());
        format!(
            "{}\n{}{}",
            table::table(&with_lp),
            network::layer_table(&layers),
            "note: a network's weights are not identifiable: permuting hidden units or flipping signs\n\
             \x20     leaves every prediction as it is, so the weights' R-hat is no convergence check.\n\
             \x20     E[y[i]] (P(y[i]=label) for classes) are predictions at training rows: their R-hat is.\n\
             \x20     --all prints every weight; summary.json holds them all.\n"
        )
    };

    let divergences: usize = ok.iter().map(|c| c.stats[..n].iter().filter(|s| s.divergent).count()).sum();
    let depth_hits: usize =
        ok.iter().map(|c| c.stats[..n].iter().filter(|s| s.tree_depth >= cfg.max_depth).count()).sum();
    let warm: f64 = ok.iter().map(|c| c.seconds_warmup).sum();
    let samp: f64 = ok.iter().map(|c| c.seconds_sampling).sum();
    let grads: usize = ok.iter().map(|c| c.grad_evals).sum();
    let stopped = chains.iter().any(|c| c.stopped);

    // Warnings at Stan's thresholds, each with what to try.
    let mut warnings = Vec::new();
    let total = ok.len() * n;
    if divergences > 0 {
        let remedy = if layered {
            "tighter priors on the weights, which keep the network out of regions of extreme curvature"
        } else {
            "reparameterising (hierarchical scales in non-centred form, if they are not)"
        };
        // Which chains: one chain that diverges at almost every transition is a chain stuck
        // where the others are not.
        let by_chain = if ok.len() > 1 {
            let counts: Vec<String> =
                ok.iter().map(|c| c.stats[..n].iter().filter(|s| s.divergent).count().to_string()).collect();
            format!(" (by chain: {})", counts.join(", "))
        } else {
            String::new()
        };
        warnings.push(format!("{divergences} of {total} transitions after warmup diverged{by_chain}: the posterior has regions the sampler cannot follow; try --adapt-delta 0.95 (smaller steps) or {remedy}"));
    }
    let dense = if cfg.dense { "" } else { " or --metric dense" };
    if depth_hits > 0 && cfg.method == Method::Nuts {
        warnings.push(format!("{depth_hits} of {total} transitions hit the maximum tree depth {}: the step size is small for this geometry; try --max-depth 12{dense}", cfg.max_depth));
    }
    let bad_rhat: Vec<&str> = checked.iter().filter(|(_, s)| s.rhat > 1.01).map(|(n, _)| n.as_str()).collect();
    if !bad_rhat.is_empty() {
        let who = if ok.len() > 1 { "the chains disagree" } else { "the chain's two halves disagree" };
        let dense = if cfg.dense { "" } else { ", try --metric dense if parameters are strongly correlated" };
        warnings.push(format!(
            "R-hat above 1.01 for {} ({}): {who}; run longer (--warmup, --draws){dense}, or reparameterise",
            bad_rhat.len(),
            preview(&bad_rhat)
        ));
    }
    let low_ess: Vec<&str> =
        checked.iter().filter(|(_, s)| s.ess_bulk < 100.0 * ok.len() as f64).map(|(n, _)| n.as_str()).collect();
    if !low_ess.is_empty() {
        warnings.push(format!(
            "bulk ESS below {} for {} ({}): estimates are imprecise; run more draws",
            100 * ok.len(),
            low_ess.len(),
            preview(&low_ess)
        ));
    }
    for (c, ch) in ok.iter().enumerate() {
        let e: Vec<f64> = ch.stats[..n].iter().map(|s| s.energy).collect();
        let b = stats::e_bfmi(&e);
        if b < 0.3 {
            warnings.push(format!("chain {}: E-BFMI {b:.3} is below 0.3: the momentum resampling explores the energy poorly; reparameterise (heavy tails, funnels)", c + 1));
        }
    }
    warnings.extend(stuck_chains(&ok, n));
    let columns = names.iter().zip(&non_finite).map(|((name, _), k)| (name.as_str(), *k));
    warnings.extend(non_finite_warning(columns, n * ok.len()));
    for (c, ch) in ok.iter().enumerate() {
        if let Some(r) = ch.restarts.last() {
            let count = match ch.restarts.len() {
                1 => String::new(),
                k => format!(" ({k} starts given up)"),
            };
            warnings.push(format!(
                "chain {} started again from a new random point{count}: from the one before (log density {:.6e}) it made no progress in {} warmup iterations (step size {:.3e}); if this recurs, narrower priors or --init keep chains out of such regions",
                c + 1,
                r.start_logp,
                r.iterations,
                r.step_size
            ));
        }
    }
    let mut failed = crate::compiled::GeneratedFailures::default();
    ok.iter().for_each(|c| failed.merge(&c.generated_failures));
    warnings.extend(failed.warning(ok.iter().map(|c| c.draws.len()).sum()));
    if stopped {
        let of = if ok.len() < chains.len() {
            format!(" from {} of {} chains", ok.len(), chains.len())
        } else {
            String::new()
        };
        warnings.push(format!("stopped early: {n} draws per chain kept{of}"));
    }

    let mut vars = serde_json::Map::new();
    for (name, s) in &rows {
        vars.insert(name.clone(), serde_json::to_value(s).unwrap_or(serde_json::Value::Null));
    }
    let mut pred = serde_json::Map::new();
    for (name, s) in &predictive {
        pred.insert(name.clone(), serde_json::to_value(s).unwrap_or(serde_json::Value::Null));
    }
    let json = serde_json::json!({
        "method": if cfg.method == Method::Nuts { "nuts" } else { "hmc" },
        "model_hash": cfg.model_hash,
        "chains": ok.len(),
        "draws_per_chain": n,
        "variables": vars,
        "predictive": pred,
        "sampler": {
            "divergences": divergences,
            "max_treedepth_hits": depth_hits,
            "seconds_warmup": warm,
            "seconds_sampling": samp,
            "grad_evals": grads,
            "restarts": ok.iter().map(|c| c.restarts.len()).collect::<Vec<usize>>(),
            "step_size": ok.iter().map(|c| c.step_size).collect::<Vec<f64>>(),
        },
        "warnings": warnings,
    });
    let path = out_dir.join("summary.json");
    if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap_or_default()) {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        return 2;
    }
    print!("{text}");
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    // Failed its own checks badly: every chain stuck (no move in nearly every transition, as
    // when every proposal is rejected or a step size has run off to a scale where moves no
    // longer change the value), or every transition diverged.
    let stuck = !ok.is_empty()
        && ok.iter().all(|c| {
            c.stats[..n].iter().all(|s| s.accept_stat == 0.0) || (n >= 2 && still(c, n) as f64 >= 0.9 * (n - 1) as f64)
        });
    if stuck || divergences == total || chains.iter().any(|c| c.error.is_some()) {
        eprintln!(
            "error: inference failed: {}",
            if stuck {
                "every chain is stuck"
            } else if divergences == total {
                "every transition diverged"
            } else {
                "a chain could not run"
            }
        );
        return 3;
    }
    0
}

/// Chains that adapted a step size a thousand times smaller than the median chain's, or that
/// stayed where they were in most transitions: a chain caught where the others are not (a
/// region of extreme curvature, far from the posterior's bulk). R-hat says the chains
/// disagree; this says which chain and why.
fn stuck_chains(ok: &[&Chain], n: usize) -> Vec<String> {
    if ok.len() < 2 || n < 2 {
        return Vec::new();
    }
    let mut steps: Vec<f64> = ok.iter().map(|c| c.step_size).collect();
    steps.sort_by(f64::total_cmp);
    let median_step = steps[steps.len() / 2];
    let mean_lp = |c: &Chain| c.stats[..n].iter().map(|s| s.logp).sum::<f64>() / n as f64;
    let mut out = Vec::new();
    for (k, c) in ok.iter().enumerate() {
        let still = still(c, n);
        let tiny_step = c.step_size < 1e-3 * median_step;
        if !tiny_step && (still as f64) < 0.9 * (n - 1) as f64 {
            continue;
        }
        let others: Vec<f64> = ok.iter().enumerate().filter(|(j, _)| *j != k).map(|(_, c)| mean_lp(c)).collect();
        let others_lp = others.iter().sum::<f64>() / others.len() as f64;
        out.push(format!(
            "chain {} looks stuck: step size {:.3e} (median of all chains {:.3e}), no move in {} of {} transitions, mean log density {:.6e} (other chains {:.6e}); rerun with another --seed or start it elsewhere with --init",
            k + 1,
            c.step_size,
            median_step,
            still,
            n - 1,
            mean_lp(c),
            others_lp
        ));
    }
    out
}

/// The transitions among a chain's first `n` draws that left it where it was (none when
/// there is nothing to move: a model without parameters).
fn still(c: &Chain, n: usize) -> usize {
    c.draws[..n].windows(2).filter(|w| !w[0].is_empty() && w[0] == w[1]).count()
}

fn preview(names: &[&str]) -> String {
    if names.len() <= 4 {
        names.join(", ")
    } else {
        format!("{}, ...", names[..4].join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::nuts::Stats;

    fn chain(step: f64, moving: bool, lp: f64) -> Chain {
        let n = 50;
        let draws = (0..n).map(|i| vec![if moving { i as f64 } else { 1.0 }]).collect();
        let st = Stats {
            logp: lp,
            accept_stat: 0.8,
            step_size: step,
            tree_depth: 3,
            n_leapfrog: 7,
            divergent: false,
            energy: -lp,
        };
        Chain {
            draws,
            stats: vec![st; n],
            step_size: step,
            inv_metric: vec![1.0],
            seconds_warmup: 0.0,
            seconds_sampling: 0.0,
            grad_evals: 0,
            error: None,
            stopped: false,
            restarts: Vec::new(),
            generated_failures: Default::default(),
        }
    }

    #[test]
    fn a_chain_that_does_not_move_or_has_a_vanishing_step_is_named() {
        let (a, b, c) = (chain(0.9, true, -10.0), chain(1e-20, true, -1e9), chain(0.8, false, -10.0));
        let d = chain(0.7, true, -11.0);
        let w = stuck_chains(&[&a, &b, &c, &d], 50);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("chain 2 looks stuck"), "{}", w[0]);
        assert!(w[1].starts_with("chain 3 looks stuck"), "{}", w[1]);
        assert!(stuck_chains(&[&a, &d], 50).is_empty());
    }
}
