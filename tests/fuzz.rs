//! Property tests: no input makes the front end panic. Random token streams and random
//! edits of real models must give diagnostics (or a clean check), never a crash.
//! `PROPTEST_CASES=N` runs longer.

use bnnc::diag::{render, Format};
use bnnc::driver::frontend_text;
use proptest::prelude::*;

const VOCAB: &[&str] = &[
    "data",
    "params",
    "model",
    "generated",
    "fn",
    "layer",
    "import",
    "let",
    "var",
    "param",
    "for",
    "in",
    "if",
    "else",
    "return",
    "target",
    "array",
    "int",
    "real",
    "vector",
    "matrix",
    "simplex",
    "ordered",
    "dist",
    "x",
    "y",
    "N",
    "n",
    "d",
    "mu",
    "sigma",
    "dense",
    "fractal",
    "join",
    "normal",
    "poisson",
    "normal_lpdf",
    "tanh",
    "0",
    "1",
    "3",
    "1.5",
    ".5",
    "1e-3",
    "\"a.bnn\"",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    ";",
    "~",
    "=",
    "+=",
    "==",
    "<",
    ">",
    "<=",
    "+",
    "-",
    "*",
    "/",
    "^",
    "@",
    "!",
    "&&",
    "?",
    "..",
    "->",
    "\n",
    "\n",
    "//c\n",
    "/*",
    "*/",
    "lower",
    "upper",
    "#",
    "'",
];

fn models() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/posteriordb");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).filter_map(|e| std::fs::read_to_string(e.path().join("model.bnn")).ok()).collect()
        })
        .unwrap_or_default();
    v.push(include_str!("../examples/fractal_regression.bnn").to_string());
    v.sort();
    v
}

fn check_no_panic(src: &str) {
    let fe = frontend_text("fuzz.bnn", src, None);
    // Rendering must not panic either, whatever the spans.
    let _ = render(&fe.diags, &fe.sources, Format::Human { color: false });
    let _ = render(&fe.diags, &fe.sources, Format::Json);
}

proptest! {
    #[test]
    fn random_token_streams_never_panic(toks in prop::collection::vec(0..VOCAB.len(), 0..120)) {
        let src: String = toks.iter().map(|&i| VOCAB[i]).collect::<Vec<_>>().join(" ");
        check_no_panic(&src);
    }

    #[test]
    fn edited_models_never_panic(which in 0usize..14, edits in prop::collection::vec((0usize..4000, 0usize..12, 0..VOCAB.len()), 1..6)) {
        let all = models();
        let mut src = all[which % all.len()].clone().into_bytes();
        for (at, del, tok) in edits {
            let at = at % (src.len() + 1);
            let end = (at + del).min(src.len());
            src.splice(at..end, VOCAB[tok].bytes());
        }
        check_no_panic(&String::from_utf8_lossy(&src));
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        check_no_panic(&s);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let src = format!("model {{ target += {}1{} }}", "(".repeat(20_000), ")".repeat(20_000));
    let fe = frontend_text("deep.bnn", &src, None);
    assert!(fe.diags.items().iter().any(|d| d.code.as_str() == "E0012"));
    let long_sum = format!("model {{ target += {} }}", vec!["1"; 5000].join(" + "));
    let fe = frontend_text("long.bnn", &long_sum, None);
    assert!(fe.diags.items().iter().any(|d| d.code.as_str() == "E0012"));
}

#[test]
fn runaway_recursion_is_reported_with_its_chain() {
    let src = "layer forever(x: matrix[n, d], k: int) -> matrix[n, d] {\n  return forever(x, k + 1)\n}\ndata { N: int; x: matrix[N, 2] }\nmodel { let h = forever(x, 1) }\n";
    let fe = frontend_text("rec.bnn", src, None);
    let d = fe.diags.items().iter().find(|d| d.code.as_str() == "E0400").expect("E0400");
    assert!(d.notes.iter().any(|n| n.contains("forever(k = 1) → forever(k = 2)")), "{:?}", d.notes);
}
