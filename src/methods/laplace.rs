//! `run --method laplace`: a Gaussian at a posterior mode (MacKay 1992; for networks as
//! Daxberger et al. 2021 build it in laplace-torch). The mode is found on minibatches as
//! `map --batch-size` finds it (stopped early on held-out rows); its covariance is the
//! inverse of the log-likelihood's curvature there plus an isotropic Gaussian prior's
//! precision δ on the unconstrained coordinates:
//!
//! - `--hessian full`: the Hessian of −Σ log p(yᵢ | θ) over all coordinates, by central
//!   differences of the compiled gradient (2·dim gradients over the training rows);
//! - `--hessian last-layer` (the default for networks): the same Hessian over the last
//!   layer's weights and the model's own (non-layer) parameters, the rest fixed at the mode.
//!   A dense output layer is linear in its weights, so there the Hessian is the generalised
//!   Gauss-Newton matrix and draws give the linearised (GLM) predictive exactly;
//! - `--hessian diag`: the diagonal of the empirical Fisher Σᵢ ∇log p(yᵢ|θ)², one gradient
//!   per training row, for networks too large for the others.
//!
//! δ maximises the Laplace approximation of the marginal likelihood,
//! log p(y | δ) ≈ log p(y | θ*) − δ‖θ*‖²/2 + (k/2) log δ − ½ log det(H + δI) + const,
//! unless `--prior-precision` gives it.

use crate::compiled::CompiledModel;
use crate::diag::Format;
use crate::driver::Frontend;
use crate::infer::minibatch::Inputs;
use crate::infer::run::{Config, STOP};
use crate::ir::Program;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hessian {
    Full,
    Diag,
    LastLayer,
}

impl Hessian {
    pub fn name(self) -> &'static str {
        match self {
            Hessian::Full => "full",
            Hessian::Diag => "diag",
            Hessian::LastLayer => "last-layer",
        }
    }
}

/// The most coordinates a dense curvature is built over.
const MAX_DENSE: usize = 3000;

pub struct Options {
    /// The mode's training (as `map --batch-size`).
    pub modes: crate::methods::modes::Options,
    /// `None`: last-layer for a model with layers, else full.
    pub hessian: Option<Hessian>,
    /// `None`: chosen by the marginal likelihood.
    pub prior_precision: Option<f64>,
    pub output_draws: usize,
}

/// The coordinates of the last layers' parameters and of the model's own parameters. A layer
/// (the parameters that share a path prefix, `mu.W` and `mu.b`) is last when no other layer
/// reads its output: two heads on one hidden layer, a mean's and a noise scale's, are both
/// last.
pub fn last_layer(program: &Program) -> Vec<usize> {
    let prefix = |name: &str| name.rsplit_once('.').map(|(p, _)| p.to_string());
    let layers: Vec<String> = {
        let mut v: Vec<String> = program.params.iter().filter_map(|p| prefix(&p.name)).collect();
        v.sort();
        v.dedup();
        v
    };
    let fed = layers_feeding_others(program, &layers, &prefix);
    program
        .params
        .iter()
        .filter(|p| prefix(&p.name).is_none_or(|l| !fed.contains(&l)))
        .flat_map(|p| p.offset..p.offset + p.free_len)
        .collect()
}

/// The layers whose output another layer reads. Each value's dependence is followed through
/// the program: which layers' parameters it is computed from, and whether it reads data. An
/// operation that combines a value computed from layer B's parameters alone (B's weights,
/// transformed or not) with one computed from layer A's is B applied to A's output.
fn layers_feeding_others(
    program: &Program,
    layers: &[String],
    prefix: &dyn Fn(&str) -> Option<String>,
) -> std::collections::HashSet<String> {
    use crate::ir::prim::Prim;
    use crate::ir::Inst;
    use std::collections::{BTreeSet, HashMap};
    #[derive(Clone, Default, PartialEq)]
    struct Dep {
        layers: BTreeSet<usize>,
        data: bool,
    }
    let mut deps: HashMap<u32, Dep> = HashMap::new();
    let mut slots: HashMap<u32, Dep> = HashMap::new();
    for p in &program.params {
        if let Some(l) = prefix(&p.name).and_then(|n| layers.iter().position(|x| *x == n)) {
            deps.entry(p.value.0).or_default().layers.insert(l);
        }
    }
    let mut fed: BTreeSet<usize> = BTreeSet::new();
    // A loop's or branch's block can come before the block of a value it uses: a few passes.
    for _ in 0..3 {
        for block in &program.blocks {
            for inst in block {
                match inst {
                    Inst::Op { dst, prim, args } => {
                        let mut d = deps.get(&dst.0).cloned().unwrap_or_default();
                        if matches!(prim, Prim::Const(_) | Prim::Input(_)) {
                            d.data = true;
                        }
                        if let Prim::Load(s, _) = prim {
                            if let Some(sd) = slots.get(&s.0) {
                                d.layers.extend(&sd.layers);
                                d.data |= sd.data;
                            }
                        }
                        let arg_deps: Vec<Dep> =
                            args.iter().map(|a| deps.get(&a.0).cloned().unwrap_or_default()).collect();
                        for ad in &arg_deps {
                            d.layers.extend(&ad.layers);
                            d.data |= ad.data;
                        }
                        for w in arg_deps.iter().filter(|a| !a.data && a.layers.len() == 1) {
                            let b = *w.layers.iter().next().unwrap_or(&0);
                            for other in &arg_deps {
                                fed.extend(other.layers.iter().filter(|&&a| a != b && other.data));
                            }
                        }
                        if !d.layers.is_empty() || d.data {
                            deps.insert(dst.0, d);
                        }
                    }
                    Inst::Store { slot, value, .. } => {
                        if let Some(vd) = deps.get(&value.0).cloned() {
                            let sd = slots.entry(slot.0).or_default();
                            sd.layers.extend(&vd.layers);
                            sd.data |= vd.data;
                        }
                    }
                    Inst::For { .. } | Inst::If { .. } | Inst::Init { .. } | Inst::Target { .. } => {}
                }
            }
        }
    }
    fed.into_iter().map(|l| layers[l].clone()).collect()
}

/// The log-likelihood of the training rows and its gradient, batch by batch through the
/// minibatch programs with the prior's weight 0.
struct Likelihood<'p> {
    full: CompiledModel<'p>,
    full_in: Inputs,
    last: Option<(CompiledModel<'p>, Inputs)>,
    rows: &'p [usize],
    batch: usize,
    g: Vec<f64>,
}

impl Likelihood<'_> {
    fn grad(&mut self, x: &[f64], out: &mut [f64]) -> Result<f64, String> {
        out.fill(0.0);
        let mut total = 0.0;
        for chunk in self.rows.chunks(self.batch) {
            let (m, inputs) = if chunk.len() == self.batch {
                (&mut self.full, &self.full_in)
            } else {
                match &mut self.last {
                    Some((m, i)) => (m, &*i),
                    None => return Err("no program for the last batch".into()),
                }
            };
            if let Some(k) = inputs.rows {
                let r: Vec<f64> = chunk.iter().map(|&r| r as f64).collect();
                m.set_input(k, &r)?;
            }
            inputs.set_weights(m, 1.0, 0.0)?;
            let e = m.eval_grad(x, &mut self.g).map_err(|e| e.to_string())?;
            total += e.logp;
            out.iter_mut().zip(&self.g).for_each(|(o, g)| *o += g);
        }
        if total.is_finite() && out.iter().all(|v| v.is_finite()) {
            Ok(total)
        } else {
            Err("the log-likelihood or its gradient is not finite at the mode".into())
        }
    }
}

/// The Hessian of −f over the coordinates `block` (k × k, row-major), by central differences
/// of `grad` (f's gradient into its second argument), symmetrised. `None` when stopped.
fn hessian(
    mut grad: impl FnMut(&[f64], &mut [f64]) -> Result<f64, String>,
    theta: &[f64],
    block: &[usize],
    bar: &indicatif::ProgressBar,
) -> Result<Option<Vec<f64>>, String> {
    let k = block.len();
    let dim = theta.len();
    let mut h = vec![0.0; k * k];
    let (mut gp, mut gm) = (vec![0.0; dim], vec![0.0; dim]);
    let mut x = theta.to_vec();
    for (c, &j) in block.iter().enumerate() {
        if STOP.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let step = 1e-4 * theta[j].abs().max(1.0);
        x[j] = theta[j] + step;
        grad(&x, &mut gp)?;
        x[j] = theta[j] - step;
        grad(&x, &mut gm)?;
        x[j] = theta[j];
        for (r, &i) in block.iter().enumerate() {
            h[r * k + c] = -(gp[i] - gm[i]) / (2.0 * step);
        }
        bar.inc(1);
    }
    for r in 0..k {
        for c in 0..r {
            let s = 0.5 * (h[r * k + c] + h[c * k + r]);
            h[r * k + c] = s;
            h[c * k + r] = s;
        }
    }
    Ok(Some(h))
}

/// The empirical Fisher's diagonal Σᵢ (∂ log p(yᵢ|θ))², one training row at a time through
/// a one-row program. `None` when stopped.
fn fisher_diagonal(
    one: &mut CompiledModel,
    inputs: &Inputs,
    rows: &[usize],
    theta: &[f64],
    bar: &indicatif::ProgressBar,
) -> Result<Option<Vec<f64>>, String> {
    let mut d = vec![0.0; theta.len()];
    let mut g = vec![0.0; theta.len()];
    inputs.set_weights(one, 1.0, 0.0)?;
    for (n, &r) in rows.iter().enumerate() {
        if STOP.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if let Some(k) = inputs.rows {
            one.set_input(k, &[r as f64])?;
        }
        one.eval_grad(theta, &mut g).map_err(|e| e.to_string())?;
        d.iter_mut().zip(&g).for_each(|(d, g)| *d += g * g);
        if n % 256 == 0 {
            bar.inc(256);
        }
    }
    if d.iter().all(|v| v.is_finite()) {
        Ok(Some(d))
    } else {
        Err("a training row's log-likelihood gradient is not finite at the mode".into())
    }
}

/// The curvature H: its eigenvalues (negative ones, directions in which the point found is
/// not a mode, set to 0) and eigenvectors, or its diagonal.
enum Curvature {
    Eigen { values: Vec<f64>, vectors: Vec<f64>, clipped: usize },
    Diagonal(Vec<f64>),
}

impl Curvature {
    fn dense(h: &[f64], k: usize) -> Curvature {
        let (mut values, vectors) = crate::math::eigen::symmetric(h, k);
        let clipped = values.iter().filter(|v| **v < 0.0).count();
        values.iter_mut().for_each(|v| *v = v.max(0.0));
        Curvature::Eigen { values, vectors, clipped }
    }

    fn values(&self) -> &[f64] {
        match self {
            Curvature::Eigen { values, .. } => values,
            Curvature::Diagonal(d) => d,
        }
    }

    /// The δ-dependent part of the Laplace log marginal likelihood, `norm2` = ‖θ*‖² over the
    /// block.
    fn log_evidence(&self, delta: f64, norm2: f64) -> f64 {
        let v = self.values();
        -0.5 * delta * norm2 + 0.5 * v.len() as f64 * delta.ln() - 0.5 * v.iter().map(|l| (l + delta).ln()).sum::<f64>()
    }

    /// A draw from N(0, (H + δI)⁻¹) from standard normal `z` (overwritten).
    fn draw(&self, delta: f64, z: &mut [f64]) {
        let w: Vec<f64> = z.iter().zip(self.values()).map(|(z, l)| z / (l + delta).sqrt()).collect();
        match self {
            Curvature::Eigen { vectors, .. } => {
                let k = w.len();
                for (i, zi) in z.iter_mut().enumerate() {
                    *zi = (0..k).map(|m| vectors[i * k + m] * w[m]).sum();
                }
            }
            Curvature::Diagonal(_) => z.copy_from_slice(&w),
        }
    }
}

/// The prior precision maximising the evidence: a grid over 10⁻⁴…10⁶ by half decades, then
/// golden-section search between the best point's neighbours (in log δ).
fn tune_prior_precision(curv: &Curvature, norm2: f64) -> Option<(f64, f64)> {
    let f = |ld: f64| curv.log_evidence(10f64.powf(ld), norm2);
    let grid: Vec<f64> = (0..=20).map(|i| -4.0 + 0.5 * i as f64).collect();
    let vals: Vec<f64> = grid.iter().map(|&g| f(g)).collect();
    let best = (0..grid.len()).filter(|&i| vals[i].is_finite()).max_by(|&a, &b| vals[a].total_cmp(&vals[b]))?;
    let (mut a, mut b) = (grid[best.saturating_sub(1)], grid[(best + 1).min(grid.len() - 1)]);
    let r = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..30 {
        let (c, d) = (b - r * (b - a), a + r * (b - a));
        if f(c) >= f(d) {
            b = d;
        } else {
            a = c;
        }
    }
    let ld = 0.5 * (a + b);
    let (ld, v) = if f(ld) >= vals[best] { (ld, f(ld)) } else { (grid[best], vals[best]) };
    Some((10f64.powf(ld), v))
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
    let structure = o.hessian.unwrap_or(if crate::summary::network::has_layers(program) {
        Hessian::LastLayer
    } else {
        Hessian::Full
    });
    let block: Vec<usize> = match structure {
        Hessian::LastLayer => last_layer(program),
        _ => (0..program.dim()).collect(),
    };
    // The dense curvature's eigendecomposition costs O(k³) per sweep.
    if structure != Hessian::Diag && block.len() > MAX_DENSE {
        eprintln!(
            "error: --hessian {} would build a {k} × {k} curvature; above {MAX_DENSE} coordinates use --hessian diag{}",
            structure.name(),
            if structure == Hessian::Full && crate::summary::network::has_layers(program) {
                " or last-layer"
            } else {
                ""
            },
            k = block.len(),
        );
        return 2;
    }
    let one_row = if structure == Hessian::Diag {
        match crate::methods::batches::row_program(fe, model, data, format) {
            Ok(p) => Some(p),
            Err(code) => return code,
        }
    } else {
        None
    };
    let (setup, _, mode) = match crate::methods::modes::pretrain(
        fe, model, data, program, cfg, &o.modes, &mut rng, format, "laplace", all,
    ) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let t = std::time::Instant::now();
    let theta = mode.run.x.clone();
    let ice = |e: String| {
        eprintln!("error: {}", crate::compiled::internal_error(&e.to_string()));
        2
    };
    let compile = |p| CompiledModel::new(p, cfg.backend).map(|c| c.without_jacobian());
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(if structure == Hessian::Diag { setup.train_rows.len() } else { block.len() } as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "laplace: {} curvature {{bar:30}} {{pos}}/{{len}}",
            structure.name()
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let curvature = match &one_row {
        Some(p) => {
            let mut one = match compile(p) {
                Ok(m) => m,
                Err(e) => return ice(e),
            };
            fisher_diagonal(&mut one, &Inputs::of(p), &setup.train_rows, &theta, &bar)
                .map(|d| d.map(Curvature::Diagonal))
        }
        None => {
            let (full, last) = match (compile(&setup.full), setup.last.as_ref().map(compile).transpose()) {
                (Ok(f), Ok(l)) => (f, l),
                (Err(e), _) | (_, Err(e)) => return ice(e),
            };
            let mut lik = Likelihood {
                full,
                full_in: Inputs::of(&setup.full),
                last: last.zip(setup.last.as_ref().map(Inputs::of)),
                rows: &setup.train_rows,
                batch: setup.batch_size,
                g: vec![0.0; theta.len()],
            };
            hessian(|x, g| lik.grad(x, g), &theta, &block, &bar).map(|h| h.map(|h| Curvature::dense(&h, block.len())))
        }
    };
    bar.finish_and_clear();
    let curvature = match curvature {
        Ok(Some(c)) => c,
        Ok(None) => {
            let record = serde_json::json!({"logp": mode.logp, "stopped": true, "epochs": mode.run.epochs.len()});
            let warning = "stopped before the curvature was complete; the mode is written as `map` writes it";
            return crate::methods::map::report(
                program,
                cfg,
                "map",
                &mode.named,
                mode.logp,
                ("optimizer", record),
                vec![warning.to_string()],
                all,
            );
        }
        Err(e) => {
            eprintln!("error: the curvature at the mode: {e}");
            return 3;
        }
    };
    let norm2: f64 = block.iter().map(|&j| theta[j] * theta[j]).sum();
    let (delta, evidence, tuned) = match o.prior_precision {
        Some(d) => (d, Some(curvature.log_evidence(d, norm2)), false),
        None => match tune_prior_precision(&curvature, norm2) {
            Some((d, v)) => (d, Some(v), true),
            None => (f64::NAN, None, true),
        },
    };
    if !delta.is_finite() {
        eprintln!("error: no prior precision gives a finite marginal likelihood; give --prior-precision");
        return 3;
    }
    // Draws: the mode, with the block's coordinates moved by N(0, (H + δI)⁻¹).
    let mut density = match compile(program) {
        Ok(d) => d,
        Err(e) => return ice(e),
    };
    let mut srng = rand::rngs::SmallRng::seed_from_u64(crate::infer::run::chain_seed(cfg.seed, 1));
    let mut z = vec![0.0; block.len()];
    let mut x = theta.clone();
    let mut rows = Vec::with_capacity(o.output_draws);
    for _ in 0..o.output_draws * 10 {
        if rows.len() == o.output_draws {
            break;
        }
        z.iter_mut().for_each(|v| *v = StandardNormal.sample(&mut srng));
        curvature.draw(delta, &mut z);
        for (&j, dz) in block.iter().zip(&z) {
            x[j] = theta[j] + dz;
        }
        let Ok((v, _)) = density.constrained_keeping_params(&x) else { continue };
        let lp = density.eval(&x).map(|e| e.logp).unwrap_or(f64::NAN);
        rows.push([vec![lp], v.into_iter().flat_map(|(_, _, x)| x).collect()].concat());
    }
    if rows.is_empty() {
        eprintln!("error: no Laplace draw could be mapped to the constrained space");
        return 3;
    }
    let seconds = t.elapsed().as_secs_f64();
    eprintln!(
        "laplace: {} curvature over {} of {} coordinates at the mode of epoch {}; prior precision {delta:.4} ({}), {seconds:.1} s",
        structure.name(),
        block.len(),
        theta.len(),
        mode.run.best_epoch,
        if tuned { "by marginal likelihood" } else { "given" },
    );
    // A network predicts with the linearised predictive at the mode (a row of the draws).
    let linearise_at = if crate::summary::network::has_layers(program) {
        match density.constrained_keeping_params(&theta) {
            Ok((v, _)) => Some([vec![mode.logp], v.into_iter().flat_map(|(_, _, x)| x).collect()].concat()),
            Err(_) => None,
        }
    } else {
        None
    };
    let record = serde_json::json!({
        "laplace": {
            "predictive": if linearise_at.is_some() { "linearised" } else { "sampled" },
            "linearise_at": linearise_at,
            "hessian": structure.name(),
            "coordinates": block.len(),
            "negative_eigenvalues_set_to_zero": match &curvature {
                Curvature::Eigen { clipped, .. } => *clipped,
                Curvature::Diagonal(_) => 0,
            },
            "prior_precision": delta,
            "prior_precision_tuned": tuned,
            "log_evidence": evidence,
            "pretraining_epochs": mode.run.epochs.len(),
            "best_epoch": mode.run.best_epoch,
            "batch_size": setup.batch_size,
            "held_out_rows": setup.val_rows.len(),
            "seconds": seconds,
        }
    });
    let settings = vec![
        "laplace".to_string(),
        format!("  hessian = {}", structure.name()),
        format!("  prior_precision = {delta}"),
        format!("  coordinates = {}", block.len()),
    ];
    let leading = ["lp__".to_string()];
    let draws = crate::methods::draws::Draws {
        method: "laplace",
        csv_method: "laplace",
        settings: &settings,
        leading: &leading,
        first_row: None,
        rows: &rows,
    };
    crate::methods::draws::write(
        program,
        cfg,
        &draws,
        record,
        density.generated_failures().warning(rows.len()).into_iter().collect(),
        all,
    )
}

/// `run --method laplace` on a model without layers, as Stan's `laplace` method: the mode of
/// the posterior density of the unconstrained parameters (the log-Jacobian included), found
/// by L-BFGS on all the data, and the inverse of the negative Hessian of that log density
/// there as the covariance (its diagonal alone with `--hessian diag`). The model's own
/// priors are the prior: there is no precision to tune. Draws are written in the layout of
/// the variational methods, with `log_p__`, `log_g__` and the Pareto k̂ of the importance
/// ratios, which says whether the Gaussian is trustworthy.
pub fn run_posterior(
    program: &Program,
    cfg: &Config,
    diagonal: bool,
    output_draws: usize,
    all: bool,
    format: Format,
    sources: &crate::source::SourceMap,
) -> i32 {
    use crate::infer::vi::{Gaussian, Scale};
    let mut density = match super::compiled_density(program, cfg) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let dim = program.dim();
    if dim == 0 {
        eprintln!("error: the model has no parameters to approximate");
        return 2;
    }
    if !diagonal && dim > MAX_DENSE {
        eprintln!(
            "error: --hessian full would build a {dim} × {dim} curvature; above {MAX_DENSE} coordinates use --hessian diag"
        );
        return 2;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let t = std::time::Instant::now();
    let (mode, _) = match super::lbfgs_mode(&mut density, cfg, &mut rng, format, sources) {
        Ok(m) => m,
        Err(code) => return code,
    };
    if !mode.converged {
        eprintln!(
            "error: the optimiser did not find the mode ({}; the gradient norm is {:.3e}), so there is no point to centre a Laplace approximation on. A posterior with no interior mode (a hierarchical scale going to 0) has none; run --method nuts",
            mode.message, mode.grad_norm
        );
        return 3;
    }
    let theta = mode.theta.clone();
    let coords: Vec<usize> = (0..dim).collect();
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(dim as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let grad = |x: &[f64], g: &mut [f64]| -> Result<f64, String> {
        let lp = crate::density::LogDensity::logp_grad(&mut density, x, g).map_err(|e| e.to_string())?;
        if lp.is_finite() && g.iter().all(|v| v.is_finite()) {
            Ok(lp)
        } else {
            Err("the log density or its gradient is not finite near the mode".into())
        }
    };
    let h = match hessian(grad, &theta, &coords, &bar) {
        Ok(Some(h)) => h,
        Ok(None) => {
            eprintln!("error: stopped before the curvature was complete");
            return 3;
        }
        Err(e) => {
            eprintln!("error: the curvature at the mode: {e}");
            return 3;
        }
    };
    bar.finish_and_clear();
    // The covariance, and the directions in which the point is not a strict maximum.
    let (scale, flat) = if diagonal {
        let d: Vec<f64> = (0..dim).map(|i| h[i * dim + i]).collect();
        let flat = d.iter().filter(|v| !(**v > 0.0)).count();
        (Scale::LogSd(d.iter().map(|v| -0.5 * v.ln()).collect()), flat)
    } else {
        let (values, vectors) = crate::math::eigen::symmetric(&h, dim);
        let flat = values.iter().filter(|v| !(**v > 0.0)).count();
        let mut cov = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in 0..=i {
                let c: f64 = (0..dim).map(|m| vectors[i * dim + m] * vectors[j * dim + m] / values[m]).sum();
                cov[i * dim + j] = c;
                cov[j * dim + i] = c;
            }
        }
        let mut l = vec![0.0; dim * dim];
        let ok = flat == 0 && crate::ir::prim::cholesky(&cov, dim, &mut l);
        (Scale::Chol(l), if ok { 0 } else { flat.max(1) })
    };
    if flat > 0 {
        eprintln!(
            "error: the log density's curvature at the mode is not positive definite ({flat} of {dim} directions are flat or curve upwards), so no Gaussian fits there; run --method nuts"
        );
        return 3;
    }
    let q = Gaussian { mu: theta, scale };
    let seconds = t.elapsed().as_secs_f64();
    let kind = if diagonal { "diag" } else { "full" };
    eprintln!(
        "laplace: {kind} Hessian of the log density at its mode (log density {:.3}, {} L-BFGS iterations), {seconds:.2} s",
        mode.logp, mode.iterations
    );
    let mut record = serde_json::Map::new();
    record.insert("predictive".into(), "sampled".into());
    record.insert("hessian".into(), kind.into());
    record.insert("coordinates".into(), dim.into());
    record.insert("prior".into(), "the model's".into());
    record.insert("log_density_at_mode".into(), mode.logp.into());
    record.insert("iterations".into(), mode.iterations.into());
    record.insert("gradient_norm".into(), mode.grad_norm.into());
    record.insert("seconds".into(), seconds.into());
    let settings = vec!["laplace".to_string(), format!("  hessian = {kind}"), "  jacobian = true".to_string()];
    let out = crate::methods::vi::Output {
        method: "laplace",
        layout: crate::methods::vi::Layout::Laplace,
        settings,
        record,
        warnings: Vec::new(),
        output_draws,
        all,
    };
    crate::methods::vi::write(program, cfg, &mut density, &q, &mut rng, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_largest_at_the_fixed_point() {
        // H = diag(λ): the evidence's stationary point satisfies δ‖θ‖² = Σ λ/(λ + δ)
        // (MacKay's effective number of parameters).
        let lam = vec![0.5, 3.0, 40.0, 200.0];
        let norm2 = 1.7;
        let (d, _) = tune_prior_precision(&Curvature::Diagonal(lam.clone()), norm2).unwrap();
        let gamma: f64 = lam.iter().map(|l| l / (l + d)).sum();
        assert!((d * norm2 - gamma).abs() < 1e-5, "δ = {d}, γ = {gamma}");
        // The dense form, rotated, gives the same δ.
        let (c, s) = (0.6, 0.8);
        let k = lam.len();
        let mut h = vec![0.0; k * k];
        (0..k).for_each(|i| h[i * k + i] = lam[i]);
        let (a, b) = (lam[0], lam[1]);
        h[0] = c * c * a + s * s * b;
        h[1] = c * s * (a - b);
        h[k] = h[1];
        h[k + 1] = s * s * a + c * c * b;
        let (d2, _) = tune_prior_precision(&Curvature::dense(&h, k), norm2).unwrap();
        assert!((d2 / d - 1.0).abs() < 1e-6);
    }

    #[test]
    fn draws_have_the_inverse_precision_as_covariance() {
        let c = Curvature::dense(&[4.0, 1.0, 1.0, 2.0], 2);
        // Covariance by pushing the unit vectors through, compared with (H + δI)⁻¹.
        let mut cols = [[1.0, 0.0], [0.0, 1.0]];
        cols.iter_mut().for_each(|z| c.draw(0.5, z));
        let cov = |i: usize, j: usize| cols[0][i] * cols[0][j] + cols[1][i] * cols[1][j];
        let (a, b, d) = (4.5, 1.0, 2.5);
        let det = a * d - b * b;
        assert!((cov(0, 0) - d / det).abs() < 1e-12);
        assert!((cov(0, 1) + b / det).abs() < 1e-12);
        assert!((cov(1, 1) - a / det).abs() < 1e-12);
    }

    #[test]
    fn negative_curvature_is_set_to_zero() {
        let c = Curvature::dense(&[1.0, 0.0, 0.0, -3.0], 2);
        let Curvature::Eigen { values, clipped, .. } = &c else { panic!() };
        assert_eq!(*clipped, 1);
        assert!(values.iter().all(|v| *v >= 0.0));
        // The evidence stays finite for every δ.
        assert!(c.log_evidence(1e-6, 1.0).is_finite());
    }
}
