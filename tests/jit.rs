//! The compiled density equals the interpreter's — log density, log-Jacobian and gradient — on
//! every posteriordb model and example, at random points, and reports the same recoverable
//! errors where the density is not finite.

use bnnc::density::LogDensity;
use bnnc::diag::{render, Format};
use bnnc::driver::frontend_file;
use bnnc::ir::interp::Interp;
use bnnc::jit::Jit;
use rand::{RngExt, SeedableRng};
use std::path::Path;

#[path = "common/models.rs"]
mod common_models;
use common_models::models;

/// Equal to 1e-12 relative to the larger magnitude (or to `scale` for values near zero, where
/// a sum of terms of size `scale` cancels).
fn close(a: f64, b: f64, scale: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(scale)
}

/// The program of model `src` with data `data`, both written to a temporary directory of
/// their own (removed again) as a user's files would be.
fn lower_temp(name: &str, src: &str, data: &str) -> bnnc::ir::Program {
    let dir = std::env::temp_dir().join(format!("bnnc-jit-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let model = dir.join(format!("{name}.bnn"));
    std::fs::write(&model, src).expect("write");
    std::fs::write(model.with_extension("json"), data).expect("write");
    let mut fe = frontend_file(&model);
    let program = fe.program(&model, None);
    let shown = render(&fe.diags, &fe.sources, Format::Human { color: false });
    let _ = std::fs::remove_dir_all(&dir);
    program.unwrap_or_else(|| panic!("{name} should lower:\n{shown}"))
}

#[test]
fn jit_equals_interpreter_on_every_model() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut compared = 0;
    for (model, data) in models() {
        let mut fe = frontend_file(&model);
        let program = fe.program(&model, Some(&data));
        let shown = render(&fe.diags, &fe.sources, Format::Human { color: false });
        let program = program.unwrap_or_else(|| panic!("{} should lower:\n{shown}", model.display()));
        let mut interp = Interp::new(&program);
        let mut jit = Jit::new(&program).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
        let dim = program.dim();
        let (mut gi, mut gj) = (vec![0.0; dim], vec![0.0; dim]);
        let mut finite = 0;
        for _ in 0..40 {
            if finite == 5 {
                break;
            }
            let theta: Vec<f64> = (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect();
            let ri = interp.eval(&theta).and_then(|e| interp.gradient(&mut gi).map(|_| e));
            let rj = jit.eval_grad(&theta, &mut gj);
            match (ri, rj) {
                (Ok(a), Ok(b)) => {
                    let scale = a.logp.abs().max(1.0);
                    assert!(close(a.logp, b.logp, scale), "{}: logp {} vs {}", model.display(), a.logp, b.logp);
                    assert!(
                        close(a.likelihood, b.likelihood, scale),
                        "{}: likelihood part {} vs {}",
                        model.display(),
                        a.likelihood,
                        b.likelihood
                    );
                    assert!(
                        close(a.jacobian, b.jacobian, 1.0),
                        "{}: jacobian {} vs {}",
                        model.display(),
                        a.jacobian,
                        b.jacobian
                    );
                    let gscale = gi.iter().fold(1.0f64, |m, g| m.max(g.abs()));
                    for k in 0..dim {
                        assert!(
                            close(gi[k], gj[k], gscale),
                            "{}: gradient[{k}] {} vs {}",
                            model.display(),
                            gi[k],
                            gj[k]
                        );
                    }
                    // The value alone (no reverse sweep) is the same too.
                    let e = jit.eval(&theta).expect("finite");
                    assert_eq!(e.logp.to_bits(), b.logp.to_bits(), "{}: logp without gradient", model.display());
                    finite += 1;
                    compared += 1;
                }
                (Err(a), Err(b)) => {
                    assert!(a.recoverable && b.recoverable, "{}: {a} / {b}", model.display());
                }
                (a, b) => panic!("{}: interpreter {a:?}, jit {b:?}", model.display()),
            }
        }
        assert!(finite > 0, "{}: no finite point found", model.display());
    }
    assert!(compared >= 5 * 13, "compared {compared} points");
}

#[test]
fn jit_reuses_its_buffers_after_an_error() {
    // A point where the density fails, then a good one: the result equals a fresh compile's.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("data/posteriordb/garch-garch11/model.bnn");
    let data = model.with_file_name("data.json");
    let mut fe = frontend_file(&model);
    let program = fe.program(&model, Some(&data)).expect("lowers");
    let dim = program.dim();
    let mut jit = Jit::new(&program).expect("compiles");
    let mut g = vec![0.0; dim];
    let bad = vec![f64::NAN; dim];
    assert!(jit.eval_grad(&bad, &mut g).is_err());
    let theta = vec![0.1; dim];
    let a = jit.eval_grad(&theta, &mut g).expect("finite");
    let mut fresh = Jit::new(&program).expect("compiles");
    let mut g2 = vec![0.0; dim];
    let b = fresh.eval_grad(&theta, &mut g2).expect("finite");
    assert_eq!(a, b);
    assert_eq!(g, g2);
}

/// Chains of elementwise operations — fused into one loop by the compiler — with scalar
/// parameters broadcast, literals, a value used twice, transcendental functions and an
/// intermediate used after the chain: the same values and gradients as the interpreter.
#[test]
fn fused_elementwise_chains_equal_the_interpreter() {
    let src = "
data {
  N: int<lower=1>
  x: vector[N]
  y: vector[N]
}
params {
  a: real
  b: real
  s: real<lower=0>
  w: vector[N]
}
model {
  let u = a + b * x
  let v = exp(u * 0.1) * u - w * w + log1p(s * x * x)
  let t = tanh(v) / s + sigmoid(w)
  target += -0.5 * sum(t * t) - sum(u * u) * 0.01
  y ~ normal(u, s)
  w ~ normal(0, 1)
}
";
    let program = lower_temp(
        "fused",
        src,
        r#"{"N": 7, "x": [0.5, -1.2, 2.0, 0.1, -0.7, 1.5, 3.0], "y": [1.0, -0.5, 2.2, 0.3, -1.1, 1.8, 3.1]}"#,
    );
    let mut interp = Interp::new(&program);
    let mut jit = Jit::new(&program).expect("compiles");
    // u = a + b * x (2), v's and t's chains; exp, log1p and tanh go to the array kernels
    // (four elements at a time) and split the chains around them.
    assert!(jit.fused_ops >= 8, "only {} operations fused", jit.fused_ops);
    assert_eq!(jit.array_ops, 3, "exp, log1p and tanh by the array kernels");
    agree_at_random_points(&mut interp, &mut jit, 11, 20, "fused");
}

/// One backend's log density and gradient at a point.
type Side<'a> = (f64, &'a [f64]);
/// What [`at_random_points`] hands each point to: the compiled density, θ, and both sides.
type Check<'c> = dyn FnMut(&mut Jit, &[f64], Side, Side) + 'c;

/// Both backends' log density and gradient at `points` random points θ in [−r, r)ᵈ, handed
/// to `check(jit, θ, (interpreter's logp, gradient), (compiled logp, gradient))`.
fn at_random_points(interp: &mut Interp, jit: &mut Jit, seed: u64, points: usize, r: f64, check: &mut Check) {
    let dim = jit.dim();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut gi, mut gj) = (vec![0.0; dim], vec![0.0; dim]);
    for _ in 0..points {
        let theta: Vec<f64> = (0..dim).map(|_| rng.random_range(-r..r)).collect();
        let a = interp.eval(&theta).and_then(|e| interp.gradient(&mut gi).map(|_| e)).expect("finite");
        let b = jit.eval_grad(&theta, &mut gj).expect("finite");
        check(jit, &theta, (a.logp, &gi), (b.logp, &gj));
    }
}

/// Log density and gradient of both backends at `points` random points in [−1.5, 1.5)ᵈ,
/// to the rule of this file (gradient elements relative to the largest one).
fn agree_at_random_points(interp: &mut Interp, jit: &mut Jit, seed: u64, points: usize, what: &str) {
    at_random_points(interp, jit, seed, points, 1.5, &mut |_, _, (la, gi), (lb, gj)| {
        assert!(close(la, lb, la.abs().max(1.0)), "{what}: logp {la} vs {lb}");
        let scale = gi.iter().fold(1.0f64, |m, g| m.max(g.abs()));
        for k in 0..gi.len() {
            assert!(close(gi[k], gj[k], scale), "{what}: gradient[{k}] {} vs {}", gi[k], gj[k]);
        }
    });
}

/// Model `src` on `data`, compiled and interpreted, compared at ten random points
/// ([`agree_at_random_points`]).
fn agree_on_model(name: &str, src: &str, data: &str, seed: u64, what: &str) {
    let program = lower_temp(name, src, data);
    let mut interp = Interp::new(&program);
    let mut jit = Jit::new(&program).expect("compiles");
    agree_at_random_points(&mut interp, &mut jit, seed, 10, what);
}

/// An `n × k` matrix as nested JSON arrays, element (i, j) = `f(i, j)`.
fn matrix_json(n: usize, k: usize, f: impl Fn(usize, usize) -> f64) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let r: Vec<String> = (0..k).map(|j| format!("{}", f(i, j))).collect();
            format!("[{}]", r.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// Elementwise loops run two elements at a time with a last odd one alone: over a whole
/// array, and over the rows of a matrix with a vector along them (the bias of a layer). With
/// an odd and an even number of columns, broadcast scalars, comparisons, `max`, `abs`, `relu`
/// and a function called per element (`lgamma`): the same log density and gradient as the
/// interpreter, to the rule of this file (the matrix product sums in another order).
#[test]
fn two_lane_loops_with_odd_and_even_lengths_equal_the_interpreter() {
    let src = "
data {
  N: int<lower=1>
  K: int<lower=1>
  H: int<lower=1>
  x: matrix[N, K]
}
params {
  W: matrix[K, H]
  b: vector[H]
  c: real
  s: real<lower=0>
}
model {
  let h = tanh(x @ W + b)
  let z = abs(h - c) * s + max(h, c) - relu(h * 2.0 - b) + lgamma(h * h + 1.5) / s
  target += sum(z) * 0.1 - 0.5 * sum(h * h)
  W ~ normal(0, 1)
  b ~ normal(0, 1)
  c ~ normal(0, 1)
  s ~ lognormal(0, 1)
}
";
    let x = |n: usize, k: usize| matrix_json(n, k, |i, j| ((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0);
    for (n, k, h) in [(5, 3, 5), (4, 2, 6), (7, 3, 1), (3, 1, 2)] {
        let data = format!(r#"{{"N": {n}, "K": {k}, "H": {h}, "x": {}}}"#, x(n, k));
        agree_on_model("lanes", src, &data, 13, &format!("{n}x{h}"));
    }
}

/// A dense layer's bias and activation run backward by one kernel call: with `tanh` and
/// `exp`; the product's adjoint written over (its one use) or added to (used again); the
/// layer's adjoint written over by the next product or added to (the layer used twice); a
/// bias that takes no adjoint (data). The same log density and gradient as the interpreter.
#[test]
fn dense_layers_backward_by_one_kernel_call_equal_the_interpreter() {
    let src = "
data {
  N: int<lower=1>
  K: int<lower=1>
  H: int<lower=1>
  x: matrix[N, K]
  e: vector[H]
}
params {
  W: matrix[K, H]
  V: matrix[K, H]
  U: matrix[K, H]
  b: vector[H]
  c: vector[H]
  w: vector[H]
}
model {
  let h = tanh(x @ W + b)
  let g = exp(x @ V * 0.3 + c)
  let u = x @ U
  let k = tanh(u + e)
  target += sum(h @ w) + 0.01 * sum(g) - 0.5 * sum(k * k) + 0.1 * sum(u) + sum(log1p(h * h))
  W ~ normal(0, 1)
  V ~ normal(0, 1)
  U ~ normal(0, 1)
  b ~ normal(0, 1)
  c ~ normal(0, 1)
  w ~ normal(0, 1)
}
";
    let x = |n: usize, k: usize| matrix_json(n, k, |i, j| ((i * 5 + j * 3) % 13) as f64 / 6.0 - 1.0);
    for (n, k, h) in [(5, 3, 5), (9, 2, 17), (3, 4, 1), (40, 3, 50)] {
        let e: Vec<String> = (0..h).map(|j| format!("{}", j as f64 * 0.1 - 0.4)).collect();
        let data = format!(r#"{{"N": {n}, "K": {k}, "H": {h}, "x": {}, "e": [{}]}}"#, x(n, k), e.join(", "));
        agree_on_model("dense_rev", src, &data, 21, &format!("{n}x{k}x{h}"));
    }
}

/// A network's output product whose argument is a dense layer's activation read by nothing
/// else runs with that layer's bias and activation, one kernel call for the three forward
/// and one backward: `tanh`, `exp` and `expm1`; weights as a column or a vector, taking a prior
/// (their adjoint added to) or not (written over); a bias that is data; the product's result
/// read twice; layers narrower and wider than the 64 columns the AVX-512 form takes and the
/// 512 of the forward's buffer. The same log density and gradient as the interpreter.
#[test]
fn output_products_backward_with_their_layer_equal_the_interpreter() {
    let src = "
data {
  N: int<lower=1>
  K: int<lower=1>
  H: int<lower=1>
  x: matrix[N, K]
  y: vector[N]
  e: vector[H]
}
params {
  W: matrix[K, H]
  V: matrix[K, H]
  U: matrix[K, H]
  b: vector[H]
  c: vector[H]
  w: matrix[H, 1]
  v: vector[H]
  u: vector[H]
  s: real<lower=0>
}
model {
  let f = tanh(x @ W + b) @ w
  y ~ normal(col(f, 0), s)
  let g = exp(x @ V * 0.3 + c) @ v
  target += -0.01 * sum(g * g)
  let z = x @ U
  let k = expm1(z * 0.2 + e) @ u
  target += -0.5 * sum(k) + 0.1 * sum(z)
  W ~ normal(0, 1)
  V ~ normal(0, 1)
  U ~ normal(0, 1)
  b ~ normal(0, 1)
  c ~ normal(0, 1)
  w ~ normal(0, 1)
  v ~ normal(0, 1)
  s ~ lognormal(0, 1)
}
";
    let x = |n: usize, k: usize| matrix_json(n, k, |i, j| ((i * 5 + j * 3) % 13) as f64 / 6.0 - 1.0);
    for (n, k, h) in [(5, 3, 1), (9, 2, 8), (3, 4, 17), (40, 3, 50), (11, 2, 64), (7, 3, 65), (6, 2, 130), (4, 2, 600)]
    {
        let e: Vec<String> = (0..h).map(|j| format!("{}", j as f64 * 0.01 - 0.4)).collect();
        let y: Vec<String> = (0..n).map(|i| format!("{}", (i % 7) as f64 * 0.3 - 1.0)).collect();
        let data = format!(
            r#"{{"N": {n}, "K": {k}, "H": {h}, "x": {}, "y": [{}], "e": [{}]}}"#,
            x(n, k),
            y.join(", "),
            e.join(", ")
        );
        agree_on_model("dense_head", src, &data, 23, &format!("{n}x{k}x{h}"));
    }
}

/// A fused chain in a loop body reading, once, a whole array made before the loop: the
/// array's adjoint gathers one contribution per iteration (written over, it kept only the
/// last). And chains whose one use is `target +=`, whose adjoint is 1 throughout: summed as
/// the loop computes them, their reverse seeded by no pass of its own.
#[test]
fn chains_in_loop_bodies_and_summed_into_target_equal_the_interpreter() {
    let src = "
data {
  N: int<lower=1>
  K: int<lower=1>
  x: vector[N]
  w: vector[K]
}
params {
  a: real
  m: vector[2]
  s: real<lower=0>
}
model {
  let z = x * a
  for k in 0..K {
    if w[k] > 0.0 {
      target += sum(exp(z * w[k]) * 2.0)
    }
  }
  for n in 0..N {
    target += log_mix(0.3, normal_lpdf(x[n], m[0], s), normal_lpdf(x[n], m[1], s))
  }
  target += -0.5 * (x - a) * (x - a) / s
  a ~ normal(0, 1)
  m ~ normal(0, 1)
  s ~ lognormal(0, 1)
}
";
    for n in [4, 5] {
        let xs: Vec<String> = (0..n).map(|i| format!("{}", i as f64 * 0.3 - 0.5)).collect();
        let data = format!(r#"{{"N": {n}, "K": 3, "x": [{}], "w": [0.5, -1.0, 2.0]}}"#, xs.join(", "));
        agree_on_model("loopchain", src, &data, 17, &format!("loop bodies, N = {n}"));
    }
}

/// `bernoulli_logit` keeps its partials from the forward sweep for the reverse one: inside a
/// loop (one array of partials per iteration), and with a broadcast logit. Bit for bit the
/// interpreter's.
#[test]
fn bernoulli_logit_partials_kept_in_loops_equal_the_interpreter() {
    let src = "
data {
  G: int<lower=1>
  N: int<lower=1>
  y: array[G, N] int
  x: matrix[G, N]
}
params {
  b: vector[G]
  c: real
}
model {
  for g in 0..G {
    y[g] ~ bernoulli_logit(b[g] * x[g] + c)
  }
  y[0] ~ bernoulli_logit(c)
  b ~ normal(0, 1)
}
";
    let program = lower_temp(
        "bern",
        src,
        r#"{"G": 3, "N": 6, "y": [[1, 0, 0, 1, 1, 0], [0, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 0]],
            "x": [[0.5, -1.2, 2.0, 0.1, -0.7, 1.5], [3.0, -0.2, 0.4, -2.5, 1.1, 0.0], [-30.0, 40.0, 0.9, -0.3, 0.2, 1.0]]}"#,
    );
    let mut interp = Interp::new(&program);
    let mut jit = Jit::new(&program).expect("compiles");
    at_random_points(&mut interp, &mut jit, 5, 20, 3.0, &mut |_, _, (la, gi), (lb, gj)| {
        assert_eq!(la.to_bits(), lb.to_bits(), "logp {la} vs {lb}");
        assert_eq!(gi, gj);
    });
}

/// Two networks over the same 15,000 data rows, each ending in a density read only by
/// `target +=`: the row-block rewrite makes each a streamed loop over blocks of rows plus the
/// rows left over, and the compiled code, which runs each block's reverse right after its
/// forward on one copy of its values, agrees with the interpreter, which keeps every block.
#[test]
fn row_blocked_networks_equal_the_interpreter() {
    let src = "
data {
  N: int<lower=1>
  K: int<lower=1>
  x: matrix[N, K]
  y: vector[N]
  z: array[N] int
}
params {
  W: matrix[K, 6]
  b: vector[6]
  v: matrix[6, 1]
  c: real
  U: matrix[K, 3]
  s: real<lower=0>
}
model {
  let h = tanh(x @ W + b)
  let f = h @ v + c
  y ~ normal(col(f, 0), s)
  z ~ bernoulli_logit(exp(x @ U * 0.5 - 1.0) @ b[0..3] - c)
  W ~ normal(0, 1)
  b ~ normal(0, 1)
  to_vector(v) ~ normal(0, 1)
  U ~ normal(0, 1)
  c ~ normal(0, 1)
  s ~ lognormal(0, 1)
}
";
    let n = 15000;
    let x = matrix_json(n, 3, |i, j| match j {
        0 => (i % 13) as f64 / 6.0 - 1.0,
        1 => (i % 7) as f64 / 3.0 - 1.0,
        _ => ((i * 5) % 11) as f64 / 10.0,
    });
    let y: Vec<String> = (0..n).map(|i| format!("{}", ((i * 3) % 17) as f64 / 8.0 - 1.0)).collect();
    let z: Vec<String> = (0..n).map(|i| format!("{}", (i * 7 % 5 < 2) as i32)).collect();
    let data = format!(r#"{{"N": {n}, "K": 3, "x": {x}, "y": [{}], "z": [{}]}}"#, y.join(", "), z.join(", "));
    let program = lower_temp("rowblocks", src, &data);
    let loops = program.block(bnnc::ir::ENTRY).iter().filter(|i| matches!(i, bnnc::ir::Inst::For { .. })).count();
    assert_eq!(loops, 2, "each network becomes a loop over blocks of rows");
    let mut interp = Interp::new(&program);
    let mut jit = Jit::new(&program).expect("compiles");
    agree_at_random_points(&mut interp, &mut jit, 23, 10, "row blocks");
}

/// A call rejected because the last rows make the scale negative (the log density is not
/// finite) has run the streamed reverses of every block, the last ones on NaN; the next
/// call's gradient is still the interpreter's. (A call that stops partway, with an error from
/// compiled code, leaves adjoints that `Jit` clears before the next call; none of the
/// operations a row block holds can stop it.)
#[test]
fn a_call_rejected_in_the_last_row_blocks_leaves_the_next_gradient_right() {
    let src = "
data {
  N: int<lower=1>
  x: matrix[N, 4]
  y: vector[N]
}
params {
  W: matrix[4, 5]
  v: vector[5]
  s: real
}
model {
  y ~ normal(tanh(x @ W) @ v, s - x[:, 0])
  W ~ normal(0, 1)
  v ~ normal(0, 1)
}
";
    let n = 20000;
    let x = matrix_json(n, 4, |i, j| if j == 0 && i >= 19000 { 5.0 } else { ((i * (j + 2)) % 17) as f64 / 8.0 - 1.0 });
    let y: Vec<String> = (0..n).map(|i| format!("{}", ((i * 5) % 13) as f64 / 6.0 - 1.0)).collect();
    let data = format!(r#"{{"N": {n}, "x": {x}, "y": [{}]}}"#, y.join(", "));
    let program = lower_temp("rowblock-fail", src, &data);
    assert!(program.block(bnnc::ir::ENTRY).iter().any(|i| matches!(i, bnnc::ir::Inst::For { .. })), "blocked");
    let mut interp = Interp::new(&program);
    let mut jit = Jit::new(&program).expect("compiles");
    let dim = jit.dim();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let (mut gi, mut gj) = (vec![0.0; dim], vec![0.0; dim]);
    for _ in 0..3 {
        let mut theta: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        theta[dim - 1] = 2.0;
        assert!(jit.eval_grad(&theta, &mut gj).is_err(), "a negative scale is rejected");
        theta[dim - 1] = 6.5;
        let a = interp.eval(&theta).and_then(|e| interp.gradient(&mut gi).map(|_| e)).expect("finite");
        let b = jit.eval_grad(&theta, &mut gj).expect("finite");
        assert!(close(a.logp, b.logp, a.logp.abs()), "logp {} vs {}", a.logp, b.logp);
        let scale = gi.iter().fold(1.0f64, |m, g| m.max(g.abs()));
        for k in 0..dim {
            assert!(close(gi[k], gj[k], scale), "gradient[{k}] {} vs {}", gi[k], gj[k]);
        }
    }
}

/// Sums over elements (a broadcast scalar's adjoint, `sum`, `target +=` of an array) run in
/// pair order in both backends, also over rows of odd length, where compiled code swaps the
/// lanes of its two partial sums after each row: the log density and the broadcast scalars'
/// gradient are bit for bit the interpreter's.
#[test]
fn sums_over_rows_of_odd_and_even_length_equal_the_interpreter_bit_for_bit() {
    let src = "
data {
  N: int<lower=1>
  K: int<lower=1>
  x: matrix[N, K]
}
params {
  b: vector[K]
  s: real
  t: real
}
model {
  let h = tanh(x * s + b - t)
  target += sum(h * h)
  target += -0.5 * (x * t - s) * (x * t - s)
  b ~ normal(0, 1)
}
";
    for (n, k) in [(5, 3), (4, 3), (5, 4), (7, 1), (3, 7)] {
        let x: Vec<Vec<f64>> =
            (0..n).map(|i| (0..k).map(|j| ((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0).collect()).collect();
        let data = serde_json::json!({"N": n, "K": k, "x": x}).to_string();
        let program = lower_temp("pairs", src, &data);
        let mut interp = Interp::new(&program);
        let mut jit = Jit::new(&program).expect("compiles");
        at_random_points(&mut interp, &mut jit, 11, 10, 2.0, &mut |_, _, (la, gi), (lb, gj)| {
            assert_eq!(la.to_bits(), lb.to_bits(), "{n}×{k}: logp {la} vs {lb}");
            // s and t, the last two coordinates, are broadcast scalars; b's elements take
            // the 1e-12 rule.
            let dim = gi.len();
            for q in 0..dim {
                if q + 2 >= dim {
                    assert_eq!(gi[q].to_bits(), gj[q].to_bits(), "{n}×{k}: gradient[{q}] {} vs {}", gi[q], gj[q]);
                } else {
                    assert!(close(gi[q], gj[q], 1.0), "{n}×{k}: gradient[{q}] {} vs {}", gi[q], gj[q]);
                }
            }
        });
    }
}

/// A two-argument `log_sum_exp` over arrays runs as one array function that keeps its
/// partials for the reverse sweep: in a loop (one pair of arrays per iteration), with a
/// broadcast argument, and elementwise inside `log_mix` over data. Bit for bit the
/// interpreter's.
#[test]
fn log_sum_exp_arrays_keep_their_partials_and_equal_the_interpreter() {
    let src = "
data {
  G: int<lower=1>
  N: int<lower=1>
  x: matrix[G, N]
}
params {
  s: real
  t: real
  w: vector[N]
  theta: real<lower=0, upper=1>
}
model {
  for g in 0..G {
    target += sum(log_sum_exp(x[g] * s, w - t))
  }
  target += sum(log_sum_exp(w, 0.5))
  for n in 0..N {
    target += log_mix(theta, normal_lpdf(x[0, n], s, 1), normal_lpdf(x[1, n], t, 2))
  }
  w ~ normal(0, 1)
}
";
    for (g, n) in [(3, 37), (2, 5), (4, 64)] {
        let x: Vec<Vec<f64>> =
            (0..g).map(|i| (0..n).map(|j| ((i * 13 + j * 7) % 17) as f64 / 3.0 - 2.5).collect()).collect();
        let data = serde_json::json!({"G": g, "N": n, "x": x}).to_string();
        let program = lower_temp("lse", src, &data);
        let mut interp = Interp::new(&program);
        let mut jit = Jit::new(&program).expect("compiles");
        at_random_points(&mut interp, &mut jit, 13, 10, 2.0, &mut |jit, theta, (la, gi), (lb, gj)| {
            assert_eq!(la.to_bits(), lb.to_bits(), "{g}×{n}: logp {la} vs {lb}");
            for q in 0..gi.len() {
                assert!(close(gi[q], gj[q], 1.0), "{g}×{n}: gradient[{q}] {} vs {}", gi[q], gj[q]);
            }
            let e = jit.eval(theta).expect("finite");
            assert_eq!(e.logp.to_bits(), lb.to_bits(), "{g}×{n}: logp without the gradient");
        });
    }
}

/// The forward entry (each observed variable's distribution at a draw) is the same compiled
/// and interpreted, on every model, at draws mapped from random points of the density's
/// space.
#[test]
fn forward_entry_jit_equals_interpreter_on_every_model() {
    use bnnc::compiled::{Backend, Forward};
    use bnnc::ir::lower::Purpose;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut sites = 0;
    for (model, data) in models() {
        let mut fe = frontend_file(&model);
        let density = fe.program(&model, Some(&data)).expect("lowers");
        let forward = fe.program_for(&model, Some(&data), Purpose::Forward);
        let shown = render(&fe.diags, &fe.sources, Format::Human { color: false });
        let forward = forward.unwrap_or_else(|| panic!("{}: forward program:\n{shown}", model.display()));
        assert_eq!(forward.dim(), density.params.iter().map(|p| p.len()).sum::<usize>(), "{}", model.display());
        let mut interp = Interp::new(&density);
        let mut fi = Forward::new(&forward, Backend::Interp).expect("interp");
        let mut fj = Forward::new(&forward, Backend::Jit).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
        let mut compared = 0;
        for _ in 0..40 {
            if compared == 3 {
                break;
            }
            let theta: Vec<f64> = (0..density.dim()).map(|_| rng.random_range(-2.0..2.0)).collect();
            let Ok(values) = interp.constrained(&theta, false) else { continue };
            let draw: Vec<f64> = values.into_iter().flat_map(|(_, _, v)| v).collect();
            match (fi.eval(&draw), fj.eval(&draw)) {
                (Ok(()), Ok(())) => {}
                (Err(a), Err(b)) => {
                    assert!(a.recoverable && b.recoverable, "{}: {a} / {b}", model.display());
                    continue;
                }
                (a, b) => panic!("{}: interpreter {a:?}, jit {b:?}", model.display()),
            }
            for k in 0..forward.sites.len() {
                let (a, b) = (fi.site(k), fj.site(k));
                assert_eq!(a.execs, b.execs, "{}: site {k} executions", model.display());
                assert!(a.execs > 0, "{}: site {k} never ran", model.display());
                assert_eq!(a.lhs, b.lhs, "{}: site {k} observed values", model.display());
                for (x, y) in a.args.iter().zip(&b.args) {
                    assert_eq!(x.len(), y.len(), "{}: site {k}", model.display());
                    let scale = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                    for (u, v) in x.iter().zip(y.iter()) {
                        assert!(close(*u, *v, scale), "{}: site {k}: {u} vs {v}", model.display());
                    }
                }
                sites += 1;
            }
            compared += 1;
        }
        assert!(compared > 0, "{}: no finite draw found", model.display());
    }
    assert!(sites >= 13, "compared {sites} sites");
}

/// A draw's constrained values and generated quantities come from the draws program, which
/// holds no log density; they equal what a full evaluation of the density program gives.
#[test]
fn draws_program_gives_the_density_programs_values() {
    use bnnc::compiled::{Backend, CompiledModel};
    use bnnc::ir::{Inst, Prim};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for (model, data) in models() {
        let mut fe = frontend_file(&model);
        let density = fe.program(&model, Some(&data)).expect("lowers");
        let draws = density.draws.as_deref().unwrap_or_else(|| panic!("{}: no draws program", model.display()));
        let holds_density = draws
            .blocks
            .iter()
            .flatten()
            .any(|i| matches!(i, Inst::Target { .. } | Inst::Op { prim: Prim::LogDensity(_), .. }));
        assert!(!holds_density, "{}: the draws program evaluates a density", model.display());
        let mut full = Interp::new(&density);
        let mut cm = CompiledModel::new(&density, Backend::Jit).expect("compiles");
        let mut compared = 0;
        for _ in 0..20 {
            let theta: Vec<f64> = (0..density.dim()).map(|_| rng.random_range(-2.0..2.0)).collect();
            let Ok(a) = full.constrained(&theta, true) else { continue };
            let b = cm.constrained(&theta, true).expect("finite where the density is");
            assert_eq!(a, b, "{}", model.display());
            compared += 1;
            if compared == 3 {
                break;
            }
        }
        assert!(compared > 0, "{}: no finite point", model.display());
    }
}

/// Runtime input buffers, tried on dropout masks: a model compiled with masks reads one mask
/// per dropout call; the compiled code and the interpreter agree for any mask; the forward
/// entry computes ((x ⊙ m) / (1 − p)) @ w; and a mask filled with 1 − p gives the density
/// without masks.
#[test]
fn dropout_masks_are_runtime_inputs() {
    use bnnc::compiled::{Backend, Forward};
    use bnnc::ir::lower::{lower_with, Options, Purpose};
    use bnnc::ir::InputKind;
    let dir = std::env::temp_dir().join(format!("bnnc-jit-dropout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let model = dir.join("drop.bnn");
    std::fs::write(
        &model,
        "data {\n  N: int\n  D: int\n  x: matrix[N, D]\n  y: vector[N]\n}\n\
         params {\n  w: vector[D] ~ normal(0, 1)\n  s: real<lower=0> ~ normal(0, 1)\n}\n\
         model {\n  let h = dropout(x, 0.25)\n  y ~ normal(h @ w, s)\n}\n",
    )
    .expect("write");
    let (n, d) = (6usize, 3usize);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let x: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let rows: Vec<Vec<f64>> = x.chunks(d).map(|r| r.to_vec()).collect();
    std::fs::write(model.with_extension("json"), serde_json::json!({"N": n, "D": d, "x": rows, "y": y}).to_string())
        .expect("write");
    let mut fe = frontend_file(&model);
    let bound = fe.bind_data(&model.with_extension("json")).expect("data");
    let el = fe.elaborated.clone().expect("elaborated");
    let masked = Options { dropout_masks: true, ..Default::default() };
    let density = lower_with(&el, &bound, Purpose::Density, masked, &mut fe.diags).expect("lowers");
    let plain = lower_with(&el, &bound, Purpose::Density, Options::default(), &mut fe.diags).expect("lowers");
    let forward = lower_with(&el, &bound, Purpose::Forward, masked, &mut fe.diags).expect("lowers");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(density.inputs.len(), 1);
    assert_eq!(density.inputs[0].shape, vec![n, d]);
    assert_eq!(density.inputs[0].kind, InputKind::DropoutMask { p: 0.25 });
    assert!(plain.inputs.is_empty());

    let mut interp = Interp::new(&density);
    let mut jit = Jit::new(&density).expect("compiles");
    let dim = density.dim();
    let (mut gi, mut gj) = (vec![0.0; dim], vec![0.0; dim]);
    for _ in 0..5 {
        let mask: Vec<f64> = (0..n * d).map(|_| if rng.random_range(0.0..1.0) < 0.25 { 0.0 } else { 1.0 }).collect();
        interp.set_input(0, &mask).expect("mask");
        jit.set_input(0, &mask).expect("mask");
        let theta: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a = interp.eval(&theta).and_then(|e| interp.gradient(&mut gi).map(|_| e)).expect("finite");
        let b = jit.eval_grad(&theta, &mut gj).expect("finite");
        assert!(close(a.logp, b.logp, 1.0), "logp {} vs {}", a.logp, b.logp);
        for k in 0..dim {
            assert!(close(gi[k], gj[k], 1.0), "gradient[{k}] {} vs {}", gi[k], gj[k]);
        }
        // The forward entry's mean is ((x ⊙ m) / 0.75) @ w.
        let w = &theta[..d];
        let mut draw = w.to_vec();
        draw.push(0.5);
        for backend in [Backend::Interp, Backend::Jit] {
            let mut fw = Forward::new(&forward, backend).expect("forward");
            fw.set_input(0, &mask).expect("mask");
            fw.eval(&draw).expect("finite");
            let site = fw.site(0);
            for i in 0..n {
                let want: f64 = (0..d).map(|j| x[i * d + j] * mask[i * d + j] / 0.75 * w[j]).sum();
                assert!(close(site.args[0][i], want, 1.0), "{backend:?} row {i}: {} vs {want}", site.args[0][i]);
            }
        }
        // A mask of 1 − p everywhere undoes the rescaling: the density without masks.
        interp.set_input(0, &vec![0.75; n * d]).expect("mask");
        let c = interp.eval(&theta).expect("finite");
        let mut unmasked = Interp::new(&plain);
        let e = unmasked.eval(&theta).expect("finite");
        assert!(close(c.logp, e.logp, 1.0), "{} vs {}", c.logp, e.logp);
    }
    // A mask of the wrong length is refused.
    assert!(jit.set_input(0, &[1.0]).is_err() && interp.set_input(0, &[1.0]).is_err());
}

/// The density in parts on a minibatch: compiled for B rows chosen at call time, with the
/// likelihood weighted by N/B, it equals prior + (N/B) × (the likelihood of a model whose data
/// hold only those rows); its prior part equals the full density's; compiled code and
/// interpreter agree on the value, the likelihood part and the gradient; and all N rows at
/// weight 1 give the full density.
#[test]
fn minibatch_parts_match_the_density_on_the_same_rows() {
    use bnnc::data::{BoundData, DataVar, Values};
    use bnnc::ir::lower::{lower_for, lower_with, row_size, row_variables, Options, Purpose};
    use bnnc::ir::InputKind;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for name in ["logistic_regression", "bnn_regression", "bnn_classification"] {
        let model = root.join("examples").join(format!("{name}.bnn"));
        let mut fe = frontend_file(&model);
        let bound = fe.bind_data(&model.with_extension("json")).expect("data");
        let el = fe.elaborated.clone().expect("elaborated");
        let size = row_size(&el).unwrap_or_else(|| panic!("{name}: no row size"));
        let rowvars = row_variables(&el);
        let n = bound.int(&size).expect("row count") as usize;
        let b = n.min(7);
        let opts = Options { batch: Some(b), part_weights: true, ..Default::default() };
        let batch = lower_with(&el, &bound, Purpose::Density, opts, &mut fe.diags).expect("batch lowers");
        let full = lower_for(&el, &bound, Purpose::Density, &mut fe.diags).expect("lowers");
        // B distinct rows, and the data holding only them.
        let mut rows: Vec<usize> = (0..n).collect();
        for i in 0..b {
            let j = rng.random_range(i..n);
            rows.swap(i, j);
        }
        rows.truncate(b);
        let subset = BoundData {
            vars: bound
                .vars
                .iter()
                .map(|(v, d)| {
                    if *v == size {
                        return (v.clone(), DataVar { dims: vec![], values: Values::Int(vec![b as i64]) });
                    }
                    if !rowvars.contains(v) {
                        return (v.clone(), d.clone());
                    }
                    let width: usize = d.dims[1..].iter().product();
                    let pick =
                        |i: usize| rows.iter().flat_map(move |r| (r * width..(r + 1) * width).map(move |k| (k, i)));
                    let values = match &d.values {
                        Values::Int(x) => Values::Int(pick(0).map(|(k, _)| x[k]).collect()),
                        Values::Real(x) => Values::Real(pick(0).map(|(k, _)| x[k]).collect()),
                    };
                    let mut dims = d.dims.clone();
                    dims[0] = b;
                    (v.clone(), DataVar { dims, values })
                })
                .collect(),
            ..BoundData::default()
        };
        let sub = lower_for(&el, &subset, Purpose::Density, &mut fe.diags).expect("subset lowers");
        let input = |kind: &InputKind| batch.inputs.iter().position(|i| i.kind == *kind);
        let rows_at = batch.inputs.iter().position(|i| matches!(i.kind, InputKind::Rows { .. })).expect("rows input");
        let lik_w = input(&InputKind::Weight(bnnc::ir::Part::Likelihood)).expect("likelihood weight");
        let scale = n as f64 / b as f64;
        let rows_f: Vec<f64> = rows.iter().map(|r| *r as f64).collect();
        let mut bi = Interp::new(&batch);
        let mut bj = Jit::new(&batch).expect("compiles");
        for (k, v) in [(rows_at, rows_f.clone()), (lik_w, vec![scale])] {
            bi.set_input(k, &v).expect("input");
            bj.set_input(k, &v).expect("input");
        }
        let (mut si, mut fi) = (Interp::new(&sub), Interp::new(&full));
        let dim = batch.dim();
        let (mut gi, mut gj) = (vec![0.0; dim], vec![0.0; dim]);
        let mut compared = 0;
        for _ in 0..40 {
            let theta: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let Ok(s) = si.eval(&theta) else { continue };
            let f = fi.eval(&theta).expect("full finite where the subset is");
            let a = bi.eval(&theta).and_then(|e| bi.gradient(&mut gi).map(|_| e)).expect("batch finite");
            let c = bj.eval_grad(&theta, &mut gj).expect("batch finite (jit)");
            let big = f.logp.abs().max(1.0);
            assert!(
                close(a.likelihood, scale * s.likelihood, big),
                "{name}: {} vs {}",
                a.likelihood,
                scale * s.likelihood
            );
            assert!(close(a.logp - a.likelihood, f.logp - f.likelihood, big), "{name}: prior part");
            assert!(close(a.logp, c.logp, big) && close(a.likelihood, c.likelihood, big), "{name}: jit vs interp");
            let gscale = gi.iter().fold(1.0f64, |m, g| m.max(g.abs()));
            for k in 0..dim {
                assert!(close(gi[k], gj[k], gscale), "{name}: gradient[{k}] {} vs {}", gi[k], gj[k]);
            }
            compared += 1;
            if compared == 3 {
                break;
            }
        }
        assert!(compared > 0, "{name}: no finite point");
        // Every row at weight 1: the full density.
        let all = Options { batch: Some(n), part_weights: true, ..Default::default() };
        let whole = lower_with(&el, &bound, Purpose::Density, all, &mut fe.diags).expect("lowers");
        let mut wi = Interp::new(&whole);
        let k = whole.inputs.iter().position(|i| matches!(i.kind, InputKind::Rows { .. })).expect("rows");
        wi.set_input(k, &(0..n).map(|r| r as f64).collect::<Vec<_>>()).expect("rows");
        let theta = vec![0.1; dim];
        let (w, f) = (wi.eval(&theta).expect("finite"), fi.eval(&theta).expect("finite"));
        assert!(close(w.logp, f.logp, f.logp.abs().max(1.0)), "{name}: {} vs {}", w.logp, f.logp);
    }
    // Eight schools has a parameter per school, its rows: no minibatch can update it.
    let model = root.join("examples/eight_schools.bnn");
    let mut fe = frontend_file(&model);
    let bound = fe.bind_data(&model.with_extension("json")).expect("data");
    let el = fe.elaborated.clone().expect("elaborated");
    let opts = Options { batch: Some(4), ..Default::default() };
    assert!(lower_with(&el, &bound, Purpose::Density, opts, &mut fe.diags).is_none());
    let shown = render(&fe.diags, &fe.sources, Format::Human { color: false });
    assert!(shown.contains("E0611") && shown.contains("`eta` has a value per observation row"), "{shown}");
}

/// A multivariate family over a stack of variates — a matrix's rows or an array of vectors,
/// with the mean one vector or one per row — is the sum of the family over each variate: the
/// stacked statement and a loop of one variate at a time give the same log density and
/// gradient, compiled and interpreted.
#[test]
fn stacked_multivariate_variates_equal_a_loop_over_them() {
    let y = matrix_json(7, 3, |i, j| ((i * 3 + j) as f64 * 0.37).sin() * 2.0);
    let data = format!("{{\"J\": 7, \"y\": {y}, \"a\": {y}}}");
    let decls = "data {\n  J: int<lower=1>\n  y: array[J] vector[3]\n  a: matrix[J, 3]\n}\nparams {\n  mu: vector[3]\n  theta: array[J] vector[3]\n  tau: vector<lower=0>[3]\n  L: cholesky_corr[3]\n}\n";
    let stacked = format!(
        "{decls}model {{\n  tau ~ half_normal(2)\n  L ~ lkj_corr_cholesky(2)\n  theta ~ multi_normal_cholesky(mu, diag_matrix(tau) @ L)\n  y ~ multi_normal_cholesky(theta, diag_matrix(tau) @ L)\n  a ~ multi_normal(mu, diag_matrix(tau * tau))\n}}\n"
    );
    let looped = format!(
        "{decls}model {{\n  tau ~ half_normal(2)\n  L ~ lkj_corr_cholesky(2)\n  for j in 0..J {{\n    theta[j] ~ multi_normal_cholesky(mu, diag_matrix(tau) @ L)\n    y[j] ~ multi_normal_cholesky(theta[j], diag_matrix(tau) @ L)\n    a[j, :] ~ multi_normal(mu, diag_matrix(tau * tau))\n  }}\n}}\n"
    );
    let ps = lower_temp("stacked", &stacked, &data);
    let pl = lower_temp("looped", &looped, &data);
    let mut js = Jit::new(&ps).expect("compiles");
    agree_at_random_points(&mut Interp::new(&ps), &mut js, 11, 5, "stacked");
    same_density(&ps, &pl, 12, 1e-10);
}

/// An array of constrained vectors or correlation factors is that many constrained values,
/// each with its own transform: `array[2] simplex[3]` has 2 × 2 free values, not the 5 of one
/// simplex of 6. At the same unconstrained point it has the log density (Jacobian included)
/// and gradient of the same values declared one by one, compiled and interpreted.
#[test]
fn arrays_of_constrained_vectors_transform_each_vector() {
    let data = "{\"alpha\": [1.5, 2.0, 3.0]}";
    let body = "  for i in 0..2 {\n    p[i] ~ dirichlet(alpha)\n    o[i] ~ normal(0, 2)\n    q[i] ~ gamma(2, 1)\n    L[i] ~ lkj_corr_cholesky(1.5)\n  }\n";
    let stacked = format!(
        "data {{\n  alpha: vector<lower=0>[3]\n}}\nparams {{\n  p: array[2] simplex[3]\n  o: array[2] ordered[3]\n  q: array[2] positive_ordered[2]\n  L: array[2] cholesky_corr[3]\n}}\nmodel {{\n{body}}}\n"
    );
    let one_by_one = "data {\n  alpha: vector<lower=0>[3]\n}\nparams {\n  p0: simplex[3]\n  p1: simplex[3]\n  o0: ordered[3]\n  o1: ordered[3]\n  q0: positive_ordered[2]\n  q1: positive_ordered[2]\n  L0: cholesky_corr[3]\n  L1: cholesky_corr[3]\n}\nmodel {\n  p0 ~ dirichlet(alpha)\n  p1 ~ dirichlet(alpha)\n  o0 ~ normal(0, 2)\n  o1 ~ normal(0, 2)\n  q0 ~ gamma(2, 1)\n  q1 ~ gamma(2, 1)\n  L0 ~ lkj_corr_cholesky(1.5)\n  L1 ~ lkj_corr_cholesky(1.5)\n}\n";
    let ps = lower_temp("stack", &stacked, data);
    let po = lower_temp("onebyone", one_by_one, data);
    assert_eq!(ps.dim(), 2 * 2 + 2 * 3 + 2 * 2 + 2 * 3);
    let mut js = Jit::new(&ps).expect("compiles");
    agree_at_random_points(&mut Interp::new(&ps), &mut js, 21, 5, "stacked constraints");
    // The one-by-one program orders its free values p0 p1 o0 o1 ..., as the stack does.
    same_density(&ps, &po, 22, 1e-12);
}

/// Assigning through a chain of single indices, `g[t][k] = ...`, is assigning to `g[t, k]`:
/// a hidden Markov model's forward algorithm written both ways has the same log density and
/// gradient.
#[test]
fn chained_index_assignment_equals_one_index_list() {
    let data = "{\"T\": 6, \"y\": [0.3, -1.2, 0.8, 2.1, -0.4, 1.5]}";
    let model = |chain: bool| {
        let (set, get) = if chain { ("gamma[t][k]", "gamma[t - 1][j]") } else { ("gamma[t, k]", "gamma[t - 1, j]") };
        let first = if chain { "gamma[0][k]" } else { "gamma[0, k]" };
        format!(
            "data {{\n  T: int<lower=1>\n  y: vector[T]\n}}\nparams {{\n  theta: array[2] simplex[2]\n  mu: ordered[2] ~ normal(0, 3)\n  sigma: real<lower=0> ~ half_normal(2)\n}}\nmodel {{\n  var acc: vector[2]\n  var gamma: array[T] vector[2]\n  for k in 0..2 {{\n    {first} = normal_lpdf(y[0], mu[k], sigma)\n  }}\n  for t in 1..T {{\n    for k in 0..2 {{\n      for j in 0..2 {{\n        acc[j] = {get} + log(theta[j][k]) + normal_lpdf(y[t], mu[k], sigma)\n      }}\n      {set} = log_sum_exp(acc)\n    }}\n  }}\n  target += log_sum_exp(gamma[T - 1])\n}}\n"
        )
    };
    let pc = lower_temp("chain", &model(true), data);
    let pl = lower_temp("list", &model(false), data);
    same_density(&pc, &pl, 31, 0.0);
    let mut jc = Jit::new(&pc).expect("compiles");
    agree_at_random_points(&mut Interp::new(&pc), &mut jc, 32, 5, "chained assignment");
}

/// Two programs over the same unconstrained space have the same log density, log-Jacobian
/// and gradient (interpreted) at five random points in [−1.5, 1.5)ᵈ: within `tol` relative to
/// the larger magnitude (to the largest gradient element for the gradient), 0 for equal bits.
fn same_density(a: &bnnc::ir::Program, b: &bnnc::ir::Program, seed: u64, tol: f64) {
    assert_eq!(a.dim(), b.dim());
    let (mut ia, mut ib) = (Interp::new(a), Interp::new(b));
    let dim = a.dim();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut ga, mut gb) = (vec![0.0; dim], vec![0.0; dim]);
    let near = |p: f64, q: f64, scale: f64| (p - q).abs() <= tol * scale;
    for _ in 0..5 {
        let theta: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.5..1.5)).collect();
        let x = ia.eval(&theta).and_then(|e| ia.gradient(&mut ga).map(|_| e)).expect("finite");
        let y = ib.eval(&theta).and_then(|e| ib.gradient(&mut gb).map(|_| e)).expect("finite");
        assert!(near(x.logp, y.logp, x.logp.abs().max(1.0)), "logp {} vs {}", x.logp, y.logp);
        assert!(near(x.jacobian, y.jacobian, x.jacobian.abs().max(1.0)), "jacobian {} vs {}", x.jacobian, y.jacobian);
        let scale = ga.iter().fold(1.0f64, |m, g| m.max(g.abs()));
        for k in 0..dim {
            assert!(near(ga[k], gb[k], scale), "gradient[{k}] {} vs {}", ga[k], gb[k]);
        }
    }
}

/// A shape variable of a `fn`'s argument type is an int in its body, bound at each call to
/// the argument's size: a hand-written mean over `0..n` equals `mean`, for two sizes.
#[test]
fn shape_variables_are_ints_in_function_bodies() {
    let data = "{\"N\": 5, \"y\": [0.3, -1.2, 0.8, 2.1, -0.4], \"z\": [1.0, 2.0, 4.5]}";
    let head = "data {\n  N: int<lower=1>\n  y: vector[N]\n  z: vector[3]\n}\nparams {\n  mu: real\n}\n";
    let by_hand = format!(
        "fn avg(a: vector[n]) -> real {{\n  var acc: real = 0\n  for i in 0..n {{\n    acc += a[i]\n  }}\n  return acc / n\n}}\n{head}model {{\n  target += -square(avg(y) - mu) - square(avg(z) - mu)\n}}\n"
    );
    let built_in = format!("{head}model {{\n  target += -square(mean(y) - mu) - square(mean(z) - mu)\n}}\n");
    let (ph, pb) = (lower_temp("byhand", &by_hand, data), lower_temp("builtin", &built_in, data));
    let (mut ih, mut ib) = (Interp::new(&ph), Interp::new(&pb));
    for mu in [-1.0, 0.25, 2.0] {
        let (a, b) = (ih.eval(&[mu]).expect("finite"), ib.eval(&[mu]).expect("finite"));
        assert!((a.logp - b.logp).abs() <= 1e-12 * b.logp.abs().max(1.0), "{} vs {}", a.logp, b.logp);
    }
}

/// `c ? a : b` runs only the branch taken, as `if` does: an index the condition guards
/// (`h >= 1 ? y[h - 1] : ...` at h = 0) is accepted and never read, and the density and its
/// gradient equal the `if` statement's, interpreted and compiled. A condition on a parameter
/// keeps both branches, nested in one on the loop index.
#[test]
fn a_conditional_expression_reads_only_the_branch_taken() {
    let data = "{\"N\": 4, \"y\": [0.5, 1.2, 0.7, 2.0]}";
    let head = "data {\n  N: int\n  y: vector[N]\n}\nparams {\n  m: real ~ normal(0, 1)\n  s: real<lower=0> ~ normal(0, 1)\n}\n";
    let ternary = format!(
        "{head}model {{\n  for h in 0..N {{\n    y[h] ~ normal(h >= 1 ? y[h - 1] * m : (m > 0 ? y[N - 1] : m), s)\n  }}\n}}\n"
    );
    let statements = format!(
        "{head}model {{\n  for h in 0..N {{\n    if h >= 1 {{\n      y[h] ~ normal(y[h - 1] * m, s)\n    }} else {{\n      y[h] ~ normal(m > 0 ? y[N - 1] : m, s)\n    }}\n  }}\n}}\n"
    );
    let (pt, ps) = (lower_temp("ternary", &ternary, data), lower_temp("statements", &statements, data));
    same_density(&pt, &ps, 7, 1e-12);
    agree_on_model("ternary_jit", &ternary, data, 8, "a conditional expression");
}
