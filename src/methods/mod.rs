//! The inference methods other than the samplers, as `bnnc run --method M` runs them: each
//! takes the compiled program and the run's configuration, prints its summary, writes what
//! `predict` reads, and returns the exit code.
pub mod advi;
pub mod batches;
pub mod bbb;
pub mod draws;
pub mod laplace;
pub mod map;
pub mod modes;
pub mod sgmcmc;
pub mod swag;
pub mod vi;

/// `n` and the noun for it, singular or plural: "1 epoch", "20 epochs".
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The model's full-data log density compiled for a method, its generated quantities' random
/// stream seeded from the run's seed; `Err` with the exit code once the failure is printed.
pub(crate) fn compiled_density<'p>(
    program: &'p crate::ir::Program,
    cfg: &crate::infer::run::Config,
) -> Result<crate::compiled::CompiledModel<'p>, i32> {
    match crate::compiled::CompiledModel::new(program, cfg.backend) {
        Ok(mut d) => {
            d.seed(cfg.seed ^ 0x5DEE_CE66);
            Ok(d)
        }
        Err(e) => {
            eprintln!("error: {}", crate::compiled::internal_error(&e.to_string()));
            Err(2)
        }
    }
}

/// The mode of `density` by L-BFGS from `--init` or a uniform draw from `rng` on (−2, 2) for
/// each coordinate, and the seconds it took; `Err` with the exit code once the failure is
/// printed.
pub(crate) fn lbfgs_mode(
    density: &mut crate::compiled::CompiledModel,
    cfg: &crate::infer::run::Config,
    rng: &mut impl rand::Rng,
    format: crate::diag::Format,
    sources: &crate::source::SourceMap,
) -> Result<(crate::infer::optim::Mode, f64), i32> {
    use crate::density::LogDensity;
    use crate::infer::run::INIT_TRIES;
    let dim = density.dim();
    let mut g = vec![0.0; dim];
    let found = crate::infer::run::find_start(dim, cfg.init.as_ref(), rng, |x| match density.logp_grad(&x, &mut g) {
        Ok(lp) if lp.is_finite() && g.iter().all(|v| v.is_finite()) => Ok(Some(x)),
        Ok(_) => Ok(None),
        Err(e) => Err(e.message),
    });
    let start = match found {
        Ok(x) => x,
        Err(why) => {
            let tried = crate::summary::starts_tried(cfg.init.as_ref(), INIT_TRIES, "");
            let locate =
                crate::summary::Locate { program: density.program(), sources, init: cfg.init.as_ref(), seed: cfg.seed };
            return Err(crate::summary::no_initial_point(
                &format!("no starting point: {tried}, {why}"),
                format,
                Some(locate),
            ));
        }
    };
    let t = std::time::Instant::now();
    match crate::infer::optim::lbfgs(density, &start, 2000) {
        Ok(m) => Ok((m, t.elapsed().as_secs_f64())),
        Err(e) => {
            eprintln!("error: {e}");
            Err(3)
        }
    }
}
