//! Loops to array operations.
//!
//! A loop over data written one element at a time, as Stan models often are,
//!
//! ```text
//! for n in 0..N { target += log_mix(theta, normal_lpdf(y[n], mu[0], sigma[0]), ...) }
//! ```
//!
//! runs its body N times, one scalar operation after another, and keeps every intermediate
//! of every iteration for the reverse sweep. When no iteration reads what another wrote, the
//! loop computes the same thing as array operations over all iterations at once, which the
//! backends run as fused loops and four-lane kernels. This pass makes that change on the IR,
//! so that both backends run the same program.
//!
//! Within the body of `for i in lo..hi` (bounds known when the data are bound), each value is
//! one of:
//! - **invariant**: the same in every iteration; it is computed once;
//! - **affine**: `i + c` plus or minus invariant ints, used only to index;
//! - **varying**: a scalar per iteration, which becomes a vector of `hi − lo` elements.
//!
//! Indexing a vector at an affine position becomes a slice (`y[i − k − 1]` → a run of y
//! starting at `lo − k − 1`; a constant slice of data is folded into a new constant),
//! indexing at a varying int becomes a gather, elementwise operations take vectors, and
//! `target += v` sums v. A `var` set at the top of each iteration before anything reads it is
//! private to the iteration and becomes a vector (arK's running sum); nested loops stay loops,
//! over vectors. A log density whose only use is `target +=` is summed over the vectors by
//! the density itself; otherwise `normal_lpdf` is expanded into elementwise operations, and
//! `log_mix(θ, a, b)` into `log_sum_exp(ln θ + a, ln(1 − θ) + b)`, one array function.
//!
//! Before that, loops inside loops with at most eight iterations, bounds known and a
//! straight-line body are unrolled (arK's loop over its lags), and within a vectorised body a
//! load of a private `var` takes the value stored last, so that a running sum becomes one
//! expression: `alpha + beta[0] * y[t − 1] + … + beta[4] * y[t − 5]` over all t is then a
//! sum of scalars times data slices, which the affine-mean rewrite (rewrite.rs) turns into a
//! product with a matrix of lagged data, and the Gaussian sufficient statistics into a
//! density whose cost does not grow with the series.
//!
//! Anything else — a store at an index (a carried dependence, as in arma or garch), a branch,
//! an operation without an elementwise form, a value with more than one element per
//! iteration — leaves the loop as it is.
//!
//! Differences from the loop: sums run in another order (last bits).

use std::collections::{HashMap, HashSet};

use crate::ir::prim::{Bin, Ix, Un};
use crate::ir::{BlockId, Inst, Prim, Program, Slot, ValueInfo, ENTRY, V};
use crate::math::dist::Family;

/// ½ ln 2π.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

#[derive(Clone, Debug, PartialEq)]
enum Class {
    Inv,
    /// `i + c + Σ ±v`, v invariant ints.
    Aff {
        c: i64,
        terms: Vec<(V, bool)>,
    },
    Var,
    /// A log density summed over varying arguments, read only by `target +=`.
    Summed,
}

/// Rewrite every loop of the density that can run as array operations; returns how many.
pub fn vectorise_loops(p: &mut Program) -> usize {
    let mut lits = HashMap::new();
    let mut consts = HashMap::new();
    for block in &p.blocks {
        for inst in block {
            match inst {
                Inst::Op { dst, prim: Prim::Lit(x), .. } => {
                    lits.insert(*dst, *x);
                }
                Inst::Op { dst, prim: Prim::Const(c), .. } => {
                    consts.insert(*dst, *c);
                }
                _ => {}
            }
        }
    }
    // The unrolled copies' literals join the map.
    let unrolled = unroll(p, ENTRY, false, &mut lits);
    let mut g = Globals { lits, consts, uses: p.uses(), slot_refs: slot_refs_all(p) };
    unrolled + walk(p, ENTRY, &mut g)
}

/// Most iterations of a loop unrolled.
const UNROLL: f64 = 8.0;

/// Unroll loops inside loops of at most [`UNROLL`] iterations, bounds known and a body
/// without loops or branches (arK's loop over its K lags), each copy with its own values and the loop variable
/// a literal: the copies then index at constant positions, and their running sums become
/// sums of terms that the affine-mean rewrite turns into a matrix product.
fn unroll(p: &mut Program, b: BlockId, nested: bool, lits: &mut HashMap<V, f64>) -> usize {
    let mut count = 0;
    let mut k = 0;
    while k < p.blocks[b.0 as usize].len() {
        match p.blocks[b.0 as usize][k].clone() {
            Inst::For { var, lo, hi, body } => {
                count += unroll(p, body, true, lits);
                if let Some(insts) = nested.then(|| unrolled(p, b, var, lo, hi, body, lits)).flatten() {
                    let len = insts.len();
                    p.blocks[b.0 as usize].splice(k..k + 1, insts);
                    p.blocks[body.0 as usize].clear();
                    p.execs[body.0 as usize] = 0;
                    count += 1;
                    k += len;
                    continue;
                }
            }
            Inst::If { then, else_, .. } => {
                count += unroll(p, then, nested, lits);
                count += unroll(p, else_, nested, lits);
            }
            _ => {}
        }
        k += 1;
    }
    count
}

fn unrolled(
    p: &mut Program,
    b: BlockId,
    var: V,
    lo: V,
    hi: V,
    body: BlockId,
    lits: &mut HashMap<V, f64>,
) -> Option<Vec<Inst>> {
    let (l, h) = (*lits.get(&lo)?, *lits.get(&hi)?);
    if l.fract() != 0.0 || h.fract() != 0.0 || h <= l || h - l > UNROLL {
        return None;
    }
    if p.block(body).iter().any(|i| matches!(i, Inst::For { .. } | Inst::If { .. })) {
        return None;
    }
    let mut out = Vec::new();
    for i in l as i64..h as i64 {
        let mut map: HashMap<V, V> = HashMap::new();
        let fresh = |p: &mut Program, old: V, map: &mut HashMap<V, V>| {
            let mut info = p.info(old).clone();
            info.block = b;
            let v = V(p.values.len() as u32);
            p.values.push(info);
            map.insert(old, v);
            v
        };
        let iv = fresh(p, var, &mut map);
        lits.insert(iv, i as f64);
        out.push(Inst::Op { dst: iv, prim: Prim::Lit(i as f64), args: vec![] });
        for inst in p.block(body).to_vec() {
            let m = |v: &V| *map.get(v).unwrap_or(v);
            match inst {
                Inst::Op { dst, prim, args } => {
                    let args = args.iter().map(m).collect();
                    let v = fresh(p, dst, &mut map);
                    if let Prim::Lit(x) = prim {
                        lits.insert(v, x);
                    }
                    if let Some(span) = p.origins.get(&dst).copied() {
                        p.origins.insert(v, span);
                    }
                    out.push(Inst::Op { dst: v, prim, args });
                }
                Inst::Store { slot, ix, index, value } => {
                    let (index, nv) = (index.iter().map(m).collect(), m(&value));
                    if let Some(span) = p.store_origins.get(&value).copied() {
                        p.store_origins.entry(nv).or_insert(span);
                    }
                    out.push(Inst::Store { slot, ix, index, value: nv });
                }
                Inst::Init { slot, value } => out.push(Inst::Init { slot, value: value.as_ref().map(m) }),
                Inst::Target { value, part } => out.push(Inst::Target { value: m(&value), part }),
                Inst::For { .. } | Inst::If { .. } => return None,
            }
        }
    }
    Some(out)
}

struct Globals {
    lits: HashMap<V, f64>,
    consts: HashMap<V, u32>,
    uses: Vec<usize>,
    /// References (loads, stores, inits) of each slot in the whole program.
    slot_refs: Vec<usize>,
}

fn walk(p: &mut Program, b: BlockId, g: &mut Globals) -> usize {
    let mut count = 0;
    let mut k = 0;
    while k < p.blocks[b.0 as usize].len() {
        match p.blocks[b.0 as usize][k].clone() {
            Inst::For { var, lo, hi, body } => {
                if let Some(insts) = try_loop(p, g, b, var, lo, hi, body) {
                    let len = insts.len();
                    p.blocks[b.0 as usize].splice(k..k + 1, insts);
                    count += 1;
                    k += len;
                    continue;
                }
                count += walk(p, body, g);
            }
            Inst::If { then, else_, .. } => {
                count += walk(p, then, g);
                count += walk(p, else_, g);
            }
            _ => {}
        }
        k += 1;
    }
    count
}

fn slot_of(inst: &Inst) -> Option<Slot> {
    match inst {
        Inst::Op { prim: Prim::Load(s, _), .. } | Inst::Store { slot: s, .. } | Inst::Init { slot: s, .. } => Some(*s),
        _ => None,
    }
}

fn slot_refs_all(p: &Program) -> Vec<usize> {
    let mut r = vec![0; p.slots.len()];
    for block in &p.blocks {
        for inst in block {
            if let Some(s) = slot_of(inst) {
                r[s.0 as usize] += 1;
            }
        }
    }
    r
}

/// Slot references of an instruction, the blocks inside it included.
fn slot_refs_inst(p: &Program, inst: &Inst, r: &mut HashMap<Slot, usize>) {
    if let Some(s) = slot_of(inst) {
        *r.entry(s).or_default() += 1;
    }
    match inst {
        Inst::For { body, .. } => slot_refs_in(p, *body, r),
        Inst::If { then, else_, .. } => {
            slot_refs_in(p, *then, r);
            slot_refs_in(p, *else_, r);
        }
        _ => {}
    }
}

/// Slot references in a block and the blocks inside it.
fn slot_refs_in(p: &Program, b: BlockId, r: &mut HashMap<Slot, usize>) {
    for inst in p.block(b) {
        slot_refs_inst(p, inst, r);
    }
}

/// Slots that each iteration sets (at the top level of the body, before anything else reads
/// or writes them) and that nothing outside the loop uses: scalar ones only.
fn private_slots(p: &Program, body: BlockId, g: &Globals) -> HashSet<Slot> {
    let mut inside = HashMap::new();
    slot_refs_in(p, body, &mut inside);
    let mut seen = HashSet::new();
    let mut private = HashSet::new();
    for inst in p.block(body) {
        if let Inst::Init { slot, .. } = inst {
            let s = *slot;
            if !seen.contains(&s)
                && p.slots[s.0 as usize].shape.is_empty()
                && inside.get(&s).copied() == Some(g.slot_refs[s.0 as usize])
            {
                private.insert(s);
            }
        }
        let mut r = HashMap::new();
        slot_refs_inst(p, inst, &mut r);
        seen.extend(r.into_keys());
    }
    private
}

struct Cx<'g> {
    g: &'g mut Globals,
    n: usize,
    lo: i64,
    class: HashMap<V, Class>,
    private: HashSet<Slot>,
    /// Existing values that become n-vectors, and those that move to the enclosing block.
    widen: Vec<V>,
    moved: Vec<(V, BlockId)>,
    /// New contents of blocks inside the loop.
    nested: Vec<(BlockId, Vec<Inst>)>,
    /// Values and constants made by the rewrite (dropped if it gives up).
    new_values: Vec<ValueInfo>,
    new_consts: Vec<Vec<f64>>,
    base_values: usize,
    base_consts: usize,
    /// Nesting inside the loop's body (0: its top level).
    depth: usize,
    /// Loads of private slots replaced by the value last stored (at the top level).
    subst: HashMap<V, V>,
    current: HashMap<Slot, V>,
    /// Loads of each private slot left.
    loads: HashMap<Slot, usize>,
}

fn try_loop(
    p: &mut Program,
    g: &mut Globals,
    outer: BlockId,
    var: V,
    lo: V,
    hi: V,
    body: BlockId,
) -> Option<Vec<Inst>> {
    let (lo_x, hi_x) = (*g.lits.get(&lo)?, *g.lits.get(&hi)?);
    if lo_x.fract() != 0.0 || hi_x.fract() != 0.0 || hi_x - lo_x < 2.0 || hi_x - lo_x > 1e9 {
        return None;
    }
    let private = private_slots(p, body, g);
    let mut cx = Cx {
        g,
        n: (hi_x - lo_x) as usize,
        lo: lo_x as i64,
        class: HashMap::new(),
        private,
        widen: Vec::new(),
        moved: Vec::new(),
        nested: Vec::new(),
        new_values: Vec::new(),
        new_consts: Vec::new(),
        base_values: p.values.len(),
        base_consts: p.consts.len(),
        depth: 0,
        subst: HashMap::new(),
        current: HashMap::new(),
        loads: HashMap::new(),
    };
    cx.class.insert(var, Class::Aff { c: 0, terms: Vec::new() });
    let saved = (cx.g.lits.clone(), cx.g.consts.clone());
    let Some(mut insts) = cx.block(p, body, outer) else {
        // The numbers of the values and constants it made will be given out again.
        (cx.g.lits, cx.g.consts) = saved;
        return None;
    };
    // A private slot that nothing loads any more needs no stores.
    let unread = |i: &Inst| match i {
        Inst::Store { slot, .. } | Inst::Init { slot, .. } => {
            cx.private.contains(slot) && cx.loads.get(slot).copied().unwrap_or(0) == 0
        }
        _ => false,
    };
    insts.retain(|i| !unread(i));
    for (_, nested) in cx.nested.iter_mut() {
        nested.retain(|i| !unread(i));
    }
    // Commit.
    let n = cx.n;
    for v in cx.widen {
        p.values[v.0 as usize].shape = vec![n];
    }
    for (v, b) in cx.moved {
        p.values[v.0 as usize].block = b;
    }
    for (b, new) in cx.nested {
        p.blocks[b.0 as usize] = new;
    }
    for s in cx.private {
        p.slots[s.0 as usize].shape = vec![n];
    }
    p.values.extend(cx.new_values);
    p.consts.extend(cx.new_consts);
    cx.g.uses.resize(p.values.len(), 0);
    p.blocks[body.0 as usize].clear();
    p.execs[body.0 as usize] = 0;
    Some(insts)
}

impl Cx<'_> {
    fn class(&self, v: V) -> Class {
        self.class.get(&v).cloned().unwrap_or(Class::Inv)
    }

    fn is(&self, v: V, c: &Class) -> bool {
        std::mem::discriminant(&self.class(v)) == std::mem::discriminant(c)
    }

    fn new_value(&mut self, place: BlockId, var: bool, int: bool) -> V {
        let v = V((self.base_values + self.new_values.len()) as u32);
        let shape = if var { vec![self.n] } else { vec![] };
        self.new_values.push(ValueInfo { shape, int, block: place, name: None });
        self.class.insert(v, if var { Class::Var } else { Class::Inv });
        v
    }

    fn lit(&mut self, place: BlockId, x: f64, out: &mut Vec<Inst>) -> V {
        let v = self.new_value(place, false, x.fract() == 0.0 && x.abs() < 9e15);
        self.g.lits.insert(v, x);
        out.push(Inst::Op { dst: v, prim: Prim::Lit(x), args: vec![] });
        v
    }

    /// `dst = prim(args)` into a new value (varying when any argument varies).
    fn op(&mut self, place: BlockId, prim: Prim, args: Vec<V>, out: &mut Vec<Inst>) -> V {
        let var = args.iter().any(|a| self.is(*a, &Class::Var));
        let v = self.new_value(place, var, false);
        out.push(Inst::Op { dst: v, prim, args });
        v
    }

    /// One element per iteration: a varying value (its final shape may already be the
    /// vector's), or an invariant scalar.
    fn scalar(&self, p: &Program, v: V) -> bool {
        let info = self.info(p, v);
        self.class(v) == Class::Var || info.len() == 1 && info.shape.len() <= 1
    }

    fn info<'a>(&'a self, p: &'a Program, v: V) -> &'a ValueInfo {
        let i = v.0 as usize;
        if i >= self.base_values {
            &self.new_values[i - self.base_values]
        } else {
            &p.values[i]
        }
    }

    /// The instructions of block `b` rewritten, to be placed in block `place`.
    fn block(&mut self, p: &Program, b: BlockId, place: BlockId) -> Option<Vec<Inst>> {
        let mut out = Vec::new();
        for inst in p.block(b) {
            self.inst(p, b, place, inst, &mut out)?;
        }
        // Invariant operations and leaves first (they read only invariant values, and no slot
        // that the loop writes), so that the elementwise operations stand together and fuse.
        let first = |i: &Inst| match i {
            Inst::Op { dst, prim, .. } => {
                matches!(prim, Prim::Lit(_) | Prim::Const(_)) || self.class(*dst) == Class::Inv
            }
            _ => false,
        };
        let (mut head, tail): (Vec<Inst>, Vec<Inst>) = out.into_iter().partition(first);
        head.extend(tail);
        Some(head)
    }

    fn define(&mut self, b: BlockId, place: BlockId, dst: V, class: Class) {
        if class == Class::Var {
            self.widen.push(dst);
        }
        if b != place {
            self.moved.push((dst, place));
        }
        self.class.insert(dst, class);
    }

    /// A whole vector for a private slot: a varying value as it is, an invariant scalar filled.
    fn whole(&mut self, p: &Program, place: BlockId, v: V, out: &mut Vec<Inst>) -> V {
        if self.class(v) == Class::Var {
            return v;
        }
        let w = self.new_value(place, true, self.info(p, v).int);
        out.push(Inst::Op { dst: w, prim: Prim::Fill(vec![self.n]), args: vec![v] });
        w
    }

    fn inst(&mut self, p: &Program, b: BlockId, place: BlockId, inst: &Inst, out: &mut Vec<Inst>) -> Option<()> {
        let m = |v: &V| *self.subst.get(v).unwrap_or(v);
        let inst = &match inst {
            Inst::Op { dst, prim, args } => {
                Inst::Op { dst: *dst, prim: prim.clone(), args: args.iter().map(m).collect() }
            }
            Inst::For { var, lo, hi, body } => Inst::For { var: *var, lo: m(lo), hi: m(hi), body: *body },
            Inst::If { cond, then, else_ } => Inst::If { cond: m(cond), then: *then, else_: *else_ },
            Inst::Store { slot, ix, index, value } => {
                Inst::Store { slot: *slot, ix: ix.clone(), index: index.iter().map(m).collect(), value: m(value) }
            }
            Inst::Init { slot, value } => Inst::Init { slot: *slot, value: value.as_ref().map(m) },
            Inst::Target { value, part } => Inst::Target { value: m(value), part: *part },
        };
        match inst {
            Inst::Op { dst, prim, args } => self.op_inst(p, b, place, *dst, prim, args, out),
            Inst::For { var, lo, hi, body } => {
                if !self.is(*lo, &Class::Inv) || !self.is(*hi, &Class::Inv) {
                    return None;
                }
                self.class.insert(*var, Class::Inv);
                // What the loop stores is not known after it.
                self.current.clear();
                self.depth += 1;
                let inner = self.block(p, *body, *body);
                self.depth -= 1;
                self.nested.push((*body, inner?));
                out.push(inst.clone());
                Some(())
            }
            Inst::If { .. } => None,
            Inst::Store { slot, ix, index, value } => {
                let ok = self.private.contains(slot)
                    && ix.is_empty()
                    && index.is_empty()
                    && matches!(self.class(*value), Class::Var | Class::Inv)
                    && self.scalar(p, *value);
                if !ok {
                    return None;
                }
                let w = self.whole(p, place, *value, out);
                out.push(Inst::Store { slot: *slot, ix: vec![], index: vec![], value: w });
                self.current.insert(*slot, w);
                Some(())
            }
            Inst::Init { slot, value } => {
                let ok = self.private.contains(slot)
                    && value.is_none_or(|v| matches!(self.class(v), Class::Var | Class::Inv) && self.scalar(p, v));
                if !ok {
                    return None;
                }
                match value {
                    Some(v) => {
                        let w = self.whole(p, place, *v, out);
                        out.push(Inst::Init { slot: *slot, value: Some(w) });
                        self.current.insert(*slot, w);
                    }
                    None => {
                        out.push(inst.clone());
                        self.current.remove(slot);
                    }
                }
                Some(())
            }
            Inst::Target { value, part } => match self.class(*value) {
                Class::Var | Class::Summed => {
                    out.push(inst.clone());
                    Some(())
                }
                Class::Inv => {
                    // Added once per iteration.
                    if self.info(p, *value).len() != 1 {
                        return None;
                    }
                    let w = self.new_value(place, true, false);
                    out.push(Inst::Op { dst: w, prim: Prim::Fill(vec![self.n]), args: vec![*value] });
                    out.push(Inst::Target { value: w, part: *part });
                    Some(())
                }
                Class::Aff { .. } => None,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn op_inst(
        &mut self,
        p: &Program,
        b: BlockId,
        place: BlockId,
        dst: V,
        prim: &Prim,
        args: &[V],
        out: &mut Vec<Inst>,
    ) -> Option<()> {
        let classes: Vec<Class> = args.iter().map(|a| self.class(*a)).collect();
        if classes.contains(&Class::Summed) {
            return None;
        }
        let any_aff = classes.iter().any(|c| matches!(c, Class::Aff { .. }));
        let any_var = classes.contains(&Class::Var);
        let scalar_args = args.iter().all(|a| self.scalar(p, *a));
        let copy = |out: &mut Vec<Inst>| out.push(Inst::Op { dst, prim: prim.clone(), args: args.to_vec() });
        match prim {
            Prim::Rng(..) | Prim::Constrain(_) | Prim::Input(_) => return None,
            Prim::Load(s, ix) if self.private.contains(s) => {
                if !ix.is_empty() || !args.is_empty() {
                    return None;
                }
                if let (0, Some(w)) = (self.depth, self.current.get(s).copied()) {
                    // The value the iteration stored last.
                    self.subst.insert(dst, w);
                    self.class.insert(dst, Class::Var);
                    return Some(());
                }
                *self.loads.entry(*s).or_default() += 1;
                copy(out);
                self.define(b, place, dst, Class::Var);
                return Some(());
            }
            _ => {}
        }
        if !any_aff && !any_var {
            copy(out);
            self.define(b, place, dst, Class::Inv);
            return Some(());
        }
        let info = p.info(dst);
        match prim {
            // Integer arithmetic on the loop variable.
            Prim::Binary(bn @ (Bin::Add | Bin::Sub)) if any_aff && info.int => {
                let (aff, other, neg) = match (&classes[0], &classes[1]) {
                    (Class::Aff { .. }, Class::Inv) => (0, args[1], *bn == Bin::Sub),
                    (Class::Inv, Class::Aff { .. }) if *bn == Bin::Add => (1, args[0], false),
                    _ => return None,
                };
                let Class::Aff { mut c, mut terms } = classes[aff].clone() else { return None };
                if !self.info(p, other).int || self.info(p, other).len() != 1 {
                    return None;
                }
                match self.g.lits.get(&other) {
                    Some(x) if x.abs() < 1e15 => c += if neg { -(*x as i64) } else { *x as i64 },
                    Some(_) => return None,
                    None => terms.push((other, neg)),
                }
                self.class.insert(dst, Class::Aff { c, terms });
                Some(())
            }
            Prim::Index(ix) if ix[..] == [Ix::Single] && classes[0] == Class::Inv => {
                let (x, i) = (args[0], args[1]);
                let [m] = self.info(p, x).shape[..] else { return None };
                match classes[1].clone() {
                    Class::Aff { c, terms } => {
                        let start = self.lo + c;
                        match self.g.consts.get(&x) {
                            Some(&id) if terms.is_empty() => {
                                if start < 0 || start as usize + self.n > m {
                                    return None;
                                }
                                let start = start as usize;
                                let cid = if start == 0 && self.n == m {
                                    id
                                } else {
                                    let data = p.consts[id as usize][start..start + self.n].to_vec();
                                    self.new_consts.push(data);
                                    (self.base_consts + self.new_consts.len() - 1) as u32
                                };
                                self.g.consts.insert(dst, cid);
                                out.push(Inst::Op { dst, prim: Prim::Const(cid), args: vec![] });
                            }
                            _ => {
                                let mut s = self.lit(place, start as f64, out);
                                for (t, neg) in terms {
                                    let bn = if neg { Bin::Sub } else { Bin::Add };
                                    let v = self.new_value(place, false, true);
                                    out.push(Inst::Op { dst: v, prim: Prim::Binary(bn), args: vec![s, t] });
                                    s = v;
                                }
                                out.push(Inst::Op {
                                    dst,
                                    prim: Prim::Index(vec![Ix::Range(self.n)]),
                                    args: vec![x, s],
                                });
                            }
                        }
                    }
                    Class::Var if self.info(p, i).int => {
                        out.push(Inst::Op { dst, prim: Prim::Index(vec![Ix::Gather]), args: vec![x, i] });
                    }
                    _ => return None,
                }
                self.define(b, place, dst, Class::Var);
                Some(())
            }
            _ if any_aff || !scalar_args || !info.shape.is_empty() => None,
            Prim::Unary(_) | Prim::Binary(_) => {
                copy(out);
                self.define(b, place, dst, Class::Var);
                Some(())
            }
            Prim::Select if classes[0] == Class::Inv => {
                copy(out);
                self.define(b, place, dst, Class::Var);
                Some(())
            }
            Prim::LogDensity(f) | Prim::LogCdf(f, _)
                if f.is_elementwise()
                    && self.g.uses[dst.0 as usize] == 1
                    && p.block(b).iter().any(|i| matches!(i, Inst::Target { value, .. } if *value == dst)) =>
            {
                copy(out);
                self.define(b, place, dst, Class::Summed);
                Some(())
            }
            Prim::LogDensity(Family::Normal) => {
                // −½ ((x − μ)/σ)² − ln σ − ½ ln 2π, elementwise.
                let (x, mu, sigma) = (args[0], args[1], args[2]);
                let d = self.op(place, Prim::Binary(Bin::Sub), vec![x, mu], out);
                // A product with 1/σ: σ is usually the same for every element, and a division
                // costs several multiplications, forward and backward.
                let is = self.op(place, Prim::Unary(Un::Inv), vec![sigma], out);
                let z = self.op(place, Prim::Binary(Bin::Mul), vec![d, is], out);
                let zz = self.op(place, Prim::Unary(Un::Square), vec![z], out);
                let h = self.lit(place, -0.5, out);
                let q = self.op(place, Prim::Binary(Bin::Mul), vec![zz, h], out);
                let ls = self.op(place, Prim::Unary(Un::Log), vec![sigma], out);
                let r = self.op(place, Prim::Binary(Bin::Sub), vec![q, ls], out);
                let c = self.lit(place, HALF_LN_2PI, out);
                out.push(Inst::Op { dst, prim: Prim::Binary(Bin::Sub), args: vec![r, c] });
                self.define(b, place, dst, Class::Var);
                Some(())
            }
            Prim::LogMix => {
                // log_sum_exp(ln θ + a, ln(1 − θ) + b), elementwise.
                let (t, a, bb) = (args[0], args[1], args[2]);
                let lt = self.op(place, Prim::Unary(Un::Log), vec![t], out);
                let l1t = self.op(place, Prim::Unary(Un::Log1m), vec![t], out);
                let u = self.op(place, Prim::Binary(Bin::Add), vec![lt, a], out);
                let w = self.op(place, Prim::Binary(Bin::Add), vec![l1t, bb], out);
                out.push(Inst::Op { dst, prim: Prim::Binary(Bin::LogSumExp), args: vec![u, w] });
                self.define(b, place, dst, Class::Var);
                Some(())
            }
            _ => None,
        }
    }
}
