//! The REPL as a script: every `tests/repl/*.session` (input lines) is run with `bnnc repl
//! tests/repl/linreg.bnn --fit tests/ui/fits/linreg`, standard input not a terminal, and its
//! output (commands echoed, errors interleaved) compared with the sibling `.transcript`.
//! `BLESS=1 cargo test --test repl` rewrites the transcripts (read the diff first). Also:
//! expressions against the draws they are computed from.

use std::path::Path;
use std::process::{Command, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run a session with `input` on standard input; standard output and error merged in order.
fn session(args: &[&str], input: &str) -> (i32, String) {
    let mut cmd = String::from("\"$BNNC\" repl");
    for a in args {
        cmd.push_str(&format!(" '{a}'"));
    }
    cmd.push_str(" 2>&1");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .env("BNNC", env!("CARGO_BIN_EXE_bnnc"))
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bnnc runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write");
    }
    let out = child.wait_with_output().expect("finishes");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn sessions_match_their_transcripts() {
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let mut names: Vec<String> = std::fs::read_dir(root().join("tests/repl"))
        .expect("tests/repl")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".session"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in names {
        let input = std::fs::read_to_string(root().join("tests/repl").join(&name)).expect("session");
        let (code, out) = session(&["tests/repl/linreg.bnn", "--fit", "tests/ui/fits/linreg"], &input);
        assert_eq!(code, 0, "{name}: the session ends with status 0 even after errors\n{out}");
        assert!(!out.contains("panicked"), "{name}:\n{out}");
        let expected = root().join("tests/repl").join(name.replace(".session", ".transcript"));
        if bless {
            std::fs::write(&expected, &out).expect("write");
        } else {
            let want =
                std::fs::read_to_string(&expected).unwrap_or_else(|_| panic!("no {} (BLESS=1)", expected.display()));
            assert_eq!(out, want, "{name}: output differs from {}", expected.display());
        }
    }
}

/// `theta[2] - theta[0]`, `tau > 5` and `theta - y` (a parameter of the model's declared
/// size `J` with data of that size) on a real fit equal what the draws give.
#[test]
fn expressions_are_computed_at_every_draw() {
    let dir = std::env::temp_dir().join(format!("bnnc-repl-{}", std::process::id()));
    let d = dir.to_str().expect("utf-8");
    let (code, out) = session(
        &["examples/eight_schools.bnn"],
        &format!(":run --chains 2 --warmup 200 --draws 200 --out {d}\ntheta[2] - theta[0]\ntau > 5\ntheta - y\n"),
    );
    assert_eq!(code, 0, "{out}");
    let (cols, rows) = draws(&dir, 2);
    let col = |n: &str| cols.iter().position(|c| c == n).expect("column");
    let (t0, t2, tau) = (col("theta.1"), col("theta.3"), col("tau"));
    let n = rows.len() as f64;
    let contrast = rows.iter().map(|r| r[t2] - r[t0]).sum::<f64>() / n;
    let p = rows.iter().filter(|r| r[tau] > 5.0).count() as f64 / n;
    let mean_of = |label: &str| mean_of(&out, label);
    assert!((mean_of("theta[2] - theta[0]") - contrast).abs() < 5e-4 * contrast.abs().max(1.0), "{out}");
    assert!((mean_of("tau > 5") - p).abs() < 1e-3, "{out}");
    // y[0] is 28 in the example's data.
    let residual = rows.iter().map(|r| r[t0] - 28.0).sum::<f64>() / n;
    assert!((mean_of("(theta - y)[0]") - residual).abs() < 5e-4 * residual.abs().max(1.0), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a terminal: a prompt, Tab completes a variable name, the line is edited before it is
/// run, history is written to the data directory, and Ctrl-D leaves.
#[test]
fn line_editing_and_completion_on_a_terminal() {
    let data = std::env::temp_dir().join(format!("bnnc-repl-pty-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bnnc"));
    cmd.args(["repl", "tests/repl/linreg.bnn", "--fit", "tests/ui/fits/linreg"])
        .current_dir(root())
        .env("XDG_DATA_HOME", &data)
        .env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("a pseudo-terminal");
    p.exp_string("bnnc> ").expect("prompt");
    // `sig` + Tab completes to `sigma`; then the rest of the line.
    p.send("sig").expect("send");
    p.send("\t").expect("tab");
    p.flush().expect("flush");
    p.exp_string("sigma").expect("completed");
    p.send_line(" > 0.5").expect("line");
    p.exp_string("sigma > 0.5      0.500").expect("evaluated the completed line");
    p.exp_string("bnnc> ").expect("prompt again");
    // A command, completed from `:su`.
    p.send(":su\t").expect("send");
    p.flush().expect("flush");
    p.exp_string(":summary").expect("completed command");
    p.send_line(" a").expect("line");
    p.exp_string("R_hat").expect("summary");
    p.exp_string("bnnc> ").expect("prompt");
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("leaves");
    let history = std::fs::read_to_string(data.join("bnnc/history")).expect("history written");
    assert!(history.contains("sigma > 0.5") && history.contains(":summary a"), "{history}");
    let _ = std::fs::remove_dir_all(&data);
}

/// A mode's fit (one draw) is shown as a point: its value, with no spread or quantiles.
#[test]
fn a_single_draw_fit_is_shown_as_an_estimate() {
    let dir = std::env::temp_dir().join(format!("bnnc-repl-map-{}", std::process::id()));
    let d = dir.to_str().expect("utf-8");
    let (code, out) = session(&["examples/eight_schools.bnn"], &format!(":run --method map --out {d}\nmu\n"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Estimate") && !out.contains("NaN") && !out.contains("StdDev"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A layer's parameters are named by path (`h.W`) and can be written so in expressions:
/// an element of a network's weights, and a function of them, against the fit's draws.
#[test]
fn layer_parameters_are_written_by_their_path() {
    let dir = std::env::temp_dir().join(format!("bnnc-repl-layer-{}", std::process::id()));
    let d = dir.to_str().expect("utf-8");
    let (code, out) = session(
        &["examples/bnn_regression.bnn"],
        &format!(":run --method bbb --epochs 30 --out {d}\nh.W[1,2]\nsum(h.b) + f.b[0]\nh.W[1,2] +\n"),
    );
    assert_eq!(code, 0, "{out}");
    let (cols, rows) = draws(&dir, 1);
    let col = |n: &str| cols.iter().position(|c| c == n).unwrap_or_else(|| panic!("no column {n}"));
    let n = rows.len() as f64;
    let w = rows.iter().map(|r| r[col("h.W.2.3")]).sum::<f64>() / n;
    let bias: Vec<usize> = (1..=50).map(|j| col(&format!("h.b.{j}"))).collect();
    let s = rows.iter().map(|r| bias.iter().map(|&j| r[j]).sum::<f64>() + r[col("f.b.1")]).sum::<f64>() / n;
    let mean_of = |label: &str| mean_of(&out, label);
    assert!((mean_of("h.W[1,2]") - w).abs() < 5e-4 * w.abs().max(1.0), "{out}");
    assert!((mean_of("sum(h.b) + f.b[0]") - s).abs() < 5e-4 * s.abs().max(1.0), "{out}");
    // A diagnostic shows the line as typed.
    assert!(out.contains(" │ h.W[1,2] +"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The draws of a fit's first `chains` CSV files: the column names and one row per draw.
fn draws(dir: &Path, chains: usize) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    for c in 1..=chains {
        let text = std::fs::read_to_string(dir.join(format!("draws-{c}.csv"))).expect("draws");
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        cols = lines.next().expect("header").split(',').map(str::to_string).collect();
        rows.extend(lines.map(|l| l.split(',').map(|x| x.parse::<f64>().expect("num")).collect::<Vec<_>>()));
    }
    (cols, rows)
}

/// The mean in the summary row of a session's output that starts with `label`.
fn mean_of(out: &str, label: &str) -> f64 {
    let line = out.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no row {label}:\n{out}"));
    line[label.len()..].split_whitespace().next().expect("mean").parse().expect("number")
}

/// `:predict --out DIR` writes there and leaves the fit's own predictions alone; `:plot
/// predictive` then draws the predictions just written.
#[test]
fn predict_in_the_repl_writes_where_it_is_told() {
    let dir = std::env::temp_dir().join(format!("bnnc-repl-predict-{}", std::process::id()));
    let (fit, pred) = (dir.join("fit"), dir.join("pred"));
    let (f, p) = (fit.to_str().expect("utf-8"), pred.to_str().expect("utf-8"));
    let input = format!(
        ":run --method laplace --out {f}\n:predict examples/bnn_regression_test.json --out {p}\n:plot predictive\n"
    );
    let (code, out) = session(&["examples/bnn_regression.bnn"], &input);
    assert_eq!(code, 0, "{out}");
    assert!(pred.join("predictive.json").exists() && pred.join("predictive.csv").exists(), "{out}");
    assert!(!fit.join("predictive.json").exists(), "{out}");
    assert!(out.contains("predictive"), "{out}");
    assert!(!out.contains("error"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
