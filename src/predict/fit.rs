//! A fit directory as `run` leaves it: `summary.json` (the method) and `draws-<chain>.csv`
//! (CmdStan's layout), read back into one constrained draw per row for the forward entry.

use crate::ir::Program;
use std::path::Path;

/// The draws of a fit, every chain's rows one after the other.
#[derive(Clone)]
pub struct Fit {
    pub method: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    /// How many of the rows each chain holds, in order.
    pub chains: Vec<usize>,
    /// The data file the fit was made with, as its draws file records it.
    pub data_file: Option<String>,
    /// The fingerprint of the model text the fit was made from, when recorded.
    pub model_hash: Option<String>,
    /// The name of the model the fit was made from, as its draws file records it.
    pub model_name: Option<String>,
    /// For an MC Dropout fit: the passes with fresh dropout masks its predictive averages.
    pub mc_samples: Option<usize>,
    /// For a Laplace fit of a network: the mode, a row of the draws' columns, at which its
    /// predictive is linearised ([`super::linear`]).
    pub linearise_at: Option<Vec<f64>>,
}

impl Fit {
    /// Whether the fit may have been made from a model whose text has `fingerprint`
    /// ([`crate::source::fingerprint`]): it is, or the fit recorded none.
    pub fn made_from(&self, fingerprint: &str) -> bool {
        self.model_hash.as_deref().is_none_or(|h| h == fingerprint)
    }

    /// Why the fit in `dir` cannot be read with `model` (when not [`Self::made_from`] it):
    /// another model's fit, or one of an earlier version of this model.
    pub fn not_made_from(&self, dir: &Path, model: &Path) -> String {
        let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        match &self.model_name {
            Some(name) if *name != stem => {
                format!("`{}` holds a fit of the model `{name}`, not of `{}`", dir.display(), model.display())
            }
            _ => format!("`{}` was fitted with another version of `{}`", dir.display(), model.display()),
        }
    }
}

/// Read `dir`. `Err` says what is missing or malformed.
pub fn read_fit(dir: &Path) -> Result<Fit, String> {
    let summary = dir.join("summary.json");
    let linearise_at: Option<Vec<f64>>;
    let (method, model_hash, mc_samples) = match std::fs::read_to_string(&summary) {
        Ok(t) => {
            let v = serde_json::from_str::<serde_json::Value>(&t).ok();
            let get = |k: &str| v.as_ref().and_then(|v| v.get(k)).and_then(|m| m.as_str()).map(str::to_string);
            let method = get("method").ok_or_else(|| format!("`{}` has no \"method\"", summary.display()))?;
            let mc = v.as_ref().and_then(|v| v["mc_dropout"]["mc_samples"].as_u64()).map(|n| n as usize);
            linearise_at = v
                .as_ref()
                .and_then(|v| v["laplace"]["linearise_at"].as_array())
                .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect());
            (method, get("model_hash").filter(|h| !h.is_empty()), mc)
        }
        Err(_) => {
            return Err(format!(
                "`{}` holds no fit (no summary.json); `bnnc run MODEL.bnn --out {}` makes one",
                dir.display(),
                dir.display()
            ))
        }
    };
    let mut files: Vec<(usize, std::path::PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let chain = name.strip_prefix("draws-")?.strip_suffix(".csv")?.parse().ok()?;
            Some((chain, e.path()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("`{}` holds no draws (draws-<chain>.csv)", dir.display()));
    }
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let mut chains = Vec::new();
    let mut data_file = None;
    let mut model_name = None;
    for (_, path) in &files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        // CmdStan's header: `# data` then `#   file = PATH`.
        if data_file.is_none() {
            data_file = text
                .lines()
                .take_while(|l| l.starts_with('#'))
                .find_map(|l| l.trim_start_matches('#').trim().strip_prefix("file = ").map(str::to_string))
                .filter(|f| !f.is_empty());
        }
        if model_name.is_none() {
            model_name = text
                .lines()
                .take_while(|l| l.starts_with('#'))
                .find_map(|l| l.trim_start_matches('#').trim().strip_prefix("model = ").map(str::to_string));
        }
        let before = rows.len();
        // A variational fit's first row is q's mean, not a draw (CmdStan's layout).
        let variational = text.lines().take_while(|l| l.starts_with('#')).any(|l| l.trim() == "# method = variational");
        let mut lines = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty());
        let header: Vec<String> = lines
            .next()
            .ok_or_else(|| format!("`{}` has no header", path.display()))?
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        match &columns {
            Some(c) if *c != header => {
                return Err(format!("`{}` has other columns than the first chain's", path.display()))
            }
            _ => columns = Some(header.clone()),
        }
        for (i, line) in lines.enumerate().skip(usize::from(variational)) {
            let row: Result<Vec<f64>, _> = line.split(',').map(|s| s.trim().parse::<f64>()).collect();
            match row {
                Ok(r) if r.len() == header.len() => rows.push(r),
                _ => return Err(format!("`{}`: draw {} is not {} numbers", path.display(), i + 1, header.len())),
            }
        }
        chains.push(rows.len() - before);
    }
    if rows.is_empty() {
        return Err(format!("`{}` holds no draws", dir.display()));
    }
    let columns = columns.unwrap_or_default();
    if linearise_at.as_ref().is_some_and(|m| m.len() != columns.len()) {
        return Err(format!("`{}`: the Laplace mode has not one value per column of the draws", summary.display()));
    }
    Ok(Fit { method, columns, rows, chains, data_file, model_hash, model_name, mc_samples, linearise_at })
}

/// The shape a fit's columns give `name` (CmdStan's 1-based `name.i.j`), if it has any.
fn fit_shape(columns: &[String], name: &str) -> Option<Vec<usize>> {
    let prefix = format!("{name}.");
    let mut shape: Option<Vec<usize>> = None;
    for c in columns {
        if c == name {
            return Some(Vec::new());
        }
        if let Some(rest) = c.strip_prefix(&prefix) {
            let idx: Option<Vec<usize>> = rest.split('.').map(|s| s.parse().ok()).collect();
            if let Some(idx) = idx {
                let s = shape.get_or_insert_with(|| vec![0; idx.len()]);
                if s.len() == idx.len() {
                    s.iter_mut().zip(&idx).for_each(|(d, i)| *d = (*d).max(*i));
                }
            }
        }
    }
    shape
}

/// Why a fit's draws do not fit the forward program: the parameter, and what is wrong.
#[derive(Clone, Debug)]
pub struct Unmatched {
    pub param: String,
    pub why: String,
    /// The parameter is in the fit with another shape: the data give it other sizes.
    pub resized: bool,
}

/// Each draw as the forward program's parameter vector (constrained values, parameter by
/// parameter, row-major). `Err` when a parameter is missing from the fit or has another shape
/// there (the new data give it other sizes).
pub fn draws_for(fit: &Fit, p: &Program) -> Result<Vec<Vec<f64>>, Unmatched> {
    let mut cols = Vec::with_capacity(p.dim());
    let missing = |param: &str, why: String| Unmatched { param: param.to_string(), why, resized: false };
    for pl in &p.params {
        match fit_shape(&fit.columns, &pl.name) {
            None => {
                return Err(missing(
                    &pl.name,
                    format!("the fit has no draws of parameter `{}`: was it made from this model?", pl.name),
                ))
            }
            Some(s) if s != pl.shape => {
                return Err(Unmatched {
                    param: pl.name.clone(),
                    why: format!(
                        "parameter `{}` has shape {:?} with these data, but {:?} in the fit: sizes that shape parameters must be as in the training data",
                        pl.name, pl.shape, s
                    ),
                    resized: true,
                })
            }
            Some(_) => {}
        }
        for (_, col) in crate::infer::stan_csv::element_names(&pl.name, &pl.shape) {
            let at = fit
                .columns
                .iter()
                .position(|c| *c == col)
                .ok_or_else(|| missing(&pl.name, format!("the fit has no column `{col}`")))?;
            cols.push(at);
        }
    }
    Ok(fit.rows.iter().map(|r| cols.iter().map(|c| r[*c]).collect()).collect())
}
