//! The reference interpreter: evaluates a [`Program`] forward, then executes its adjoint
//! sweep ([`crate::ir::adjoint`]: the blocks' instructions in reverse, each primitive's
//! vector-Jacobian product) to get the gradient. It is the oracle other backends are checked
//! against.
//!
//! Memory: every value keeps one primal per execution of its block (what the reverse sweep
//! reads) and one adjoint; slots keep their contents and adjoints. All buffers are sized by
//! the first evaluation and reused after it.

use crate::density::{EvalError, LogDensity};
use crate::ir::adjoint::{differentiate, Adjoint, Stmt};
use crate::ir::prim::{self, Prim, Scratch};
use crate::ir::{BlockId, Inst, Program, ENTRY, V};
use crate::math::{dist, transform};
use rand::SeedableRng;
use smallvec::SmallVec;

/// Per-instruction argument lists live on the stack (no allocation per evaluation).
type Args<T> = SmallVec<[T; 8]>;

pub struct Interp<'p> {
    p: &'p Program,
    vals: Vec<Vec<f64>>,
    adj: Vec<Vec<f64>>,
    slots: Vec<Vec<f64>>,
    slot_adj: Vec<Vec<f64>>,
    /// Executions of each block so far (forward), then remaining (reverse).
    counter: Vec<usize>,
    /// The current execution of each block.
    cur: Vec<usize>,
    /// The adjoint sweep this interpreter executes, with its analysis (which values and slots
    /// depend on parameters).
    ad: std::sync::Arc<Adjoint>,
    target: f64,
    jacobian: f64,
    likelihood: f64,
    sc: Scratch,
    tmp: Vec<Vec<f64>>,
    pos: Vec<usize>,
    theta: Vec<f64>,
    rng: rand::rngs::StdRng,
    /// Adjoints of a Constrain's lower and upper bounds, reused.
    bound_adj: (Vec<f64>, Vec<f64>),
    /// Whether `logp_grad` includes the transforms' log-Jacobian (sampling: yes; a posterior
    /// mode in the model's own parameterisation: no).
    with_jacobian: bool,
    /// The runtime input buffers' contents (zeros until set).
    inputs: Vec<Vec<f64>>,
    /// Which values and slots depend on a runtime input, when asked.
    input_flow: Option<(Vec<bool>, Vec<bool>)>,
    /// While [`Interp::first_not_finite`] runs: the first operation found so far whose
    /// result is not finite though its arguments are.
    trace: Option<Option<V>>,
}

/// What failed while the parameter-free part of a program ran ([`Interp::count_execs`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Failed {
    /// The operation defining this value.
    Op(V),
    /// A store of this value into a slot.
    Store(V),
    /// A loop bound, this value, read from a runtime input (a batch's rows): the loop's
    /// passes cannot be counted before the call.
    InputBound(V),
    /// A loop, this value its variable, whose passes would keep more bytes of values than
    /// the budget [`Interp::count_execs`] was given: about this many.
    TooLarge(V, f64),
}

/// The state of [`Interp::count_execs`]: what failed last, and the bytes counted against the
/// budget.
struct Count {
    at: Option<Failed>,
    bytes: f64,
    budget: f64,
    block_bytes: Vec<f64>,
}

/// The result of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    /// The model's log density (`target`), without the transforms' log-Jacobians.
    pub logp: f64,
    /// The log-Jacobian of the constraint transforms.
    pub jacobian: f64,
    /// The likelihood's part of `logp` ([`crate::ir::Part`]); the prior's is the rest.
    pub likelihood: f64,
}

type Res<T> = Result<T, EvalError>;

impl<'p> Interp<'p> {
    pub fn new(p: &'p Program) -> Interp<'p> {
        let n = p.values.len();
        Interp {
            p,
            vals: vec![Vec::new(); n],
            adj: p.values.iter().map(|v| vec![0.0; v.len()]).collect(),
            slots: p.slots.iter().map(|s| vec![f64::NAN; s.shape.iter().product()]).collect(),
            slot_adj: p.slots.iter().map(|s| vec![0.0; s.shape.iter().product()]).collect(),
            counter: vec![0; p.blocks.len()],
            cur: vec![0; p.blocks.len()],
            ad: std::sync::Arc::new(differentiate(p)),
            target: 0.0,
            jacobian: 0.0,
            likelihood: 0.0,
            sc: Scratch::default(),
            tmp: vec![Vec::new(); 8],
            pos: Vec::new(),
            theta: vec![0.0; p.dim()],
            rng: rand::rngs::StdRng::seed_from_u64(0),
            with_jacobian: true,
            bound_adj: (Vec::new(), Vec::new()),
            inputs: p.inputs.iter().map(|i| i.initial()).collect(),
            trace: None,
            input_flow: None,
        }
    }

    /// Set runtime input buffer `k` for the evaluations that follow. `Err` when `values` has
    /// the wrong length.
    pub fn set_input(&mut self, k: usize, values: &[f64]) -> Result<(), String> {
        let buf = self.inputs.get_mut(k).ok_or_else(|| format!("no input {k}"))?;
        if buf.len() != values.len() {
            return Err(format!("input `{}` has {} values, {} given", self.p.inputs[k].name, buf.len(), values.len()));
        }
        buf.copy_from_slice(values);
        Ok(())
    }

    /// Runtime input buffer `k` to write in place.
    pub fn input_mut(&mut self, k: usize) -> Option<&mut [f64]> {
        self.inputs.get_mut(k).map(|b| b.as_mut_slice())
    }

    /// Leave the log-Jacobian out of `logp_grad` and of the gradient (for optimisation).
    pub fn without_jacobian(mut self) -> Self {
        self.with_jacobian = false;
        self
    }

    /// Reseed the generator used by `_rng` in generated quantities.
    pub fn seed(&mut self, seed: u64) {
        self.rng = rand::rngs::StdRng::seed_from_u64(seed);
    }

    fn slice(&self, v: V) -> &[f64] {
        sl(self.p, &self.vals, &self.cur, v)
    }

    /// Evaluate the log density at `theta` (unconstrained).
    pub fn eval(&mut self, theta: &[f64]) -> Res<Eval> {
        if theta.len() != self.p.dim() {
            return Err(EvalError {
                recoverable: false,
                message: format!("expected {} values, got {}", self.p.dim(), theta.len()),
            });
        }
        self.theta.copy_from_slice(theta);
        self.counter.iter_mut().for_each(|c| *c = 0);
        self.target = 0.0;
        self.jacobian = 0.0;
        self.likelihood = 0.0;
        self.run_block(ENTRY)?;
        if !self.target.is_finite() || !self.jacobian.is_finite() {
            return Err(EvalError::recoverable(format!(
                "the log density is {} at this point",
                self.target + self.jacobian
            )));
        }
        Ok(Eval { logp: self.target, jacobian: self.jacobian, likelihood: self.likelihood })
    }

    /// The gradient of logp + jacobian (of logp alone after [`Interp::without_jacobian`])
    /// after [`Interp::eval`] at the same point.
    pub fn gradient(&mut self, grad: &mut [f64]) -> Res<()> {
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (a, has) in self.adj.iter_mut().zip(&self.ad.has_adj) {
            if *has {
                a.iter_mut().for_each(|x| *x = 0.0);
            }
        }
        self.slot_adj.iter_mut().for_each(|s| s.iter_mut().for_each(|x| *x = 0.0));
        let ad = std::sync::Arc::clone(&self.ad);
        // Streamed loops first, each iteration in forward order: the order in which a
        // backend that runs them interleaved with the forward sweep adds their contributions.
        for st in &ad.early {
            if let Stmt::For { lo, hi, body, stmts, .. } = st {
                let n = (self.slice(*hi)[0] as i64 - self.slice(*lo)[0] as i64).max(0) as usize;
                for i in 0..n {
                    self.cur[body.0 as usize] = i;
                    self.rev_stmts(stmts, grad)?;
                }
            }
        }
        self.enter_rev(ENTRY);
        self.rev_stmts(&ad.body, grad)?;
        if let Some(i) = grad.iter().position(|g| !g.is_finite()) {
            return Err(EvalError::recoverable(format!("the gradient is not finite (element {i})")));
        }
        Ok(())
    }

    /// The constrained parameters and generated quantities at `theta`, in order: each name
    /// with its shape and values.
    pub fn constrained(&mut self, theta: &[f64], generated: bool) -> Res<Vec<(String, Vec<usize>, Vec<f64>)>> {
        self.eval(theta)?;
        let mut out = Vec::new();
        for p in &self.p.params {
            out.push((p.name.clone(), p.shape.clone(), self.slice(p.value).to_vec()));
        }
        if let (true, Some(b)) = (generated, self.p.generated) {
            self.counter[b.0 as usize] = 0;
            self.run_block(b)?;
            for o in &self.p.outputs {
                out.push((
                    o.name.clone(),
                    self.p.values[o.value.0 as usize].shape.clone(),
                    self.slice(o.value).to_vec(),
                ));
            }
        }
        Ok(out)
    }

    /// Every execution's copy of value `v` after [`Interp::eval`], in execution order (one
    /// copy for a value of the entry block).
    pub fn all_execs(&self, v: V) -> &[f64] {
        let info = &self.p.values[v.0 as usize];
        let n = self.counter[info.block.0 as usize] * info.len();
        &self.vals[v.0 as usize][..n.min(self.vals[v.0 as usize].len())]
    }

    /// The bounds of parameter `i` when the earlier parameters are at `theta` (its own and
    /// later entries are not read): runs the density's top level up to that parameter.
    pub fn bounds_of(&mut self, theta: &[f64], i: usize) -> Res<(Vec<f64>, Vec<f64>)> {
        self.theta.copy_from_slice(theta);
        self.counter.iter_mut().for_each(|c| *c = 0);
        self.enter(ENTRY);
        let p = self.p;
        for inst in p.block(ENTRY) {
            if let Inst::Op { dst, prim, args } = inst {
                if let Prim::Constrain(k) = prim {
                    if *k as usize == i {
                        let argv: Args<&[f64]> = args.iter().map(|a| self.slice(*a)).collect();
                        let (lb, ub) = bounds(p.params[i].kind, &argv);
                        return Ok((lb.to_vec(), ub.to_vec()));
                    }
                }
                self.run_op(*dst, prim, args)?;
            }
        }
        Err(EvalError { recoverable: false, message: format!("no parameter {i}") })
    }

    /// How many times each block runs in one evaluation. Loop bounds and branch conditions do
    /// not depend on parameters, so running only the parameter-free part of the program (at no
    /// particular point) counts them. `Err` when that part fails (an index out of range).
    /// The error says which operation or store failed, when it was one.
    /// Which values and slots depend on a runtime input (a batch's rows, a mask), computed
    /// once.
    fn from_inputs(&mut self) -> &(Vec<bool>, Vec<bool>) {
        let p = self.p;
        self.input_flow.get_or_insert_with(|| {
            crate::ir::adjoint::dependence(p, |prim| matches!(prim, Prim::Input(_)), |_| false, true)
        })
    }

    /// `budget` bounds the bytes the values of all executions may take (a primal of eight bytes
    /// an element each, and at least eight bytes a pass): a loop past it stops the count at its
    /// first pass, before it runs, rather than running for minutes and exhausting memory.
    pub fn count_execs(&mut self, budget: f64) -> Result<Vec<usize>, (EvalError, Option<Failed>)> {
        self.counter.iter_mut().for_each(|c| *c = 0);
        let mut block_bytes = vec![8.0; self.p.blocks.len()];
        for v in &self.p.values {
            block_bytes[v.block.0 as usize] += 8.0 * v.len() as f64;
        }
        let mut count = Count { at: None, bytes: 0.0, budget, block_bytes };
        self.count_block(ENTRY, &mut count).map_err(|e| (e, count.at))?;
        Ok(self.counter.clone())
    }

    fn count_block(&mut self, b: BlockId, count: &mut Count) -> Res<()> {
        self.enter(b);
        count.bytes += count.block_bytes[b.0 as usize];
        let p = self.p;
        for inst in p.block(b) {
            match inst {
                Inst::Op { dst, prim, args } if !self.ad.active[dst.0 as usize] && !matches!(prim, Prim::Rng(..)) => {
                    count.at = Some(Failed::Op(*dst));
                    self.run_op(*dst, prim, args)?;
                }
                Inst::For { var, lo, hi, body } => {
                    if let Some(b) = [*lo, *hi].into_iter().find(|b| self.from_inputs().0[b.0 as usize]) {
                        count.at = Some(Failed::InputBound(b));
                        return Err(EvalError::recoverable("a loop's bounds are read from the rows of a batch"));
                    }
                    let (lo, hi) = (self.slice(*lo)[0] as i64, self.slice(*hi)[0] as i64);
                    let before = count.bytes;
                    for i in lo..hi {
                        let bi = body.0 as usize;
                        self.cur[bi] = self.counter[bi];
                        let at = self.ensure(*var);
                        self.vals[var.0 as usize][at] = i as f64;
                        self.count_block(*body, count)?;
                        if i == lo {
                            // The first pass's bytes, times the passes, before running them.
                            let bytes = before + (count.bytes - before) * (hi - lo) as f64;
                            if bytes > count.budget {
                                count.at = Some(Failed::TooLarge(*var, bytes));
                                return Err(EvalError {
                                    recoverable: false,
                                    message: format!(
                                        "a loop of {} passes would keep about {bytes:.3e} bytes of values",
                                        hi - lo
                                    ),
                                });
                            }
                        }
                    }
                }
                Inst::If { cond, then, else_ } if self.from_inputs().0[cond.0 as usize] => {
                    // A condition on the rows of a batch (set at each call, zeros now) may go
                    // either way: both branches get storage for every pass.
                    self.count_block(*then, count)?;
                    self.count_block(*else_, count)?;
                }
                Inst::If { cond, then, else_ } => {
                    let c = self.slice(*cond)[0] != 0.0;
                    self.count_block(if c { *then } else { *else_ }, count)?;
                }
                Inst::Store { slot, .. } | Inst::Init { slot, .. } if !self.ad.slot_active[slot.0 as usize] => {
                    // Parameter-free stores feed parameter-free loads.
                    count.at = match inst {
                        Inst::Store { value, .. } => Some(Failed::Store(*value)),
                        _ => None,
                    };
                    self.run_store(inst)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn enter(&mut self, b: BlockId) {
        let bi = b.0 as usize;
        let idx = self.counter[bi];
        self.counter[bi] += 1;
        self.cur[bi] = idx;
    }

    fn ensure(&mut self, v: V) -> usize {
        let info = &self.p.values[v.0 as usize];
        let len = info.len();
        let at = self.cur[info.block.0 as usize] * len;
        let buf = &mut self.vals[v.0 as usize];
        if buf.len() < at + len {
            buf.resize(at + len, 0.0);
        }
        at
    }

    fn run_block(&mut self, b: BlockId) -> Res<()> {
        self.enter(b);
        let p = self.p;
        for inst in p.block(b) {
            match inst {
                Inst::Op { dst, prim, args } => self.run_op(*dst, prim, args)?,
                Inst::For { var, lo, hi, body } => {
                    let (lo, hi) = (self.slice(*lo)[0] as i64, self.slice(*hi)[0] as i64);
                    for i in lo..hi {
                        // The index is set once the body's execution has begun.
                        let bi = body.0 as usize;
                        self.cur[bi] = self.counter[bi];
                        let at = self.ensure(*var);
                        self.vals[var.0 as usize][at] = i as f64;
                        self.run_block(*body)?;
                    }
                }
                Inst::If { cond, then, else_ } => {
                    let c = self.slice(*cond)[0] != 0.0;
                    self.run_block(if c { *then } else { *else_ })?;
                }
                Inst::Store { .. } | Inst::Init { .. } => self.run_store(inst)?,
                Inst::Target { value, part } => {
                    let s = prim::pair_sum(self.slice(*value));
                    self.target += s;
                    if *part == crate::ir::Part::Likelihood {
                        self.likelihood += s;
                    }
                }
            }
        }
        Ok(())
    }

    fn run_store(&mut self, inst: &Inst) -> Res<()> {
        let p = self.p;
        match inst {
            Inst::Store { slot, ix, index, value } => {
                let sshape = &p.slots[slot.0 as usize].shape;
                let idx: Args<&[f64]> = index.iter().map(|v| sl(p, &self.vals, &self.cur, *v)).collect();
                let mut pos = std::mem::take(&mut self.pos);
                prim::index_positions(ix, sshape, &idx, &mut pos).map_err(EvalError::recoverable)?;
                let val = sl(p, &self.vals, &self.cur, *value);
                prim::scatter(&pos, val, &mut self.slots[slot.0 as usize]);
                self.pos = pos;
            }
            Inst::Init { slot, value } => {
                let val: Option<&[f64]> = value.map(|v| sl(p, &self.vals, &self.cur, v));
                let s = &mut self.slots[slot.0 as usize];
                match val {
                    None => s.iter_mut().for_each(|x| *x = f64::NAN),
                    Some(v) if v.len() == 1 => s.iter_mut().for_each(|x| *x = v[0]),
                    Some(v) => s.copy_from_slice(v),
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn run_op(&mut self, dst: V, prim: &Prim, args: &[V]) -> Res<()> {
        let p = self.p;
        let at = self.ensure(dst);
        let len = p.values[dst.0 as usize].len();
        let mut out = std::mem::take(&mut self.vals[dst.0 as usize]);
        let r = {
            let argv: Args<&[f64]> = args.iter().map(|a| sl(p, &self.vals, &self.cur, *a)).collect();
            let shapes: Args<&[usize]> = args.iter().map(|a| p.values[a.0 as usize].shape.as_slice()).collect();
            let o = &mut out[at..at + len];
            let out_shape = &p.values[dst.0 as usize].shape;
            match prim {
                Prim::Constrain(i) => constrain_param(p, *i, &self.theta, &argv, o).map(|lj| self.jacobian += lj),
                Prim::Input(k) => {
                    o.copy_from_slice(&self.inputs[*k as usize]);
                    Ok(())
                }
                Prim::Rng(f, _) => {
                    let dargs: Vec<dist::Arg> =
                        argv.iter().zip(&shapes).map(|(v, s)| dist::Arg { values: v, dims: s }).collect();
                    dist::sample(*f, &dargs, o, &mut self.rng);
                    if o.iter().any(|v| v.is_nan()) {
                        // `sample` fills NaN when the arguments are outside their supports.
                        let shown: Vec<String> = argv
                            .iter()
                            .map(|v| match v {
                                [x] => format!("{x}"),
                                _ => format!(
                                    "[{}{}]",
                                    v.iter().take(4).map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
                                    if v.len() > 4 { ", ..." } else { "" }
                                ),
                            })
                            .collect();
                        return Err(EvalError::recoverable(format!(
                            "{}_rng({}) has arguments outside their supports",
                            f.name(),
                            shown.join(", ")
                        )));
                    }
                    Ok(())
                }
                Prim::Load(s, _) => {
                    let sshape = &p.slots[s.0 as usize].shape;
                    prim::eval(
                        prim,
                        &argv,
                        &shapes,
                        out_shape,
                        o,
                        &p.consts,
                        &mut self.sc,
                        Some((&self.slots[s.0 as usize], sshape)),
                    )
                }
                _ => prim::eval(prim, &argv, &shapes, out_shape, o, &p.consts, &mut self.sc, None),
            }
        };
        if let Some(None) = self.trace {
            let finite = |x: &f64| x.is_finite();
            // A constant that is not finite was folded so from the data.
            let started = !out[at..at + len].iter().all(finite)
                && !matches!(prim, Prim::Select | Prim::Input(_))
                && args.iter().all(|a| sl(p, &self.vals, &self.cur, *a).iter().all(finite));
            if started || r.is_err() {
                self.trace = Some(Some(dst));
            }
        }
        self.vals[dst.0 as usize] = out;
        r.map_err(EvalError::recoverable)
    }

    /// The first operation that, evaluated at `theta`, gives a value that is not finite from
    /// arguments that are (or fails): where a log density that is not finite there starts
    /// to be so. `None` when every operation's value is finite or came from one that is not.
    pub fn first_not_finite(&mut self, theta: &[f64]) -> Option<V> {
        self.trace = Some(None);
        let _ = self.eval(theta);
        self.trace.take().flatten()
    }

    /// The source span of [`Interp::first_not_finite`]'s operation, for a diagnostic there,
    /// with what to say there: a `var` read with elements never assigned (they start as NaN),
    /// or a value that stops being finite.
    pub fn first_not_finite_span(&mut self, theta: &[f64]) -> Option<(crate::source::Span, &'static str)> {
        let v = self.first_not_finite(theta)?;
        let block = self.p.values[v.0 as usize].block;
        let load =
            self.p.block(block).iter().any(|i| matches!(i, Inst::Op { dst, prim: Prim::Load(..), .. } if *dst == v));
        let label = if load {
            "a `var` read with elements not yet assigned (they start as NaN)"
        } else {
            crate::summary::NOT_FINITE_HERE
        };
        self.p.origins.get(&v).map(|s| (*s, label))
    }

    /// Begin the last not yet reversed execution of block `b`.
    fn enter_rev(&mut self, b: BlockId) {
        let bi = b.0 as usize;
        self.counter[bi] -= 1;
        self.cur[bi] = self.counter[bi];
    }

    fn rev_stmts(&mut self, stmts: &[Stmt], grad: &mut [f64]) -> Res<()> {
        let p = self.p;
        for st in stmts {
            match st {
                Stmt::Vjp { dst, prim, args } => self.rev_op(*dst, prim, args, grad)?,
                Stmt::For { lo, hi, body, stmts, .. } => {
                    let (lo, hi) = (self.slice(*lo)[0] as i64, self.slice(*hi)[0] as i64);
                    for _ in (lo..hi).rev() {
                        self.enter_rev(*body);
                        self.rev_stmts(stmts, grad)?;
                    }
                }
                Stmt::If { cond, then, then_stmts, else_, else_stmts } => {
                    if self.slice(*cond)[0] != 0.0 {
                        self.enter_rev(*then);
                        self.rev_stmts(then_stmts, grad)?;
                    } else {
                        self.enter_rev(*else_);
                        self.rev_stmts(else_stmts, grad)?;
                    }
                }
                Stmt::Unstore { slot, ix, index, value } => {
                    let sshape = &p.slots[slot.0 as usize].shape;
                    let idx: Args<&[f64]> = index.iter().map(|v| sl(p, &self.vals, &self.cur, *v)).collect();
                    let mut pos = std::mem::take(&mut self.pos);
                    prim::index_positions(ix, sshape, &idx, &mut pos).map_err(EvalError::recoverable)?;
                    let vadj = value.map(|v| &mut self.adj[v.0 as usize][..]);
                    prim::scatter_vjp(&pos, &mut self.slot_adj[slot.0 as usize], vadj);
                    self.pos = pos;
                }
                Stmt::Uninit { slot, value } => {
                    let mut s = std::mem::take(&mut self.slot_adj[slot.0 as usize]);
                    if let Some(v) = value {
                        let a = &mut self.adj[v.0 as usize];
                        if a.len() == 1 {
                            a[0] += s.iter().sum::<f64>();
                        } else {
                            a.iter_mut().zip(&s).for_each(|(x, y)| *x += y);
                        }
                    }
                    s.iter_mut().for_each(|x| *x = 0.0);
                    self.slot_adj[slot.0 as usize] = s;
                }
                Stmt::Seed { value } => self.adj[value.0 as usize].iter_mut().for_each(|a| *a += 1.0),
            }
        }
        Ok(())
    }

    fn rev_op(&mut self, dst: V, prim: &Prim, args: &[V], grad: &mut [f64]) -> Res<()> {
        let p = self.p;
        let adj_out = std::mem::take(&mut self.adj[dst.0 as usize]);
        // A transform's log-Jacobian has a gradient even when its result's adjoint is zero.
        if !matches!(prim, Prim::Constrain(_)) && adj_out.iter().all(|a| *a == 0.0) {
            self.adj[dst.0 as usize] = adj_out;
            return Ok(());
        }
        // Per-argument scratch adjoints (an argument may appear twice, as in `x * x`).
        let mut tmp = std::mem::take(&mut self.tmp);
        if tmp.len() < args.len() {
            tmp.resize(args.len(), Vec::new());
        }
        for (k, a) in args.iter().enumerate() {
            let l = p.values[a.0 as usize].len();
            tmp[k].clear();
            tmp[k].resize(l, 0.0);
        }
        let r = {
            let argv: Args<&[f64]> = args.iter().map(|a| sl(p, &self.vals, &self.cur, *a)).collect();
            let shapes: Args<&[usize]> = args.iter().map(|a| p.values[a.0 as usize].shape.as_slice()).collect();
            let out = sl(p, &self.vals, &self.cur, dst);
            let out_shape = &p.values[dst.0 as usize].shape;
            let (head, _) = tmp.split_at_mut(args.len());
            let mut adj_args: Args<Option<&mut [f64]>> = head
                .iter_mut()
                .zip(args)
                .map(|(t, a)| if self.ad.has_adj(*a) { Some(t.as_mut_slice()) } else { None })
                .collect();
            match prim {
                Prim::Constrain(i) => {
                    let w = if self.with_jacobian { 1.0 } else { 0.0 };
                    constrain_param_vjp(
                        p,
                        *i,
                        &self.theta,
                        &argv,
                        &adj_out,
                        w,
                        grad,
                        &mut self.bound_adj,
                        &mut adj_args,
                    );
                    Ok(())
                }
                Prim::Load(s, _) => {
                    let sshape = &p.slots[s.0 as usize].shape;
                    let sadj = if self.ad.slot_has_adj(*s) {
                        Some((self.slot_adj[s.0 as usize].as_mut_slice(), sshape.as_slice()))
                    } else {
                        None
                    };
                    prim::vjp(prim, &argv, &shapes, out, out_shape, &adj_out, &mut adj_args, &mut self.sc, sadj)
                }
                _ => prim::vjp(prim, &argv, &shapes, out, out_shape, &adj_out, &mut adj_args, &mut self.sc, None),
            }
        };
        for (k, a) in args.iter().enumerate() {
            if self.ad.has_adj(*a) {
                let dstv = &mut self.adj[a.0 as usize];
                dstv.iter_mut().zip(&tmp[k]).for_each(|(x, y)| *x += y);
            }
        }
        self.tmp = tmp;
        let mut adj_out = adj_out;
        adj_out.iter_mut().for_each(|a| *a = 0.0);
        self.adj[dst.0 as usize] = adj_out;
        r.map_err(EvalError::recoverable)
    }
}

/// The current execution's primal of `v` (borrowing only the value buffers).
fn sl<'a>(p: &Program, vals: &'a [Vec<f64>], cur: &[usize], v: V) -> &'a [f64] {
    let info = &p.values[v.0 as usize];
    let len = info.len();
    let at = cur[info.block.0 as usize] * len;
    &vals[v.0 as usize][at..at + len]
}

/// Parameter `i` mapped from the unconstrained `theta` to its support in `out`, its bounds
/// (if its kind has any) in `args`: the log-Jacobian, or why the result is not finite. Shared
/// by the interpreter and the compiled code's transform kernel.
pub(crate) fn constrain_param(
    p: &Program,
    i: u32,
    theta: &[f64],
    args: &[&[f64]],
    out: &mut [f64],
) -> Result<f64, String> {
    let pl = &p.params[i as usize];
    let y = &theta[pl.offset..pl.offset + pl.free_len];
    let (lb, ub) = bounds(pl.kind, args);
    let lj = transform::constrain_stack(pl.kind, pl.kind.unit(&pl.shape), y, lb, ub, out);
    if !lj.is_finite() || out.iter().any(|x| !x.is_finite()) {
        Err(format!("parameter `{}` is not finite after its transform", pl.name))
    } else {
        Ok(lj)
    }
}

/// The reverse of [`constrain_param`]: adds into `grad` (the whole gradient) the adjoint
/// `adj_out` pulled back through the transform plus `jac_weight` times the log-Jacobian's
/// gradient, and into `adj_args` the bounds' adjoints. `scratch` holds the bounds' adjoints.
#[allow(clippy::too_many_arguments)]
pub(crate) fn constrain_param_vjp(
    p: &Program,
    i: u32,
    theta: &[f64],
    args: &[&[f64]],
    adj_out: &[f64],
    jac_weight: f64,
    grad: &mut [f64],
    scratch: &mut (Vec<f64>, Vec<f64>),
    adj_args: &mut [Option<&mut [f64]>],
) {
    let pl = &p.params[i as usize];
    let y = &theta[pl.offset..pl.offset + pl.free_len];
    let (lb, ub) = bounds(pl.kind, args);
    let (glb, gub) = scratch;
    glb.clear();
    glb.resize(lb.len(), 0.0);
    gub.clear();
    gub.resize(ub.len(), 0.0);
    transform::constrain_vjp_stack(
        pl.kind,
        pl.kind.unit(&pl.shape),
        y,
        lb,
        ub,
        adj_out,
        jac_weight,
        &mut grad[pl.offset..pl.offset + pl.free_len],
        glb,
        gub,
    );
    // The bounds are the Constrain's arguments, lower first.
    let mut k = 0;
    for g in [&*glb, &*gub] {
        if g.is_empty() {
            continue;
        }
        if let Some(a) = adj_args.get_mut(k).and_then(|x| x.as_deref_mut()) {
            a.iter_mut().zip(g.iter()).for_each(|(x, y)| *x += y);
        }
        k += 1;
    }
}

/// A Constrain's bounds from its arguments (lower first, as its kind has them).
fn bounds<'a>(kind: transform::Kind, args: &[&'a [f64]]) -> (&'a [f64], &'a [f64]) {
    use transform::Kind;
    match kind {
        Kind::Lower => (args[0], &[]),
        Kind::Upper => (&[], args[0]),
        Kind::LowerUpper => (args[0], args[1]),
        _ => (&[], &[]),
    }
}

impl LogDensity for Interp<'_> {
    fn dim(&self) -> usize {
        self.p.dim()
    }

    fn logp_grad(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<f64, EvalError> {
        let e = self.eval(theta)?;
        self.gradient(grad)?;
        Ok(if self.with_jacobian { e.logp + e.jacobian } else { e.logp })
    }
}
