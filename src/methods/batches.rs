//! What every method that trains on minibatches sets up before its first step: the
//! observation rows the compiler found, split into training and held-out rows, and the
//! minibatch programs (full batches, and the last, shorter one) with the forward entry on the
//! held-out rows.

use crate::diag::Format;
use crate::driver::Frontend;
use crate::ir::lower::{self, Options as LowerOptions, Purpose};
use crate::ir::Program;
use rand::seq::SliceRandom;
use rand::Rng;
use std::path::Path;

pub struct Setup {
    /// All observation rows.
    pub rows: usize,
    pub train_rows: Vec<usize>,
    /// Held out, in order.
    pub val_rows: Vec<usize>,
    pub batch_size: usize,
    /// The minibatch program of `batch_size` rows, and of the last batch's when it is shorter.
    pub full: Program,
    pub last: Option<Program>,
    /// What scores the held-out rows.
    pub val_program: Option<ValProgram>,
}

/// The program that scores held-out rows.
pub enum ValProgram {
    /// The forward entry on the held-out rows: each observed element's distribution.
    Forward(Program),
    /// The density of one row (a minibatch of one), run row by row: for a likelihood that is
    /// not one distribution per observed element (`target +=` a mixture of densities).
    Row(Program),
}

impl Setup {
    /// The minibatch programs and the model's density (`program`), compiled without the
    /// transforms' log-Jacobian as a mode's training needs; `Err` says what failed.
    pub fn compile<'p>(
        &'p self,
        program: &'p Program,
        backend: crate::compiled::Backend,
    ) -> Result<(crate::infer::minibatch::Programs<'p>, crate::compiled::CompiledModel<'p>), String> {
        self.compile_with(program, backend, false)
    }

    /// As [`Setup::compile`], with the transforms' log-Jacobian when `jacobian` (a sampler's
    /// target: the posterior of the unconstrained coordinates it moves in).
    pub fn compile_with<'p>(
        &'p self,
        program: &'p Program,
        backend: crate::compiled::Backend,
        jacobian: bool,
    ) -> Result<(crate::infer::minibatch::Programs<'p>, crate::compiled::CompiledModel<'p>), String> {
        let compile = |p| {
            crate::compiled::CompiledModel::new(p, backend).map(|c| if jacobian { c } else { c.without_jacobian() })
        };
        let ice = |e: String| crate::compiled::internal_error(&e);
        let full = compile(&self.full).map_err(ice)?;
        let last = match &self.last {
            Some(p) => Some((compile(p).map_err(ice)?, p)),
            None => None,
        };
        let density = compile(program).map_err(ice)?;
        Ok((crate::infer::minibatch::Programs { full, full_program: &self.full, last }, density))
    }
}

/// Find the rows, hold out `val_frac` of them (at random, from `rng`), and lower the programs
/// with `options` (its batch size set here). `Err` holds the exit code after the diagnostics
/// are printed.
#[allow(clippy::too_many_arguments)]
pub fn setup(
    fe: &mut Frontend,
    model: &Path,
    data: Option<&Path>,
    val_frac: f64,
    (batch_size, min_batches): (Option<usize>, usize),
    options: LowerOptions,
    rng: &mut impl Rng,
    format: Format,
) -> Result<Setup, i32> {
    let fail = |fe: &Frontend| {
        eprint!("{}", crate::driver::render_diags(fe, format));
        1
    };
    let Some((el, bound)) = fe.elaborated_with_data(model, data) else { return Err(fail(fe)) };
    let Some(size) = lower::row_size(&el) else {
        fe.diags.push(lower::no_rows_diagnostic(&el));
        return Err(fail(fe));
    };
    let n = bound.int(&size).unwrap_or(0).max(0) as usize;
    let mut rows: Vec<usize> = (0..n).collect();
    rows.shuffle(rng);
    let n_val = if val_frac > 0.0 && n >= 2 {
        ((val_frac * n as f64).round() as usize).clamp(1, n - 1)
    } else {
        if val_frac > 0.0 {
            eprintln!(
                "warning: {}: none can be held out (--val-frac {val_frac}); training on all without early stopping",
                super::count(n, "observation row")
            );
        }
        0
    };
    if n_val > 0 && n_val > n - n_val {
        eprintln!(
            "warning: --val-frac {val_frac} holds out {n_val} of the {n} rows, leaving {} to train on: the fit learns from fewer rows than it is checked on",
            n - n_val
        );
    }
    let (val_rows, train_rows) = rows.split_at(n_val);
    let mut val_rows = val_rows.to_vec();
    val_rows.sort_unstable();
    if train_rows.is_empty() {
        use crate::diag::{Code, Diagnostic};
        let message = format!("no observation rows to train on: `{size}` is {n} in the data");
        let help = "a method that trains on minibatches needs rows; with none, the posterior is the prior: --method nuts samples it";
        let d = match el.checked.data.iter().find(|d| d.name == size) {
            Some(decl) => {
                Diagnostic::error(Code::NoRowsToTrain, decl.span, message).with_label("the number of observation rows")
            }
            None => Diagnostic::error_nowhere(Code::NoRowsToTrain, message),
        };
        fe.diags.push(d.with_help(help));
        return Err(fail(fe));
    }
    let b =
        batch_size.unwrap_or_else(|| 128.min(train_rows.len().div_ceil(min_batches.max(1)))).clamp(1, train_rows.len());
    let opts = |batch| LowerOptions { batch: Some(batch), part_weights: true, ..options };
    let Some(full) = lower::lower_with(&el, &bound, Purpose::Density, opts(b), &mut fe.diags) else {
        return Err(fail(fe));
    };
    if options.drop_path && !full.inputs.iter().any(|i| matches!(i.kind, crate::ir::InputKind::JoinMask { .. })) {
        eprintln!("error: --drop-path applies to networks with `join` (a `fractal` layer), and this model has none");
        return Err(2);
    }
    let rest = train_rows.len() % b;
    let last = if rest > 0 {
        match lower::lower_with(&el, &bound, Purpose::Density, opts(rest), &mut fe.diags) {
            Some(p) => Some(p),
            None => return Err(fail(fe)),
        }
    } else {
        None
    };
    let val_program = if n_val == 0 {
        None
    } else if lower::likelihood_in_sites(&el) {
        let held = bound.select_rows(&size, &lower::row_variables(&el), &val_rows);
        match lower::lower_for(&el, &held, Purpose::Forward, &mut fe.diags) {
            Some(p) => Some(ValProgram::Forward(p)),
            None => return Err(fail(fe)),
        }
    } else {
        // The model's own density (not the method's variational or dropout form), as the
        // forward entry is: it scores points of the model's unconstrained space.
        let one_row = LowerOptions { batch: Some(1), part_weights: true, ..LowerOptions::default() };
        match lower::lower_with(&el, &bound, Purpose::Density, one_row, &mut fe.diags) {
            Some(p) => Some(ValProgram::Row(p)),
            None => return Err(fail(fe)),
        }
    };
    Ok(Setup { rows: n, train_rows: train_rows.to_vec(), val_rows, batch_size: b, full, last, val_program })
}

/// The minibatch program of one row (as [`setup`] lowers its batches), for what needs each
/// row's gradient on its own.
pub fn row_program(fe: &mut Frontend, model: &Path, data: Option<&Path>, format: Format) -> Result<Program, i32> {
    let fail = |fe: &Frontend| {
        eprint!("{}", crate::driver::render_diags(fe, format));
        1
    };
    let Some((el, bound)) = fe.elaborated_with_data(model, data) else { return Err(fail(fe)) };
    if lower::row_size(&el).is_none() {
        fe.diags.push(lower::no_rows_diagnostic(&el));
        return Err(fail(fe));
    }
    let opts = LowerOptions { batch: Some(1), part_weights: true, ..LowerOptions::default() };
    lower::lower_with(&el, &bound, Purpose::Density, opts, &mut fe.diags).ok_or_else(|| fail(fe))
}

fn mean_of_numbers(ll: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = ll.iter().copied().filter(|v| !v.is_nan()).collect();
    (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64)
}

/// Whether a spread's held-out log predictive densities per row, `spread`, are no worse than
/// the mode's, `mode`, beyond what the rows' noise allows: their mean difference at most two
/// standard errors below 0, and never more than [`HELD_OUT_SLACK`]. On failure, the mean
/// difference.
pub fn predicts_as_well(mode: &[f64], spread: &[f64]) -> Result<(), f64> {
    let d: Vec<f64> = mode.iter().zip(spread).map(|(m, s)| s - m).filter(|d| !d.is_nan()).collect();
    if d.is_empty() {
        return Err(f64::NAN);
    }
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0).max(1.0);
    let allowed = (2.0 * (var / n).sqrt()).min(HELD_OUT_SLACK);
    if mean >= -allowed {
        Ok(())
    } else {
        Err(mean)
    }
}

/// How far at most, in nats per held-out row, the predictive of SWAG's Gaussian around a mode
/// may fall below the mode's own on the held-out rows before the rate that made the spread
/// is refused: a rate that wrecks the predictions can still keep the log density within the
/// posterior's bulk, whose width grows with the parameters.
pub const HELD_OUT_SLACK: f64 = 0.3;

/// The held-out rows' log predictive density of points on the unconstrained space, when rows
/// are held out.
pub enum HeldOut<'p> {
    Forward(crate::compiled::Forward<'p>),
    /// A row's density, the rows input that selects it, and the held-out rows.
    Row(Box<crate::compiled::CompiledModel<'p>>, crate::infer::minibatch::Inputs, &'p [usize]),
}

impl<'p> HeldOut<'p> {
    pub fn new(setup: &'p Setup, backend: crate::compiled::Backend) -> Result<Option<HeldOut<'p>>, String> {
        Ok(Some(match &setup.val_program {
            None => return Ok(None),
            Some(ValProgram::Forward(p)) => HeldOut::Forward(crate::compiled::Forward::new(p, backend)?),
            Some(ValProgram::Row(p)) => {
                let mut m = crate::compiled::CompiledModel::new(p, backend)?;
                let inputs = crate::infer::minibatch::Inputs::of(p);
                inputs.set_weights(&mut m, 1.0, 0.0)?;
                HeldOut::Row(Box::new(m), inputs, &setup.val_rows)
            }
        }))
    }

    /// The mean over held-out rows of the log predictive density of the mixture of `xs`.
    pub fn score<X: AsRef<[f64]>>(&mut self, density: &mut crate::compiled::CompiledModel, xs: &[X]) -> Option<f64> {
        mean_of_numbers(&self.pointwise(density, xs)?)
    }

    /// The log predictive density of the mixture of `xs` at each held-out row (NaN where it
    /// cannot be computed).
    pub fn pointwise<X: AsRef<[f64]>>(
        &mut self,
        density: &mut crate::compiled::CompiledModel,
        xs: &[X],
    ) -> Option<Vec<f64>> {
        let (model, inputs, rows) = match self {
            HeldOut::Forward(fw) => {
                let draws: Vec<Vec<f64>> = xs
                    .iter()
                    .filter_map(|x| density.constrained(x.as_ref(), false).ok())
                    .map(|v| v.into_iter().flat_map(|(_, _, x)| x).collect())
                    .collect();
                return crate::predict::pointwise_log_lik(fw, &draws).ok();
            }
            HeldOut::Row(model, inputs, rows) => (model, inputs, rows),
        };
        let k = inputs.rows?;
        let s = xs.len() as f64;
        let mut out = Vec::with_capacity(rows.len());
        for &r in rows.iter() {
            model.set_input(k, &[r as f64]).ok()?;
            // log (1/S) Σ_s p(row | x_s), shifted by the largest term.
            let ll: Vec<f64> = xs.iter().map(|x| model.eval(x.as_ref()).map_or(f64::NAN, |e| e.likelihood)).collect();
            let top = ll.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out.push(if top.is_finite() {
                top + (ll.iter().map(|l| (l - top).exp()).sum::<f64>() / s).ln()
            } else {
                top
            });
        }
        Some(out)
    }
}

/// The training objective at `x`: the mean over one pass of `setup`'s training rows of each
/// batch's scaled log density (a training epoch at rate 0, which leaves `x` where it is) —
/// the quantity the SGD-based methods score their iterates by, here at a fixed point rather
/// than along the pretraining's moving one.
pub fn objective_at(
    progs: &mut crate::infer::minibatch::Programs,
    setup: &Setup,
    x: &[f64],
    drop_path: (f64, f64),
    rng: &mut rand::rngs::SmallRng,
) -> Result<f64, String> {
    use crate::infer::minibatch;
    let pass = minibatch::Settings::still(1, setup.batch_size, drop_path);
    let run = minibatch::train(
        progs,
        x.to_vec(),
        &setup.train_rows,
        &pass,
        &mut minibatch::Mode::new(x.len()),
        rng,
        &mut None,
        &mut |_, _| {},
    )?
    .or_diverged()?;
    Ok(run.epochs.first().map_or(f64::NAN, |e| e.objective))
}

/// Whether iterates whose log density is on average `drop` below a mode's are among the
/// posterior's bulk, for a model of `dim` coordinates: draws from a Gaussian posterior lie
/// dim/2 below its mode on average, with a standard deviation of √(dim/2); three of those are
/// allowed.
pub fn within_bulk(drop: f64, dim: usize) -> bool {
    let half = dim as f64 / 2.0;
    drop.is_finite() && drop <= half + 3.0 * half.sqrt()
}
