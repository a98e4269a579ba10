//! A model compiled for evaluation: the one place where the backend is chosen.
//!
//! [`CompiledModel::new`] takes a lowered [`Program`] and a [`Backend`]: compiled code
//! (Cranelift, `jit`) or the reference interpreter (`ir::interp`). Either evaluates the log
//! density and its gradient; the interpreter also gives each draw's constrained values and
//! generated quantities (once per draw, without a gradient). Commands and inference methods
//! ask this module for an evaluator instead of building one of the backends themselves.

use crate::density::{EvalError, LogDensity};
use crate::ir::interp::{Eval, Interp};
use crate::ir::Program;

/// How a log density is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Native code compiled with Cranelift.
    Jit,
    /// The reference interpreter.
    Interp,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Jit => "jit",
            Backend::Interp => "interp",
        }
    }
}

/// A log density on the unconstrained space with its gradient, by the chosen backend, and
/// the constrained values of a point. With compiled code, the interpreter that computes
/// constrained values is made on first use: timing and evaluating the density never pay for it.
pub struct CompiledModel<'p> {
    p: &'p Program,
    jit: Option<crate::jit::Jit<'p>>,
    interp: Option<Interp<'p>>,
    with_jacobian: bool,
    seed: Option<u64>,
}

impl<'p> CompiledModel<'p> {
    /// `Err` when the code generator fails (an internal error; the interpreter still works).
    pub fn new(p: &'p Program, backend: Backend) -> Result<CompiledModel<'p>, String> {
        let (jit, interp) = match backend {
            Backend::Jit => (Some(crate::jit::Jit::new(p)?), None),
            Backend::Interp => (None, Some(Interp::new(p))),
        };
        Ok(CompiledModel { p, jit, interp, with_jacobian: true, seed: None })
    }

    /// Leave the log-Jacobian out (for optimisation in the model's own parameterisation).
    pub fn without_jacobian(self) -> Self {
        CompiledModel {
            jit: self.jit.map(|j| j.without_jacobian()),
            interp: self.interp.map(|i| i.without_jacobian()),
            with_jacobian: false,
            ..self
        }
    }

    /// Seed the generator of `_rng` calls in generated quantities.
    pub fn seed(&mut self, seed: u64) {
        self.seed = Some(seed);
        if let Some(i) = &mut self.interp {
            i.seed(seed);
        }
    }

    fn interp(&mut self) -> &mut Interp<'p> {
        let (p, with_jacobian, seed) = (self.p, self.with_jacobian, self.seed);
        self.interp.get_or_insert_with(|| {
            let mut i = Interp::new(p);
            if !with_jacobian {
                i = i.without_jacobian();
            }
            if let Some(s) = seed {
                i.seed(s);
            }
            i
        })
    }

    /// The log density and log-Jacobian apart, with the gradient in `grad`.
    pub fn eval_grad(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<Eval, EvalError> {
        if let Some(j) = &mut self.jit {
            return j.eval_grad(theta, grad);
        }
        let interp = self.interp();
        let e = interp.eval(theta)?;
        interp.gradient(grad)?;
        Ok(e)
    }

    /// The constrained parameters and (when asked) generated quantities at `theta`.
    pub fn constrained(
        &mut self,
        theta: &[f64],
        generated: bool,
    ) -> Result<Vec<(String, Vec<usize>, Vec<f64>)>, EvalError> {
        self.interp().constrained(theta, generated)
    }
}

impl LogDensity for CompiledModel<'_> {
    fn dim(&self) -> usize {
        self.p.dim()
    }

    fn logp_grad(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<f64, EvalError> {
        match &mut self.jit {
            Some(j) => j.logp_grad(theta, grad),
            None => self.interp().logp_grad(theta, grad),
        }
    }
}
