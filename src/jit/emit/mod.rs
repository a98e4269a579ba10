//! IR → Cranelift IR: one function that runs the primal sweep and then, when asked, the adjoint
//! sweep — the reverse-mode transformation applied while generating code, so the adjoint of each
//! primitive is emitted next to nothing but the primal values it reads.
//!
//! Inline: elementwise primitives (with broadcasting), sums, fills, reshapes, contiguous and
//! gathered indexing of values and slots, stores, loops, branches and `target`. Everything else
//! (linear algebra, densities, transforms, softmax…) calls a kernel in [`super::kernels`] with
//! pointers to the current execution's values. Counters per block (Cranelift variables) give
//! the execution whose storage a value uses, exactly as the interpreter's.
//!
//! This module holds the emitter, its state and the helpers everything else builds on
//! (addresses, loads and stores, loops, calls); the sweeps over blocks are in [`blocks`], one
//! primitive's forward and reverse in [`ops`], fused elementwise loops in [`fusion`], inline
//! indexing in [`index`], densities and transforms in [`density`], and accumulators and scalar
//! functions with their derivatives in [`scalar`].

use super::kernels::{CTX_ARENA, CTX_GRAD, CTX_JACOBIAN, CTX_JAC_WEIGHT, CTX_LIKELIHOOD, CTX_TARGET, CTX_THETA};
use super::layout::{self, Layout, Loc};
use crate::ir::prim::{Bin, Ix, Red, Un};
use crate::ir::scalar::{Arith, Cmp, Scalar};
use crate::ir::{BlockId, Inst, Prim, Program, ENTRY, V};
use crate::math::dist::{self, Family};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, Block, Endianness, FuncRef, InstBuilder, InstructionData, MemFlagsData, Opcode, Signature,
    StackSlotData, StackSlotKind, Value, ValueDef,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_jit::JITModule;
use cranelift_module::{Linkage, Module};
use std::collections::{HashMap, HashSet};

mod blocks;
mod density;
mod fusion;
mod index;
mod ops;
mod scalar;

const PTR: types::Type = types::I64;
const F64: types::Type = types::F64;
const F64X2: types::Type = types::F64X2;
/// ½ ln 2π, as `math::dist` uses it.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// How an elementwise operand is read at element (flat i, column j).
#[derive(Clone, Copy)]
enum Mode {
    /// A literal.
    Imm(f64),
    /// One element, broadcast.
    Scalar,
    /// Same shape as the result: element i.
    Full,
    /// A vector along the rows of a matrix result: element j.
    Row,
    /// A scalar loaded once before the loop.
    Pre(Value),
}

/// A contiguous run of an indexed tensor: the flat offset of its first element.
struct Run {
    off: Value,
}

pub struct Emitter<'a, 'f> {
    pub p: &'a Program,
    pub lay: &'a Layout,
    pub b: FunctionBuilder<'f>,
    pub module: &'a mut JITModule,
    funcs: HashMap<&'static str, FuncRef>,
    ctx: Value,
    arena: Value,
    cnt: Vec<Variable>,
    cur: Vec<Variable>,
    target: Variable,
    likelihood: Variable,
    /// Whether this call runs the reverse sweep (the function's second parameter).
    want: Value,
    err: Block,
    /// Kernel ids by (block, instruction index); the instructions themselves go to the runtime.
    ids: HashMap<(u32, u32), i64>,
    pub ops: Vec<Inst>,
    /// Aligned, non-trapping: every access is inside the arena.
    mf: MemFlagsData,
    /// Non-trapping, for two-lane accesses (8-byte aligned only).
    vmf: MemFlagsData,
    /// Set while emitting the two-lane body of an elementwise loop ([`Self::each_elem`]): the
    /// value helpers then make and take `f64x2` values.
    vec: bool,
    /// Two-lane accumulators of sums in pair order ([`Self::pair_acc`]) open in the loop
    /// being emitted: a row-wise loop over rows of odd length swaps their lanes after each row.
    open_pairs: Vec<Variable>,
    /// Values that are literals.
    lits: HashMap<V, f64>,
    /// How many operations were emitted inside fused loops (forward sweep).
    pub fused_ops: usize,
    /// How many times each value is read ([`Program::uses`]).
    uses: Vec<usize>,
    /// How many operations were computed by an array kernel of `math::vmath` (forward sweep).
    pub array_ops: usize,
    /// Logarithms of loop-invariant scalars that densities in the loop being emitted need,
    /// computed once before the loop ([`Self::hoist_logs`]).
    inv: HashMap<(V, Inv), Value>,
    /// Results of fused reverses whose one use is `target +=` in their own block: their
    /// adjoint is 1 in every element, which the fused loop takes as a constant, so that the
    /// adjoint is never seeded, read or cleared ([`Self::insts_rev`]).
    ones: HashSet<V>,
    /// Values whose adjoint a fused reverse writes, not adds to, in full: their one use, in
    /// their own block. The adjoint needs no clearing after their reverse.
    overwritten: HashSet<V>,
    /// Kernel ids whose reverse leaves its result's adjoint as it is (an overwritten one).
    kept_adj: HashSet<usize>,
    /// Kernel ids whose reverse writes over its arguments' adjoints (bit k for argument k).
    fresh_adj: HashMap<usize, u8>,
}

/// The arguments of an elementwise density's reverse: the element count, each argument's
/// address, broadcast mode (hoisted) and adjoint, the result's adjoint `g`, and the
/// accumulators of broadcast arguments.
struct DensityRev {
    n: usize,
    at: Vec<Value>,
    m: Vec<Mode>,
    adj: Vec<Option<Value>>,
    g: Value,
    accs: Vec<Option<Variable>>,
}

/// What [`Emitter::finish`] leaves for the runtime and the caller.
pub struct Emitted {
    /// The instructions kernels run, by id.
    pub ops: Vec<Inst>,
    /// By kernel id: its reverse does not clear its result's adjoint, which the next
    /// evaluation writes over before reading.
    pub kept_adj: Vec<bool>,
    /// By kernel id: the arguments whose adjoints its reverse writes over (bit k for
    /// argument k).
    pub fresh_adj: Vec<u8>,
    pub fused_ops: usize,
    pub array_ops: usize,
}

/// Which logarithm of a loop-invariant scalar: ln x, or ln(1 − x).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Inv {
    Ln,
    Ln1m,
}

type R<T> = Result<T, String>;

impl<'a, 'f> Emitter<'a, 'f> {
    pub fn new(p: &'a Program, lay: &'a Layout, mut b: FunctionBuilder<'f>, module: &'a mut JITModule) -> Self {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ctx = b.block_params(entry)[0];
        let want = b.block_params(entry)[1];
        let mf = MemFlagsData::trusted();
        let arena = b.ins().load(PTR, mf, ctx, CTX_ARENA);
        let zero = b.ins().iconst(types::I64, 0);
        let mut cnt = Vec::new();
        let mut cur = Vec::new();
        for _ in 0..p.blocks.len() {
            let c = b.declare_var(types::I64);
            b.def_var(c, zero);
            cnt.push(c);
            let k = b.declare_var(types::I64);
            b.def_var(k, zero);
            cur.push(k);
        }
        let target = b.declare_var(F64);
        let fz = b.ins().f64const(0.0);
        b.def_var(target, fz);
        let likelihood = b.declare_var(F64);
        b.def_var(likelihood, fz);
        let err = b.create_block();
        Emitter {
            p,
            lay,
            b,
            module,
            funcs: HashMap::new(),
            ctx,
            arena,
            cnt,
            cur,
            target,
            likelihood,
            want,
            err,
            ids: HashMap::new(),
            ops: Vec::new(),
            mf,
            vmf: MemFlagsData::new().with_notrap(),
            vec: false,
            open_pairs: Vec::new(),
            fused_ops: 0,
            array_ops: 0,
            uses: p.uses(),
            inv: HashMap::new(),
            ones: HashSet::new(),
            overwritten: HashSet::new(),
            kept_adj: HashSet::new(),
            fresh_adj: HashMap::new(),
            lits: p
                .blocks
                .iter()
                .flatten()
                .filter_map(|i| match i {
                    Inst::Op { dst, prim: Prim::Lit(x), .. } => Some((*dst, *x)),
                    _ => None,
                })
                .collect(),
        }
    }

    /// `target += s`, and the likelihood's part too when `s` is the likelihood's.
    fn add_target(&mut self, s: Value, part: crate::ir::Part) {
        let t = self.b.use_var(self.target);
        let t = self.b.ins().fadd(t, s);
        self.b.def_var(self.target, t);
        if part == crate::ir::Part::Likelihood {
            let l = self.b.use_var(self.likelihood);
            let l = self.b.ins().fadd(l, s);
            self.b.def_var(self.likelihood, l);
        }
    }

    /// The whole function: forward, then (when the second parameter is non-zero) reverse.
    pub fn finish(mut self) -> R<Emitted> {
        self.insts_fwd(ENTRY)?;
        let t = self.b.use_var(self.target);
        self.b.ins().store(self.mf, t, self.ctx, CTX_TARGET);
        let l = self.b.use_var(self.likelihood);
        self.b.ins().store(self.mf, l, self.ctx, CTX_LIKELIHOOD);
        let rev = self.b.create_block();
        let done = self.b.create_block();
        self.b.ins().brif(self.want, rev, &[], done, &[]);
        self.b.switch_to_block(rev);
        self.insts_rev(ENTRY)?;
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
        let z = self.b.ins().iconst(types::I32, 0);
        self.b.ins().return_(&[z]);
        self.b.switch_to_block(self.err);
        let one = self.b.ins().iconst(types::I32, 1);
        self.b.ins().return_(&[one]);
        self.b.seal_all_blocks();
        let cfg = self.module.isa().frontend_config();
        self.b.finalize(cfg);
        let kept_adj = (0..self.ops.len()).map(|id| self.kept_adj.contains(&id)).collect();
        let fresh_adj = (0..self.ops.len()).map(|id| self.fresh_adj.get(&id).copied().unwrap_or(0)).collect();
        Ok(Emitted { ops: self.ops, kept_adj, fresh_adj, fused_ops: self.fused_ops, array_ops: self.array_ops })
    }

    // ---- addresses -------------------------------------------------------------------------

    /// The address of `v`'s primal for the current execution of its block.
    fn addr(&mut self, v: V) -> R<Value> {
        let info = self.p.info(v);
        match self.lay.val[v.0 as usize] {
            Loc::Fixed(off) => Ok(self.b.ins().iadd_imm_s(self.arena, (off * 8) as i64)),
            Loc::PerExec(off) => Ok(self.per_exec(off, info.block, info.len())),
            Loc::None => Err(format!("{v} is used by the log density but has no storage")),
        }
    }

    /// The address of this execution's copy in an arena region of one `len`-element array per
    /// execution of `block`, starting at `off`.
    fn per_exec(&mut self, off: usize, block: BlockId, len: usize) -> Value {
        let base = self.b.ins().iadd_imm_s(self.arena, (off * 8) as i64);
        if block == ENTRY || len == 0 || self.lay.streamed[block.0 as usize] {
            return base;
        }
        let cur = self.b.use_var(self.cur[block.0 as usize]);
        let scaled = self.b.ins().imul_imm_s(cur, (len * 8) as i64);
        self.b.ins().iadd(base, scaled)
    }

    fn adj(&mut self, v: V) -> Option<Value> {
        self.lay.adj[v.0 as usize].map(|off| self.b.ins().iadd_imm_s(self.arena, (off * 8) as i64))
    }

    fn slot_addr(&mut self, s: crate::ir::Slot) -> Value {
        let off = self.lay.slot[s.0 as usize];
        self.b.ins().iadd_imm_s(self.arena, (off * 8) as i64)
    }

    fn slot_adj(&mut self, s: crate::ir::Slot) -> Option<Value> {
        self.lay.slot_adj[s.0 as usize].map(|off| self.b.ins().iadd_imm_s(self.arena, (off * 8) as i64))
    }

    fn elem(&mut self, base: Value, i: Value) -> Value {
        // A shift by 3, not a multiply by 8: x86 folds it into a scaled-index address.
        let o = self.b.ins().ishl_imm_u(i, 3);
        self.b.ins().iadd(base, o)
    }

    /// base[i] (and base[i + 1] in a two-lane body).
    fn ld(&mut self, base: Value, i: Value) -> Value {
        let a = self.elem(base, i);
        if self.vec {
            self.b.ins().load(F64X2, self.vmf, a, 0)
        } else {
            self.b.ins().load(F64, self.mf, a, 0)
        }
    }

    fn st(&mut self, base: Value, i: Value, x: Value) {
        let a = self.elem(base, i);
        let mf = if self.vec { self.vmf } else { self.mf };
        self.b.ins().store(mf, x, a, 0);
    }

    /// base[i] += x
    fn add_to(&mut self, base: Value, i: Value, x: Value) {
        let old = self.ld(base, i);
        let s = self.plus(old, x);
        self.st(base, i, s);
    }

    /// t + c, as t − x when c is −x (the same bits, and the negation, often of an adjoint
    /// passed through a difference, is left unused).
    fn plus(&mut self, t: Value, c: Value) -> Value {
        match self.negated(c) {
            Some(x) => self.b.ins().fsub(t, x),
            None => self.b.ins().fadd(t, c),
        }
    }

    /// x when `c` is `fneg x`.
    fn negated(&self, c: Value) -> Option<Value> {
        let dfg = &self.b.func.dfg;
        match dfg.value_def(c) {
            ValueDef::Result(inst, _) => match dfg.insts[inst] {
                InstructionData::Unary { opcode: Opcode::Fneg, arg } => Some(arg),
                _ => None,
            },
            _ => None,
        }
    }

    /// base[0] += x for one f64 x, in either kind of body.
    fn add_to_scalar(&mut self, base: Value, x: Value) {
        let old = self.b.ins().load(F64, self.mf, base, 0);
        let s = self.b.ins().fadd(old, x);
        self.b.ins().store(self.mf, s, base, 0);
    }

    /// base[0], in every lane.
    fn ld0(&mut self, base: Value) -> Value {
        let x = self.b.ins().load(F64, self.mf, base, 0);
        self.lanes_of(x)
    }

    /// The constant x, in every lane.
    fn f(&mut self, x: f64) -> Value {
        let c = self.b.ins().f64const(x);
        self.lanes_of(c)
    }

    /// A scalar in every lane of the body being emitted.
    fn lanes_of(&mut self, x: Value) -> Value {
        if self.vec {
            self.b.ins().splat(F64X2, x)
        } else {
            x
        }
    }

    /// The sum of a two-lane value's lanes (lane 0 + lane 1); a scalar as it is.
    fn hsum(&mut self, x: Value) -> Value {
        if self.b.func.dfg.value_type(x).is_vector() {
            let a = self.b.ins().extractlane(x, 0);
            let b = self.b.ins().extractlane(x, 1);
            self.b.ins().fadd(a, b)
        } else {
            x
        }
    }

    /// `c ? x : y`, for a scalar condition or, in a two-lane body, a comparison's lane mask.
    fn sel(&mut self, c: Value, x: Value, y: Value) -> Value {
        if self.b.func.dfg.value_type(c).is_vector() {
            let le = MemFlagsData::new().with_endianness(Endianness::Little);
            let m = self.b.ins().bitcast(F64X2, le, c);
            self.b.ins().bitselect(m, x, y)
        } else {
            self.b.ins().select(c, x, y)
        }
    }

    fn int(&mut self, x: i64) -> Value {
        self.b.ins().iconst(types::I64, x)
    }

    // ---- loops -----------------------------------------------------------------------------

    /// `for i in 0..n { body(i) }` with n known now.
    fn each(&mut self, n: usize, body: &mut dyn FnMut(&mut Self, Value) -> R<()>) -> R<()> {
        self.each_by(n, 1, body)
    }

    /// `for i in (0..n).step_by(step) { body(i) }`, n a multiple of `step`.
    fn each_by(&mut self, n: usize, step: usize, body: &mut dyn FnMut(&mut Self, Value) -> R<()>) -> R<()> {
        if n == 0 {
            return Ok(());
        }
        if n == step {
            let z = self.int(0);
            return body(self, z);
        }
        let iv = self.b.declare_var(types::I64);
        let z = self.int(0);
        self.b.def_var(iv, z);
        let head = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let i = self.b.use_var(iv);
        body(self, i)?;
        let i = self.b.use_var(iv);
        let next = self.b.ins().iadd_imm_s(i, step as i64);
        self.b.def_var(iv, next);
        let more = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, next, n as i64);
        self.b.ins().brif(more, head, &[], exit, &[]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// `for i in lo..hi` with bounds known only when running.
    fn each_dyn(&mut self, lo: Value, hi: Value, body: &mut dyn FnMut(&mut Self, Value) -> R<()>) -> R<()> {
        let iv = self.b.declare_var(types::I64);
        self.b.def_var(iv, lo);
        let head = self.b.create_block();
        let inner = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let i = self.b.use_var(iv);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, i, hi);
        self.b.ins().brif(more, inner, &[], exit, &[]);
        self.b.switch_to_block(inner);
        let i = self.b.use_var(iv);
        body(self, i)?;
        let i = self.b.use_var(iv);
        let next = self.b.ins().iadd_imm_s(i, 1);
        self.b.def_var(iv, next);
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// Elementwise iteration over a result of shape `shape`: `body(flat, column)`; a nested
    /// loop when an operand runs along the rows (no division per element).
    ///
    /// Elements go two at a time: the body is emitted twice, once with [`Self::vec`] set
    /// (`f64x2` values, loads and stores of elements i and i + 1) for the pairs, and once
    /// for a last odd element (of the array, or of each row). Elementwise operations give the
    /// same bits either way, and sums over the elements (a broadcast scalar's adjoint, a sum
    /// into `target`) keep the pair order of [`crate::ir::prim::pair_sum`]
    /// ([`Self::pair_acc`]).
    fn each_elem(
        &mut self,
        shape: &[usize],
        rows: bool,
        body: &mut dyn FnMut(&mut Self, Value, Value) -> R<()>,
    ) -> R<()> {
        let n: usize = shape.iter().product();
        if rows && shape.len() == 2 {
            let (r, c) = (shape[0], shape[1]);
            self.each(r, &mut |s, i| {
                let ic = s.b.ins().imul_imm_s(i, c as i64);
                s.pairs(c, &mut |s, j| {
                    let flat = s.b.ins().iadd(ic, j);
                    body(s, flat, j)
                })?;
                // The next row's pairs start at an index of the other parity.
                if c % 2 == 1 {
                    for v in s.open_pairs.clone() {
                        let t = s.b.use_var(v);
                        let (x0, x1) = (s.b.ins().extractlane(t, 0), s.b.ins().extractlane(t, 1));
                        let t = s.b.ins().splat(F64X2, x1);
                        let t = s.b.ins().insertlane(t, x0, 1);
                        s.b.def_var(v, t);
                    }
                }
                Ok(())
            })
        } else {
            self.pairs(n, &mut |s, i| body(s, i, i))
        }
    }

    /// `for i in 0..n`: i = 0, 2, 4… with two lanes, then n − 1 alone when n is odd.
    fn pairs(&mut self, n: usize, body: &mut dyn FnMut(&mut Self, Value) -> R<()>) -> R<()> {
        let even = n - n % 2;
        if even > 0 {
            self.vec = true;
            let r = self.each_by(even, 2, body);
            self.vec = false;
            r?;
        }
        if n % 2 == 1 {
            let last = self.int(n as i64 - 1);
            body(self, last)?;
        }
        Ok(())
    }

    fn mode(&self, v: V, out: &[usize]) -> Mode {
        let info = self.p.info(v);
        if let Some(x) = self.lit(v) {
            return Mode::Imm(x);
        }
        let n = info.len();
        if n == 1 {
            Mode::Scalar
        } else if info.shape.len() == out.len() {
            Mode::Full
        } else {
            Mode::Row
        }
    }

    /// The literal a value holds, when it is one.
    fn lit(&self, v: V) -> Option<f64> {
        self.lits.get(&v).copied()
    }

    /// Load broadcast scalars once, before a loop (loads are not hoisted for us).
    fn hoist(&mut self, base: Value, m: Mode) -> Mode {
        match m {
            Mode::Scalar => Mode::Pre(self.ld0(base)),
            m => m,
        }
    }

    fn get(&mut self, base: Value, m: Mode, flat: Value, col: Value) -> Value {
        match m {
            Mode::Pre(v) => self.lanes_of(v),
            Mode::Imm(x) => self.f(x),
            Mode::Scalar => self.ld0(base),
            Mode::Full => self.ld(base, flat),
            Mode::Row => self.ld(base, col),
        }
    }

    // ---- calls -----------------------------------------------------------------------------

    /// An imported function with the given parameter types and optional result.
    fn func_sig(&mut self, name: &'static str, params: &[types::Type], ret: Option<types::Type>) -> R<FuncRef> {
        if let Some(f) = self.funcs.get(name) {
            return Ok(*f);
        }
        let mut sig = Signature::new(self.module.isa().default_call_conv());
        sig.params.extend(params.iter().map(|t| AbiParam::new(*t)));
        sig.returns.extend(ret.map(AbiParam::new));
        let id = self.module.declare_function(name, Linkage::Import, &sig).map_err(|e| e.to_string())?;
        let fr = self.module.declare_func_in_func(id, &mut *self.b.func);
        self.funcs.insert(name, fr);
        Ok(fr)
    }

    /// A scalar function of f64s; in a two-lane body, called once per lane.
    fn call_f(&mut self, name: &'static str, args: &[Value]) -> R<Value> {
        let fr = self.func_sig(name, &vec![F64; args.len()], Some(F64))?;
        if !self.vec {
            let c = self.b.ins().call(fr, args);
            return Ok(self.b.inst_results(c)[0]);
        }
        let mut out = None;
        for lane in 0..2u8 {
            let xs: Vec<Value> = args.iter().map(|a| self.b.ins().extractlane(*a, lane)).collect();
            let c = self.b.ins().call(fr, &xs);
            let r = self.b.inst_results(c)[0];
            out = Some(match out {
                None => self.b.ins().scalar_to_vector(F64X2, r),
                Some(v) => self.b.ins().insertlane(v, r, lane),
            });
        }
        out.ok_or_else(|| "no lanes".into())
    }

    /// Call kernel `name(ctx, id, ptrs)` with pointers `ptrs`; on failure leave by the error exit.
    fn kernel(&mut self, name: &'static str, id: i64, ptrs: &[Value]) -> R<()> {
        let fr = self.func_sig(name, &[PTR, types::I64, PTR], Some(types::I32))?;
        let ss = self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (ptrs.len().max(1) * 8) as u32,
            3,
        ));
        for (k, p) in ptrs.iter().enumerate() {
            self.b.ins().stack_store(PTR, *p, ss, (k * 8) as i32);
        }
        let table = self.b.ins().stack_addr(PTR, ss, 0);
        let idv = self.int(id);
        let c = self.b.ins().call(fr, &[self.ctx, idv, table]);
        let r = self.b.inst_results(c)[0];
        self.fail_if(r);
        Ok(())
    }

    fn fail_if(&mut self, r: Value) {
        let ok = self.b.create_block();
        self.b.ins().brif(r, self.err, &[], ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// Check `0 <= v < size` (v an int held as f64), else record the error and leave.
    fn check_index(&mut self, v: Value, lo_extra: usize, size: usize) -> R<Value> {
        let zero = self.f(0.0);
        let ge = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, v, zero);
        let lim = self.f((size as f64) - (lo_extra as f64));
        let lt = if lo_extra == 0 {
            self.b.ins().fcmp(FloatCC::LessThan, v, lim)
        } else {
            self.b.ins().fcmp(FloatCC::LessThanOrEqual, v, lim)
        };
        let ok = self.b.ins().band(ge, lt);
        // A whole number, as the interpreter requires.
        let whole = self.b.ins().trunc(v);
        let is_whole = self.b.ins().fcmp(FloatCC::Equal, whole, v);
        let ok = self.b.ins().band(ok, is_whole);
        let good = self.b.create_block();
        let bad = self.b.create_block();
        self.b.ins().brif(ok, good, &[], bad, &[]);
        self.b.switch_to_block(bad);
        self.b.set_cold_block(bad);
        let fr = self.func_sig("bnnc_k_index_error", &[PTR, F64, types::I64], Some(types::I32))?;
        let sz = self.int(size as i64);
        self.b.ins().call(fr, &[self.ctx, v, sz]);
        self.b.ins().jump(self.err, &[]);
        self.b.switch_to_block(good);
        Ok(self.b.ins().fcvt_to_sint_sat(types::I64, v))
    }

    fn id_of(&mut self, key: (u32, u32), inst: &Inst) -> i64 {
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.ops.len() as i64;
        self.ops.push(inst.clone());
        self.ids.insert(key, id);
        id
    }
}
