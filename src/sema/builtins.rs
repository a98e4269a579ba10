//! The built-in functions and distributions the checker knows (SPEC §5–6).
//!
//! Distribution parameterisations follow Stan's Functions Reference (normal takes a
//! standard deviation, gamma shape and rate, exponential a rate, ...).

/// How a distribution's argument is shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgShape {
    /// Real, or a container that broadcasts elementwise against the variate.
    Real,
    /// Int, or an int container that broadcasts elementwise (binomial's trials).
    Int,
    /// A vector (categorical's probabilities, dirichlet's concentration, a mean vector).
    Vector,
    /// A vector of K logits, or a matrix [N, K] of logits for N labels.
    VectorOrMatrix,
    /// A square matrix.
    Matrix,
    /// A scalar real only.
    Scalar,
}

/// What the variate (left of `~`) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variate {
    /// Real-valued, elementwise over any container.
    Real,
    /// Int-valued, elementwise over any int container.
    Int,
    /// One int label, or an array of labels.
    Label,
    /// A vector (multivariate).
    Vector,
    /// A square matrix (Cholesky factor).
    Matrix,
}

#[derive(Clone, Copy, Debug)]
pub struct DistSig {
    pub name: &'static str,
    pub params: &'static [(&'static str, ArgShape)],
    pub variate: Variate,
}

impl DistSig {
    pub fn is_discrete(&self) -> bool {
        matches!(self.variate, Variate::Int | Variate::Label)
    }

    /// `normal_lpdf` or `poisson_lpmf`.
    pub fn density_fn(&self) -> String {
        format!("{}_{}", self.name, if self.is_discrete() { "lpmf" } else { "lpdf" })
    }
}

use crate::ir::prim::Un;
use ArgShape as A;

pub const DISTRIBUTIONS: &[DistSig] = &[
    DistSig { name: "normal", params: &[("mu", A::Real), ("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "std_normal", params: &[], variate: Variate::Real },
    DistSig {
        name: "student_t",
        params: &[("nu", A::Real), ("mu", A::Real), ("sigma", A::Real)],
        variate: Variate::Real,
    },
    DistSig { name: "cauchy", params: &[("mu", A::Real), ("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "half_normal", params: &[("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "half_cauchy", params: &[("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "exponential", params: &[("beta", A::Real)], variate: Variate::Real },
    DistSig { name: "gamma", params: &[("alpha", A::Real), ("beta", A::Real)], variate: Variate::Real },
    DistSig { name: "inv_gamma", params: &[("alpha", A::Real), ("beta", A::Real)], variate: Variate::Real },
    DistSig { name: "lognormal", params: &[("mu", A::Real), ("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "beta", params: &[("alpha", A::Real), ("beta", A::Real)], variate: Variate::Real },
    DistSig { name: "uniform", params: &[("alpha", A::Real), ("beta", A::Real)], variate: Variate::Real },
    DistSig { name: "laplace", params: &[("mu", A::Real), ("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "logistic", params: &[("mu", A::Real), ("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "bernoulli", params: &[("theta", A::Real)], variate: Variate::Int },
    DistSig { name: "bernoulli_logit", params: &[("alpha", A::Real)], variate: Variate::Int },
    DistSig { name: "binomial", params: &[("N", A::Int), ("theta", A::Real)], variate: Variate::Int },
    DistSig { name: "binomial_logit", params: &[("N", A::Int), ("alpha", A::Real)], variate: Variate::Int },
    DistSig { name: "poisson", params: &[("lambda", A::Real)], variate: Variate::Int },
    DistSig { name: "poisson_log", params: &[("alpha", A::Real)], variate: Variate::Int },
    DistSig { name: "neg_binomial_2", params: &[("mu", A::Real), ("phi", A::Real)], variate: Variate::Int },
    DistSig { name: "weibull", params: &[("alpha", A::Real), ("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "frechet", params: &[("alpha", A::Real), ("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "rayleigh", params: &[("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "pareto", params: &[("y_min", A::Real), ("alpha", A::Real)], variate: Variate::Real },
    DistSig { name: "gumbel", params: &[("mu", A::Real), ("beta", A::Real)], variate: Variate::Real },
    DistSig { name: "chi_square", params: &[("nu", A::Real)], variate: Variate::Real },
    DistSig { name: "inv_chi_square", params: &[("nu", A::Real)], variate: Variate::Real },
    DistSig { name: "scaled_inv_chi_square", params: &[("nu", A::Real), ("sigma", A::Real)], variate: Variate::Real },
    DistSig { name: "neg_binomial", params: &[("alpha", A::Real), ("beta", A::Real)], variate: Variate::Int },
    DistSig { name: "neg_binomial_2_log", params: &[("eta", A::Real), ("phi", A::Real)], variate: Variate::Int },
    DistSig {
        name: "beta_binomial",
        params: &[("N", A::Int), ("alpha", A::Real), ("beta", A::Real)],
        variate: Variate::Int,
    },
    DistSig { name: "categorical", params: &[("theta", A::VectorOrMatrix)], variate: Variate::Label },
    DistSig { name: "categorical_logit", params: &[("beta", A::VectorOrMatrix)], variate: Variate::Label },
    DistSig { name: "ordered_logistic", params: &[("eta", A::Real), ("c", A::Vector)], variate: Variate::Label },
    DistSig { name: "dirichlet", params: &[("alpha", A::Vector)], variate: Variate::Vector },
    DistSig { name: "multi_normal", params: &[("mu", A::Vector), ("Sigma", A::Matrix)], variate: Variate::Vector },
    DistSig { name: "multi_normal_cholesky", params: &[("mu", A::Vector), ("L", A::Matrix)], variate: Variate::Vector },
    DistSig { name: "lkj_corr_cholesky", params: &[("eta", A::Scalar)], variate: Variate::Matrix },
];

pub fn distribution(name: &str) -> Option<&'static DistSig> {
    DISTRIBUTIONS.iter().find(|d| d.name == name)
}

/// Whether distribution `d` has `_lcdf` and `_lccdf`.
pub fn has_cdf(d: &DistSig) -> bool {
    crate::math::dist::Family::from_name(d.name).is_some_and(crate::math::dist::has_cdf)
}

/// The function forms of a distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistFn {
    /// `D_lpdf(x, args...)` / `D_lpmf(x, args...)`: the log density, summed over elements.
    LogDensity,
    /// `D_rng(args...)`: a draw.
    Rng,
    /// `D_lcdf(x, args...)` (`false`) or `D_lccdf(x, args...)` (`true`): the log of the
    /// probability below x, or above it, summed over elements.
    LogCdf(bool),
}

/// `normal_lpdf` → (normal, LogDensity). The suffix must fit: `_lpmf` for discrete families.
pub fn dist_function(name: &str) -> Option<(&'static DistSig, DistFn, bool)> {
    let forms = [
        ("_lpdf", DistFn::LogDensity),
        ("_lpmf", DistFn::LogDensity),
        ("_rng", DistFn::Rng),
        ("_lcdf", DistFn::LogCdf(false)),
        ("_lccdf", DistFn::LogCdf(true)),
    ];
    for (suffix, kind) in forms {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(d) = distribution(base) {
                let suffix_fits = match suffix {
                    "_lpdf" => !d.is_discrete(),
                    "_lpmf" => d.is_discrete(),
                    "_lcdf" | "_lccdf" => has_cdf(d),
                    _ => true,
                };
                return Some((d, kind, suffix_fits));
            }
        }
    }
    None
}

/// Every built-in function that is not a distribution's, each named in [`FUNCTIONS`], the one
/// table of names that checking ([`crate::sema`]) and lowering ([`crate::ir::lower`]) share;
/// both reach a function's rule through an exhaustive `match` on this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// An elementwise real function of one argument; also usable as a `fn` value (an activation).
    Elementwise(Un),
    /// `identity(x)`: the activation that does nothing.
    Identity,
    Pow,
    Min,
    Max,
    LogSumExp,
    Sum,
    Mean,
    Sd,
    Variance,
    Prod,
    LogMix,
    Softmax,
    LogSoftmax,
    LayerNorm,
    Dot,
    Transpose,
    Col,
    Row,
    Rows,
    Cols,
    Size,
    RepVector,
    RepMatrix,
    Zeros,
    Ones,
    DiagMatrix,
    Diagonal,
    Cholesky,
    GpExpQuadCov,
    ColMeans,
    RowMeans,
    ColSums,
    RowSums,
    ToVector,
    /// FractalNet's join: the mean of its inputs (drop-path under the methods that use it).
    Join,
    /// The identity in the log density; masks where a method asks for them.
    Dropout,
    /// `convolve2d(x, W, b, stride, padding)`: the convolution behind the `conv2d` layer.
    Convolve2d,
    MaxPool2d,
    AvgPool2d,
    /// tensor[n, c, h, w] → matrix[n, c·h·w].
    Flatten,
}

/// The names of the built-in functions (`inv_logit` is `sigmoid`'s second name).
pub const FUNCTIONS: &[(&str, Func)] = &[
    ("exp", Func::Elementwise(Un::Exp)),
    ("log", Func::Elementwise(Un::Log)),
    ("log1p", Func::Elementwise(Un::Log1p)),
    ("expm1", Func::Elementwise(Un::Expm1)),
    ("sqrt", Func::Elementwise(Un::Sqrt)),
    ("square", Func::Elementwise(Un::Square)),
    ("abs", Func::Elementwise(Un::Abs)),
    ("tanh", Func::Elementwise(Un::Tanh)),
    ("sigmoid", Func::Elementwise(Un::Sigmoid)),
    ("inv_logit", Func::Elementwise(Un::Sigmoid)),
    ("logit", Func::Elementwise(Un::Logit)),
    ("softplus", Func::Elementwise(Un::Softplus)),
    ("relu", Func::Elementwise(Un::Relu)),
    ("identity", Func::Identity),
    ("lgamma", Func::Elementwise(Un::Lgamma)),
    ("digamma", Func::Elementwise(Un::Digamma)),
    ("sin", Func::Elementwise(Un::Sin)),
    ("cos", Func::Elementwise(Un::Cos)),
    ("erf", Func::Elementwise(Un::Erf)),
    ("Phi", Func::Elementwise(Un::Phi)),
    ("log1m", Func::Elementwise(Un::Log1m)),
    ("log_inv_logit", Func::Elementwise(Un::LogInvLogit)),
    ("inv", Func::Elementwise(Un::Inv)),
    ("floor", Func::Elementwise(Un::Floor)),
    ("ceil", Func::Elementwise(Un::Ceil)),
    ("round", Func::Elementwise(Un::Round)),
    ("pow", Func::Pow),
    ("min", Func::Min),
    ("max", Func::Max),
    ("log_sum_exp", Func::LogSumExp),
    ("sum", Func::Sum),
    ("mean", Func::Mean),
    ("sd", Func::Sd),
    ("variance", Func::Variance),
    ("prod", Func::Prod),
    ("log_mix", Func::LogMix),
    ("softmax", Func::Softmax),
    ("log_softmax", Func::LogSoftmax),
    ("layer_norm", Func::LayerNorm),
    ("dot", Func::Dot),
    ("transpose", Func::Transpose),
    ("col", Func::Col),
    ("row", Func::Row),
    ("rows", Func::Rows),
    ("cols", Func::Cols),
    ("size", Func::Size),
    ("rep_vector", Func::RepVector),
    ("rep_matrix", Func::RepMatrix),
    ("zeros", Func::Zeros),
    ("ones", Func::Ones),
    ("diag_matrix", Func::DiagMatrix),
    ("diagonal", Func::Diagonal),
    ("cholesky", Func::Cholesky),
    ("gp_exp_quad_cov", Func::GpExpQuadCov),
    ("colmeans", Func::ColMeans),
    ("rowmeans", Func::RowMeans),
    ("colsums", Func::ColSums),
    ("rowsums", Func::RowSums),
    ("to_vector", Func::ToVector),
    ("join", Func::Join),
    ("dropout", Func::Dropout),
    ("convolve2d", Func::Convolve2d),
    ("max_pool2d", Func::MaxPool2d),
    ("avg_pool2d", Func::AvgPool2d),
    ("flatten", Func::Flatten),
];

impl Func {
    pub fn from_name(name: &str) -> Option<Func> {
        FUNCTIONS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// A function that can be passed as a `fn` value (`act = tanh`).
    pub fn is_activation(self) -> bool {
        matches!(self, Func::Elementwise(_) | Func::Identity)
    }
}

/// The names of the functions usable as `fn` values.
pub fn activation_names<'a>() -> impl Iterator<Item = &'a str> {
    FUNCTIONS.iter().filter(|(_, f)| f.is_activation()).map(|(n, _)| *n)
}

pub fn is_builtin_function(name: &str) -> bool {
    Func::from_name(name).is_some()
}

/// All names a call could mean, for "did you mean" suggestions.
pub fn all_callable_names() -> Vec<String> {
    let mut v: Vec<String> = FUNCTIONS.iter().map(|(n, _)| n.to_string()).collect();
    for d in DISTRIBUTIONS {
        v.push(d.name.to_string());
        v.push(d.density_fn());
        v.push(format!("{}_rng", d.name));
        if has_cdf(d) {
            v.push(format!("{}_lcdf", d.name));
            v.push(format!("{}_lccdf", d.name));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_one_entry_per_name_and_every_named_elementwise_function_is_listed() {
        for (i, (n, _)) in FUNCTIONS.iter().enumerate() {
            assert!(FUNCTIONS[..i].iter().all(|(m, _)| m != n), "`{n}` is listed twice");
            assert!(distribution(n).is_none(), "`{n}` is also a distribution");
        }
        for u in Un::ALL {
            let named = FUNCTIONS.iter().any(|(_, f)| *f == Func::Elementwise(u));
            // Negation and `!` are operators, not functions.
            assert_eq!(named, !matches!(u, Un::Neg | Un::Not), "{u:?}");
        }
    }
}
