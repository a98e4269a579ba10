//! What the variational methods leave behind, written the same way for each: S draws from q
//! mapped to the constrained space, in CmdStan's variational layout (`lp__`, `log_p__`,
//! `log_g__`, then the model's columns; the first row is q's mean, as CmdStan writes it),
//! the summary table, Pareto k̂ of the importance ratios, and summary.json with the
//! method's record.

use crate::compiled::CompiledModel;
use crate::infer::run::{column_names, Config};
use crate::infer::vi::{psis, Gaussian};
use crate::ir::Program;
use crate::summary::stats::{quantile_sorted, Summary};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::fmt::Write as _;

/// Above it the importance ratios' tail is too heavy to trust q (Yao et al. 2018).
pub const K_HAT_UNRELIABLE: f64 = 0.7;

/// How a variational fit is written.
pub struct Output<'a> {
    /// `advi` or `bbb`.
    pub method: &'a str,
    /// Lines of the draws file's header under `# method = variational`, without the `#`.
    pub settings: Vec<String>,
    /// The method's own record in summary.json (`"vi"`), to which `pareto_k` is added.
    pub record: serde_json::Map<String, serde_json::Value>,
    pub warnings: Vec<String>,
    pub output_draws: usize,
    /// Print every weight of a network's layers.
    pub all: bool,
}

/// Draw from `q`, write draws-1.csv and summary.json under `cfg.out_dir`, print the summary.
/// `density` is the model's full-data log density (for `log_p__` and k̂). Returns the exit code.
pub fn write(
    p: &Program,
    cfg: &Config,
    density: &mut CompiledModel,
    q: &Gaussian,
    rng: &mut impl Rng,
    mut out: Output,
) -> i32 {
    let names = column_names(p);
    let n = q.dim();
    let (mut eps, mut theta) = (vec![0.0; n], vec![0.0; n]);
    let flat = |density: &mut CompiledModel, theta: &[f64]| -> Option<Vec<f64>> {
        let v = density.constrained(theta, true).ok()?;
        Some(v.into_iter().flat_map(|(_, _, x)| x).collect())
    };
    let Some(mean_row) = flat(density, &q.mu) else {
        eprintln!("error: q's mean cannot be mapped to the constrained space");
        return 3;
    };
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(out.output_draws);
    let mut log_ratio = Vec::with_capacity(out.output_draws);
    let mut tries = 0;
    while rows.len() < out.output_draws && tries < 10 * out.output_draws + 100 {
        tries += 1;
        eps.iter_mut().for_each(|e| *e = StandardNormal.sample(rng));
        q.transform(&eps, &mut theta);
        let Some(values) = flat(density, &theta) else { continue };
        let log_p = density.eval(&theta).map_or(f64::NEG_INFINITY, |e| e.logp + e.jacobian);
        let log_g = q.log_density_at(&eps);
        log_ratio.push(log_p - log_g);
        let mut row = vec![0.0, log_p, log_g];
        row.extend(values);
        rows.push(row);
    }
    if rows.is_empty() {
        eprintln!("error: no draw from q could be mapped to the constrained space");
        return 3;
    }
    let k_hat = psis::pareto_k(&log_ratio);
    if let Some(k) = k_hat.filter(|k| *k > K_HAT_UNRELIABLE) {
        out.warnings.push(format!(
            "Pareto k-hat is {k:.2} (above {K_HAT_UNRELIABLE}): the importance ratios p/q have a heavy tail, so q misses much of the posterior and its means and intervals are unreliable; run --method nuts for this model"
        ));
    }
    if k_hat.is_none() {
        out.warnings.push("Pareto k-hat cannot be computed: the importance ratios p/q are not finite, or one dwarfs all the others, so q is far from the posterior; run --method nuts for this model".into());
    }
    out.record.insert("pareto_k".into(), k_hat.map_or(serde_json::Value::Null, serde_json::Value::from));

    // The draws file.
    let Some(dir) = &cfg.out_dir else { return 2 };
    let mut csv = format!("# model = {}\n# method = variational\n", cfg.model_name);
    for line in &out.settings {
        let _ = writeln!(csv, "#   {line}");
    }
    let _ = writeln!(csv, "#   output_draws = {}", rows.len());
    let _ = writeln!(csv, "# random\n#   seed = {}\n# data\n#   file = {}", cfg.seed, cfg.data_file);
    let mut header = vec!["lp__".to_string(), "log_p__".into(), "log_g__".into()];
    header.extend(names.iter().map(|(_, stan)| stan.clone()));
    let _ = writeln!(csv, "{}", header.join(","));
    let line = |r: &[f64]| r.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(",");
    let _ = writeln!(csv, "0,0,0,{}", line(&mean_row));
    for r in &rows {
        let _ = writeln!(csv, "{}", line(r));
    }
    let path = dir.join("draws-1.csv");
    if let Err(e) = std::fs::write(&path, csv) {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        return 2;
    }

    // The summary: q's marginals from its draws.
    let summaries: Vec<(String, Summary)> = names
        .iter()
        .enumerate()
        .map(|(j, (name, _))| (name.clone(), marginal(rows.iter().map(|r| r[3 + j]))))
        .collect();
    print!("{}", table(p, &summaries, out.all));
    let mut vars = serde_json::Map::new();
    for (name, s) in &summaries {
        vars.insert(
            name.clone(),
            serde_json::json!({"mean": s.mean, "sd": s.sd, "q5": s.q5, "q50": s.q50, "q95": s.q95}),
        );
    }
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    let json = serde_json::json!({
        "method": out.method,
        "model_hash": cfg.model_hash,
        "draws": rows.len(),
        "variables": vars,
        "vi": out.record,
        "warnings": out.warnings,
    });
    let path = dir.join("summary.json");
    if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap_or_default()) {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        return 2;
    }
    0
}

/// Mean, sd and quantiles of one column (no chains, so no ESS or R-hat).
fn marginal(values: impl Iterator<Item = f64>) -> Summary {
    let mut v: Vec<f64> = values.collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    v.sort_by(f64::total_cmp);
    Summary {
        mean,
        sd,
        mcse: f64::NAN,
        q5: quantile_sorted(&v, 0.05),
        q50: quantile_sorted(&v, 0.5),
        q95: quantile_sorted(&v, 0.95),
        ess_bulk: f64::NAN,
        ess_tail: f64::NAN,
        rhat: f64::NAN,
    }
}

/// The table of q's marginals; a network's layers folded to a line each (their sd's spread),
/// unless `all`.
fn table(p: &Program, rows: &[(String, Summary)], all: bool) -> String {
    let layered = !all && crate::summary::network::has_layers(p);
    let mut owner: Vec<Option<&str>> = Vec::new();
    for pl in &p.params {
        let l = crate::summary::network::layer_of(&pl.name).filter(|_| layered);
        owner.extend(std::iter::repeat_n(l, pl.len()));
    }
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(8);
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$} {:>10} {:>10} {:>10} {:>10} {:>10}", "", "Mean", "StdDev", "5%", "50%", "95%");
    let mut layers: Vec<(&str, Vec<f64>)> = Vec::new();
    for (j, (name, s)) in rows.iter().enumerate() {
        match owner.get(j).copied().flatten() {
            Some(l) => match layers.iter_mut().find(|(n, _)| *n == l) {
                Some((_, sds)) => sds.push(s.sd),
                None => layers.push((l, vec![s.sd])),
            },
            None => {
                let _ = writeln!(
                    out,
                    "{name:<width$} {:>10} {:>10} {:>10} {:>10} {:>10}",
                    num(s.mean),
                    num(s.sd),
                    num(s.q5),
                    num(s.q50),
                    num(s.q95)
                );
            }
        }
    }
    if !layers.is_empty() {
        let lw = layers.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
        let _ =
            writeln!(out, "\n{:<lw$} {:>8} {:>10} {:>10} {:>10}", "layer", "weights", "sd min", "sd median", "sd max");
        for (l, mut sds) in layers {
            sds.sort_by(f64::total_cmp);
            let _ = writeln!(
                out,
                "{l:<lw$} {:>8} {:>10} {:>10} {:>10}",
                sds.len(),
                num(sds[0]),
                num(sds[sds.len() / 2]),
                num(sds[sds.len() - 1])
            );
        }
        let _ = writeln!(out, "(--all prints every weight; summary.json holds them all)");
    }
    out
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        format!("{x}")
    } else if x != 0.0 && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:.3e}")
    } else {
        format!("{x:.3}")
    }
}
