//! Unit tests of the densities, their gradients and the samplers; the shared helpers (points,
//! evaluation, random valid arguments, the finite-difference gradient check) live here.

use super::*;
use rand::distr::Distribution;
use rand::rngs::StdRng;
use rand::RngExt;
use rand_distr::StandardNormal;
use Family::*;

mod densities;
mod edges;
mod gradients;
mod sample;

// ---------------------------------------------------------------- helpers

/// A point: values and dims of every argument (variate first).
#[derive(Clone, Debug)]
struct Pt {
    vals: Vec<Vec<f64>>,
    dims: Vec<Vec<usize>>,
}

impl Pt {
    fn scalars(v: &[f64]) -> Pt {
        Pt { vals: v.iter().map(|&x| vec![x]).collect(), dims: vec![vec![]; v.len()] }
    }
    fn args(&self) -> Vec<Arg<'_>> {
        self.vals.iter().zip(&self.dims).map(|(v, d)| Arg { values: v, dims: d }).collect()
    }
}

fn eval(f: Family, p: &Pt, strict: bool) -> f64 {
    log_density_impl(f, &p.args(), None, strict)
}

const INIT: f64 = 0.25;

/// Value and gradient; the gradient buffers start at INIT (to check that the
/// function adds into them) and INIT is subtracted again afterwards.
fn eval_grad(f: Family, p: &Pt, strict: bool) -> (f64, Vec<Vec<f64>>) {
    let mut g: Vec<Vec<f64>> = p.vals.iter().map(|v| vec![INIT; v.len()]).collect();
    let lp = {
        let mut refs: Vec<&mut [f64]> = g.iter_mut().map(|v| v.as_mut_slice()).collect();
        log_density_impl(f, &p.args(), Some(&mut refs), strict)
    };
    for v in g.iter_mut().flatten() {
        *v -= INIT;
    }
    (lp, g)
}

fn lp_s(f: Family, v: &[f64]) -> f64 {
    eval(f, &Pt::scalars(v), true)
}

fn assert_close(a: f64, b: f64, rel: f64, what: &str) {
    assert!((a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0), "{what}: {a} vs {b} (diff {})", (a - b).abs());
}

fn u(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

fn ui(rng: &mut StdRng, lo: u32, hi: u32) -> f64 {
    rng.random_range(lo..=hi) as f64
}

fn nrm(rng: &mut StdRng) -> f64 {
    StandardNormal.sample(rng)
}

fn simplex(rng: &mut StdRng, k: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..k).map(|_| u(rng, 0.05, 1.0)).collect();
    let s: f64 = v.iter().sum();
    v.into_iter().map(|x| x / s).collect()
}

/// Random valid parameters of a scalar family.
fn gen_params(f: Family, rng: &mut StdRng) -> [f64; 3] {
    match f {
        Normal | Cauchy | Laplace | Logistic => [u(rng, -2.0, 2.0), u(rng, 0.3, 3.0), 0.0],
        Lognormal => [u(rng, -1.0, 1.0), u(rng, 0.3, 2.0), 0.0],
        StdNormal => [0.0; 3],
        StudentT => [u(rng, 0.5, 10.0), u(rng, -2.0, 2.0), u(rng, 0.3, 3.0)],
        HalfNormal | HalfCauchy => [u(rng, 0.3, 3.0), 0.0, 0.0],
        Exponential => [u(rng, 0.2, 3.0), 0.0, 0.0],
        Gamma | InvGamma => [u(rng, 0.5, 5.0), u(rng, 0.2, 3.0), 0.0],
        Beta => [u(rng, 0.5, 5.0), u(rng, 0.5, 5.0), 0.0],
        Uniform => [u(rng, -2.0, -0.1), u(rng, 0.6, 3.0), 0.0],
        Bernoulli => [u(rng, 0.05, 0.95), 0.0, 0.0],
        BernoulliLogit => [u(rng, -4.0, 4.0), 0.0, 0.0],
        Binomial => [ui(rng, 0, 20), u(rng, 0.05, 0.95), 0.0],
        BinomialLogit => [ui(rng, 0, 20), u(rng, -3.0, 3.0), 0.0],
        Poisson => [u(rng, 0.1, 10.0), 0.0, 0.0],
        PoissonLog => [u(rng, -2.0, 2.5), 0.0, 0.0],
        NegBinomial2 => [u(rng, 0.2, 10.0), u(rng, 0.2, 10.0), 0.0],
        Weibull | Frechet => [u(rng, 0.5, 5.0), u(rng, 0.3, 3.0), 0.0],
        Rayleigh => [u(rng, 0.3, 3.0), 0.0, 0.0],
        Pareto => [u(rng, 0.05, 1.0), u(rng, 0.5, 5.0), 0.0],
        Gumbel => [u(rng, -2.0, 2.0), u(rng, 0.3, 3.0), 0.0],
        ChiSquare | InvChiSquare => [u(rng, 0.5, 10.0), 0.0, 0.0],
        ScaledInvChiSquare => [u(rng, 0.5, 10.0), u(rng, 0.3, 3.0), 0.0],
        NegBinomial => [u(rng, 0.2, 10.0), u(rng, 0.2, 5.0), 0.0],
        NegBinomial2Log => [u(rng, -2.0, 2.5), u(rng, 0.2, 10.0), 0.0],
        BetaBinomial => [ui(rng, 0, 20), u(rng, 0.3, 5.0), u(rng, 0.3, 5.0)],
        _ => unreachable!(),
    }
}

/// Random variate in the support of a scalar family with parameters `p`.
fn gen_x(f: Family, p: &[f64; 3], rng: &mut StdRng) -> f64 {
    match f {
        Normal | Cauchy | Laplace | Logistic | StudentT | StdNormal | Gumbel => u(rng, -4.0, 4.0),
        HalfNormal | HalfCauchy | Exponential => u(rng, 0.01, 4.0),
        Gamma | Weibull | Rayleigh | ChiSquare => u(rng, 0.05, 5.0),
        InvGamma | Lognormal | Frechet | InvChiSquare | ScaledInvChiSquare => u(rng, 0.1, 5.0),
        Pareto => p[0] + u(rng, 0.0, 4.0),
        NegBinomial | NegBinomial2Log => ui(rng, 0, 15),
        BetaBinomial => ui(rng, 0, p[0] as u32),
        Beta => u(rng, 0.05, 0.95),
        Uniform => u(rng, 0.0, 0.5),
        Bernoulli | BernoulliLogit => ui(rng, 0, 1),
        Binomial | BinomialLogit => ui(rng, 0, p[0] as u32),
        Poisson | PoissonLog | NegBinomial2 => ui(rng, 0, 15),
        _ => unreachable!(),
    }
}

/// A random valid point of any family (scalar families get n = 3 with random broadcasting).
fn gen_point(f: Family, rng: &mut StdRng) -> Pt {
    let np = f.n_params();
    match f {
        Categorical | CategoricalLogit => {
            let k = 4;
            let n = 5;
            let matrix = rng.random::<bool>();
            let rows = if matrix { n } else { 1 };
            let mut p = Vec::new();
            for _ in 0..rows {
                if f == Categorical {
                    p.extend(simplex(rng, k));
                } else {
                    p.extend((0..k).map(|_| 2.0 * nrm(rng)));
                }
            }
            let y: Vec<f64> = (0..n).map(|_| ui(rng, 0, k as u32 - 1)).collect();
            let pd = if matrix { vec![rows, k] } else { vec![k] };
            Pt { vals: vec![y, p], dims: vec![vec![n], pd] }
        }
        OrderedLogistic => {
            // Five labels with a location each, or one shared; cutpoints at least 0.3 apart.
            let n = 5;
            let mut c = vec![u(rng, -2.0, -1.0)];
            for _ in 0..2 {
                c.push(c[c.len() - 1] + u(rng, 0.3, 1.5));
            }
            let y: Vec<f64> = (0..n).map(|_| ui(rng, 0, 3)).collect();
            let shared = rng.random::<bool>();
            let eta: Vec<f64> = (0..if shared { 1 } else { n }).map(|_| 1.5 * nrm(rng)).collect();
            let ed = if shared { vec![] } else { vec![n] };
            Pt { vals: vec![y, eta, c], dims: vec![vec![n], ed, vec![3]] }
        }
        Dirichlet => {
            let k = 4;
            let (rt, ra) = [(1, 1), (2, 1), (2, 2), (1, 2)][rng.random_range(0..4usize)];
            let th: Vec<f64> = (0..rt).flat_map(|_| simplex(rng, k)).collect();
            let al: Vec<f64> = (0..ra * k).map(|_| u(rng, 0.5, 4.0)).collect();
            let d = |r: usize| if r == 1 { vec![k] } else { vec![r, k] };
            Pt { vals: vec![th, al], dims: vec![d(rt), d(ra)] }
        }
        MultiNormal | MultiNormalCholesky => {
            let k = 3;
            let (ry, rm) = [(1, 1), (2, 1), (2, 2), (1, 2)][rng.random_range(0..4usize)];
            let y: Vec<f64> = (0..ry * k).map(|_| 2.0 * nrm(rng)).collect();
            let mu: Vec<f64> = (0..rm * k).map(|_| nrm(rng)).collect();
            let a: Vec<f64> = (0..k * k).map(|_| nrm(rng)).collect();
            let s = if f == MultiNormal {
                let mut s = vec![0.0; k * k];
                for i in 0..k {
                    for j in 0..k {
                        s[i * k + j] =
                            (0..k).map(|q| a[i * k + q] * a[j * k + q]).sum::<f64>() + if i == j { 0.5 } else { 0.0 };
                    }
                }
                s
            } else {
                // Lower triangle: a proper factor; upper triangle: junk the density ignores.
                let mut l = a.clone();
                for i in 0..k {
                    l[i * k + i] = u(rng, 0.5, 2.0);
                }
                l
            };
            let d = |r: usize| if r == 1 { vec![k] } else { vec![r, k] };
            Pt { vals: vec![y, mu, s], dims: vec![d(ry), d(rm), vec![k, k]] }
        }
        LkjCorrCholesky => {
            let k = rng.random_range(2..=4usize);
            let eta = u(rng, 0.5, 4.0);
            let mut l = vec![0.0; k * k];
            sample(f, &[Arg { values: &[eta], dims: &[] }], &mut l, rng);
            Pt { vals: vec![l, vec![eta]], dims: vec![vec![k, k], vec![]] }
        }
        _ => {
            let n = 3;
            let vector: Vec<bool> = (0..np).map(|_| rng.random::<bool>()).collect();
            let scalar_x =
                !matches!(f, Binomial | BinomialLogit | BetaBinomial | Pareto) && rng.random_range(0..4) == 0;
            let first = gen_params(f, rng);
            let mut ps = Vec::new();
            for _ in 0..n {
                let fresh = gen_params(f, rng);
                let mut p = [0.0; 3];
                for j in 0..np {
                    p[j] = if vector[j] { fresh[j] } else { first[j] };
                }
                ps.push(p);
            }
            let mut vals = Vec::new();
            let mut dims = Vec::new();
            if scalar_x {
                // Valid for every element: the supports of the families drawn here do not
                // depend on the parameters except uniform's, whose generated ranges all
                // contain [0, 0.5].
                vals.push(vec![gen_x(f, &ps[0], rng)]);
                dims.push(vec![]);
            } else {
                vals.push(ps.iter().map(|p| gen_x(f, p, rng)).collect());
                dims.push(vec![n]);
            }
            for j in 0..np {
                if vector[j] {
                    vals.push(ps.iter().map(|p| p[j]).collect());
                    dims.push(vec![n]);
                } else {
                    vals.push(vec![first[j]]);
                    dims.push(vec![]);
                }
            }
            Pt { vals, dims }
        }
    }
}

fn has_grad(f: Family, j: usize) -> bool {
    !(j == 0 && f.is_discrete() || j == 1 && matches!(f, Binomial | BinomialLogit | BetaBinomial))
}

/// Whether the density is checked off its constraint manifold (FD leaves the manifold).
fn needs_lax(f: Family) -> bool {
    matches!(f, Categorical | Dirichlet | LkjCorrCholesky)
}

fn fd_ok(g: f64, fd: f64) -> bool {
    (g - fd).abs() <= 1e-8 + 1e-6 * g.abs().max(fd.abs())
}

/// Analytic gradient vs central finite differences for every continuous argument entry.
fn grad_check(f: Family, pt: &Pt) {
    let strict = !needs_lax(f);
    let (lp, g) = eval_grad(f, pt, strict);
    assert!(lp.is_finite(), "{f:?} at {pt:?}: {lp}");
    assert_close(lp, eval(f, pt, strict), 1e-14, "value with and without grads");
    // Five-point central difference, f'(v) ≈ [f(v−2h) − 8f(v−h) + 8f(v+h) − f(v+2h)] / 12h.
    // Its O(h⁴) truncation error allows h ≈ 1e-4 (relative), which keeps round-off in the
    // log density (statrs's lnΓ is good to ~1e-14 relative, and lnΓ(y+φ) − lnΓ(φ) cancels)
    // well below the tolerance; a two-point difference with h ≈ 1e-6 does not.
    let fd = |j: usize, es: &[usize], h: f64| {
        let at = |t: f64| {
            let mut p = pt.clone();
            for &e in es {
                p.vals[j][e] += t;
            }
            eval(f, &p, strict)
        };
        (at(-2.0 * h) - 8.0 * at(-h) + 8.0 * at(h) - at(2.0 * h)) / (12.0 * h)
    };
    for j in 0..pt.vals.len() {
        for e in 0..pt.vals[j].len() {
            if !has_grad(f, j) {
                assert_eq!(g[j][e], 0.0, "{f:?}: arg {j} must get no gradient");
                continue;
            }
            let h = 1e-4 * pt.vals[j][e].abs().max(0.1);
            if f == MultiNormal && j == 2 {
                // Symmetric perturbation of Σ_ab and Σ_ba together.
                let k = (pt.vals[2].len() as f64).sqrt() as usize;
                let (a, b) = (e / k, e % k);
                if a < b {
                    continue;
                }
                assert_close(g[2][a * k + b], g[2][b * k + a], 1e-12, "Σ gradient symmetric");
                let (es, want) = if a == b {
                    (vec![e], g[2][e])
                } else {
                    (vec![a * k + b, b * k + a], g[2][a * k + b] + g[2][b * k + a])
                };
                let d = fd(j, &es, h);
                assert!(fd_ok(want, d), "{f:?} dSigma[{a},{b}]: {want} vs fd {d} at {pt:?}");
                continue;
            }
            let d = fd(j, &[e], h);
            assert!(fd_ok(g[j][e], d), "{f:?} d/darg{j}[{e}]: {} vs fd {d} at {pt:?}", g[j][e]);
        }
    }
}

/// A K×K correlation Cholesky factor with its η, as the arguments of `lkj_corr_cholesky`.
fn lkj_pt(l: Vec<f64>, k: usize, eta: f64) -> Pt {
    Pt { vals: vec![l, vec![eta]], dims: vec![vec![k, k], vec![]] }
}

// ---------------------------------------------------------------- family table

#[test]
fn family_table() {
    assert_eq!(Family::ALL.len(), 39);
    let mut names = std::collections::HashSet::new();
    for (i, &f) in Family::ALL.iter().enumerate() {
        assert!(names.insert(f.name()));
        assert_eq!(Family::from_name(f.name()), Some(f));
        assert_eq!(f.is_elementwise(), i <= BetaBinomial as usize, "{f:?}");
    }
    assert_eq!(Family::from_name("double_exponential"), None);
    assert_eq!(Family::from_name("Normal"), None);
    let np: Vec<usize> = Family::ALL.iter().map(|f| f.n_params()).collect();
    let scalar = [2, 0, 3, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 1, 1, 2, 2, 1, 1, 2];
    let added = [2, 2, 1, 2, 2, 1, 1, 2, 2, 2, 3];
    assert_eq!(np, [&scalar[..], &added, &[1, 1, 2, 1, 2, 2, 1]].concat());
    let discrete: Vec<Family> = Family::ALL.iter().copied().filter(|f| f.is_discrete()).collect();
    assert_eq!(
        discrete,
        [
            Bernoulli,
            BernoulliLogit,
            Binomial,
            BinomialLogit,
            Poisson,
            PoissonLog,
            NegBinomial2,
            NegBinomial,
            NegBinomial2Log,
            BetaBinomial,
            Categorical,
            CategoricalLogit,
            OrderedLogistic
        ]
    );
}
