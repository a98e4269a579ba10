//! Random draws for every family.

use super::elementwise::params_ok;
use super::multivariate::{cholesky, multi_normal};
use super::{as_rows, dims_ok, log_sum_exp, positive, sigmoid, square_dim, Arg, Family, CONSTRAINT_TOL};
use rand::distr::{Distribution, Open01};
use rand::{Rng, RngExt};
use rand_distr::{
    Beta as BetaSampler, Binomial as BinomialSampler, Exp1, Gamma as GammaSampler, Poisson as PoissonSampler,
    StandardNormal, StudentT as StudentTSampler,
};

// ---------------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------------

/// Draws: fills `out` (its length decides how many; ints stored as exact f64) for elementwise
/// families with broadcast parameters; for categorical(_logit) one label per row; dirichlet and
/// multi_normal(_cholesky) fill one vector of K; lkj_corr_cholesky fills a K×K Cholesky factor
/// (row-major). Invalid parameters → fill with NaN.
///
/// Details: every elementwise parameter must have length 1 or `out.len()`. For
/// categorical(_logit) with a `[K]` parameter every entry of `out` is a label (0-based); with an
/// `[N, K]` parameter `out` must hold N labels. For dirichlet / multi_normal(_cholesky) `out.len()`
/// must be a multiple of K and each consecutive K-block is an independent draw (with an `[M, K]`
/// alpha / mu there must be exactly M blocks, block m using row m). For lkj_corr_cholesky
/// `out.len()` must be a perfect square K².
pub fn sample<R: Rng + ?Sized>(f: Family, params: &[Arg], out: &mut [f64], rng: &mut R) {
    let ok = params.len() == f.n_params() && params.iter().all(dims_ok) && {
        use Family::*;
        match f {
            Categorical => sample_categorical(params[0], false, out, rng),
            CategoricalLogit => sample_categorical(params[0], true, out, rng),
            OrderedLogistic => sample_ordered_logistic(params[0], params[1], out, rng),
            Dirichlet => sample_dirichlet(params[0], out, rng),
            MultiNormal => sample_multi_normal(params[0], params[1], false, out, rng),
            MultiNormalCholesky => sample_multi_normal(params[0], params[1], true, out, rng),
            LkjCorrCholesky => sample_lkj(params[0], out, rng),
            _ => sample_elementwise(f, params, out, rng),
        }
    };
    if !ok {
        out.iter_mut().for_each(|v| *v = f64::NAN);
    }
}

fn std_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

fn uniform01<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    rng.random::<f64>()
}

fn open01<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    Open01.sample(rng)
}

/// Standard Cauchy by inversion: tan(π(u − ½)), u ∈ (0, 1).
fn std_cauchy<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (std::f64::consts::PI * (open01(rng) - 0.5)).tan()
}

fn gamma_draw<R: Rng + ?Sized>(shape: f64, scale: f64, rng: &mut R) -> f64 {
    GammaSampler::new(shape, scale).map_or(f64::NAN, |d| d.sample(rng))
}

/// ln of a Gamma(α, 1) draw, accurate even when α is so small that the draw underflows:
/// for α < 1 use G(α) = G(α + 1) · U^{1/α}.
fn log_gamma_draw<R: Rng + ?Sized>(shape: f64, rng: &mut R) -> f64 {
    if shape < 1.0 {
        gamma_draw(shape + 1.0, 1.0, rng).ln() + open01(rng).ln() / shape
    } else {
        gamma_draw(shape, 1.0, rng).ln()
    }
}

fn poisson_draw<R: Rng + ?Sized>(lambda: f64, rng: &mut R) -> f64 {
    if lambda == 0.0 {
        0.0
    } else {
        PoissonSampler::new(lambda).map_or(f64::NAN, |d| d.sample(rng))
    }
}

/// Binomial draw; N beyond 2⁵³ (where f64 stops representing every integer) gives NaN.
fn binomial_draw<R: Rng + ?Sized>(n: f64, theta: f64, rng: &mut R) -> f64 {
    if n > 9_007_199_254_740_992.0 {
        return f64::NAN;
    }
    BinomialSampler::new(n as u64, theta).map_or(f64::NAN, |d| d.sample(rng) as f64)
}

/// One draw of a scalar family (parameters already validated).
fn sample_one<R: Rng + ?Sized>(f: Family, p: &[f64; 3], rng: &mut R) -> f64 {
    use Family::*;
    match f {
        Normal => p[0] + p[1] * std_normal(rng),
        StdNormal => std_normal(rng),
        StudentT => {
            let t: f64 = StudentTSampler::new(p[0]).map_or(f64::NAN, |d| d.sample(rng));
            p[1] + p[2] * t
        }
        Cauchy => p[0] + p[1] * std_cauchy(rng),
        HalfNormal => (p[0] * std_normal(rng)).abs(),
        HalfCauchy => (p[0] * std_cauchy(rng)).abs(),
        Exponential => {
            let e: f64 = Exp1.sample(rng);
            e / p[0]
        }
        Gamma => gamma_draw(p[0], 1.0 / p[1], rng),
        InvGamma => p[1] / gamma_draw(p[0], 1.0, rng),
        Lognormal => (p[0] + p[1] * std_normal(rng)).exp(),
        Beta => BetaSampler::new(p[0], p[1]).map_or(f64::NAN, |d| d.sample(rng)),
        Uniform => p[0] + (p[1] - p[0]) * uniform01(rng),
        Laplace => {
            // The difference of two independent Exp(1) draws is standard Laplace.
            let (e1, e2): (f64, f64) = (Exp1.sample(rng), Exp1.sample(rng));
            p[0] + p[1] * (e1 - e2)
        }
        Logistic => {
            let u = open01(rng);
            p[0] + p[1] * (u.ln() - (-u).ln_1p())
        }
        Bernoulli => (uniform01(rng) < p[0]) as u8 as f64,
        BernoulliLogit => (uniform01(rng) < sigmoid(p[0])) as u8 as f64,
        Binomial => binomial_draw(p[0], p[1], rng),
        BinomialLogit => binomial_draw(p[0], sigmoid(p[1]), rng),
        Poisson => poisson_draw(p[0], rng),
        PoissonLog => poisson_draw(p[0].exp(), rng),
        // Gamma–Poisson mixture: λ ~ Gamma(φ, rate φ/μ) has mean μ.
        NegBinomial2 => {
            let lambda = gamma_draw(p[1], p[0] / p[1], rng);
            poisson_draw(lambda, rng)
        }
        NegBinomial2Log => {
            let mu = p[0].exp();
            poisson_draw(gamma_draw(p[1], mu / p[1], rng), rng)
        }
        // λ ~ Gamma(α, rate β).
        NegBinomial => poisson_draw(gamma_draw(p[0], 1.0 / p[1], rng), rng),
        BetaBinomial => {
            let theta = BetaSampler::new(p[1], p[2]).map_or(f64::NAN, |d| d.sample(rng));
            binomial_draw(p[0], theta, rng)
        }
        // By inversion, from E = −ln U ~ Exp(1).
        Weibull => {
            let e: f64 = Exp1.sample(rng);
            p[1] * e.powf(1.0 / p[0])
        }
        Frechet => {
            let e: f64 = Exp1.sample(rng);
            p[1] * e.powf(-1.0 / p[0])
        }
        Rayleigh => {
            let e: f64 = Exp1.sample(rng);
            p[0] * (2.0 * e).sqrt()
        }
        Pareto => {
            let e: f64 = Exp1.sample(rng);
            p[0] * (e / p[1]).exp()
        }
        Gumbel => {
            let e: f64 = Exp1.sample(rng);
            p[0] - p[1] * e.ln()
        }
        // χ²(ν) is Gamma(ν/2, scale 2).
        ChiSquare => gamma_draw(0.5 * p[0], 2.0, rng),
        InvChiSquare => 1.0 / gamma_draw(0.5 * p[0], 2.0, rng),
        ScaledInvChiSquare => p[0] * p[1] * p[1] / gamma_draw(0.5 * p[0], 2.0, rng),
        _ => f64::NAN,
    }
}

fn sample_elementwise<R: Rng + ?Sized>(f: Family, params: &[Arg], out: &mut [f64], rng: &mut R) -> bool {
    let n = out.len();
    if params.iter().any(|a| a.values.len() != 1 && a.values.len() != n) {
        return false;
    }
    let load = |i: usize| {
        let mut p = [0.0; 3];
        for (j, a) in params.iter().enumerate() {
            p[j] = if a.values.len() == 1 { a.values[0] } else { a.values[i] };
        }
        p
    };
    if !(0..n).all(|i| params_ok(f, &load(i))) {
        return false;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = sample_one(f, &load(i), rng);
    }
    true
}

/// A label per entry of `out` by inversion: P(y ≤ l) = 1 − σ(η − c[l]).
fn sample_ordered_logistic<R: Rng + ?Sized>(eta: Arg, c: Arg, out: &mut [f64], rng: &mut R) -> bool {
    let cv = c.values;
    let n = out.len();
    if c.dims.len() != 1 || cv.is_empty() || (eta.values.len() != 1 && eta.values.len() != n) {
        return false;
    }
    if !cv.iter().all(|v| v.is_finite()) || cv.windows(2).any(|w| w[0] >= w[1]) {
        return false;
    }
    if !eta.values.iter().all(|v| v.is_finite()) {
        return false;
    }
    for (i, o) in out.iter_mut().enumerate() {
        let e = eta.values[if eta.values.len() == 1 { 0 } else { i }];
        let u = uniform01(rng);
        *o = cv.iter().take_while(|&&ck| u >= sigmoid(ck - e)).count() as f64;
    }
    true
}

fn sample_categorical<R: Rng + ?Sized>(p: Arg, logit: bool, out: &mut [f64], rng: &mut R) -> bool {
    let Some((rows, k)) = as_rows(&p) else {
        return false;
    };
    if k == 0 || (rows != 1 && out.len() != rows) {
        return false;
    }
    for r in 0..rows {
        let row = &p.values[r * k..(r + 1) * k];
        let ok = if logit {
            row.iter().all(|v| v.is_finite())
        } else {
            row.iter().all(|&v| v >= 0.0 && v.is_finite()) && (row.iter().sum::<f64>() - 1.0).abs() <= CONSTRAINT_TOL
        };
        if !ok {
            return false;
        }
    }
    for (i, o) in out.iter_mut().enumerate() {
        let r = if rows == 1 { 0 } else { i };
        let row = &p.values[r * k..(r + 1) * k];
        let mx = if logit { row.iter().copied().fold(f64::NEG_INFINITY, f64::max) } else { 0.0 };
        let w = |v: f64| if logit { (v - mx).exp() } else { v };
        let total: f64 = row.iter().map(|&v| w(v)).sum();
        let u = uniform01(rng) * total;
        // Inverse CDF; the fallback is the last label with positive weight (guards rounding).
        let mut cum = 0.0;
        let mut pick = None;
        let mut last_pos = 0;
        for (j, &v) in row.iter().enumerate() {
            let wj = w(v);
            if wj > 0.0 {
                last_pos = j;
            }
            cum += wj;
            if pick.is_none() && u < cum {
                pick = Some(j);
            }
        }
        *o = pick.unwrap_or(last_pos) as f64;
    }
    true
}

/// Dirichlet draws by normalising independent Gamma(α_k, 1) draws (in log space).
fn sample_dirichlet<R: Rng + ?Sized>(al: Arg, out: &mut [f64], rng: &mut R) -> bool {
    let Some((ra, k)) = as_rows(&al) else {
        return false;
    };
    if k == 0 || out.len() % k != 0 || !al.values.iter().all(|&a| positive(a)) {
        return false;
    }
    let draws = out.len() / k;
    if ra != 1 && ra != draws {
        return false;
    }
    for (d, block) in out.chunks_mut(k).enumerate() {
        let a = &al.values[if ra == 1 { 0 } else { d * k }..][..k];
        for (o, &aj) in block.iter_mut().zip(a) {
            *o = log_gamma_draw(aj, rng);
        }
        let lse = log_sum_exp(block);
        block.iter_mut().for_each(|v| *v = (*v - lse).exp());
    }
    true
}

/// Multivariate normal draws: μ + L z with z ~ N(0, I).
fn sample_multi_normal<R: Rng + ?Sized>(mu: Arg, s: Arg, chol_param: bool, out: &mut [f64], rng: &mut R) -> bool {
    let Some((rm, k)) = as_rows(&mu) else {
        return false;
    };
    if k == 0 || square_dim(&s) != Some(k) || out.len() % k != 0 {
        return false;
    }
    let draws = out.len() / k;
    if (rm != 1 && rm != draws) || !mu.values.iter().all(|v| v.is_finite()) {
        return false;
    }
    // Reuse the density's validation of Σ / L (symmetry, positive definiteness, diagonal).
    let zero = vec![0.0; k];
    let dims = [k];
    let test_args = [Arg { values: &zero, dims: &dims }, Arg { values: &zero, dims: &dims }, s];
    if multi_normal(&test_args, None, chol_param).is_nan() {
        return false;
    }
    let l = if chol_param {
        let mut l = s.values.to_vec();
        for i in 0..k {
            for j in i + 1..k {
                l[i * k + j] = 0.0;
            }
        }
        l
    } else {
        match cholesky(s.values, k) {
            Some(l) => l,
            None => return false,
        }
    };
    let mut z = vec![0.0; k];
    for (d, block) in out.chunks_mut(k).enumerate() {
        let m = &mu.values[if rm == 1 { 0 } else { d * k }..][..k];
        z.iter_mut().for_each(|v| *v = std_normal(rng));
        for i in 0..k {
            block[i] = m[i] + (0..=i).map(|j| l[i * k + j] * z[j]).sum::<f64>();
        }
    }
    true
}

/// LKJ Cholesky-factor draws via the C-vine: the partial correlation of the pair (i, j), i < j,
/// given variables 0..i is Beta(b_i, b_i) on (−1, 1) with b_i = η + (K − 2 − i)/2, and
/// L[j][i] = cpc_ij · sqrt(1 − Σ_{m<i} L[j][m]²), L[j][j] = sqrt(1 − Σ_{m<j} L[j][m]²).
fn sample_lkj<R: Rng + ?Sized>(e: Arg, out: &mut [f64], rng: &mut R) -> bool {
    if e.values.len() != 1 || !positive(e.values[0]) {
        return false;
    }
    let eta = e.values[0];
    let k = (out.len() as f64).sqrt().round() as usize;
    if k * k != out.len() {
        return false;
    }
    out.iter_mut().for_each(|v| *v = 0.0);
    for j in 0..k {
        let mut sum_sq: f64 = 0.0;
        for i in 0..j {
            let b = eta + 0.5 * (k as f64 - 2.0 - i as f64);
            let x: f64 = BetaSampler::new(b, b).map_or(f64::NAN, |d| d.sample(rng));
            let cpc = 2.0 * x - 1.0;
            let v = cpc * (1.0 - sum_sq).max(0.0).sqrt();
            out[j * k + i] = v;
            sum_sq += v * v;
        }
        out[j * k + j] = (1.0 - sum_sq).max(0.0).sqrt();
    }
    true
}
