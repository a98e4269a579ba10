//! The correctness check of the sampler: every posterior in data/posteriordb, sampled
//! with 4 chains of 1000 draws, matches its reference by the rule in
//! data/posteriordb/README.md. Slow (minutes per model on the interpreter), so ignored
//! in the default run:
//!
//!     cargo test --release --test posteriordb -- --ignored --nocapture
//!
//! One model: `BNNC_POSTERIOR=arK-arK cargo test --release --test posteriordb -- --ignored`.
//! Another seed than the default 20261122: `BNNC_SEED=7`.
//!
//! Every model runs with the defaults except two. Eight schools runs at `--adapt-delta 0.99` (what the
//! divergence warning tells a user to try). Its non-centred posterior has a Cauchy tail in τ
//! where the curvature grows like τ², and at the default 0.8 a few of its 4000 transitions
//! diverge for bnnc and nuts-rs alike (nuts-rs: 19 of seeds 1–20); the folder's rule allows
//! none. At 0.99 seeds 1–20 and this test's seed have none (0.95 leaves one in 20).
//!
//! The kidiq interaction model runs with `--metric dense` (what the R-hat warning suggests for
//! correlated parameters): its interaction term is strongly correlated with both main effects,
//! and with the diagonal metric its minimum bulk ESS is 500–600 of 4000 draws, so R-hat
//! crosses 1.01 at 2 or 3 of seeds 1–12 (nuts-rs's ESS on it is no higher). The dense metric
//! gives about 1,800 and R-hat at most 1.004 at the seeds tried.

use std::path::Path;
use std::process::Command;

fn matches(summary: &serde_json::Value, reference: &serde_json::Value) -> Vec<String> {
    let mut bad = Vec::new();
    let vars = reference["variables"].as_object().expect("reference variables");
    for (name, r) in vars {
        let s = &summary["variables"][name];
        if s.is_null() {
            bad.push(format!("{name}: missing"));
            continue;
        }
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let tol = 4.0 * (f(s, "mcse").powi(2) + f(r, "sd").powi(2) / 10000.0).sqrt();
        if (f(s, "mean") - f(r, "mean")).abs() > tol {
            bad.push(format!("{name}: mean {} vs {} (tolerance {tol:.3e})", f(s, "mean"), f(r, "mean")));
        }
        if f(s, "ess_bulk") >= 400.0 && (f(s, "sd") / f(r, "sd") - 1.0).abs() > 0.1 {
            bad.push(format!("{name}: sd {} vs {}", f(s, "sd"), f(r, "sd")));
        }
        if !(f(s, "rhat") < 1.01) {
            bad.push(format!("{name}: R-hat {}", f(s, "rhat")));
        }
    }
    let div = summary["sampler"]["divergences"].as_u64().unwrap_or(u64::MAX);
    if div > 0 {
        bad.push(format!("{div} divergences"));
    }
    bad
}

#[test]
#[ignore = "samples all 13 posteriors: minutes each; run before changing the sampler"]
fn every_posterior_matches_its_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/posteriordb");
    let only = std::env::var("BNNC_POSTERIOR").ok();
    let seed = std::env::var("BNNC_SEED").unwrap_or_else(|_| "20261122".into());
    let mut failures = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .expect("posteriordb")
        .flatten()
        .filter(|e| e.path().join("model.bnn").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        let dir = root.join(&name);
        let out = std::env::temp_dir().join(format!("bnnc-pdb-{name}"));
        let t = std::time::Instant::now();
        let settings: &[&str] = match name.as_str() {
            "eight_schools-eight_schools_noncentered" => &["--adapt-delta", "0.99"],
            "kidiq-kidscore_interaction" => &["--metric", "dense"],
            _ => &[],
        };
        let status = Command::new(env!("CARGO_BIN_EXE_bnnc"))
            .args([
                "run",
                dir.join("model.bnn").to_str().unwrap_or_default(),
                "--data",
                dir.join("data.json").to_str().unwrap_or_default(),
                "--seed",
                &seed,
                "--out",
                out.to_str().unwrap_or_default(),
            ])
            .args(settings)
            .output()
            .expect("bnnc runs");
        let summary: serde_json::Value = std::fs::read_to_string(out.join("summary.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).expect("reference"))
                .expect("JSON");
        let bad = if status.status.success() {
            matches(&summary, &reference)
        } else {
            vec![format!("exit {:?}: {}", status.status.code(), String::from_utf8_lossy(&status.stderr))]
        };
        println!(
            "{name}: {} in {:.0} s",
            if bad.is_empty() { "matches" } else { "DOES NOT MATCH" },
            t.elapsed().as_secs_f64()
        );
        if !bad.is_empty() {
            failures.push(format!("{name}: {}", bad.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
