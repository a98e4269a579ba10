//! The `bnnc` command line as a user runs it: exit codes, emitted stages, JSON diagnostics.

#[path = "common/cli.rs"]
mod common_cli;
use common_cli::{bnnc, read_json, temp_model};

#[test]
fn check_clean_model_exits_zero_silently() {
    let (code, out, err) = bnnc(&["check", "examples/eight_schools.bnn"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty() && err.is_empty(), "{out}{err}");
}

#[test]
fn missing_file_is_a_coded_error() {
    let (code, _, err) = bnnc(&["check", "no/such/model.bnn", "--color", "never"]);
    assert_eq!(code, 1);
    assert!(err.contains("E0001") && err.contains("no/such/model.bnn"), "{err}");
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(bnnc(&[]).0, 2);
    assert_eq!(bnnc(&["check"]).0, 2);
    assert_eq!(bnnc(&["check", "examples/eight_schools.bnn", "--emit", "nonsense"]).0, 2);
    // Settings outside their ranges are refused before anything runs, each named.
    for (args, named) in [
        (&["--adapt-delta", "0"][..], "--adapt-delta"),
        (&["--method", "hmc", "--steps", "0"], "--steps"),
        (&["--threads", "0"], "--threads"),
        (&["--method", "laplace", "--output-draws", "0"], "--output-draws must be at least 1"),
    ] {
        let mut all = vec!["run", "examples/eight_schools.bnn"];
        all.extend_from_slice(args);
        let (code, _, err) = bnnc(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
    }
    let (code, _, err) = bnnc(&["bench", "examples/eight_schools.bnn", "--seconds", "0"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn emit_stages() {
    let (code, out, err) = bnnc(&["check", "examples/eight_schools.bnn", "--emit", "tokens"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Data") && out.contains("<end of statement>"), "{out}");
    let (code, out, _) = bnnc(&["check", "examples/eight_schools.bnn", "--emit", "ast"]);
    assert_eq!(code, 0);
    assert!(out.contains("tau: real<lower=0> ~ cauchy(0, 5)"), "{out}");
    let (code, out, _) = bnnc(&["check", "examples/eight_schools.bnn", "--emit", "ir-draws"]);
    assert_eq!(code, 0);
    assert!(out.contains("output theta") && !out.contains("LogDensity"), "the draws program has no density: {out}");
    let (code, out, _) = bnnc(&["check", "examples/bnn_regression.bnn", "--emit", "ir-forward"]);
    assert_eq!(code, 0);
    assert!(out.contains("observe y = ") && out.contains("~ normal(") && !out.contains("target +="), "{out}");
    let (code, out, _) = bnnc(&["check", "examples/bnn_regression.bnn", "--emit", "elab"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("h.W") && out.contains("matrix[D, 50]") && out.contains("let h = tanh(x @ h.W + h.b)"),
        "{out}"
    );
}

#[test]
fn json_diagnostics_are_one_object_per_line() {
    let dir = std::env::temp_dir().join(format!("bnnc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("two_errors.bnn");
    std::fs::write(&path, "params {\n  mu: real ~ normmal(0, 1)\n}\nmodel {\n  y ~ normal(mu, 1)\n}\n").expect("write");
    let (code, _, err) = bnnc(&["check", path.to_str().expect("utf-8 path"), "--message-format", "json"]);
    assert_eq!(code, 1);
    let lines: Vec<serde_json::Value> =
        err.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(lines[0]["code"], "E0202");
    assert_eq!(lines[0]["help"], "did you mean `normal`?");
    assert_eq!(lines[0]["spans"][0]["line_start"], 2);
    assert_eq!(lines[1]["code"], "E0200");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_writes_summary_and_cmdstan_csv() {
    // Two short chains of eight schools with seed 7 into `dir`, plus `extra` arguments.
    let run = |dir: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "examples/eight_schools.bnn",
            "--chains",
            "2",
            "--warmup",
            "300",
            "--draws",
            "300",
            "--seed",
            "7",
        ];
        args.extend_from_slice(extra);
        args.extend(["--out", dir.to_str().expect("utf-8 path")]);
        bnnc(&args)
    };
    let dir = std::env::temp_dir().join(format!("bnnc-run-{}", std::process::id()));
    let (code, table, err) = run(&dir, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("ESS_bulk") && table.contains("theta[7]"), "{table}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json")).expect("JSON");
    assert_eq!(summary["method"], "nuts");
    for name in ["mu", "tau", "eta[0]", "theta[7]"] {
        let v = &summary["variables"][name];
        for k in ["mean", "sd", "mcse", "q5", "q50", "q95", "ess_bulk", "ess_tail", "rhat"] {
            assert!(v[k].is_number(), "{name}.{k} missing: {v}");
        }
    }
    assert!(summary["sampler"]["grad_evals"].as_u64().expect("count") > 600);
    // CmdStan layout: comments, the header with sampler columns first, 300 rows, timing.
    let csv = std::fs::read_to_string(dir.join("draws-1.csv")).expect("draws-1.csv");
    let header = csv.lines().find(|l| !l.starts_with('#')).expect("header");
    assert!(
        header.starts_with("lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__,mu,tau,eta.1"),
        "{header}"
    );
    let rows = csv.lines().filter(|l| !l.starts_with('#')).count() - 1;
    assert_eq!(rows, 300);
    assert!(csv.contains("# Adaptation terminated") && csv.contains("Elapsed Time"));
    // The same seed gives the same draws, whatever the thread count.
    let dir2 = std::env::temp_dir().join(format!("bnnc-run-{}-b", std::process::id()));
    let (code, _, err) = run(&dir2, &["--threads", "1"]);
    assert_eq!(code, 0, "{err}");
    let rows_of = |p: std::path::PathBuf| -> Vec<String> {
        std::fs::read_to_string(p).expect("csv").lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect()
    };
    assert_eq!(rows_of(dir.join("draws-2.csv")), rows_of(dir2.join("draws-2.csv")));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn run_rejects_unknown_methods_and_bad_settings() {
    assert_eq!(bnnc(&["run", "examples/eight_schools.bnn", "--method", "gibbs"]).0, 2);
    assert_eq!(bnnc(&["run", "examples/eight_schools.bnn", "--adapt-delta", "1.5"]).0, 2);
    // An unknown method: clap rejects it and lists those there are (SPEC §10's).
    let (code, _, err) = bnnc(&["run", "examples/eight_schools.bnn", "--method", "vi"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("[possible values: nuts, hmc, map, advi, bbb, mc-dropout, ensemble, swag, laplace, sgmcmc]"),
        "{err}"
    );
    // A minibatch option on a method that does not train on minibatches.
    let (code, _, err) = bnnc(&["run", "examples/eight_schools.bnn", "--method", "nuts", "--hessian", "diag"]);
    assert_eq!(code, 2);
    assert!(err.contains("--hessian") && err.contains("laplace"), "{err}");
    // An ensemble's members start apart: one --init for all of them is refused.
    let (code, _, err) = bnnc(&["run", "examples/bnn_regression.bnn", "--method", "ensemble", "--init", "none.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("--init does not apply to --method ensemble"), "{err}");
}

#[test]
fn a_model_no_chain_can_start_gets_one_coded_diagnostic() {
    // log(-1) whatever `a` is: every chain's every starting point is NaN.
    let dir = std::env::temp_dir().join(format!("bnnc-nostart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("m.bnn"),
        "data {\n  N: int\n  y: vector[N]\n}\nparams {\n  a: real\n}\nmodel {\n  target += log(a - a - 1)\n  y ~ normal(a, 1)\n}\n",
    )
    .unwrap();
    std::fs::write(dir.join("m.json"), r#"{"N": 2, "y": [0.5, 1.5]}"#).unwrap();
    let (code, _, err) =
        bnnc(&["run", dir.join("m.bnn").to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("E0604").count(), 1, "{err}");
    assert!(err.contains("NaN") && !err.contains("chain 1:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A flat density on the whole line has no posterior: the step size runs off until moves no
/// longer change the value, every chain stands still, and the run says so with exit code 3.
#[test]
fn chains_that_never_move_fail_the_run() {
    let (dir, model) = temp_model("improper", "params {\n  m: real\n}\nmodel {\n  target += 0.0\n}\n");
    let out = dir.join("out");
    let (code, _, err) = bnnc(&["run", model.to_str().unwrap(), "--out", out.to_str().unwrap(), "--draws", "200"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("every chain is stuck"), "{err}");
    assert!(out.join("summary.json").exists(), "the draws are kept: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_network_on_unstandardised_data_is_warned_about() {
    // The yacht network with its target in other units (×1000): a warning names `y`; the
    // data as given (standardised) gets none.
    let dir = std::env::temp_dir().join(format!("bnnc-offscale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut data = read_json(std::path::Path::new("examples/bnn_regression.json"));
    let y: Vec<f64> = data["y"].as_array().unwrap().iter().map(|v| 1000.0 * v.as_f64().unwrap() + 5000.0).collect();
    data["y"] = serde_json::json!(y);
    std::fs::write(dir.join("big.json"), data.to_string()).unwrap();
    let run = |data: &str| {
        bnnc(&[
            "run",
            "examples/bnn_regression.bnn",
            "--data",
            data,
            "--method",
            "map",
            "--batch-size",
            "32",
            "--epochs",
            "2",
            "--out",
            dir.join("out").to_str().unwrap(),
        ])
    };
    let (_, _, err) = run(dir.join("big.json").to_str().unwrap());
    assert!(err.contains("warning: data `y` is far from unit scale"), "{err}");
    assert!(!err.contains("`x` is far"), "{err}");
    let (_, _, err) = run("examples/bnn_regression.json");
    assert!(!err.contains("unit scale"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_vector_argument_goes_along_the_rows_of_a_matrix_variate() {
    // y ~ normal(m, s) with y: matrix[N, 2] and s: vector[2] is one statement per column with
    // that column's scale (SPEC 4 and 6), on both backends, gradient included.
    let dir = std::env::temp_dir().join(format!("bnnc-rowbcast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let head = "data {\n  N: int<lower=1>\n  y: matrix[N, 2]\n  mu: matrix[N, 2]\n}\nparams {\n  s: vector<lower=0>[2]\n  b: vector[2]\n}\nmodel {\n";
    std::fs::write(dir.join("a.bnn"), format!("{head}  y ~ normal(mu + b, s)\n}}\n")).unwrap();
    std::fs::write(
        dir.join("b.bnn"),
        format!(
            "{head}  col(y, 0) ~ normal(col(mu, 0) + b[0], s[0])\n  col(y, 1) ~ normal(col(mu, 1) + b[1], s[1])\n}}\n"
        ),
    )
    .unwrap();
    let data = r#"{"N": 3, "y": [[0.1, 2.0], [-0.4, 3.5], [0.8, 1.0]], "mu": [[0.0, 2.5], [0.2, 2.0], [0.5, 1.5]]}"#;
    std::fs::write(dir.join("d.json"), data).unwrap();
    std::fs::write(dir.join("p.json"), r#"{"s": [0.5, 2.0], "b": [0.1, -0.3]}"#).unwrap();
    let logp = |m: &str, backend: &str| -> serde_json::Value {
        let (code, out, err) = bnnc(&[
            "logp",
            dir.join(m).to_str().unwrap(),
            "--data",
            dir.join("d.json").to_str().unwrap(),
            "--params",
            dir.join("p.json").to_str().unwrap(),
            "--backend",
            backend,
        ]);
        assert_eq!(code, 0, "{m}: {err}");
        serde_json::from_str(&out).unwrap()
    };
    for backend in ["jit", "interp"] {
        let (a, b) = (logp("a.bnn", backend), logp("b.bnn", backend));
        let close =
            |x: &serde_json::Value, y: &serde_json::Value| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-10;
        assert!(close(&a["logp"], &b["logp"]), "{backend}: {} against {}", a["logp"], b["logp"]);
        let (ga, gb) = (a["grad"].as_array().unwrap(), b["grad"].as_array().unwrap());
        assert!(ga.len() == 4 && ga.iter().zip(gb).all(|(x, y)| close(x, y)), "{backend}: {ga:?} against {gb:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn map_finds_the_least_squares_fit_of_a_linear_regression() {
    // kidiq_momiq has flat priors on beta, so its posterior mode in beta is the least-squares
    // fit, computed here from the normal equations.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/posteriordb/kidiq-kidscore_momiq");
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("data.json")).expect("data")).expect("JSON");
    let y: Vec<f64> = data["kid_score"].as_array().expect("y").iter().filter_map(|v| v.as_f64()).collect();
    let x: Vec<f64> = data["mom_iq"].as_array().expect("x").iter().filter_map(|v| v.as_f64()).collect();
    let n = y.len() as f64;
    let (sx, sy) = (x.iter().sum::<f64>(), y.iter().sum::<f64>());
    let sxx: f64 = x.iter().map(|v| v * v).sum();
    let sxy: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
    let b1 = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    let b0 = (sy - b1 * sx) / n;
    let out = std::env::temp_dir().join(format!("bnnc-map-{}", std::process::id()));
    let (code, _, err) = bnnc(&[
        "run",
        dir.join("model.bnn").to_str().expect("utf-8"),
        "--data",
        dir.join("data.json").to_str().expect("utf-8"),
        "--method",
        "map",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("JSON");
    assert_eq!(s["method"], "map");
    assert_eq!(s["optimizer"]["converged"], true);
    let est = |k: &str| s["variables"][k]["estimate"].as_f64().expect("estimate");
    assert!((est("beta[0]") - b0).abs() < 1e-4 * b0.abs(), "{} vs {b0}", est("beta[0]"));
    assert!((est("beta[1]") - b1).abs() < 1e-4 * b1.abs(), "{} vs {b1}", est("beta[1]"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bench_prints_specs_json() {
    let (code, out, err) = bnnc(&["bench", "examples/eight_schools.bnn", "--seconds", "1"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["backend"], "jit");
    assert_eq!(v["dim"], 10);
    for k in ["compile_ms", "grad_us_median", "grad_us_mean", "grad_evals_per_s"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k}: {v}");
    }
}

/// `logp` gives the same answer with compiled code (the default) and the interpreter, and
/// `run --backend interp` samples the same draws as the default backend.
#[test]
fn both_backends_agree_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("bnnc-cli-backends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let point = dir.join("u.json");
    std::fs::write(&point, "[0.3, -0.2, 0.5, 1.1, -0.7, 0.0, 0.4, -1.3, 2.0, 0.6]").expect("write");
    let p = point.to_str().unwrap_or_default();
    let mut results = Vec::new();
    for backend in ["jit", "interp"] {
        let (code, out, err) =
            bnnc(&["logp", "examples/eight_schools.bnn", "--unconstrained", p, "--backend", backend]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        results.push(v);
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0);
    for key in ["logp", "logp_jacobian"] {
        let (a, b) = (results[0][key].as_f64().unwrap_or(f64::NAN), results[1][key].as_f64().unwrap_or(f64::NAN));
        assert!(close(a, b), "{key}: {a} vs {b}");
    }
    let (ga, gb) = (results[0]["grad"].as_array().expect("grad"), results[1]["grad"].as_array().expect("grad"));
    assert_eq!(ga.len(), 10);
    for (a, b) in ga.iter().zip(gb) {
        let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
        assert!(close(a, b), "gradient {a} vs {b}");
    }
    // Short runs: the same draws, to the digits printed. On this model both backends run the
    // same floating-point operations in the same order, so the trajectories are identical; a
    // change to either that reorders a sum will show here first.
    let mut draws = Vec::new();
    for backend in ["jit", "interp"] {
        let out = dir.join(backend);
        let (code, _, err) = bnnc(&[
            "run",
            "examples/eight_schools.bnn",
            "--chains",
            "1",
            "--warmup",
            "100",
            "--draws",
            "50",
            "--backend",
            backend,
            "--out",
            out.to_str().unwrap_or_default(),
        ]);
        assert!(code == 0 || code == 3, "{err}");
        let csv = std::fs::read_to_string(out.join("draws-1.csv")).expect("draws");
        draws.push(csv.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect::<Vec<_>>());
    }
    assert_eq!(draws[0].len(), 51);
    assert_eq!(draws[0], draws[1]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A network's summary leads with what is identifiable and folds each layer into one line;
/// `--all` prints every weight; summary.json keeps every variable and the predictions' rows.
#[test]
fn a_network_summary_folds_its_layers() {
    let dir = std::env::temp_dir().join(format!("bnnc-cli-net-{}", std::process::id()));
    let out = dir.to_str().expect("utf-8");
    let args =
        ["run", "examples/bnn_classification.bnn", "--chains", "2", "--warmup", "150", "--draws", "150", "--out", out];
    let (code, stdout, err) = bnnc(&args);
    assert!(code == 0 || code == 3, "{err}");
    assert!(!stdout.contains("h.W[0,0]"), "weights are folded:\n{stdout}");
    assert!(stdout.contains("P(y[0]=0)") && stdout.contains("P(y[90]=1)"), "{stdout}");
    let layer_line =
        stdout.lines().find(|l| l.starts_with("h ")).unwrap_or_else(|| panic!("no line for layer h:\n{stdout}"));
    assert_eq!(layer_line.split_whitespace().nth(1), Some("112"), "13 × 8 weights and 8 biases: {layer_line}");
    assert!(stdout.contains("not identifiable"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary")).expect("json");
    assert!(summary["variables"]["h.W[12,7]"]["rhat"].is_number(), "every weight is kept");
    assert_eq!(summary["predictive"].as_object().map(|m| m.len()), Some(4));
    let mut all = args.to_vec();
    all.push("--all");
    let (_, stdout, _) = bnnc(&all);
    assert!(stdout.contains("h.W[0,0]") && stdout.contains("logits.b[1]"), "{stdout}");
    // The mode too: a line per layer, every weight with --all.
    let (_, stdout, _) = bnnc(&["run", "examples/bnn_classification.bnn", "--method", "map", "--out", out]);
    let folded = stdout.lines().any(|l| l.starts_with("h ") && l.contains("112 weights"));
    assert!(folded && !stdout.contains("h.W[0,0]"), "{stdout}");
    let (_, stdout, _) = bnnc(&["run", "examples/bnn_classification.bnn", "--method", "map", "--out", out, "--all"]);
    assert!(stdout.contains("h.W[0,0]"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every plot kind draws in the terminal and writes an SVG file; names that are not scalars
/// of the fit and other file types are errors.
#[test]
fn plots_draw_in_the_terminal_and_to_svg() {
    let dir = std::env::temp_dir().join(format!("bnnc-cli-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let fit = "tests/ui/fits/linreg";
    for (kind, names) in
        [("trace", vec!["a", "b"]), ("density", vec!["sigma"]), ("rank", vec!["a"]), ("pair", vec!["a", "b"])]
    {
        let mut args = vec!["plot", fit, kind];
        args.extend(&names);
        let (code, out, err) = bnnc(&args);
        assert_eq!(code, 0, "{kind}: {err}");
        assert!(out.starts_with(kind) && out.lines().count() >= 2, "{kind}:\n{out}");
        let svg = dir.join(format!("{kind}.svg"));
        args.extend(["--out", svg.to_str().expect("utf-8")]);
        let (code, _, err) = bnnc(&args);
        assert_eq!(code, 0, "{kind}: {err}");
        let text = std::fs::read_to_string(&svg).expect("svg written");
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>") && text.len() > 1000, "{kind}");
        let png = dir.join(format!("{kind}.png"));
        let mut args = vec!["plot", fit, kind];
        args.extend(&names);
        args.extend(["--out", png.to_str().expect("utf-8")]);
        let (code, _, err) = bnnc(&args);
        assert_eq!(code, 0, "{kind}: {err}");
        let (w, h, inked) = decode_png(&png);
        let panels = if kind == "pair" { 1 } else { names.len() };
        assert_eq!((w, h), (800, 320 * panels as u32), "{kind}");
        assert!(inked > 2000, "{kind}: only {inked} pixels drawn");
    }
    let (code, _, err) = bnnc(&["plot", fit, "trace", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("[E0704]") && err.contains("no `nosuch`"), "{err}");
    let (code, _, err) = bnnc(&["plot", "no/such/dir", "trace", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("[E0700]"), "{err}");
    // What the command line asks for that no fit could give: usage errors.
    let (code, _, err) = bnnc(&["plot", fit, "pair", "a"]);
    assert_eq!(code, 2);
    assert!(err.contains("two variables"), "{err}");
    let (code, _, err) = bnnc(&["plot", fit, "trace", "a", "--out", "x.jpg"]);
    assert_eq!(code, 2);
    assert!(err.contains("FILE.svg or FILE.png"), "{err}");
    // A mode is one point: nothing to draw (it drew an empty frame over an invented range).
    let map = dir.join("map");
    let (code, _, err) =
        bnnc(&["run", "examples/eight_schools.bnn", "--method", "map", "--out", map.to_str().expect("utf-8")]);
    assert!(code == 0 || code == 3, "{err}");
    let (code, _, err) = bnnc(&["plot", map.to_str().expect("utf-8"), "density", "mu"]);
    assert_eq!(code, 1);
    assert!(err.contains("[E0700]") && err.contains("one draw"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PNG's width, height and how many of its pixels are not white; panics when it does not
/// decode.
fn decode_png(path: &std::path::Path) -> (u32, u32, usize) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).expect("png written")));
    let mut reader = dec.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("PNG data decode");
    let inked = buf[..info.buffer_size()].chunks(3).filter(|p| p.iter().any(|c| *c != 255)).count();
    (info.width, info.height, inked)
}

/// The prediction plots read what `predict` wrote into the fit's directory.
#[test]
fn prediction_plots_follow_predict() {
    let dir = std::env::temp_dir().join(format!("bnnc-cli-predplot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for f in ["summary.json", "draws-1.csv"] {
        std::fs::copy(format!("{}/tests/ui/fits/linreg/{f}", env!("CARGO_MANIFEST_DIR")), dir.join(f)).expect("copy");
    }
    let fit = dir.to_str().expect("utf-8");
    let (code, _, err) = bnnc(&["plot", fit, "calibration"]);
    assert_eq!(code, 1);
    assert!(err.contains("[E0700]") && err.contains("holds no predictions"), "{err}");
    let (code, _, err) = bnnc(&["predict", "tests/repl/linreg.bnn", "--fit", fit, "--data", "tests/repl/linreg.json"]);
    assert_eq!(code, 0, "{err}");
    for kind in ["predictive", "calibration"] {
        let (code, out, err) = bnnc(&["plot", fit, kind, "y"]);
        assert_eq!(code, 0, "{kind}: {err}");
        assert!(out.starts_with(kind) && out.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)), "{out}");
        let svg = dir.join(format!("{kind}.svg"));
        let (code, _, err) = bnnc(&["plot", fit, kind, "--out", svg.to_str().expect("utf-8")]);
        assert_eq!(code, 0, "{kind}: {err}");
        assert!(std::fs::read_to_string(&svg).expect("svg").trim_end().ends_with("</svg>"));
        let png = dir.join(format!("{kind}.png"));
        let (code, _, err) = bnnc(&["plot", fit, kind, "--out", png.to_str().expect("utf-8")]);
        assert_eq!(code, 0, "{kind}: {err}");
        let (w, h, inked) = decode_png(&png);
        assert!(w == 800 && h == 320 && inked > 1000, "{kind}: {w}×{h}, {inked} pixels drawn");
    }
    let (code, _, err) = bnnc(&["plot", fit, "predictive", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("[E0704]") && err.contains("no variable `nosuch`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A training run stopped with Ctrl-C (SIGINT) keeps what it had: it exits normally, writes
/// its summary and draws, and says it was stopped.
/// Ctrl-C (SIGINT) and SIGTERM (what `timeout` and job schedulers send) both stop training
/// at the current step and keep the fit as it was.
#[test]
fn interrupted_training_keeps_its_fit() {
    for signal in ["-INT", "-TERM"] {
        let out = std::env::temp_dir().join(format!("bnnc-signal{signal}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_bnnc"))
            .args(["run", "examples/digits_cnn.bnn", "--method", "mc-dropout", "--epochs", "1000000"])
            .args(["--val-frac", "0", "--out", out.to_str().unwrap()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Compiling the model takes milliseconds; after five seconds it is training.
        std::thread::sleep(std::time::Duration::from_secs(5));
        let kill = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let done = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(0), "{signal}: {err}");
        assert!(err.contains("warning: stopped during epoch"), "{signal}: {err}");
        let summary = read_json(&out.join("summary.json"));
        assert_eq!(summary["mc_dropout"]["stopped"], true);
        assert!(summary["mc_dropout"]["epochs"].as_u64().unwrap() < 1_000_000);
        assert!(out.join("draws-1.csv").exists());
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// A `_rng` call given arguments outside their support at some draws (a Poisson rate that is
/// a parameter free to go negative): those draws keep their parameters, the generated column
/// is NaN there, and every method that writes draws says so.
#[test]
fn generated_quantities_that_fail_keep_the_draws_parameters() {
    let (dir, model) = temp_model(
        "genfail",
        "params {\n  mu: real ~ normal(0, 1)\n}\nmodel {\n}\ngenerated {\n  r = poisson_rng(mu)\n}\n",
    );
    for method in ["nuts", "advi", "laplace"] {
        let out = dir.join(method);
        let (code, _, err) =
            bnnc(&["run", model.to_str().unwrap(), "--method", method, "--out", out.to_str().unwrap()]);
        assert_eq!(code, 0, "{method}: {err}");
        assert!(err.contains("the generated quantities could not be computed at"), "{method}: {err}");
        assert!(err.contains("poisson_rng(-"), "{method}: {err}");
        let csv = std::fs::read_to_string(out.join("draws-1.csv")).unwrap();
        let rows: Vec<Vec<&str>> =
            csv.lines().filter(|l| !l.starts_with('#') && !l.contains("mu")).map(|l| l.split(',').collect()).collect();
        assert!(rows.len() >= 900, "{method}: {} rows", rows.len());
        // The second to last column is mu, the last r.
        assert!(rows.iter().all(|r| r[r.len() - 2].parse::<f64>().unwrap().is_finite()), "{method}");
        let nan = rows.iter().filter(|r| r[r.len() - 1] == "NaN").count();
        assert!(nan > rows.len() / 4 && nan < rows.len() * 3 / 4, "{method}: {nan} of {}", rows.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Data with no rows, or one, for a model whose likelihood is over rows: a prior-only fit, or
/// training on the one row with nothing held out; neither panics.
#[test]
fn zero_and_one_rows_are_fitted_not_crashed_on() {
    let (dir, model) = temp_model(
        "fewrows",
        "data {\n  N: int\n  D: int\n  x: matrix[N, D]\n  y: vector[N]\n}\nparams {\n  sigma: real<lower=0> ~ normal(0, 1)\n}\nmodel {\n  let h = dense(x, 4, act = tanh)\n  y ~ normal(col(dense(h, 1), 0) + x @ ones(D), sigma)\n}\n",
    );
    std::fs::write(dir.join("zero.json"), r#"{"N": 0, "D": 2, "x": [], "y": []}"#).unwrap();
    std::fs::write(dir.join("one.json"), r#"{"N": 1, "D": 2, "x": [[0.5, -1.0]], "y": [0.3]}"#).unwrap();
    let m = model.to_str().unwrap();
    let zero = dir.join("zero.json");
    let (code, _, err) = bnnc(&["check", m, "--data", zero.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let out = dir.join("out");
    let (code, _, err) =
        bnnc(&["run", m, "--data", zero.to_str().unwrap(), "--method", "map", "--out", out.to_str().unwrap()]);
    // With no rows, σ's half-normal prior alone rises to its mode at the bound 0.
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("towards the bound of sigma"), "{err}");
    let one = dir.join("one.json");
    for method in ["ensemble", "mc-dropout"] {
        let (code, _, err) = bnnc(&[
            "run",
            m,
            "--data",
            one.to_str().unwrap(),
            "--method",
            method,
            "--epochs",
            "20",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{method}: {err}");
        assert!(err.contains("1 observation row: none can be held out"), "{method}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A byte-order mark at the start of a model or data file (as some Windows editors save
/// UTF-8) is not a character of the program or of the JSON.
#[test]
fn a_byte_order_mark_is_ignored() {
    let dir = std::env::temp_dir().join(format!("bnnc-bom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("m.bnn");
    let text = "data {\n  N: int\n  y: vector[N]\n}\nparams {\n  mu: real ~ normal(0, 10)\n}\nmodel {\n  y ~ normal(mu, 1)\n}\n";
    std::fs::write(&model, [&b"\xEF\xBB\xBF"[..], text.as_bytes()].concat()).unwrap();
    std::fs::write(dir.join("m.json"), [&b"\xEF\xBB\xBF"[..], br#"{"N": 2, "y": [0.5, 1.5]}"#].concat()).unwrap();
    let (code, out, err) = bnnc(&["check", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model without a `data` block reads no file beside it, and `check` lowers it as `run`
/// will, so an error only lowering finds (a function that never stops calling itself) is
/// reported by `check` too.
#[test]
fn a_model_without_data_is_checked_as_it_runs_and_reads_no_file() {
    let (dir, model) = temp_model("nodata", "params {\n  mu: real ~ normal(0, 1)\n}\nmodel {\n}\n");
    std::fs::write(dir.join("m.json"), "{not json").unwrap();
    let (code, _, err) = bnnc(&["check", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let out = dir.join("out");
    let (code, _, err) = bnnc(&["run", model.to_str().unwrap(), "--method", "map", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let rec = dir.join("rec.bnn");
    std::fs::write(
        &rec,
        "fn f(x: real) -> real {\n  return f(x)\n}\nparams {\n  mu: real\n}\nmodel {\n  mu ~ normal(f(0.0), 1)\n}\n",
    )
    .unwrap();
    let (code, _, err) = bnnc(&["check", rec.to_str().unwrap(), "--color", "never"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0400"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `.npz` arrays of the int widths NumPy writes (here i8, u16 and u64) and of float32 are
/// read.
#[test]
fn npz_ints_of_every_width_are_read() {
    use ndarray_npy::NpzWriter;
    let (dir, model) = temp_model(
        "npz",
        "data {\n  N: int\n  D: int\n  x: matrix[N, D]\n  k: array[N] int\n}\nparams {\n  b: vector[D] ~ normal(0, 1)\n}\nmodel {\n  k ~ poisson_log(x @ b)\n}\n",
    );
    let path = dir.join("m.npz");
    let mut w = NpzWriter::new(std::fs::File::create(&path).unwrap());
    w.add_array("N", &ndarray::arr0(3i8)).unwrap();
    w.add_array("D", &ndarray::arr0(2u64)).unwrap();
    w.add_array("x", &ndarray::arr2(&[[0.5f32, 1.0], [-0.5, 0.0], [1.5, -1.0]])).unwrap();
    w.add_array("k", &ndarray::arr1(&[1u16, 0, 4])).unwrap();
    w.finish().unwrap();
    let (code, out, err) = bnnc(&["check", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fit belongs to its model's tokens: editing a comment or the layout keeps it usable by
/// `predict`; changing the model (a prior's scale) does not.
#[test]
fn a_fit_survives_edits_to_comments_but_not_to_the_model() {
    let text = "data {\n  N: int\n  x: vector[N]\n  y: vector[N]\n}\nparams {\n  b: real ~ normal(0, 1)\n}\nmodel {\n  y ~ normal(b * x, 1)\n}\n";
    let (dir, model) = temp_model("fithash", text);
    std::fs::write(dir.join("m.json"), r#"{"N": 3, "x": [1, 2, 3], "y": [0.9, 2.1, 2.8]}"#).unwrap();
    let (m, out) = (model.to_str().unwrap(), dir.join("fit"));
    let (code, _, err) = bnnc(&["run", m, "--method", "map", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let commented =
        format!("// a comment\n{}", text.replace("y ~ normal(b * x, 1)", "y ~ normal(b * x,   1)  // the likelihood"));
    std::fs::write(&model, commented).unwrap();
    let (code, _, err) = bnnc(&["predict", m, "--fit", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&model, text.replace("normal(0, 1)", "normal(0, 2)")).unwrap();
    let (code, _, err) = bnnc(&["predict", m, "--fit", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0700"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_partial_init_starts_the_rest_at_random_and_names_what_it_cannot_use() {
    // b's lower bound is a: b's unconstrained value depends on a.
    let dir = std::env::temp_dir().join(format!("bnnc-partial-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("m.bnn");
    std::fs::write(
        &model,
        "params {\n  a: real<lower=0>\n  b: real<lower=a>\n  c: real\n}\nmodel {\n  a ~ normal(0, 1)\n  b ~ normal(1, 1)\n  c ~ normal(0, 1)\n}\n",
    )
    .unwrap();
    let run = |init: &str| {
        std::fs::write(dir.join("init.json"), init).unwrap();
        bnnc(&[
            "run",
            model.to_str().unwrap(),
            "--init",
            dir.join("init.json").to_str().unwrap(),
            "--chains",
            "1",
            "--warmup",
            "50",
            "--draws",
            "50",
            "--out",
            dir.join("out").to_str().unwrap(),
        ])
    };
    // Only a and c given: b starts at random, and the run goes on.
    let (code, _, err) = run(r#"{"a": 0.5, "c": -1.0}"#);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("missing"), "{err}");
    // A name that is no parameter is warned about, not silently dropped.
    let (code, _, err) = run(r#"{"a": 0.5, "cc": 1.0}"#);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("`cc`, which is not a parameter"), "{err}");
    // b without a: b's bounds would move with each draw of a.
    let (code, _, err) = run(r#"{"b": 2.0}"#);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("bounds of parameter `b`") && err.contains("`a`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `logp` at a point where the density is not finite points at the operation that made it
/// so: a Cholesky factor of a covariance that is singular at this point (two equal inputs, no
/// jitter).
#[test]
fn logp_points_at_where_the_density_stops_being_finite() {
    let (dir, model) = temp_model(
        "logp-where",
        "data {\n  N: int<lower=1>\n  x: vector[N]\n  y: vector[N]\n}\nparams {\n  eta: vector[N]\n}\nmodel {\n  let L = cholesky(gp_exp_quad_cov(x, 1.0, 1.0))\n  y ~ normal(L @ eta, 1)\n}\n",
    );
    std::fs::write(dir.join("m.json"), r#"{"N": 3, "x": [0.0, 0.0, 1.0], "y": [0.1, 0.2, 0.3]}"#).unwrap();
    std::fs::write(dir.join("p.json"), "[0.0, 0.0, 0.0]").unwrap();
    let (code, _, err) =
        bnnc(&["logp", model.to_str().unwrap(), "--unconstrained", dir.join("p.json").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[E0603]") && err.contains("m.bnn:10:11"), "{err}");
    assert!(err.contains("stops being finite here"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Data observed element by element in a loop are checked against the support at the indices
/// the loop reaches, but not under a branch on the data, which may skip rows coding a missing
/// value (-1 counts here).
#[test]
fn rows_a_branch_skips_are_not_checked_against_the_support() {
    let (dir, model) = temp_model(
        "missing-rows",
        "data {\n  N: int\n  g: array[N] int\n  y: array[N] int\n}\nparams {\n  lam: real<lower=0> ~ exponential(1)\n}\nmodel {\n  for n in 0..N {\n    if g[n] == 1 {\n      y[n] ~ poisson(lam)\n    }\n  }\n}\n",
    );
    std::fs::write(dir.join("m.json"), r#"{"N": 4, "g": [1, 0, 1, 1], "y": [2, -1, 3, 0]}"#).unwrap();
    let (code, _, stderr) = bnnc(&["check", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(dir.join("m.json"), r#"{"N": 4, "g": [1, 1, 1, 1], "y": [2, -1, 3, 0]}"#).unwrap();
    let unguarded = std::fs::read_to_string(&model)
        .unwrap()
        .replace("    if g[n] == 1 {\n      y[n] ~ poisson(lam)\n    }\n", "    y[n] ~ poisson(lam)\n");
    std::fs::write(&model, unguarded).unwrap();
    let (code, _, stderr) = bnnc(&["check", model.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("E0506") && stderr.contains("`y[1]` is -1"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Names the model does not declare are ignored whatever they hold (SPEC §7): a string, an
/// object, a null, a text column of a CSV. A declared name that cannot be read is E0501, at
/// its field.
#[test]
fn undeclared_data_is_ignored_whatever_it_holds() {
    let dir = std::env::temp_dir().join(format!("bnnc-cli-extra-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let model = dir.join("m.bnn");
    std::fs::write(
        &model,
        "data {\n  N: int\n  y: vector[N]\n}\nparams {\n  mu: real ~ normal(0, 1)\n}\nmodel {\n  y ~ normal(mu, 1)\n}\n",
    )
    .expect("model");
    let json = dir.join("d.json");
    std::fs::write(&json, r#"{"N": 3, "y": [0.1, 0.4, -0.2], "note": "split v2", "meta": {"a": 1}, "gone": null}"#)
        .expect("json");
    let csv = dir.join("d.csv");
    std::fs::write(&csv, "y,name\n0.1,ann\n0.4,bob\n-0.2,cy\n").expect("csv");
    for data in [&json, &csv] {
        let out = dir.join("fit");
        let (code, _, err) = bnnc(&[
            "run",
            model.to_str().expect("utf-8"),
            "--data",
            data.to_str().expect("utf-8"),
            "--method",
            "map",
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(code, 0, "{}: {err}", data.display());
    }
    std::fs::write(&csv, "y,name\n0.1,ann\nabc,bob\n-0.2,cy\n").expect("csv");
    let (code, _, err) = bnnc(&["run", model.to_str().expect("utf-8"), "--data", csv.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[E0501]") && err.contains("`abc` in column `y`") && err.contains("d.csv:3:1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `lkj_corr_cholesky_rng(K, eta)` draws a K × K Cholesky factor of an LKJ(eta) correlation
/// matrix: each correlation's marginal is a Beta(eta − 1 + K/2, same) on (−1, 1), whose sd
/// for K = 3 and eta = 2 is 1/√6 ≈ 0.408; the diagonal of L Lᵀ is 1.
#[test]
fn lkj_draws_in_generated_have_the_lkj_marginals() {
    let (dir, model) = temp_model(
        "lkj-rng",
        "data {\n  K: int\n}\nparams {\n  z: real ~ normal(0, 1)\n}\nmodel {\n}\ngenerated {\n  L = lkj_corr_cholesky_rng(K, 2.0)\n  Om = L @ transpose(L)\n}\n",
    );
    std::fs::write(dir.join("m.json"), r#"{"K": 3}"#).expect("data");
    let out = dir.join("fit");
    let (code, _, err) = bnnc(&["run", model.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    let summary = read_json(&out.join("summary.json"));
    let v = &summary["variables"];
    for k in 0..3 {
        assert!((v[format!("Om[{k},{k}]")]["mean"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    }
    for name in ["Om[0,1]", "Om[0,2]", "Om[1,2]"] {
        let (m, sd) = (v[name]["mean"].as_f64().unwrap(), v[name]["sd"].as_f64().unwrap());
        assert!(m.abs() < 0.05 && (sd - 6f64.sqrt().recip()).abs() < 0.03, "{name}: mean {m}, sd {sd}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CSV's matrix columns may be named as CmdStan names them (`x.1`, `x.2`, from 1); an
/// empty data file says it is empty rather than that the first variable is missing.
#[test]
fn csv_reads_cmdstan_column_names_and_an_empty_file_is_named() {
    let dir = std::env::temp_dir().join(format!("bnnc-cli-csvdot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let model = dir.join("m.bnn");
    std::fs::write(
        &model,
        "data {\n  N: int\n  D: int\n  x: matrix[N, D]\n  y: vector[N]\n}\nparams {\n  b: vector[D] ~ normal(0, 1)\n}\nmodel {\n  y ~ normal(x @ b, 1)\n}\n",
    )
    .expect("model");
    let csv = dir.join("d.csv");
    std::fs::write(&csv, "y,x.2,x.1\n1.0,0.5,2.0\n-0.3,1.5,0.1\n0.2,-0.4,0.3\n").expect("csv");
    let out = dir.join("fit");
    let args = [
        "run",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--method",
        "map",
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, _, err) = bnnc(&args);
    assert_eq!(code, 0, "{err}");
    // Column j of x is `x.(j+1)`, whatever the order in the file: the log density at a point
    // is the one of the same data in JSON.
    let json = dir.join("d.json");
    std::fs::write(&json, r#"{"N": 3, "D": 2, "x": [[2.0, 0.5], [0.1, 1.5], [0.3, -0.4]], "y": [1.0, -0.3, 0.2]}"#)
        .expect("json");
    std::fs::write(dir.join("u.json"), "[1.0, 0.0]").expect("point");
    let logp = |data: &std::path::Path| {
        let u = dir.join("u.json");
        let (code, out, err) = bnnc(&[
            "logp",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--unconstrained",
            u.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).expect("json")["logp"].as_f64().expect("logp")
    };
    assert_eq!(logp(&csv), logp(&json));
    std::fs::write(&csv, "").expect("empty");
    let (code, _, err) = bnnc(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[E0501]") && err.contains("is empty"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
