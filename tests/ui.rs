//! UI tests: every `tests/ui/*.bnn` is checked with `bnnc check FILE --color never` (or the
//! command in a sibling `.args` file) and its stderr compared with the sibling `.stderr` file.
//!
//! Run with `BLESS=1 cargo test --test ui` to rewrite the `.stderr` files from the current
//! output (then read the diff before committing it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const UI_DIR: &str = "tests/ui";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// File names (not paths) of every `tests/ui/*.bnn`, sorted. Subdirectories are not cases.
fn ui_files() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join(UI_DIR))
        .expect("tests/ui exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bnn"))
        .collect();
    names.sort();
    names
}

/// `E0xxx` when the file name starts with `E0xxx_`.
fn code_of(name: &str) -> Option<&str> {
    let code = name.get(..5)?;
    let ok = code.starts_with("E0") && code[1..].bytes().all(|b| b.is_ascii_digit()) && name[5..].starts_with('_');
    ok.then_some(code)
}

#[test]
fn ui_files_match_expected_stderr() {
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let files = ui_files();
    assert!(!files.is_empty(), "no tests/ui/*.bnn files found");
    let mut failures: Vec<String> = Vec::new();
    for name in &files {
        let rel = format!("{UI_DIR}/{name}");
        // `NAME.args`, when present, holds the command instead of `check NAME.bnn`
        // (`{}` stands for the model's path), for errors only other commands can meet.
        let args_path = root().join(UI_DIR).join(name.replace(".bnn", ".args"));
        let args: Vec<String> = match fs::read_to_string(&args_path) {
            Ok(text) => text.split_whitespace().map(|a| a.replace("{}", &rel)).collect(),
            Err(_) => vec!["check".to_string(), rel.clone(), "--color".to_string(), "never".to_string()],
        };
        let out = Command::new(env!("CARGO_BIN_EXE_bnnc"))
            .args(&args)
            .current_dir(root())
            .output()
            .unwrap_or_else(|e| panic!("cannot run bnnc on {rel}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut problems: Vec<String> = Vec::new();
        // A case whose only diagnostic is a warning checks with exit 0.
        let want = if stderr.contains("] Error") { 1 } else { 0 };
        if out.status.code() != Some(want) {
            problems.push(format!("exit status {:?}, expected {want}", out.status.code()));
        }
        if stderr.contains("panicked") {
            problems.push("stderr contains `panicked`".to_string());
        }
        if let Some(code) = code_of(name) {
            if !stderr.contains(code) {
                problems.push(format!("stderr does not mention {code}"));
            }
        }
        let expected_path: PathBuf = root().join(UI_DIR).join(name.replace(".bnn", ".stderr"));
        if bless {
            fs::write(&expected_path, &stderr)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
        } else {
            match fs::read_to_string(&expected_path) {
                Ok(expected) if expected == stderr => {}
                Ok(expected) => problems.push(format!(
                    "stderr differs from {}\n{}",
                    expected_path.display(),
                    diff(&expected, &stderr)
                )),
                Err(e) => problems
                    .push(format!("cannot read {}: {e} (run with BLESS=1 to create it)", expected_path.display())),
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{rel}:\n  - {}", problems.join("\n  - ")));
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} UI tests failed:\n\n{}\n\n(after checking the new output is right, \
             `BLESS=1 cargo test --test ui` rewrites the .stderr files)",
            failures.len(),
            files.len(),
            failures.join("\n\n")
        );
    }
}

/// A short line diff: the first lines that differ, with their line numbers.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out = Vec::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            out.push(format!("    line {}:", i + 1));
            out.push(format!("      expected: {}", x.map_or("<none>".into(), |s| format!("{s:?}"))));
            out.push(format!("      actual:   {}", y.map_or("<none>".into(), |s| format!("{s:?}"))));
            if out.len() >= 15 {
                out.push("    ...".to_string());
                break;
            }
        }
    }
    if out.is_empty() {
        out.push("    (differs only in line endings or a final newline)".to_string());
    }
    out.join("\n")
}

/// Every code in the `codes!` table of src/diag.rs, in table order.
fn codes_in_diag_table() -> Vec<String> {
    let text = fs::read_to_string(root().join("src/diag.rs")).expect("src/diag.rs is readable");
    let mut codes = Vec::new();
    for line in text.lines() {
        let Some(at) = line.find("= \"E0") else { continue };
        let rest = &line[at + 3..];
        let Some(end) = rest.find('"') else { continue };
        codes.push(rest[..end].to_string());
    }
    codes
}

/// Whether the contents of a `.bnn` file can cause `code` under `bnnc check`. E0001 (the file
/// cannot be read) is about the path, not the contents; E05xx are errors in data files, which
/// `check` never reads.
fn can_come_from_model_file(code: &str) -> bool {
    // E0001 (the model file cannot be read) has no file to hold a case; data errors come
    // from the `.json` beside a case's model, which `check` reads.
    code != "E0001"
}

#[test]
fn every_code_has_a_ui_test() {
    let codes = codes_in_diag_table();
    assert!(
        codes.len() >= 10 && codes.iter().any(|c| c == "E0001"),
        "could not read the code table from src/diag.rs (found {codes:?})"
    );
    let files = ui_files();
    let has_file = |code: &str| files.iter().any(|f| code_of(f) == Some(code));
    let mut missing = Vec::new();
    for code in &codes {
        if !can_come_from_model_file(code) {
            continue;
        }
        if !has_file(code) {
            missing.push(format!("{code}: no tests/ui/{code}_*.bnn"));
        }
    }
    assert!(missing.is_empty(), "UI coverage:\n  {}", missing.join("\n  "));
}
