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
    DistSig { name: "categorical", params: &[("theta", A::Vector)], variate: Variate::Label },
    DistSig { name: "categorical_logit", params: &[("beta", A::VectorOrMatrix)], variate: Variate::Label },
    DistSig { name: "dirichlet", params: &[("alpha", A::Vector)], variate: Variate::Vector },
    DistSig { name: "multi_normal", params: &[("mu", A::Vector), ("Sigma", A::Matrix)], variate: Variate::Vector },
    DistSig { name: "multi_normal_cholesky", params: &[("mu", A::Vector), ("L", A::Matrix)], variate: Variate::Vector },
    DistSig { name: "lkj_corr_cholesky", params: &[("eta", A::Scalar)], variate: Variate::Matrix },
];

pub fn distribution(name: &str) -> Option<&'static DistSig> {
    DISTRIBUTIONS.iter().find(|d| d.name == name)
}

/// The three function forms of a distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistFn {
    /// `D_lpdf(x, args...)` / `D_lpmf(x, args...)`: the log density, summed over elements.
    LogDensity,
    /// `D_rng(args...)`: a draw.
    Rng,
}

/// `normal_lpdf` → (normal, LogDensity). The suffix must fit: `_lpmf` for discrete families.
pub fn dist_function(name: &str) -> Option<(&'static DistSig, DistFn, bool)> {
    for (suffix, kind) in [("_lpdf", DistFn::LogDensity), ("_lpmf", DistFn::LogDensity), ("_rng", DistFn::Rng)] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(d) = distribution(base) {
                let suffix_fits = match suffix {
                    "_lpdf" => !d.is_discrete(),
                    "_lpmf" => d.is_discrete(),
                    _ => true,
                };
                return Some((d, kind, suffix_fits));
            }
        }
    }
    None
}

/// Elementwise real functions of one argument; also usable as `fn` values (activations).
pub const ELEMENTWISE: &[&str] = &[
    "exp",
    "log",
    "log1p",
    "expm1",
    "sqrt",
    "square",
    "abs",
    "tanh",
    "sigmoid",
    "inv_logit",
    "logit",
    "softplus",
    "relu",
    "identity",
    "lgamma",
    "digamma",
    "sin",
    "cos",
    "erf",
    "Phi",
    "log1m",
    "log_inv_logit",
    "inv",
    "floor",
    "ceil",
    "round",
];

/// Every other built-in function name (their rules are in `check::Checker::call_builtin`).
pub const OTHER_FUNCTIONS: &[&str] = &[
    "pow",
    "min",
    "max",
    "log_sum_exp",
    "sum",
    "mean",
    "sd",
    "variance",
    "prod",
    "log_mix",
    "softmax",
    "log_softmax",
    "dot",
    "transpose",
    "col",
    "row",
    "rows",
    "cols",
    "size",
    "rep_vector",
    "rep_matrix",
    "zeros",
    "ones",
    "diag_matrix",
    "diagonal",
    "cholesky",
    "gp_exp_quad_cov",
    "colmeans",
    "rowmeans",
    "colsums",
    "rowsums",
    "to_vector",
    "join",
    "dropout",
];

pub fn is_builtin_function(name: &str) -> bool {
    ELEMENTWISE.contains(&name) || OTHER_FUNCTIONS.contains(&name)
}

/// All names a call could mean, for "did you mean" suggestions.
pub fn all_callable_names() -> Vec<String> {
    let mut v: Vec<String> = ELEMENTWISE.iter().chain(OTHER_FUNCTIONS.iter()).map(|s| s.to_string()).collect();
    for d in DISTRIBUTIONS {
        v.push(d.name.to_string());
        v.push(d.density_fn());
        v.push(format!("{}_rng", d.name));
    }
    v
}
