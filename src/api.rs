//! The library for Rust programs: compile a model, give it data as `ndarray` arrays or a file,
//! sample or optimise, and predict on new inputs — what `bnnc run` and `bnnc predict` do, with
//! arrays in and out instead of files.
//!
//! ```
//! use bnnc::{Data, Model, SampleOptions};
//! use ndarray::array;
//!
//! let mut model = Model::from_source(
//!     "line.bnn",
//!     "data { N: int\n x: vector[N]\n y: vector[N] }
//!      params { a: real ~ normal(0, 5)\n b: real ~ normal(0, 5)\n s: real<lower=0> ~ normal(0, 1) }
//!      model { y ~ normal(a + b * x, s) }",
//! )?;
//! let data = Data::new()
//!     .int("N", 5)
//!     .array("x", &array![0.0, 1.0, 2.0, 3.0, 4.0])
//!     .array("y", &array![0.1, 1.9, 4.2, 5.8, 8.1]);
//! let fit = model.sample(&data, &SampleOptions { chains: 2, warmup: 300, draws: 300, ..Default::default() })?;
//! assert_eq!(fit.draws.nrows(), 600);
//! let b = fit.column("b").expect("b is a parameter");
//! assert!((b.mean().unwrap() - 2.0).abs() < 0.3);
//!
//! // Predict y at new inputs (y itself is left out).
//! let new = Data::new().int("N", 2).array("x", &array![5.0, 6.0]);
//! let pred = model.predict(&fit, &new, 1)?;
//! let means = pred[0].means();
//! assert!((means[0] - 10.0).abs() < 1.0 && (means[1] - 12.0).abs() < 1.0);
//! # Ok::<(), bnnc::Error>(())
//! ```

use crate::compiled::Backend;
use crate::data::BoundData;
use crate::diag::Format;
use crate::driver::{self, Frontend};
use crate::infer::run::{self, Config, Method};
use crate::infer::stan_csv::element_names;
use crate::ir::lower::{lower_for, Purpose};
use crate::ir::Program;
use ndarray::{Array2, ArrayBase, ArrayView1, Dimension};
use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong: the diagnostics as `bnnc` prints them (without colour), or a message.
#[derive(Clone, Debug)]
pub struct Error {
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl Error {
    fn msg(m: impl Into<String>) -> Error {
        Error { message: m.into() }
    }
}

/// Data for a model: arrays by name, or a data file (JSON, CSV, `.npz`, `.npy`).
#[derive(Clone, Debug, Default)]
pub struct Data {
    arrays: Vec<(String, Vec<usize>, Vec<f64>, bool)>,
    file: Option<PathBuf>,
}

impl Data {
    /// No data yet; add arrays with [`Data::int`], [`Data::real`], [`Data::array`], [`Data::ints`].
    pub fn new() -> Data {
        Data::default()
    }

    /// The data in a file, read and checked when a model uses it.
    pub fn from_file(path: impl AsRef<Path>) -> Data {
        Data { arrays: Vec::new(), file: Some(path.as_ref().to_path_buf()) }
    }

    /// An int scalar (a size, say).
    pub fn int(mut self, name: &str, value: i64) -> Data {
        self.arrays.push((name.to_string(), Vec::new(), vec![value as f64], true));
        self
    }

    /// A real scalar.
    pub fn real(mut self, name: &str, value: f64) -> Data {
        self.arrays.push((name.to_string(), Vec::new(), vec![value], false));
        self
    }

    /// A real array of any dimension (a vector, a matrix with one row per observation, ...).
    pub fn array<S, D>(mut self, name: &str, a: &ArrayBase<S, D>) -> Data
    where
        S: ndarray::Data<Elem = f64>,
        D: Dimension,
    {
        self.arrays.push((name.to_string(), a.shape().to_vec(), a.iter().copied().collect(), false));
        self
    }

    /// An int array (labels, counts, indices).
    pub fn ints<S, D>(mut self, name: &str, a: &ArrayBase<S, D>) -> Data
    where
        S: ndarray::Data<Elem = i64>,
        D: Dimension,
    {
        self.arrays.push((name.to_string(), a.shape().to_vec(), a.iter().map(|v| *v as f64).collect(), true));
        self
    }
}

/// How to sample ([`Model::sample`]): NUTS with Stan's warmup, as `bnnc run`.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    pub chains: usize,
    pub warmup: usize,
    pub draws: usize,
    pub seed: u64,
    /// Threads for the chains (default: the number of cores).
    pub threads: Option<usize>,
    /// Also write the fit there (`summary.json`, `draws-<chain>.csv`), for `bnnc predict`.
    pub out_dir: Option<PathBuf>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions { chains: 4, warmup: 1000, draws: 1000, seed: 1, threads: None, out_dir: None }
    }
}

/// Draws of a model's parameters and generated quantities: one row per draw (chains one after
/// the other), one column per scalar, named as in `bnnc run`'s summary (`eta[0]`, `h.W[1,2]`).
#[derive(Clone, Debug)]
pub struct Fit {
    pub method: String,
    pub names: Vec<String>,
    pub draws: Array2<f64>,
    pub chains: usize,
    /// The same columns in CmdStan's naming (`eta.1`), as the draws files have them.
    stan_names: Vec<String>,
}

impl Fit {
    /// The draws of one scalar, by name.
    pub fn column(&self, name: &str) -> Option<ArrayView1<'_, f64>> {
        let j = self.names.iter().position(|n| n == name)?;
        Some(self.draws.column(j))
    }

    /// The fit `bnnc run --out DIR` wrote.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Fit, Error> {
        let f = crate::predict::fit::read_fit(dir.as_ref()).map_err(Error::msg)?;
        let skip = f.columns.iter().take_while(|c| c.ends_with("__")).count();
        let stan_names: Vec<String> = f.columns[skip..].to_vec();
        let names = stan_names.iter().map(|c| bnnc_name(c)).collect();
        let rows: Vec<f64> = f.rows.iter().flat_map(|r| r[skip..].iter().copied()).collect();
        let draws =
            Array2::from_shape_vec((f.rows.len(), stan_names.len()), rows).map_err(|e| Error::msg(e.to_string()))?;
        Ok(Fit { method: f.method, names, draws, chains: 1, stan_names })
    }

    fn as_fit_file(&self) -> crate::predict::fit::Fit {
        crate::predict::fit::Fit {
            method: self.method.clone(),
            columns: self.stan_names.clone(),
            rows: self.draws.rows().into_iter().map(|r| r.to_vec()).collect(),
            chains: vec![self.draws.nrows()],
            data_file: None,
            model_hash: None,
            model_name: None,
            mc_samples: None,
            linearise_at: None,
        }
    }
}

/// `eta.1` → `eta[0]`, `W.2.3` → `W[1,2]` (a layer's path keeps its dots: only the trailing
/// numeric parts are indices).
pub(crate) fn bnnc_name(stan: &str) -> String {
    let parts: Vec<&str> = stan.split('.').collect();
    let k = parts.iter().rev().take_while(|p| p.parse::<usize>().is_ok()).count();
    if k == 0 {
        return stan.to_string();
    }
    let idx: Vec<String> =
        parts[parts.len() - k..].iter().map(|p| (p.parse::<usize>().unwrap_or(1) - 1).to_string()).collect();
    format!("{}[{}]", parts[..parts.len() - k].join("."), idx.join(","))
}

/// A model, checked and elaborated; each call binds data and compiles what it needs.
pub struct Model {
    fe: Frontend,
    name: String,
}

impl Model {
    /// Read and check a model file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Model, Error> {
        let path = path.as_ref();
        let fe = driver::frontend_file(path);
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        Model::checked(fe, name)
    }

    /// Check a model given as text (`name` is for diagnostics; imports are relative to the
    /// working directory).
    pub fn from_source(name: &str, text: &str) -> Result<Model, Error> {
        let fe = driver::frontend_text(name, text, None);
        Model::checked(fe, name.trim_end_matches(".bnn").to_string())
    }

    fn checked(fe: Frontend, name: String) -> Result<Model, Error> {
        let mut m = Model { fe, name };
        if m.fe.diags.has_errors() || m.fe.elaborated.is_none() {
            return Err(m.failed());
        }
        Ok(m)
    }

    fn failed(&mut self) -> Error {
        let e = Error::msg(driver::render_diags(&self.fe, Format::Human { color: false }));
        self.fe.diags = crate::diag::Diagnostics::new();
        e
    }

    /// The parameters' names, layer parameters by path (`h.W`).
    pub fn parameters(&self) -> Vec<String> {
        self.fe
            .elaborated
            .as_ref()
            .map(|e| e.checked.params.iter().map(|d| d.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The observed variables: data on the left of `~`, which [`Model::predict`] predicts.
    pub fn observed(&self) -> Vec<String> {
        self.fe.elaborated.as_ref().map(crate::predict::observed_names).unwrap_or_default()
    }

    fn bind(&mut self, data: &Data, optional: &[String], fill: f64) -> Result<BoundData, Error> {
        let Some(el) = self.fe.elaborated.clone() else { return Err(self.failed()) };
        let decls = &el.checked.data;
        let bound = match &data.file {
            Some(path) => crate::data::load_data_filling(
                path,
                decls,
                (optional, fill, false),
                &mut self.fe.sources,
                &mut self.fe.diags,
            ),
            None => crate::data::bind_arrays(
                &data.arrays,
                decls,
                (optional, fill),
                "the data given",
                &mut self.fe.sources,
                &mut self.fe.diags,
            ),
        };
        bound.ok_or_else(|| self.failed())
    }

    /// The program of `purpose` for `data` (the log density, its forward entry, its draws).
    pub fn compile(&mut self, data: &Data, purpose: Purpose) -> Result<Program, Error> {
        let bound = self.bind(data, &[], 0.0)?;
        self.lower(&bound, purpose)
    }

    fn lower(&mut self, bound: &BoundData, purpose: Purpose) -> Result<Program, Error> {
        let Some(el) = self.fe.elaborated.clone() else { return Err(self.failed()) };
        lower_for(&el, bound, purpose, &mut self.fe.diags).ok_or_else(|| self.failed())
    }

    /// Sample the posterior with NUTS.
    pub fn sample(&mut self, data: &Data, opts: &SampleOptions) -> Result<Fit, Error> {
        let program = self.compile(data, Purpose::Density)?;
        if let Some(dir) = &opts.out_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::msg(format!("cannot create `{}`: {e}", dir.display())))?;
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let cfg = Config {
            method: Method::Nuts,
            chains: opts.chains.max(1),
            warmup: opts.warmup,
            draws: opts.draws,
            seed: opts.seed,
            threads: opts.threads.unwrap_or(cores).max(1),
            max_depth: 10,
            adapt_delta: 0.8,
            dense: false,
            hmc_steps: 16,
            init: None,
            out_dir: opts.out_dir.clone(),
            model_name: self.name.clone(),
            model_hash: self.fe.model_hash(),
            data_file: data.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            backend: Backend::Jit,
        };
        let chains = run::run(&program, &cfg, &|_, _| {});
        let ok: Vec<&run::Chain> = chains.iter().filter(|c| c.error.is_none() && !c.draws.is_empty()).collect();
        if ok.is_empty() {
            let why: Vec<String> = chains.iter().filter_map(|c| c.error.clone()).collect();
            return Err(Error::msg(format!("no chain produced draws: {}", why.join("; "))));
        }
        let n = ok.iter().map(|c| c.draws.len()).min().unwrap_or(0);
        let columns = run::column_names(&program);
        let flat: Vec<f64> = ok.iter().flat_map(|c| c.draws[..n].iter().flatten().copied()).collect();
        let draws =
            Array2::from_shape_vec((ok.len() * n, columns.len()), flat).map_err(|e| Error::msg(e.to_string()))?;
        let fit = Fit {
            method: "nuts".into(),
            names: columns.iter().map(|(b, _)| b.clone()).collect(),
            stan_names: columns.iter().map(|(_, s)| s.clone()).collect(),
            draws,
            chains: ok.len(),
        };
        if let Some(dir) = &opts.out_dir {
            write_summary(dir, &fit, n, &self.fe.model_hash())?;
        }
        Ok(fit)
    }

    /// The posterior mode by L-BFGS (as `bnnc run --method map`), as a one-draw fit.
    pub fn map(&mut self, data: &Data, seed: u64) -> Result<Fit, Error> {
        use rand::{RngExt, SeedableRng};
        let program = self.compile(data, Purpose::Density)?;
        let mut density = crate::compiled::CompiledModel::new(&program, Backend::Jit)
            .map_err(|e| Error::msg(format!("internal compiler error: {e}")))?
            .without_jacobian();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let start: Vec<f64> = (0..program.dim()).map(|_| rng.random_range(-2.0..2.0)).collect();
        let mode = crate::infer::optim::lbfgs(&mut density, &start, 2000).map_err(Error::msg)?;
        let values = density.constrained(&mode.theta, true).map_err(|e| Error::msg(e.to_string()))?;
        let mut names = Vec::new();
        let mut stan_names = Vec::new();
        let mut row = Vec::new();
        for (name, shape, vals) in values {
            for (b, s) in element_names(&name, &shape) {
                names.push(b);
                stan_names.push(s);
            }
            row.extend(vals);
        }
        let draws = Array2::from_shape_vec((1, row.len()), row).map_err(|e| Error::msg(e.to_string()))?;
        Ok(Fit { method: "map".into(), names, stan_names, draws, chains: 1 })
    }

    /// Predict every observed variable at `data` (which may leave them out) from `fit`, as
    /// `bnnc predict` does; the predictive draws use `seed`.
    pub fn predict(&mut self, fit: &Fit, data: &Data, seed: u64) -> Result<Vec<crate::predict::Variable>, Error> {
        let observed = self.observed();
        let bound = self.bind(data, &observed, 0.0)?;
        let with_observed: Vec<String> = observed.iter().filter(|n| !bound.filled.contains(n)).cloned().collect();
        let program = self.lower(&bound, Purpose::Forward)?;
        if program.sites.is_empty() {
            return Err(Error::msg("the model has no `~` statement on data: nothing to predict"));
        }
        let draws = crate::predict::fit::draws_for(&fit.as_fit_file(), &program).map_err(|u| Error::msg(u.why))?;
        let mut fw = crate::compiled::Forward::new(&program, Backend::Jit)
            .map_err(|e| Error::msg(format!("internal compiler error: {e}")))?;
        crate::predict::predict(&mut fw, &draws, &with_observed, seed).map_err(|e| Error::msg(e.to_string()))
    }
}

/// A `summary.json` for a fit made through the library, so that `bnnc predict` reads it.
fn write_summary(dir: &Path, fit: &Fit, per_chain: usize, model_hash: &str) -> Result<(), Error> {
    let mut vars = serde_json::Map::new();
    for (j, name) in fit.names.iter().enumerate() {
        let col = fit.draws.column(j);
        let chains: Vec<Vec<f64>> =
            (0..fit.chains).map(|c| col.iter().skip(c * per_chain).take(per_chain).copied().collect()).collect();
        let s = crate::summary::stats::summarise(&chains);
        vars.insert(name.clone(), serde_json::to_value(s).unwrap_or(serde_json::Value::Null));
    }
    let json = serde_json::json!({
        "method": fit.method,
        "model_hash": model_hash,
        "chains": fit.chains,
        "draws_per_chain": per_chain,
        "variables": vars,
    });
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&json).unwrap_or_default())
        .map_err(|e| Error::msg(format!("cannot write `{}`: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::bnnc_name;

    #[test]
    fn cmdstan_names_back_to_bnnc_names() {
        assert_eq!(bnnc_name("mu"), "mu");
        assert_eq!(bnnc_name("eta.1"), "eta[0]");
        assert_eq!(bnnc_name("h.W.2.3"), "h.W[1,2]");
        assert_eq!(bnnc_name("f.fractal.1.dense.b.4"), "f.fractal.1.dense.b[3]");
    }
}
