//! The variational methods against a posterior known exactly: linear regression with known
//! noise (tests/vi/gaussian_regression.bnn), whose posterior is N(m, Λ⁻¹) with
//! Λ = XᵀX + I/100. Full-rank ADVI must recover m and Λ⁻¹; mean-field ADVI and Bayes by
//! Backprop m and the mean-field variances 1/Λᵢᵢ (the KL(q‖p) optimum of a factorised q).

#[path = "common/cli.rs"]
mod common_cli;
use common_cli::bnnc;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::path::{Path, PathBuf};

const D: usize = 3;

struct Problem {
    dir: PathBuf,
    mean: [f64; D],
    cov: [[f64; D]; D],
    precision: [[f64; D]; D],
}

/// Data with correlated columns (so full-rank and mean-field differ), written beside a copy
/// of the model; the exact posterior.
fn problem(name: &str, n: usize) -> Problem {
    let dir = std::env::temp_dir().join(format!("bnnc-vi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut x = vec![[0.0; D]; n];
    let mut y = vec![0.0; n];
    for i in 0..n {
        let z: Vec<f64> = (0..D).map(|_| StandardNormal.sample(&mut rng)).collect();
        x[i] = [z[0], 0.8 * z[0] + 0.6 * z[1], z[2]];
        let e: f64 = StandardNormal.sample(&mut rng);
        y[i] = x[i][0] - 0.5 * x[i][1] + 2.0 * x[i][2] + e;
    }
    let data = serde_json::json!({"N": n, "D": D, "x": x, "y": y});
    std::fs::write(dir.join("model.json"), data.to_string()).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vi/gaussian_regression.bnn"),
        dir.join("model.bnn"),
    )
    .unwrap();
    let mut lam = [[0.0; D]; D];
    let mut xty = [0.0; D];
    for i in 0..n {
        for a in 0..D {
            xty[a] += x[i][a] * y[i];
            for b in 0..D {
                lam[a][b] += x[i][a] * x[i][b];
            }
        }
    }
    (0..D).for_each(|a| lam[a][a] += 0.01);
    let cov = inverse(&lam);
    let mut mean = [0.0; D];
    for a in 0..D {
        mean[a] = (0..D).map(|b| cov[a][b] * xty[b]).sum();
    }
    Problem { dir, mean, cov, precision: lam }
}

fn inverse(m: &[[f64; D]; D]) -> [[f64; D]; D] {
    let c = |r: usize, k: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (k1, k2) = ((k + 1) % 3, (k + 2) % 3);
        m[r1][k1] * m[r2][k2] - m[r1][k2] * m[r2][k1]
    };
    let det: f64 = (0..3).map(|k| m[0][k] * c(0, k)).sum();
    let mut inv = [[0.0; D]; D];
    for r in 0..3 {
        for k in 0..3 {
            inv[k][r] = c(r, k) / det;
        }
    }
    inv
}

/// q's mean (the first row of a variational draws file) and the draws' covariance.
fn read_q(fit: &Path) -> ([f64; D], [[f64; D]; D]) {
    let text = std::fs::read_to_string(fit.join("draws-1.csv")).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at: Vec<usize> = (1..=D).map(|k| header.iter().position(|h| *h == format!("beta.{k}")).unwrap()).collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|s| s.parse().unwrap()).collect();
            at.iter().map(|&j| v[j]).collect()
        })
        .collect();
    let mean = [rows[0][0], rows[0][1], rows[0][2]];
    let draws = &rows[1..];
    let s = draws.len() as f64;
    let avg: Vec<f64> = (0..D).map(|a| draws.iter().map(|r| r[a]).sum::<f64>() / s).collect();
    let mut cov = [[0.0; D]; D];
    for a in 0..D {
        for b in 0..D {
            cov[a][b] = draws.iter().map(|r| (r[a] - avg[a]) * (r[b] - avg[b])).sum::<f64>() / (s - 1.0);
        }
    }
    (mean, cov)
}

fn run(p: &Problem, out: &str, args: &[&str]) -> PathBuf {
    let fit = p.dir.join(out);
    let model = p.dir.join("model.bnn");
    let mut all = vec!["run", model.to_str().unwrap(), "--out", fit.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = bnnc(&all);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    fit
}

fn assert_mean(p: &Problem, mean: &[f64; D], what: &str) {
    for a in 0..D {
        let sd = p.cov[a][a].sqrt();
        assert!(
            (mean[a] - p.mean[a]).abs() < 0.1 * sd,
            "{what}: mean[{a}] {} vs exact {} (sd {sd})",
            mean[a],
            p.mean[a]
        );
    }
}

/// Within `rel` of `exact`, relatively (10,000 draws estimate a variance to about 1.4%).
fn assert_close(got: f64, exact: f64, rel: f64, what: &str) {
    assert!((got - exact).abs() < rel * exact.abs(), "{what}: {got} vs exact {exact}");
}

const ADVI: [&str; 14] = [
    "--method",
    "advi",
    "--eta",
    "0.1",
    "--grad-samples",
    "20",
    "--iter",
    "20000",
    "--tol-rel-obj",
    "0.0001",
    "--output-draws",
    "10000",
    "--seed",
    "3",
];

#[test]
fn full_rank_advi_recovers_a_gaussian_posterior() {
    let p = problem("fullrank", 200);
    let mut args = ADVI.to_vec();
    args.extend(["--algorithm", "fullrank"]);
    let (mean, cov) = read_q(&run(&p, "fit", &args));
    assert_mean(&p, &mean, "full-rank ADVI");
    for a in 0..D {
        assert_close(cov[a][a], p.cov[a][a], 0.15, &format!("full-rank ADVI: var[{a}]"));
    }
    // The strong correlation of the first two coefficients is found.
    let corr = |c: &[[f64; D]; D]| c[0][1] / (c[0][0] * c[1][1]).sqrt();
    assert!((corr(&cov) - corr(&p.cov)).abs() < 0.05, "correlation {} vs exact {}", corr(&cov), corr(&p.cov));
}

#[test]
fn mean_field_advi_finds_the_mean_and_the_mean_field_variances() {
    let p = problem("meanfield", 200);
    let (mean, cov) = read_q(&run(&p, "fit", &ADVI));
    assert_mean(&p, &mean, "mean-field ADVI");
    for a in 0..D {
        assert_close(cov[a][a], 1.0 / p.precision[a][a], 0.1, &format!("mean-field ADVI: var[{a}]"));
        // Not the marginal variance, which is twice as large for the correlated pair.
        if a < 2 {
            assert!(cov[a][a] < 0.6 * p.cov[a][a]);
        }
    }
    assert!(cov[0][1].abs() < 0.1 * cov[0][0], "mean-field draws are uncorrelated");
}

#[test]
fn advi_fits_are_read_by_predict_and_options_of_other_methods_are_refused() {
    let p = problem("predict", 100);
    let fit = run(&p, "fit", &["--method", "advi", "--output-draws", "200"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fit.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["method"], "advi");
    for k in ["elbo", "iterations", "converged", "pareto_k"] {
        assert!(summary["vi"].get(k).is_some(), "summary.json's vi record has {k}");
    }
    let model = p.dir.join("model.bnn");
    let (code, _, stderr) = bnnc(&["predict", model.to_str().unwrap(), "--fit", fit.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let pred: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fit.join("predictive.json")).unwrap()).unwrap();
    // The mean row is not a draw.
    assert_eq!(pred["draws"], 200);
    let (code, _, stderr) = bnnc(&["run", model.to_str().unwrap(), "--method", "advi", "--chains", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--chains does not apply to --method advi"), "{stderr}");
}

#[test]
fn bayes_by_backprop_on_batches_of_five_percent_reaches_the_mean_field_optimum() {
    let p = problem("bbb", 200);
    let args = [
        "--method",
        "bbb",
        "--batch-size",
        "10",
        "--epochs",
        "4000",
        "--lr",
        "0.0005",
        "--output-draws",
        "10000",
        "--seed",
        "3",
    ];
    let fit = run(&p, "fit", &args);
    let (mean, cov) = read_q(&fit);
    assert_mean(&p, &mean, "Bayes by Backprop");
    for a in 0..D {
        assert_close(cov[a][a], 1.0 / p.precision[a][a], 0.12, &format!("Bayes by Backprop: var[{a}]"));
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fit.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["method"], "bbb");
    assert_eq!(summary["vi"]["exact_kl"], serde_json::json!(["beta"]));
    assert_eq!(summary["vi"]["iterations"], 4000 * 20);
}

#[test]
fn bayes_by_backprop_trains_the_example_network_with_held_out_rows_and_predict_reads_its_fit() {
    let dir = std::env::temp_dir().join(format!("bnnc-vi-bbb-net-{}", std::process::id()));
    let fit = dir.join("fit");
    let (code, stdout, stderr) = bnnc(&[
        "run",
        "examples/bnn_regression.bnn",
        "--method",
        "bbb",
        "--epochs",
        "300",
        "--batch-size",
        "32",
        "--val-frac",
        "0.1",
        "--output-draws",
        "100",
        "--out",
        fit.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("layer") && stdout.contains("sigma"), "{stdout}");
    assert!(stderr.contains("local reparameterisation for h.W, f.W"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fit.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["vi"]["held_out_rows"], 28);
    let trace = summary["vi"]["trace"].as_array().unwrap();
    assert!(trace.iter().all(|e| e["val_log_lik"].is_f64()));
    // Training improved the ELBO.
    let elbo = |e: &serde_json::Value| e["elbo"].as_f64().unwrap();
    assert!(elbo(trace.last().unwrap()) > elbo(&trace[0]) + 100.0);
    let (code, _, stderr) = bnnc(&[
        "predict",
        "examples/bnn_regression.bnn",
        "--fit",
        fit.to_str().unwrap(),
        "--data",
        "examples/bnn_regression_test.json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let pred: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fit.join("predictive.json")).unwrap()).unwrap();
    // Standardised yacht targets: the network explains most of their variance.
    let rmse = pred["observed"]["y"]["metrics"]["rmse"].as_f64().unwrap();
    assert!(rmse < 0.5, "test RMSE {rmse}");
    // The output draws are scored (log_p__) on threads: the same file with one or three.
    let draws = |threads: &str| {
        let out = dir.join(format!("threads-{threads}"));
        let (code, _, stderr) = bnnc(&[
            "run",
            "examples/bnn_regression.bnn",
            "--method",
            "bbb",
            "--epochs",
            "20",
            "--output-draws",
            "50",
            "--threads",
            threads,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stderr}");
        std::fs::read_to_string(out.join("draws-1.csv")).unwrap()
    };
    let (one, three) = (draws("1"), draws("3"));
    assert!(one.lines().filter(|l| !l.starts_with('#')).count() == 52, "{one}");
    assert_eq!(one, three);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Models where the first step size Stan's adaptation picks fails at once (arK: a draw with
/// an infinite scale; kidiq_momiq: a NaN density) fall back to the next smaller one, and
/// say so; an observed `let` computed from data (earnings' `log_earn = log(earn)`) has the
/// rows of the data it reads, so Bayes by Backprop minibatches it.
#[test]
fn variational_methods_run_posteriordb_models_from_their_defaults() {
    let out = std::env::temp_dir().join(format!("bnnc-vi-pdb-{}", std::process::id()));
    for (name, method) in [("arK-arK", "advi"), ("kidiq-kidscore_momiq", "advi"), ("earnings-logearn_height", "bbb")] {
        let dir = format!("data/posteriordb/{name}");
        let fit = out.join(name);
        let (code, stdout, stderr) = bnnc(&[
            "run",
            &format!("{dir}/model.bnn"),
            "--data",
            &format!("{dir}/data.json"),
            "--method",
            method,
            "--output-draws",
            "200",
            "--out",
            fit.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{name}: {stdout}\n{stderr}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fit.join("summary.json")).unwrap()).unwrap();
        assert!(summary["vi"]["elbo"].as_f64().is_some_and(f64::is_finite), "{name}: {summary}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
