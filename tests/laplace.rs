//! `run --method laplace`: the curvature at a mode against the one a linear regression has
//! in closed form, and the network's linearised predictive on held-out rows.

#[path = "common/cli.rs"]
mod common_cli;
use common_cli::{bnnc, mean_sd, predict_fit, read_json, temp_model};

/// The draws' rows (without the header) as numbers.
fn draw_rows(dir: &std::path::Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(dir.join("draws-1.csv")).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    let rows = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    (header, rows)
}

#[test]
fn the_laplace_approximation_of_a_linear_regression_is_its_exact_posterior() {
    // y ~ normal(x β, s) with s known and β ~ normal(0, 10): the posterior is Gaussian, with
    // precision xᵀx / s² + I / 100 and mean (xᵀx / s² + I / 100)⁻¹ xᵀy / s², which a model
    // without layers gets from its own prior at the mode found on all the data.
    let dir = std::env::temp_dir().join(format!("bnnc-laplace-linear-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (n, k, s) = (60usize, 3usize, 0.5);
    let x: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let t = i as f64 / n as f64;
            vec![1.0, (7.0 * t).sin(), t * t - 0.3]
        })
        .collect();
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, r)| 0.5 * r[0] - r[1] + 2.0 * r[2] + 0.3 * ((i * 13 % 7) as f64 - 3.0) / 3.0)
        .collect();
    std::fs::write(dir.join("lin.json"), serde_json::json!({"N": n, "K": k, "x": x, "y": y, "s": s}).to_string())
        .unwrap();
    std::fs::write(
        dir.join("lin.bnn"),
        "data {\n  N: int<lower=1>\n  K: int<lower=1>\n  x: matrix[N, K]\n  y: vector[N]\n  s: real<lower=0>\n}\n\
         params {\n  beta: vector[K] ~ normal(0, 10)\n}\nmodel {\n  y ~ normal(x @ beta, s)\n}\n",
    )
    .unwrap();
    let out = dir.join("fit");
    let (code, stdout, stderr) = bnnc(&[
        "run",
        dir.join("lin.bnn").to_str().unwrap(),
        "--method",
        "laplace",
        "--output-draws",
        "40000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["laplace"]["hessian"], "full", "a model without layers gets the full Hessian");
    assert_eq!(summary["laplace"]["predictive"], "sampled");
    // The closed form.
    let delta = 0.01;
    let mut p = vec![vec![0.0; k]; k];
    for r in &x {
        for a in 0..k {
            for b in 0..k {
                p[a][b] += r[a] * r[b] / (s * s);
            }
        }
    }
    (0..k).for_each(|a| p[a][a] += delta);
    let cov = invert(&p);
    let xty: Vec<f64> = (0..k).map(|a| x.iter().zip(&y).map(|(r, y)| r[a] * y / (s * s)).sum()).collect();
    let mean: Vec<f64> = (0..k).map(|a| (0..k).map(|b| cov[a][b] * xty[b]).sum()).collect();
    let (header, rows) = draw_rows(&out);
    assert_eq!(&header[..2], ["log_p__", "log_g__"]);
    let col = |a: usize| header.iter().position(|h| *h == format!("beta.{}", a + 1)).unwrap();
    let m = rows.len() as f64;
    for a in 0..k {
        let ma = rows.iter().map(|r| r[col(a)]).sum::<f64>() / m;
        // The mean of 40,000 draws: within 4 standard errors of the exact one.
        let tol = 4.0 * (cov[a][a] / m).sqrt();
        assert!((ma - mean[a]).abs() < tol, "mean of beta[{a}]: draws {ma}, exact {}", mean[a]);
    }
    // A Gaussian posterior is its own Laplace approximation: log p − log q is constant.
    let ratios: Vec<f64> = rows.iter().map(|r| r[0] - r[1]).collect();
    let spread =
        ratios.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - ratios.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(spread < 1e-4, "log p - log q varies by {spread}");
    for a in 0..k {
        for b in 0..=a {
            let (ca, cb) = (col(a), col(b));
            let (ma, mb) = (rows.iter().map(|r| r[ca]).sum::<f64>() / m, rows.iter().map(|r| r[cb]).sum::<f64>() / m);
            let c = rows.iter().map(|r| (r[ca] - ma) * (r[cb] - mb)).sum::<f64>() / (m - 1.0);
            // Sampling error of a covariance from 40,000 draws: about 1% of √(Σaa Σbb).
            let tol = 0.04 * (cov[a][a] * cov[b][b]).sqrt();
            assert!((c - cov[a][b]).abs() < tol, "cov[{a}][{b}]: draws {c}, closed form {}", cov[a][b]);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_model_without_layers_is_approximated_at_its_posterior_mode_under_its_own_priors() {
    // Logistic regression: the draws' centre is the mode `map` finds (no constraint, so the
    // Jacobian changes nothing), whatever rows a minibatch method would have held out.
    let dir = std::env::temp_dir().join(format!("bnnc-laplace-logistic-{}", std::process::id()));
    let model = "examples/logistic_regression.bnn";
    let (code, stdout, stderr) = bnnc(&["run", model, "--method", "map", "--out", dir.join("map").to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let map = read_json(&dir.join("map").join("summary.json"));
    let lap_dir = dir.join("laplace");
    let (code, stdout, stderr) = bnnc(&["run", model, "--method", "laplace", "--out", lap_dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let lap = read_json(&lap_dir.join("summary.json"));
    // Pareto k̂ of the importance ratios is reported (this posterior is skewed enough for it
    // to sit near the 0.7 at which a warning is printed).
    assert!(lap["laplace"]["pareto_k"].as_f64().is_some_and(f64::is_finite), "{}", lap["laplace"]);
    let vars = map["variables"].as_object().unwrap();
    assert!(!vars.is_empty());
    for (name, v) in vars {
        let (mode, mean, sd) = (
            v["estimate"].as_f64().unwrap(),
            lap["variables"][name]["mean"].as_f64().unwrap(),
            lap["variables"][name]["sd"].as_f64().unwrap(),
        );
        // 1,000 draws: their mean is within 4 standard errors of the centre, plus the
        // little a logistic posterior's skew moves it.
        assert!(
            (mean - mode).abs() < 4.0 * sd / 1000f64.sqrt() + 0.02 * sd,
            "{name}: mode {mode}, Laplace mean {mean} ± {sd}"
        );
    }
    // The options of a network's Laplace are refused, not ignored.
    for extra in [["--batch-size", "16"], ["--prior-precision", "2"], ["--hessian", "last-layer"]] {
        let mut args = vec!["run", model, "--method", "laplace", "--out", lap_dir.to_str().unwrap()];
        args.extend_from_slice(&extra);
        let (code, _, stderr) = bnnc(&args);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
        assert!(stderr.contains(extra[0]) && stderr.contains("layers"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Gaussian posterior is its own Laplace approximation: the importance ratios are equal at
/// every draw, which is no reason to warn that q is far from the posterior.
#[test]
fn an_exact_laplace_approximation_is_not_warned_about() {
    let (dir, model) = temp_model("laplace-exact", "params {\n  o: vector[3] ~ normal(1, 2)\n}\nmodel {\n}\n");
    let out = dir.join("out");
    let (code, _, stderr) =
        bnnc(&["run", model.to_str().unwrap(), "--method", "laplace", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let s = read_json(&out.join("summary.json"));
    assert_eq!(s["laplace"]["importance_ratios"], "constant", "{}", s["laplace"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Gauss-Jordan inverse of a small SPD matrix.
fn invert(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let k = a.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .enumerate()
        .map(|(i, r)| [r.clone(), (0..k).map(|j| f64::from(u8::from(i == j))).collect()].concat())
        .collect();
    for c in 0..k {
        let piv = m[c][c];
        m[c].iter_mut().for_each(|v| *v /= piv);
        for r in 0..k {
            if r != c {
                let f = m[r][c];
                let row_c = m[c].clone();
                m[r].iter_mut().zip(&row_c).for_each(|(v, w)| *v -= f * w);
            }
        }
    }
    m.into_iter().map(|r| r[k..].to_vec()).collect()
}

fn run_and_predict(structure: &str, model: &str, data: &str, test: &str) -> (serde_json::Value, serde_json::Value) {
    let stem = std::path::Path::new(model).file_stem().unwrap().to_string_lossy().into_owned();
    let dir = std::env::temp_dir().join(format!("bnnc-laplace-{stem}-{structure}-{}", std::process::id()));
    let (code, stdout, stderr) = bnnc(&[
        "run",
        model,
        "--data",
        data,
        "--method",
        "laplace",
        "--hessian",
        structure,
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let out = (read_json(&dir.join("summary.json")), predict_fit(model, &dir, test));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn the_yacht_networks_laplace_predicts_calibrated_intervals() {
    for structure in ["last-layer", "diag"] {
        let (summary, pred) = run_and_predict(
            structure,
            "examples/bnn_regression.bnn",
            "examples/bnn_regression.json",
            "examples/bnn_regression_test.json",
        );
        assert_eq!(summary["method"], "laplace");
        assert_eq!(summary["laplace"]["predictive"], "linearised");
        assert_eq!(summary["laplace"]["prior_precision_tuned"], true);
        let m = &pred["observed"]["y"]["metrics"];
        // Not over-confident; and not wide for nothing (the target is standardised: sd 1).
        // On these 31 test rows the errors are smaller than the noise the training rows
        // give, so the 90% intervals may well cover them all.
        let cov = m["coverage90"].as_f64().unwrap();
        assert!(cov >= 0.8, "{structure}: 90% coverage {cov}");
        assert!(mean_sd(&pred) < 0.15, "{structure}: predictive sd {}", mean_sd(&pred));
        // Better than the data's spread alone (the target is standardised: sd 1).
        assert!(m["rmse"].as_f64().unwrap() < 0.2, "{structure}: {m}");
        assert!(m["log_lik"].as_f64().unwrap() > 1.0, "{structure}: {m}");
    }
}

#[test]
fn the_wine_classifiers_laplace_separates_the_held_out_cultivars() {
    let (summary, pred) = run_and_predict(
        "last-layer",
        "examples/bnn_classification.bnn",
        "examples/bnn_classification.json",
        "examples/bnn_classification_test.json",
    );
    assert_eq!(summary["laplace"]["predictive"], "linearised");
    let m = &pred["observed"]["y"]["metrics"];
    assert!(m["accuracy"].as_f64().unwrap() >= 0.9, "{m}");
    // Better than the uniform guess's log 2.
    assert!(m["log_lik"].as_f64().unwrap() > -0.3, "{m}");
    let rows = pred["observed"]["y"]["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["mutual_information"].as_f64().unwrap() >= 0.0));
}

/// A network with two heads on one hidden layer (a mean and a noise scale): both heads are
/// last layers and get the curvature, the hidden layer stays at its mode.
#[test]
fn every_head_of_a_network_is_a_last_layer() {
    let (dir, model) = temp_model(
        "laplace-heads",
        "data {\n  N: int\n  D: int\n  x: matrix[N, D]\n  y: vector[N]\n}\nmodel {\n  let h = dense(x, 8, act = tanh)\n  let mu = dense(h, 1)\n  let s = dense(h, 1)\n  y ~ normal(col(mu, 0), softplus(col(s, 0)) + 0.01)\n}\n",
    );
    let x: Vec<String> = (0..60).map(|i| format!("[{}]", -3.0 + i as f64 / 10.0)).collect();
    let y: Vec<String> = (0..60)
        .map(|i| format!("{}", (-3.0 + i as f64 / 10.0f64).sin() + 0.1 * ((i * 7 % 11) as f64 - 5.0) / 5.0))
        .collect();
    std::fs::write(
        dir.join("m.json"),
        format!(r#"{{"N": 60, "D": 1, "x": [{}], "y": [{}]}}"#, x.join(","), y.join(",")),
    )
    .unwrap();
    let out = dir.join("out");
    let (code, _, stderr) =
        bnnc(&["run", model.to_str().unwrap(), "--method", "laplace", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let vars = read_json(&out.join("summary.json"))["variables"].clone();
    let sd = |name: &str| vars[name]["sd"].as_f64().unwrap_or_else(|| panic!("{name}: {vars}"));
    assert!(sd("mu.W[0,0]") > 0.0 && sd("s.W[0,0]") > 0.0, "{vars}");
    assert_eq!(sd("h.W[0,0]"), 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}
