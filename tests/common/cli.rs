//! Running the `bnnc` binary as a user does, from the repository's root.

/// `bnnc ARGS...`: the exit code, standard output and standard error.
pub fn bnnc(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bnnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the bnnc binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `bnnc predict MODEL --fit DIR --data TEST`, which must succeed: its `predictive.json`.
#[allow(dead_code)]
pub fn predict_fit(model: &str, fit: &std::path::Path, test: &str) -> serde_json::Value {
    let (code, _, stderr) = bnnc(&["predict", model, "--fit", fit.to_str().unwrap(), "--data", test]);
    assert_eq!(code, 0, "{stderr}");
    read_json(&fit.join("predictive.json"))
}

/// A JSON file.
#[allow(dead_code)]
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A fresh directory under the system's temporary one, `bnnc-TAG-PID`, holding `m.bnn` with
/// `model`: (the directory, the model's path).
#[allow(dead_code)]
pub fn temp_model(tag: &str, model: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("bnnc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.bnn");
    std::fs::write(&path, model).unwrap();
    (dir, path)
}

/// The mean predictive sd over the rows of the observed variable `y` in a `predictive.json`.
#[allow(dead_code)]
pub fn mean_sd(pred: &serde_json::Value) -> f64 {
    let rows = pred["observed"]["y"]["rows"].as_array().unwrap();
    rows.iter().map(|r| r["sd"].as_f64().unwrap()).sum::<f64>() / rows.len() as f64
}
