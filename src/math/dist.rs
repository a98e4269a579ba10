//! Log densities (with gradients) and random draws for every distribution (SPEC §6).
//!
//! Parameterisations follow the Stan Functions Reference (the section named after each
//! distribution is cited next to its formula below). Unlike Stan's `~` statement, every
//! density here keeps all of its normalising constants, so values are comparable across
//! inference methods and agree with `statrs`'s `ln_pdf` / `ln_pmf`.
//!
//! Conventions shared by every family:
//! * `args[0]` is the variate, `args[1..]` the parameters, in Stan's order.
//! * An argument's `dims` must be consistent with its `values` (their product is the number of
//!   values; `[]` is a scalar), otherwise the result is NaN.
//! * Invalid parameters, mismatched lengths/shapes and NaN variates give `NaN`; a variate outside
//!   the support (or at a support point where the density is exactly zero) gives `-inf`.
//!   In both cases the gradient slices are left untouched.
//! * Gradients are *added* into the caller's slices. They are the partial derivatives of the
//!   returned formula with each argument's entries treated as free coordinates (for constrained
//!   variates — simplexes, Cholesky factors — the transform code chains them through its own
//!   Jacobian). Discrete variates and binomial's `N` get no gradient.

use crate::math::vmath;
use rand::distr::{Distribution, Open01};
use rand::{Rng, RngExt};
use rand_distr::{
    Beta as BetaSampler, Binomial as BinomialSampler, Exp1, Gamma as GammaSampler, Poisson as PoissonSampler,
    StandardNormal, StudentT as StudentTSampler,
};
use statrs::function::factorial::ln_factorial;
use statrs::function::gamma::{digamma, ln_gamma};

/// ½·ln(2π).
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
/// ln(π).
const LN_PI: f64 = 1.144_729_885_849_400_2;
const LN_2: f64 = std::f64::consts::LN_2;
/// Tolerance for "sums to one", "is symmetric", "rows have unit length" (Stan uses 1e-8 too).
const CONSTRAINT_TOL: f64 = 1e-8;

/// A distribution family (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Normal,
    StdNormal,
    StudentT,
    Cauchy,
    HalfNormal,
    HalfCauchy,
    Exponential,
    Gamma,
    InvGamma,
    Lognormal,
    Beta,
    Uniform,
    Laplace,
    Logistic,
    Bernoulli,
    BernoulliLogit,
    Binomial,
    BinomialLogit,
    Poisson,
    PoissonLog,
    NegBinomial2,
    Categorical,
    CategoricalLogit,
    Dirichlet,
    MultiNormal,
    MultiNormalCholesky,
    LkjCorrCholesky,
}

impl Family {
    pub const ALL: &'static [Family] = &[
        Family::Normal,
        Family::StdNormal,
        Family::StudentT,
        Family::Cauchy,
        Family::HalfNormal,
        Family::HalfCauchy,
        Family::Exponential,
        Family::Gamma,
        Family::InvGamma,
        Family::Lognormal,
        Family::Beta,
        Family::Uniform,
        Family::Laplace,
        Family::Logistic,
        Family::Bernoulli,
        Family::BernoulliLogit,
        Family::Binomial,
        Family::BinomialLogit,
        Family::Poisson,
        Family::PoissonLog,
        Family::NegBinomial2,
        Family::Categorical,
        Family::CategoricalLogit,
        Family::Dirichlet,
        Family::MultiNormal,
        Family::MultiNormalCholesky,
        Family::LkjCorrCholesky,
    ];

    /// The family named `name` in source code (exactly the names of [`Family::name`]).
    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.iter().copied().find(|f| f.name() == name)
    }

    pub fn name(self) -> &'static str {
        use Family::*;
        match self {
            Normal => "normal",
            StdNormal => "std_normal",
            StudentT => "student_t",
            Cauchy => "cauchy",
            HalfNormal => "half_normal",
            HalfCauchy => "half_cauchy",
            Exponential => "exponential",
            Gamma => "gamma",
            InvGamma => "inv_gamma",
            Lognormal => "lognormal",
            Beta => "beta",
            Uniform => "uniform",
            Laplace => "laplace",
            Logistic => "logistic",
            Bernoulli => "bernoulli",
            BernoulliLogit => "bernoulli_logit",
            Binomial => "binomial",
            BinomialLogit => "binomial_logit",
            Poisson => "poisson",
            PoissonLog => "poisson_log",
            NegBinomial2 => "neg_binomial_2",
            Categorical => "categorical",
            CategoricalLogit => "categorical_logit",
            Dirichlet => "dirichlet",
            MultiNormal => "multi_normal",
            MultiNormalCholesky => "multi_normal_cholesky",
            LkjCorrCholesky => "lkj_corr_cholesky",
        }
    }

    /// Number of parameters, not counting the variate.
    pub fn n_params(self) -> usize {
        use Family::*;
        match self {
            StdNormal => 0,
            HalfNormal | HalfCauchy | Exponential | Bernoulli | BernoulliLogit | Poisson | PoissonLog | Categorical
            | CategoricalLogit | Dirichlet | LkjCorrCholesky => 1,
            Normal | Cauchy | Gamma | InvGamma | Lognormal | Beta | Uniform | Laplace | Logistic | Binomial
            | BinomialLogit | NegBinomial2 | MultiNormal | MultiNormalCholesky => 2,
            StudentT => 3,
        }
    }

    /// Whether the variate is integer-valued (counts, 0/1 outcomes, 0-based labels).
    pub fn is_discrete(self) -> bool {
        use Family::*;
        matches!(
            self,
            Bernoulli
                | BernoulliLogit
                | Binomial
                | BinomialLogit
                | Poisson
                | PoissonLog
                | NegBinomial2
                | Categorical
                | CategoricalLogit
        )
    }

    /// True for the scalar families (`normal` .. `neg_binomial_2`), which apply elementwise
    /// with broadcasting.
    pub fn is_elementwise(self) -> bool {
        use Family::*;
        !matches!(
            self,
            Categorical | CategoricalLogit | Dirichlet | MultiNormal | MultiNormalCholesky | LkjCorrCholesky
        )
    }
}

/// One argument: flat row-major values and its dims ([] scalar, [n] vector, [r, c] matrix).
#[derive(Clone, Copy, Debug)]
pub struct Arg<'a> {
    pub values: &'a [f64],
    pub dims: &'a [usize],
}

/// Log density of args[0] (the variate) given args[1..] (the parameters), summed over elements.
/// Elementwise families broadcast: every argument has length 1 or n (n = the largest length).
/// If `grads` is Some, it holds one slice per argument (same lengths as the args' values) and the
/// gradient of the returned value with respect to each argument is ADDED into it (+=); for a
/// broadcast scalar argument that is the sum over elements. Discrete variates get no gradient
/// (leave their slice untouched); integer parameters (binomial's N) likewise.
/// Invalid parameters (sigma <= 0, a shape <= 0, theta outside [0,1], a non-square or
/// non-positive-definite matrix, mismatched lengths) → return f64::NAN. A variate outside the
/// support (x < 0 for exponential, a label >= K, a non-integer count) → return
/// f64::NEG_INFINITY. Never panic on any input.
///
/// Multivariate families additionally accept a stack of variates: for `dirichlet`,
/// `multi_normal` and `multi_normal_cholesky` the variate and the vector parameter (alpha / mu)
/// may each be a vector `[K]` or a matrix `[M, K]` whose rows are independent draws (a `[K]`
/// argument is shared by every row); `categorical` / `categorical_logit` take a scalar or a
/// vector of labels, with the probabilities/logits either one vector `[K]` shared by every label
/// or an `[N, K]` matrix holding one row per label.
pub fn log_density(f: Family, args: &[Arg], grads: Option<&mut [&mut [f64]]>) -> f64 {
    log_density_impl(f, args, grads, true)
}

/// `strict == false` skips the checks that a constrained variate/parameter lies on its manifold
/// (simplex sums, unit rows and triangularity of a correlation Cholesky factor). Only the tests
/// use that, to finite-difference the formulas in coordinates that leave the manifold.
fn log_density_impl(f: Family, args: &[Arg], grads: Option<&mut [&mut [f64]]>, strict: bool) -> f64 {
    if args.len() != f.n_params() + 1 || !args.iter().all(dims_ok) {
        return f64::NAN;
    }
    if let Some(g) = grads.as_deref() {
        if g.len() != args.len() || g.iter().zip(args).any(|(g, a)| g.len() != a.values.len()) {
            return f64::NAN;
        }
    }
    use Family::*;
    match f {
        Categorical => categorical(args, grads, false, strict),
        CategoricalLogit => categorical(args, grads, true, strict),
        Dirichlet => dirichlet(args, grads, strict),
        MultiNormal => multi_normal(args, grads, false),
        MultiNormalCholesky => multi_normal(args, grads, true),
        LkjCorrCholesky => lkj_corr_cholesky(args, grads, strict),
        _ => elementwise(f, args, grads),
    }
}

// ---------------------------------------------------------------------------------------------
// Small numerical helpers
// ---------------------------------------------------------------------------------------------

fn dims_ok(a: &Arg) -> bool {
    a.dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) == Some(a.values.len())
}

/// `c · ln y`, with `0 · ln 0 = 0` (the convention at the edge of a support).
fn xlogy(c: f64, y: f64) -> f64 {
    if c == 0.0 {
        0.0
    } else {
        c * y.ln()
    }
}

/// `c · ln(1 + y)`, with the same zero convention.
fn xlog1py(c: f64, y: f64) -> f64 {
    if c == 0.0 {
        0.0
    } else {
        c * y.ln_1p()
    }
}

/// `c / y` with `0 / 0 = 0` (derivative of [`xlogy`] with respect to `y`).
fn xdivy(c: f64, y: f64) -> f64 {
    if c == 0.0 {
        0.0
    } else {
        c / y
    }
}

/// softplus(t) = ln(1 + eᵗ), computed without overflow or cancellation.
fn softplus(t: f64) -> f64 {
    if t > 0.0 {
        t + (-t).exp().ln_1p()
    } else {
        t.exp().ln_1p()
    }
}

/// Logistic sigmoid 1 / (1 + e⁻ᵗ), computed without overflow.
fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// ln(y!) for a non-negative integer-valued `y` (exact table below 171, Stirling-accurate above).
fn lfact(y: f64) -> f64 {
    if y < 1e18 {
        ln_factorial(y as u64)
    } else {
        ln_gamma(y + 1.0)
    }
}

fn is_count(y: f64) -> bool {
    y >= 0.0 && y.is_finite() && y.fract() == 0.0
}

fn positive(v: f64) -> bool {
    v > 0.0 && v.is_finite()
}

fn probability(v: f64) -> bool {
    (0.0..=1.0).contains(&v)
}

/// ln Σ exp(v_i), shifted by the maximum so that nothing overflows.
fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.iter().map(|&x| (x - m).exp()).sum::<f64>().ln()
}

/// Interprets an argument as a stack of vectors: `[]` → 1×1, `[k]` → 1×k, `[m, k]` → m×k.
fn as_rows(a: &Arg) -> Option<(usize, usize)> {
    match *a.dims {
        [] => Some((1, 1)),
        [k] => Some((1, k)),
        [m, k] => Some((m, k)),
        _ => None,
    }
}

/// Side of a square matrix argument (`[k, k]`, or a lone scalar as 1×1).
fn square_dim(a: &Arg) -> Option<usize> {
    match *a.dims {
        [] => Some(1),
        [r, c] if r == c => Some(r),
        _ => None,
    }
}

/// Broadcast two row counts: equal, or one of them is 1.
fn bcast(a: usize, b: usize) -> Option<usize> {
    if a == b || b == 1 {
        Some(a)
    } else if a == 1 {
        Some(b)
    } else {
        None
    }
}

/// Lower Cholesky factor (k×k row-major, written into `l`) of the symmetric matrix whose lower
/// triangle is read from `a`. False unless every pivot is positive and finite (i.e. `a` is
/// positive definite).
fn cholesky_into(a: &[f64], k: usize, l: &mut [f64]) -> bool {
    l.fill(0.0);
    for j in 0..k {
        let mut d = a[j * k + j];
        for m in 0..j {
            d -= l[j * k + m] * l[j * k + m];
        }
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        let ljj = d.sqrt();
        l[j * k + j] = ljj;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for m in 0..j {
                s -= l[i * k + m] * l[j * k + m];
            }
            l[i * k + j] = s / ljj;
        }
    }
    true
}

/// The same, into a new vector (for the samplers, which allocate anyway).
fn cholesky(a: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    cholesky_into(a, k, &mut l).then_some(l)
}

thread_local! {
    /// Working memory of the multivariate densities, kept between calls so that a density
    /// evaluated again and again (inside a sampler) allocates only the first time.
    static WORK: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `n` zeroed values of this thread's working memory (a fresh vector if that
/// memory is already in use further up the stack).
fn with_work<R>(n: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    WORK.with(|w| match w.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < n {
                v.resize(n, 0.0);
            }
            let s = &mut v[..n];
            s.fill(0.0);
            f(s)
        }
        Err(_) => f(&mut vec![0.0; n]),
    })
}

/// Solves `L z = b` in place (forward substitution; reads only the lower triangle of `l`).
fn forward_solve(l: &[f64], k: usize, b: &mut [f64]) {
    for i in 0..k {
        let mut s = b[i];
        for j in 0..i {
            s -= l[i * k + j] * b[j];
        }
        b[i] = s / l[i * k + i];
    }
}

/// Solves `Lᵀ x = b` in place (back substitution; reads only the lower triangle of `l`).
fn backward_solve(l: &[f64], k: usize, b: &mut [f64]) {
    for i in (0..k).rev() {
        let mut s = b[i];
        for j in i + 1..k {
            s -= l[j * k + i] * b[j];
        }
        b[i] = s / l[i * k + i];
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise (scalar) families
// ---------------------------------------------------------------------------------------------

/// Outcome of validating one element before any arithmetic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    Ok,
    OutOfSupport,
    Invalid,
}

/// Parameter validity for the scalar families (`p` holds up to three parameters in Stan order).
fn params_ok(f: Family, p: &[f64; 3]) -> bool {
    use Family::*;
    match f {
        Normal | Cauchy | Lognormal | Laplace | Logistic => p[0].is_finite() && positive(p[1]),
        StdNormal => true,
        StudentT => positive(p[0]) && p[1].is_finite() && positive(p[2]),
        HalfNormal | HalfCauchy | Exponential => positive(p[0]),
        Gamma | InvGamma | Beta | NegBinomial2 => positive(p[0]) && positive(p[1]),
        Uniform => p[0].is_finite() && p[1].is_finite() && p[0] < p[1],
        Bernoulli => probability(p[0]),
        BernoulliLogit | PoissonLog => p[0].is_finite(),
        Binomial => is_count(p[0]) && probability(p[1]),
        BinomialLogit => is_count(p[0]) && p[1].is_finite(),
        Poisson => p[0] >= 0.0 && p[0].is_finite(),
        _ => false,
    }
}

/// Support check for a scalar variate, assuming valid parameters. Points where the density is
/// exactly zero (e.g. `y = 1` under `bernoulli(0)`) count as outside the support.
fn support(f: Family, x: f64, p: &[f64; 3]) -> Check {
    use Family::*;
    if x.is_nan() {
        return Check::Invalid;
    }
    let ok = match f {
        Normal | StdNormal | StudentT | Cauchy | Laplace | Logistic => x.is_finite(),
        HalfNormal | HalfCauchy | Exponential => x >= 0.0 && x.is_finite(),
        Gamma => x > 0.0 && x.is_finite() || x == 0.0 && p[0] <= 1.0,
        InvGamma | Lognormal => x > 0.0 && x.is_finite(),
        Beta => (0.0..=1.0).contains(&x) && !(x == 0.0 && p[0] > 1.0) && !(x == 1.0 && p[1] > 1.0),
        Uniform => p[0] <= x && x <= p[1],
        Bernoulli => x == 1.0 && p[0] > 0.0 || x == 0.0 && p[0] < 1.0,
        BernoulliLogit => x == 0.0 || x == 1.0,
        Binomial => is_count(x) && x <= p[0] && !(p[1] == 0.0 && x > 0.0) && !(p[1] == 1.0 && x < p[0]),
        BinomialLogit => is_count(x) && x <= p[0],
        Poisson => is_count(x) && !(p[0] == 0.0 && x > 0.0),
        PoissonLog | NegBinomial2 => is_count(x),
        _ => false,
    };
    if ok {
        Check::Ok
    } else {
        Check::OutOfSupport
    }
}

/// Log density of one scalar element; writes ∂/∂x into `d[0]` and ∂/∂p[j] into `d[j + 1]`.
/// Assumes `params_ok` and `support` passed.
/// With `grad == false` the partials that need ψ (digamma) are not computed (set to 0).
fn elem(f: Family, x: f64, p: &[f64; 3], d: &mut [f64; 4], grad: bool) -> f64 {
    use Family::*;
    let dg = |v: f64| if grad { digamma(v) } else { 0.0 };
    match f {
        // Stan FR "Normal distribution": N(x | μ, σ) = exp(-z²/2) / (σ√(2π)), z = (x-μ)/σ.
        Normal => {
            let (mu, s) = (p[0], p[1]);
            let z = (x - mu) / s;
            d[0] = -z / s;
            d[1] = z / s;
            d[2] = (z * z - 1.0) / s;
            -0.5 * z * z - s.ln() - HALF_LN_2PI
        }
        // Stan FR "Standard normal distribution": N(x | 0, 1).
        StdNormal => {
            d[0] = -x;
            -0.5 * x * x - HALF_LN_2PI
        }
        // Stan FR "Student-t distribution": with z = (x-μ)/σ,
        // ln p = lnΓ((ν+1)/2) − lnΓ(ν/2) − ½ln(νπ) − lnσ − (ν+1)/2 · ln(1 + z²/ν).
        StudentT => {
            let (nu, mu, s) = (p[0], p[1], p[2]);
            let z = (x - mu) / s;
            let z2 = z * z;
            let w = (nu + 1.0) / (nu + z2); // (ν+1)/(ν+z²)
            d[0] = -w * z / s;
            d[2] = -d[0];
            d[3] = (w * z2 - 1.0) / s;
            d[1] = 0.5 * (dg(0.5 * (nu + 1.0)) - dg(0.5 * nu)) - 0.5 / nu - 0.5 * (z2 / nu).ln_1p() + 0.5 * w * z2 / nu;
            ln_gamma(0.5 * (nu + 1.0))
                - ln_gamma(0.5 * nu)
                - 0.5 * (nu.ln() + LN_PI)
                - s.ln()
                - 0.5 * (nu + 1.0) * (z2 / nu).ln_1p()
        }
        // Stan FR "Cauchy distribution": p = 1 / (πσ (1 + z²)).
        Cauchy => {
            let (mu, s) = (p[0], p[1]);
            let z = (x - mu) / s;
            let q = 2.0 * z / (1.0 + z * z); // −d/dz ln p
            d[0] = -q / s;
            d[1] = q / s;
            d[2] = (q * z - 1.0) / s;
            -LN_PI - s.ln() - (z * z).ln_1p()
        }
        // Half-normal on x ≥ 0: twice the N(0, σ) density.
        HalfNormal => {
            let s = p[0];
            let z = x / s;
            d[0] = -z / s;
            d[1] = (z * z - 1.0) / s;
            LN_2 - 0.5 * z * z - s.ln() - HALF_LN_2PI
        }
        // Half-Cauchy on x ≥ 0: twice the Cauchy(0, σ) density.
        HalfCauchy => {
            let s = p[0];
            let z = x / s;
            let q = 2.0 * z / (1.0 + z * z);
            d[0] = -q / s;
            d[1] = (q * z - 1.0) / s;
            LN_2 - LN_PI - s.ln() - (z * z).ln_1p()
        }
        // Stan FR "Exponential distribution" (rate β): p = β e^{−βx}.
        Exponential => {
            let b = p[0];
            d[0] = -b;
            d[1] = 1.0 / b - x;
            b.ln() - b * x
        }
        // Stan FR "Gamma distribution" (shape α, rate β): p = βᵅ/Γ(α) x^{α−1} e^{−βx}.
        Gamma => {
            let (a, b) = (p[0], p[1]);
            d[0] = xdivy(a - 1.0, x) - b;
            d[1] = b.ln() - dg(a) + x.ln();
            d[2] = a / b - x;
            a * b.ln() - ln_gamma(a) + xlogy(a - 1.0, x) - b * x
        }
        // Stan FR "Inverse gamma distribution" (shape α, scale β): p = βᵅ/Γ(α) x^{−α−1} e^{−β/x}.
        InvGamma => {
            let (a, b) = (p[0], p[1]);
            let lx = x.ln();
            d[0] = (b / x - (a + 1.0)) / x;
            d[1] = b.ln() - dg(a) - lx;
            d[2] = a / b - 1.0 / x;
            a * b.ln() - ln_gamma(a) - (a + 1.0) * lx - b / x
        }
        // Stan FR "Lognormal distribution": ln x ~ N(μ, σ), Jacobian 1/x.
        Lognormal => {
            let (mu, s) = (p[0], p[1]);
            let lx = x.ln();
            let z = (lx - mu) / s;
            d[0] = -(z / s + 1.0) / x;
            d[1] = z / s;
            d[2] = (z * z - 1.0) / s;
            -0.5 * z * z - s.ln() - HALF_LN_2PI - lx
        }
        // Stan FR "Beta distribution": p = x^{α−1} (1−x)^{β−1} / B(α, β).
        Beta => {
            let (a, b) = (p[0], p[1]);
            let dab = dg(a + b);
            d[0] = xdivy(a - 1.0, x) - xdivy(b - 1.0, 1.0 - x);
            d[1] = x.ln() - dg(a) + dab;
            d[2] = (-x).ln_1p() - dg(b) + dab;
            xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - (ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b))
        }
        // Stan FR "Uniform distribution": p = 1/(β−α) on [α, β].
        Uniform => {
            let w = p[1] - p[0];
            d[0] = 0.0;
            d[1] = 1.0 / w;
            d[2] = -1.0 / w;
            -w.ln()
        }
        // Stan FR "Double exponential (Laplace) distribution": p = e^{−|x−μ|/σ} / (2σ).
        // At x = μ the (sub)gradient in x and μ is taken as 0.
        Laplace => {
            let (mu, s) = (p[0], p[1]);
            let r = x - mu;
            let sg = if r > 0.0 {
                1.0
            } else if r < 0.0 {
                -1.0
            } else {
                0.0
            };
            d[0] = -sg / s;
            d[1] = sg / s;
            d[2] = (r.abs() / s - 1.0) / s;
            -LN_2 - s.ln() - r.abs() / s
        }
        // Stan FR "Logistic distribution": p = e^{−z} / (σ (1 + e^{−z})²); the density is even in
        // z, so it is evaluated at |z| to avoid overflow. d/dz ln p = −tanh(z/2).
        Logistic => {
            let (mu, s) = (p[0], p[1]);
            let z = (x - mu) / s;
            let t = (0.5 * z).tanh();
            d[0] = -t / s;
            d[1] = t / s;
            d[2] = (z * t - 1.0) / s;
            let az = z.abs();
            -az - 2.0 * (-az).exp().ln_1p() - s.ln()
        }
        // Stan FR "Bernoulli distribution": P(1) = θ.
        Bernoulli => {
            let th = p[0];
            if x == 1.0 {
                d[1] = 1.0 / th;
                th.ln()
            } else {
                d[1] = -1.0 / (1.0 - th);
                (-th).ln_1p()
            }
        }
        // Stan FR "Bernoulli distribution, logit parameterization": P(1) = logit⁻¹(α), so
        // ln P(1) = −softplus(−α), ln P(0) = −softplus(α).
        BernoulliLogit => {
            if grad {
                d[1] = vmath::bernoulli_logit_term_da(x, p[0]);
            }
            vmath::bernoulli_logit_term(x, p[0])
        }
        // Stan FR "Binomial distribution": C(N, y) θʸ (1−θ)^{N−y}.
        Binomial => {
            let (n, th) = (p[0], p[1]);
            d[2] = xdivy(x, th) - xdivy(n - x, 1.0 - th);
            lfact(n) - lfact(x) - lfact(n - x) + xlogy(x, th) + xlog1py(n - x, -th)
        }
        // Stan FR "Binomial distribution, logit parameterization": θ = logit⁻¹(α).
        BinomialLogit => {
            let (n, a) = (p[0], p[1]);
            d[2] = x * sigmoid(-a) - (n - x) * sigmoid(a);
            lfact(n) - lfact(x) - lfact(n - x) - x * softplus(-a) - (n - x) * softplus(a)
        }
        // Stan FR "Poisson distribution": λʸ e^{−λ} / y!.
        Poisson => {
            let l = p[0];
            d[1] = xdivy(x, l) - 1.0;
            xlogy(x, l) - l - lfact(x)
        }
        // Stan FR "Poisson distribution, log parameterization": λ = e^α.
        PoissonLog => {
            let a = p[0];
            let l = a.exp();
            d[1] = x - l;
            x * a - l - lfact(x)
        }
        // Stan FR "Negative binomial distribution (alternative parameterization)", mean μ and
        // dispersion φ: Γ(y+φ)/(y! Γ(φ)) · (μ/(μ+φ))ʸ · (φ/(μ+φ))^φ.
        // ln(μ/(μ+φ)) = −ln(1 + φ/μ) and ln(φ/(μ+φ)) = −ln(1 + μ/φ).
        NegBinomial2 => {
            let (mu, phi) = (p[0], p[1]);
            let l1 = (mu / phi).ln_1p();
            d[0] = 0.0;
            d[1] = x / mu - (x + phi) / (mu + phi);
            d[2] = dg(x + phi) - dg(phi) - l1 + (mu - x) / (mu + phi);
            ln_gamma(x + phi) - lfact(x) - ln_gamma(phi) - xlog1py(x, phi / mu) - phi * l1
        }
        _ => f64::NAN,
    }
}

/// Whether argument `j` of a scalar family receives a gradient.
fn elem_has_grad(f: Family, j: usize) -> bool {
    !(j == 0 && f.is_discrete() || j == 1 && matches!(f, Family::Binomial | Family::BinomialLogit))
}

/// Whether `f`'s density is a sum over elements of a scalar density (the families
/// [`elementwise`] handles): compiled code evaluates those one element at a time.
pub fn is_elementwise(f: Family) -> bool {
    use Family::*;
    match f {
        Categorical | CategoricalLogit | Dirichlet | MultiNormal | MultiNormalCholesky | LkjCorrCholesky => false,
        Normal | StdNormal | StudentT | Cauchy | HalfNormal | HalfCauchy | Exponential | Gamma | InvGamma
        | Lognormal | Beta | Uniform | Laplace | Logistic | Bernoulli | BernoulliLogit | Binomial | BinomialLogit
        | Poisson | PoissonLog | NegBinomial2 => true,
    }
}

/// One element of an elementwise family: its log density, NaN when the parameters are
/// invalid or x is NaN, −∞ when x is outside the support (as [`log_density`] for the sum).
pub fn elem_log_density(f: Family, x: f64, p: &[f64; 3]) -> f64 {
    if !params_ok(f, p) {
        return f64::NAN;
    }
    match support(f, x, p) {
        Check::Invalid => f64::NAN,
        Check::OutOfSupport => f64::NEG_INFINITY,
        Check::Ok => elem(f, x, p, &mut [0.0; 4], false),
    }
}

/// The partial derivatives of one element's log density in (x, p[0], p[1], p[2]); zero for an
/// argument without a gradient (a discrete variate, a binomial's trial count).
pub fn elem_partials(f: Family, x: f64, p: &[f64; 3], d: &mut [f64; 4]) {
    *d = [0.0; 4];
    if f == Family::BernoulliLogit {
        // The partial alone (the value's softplus is the costly part), as `elem` computes it.
        d[1] = vmath::bernoulli_logit_term_da(x, p[0]);
        return;
    }
    elem(f, x, p, d, true);
    for (j, dj) in d.iter_mut().enumerate() {
        if !elem_has_grad(f, j) {
            *dj = 0.0;
        }
    }
}

fn elementwise(f: Family, args: &[Arg], grads: Option<&mut [&mut [f64]]>) -> f64 {
    let lens = args.iter().map(|a| a.values.len());
    let n = if lens.clone().any(|l| l == 0) { 0 } else { lens.clone().max().unwrap_or(0) };
    if lens.clone().any(|l| l != n && l != 1) {
        return f64::NAN;
    }
    if f == Family::BernoulliLogit {
        return bernoulli_logit(args[0].values, args[1].values, n, grads);
    }
    let np = f.n_params();
    let at = |a: &Arg, i: usize| if a.values.len() == 1 { a.values[0] } else { a.values[i] };
    let load = |i: usize| {
        let mut p = [0.0; 3];
        for (j, a) in args[1..].iter().enumerate() {
            p[j] = at(a, i);
        }
        (at(&args[0], i), p)
    };
    // First pass: validate everything, so that no gradient is touched unless the result is a
    // proper log density. Invalid parameters take precedence over an out-of-support variate.
    let mut worst = Check::Ok;
    for i in 0..n {
        let (x, p) = load(i);
        if !params_ok(f, &p) {
            return f64::NAN;
        }
        worst = worst.max(support(f, x, &p));
    }
    match worst {
        Check::Invalid => return f64::NAN,
        Check::OutOfSupport => return f64::NEG_INFINITY,
        Check::Ok => {}
    }
    let mut lp = 0.0;
    let mut d = [0.0; 4];
    match grads {
        None => {
            for i in 0..n {
                let (x, p) = load(i);
                lp += elem(f, x, &p, &mut d, false);
            }
        }
        Some(g) => {
            for i in 0..n {
                let (x, p) = load(i);
                lp += elem(f, x, &p, &mut d, true);
                for j in 0..=np {
                    if elem_has_grad(f, j) {
                        let gj = &mut *g[j];
                        if gj.len() == 1 {
                            gj[0] += d[j];
                        } else {
                            gj[i] += d[j];
                        }
                    }
                }
            }
        }
    }
    lp
}

/// `bernoulli_logit` over whole arrays, four elements at a time (`math::vmath`), as compiled
/// code computes it too, with the checks of [`elementwise`] (a non-finite logit or a NaN label
/// gives NaN, a label outside {0, 1} −∞) made in the same pass as the sum.
fn bernoulli_logit(y: &[f64], a: &[f64], n: usize, grads: Option<&mut [&mut [f64]]>) -> f64 {
    let Some(lp) = vmath::bernoulli_logit_checked(y, a, n, None) else {
        return bernoulli_logit_failed(y, a);
    };
    if let Some(g) = grads {
        let ga = &mut *g[1];
        vmath::bernoulli_logit_partials(y, a, n, |i, d| {
            if ga.len() == 1 {
                ga[0] += d;
            } else {
                ga[i] += d;
            }
        });
    }
    lp
}

/// `bernoulli_logit` summed over n elements (`y` and `a` of length n or 1), with each element's
/// partial in its logit written to `d` (n elements) when the result is finite: what compiled
/// code keeps for its reverse sweep. The same bits as [`log_density`].
pub fn bernoulli_logit_keep_partials(y: &[f64], a: &[f64], d: &mut [f64]) -> f64 {
    match vmath::bernoulli_logit_checked(y, a, d.len(), Some(d)) {
        Some(lp) => lp,
        None => bernoulli_logit_failed(y, a),
    }
}

/// What the checks give when some argument is outside the domain: NaN for a logit that is not
/// finite or a NaN label, −∞ for another label outside {0, 1}.
fn bernoulli_logit_failed(y: &[f64], a: &[f64]) -> f64 {
    if a.iter().any(|v| !v.is_finite()) || y.iter().any(|v| v.is_nan()) {
        f64::NAN
    } else if y.iter().any(|v| *v != 0.0 && *v != 1.0) {
        f64::NEG_INFINITY
    } else {
        // Not reached: the pass flags exactly these cases.
        f64::NAN
    }
}

// ---------------------------------------------------------------------------------------------
// Categorical
// ---------------------------------------------------------------------------------------------

/// Stan FR "Categorical distribution" (labels here are 0-based):
/// * `categorical(θ)`: ln P(y) = ln θ_y, with θ a K-simplex; ∂/∂θ_k = [y = k] / θ_k.
/// * `categorical_logit(β)`: ln P(y) = β_y − log Σ_k e^{β_k}; ∂/∂β_k = [y = k] − softmax(β)_k.
///
/// The parameter is one vector `[K]` shared by every label, or an `[N, K]` matrix with one row
/// per label (then there must be exactly N labels).
fn categorical(args: &[Arg], grads: Option<&mut [&mut [f64]]>, logit: bool, strict: bool) -> f64 {
    let (y, p) = (args[0], args[1]);
    let Some((rows, k)) = as_rows(&p) else {
        return f64::NAN;
    };
    if k == 0 || (rows != 1 && y.values.len() != rows) {
        return f64::NAN;
    }
    // Parameter validity.
    for r in 0..rows {
        let row = &p.values[r * k..(r + 1) * k];
        if logit {
            if !row.iter().all(|v| v.is_finite()) {
                return f64::NAN;
            }
        } else {
            if !row.iter().all(|&v| v >= 0.0 && v.is_finite()) {
                return f64::NAN;
            }
            if strict && (row.iter().sum::<f64>() - 1.0).abs() > CONSTRAINT_TOL {
                return f64::NAN;
            }
        }
    }
    // Labels.
    let mut out = false;
    for (i, &l) in y.values.iter().enumerate() {
        if l.is_nan() {
            return f64::NAN;
        }
        if !(is_count(l) && l < k as f64) {
            out = true;
            continue;
        }
        let r = if rows == 1 { 0 } else { i };
        if !logit && p.values[r * k + l as usize] == 0.0 {
            out = true;
        }
    }
    if out {
        return f64::NEG_INFINITY;
    }
    let row_of = |i: usize| if rows == 1 { 0 } else { i };
    let mut lp = 0.0;
    if logit {
        // Each row's log-sum-exp and how many labels use the row, in the working memory.
        lp = with_work(2 * rows, |w| {
            let (lse, uses) = w.split_at_mut(rows);
            for (r, v) in lse.iter_mut().enumerate() {
                *v = log_sum_exp(&p.values[r * k..(r + 1) * k]);
            }
            let mut lp = 0.0;
            for (i, &l) in y.values.iter().enumerate() {
                let r = row_of(i);
                lp += p.values[r * k + l as usize] - lse[r];
                uses[r] += 1.0;
            }
            if let Some(g) = grads {
                let gp = &mut *g[1];
                for (i, &l) in y.values.iter().enumerate() {
                    gp[row_of(i) * k + l as usize] += 1.0;
                }
                for r in 0..rows {
                    if uses[r] > 0.0 {
                        for j in 0..k {
                            gp[r * k + j] -= uses[r] * (p.values[r * k + j] - lse[r]).exp();
                        }
                    }
                }
            }
            lp
        });
    } else {
        for (i, &l) in y.values.iter().enumerate() {
            lp += p.values[row_of(i) * k + l as usize].ln();
        }
        if let Some(g) = grads {
            let gp = &mut *g[1];
            for (i, &l) in y.values.iter().enumerate() {
                let idx = row_of(i) * k + l as usize;
                gp[idx] += 1.0 / p.values[idx];
            }
        }
    }
    lp
}

// ---------------------------------------------------------------------------------------------
// Dirichlet
// ---------------------------------------------------------------------------------------------

/// Stan FR "Dirichlet distribution":
/// ln p(θ | α) = lnΓ(Σα) − Σ lnΓ(α_k) + Σ (α_k − 1) ln θ_k,
/// ∂/∂θ_k = (α_k − 1)/θ_k (ambient partials), ∂/∂α_k = ψ(Σα) − ψ(α_k) + ln θ_k.
fn dirichlet(args: &[Arg], grads: Option<&mut [&mut [f64]]>, strict: bool) -> f64 {
    let (th, al) = (args[0], args[1]);
    let (Some((rt, k)), Some((ra, ka))) = (as_rows(&th), as_rows(&al)) else {
        return f64::NAN;
    };
    let Some(m) = bcast(rt, ra) else {
        return f64::NAN;
    };
    if k != ka || k == 0 {
        return f64::NAN;
    }
    if !al.values.iter().all(|&a| positive(a)) || th.values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let row = |rows: usize, r: usize| if rows == 1 { 0 } else { r * k };
    for r in 0..rt {
        let t = &th.values[r * k..(r + 1) * k];
        // Strict: entries in [0, 1]; lax (tests only): any finite non-negative entries.
        let inside = |v: f64| if strict { (0.0..=1.0).contains(&v) } else { v >= 0.0 && v.is_finite() };
        if !t.iter().all(|&v| inside(v)) {
            return f64::NEG_INFINITY;
        }
        if strict && (t.iter().sum::<f64>() - 1.0).abs() > CONSTRAINT_TOL {
            return f64::NEG_INFINITY;
        }
    }
    for r in 0..m {
        let (t0, a0) = (row(rt, r), row(ra, r));
        for j in 0..k {
            if th.values[t0 + j] == 0.0 && al.values[a0 + j] > 1.0 {
                return f64::NEG_INFINITY;
            }
        }
    }
    let mut lp = 0.0;
    let mut g = grads;
    for r in 0..m {
        let (t0, a0) = (row(rt, r), row(ra, r));
        let t = &th.values[t0..t0 + k];
        let a = &al.values[a0..a0 + k];
        let asum: f64 = a.iter().sum();
        lp += ln_gamma(asum);
        for j in 0..k {
            lp += xlogy(a[j] - 1.0, t[j]) - ln_gamma(a[j]);
        }
        if let Some(g) = g.as_deref_mut() {
            let psum = digamma(asum);
            for j in 0..k {
                g[0][t0 + j] += xdivy(a[j] - 1.0, t[j]);
                g[1][a0 + j] += psum - digamma(a[j]) + t[j].ln();
            }
        }
    }
    lp
}

// ---------------------------------------------------------------------------------------------
// Multivariate normal
// ---------------------------------------------------------------------------------------------

/// Stan FR "Multivariate normal distribution" and "... Cholesky parameterization":
/// with Σ = L Lᵀ, r = y − μ, z = L⁻¹ r and a = Σ⁻¹ r = L⁻ᵀ z,
/// ln p = −(K/2) ln 2π − Σ_k ln L_kk − ½ zᵀz,
/// ∂/∂y = −a, ∂/∂μ = a,
/// ∂/∂L = a zᵀ − diag(1/L_kk) restricted to the lower triangle (upper entries of L are ignored
///        by the density and get 0),
/// ∂/∂Σ = ½ (a aᵀ − Σ⁻¹).
///
/// Convention for Σ: the density only makes sense for symmetric Σ, so the gradient reported for
/// Σ is the *symmetrised* one, G = ½(Σ⁻¹ r rᵀ Σ⁻¹ − Σ⁻¹), written to both triangles. For a
/// symmetric perturbation δ (δ_ij = δ_ji) the change in the log density is Σ_ij G_ij δ_ij; i.e.
/// an off-diagonal pair moved together changes the density at rate G_ij + G_ji = 2 G_ij.
/// Callers holding only a triangle of free coordinates should sum the two mirrored entries.
fn multi_normal(args: &[Arg], grads: Option<&mut [&mut [f64]]>, chol_param: bool) -> f64 {
    let (y, mu, s) = (args[0], args[1], args[2]);
    let (Some((ry, k)), Some((rm, km))) = (as_rows(&y), as_rows(&mu)) else {
        return f64::NAN;
    };
    let Some(m) = bcast(ry, rm) else {
        return f64::NAN;
    };
    if km != k || square_dim(&s) != Some(k) {
        return f64::NAN;
    }
    if !mu.values.iter().all(|v| v.is_finite()) {
        return f64::NAN;
    }
    if !chol_param && !s.values.iter().all(|v| v.is_finite()) {
        return f64::NAN;
    }
    if !chol_param {
        for i in 0..k {
            for j in 0..i {
                let (a, b) = (s.values[i * k + j], s.values[j * k + i]);
                if (a - b).abs() > CONSTRAINT_TOL * a.abs().max(b.abs()).max(1.0) {
                    return f64::NAN;
                }
            }
        }
    }
    let kk = k * k;
    // L, z, a, the accumulated outer products, and (for Σ) L⁻¹ and one of its columns.
    let need = kk + 2 * k + if grads.is_some() { 2 * kk + k } else { 0 };
    with_work(need, |w| {
        let (l, w) = w.split_at_mut(kk);
        if chol_param {
            // Lower triangle must be finite with a positive diagonal; the upper one is ignored.
            for i in 0..k {
                for j in 0..=i {
                    let v = s.values[i * k + j];
                    if !v.is_finite() || (i == j && v <= 0.0) {
                        return f64::NAN;
                    }
                    l[i * k + j] = v;
                }
            }
        } else if !cholesky_into(s.values, k, l) {
            return f64::NAN;
        }
        if y.values.iter().any(|v| v.is_nan()) {
            return f64::NAN;
        }
        if y.values.iter().any(|v| v.is_infinite()) {
            return f64::NEG_INFINITY;
        }
        let (z, w) = w.split_at_mut(k);
        let (a, w) = w.split_at_mut(k);
        multi_normal_rows(y, mu, (ry, rm, m, k), l, z, a, w, grads, chol_param)
    })
}

/// The rows of [`multi_normal`] once L is known. `w` holds the gradient's working memory
/// (Σ_m a aᵀ or Σ_m a zᵀ, then L⁻¹ and a column of it) when gradients are wanted.
#[allow(clippy::too_many_arguments)]
fn multi_normal_rows(
    y: Arg,
    mu: Arg,
    (ry, rm, m, k): (usize, usize, usize, usize),
    l: &[f64],
    z: &mut [f64],
    a: &mut [f64],
    w: &mut [f64],
    grads: Option<&mut [&mut [f64]]>,
    chol_param: bool,
) -> f64 {
    let kk = k * k;
    let log_det_l: f64 = (0..k).map(|i| l[i * k + i].ln()).sum();
    let per_row = -(k as f64) * HALF_LN_2PI - log_det_l;
    let mut lp = 0.0;
    let (outer, w) = w.split_at_mut(if grads.is_some() { kk } else { 0 });
    let mut g = grads;
    for r in 0..m {
        let (y0, m0) = (if ry == 1 { 0 } else { r * k }, if rm == 1 { 0 } else { r * k });
        for (zi, (yi, mi)) in z.iter_mut().zip(y.values[y0..y0 + k].iter().zip(&mu.values[m0..m0 + k])) {
            *zi = yi - mi;
        }
        forward_solve(l, k, z);
        lp += per_row - 0.5 * z.iter().map(|v| v * v).sum::<f64>();
        if let Some(g) = g.as_deref_mut() {
            a.copy_from_slice(z);
            backward_solve(l, k, a);
            for i in 0..k {
                g[0][y0 + i] -= a[i];
                g[1][m0 + i] += a[i];
            }
            let rhs: &[f64] = if chol_param { z } else { a };
            for i in 0..k {
                for j in 0..k {
                    outer[i * k + j] += a[i] * rhs[j];
                }
            }
        }
    }
    if let Some(g) = g {
        let gs = &mut *g[2];
        let mf = m as f64;
        if chol_param {
            for i in 0..k {
                for j in 0..=i {
                    gs[i * k + j] += outer[i * k + j];
                }
                gs[i * k + i] -= mf / l[i * k + i];
            }
        } else {
            // Σ⁻¹ = L⁻ᵀ L⁻¹, from the columns of L⁻¹.
            let (linv, col) = w.split_at_mut(kk); // row-major L⁻¹
            for j in 0..k {
                col.iter_mut().for_each(|c| *c = 0.0);
                col[j] = 1.0;
                forward_solve(l, k, col);
                for i in 0..k {
                    linv[i * k + j] = col[i];
                }
            }
            for i in 0..k {
                for j in 0..k {
                    let sinv: f64 = (i.max(j)..k).map(|q| linv[q * k + i] * linv[q * k + j]).sum();
                    gs[i * k + j] += 0.5 * outer[i * k + j] - 0.5 * mf * sinv;
                }
            }
        }
    }
    lp
}

// ---------------------------------------------------------------------------------------------
// LKJ on Cholesky factors of correlation matrices
// ---------------------------------------------------------------------------------------------

/// ln c_K(η), the LKJ normalising constant (Lewandowski, Kurowicka & Joe 2009): with
/// b_k = η + (K−k−1)/2,
/// c_K(η) = Π_{k=1}^{K−1} [2^{2b_k − 1} B(b_k, b_k)]^{K−k}
/// (each of the K−k partial correlations at level k of the vine is Beta(b_k, b_k) on (−1, 1)).
/// Returns (ln c_K, d ln c_K / dη).
fn lkj_log_const(eta: f64, k: usize) -> (f64, f64) {
    let (mut c, mut dc) = (0.0, 0.0);
    for lev in 1..k {
        let cnt = (k - lev) as f64;
        let b = eta + 0.5 * (k - lev - 1) as f64;
        c += cnt * ((2.0 * b - 1.0) * LN_2 + 2.0 * ln_gamma(b) - ln_gamma(2.0 * b));
        dc += cnt * (2.0 * LN_2 + 2.0 * digamma(b) - 2.0 * digamma(2.0 * b));
    }
    (c, dc)
}

/// Stan FR "Cholesky LKJ correlation distribution": for L the K×K Cholesky factor of a
/// correlation matrix Ω = L Lᵀ,
/// ln p(L | η) = Σ_{k=2}^{K} (K − k + 2η − 2) ln L_kk − ln c_K(η)   (1-based k),
/// i.e. the LKJ density det(Ω)^{η−1}/c_K(η) times the Jacobian Π_k L_kk^{K−k} of L ↦ Ω,
/// a density with respect to Lebesgue measure on the strictly-lower entries of L.
/// Gradients: ∂/∂L_kk = (K − k + 2η − 2)/L_kk (other entries 0),
/// ∂/∂η = 2 Σ_{k≥2} ln L_kk − d ln c_K/dη.
fn lkj_corr_cholesky(args: &[Arg], grads: Option<&mut [&mut [f64]]>, strict: bool) -> f64 {
    let (lm, e) = (args[0], args[1]);
    if e.values.len() != 1 {
        return f64::NAN;
    }
    let eta = e.values[0];
    let Some(k) = square_dim(&lm) else {
        return f64::NAN;
    };
    if !positive(eta) || lm.values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let lv = lm.values;
    for i in 0..k {
        // (NaN entries were rejected above, so `<= 0.0` catches every non-positive diagonal.)
        if lv[i * k + i] <= 0.0 || !lv[i * k..(i + 1) * k].iter().all(|v| v.is_finite()) {
            return f64::NEG_INFINITY;
        }
        if strict {
            let norm2: f64 = (0..=i).map(|j| lv[i * k + j] * lv[i * k + j]).sum();
            let upper_zero = (i + 1..k).all(|j| lv[i * k + j].abs() <= CONSTRAINT_TOL);
            if !upper_zero || (norm2 - 1.0).abs() > CONSTRAINT_TOL {
                return f64::NEG_INFINITY;
            }
        }
    }
    let (c, dc) = lkj_log_const(eta, k);
    let mut lp = -c;
    let mut deta = -dc;
    for i in 1..k {
        // 0-based i is 1-based k = i + 1: exponent K − (i+1) + 2η − 2.
        let w = k as f64 - i as f64 - 3.0 + 2.0 * eta;
        let ld = lv[i * k + i].ln();
        lp += w * ld;
        deta += 2.0 * ld;
    }
    if let Some(g) = grads {
        for i in 1..k {
            let w = k as f64 - i as f64 - 3.0 + 2.0 * eta;
            g[0][i * k + i] += w / lv[i * k + i];
        }
        g[1][0] += deta;
    }
    lp
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use statrs::distribution as sd;
    use statrs::distribution::{Continuous, Discrete};
    use statrs::function::gamma::gamma;
    use Family::*;

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
            _ => unreachable!(),
        }
    }

    /// Random variate in the support of a scalar family with parameters `p`.
    fn gen_x(f: Family, p: &[f64; 3], rng: &mut StdRng) -> f64 {
        match f {
            Normal | Cauchy | Laplace | Logistic | StudentT | StdNormal => u(rng, -4.0, 4.0),
            HalfNormal | HalfCauchy | Exponential => u(rng, 0.01, 4.0),
            Gamma => u(rng, 0.05, 5.0),
            InvGamma | Lognormal => u(rng, 0.1, 5.0),
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
                            s[i * k + j] = (0..k).map(|q| a[i * k + q] * a[j * k + q]).sum::<f64>()
                                + if i == j { 0.5 } else { 0.0 };
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
                let scalar_x = !matches!(f, Binomial | BinomialLogit) && rng.random_range(0..4) == 0;
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
                    // Valid for every element: supports here do not depend on the parameters
                    // except uniform's, whose generated ranges all contain [0, 0.5].
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
        !(j == 0 && f.is_discrete() || j == 1 && matches!(f, Binomial | BinomialLogit))
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

    // ---------------------------------------------------------------- family table

    #[test]
    fn family_table() {
        assert_eq!(Family::ALL.len(), 27);
        let mut names = std::collections::HashSet::new();
        for (i, &f) in Family::ALL.iter().enumerate() {
            assert!(names.insert(f.name()));
            assert_eq!(Family::from_name(f.name()), Some(f));
            assert_eq!(f.is_elementwise(), i <= NegBinomial2 as usize, "{f:?}");
        }
        assert_eq!(Family::from_name("double_exponential"), None);
        assert_eq!(Family::from_name("Normal"), None);
        let np: Vec<usize> = Family::ALL.iter().map(|f| f.n_params()).collect();
        assert_eq!(np, [2, 0, 3, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 1, 1, 2, 2, 1, 1, 2, 1, 1, 1, 2, 2, 1]);
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
                Categorical,
                CategoricalLogit
            ]
        );
    }

    // ---------------------------------------------------------------- densities vs references

    /// Reference log density of a scalar family at scalar arguments, from statrs where it has
    /// the distribution and from an independently written closed form otherwise.
    fn reference(f: Family, x: f64, p: [f64; 3]) -> f64 {
        let xu = x as u64;
        let sig = |a: f64| 1.0 / (1.0 + (-a).exp());
        match f {
            Normal => sd::Normal::new(p[0], p[1]).unwrap().ln_pdf(x),
            StdNormal => sd::Normal::new(0.0, 1.0).unwrap().ln_pdf(x),
            StudentT => sd::StudentsT::new(p[1], p[2], p[0]).unwrap().ln_pdf(x),
            Cauchy => sd::Cauchy::new(p[0], p[1]).unwrap().ln_pdf(x),
            // Twice the density centred at 0.
            HalfNormal => (2.0 * sd::Normal::new(0.0, p[0]).unwrap().pdf(x)).ln(),
            HalfCauchy => (2.0 / (std::f64::consts::PI * p[0] * (1.0 + (x / p[0]).powi(2)))).ln(),
            Exponential => sd::Exp::new(p[0]).unwrap().ln_pdf(x),
            Gamma => sd::Gamma::new(p[0], p[1]).unwrap().ln_pdf(x),
            InvGamma => sd::InverseGamma::new(p[0], p[1]).unwrap().ln_pdf(x),
            Lognormal => sd::LogNormal::new(p[0], p[1]).unwrap().ln_pdf(x),
            Beta => sd::Beta::new(p[0], p[1]).unwrap().ln_pdf(x),
            Uniform => sd::Uniform::new(p[0], p[1]).unwrap().ln_pdf(x),
            Laplace => sd::Laplace::new(p[0], p[1]).unwrap().ln_pdf(x),
            Logistic => {
                let e = (-(x - p[0]) / p[1]).exp();
                (e / (p[1] * (1.0 + e) * (1.0 + e))).ln()
            }
            Bernoulli => sd::Bernoulli::new(p[0]).unwrap().ln_pmf(xu),
            BernoulliLogit => sd::Bernoulli::new(sig(p[0])).unwrap().ln_pmf(xu),
            Binomial => sd::Binomial::new(p[1], p[0] as u64).unwrap().ln_pmf(xu),
            BinomialLogit => sd::Binomial::new(sig(p[1]), p[0] as u64).unwrap().ln_pmf(xu),
            Poisson => sd::Poisson::new(p[0]).unwrap().ln_pmf(xu),
            PoissonLog => sd::Poisson::new(p[0].exp()).unwrap().ln_pmf(xu),
            // NB2(μ, φ) is NegativeBinomial(r = φ, p = φ/(μ+φ)).
            NegBinomial2 => sd::NegativeBinomial::new(p[1], p[1] / (p[0] + p[1])).unwrap().ln_pmf(xu),
            _ => unreachable!(),
        }
    }

    #[test]
    fn scalar_densities_match_references() {
        let mut rng = StdRng::seed_from_u64(1);
        for &f in Family::ALL.iter().filter(|f| f.is_elementwise()) {
            for _ in 0..40 {
                let p = gen_params(f, &mut rng);
                let x = gen_x(f, &p, &mut rng);
                let mut v = vec![x];
                v.extend_from_slice(&p[..f.n_params()]);
                let got = lp_s(f, &v);
                let want = reference(f, x, p);
                assert_close(got, want, 1e-10, &format!("{f:?} at {v:?}"));
            }
        }
    }

    #[test]
    fn scalar_densities_fixed_points() {
        // A few hand-picked points, including support edges where the density is finite.
        let cases: &[(Family, &[f64])] = &[
            (Normal, &[1.5, 0.5, 2.0]),
            (StdNormal, &[-0.3]),
            (StudentT, &[0.7, 3.0, -1.0, 2.5]),
            (StudentT, &[10.0, 1.0, 0.0, 1.0]),
            (Cauchy, &[100.0, 1.0, 0.2]),
            (HalfNormal, &[0.0, 1.3]),
            (HalfCauchy, &[0.0, 2.0]),
            (Exponential, &[0.0, 2.0]),
            (Gamma, &[0.0, 1.0, 3.0]),
            (Gamma, &[2.5, 7.0, 0.5]),
            (InvGamma, &[0.3, 2.0, 1.5]),
            (Lognormal, &[3.0, 0.1, 0.8]),
            (Beta, &[0.0, 1.0, 3.0]),
            (Beta, &[1.0, 2.0, 1.0]),
            (Beta, &[0.999, 0.5, 0.5]),
            (Uniform, &[-1.0, -1.0, 2.0]),
            (Laplace, &[1.0, 1.0, 2.0]),
            (Logistic, &[50.0, 0.0, 1.0]),
            (Logistic, &[-50.0, 0.0, 1.0]),
            (Bernoulli, &[0.0, 0.0]),
            (Bernoulli, &[1.0, 1.0]),
            (BernoulliLogit, &[1.0, 30.0]),
            (Binomial, &[0.0, 10.0, 0.0]),
            (Binomial, &[10.0, 10.0, 1.0]),
            (Binomial, &[3.0, 200.0, 0.01]),
            (BinomialLogit, &[7.0, 10.0, -2.0]),
            (Poisson, &[300.0, 280.0]),
            (PoissonLog, &[4.0, 1.2]),
            (NegBinomial2, &[0.0, 3.0, 0.5]),
            (NegBinomial2, &[40.0, 25.0, 3.0]),
        ];
        for (f, v) in cases {
            let mut p = [0.0; 3];
            p[..v.len() - 1].copy_from_slice(&v[1..]);
            assert_close(lp_s(*f, v), reference(*f, v[0], p), 1e-10, &format!("{f:?} {v:?}"));
        }
        // Values that need no library at all.
        assert_eq!(lp_s(Poisson, &[0.0, 0.0]), 0.0);
        assert_close(lp_s(StdNormal, &[0.0]), -0.5 * (2.0 * std::f64::consts::PI).ln(), 1e-15, "N(0)");
        assert_close(lp_s(Uniform, &[0.3, 0.0, 4.0]), -(4.0f64).ln(), 1e-15, "U");
        assert_close(lp_s(BernoulliLogit, &[1.0, 0.0]), -(2.0f64).ln(), 1e-15, "bern_logit");
        // Stable tails: no overflow for huge logits.
        assert_close(lp_s(BernoulliLogit, &[0.0, 800.0]), -800.0, 1e-15, "bern_logit tail");
        assert_close(lp_s(BernoulliLogit, &[1.0, 800.0]), 0.0, 1e-15, "bern_logit tail 2");
        assert_close(lp_s(BinomialLogit, &[0.0, 3.0, 900.0]), -2700.0, 1e-15, "binom_logit tail");
        assert_close(lp_s(Logistic, &[1000.0, 0.0, 1.0]), -1000.0, 1e-15, "logistic tail");
    }

    #[test]
    fn categorical_matches_closed_form() {
        let th = [0.1, 0.2, 0.3, 0.4];
        let y = [0.0, 3.0, 3.0, 2.0];
        let pt = Pt { vals: vec![y.to_vec(), th.to_vec()], dims: vec![vec![4], vec![4]] };
        let want: f64 = y.iter().map(|&l| th[l as usize].ln()).sum();
        assert_close(eval(Categorical, &pt, true), want, 1e-12, "categorical");
        // Scalar label.
        let pt1 = Pt { vals: vec![vec![1.0], th.to_vec()], dims: vec![vec![], vec![4]] };
        assert_close(eval(Categorical, &pt1, true), 0.2f64.ln(), 1e-12, "categorical scalar");

        let beta = [0.5, -1.0, 2.0, 0.0];
        let pt = Pt { vals: vec![y.to_vec(), beta.to_vec()], dims: vec![vec![4], vec![4]] };
        let z: f64 = beta.iter().map(|b| b.exp()).sum();
        let want: f64 = y.iter().map(|&l| (beta[l as usize].exp() / z).ln()).sum();
        assert_close(eval(CategoricalLogit, &pt, true), want, 1e-12, "categorical_logit");
        // Matrix of logits, one row per label; also huge logits (naive softmax would overflow).
        let m = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0, 1000.0, 1001.0, 999.0];
        let y = [2.0, 0.0, 1.0];
        let pt = Pt { vals: vec![y.to_vec(), m.to_vec()], dims: vec![vec![3], vec![3, 3]] };
        let row = |r: usize, l: usize| {
            let b = &m[r * 3..r * 3 + 3];
            let mx = b.iter().copied().fold(f64::MIN, f64::max);
            let z: f64 = b.iter().map(|v| (v - mx).exp()).sum();
            ((b[l] - mx).exp() / z).ln()
        };
        let want = row(0, 2) + row(1, 0) + row(2, 1);
        assert_close(eval(CategoricalLogit, &pt, true), want, 1e-12, "categorical_logit matrix");
        // Matrix of probabilities.
        let m = [0.5, 0.5, 0.1, 0.9];
        let pt = Pt { vals: vec![vec![1.0, 0.0], m.to_vec()], dims: vec![vec![2], vec![2, 2]] };
        assert_close(eval(Categorical, &pt, true), 0.5f64.ln() + 0.1f64.ln(), 1e-12, "cat matrix");
    }

    #[test]
    fn dirichlet_matches_closed_form() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..20 {
            let k = rng.random_range(2..=5usize);
            let th = simplex(&mut rng, k);
            let al: Vec<f64> = (0..k).map(|_| u(&mut rng, 0.3, 6.0)).collect();
            let a0: f64 = al.iter().sum();
            let dens = gamma(a0) / al.iter().map(|&a| gamma(a)).product::<f64>()
                * th.iter().zip(&al).map(|(t, a)| t.powf(a - 1.0)).product::<f64>();
            let pt = Pt { vals: vec![th, al], dims: vec![vec![k], vec![k]] };
            assert_close(eval(Dirichlet, &pt, true), dens.ln(), 1e-10, "dirichlet");
        }
        // Two rows sharing α equal the sum of single calls.
        let al = vec![1.5, 2.0, 0.7];
        let (t1, t2) = (vec![0.2, 0.3, 0.5], vec![0.6, 0.1, 0.3]);
        let one = |t: &Vec<f64>| {
            eval(Dirichlet, &Pt { vals: vec![t.clone(), al.clone()], dims: vec![vec![3], vec![3]] }, true)
        };
        let both: Vec<f64> = t1.iter().chain(&t2).copied().collect();
        let pt = Pt { vals: vec![both, al.clone()], dims: vec![vec![2, 3], vec![3]] };
        assert_close(eval(Dirichlet, &pt, true), one(&t1) + one(&t2), 1e-12, "dirichlet rows");
        // α = 1 is uniform on the simplex: density (K−1)!.
        let pt = Pt { vals: vec![vec![0.0, 0.25, 0.75], vec![1.0; 3]], dims: vec![vec![3], vec![3]] };
        assert_close(eval(Dirichlet, &pt, true), 2.0f64.ln(), 1e-12, "dirichlet flat");
    }

    /// Independent 2×2 bivariate normal density via the explicit inverse and determinant.
    fn bvn(y: [f64; 2], mu: [f64; 2], s: [f64; 4]) -> f64 {
        let (a, b, c) = (s[0], s[1], s[3]);
        let det = a * c - b * b;
        let (r1, r2) = (y[0] - mu[0], y[1] - mu[1]);
        let q = (c * r1 * r1 - 2.0 * b * r1 * r2 + a * r2 * r2) / det;
        -(2.0 * std::f64::consts::PI).ln() - 0.5 * det.ln() - 0.5 * q
    }

    /// Independent 3×3 multivariate normal density via cofactors.
    fn tvn(y: &[f64], mu: &[f64], s: &[f64]) -> f64 {
        let m = |i: usize, j: usize| s[i * 3 + j];
        let cof = |i: usize, j: usize| {
            let (r0, r1) = ([1, 0, 0][i], [2, 2, 1][i]);
            let (c0, c1) = ([1, 0, 0][j], [2, 2, 1][j]);
            let minor = m(r0, c0) * m(r1, c1) - m(r0, c1) * m(r1, c0);
            if (i + j) % 2 == 0 {
                minor
            } else {
                -minor
            }
        };
        let det = (0..3).map(|j| m(0, j) * cof(0, j)).sum::<f64>();
        let r: Vec<f64> = (0..3).map(|i| y[i] - mu[i]).collect();
        // Σ⁻¹ = adj(Σ)/det, adj_ij = cof_ji.
        let mut q = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                q += r[i] * cof(j, i) / det * r[j];
            }
        }
        -1.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * det.ln() - 0.5 * q
    }

    #[test]
    fn multi_normal_matches_closed_form() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..30 {
            let y = [nrm(&mut rng), nrm(&mut rng)];
            let mu = [nrm(&mut rng), nrm(&mut rng)];
            let (s1, s2, rho) = (u(&mut rng, 0.3, 3.0), u(&mut rng, 0.3, 3.0), u(&mut rng, -0.9, 0.9));
            let s = [s1 * s1, rho * s1 * s2, rho * s1 * s2, s2 * s2];
            let pt = Pt { vals: vec![y.to_vec(), mu.to_vec(), s.to_vec()], dims: vec![vec![2], vec![2], vec![2, 2]] };
            let want = bvn(y, mu, s);
            assert_close(eval(MultiNormal, &pt, true), want, 1e-10, "multi_normal 2x2");
            // Cholesky parameterisation of the same covariance.
            let l = [s1, 0.0, rho * s2, s2 * (1.0 - rho * rho).sqrt()];
            let pt = Pt { vals: vec![y.to_vec(), mu.to_vec(), l.to_vec()], dims: vec![vec![2], vec![2], vec![2, 2]] };
            assert_close(eval(MultiNormalCholesky, &pt, true), want, 1e-10, "multi_normal_cholesky 2x2");

            let pt3 = gen_point(MultiNormal, &mut rng);
            let (ry, rm) = (pt3.vals[0].len() / 3, pt3.vals[1].len() / 3);
            let want: f64 = (0..ry.max(rm))
                .map(|r| {
                    let y = &pt3.vals[0][if ry == 1 { 0 } else { 3 * r }..][..3];
                    let mu = &pt3.vals[1][if rm == 1 { 0 } else { 3 * r }..][..3];
                    tvn(y, mu, &pt3.vals[2])
                })
                .sum();
            assert_close(eval(MultiNormal, &pt3, true), want, 1e-10, "multi_normal 3x3");
        }
        // K = 1 reduces to the univariate normal.
        let pt = Pt { vals: vec![vec![0.4], vec![1.0], vec![4.0]], dims: vec![vec![1], vec![1], vec![1, 1]] };
        assert_close(eval(MultiNormal, &pt, true), lp_s(Normal, &[0.4, 1.0, 2.0]), 1e-14, "K=1");
    }

    /// ln B(a, b) written independently with the gamma function.
    fn lbeta(a: f64, b: f64) -> f64 {
        (gamma(a) * gamma(b) / gamma(a + b)).ln()
    }

    fn lkj_pt(l: Vec<f64>, k: usize, eta: f64) -> Pt {
        Pt { vals: vec![l, vec![eta]], dims: vec![vec![k, k], vec![]] }
    }

    #[test]
    fn lkj_matches_hand_formulas() {
        let ln2 = 2.0f64.ln();
        for &eta in &[0.5, 1.0, 1.7, 4.0] {
            // K = 2: the correlation ρ = L21 has density (1−ρ²)^{η−1} / (2^{2η−1} B(η, η)).
            for &rho in &[-0.8, 0.0, 0.3, 0.95] {
                let l = vec![1.0, 0.0, rho, (1.0f64 - rho * rho).sqrt()];
                let want = (eta - 1.0) * (1.0 - rho * rho).ln() - (2.0 * eta - 1.0) * ln2 - lbeta(eta, eta);
                assert_close(eval(LkjCorrCholesky, &lkj_pt(l, 2, eta), true), want, 1e-10, "lkj K=2");
            }
            // K = 3: (η−1) ln det Ω + ln L22 (Jacobian of L ↦ Ω) − ln c3,
            // c3 = [2^{2η} B(η+½, η+½)]² · 2^{2η−1} B(η, η).
            let mut rng = StdRng::seed_from_u64(4);
            for _ in 0..5 {
                let mut l = vec![0.0; 9];
                sample(LkjCorrCholesky, &[Arg { values: &[2.0], dims: &[] }], &mut l, &mut rng);
                let det = (l[4] * l[8]).powi(2);
                let lc3 =
                    2.0 * (2.0 * eta * ln2 + lbeta(eta + 0.5, eta + 0.5)) + (2.0 * eta - 1.0) * ln2 + lbeta(eta, eta);
                let want = (eta - 1.0) * det.ln() + l[4].ln() - lc3;
                assert_close(eval(LkjCorrCholesky, &lkj_pt(l, 3, eta), true), want, 1e-10, "lkj K=3");
            }
        }
        // η = 1 is uniform over correlation matrices: the density at the identity is 1/volume,
        // with the known volumes 2 (K=2), π²/2 (K=3), 32π²/27 (K=4); K = 1 is a point mass.
        let pi2 = std::f64::consts::PI.powi(2);
        for (k, vol) in [(1usize, 1.0), (2, 2.0), (3, pi2 / 2.0), (4, 32.0 * pi2 / 27.0)] {
            let mut id = vec![0.0; k * k];
            for i in 0..k {
                id[i * k + i] = 1.0;
            }
            assert_close(eval(LkjCorrCholesky, &lkj_pt(id, k, 1.0), true), -vol.ln(), 1e-12, "lkj volume");
        }
    }

    /// The K = 3 LKJ density, turned back into a density over the three correlations, integrates
    /// to one (midpoint rule over the cube; outside the elliptope the integrand is 0).
    #[test]
    fn lkj_k3_integrates_to_one() {
        for &eta in &[1.0, 2.0, 3.5] {
            let n = 60;
            let h = 2.0 / n as f64;
            let mut total = 0.0;
            for a in 0..n {
                for b in 0..n {
                    for c in 0..n {
                        let r = |i: usize| -1.0 + (i as f64 + 0.5) * h;
                        let (r12, r13, r23) = (r(a), r(b), r(c));
                        let omega = [1.0, r12, r13, r12, 1.0, r23, r13, r23, 1.0];
                        let Some(l) = cholesky(&omega, 3) else { continue };
                        let lp = eval(LkjCorrCholesky, &lkj_pt(l.clone(), 3, eta), true);
                        // Density over Ω = density over L divided by the Jacobian L22.
                        total += (lp - l[4].ln()).exp() * h * h * h;
                    }
                }
            }
            assert!((total - 1.0).abs() < 2e-2, "eta {eta}: integral {total}");
        }
    }

    // ---------------------------------------------------------------- gradients

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(5);
        for &f in Family::ALL {
            for _ in 0..60 {
                let pt = gen_point(f, &mut rng);
                grad_check(f, &pt);
            }
        }
    }

    #[test]
    fn gradients_at_fixed_points() {
        // Support edges where the density is finite, and extreme logits.
        let cases: &[(Family, &[f64])] = &[
            (Beta, &[0.3, 1.0, 1.0]),
            (Gamma, &[2.0, 1.0, 0.5]),
            (BernoulliLogit, &[1.0, 40.0]),
            (BernoulliLogit, &[0.0, -40.0]),
            (BinomialLogit, &[3.0, 5.0, 30.0]),
            (Binomial, &[0.0, 4.0, 0.3]),
            (Binomial, &[4.0, 4.0, 0.3]),
            (Poisson, &[0.0, 2.0]),
            (NegBinomial2, &[0.0, 2.0, 5.0]),
            (StudentT, &[3.0, 1e3, 1.0, 2.0]),
        ];
        for (f, v) in cases {
            grad_check(*f, &Pt::scalars(v));
        }
        // At x = 0 (edge of the support) finite differences are impossible; closed forms.
        let (_, g) = eval_grad(HalfNormal, &Pt::scalars(&[0.0, 1.3]), true);
        assert_eq!((g[0][0], g[1][0]), (0.0, -1.0 / 1.3));
        let (_, g) = eval_grad(Exponential, &Pt::scalars(&[0.0, 2.0]), true);
        assert_eq!((g[0][0], g[1][0]), (-2.0, 0.5));
        // Poisson at λ = 0 with y = 0: d/dλ = −1 (one-sided), value 0.
        let (lp, g) = eval_grad(Poisson, &Pt::scalars(&[0.0, 0.0]), true);
        assert_eq!((lp, g[1][0]), (0.0, -1.0));
        // Laplace at the kink: subgradient 0 in x and μ.
        let (_, g) = eval_grad(Laplace, &Pt::scalars(&[1.0, 1.0, 2.0]), true);
        assert_eq!((g[0][0], g[1][0]), (0.0, 0.0));
        // Softmax gradient of categorical_logit sums to zero per row.
        let pt = Pt { vals: vec![vec![1.0, 2.0], vec![0.3, 1e3, -2.0]], dims: vec![vec![2], vec![3]] };
        let (_, g) = eval_grad(CategoricalLogit, &pt, true);
        assert!(g[1].iter().sum::<f64>().abs() < 1e-12 && g[1].iter().all(|v| v.is_finite()));
    }

    #[test]
    fn multi_normal_gradient_closed_form() {
        // dΣ = ½ (Σ⁻¹ r rᵀ Σ⁻¹ − Σ⁻¹), written with the explicit 2×2 inverse.
        let (y, mu, s) = ([1.0, -0.5], [0.2, 0.1], [2.0, 0.6, 0.6, 1.0]);
        let pt = Pt { vals: vec![y.to_vec(), mu.to_vec(), s.to_vec()], dims: vec![vec![2], vec![2], vec![2, 2]] };
        let (_, g) = eval_grad(MultiNormal, &pt, true);
        let det = s[0] * s[3] - s[1] * s[2];
        let inv = [s[3] / det, -s[1] / det, -s[2] / det, s[0] / det];
        let r = [y[0] - mu[0], y[1] - mu[1]];
        let a = [inv[0] * r[0] + inv[1] * r[1], inv[2] * r[0] + inv[3] * r[1]];
        for i in 0..2 {
            assert_close(g[0][i], -a[i], 1e-12, "dy");
            assert_close(g[1][i], a[i], 1e-12, "dmu");
            for j in 0..2 {
                assert_close(g[2][i * 2 + j], 0.5 * (a[i] * a[j] - inv[i * 2 + j]), 1e-12, "dSigma");
            }
        }
        // Upper triangle of L gets exactly zero.
        let l = [1.5, 0.0, 0.4, 0.8];
        let pt = Pt { vals: vec![y.to_vec(), mu.to_vec(), l.to_vec()], dims: vec![vec![2], vec![2], vec![2, 2]] };
        let (_, g) = eval_grad(MultiNormalCholesky, &pt, true);
        assert_eq!(g[2][1], 0.0);
    }

    // ---------------------------------------------------------------- broadcasting

    #[test]
    fn broadcasting_is_sum_of_scalar_calls() {
        let mut rng = StdRng::seed_from_u64(6);
        for &f in Family::ALL.iter().filter(|f| f.is_elementwise()) {
            for _ in 0..20 {
                let pt = gen_point(f, &mut rng);
                let n = pt.vals.iter().map(|v| v.len()).max().unwrap();
                let (lp, g) = eval_grad(f, &pt, true);
                let mut sum = 0.0;
                let mut gsum: Vec<Vec<f64>> = pt.vals.iter().map(|v| vec![0.0; v.len()]).collect();
                for i in 0..n {
                    let at = |v: &Vec<f64>| if v.len() == 1 { v[0] } else { v[i] };
                    let one = Pt::scalars(&pt.vals.iter().map(at).collect::<Vec<_>>());
                    let (l1, g1) = eval_grad(f, &one, true);
                    sum += l1;
                    for j in 0..pt.vals.len() {
                        let idx = if pt.vals[j].len() == 1 { 0 } else { i };
                        gsum[j][idx] += g1[j][0];
                    }
                }
                assert_close(lp, sum, 1e-12, &format!("{f:?} broadcast value"));
                for j in 0..pt.vals.len() {
                    for e in 0..pt.vals[j].len() {
                        assert_close(g[j][e], gsum[j][e], 1e-12, &format!("{f:?} broadcast grad {j}"));
                    }
                }
            }
        }
        // Explicit case: vector variate, scalar parameters.
        let pt = Pt { vals: vec![vec![0.1, -0.4, 2.0], vec![0.5], vec![1.5]], dims: vec![vec![3], vec![], vec![]] };
        let want: f64 = [0.1, -0.4, 2.0].iter().map(|&x| lp_s(Normal, &[x, 0.5, 1.5])).sum();
        assert_close(eval(Normal, &pt, true), want, 1e-14, "normal broadcast");
        // Empty variate: zero.
        let pt = Pt { vals: vec![vec![], vec![0.5], vec![1.5]], dims: vec![vec![0], vec![], vec![]] };
        assert_eq!(eval(Normal, &pt, true), 0.0);
    }

    // ---------------------------------------------------------------- edges and errors

    #[test]
    fn support_edges_and_invalid_parameters() {
        let ninf = f64::NEG_INFINITY;
        let out: &[(Family, &[f64])] = &[
            (Exponential, &[-1.0, 2.0]),
            (HalfNormal, &[-0.1, 1.0]),
            (HalfCauchy, &[-0.1, 1.0]),
            (Gamma, &[-1.0, 2.0, 1.0]),
            (Gamma, &[0.0, 2.0, 1.0]),
            (InvGamma, &[0.0, 2.0, 1.0]),
            (Lognormal, &[0.0, 0.0, 1.0]),
            (Beta, &[1.2, 2.0, 2.0]),
            (Beta, &[0.0, 2.0, 2.0]),
            (Uniform, &[3.0, 0.0, 1.0]),
            (Normal, &[f64::INFINITY, 0.0, 1.0]),
            (Bernoulli, &[2.0, 0.5]),
            (Bernoulli, &[0.5, 0.5]),
            (Bernoulli, &[1.0, 0.0]),
            (BernoulliLogit, &[-1.0, 0.0]),
            (Binomial, &[6.0, 5.0, 0.5]),
            (Binomial, &[2.0, 5.0, 0.0]),
            (BinomialLogit, &[1.5, 5.0, 0.0]),
            (Poisson, &[1.5, 2.0]),
            (Poisson, &[-1.0, 2.0]),
            (Poisson, &[1.0, 0.0]),
            (PoissonLog, &[f64::INFINITY, 0.0]),
            (NegBinomial2, &[2.5, 1.0, 1.0]),
        ];
        for (f, v) in out {
            assert_eq!(lp_s(*f, v), ninf, "{f:?} {v:?} should be outside the support");
        }
        let bad: &[(Family, &[f64])] = &[
            (Normal, &[0.0, 0.0, 0.0]),
            (Normal, &[0.0, 0.0, -1.0]),
            (Normal, &[0.0, f64::NAN, 1.0]),
            (Normal, &[0.0, f64::INFINITY, 1.0]),
            (Normal, &[f64::NAN, 0.0, 1.0]),
            (StudentT, &[0.0, 0.0, 0.0, 1.0]),
            (Cauchy, &[0.0, 0.0, f64::INFINITY]),
            (HalfNormal, &[1.0, 0.0]),
            (Exponential, &[1.0, -2.0]),
            (Gamma, &[1.0, 0.0, 1.0]),
            (InvGamma, &[1.0, 1.0, -1.0]),
            (Beta, &[0.5, -1.0, 1.0]),
            (Uniform, &[0.5, 1.0, 1.0]),
            (Uniform, &[0.5, 2.0, 1.0]),
            (Laplace, &[0.0, 0.0, 0.0]),
            (Logistic, &[0.0, 0.0, -3.0]),
            (Bernoulli, &[1.0, 1.5]),
            (Bernoulli, &[1.0, -0.1]),
            (BernoulliLogit, &[1.0, f64::NAN]),
            (Binomial, &[1.0, 2.5, 0.5]),
            (Binomial, &[1.0, -1.0, 0.5]),
            (Binomial, &[1.0, 3.0, 1.5]),
            (BinomialLogit, &[1.0, 3.0, f64::INFINITY]),
            (Poisson, &[1.0, -1.0]),
            (Poisson, &[1.0, f64::INFINITY]),
            (NegBinomial2, &[1.0, 0.0, 1.0]),
            (NegBinomial2, &[1.0, 1.0, 0.0]),
            (Bernoulli, &[f64::NAN, 0.5]),
        ];
        for (f, v) in bad {
            assert!(lp_s(*f, v).is_nan(), "{f:?} {v:?} should be NaN");
        }
        // Invalid parameters win over an out-of-support variate elsewhere in the vector.
        let pt = Pt { vals: vec![vec![-1.0, 1.0], vec![1.0, -1.0]], dims: vec![vec![2], vec![2]] };
        assert!(eval(Exponential, &pt, true).is_nan());
        // Wrong number of arguments, mismatched lengths, inconsistent dims.
        assert!(lp_s(Normal, &[0.0, 1.0]).is_nan());
        assert!(lp_s(StdNormal, &[0.0, 1.0]).is_nan());
        let pt = Pt { vals: vec![vec![0.0; 3], vec![0.0; 2], vec![1.0]], dims: vec![vec![3], vec![2], vec![]] };
        assert!(eval(Normal, &pt, true).is_nan());
        let pt = Pt { vals: vec![vec![0.0; 3], vec![0.0], vec![1.0]], dims: vec![vec![2], vec![], vec![]] };
        assert!(eval(Normal, &pt, true).is_nan());
        // Gradient slices of the wrong shape.
        let pt = Pt::scalars(&[0.0, 0.0, 1.0]);
        let (mut g0, mut g1, mut g2) = (vec![0.0], vec![0.0, 0.0], vec![0.0]);
        let mut gs: Vec<&mut [f64]> = vec![&mut g0, &mut g1, &mut g2];
        assert!(log_density(Normal, &pt.args(), Some(&mut gs)).is_nan());
        let mut gs: Vec<&mut [f64]> = vec![&mut g0, &mut g2];
        assert!(log_density(Normal, &pt.args(), Some(&mut gs)).is_nan());
    }

    #[test]
    fn multivariate_edges() {
        let v = |vals: Vec<Vec<f64>>, dims: Vec<Vec<usize>>| Pt { vals, dims };
        let th = vec![0.2, 0.3, 0.5];
        // Categorical labels: 0-based, so K is out of range; non-integers and negatives too.
        for bad in [3.0, -1.0, 1.5, f64::INFINITY] {
            let pt = v(vec![vec![0.0, bad], th.clone()], vec![vec![2], vec![3]]);
            assert_eq!(eval(Categorical, &pt, true), f64::NEG_INFINITY, "label {bad}");
            assert_eq!(eval(CategoricalLogit, &pt, true), f64::NEG_INFINITY, "logit label {bad}");
        }
        let pt = v(vec![vec![2.0], th.clone()], vec![vec![], vec![3]]);
        assert!(eval(Categorical, &pt, true).is_finite());
        // Label with zero probability.
        let pt = v(vec![vec![0.0], vec![0.0, 0.5, 0.5]], vec![vec![], vec![3]]);
        assert_eq!(eval(Categorical, &pt, true), f64::NEG_INFINITY);
        // θ not a simplex, or negative.
        let pt = v(vec![vec![0.0], vec![0.2, 0.3, 0.6]], vec![vec![], vec![3]]);
        assert!(eval(Categorical, &pt, true).is_nan());
        let pt = v(vec![vec![0.0], vec![-0.2, 0.7, 0.5]], vec![vec![], vec![3]]);
        assert!(eval(Categorical, &pt, true).is_nan());
        // Matrix of logits with the wrong number of labels.
        let pt = v(vec![vec![0.0, 1.0, 2.0], vec![0.0; 4]], vec![vec![3], vec![2, 2]]);
        assert!(eval(CategoricalLogit, &pt, true).is_nan());
        let pt = v(vec![vec![0.0], vec![f64::NAN, 1.0]], vec![vec![], vec![2]]);
        assert!(eval(CategoricalLogit, &pt, true).is_nan());
        let pt = v(vec![vec![f64::NAN], vec![0.0, 1.0]], vec![vec![], vec![2]]);
        assert!(eval(CategoricalLogit, &pt, true).is_nan());

        // Dirichlet.
        let al = vec![1.0, 2.0, 3.0];
        let pt = v(vec![vec![0.2, 0.3, 0.6], al.clone()], vec![vec![3], vec![3]]);
        assert_eq!(eval(Dirichlet, &pt, true), f64::NEG_INFINITY);
        let pt = v(vec![vec![-0.2, 0.7, 0.5], al.clone()], vec![vec![3], vec![3]]);
        assert_eq!(eval(Dirichlet, &pt, true), f64::NEG_INFINITY);
        let pt = v(vec![vec![0.0, 0.5, 0.5], al.clone()], vec![vec![3], vec![3]]);
        assert!(eval(Dirichlet, &pt, true).is_finite()); // α₁ = 1: zero allowed
        let pt = v(vec![vec![0.5, 0.0, 0.5], al.clone()], vec![vec![3], vec![3]]);
        assert_eq!(eval(Dirichlet, &pt, true), f64::NEG_INFINITY); // α₂ > 1: density 0
        let pt = v(vec![vec![0.2, 0.3, 0.5], vec![1.0, 0.0, 1.0]], vec![vec![3], vec![3]]);
        assert!(eval(Dirichlet, &pt, true).is_nan());
        let pt = v(vec![vec![0.5, 0.5], al.clone()], vec![vec![2], vec![3]]);
        assert!(eval(Dirichlet, &pt, true).is_nan());

        // Multi-normal: non-square, non-PD, asymmetric, wrong mean length.
        let y = vec![0.0, 0.0];
        let pt = v(vec![y.clone(), y.clone(), vec![1.0; 6]], vec![vec![2], vec![2], vec![2, 3]]);
        assert!(eval(MultiNormal, &pt, true).is_nan());
        let pt = v(vec![y.clone(), y.clone(), vec![1.0, 2.0, 2.0, 1.0]], vec![vec![2], vec![2], vec![2, 2]]);
        assert!(eval(MultiNormal, &pt, true).is_nan());
        let pt = v(vec![y.clone(), y.clone(), vec![1.0, 0.5, 0.4, 1.0]], vec![vec![2], vec![2], vec![2, 2]]);
        assert!(eval(MultiNormal, &pt, true).is_nan());
        let pt = v(vec![y.clone(), vec![0.0; 3], vec![1.0, 0.0, 0.0, 1.0]], vec![vec![2], vec![3], vec![2, 2]]);
        assert!(eval(MultiNormal, &pt, true).is_nan());
        let pt = v(vec![y.clone(), y.clone(), vec![1.0, 0.0, 0.0, 1.0]], vec![vec![2], vec![2], vec![4]]);
        assert!(eval(MultiNormal, &pt, true).is_nan());
        let pt =
            v(vec![vec![0.0; 6], vec![0.0; 4], vec![1.0, 0.0, 0.0, 1.0]], vec![vec![3, 2], vec![2, 2], vec![2, 2]]);
        assert!(eval(MultiNormal, &pt, true).is_nan()); // 3 rows vs 2 rows
        let pt = v(vec![y.clone(), y.clone(), vec![1.0, 0.0, 0.3, -1.0]], vec![vec![2], vec![2], vec![2, 2]]);
        assert!(eval(MultiNormalCholesky, &pt, true).is_nan()); // negative diagonal
        let pt =
            v(vec![vec![f64::INFINITY, 0.0], y.clone(), vec![1.0, 0.0, 0.0, 1.0]], vec![vec![2], vec![2], vec![2, 2]]);
        assert_eq!(eval(MultiNormal, &pt, true), f64::NEG_INFINITY);

        // LKJ: non-square, bad η, not a correlation Cholesky factor.
        let pt = v(vec![vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0], vec![1.0]], vec![vec![2, 3], vec![]]);
        assert!(eval(LkjCorrCholesky, &pt, true).is_nan());
        let pt = lkj_pt(vec![1.0, 0.0, 0.0, 1.0], 2, 0.0);
        assert!(eval(LkjCorrCholesky, &pt, true).is_nan());
        let pt = lkj_pt(vec![1.0, 0.0, 0.5, 1.0], 2, 1.0);
        assert_eq!(eval(LkjCorrCholesky, &pt, true), f64::NEG_INFINITY);
        let pt = lkj_pt(vec![1.0, 0.2, 0.0, 1.0], 2, 1.0);
        assert_eq!(eval(LkjCorrCholesky, &pt, true), f64::NEG_INFINITY);
        let pt = lkj_pt(vec![1.0, 0.0, 0.6, -0.8], 2, 1.0);
        assert_eq!(eval(LkjCorrCholesky, &pt, true), f64::NEG_INFINITY);
    }

    #[test]
    fn gradients_untouched_on_nan_or_neg_inf() {
        let cases: Vec<(Family, Pt)> = vec![
            (Exponential, Pt { vals: vec![vec![1.0, -1.0], vec![2.0]], dims: vec![vec![2], vec![]] }),
            (
                Normal,
                Pt { vals: vec![vec![1.0, 2.0], vec![0.0], vec![1.0, -1.0]], dims: vec![vec![2], vec![], vec![2]] },
            ),
            (Dirichlet, Pt { vals: vec![vec![0.5, 0.6], vec![1.0, 1.0]], dims: vec![vec![2], vec![2]] }),
            (
                MultiNormal,
                Pt {
                    vals: vec![vec![0.0; 2], vec![0.0; 2], vec![1.0, 2.0, 2.0, 1.0]],
                    dims: vec![vec![2], vec![2], vec![2, 2]],
                },
            ),
            (LkjCorrCholesky, lkj_pt(vec![1.0, 0.0, 0.5, 1.0], 2, 2.0)),
            (CategoricalLogit, Pt { vals: vec![vec![0.0, 5.0], vec![0.0, 1.0]], dims: vec![vec![2], vec![2]] }),
            (Categorical, Pt { vals: vec![vec![1.0, 0.0], vec![0.0, 1.0]], dims: vec![vec![2], vec![2]] }),
        ];
        for (f, pt) in cases {
            let (lp, g) = eval_grad(f, &pt, true);
            assert!(lp.is_nan() || lp == f64::NEG_INFINITY, "{f:?}");
            assert!(g.iter().flatten().all(|&v| v == 0.0), "{f:?} touched the gradient");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Arbitrary (mostly nonsensical) arguments never panic, for density and sampling.
        #[test]
        fn never_panics(
            fi in 0usize..27,
            nargs in 0usize..5,
            lens in proptest::collection::vec(0usize..10, 5),
            picks in proptest::collection::vec(0usize..14, 50),
            modes in proptest::collection::vec(0usize..4, 5),
            grad_mode in 0usize..3,
            out_len in 0usize..10,
            seed in any::<u64>(),
        ) {
            const PALETTE: [f64; 14] = [
                f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0,
                1e300, -1e-300, 0.3, 1e-300, 4.0,
            ];
            let f = Family::ALL[fi];
            let mut it = picks.iter().cycle();
            let mut vals = Vec::new();
            let mut dims = Vec::new();
            for a in 0..nargs {
                let len = lens[a];
                vals.push((0..len).map(|_| PALETTE[*it.next().unwrap()]).collect::<Vec<f64>>());
                let s = (len as f64).sqrt() as usize;
                dims.push(match modes[a] {
                    0 if len == 1 => vec![],
                    0 | 1 => vec![len],
                    2 if s * s == len => vec![s, s],
                    2 => vec![1, len],
                    _ => vec![len, 2],
                });
            }
            let pt = Pt { vals, dims };
            let args = pt.args();
            let mut g: Vec<Vec<f64>> = pt.vals.iter().map(|v| vec![0.0; v.len() + (grad_mode == 2) as usize]).collect();
            let mut refs: Vec<&mut [f64]> = g.iter_mut().map(|v| v.as_mut_slice()).collect();
            let lp = log_density(f, &args, if grad_mode > 0 { Some(&mut refs) } else { None });
            prop_assert!(!(lp == f64::INFINITY && f.is_discrete()));
            let mut out = vec![0.0; out_len];
            let mut rng = StdRng::seed_from_u64(seed);
            if !args.is_empty() {
                sample(f, &args[1..], &mut out, &mut rng);
            }
            sample(f, &args, &mut out, &mut rng);
        }
    }

    // ---------------------------------------------------------------- sampling

    /// (values, dims) of one argument.
    type Owned = (Vec<f64>, Vec<usize>);

    fn draws(f: Family, params: &[Owned], n: usize, seed: u64) -> Vec<f64> {
        let args: Vec<Arg> = params.iter().map(|(v, d)| Arg { values: v, dims: d }).collect();
        let mut out = vec![0.0; n];
        let mut rng = StdRng::seed_from_u64(seed);
        sample(f, &args, &mut out, &mut rng);
        out
    }

    fn sc(v: f64) -> Owned {
        (vec![v], vec![])
    }

    /// Sample mean and variance within 5 standard errors of the truth.
    fn check_moments(what: &str, xs: &[f64], mean: f64, var: f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        let m4 = xs.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n;
        let se_m = (var / n).sqrt();
        let se_v = ((m4 - v * v).max(0.0) / n).sqrt();
        assert!((m - mean).abs() <= 5.0 * se_m, "{what}: mean {m} vs {mean} (se {se_m})");
        assert!((v - var).abs() <= 5.0 * se_v, "{what}: var {v} vs {var} (se {se_v})");
    }

    const N: usize = 20_000;

    #[test]
    fn scalar_sample_moments() {
        let pi = std::f64::consts::PI;
        let cases: Vec<(Family, Vec<f64>, f64, f64)> = vec![
            (Normal, vec![1.5, 2.0], 1.5, 4.0),
            (StdNormal, vec![], 0.0, 1.0),
            (StudentT, vec![6.0, 1.0, 2.0], 1.0, 4.0 * 6.0 / 4.0),
            (HalfNormal, vec![2.0], 2.0 * (2.0 / pi).sqrt(), 4.0 * (1.0 - 2.0 / pi)),
            (Exponential, vec![2.5], 0.4, 0.16),
            (Gamma, vec![3.0, 2.0], 1.5, 0.75),
            (Gamma, vec![0.3, 1.0], 0.3, 0.3),
            (InvGamma, vec![6.0, 2.0], 0.4, 4.0 / (25.0 * 4.0)),
            (Lognormal, vec![0.2, 0.5], (0.2f64 + 0.125).exp(), (0.25f64.exp() - 1.0) * (0.4f64 + 0.25).exp()),
            (Beta, vec![2.0, 3.0], 0.4, 6.0 / (25.0 * 6.0)),
            (Uniform, vec![-1.0, 3.0], 1.0, 16.0 / 12.0),
            (Laplace, vec![0.5, 1.5], 0.5, 2.0 * 2.25),
            (Logistic, vec![-1.0, 0.7], -1.0, 0.49 * pi * pi / 3.0),
            (Bernoulli, vec![0.3], 0.3, 0.21),
            (BernoulliLogit, vec![0.0], 0.5, 0.25),
            (Binomial, vec![12.0, 0.3], 3.6, 12.0 * 0.21),
            (BinomialLogit, vec![12.0, 0.0], 6.0, 3.0),
            (Poisson, vec![3.5], 3.5, 3.5),
            (Poisson, vec![40.0], 40.0, 40.0),
            (PoissonLog, vec![1.0], 1f64.exp(), 1f64.exp()),
            (NegBinomial2, vec![4.0, 2.0], 4.0, 4.0 + 16.0 / 2.0),
        ];
        for (i, (f, p, mean, var)) in cases.into_iter().enumerate() {
            let params: Vec<_> = p.iter().map(|&v| sc(v)).collect();
            let xs = draws(f, &params, N, 100 + i as u64);
            if f.is_discrete() {
                assert!(xs.iter().all(|x| x.fract() == 0.0 && *x >= 0.0), "{f:?} draws are counts");
            }
            check_moments(&format!("{f:?} {p:?}"), &xs, mean, var);
        }
        // Heavy tails: check medians and quartiles instead.
        for (f, p, q1, q2, q3) in [
            (Cauchy, vec![1.0, 2.0], -1.0, 1.0, 3.0),
            (HalfCauchy, vec![2.0], 2.0 * (pi / 8.0).tan(), 2.0, 2.0 * (3.0 * pi / 8.0).tan()),
        ] {
            let params: Vec<_> = p.iter().map(|&v| sc(v)).collect();
            let mut xs = draws(f, &params, N, 7);
            xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
            // Fraction below each true quartile within 5 se of 1/4, 1/2, 3/4.
            for (q, frac) in [(q1, 0.25), (q2, 0.5), (q3, 0.75)] {
                let below = xs.iter().filter(|&&x| x < q).count() as f64 / N as f64;
                let se = (frac * (1.0 - frac) / N as f64).sqrt();
                assert!((below - frac).abs() < 5.0 * se, "{f:?} quantile {frac}: {below}");
            }
        }
        // Broadcast vector parameters.
        let xs = draws(Normal, &[(vec![0.0, 100.0], vec![2]), sc(1.0)], 2, 1);
        assert!(xs[0].abs() < 6.0 && (xs[1] - 100.0).abs() < 6.0);
    }

    #[test]
    fn categorical_sample_frequencies() {
        let th = vec![0.1, 0.2, 0.3, 0.4];
        let logits: Vec<f64> = th.iter().map(|p: &f64| p.ln() + 3.0).collect();
        for (f, p) in [(Categorical, th.clone()), (CategoricalLogit, logits)] {
            let xs = draws(f, &[(p, vec![4])], N, 11);
            for (k, &pk) in th.iter().enumerate() {
                let ind: Vec<f64> = xs.iter().map(|&x| (x == k as f64) as u8 as f64).collect();
                check_moments(&format!("{f:?} label {k}"), &ind, pk, pk * (1.0 - pk));
            }
            assert!(xs.iter().all(|&x| (0.0..4.0).contains(&x) && x.fract() == 0.0));
        }
        // One label per row of a matrix.
        let m = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let xs = draws(Categorical, &[(m, vec![2, 3])], 2, 3);
        assert_eq!(xs, vec![0.0, 2.0]);
        let xs = draws(Categorical, &[(vec![0.5, 0.5, 0.0, 0.0, 0.0, 1.0], vec![2, 3])], 3, 3);
        assert!(xs.iter().all(|x| x.is_nan()), "wrong number of rows");
    }

    #[test]
    fn dirichlet_sample_moments() {
        for al in [vec![2.0, 3.0, 5.0], vec![0.1, 0.3, 0.2, 0.4]] {
            let k = al.len();
            let a0: f64 = al.iter().sum();
            let xs = draws(Dirichlet, &[(al.clone(), vec![k])], N * k, 12);
            for row in xs.chunks(k) {
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
            }
            for j in 0..k {
                let comp: Vec<f64> = xs.chunks(k).map(|r| r[j]).collect();
                let m = al[j] / a0;
                check_moments(&format!("dirichlet {al:?} comp {j}"), &comp, m, m * (1.0 - m) / (a0 + 1.0));
            }
        }
    }

    #[test]
    fn multivariate_sample_moments() {
        let mu = vec![1.0, -2.0];
        let s = vec![2.0, 0.8, 0.8, 1.0];
        let l = cholesky(&s, 2).unwrap();
        for (f, m) in [(MultiNormal, s.clone()), (MultiNormalCholesky, l)] {
            let xs = draws(f, &[(mu.clone(), vec![2]), (m, vec![2, 2])], 2 * N, 13);
            let c0: Vec<f64> = xs.chunks(2).map(|r| r[0]).collect();
            let c1: Vec<f64> = xs.chunks(2).map(|r| r[1]).collect();
            check_moments(&format!("{f:?} 0"), &c0, 1.0, 2.0);
            check_moments(&format!("{f:?} 1"), &c1, -2.0, 1.0);
            // Covariance via the variance of the sum: Var(x0 + x1) = 2 + 1 + 2·0.8.
            let sum: Vec<f64> = xs.chunks(2).map(|r| r[0] + r[1]).collect();
            check_moments(&format!("{f:?} sum"), &sum, -1.0, 4.6);
        }
        // LKJ: every correlation of a K×K draw is marginally 2·Beta(b, b) − 1 with
        // b = η − 1 + K/2, so it has mean 0 and variance 1/(2η + K − 1).
        for (k, eta) in [(2usize, 1.5), (3, 1.0), (4, 2.0)] {
            let kk = k * k;
            // One K×K factor per call.
            let mut rng = StdRng::seed_from_u64(14);
            let mut xs = vec![0.0; kk * N / 2];
            for block in xs.chunks_mut(kk) {
                sample(LkjCorrCholesky, &[Arg { values: &[eta], dims: &[] }], block, &mut rng);
            }
            let mut corr = vec![Vec::new(); kk];
            for l in xs.chunks(kk) {
                for i in 0..k {
                    let norm: f64 = (0..=i).map(|j| l[i * k + j] * l[i * k + j]).sum();
                    assert!((norm - 1.0).abs() < 1e-12 && l[i * k + i] > 0.0, "{l:?}");
                    for j in 0..i {
                        corr[i * k + j].push((0..=j).map(|q| l[i * k + q] * l[j * k + q]).sum::<f64>());
                    }
                }
            }
            for (idx, c) in corr.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
                check_moments(&format!("lkj K={k} entry {idx}"), c, 0.0, 1.0 / (2.0 * eta + k as f64 - 1.0));
            }
        }
    }

    #[test]
    fn invalid_sample_parameters_fill_nan() {
        let bad: Vec<(Family, Vec<Owned>, usize)> = vec![
            (Normal, vec![sc(0.0), sc(-1.0)], 3),
            (Normal, vec![sc(0.0)], 3),
            (Gamma, vec![sc(0.0), sc(1.0)], 3),
            (Bernoulli, vec![sc(1.5)], 3),
            (Poisson, vec![(vec![1.0, 2.0], vec![2])], 3),
            (Categorical, vec![(vec![0.5, 0.6], vec![2])], 3),
            (Dirichlet, vec![(vec![1.0, 1.0], vec![2])], 3),
            (Dirichlet, vec![(vec![1.0, -1.0], vec![2])], 4),
            (MultiNormal, vec![(vec![0.0; 2], vec![2]), (vec![1.0, 2.0, 2.0, 1.0], vec![2, 2])], 2),
            (LkjCorrCholesky, vec![sc(1.0)], 5),
            (LkjCorrCholesky, vec![sc(-1.0)], 4),
        ];
        for (f, p, n) in bad {
            let xs = draws(f, &p, n, 1);
            assert!(xs.iter().all(|x| x.is_nan()), "{f:?} {p:?}: {xs:?}");
        }
        // Poisson with λ = 0 is valid and always 0.
        assert_eq!(draws(Poisson, &[sc(0.0)], 3, 1), vec![0.0; 3]);
    }
}
