//! `bnnc predict` as a user runs it: its numbers against the draws it read, a posterior
//! predictive known in closed form, classes, out-of-distribution scores and the fit kinds
//! every method writes.

use std::path::{Path, PathBuf};

#[path = "common/cli.rs"]
mod common_cli;
use common_cli::bnnc;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bnnc-predict-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The draws of a fit: column names and rows, every chain.
fn read_draws(dir: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut cols = Vec::new();
    let mut rows = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fit dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("draws-")))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(f).expect("draws");
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        cols = lines.next().expect("header").split(',').map(str::to_string).collect();
        rows.extend(lines.map(|l| l.split(',').map(|x| x.parse::<f64>().expect("number")).collect::<Vec<_>>()));
    }
    (cols, rows)
}

fn col(cols: &[String], rows: &[Vec<f64>], name: &str) -> Vec<f64> {
    let k = cols.iter().position(|c| c == name).unwrap_or_else(|| panic!("no column {name}"));
    rows.iter().map(|r| r[k]).collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("json")).expect("valid json")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// Eight schools on its own data: every number predict writes is what the draws give,
/// computed here again from draws-*.csv (θ_j = μ + τ η_j; y_j ~ normal(θ_j, σ_j)).
#[test]
fn predictions_are_the_draws_own_moments() {
    let dir = temp("eight");
    let (code, _, err) = bnnc(&[
        "run",
        "examples/eight_schools.bnn",
        "--chains",
        "2",
        "--warmup",
        "300",
        "--draws",
        "300",
        "--out",
        s(&dir),
    ]);
    assert!(code == 0 || code == 3, "{err}");
    let (code, out, err) = bnnc(&["predict", "examples/eight_schools.bnn", "--fit", s(&dir)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("y (normal, real): 8 rows") && out.contains("rmse"), "{out}");
    let p = json(&dir.join("predictive.json"));
    let (cols, rows) = read_draws(&dir);
    assert_eq!(p["draws"].as_u64(), Some(rows.len() as u64));
    assert_eq!(p["method"], "nuts");
    let data = json(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/eight_schools.json")));
    let (mu, tau) = (col(&cols, &rows, "mu"), col(&cols, &rows, "tau"));
    let y = &p["observed"]["y"];
    assert_eq!(y["kind"], "real");
    let n = rows.len() as f64;
    let mut ll_sum = 0.0;
    for j in 0..8 {
        let eta = col(&cols, &rows, &format!("eta.{}", j + 1));
        let theta: Vec<f64> = (0..rows.len()).map(|s| mu[s] + tau[s] * eta[s]).collect();
        let mean = theta.iter().sum::<f64>() / n;
        let var = theta.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n;
        let sigma = data["sigma"][j].as_f64().expect("sigma");
        let obs = data["y"][j].as_f64().expect("y");
        let row = &y["rows"][j];
        let got = |k: &str| row[k].as_f64().unwrap_or_else(|| panic!("row {j} {k}"));
        assert!(close(got("mean"), mean, 1e-9), "row {j}: mean {} vs {mean}", got("mean"));
        assert!(close(got("var_epistemic"), var, 1e-9), "row {j}: epistemic {} vs {var}", got("var_epistemic"));
        assert!(close(got("var_aleatoric"), sigma * sigma, 1e-12), "row {j}: aleatoric");
        assert!(close(got("sd").powi(2), var + sigma * sigma, 1e-9), "row {j}: sd² = epistemic + aleatoric");
        assert!(got("q5") < got("q50") && got("q50") < got("q95"), "row {j}: quantiles in order");
        // log((1/S) Σ_s normal(y_j | θ_s, σ_j)), in a stable form.
        let l: Vec<f64> = theta
            .iter()
            .map(|t| -0.5 * ((obs - t) / sigma).powi(2) - sigma.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln())
            .collect();
        let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        ll_sum += m + (l.iter().map(|x| (x - m).exp()).sum::<f64>() / n).ln();
    }
    let metrics = &y["metrics"];
    assert!(close(metrics["log_lik"].as_f64().expect("log_lik"), ll_sum / 8.0, 1e-9), "{metrics}");
    for k in ["coverage50", "coverage90", "coverage95"] {
        let c = metrics[k].as_f64().expect("coverage");
        assert!((0.0..=1.0).contains(&c) && (c * 8.0).fract() == 0.0, "{k} = {c}");
    }
    // predictive.csv: a header and one line per school.
    let csv = std::fs::read_to_string(dir.join("predictive.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 9, "{csv}");
    assert!(csv.starts_with("variable,index,mean,sd,q5,q50,q95,var_epistemic,var_aleatoric,observed"), "{csv}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bayesian linear regression with a known noise sd s and prior N(0, I) on (a, b): the
/// posterior is N(m, Σ) with Σ = (I + XᵀX / s²)⁻¹, m = Σ Xᵀy / s², so at a new input x*
/// (row z = [1, x*]) the predictive mean is zᵀm, its epistemic variance zᵀΣz and its aleatoric
/// variance s². NUTS draws must give them within Monte Carlo error.
#[test]
fn conjugate_regression_predictive_matches_the_closed_form() {
    let dir = temp("conjugate");
    let model = dir.join("linreg.bnn");
    std::fs::write(
        &model,
        "data {\n  N: int\n  x: vector[N]\n  y: vector[N]\n  s: real<lower=0>\n}\n\
         params {\n  a: real ~ normal(0, 1)\n  b: real ~ normal(0, 1)\n}\n\
         model {\n  y ~ normal(a + b * x, s)\n}\n",
    )
    .expect("write");
    // Ten points on a line with deterministic wiggles; s large enough that the prior matters.
    let x: Vec<f64> = (0..10).map(|i| i as f64 / 3.0 - 1.5).collect();
    let y: Vec<f64> = x.iter().enumerate().map(|(i, x)| 0.7 + 1.3 * x + 0.4 * ((i * 7 % 5) as f64 - 2.0)).collect();
    let sd = 1.5;
    let data = serde_json::json!({"N": 10, "x": x, "y": y, "s": sd});
    std::fs::write(dir.join("linreg.json"), data.to_string()).expect("write");
    let new_x = [-3.0, 0.0, 2.5];
    std::fs::write(dir.join("new.json"), serde_json::json!({"N": 3, "x": new_x, "s": sd}).to_string()).expect("write");
    let (code, _, err) = bnnc(&["run", s(&model), "--draws", "2000", "--out", s(&dir.join("fit"))]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) =
        bnnc(&["predict", s(&model), "--fit", s(&dir.join("fit")), "--data", s(&dir.join("new.json"))]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("metrics"), "no observed y, no metrics: {out}");
    // Closed form: precision P = I + XᵀX/s², Σ = P⁻¹ (2×2), m = Σ Xᵀy / s².
    let s2 = sd * sd;
    let (sx, sxx) = (x.iter().sum::<f64>(), x.iter().map(|v| v * v).sum::<f64>());
    let (sy, sxy) = (y.iter().sum::<f64>(), x.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>());
    let (p00, p01, p11) = (1.0 + 10.0 / s2, sx / s2, 1.0 + sxx / s2);
    let det = p00 * p11 - p01 * p01;
    let (c00, c01, c11) = (p11 / det, -p01 / det, p00 / det);
    let (r0, r1) = (sy / s2, sxy / s2);
    let (m0, m1) = (c00 * r0 + c01 * r1, c01 * r0 + c11 * r1);
    let p = json(&dir.join("fit").join("predictive.json"));
    let rows = &p["observed"]["y"]["rows"];
    for (i, xs) in new_x.iter().enumerate() {
        let mean = m0 + m1 * xs;
        let epi = c00 + 2.0 * c01 * xs + c11 * xs * xs;
        let got = |k: &str| rows[i][k].as_f64().expect("number");
        // 8000 draws with an effective size of at least ~2000: the mean within 5 standard
        // errors, the variance within 20%.
        assert!((got("mean") - mean).abs() < 5.0 * (epi / 2000.0).sqrt(), "x* = {xs}: mean {} vs {mean}", got("mean"));
        assert!(
            (got("var_epistemic") / epi - 1.0).abs() < 0.2,
            "x* = {xs}: epistemic {} vs {epi}",
            got("var_epistemic")
        );
        assert!(close(got("var_aleatoric"), s2, 1e-12), "x* = {xs}: aleatoric");
        // The predictive is normal with variance epi + s²: its 5% and 95% quantiles.
        let half = 1.6449 * (epi + s2).sqrt();
        assert!((got("q95") - got("q5") - 2.0 * half).abs() < 0.1 * 2.0 * half, "x* = {xs}: 90% interval");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A network classifier on held-out rows and on a class it never saw: probabilities sum to
/// one, entropy splits into expected entropy and mutual information, the metrics are in
/// range, and the unseen class is flagged better than chance.
#[test]
fn classes_and_out_of_distribution_inputs() {
    let dir = temp("classes");
    let (code, _, err) = bnnc(&[
        "run",
        "examples/bnn_classification.bnn",
        "--chains",
        "2",
        "--warmup",
        "300",
        "--draws",
        "300",
        "--out",
        s(&dir),
    ]);
    assert!(code == 0 || code == 3, "{err}");
    let predict_with_ood = |ood: &str| {
        bnnc(&[
            "predict",
            "examples/bnn_classification.bnn",
            "--fit",
            s(&dir),
            "--data",
            "examples/bnn_classification_test.json",
            "--ood",
            ood,
        ])
    };
    let (code, out, err) = predict_with_ood("examples/bnn_classification_ood.json");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ood auroc"), "{out}");
    let p = json(&dir.join("predictive.json"));
    let y = &p["observed"]["y"];
    assert_eq!(y["kind"], "class");
    let rows = y["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 39);
    for r in rows {
        let probs: Vec<f64> = r["probs"].as_array().expect("probs").iter().map(|v| v.as_f64().expect("p")).collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{r}");
        let (h, eh, mi) = (
            r["entropy"].as_f64().expect("h"),
            r["expected_entropy"].as_f64().expect("eh"),
            r["mutual_information"].as_f64().expect("mi"),
        );
        assert!(mi >= 0.0 && eh >= 0.0 && (h - eh - mi).abs() < 1e-9, "{r}");
        assert!(h <= std::f64::consts::LN_2 + 1e-12, "{r}");
    }
    let m = &y["metrics"];
    for k in ["accuracy", "brier", "ece"] {
        let v = m[k].as_f64().expect("metric");
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert!(m["accuracy"].as_f64().expect("accuracy") > 0.8, "{m}");
    assert!(m["log_lik"].as_f64().expect("log_lik") < 0.0, "{m}");
    let auroc = p["ood"]["auroc"]["entropy"].as_f64().expect("auroc");
    assert!(auroc > 0.6, "entropy should flag the unseen cultivar: AUROC {auroc}");
    let aupr = p["ood"]["aupr"]["mutual_information"].as_f64().expect("aupr");
    assert!((0.0..=1.0).contains(&aupr), "{aupr}");
    // The out-of-distribution rows' labels, of a class the model has not got, are not read.
    let mut ood: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("examples/bnn_classification_ood.json").unwrap()).unwrap();
    let n = ood["N"].as_u64().unwrap() as usize;
    ood["y"] = serde_json::json!(vec![7; n]);
    let labelled = dir.join("ood_labelled.json");
    std::fs::write(&labelled, ood.to_string()).unwrap();
    let (code, _, err) = predict_with_ood(s(&labelled));
    assert_eq!(code, 0, "{err}");
    let p2 = json(&dir.join("predictive.json"));
    assert_eq!(p2["ood"]["auroc"], p["ood"]["auroc"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A MAP fit writes its mode as one draw: predict then reports no epistemic variance.
#[test]
fn predict_from_a_map_fit() {
    let dir = temp("map");
    let (code, _, err) = bnnc(&["run", "examples/logistic_regression.bnn", "--method", "map", "--out", s(&dir)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bnnc(&["predict", "examples/logistic_regression.bnn", "--fit", s(&dir)]);
    assert_eq!(code, 0, "{err}");
    let p = json(&dir.join("predictive.json"));
    assert_eq!(p["method"], "map");
    assert_eq!(p["draws"], 1);
    let r = &p["observed"]["y"]["rows"][0];
    assert!(r["mutual_information"].as_f64().expect("mi").abs() < 1e-12, "{r}");
    let acc = p["observed"]["y"]["metrics"]["accuracy"].as_f64().expect("accuracy");
    assert!(acc > 0.85, "training accuracy of the mode: {acc}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_without_a_fit_is_a_coded_error() {
    let dir = temp("empty");
    let (code, _, err) = bnnc(&["predict", "examples/eight_schools.bnn", "--fit", s(&dir)]);
    assert_eq!(code, 1);
    assert!(err.contains("E0700") && err.contains("no summary.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// New data from NumPy's `.npz` (sizes left out, as NumPy users write them) predict exactly as
/// the same data in JSON.
#[test]
fn npz_data_predict_as_json_does() {
    use ndarray::{Array1, Array2};
    let dir = temp("npz");
    let fit = dir.join("fit");
    let (code, _, err) = bnnc(&[
        "run",
        "examples/eight_schools.bnn",
        "--chains",
        "1",
        "--warmup",
        "100",
        "--draws",
        "100",
        "--out",
        s(&fit),
    ]);
    assert!(code == 0 || code == 3, "{err}");
    let data = json(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/eight_schools.json")));
    let v =
        |k: &str| -> Vec<f64> { data[k].as_array().expect("array").iter().map(|x| x.as_f64().expect("num")).collect() };
    let npz = dir.join("schools.npz");
    let mut w = ndarray_npy::NpzWriter::new(std::fs::File::create(&npz).expect("create"));
    w.add_array("y", &Array1::from(v("y"))).expect("y");
    w.add_array("sigma", &Array1::from(v("sigma"))).expect("sigma");
    w.add_array("unused", &Array2::<f64>::zeros((2, 2))).expect("unused");
    w.finish().expect("finish");
    let (code, _, err) = bnnc(&["predict", "examples/eight_schools.bnn", "--fit", s(&fit), "--out", s(&dir.join("a"))]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bnnc(&[
        "predict",
        "examples/eight_schools.bnn",
        "--fit",
        s(&fit),
        "--data",
        s(&npz),
        "--out",
        s(&dir.join("b")),
    ]);
    assert_eq!(code, 0, "{err}");
    let (a, b) = (json(&dir.join("a/predictive.json")), json(&dir.join("b/predictive.json")));
    assert_eq!(a["observed"], b["observed"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A likelihood added with `target += normal_lpdf(y, ...)` observes `y` as `~` does.
#[test]
fn a_likelihood_added_to_target_is_predicted() {
    let dir = temp("target");
    let model = "data/posteriordb/sblrc-blr/model.bnn";
    let data = "data/posteriordb/sblrc-blr/data.json";
    let (code, _, err) =
        bnnc(&["run", model, "--data", data, "--chains", "1", "--warmup", "200", "--draws", "200", "--out", s(&dir)]);
    assert!(code == 0 || code == 3, "{err}");
    let (code, out, err) = bnnc(&["predict", model, "--data", data, "--fit", s(&dir)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("y (normal, real): 100 rows"), "{out}");
    let p = json(&dir.join("predictive.json"));
    // The regression fits: the test rows' coverage of the 90% interval is near 0.9.
    let c = p["observed"]["y"]["metrics"]["coverage90"].as_f64().expect("coverage");
    assert!(c > 0.75, "{c}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fit is not read back with another version of its model.
#[test]
fn a_fit_of_an_edited_model_is_refused() {
    let dir = temp("edited");
    let model = dir.join("schools.bnn");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("examples/eight_schools.bnn"), &model).expect("copy");
    std::fs::copy(root.join("examples/eight_schools.json"), dir.join("schools.json")).expect("copy");
    let fit = dir.join("fit");
    let (code, _, err) =
        bnnc(&["run", s(&model), "--chains", "1", "--warmup", "50", "--draws", "50", "--out", s(&fit)]);
    assert!(code == 0 || code == 3, "{err}");
    assert_eq!(bnnc(&["predict", s(&model), "--fit", s(&fit)]).0, 0);
    let text = std::fs::read_to_string(&model).expect("read");
    std::fs::write(&model, text.replace("cauchy(0, 5)", "cauchy(0, 2)")).expect("edit");
    let (code, _, err) = bnnc(&["predict", s(&model), "--fit", s(&fit)]);
    assert_eq!(code, 1);
    assert!(err.contains("E0700") && err.contains("another version"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each observed element's `index` is its row-major position in its variable, whatever part
/// of it a statement observes (`y[:, 1]`, one column).
#[test]
fn predicted_elements_are_indexed_by_their_place_in_the_variable() {
    let dir = temp("columns");
    std::fs::write(
        dir.join("m.bnn"),
        "data {\n  N: int<lower=1>\n  y: matrix[N, 2]\n}\nparams {\n  m: vector[2]\n}\nmodel {\n  y[:, 0] ~ normal(m[0], 1)\n  y[:, 1] ~ normal(m[1], 1)\n}\n",
    )
    .unwrap();
    let y = [[0.5, 10.0], [1.5, 11.0], [1.0, 12.5]];
    std::fs::write(dir.join("m.json"), serde_json::json!({"N": 3, "y": y}).to_string()).unwrap();
    let fit = dir.join("fit");
    let (code, _, err) = bnnc(&["run", s(&dir.join("m.bnn")), "--method", "map", "--out", s(&fit)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bnnc(&["predict", s(&dir.join("m.bnn")), "--fit", s(&fit)]);
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(fit.join("predictive.csv")).unwrap();
    let flat: Vec<f64> = y.iter().flatten().copied().collect();
    let mut seen = Vec::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (index, observed): (usize, f64) = (f[1].parse().unwrap(), f[9].parse().unwrap());
        assert_eq!(observed, flat[index], "{line}");
        seen.push(index);
    }
    seen.sort();
    assert_eq!(seen, (0..6).collect::<Vec<_>>());
}

/// A multivariate normal likelihood is summarised element by element through its marginals:
/// entry c of a row has mean μ_c and variance Σ_cc at each draw, so the predicted mean is the
/// draws' mean of μ_c and the predicted variance their variance plus the mean of Σ_cc (here
/// τ_c², the covariance being diag(τ) L with L a correlation factor), for the rows of a
/// matrix and for a loop over an array of vectors alike.
#[test]
fn a_multivariate_normal_is_predicted_by_its_marginals() {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let dir = temp("mvn");
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    // Rows of N([1, −1], [[1, 0.6], [0.6, 2]]) through its Cholesky factor.
    let (l10, l11) = (0.6, (2.0f64 - 0.36).sqrt());
    let rows: Vec<String> = (0..60)
        .map(|_| {
            let (a, b): (f64, f64) = (StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng));
            format!("[{}, {}]", 1.0 + a, -1.0 + l10 * a + l11 * b)
        })
        .collect();
    std::fs::write(dir.join("m.json"), format!("{{\"N\": 60, \"K\": 2, \"y\": [{}]}}", rows.join(", "))).unwrap();
    let params = "params {\n  mu: vector[K] ~ normal(0, 5)\n  tau: vector<lower=0>[K] ~ half_normal(2)\n  \
                  L: cholesky_corr[K] ~ lkj_corr_cholesky(2)\n}\n";
    let forms = [
        ("matrix[N, K]", "  y ~ multi_normal_cholesky(mu, diag_matrix(tau) @ L)\n"),
        ("array[N] vector[K]", "  for n in 0..N {\n    y[n] ~ multi_normal_cholesky(mu, diag_matrix(tau) @ L)\n  }\n"),
    ];
    for (ty, body) in forms {
        let model = dir.join("m.bnn");
        let text = format!("data {{\n  N: int\n  K: int\n  y: {ty}\n}}\n{params}model {{\n{body}}}\n");
        std::fs::write(&model, text).unwrap();
        let fit = dir.join("fit");
        let (code, _, err) = bnnc(&["run", s(&model), "--chains", "2", "--draws", "300", "--out", s(&fit)]);
        assert!(code == 0 || code == 3, "{ty}: {err}");
        let (code, out, err) = bnnc(&["predict", s(&model), "--fit", s(&fit)]);
        assert_eq!(code, 0, "{ty}: {err}");
        assert!(out.contains("y (multi_normal_cholesky, real): 120 rows"), "{ty}: {out}");
        let (cols, draws) = read_draws(&fit);
        let p = json(&fit.join("predictive.json"));
        let predicted = p["observed"]["y"]["rows"].as_array().expect("rows");
        for c in 0..2 {
            let mu = col(&cols, &draws, &format!("mu.{}", c + 1));
            let tau = col(&cols, &draws, &format!("tau.{}", c + 1));
            let n = mu.len() as f64;
            let m = mu.iter().sum::<f64>() / n;
            let var =
                mu.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n + tau.iter().map(|t| t * t).sum::<f64>() / n;
            for row in predicted.iter().skip(c).step_by(2) {
                let (pm, psd) = (row["mean"].as_f64().unwrap(), row["sd"].as_f64().unwrap());
                assert!(
                    close(pm, m, 1e-9) && close(psd, var.sqrt(), 1e-9),
                    "{ty} entry {c}: {pm} {psd} vs {m} {}",
                    var.sqrt()
                );
            }
        }
        // The marginals are calibrated on the data they were fitted to.
        let c90 = p["observed"]["y"]["metrics"]["coverage90"].as_f64().expect("coverage");
        assert!((0.8..=0.98).contains(&c90), "{ty}: coverage90 {c90}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ordinal regression: `ordered_logistic` recovers the slope and cutpoints that made the
/// ratings, its draws are labels, and `predict` gives each rating's class probabilities,
/// which sum to one and favour the observed rating more often than chance.
#[test]
fn an_ordinal_regression_recovers_its_cutpoints_and_predicts_classes() {
    use rand::{RngExt, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};
    let dir = temp("ordinal");
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let (beta, c) = (1.3, [-1.5, 0.0, 1.2]);
    let sig = |t: f64| 1.0 / (1.0 + (-t).exp());
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let x: f64 = StandardNormal.sample(&mut rng);
        let u: f64 = rng.random();
        xs.push(format!("{x}"));
        ys.push(c.iter().filter(|ck| u >= sig(*ck - beta * x)).count().to_string());
    }
    std::fs::write(
        dir.join("m.json"),
        format!("{{\"N\": 300, \"K\": 4, \"x\": [{}], \"y\": [{}]}}", xs.join(", "), ys.join(", ")),
    )
    .unwrap();
    let model = dir.join("m.bnn");
    std::fs::write(
        &model,
        "data {\n  N: int\n  K: int\n  x: vector[N]\n  y: array[N] int\n}\n\
         params {\n  beta: real ~ normal(0, 2)\n  c: ordered[K - 1] ~ normal(0, 5)\n}\n\
         model {\n  y ~ ordered_logistic(beta * x, c)\n}\n\
         generated {\n  y_rep = ordered_logistic_rng(beta * x, c)\n}\n",
    )
    .unwrap();
    let fit = dir.join("fit");
    let (code, _, err) = bnnc(&["run", s(&model), "--chains", "2", "--draws", "300", "--out", s(&fit)]);
    assert!(code == 0 || code == 3, "{err}");
    let (cols, draws) = read_draws(&fit);
    let mean = |name: &str| {
        let v = col(&cols, &draws, name);
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!((mean("beta") - beta).abs() < 0.35, "beta {}", mean("beta"));
    for (k, ck) in c.iter().enumerate() {
        let got = mean(&format!("c.{}", k + 1));
        assert!((got - ck).abs() < 0.4, "c[{k}] {got} vs {ck}");
    }
    let reps = col(&cols, &draws, "y_rep.1");
    assert!(reps.iter().all(|v| [0.0, 1.0, 2.0, 3.0].contains(v)), "labels");
    let (code, out, err) = bnnc(&["predict", s(&model), "--fit", s(&fit)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("y (ordered_logistic, class): 300 rows"), "{out}");
    let p = json(&fit.join("predictive.json"));
    let rows = p["observed"]["y"]["rows"].as_array().expect("rows");
    for r in rows {
        let probs: Vec<f64> = r["probs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(probs.len(), 4);
        assert!(close(probs.iter().sum::<f64>(), 1.0, 1e-9), "{probs:?}");
    }
    let accuracy = p["observed"]["y"]["metrics"]["accuracy"].as_f64().expect("accuracy");
    assert!(accuracy > 0.35, "accuracy {accuracy} (chance is about 0.25)");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An observed `let` computed from data (`let ly = log(y)`, `ly ~ ...`): scored when the new
/// data give `y`, and predicted when they leave it out, as a plain observed variable is.
#[test]
fn an_observed_let_of_data_is_scored_and_may_be_left_out() {
    let dir = temp("observed-let");
    let model = dir.join("m.bnn");
    std::fs::write(
        &model,
        "data {\n  N: int\n  x: vector[N]\n  y: vector<lower=0>[N]\n}\nparams {\n  a: real ~ normal(0, 1)\n  b: real ~ normal(0, 1)\n  s: real<lower=0> ~ normal(0, 1)\n}\nmodel {\n  let ly = log(y)\n  ly ~ normal(a + b * x, s)\n}\n",
    )
    .unwrap();
    let x: Vec<f64> = (0..30).map(|i| i as f64 / 10.0 - 1.5).collect();
    let y: Vec<f64> = x.iter().enumerate().map(|(i, x)| (0.5 + 0.8 * x + 0.2 * (1.7 * i as f64).sin()).exp()).collect();
    std::fs::write(dir.join("m.json"), serde_json::json!({"N": 30, "x": x, "y": y}).to_string()).unwrap();
    let fit = dir.join("fit");
    let (code, _, err) = bnnc(&["run", s(&model), "--method", "laplace", "--out", s(&fit)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bnnc(&["predict", s(&model), "--fit", s(&fit), "--out", s(&dir.join("p1"))]);
    assert_eq!(code, 0, "{err}");
    let p = json(&dir.join("p1/predictive.json"));
    let ly = &p["observed"]["ly"];
    assert!(ly["metrics"]["rmse"].as_f64().is_some_and(|r| r < 0.5), "{ly}");
    std::fs::write(dir.join("new.json"), r#"{"N": 2, "x": [0.0, 1.0]}"#).unwrap();
    let (code, _, err) = bnnc(&[
        "predict",
        s(&model),
        "--fit",
        s(&fit),
        "--data",
        s(&dir.join("new.json")),
        "--out",
        s(&dir.join("p2")),
    ]);
    assert_eq!(code, 0, "{err}");
    let p = json(&dir.join("p2/predictive.json"));
    let rows = p["observed"]["ly"]["rows"].as_array().map(|r| r.len());
    assert_eq!(rows, Some(2), "{p}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// New data whose sizes give a parameter another shape (three inputs where the fit had two):
/// E0700 says that only the number of rows may change, naming the file, since the fit is this
/// model's.
#[test]
fn new_data_with_other_sizes_name_the_file_not_the_fit() {
    let dir = temp("other-sizes");
    let model = dir.join("m.bnn");
    std::fs::write(
        &model,
        "data {\n  N: int\n  D: int\n  x: matrix[N, D]\n  y: vector[N]\n}\nparams {\n  b: vector[D] ~ normal(0, 1)\n}\nmodel {\n  y ~ normal(x @ b, 1)\n}\n",
    )
    .unwrap();
    std::fs::write(dir.join("m.json"), r#"{"N": 3, "D": 2, "x": [[1, 0], [0, 1], [1, 1]], "y": [0.5, -0.2, 0.4]}"#)
        .unwrap();
    let fit = dir.join("fit");
    let (code, _, err) = bnnc(&["run", s(&model), "--method", "laplace", "--out", s(&fit)]);
    assert_eq!(code, 0, "{err}");
    let new = dir.join("wide.json");
    std::fs::write(&new, r#"{"N": 1, "D": 3, "x": [[1, 0, 2]]}"#).unwrap();
    let (code, _, err) = bnnc(&["predict", s(&model), "--fit", s(&fit), "--data", s(&new)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[E0700]") && err.contains("wide.json") && err.contains("only the number of rows"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
