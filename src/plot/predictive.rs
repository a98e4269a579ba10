//! The plots of a prediction, read from the `predictive.csv` that `bnnc predict` wrote:
//! `predictive` (each row's predictive mean and 90% interval against the observed value, or
//! for classes the probability given to the observed class) and `calibration` (for real and
//! count variables the coverage of central intervals at every level, from each row's PIT; for
//! classes a reliability diagram of accuracy against confidence), and `ood` (histograms of an
//! uncertainty score on the data's rows and on the `--ood` rows, from `predictive-ood.csv`).

use super::PlotError;
use std::collections::HashMap;
use std::path::Path;

/// One variable's rows of predictive.csv.
pub struct Rows {
    pub name: String,
    pub class: bool,
    pub mean: Vec<f64>,
    pub q5: Vec<f64>,
    pub q95: Vec<f64>,
    pub observed: Vec<f64>,
    pub pit: Vec<f64>,
    /// Classes: each row's probabilities and predicted class.
    pub probs: Vec<Vec<f64>>,
    pub pred: Vec<usize>,
    /// Each row's uncertainty scores by name (`entropy`, `mutual_information`, `sd`,
    /// `sd_epistemic`).
    pub scores: HashMap<&'static str, Vec<f64>>,
}

/// Read `dir/predictive.csv`, the rows of `name` (the first variable when `None`).
pub fn read(dir: &Path, name: Option<&str>) -> Result<Rows, PlotError> {
    read_file(dir, "predictive.csv", name).map_err(|e| {
        e.unwrap_or_else(|| {
            PlotError::Fit(format!(
                "`{}` holds no predictions: `bnnc predict` (or `:predict`) writes them",
                dir.display()
            ))
        })
    })
}

/// Read `dir/predictive-ood.csv`, the predictions at `bnnc predict --ood`'s rows.
pub fn read_ood(dir: &Path, name: Option<&str>) -> Result<Rows, PlotError> {
    read_file(dir, "predictive-ood.csv", name).map_err(|e| {
        e.unwrap_or_else(|| {
            PlotError::Fit(format!(
                "`{}` holds no predictions at other inputs: `bnnc predict ... --ood OOD.json` writes them",
                dir.display()
            ))
        })
    })
}

/// `Err(None)` when the file cannot be read.
fn read_file(dir: &Path, file: &str, name: Option<&str>) -> Result<Rows, Option<PlotError>> {
    let text = std::fs::read_to_string(dir.join(file)).map_err(|_| None)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col: HashMap<&str, usize> = header.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let num = |f: &[&str], k: &str| {
        f.get(*col.get(k).unwrap_or(&usize::MAX)).and_then(|x| x.parse::<f64>().ok()).unwrap_or(f64::NAN)
    };
    let mut rows: Option<Rows> = None;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let var = f.first().copied().unwrap_or("");
        if name.is_some_and(|n| n != var) || rows.as_ref().is_some_and(|r| r.name != var) {
            continue;
        }
        let class = f.get(*col.get("pred").unwrap_or(&usize::MAX)).is_some_and(|p| !p.is_empty());
        let r = rows.get_or_insert_with(|| Rows {
            name: var.to_string(),
            class,
            mean: Vec::new(),
            q5: Vec::new(),
            q95: Vec::new(),
            observed: Vec::new(),
            pit: Vec::new(),
            probs: Vec::new(),
            pred: Vec::new(),
            scores: HashMap::new(),
        });
        for s in SCORES {
            let v = match *s {
                "sd_epistemic" => num(&f, "var_epistemic").sqrt(),
                _ => num(&f, s),
            };
            r.scores.entry(s).or_default().push(v);
        }
        r.mean.push(num(&f, "mean"));
        r.q5.push(num(&f, "q5"));
        r.q95.push(num(&f, "q95"));
        r.observed.push(num(&f, "observed"));
        r.pit.push(num(&f, "pit"));
        if class {
            r.pred.push(num(&f, "pred") as usize);
            let probs = (0..).map(|k| format!("p{k}")).take_while(|k| col.contains_key(k.as_str()));
            r.probs.push(probs.map(|k| num(&f, &k)).filter(|p| p.is_finite()).collect());
        }
    }
    rows.ok_or_else(|| {
        Some(match name {
            Some(n) => PlotError::NoVariable(format!("the predictions hold no variable `{n}`")),
            None => PlotError::Fit("the predictions hold no rows".into()),
        })
    })
}

/// The uncertainty scores `predict --ood` ranks rows by.
pub const SCORES: &[&str] = &["entropy", "mutual_information", "sd", "sd_epistemic"];

/// Histograms (fractions of rows in 20 equal bins over the pooled range) of uncertainty score
/// `score` on the data's rows and on the --ood rows: the further apart, the better the score
/// tells them apart.
pub fn ood(known: &Rows, other: &Rows, score: &str) -> Result<Figure, String> {
    let get = |r: &Rows| -> Vec<f64> {
        r.scores.get(score).map(|v| v.iter().copied().filter(|x| x.is_finite()).collect()).unwrap_or_default()
    };
    let (a, b) = (get(known), get(other));
    if a.is_empty() || b.is_empty() {
        return Err(format!(
            "no `{score}` in the predictions: classes have entropy and mutual_information, real values sd and sd_epistemic"
        ));
    }
    let (lo, hi) = super::range(a.iter().chain(&b).copied());
    let bins = 20;
    let width = (hi - lo) / bins as f64;
    let steps = |v: &[f64]| -> Vec<(f64, f64)> {
        let mut counts = vec![0usize; bins];
        for x in v {
            counts[(((x - lo) / width) as usize).min(bins - 1)] += 1;
        }
        let mut pts = vec![(lo, 0.0)];
        for (k, c) in counts.iter().enumerate() {
            let f = *c as f64 / v.len() as f64;
            pts.push((lo + k as f64 * width, f));
            pts.push((lo + (k + 1) as f64 * width, f));
        }
        pts.push((hi, 0.0));
        pts
    };
    let (sa, sb) = (steps(&a), steps(&b));
    let top = sa.iter().chain(&sb).map(|p| p.1).fold(0.0, f64::max);
    Ok(Figure {
        title: format!("ood {}: {score} on the data's {} rows and the --ood {} rows", known.name, a.len(), b.len()),
        x: (lo, hi),
        y: (0.0, top * 1.05),
        x_name: score.into(),
        y_name: "fraction of rows".into(),
        curves: vec![("data".into(), sa), ("--ood".into(), sb)],
        points: Vec::new(),
        segments: Vec::new(),
    })
}

/// Curves of the plot: (label, points), in the plot's coordinates, and the intervals to draw
/// as vertical segments; the axes' ranges and names.
pub struct Figure {
    pub title: String,
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub x_name: String,
    pub y_name: String,
    pub curves: Vec<(String, Vec<(f64, f64)>)>,
    pub points: Vec<(f64, f64)>,
    pub segments: Vec<((f64, f64), (f64, f64))>,
}

pub fn predictive(r: &Rows) -> Figure {
    if r.class {
        // The probability given to the observed class, rows sorted by it.
        let mut p: Vec<f64> = r
            .probs
            .iter()
            .zip(&r.observed)
            .filter_map(|(pr, y)| y.is_finite().then(|| pr.get(*y as usize).copied().unwrap_or(f64::NAN)))
            .collect();
        let without = p.is_empty();
        if without {
            p = r.probs.iter().zip(&r.pred).map(|(pr, k)| pr.get(*k).copied().unwrap_or(f64::NAN)).collect();
        }
        p.sort_by(f64::total_cmp);
        let n = p.len();
        return Figure {
            title: format!(
                "predictive {}: probability of the {} class, rows sorted",
                r.name,
                if without { "predicted" } else { "observed" }
            ),
            x: (0.0, n.max(2) as f64 - 1.0),
            y: (0.0, 1.0),
            x_name: "row (sorted)".into(),
            y_name: "probability".into(),
            curves: vec![("probability".into(), p.into_iter().enumerate().map(|(i, v)| (i as f64, v)).collect())],
            points: Vec::new(),
            segments: Vec::new(),
        };
    }
    let observed = r.observed.iter().any(|y| y.is_finite());
    let mut order: Vec<usize> = (0..r.mean.len()).collect();
    order.sort_by(|a, b| r.mean[*a].total_cmp(&r.mean[*b]));
    let xs: Vec<f64> = if observed { r.observed.clone() } else { (0..r.mean.len()).map(|i| i as f64).collect() };
    let pos = |i: usize| if observed { xs[i] } else { order.iter().position(|o| *o == i).unwrap_or(0) as f64 };
    let ys = r.q5.iter().chain(&r.q95).chain(&r.mean).copied().chain(if observed { xs.clone() } else { Vec::new() });
    let yr = super::range(ys);
    let xr = if observed { super::range(xs.iter().copied()) } else { (0.0, r.mean.len().max(2) as f64 - 1.0) };
    let mut curves = Vec::new();
    if observed {
        let (lo, hi) = (xr.0.max(yr.0), xr.1.min(yr.1));
        curves.push(("predicted = observed".into(), vec![(lo, lo), (hi, hi)]));
    }
    Figure {
        title: format!("predictive {}: mean and 90% interval per row", r.name),
        x: xr,
        y: yr,
        x_name: if observed { "observed".into() } else { "row (sorted by mean)".into() },
        y_name: "predicted".into(),
        curves,
        points: (0..r.mean.len()).map(|i| (pos(i), r.mean[i])).collect(),
        segments: (0..r.mean.len()).map(|i| ((pos(i), r.q5[i]), (pos(i), r.q95[i]))).collect(),
    }
}

pub fn calibration(r: &Rows) -> Result<Figure, String> {
    if r.class {
        let rows: Vec<(f64, bool)> = r
            .probs
            .iter()
            .zip(&r.pred)
            .zip(&r.observed)
            .filter(|(_, y)| y.is_finite())
            .map(|((p, k), y)| (p.get(*k).copied().unwrap_or(f64::NAN), *k == *y as usize))
            .collect();
        if rows.is_empty() {
            return Err("calibration needs the observed classes: predict at data that hold them".into());
        }
        let bins = 10;
        let mut pts = Vec::new();
        for b in 0..bins {
            let (lo, hi) = (b as f64 / bins as f64, (b + 1) as f64 / bins as f64);
            let inb: Vec<&(f64, bool)> =
                rows.iter().filter(|(c, _)| *c >= lo && (*c < hi || (b == bins - 1 && *c <= hi))).collect();
            if !inb.is_empty() {
                let conf = inb.iter().map(|(c, _)| c).sum::<f64>() / inb.len() as f64;
                let acc = inb.iter().filter(|(_, ok)| *ok).count() as f64 / inb.len() as f64;
                pts.push((conf, acc));
            }
        }
        return Ok(Figure {
            title: format!("calibration {}: accuracy against confidence (10 bins)", r.name),
            x: (0.0, 1.0),
            y: (0.0, 1.0),
            x_name: "confidence".into(),
            y_name: "accuracy".into(),
            curves: vec![("calibrated".into(), vec![(0.0, 0.0), (1.0, 1.0)]), ("observed".into(), pts)],
            points: Vec::new(),
            segments: Vec::new(),
        });
    }
    let pit: Vec<f64> = r.pit.iter().copied().filter(|p| p.is_finite()).collect();
    if pit.is_empty() {
        return Err("calibration needs the observed values: predict at data that hold them".into());
    }
    let curve: Vec<(f64, f64)> = (0..=20)
        .map(|k| {
            let level = k as f64 / 20.0;
            let inside = pit.iter().filter(|p| (*p - 0.5).abs() <= level / 2.0).count() as f64 / pit.len() as f64;
            (level, inside)
        })
        .collect();
    Ok(Figure {
        title: format!("calibration {}: coverage of central intervals", r.name),
        x: (0.0, 1.0),
        y: (0.0, 1.0),
        x_name: "interval level".into(),
        y_name: "coverage".into(),
        curves: vec![("calibrated".into(), vec![(0.0, 0.0), (1.0, 1.0)]), ("observed".into(), curve)],
        points: Vec::new(),
        segments: Vec::new(),
    })
}
