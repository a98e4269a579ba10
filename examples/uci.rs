//! The UCI regression benchmark: one or more `--method`s over the nine sets of `data/uci/` and
//! all their standard splits, with the protocol of `data/uci/README.md` (one hidden layer of
//! 50 ReLU units, 100 for protein; inputs and target standardised on the training part;
//! metrics on the test part in the original units; mean ± standard error over splits).
//! Every method tunes itself only on the training part (its defaults hold out a validation
//! part of it); the test rows are read only by `bnnc predict`. Run from the repository root:
//!
//! A method's name followed by `-hetero` (`ensemble-hetero`) runs it on the heteroscedastic
//! network instead, whose output layer gives each row its own noise scale
//! (`y ~ normal(col(o, 0), softplus(col(o, 1)) + floor)`, as Lakshminarayanan et al. 2017;
//! the floor is the rounding error of the target's recorded steps, at least 0.001).
//!
//! ```console
//! cargo run --release --example uci -- --methods ensemble,mc-dropout
//! cargo run --release --example uci -- --methods nuts --sets yacht --run-args "--chains 2 --warmup 500 --draws 500"
//! ```
//!
//! Each split runs as its own process (`--jobs`, default: the number of cores) and leaves
//! `OUT/<method>/<set>/<split>/result.json`; a split whose result exists is not run again, so
//! an interrupted benchmark continues where it stopped. The tables (test log-likelihood,
//! RMSE, 90% interval coverage and seconds per split, beside the published numbers) are
//! printed and written to `OUT/table.md` and `OUT/results.json` (default OUT: `target/uci`).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

/// The sets, their short names, and the published test RMSE and log-likelihood (PBP,
/// Hernández-Lobato & Adams 2015; MC Dropout, Gal & Ghahramani 2016; Deep Ensembles,
/// Lakshminarayanan et al. 2017), as tabulated in `data/uci/README.md`.
struct Set {
    dir: &'static str,
    short: &'static str,
    pbp: (f64, f64),
    dropout: (f64, f64),
    ensembles: (f64, f64),
}

const SETS: [Set; 9] = [
    Set { dir: "bostonHousing", short: "boston", pbp: (3.01, -2.57), dropout: (2.97, -2.46), ensembles: (3.28, -2.41) },
    Set { dir: "concrete", short: "concrete", pbp: (5.67, -3.16), dropout: (5.23, -3.04), ensembles: (6.03, -3.06) },
    Set { dir: "energy", short: "energy", pbp: (1.80, -2.04), dropout: (1.66, -1.99), ensembles: (2.09, -1.38) },
    Set { dir: "kin8nm", short: "kin8nm", pbp: (0.10, 0.90), dropout: (0.10, 0.95), ensembles: (0.09, 1.20) },
    Set {
        dir: "naval-propulsion-plant",
        short: "naval",
        pbp: (0.01, 3.73),
        dropout: (0.01, 3.80),
        ensembles: (0.00, 5.63),
    },
    Set { dir: "power-plant", short: "power", pbp: (4.12, -2.84), dropout: (4.02, -2.80), ensembles: (4.11, -2.79) },
    Set {
        dir: "protein-tertiary-structure",
        short: "protein",
        pbp: (4.73, -2.97),
        dropout: (4.36, -2.89),
        ensembles: (4.71, -2.83),
    },
    Set {
        dir: "wine-quality-red",
        short: "wine",
        pbp: (0.64, -0.97),
        dropout: (0.62, -0.93),
        ensembles: (0.64, -0.94),
    },
    Set { dir: "yacht", short: "yacht", pbp: (1.02, -1.63), dropout: (1.11, -1.55), ensembles: (1.58, -1.18) },
];

/// The protocol's network: one hidden layer of ReLU units, a Gaussian likelihood whose scale
/// is a parameter, normal(0, 1) priors on every weight (inputs and target are standardised).
/// For `mc-dropout` the hidden layer is followed by `dropout(h, 0.05)`, the middle of the
/// rates Gal & Ghahramani (2016) searched. `hetero`: the output layer gives each row its mean
/// and, through a softplus, its noise scale, kept above `floor`.
fn model(hidden: usize, method: &str, hetero: bool, floor: f64) -> String {
    let h = if method == "mc-dropout" {
        format!("dropout(dense(x, {hidden}, act = relu, prior = normal(0, 1)), 0.05)")
    } else {
        format!("dense(x, {hidden}, act = relu, prior = normal(0, 1))")
    };
    let data = "data {\n  N: int<lower=1>\n  D: int<lower=1>\n  x: matrix[N, D]\n  y: vector[N]\n}\n";
    if hetero {
        format!(
            "{data}model {{\n  let h = {h}\n  let o = dense(h, 2, prior = normal(0, 1))\n\
             \x20 y ~ normal(col(o, 0), softplus(col(o, 1)) + {floor:.6})\n}}\n"
        )
    } else {
        format!(
            "{data}params {{\n  sigma: real<lower=0> ~ normal(0, 1)\n}}\n\
             model {{\n  let h = {h}\n  let f = dense(h, 1, prior = normal(0, 1))\n  y ~ normal(col(f, 0), sigma)\n}}\n"
        )
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Options {
    methods: Vec<String>,
    sets: Vec<&'static Set>,
    splits: Option<usize>,
    jobs: usize,
    out: PathBuf,
    data: PathBuf,
    run_args: Vec<String>,
    /// Only tabulate the results there are.
    table_only: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = if args.first().map(String::as_str) == Some("--split") {
        match child(&args[1..]) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    } else {
        match options(&args).and_then(|o| parent(&o)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        }
    };
    std::process::exit(code);
}

fn options(args: &[String]) -> Res<Options> {
    let mut o = Options {
        methods: vec!["ensemble".into()],
        sets: SETS.iter().collect(),
        splits: None,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        out: PathBuf::from("target/uci"),
        data: PathBuf::from("data/uci"),
        run_args: vec![],
        table_only: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--methods" => o.methods = value()?.split(',').map(str::to_string).collect(),
            "--sets" => {
                o.sets = value()?
                    .split(',')
                    .map(|name| {
                        SETS.iter()
                            .find(|s| s.short == name || s.dir == name)
                            .ok_or_else(|| format!("unknown set `{name}` (one of: boston, concrete, energy, kin8nm, naval, power, protein, wine, yacht)"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--splits" => o.splits = Some(value()?.parse()?),
            "--jobs" => o.jobs = value()?.parse::<usize>()?.max(1),
            "--out" => o.out = PathBuf::from(value()?),
            "--data" => o.data = PathBuf::from(value()?),
            "--run-args" => o.run_args = value()?.split_whitespace().map(str::to_string).collect(),
            "--table-only" => o.table_only = true,
            "-h" | "--help" => {
                println!(
                    "usage: uci [--methods m1,m2] [--sets s1,s2] [--splits K] [--jobs J] [--out DIR] [--data DIR] [--run-args \"...\"] [--table-only]"
                );
                std::process::exit(0);
            }
            _ => return Err(format!("unknown option `{flag}` (see --help)").into()),
        }
    }
    Ok(o)
}

fn read_numbers(path: &Path) -> Res<Vec<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.split_whitespace().map(str::parse).collect::<Result<_, _>>()?)
}

fn n_splits(data: &Path, set: &Set) -> Res<usize> {
    Ok(read_numbers(&data.join(set.dir).join("data/n_splits.txt"))?[0] as usize)
}

/// Runs every (method, set, split) not yet done, `jobs` processes at a time, then tabulates.
fn parent(o: &Options) -> Res<()> {
    let mut tasks = vec![];
    for m in &o.methods {
        for s in &o.sets {
            let n = n_splits(&o.data, s)?;
            for k in 0..o.splits.map_or(n, |l| l.min(n)) {
                tasks.push((m.clone(), s.short, k));
            }
        }
    }
    let todo: Vec<_> =
        tasks.iter().filter(|(m, s, k)| !o.table_only && !result_path(&o.out, m, s, *k).exists()).cloned().collect();
    eprintln!("uci: {} splits, {} to run, {} at a time", tasks.len(), todo.len(), o.jobs);
    let queue = Mutex::new(todo.into_iter());
    let done = Mutex::new(0usize);
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..o.jobs {
            scope.spawn(|| loop {
                let Some((m, s, k)) = queue.lock().unwrap().next() else { break };
                let dir = result_path(&o.out, &m, s, k).parent().unwrap().to_path_buf();
                let _ = std::fs::create_dir_all(&dir);
                let log = std::fs::File::create(dir.join("log.txt"));
                let mut cmd = Command::new(&exe);
                cmd.args(["--split", &m, s, &k.to_string(), &o.out.to_string_lossy(), &o.data.to_string_lossy()])
                    .args(&o.run_args)
                    .stdin(Stdio::null());
                if let Ok(log) = log {
                    if let Ok(err) = log.try_clone() {
                        cmd.stdout(log).stderr(err);
                    }
                }
                let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
                let mut d = done.lock().unwrap();
                *d += 1;
                eprintln!(
                    "uci: [{:>4.0} s] {m} {s} split {k}: {}",
                    start.elapsed().as_secs_f64(),
                    if ok { "done".to_string() } else { format!("failed (see {})", dir.join("log.txt").display()) }
                );
            });
        }
    });
    tabulate(o, &tasks)
}

fn result_path(out: &Path, method: &str, set: &str, split: usize) -> PathBuf {
    out.join(method).join(set).join(split.to_string()).join("result.json")
}

/// One split: write its standardised training and test data, `bnnc run` on the training part,
/// `bnnc predict` on the test part, and the metrics back in the target's original units.
fn child(args: &[String]) -> Res<()> {
    let [label, short, split, out, data, run_args @ ..] = args else { return Err("bad --split arguments".into()) };
    let (method, hetero) = match label.strip_suffix("-hetero") {
        Some(m) => (m.to_string(), true),
        None => (label.clone(), false),
    };
    let method = &method;
    let set = SETS.iter().find(|s| s.short == short).ok_or("unknown set")?;
    let split: usize = split.parse()?;
    let (out, data) = (PathBuf::from(out), PathBuf::from(data));
    let dir = result_path(&out, label, short, split).parent().unwrap().to_path_buf();
    let d = data.join(set.dir).join("data");
    let table = std::fs::read_to_string(d.join("data.txt"))?;
    let rows: Vec<Vec<f64>> = table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::parse).collect::<Result<_, _>>())
        .collect::<Result<_, _>>()?;
    let features: Vec<usize> = read_numbers(&d.join("index_features.txt"))?.iter().map(|&v| v as usize).collect();
    let target = read_numbers(&d.join("index_target.txt"))?[0] as usize;
    let index = |name: &str| -> Res<Vec<usize>> {
        Ok(read_numbers(&d.join(format!("index_{name}_{split}.txt")))?.iter().map(|&v| v as usize).collect())
    };
    let (train, test) = (index("train")?, index("test")?);
    let hidden = read_numbers(&d.join("n_hidden.txt"))?[0] as usize;

    // Standardise on the training rows (a constant column keeps sd 1).
    let stats = |col: usize| {
        let v: Vec<f64> = train.iter().map(|&i| rows[i][col]).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        (mean, if sd > 1e-12 { sd } else { 1.0 })
    };
    let xs: Vec<(f64, f64)> = features.iter().map(|&c| stats(c)).collect();
    let (my, sy) = stats(target);
    let write = |name: &str, idx: &[usize]| -> Res<PathBuf> {
        let x: Vec<Vec<f64>> =
            idx.iter().map(|&i| features.iter().zip(&xs).map(|(&c, (m, s))| (rows[i][c] - m) / s).collect()).collect();
        let y: Vec<f64> = idx.iter().map(|&i| (rows[i][target] - my) / sy).collect();
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, json!({"N": idx.len(), "D": features.len(), "x": x, "y": y}).to_string())?;
        Ok(path)
    };
    let (train_json, test_json) = (write("train", &train)?, write("test", &test)?);
    let model_path = dir.join("model.bnn");
    // A target recorded in steps of Δ (wine's integer grades) carries at least the rounding
    // error's sd, Δ/√12: the heteroscedastic head's scale is kept above it (and above 0.001,
    // in standardised units), so that no row's predicted noise collapses onto a grade.
    let mut ys: Vec<f64> = train.iter().map(|&i| rows[i][target]).collect();
    ys.sort_by(f64::total_cmp);
    ys.dedup();
    let step = ys.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    let floor = if step.is_finite() { (step / 12f64.sqrt() / sy).max(0.001) } else { 0.001 };
    std::fs::write(&model_path, model(hidden, method, hetero, floor))?;
    let fit = dir.join("fit");

    let mut run: Vec<String> = ["bnnc", "run"].map(String::from).to_vec();
    run.extend([
        model_path.to_string_lossy().into_owned(),
        "--data".into(),
        train_json.to_string_lossy().into_owned(),
        "--method".into(),
        method.clone(),
        "--seed".into(),
        (split + 1).to_string(),
        "--out".into(),
        fit.to_string_lossy().into_owned(),
    ]);
    // `map` is the network's minibatch mode (stopped early on held-out rows): on all rows
    // L-BFGS drives the noise scale to 0.
    if method == "map" && !run_args.iter().any(|a| a == "--batch-size") {
        run.extend(["--batch-size".into(), "128".into()]);
    }
    // The splits are the parallel unit: methods with threads of their own use one.
    if matches!(method.as_str(), "nuts" | "hmc" | "ensemble") && !run_args.iter().any(|a| a == "--threads") {
        run.extend(["--threads".into(), "1".into()]);
    }
    run.extend(run_args.iter().cloned());
    let t = Instant::now();
    if bnnc::cli::main_with(run.iter().map(Into::into).collect()) != 0 {
        return Err(format!("bnnc {} failed", run[1..].join(" ")).into());
    }
    let seconds = t.elapsed().as_secs_f64();
    let predict = [
        "bnnc".to_string(),
        "predict".into(),
        model_path.to_string_lossy().into_owned(),
        "--fit".into(),
        fit.to_string_lossy().into_owned(),
        "--data".into(),
        test_json.to_string_lossy().into_owned(),
    ];
    if bnnc::cli::main_with(predict.iter().map(Into::into).collect()) != 0 {
        return Err("bnnc predict failed".into());
    }
    let p: Value = serde_json::from_str(&std::fs::read_to_string(fit.join("predictive.json"))?)?;
    let m = &p["observed"]["y"]["metrics"];
    let num = |k: &str| m[k].as_f64().ok_or_else(|| format!("predictive.json has no metric {k}"));
    // Back to the original units: y = my + sy * z, so errors scale by sy and densities by 1/sy.
    let result = json!({
        "method": label, "set": short, "split": split,
        "rmse": num("rmse")? * sy,
        "log_lik": num("log_lik")? - sy.ln(),
        "coverage90": num("coverage90")?,
        "seconds": seconds,
    });
    // Draws of large fits are not kept; the summary and predictive are.
    for f in ["draws.csv", "draws.npz"] {
        let _ = std::fs::remove_file(fit.join(f));
    }
    let _ = std::fs::remove_file(&train_json);
    let _ = std::fs::remove_file(&test_json);
    std::fs::write(result_path(&out, label, short, split), result.to_string())?;
    Ok(())
}

/// Mean and standard error.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, (var / n).sqrt())
}

/// The tuned MC Dropout test log-likelihoods and RMSEs the data's `results/` folders hold.
fn tuned_dropout(data: &Path, set: &Set) -> Option<((f64, f64), (f64, f64))> {
    let r = data.join(set.dir).join("results");
    let ll = read_numbers(&r.join("test_ll_100_xepochs_1_hidden_layers.txt")).ok()?;
    // The RMSE of the MC-averaged prediction, the one comparable with a predictive mean.
    let rmse = read_numbers(&r.join("test_MC_rmse_100_xepochs_1_hidden_layers.txt")).ok()?;
    Some((mean_se(&ll), mean_se(&rmse)))
}

fn tabulate(o: &Options, tasks: &[(String, &str, usize)]) -> Res<()> {
    let mut results: Vec<Value> = vec![];
    for (m, s, k) in tasks {
        if let Ok(text) = std::fs::read_to_string(result_path(&o.out, m, s, *k)) {
            results.push(serde_json::from_str(&text)?);
        }
    }
    let pick = |m: &str, s: &str, key: &str| -> Vec<f64> {
        results.iter().filter(|r| r["method"] == m && r["set"] == s).filter_map(|r| r[key].as_f64()).collect()
    };
    let cell = |v: &[f64], digits: usize, set: &Set| {
        if v.is_empty() {
            "—".to_string()
        } else {
            let (m, se) = mean_se(v);
            let all = n_splits(&o.data, set).unwrap_or(v.len());
            let part = match v.len() {
                n if n >= all => String::new(),
                1 => " (1 split)".to_string(),
                n => format!(" ({n} splits)"),
            };
            format!("{m:.digits$} ± {se:.digits$}{part}")
        }
    };
    let mut md = String::new();
    let mut summary = vec![];
    // One table per metric: a row per method (the published ones first), a column per set.
    let header = |md: &mut String| {
        *md += "| method |";
        for s in &o.sets {
            *md += &format!(" {} |", s.short);
        }
        *md += "\n|---|";
        *md += &"---|".repeat(o.sets.len());
        *md += "\n";
    };
    for (title, key, digits) in [("Test log-likelihood", "log_lik", 2), ("Test RMSE", "rmse", 2)] {
        let ll = key == "log_lik";
        md += &format!("#### {title} (mean ± standard error over splits)\n\n");
        header(&mut md);
        let published: [(&str, fn(&Set) -> (f64, f64)); 3] =
            [("PBP", |s| s.pbp), ("MC Dropout (Gal 2016)", |s| s.dropout), ("Deep Ensembles", |s| s.ensembles)];
        for (name, get) in published {
            md += &format!("| {name} |");
            for s in &o.sets {
                let p = get(s);
                md += &format!(" {:.2} |", if ll { p.1 } else { p.0 });
            }
            md += "\n";
        }
        md += "| MC Dropout, tuned (`results/`) |";
        for s in &o.sets {
            let tuned = tuned_dropout(&o.data, s).map_or("—".to_string(), |(l, r)| {
                let (m, se) = if ll { l } else { r };
                format!("{m:.digits$} ± {se:.digits$}")
            });
            md += &format!(" {tuned} |");
        }
        md += "\n";
        for m in &o.methods {
            md += &format!("| bnnc `{m}` |");
            for s in &o.sets {
                md += &format!(" {} |", cell(&pick(m, s.short, key), digits, s));
            }
            md += "\n";
        }
        md += "\n";
    }
    for (title, key, digits) in [("90% interval coverage", "coverage90", 2), ("Seconds per split (run)", "seconds", 1)]
    {
        md += &format!("#### {title} (mean over splits)\n\n");
        header(&mut md);
        for m in &o.methods {
            md += &format!("| bnnc `{m}` |");
            for s in &o.sets {
                let v = pick(m, s.short, key);
                let c = if v.is_empty() { "—".into() } else { format!("{:.digits$}", mean_se(&v).0) };
                md += &format!(" {c} |");
            }
            md += "\n";
        }
        md += "\n";
    }
    // The yardstick: the best bnnc method's mean test log-likelihood per set (among those
    // run on all its splits) against MC Dropout (Gal 2016) and Deep Ensembles.
    let (mut beat_dropout, mut beat_ensembles, mut counted) = (0, 0, 0);
    for s in &o.sets {
        let best = o
            .methods
            .iter()
            .filter_map(|m| {
                // Only methods run on every split of the set.
                let v = pick(m, s.short, "log_lik");
                (!v.is_empty() && v.len() == n_splits(&o.data, s).unwrap_or(0)).then(|| mean_se(&v).0)
            })
            .fold(f64::NEG_INFINITY, f64::max);
        if best.is_finite() {
            counted += 1;
            beat_dropout += usize::from(best > s.dropout.1);
            beat_ensembles += usize::from(best > s.ensembles.1);
            summary.push(json!({"set": s.short, "best_log_lik": best}));
        }
    }
    md += &format!(
        "\nBest bnnc method's test log-likelihood above MC Dropout (Gal 2016) on {beat_dropout}/{counted} sets, above Deep Ensembles on {beat_ensembles}/{counted}.\n"
    );
    std::fs::create_dir_all(&o.out)?;
    std::fs::write(o.out.join("table.md"), &md)?;
    std::fs::write(
        o.out.join("results.json"),
        serde_json::to_string_pretty(&json!({"splits": results, "best": summary}))?,
    )?;
    print!("{md}");
    Ok(())
}
