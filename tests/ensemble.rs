//! Deep ensembles (`run --method ensemble`): members trained on minibatches with early
//! stopping, written as draws that `predict` mixes equally.

#[path = "common/cli.rs"]
mod common_cli;
use common_cli::bnnc;

fn draws(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("draws-1.csv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn an_ensemble_of_the_yacht_network_predicts_calibrated_intervals_and_does_not_depend_on_threads() {
    let dir = std::env::temp_dir().join(format!("bnnc-ensemble-{}", std::process::id()));
    let fit = |threads: &str| {
        let out = dir.join(format!("fit-{threads}"));
        let (code, stdout, stderr) = bnnc(&[
            "run",
            "examples/bnn_regression.bnn",
            "--method",
            "ensemble",
            "--members",
            "3",
            "--threads",
            threads,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        assert!(stderr.contains("3 members"), "{stderr}");
        out
    };
    let (one, two) = (fit("1"), fit("2"));
    let (a, b) = (draws(&one), draws(&two));
    // A header and one row per member, the same whatever the threads.
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(one.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["method"], "ensemble");
    assert_eq!(summary["ensemble"]["held_out_rows"], 28);
    let (code, _, stderr) = bnnc(&[
        "predict",
        "examples/bnn_regression.bnn",
        "--fit",
        one.to_str().unwrap(),
        "--data",
        "examples/bnn_regression_test.json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let pred: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(one.join("predictive.json")).unwrap()).unwrap();
    assert_eq!(pred["draws"], 3);
    let m = &pred["observed"]["y"]["metrics"];
    let coverage = m["coverage90"].as_f64().unwrap();
    assert!((0.8..=0.97).contains(&coverage), "90% coverage {coverage}");
    assert!(m["rmse"].as_f64().unwrap() < 0.1, "{m}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn options_of_an_ensemble_are_refused_elsewhere() {
    let (code, _, stderr) = bnnc(&["run", "examples/eight_schools.bnn", "--members", "3"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--members does not apply to --method nuts"), "{stderr}");
}

#[test]
fn map_on_minibatches_stops_on_held_out_rows_and_predict_reads_its_mode() {
    let dir = std::env::temp_dir().join(format!("bnnc-map-batches-{}", std::process::id()));
    let (code, stdout, stderr) = bnnc(&[
        "run",
        "examples/bnn_regression.bnn",
        "--method",
        "map",
        "--batch-size",
        "32",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("Estimate") && stderr.contains("28 held out"), "{stdout}\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["method"], "map");
    assert_eq!(summary["optimizer"]["batch_size"], 32);
    // Held-out rows choose the epoch kept, before the last.
    let best = summary["optimizer"]["best_epoch"].as_u64().unwrap();
    assert!(best >= 1 && best <= summary["optimizer"]["epochs"].as_u64().unwrap());
    assert_eq!(draws(&dir).len(), 2);
    let (code, _, stderr) = bnnc(&[
        "predict",
        "examples/bnn_regression.bnn",
        "--fit",
        dir.to_str().unwrap(),
        "--data",
        "examples/bnn_regression_test.json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
