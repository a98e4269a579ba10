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
//!
//! This file holds the families, the dispatch and the small helpers shared by the submodules:
//! `elementwise` (the scalar families), `multivariate` (categorical, dirichlet, multi_normal,
//! lkj_corr_cholesky and their linear algebra) and `sample` (the draws).

use statrs::function::factorial::ln_factorial;
use statrs::function::gamma::ln_gamma;

mod cdf;
mod elementwise;
mod multivariate;
mod normal;
mod sample;
#[cfg(test)]
mod tests;

pub use cdf::{has_cdf, log_cdf};
pub use elementwise::{bernoulli_logit_keep_partials, elem_log_density, elem_partials, is_elementwise};
pub use normal::{normal_array, normal_array_partials, LANES as NORMAL_LANES};
pub use sample::sample;

use elementwise::elementwise;
pub use multivariate::ordered_logistic_term;
use multivariate::{categorical, dirichlet, lkj_corr_cholesky, multi_normal, ordered_logistic};

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
    Weibull,
    Frechet,
    Rayleigh,
    Pareto,
    Gumbel,
    ChiSquare,
    InvChiSquare,
    ScaledInvChiSquare,
    NegBinomial,
    NegBinomial2Log,
    BetaBinomial,
    Categorical,
    CategoricalLogit,
    OrderedLogistic,
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
        Family::Weibull,
        Family::Frechet,
        Family::Rayleigh,
        Family::Pareto,
        Family::Gumbel,
        Family::ChiSquare,
        Family::InvChiSquare,
        Family::ScaledInvChiSquare,
        Family::NegBinomial,
        Family::NegBinomial2Log,
        Family::BetaBinomial,
        Family::Categorical,
        Family::CategoricalLogit,
        Family::OrderedLogistic,
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
            Weibull => "weibull",
            Frechet => "frechet",
            Rayleigh => "rayleigh",
            Pareto => "pareto",
            Gumbel => "gumbel",
            ChiSquare => "chi_square",
            InvChiSquare => "inv_chi_square",
            ScaledInvChiSquare => "scaled_inv_chi_square",
            NegBinomial => "neg_binomial",
            NegBinomial2Log => "neg_binomial_2_log",
            BetaBinomial => "beta_binomial",
            Categorical => "categorical",
            CategoricalLogit => "categorical_logit",
            OrderedLogistic => "ordered_logistic",
            Dirichlet => "dirichlet",
            MultiNormal => "multi_normal",
            MultiNormalCholesky => "multi_normal_cholesky",
            LkjCorrCholesky => "lkj_corr_cholesky",
        }
    }

    /// The parameters (by position, the variate not counted) that must be positive: scales,
    /// shapes, rates, concentrations, degrees of freedom.
    pub fn positive_params(self) -> &'static [usize] {
        use Family::*;
        match self {
            Normal | Cauchy | Lognormal | Laplace | Logistic | Gumbel | NegBinomial2Log => &[1],
            StudentT => &[0, 2],
            HalfNormal | HalfCauchy | Exponential | Dirichlet | LkjCorrCholesky | Rayleigh | ChiSquare
            | InvChiSquare => &[0],
            Gamma | InvGamma | Beta | NegBinomial2 | Weibull | Frechet | Pareto | ScaledInvChiSquare | NegBinomial => {
                &[0, 1]
            }
            BetaBinomial => &[1, 2],
            StdNormal | Uniform | Bernoulli | BernoulliLogit | Binomial | BinomialLogit | Poisson | PoissonLog
            | Categorical | CategoricalLogit | OrderedLogistic | MultiNormal | MultiNormalCholesky => &[],
        }
    }

    /// Number of parameters, not counting the variate.
    pub fn n_params(self) -> usize {
        use Family::*;
        match self {
            StdNormal => 0,
            HalfNormal | HalfCauchy | Exponential | Bernoulli | BernoulliLogit | Poisson | PoissonLog | Categorical
            | CategoricalLogit | Dirichlet | LkjCorrCholesky | Rayleigh | ChiSquare | InvChiSquare => 1,
            Normal | Cauchy | Gamma | InvGamma | Lognormal | Beta | Uniform | Laplace | Logistic | Binomial
            | BinomialLogit | NegBinomial2 | MultiNormal | MultiNormalCholesky | Weibull | Frechet | Pareto
            | Gumbel | ScaledInvChiSquare | NegBinomial | NegBinomial2Log | OrderedLogistic => 2,
            StudentT | BetaBinomial => 3,
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
                | NegBinomial
                | NegBinomial2Log
                | BetaBinomial
                | Categorical
                | CategoricalLogit
                | OrderedLogistic
        )
    }

    /// True for the scalar families (`normal` .. `beta_binomial`), which apply elementwise
    /// with broadcasting.
    pub fn is_elementwise(self) -> bool {
        use Family::*;
        !matches!(
            self,
            Categorical
                | CategoricalLogit
                | OrderedLogistic
                | Dirichlet
                | MultiNormal
                | MultiNormalCholesky
                | LkjCorrCholesky
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
/// or an `[N, K]` matrix holding one row per label. `ordered_logistic` takes a scalar or a vector
/// of labels, a location per label (or one shared) and one vector of increasing cutpoints.
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
        OrderedLogistic => ordered_logistic(args, grads),
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
