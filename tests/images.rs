//! Images end to end, as a user runs them: the convolutional digits network trained with
//! `map --batch-size` and predicted on the held-out digits; a fractal network trained with
//! drop-path and predicted with all its columns and with each column alone; OOD scores.

#[path = "common/cli.rs"]
mod common_cli;
use common_cli::{bnnc, predict_fit, read_json};

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("bnnc-images-{name}-{}", std::process::id()))
}

#[test]
fn the_digits_cnn_classifies_held_out_digits() {
    let dir = tmp("cnn");
    let (code, _, err) = bnnc(&[
        "run",
        "examples/digits_cnn.bnn",
        "--method",
        "map",
        "--batch-size",
        "64",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let pred = predict_fit("examples/digits_cnn.bnn", &dir, "examples/digits_test.npz");
    let m = &pred["observed"]["y"]["metrics"];
    assert!(m["accuracy"].as_f64().unwrap() >= 0.97, "{m}");
    assert!(m["ece"].as_f64().unwrap() <= 0.05, "{m}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A depth-2 fractal (two columns) trained briefly with local and global drop-path: each
/// column alone predicts well above chance, the joined network too, and a third column is
/// refused with its code.
#[test]
fn a_fractal_trained_with_drop_path_predicts_with_each_column_alone() {
    let dir = tmp("fractal");
    let model = dir.join("fractal.bnn");
    std::fs::create_dir_all(&dir).unwrap();
    let src = std::fs::read_to_string("examples/digits_fractal.bnn")
        .unwrap()
        .replace("fractal_conv(x / 16.0, 3, 16", "fractal_conv(x / 16.0, 2, 8");
    std::fs::write(&model, src).unwrap();
    std::fs::copy("examples/digits_fractal.npz", dir.join("fractal.npz")).unwrap();
    let (code, _, err) = bnnc(&[
        "run",
        model.to_str().unwrap(),
        "--method",
        "map",
        "--batch-size",
        "64",
        "--epochs",
        "15",
        "--drop-path",
        "0.15,0.5",
        "--out",
        dir.join("fit").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let fit = dir.join("fit");
    let acc = |column: Option<&str>| {
        let mut args = vec!["predict", model.to_str().unwrap(), "--fit", fit.to_str().unwrap()];
        args.extend(["--data", "examples/digits_test.npz"]);
        if let Some(c) = column {
            args.extend(["--column", c]);
        }
        let (code, _, err) = bnnc(&args);
        assert_eq!(code, 0, "{err}");
        read_json(&fit.join("predictive.json"))["observed"]["y"]["metrics"]["accuracy"].as_f64().unwrap()
    };
    let (all, deep, shallow) = (acc(None), acc(Some("0")), acc(Some("1")));
    assert!(all >= 0.9 && deep >= 0.85 && shallow >= 0.85, "{all} {deep} {shallow}");
    let (code, _, err) = bnnc(&[
        "predict",
        model.to_str().unwrap(),
        "--fit",
        fit.to_str().unwrap(),
        "--data",
        "examples/digits_test.npz",
        "--column",
        "2",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("E0703") && err.contains("2 columns"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
