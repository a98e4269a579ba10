//! Snapshots of the printed IR (`bnnc check MODEL --emit ir`) and of its adjoint sweep
//! (`--emit ir-ad`) for a few models: a reviewer reads tests/ir/*.ir and *.ir-ad to see what
//! lowering and differentiation do. `BLESS=1 cargo test --test ir_snapshots` rewrites them
//! (read the diff before committing).

use std::path::Path;
use std::process::Command;

#[test]
fn printed_ir_matches_snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let mut names: Vec<String> = std::fs::read_dir(root.join("tests/ir"))
        .expect("tests/ir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bnn"))
        .collect();
    names.sort();
    assert!(names.len() >= 4);
    let mut failures = Vec::new();
    for (n, emit) in names.iter().flat_map(|n| [(n, "ir"), (n, "ir-ad")]) {
        let rel = format!("tests/ir/{n}");
        let out = Command::new(env!("CARGO_BIN_EXE_bnnc"))
            .args(["check", &rel, "--emit", emit])
            .current_dir(root)
            .output()
            .expect("bnnc runs");
        assert!(out.status.success(), "{rel}: {}", String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        let snap = root.join(format!("tests/ir/{}", n.replace(".bnn", &format!(".{emit}"))));
        if bless {
            std::fs::write(&snap, &printed).expect("write snapshot");
        } else if std::fs::read_to_string(&snap).ok().as_deref() != Some(printed.as_str()) {
            failures.push(format!("{} differs:\n{printed}", snap.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
