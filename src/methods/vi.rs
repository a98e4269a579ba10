//! What the variational methods leave behind, written the same way for each: S draws from q
//! mapped to the constrained space, in CmdStan's variational layout (`lp__`, `log_p__`,
//! `log_g__`, then the model's columns; the first row is q's mean, as CmdStan writes it),
//! the summary table, Pareto k̂ of the importance ratios, and summary.json with the
//! method's record.

use crate::compiled::CompiledModel;
use crate::infer::run::Config;
use crate::infer::vi::{psis, Gaussian};
use crate::ir::Program;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Above it the importance ratios' tail is too heavy to trust q (Yao et al. 2018).
pub const K_HAT_UNRELIABLE: f64 = 0.7;

/// The draws file's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// CmdStan's variational output: `lp__` (0), `log_p__`, `log_g__`, and q's mean as the
    /// first row; the method's record in summary.json under `"vi"`.
    Variational,
    /// CmdStan's Laplace output: `log_p__`, `log_g__`, draws only; the record under
    /// `"laplace"`.
    Laplace,
}

/// How a Gaussian fit is written.
pub struct Output<'a> {
    /// `advi`, `bbb` or `laplace`.
    pub method: &'a str,
    pub layout: Layout,
    /// Lines of the draws file's header under `# method = ...`, without the `#`.
    pub settings: Vec<String>,
    /// The method's own record in summary.json, to which `pareto_k` is added.
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
    let n = q.dim();
    let (mut eps, mut theta) = (vec![0.0; n], vec![0.0; n]);
    let flat = |density: &mut CompiledModel, theta: &[f64]| -> Option<Vec<f64>> {
        let (v, _) = density.constrained_keeping_params(theta).ok()?;
        Some(v.into_iter().flat_map(|(_, _, x)| x).collect())
    };
    let Some(mean_row) = flat(density, &q.mu) else {
        eprintln!("error: q's mean cannot be mapped to the constrained space");
        return 3;
    };
    // The draws in order (their constrained values may use the model's random numbers), then
    // log p of each, on the threads: a full pass over the data per draw, the slow part.
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(out.output_draws);
    let mut thetas: Vec<Vec<f64>> = Vec::with_capacity(out.output_draws);
    let mut tries = 0;
    while rows.len() < out.output_draws && tries < 10 * out.output_draws + 100 {
        tries += 1;
        eps.iter_mut().for_each(|e| *e = StandardNormal.sample(rng));
        q.transform(&eps, &mut theta);
        let Some(values) = flat(density, &theta) else { continue };
        let mut row = vec![0.0, 0.0, q.log_density_at(&eps)];
        row.extend(values);
        rows.push(row);
        thetas.push(theta.clone());
    }
    if rows.is_empty() {
        eprintln!("error: no draw from q could be mapped to the constrained space");
        return 3;
    }
    out.warnings.extend(density.generated_failures().warning(rows.len()));
    let log_p = log_densities(p, cfg, density, &thetas);
    let mut log_ratio = Vec::with_capacity(rows.len());
    for (row, lp) in rows.iter_mut().zip(log_p) {
        row[1] = lp;
        log_ratio.push(lp - row[2]);
    }
    let k_hat = psis::pareto_k(&log_ratio);
    if let Some(k) = k_hat.filter(|k| *k > K_HAT_UNRELIABLE) {
        out.warnings.push(format!(
            "Pareto k-hat is {k:.2} (above {K_HAT_UNRELIABLE}): the importance ratios p/q have a heavy tail, so q misses much of the posterior and its means and intervals are unreliable; run --method nuts for this model"
        ));
    }
    // Ratios equal at every draw (up to rounding): q is the posterior (a Gaussian posterior under
    // Laplace), and there is no tail to fit.
    let (lo, hi) = log_ratio.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), r| (a.min(*r), b.max(*r)));
    let exact = lo.is_finite() && hi.is_finite() && hi - lo <= 1e-8 * (1.0 + lo.abs());
    if exact {
        out.record.insert("importance_ratios".into(), "constant".into());
    }
    if k_hat.is_none() && !exact {
        out.warnings.push("Pareto k-hat cannot be computed: the importance ratios p/q are not finite, or one dwarfs all the others, so q is far from the posterior; run --method nuts for this model".into());
    }
    out.record.insert("pareto_k".into(), k_hat.map_or(serde_json::Value::Null, serde_json::Value::from));

    let (csv_method, key, leading, first_row) = match out.layout {
        Layout::Variational => {
            ("variational", "vi", vec!["lp__", "log_p__", "log_g__"], Some([vec![0.0; 3], mean_row].concat()))
        }
        Layout::Laplace => {
            rows.iter_mut().for_each(|r| {
                r.remove(0);
            });
            ("laplace", "laplace", vec!["log_p__", "log_g__"], None)
        }
    };
    let draws = crate::methods::draws::Draws {
        method: out.method,
        csv_method,
        settings: &out.settings,
        leading: &leading.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        first_row,
        rows: &rows,
    };
    let record = serde_json::json!({ key: out.record });
    crate::methods::draws::write(p, cfg, &draws, record, out.warnings, out.all)
}

/// log p(θ) + log|J| of each θ (−∞ where it cannot be evaluated), on up to `cfg.threads`
/// threads: `density` on this one, a model compiled from `p` on each of the others. The same
/// numbers whatever the thread count.
fn log_densities(p: &Program, cfg: &Config, density: &mut CompiledModel, thetas: &[Vec<f64>]) -> Vec<f64> {
    let eval = |d: &mut CompiledModel, chunk: &[Vec<f64>]| -> Vec<f64> {
        chunk.iter().map(|t| d.eval(t).map_or(f64::NEG_INFINITY, |e| e.logp + e.jacobian)).collect()
    };
    let per = thetas.len().div_ceil(cfg.threads.max(1)).max(1);
    let chunks: Vec<&[Vec<f64>]> = thetas.chunks(per).collect();
    let Some((first, others)) = chunks.split_first() else { return Vec::new() };
    std::thread::scope(|s| {
        let handles: Vec<_> = others
            .iter()
            .map(|chunk| s.spawn(move || CompiledModel::new(p, cfg.backend).ok().map(|mut d| eval(&mut d, chunk))))
            .collect();
        let mut all = eval(density, first);
        for (h, chunk) in handles.into_iter().zip(others) {
            // A thread whose model could not be compiled leaves its share to this one.
            all.extend(h.join().ok().flatten().unwrap_or_else(|| eval(density, chunk)));
        }
        all
    })
}
