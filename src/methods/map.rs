//! `run --method map`: the posterior mode, printed and written where `predict` finds it.

/// `run --method map`: the posterior mode by L-BFGS, in the model's own parameterisation
/// (no log-Jacobian, as Stan's optimiser), printed and written to summary.json.
pub fn run(
    program: &crate::ir::Program,
    cfg: &crate::infer::run::Config,
    all: bool,
    format: crate::diag::Format,
    sources: &crate::source::SourceMap,
) -> i32 {
    let mut interp = match super::compiled_density(program, cfg) {
        Ok(d) => d.without_jacobian(),
        Err(code) => return code,
    };
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(cfg.seed);
    let (mode, seconds) = match super::lbfgs_mode(&mut interp, cfg, &mut rng, format, sources) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let values = match interp.constrained_keeping_params(&mode.theta) {
        Ok((v, failure)) => {
            if let Some(e) = failure {
                eprintln!("warning: the generated quantities could not be computed at the mode ({e}): they are NaN");
            }
            v
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    let bounds =
        if mode.converged { at_bounds(program, &mut interp, &mode.theta, mode.logp, &values) } else { Vec::new() };
    let optimizer = serde_json::json!({
        "logp": mode.logp,
        "iterations": mode.iterations,
        "grad_norm": mode.grad_norm,
        "converged": mode.converged,
        "message": mode.message,
        "grad_evals": mode.grad_evals,
        "seconds": seconds,
        "at_bound": bounds.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
    });
    let mut warnings = Vec::new();
    let mut code = 0;
    if !bounds.is_empty() {
        warnings.push(bound_warning(&bounds, "the estimate is where the optimiser stopped on its way"));
        code = 3;
    } else if !mode.converged {
        // A network's density on all rows has kinks (relu), and weights (or a noise scale)
        // that keep moving as they fit the rows: L-BFGS stops short of a mode, at a usable point.
        if crate::summary::network::has_layers(program) {
            warnings.push(format!("the optimiser stopped ({}; the gradient norm is {:.3e}): a network's log density on all rows can keep rising as its weights fit the rows ever more closely (logits growing, or a noise scale falling towards 0), and has kinks where relu units switch, so there may be no exact mode to reach. For a point that predicts well, train on minibatches and stop on held-out rows: --method map --batch-size 32", mode.message, mode.grad_norm));
        } else {
            warnings.push(format!("the optimiser did not converge ({}); the gradient norm is {:.3e}. A posterior with no interior mode (a hierarchical scale going to 0) has none to find.", mode.message, mode.grad_norm));
            code = 3;
        }
    }
    match report(program, cfg, "map", &values, mode.logp, ("optimizer", optimizer), warnings, all) {
        0 => code,
        failed => failed,
    }
}

/// Why a mode at `bounds` (from [`at_bounds`], not empty) is no estimate, saying what the
/// point is (`what`).
pub(crate) fn bound_warning(bounds: &[(String, f64)], what: &str) -> String {
    let shown: Vec<String> = bounds.iter().take(4).map(|(n, v)| format!("{n} (stopped at {v:.3e})")).collect();
    let more = if bounds.len() > 4 { format!(" and {} more", bounds.len() - 4) } else { String::new() };
    let s = if bounds.len() > 1 { "s" } else { "" };
    format!(
        "the log density keeps rising towards the bound{s} of {}{more}: there is no mode inside the support, and {what} (a hierarchical scale going to 0, a coefficient pinned at its limit, ordered values running together). For the posterior, run --method nuts",
        shown.join(", ")
    )
}

/// The elements of bounded parameters whose mode lies at a bound, with their values: the
/// unconstrained coordinate far out (more than 5 from 0, where the value is within 1% of the
/// bound on its own scale) and the log density no lower two units further towards the bound
/// (it keeps rising or is flat there, so the optimiser's stopping point is arbitrary). A mode
/// that merely lies close to a bound falls off when moved closer still.
pub(crate) fn at_bounds(
    program: &crate::ir::Program,
    density: &mut crate::compiled::CompiledModel,
    theta: &[f64],
    logp: f64,
    values: &[(String, Vec<usize>, Vec<f64>)],
) -> Vec<(String, f64)> {
    use crate::density::LogDensity;
    use crate::math::transform::Kind;
    let mut found = Vec::new();
    let mut g = vec![0.0; theta.len()];
    let mut t = theta.to_vec();
    for pl in &program.params {
        // Each value of an ordered stack has its gaps on the log scale: a gap far below 0 is
        // two elements run together (a mixture's components collapsed onto one).
        let unit = pl.kind.unit(&pl.shape).max(1);
        let logged = |e: usize| match pl.kind {
            Kind::Lower | Kind::Upper | Kind::PositiveOrdered => true,
            Kind::Ordered => e % unit != 0,
            _ => false,
        };
        if !matches!(pl.kind, Kind::Lower | Kind::Upper | Kind::LowerUpper | Kind::Ordered | Kind::PositiveOrdered) {
            continue;
        }
        let names = crate::infer::stan_csv::element_names(&pl.name, &pl.shape);
        for e in 0..pl.free_len {
            let y = theta[pl.offset + e];
            let out = if pl.kind == Kind::LowerUpper { y.abs() > 5.0 } else { logged(e) && y < -5.0 };
            if !out {
                continue;
            }
            t[pl.offset + e] = y + 2.0 * y.signum();
            let further = density.logp_grad(&t, &mut g);
            t[pl.offset + e] = y;
            if further.is_ok_and(|lp| lp >= logp - 1e-9 * logp.abs().max(1.0)) {
                let value = values.iter().find(|v| v.0 == pl.name).and_then(|v| v.2.get(e)).copied();
                found.push((names.get(e).map_or_else(|| pl.name.clone(), |n| n.0.clone()), value.unwrap_or(f64::NAN)));
            }
        }
    }
    found
}

/// Print a mode's estimates and `warnings` (with any for values that are not finite), and
/// write summary.json (`method`, the warnings, and the method's record under `record_key`) and
/// the one-row draws file. Returns the exit code.
pub fn report(
    program: &crate::ir::Program,
    cfg: &crate::infer::run::Config,
    method: &str,
    values: &[(String, Vec<usize>, Vec<f64>)],
    logp: f64,
    (record_key, record): (&str, serde_json::Value),
    mut warnings: Vec<String>,
    all: bool,
) -> i32 {
    let non_finite = values.iter().map(|(n, _, v)| (n.as_str(), usize::from(v.iter().any(|x| !x.is_finite()))));
    warnings.extend(crate::summary::non_finite_warning(non_finite, 1));
    let mut vars = serde_json::Map::new();
    let width = values
        .iter()
        .flat_map(|(n, s, _)| crate::infer::stan_csv::element_names(n, s))
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(4)
        .max(4);
    // A network's weights fold into a line per layer, as in the sampler's summary.
    let fold = !all && crate::summary::network::has_layers(program);
    // The table is printed once the files are written (a reader that closes the pipe
    // early must not cost the fit).
    let mut text = format!("{:<width$} {:>12}\n", "", "Estimate");
    let mut layers: Vec<(String, usize, f64)> = Vec::new();
    for (name, shape, vals) in values {
        let layer = crate::summary::network::layer_of(name).filter(|_| fold);
        for ((label, _), v) in crate::infer::stan_csv::element_names(name, shape).into_iter().zip(vals) {
            match layer {
                Some(l) => match layers.iter_mut().find(|(n, ..)| n == l) {
                    Some(e) => {
                        e.1 += 1;
                        e.2 = e.2.max(v.abs());
                    }
                    None => layers.push((l.to_string(), 1, v.abs())),
                },
                None => text.push_str(&format!("{label:<width$} {:>12}\n", format!("{v:.6}"))),
            }
            // `mean` as every method has it (a point's own value); no spread to report.
            vars.insert(label, serde_json::json!({ "estimate": v, "mean": v }));
        }
    }
    for (l, n, max) in &layers {
        text.push_str(&format!("{l:<width$} {n} weights, largest |w| {max:.3}\n"));
    }
    if !layers.is_empty() {
        text.push_str("(--all prints every weight; summary.json holds them all)\n");
    }
    let mut json = serde_json::json!({
        "method": method,
        "model_hash": cfg.model_hash,
        "variables": vars,
        "warnings": warnings,
    });
    json[record_key] = record;
    // The mode as a one-row draws file, as CmdStan's optimiser writes it: `predict` reads it.
    let mut columns = vec!["lp__".to_string()];
    let mut row = vec![logp];
    for (name, shape, vals) in values {
        columns.extend(crate::infer::stan_csv::element_names(name, shape).into_iter().map(|(_, c)| c));
        row.extend_from_slice(vals);
    }
    let mut csv = format!(
        "# model = {}\n# method = optimize\n# data\n#   file = {}\n{}\n",
        cfg.model_name,
        cfg.data_file,
        columns.join(",")
    );
    csv.push_str(&row.iter().map(|v| crate::infer::stan_csv::number(*v)).collect::<Vec<_>>().join(","));
    csv.push('\n');
    let Some(out_dir) = &cfg.out_dir else { return 2 };
    let draws_path = out_dir.join("draws-1.csv");
    if let Err(e) = std::fs::write(&draws_path, csv) {
        eprintln!("error: cannot write `{}`: {e}", draws_path.display());
        return 2;
    }
    let path = out_dir.join("summary.json");
    if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap_or_default()) {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        return 2;
    }
    print!("{text}");
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    0
}
