//! Front-end tests over real models: every posteriordb model and example checks clean,
//! printing round-trips, elaboration names parameters by path.

use bnnc::diag::{render, Diagnostics, Format};
use bnnc::driver::{frontend_file, frontend_text, STDLIB};
use bnnc::source::FileId;
use bnnc::syntax::parse::parse_program;
use bnnc::syntax::print;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn posteriordb_models() -> Vec<PathBuf> {
    let dir = root().join("data/posteriordb");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} must exist: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("model.bnn"))
        .filter(|p| p.exists())
        .collect();
    v.sort();
    v
}

fn example_models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bnn"))
        .collect();
    v.sort();
    v
}

fn assert_clean(path: &Path) {
    let fe = frontend_file(path);
    let shown = render(&fe.diags, &fe.sources, Format::Human { color: false });
    assert!(!fe.diags.has_errors(), "{} should check clean:\n{shown}", path.display());
    assert!(fe.elaborated.is_some(), "{} should elaborate", path.display());
}

#[test]
fn all_posteriordb_models_check_clean() {
    let models = posteriordb_models();
    assert_eq!(models.len(), 13, "expected the 13 reference posteriors");
    for m in models {
        assert_clean(&m);
    }
}

#[test]
fn all_posteriordb_data_bind() {
    for m in posteriordb_models() {
        let mut fe = frontend_file(&m);
        let data = m.with_file_name("data.json");
        let bound = fe.bind_data(&data);
        let shown = render(&fe.diags, &fe.sources, Format::Human { color: false });
        let bound = bound.unwrap_or_else(|| panic!("{} should bind:\n{shown}", data.display()));
        // Every declared name is bound, with its declared number of elements.
        let decls = &fe.elaborated.as_ref().expect("elaborated").checked.data;
        assert_eq!(bound.vars.len(), decls.len());
    }
    // Spot checks of values and shapes.
    let dir = root().join("data/posteriordb/diamonds-diamonds");
    let mut fe = frontend_file(&dir.join("model.bnn"));
    let bound = fe.bind_data(&dir.join("data.json")).expect("diamonds binds");
    assert_eq!(bound.int("N"), Some(5000));
    assert_eq!(bound.get("X").expect("X").dims, vec![5000, 25]);
}

#[test]
fn all_examples_check_clean() {
    let models = example_models();
    assert!(models.len() >= 3);
    for m in models {
        assert_clean(&m);
        assert!(bnnc::driver::data_path(&m, None).is_some(), "{} needs its data file beside it", m.display());
    }
}

/// The three models of SPEC §1, verbatim.
const SPEC_EIGHT_SCHOOLS: &str = r#"
// eight_schools.bnn: non-centred hierarchical model
data {
  J: int<lower=1>
  y: vector[J]
  sigma: vector<lower=0>[J]
}
params {
  mu: real ~ normal(0, 5)
  tau: real<lower=0> ~ cauchy(0, 5)
  eta: vector[J] ~ std_normal()
}
model {
  let theta = mu + tau * eta
  y ~ normal(theta, sigma)
}
generated {
  theta = mu + tau * eta
}
"#;

const SPEC_BNN: &str = r#"
// bnn_regression.bnn
data {
  N: int
  D: int
  x: matrix[N, D]
  y: vector[N]
}
params {
  sigma: real<lower=0> ~ normal(0, 1)
}
model {
  let h = dense(x, 32, act = tanh, prior = normal(0, 1))
  let f = dense(h, 1, prior = normal(0, 1))
  y ~ normal(col(f, 0), sigma)
}
"#;

const SPEC_FRACTAL_LAYER: &str = r#"
layer fractal(x: matrix[n, d], depth: int) -> matrix[n, d] {
  if depth == 1 {
    return dense(x, d, act = relu)
  }
  return join(fractal(fractal(x, depth - 1), depth - 1), dense(x, d, act = relu))
}
"#;

fn param_names(src: &str) -> Vec<(String, String)> {
    let fe = frontend_text("spec.bnn", src, None);
    let shown = render(&fe.diags, &fe.sources, Format::Human { color: false });
    assert!(!fe.diags.has_errors(), "should check clean:\n{shown}");
    let el = fe.elaborated.expect("elaborated");
    el.checked.params.iter().map(|p| (p.name.clone(), p.decl.ty.to_string())).collect()
}

#[test]
fn spec_eight_schools_checks() {
    let p = param_names(SPEC_EIGHT_SCHOOLS);
    assert_eq!(
        p,
        vec![("mu".into(), "real".into()), ("tau".into(), "real".into()), ("eta".into(), "vector[J]".into())]
    );
}

#[test]
fn spec_bnn_names_layer_parameters_by_let() {
    let p = param_names(SPEC_BNN);
    let expect = [
        ("sigma", "real"),
        ("h.W", "matrix[D, 32]"),
        ("h.b", "vector[32]"),
        ("f.W", "matrix[32, 1]"),
        ("f.b", "vector[1]"),
    ];
    assert_eq!(p, expect.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
}

#[test]
fn spec_fractal_expands_with_path_names() {
    let src = format!(
        "{SPEC_FRACTAL_LAYER}\n{}",
        SPEC_BNN
            .replace("let h = dense(x, 32, act = tanh, prior = normal(0, 1))", "let f0 = fractal(x, 3)\n  let h = f0")
            .replace("let f = dense(h, 1", "let f = dense(h, 1")
    );
    let p = param_names(&src);
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    // depth 3: 2 columns of depth 2, each 2 of depth 1 (one dense each) plus a dense; plus a dense.
    let dense_count = names.iter().filter(|n| n.ends_with(".W") && n.starts_with("f0.")).count();
    assert_eq!(dense_count, 7, "{names:?}");
    for expected in [
        "f0.fractal.0.fractal.0.dense.W",
        "f0.fractal.0.fractal.1.dense.W",
        "f0.fractal.0.dense.W",
        "f0.fractal.1.dense.W",
        "f0.dense.W",
        "f0.dense.b",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    // Widths follow the shape variable d, bound to D at the call.
    assert!(p.iter().all(|(n, t)| !n.starts_with("f0.") || t == "matrix[D, D]" || t == "vector[D]"), "{p:?}");
}

#[test]
fn spec_fractal_layer_alone_checks() {
    // The layer as SPEC shows it, with a model that calls it at depth 1 and 2.
    let src = format!("{SPEC_FRACTAL_LAYER}\ndata {{ N: int; x: matrix[N, 4] }}\nmodel {{ let a = fractal(x, 1); let b = fractal(a, 2) }}\n");
    let p = param_names(&src);
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "a.dense.W",
            "a.dense.b",
            "b.fractal.0.dense.W",
            "b.fractal.0.dense.b",
            "b.fractal.1.dense.W",
            "b.fractal.1.dense.b",
            "b.dense.W",
            "b.dense.b"
        ]
    );
}

fn round_trip(name: &str, src: &str) {
    let mut d = Diagnostics::new();
    let p1 = parse_program(FileId(0), src, &mut d);
    assert!(!d.has_errors(), "{name} should parse");
    let printed = print::program(&p1);
    let mut d2 = Diagnostics::new();
    let p2 = parse_program(FileId(0), &printed, &mut d2);
    assert!(!d2.has_errors(), "{name}: the printed form should parse:\n{printed}");
    let again = print::program(&p2);
    assert_eq!(printed, again, "{name}: print(parse(print(parse(src)))) must equal print(parse(src))");
}

#[test]
fn parse_print_parse_round_trips() {
    for m in posteriordb_models().into_iter().chain(example_models()) {
        let src = std::fs::read_to_string(&m).expect("readable");
        round_trip(&m.display().to_string(), &src);
    }
    for (name, src) in STDLIB {
        round_trip(name, src);
    }
    round_trip("spec fractal", SPEC_FRACTAL_LAYER);
}

#[test]
fn printer_keeps_precedence() {
    for src in [
        "model { target += -x ^ 2 }",
        "model { target += (a + b) * c }",
        "model { target += a - (b - c) }",
        "model { target += c ? a : b ? d : e }",
        "model { target += (-x) ^ 2 }",
        "model { target += 2 ^ 3 ^ 4 }",
    ] {
        round_trip(src, src);
    }
    let mut d = Diagnostics::new();
    let p = parse_program(FileId(0), "model { target += a - (b - c) }", &mut d);
    assert!(print::program(&p).contains("a - (b - c)"));
}

/// Stan's habit of naming coefficients `beta` (or a rate `gamma`) does not hide the
/// distribution of that name: `y ~ beta(...)` after `beta: real` checks clean.
#[test]
fn a_parameter_named_as_a_distribution_does_not_hide_it() {
    let dir = std::env::temp_dir().join(format!("bnnc-shadow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.bnn");
    std::fs::write(
        &path,
        "data {\n  N: int\n  x: vector[N]\n  y: vector<lower=0, upper=1>[N]\n}\nparams {\n  beta: real ~ normal(0, 2)\n  gamma: real<lower=0> ~ gamma(2, 2)\n}\nmodel {\n  let mu = sigmoid(beta * x)\n  y ~ beta(mu * gamma, (1 - mu) * gamma)\n}\n",
    )
    .unwrap();
    assert_clean(&path);
    let _ = std::fs::remove_dir_all(&dir);
}
