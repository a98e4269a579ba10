//! Reverse-mode differentiation as a transformation of the IR: from a [`Program`] (the
//! primal sweep) it makes an [`Adjoint`], the adjoint sweep as a program of its own — the
//! blocks' instructions in reverse order, each operation replaced by its vector-Jacobian
//! product, each loop run backwards, each store and slot initialisation by the movement of
//! adjoints out of the slot. It reads the primal values of every execution, which the
//! backends keep (one copy per execution of the defining block, sized when the data is bound):
//! no tape is recorded while the density runs.
//!
//! Only what can change the gradient is kept: an operation whose result depends on parameters
//! and from which `target` is reachable (through operations, slots and stores), every
//! transform (its log-Jacobian has a gradient of its own), and the loops and branches that
//! contain such work. The interpreter executes this program; the compiled backend emits code
//! for the same statements (merging consecutive elementwise ones into one loop); `bnnc check
//! --emit ir-ad` prints it.

use crate::ir::prim::Ix;
use crate::ir::{BlockId, Inst, Prim, Program, Slot, ENTRY, V};

/// One statement of the adjoint sweep. `dv` below is the adjoint of value `v`, `ds` that of
/// slot `s`.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `dv += 1` (elementwise): the seed, from a `target += sum(v)`.
    Seed { value: V },
    /// The vector-Jacobian product of `dst = prim(args)`: `d args += vjp · d dst` for the
    /// arguments with an adjoint, then `d dst = 0`. A transform also adds its log-Jacobian's
    /// gradient, and both go into the parameter's part of the gradient; a load from a slot
    /// with an adjoint adds into that slot's adjoint.
    Vjp { dst: V, prim: Prim, args: Vec<V> },
    /// The loop `for var in lo..hi` run from `hi - 1` down to `lo`, in the executions of
    /// `body` (the primal block) recorded for each iteration.
    For { var: V, lo: V, hi: V, body: BlockId, stmts: Vec<Stmt> },
    /// The branch the primal sweep took (its condition does not depend on parameters).
    If { cond: V, then: BlockId, then_stmts: Vec<Stmt>, else_: BlockId, else_stmts: Vec<Stmt> },
    /// The reverse of `slot[ix] = value`: `dvalue += ds[ix]` (when `value` has an adjoint),
    /// then `ds[ix] = 0`.
    Unstore { slot: Slot, ix: Vec<Ix>, index: Vec<V>, value: Option<V> },
    /// The reverse of a slot's initialisation: `dvalue += ds` (summed when `value` is a scalar
    /// filling the slot), then `ds = 0`.
    Uninit { slot: Slot, value: Option<V> },
}

/// The adjoint sweep of a program, with the analysis it was made from.
#[derive(Clone, Debug)]
pub struct Adjoint {
    pub body: Vec<Stmt>,
    /// Values that depend on parameters, and slots that do.
    pub active: Vec<bool>,
    pub slot_active: Vec<bool>,
    /// Values with an adjoint in the sweep (their defining operation has a [`Stmt::Vjp`]).
    pub has_adj: Vec<bool>,
    /// Blocks the log density runs (the entry block and what it reaches).
    pub in_density: Vec<bool>,
    /// Loop bodies whose reverse runs right after each iteration's forward (see
    /// [`streamable`]): they keep one copy of their values, not one per iteration.
    pub streamed: Vec<bool>,
    /// The reverses of the streamed loops ([`Stmt::For`]s, in program order). They run
    /// before the rest of the sweep, each iteration in forward order, which is the order in
    /// which a backend running them interleaved with the forward sweep adds their
    /// contributions.
    pub early: Vec<Stmt>,
}

impl Adjoint {
    pub fn has_adj(&self, v: V) -> bool {
        self.has_adj[v.0 as usize]
    }

    pub fn slot_has_adj(&self, s: Slot) -> bool {
        self.slot_active[s.0 as usize]
    }
}

/// The adjoint sweep of `p`'s log density.
pub fn differentiate(p: &Program) -> Adjoint {
    let (active, slot_active) = activity(p);
    let mut in_density = vec![false; p.blocks.len()];
    mark(p, ENTRY, &mut in_density);
    let has_adj = usefulness(p, &active, &slot_active, &in_density);
    let mut streamed = vec![false; p.blocks.len()];
    let mut a =
        Adjoint { body: Vec::new(), active, slot_active, has_adj, in_density, streamed: Vec::new(), early: Vec::new() };
    for inst in p.block(ENTRY) {
        if let Inst::For { body, .. } = inst {
            streamed[body.0 as usize] = streamable(p, &a, *body);
        }
    }
    a.streamed = streamed;
    let body = reverse(p, &a, ENTRY);
    let (early, rest) =
        body.into_iter().partition(|st| matches!(st, Stmt::For { body, .. } if a.streamed[body.0 as usize]));
    a.early = early;
    a.early.reverse();
    a.body = rest;
    a
}

/// Whether the reverse of a top-level loop's body can run right after each iteration's
/// forward. It can when its adjoint work reads nothing that a later part of the forward sweep
/// changes and nothing that a later part of the reverse sweep adds: the body holds only
/// operations (no transform, no load of a slot with an adjoint), `target +=` and stores into
/// slots without adjoints, and no nested loop or branch. Its values are used only inside it,
/// so their adjoints come from the same iteration; what it adds to the adjoints of values
/// defined before the loop is only ever added to, never read, until the sweep reaches their
/// definitions. Such a loop's values then need one copy, not one per iteration, and stay in
/// cache between the two sweeps.
fn streamable(p: &Program, a: &Adjoint, body: BlockId) -> bool {
    let mut work = false;
    for inst in p.block(body) {
        match inst {
            Inst::Op { dst, prim, .. } => {
                match prim {
                    Prim::Constrain(_) | Prim::Rng(..) => return false,
                    Prim::Load(s, _) if a.slot_active[s.0 as usize] => return false,
                    _ => {}
                }
                work |= a.has_adj(*dst);
            }
            Inst::Target { .. } => {}
            Inst::Store { slot, .. } | Inst::Init { slot, .. } if !a.slot_active[slot.0 as usize] => {}
            _ => return false,
        }
    }
    work
}

fn reverse(p: &Program, a: &Adjoint, b: BlockId) -> Vec<Stmt> {
    let adj = |v: V| a.has_adj(v).then_some(v);
    let mut out = Vec::new();
    for inst in p.block(b).iter().rev() {
        match inst {
            Inst::Op { dst, prim, args } => {
                if a.has_adj(*dst) {
                    out.push(Stmt::Vjp { dst: *dst, prim: prim.clone(), args: args.clone() });
                }
            }
            Inst::For { var, lo, hi, body } => {
                let stmts = reverse(p, a, *body);
                if !stmts.is_empty() {
                    out.push(Stmt::For { var: *var, lo: *lo, hi: *hi, body: *body, stmts });
                }
            }
            Inst::If { cond, then, else_ } => {
                let (then_stmts, else_stmts) = (reverse(p, a, *then), reverse(p, a, *else_));
                if !then_stmts.is_empty() || !else_stmts.is_empty() {
                    out.push(Stmt::If { cond: *cond, then: *then, then_stmts, else_: *else_, else_stmts });
                }
            }
            Inst::Store { slot, ix, index, value } => {
                if a.slot_has_adj(*slot) {
                    out.push(Stmt::Unstore { slot: *slot, ix: ix.clone(), index: index.clone(), value: adj(*value) });
                }
            }
            Inst::Init { slot, value } => {
                if a.slot_has_adj(*slot) {
                    out.push(Stmt::Uninit { slot: *slot, value: value.and_then(adj) });
                }
            }
            Inst::Target { value, .. } => {
                if a.has_adj(*value) {
                    out.push(Stmt::Seed { value: *value });
                }
            }
        }
    }
    out
}

fn mark(p: &Program, b: BlockId, seen: &mut [bool]) {
    seen[b.0 as usize] = true;
    for inst in p.block(b) {
        match inst {
            Inst::For { body, .. } => mark(p, *body, seen),
            Inst::If { then, else_, .. } => {
                mark(p, *then, seen);
                mark(p, *else_, seen);
            }
            _ => {}
        }
    }
}

/// Active values whose adjoint can be non-zero: those from which the target is reachable
/// (through operations, slots and stores), and every transform (its log-Jacobian counts).
fn usefulness(p: &Program, active: &[bool], slot_active: &[bool], in_density: &[bool]) -> Vec<bool> {
    let mut useful = vec![false; p.values.len()];
    let mut slot_useful = vec![false; p.slots.len()];
    loop {
        let mut changed = false;
        let set = |v: V, useful: &mut Vec<bool>, changed: &mut bool| {
            if active[v.0 as usize] && !useful[v.0 as usize] {
                useful[v.0 as usize] = true;
                *changed = true;
            }
        };
        for (b, block) in p.blocks.iter().enumerate() {
            if !in_density[b] {
                continue;
            }
            for inst in block.iter().rev() {
                match inst {
                    Inst::Target { value, .. } => set(*value, &mut useful, &mut changed),
                    Inst::Op { dst, prim, args } => {
                        if matches!(prim, Prim::Constrain(_)) {
                            set(*dst, &mut useful, &mut changed);
                        }
                        if useful[dst.0 as usize] {
                            for a in args {
                                set(*a, &mut useful, &mut changed);
                            }
                            if let Prim::Load(s, _) = prim {
                                if slot_active[s.0 as usize] && !slot_useful[s.0 as usize] {
                                    slot_useful[s.0 as usize] = true;
                                    changed = true;
                                }
                            }
                        }
                    }
                    Inst::Store { slot, value, .. } | Inst::Init { slot, value: Some(value) }
                        if slot_useful[slot.0 as usize] =>
                    {
                        set(*value, &mut useful, &mut changed);
                    }
                    _ => {}
                }
            }
        }
        if !changed {
            return useful;
        }
    }
}

/// Which values and slots depend on parameters (so need adjoints), to a fixed point: slots
/// carry dependence around loops.
pub fn activity(p: &Program) -> (Vec<bool>, Vec<bool>) {
    dependence(p, |prim| matches!(prim, Prim::Constrain(_)), |prim| matches!(prim, Prim::Rng(..)), false)
}

/// The values and slots of `p` that depend on an operation `source` names: through the
/// arguments of every operation but those `cut` names, and through slots stored to and
/// loaded from (with `through_index`, also a store at positions that depend on a source).
pub fn dependence(
    p: &Program,
    source: impl Fn(&Prim) -> bool,
    cut: impl Fn(&Prim) -> bool,
    through_index: bool,
) -> (Vec<bool>, Vec<bool>) {
    let mut active = vec![false; p.values.len()];
    let mut slot_active = vec![false; p.slots.len()];
    loop {
        let mut changed = false;
        for block in &p.blocks {
            for inst in block {
                let stored = match inst {
                    Inst::Op { dst, prim, args } => {
                        let a = source(prim)
                            || args.iter().any(|x| active[x.0 as usize])
                            || matches!(prim, Prim::Load(s, _) if slot_active[s.0 as usize]);
                        if a && !active[dst.0 as usize] && !cut(prim) {
                            active[dst.0 as usize] = true;
                            changed = true;
                        }
                        None
                    }
                    Inst::Store { slot, value, index, .. } => Some((
                        slot,
                        active[value.0 as usize] || (through_index && index.iter().any(|i| active[i.0 as usize])),
                    )),
                    Inst::Init { slot, value: Some(value) } => Some((slot, active[value.0 as usize])),
                    _ => None,
                };
                if let Some((slot, true)) = stored {
                    if !slot_active[slot.0 as usize] {
                        slot_active[slot.0 as usize] = true;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return (active, slot_active);
        }
    }
}
