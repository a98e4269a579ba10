//! Writing a method's draws that are not chains of a sampler (draws from q, ensemble members):
//! draws-1.csv in CmdStan's layout with the method's own columns first, the table of each
//! variable's mean, sd and quantiles (a network's layers folded), and summary.json.

use crate::infer::run::{column_names, Config};
use crate::infer::stan_csv;
use crate::ir::Program;
use crate::summary::stats::{quantile_sorted, Summary};
use std::fmt::Write as _;

/// The draws to write.
pub struct Draws<'a> {
    /// summary.json's `method`.
    pub method: &'a str,
    /// The CSV header's `method =` (CmdStan's name for the kind of output).
    pub csv_method: &'a str,
    /// Lines of the draws file's header under `# method = ...`, without the `#`.
    pub settings: &'a [String],
    /// The method's own columns, first in each row.
    pub leading: &'a [String],
    /// A row written before the draws that is not one (CmdStan's variational mean).
    pub first_row: Option<Vec<f64>>,
    /// Each draw: the leading columns, then the model's columns ([`column_names`]).
    pub rows: &'a [Vec<f64>],
}

/// Write draws-1.csv and summary.json (`extra`'s keys added) under `cfg.out_dir`, print the
/// table and the warnings. Returns the exit code.
pub fn write(p: &Program, cfg: &Config, d: &Draws, extra: serde_json::Value, warnings: Vec<String>, all: bool) -> i32 {
    let names = column_names(p);
    let skip = d.leading.len();
    let mut warnings = warnings;
    let non_finite = names
        .iter()
        .enumerate()
        .map(|(j, (n, _))| (n.as_str(), d.rows.iter().filter(|r| !r[skip + j].is_finite()).count()));
    warnings.extend(crate::summary::non_finite_warning(non_finite, d.rows.len()));
    // The draws file.
    let Some(dir) = &cfg.out_dir else { return 2 };
    let mut csv = format!("# model = {}\n# method = {}\n", cfg.model_name, d.csv_method);
    for line in d.settings {
        let _ = writeln!(csv, "#   {line}");
    }
    let _ = writeln!(csv, "#   output_draws = {}", d.rows.len());
    let _ = writeln!(csv, "# random\n#   seed = {}\n# data\n#   file = {}", cfg.seed, cfg.data_file);
    let mut header = d.leading.to_vec();
    header.extend(names.iter().map(|(_, stan)| stan.clone()));
    let _ = writeln!(csv, "{}", header.join(","));
    let line = |r: &[f64]| r.iter().map(|v| stan_csv::number(*v)).collect::<Vec<_>>().join(",");
    if let Some(first) = &d.first_row {
        let _ = writeln!(csv, "{}", line(first));
    }
    for r in d.rows {
        let _ = writeln!(csv, "{}", line(r));
    }
    let path = dir.join("draws-1.csv");
    if let Err(e) = std::fs::write(&path, csv) {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        return 2;
    }

    // The summary: each column's marginal over the draws.
    let summaries: Vec<(String, Summary)> = names
        .iter()
        .enumerate()
        .map(|(j, (name, _))| (name.clone(), marginal(d.rows.iter().map(|r| r[skip + j]))))
        .collect();
    let mut vars = serde_json::Map::new();
    for (name, s) in &summaries {
        vars.insert(
            name.clone(),
            serde_json::json!({"mean": s.mean, "sd": s.sd, "q5": s.q5, "q50": s.q50, "q95": s.q95}),
        );
    }
    let mut json = serde_json::json!({
        "method": d.method,
        "model_hash": cfg.model_hash,
        "draws": d.rows.len(),
        "variables": vars,
        "warnings": warnings,
    });
    if let (Some(obj), serde_json::Value::Object(more)) = (json.as_object_mut(), extra) {
        obj.extend(more);
    }
    let path = dir.join("summary.json");
    if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap_or_default()) {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        return 2;
    }
    // Printed once the files are written (a reader that closes the pipe early must not cost
    // the fit).
    print!("{}", table(p, &summaries, all));
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    0
}

/// Mean, sd and quantiles of one column (no chains, so no ESS or R-hat).
fn marginal(values: impl Iterator<Item = f64>) -> Summary {
    let mut v: Vec<f64> = values.collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    // A column that does not vary (a weight a last-layer Laplace keeps at the mode) has sd 0,
    // not the rounding of its mean.
    let constant = v.iter().all(|x| x.to_bits() == v[0].to_bits());
    let mean = if constant && !v.is_empty() { v[0] } else { mean };
    let sd =
        if constant { 0.0 } else { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt() };
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

/// The table of the marginals; a network's layers folded to a line each (their sd's spread),
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
    // Every row a layer's weight: the header over no rows would stand alone.
    if owner.len() < rows.len() || owner.iter().any(Option::is_none) {
        let _ =
            writeln!(out, "{:<width$} {:>10} {:>10} {:>10} {:>10} {:>10}", "", "Mean", "StdDev", "5%", "50%", "95%");
    }
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
