//! Prediction from a fit: the posterior predictive distribution of every observed variable
//! on new inputs, with its mean and spread split into the part the posterior's uncertainty
//! explains (epistemic) and the part the likelihood's noise does (aleatoric), and scores
//! against observed values and out-of-distribution inputs.
//!
//! For draws θ₁..θ_S and one observed element y:
//!
//! ```text
//! mean           = (1/S) Σ_s E[y | θ_s]
//! var_epistemic  = (1/S) Σ_s (E[y | θ_s] − mean)²          (how much the draws disagree)
//! var_aleatoric  = (1/S) Σ_s Var[y | θ_s]                   (noise the model expects)
//! sd²            = var_epistemic + var_aleatoric            (law of total variance)
//! ```
//!
//! For classes with probabilities p_s = p(y | θ_s) and p̄ = (1/S) Σ_s p_s:
//! `entropy = H(p̄) = (1/S) Σ_s H(p_s) + I(y; θ)`, the expected entropy (aleatoric) plus the
//! mutual information between the label and the parameters (epistemic).
//!
//! The moments come from each family's formulas ([`family::moments`]); quantiles, CRPS and
//! interval coverage from predictive draws, one or more per posterior draw.

pub mod command;
pub mod family;
pub mod fit;
pub mod linear;
pub mod metrics;

use crate::compiled::Forward;
use crate::density::EvalError;
use crate::math::dist::Family;
use family::Kind;
use rand::SeedableRng;

pub use crate::ir::lower::observed_names;

/// One observed element's predictive summary.
#[derive(Clone, Debug)]
pub enum Row {
    Real {
        mean: f64,
        sd: f64,
        q5: f64,
        q50: f64,
        q95: f64,
        var_epistemic: f64,
        var_aleatoric: f64,
        /// log((1/S) Σ_s p(y | θ_s)) at the observed value (NaN without one).
        log_lik: f64,
        crps: f64,
        /// Whether the observed value lies in the central 50, 90 and 95% intervals.
        covered: [bool; 3],
        /// The fraction of predictive draws at or below the observed value (its probability
        /// integral transform; uniform on [0, 1] across rows when the predictive is
        /// calibrated); NaN without one.
        pit: f64,
    },
    Class {
        probs: Vec<f64>,
        pred: usize,
        entropy: f64,
        expected_entropy: f64,
        mutual_information: f64,
        log_lik: f64,
    },
}

/// One observed variable's predictions, element by element.
#[derive(Clone, Debug)]
pub struct Variable {
    pub name: String,
    pub kind: Kind,
    pub family: Family,
    /// The observed values, when the new data hold them.
    pub observed: Option<Vec<f64>>,
    /// Each row's position in the observed variable (row-major), in the order the model
    /// visits them (`for t in K..T { y[t] ~ ... }` starts at K).
    pub index: Vec<usize>,
    pub rows: Vec<Row>,
}

impl Variable {
    /// The predictive mean of each row (for classes, the probability of class 1 when there
    /// are two, else of the predicted class).
    pub fn means(&self) -> ndarray::Array1<f64> {
        self.rows
            .iter()
            .map(|r| match r {
                Row::Real { mean, .. } => *mean,
                Row::Class { probs, pred, .. } => {
                    if probs.len() == 2 {
                        probs[1]
                    } else {
                        probs[*pred]
                    }
                }
            })
            .collect()
    }

    /// The predictive sd of each real or int row (NaN for class rows).
    pub fn sds(&self) -> ndarray::Array1<f64> {
        self.rows.iter().map(|r| if let Row::Real { sd, .. } = r { *sd } else { f64::NAN }).collect()
    }
}

/// Where element `j` of an execution reads a broadcast argument of `len` elements per
/// execution, for a variate of `n` elements: the same element, the one scalar, or the
/// column (a vector along the rows of a matrix).
fn at(j: usize, len: usize, n: usize) -> usize {
    if len == n {
        j
    } else if len <= 1 {
        0
    } else {
        j % len
    }
}

/// Execution `e`'s copy of a value of `len` elements (a constant's one copy serves all).
fn exec_slice(all: &[f64], len: usize, e: usize) -> &[f64] {
    let e = if all.len() >= (e + 1) * len { e } else { 0 };
    all.get(e * len..(e + 1) * len).unwrap_or(&[])
}

/// Running sums of one real element over draws.
#[derive(Clone, Default)]
struct RealAcc {
    /// Welford's mean and sum of squares of E[y | θ_s].
    n: f64,
    mean: f64,
    m2: f64,
    var_sum: f64,
    lmax: f64,
    lsum: f64,
    draws: Vec<f64>,
}

#[derive(Clone, Default)]
struct ClassAcc {
    probs: Vec<f64>,
    ent_sum: f64,
    lmax: f64,
    lsum: f64,
}

fn log_add(lmax: &mut f64, lsum: &mut f64, l: f64) {
    if l.is_nan() {
        *lsum = f64::NAN;
    } else if l > *lmax {
        *lsum = *lsum * (*lmax - l).exp() + 1.0;
        *lmax = l;
    } else {
        *lsum += (l - *lmax).exp();
    }
}

/// Predictive draws kept per element: enough for quantiles at every posterior draw count,
/// with memory bounded on large test sets.
const TARGET_DRAWS: usize = 1000;
const MAX_KEPT: usize = 20_000_000;

/// Predict every observed variable at each of `draws` (constrained parameter vectors of the
/// forward program). `with_observed` names the variables whose values the data hold (their
/// scores are computed). Predictive draws use `seed`.
pub fn predict(
    fw: &mut Forward,
    draws: &[Vec<f64>],
    with_observed: &[String],
    seed: u64,
) -> Result<Vec<Variable>, EvalError> {
    predict_with(fw, draws, None, with_observed, seed)
}

/// [`predict`], with the distributions' arguments expanded to first order at a mode when
/// `linearise` holds one ([`linear::Linearised`]).
pub fn predict_with(
    fw: &mut Forward,
    draws: &[Vec<f64>],
    linearise: Option<&[f64]>,
    with_observed: &[String],
    seed: u64,
) -> Result<Vec<Variable>, EvalError> {
    let mut lin = linearise.map(|mode| linear::Linearised::new(fw, mode)).transpose()?;
    let p = fw.program();
    let s_total = draws.len();
    // Group sites by variable, keeping program order.
    let mut vars: Vec<Variable> = Vec::new();
    let mut site_var = Vec::new();
    for site in &p.sites {
        let Some(kind) = family::kind(site.family) else {
            site_var.push(None);
            continue;
        };
        let k = match vars.iter().position(|v| v.name == site.name && v.family == site.family) {
            Some(k) => k,
            None => {
                vars.push(Variable {
                    name: site.name.clone(),
                    kind,
                    family: site.family,
                    observed: None,
                    index: Vec::new(),
                    rows: Vec::new(),
                });
                vars.len() - 1
            }
        };
        site_var.push(Some(k));
    }
    // Element counts (from the first draw's evaluation) and accumulators.
    let mut real: Vec<Vec<RealAcc>> = vec![Vec::new(); vars.len()];
    let mut class: Vec<Vec<ClassAcc>> = vec![Vec::new(); vars.len()];
    let mut observed: Vec<Vec<f64>> = vec![Vec::new(); vars.len()];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut probs = Vec::new();
    let reps = TARGET_DRAWS.div_ceil(s_total.max(1)).max(1);
    let mut stride = 1;
    let mut site_base = vec![0; p.sites.len()];
    for (s, draw) in draws.iter().enumerate() {
        match &mut lin {
            Some(l) => l.eval(fw, draw)?,
            None => fw.eval(draw)?,
        }
        for (k, site) in p.sites.iter().enumerate() {
            let Some(vi) = site_var[k] else { continue };
            let sv = match &lin {
                Some(l) => l.site(fw, k),
                None => fw.site(k),
            };
            let n = p.info(site.lhs).len();
            let lens: Vec<usize> = site.args.iter().map(|a| p.info(*a).len()).collect();
            if s == 0 {
                // The first draw fixes where each site's elements go among its variable's.
                site_base[k] = observed[vi].len();
                let count = sv.execs * n;
                for e in 0..sv.execs {
                    observed[vi].extend_from_slice(exec_slice(sv.lhs, n, e));
                }
                let index = &mut vars[vi].index;
                match sv.index {
                    Some(ix) if ix.len() == count => index.extend(ix.iter().map(|i| *i as usize)),
                    Some(ix) if ix.len() * sv.execs == count => {
                        (0..sv.execs).for_each(|_| index.extend(ix.iter().map(|i| *i as usize)))
                    }
                    _ => {
                        let from = index.last().map(|i| i + 1).unwrap_or(0);
                        index.extend(from..from + count);
                    }
                }
                let len = observed[vi].len();
                if vars[vi].kind == Kind::Class {
                    class[vi].resize(len, ClassAcc { lmax: f64::NEG_INFINITY, ..Default::default() });
                } else {
                    real[vi].resize(len, RealAcc { lmax: f64::NEG_INFINITY, ..Default::default() });
                }
            }
            let base = site_base[k];
            for e in 0..sv.execs {
                for j in 0..n {
                    let idx = base + e * n + j;
                    let y = exec_slice(sv.lhs, n, e)[j];
                    let Some(el) = element(p, site, &sv, &lens, e, j) else { continue };
                    if el.class_probs(site.family, &mut probs) {
                        let acc = &mut class[vi][idx];
                        if acc.probs.is_empty() {
                            acc.probs = vec![0.0; probs.len()];
                        }
                        acc.probs.iter_mut().zip(&probs).for_each(|(a, q)| *a += q);
                        acc.ent_sum += family::entropy(&probs);
                        let l = probs.get(y as usize).map(|q| q.ln()).unwrap_or(f64::NEG_INFINITY);
                        log_add(&mut acc.lmax, &mut acc.lsum, l);
                    } else if let Element::Real(par) = el {
                        let f = family::marginal(site.family);
                        let (m, v) = family::moments(f, &par);
                        let acc = &mut real[vi][idx];
                        acc.n += 1.0;
                        let d = m - acc.mean;
                        acc.mean += d / acc.n;
                        acc.m2 += d * (m - acc.mean);
                        acc.var_sum += v;
                        log_add(&mut acc.lmax, &mut acc.lsum, crate::math::dist::elem_log_density(f, y, &par));
                        if s % stride == 0 {
                            for _ in 0..reps {
                                acc.draws.push(family::draw(f, &par, &mut rng));
                            }
                        }
                    }
                }
            }
        }
        if s == 0 {
            let elements: usize = observed.iter().map(Vec::len).sum();
            stride = (elements * s_total * reps).div_ceil(MAX_KEPT).max(1);
        }
    }
    for (vi, v) in vars.iter_mut().enumerate() {
        let has_obs = with_observed.iter().any(|n| *n == v.name);
        let sf = s_total as f64;
        if v.kind == Kind::Class {
            v.rows = class[vi]
                .iter()
                .map(|acc| {
                    let probs: Vec<f64> = acc.probs.iter().map(|q| q / sf).collect();
                    let pred = (0..probs.len()).max_by(|a, b| probs[*a].total_cmp(&probs[*b])).unwrap_or(0);
                    let entropy = family::entropy(&probs);
                    let expected_entropy = acc.ent_sum / sf;
                    Row::Class {
                        pred,
                        entropy,
                        expected_entropy,
                        // Below 1e-12 nats it is the rounding of two equal entropies (every
                        // draw predicting alike), not information.
                        mutual_information: Some(entropy - expected_entropy).filter(|m| *m > 1e-12).unwrap_or(0.0),
                        log_lik: if has_obs { acc.lmax + (acc.lsum / sf).ln() } else { f64::NAN },
                        probs,
                    }
                })
                .collect();
        } else {
            v.rows = real[vi]
                .iter_mut()
                .zip(&observed[vi])
                .map(|(acc, y)| {
                    acc.draws.sort_by(f64::total_cmp);
                    let d = &acc.draws;
                    let q = |x: f64| metrics::quantile(d, x);
                    let var_epistemic = acc.m2 / sf;
                    let var_aleatoric = acc.var_sum / sf;
                    let (mut mean, mut sd) = (acc.mean, (var_epistemic + var_aleatoric).sqrt());
                    let (var_epistemic, var_aleatoric) = if mean.is_finite() && sd.is_finite() {
                        (var_epistemic, var_aleatoric)
                    } else if mean.is_finite() && var_epistemic.is_finite() {
                        // Means but no variance at some draws (a Student-t with ν ≤ 2): the
                        // draws' means still disagree by var_epistemic, and the noise, so the
                        // whole, has infinite variance.
                        sd = f64::INFINITY;
                        (var_epistemic, f64::INFINITY)
                    } else {
                        // No moments (a Cauchy): the draws' own mean and sd, no split.
                        let m = d.iter().sum::<f64>() / d.len() as f64;
                        mean = m;
                        sd = (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
                        (f64::NAN, f64::NAN)
                    };
                    let inside = |lo: f64, hi: f64| has_obs && q(lo) <= *y && *y <= q(hi);
                    Row::Real {
                        mean,
                        sd,
                        q5: q(0.05),
                        q50: q(0.5),
                        q95: q(0.95),
                        var_epistemic,
                        var_aleatoric,
                        log_lik: if has_obs { acc.lmax + (acc.lsum / sf).ln() } else { f64::NAN },
                        crps: if has_obs { metrics::crps(d, *y) } else { f64::NAN },
                        covered: [inside(0.25, 0.75), inside(0.05, 0.95), inside(0.025, 0.975)],
                        pit: if has_obs && !d.is_empty() {
                            // Ties (counts) count one half.
                            let below = d.partition_point(|x| *x < *y);
                            let at_or_below = d.partition_point(|x| *x <= *y);
                            (below + at_or_below) as f64 / 2.0 / d.len() as f64
                        } else {
                            f64::NAN
                        },
                    }
                })
                .collect();
        }
        if has_obs {
            v.observed = Some(std::mem::take(&mut observed[vi]));
        }
    }
    Ok(vars)
}

fn num(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
}

fn mean_of(it: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in it {
        s += x;
        n += 1;
    }
    s / n as f64
}

/// The scores of a variable against its observed values (SPEC §11), or `None` without them.
pub fn metrics(v: &Variable) -> Option<serde_json::Value> {
    let y = v.observed.as_ref()?;
    Some(match v.kind {
        Kind::Class => {
            let mut conf = Vec::new();
            let mut correct = Vec::new();
            let mut brier = 0.0;
            let mut ll = 0.0;
            for (row, y) in v.rows.iter().zip(y) {
                let Row::Class { probs, pred, log_lik, .. } = row else { continue };
                conf.push(probs[*pred]);
                correct.push(*pred == *y as usize);
                brier +=
                    probs.iter().enumerate().map(|(k, p)| (p - (k == *y as usize) as u8 as f64).powi(2)).sum::<f64>();
                ll += log_lik;
            }
            let n = conf.len() as f64;
            serde_json::json!({
                "accuracy": num(correct.iter().filter(|c| **c).count() as f64 / n),
                "log_lik": num(ll / n),
                "brier": num(brier / n),
                "ece": num(metrics::ece(&conf, &correct, 15)),
            })
        }
        Kind::Real | Kind::Int => {
            let pairs = || {
                v.rows.iter().zip(y).filter_map(|(r, y)| match r {
                    Row::Real { mean, log_lik, crps, covered, .. } => Some((*mean, *y, *log_lik, *crps, *covered)),
                    _ => None,
                })
            };
            let cover = |k: usize| mean_of(pairs().map(|p| p.4[k] as u8 as f64));
            serde_json::json!({
                "rmse": num(mean_of(pairs().map(|(m, y, ..)| (m - y).powi(2))).sqrt()),
                "mae": num(mean_of(pairs().map(|(m, y, ..)| (m - y).abs()))),
                "log_lik": num(mean_of(pairs().map(|p| p.2))),
                "crps": num(mean_of(pairs().map(|p| p.3))),
                "coverage50": num(cover(0)),
                "coverage90": num(cover(1)),
                "coverage95": num(cover(2)),
            })
        }
    })
}

/// The uncertainty scores of each row that `--ood` ranks by: for classes the entropy and
/// its epistemic part, for real and int rows the predictive sd and its epistemic part.
pub fn scores(v: &Variable) -> Vec<(&'static str, Vec<f64>)> {
    match v.kind {
        Kind::Class => {
            let get = |f: fn(&Row) -> f64| v.rows.iter().map(f).collect::<Vec<f64>>();
            vec![
                ("entropy", get(|r| if let Row::Class { entropy, .. } = r { *entropy } else { f64::NAN })),
                (
                    "mutual_information",
                    get(|r| if let Row::Class { mutual_information, .. } = r { *mutual_information } else { f64::NAN }),
                ),
            ]
        }
        Kind::Real | Kind::Int => {
            let get = |f: fn(&Row) -> f64| v.rows.iter().map(f).collect::<Vec<f64>>();
            vec![
                ("sd", get(|r| if let Row::Real { sd, .. } = r { *sd } else { f64::NAN })),
                (
                    "sd_epistemic",
                    get(|r| if let Row::Real { var_epistemic, .. } = r { var_epistemic.sqrt() } else { f64::NAN }),
                ),
            ]
        }
    }
}

/// How well each uncertainty score tells the rows of `ood` (positives) from those of
/// `known` (negatives): AUROC and AUPR per score, for the first variable both predict.
pub fn ood_scores(known: &[Variable], ood: &[Variable]) -> Option<serde_json::Value> {
    let (a, b) = known.iter().find_map(|k| ood.iter().find(|o| o.name == k.name).map(|o| (k, o)))?;
    let mut auroc = serde_json::Map::new();
    let mut aupr = serde_json::Map::new();
    for ((name, neg), (_, pos)) in scores(a).into_iter().zip(scores(b)) {
        let all: Vec<f64> = neg.iter().chain(&pos).copied().collect();
        let label: Vec<bool> = neg.iter().map(|_| false).chain(pos.iter().map(|_| true)).collect();
        auroc.insert(name.into(), num(metrics::auroc(&all, &label)));
        aupr.insert(name.into(), num(metrics::aupr(&all, &label)));
    }
    Some(serde_json::json!({
        "variable": a.name,
        "rows_data": a.rows.len(),
        "rows_ood": b.rows.len(),
        "auroc": auroc,
        "aupr": aupr,
    }))
}

fn row_json(r: &Row) -> serde_json::Value {
    match r {
        Row::Real { mean, sd, q5, q50, q95, var_epistemic, var_aleatoric, .. } => serde_json::json!({
            "mean": num(*mean), "sd": num(*sd), "q5": num(*q5), "q50": num(*q50), "q95": num(*q95),
            "var_epistemic": num(*var_epistemic), "var_aleatoric": num(*var_aleatoric),
        }),
        Row::Class { probs, pred, entropy, expected_entropy, mutual_information, .. } => serde_json::json!({
            "probs": probs.iter().map(|p| num(*p)).collect::<Vec<_>>(), "pred": pred,
            "entropy": num(*entropy), "expected_entropy": num(*expected_entropy),
            "mutual_information": num(*mutual_information),
        }),
    }
}

/// `predictive.json` (SPEC §11).
pub fn to_json(method: &str, draws: usize, vars: &[Variable], ood: Option<serde_json::Value>) -> serde_json::Value {
    let mut observed = serde_json::Map::new();
    for v in vars {
        let mut o = serde_json::json!({
            "kind": v.kind.name(),
            "family": v.family.name(),
            "rows": v.rows.iter().enumerate().map(|(i, r)| {
                let mut j = row_json(r);
                if v.index.iter().enumerate().any(|(k, x)| k != *x) {
                    j["index"] = serde_json::json!(v.index.get(i));
                }
                j
            }).collect::<Vec<_>>(),
        });
        if let Some(m) = metrics(v) {
            o["metrics"] = m;
        }
        observed.insert(v.name.clone(), o);
    }
    let mut out = serde_json::json!({ "method": method, "draws": draws, "observed": observed });
    if let Some(o) = ood {
        out["ood"] = o;
    }
    out
}

fn has_real_rows(vars: &[Variable]) -> bool {
    vars.iter().any(|v| v.kind != Kind::Class)
}

fn cell(x: f64) -> String {
    if x.is_finite() {
        crate::infer::stan_csv::number(x)
    } else {
        String::new()
    }
}

/// `predictive.csv`: one row per observed element, each variable's columns; the observed
/// value last when the data hold it.
pub fn to_csv(vars: &[Variable]) -> String {
    let mut out = String::new();
    let kmax = vars
        .iter()
        .flat_map(|v| &v.rows)
        .map(|r| if let Row::Class { probs, .. } = r { probs.len() } else { 0 })
        .max()
        .unwrap_or(0);
    let mut header = vec!["variable".to_string(), "index".into()];
    if vars.iter().any(|v| v.kind != Kind::Class) {
        for c in ["mean", "sd", "q5", "q50", "q95", "var_epistemic", "var_aleatoric"] {
            header.push(c.into());
        }
    }
    if kmax > 0 {
        for c in ["pred", "entropy", "expected_entropy", "mutual_information"] {
            header.push(c.into());
        }
        header.extend((0..kmax).map(|k| format!("p{k}")));
    }
    header.push("observed".into());
    if has_real_rows(vars) {
        header.push("pit".into());
    }
    out.push_str(&header.join(","));
    out.push('\n');
    let has_real = header.iter().any(|h| h == "mean");
    for v in vars {
        for (i, r) in v.rows.iter().enumerate() {
            let mut f = vec![v.name.clone(), v.index.get(i).copied().unwrap_or(i).to_string()];
            match r {
                Row::Real { mean, sd, q5, q50, q95, var_epistemic, var_aleatoric, .. } => {
                    f.extend([mean, sd, q5, q50, q95, var_epistemic, var_aleatoric].map(|x| cell(*x)));
                    if kmax > 0 {
                        f.extend(std::iter::repeat_n(String::new(), 4 + kmax));
                    }
                }
                Row::Class { probs, pred, entropy, expected_entropy, mutual_information, .. } => {
                    if has_real {
                        f.extend(std::iter::repeat_n(String::new(), 7));
                    }
                    f.push(pred.to_string());
                    f.extend([entropy, expected_entropy, mutual_information].map(|x| cell(*x)));
                    f.extend((0..kmax).map(|k| probs.get(k).map(|p| cell(*p)).unwrap_or_default()));
                }
            }
            f.push(v.observed.as_ref().map(|o| cell(o[i])).unwrap_or_default());
            if has_real_rows(vars) {
                f.push(if let Row::Real { pit, .. } = r { cell(*pit) } else { String::new() });
            }
            out.push_str(&f.join(","));
            out.push('\n');
        }
    }
    out
}

/// The short table printed on the terminal: per variable its metrics and its first rows.
pub fn table(vars: &[Variable], ood: Option<&serde_json::Value>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    const SHOWN: usize = 8;
    for v in vars {
        let _ = writeln!(out, "{} ({}, {}): {} rows", v.name, v.family.name(), v.kind.name(), v.rows.len());
        match v.kind {
            Kind::Class => {
                let _ = writeln!(
                    out,
                    "  {:>6} {:>5} {:>8} {:>8} {:>8} {:>9}",
                    "row", "pred", "p(pred)", "entropy", "mi", "observed"
                );
                for (i, r) in v.rows.iter().enumerate().take(SHOWN) {
                    if let Row::Class { probs, pred, entropy, mutual_information, .. } = r {
                        let obs = v.observed.as_ref().map(|o| format!("{}", o[i])).unwrap_or_default();
                        let _ = writeln!(
                            out,
                            "  {:>6} {:>5} {:>8.3} {:>8.3} {:>8.3} {:>9}",
                            v.index.get(i).copied().unwrap_or(i),
                            pred,
                            probs[*pred],
                            entropy,
                            mutual_information,
                            obs
                        );
                    }
                }
            }
            Kind::Real | Kind::Int => {
                let _ = writeln!(
                    out,
                    "  {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                    "row", "mean", "sd", "q5", "q95", "sd_epi", "observed"
                );
                for (i, r) in v.rows.iter().enumerate().take(SHOWN) {
                    if let Row::Real { mean, sd, q5, q95, var_epistemic, .. } = r {
                        let obs = v.observed.as_ref().map(|o| format!("{:.4}", o[i])).unwrap_or_default();
                        let _ = writeln!(
                            out,
                            "  {:>6} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10}",
                            v.index.get(i).copied().unwrap_or(i),
                            mean,
                            sd,
                            q5,
                            q95,
                            var_epistemic.sqrt(),
                            obs
                        );
                    }
                }
            }
        }
        if v.rows.len() > SHOWN {
            let _ = writeln!(out, "  ... {} more rows in predictive.csv", v.rows.len() - SHOWN);
        }
        if let Some(serde_json::Value::Object(m)) = metrics(v) {
            let shown: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{k} {}", x.as_f64().map(|f| format!("{f:.4}")).unwrap_or_else(|| "-".into())))
                .collect();
            let _ = writeln!(out, "  metrics: {}", shown.join(", "));
        }
    }
    if let Some(o) = ood {
        for what in ["auroc", "aupr"] {
            if let Some(serde_json::Value::Object(m)) = o.get(what) {
                let shown: Vec<String> = m
                    .iter()
                    .map(|(k, x)| {
                        format!("{k} {}", x.as_f64().map(|f| format!("{f:.3}")).unwrap_or_else(|| "-".into()))
                    })
                    .collect();
                let _ = writeln!(out, "ood {what}: {}", shown.join(", "));
            }
        }
    }
    out
}

/// The expected value of element `i` of site `k` given the draw last evaluated (for a class
/// variable: the probability of the class observed there), or `None` for a family `predict`
/// does not summarise or an element out of range.
pub fn conditional(fw: &Forward, k: usize, i: usize) -> Option<f64> {
    let p = fw.program();
    let site = p.sites.get(k)?;
    let kind = family::kind(site.family)?;
    let sv = fw.site(k);
    let n = p.info(site.lhs).len().max(1);
    let (e, j) = (i / n, i % n);
    if e >= sv.execs {
        return None;
    }
    let lens: Vec<usize> = site.args.iter().map(|a| p.info(*a).len()).collect();
    let y = *exec_slice(sv.lhs, n, e).get(j)?;
    match element(p, site, &sv, &lens, e, j)? {
        Element::Real(par) => (kind != Kind::Class).then(|| family::moments(family::marginal(site.family), &par).0),
        el => {
            let mut probs = Vec::new();
            el.class_probs(site.family, &mut probs);
            probs.get(y as usize).copied()
        }
    }
}

/// The pointwise log predictive density of every observed element the data hold,
/// log((1/S) Σ_s p(y_i | θ_s)) over `draws` (constrained parameter vectors of the forward
/// program), sites in program order. For a held-out score while training.
pub fn pointwise_log_lik(fw: &mut Forward, draws: &[Vec<f64>]) -> Result<Vec<f64>, EvalError> {
    let mut acc: Vec<(f64, f64)> = Vec::new();
    let mut probs = Vec::new();
    for draw in draws {
        fw.eval(draw)?;
        let p = fw.program();
        let mut at = 0;
        for (k, site) in p.sites.iter().enumerate() {
            if family::kind(site.family).is_none() {
                continue;
            }
            let sv = fw.site(k);
            let n = p.info(site.lhs).len().max(1);
            let lens: Vec<usize> = site.args.iter().map(|a| p.info(*a).len()).collect();
            for e in 0..sv.execs {
                for j in 0..n {
                    let y = exec_slice(sv.lhs, n, e).get(j).copied().unwrap_or(f64::NAN);
                    let l = match element(p, site, &sv, &lens, e, j) {
                        Some(Element::Real(par)) => {
                            crate::math::dist::elem_log_density(family::marginal(site.family), y, &par)
                        }
                        Some(el) => {
                            el.class_probs(site.family, &mut probs);
                            probs.get(y as usize).map_or(f64::NEG_INFINITY, |q| q.ln())
                        }
                        None => f64::NAN,
                    };
                    if acc.len() <= at {
                        acc.push((f64::NEG_INFINITY, 0.0));
                    }
                    let (lmax, lsum) = &mut acc[at];
                    log_add(lmax, lsum, l);
                    at += 1;
                }
            }
        }
    }
    let s = draws.len() as f64;
    Ok(acc.into_iter().map(|(lmax, lsum)| lmax + (lsum / s).ln()).collect())
}

/// What one observed element's distribution is at the draw last evaluated.
enum Element<'a> {
    /// A class variable: its probabilities' source (a `[K]` row, or θ / the logit).
    Class(&'a [f64]),
    /// An elementwise family's parameters.
    Real([f64; 3]),
    /// An ordered logistic's location and cutpoints.
    Ordered(f64, &'a [f64]),
}

impl Element<'_> {
    /// A class variable's probabilities, into `out`; false for a real-valued element.
    fn class_probs(&self, f: Family, out: &mut Vec<f64>) -> bool {
        match self {
            Element::Class(row) => family::class_probs(f, row, out),
            Element::Ordered(eta, c) => family::ordered_probs(*eta, c, out),
            Element::Real(_) => return false,
        }
        true
    }
}

/// Element `j` of execution `e` of `site` (`lens`: each argument's length per execution),
/// reading broadcast arguments where they broadcast from; `None` when out of range.
fn element<'a>(
    p: &crate::ir::Program,
    site: &crate::ir::Site,
    sv: &crate::compiled::SiteValues<'a>,
    lens: &[usize],
    e: usize,
    j: usize,
) -> Option<Element<'a>> {
    let n = p.info(site.lhs).len().max(1);
    if site.family == Family::OrderedLogistic {
        let eta = *exec_slice(sv.args[0], lens[0], e).get(at(j, lens[0], n))?;
        return Some(Element::Ordered(eta, exec_slice(sv.args[1], lens[1], e)));
    }
    if family::kind(site.family)? == Kind::Class {
        let a = exec_slice(sv.args[0], lens[0], e);
        return Some(Element::Class(match site.family {
            Family::Categorical | Family::CategoricalLogit => {
                let kk = p.info(site.args[0]).shape.last().copied().unwrap_or(1);
                if lens[0] == kk {
                    a
                } else {
                    a.get(j * kk..(j + 1) * kk)?
                }
            }
            _ => std::slice::from_ref(a.get(at(j, lens[0], n))?),
        }));
    }
    if let Family::MultiNormal | Family::MultiNormalCholesky = site.family {
        // Element j is entry c of the variate's row r; the mean is one `[K]` shared by every
        // row or a row of its own.
        let k = p.info(site.lhs).shape.last().copied().unwrap_or(1).max(1);
        let (r, c) = (j / k, j % k);
        let mu = exec_slice(sv.args[0], lens[0], e);
        let mean = *mu.get(if lens[0] == k { c } else { r * k + c })?;
        let m = exec_slice(sv.args[1], lens[1], e);
        let var = match site.family {
            Family::MultiNormal => *m.get(c * k + c)?,
            // Σ = L Lᵀ: the squares of row c of the lower triangle.
            _ => m.get(c * k..c * k + c + 1)?.iter().map(|v| v * v).sum(),
        };
        return Some(Element::Real([mean, var.sqrt(), 0.0]));
    }
    let mut par = [0.0; 3];
    for (a, len) in lens.iter().enumerate().take(3) {
        par[a] = *exec_slice(sv.args[a], *len, e).get(at(j, *len, n))?;
    }
    Some(Element::Real(par))
}

/// The observed value of element `i` of site `k` (the data on the left of `~`).
pub fn observed_value(fw: &Forward, k: usize, i: usize) -> Option<f64> {
    let p = fw.program();
    let n = p.info(p.sites.get(k)?.lhs).len().max(1);
    exec_slice(fw.site(k).lhs, n, i / n).get(i % n).copied()
}
