//! Where every value, adjoint and slot lives in the JIT's arena: one `Vec<f64>` per density,
//! sized when the program is made (every size and block execution count is known then).

use crate::ir::adjoint::{differentiate, Adjoint};
use crate::ir::prim::Bin;
use crate::ir::{BlockId, Inst, Prim, Program, V};
use crate::math::dist::Family;

/// Where a value's primal lives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loc {
    /// One copy for every execution (constants and literals): `arena[off..off + len]`.
    Fixed(usize),
    /// One copy per execution of the defining block: `arena[off + cur * len ..]` (one copy in
    /// all for a streamed loop body).
    PerExec(usize),
    /// Not part of the log density (generated quantities).
    None,
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub val: Vec<Loc>,
    /// Adjoint offsets of values whose adjoint can be non-zero.
    pub adj: Vec<Option<usize>>,
    pub slot: Vec<usize>,
    pub slot_adj: Vec<Option<usize>>,
    /// The adjoint region `[adj_start, size)`: zero between gradient calls.
    pub adj_start: usize,
    pub size: usize,
    /// Values that depend on parameters.
    pub active: Vec<bool>,
    /// Blocks the log density runs (the entry block and what it reaches).
    pub in_density: Vec<bool>,
    /// What to write into the arena once: (offset, values).
    pub init: Vec<(usize, Vec<f64>)>,
    /// Where each runtime input buffer lives (`None` when the density does not read it).
    pub inputs: Vec<Option<usize>>,
    /// Per value: where an operation that keeps its elements' partials from the forward sweep
    /// for the reverse one keeps them, per execution of its block: (offset, element count).
    /// `bernoulli_logit` keeps one array (its partials reuse the forward's `exp`), a
    /// two-argument `log_sum_exp` over arrays ([`log_add_exp_arrays`]) two, the partials in
    /// each argument one after the other.
    pub scratch: Vec<Option<(usize, usize)>>,
    /// Per block: a streamed loop body ([`Adjoint::streamed`]), whose reverse the forward
    /// sweep runs after each iteration, on the one copy of its values.
    pub streamed: Vec<bool>,
}

impl Layout {
    pub fn new(p: &Program) -> Layout {
        Layout::with_adjoint(p, &differentiate(p))
    }

    /// The layout for the adjoint sweep `ad` of `p` (adjoints for the values it uses).
    pub fn with_adjoint(p: &Program, ad: &Adjoint) -> Layout {
        let (active, slot_active, in_density) = (ad.active.clone(), &ad.slot_active, ad.in_density.clone());
        let useful = &ad.has_adj;

        // A streamed loop body keeps one copy of its values: its reverse has run before the
        // next iteration's forward.
        let copies = |b: usize| if ad.streamed[b] { 1 } else { p.execs[b] };
        let n = p.values.len();
        let mut size = 0;
        let mut val = vec![Loc::None; n];
        let mut init = Vec::new();
        let mut const_at = vec![None; p.consts.len()];
        let mut inputs: Vec<Option<usize>> = vec![None; p.inputs.len()];
        for (b, block) in p.blocks.iter().enumerate() {
            if !in_density[b] {
                continue;
            }
            for inst in block {
                let (dst, fixed) = match inst {
                    Inst::Op { dst, prim: Prim::Const(c), .. } => {
                        let at = *const_at[*c as usize].get_or_insert_with(|| {
                            let at = size;
                            size += p.consts[*c as usize].len();
                            init.push((at, p.consts[*c as usize].clone()));
                            at
                        });
                        (*dst, Some(at))
                    }
                    Inst::Op { dst, prim: Prim::Lit(x), .. } => {
                        let at = size;
                        size += 1;
                        init.push((at, vec![*x]));
                        (*dst, Some(at))
                    }
                    Inst::Op { dst, prim: Prim::Input(k), .. } => {
                        let at = *inputs[*k as usize].get_or_insert_with(|| {
                            let at = size;
                            size += p.inputs[*k as usize].len();
                            init.push((at, p.inputs[*k as usize].initial()));
                            at
                        });
                        (*dst, Some(at))
                    }
                    Inst::Op { dst, .. } => (*dst, None),
                    Inst::For { var, .. } => (*var, None),
                    _ => continue,
                };
                val[dst.0 as usize] = match fixed {
                    Some(at) => Loc::Fixed(at),
                    None => {
                        let info = p.info(dst);
                        let at = size;
                        size += copies(info.block.0 as usize) * info.len();
                        Loc::PerExec(at)
                    }
                };
            }
        }
        let mut slot = Vec::new();
        for s in &p.slots {
            slot.push(size);
            size += s.shape.iter().product::<usize>();
        }
        let mut scratch = vec![None; n];
        for (b, block) in p.blocks.iter().enumerate() {
            if !in_density[b] {
                continue;
            }
            for inst in block {
                if let Inst::Op { dst, prim: Prim::LogDensity(Family::BernoulliLogit), args } = inst {
                    if args.len() == 2 && useful[args[1].0 as usize] {
                        let len = args.iter().map(|a| p.info(*a).len()).max().unwrap_or(0);
                        scratch[dst.0 as usize] = Some((size, len));
                        size += copies(b) * len;
                    }
                }
                if let Inst::Op { dst, prim: Prim::Binary(Bin::LogSumExp), args } = inst {
                    if log_add_exp_arrays(p, *dst, args) && useful[dst.0 as usize] {
                        // Both partials: n elements each.
                        let len = p.info(*dst).len();
                        scratch[dst.0 as usize] = Some((size, len));
                        size += copies(b) * 2 * len;
                    }
                }
            }
        }
        let adj_start = size;
        let mut adj = vec![None; n];
        for (v, u) in useful.iter().enumerate() {
            if *u {
                adj[v] = Some(size);
                size += p.values[v].len();
            }
        }
        let mut slot_adj = vec![None; p.slots.len()];
        for (s, a) in slot_active.iter().enumerate() {
            if *a {
                slot_adj[s] = Some(size);
                size += p.slots[s].shape.iter().product::<usize>();
            }
        }
        Layout {
            val,
            adj,
            slot,
            slot_adj,
            adj_start,
            size,
            active,
            in_density,
            init,
            inputs,
            scratch,
            streamed: ad.streamed.clone(),
        }
    }

    /// Whether the reverse sweep handles `v`'s defining operation.
    pub fn has_adj(&self, v: V) -> bool {
        self.adj[v.0 as usize].is_some()
    }

    /// Whether the reverse sweep of block `b` (and the blocks inside it) has adjoint work.
    pub fn has_reverse_work(&self, p: &Program, b: BlockId) -> bool {
        p.block(b).iter().any(|inst| match inst {
            Inst::Op { dst, .. } => self.has_adj(*dst),
            Inst::For { body, .. } => self.has_reverse_work(p, *body),
            Inst::If { then, else_, .. } => self.has_reverse_work(p, *then) || self.has_reverse_work(p, *else_),
            Inst::Store { slot, .. } | Inst::Init { slot, .. } => self.slot_adj[slot.0 as usize].is_some(),
            Inst::Target { value, .. } => self.has_adj(*value),
        })
    }
}

/// Whether `dst = log_sum_exp(args[0], args[1])` runs as one array function
/// (`math::vmath::log_add_exp_raw`) that also keeps its partials: two or more elements, each
/// argument a scalar or of the result's shape.
pub fn log_add_exp_arrays(p: &Program, dst: V, args: &[V]) -> bool {
    let out = p.info(dst);
    out.len() >= 2 && args.iter().all(|a| p.info(*a).len() == 1 || p.info(*a).shape == out.shape)
}
