//! `run --method sgmcmc`: cyclical SGLD or SGHMC ([`crate::infer::sgmcmc`]) from a posterior
//! mode found on minibatches (as `map --batch-size`). The largest step size is chosen as
//! SWAG's learning rate is: the largest per-row rate, of 10⁻², 10⁻³, …, whose draws keep the
//! log density of a posterior's bulk ([`crate::methods::batches::within_bulk`]).

use crate::diag::Format;
use crate::driver::Frontend;
use crate::infer::run::Config;
use crate::infer::sgmcmc::{self, Sampler};
use crate::ir::Program;
use rand::SeedableRng;
use std::path::Path;

pub struct Options {
    /// The pretraining's (as `map --batch-size`).
    pub modes: crate::methods::modes::Options,
    pub sampler: Sampler,
    pub cycles: usize,
}

/// Steps of sampling in all, over the cycles.
const STEPS: usize = 20_000;
const DRAWS_PER_CYCLE: usize = 5;
const EXPLORE: f64 = 0.8;
const RATES: [f64; 9] = [1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8];

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
    let t = std::time::Instant::now();
    let (setup, _, mode) =
        match crate::methods::modes::pretrain(fe, model, data, program, cfg, &o.modes, &mut rng, format, "sgmcmc", all)
        {
            Ok(x) => x,
            Err(code) => return code,
        };
    let (b, n) = (setup.batch_size, setup.train_rows.len());
    // The sampler moves in the unconstrained coordinates, so its target there carries the
    // transforms' log-Jacobian (without it, a noise scale's draws sit below the posterior's).
    let (mut progs, mut density) = match setup.compile_with(program, cfg.backend, true) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let dim = program.dim();
    let mut srng = rand::rngs::SmallRng::seed_from_u64(crate::infer::run::chain_seed(cfg.seed, 1));
    // The mode's log density on all the rows (with the log-Jacobian, as the draws' lp__): the
    // draws' are compared with it exactly, since a minibatch's estimate (a last batch of a few
    // rows scaled up to all of them) can be tens of nats off on a small data set.
    let at_mode = match density.eval(&mode.run.x) {
        Ok(e) if (e.logp + e.jacobian).is_finite() => e.logp + e.jacobian,
        Ok(e) => {
            eprintln!("error: the log density at the mode is {}", e.logp + e.jacobian);
            return 3;
        }
        Err(e) => {
            eprintln!("error: the log density at the mode: {e}");
            return 3;
        }
    };
    let mut tried = Vec::new();
    let mut chosen = None;
    for rate in RATES {
        let s = sgmcmc::Settings {
            sampler: o.sampler,
            cycles: o.cycles,
            cycle_steps: (STEPS / o.cycles).max(10),
            step: rate / n as f64,
            explore: EXPLORE,
            draws_per_cycle: DRAWS_PER_CYCLE,
            batch_size: b,
            friction: 0.1,
            drop_path: o.modes.drop_path.unwrap_or((0.0, 0.0)),
        };
        let bar = crate::methods::modes::progress_bar(&format!("sgmcmc (rate {rate:e})"), s.cycles);
        let sampled = sgmcmc::sample(&mut progs, mode.run.x.clone(), &setup.train_rows, &s, &mut srng, &mut |c, _| {
            bar.set_position(c as u64)
        });
        bar.finish_and_clear();
        match sampled {
            Ok(out) => {
                // Each draw's lp__, for the bulk check and the draws file alike.
                let lps: Vec<f64> =
                    out.draws.iter().map(|x| density.eval(x).map_or(f64::NAN, |e| e.logp + e.jacobian)).collect();
                let mean = lps.iter().sum::<f64>() / lps.len().max(1) as f64;
                if out.stopped || crate::methods::batches::within_bulk(at_mode - mean, dim) {
                    chosen = Some((rate, out, lps));
                    break;
                }
                tried.push(format!(
                    "at rate {rate} the draws' log density fell {:.3e} below the mode's",
                    at_mode - mean
                ));
            }
            Err(e) => tried.push(format!("at rate {rate}: {e}")),
        }
    }
    let Some((rate, out, lps)) = chosen else {
        eprintln!("error: the sampler left the mode at every step size tried ({})", tried.join("; "));
        return 3;
    };
    let mut rows = Vec::new();
    for (theta, lp) in out.draws.iter().zip(lps) {
        let Ok((v, _)) = density.constrained_keeping_params(theta) else { continue };
        rows.push([vec![lp], v.into_iter().flat_map(|(_, _, x)| x).collect()].concat());
    }
    if rows.is_empty() {
        eprintln!("error: no draw was made");
        return 3;
    }
    let seconds = t.elapsed().as_secs_f64();
    let name = if o.sampler == Sampler::Sgld { "sgld" } else { "sghmc" };
    eprintln!(
        "sgmcmc: {} draws from {} cycles of cyclical {name} at rate {rate} per row, {seconds:.1} s",
        rows.len(),
        o.cycles
    );
    let mut warnings: Vec<String> = density.generated_failures().warning(rows.len()).into_iter().collect();
    if out.stopped {
        warnings.push(format!("stopped early: {} draws kept", rows.len()));
    }
    if let Some((first, second)) = drift(&rows.iter().map(|r| r[0]).collect::<Vec<_>>(), dim) {
        warnings.push(format!(
            "the draws' log density drifts from cycle to cycle (mean {first:.1} in the first half of the draws, {second:.1} in the second): the sampler has not settled, so their spread is not the posterior's; try more --cycles, or --method ensemble"
        ));
    }
    let record = serde_json::json!({
        "sgmcmc": {
            "sampler": name,
            "cycles": o.cycles,
            "rate": rate,
            "steps": out.steps,
            "batch_size": b,
            "held_out_rows": setup.val_rows.len(),
            "seconds": seconds,
        }
    });
    let settings = vec![
        format!("sgmcmc"),
        format!("  sampler = {name}"),
        format!("  cycles = {}", o.cycles),
        format!("  rate = {rate}"),
    ];
    let leading = ["lp__".to_string()];
    let draws = crate::methods::draws::Draws {
        method: "sgmcmc",
        csv_method: "sgmcmc",
        settings: &settings,
        leading: &leading,
        first_row: None,
        rows: &rows,
    };
    crate::methods::draws::write(program, cfg, &draws, record, warnings, all)
}

/// The means of the first and second halves of the draws' log densities `lp`, when they differ
/// by more than draws that had settled in a posterior of `dim` coordinates could (three
/// standard deviations of a Gaussian posterior's log density, √(dim/2)).
fn drift(lp: &[f64], dim: usize) -> Option<(f64, f64)> {
    let finite: Vec<f64> = lp.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.len() < 4 {
        return None;
    }
    let (a, b) = finite.split_at(finite.len() / 2);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let (first, second) = (mean(a), mean(b));
    ((first - second).abs() > 3.0 * (dim as f64 / 2.0).sqrt()).then_some((first, second))
}

#[cfg(test)]
mod tests {
    #[test]
    fn drift_is_a_change_of_level_beyond_a_posteriors_spread() {
        let settled: Vec<f64> = (0..100).map(|i| -500.0 + ((i * 37) % 11) as f64 - 5.0).collect();
        assert_eq!(super::drift(&settled, 400), None);
        let falling: Vec<f64> = (0..100).map(|i| -500.0 - 3.0 * i as f64).collect();
        assert!(super::drift(&falling, 400).is_some());
    }
}
