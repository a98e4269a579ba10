//! `bnnc predict MODEL.bnn --fit DIR [--data NEW.json] [--ood OOD.json] [--out DIR]`.

use super::{fit, Variable};
use crate::compiled::{Backend, Forward};
use crate::diag::{Code, Diagnostic, Format};
use crate::driver::{self, Frontend};
use crate::ir::lower::{lower_with, Options as LowerOptions, Purpose};
use std::path::{Path, PathBuf};

pub struct Options {
    /// List the names in the data files the model does not declare.
    pub verbose: bool,
    pub model: PathBuf,
    pub fit: PathBuf,
    /// New data (default: the model's own data file).
    pub data: Option<PathBuf>,
    pub ood: Option<PathBuf>,
    /// Where predictive.json and predictive.csv go (default: the fit's directory).
    pub out: Option<PathBuf>,
    pub seed: u64,
    pub backend: Backend,
    pub format: Format,
    /// Predict with one column of a fractal network (0 the deepest) instead of all.
    pub column: Option<usize>,
}

/// The forward program for the data at `path`: observed variables the file lacks are
/// filled in and listed in the second value.
fn forward_program(
    fe: &mut Frontend,
    path: &Path,
    observed: &[String],
    fill: f64,
    dropout: bool,
    drop_path: bool,
    ood: bool,
) -> Option<(crate::ir::Program, Vec<String>)> {
    let el = fe.elaborated.clone()?;
    // Out-of-distribution rows are scored by their inputs alone: their observed values (labels
    // of classes the model never saw, say) are not read.
    let optional = (observed, fill, ood);
    let bound = crate::data::load_data_filling(path, &el.checked.data, optional, &mut fe.sources, &mut fe.diags)?;
    if fe.verbose && !bound.ignored.is_empty() {
        eprintln!("data: {}: ignored, not declared by the model: {}", path.display(), bound.ignored.join(", "));
    }
    let filled = bound.filled.clone();
    let options = LowerOptions { dropout_masks: dropout, drop_path, ..Default::default() };
    let p = lower_with(&el, &bound, Purpose::Forward, options, &mut fe.diags)?;
    Some((p, filled))
}

/// Predictions at the data in `path`; `Err` with the exit code once a diagnostic is pushed.
fn predict_at(
    fe: &mut Frontend,
    path: &Path,
    observed: &[String],
    fit: &fit::Fit,
    o: &Options,
    ood: bool,
) -> Result<(Vec<Variable>, usize), i32> {
    // An MC Dropout fit predicts with fresh dropout masks at each of its passes.
    let passes = fit.mc_samples.filter(|_| fit.method == "mc-dropout");
    let (program, filled) =
        forward_program(fe, path, observed, 0.0, passes.is_some(), o.column.is_some(), ood).ok_or(1)?;
    if program.sites.is_empty() {
        // At the `model` block, whose statements observe nothing.
        let model = fe.program.items.iter().find_map(|it| match it {
            crate::syntax::ast::Item::Block(b) if b.kind == crate::syntax::ast::BlockKind::Model => Some(b),
            _ => None,
        });
        // Data observed through a mixture of densities (`log_mix`, `log_sum_exp` of `_lpdf`s)
        // has no one family to summarise.
        let mixture = fe.elaborated.as_ref().is_some_and(|el| !crate::ir::lower::mixture_observed(el).is_empty());
        let msg = if mixture {
            "the model observes its data only through a mixture of densities: there is no one distribution to predict from"
        } else {
            "the model has no `~` statement (or `target += ..._lpdf(...)`) on data: nothing to predict"
        };
        let d = match model {
            Some(b) => Diagnostic::error(Code::NothingToPredict, b.kw_span, msg).with_label(if mixture {
                "a mixture here"
            } else {
                "no data observed here"
            }),
            None => Diagnostic::error_nowhere(Code::NothingToPredict, msg),
        };
        fe.diags.push(d.with_help(if mixture {
            "predict summarises data observed by one distribution; data that enter through a mixture (`log_mix`, `log_sum_exp` of densities) are not summarised: draw replicates in `generated` (`y_new = ...`) and summarise those (`bnnc repl --fit`)"
        } else {
            "predict summarises the observed variables, the data on the left of `~` in `model`; a density of a quantity computed from parameters (a residual) observes no data"
        }));
        return Err(1);
    }
    // Dirichlet and LKJ variates (a simplex, a correlation matrix) are not summarised element
    // by element.
    let skipped: Vec<&crate::ir::Site> =
        program.sites.iter().filter(|s| super::family::kind(s.family).is_none()).collect();
    if !skipped.is_empty() {
        let d = |s: &crate::ir::Site, code| {
            Diagnostic::error(
                code,
                s.span,
                format!(
                    "`{}` follows {}, a multivariate distribution, which predict does not summarise",
                    s.name,
                    s.family.name()
                ),
            )
            .with_label("not summarised")
        };
        if skipped.len() == program.sites.len() {
            fe.diags.push(
                d(skipped[0], Code::NothingToPredict)
                    .with_help("predict summarises variables with an elementwise, class or multivariate normal distribution (normal, poisson, bernoulli, categorical, multi_normal, ...)"),
            );
            return Err(1);
        }
        for s in skipped {
            eprintln!(
                "warning: `{}` follows {}, a multivariate distribution, which predict does not summarise; the other observed variables are predicted",
                s.name,
                s.family.name()
            );
        }
    }
    let draws = match fit::draws_for(fit, &program) {
        Ok(d) => d,
        Err(fit::Unmatched { param, why, resized }) => {
            let help = if resized && fit.model_hash.is_some() {
                // The fit is this model's (its hash matched): the new data's sizes differ.
                format!(
                    "in `{}`, only the number of rows may differ from the training data: sizes such as a network's number of inputs or a count of groups must be as they were",
                    path.display()
                )
            } else {
                format!("`{}` must hold a fit of this model made by `bnnc run`", o.fit.display())
            };
            let decl = fe.elaborated.as_ref().and_then(|el| el.checked.params.iter().find(|d| d.name == param));
            let d = match decl {
                Some(d) => Diagnostic::error(Code::FitUnusable, d.span, why).with_label("declared here"),
                None => Diagnostic::error_nowhere(Code::FitUnusable, why),
            };
            fe.diags.push(d.with_help(help));
            return Err(1);
        }
    };
    let mut with_observed: Vec<String> = observed.iter().filter(|n| !filled.contains(n)).cloned().collect();
    // An observed `let` computed from data (`let ly = log(y)`, `ly ~ ...`) is scored when the
    // data it is computed from were given.
    if let Some(el) = fe.elaborated.as_ref() {
        for (name, from) in crate::ir::lower::observed_lets(el) {
            if from.iter().all(|d| !filled.contains(d)) {
                with_observed.push(name);
            }
        }
    }
    let mut fw = Forward::new(&program, o.backend).map_err(|e| {
        eprintln!("error: internal compiler error: {e} (`--backend interp` predicts without compiling)");
        2
    })?;
    if let Some(c) = o.column {
        keep_column(fe, &mut fw, c)?;
    }
    // MC Dropout: its mode, once per pass, each pass with masks of its own.
    let draws = match passes {
        Some(t) => {
            fw = fw.with_dropout(o.seed);
            vec![draws[0].clone(); t]
        }
        None => draws,
    };
    // A filled-in variable must not change the distribution it is predicted from: were it
    // also an input (y[t] ~ normal(y[t-1], σ)), the prediction would use the filler.
    if !filled.is_empty() {
        let (other, _) =
            forward_program(fe, path, observed, 1.0, passes.is_some(), o.column.is_some(), ood).ok_or(1)?;
        let mut fw2 = Forward::new(&other, o.backend).map_err(|_| 2)?;
        if let Some(c) = o.column {
            keep_column(fe, &mut fw2, c)?;
        }
        if passes.is_some() {
            fw2 = fw2.with_dropout(o.seed);
        }
        if let (Ok(()), Ok(())) = (fw.eval(&draws[0]), fw2.eval(&draws[0])) {
            for k in 0..program.sites.len() {
                let (a, b) = (fw.site(k), fw2.site(k));
                if a.args
                    .iter()
                    .zip(&b.args)
                    .any(|(x, y)| x.iter().zip(y.iter()).any(|(u, v)| u.to_bits() != v.to_bits()))
                {
                    let site = &program.sites[k];
                    fe.diags.push(
                        Diagnostic::error(
                            Code::ObservedIsInput,
                            site.span,
                            format!(
                                "`{}` is missing from `{}`, and the model reads it to predict itself",
                                site.name,
                                path.display()
                            ),
                        )
                        .with_label("this distribution's arguments depend on the missing values")
                        .with_help(format!(
                            "give `{}` in the new data: its values are inputs as well as observations",
                            site.name
                        )),
                    );
                    return Err(1);
                }
            }
        }
    }
    // A Laplace fit of a network: the linearised predictive at its mode.
    let mode = match &fit.linearise_at {
        Some(m) => {
            let one = fit::Fit { rows: vec![m.clone()], chains: vec![1], linearise_at: None, ..fit.clone() };
            fit::draws_for(&one, &program).ok().and_then(|d| d.into_iter().next())
        }
        None => None,
    };
    match super::predict_with(&mut fw, &draws, mode.as_deref(), &with_observed, o.seed) {
        Ok(v) => Ok((v, draws.len())),
        Err(e) => {
            fe.diags.push(
                Diagnostic::error_nowhere(
                    Code::NotFinite,
                    format!("the model cannot be evaluated at a draw of the fit: {e}"),
                )
                .with_help("check the new data against the training data's ranges and units"),
            );
            Err(1)
        }
    }
}

/// Set the join masks of `fw` to pass column `column` of the fractal only (FractalNet's
/// single-column networks).
fn keep_column(fe: &mut Frontend, fw: &mut Forward, column: usize) -> Result<(), i32> {
    let joins = crate::infer::minibatch::joins_of(fw.program());
    let columns = crate::infer::minibatch::columns(&joins);
    if joins.is_empty() || column >= columns {
        let why = if joins.is_empty() {
            "the model has no `join`, so no columns to choose from".to_string()
        } else {
            format!("the network has {columns} columns, numbered 0 (the deepest) to {}", columns - 1)
        };
        fe.diags.push(
            Diagnostic::error_nowhere(Code::NoSuchColumn, format!("`--column {column}`: {why}"))
                .with_help("--column picks one column of a fractal (`fractal`, `fractal_conv` or your own `join`s); leave it out to predict with every column"),
        );
        return Err(1);
    }
    for (k, kept) in crate::infer::minibatch::column_masks(&joins, column) {
        fw.set_input(k, &[if kept { 1.0 } else { 0.0 }]).map_err(|e| {
            eprintln!("error: internal compiler error: {e}");
            2
        })?;
    }
    Ok(())
}

pub fn run(o: Options) -> i32 {
    let mut fe = driver::frontend_file(&o.model);
    fe.verbose = o.verbose;
    let code = run_in(&mut fe, &o);
    if fe.diags.has_errors() || !fe.diags.is_empty() {
        eprint!("{}", driver::render_diags(&fe, o.format));
    }
    code
}

fn run_in(fe: &mut Frontend, o: &Options) -> i32 {
    if fe.diags.has_errors() || fe.elaborated.is_none() {
        return 1;
    }
    let fit = match fit::read_fit(&o.fit) {
        Ok(f) => f,
        Err(why) => {
            fe.diags.push(Diagnostic::error_nowhere(Code::FitUnusable, why));
            return 1;
        }
    };
    if !fit.made_from(&fe.model_hash()) {
        fe.diags.push(
            Diagnostic::error_nowhere(Code::FitUnusable, fit.not_made_from(&o.fit, &o.model))
            .with_help("a fit is read with the model it was made from (comments and layout aside): fit this model with `bnnc run`, or predict with the model the fit was made from, as it was"),
        );
        return 1;
    }
    let Some(el) = fe.elaborated.as_ref() else { return 1 };
    // The observed data, with those an observed `let` is computed from: each may be left out
    // of the new data, and is then predicted.
    let mut observed = super::observed_names(el);
    for (_, from) in crate::ir::lower::observed_lets(el) {
        observed.extend(from.into_iter().filter(|d| !observed.contains(d)).collect::<Vec<_>>());
    }
    let data = match driver::data_path(&o.model, o.data.as_deref()) {
        Some(p) => p,
        None if el.checked.data.is_empty() => {
            fe.diags.push(Diagnostic::error_nowhere(
                Code::NothingToPredict,
                "the model has no data, so no observed variable to predict",
            ));
            return 1;
        }
        None => {
            fe.diags.push(
                Diagnostic::error_nowhere(Code::NoDataFile, "give the inputs to predict at with `--data NEW.json`")
                    .with_help(format!(
                        "without --data, predict reads `{}` beside the model",
                        o.model.with_extension("json").display()
                    )),
            );
            return 1;
        }
    };
    let (vars, draws) = match predict_at(fe, &data, &observed, &fit, o, false) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (ood, ood_vars) = match &o.ood {
        None => (None, None),
        Some(path) => match predict_at(fe, path, &observed, &fit, o, true) {
            Ok((ood_vars, _)) => (super::ood_scores(&vars, &ood_vars), Some(ood_vars)),
            Err(code) => return code,
        },
    };
    let out_dir = o.out.clone().unwrap_or_else(|| o.fit.clone());
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("error: cannot create `{}`: {e}", out_dir.display());
        return 2;
    }
    let json = super::to_json(&fit.method, draws, &vars, ood.clone());
    let written =
        std::fs::write(out_dir.join("predictive.json"), serde_json::to_string_pretty(&json).unwrap_or_default())
            .and_then(|()| std::fs::write(out_dir.join("predictive.csv"), super::to_csv(&vars)))
            .and_then(|()| match &ood_vars {
                // The --ood rows, for `bnnc plot FIT ood`.
                Some(v) => std::fs::write(out_dir.join("predictive-ood.csv"), super::to_csv(v)),
                None => std::fs::remove_file(out_dir.join("predictive-ood.csv")).or(Ok(())),
            });
    print!("{}", super::table(&vars, ood.as_ref()));
    if let Err(e) = written {
        eprintln!("error: cannot write predictions to `{}`: {e}", out_dir.display());
        return 2;
    }
    let also = if ood_vars.is_some() { ", predictive.csv and predictive-ood.csv" } else { " and predictive.csv" };
    println!("wrote {}{also}", out_dir.join("predictive.json").display());
    0
}
