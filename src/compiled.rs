//! A model compiled for evaluation: the one place where the backend is chosen.
//!
//! [`CompiledModel::new`] takes a lowered [`Program`] and a [`Backend`]: compiled code
//! (Cranelift, `jit`) or the reference interpreter (`ir::interp`). Either evaluates the log
//! density and its gradient; each draw's constrained values and generated quantities come
//! from the draws program, which does not evaluate the density. [`Forward`] is the forward
//! entry on either backend. Commands and inference methods ask this module for an evaluator
//! instead of building one of the backends themselves.

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

/// A program on the chosen backend.
enum Engine<'p> {
    Jit(crate::jit::Jit<'p>),
    Interp(Interp<'p>),
}

impl<'p> Engine<'p> {
    fn new(p: &'p Program, backend: Backend) -> Result<Engine<'p>, String> {
        Ok(match backend {
            Backend::Jit => Engine::Jit(crate::jit::Jit::new(p)?),
            Backend::Interp => Engine::Interp(Interp::new(p)),
        })
    }

    fn set_input(&mut self, k: usize, values: &[f64]) -> Result<(), String> {
        match self {
            Engine::Jit(j) => j.set_input(k, values),
            Engine::Interp(i) => i.set_input(k, values),
        }
    }

    fn input_mut(&mut self, k: usize) -> Option<&mut [f64]> {
        match self {
            Engine::Jit(j) => j.input_mut(k),
            Engine::Interp(i) => i.input_mut(k),
        }
    }
}

/// A log density on the unconstrained space with its gradient, by the chosen backend, and
/// the constrained values and generated quantities of a point. Those come from the program's
/// draws program ([`Program::draws`]: the transforms and `generated`, not the density), run
/// by the interpreter (generated quantities may draw random numbers), made on first use.
pub struct CompiledModel<'p> {
    p: &'p Program,
    engine: Engine<'p>,
    draws: Option<Interp<'p>>,
    seed: Option<u64>,
    /// The points whose generated quantities failed in [`Self::constrained_keeping_params`].
    failures: GeneratedFailures,
}

impl<'p> CompiledModel<'p> {
    /// `Err` when the code generator fails (an internal error; the interpreter still works).
    pub fn new(p: &'p Program, backend: Backend) -> Result<CompiledModel<'p>, String> {
        Ok(CompiledModel { p, engine: Engine::new(p, backend)?, draws: None, seed: None, failures: Default::default() })
    }

    /// Leave the log-Jacobian out (for optimisation in the model's own parameterisation).
    pub fn without_jacobian(self) -> Self {
        let engine = match self.engine {
            Engine::Jit(j) => Engine::Jit(j.without_jacobian()),
            Engine::Interp(i) => Engine::Interp(i.without_jacobian()),
        };
        CompiledModel { engine, ..self }
    }

    /// Seed the generator of `_rng` calls in generated quantities.
    pub fn seed(&mut self, seed: u64) {
        self.seed = Some(seed);
        if let Some(i) = &mut self.draws {
            i.seed(seed);
        }
    }

    /// Set runtime input buffer `k` of the density (a dropout mask, say) for the evaluations
    /// that follow.
    pub fn set_input(&mut self, k: usize, values: &[f64]) -> Result<(), String> {
        self.engine.set_input(k, values)
    }

    /// Input buffer `k` to fill in place (noise drawn for each evaluation), or `None` when the
    /// compiled code does not read it.
    pub fn input_mut(&mut self, k: usize) -> Option<&mut [f64]> {
        self.engine.input_mut(k)
    }

    /// The log density and log-Jacobian apart, with the gradient in `grad`.
    pub fn eval_grad(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<Eval, EvalError> {
        match &mut self.engine {
            Engine::Jit(j) => j.eval_grad(theta, grad),
            Engine::Interp(i) => {
                let e = i.eval(theta)?;
                i.gradient(grad)?;
                Ok(e)
            }
        }
    }

    /// The log density and log-Jacobian apart, without the gradient.
    pub fn eval(&mut self, theta: &[f64]) -> Result<Eval, EvalError> {
        match &mut self.engine {
            Engine::Jit(j) => j.eval(theta),
            Engine::Interp(i) => i.eval(theta),
        }
    }

    /// The constrained parameters and (when asked) generated quantities at `theta`.
    pub fn constrained(
        &mut self,
        theta: &[f64],
        generated: bool,
    ) -> Result<Vec<(String, Vec<usize>, Vec<f64>)>, EvalError> {
        let (p, seed) = (self.p.draws.as_deref().unwrap_or(self.p), self.seed);
        let draws = self.draws.get_or_insert_with(|| {
            let mut i = Interp::new(p);
            if let Some(s) = seed {
                i.seed(s);
            }
            i
        });
        draws.constrained(theta, generated)
    }

    /// The constrained parameters and generated quantities at `theta`, as [`Self::constrained`]
    /// with both; when only the generated quantities fail (an `_rng` argument outside its
    /// support, say), the parameters with the generated quantities NaN, and why they failed
    /// (also counted in [`Self::generated_failures`]). `Err` when the parameters themselves
    /// cannot be mapped.
    pub fn constrained_keeping_params(&mut self, theta: &[f64]) -> Result<(Named, Option<String>), EvalError> {
        match self.constrained(theta, true) {
            Ok(v) => Ok((v, None)),
            Err(e) => {
                self.failures.note(e.to_string());
                let mut v = self.constrained(theta, false)?;
                let p = self.p.draws.as_deref().unwrap_or(self.p);
                for o in &p.outputs {
                    let shape = p.values[o.value.0 as usize].shape.clone();
                    let len = shape.iter().product();
                    v.push((o.name.clone(), shape, vec![f64::NAN; len]));
                }
                Ok((v, Some(e.to_string())))
            }
        }
    }

    /// The program this model evaluates.
    pub fn program(&self) -> &'p Program {
        self.p
    }

    /// The points so far whose generated quantities could not be computed.
    pub fn generated_failures(&self) -> &GeneratedFailures {
        &self.failures
    }
}

/// What a failure of the code generator is called wherever it is reported: an internal
/// error, with the way around it.
pub fn internal_error(e: &str) -> String {
    format!("internal compiler error: {e} (`--backend interp` runs without compiling)")
}

/// Names with their shapes and values, row-major: a point's constrained parameters and
/// generated quantities.
pub type Named = Vec<(String, Vec<usize>, Vec<f64>)>;

/// Draws whose generated quantities could not be computed: how many, and the first reason.
#[derive(Clone, Debug, Default)]
pub struct GeneratedFailures {
    pub count: usize,
    pub first: Option<String>,
}

impl GeneratedFailures {
    /// Count one more failure, keeping the first reason.
    pub fn note(&mut self, why: String) {
        self.count += 1;
        self.first.get_or_insert(why);
    }

    /// Add another's count (a chain's, a thread's).
    pub fn merge(&mut self, o: &GeneratedFailures) {
        self.count += o.count;
        if self.first.is_none() {
            self.first = o.first.clone();
        }
    }

    /// The warning for a run of `total` draws, if any failed.
    pub fn warning(&self, total: usize) -> Option<String> {
        let e = self.first.as_ref()?;
        Some(format!(
            "the generated quantities could not be computed at {} of {total} draws ({e}): their columns are NaN there; the parameters' draws are whole",
            self.count
        ))
    }
}

impl LogDensity for CompiledModel<'_> {
    fn dim(&self) -> usize {
        self.p.dim()
    }

    fn logp_grad(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<f64, EvalError> {
        match &mut self.engine {
            Engine::Jit(j) => j.logp_grad(theta, grad),
            Engine::Interp(i) => i.logp_grad(theta, grad),
        }
    }
}

/// The forward entry of a model ([`crate::ir::lower::Purpose::Forward`]): from one draw's
/// constrained parameter values (in the order of the program's parameters, each flattened
/// row-major) to the arguments of every observed variable's distribution.
pub struct Forward<'p> {
    p: &'p Program,
    engine: Engine<'p>,
    /// With dropout masks drawn for each evaluation: the seed, and the evaluations so far.
    masks: Option<(u64, u64)>,
}

/// Element `i` of dropout mask `k` at evaluation `e` under `seed`: kept (1) with probability
/// 1 − p. A counter-based draw (a hash of the four numbers), so any backend, thread or order
/// of evaluation gives the same masks.
pub fn dropout_mask_element(seed: u64, e: u64, k: u64, i: u64, p: f64) -> f64 {
    let mut z = seed
        ^ e.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ i.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
    for _ in 0..2 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    let u = (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    if u >= p {
        1.0
    } else {
        0.0
    }
}

/// One site's values after [`Forward::eval`]: every execution's copy, in order; a constant
/// has one copy, whatever the number of executions.
pub struct SiteValues<'a> {
    /// How many times the site ran (1 outside loops).
    pub execs: usize,
    pub lhs: &'a [f64],
    pub args: Vec<&'a [f64]>,
    /// The positions of the observed elements in their variable, when the site says
    /// ([`crate::ir::Site::index`]).
    pub index: Option<&'a [f64]>,
}

impl<'p> Forward<'p> {
    pub fn new(p: &'p Program, backend: Backend) -> Result<Forward<'p>, String> {
        Ok(Forward { p, engine: Engine::new(p, backend)?, masks: None })
    }

    /// Draw the program's dropout masks afresh for every evaluation from here on (MC
    /// Dropout's passes), from `seed` ([`dropout_mask_element`]).
    pub fn with_dropout(mut self, seed: u64) -> Self {
        self.masks = Some((seed, 0));
        self
    }

    pub fn program(&self) -> &'p Program {
        self.p
    }

    /// Set runtime input buffer `k` (a dropout mask, say) for the evaluations that follow.
    pub fn set_input(&mut self, k: usize, values: &[f64]) -> Result<(), String> {
        self.engine.set_input(k, values)
    }

    /// Run the entry at a draw (constrained values, `program().dim()` of them).
    pub fn eval(&mut self, draw: &[f64]) -> Result<(), EvalError> {
        if let Some((seed, e)) = &mut self.masks {
            for (k, info) in self.p.inputs.iter().enumerate() {
                if let crate::ir::InputKind::DropoutMask { p } = info.kind {
                    if let Some(buf) = self.engine.input_mut(k) {
                        for (i, m) in buf.iter_mut().enumerate() {
                            *m = dropout_mask_element(*seed, *e, k as u64, i as u64, p);
                        }
                    }
                }
            }
            *e += 1;
        }
        match &mut self.engine {
            Engine::Jit(j) => j.eval(draw).map(|_| ()),
            Engine::Interp(i) => i.eval(draw).map(|_| ()),
        }
    }

    fn values(&self, v: crate::ir::V) -> &[f64] {
        match &self.engine {
            Engine::Jit(j) => j.all_execs(v).unwrap_or(&[]),
            Engine::Interp(i) => i.all_execs(v),
        }
    }

    /// Site `k`'s values at the last evaluated draw.
    pub fn site(&self, k: usize) -> SiteValues<'_> {
        let s = &self.p.sites[k];
        let lhs = self.values(s.lhs);
        // Constants keep one copy; everything else one per execution of the site.
        let execs = std::iter::once(&s.lhs)
            .chain(&s.args)
            .chain(&s.index)
            .map(|v| self.values(*v).len() / self.p.info(*v).len().max(1))
            .max()
            .unwrap_or(0);
        SiteValues {
            execs,
            lhs,
            args: s.args.iter().map(|a| self.values(*a)).collect(),
            index: s.index.map(|v| self.values(v)),
        }
    }
}
