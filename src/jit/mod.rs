//! The Cranelift backend: a [`Program`] compiled to one native function computing the log
//! density and, on request, its gradient. Sizes are constants (a program is made once data is
//! bound), so every buffer lives at a fixed place in one arena allocated at compile time;
//! nothing is allocated per evaluation.
//!
//! Memory safety: compiled code reads and writes only the arena. Addresses are offsets fixed at
//! compile time plus, inside loops, the block's execution counter times the value's length —
//! bounded by the execution counts the layout was sized with. Indices computed while running
//! (loop variables, int arrays) are checked against their dimension before use; a failed check
//! is a recoverable [`EvalError`], as is a non-finite density.

mod emit;
pub mod gemm;
pub mod kernels;
pub mod layout;

use crate::density::{EvalError, LogDensity};
use crate::ir::interp::Eval;
use crate::ir::prim::Scratch;
use crate::ir::{Program, V};
use cranelift_codegen::ir::{types, AbiParam};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use kernels::{Ctx, Runtime};
use layout::Layout;

type Entry = unsafe extern "C" fn(*mut Ctx, i64) -> i32;

/// A compiled log density.
pub struct Jit<'p> {
    p: &'p Program,
    module: Option<JITModule>,
    entry: Entry,
    arena: Vec<f64>,
    rt: Box<Runtime>,
    theta: Vec<f64>,
    with_jacobian: bool,
    /// Set when an evaluation stopped midway, leaving adjoints to clear.
    dirty: bool,
    /// Operations computed in fused elementwise loops (each one counted once).
    pub fused_ops: usize,
    /// Operations computed by array kernels four elements at a time (`exp`, `log`, `tanh`…).
    pub array_ops: usize,
}

impl<'p> Jit<'p> {
    /// Compile `p`. `Err` only for a failure inside the code generator (a bug, reported as such).
    pub fn new(p: &'p Program) -> Result<Jit<'p>, String> {
        let lay = Layout::new(p);
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| f.set(k, v).map_err(|e| e.to_string());
        set(&mut flags, "opt_level", "speed")?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", "false")?;
        if !cfg!(debug_assertions) {
            set(&mut flags, "enable_verifier", "false")?;
        }
        let isa = cranelift_native::builder()
            .map_err(|e| format!("this machine is not supported by the code generator: {e}"))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        jb.symbol("bnnc_k_eval", kernels::k_eval as *const u8);
        jb.symbol("bnnc_k_vjp", kernels::k_vjp as *const u8);
        jb.symbol("bnnc_k_store", kernels::k_store as *const u8);
        jb.symbol("bnnc_k_store_rev", kernels::k_store_rev as *const u8);
        jb.symbol("bnnc_k_index_error", kernels::k_index_error as *const u8);
        jb.symbol("bnnc_k_param_error", kernels::k_param_error as *const u8);
        jb.symbol("bnnc_log_mix", kernels::k_log_mix as *const u8);
        jb.symbol("bnnc_elem", kernels::k_elem as *const u8);
        jb.symbol("bnnc_elem_partials", kernels::k_elem_partials as *const u8);
        jb.symbol("bnnc_log_mix_partials", kernels::k_log_mix_partials as *const u8);
        jb.symbol("bnnc_log_mix_logs", kernels::k_log_mix_logs as *const u8);
        jb.symbol("bnnc_log_mix_partials_logs", kernels::k_log_mix_partials_logs as *const u8);
        jb.symbol("bnnc_ln1m", kernels::k_ln1m as *const u8);
        jb.symbol("bnnc_ln", kernels::k_ln as *const u8);
        jb.symbol("bnnc_exp", kernels::k_exp as *const u8);
        jb.symbol("bnnc_zero", kernels::k_zero as *const u8);
        jb.symbol("bnnc_unary_row_bias_vjp", kernels::k_unary_row_bias_vjp as *const u8);
        jb.symbol("bnnc_unary_row_bias_head", kernels::k_unary_row_bias_head as *const u8);
        jb.symbol("bnnc_dense_head_vjp", kernels::k_dense_head_vjp as *const u8);
        jb.symbol("bnnc_bernoulli_logit", kernels::k_bernoulli_logit as *const u8);
        jb.symbol("bnnc_normal", kernels::k_normal as *const u8);
        jb.symbol("bnnc_copy_finite", kernels::k_copy_finite as *const u8);
        jb.symbol("bnnc_add_into", kernels::k_add_into as *const u8);
        jb.symbol("bnnc_normal_rev", kernels::k_normal_rev as *const u8);
        jb.symbol("bnnc_bernoulli_logit_keep", kernels::k_bernoulli_logit_keep as *const u8);
        jb.symbol("bnnc_partials_rev", kernels::k_partials_rev as *const u8);
        jb.symbol("bnnc_v_log_add_exp", crate::math::vmath::log_add_exp_raw as *const u8);
        for u in crate::ir::prim::Un::ALL {
            if let Some((name, f)) = u.array_raw() {
                jb.symbol(name, f as *const u8);
            }
        }
        for f in crate::ir::scalar::Scalar::ALL {
            let (name, _, at) = f.symbol();
            jb.symbol(name, at);
        }
        let mut module = JITModule::new(jb);
        let mut ctx = module.make_context();
        let ptr = module.target_config().pointer_type();
        ctx.func.signature.params.push(AbiParam::new(ptr));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        ctx.func.signature.returns.push(AbiParam::new(types::I32));
        let id = module
            .declare_function("bnnc_logp_grad", Linkage::Local, &ctx.func.signature)
            .map_err(|e| e.to_string())?;
        let mut fbc = FunctionBuilderContext::new();
        let emit::Emitted { ops, kept_adj, fresh_adj, fused_ops, array_ops } = {
            let b = FunctionBuilder::new(&mut ctx.func, &mut fbc);
            let em = emit::Emitter::new(p, &lay, b, &mut module);
            em.finish()?
        };
        if std::env::var_os("BNNC_DUMP_CLIF").is_some() {
            eprintln!("{}", ctx.func.display());
        }
        module.define_function(id, &mut ctx).map_err(|e| format!("code generation failed: {e:?}"))?;
        if let (Some(path), Some(code)) = (std::env::var_os("BNNC_DUMP_CODE"), ctx.compiled_code()) {
            // Machine code for `objdump -D -b binary -m i386:x86-64`, offsets as in perf's map;
            // one file per function compiled, named by its size in hex as that map lists it.
            let mut path = std::path::PathBuf::from(path);
            path.as_mut_os_string().push(format!(".{:x}", code.code_buffer().len()));
            if let Err(e) = std::fs::write(&path, code.code_buffer()) {
                eprintln!("BNNC_DUMP_CODE: cannot write {}: {e}", path.display());
            }
        }
        module.clear_context(&mut ctx);
        module.finalize_definitions().map_err(|e| e.to_string())?;
        let code = module.get_finalized_function(id);
        // SAFETY: the function was declared with this signature.
        let entry: Entry = unsafe { std::mem::transmute::<*const u8, Entry>(code) };
        let mut arena = vec![0.0; lay.size];
        for (at, vals) in &lay.init {
            arena[*at..*at + vals.len()].copy_from_slice(vals);
        }
        let rt = Box::new(Runtime {
            p: p as *const Program,
            lay,
            ops,
            kept_adj,
            fresh_adj,
            sc: Scratch::default(),
            tmp: Vec::new(),
            pos: Vec::new(),
            bound_adj: (Vec::new(), Vec::new()),
            error: None,
        });
        Ok(Jit {
            p,
            module: Some(module),
            entry,
            arena,
            rt,
            theta: vec![0.0; p.dim()],
            with_jacobian: true,
            dirty: false,
            fused_ops,
            array_ops,
        })
    }

    /// Leave the log-Jacobian out of `logp_grad` and of the gradient (for optimisation).
    pub fn without_jacobian(mut self) -> Self {
        self.with_jacobian = false;
        self
    }

    fn call(&mut self, theta: &[f64], grad: Option<&mut [f64]>) -> Result<Eval, EvalError> {
        if theta.len() != self.p.dim() {
            return Err(EvalError {
                recoverable: false,
                message: format!("expected {} values, got {}", self.p.dim(), theta.len()),
            });
        }
        if self.dirty {
            let start = self.rt.lay.adj_start;
            self.arena[start..].iter_mut().for_each(|x| *x = 0.0);
            self.dirty = false;
        }
        self.theta.copy_from_slice(theta);
        let want = grad.is_some();
        let mut dummy = [0.0; 0];
        let grad = match grad {
            Some(g) => {
                g.iter_mut().for_each(|x| *x = 0.0);
                g
            }
            None => &mut dummy[..],
        };
        let mut ctx = Ctx {
            arena: self.arena.as_mut_ptr(),
            theta: self.theta.as_ptr(),
            grad: grad.as_mut_ptr(),
            rt: &mut *self.rt,
            target: 0.0,
            jacobian: 0.0,
            jac_weight: if self.with_jacobian { 1.0 } else { 0.0 },
            likelihood: 0.0,
        };
        // SAFETY: the arena, theta and grad have the sizes the code was generated for; kernels
        // get the runtime through the context and the program outlives `self`.
        let r = unsafe { (self.entry)(&mut ctx, want as i64) };
        // A sweep that stopped midway may leave adjoints behind.
        self.dirty = r != 0 && want;
        if r != 0 {
            let msg = self.rt.error.take().unwrap_or_else(|| "evaluation failed".into());
            return Err(EvalError::recoverable(msg));
        }
        if !ctx.target.is_finite() || !ctx.jacobian.is_finite() {
            return Err(EvalError::recoverable(format!(
                "the log density is {} at this point",
                ctx.target + ctx.jacobian
            )));
        }
        if want && !all_finite(grad) {
            let i = grad.iter().position(|g| !g.is_finite()).unwrap_or(0);
            return Err(EvalError::recoverable(format!("the gradient is not finite (element {i})")));
        }
        Ok(Eval { logp: ctx.target, jacobian: ctx.jacobian, likelihood: ctx.likelihood })
    }

    /// The log density at `theta`, without the gradient.
    pub fn eval(&mut self, theta: &[f64]) -> Result<Eval, EvalError> {
        self.call(theta, None)
    }

    /// The log density and its gradient (of logp + jacobian, or of logp alone after
    /// [`Jit::without_jacobian`]).
    pub fn eval_grad(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<Eval, EvalError> {
        self.call(theta, Some(grad))
    }

    /// Set runtime input buffer `k` ([`crate::ir::Program::inputs`]) for the evaluations
    /// that follow. `Err` when `values` has the wrong length.
    pub fn set_input(&mut self, k: usize, values: &[f64]) -> Result<(), String> {
        let info = self.p.inputs.get(k).ok_or_else(|| format!("no input {k}"))?;
        if values.len() != info.len() {
            return Err(format!("input `{}` has {} values, {} given", info.name, info.len(), values.len()));
        }
        if let Some(Some(at)) = self.rt.lay.inputs.get(k) {
            self.arena[*at..*at + values.len()].copy_from_slice(values);
        }
        Ok(())
    }

    /// Runtime input buffer `k` to write in place, or `None` when the compiled code does not
    /// read it.
    pub fn input_mut(&mut self, k: usize) -> Option<&mut [f64]> {
        let len = self.p.inputs.get(k)?.len();
        let at = (*self.rt.lay.inputs.get(k)?)?;
        Some(&mut self.arena[at..at + len])
    }

    /// Every execution's copy of value `v` after an evaluation, in execution order; `None`
    /// for a value the compiled code does not keep (a generated quantity, one computed in
    /// registers only, or one of a loop body that keeps one copy at a time).
    pub fn all_execs(&self, v: V) -> Option<&[f64]> {
        let info = self.p.info(v);
        let len = info.len();
        match self.rt.lay.val[v.0 as usize] {
            layout::Loc::Fixed(at) => Some(&self.arena[at..at + len]),
            layout::Loc::PerExec(at) => {
                let b = info.block.0 as usize;
                if self.rt.lay.streamed[b] {
                    return None;
                }
                Some(&self.arena[at..at + self.p.execs[b] * len])
            }
            layout::Loc::None => None,
        }
    }

    /// Bytes of the arena (values, adjoints, slots and constants).
    pub fn arena_bytes(&self) -> usize {
        self.arena.len() * 8
    }
}

impl Drop for Jit<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `entry` is not called after this; nothing else holds the code.
            unsafe { m.free_memory() };
        }
    }
}

impl LogDensity for Jit<'_> {
    fn dim(&self) -> usize {
        self.p.dim()
    }

    fn logp_grad(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<f64, EvalError> {
        let e = self.eval_grad(theta, grad)?;
        Ok(if self.with_jacobian { e.logp + e.jacobian } else { e.logp })
    }
}

/// Whether every value is finite, in one vectorised pass.
fn all_finite(v: &[f64]) -> bool {
    fn body(v: &[f64]) -> bool {
        v.iter().fold(true, |ok, x| ok & x.is_finite())
    }
    crate::math::vmath::widest!(body(v))
}
