//! The `bnnc` command line as a user runs it: exit codes, emitted stages, JSON diagnostics.

use std::process::Command;

fn bnnc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bnnc"))
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
}

#[test]
fn emit_stages() {
    let (code, out, err) = bnnc(&["check", "examples/eight_schools.bnn", "--emit", "tokens"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Data") && out.contains("<end of statement>"), "{out}");
    let (code, out, _) = bnnc(&["check", "examples/eight_schools.bnn", "--emit", "ast"]);
    assert_eq!(code, 0);
    assert!(out.contains("tau: real<lower=0> ~ cauchy(0, 5)"), "{out}");
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
