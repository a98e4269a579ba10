//! Draws in CmdStan's CSV layout, so CmdStan-CSV readers (ArviZ's `from_cmdstan`,
//! cmdstanpy) load them: a header of `#` configuration comments, the column names (sampler
//! columns first), adaptation comments, one row per draw, and timing comments.
//!
//! Column names follow CmdStan's convention — 1-based indices joined by dots (`eta.1`,
//! `W.2.3`) — so readers rebuild arrays; bnnc's own summary uses 0-based brackets
//! (`eta[0]`, `W[1,2]`).

use std::io::Write;

pub const SAMPLER_COLUMNS: [&str; 7] =
    ["lp__", "accept_stat__", "stepsize__", "treedepth__", "n_leapfrog__", "divergent__", "energy__"];

/// Element names of a variable of `shape`: `(bnnc, cmdstan)` pairs, row-major.
pub fn element_names(name: &str, shape: &[usize]) -> Vec<(String, String)> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    if shape.is_empty() {
        out.push((name.to_string(), name.to_string()));
        return out;
    }
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let zero: Vec<String> = idx.iter().map(|i| i.to_string()).collect();
        let one: Vec<String> = idx.iter().map(|i| (i + 1).to_string()).collect();
        out.push((format!("{name}[{}]", zero.join(",")), format!("{name}.{}", one.join("."))));
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// The configuration written at the top of each file.
pub struct Header<'a> {
    pub model: &'a str,
    pub method: &'a str,
    pub chain: usize,
    pub seed: u64,
    pub warmup: usize,
    pub draws: usize,
    pub max_depth: usize,
    pub adapt_delta: f64,
    pub metric: &'a str,
    pub data_file: &'a str,
}

pub fn write_header<W: Write>(w: &mut W, h: &Header, columns: &[String]) -> std::io::Result<()> {
    writeln!(w, "# model = {}", h.model)?;
    writeln!(w, "# method = sample (Default)")?;
    writeln!(w, "#   sample")?;
    writeln!(w, "#     num_samples = {}", h.draws)?;
    writeln!(w, "#     num_warmup = {}", h.warmup)?;
    writeln!(w, "#     save_warmup = 0 (Default)")?;
    writeln!(w, "#     thin = 1 (Default)")?;
    writeln!(w, "#     adapt")?;
    writeln!(w, "#       engaged = 1 (Default)")?;
    writeln!(w, "#       delta = {}", h.adapt_delta)?;
    writeln!(w, "#     algorithm = hmc (Default)")?;
    writeln!(w, "#       hmc")?;
    writeln!(w, "#         engine = {}", h.method)?;
    writeln!(w, "#           {}", h.method)?;
    writeln!(w, "#             max_depth = {}", h.max_depth)?;
    writeln!(w, "#         metric = {}", h.metric)?;
    writeln!(w, "# id = {}", h.chain + 1)?;
    writeln!(w, "# data")?;
    writeln!(w, "#   file = {}", h.data_file)?;
    writeln!(w, "# random")?;
    writeln!(w, "#   seed = {}", h.seed)?;
    writeln!(w, "# stan_version_major = 2")?;
    writeln!(w, "# stan_version_minor = 36")?;
    writeln!(w, "# stan_version_patch = 0")?;
    writeln!(w, "# generator = bnnc {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(w, "{}", columns.join(","))
}

/// The random starts a chain gave up (a comment line each, before the adaptation block; no
/// `=` in them, so readers that parse `key = value` comments pass over them).
pub fn write_restarts<W: Write>(w: &mut W, restarts: &[crate::infer::run::Restart]) -> std::io::Result<()> {
    for r in restarts {
        writeln!(
            w,
            "# Restarted: a random start with log density {:e} given up after {} warmup iterations, step size {:e}",
            r.start_logp, r.iterations, r.step_size
        )?;
    }
    Ok(())
}

pub fn write_adaptation<W: Write>(w: &mut W, step_size: f64, inv_metric_diag: &[f64]) -> std::io::Result<()> {
    writeln!(w, "# Adaptation terminated")?;
    writeln!(w, "# Step size = {step_size}")?;
    writeln!(w, "# Diagonal elements of inverse mass matrix:")?;
    let v: Vec<String> = inv_metric_diag.iter().map(|x| number(*x)).collect();
    writeln!(w, "# {}", v.join(", "))
}

pub fn write_row<W: Write>(w: &mut W, values: &[f64]) -> std::io::Result<()> {
    let mut line = String::with_capacity(values.len() * 12);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&number(*v));
    }
    writeln!(w, "{line}")
}

/// A value as a CSV cell: the shortest decimal that reads back as the same double, with an
/// exponent outside 1e-5 to 1e16 (`1e-300`, not three hundred zeros; `2.5e20`), integers
/// without a decimal point (`3`).
pub fn number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-5..1e16).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:?}")
    }
}

pub fn write_timing<W: Write>(w: &mut W, warmup_s: f64, sampling_s: f64) -> std::io::Result<()> {
    writeln!(w, "# ")?;
    writeln!(w, "#  Elapsed Time: {warmup_s:.3} seconds (Warm-up)")?;
    writeln!(w, "#                {sampling_s:.3} seconds (Sampling)")?;
    writeln!(w, "#                {:.3} seconds (Total)", warmup_s + sampling_s)?;
    writeln!(w, "# ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back_exactly_and_use_an_exponent_far_from_one() {
        for (v, text) in
            [(3.0, "3"), (0.25, "0.25"), (1e-300, "1e-300"), (-2.5e20, "-2.5e20"), (0.0, "0"), (1e-5, "0.00001")]
        {
            assert_eq!(number(v), text);
        }
        for v in [1.0 / 3.0, 6.02e23, -1.2345678901234567e-7, 123456.789, f64::MIN_POSITIVE] {
            assert_eq!(number(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn names_are_row_major_in_both_conventions() {
        let n = element_names("W", &[2, 3]);
        assert_eq!(n[1], ("W[0,1]".to_string(), "W.1.2".to_string()));
        assert_eq!(n[3], ("W[1,0]".to_string(), "W.2.1".to_string()));
        assert_eq!(element_names("mu", &[]), vec![("mu".to_string(), "mu".to_string())]);
    }
}
