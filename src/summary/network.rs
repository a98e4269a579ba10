//! What a run's summary shows for a model with network layers. A network's weights are not
//! identifiable: permuting hidden units, or flipping the signs of a tanh unit's weights in and
//! out, leaves every prediction unchanged, so chains that agree on the predictions may hold
//! different weights, and the weights' R-hat says nothing about convergence. The summary leads
//! with what is identifiable — the model's own parameters, the log density, and the
//! predictions at a few training inputs — and folds each layer's weights into one line.

use crate::infer::run::Chain;
use crate::ir::Program;
use crate::summary::stats::{self, Summary};

/// The layer a parameter belongs to: the path before its last dot (`h` for `h.W`,
/// `f.fractal.0.dense` for `f.fractal.0.dense.b`); `None` for the model's own parameters
/// (a source identifier holds no dot).
pub fn layer_of(param: &str) -> Option<&str> {
    param.rsplit_once('.').map(|(l, _)| l)
}

/// Whether the program has layer parameters.
pub fn has_layers(p: &Program) -> bool {
    p.params.iter().any(|pl| layer_of(&pl.name).is_some())
}

/// One layer's weights, folded.
pub struct Layer {
    pub name: String,
    pub values: usize,
    pub rhat_max: f64,
    pub rhat_median: f64,
    pub ess_bulk_min: f64,
}

/// Split the summary's rows (one per scalar, in column order) into the rows shown one by one
/// and the layers folded. Column `j` belongs to the parameter whose elements it falls in.
pub fn fold(p: &Program, rows: &[(String, Summary)]) -> (Vec<(String, Summary)>, Vec<Layer>) {
    let mut owner: Vec<Option<String>> = Vec::with_capacity(rows.len());
    for pl in &p.params {
        owner.extend(std::iter::repeat_n(layer_of(&pl.name).map(str::to_string), pl.len()));
    }
    let mut shown = Vec::new();
    let mut layers: Vec<(String, Vec<&Summary>)> = Vec::new();
    for (j, (name, s)) in rows.iter().enumerate() {
        match owner.get(j).cloned().flatten() {
            Some(l) => match layers.iter_mut().find(|(n, _)| *n == l) {
                Some((_, v)) => v.push(s),
                None => layers.push((l, vec![s])),
            },
            None => shown.push((name.clone(), s.clone())),
        }
    }
    let folded = layers
        .into_iter()
        .map(|(name, v)| {
            let mut r: Vec<f64> = v.iter().map(|s| s.rhat).filter(|x| x.is_finite()).collect();
            r.sort_by(f64::total_cmp);
            Layer {
                name,
                values: v.len(),
                rhat_max: r.last().copied().unwrap_or(f64::NAN),
                rhat_median: r.get(r.len() / 2).copied().unwrap_or(f64::NAN),
                ess_bulk_min: v.iter().map(|s| s.ess_bulk).fold(f64::INFINITY, f64::min),
            }
        })
        .collect();
    (shown, folded)
}

/// Rows of the predictions' convergence: the expected value (for classes, the probability of
/// the observed class) of up to `count` elements of the first observed variable, spread over
/// its rows, at every draw of every chain, summarised like a parameter. `forward` is the
/// forward program on the training data; each draw's first `forward.dim()` values are its
/// parameters.
pub fn predictive_rows(forward: &Program, chains: &[&Chain], n: usize, count: usize) -> Vec<(String, Summary)> {
    use crate::compiled::{Backend, Forward};
    let Some(site) = forward.sites.iter().position(|s| crate::predict::family::kind(s.family).is_some()) else {
        return Vec::new();
    };
    let Ok(mut fw) = Forward::new(forward, Backend::Jit) else { return Vec::new() };
    let dim = forward.dim();
    let Some(first) = chains.first().and_then(|c| c.draws.first()) else { return Vec::new() };
    if first.len() < dim || fw.eval(&first[..dim]).is_err() {
        return Vec::new();
    }
    let total = fw.site(site).execs * forward.info(forward.sites[site].lhs).len();
    if total == 0 {
        return Vec::new();
    }
    let picks: Vec<usize> = if total <= count {
        (0..total).collect()
    } else {
        (0..count).map(|k| k * (total - 1) / (count - 1).max(1)).collect()
    };
    let labels: Vec<f64> =
        picks.iter().map(|i| crate::predict::observed_value(&fw, site, *i).unwrap_or(f64::NAN)).collect();
    let mut values = vec![vec![Vec::with_capacity(n); chains.len()]; picks.len()];
    for (c, ch) in chains.iter().enumerate() {
        for d in &ch.draws[..n] {
            if fw.eval(&d[..dim]).is_err() {
                return Vec::new();
            }
            for (k, i) in picks.iter().enumerate() {
                values[k][c].push(crate::predict::conditional(&fw, site, *i).unwrap_or(f64::NAN));
            }
        }
    }
    let s = &forward.sites[site];
    let class = crate::predict::family::kind(s.family) == Some(crate::predict::family::Kind::Class);
    picks
        .iter()
        .zip(values)
        .zip(labels)
        .map(|((i, v), label)| {
            let name = if class { format!("P({}[{i}]={label})", s.name) } else { format!("E[{}[{i}]]", s.name) };
            (name, stats::summarise(&v))
        })
        .collect()
}

/// The folded layers as printed under the table.
pub fn layer_table(layers: &[Layer]) -> String {
    use std::fmt::Write;
    let width = layers.iter().map(|l| l.name.len()).max().unwrap_or(5).max(5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$} {:>8} {:>12} {:>10} {:>12}",
        "layer", "weights", "R_hat median", "R_hat max", "ESS_bulk min"
    );
    for l in layers {
        let _ = writeln!(
            out,
            "{:<width$} {:>8} {:>12.3} {:>10.3} {:>12.0}",
            l.name, l.values, l.rhat_median, l.rhat_max, l.ess_bulk_min
        );
    }
    out
}
