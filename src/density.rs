//! The boundary between a model and the algorithms that use it. It sits below `ir` and
//! `jit`, which implement [`LogDensity`], and `infer`, which uses it.

use std::fmt;

/// Why a log density could not be evaluated at a point.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalError {
    /// A proposal in a region where the density is not finite (a NaN, an overflow, an index
    /// out of range computed from parameters): samplers treat it as a divergence and go on.
    pub recoverable: bool,
    pub message: String,
}

impl EvalError {
    pub fn recoverable(message: impl Into<String>) -> EvalError {
        EvalError { recoverable: true, message: message.into() }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A log density on the unconstrained space, with its gradient.
pub trait LogDensity {
    fn dim(&self) -> usize;
    /// Log density on the unconstrained space (Jacobian included) and its gradient.
    fn logp_grad(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<f64, EvalError>;
}
