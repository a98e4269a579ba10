//! Small models through the whole pipeline (front end, lowering with data, the interpreter's
//! forward and reverse sweeps): logp against a value computed here by a plain Rust loop, the
//! Jacobian term against its closed form, and the gradient against finite differences.
//! Each model is written, with its `.json` data file beside it, to a fresh temporary
//! directory.

use crate::closed::normal_lpdf;
use crate::helpers::{assert_close, five_point, step, Rng, GRAD_TOL};
use bnnc::diag::{render, Format};
use bnnc::driver::frontend_file;
use bnnc::ir::interp::Interp;
use bnnc::ir::Program;
use std::path::PathBuf;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Write `name.bnn` and `name.json` to a fresh directory and lower them.
fn compile(name: &str, src: &str, data: &str) -> Program {
    let dir: PathBuf = std::env::temp_dir().join(format!("bnnc-prim-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join(format!("{name}.bnn"));
    std::fs::write(&model, src).unwrap();
    std::fs::write(model.with_extension("json"), data).unwrap();
    let mut fe = frontend_file(&model);
    let p = fe.program(&model, None);
    let shown = render(&fe.diags, &fe.sources, Format::Human { color: false });
    let _ = std::fs::remove_dir_all(&dir);
    p.unwrap_or_else(|| panic!("{name} should compile:\n{shown}"))
}

/// At `theta`: logp and the Jacobian term equal the hand-computed values, and the gradient
/// of logp + jacobian equals five-point finite differences.
fn check_point(name: &str, p: &Program, theta: &[f64], want_logp: f64, want_jac: f64) {
    let mut it = Interp::new(p);
    let e = it.eval(theta).unwrap_or_else(|e| panic!("{name} at {theta:?}: {e:?}"));
    assert_close(e.logp, want_logp, 1e-10, &|| format!("{name}: logp at {theta:?}"));
    assert_close(e.jacobian, want_jac, 1e-10, &|| format!("{name}: jacobian at {theta:?}"));
    let mut grad = vec![0.0; theta.len()];
    it.gradient(&mut grad).unwrap_or_else(|e| panic!("{name}: gradient at {theta:?}: {e:?}"));
    for i in 0..theta.len() {
        let fd = five_point(step(theta[i]), |d| {
            let mut t = theta.to_vec();
            t[i] += d;
            let e = it.eval(&t).expect("finite near the point");
            e.logp + e.jacobian
        });
        assert_close(grad[i], fd, GRAD_TOL, &|| format!("{name}: gradient element {i} at {theta:?} (all: {grad:?})"));
    }
}

fn param_names(p: &Program) -> Vec<(String, usize, usize)> {
    p.params.iter().map(|l| (l.name.clone(), l.offset, l.free_len)).collect()
}

const POINTS: usize = 12;

/// A `var` overwritten on every iteration of a loop (AR-style recurrences, one linear as in
/// `s = s * rho + mu * y[t]`, one nonlinear so the reverse sweep needs each iteration's own
/// old value), then read after the loop.
#[test]
fn overwritten_var_in_a_loop() {
    let y = [0.3, -1.2, 0.8, 2.0, -0.4, 1.1];
    let src = "
data {
  N: int<lower=1>
  y: vector[N]
}
params {
  mu: real
  rho: real
}
model {
  var s: real = 0
  for t in 0..N {
    s = s * rho + mu * y[t]
  }
  target += s - 0.5 * s * s
  var q: real = 1
  for t in 0..N {
    q = q * 0.5 + tanh(q * mu) * y[t]
  }
  target += q
  var h: real = 0
  for t in 0..N {
    h = h * 0.5 + mu * y[t]
  }
  target += h
}
";
    let p = compile("ar", src, &format!("{{\"N\": {}, \"y\": {:?}}}", y.len(), y));
    assert_eq!(param_names(&p), vec![("mu".into(), 0, 1), ("rho".into(), 1, 1)]);
    let mut rng = Rng::new(1);
    for _ in 0..POINTS {
        let (mu, rho) = (rng.uniform(-1.5, 1.5), rng.uniform(-0.9, 0.9));
        let (mut s, mut q, mut h) = (0.0, 1.0, 0.0);
        for v in y {
            s = s * rho + mu * v;
            q = q * 0.5 + (q * mu).tanh() * v;
            h = h * 0.5 + mu * v;
        }
        check_point("ar", &p, &[mu, rho], s - 0.5 * s * s + q + h, 0.0);
    }
}

/// A vector `var` filled element by element in a loop (each element from parameters, and
/// each element from the one before it), then used whole; a stored value also used
/// elsewhere; a vector `var` initialised from a parameter-dependent vector, then updated in place.
#[test]
fn elementwise_stores_then_whole_vector() {
    let x = [0.5, -1.0, 1.5, 0.2, -0.7];
    let y = [1.0, 0.1, 2.5, 0.4, 0.9];
    let src = "
data {
  N: int<lower=2>
  x: vector[N]
  y: vector[N]
}
params {
  a: real
  b: real
  sigma: real<lower=0>
}
model {
  var m: vector[N]
  for i in 0..N {
    let t = a + b * x[i] * x[i]
    m[i] = t
    target += 0.1 * t
  }
  y ~ normal(m, sigma)
  var c: vector[N]
  c[0] = a
  for i in 1..N {
    c[i] = c[i - 1] * b + x[i]
  }
  target += -0.5 * sum(square(c))
  var e: vector[N] = rep_vector(b, N)
  for i in 0..N {
    e[i] = e[i] * x[i]
  }
  target += sum(e) * a
}
";
    let p = compile("stores", src, &format!("{{\"N\": {}, \"x\": {:?}, \"y\": {:?}}}", x.len(), x, y));
    assert_eq!(param_names(&p), vec![("a".into(), 0, 1), ("b".into(), 1, 1), ("sigma".into(), 2, 1)]);
    let mut rng = Rng::new(2);
    for _ in 0..POINTS {
        let theta = [rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)];
        let (a, b, sigma) = (theta[0], theta[1], theta[2].exp());
        let mut lp = 0.0;
        for i in 0..x.len() {
            let t = a + b * x[i] * x[i];
            lp += normal_lpdf(y[i], t, sigma) + 0.1 * t;
        }
        lp += x.iter().map(|v| b * v).sum::<f64>() * a;
        let mut c = vec![a];
        for i in 1..x.len() {
            c.push(c[i - 1] * b + x[i]);
        }
        lp -= 0.5 * c.iter().map(|v| v * v).sum::<f64>();
        check_point("stores", &p, &theta, lp, theta[2]);
    }
}

/// `if`/`else if`/`else` on int data inside a loop.
#[test]
fn data_dependent_if_in_a_loop() {
    let g = [1, 2, 0, 1, 1, 0, 2];
    let y = [0.4, -0.3, 1.7, 2.2, -1.0, 0.6, 0.9];
    let src = "
data {
  N: int
  g: array[N] int
  y: vector[N]
}
params {
  mu: vector[2]
  tau: real<lower=0>
}
model {
  for n in 0..N {
    if g[n] == 1 {
      y[n] ~ normal(mu[1], tau)
    } else if g[n] == 2 {
      target += -square(y[n] - mu[0] * mu[1])
    } else {
      target += log(tau) * y[n]
    }
  }
}
";
    let p = compile("ifs", src, &format!("{{\"N\": {}, \"g\": {:?}, \"y\": {:?}}}", g.len(), g, y));
    let mut rng = Rng::new(3);
    for _ in 0..POINTS {
        let theta = [rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(-1.0, 1.0)];
        let (m0, m1, tau) = (theta[0], theta[1], theta[2].exp());
        let mut lp = 0.0;
        for n in 0..g.len() {
            lp += match g[n] {
                1 => normal_lpdf(y[n], m1, tau),
                2 => -(y[n] - m0 * m1).powi(2),
                _ => tau.ln() * y[n],
            };
        }
        check_point("ifs", &p, &theta, lp, theta[2]);
    }
}

/// `log_mix` of two components in a loop (scalar form), and the vector form on a vector
/// filled element by element.
#[test]
fn log_mix_in_a_loop() {
    let y = [-1.2, 0.3, 2.4, 3.1, -0.5];
    let src = "
data {
  N: int
  y: vector[N]
  wv: vector[2]
}
params {
  theta: real<lower=0, upper=1>
  mu: vector[2]
  sigma: vector<lower=0>[2]
}
model {
  for n in 0..N {
    target += log_mix(theta, normal_lpdf(y[n], mu[0], sigma[0]), normal_lpdf(y[n], mu[1], sigma[1]))
  }
  for n in 0..N {
    var lp: vector[2]
    lp[0] = normal_lpdf(y[n], mu[0], 1)
    lp[1] = normal_lpdf(y[n], mu[1] * theta, 2)
    target += log_mix(wv, lp)
  }
}
";
    let wv = [0.3, 0.7];
    let p = compile("mix", src, &format!("{{\"N\": {}, \"y\": {:?}, \"wv\": {:?}}}", y.len(), y, wv));
    assert_eq!(param_names(&p), vec![("theta".into(), 0, 1), ("mu".into(), 1, 2), ("sigma".into(), 3, 2)]);
    let mut rng = Rng::new(4);
    for _ in 0..POINTS {
        let theta: Vec<f64> = rng.vec(5, -1.0, 1.0);
        let t = sigmoid(theta[0]);
        let (m0, m1) = (theta[1], theta[2]);
        let (s0, s1) = (theta[3].exp(), theta[4].exp());
        let mut lp = 0.0;
        for v in y {
            lp += (t * normal_lpdf(v, m0, s0).exp() + (1.0 - t) * normal_lpdf(v, m1, s1).exp()).ln();
            lp += (wv[0] * normal_lpdf(v, m0, 1.0).exp() + wv[1] * normal_lpdf(v, m1 * t, 2.0).exp()).ln();
        }
        let jac = t.ln() + (1.0 - t).ln() + theta[3] + theta[4];
        check_point("mix", &p, &theta, lp, jac);
    }
}

/// A `fn` with an early `return` inside an `if` on a parameter-dependent condition: lowered
/// to a select of both branches. Points are kept away from the switch.
#[test]
fn fn_with_early_return_on_a_parameter() {
    let y = [0.5, -1.0, 1.5, 2.0, -0.3];
    let src = "
fn clip(v: real, hi: real) -> real {
  let d = v - hi
  if d > 0 {
    return hi + 0.1 * d
  }
  let w = v * 0.5
  return w * w + v
}
data {
  N: int
  y: vector[N]
}
params {
  mu: real
}
model {
  for n in 0..N {
    target += -square(y[n] - clip(mu * y[n], 1.0))
  }
  mu ~ normal(0, 2)
}
";
    let p = compile("early", src, &format!("{{\"N\": {}, \"y\": {:?}}}", y.len(), y));
    let clip = |v: f64, hi: f64| if v - hi > 0.0 { hi + 0.1 * (v - hi) } else { (v * 0.5).powi(2) + v };
    let mut rng = Rng::new(5);
    let mut checked = 0;
    let mut both = [false, false];
    while checked < POINTS {
        let mu = rng.uniform(-2.0, 2.0);
        if y.iter().any(|v| (mu * v - 1.0).abs() < 0.05) {
            continue;
        }
        for v in y {
            both[(mu * v > 1.0) as usize] = true;
        }
        let lp: f64 = y.iter().map(|v| -(v - clip(mu * v, 1.0)).powi(2)).sum::<f64>() + normal_lpdf(mu, 0.0, 2.0);
        check_point("early", &p, &[mu], lp, 0.0);
        checked += 1;
    }
    assert!(both[0] && both[1], "both branches were taken");
}

/// Generated quantities: a new output from an expression, a top-level `var` filled in a loop
/// under an `if` on a parameter, and an output computed from it; the model part as above.
#[test]
fn generated_quantities() {
    let y = [0.2, 1.4, -0.6, 2.1];
    let src = "
data {
  N: int
  y: vector[N]
}
params {
  mu: real
  tau: real<lower=0>
}
model {
  y ~ normal(mu, tau)
}
generated {
  z = mu + 2.0 * tau
  var acc: real = 0
  for n in 0..N {
    if y[n] > mu {
      acc += y[n] - mu
    }
  }
  w = exp(mu) * acc
}
";
    let p = compile("gen", src, &format!("{{\"N\": {}, \"y\": {:?}}}", y.len(), y));
    let mut rng = Rng::new(6);
    for _ in 0..POINTS {
        let theta = [rng.uniform(-1.0, 1.5), rng.uniform(-1.0, 1.0)];
        let (mu, tau) = (theta[0], theta[1].exp());
        let lp: f64 = y.iter().map(|v| normal_lpdf(*v, mu, tau)).sum();
        check_point("gen", &p, &theta, lp, theta[1]);
        let acc: f64 = y.iter().filter(|v| **v > mu).map(|v| v - mu).sum();
        let mut it = Interp::new(&p);
        let outs = it.constrained(&theta, true).unwrap();
        let get = |n: &str| -> f64 {
            let o = outs.iter().find(|o| o.0 == n).unwrap_or_else(|| panic!("no output `{n}` in {outs:?}"));
            assert_eq!(o.2.len(), 1, "{n} is a scalar");
            o.2[0]
        };
        assert_close(get("mu"), mu, 1e-14, &|| "mu".into());
        assert_close(get("tau"), tau, 1e-14, &|| "tau".into());
        assert_close(get("z"), mu + 2.0 * tau, 1e-14, &|| "z".into());
        assert_close(get("acc"), acc, 1e-14, &|| "acc".into());
        assert_close(get("w"), mu.exp() * acc, 1e-14, &|| "w".into());
        // Running the generated block leaves the density untouched.
        let e = it.eval(&theta).unwrap();
        assert_close(e.logp, lp, 1e-10, &|| "logp after generated".into());
    }
}

/// The index forms of the language on a `var`, a parameter and data: open and closed slices,
/// gathers with a repeated position, a column, a row, and a matrix block.
#[test]
fn index_forms_in_a_model() {
    let idx = [3usize, 0, 3];
    let xm = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [1.0, 0.0, 1.0]];
    let src = "
data {
  N: int
  idx: array[3] int
  X: matrix[N, 3]
}
params {
  v: vector[N]
}
model {
  var c: vector[N]
  for i in 0..N {
    c[i] = v[i] * v[i]
  }
  target += sum(c[1..]) + sum(c[..2]) * 2.0 + sum(c[1..3]) * 3.0
  target += sum(v[idx]) + sum(c[idx] * v[idx])
  target += sum(X[:, 1] * v) + dot(row(X, 2), v[0..3]) + sum(X[1.., ..2] * 0.5)
}
";
    let data = "{\"N\": 4, \"idx\": [3, 0, 3], \"X\": [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 0, 1]]}";
    let p = compile("index", src, data);
    let mut rng = Rng::new(7);
    for _ in 0..POINTS {
        let v = rng.vec(4, -1.5, 1.5);
        let c: Vec<f64> = v.iter().map(|x| x * x).collect();
        let mut lp = c[1..].iter().sum::<f64>() + 2.0 * c[..2].iter().sum::<f64>() + 3.0 * c[1..3].iter().sum::<f64>();
        lp += idx.iter().map(|i| v[*i] + c[*i] * v[*i]).sum::<f64>();
        lp += (0..4).map(|i| xm[i][1] * v[i]).sum::<f64>() + (0..3).map(|j| xm[2][j] * v[j]).sum::<f64>();
        lp += (1..4).map(|i| (xm[i][0] + xm[i][1]) * 0.5).sum::<f64>();
        check_point("index", &p, &v, lp, 0.0);
    }
}
