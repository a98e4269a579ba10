//! The rewrites of src/ir/rewrite.rs: Gaussian sufficient statistics and affine means. They
//! apply where the pattern is (diamonds, sblrc, nes, kidiq: no O(N) operation remains in the
//! density), and the rewritten log density equals the normal density summed row by row,
//! computed here from the data with plain loops, at random points.

use bnnc::driver::frontend_file;
use bnnc::ir::interp::Interp;
use bnnc::ir::{Inst, Prim, Program};
use rand::{RngExt, SeedableRng};
use std::path::Path;

fn program(name: &str) -> (Program, serde_json::Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/posteriordb").join(name);
    let model = root.join("model.bnn");
    let data = root.join("data.json");
    let mut fe = frontend_file(&model);
    let p = fe.program(&model, Some(&data)).expect("lowers");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&data).expect("data")).expect("json");
    (p, json)
}

/// The instructions of the density's blocks (not generated quantities).
fn density_insts(p: &Program) -> impl Iterator<Item = &Inst> {
    let gen = p.generated.map(|b| b.0 as usize);
    p.blocks.iter().enumerate().filter(move |(b, _)| Some(*b) != gen).flat_map(|(_, block)| block.iter())
}

/// Matrix products whose first operand has at least `rows` rows, in the density's blocks.
fn big_products(p: &Program, rows: usize) -> usize {
    density_insts(p)
        .filter(|i| matches!(i, Inst::Op { prim: Prim::MatMul, args, .. } if p.info(args[0]).shape.first().is_some_and(|r| *r >= rows)))
        .count()
}

fn normal_lpdf(y: f64, mu: f64, s: f64) -> f64 {
    let z = (y - mu) / s;
    -0.5 * z * z - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

fn matrix(v: &serde_json::Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_array().expect("row").iter().map(|x| x.as_f64().expect("number")).collect())
        .collect()
}

fn vector(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().expect("vector").iter().map(|x| x.as_f64().expect("number")).collect()
}

/// logp of `program` at random points against `direct(constrained values) `, relative `tol`.
type Values = [(String, Vec<usize>, Vec<f64>)];

fn compare(p: &Program, direct: &dyn Fn(&Values) -> f64, tol: f64) {
    let mut interp = Interp::new(p);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut checked = 0;
    for _ in 0..50 {
        if checked == 10 {
            break;
        }
        let theta: Vec<f64> = (0..p.dim()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let Ok(e) = interp.eval(&theta) else { continue };
        let vals = interp.constrained(&theta, false).expect("constrained");
        let want = direct(&vals);
        assert!((e.logp - want).abs() <= tol * want.abs().max(1.0), "logp {} vs direct {}", e.logp, want);
        checked += 1;
    }
    assert!(checked >= 5, "too few finite points");
}

fn get<'a>(vals: &'a [(String, Vec<usize>, Vec<f64>)], name: &str) -> &'a [f64] {
    &vals.iter().find(|(n, _, _)| n == name).expect("parameter").2
}

#[test]
fn diamonds_is_rewritten_and_keeps_its_log_density() {
    let (p, d) = program("diamonds-diamonds");
    assert_eq!(big_products(&p, 5000), 0, "the 5000-row product should be gone");
    let x = matrix(&d["X"]);
    let y = vector(&d["Y"]);
    let k = x[0].len();
    // Xc: columns 1.. of X, centred.
    let n = x.len() as f64;
    let means: Vec<f64> = (1..k).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    let direct = |v: &[(String, Vec<usize>, Vec<f64>)]| {
        let (b, a, s) = (get(v, "b"), get(v, "Intercept")[0], get(v, "sigma")[0]);
        let mut lp = 0.0;
        for bj in b {
            lp += normal_lpdf(*bj, 0.0, 1.0);
        }
        let t = |x: f64, nu: f64, mu: f64, sc: f64| {
            let z = (x - mu) / sc;
            statrs::function::gamma::ln_gamma((nu + 1.0) / 2.0)
                - statrs::function::gamma::ln_gamma(nu / 2.0)
                - 0.5 * (nu * std::f64::consts::PI).ln()
                - sc.ln()
                - (nu + 1.0) / 2.0 * (1.0 + z * z / nu).ln()
        };
        lp += t(a, 3.0, 8.0, 10.0) + t(s, 3.0, 0.0, 10.0);
        for (row, yi) in x.iter().zip(&y) {
            let mu = a + (1..k).map(|j| (row[j] - means[j - 1]) * b[j - 1]).sum::<f64>();
            lp += normal_lpdf(*yi, mu, s);
        }
        lp
    };
    compare(&p, &direct, 1e-9);
}

#[test]
fn sblrc_is_rewritten_and_keeps_its_log_density() {
    let (p, d) = program("sblrc-blr");
    assert_eq!(big_products(&p, 100), 0, "the 100-row product should be gone");
    let x = matrix(&d["X"]);
    let y = vector(&d["y"]);
    let direct = |v: &[(String, Vec<usize>, Vec<f64>)]| {
        let (b, s) = (get(v, "beta"), get(v, "sigma")[0]);
        let mut lp: f64 = b.iter().map(|bj| normal_lpdf(*bj, 0.0, 10.0)).sum();
        lp += normal_lpdf(s, 0.0, 10.0);
        for (row, yi) in x.iter().zip(&y) {
            let mu: f64 = row.iter().zip(b).map(|(xv, bj)| xv * bj).sum();
            lp += normal_lpdf(*yi, mu, s);
        }
        lp
    };
    compare(&p, &direct, 1e-9);
}

/// Operations of the density (outside generated quantities) whose result has at least `n`
/// elements, other than constants: what still costs O(N) per gradient.
fn long_ops(p: &Program, n: usize) -> usize {
    density_insts(p)
        .filter(
            |i| matches!(i, Inst::Op { dst, prim, .. } if !matches!(prim, Prim::Const(_)) && p.info(*dst).len() >= n),
        )
        .count()
}

#[test]
fn nes_term_by_term_mean_becomes_a_product_and_keeps_its_log_density() {
    let (p, d) = program("nes1972-nes");
    let y = vector(&d["partyid7"]);
    assert_eq!(long_ops(&p, y.len()), 0, "no operation over the 1330 rows should remain");
    let cols: Vec<Vec<f64>> =
        ["real_ideo", "race_adj", "educ1", "gender", "income"].iter().map(|c| vector(&d[*c])).collect();
    let age = vector(&d["age_discrete"]);
    let direct = |v: &[(String, Vec<usize>, Vec<f64>)]| {
        let (b, s) = (get(v, "beta"), get(v, "sigma")[0]);
        let mut lp = 0.0;
        for i in 0..y.len() {
            let ind = |k: f64| if age[i] == k { 1.0 } else { 0.0 };
            let mu = b[0]
                + b[1] * cols[0][i]
                + b[2] * cols[1][i]
                + b[3] * ind(2.0)
                + b[4] * ind(3.0)
                + b[5] * ind(4.0)
                + b[6] * cols[2][i]
                + b[7] * cols[3][i]
                + b[8] * cols[4][i];
            lp += normal_lpdf(y[i], mu, s);
        }
        lp
    };
    compare(&p, &direct, 1e-9);
}

#[test]
fn kidiq_interaction_mean_with_a_data_product_becomes_a_product_and_keeps_its_log_density() {
    let (p, d) = program("kidiq-kidscore_interaction");
    let y = vector(&d["kid_score"]);
    assert_eq!(long_ops(&p, y.len()), 0, "no operation over the rows should remain");
    let (hs, iq) = (vector(&d["mom_hs"]), vector(&d["mom_iq"]));
    let direct = |v: &[(String, Vec<usize>, Vec<f64>)]| {
        let (b, s) = (get(v, "beta"), get(v, "sigma")[0]);
        // sigma ~ cauchy(0, 2.5), beta flat.
        let mut lp = -(std::f64::consts::PI * 2.5).ln() - (1.0 + (s / 2.5).powi(2)).ln();
        for i in 0..y.len() {
            let mu = b[0] + b[1] * hs[i] + b[2] * iq[i] + b[3] * hs[i] * iq[i];
            lp += normal_lpdf(y[i], mu, s);
        }
        lp
    };
    compare(&p, &direct, 1e-9);
}

// ---- loops to array operations (src/ir/vectorise.rs) ---------------------------------------

/// Loops left in the density's blocks.
fn loops(p: &Program) -> usize {
    density_insts(p).filter(|i| matches!(i, Inst::For { .. })).count()
}

fn log_mix(t: f64, a: f64, b: f64) -> f64 {
    let (x, z) = (t.ln() + a, (1.0 - t).ln() + b);
    let m = x.max(z);
    m + ((x - m).exp() + (z - m).exp()).ln()
}

#[test]
fn a_mixture_loop_becomes_array_operations_and_keeps_its_log_density() {
    let (p, d) = program("low_dim_gauss_mix-low_dim_gauss_mix");
    assert_eq!(loops(&p), 0, "the loop over the 1000 rows should be gone");
    let y = vector(&d["y"]);
    let direct = |v: &Values| {
        let (mu, s, t) = (get(v, "mu"), get(v, "sigma"), get(v, "theta")[0]);
        let beta_5_5 = |x: f64| {
            use statrs::function::gamma::ln_gamma;
            4.0 * x.ln() + 4.0 * (1.0 - x).ln() + ln_gamma(10.0) - 2.0 * ln_gamma(5.0)
        };
        let mut lp: f64 = mu.iter().chain(s).map(|x| normal_lpdf(*x, 0.0, 2.0)).sum::<f64>() + beta_5_5(t);
        for yi in &y {
            lp += log_mix(t, normal_lpdf(*yi, mu[0], s[0]), normal_lpdf(*yi, mu[1], s[1]));
        }
        lp
    };
    compare(&p, &direct, 1e-9);
}

#[test]
fn an_autoregression_becomes_sufficient_statistics_and_keeps_its_log_density() {
    let (p, d) = program("arK-arK");
    // The loop over the K = 5 lags is unrolled, the one over time becomes array operations,
    // the mean a product with a 195×5 matrix of lagged data, and the density a function of
    // that matrix's sufficient statistics.
    assert_eq!(loops(&p), 0);
    assert_eq!(long_ops(&p, 195), 0, "no operation over the 195 time points should remain");
    let y = vector(&d["y"]);
    let k = d["K"].as_u64().expect("K") as usize;
    let direct = |v: &Values| {
        let (a, b, s) = (get(v, "alpha")[0], get(v, "beta"), get(v, "sigma")[0]);
        let mut lp = normal_lpdf(a, 0.0, 10.0) + b.iter().map(|x| normal_lpdf(*x, 0.0, 10.0)).sum::<f64>();
        lp += -(std::f64::consts::PI * 2.5).ln() - (1.0 + (s / 2.5).powi(2)).ln();
        for t in k..y.len() {
            let mu = a + (0..k).map(|j| b[j] * y[t - j - 1]).sum::<f64>();
            lp += normal_lpdf(y[t], mu, s);
        }
        lp
    };
    compare(&p, &direct, 1e-9);
}

#[test]
fn a_loop_with_a_carried_dependence_stays_a_loop() {
    let (p, _) = program("garch-garch11");
    assert_eq!(loops(&p), 1);
    let (p, _) = program("arma-arma11");
    assert_eq!(loops(&p), 1);
}

/// A model written in a temporary directory, lowered with its data.
fn program_text(name: &str, model: &str, data: &str) -> Program {
    let dir = std::env::temp_dir().join(format!("bnnc-rewrite-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (m, d) = (dir.join("model.bnn"), dir.join("model.json"));
    std::fs::write(&m, model).expect("write model");
    std::fs::write(&d, data).expect("write data");
    let mut fe = frontend_file(&m);
    let p = fe.program(&m, Some(&d)).expect("lowers");
    let _ = std::fs::remove_dir_all(&dir);
    p
}

#[test]
fn gathers_private_vars_and_invariant_terms_vectorise_and_keep_the_log_density() {
    let g = [0usize, 2, 1, 1, 0, 2, 2, 1];
    let y = [0.3, -1.2, 0.8, 2.1, -0.4, 1.7, 0.1, -0.9];
    let data = serde_json::json!({ "N": 8, "J": 3, "g": g, "y": y }).to_string();
    let model = "
data {
  N: int<lower=0>
  J: int<lower=1>
  g: array[N] int
  y: vector[N]
}
params {
  theta: vector[J] ~ normal(0, 1)
  sigma: real<lower=0> ~ normal(0, 1)
}
model {
  for n in 0..N {
    var m: real = theta[g[n]]
    m = 0.5 * m + 0.25
    y[n] ~ normal(m, sigma)
    target += 0.1 * normal_lpdf(y[n], theta[g[n]], 2.0 * sigma) - 0.01 * sigma
  }
}
";
    let p = program_text("gather", model, &data);
    assert_eq!(loops(&p), 0);
    assert!(density_insts(&p)
        .any(|i| matches!(i, Inst::Op { prim: Prim::Index(ix), .. } if ix[..] == [bnnc::ir::prim::Ix::Gather])));
    let direct = |v: &Values| {
        let (th, s) = (get(v, "theta"), get(v, "sigma")[0]);
        let mut lp = th.iter().map(|x| normal_lpdf(*x, 0.0, 1.0)).sum::<f64>() + normal_lpdf(s, 0.0, 1.0);
        for n in 0..8 {
            let m = 0.5 * th[g[n]] + 0.25;
            lp += normal_lpdf(y[n], m, s) + 0.1 * normal_lpdf(y[n], th[g[n]], 2.0 * s) - 0.01 * s;
        }
        lp
    };
    compare(&p, &direct, 1e-12);
    gradients_agree(&p, 1e-6);
}

/// The interpreter's gradient against central differences of step `h`, and the compiled
/// gradient against the interpreter's, at random points.
fn gradients_agree(p: &Program, h: f64) {
    let mut interp = Interp::new(p);
    let mut jit = bnnc::jit::Jit::new(p).expect("compiles");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let dim = p.dim();
    let (mut gi, mut gj) = (vec![0.0; dim], vec![0.0; dim]);
    for _ in 0..5 {
        let theta: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let e = interp.eval(&theta).expect("finite");
        interp.gradient(&mut gi).expect("gradient");
        let f = jit.eval_grad(&theta, &mut gj).expect("finite");
        assert!((e.logp - f.logp).abs() <= 1e-12 * e.logp.abs().max(1.0));
        for k in 0..dim {
            let (mut a, mut b) = (theta.clone(), theta.clone());
            a[k] += h;
            b[k] -= h;
            let total = |t: &[f64], i: &mut Interp| {
                let e = i.eval(t).expect("finite");
                e.logp + e.jacobian
            };
            let fd = (total(&a, &mut interp) - total(&b, &mut interp)) / (2.0 * h);
            assert!((fd - gi[k]).abs() <= 1e-5 * fd.abs().max(1.0), "gradient[{k}] {} vs differences {fd}", gi[k]);
            assert!((gj[k] - gi[k]).abs() <= 1e-12 * gi[k].abs().max(1.0), "jit gradient[{k}] {} vs {}", gj[k], gi[k]);
        }
    }
}

// ---- row blocks (src/ir/rowblock.rs) --------------------------------------------------------

const NETWORK: &str = "
data {
  N: int<lower=1>
  K: int<lower=1>
  x: matrix[N, K]
  y: vector[N]
}
params {
  W: matrix[K, 5]
  b: vector[5]
  v: vector[5]
  c: real
  s: real<lower=0>
}
model {
  let h = tanh(x @ W + b)
  y ~ normal(h @ v + c, s)
  W ~ normal(0, 1)
  b ~ normal(0, 1)
  v ~ normal(0, 1)
  c ~ normal(0, 1)
  s ~ lognormal(0, 1)
}
";

/// A network's data: `n` rows of 4 features and a target.
fn network_data(n: usize) -> (Vec<Vec<f64>>, Vec<f64>, String) {
    let x: Vec<Vec<f64>> =
        (0..n).map(|i| (0..4).map(|j| ((i * (j + 3) + j) % 19) as f64 / 9.0 - 1.0).collect()).collect();
    let y: Vec<f64> = (0..n).map(|i| ((i * 7) % 23) as f64 / 11.0 - 1.0).collect();
    let json = serde_json::json!({"N": n, "K": 4, "x": x, "y": y}).to_string();
    (x, y, json)
}

/// Matrix products in loop bodies (not the density's top level), and the rows they take.
fn blocked_products(p: &Program) -> Vec<usize> {
    p.blocks
        .iter()
        .skip(1)
        .flatten()
        .filter_map(|i| match i {
            Inst::Op { prim: Prim::MatMul, args, .. } => p.info(args[0]).shape.first().copied(),
            _ => None,
        })
        .collect()
}

/// 12,000 rows: the network becomes a loop over blocks of rows (and the rows left over), with
/// the log density of the network written row by row, and gradients equal to central
/// differences in both backends (a step of 1e-4: with a log density near −3·10⁴, rounding
/// alone moves differences of step 1e-6 by about 1e-5).
#[test]
fn a_network_over_data_rows_runs_in_blocks_and_keeps_its_log_density() {
    let (x, y, data) = network_data(12000);
    let p = program_text("network", NETWORK, &data);
    assert_eq!(loops(&p), 1, "one loop over blocks of rows");
    let rows = blocked_products(&p);
    assert!(!rows.is_empty() && rows.iter().all(|r| *r < 12000 / 2), "products on blocks of rows: {rows:?}");
    assert_eq!(big_products(&p, 12000), 0, "no product over all rows is left");
    let direct = |v: &[(String, Vec<usize>, Vec<f64>)]| {
        let (w, b, vv, c, s) = (get(v, "W"), get(v, "b"), get(v, "v"), get(v, "c")[0], get(v, "s")[0]);
        let mut lp: f64 = w.iter().chain(b).chain(vv).map(|t| normal_lpdf(*t, 0.0, 1.0)).sum();
        lp += normal_lpdf(c, 0.0, 1.0) + normal_lpdf(s.ln(), 0.0, 1.0) - s.ln();
        for (row, yi) in x.iter().zip(&y) {
            let mut f = c;
            for u in 0..5 {
                let z: f64 = b[u] + (0..4).map(|j| row[j] * w[j * 5 + u]).sum::<f64>();
                f += z.tanh() * vv[u];
            }
            lp += normal_lpdf(*yi, f, s);
        }
        lp
    };
    compare(&p, &direct, 1e-10);
    gradients_agree(&p, 1e-4);
}

/// A hidden layer that something besides its density reads stays one operation over all
/// rows, as do networks whose values fit in cache (2,000 rows here).
#[test]
fn a_network_read_elsewhere_or_on_few_rows_stays_whole() {
    let (_, _, data) = network_data(12000);
    let read = NETWORK.replace("  W ~ normal(0, 1)", "  target += -0.01 * sum(h * h)\n  W ~ normal(0, 1)");
    let p = program_text("network-read", &read, &data);
    assert_eq!((loops(&p), big_products(&p, 12000)), (0, 2));
    let (_, _, data) = network_data(2000);
    let p = program_text("network-small", NETWORK, &data);
    assert_eq!((loops(&p), big_products(&p, 2000)), (0, 2));
}

fn count_family(p: &Program, f: bnnc::math::dist::Family) -> usize {
    density_insts(p).filter(|i| matches!(i, Inst::Op { prim: Prim::LogDensity(g), .. } if *g == f)).count()
}

/// `bernoulli(col(p, 0))` with `p` a network's sigmoid output layer, and `categorical` of a
/// softmax, become the `_logit` families: the same log density (against the direct sum) at
/// ordinary points, and a finite one where the sigmoid rounds to 1.
#[test]
fn probabilities_from_a_sigmoid_or_softmax_become_logit_forms() {
    use bnnc::math::dist::Family;
    let x: Vec<f64> = (0..12).map(|i| -1.5 + i as f64 * 0.25).collect();
    let y: Vec<u8> = x.iter().map(|v| (*v > 0.1) as u8).collect();
    let data = format!(
        r#"{{"N": 12, "x": [{}], "y": [{}]}}"#,
        x.iter().map(|v| format!("[{v}]")).collect::<Vec<_>>().join(", "),
        y.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
    );
    let model = "data {\n  N: int\n  x: matrix[N, 1]\n  y: array[N] int\n}\nparams {\n  a: real ~ normal(0, 100)\n}\nmodel {\n  let p = dense(x * a, 1, act = sigmoid)\n  y ~ bernoulli(col(p, 0))\n}\n";
    let p = program_text("sigmoid", model, &data);
    assert_eq!(count_family(&p, Family::Bernoulli), 0);
    assert_eq!(count_family(&p, Family::BernoulliLogit), 1);
    let direct = |vals: &Values| {
        let (a, w, b) = (get(vals, "a")[0], get(vals, "p.W")[0], get(vals, "p.b")[0]);
        let prior = |v: f64, s: f64| -0.5 * (v / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
        let lik: f64 = x
            .iter()
            .zip(&y)
            .map(|(xi, yi)| {
                let q = 1.0 / (1.0 + (-(xi * a * w + b)).exp());
                if *yi == 1 {
                    q.ln()
                } else {
                    (1.0 - q).ln()
                }
            })
            .sum();
        lik + prior(a, 100.0) + prior(w, 1.0) + prior(b, 1.0)
    };
    compare(&p, &direct, 1e-10);
    // a = 100, weight 1, bias 0: the unit at x = −1.5 has logit −150, where the sigmoid is
    // about 1e−65 and its y = 0; at x = 1.5 the sigmoid rounds to 1 with y = 1. Finite.
    let mut interp = Interp::new(&p);
    let e = interp.eval(&[100.0, 1.0, 0.0]).expect("finite");
    assert!(e.logp.is_finite(), "{}", e.logp);

    let model = "data {\n  N: int\n  x: matrix[N, 1]\n  y: array[N] int\n}\nmodel {\n  y ~ categorical(softmax(dense(x, 2)))\n}\n";
    let p = program_text("softmax", model, &data);
    assert_eq!(count_family(&p, Family::Categorical), 0);
    assert_eq!(count_family(&p, Family::CategoricalLogit), 1);
}
