//! The models every backend test runs: the posteriordb models in data/posteriordb and
//! the examples, each with its data file.

use std::path::{Path, PathBuf};

/// (model, data) for every posteriordb model and example, sorted. The tests that use them
/// also have the IR verified after every compiler pass.
pub fn models() -> Vec<(PathBuf, PathBuf)> {
    bnnc::ir::verify::verify_every_pass();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for e in std::fs::read_dir(root.join("data/posteriordb")).expect("posteriordb").flatten() {
        let m = e.path().join("model.bnn");
        if m.exists() {
            v.push((m, e.path().join("data.json")));
        }
    }
    for e in std::fs::read_dir(root.join("examples")).expect("examples").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "bnn") {
            let data = bnnc::driver::data_path(&p, None).unwrap_or_else(|| p.with_extension("json"));
            v.push((p.clone(), data));
        }
    }
    v.sort();
    v
}
