//! Plots of a fit's draws: in the terminal (Unicode braille, the window's width) and to SVG
//! (plotters). Kinds: `trace` (each chain's draws in order), `density` (a kernel density
//! estimate per chain), `rank` (each chain's histogram of the pooled draws' ranks, flat when
//! the chains agree) and `pair` (two variables' joint draws); and of a prediction
//! ([`predictive`]): `predictive` and `calibration`.

mod canvas;
pub mod predictive;
mod raster;

use canvas::Canvas;
use plotters::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Each chain's draws in order.
    Trace,
    /// A kernel density estimate per chain.
    Density,
    /// Each chain's histogram of the pooled draws' ranks (flat when chains agree).
    Rank,
    /// Two scalars' joint draws.
    Pair,
    /// Predicted against observed, from the fit directory's predictive.csv.
    Predictive,
    /// Interval coverage (real) or reliability (classes), from predictive.csv.
    Calibration,
    /// Histograms of an uncertainty score (default entropy, or sd) on the data's rows and on
    /// `predict --ood`'s rows.
    Ood,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Trace => "trace",
            Kind::Density => "density",
            Kind::Rank => "rank",
            Kind::Pair => "pair",
            Kind::Predictive => "predictive",
            Kind::Calibration => "calibration",
            Kind::Ood => "ood",
        }
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        [Kind::Trace, Kind::Density, Kind::Rank, Kind::Pair, Kind::Predictive, Kind::Calibration, Kind::Ood]
            .into_iter()
            .find(|k| k.name() == s)
    }
}

/// One variable's draws, chain by chain.
pub struct Series {
    pub name: String,
    pub chains: Vec<Vec<f64>>,
}

/// A Gaussian kernel density estimate at `n` points over `[lo, hi]` (Silverman's bandwidth).
fn kde(x: &[f64], lo: f64, hi: f64, n: usize) -> Vec<(f64, f64)> {
    let m = x.len() as f64;
    let mean = x.iter().sum::<f64>() / m;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0).max(1.0)).sqrt();
    let h = (1.06 * sd * m.powf(-0.2)).max(1e-12 * (hi - lo).abs().max(1e-300));
    let c = 1.0 / (m * h * (2.0 * std::f64::consts::PI).sqrt());
    (0..n)
        .map(|i| {
            let t = lo + (hi - lo) * i as f64 / (n - 1).max(1) as f64;
            (t, c * x.iter().map(|v| (-0.5 * ((t - v) / h).powi(2)).exp()).sum::<f64>())
        })
        .collect()
}

/// Each chain's counts of the pooled draws' ranks in `bins` equal bins.
fn rank_counts(chains: &[Vec<f64>], bins: usize) -> Vec<Vec<usize>> {
    let mut all: Vec<(f64, usize)> =
        chains.iter().enumerate().flat_map(|(c, v)| v.iter().map(move |x| (*x, c))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len().max(1);
    let mut counts = vec![vec![0; bins]; chains.len()];
    for (r, (_, c)) in all.iter().enumerate() {
        counts[*c][(r * bins / n).min(bins - 1)] += 1;
    }
    counts
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !(lo < hi) {
        let c = if lo.is_finite() { lo } else { 0.0 };
        return (c - 0.5, c + 0.5);
    }
    (lo, hi)
}

/// The plot drawn in the terminal, `width` characters wide.
pub fn terminal(kind: Kind, series: &[Series], width: usize) -> Result<String, String> {
    match kind {
        Kind::Rank => {
            const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
            let mut out = String::new();
            for s in series {
                let bins = 20;
                let counts = rank_counts(&s.chains, bins);
                let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1);
                out.push_str(&format!(
                    "rank {} (each chain's ranks among all draws; flat when chains agree)\n",
                    s.name
                ));
                for (c, row) in counts.iter().enumerate() {
                    let bars: String = row.iter().map(|k| BARS[(k * 7 / top).min(7)]).collect();
                    out.push_str(&format!("  chain {:<3} {bars}\n", c + 1));
                }
            }
            Ok(out)
        }
        Kind::Predictive | Kind::Calibration | Kind::Ood => {
            Err("a prediction's plot is drawn from predictive.csv".into())
        }
        _ => Ok(figures(kind, series)?.iter().map(|f| figure_terminal(f, width)).collect()),
    }
}

/// The terminal's width in characters: `$COLUMNS` when set, else the window of standard
/// output when it is a terminal, else 80.
pub fn terminal_width() -> usize {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return c;
    }
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ fills a `winsize` for a terminal and fails otherwise; the struct
        // is ours and zeroed.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col > 0 {
            return ws.ws_col as usize;
        }
    }
    80
}

/// A number as axis labels show it.
fn short(x: f64) -> String {
    if x != 0.0 && !(1e-3..1e5).contains(&x.abs()) {
        format!("{x:.2e}")
    } else {
        format!("{x:.3}")
    }
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("cannot draw the plot: {e:?}")
}

/// The draws' plots as figures, one per scalar (one for `pair`).
fn figures(kind: Kind, series: &[Series]) -> Result<Vec<predictive::Figure>, String> {
    use predictive::Figure;
    let chains = |n: usize| (1..=n).map(|c| format!("chain {c}"));
    if kind == Kind::Pair {
        let [a, b] = series else { return Err("`pair` plots two variables".into()) };
        let xs: Vec<f64> = a.chains.iter().flatten().copied().collect();
        let ys: Vec<f64> = b.chains.iter().flatten().copied().collect();
        return Ok(vec![Figure {
            title: format!("pair {} against {}", b.name, a.name),
            x: range(xs.iter().copied()),
            y: range(ys.iter().copied()),
            x_name: a.name.clone(),
            y_name: b.name.clone(),
            curves: Vec::new(),
            points: xs.into_iter().zip(ys).collect(),
            segments: Vec::new(),
        }]);
    }
    Ok(series
        .iter()
        .map(|s| {
            let (x, y, x_name, curves): ((f64, f64), (f64, f64), &str, Vec<Vec<(f64, f64)>>) = match kind {
                Kind::Trace => {
                    let n = s.chains.iter().map(Vec::len).max().unwrap_or(1);
                    let curves =
                        s.chains.iter().map(|c| c.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect()).collect();
                    ((0.0, (n.max(2) - 1) as f64), range(s.chains.iter().flatten().copied()), "draw", curves)
                }
                Kind::Density => {
                    let (lo, hi) = range(s.chains.iter().flatten().copied());
                    let curves: Vec<Vec<(f64, f64)>> = s.chains.iter().map(|c| kde(c, lo, hi, 200)).collect();
                    let top = curves.iter().flatten().map(|p| p.1).fold(0.0, f64::max);
                    ((lo, hi), (0.0, top * 1.05), "value", curves)
                }
                _ => {
                    let bins = 20;
                    let counts = rank_counts(&s.chains, bins);
                    let top = counts.iter().flatten().copied().max().unwrap_or(1) as f64;
                    let curves = counts
                        .iter()
                        .map(|row| {
                            row.iter()
                                .enumerate()
                                .flat_map(|(b, k)| [(b as f64, *k as f64), (b as f64 + 1.0, *k as f64)])
                                .collect()
                        })
                        .collect();
                    ((0.0, bins as f64), (0.0, top * 1.1), "rank bin", curves)
                }
            };
            Figure {
                title: format!("{} {}", kind.name(), s.name),
                x,
                y,
                x_name: x_name.into(),
                y_name: s.name.clone(),
                curves: chains(curves.len()).zip(curves).collect(),
                points: Vec::new(),
                segments: Vec::new(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_of_agreeing_chains_are_flat_and_of_separate_chains_are_not() {
        let a: Vec<f64> = (0..400).map(|i| (i * 37 % 400) as f64).collect();
        let b: Vec<f64> = (0..400).map(|i| (i * 91 % 400) as f64 + 0.5).collect();
        let flat = rank_counts(&[a.clone(), b], 4);
        assert!(flat.iter().flatten().all(|k| (90..=110).contains(k)), "{flat:?}");
        let apart = rank_counts(&[a.clone(), a.iter().map(|x| x + 1000.0).collect()], 4);
        assert_eq!(apart[0], vec![200, 200, 0, 0]);
    }

    #[test]
    fn density_integrates_to_one() {
        let x: Vec<f64> = (0..1000).map(|i| ((i as f64 + 0.5) / 1000.0 - 0.5) * 2.0).collect();
        let pts = kde(&x, -3.0, 3.0, 601);
        let area: f64 = pts.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum();
        assert!((area - 1.0).abs() < 1e-3, "{area}");
    }

    #[test]
    fn terminal_plots_draw_braille() {
        let s = Series { name: "mu".into(), chains: vec![(0..100).map(|i| (i as f64 / 10.0).sin()).collect()] };
        for k in [Kind::Trace, Kind::Density, Kind::Rank] {
            let t = terminal(k, std::slice::from_ref(&s), 60).expect("draws");
            assert!(t.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c) || "▁▂▃▄▅▆▇█".contains(c)), "{t}");
        }
        assert!(terminal(Kind::Pair, std::slice::from_ref(&s), 60).is_err());
    }
}

/// A prediction's figure in the terminal.
fn figure_terminal(f: &predictive::Figure, width: usize) -> String {
    let w = width.clamp(30, 200) - 12;
    let mut cv = Canvas::new(w, 16);
    cv.set_ranges(f.x, f.y);
    for (_, c) in &f.curves {
        cv.line(c.iter().copied());
    }
    for (a, b) in &f.segments {
        cv.line([*a, *b].into_iter());
    }
    for (x, y) in &f.points {
        cv.point(*x, *y);
    }
    let mut out = format!("{}\n", f.title);
    out.push_str(&cv.render(&short(f.y.1), &short(f.y.0)));
    out.push_str(&format!("{:>10}  {} .. {} ({}; up: {})\n", "", short(f.x.0), short(f.x.1), f.x_name, f.y_name));
    out
}

/// Figures stacked top to bottom, as SVG.
fn figure_svg(figs: &[predictive::Figure], path: &std::path::Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (800, 320 * figs.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (f, area) in figs.iter().zip(root.split_evenly((figs.len().max(1), 1)).iter()) {
        let mut ch = ChartBuilder::on(area)
            .caption(&f.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(f.x.0..f.x.1, f.y.0..f.y.1)
            .map_err(err)?;
        ch.configure_mesh().x_desc(f.x_name.as_str()).y_desc(f.y_name.as_str()).draw().map_err(err)?;
        ch.draw_series(f.segments.iter().map(|(a, b)| PathElement::new(vec![*a, *b], BLUE.mix(0.3)))).map_err(err)?;
        ch.draw_series(f.points.iter().map(|p| Circle::new(*p, 2, BLUE.mix(0.6).filled()))).map_err(err)?;
        for (k, (label, c)) in f.curves.iter().enumerate() {
            let color = colors[k % colors.len()];
            ch.draw_series(LineSeries::new(c.iter().copied(), color.stroke_width(1)))
                .map_err(err)?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
        }
        if !f.curves.is_empty() {
            ch.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(err)?;
        }
    }
    root.present().map_err(err)
}

/// Figures to `path`: SVG or PNG by its extension.
fn write_figures(figs: &[predictive::Figure], path: &std::path::Path) -> Result<String, String> {
    match path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).as_deref() {
        Some("svg") => figure_svg(figs, path)?,
        Some("png") => raster::png(figs, path)?,
        _ => return Err(format!("`{}`: plots are written as FILE.svg or FILE.png", path.display())),
    }
    Ok(format!("wrote {}\n", path.display()))
}

/// Why a plot was not drawn.
#[derive(Debug)]
pub enum PlotError {
    /// What was asked makes no sense whatever the fit holds (a usage error).
    Usage(String),
    /// The fit, or its predictions, cannot be read or do not hold what the plot needs.
    Fit(String),
    /// A named variable is not a scalar of the fit.
    NoVariable(String),
    /// The figure could not be drawn or written.
    Output(String),
}

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlotError::Usage(m) | PlotError::Fit(m) | PlotError::NoVariable(m) | PlotError::Output(m) => f.write_str(m),
        }
    }
}

/// Draw a prediction's plot from `dir/predictive.csv` (`name`: the observed variable, the
/// first when `None`).
pub fn draw_prediction(
    dir: &std::path::Path,
    kind: Kind,
    name: Option<&str>,
    out: Option<&std::path::Path>,
) -> Result<String, PlotError> {
    let read = |name| predictive::read(dir, name);
    let fig = match kind {
        Kind::Predictive => predictive::predictive(&read(name)?),
        Kind::Ood => {
            // `name` is a score here (the first variable's).
            let score = name.unwrap_or("");
            if !score.is_empty() && !predictive::SCORES.contains(&score) {
                return Err(PlotError::Usage(format!("`ood` plots a score: one of {}", predictive::SCORES.join(", "))));
            }
            let (known, other) = (read(None)?, predictive::read_ood(dir, None)?);
            let score = if !score.is_empty() {
                score
            } else if known.class {
                "entropy"
            } else {
                "sd"
            };
            predictive::ood(&known, &other, score).map_err(PlotError::Fit)?
        }
        _ => predictive::calibration(&read(name)?).map_err(PlotError::Fit)?,
    };
    match out {
        Some(p) => write_figures(std::slice::from_ref(&fig), p).map_err(PlotError::Output),
        None => Ok(figure_terminal(&fig, terminal_width())),
    }
}

/// The draws of each named scalar (`mu`, `theta[0]`, `h.W[1,2]`) of a fit, chain by chain
/// (chains cut to the shortest). `Err` names what is not a scalar of the fit.
pub fn series_of(fit: &crate::predict::fit::Fit, names: &[String]) -> Result<Vec<Series>, PlotError> {
    let bnnc: Vec<String> = fit.columns.iter().map(|c| crate::api::bnnc_name(c)).collect();
    let n = fit.chains.iter().copied().min().unwrap_or(0);
    let mut out = Vec::new();
    for name in names {
        let Some(j) = bnnc.iter().position(|b| b == name) else {
            let elements = bnnc.iter().filter(|b| b.starts_with(&format!("{name}["))).count();
            return Err(PlotError::NoVariable(if elements > 0 {
                format!("`{name}` has {elements} elements: name one, as `{name}[0]`")
            } else {
                format!("the fit has no `{name}`")
            }));
        };
        let mut chains = Vec::new();
        let mut at = 0;
        for len in &fit.chains {
            chains.push(fit.rows[at..at + n].iter().map(|r| r[j]).collect());
            at += len;
        }
        out.push(Series { name: name.clone(), chains });
    }
    if out.is_empty() {
        return Err(PlotError::Usage("name the variables to plot".into()));
    }
    Ok(out)
}

/// Draw `kind` of `names` from `fit`: to the terminal, or to `out` (SVG). Returns what to print.
pub fn draw(
    fit: &crate::predict::fit::Fit,
    kind: Kind,
    names: &[String],
    out: Option<&std::path::Path>,
) -> Result<String, PlotError> {
    let series = series_of(fit, names)?;
    let draws: usize = series.first().map_or(0, |s| s.chains.iter().map(Vec::len).sum());
    if draws < 2 {
        // A mode (map, a minibatch mode) is one point: no spread, no trace to draw.
        let value = series.first().and_then(|s| s.chains.iter().flatten().next().copied());
        return Err(PlotError::Fit(match value {
            Some(v) => format!(
                "the fit holds one draw (`{}` = {v}): a mode has no distribution to plot; the methods that draw (nuts, advi, laplace, ensemble, ...) do",
                series[0].name
            ),
            None => "the fit holds no draws".to_string(),
        }));
    }
    if kind == Kind::Pair && series.len() != 2 {
        return Err(PlotError::Usage("`pair` plots two variables".into()));
    }
    match out {
        Some(p) => figures(kind, &series).and_then(|f| write_figures(&f, p)),
        None => terminal(kind, &series, terminal_width()),
    }
    .map_err(PlotError::Output)
}
