//! IR → Cranelift IR: one function that runs the primal sweep and then, when asked, the adjoint
//! sweep — the reverse-mode transformation applied while generating code, so the adjoint of each
//! primitive is emitted next to nothing but the primal values it reads.
//!
//! Inline: elementwise primitives (with broadcasting), sums, fills, reshapes, contiguous and
//! gathered indexing of values and slots, stores, loops, branches and `target`. Everything else
//! (linear algebra, densities, transforms, softmax…) calls a kernel in [`super::kernels`] with
//! pointers to the current execution's values. Counters per block (Cranelift variables) give
//! the execution whose storage a value uses, exactly as the interpreter's.

use super::kernels::{self, CTX_ARENA, CTX_GRAD, CTX_JACOBIAN, CTX_JAC_WEIGHT, CTX_LIKELIHOOD, CTX_TARGET, CTX_THETA};
use super::layout::{Layout, Loc};
use crate::ir::prim::{Bin, Ix, Red, Un};
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
        Ok(Emitted { ops: self.ops, kept_adj, fused_ops: self.fused_ops, array_ops: self.array_ops })
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

    // ---- blocks ----------------------------------------------------------------------------

    fn enter_fwd(&mut self, b: BlockId) {
        let bi = b.0 as usize;
        let c = self.b.use_var(self.cnt[bi]);
        self.b.def_var(self.cur[bi], c);
        let n = self.b.ins().iadd_imm_s(c, 1);
        self.b.def_var(self.cnt[bi], n);
    }

    fn enter_rev(&mut self, b: BlockId) {
        let bi = b.0 as usize;
        let c = self.b.use_var(self.cnt[bi]);
        let n = self.b.ins().iadd_imm_s(c, -1);
        self.b.def_var(self.cnt[bi], n);
        self.b.def_var(self.cur[bi], n);
    }

    /// A data-dependent `if`, in the forward or the reverse sweep.
    fn branch(&mut self, cond: V, then: BlockId, else_: BlockId, rev: bool) -> R<()> {
        let c = self.cond_of(cond)?;
        let (tb, eb, merge) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(c, tb, &[], eb, &[]);
        for (blk, body) in [(tb, then), (eb, else_)] {
            self.b.switch_to_block(blk);
            if rev {
                self.enter_rev(body);
                self.insts_rev(body)?;
            } else {
                self.enter_fwd(body);
                self.insts_fwd(body)?;
            }
            self.b.ins().jump(merge, &[]);
        }
        self.b.switch_to_block(merge);
        Ok(())
    }

    /// Before the loop over `body`: the logarithms its densities take of scalars defined
    /// outside it (a normal's σ, a `log_mix`'s θ), computed once instead of once per
    /// iteration, with the same library calls (so the results are the same bits). Returns the
    /// keys added to `inv`, to be dropped after the loop.
    fn hoist_logs(&mut self, body: BlockId, rev: bool) -> R<Vec<(V, Inv)>> {
        let p = self.p;
        let mut added = Vec::new();
        for inst in p.block(body) {
            let Inst::Op { dst, prim, args } = inst else { continue };
            if rev && !self.lay.has_adj(*dst) {
                continue;
            }
            let want: &[(usize, Inv)] = match prim {
                Prim::LogDensity(Family::Normal) if !rev && self.elementwise_len(args).is_some() => &[(2, Inv::Ln)],
                Prim::LogMix => &[(0, Inv::Ln), (0, Inv::Ln1m)],
                _ => &[],
            };
            for &(k, kind) in want {
                let v = args[k];
                if p.info(v).block == body || p.info(v).len() != 1 || self.inv.contains_key(&(v, kind)) {
                    continue;
                }
                let a = self.addr(v)?;
                let x = self.ld0(a);
                let y = match kind {
                    Inv::Ln => self.call_f("bnnc_ln", &[x])?,
                    Inv::Ln1m => self.call_f("bnnc_ln1m", &[x])?,
                };
                self.inv.insert((v, kind), y);
                added.push((v, kind));
            }
        }
        Ok(added)
    }

    fn int_of(&mut self, v: V) -> R<Value> {
        let a = self.addr(v)?;
        let x = self.ld0(a);
        Ok(self.b.ins().fcvt_to_sint_sat(types::I64, x))
    }

    fn cond_of(&mut self, v: V) -> R<Value> {
        let a = self.addr(v)?;
        let x = self.ld0(a);
        let z = self.f(0.0);
        Ok(self.b.ins().fcmp(FloatCC::NotEqual, x, z))
    }

    fn insts_fwd(&mut self, b: BlockId) -> R<()> {
        let p = self.p;
        let groups = self.fusion_groups(b, false);
        let mut skip_to = 0;
        for (k, inst) in p.block(b).iter().enumerate() {
            if k < skip_to {
                continue;
            }
            if let Some(&(start, end)) = groups.iter().find(|g| g.0 == k) {
                let ops = &p.block(b)[start..end];
                let summed = matches!(&ops[ops.len() - 1], Inst::Op { dst, .. } if self.summed_into_target(p.block(b), end, *dst));
                let s = self.fused_fwd(ops, summed)?;
                skip_to = end;
                if let Some(s) = s {
                    let part = match &p.block(b)[end] {
                        Inst::Target { part, .. } => *part,
                        _ => crate::ir::Part::Prior,
                    };
                    self.add_target(s, part);
                    skip_to = end + 1;
                }
                continue;
            }
            if self.bias_activation(&p.block(b)[k..])? {
                skip_to = k + 2;
                continue;
            }
            let key = (b.0, k as u32);
            match inst {
                Inst::Op { dst, prim, args } => self.op_fwd(key, inst, *dst, prim, args)?,
                Inst::For { var, lo, hi, body } => {
                    let (lo, hi) = (self.int_of(*lo)?, self.int_of(*hi)?);
                    let (var, body) = (*var, *body);
                    let streamed = self.lay.streamed[body.0 as usize];
                    let mut hoisted = self.hoist_logs(body, false)?;
                    if streamed {
                        hoisted.extend(self.hoist_logs(body, true)?);
                    }
                    self.each_dyn(lo, hi, &mut |s, i| {
                        s.enter_fwd(body);
                        let a = s.addr(var)?;
                        let x = s.b.ins().fcvt_from_sint(F64, i);
                        s.b.ins().store(s.mf, x, a, 0);
                        s.insts_fwd(body)?;
                        if streamed {
                            // This iteration's reverse, on the values it has just made.
                            let (rev, next) = (s.b.create_block(), s.b.create_block());
                            s.b.ins().brif(s.want, rev, &[], next, &[]);
                            s.b.switch_to_block(rev);
                            s.insts_rev(body)?;
                            s.b.ins().jump(next, &[]);
                            s.b.switch_to_block(next);
                        }
                        Ok(())
                    })?;
                    hoisted.iter().for_each(|k| {
                        self.inv.remove(k);
                    });
                }
                Inst::If { cond, then, else_ } => self.branch(*cond, *then, *else_, false)?,
                Inst::Store { slot, ix, index, value } => {
                    let sshape = p.slots[slot.0 as usize].shape.clone();
                    let vlen = p.info(*value).len();
                    if let Some(run) = self.run(ix, &sshape, index, true)? {
                        let (sa, va) = (self.slot_addr(*slot), self.addr(*value)?);
                        let n = index_len(ix, &sshape);
                        self.each(n, &mut |s, j| {
                            let x = if vlen == 1 { s.ld0(va) } else { s.ld(va, j) };
                            let q = s.b.ins().iadd(run.off, j);
                            s.st(sa, q, x);
                            Ok(())
                        })?;
                    } else {
                        let id = self.id_of(key, inst);
                        let mut ptrs = vec![self.addr(*value)?];
                        for v in index {
                            ptrs.push(self.addr(*v)?);
                        }
                        self.kernel("bnnc_k_store", id, &ptrs)?;
                    }
                }
                Inst::Init { slot, value } => {
                    let n: usize = p.slots[slot.0 as usize].shape.iter().product();
                    let sa = self.slot_addr(*slot);
                    match value {
                        None => {
                            self.each(n, &mut |s, j| {
                                let x = s.f(f64::NAN);
                                s.st(sa, j, x);
                                Ok(())
                            })?;
                        }
                        Some(v) => {
                            let vlen = p.info(*v).len();
                            let va = self.addr(*v)?;
                            self.each(n, &mut |s, j| {
                                let x = if vlen == 1 { s.ld0(va) } else { s.ld(va, j) };
                                s.st(sa, j, x);
                                Ok(())
                            })?;
                        }
                    }
                }
                Inst::Target { value, part } => {
                    let s = self.sum(*value)?;
                    self.add_target(s, *part);
                }
            }
        }
        Ok(())
    }

    /// A dense layer's bias and activation, forward: `z = a + b` over a matrix with `b` a vector
    /// along its rows, then `h = f(z)` with an array function, where `z` is read by nothing
    /// else — neither forward nor by a reverse derivative (the sum's reads nothing, `tanh`'s
    /// and `exp`'s read their result; `log`'s and `log1p`'s read their argument, so not
    /// those). One kernel call computes `h` and leaves `z` unstored: two passes over the
    /// layer fewer. `Ok(false)` when `insts` does not start with that pattern.
    fn bias_activation(&mut self, insts: &[Inst]) -> R<bool> {
        let [Inst::Op { dst: z, prim: Prim::Binary(Bin::Add), args }, Inst::Op { dst: h, prim: Prim::Unary(u), args: hargs }, ..] =
            insts
        else {
            return Ok(false);
        };
        let Some((name, _)) = u.array_raw() else { return Ok(false) };
        let shape = self.p.info(*z).shape.clone();
        if shape.len() != 2 || hargs[0] != *z || self.uses[z.0 as usize] != 1 || df_reads(*u).0 {
            return Ok(false);
        }
        let (x, bias) = match (self.mode(args[0], &shape), self.mode(args[1], &shape)) {
            (Mode::Full, Mode::Row) => (args[0], args[1]),
            (Mode::Row, Mode::Full) => (args[1], args[0]),
            _ => return Ok(false),
        };
        let fr = self.func_sig("bnnc_unary_row_bias", &[PTR, PTR, PTR, PTR, types::I64, types::I64], None)?;
        let f = self.func_sig(name, &[PTR, PTR, types::I64], None)?;
        let fp = self.b.ins().func_addr(PTR, f);
        let (xa, ba, ha) = (self.addr(x)?, self.addr(bias)?, self.addr(*h)?);
        let (r, c) = (self.int(shape[0] as i64), self.int(shape[1] as i64));
        self.b.ins().call(fr, &[fp, xa, ba, ha, r, c]);
        self.fused_ops += 1;
        self.array_ops += 1;
        Ok(true)
    }

    /// The sum of a value's elements, in pair order ([`crate::ir::prim::pair_sum`]).
    fn sum(&mut self, v: V) -> R<Value> {
        let n = self.p.info(v).len();
        let a = self.addr(v)?;
        if n == 1 {
            return Ok(self.b.ins().load(F64, self.mf, a, 0));
        }
        let acc = self.pair_acc();
        self.each_elem(&[n], false, &mut |s, i, _| {
            let x = s.ld(a, i);
            s.add_in_order(acc, x);
            Ok(())
        })?;
        Ok(self.close_pair(acc))
    }

    fn insts_rev(&mut self, b: BlockId) -> R<()> {
        let p = self.p;
        let groups = self.fusion_groups(b, true);
        let fused = |v: V| {
            groups.iter().any(|&(s, e)| p.block(b)[s..e].iter().any(|o| matches!(o, Inst::Op { dst, .. } if *dst == v)))
        };
        for inst in p.block(b) {
            if let Inst::Target { value, .. } = inst {
                if self.uses[value.0 as usize] == 1 && self.adj(*value).is_some() && fused(*value) {
                    self.ones.insert(*value);
                }
            }
        }
        let mut skip_below = usize::MAX;
        for (k, inst) in p.block(b).iter().enumerate().rev() {
            if k >= skip_below {
                continue;
            }
            if let Some(&(start, end)) = groups.iter().find(|g| g.1 == k + 1) {
                self.fused_rev(&p.block(b)[start..end])?;
                skip_below = start;
                continue;
            }
            let key = (b.0, k as u32);
            match inst {
                Inst::Op { dst, prim, args } => {
                    if self.lay.has_adj(*dst) {
                        self.op_rev(key, inst, *dst, prim, args)?;
                    }
                }
                Inst::For { lo, hi, body, .. } => {
                    // A body without adjoint work is skipped: its counter is then left unwound,
                    // which is harmless because only it and the blocks inside it read it.
                    // A streamed body has had its reverse after each iteration of the forward.
                    if !self.lay.has_reverse_work(self.p, *body) || self.lay.streamed[body.0 as usize] {
                        continue;
                    }
                    let (lo, hi) = (self.int_of(*lo)?, self.int_of(*hi)?);
                    let body = *body;
                    let hoisted = self.hoist_logs(body, true)?;
                    self.each_dyn(lo, hi, &mut |s, _| {
                        s.enter_rev(body);
                        s.insts_rev(body)
                    })?;
                    hoisted.iter().for_each(|k| {
                        self.inv.remove(k);
                    });
                }
                Inst::If { cond, then, else_ } => self.branch(*cond, *then, *else_, true)?,
                Inst::Store { slot, ix, index, value } => {
                    let Some(sadj) = self.slot_adj(*slot) else { continue };
                    let sshape = p.slots[slot.0 as usize].shape.clone();
                    let vlen = p.info(*value).len();
                    if let Some(run) = self.run(ix, &sshape, index, false)? {
                        let vadj = self.adj(*value);
                        let n = index_len(ix, &sshape);
                        self.each(n, &mut |s, j| {
                            let q = s.b.ins().iadd(run.off, j);
                            let a = s.ld(sadj, q);
                            let z = s.f(0.0);
                            s.st(sadj, q, z);
                            if let Some(va) = vadj {
                                let at = if vlen == 1 { s.int(0) } else { j };
                                s.add_to(va, at, a);
                            }
                            Ok(())
                        })?;
                    } else {
                        let id = self.id_of(key, inst);
                        let mut ptrs = vec![self.addr(*value)?];
                        for v in index {
                            ptrs.push(self.addr(*v)?);
                        }
                        self.kernel("bnnc_k_store_rev", id, &ptrs)?;
                    }
                }
                Inst::Init { slot, value } => {
                    let Some(sadj) = self.slot_adj(*slot) else { continue };
                    let n: usize = p.slots[slot.0 as usize].shape.iter().product();
                    if let Some(v) = value {
                        if let Some(va) = self.adj(*v) {
                            if p.info(*v).len() == 1 {
                                let acc = self.b.declare_var(F64);
                                let z = self.f(0.0);
                                self.b.def_var(acc, z);
                                self.each(n, &mut |s, j| {
                                    let x = s.ld(sadj, j);
                                    let t = s.b.use_var(acc);
                                    let t = s.b.ins().fadd(t, x);
                                    s.b.def_var(acc, t);
                                    Ok(())
                                })?;
                                let t = self.b.use_var(acc);
                                let z = self.int(0);
                                self.add_to(va, z, t);
                            } else {
                                self.each(n, &mut |s, j| {
                                    let x = s.ld(sadj, j);
                                    s.add_to(va, j, x);
                                    Ok(())
                                })?;
                            }
                        }
                    }
                    self.each(n, &mut |s, j| {
                        let z = s.f(0.0);
                        s.st(sadj, j, z);
                        Ok(())
                    })?;
                }
                Inst::Target { value, .. } => {
                    if self.ones.contains(value) {
                        continue;
                    }
                    if let Some(va) = self.adj(*value) {
                        let n = p.info(*value).len();
                        self.each(n, &mut |s, i| {
                            let one = s.f(1.0);
                            s.add_to(va, i, one);
                            Ok(())
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    // ---- fusion ----------------------------------------------------------------------------

    /// The result shape of an operation that can join a fused loop: unary, binary and select
    /// over more than one element, with operands that are whole, scalar or literal, or (for a
    /// matrix result) vectors along its rows.
    fn fusible(&self, inst: &Inst) -> Option<Vec<usize>> {
        let Inst::Op { dst, prim, args } = inst else { return None };
        let info = self.p.info(*dst);
        if info.len() < 2 {
            return None;
        }
        let operands = match prim {
            Prim::Unary(_) => return Some(info.shape.clone()),
            Prim::Binary(_) => args,
            Prim::Select => &args[1..],
            _ => return None,
        };
        let matrix = info.shape.len() == 2;
        operands.iter().all(|a| matrix || !matches!(self.mode(*a, &info.shape), Mode::Row)).then(|| info.shape.clone())
    }

    /// The operands of a fusible operation read along the rows of its result that take an
    /// adjoint.
    fn row_adjoints(&self, inst: &Inst) -> Vec<V> {
        let Inst::Op { dst, args, .. } = inst else { return Vec::new() };
        let shape = &self.p.info(*dst).shape;
        args.iter().filter(|a| matches!(self.mode(**a, shape), Mode::Row) && self.lay.has_adj(**a)).copied().collect()
    }

    /// Runs `[start, end)` of two or more consecutive fusible operations with the same result
    /// shape in block `b`. A vector along the rows that takes an adjoint joins one operation
    /// of a run only, so that its adjoint sums in the unfused order.
    ///
    /// Forward, a unary function with an array kernel (`exp`, `log`, `tanh`…) ends a run and
    /// is computed by that kernel, four elements at a time; its reverse (a product with a
    /// derivative built from its input and output) stays in the fused loop.
    fn fusion_groups(&self, b: BlockId, rev: bool) -> Vec<(usize, usize)> {
        let insts = self.p.block(b);
        let array = |inst: &Inst| {
            !rev && (matches!(inst, Inst::Op { prim: Prim::Unary(u), .. } if u.array_raw().is_some())
                || self.log_add_exp_array(inst))
        };
        let mut groups = Vec::new();
        let mut k = 0;
        while k < insts.len() {
            let Some(n) = self.fusible(&insts[k]).filter(|_| !array(&insts[k])) else {
                k += 1;
                continue;
            };
            let mut rows = self.row_adjoints(&insts[k]);
            let mut end = k + 1;
            while end < insts.len() && self.fusible(&insts[end]).as_ref() == Some(&n) && !array(&insts[end]) {
                let more = self.row_adjoints(&insts[end]);
                if more.iter().any(|v| rows.contains(v)) {
                    break;
                }
                rows.extend(more);
                end += 1;
            }
            let last = match &insts[end - 1] {
                Inst::Op { dst, .. } => Some(*dst),
                _ => None,
            };
            if end - k >= 2 || last.is_some_and(|v| self.summed_into_target(insts, end, v)) {
                groups.push((k, end));
            }
            k = end;
        }
        groups
    }

    /// Whether `insts[at]` is `target += v` and that is v's one use: a loop computing v then
    /// sums it as it goes, and (its adjoint being 1) its reverse takes no seeding.
    fn summed_into_target(&self, insts: &[Inst], at: usize, v: V) -> bool {
        matches!(insts.get(at), Some(Inst::Target { value, .. }) if *value == v) && self.uses[v.0 as usize] == 1
    }

    /// The operands of a fused operation: produced earlier in the same loop (by position in
    /// the group), or read from memory.
    fn fused_operands(&mut self, ops: &[Inst], k: usize) -> R<Vec<(Option<usize>, Value, Mode)>> {
        let Inst::Op { dst, prim, args } = &ops[k] else { return Err("not an operation".into()) };
        let shape = self.p.info(*dst).shape.clone();
        let from = usize::from(matches!(prim, Prim::Select));
        let mut out = Vec::new();
        for a in &args[from..] {
            let local = ops[..k].iter().position(|o| matches!(o, Inst::Op { dst, .. } if dst == a));
            let at = self.addr(*a)?;
            let m = self.mode(*a, &shape);
            out.push((local, at, m));
        }
        Ok(out)
    }

    /// One loop computing every operation of a group, each result stored for the reverse
    /// sweep and passed on in a register to the operations after it.
    /// With `summed`, the last result's one use is `target +=` (the instruction after the
    /// group): its sum, in pair order as [`Self::sum`] forms it, is returned instead of the
    /// result being stored (unless a reverse derivative reads it).
    fn fused_fwd(&mut self, ops: &[Inst], summed: bool) -> R<Option<Value>> {
        let shape = self.fusible(&ops[0]).unwrap_or_default();
        self.fused_ops += ops.len();
        let mut plan = Vec::new();
        for k in 0..ops.len() {
            let Inst::Op { dst, prim, args } = &ops[k] else { return Err("not an operation".into()) };
            let mut operands = self.fused_operands(ops, k)?;
            for o in operands.iter_mut() {
                if o.0.is_none() {
                    o.2 = self.hoist(o.1, o.2);
                }
            }
            let cond = if matches!(prim, Prim::Select) { Some(self.cond_of(args[0])?) } else { None };
            let out = self.addr(*dst)?;
            let last = summed && k + 1 == ops.len();
            let keep = self.kept(ops, k, usize::from(last));
            plan.push((prim.clone(), operands, cond, out, keep));
        }
        let rows = plan.iter().any(|(_, ops, _, _, _)| ops.iter().any(|o| matches!(o.2, Mode::Row)));
        let acc = summed.then(|| self.pair_acc());
        self.each_elem(&shape, rows, &mut |s, i, j| {
            let mut vals: Vec<Value> = Vec::with_capacity(plan.len());
            for (prim, operands, cond, out, keep) in &plan {
                let mut xs = Vec::with_capacity(2);
                for (local, at, m) in operands {
                    xs.push(match local {
                        Some(k) => vals[*k],
                        None => s.get(*at, *m, i, j),
                    });
                }
                let r = match prim {
                    Prim::Unary(u) => s.un_f(*u, xs[0])?,
                    Prim::Binary(bn) => s.bin_f(*bn, xs[0], xs[1])?,
                    _ => s.b.ins().select(cond.ok_or("select without a condition")?, xs[0], xs[1]),
                };
                if *keep {
                    s.st(*out, i, r);
                }
                vals.push(r);
            }
            if let (Some(acc), Some(&r)) = (acc, vals.last()) {
                s.add_in_order(acc, r);
            }
            Ok(())
        })?;
        Ok(acc.map(|v| self.close_pair(v)))
    }

    /// Whether the result of `ops[k]`, a fused operation, is stored: when something outside
    /// the group reads it, or the reverse of an operation of the group (its own included)
    /// does ([`Self::rev_reads`]). The others live in registers only. `summed` of its uses
    /// are a sum the loop forms itself.
    fn kept(&self, ops: &[Inst], k: usize, summed: usize) -> bool {
        let Inst::Op { dst, .. } = &ops[k] else { return true };
        let (_, own) = self.rev_reads(&ops[k]);
        let mut inside = summed;
        let mut read = own;
        for op in &ops[k + 1..] {
            let Inst::Op { prim, args, .. } = op else { continue };
            let from = usize::from(matches!(prim, Prim::Select));
            let (reads, _) = self.rev_reads(op);
            for (a, r) in args[from..].iter().zip(reads) {
                if a == dst {
                    inside += 1;
                    read |= r;
                }
            }
        }
        read || self.uses[dst.0 as usize] > inside
    }

    /// What the reverse of elementwise operation `inst` reads: each operand (after a select's
    /// condition), and its result. Nothing when its result takes no adjoint; only what the
    /// derivatives of operands that take one need.
    fn rev_reads(&self, inst: &Inst) -> (Vec<bool>, bool) {
        let Inst::Op { dst, prim, args } = inst else { return (Vec::new(), false) };
        let from = usize::from(matches!(prim, Prim::Select));
        let n = args.len() - from;
        // Kept partials: the reverse reads them, not the operands.
        if !self.lay.has_adj(*dst) || self.lay.scratch[dst.0 as usize].is_some() {
            return (vec![false; n], false);
        }
        let h: Vec<bool> = args[from..].iter().map(|a| self.lay.has_adj(*a)).collect();
        match prim {
            Prim::Unary(u) => {
                let (x, y) = df_reads(*u);
                (vec![x && h[0]], y && h[0])
            }
            Prim::Binary(bn) => {
                let any = h[0] || h[1];
                match bn {
                    Bin::Add | Bin::Sub => (vec![false, false], false),
                    // d/da = b, d/db = a.
                    Bin::Mul => (vec![h[1], h[0]], false),
                    // d/da = 1/b, d/db = −a/b².
                    Bin::Div => (vec![h[1], any], false),
                    Bin::Max | Bin::Min => (vec![any, any], false),
                    _ => (vec![any, any], any),
                }
            }
            _ => (vec![false; n], false),
        }
    }

    /// The reverse of [`Self::fused_fwd`]: one loop, each element's adjoints propagated from the
    /// group's last operation to its first; broadcast scalars accumulate in registers and are
    /// added afterwards, last operation first, as the unfused code would. A result read only
    /// inside the group keeps its adjoint in a register (summed from 0 in the same order as in
    /// memory), and operands are loaded only when a derivative reads them: the loops of a
    /// hidden layer are bound by memory traffic.
    fn fused_rev(&mut self, ops: &[Inst]) -> R<()> {
        let shape = self.fusible(&ops[0]).unwrap_or_default();
        struct Step {
            prim: Prim,
            oadj: Value,
            /// The adjoint in a register, for a result used only inside the group (one f64,
            /// and two lanes).
            reg: Option<(Variable, Variable)>,
            /// Its adjoint is 1 everywhere ([`Emitter::ones`]).
            one: bool,
            /// Its adjoint is written over by its one use ([`Emitter::overwritten`]).
            overwritten: bool,
            out: Value,
            cond: Option<Value>,
            operands: Vec<Operand>,
            /// What its derivatives read: operands, result ([`Emitter::rev_reads`]).
            reads: (Vec<bool>, bool),
            /// Its partials in each operand, kept by the forward sweep
            /// ([`Emitter::kept_partials`]).
            kept: Option<(Value, Value)>,
        }
        struct Operand {
            at: Value,
            /// How it is read.
            m: Mode,
            adj: Option<Value>,
            /// The accumulator of a broadcast scalar.
            acc: Option<Variable>,
            /// The adjoint register of an earlier result of the group kept in one.
            reg: Option<(Variable, Variable)>,
            /// This is its only use: its adjoint is zero until this contribution, which is
            /// then stored, not added (one read less of a hidden layer's adjoint).
            only: bool,
        }
        let mut regs: Vec<Option<(Variable, Variable)>> = Vec::with_capacity(ops.len());
        for k in 0..ops.len() {
            let Inst::Op { dst, .. } = &ops[k] else { return Err("not an operation".into()) };
            let inside: usize = ops[k + 1..]
                .iter()
                .map(|o| match o {
                    Inst::Op { args, .. } => args.iter().filter(|a| *a == dst).count(),
                    _ => 0,
                })
                .sum();
            let internal = self.adj(*dst).is_some() && inside == self.uses[dst.0 as usize];
            regs.push(internal.then(|| (self.b.declare_var(F64), self.b.declare_var(F64X2))));
        }
        let mut steps: Vec<Option<Step>> = Vec::new();
        for k in 0..ops.len() {
            let Inst::Op { dst, prim, args } = &ops[k] else { return Err("not an operation".into()) };
            let Some(oadj) = self.adj(*dst) else {
                steps.push(None);
                continue;
            };
            let one = self.ones.contains(dst);
            let overwritten = self.overwritten.contains(dst);
            let operands0 = self.fused_operands(ops, k)?;
            let from = usize::from(matches!(prim, Prim::Select));
            let mut operands = Vec::new();
            for ((local, at, m), a) in operands0.into_iter().zip(&args[from..]) {
                let adj = self.adj(*a);
                let acc = self.broadcast_acc(m, adj);
                // (Defined in this block: one read in a loop body is one per execution.)
                let only = matches!(m, Mode::Full)
                    && self.uses[a.0 as usize] == 1
                    && self.p.info(*a).block == self.p.info(*dst).block;
                if only && adj.is_some() {
                    self.overwritten.insert(*a);
                }
                let m = self.hoist(at, m);
                operands.push(Operand { at, m, adj, acc, reg: local.and_then(|l| regs[l]), only });
            }
            let cond = if matches!(prim, Prim::Select) { Some(self.cond_of(args[0])?) } else { None };
            let out = self.addr(*dst)?;
            let reads = self.rev_reads(&ops[k]);
            let kept = self.kept_partials(&ops[k]);
            steps.push(Some(Step {
                kept,
                prim: prim.clone(),
                oadj,
                reg: regs[k],
                one,
                overwritten,
                out,
                cond,
                operands,
                reads,
            }));
        }
        let rows = steps.iter().flatten().any(|st| st.operands.iter().any(|o| matches!(o.m, Mode::Row)));
        // Accumulators that receive, element by element, the very contribution another one
        // receives or its negation: (accumulator, the other, negated). They are summed once.
        let mut twins: Vec<(Variable, Variable, bool)> = Vec::new();
        self.each_elem(&shape, rows, &mut |s, i, j| {
            // This body's contributions to accumulators so far: (value, negated, accumulator).
            let mut seen: Vec<(Value, bool, Variable)> = Vec::new();
            let lane = |s: &Self, r: (Variable, Variable)| if s.vec { r.1 } else { r.0 };
            // Registers holding a contribution already: the first one is the register's value
            // (0 + c but for the sign of a zero, which no comparison sees), so the chain from
            // the group's last adjoint to its first has no additions of zero in it.
            let mut held: Vec<Variable> = Vec::new();
            for st in steps.iter().rev().flatten() {
                let g = match st.reg {
                    Some(r) if held.contains(&lane(s, r)) => s.b.use_var(lane(s, r)),
                    Some(_) => s.f(0.0),
                    None if st.one => s.f(1.0),
                    None => s.ld(st.oadj, i),
                };
                // What a derivative does not read (and the forward may not have stored) is
                // stood in for by g.
                let xs: Vec<Value> = st
                    .operands
                    .iter()
                    .zip(&st.reads.0)
                    .map(|(o, r)| if *r { s.get(o.at, o.m, i, j) } else { g })
                    .collect();
                let y = if st.reads.1 { s.ld(st.out, i) } else { g };
                let mut partial: Vec<Value> = Vec::with_capacity(2);
                match &st.prim {
                    Prim::Unary(u) => {
                        let d = s.un_df(*u, xs[0], y)?;
                        partial.push(s.times_partial(g, d));
                    }
                    Prim::Binary(bn) => {
                        for (k, o) in st.operands.iter().enumerate() {
                            if o.adj.is_none() {
                                partial.push(g);
                                continue;
                            }
                            let d = match st.kept {
                                Some((da, db)) => s.ld(if k == 0 { da } else { db }, i),
                                None if k == 0 => s.bin_da(*bn, xs[0], xs[1], y)?,
                                None => s.bin_db(*bn, xs[0], xs[1], y)?,
                            };
                            partial.push(s.times_partial(g, d));
                        }
                    }
                    _ => {
                        let c = st.cond.ok_or("select without a condition")?;
                        let z = s.f(0.0);
                        partial.push(s.b.ins().select(c, g, z));
                        partial.push(s.b.ins().select(c, z, g));
                    }
                }
                for (o, c) in st.operands.iter().zip(partial) {
                    match (o.reg, o.adj) {
                        (Some(r), _) if held.contains(&lane(s, r)) => {
                            let t = s.b.use_var(lane(s, r));
                            let t = s.plus(t, c);
                            s.b.def_var(lane(s, r), t);
                        }
                        (Some(r), _) => {
                            s.b.def_var(lane(s, r), c);
                            held.push(lane(s, r));
                        }
                        (None, Some(a)) if o.only => {
                            // 0 + c, as the addition to the zero adjoint gives it (−0 → +0).
                            let z = s.f(0.0);
                            let t = s.plus(z, c);
                            s.st(a, i, t);
                        }
                        (None, Some(a)) => {
                            if let Some(v) = o.acc {
                                let (base, neg) = s.negated(c).map_or((c, false), |x| (x, true));
                                if let Some(&(_, n, w)) = seen.iter().find(|e| e.0 == base) {
                                    if !twins.iter().any(|t| t.0 == v) {
                                        twins.push((v, w, neg != n));
                                    }
                                    continue;
                                }
                                seen.push((base, neg, v));
                            }
                            s.accumulate(o.acc, a, o.m, i, j, c)
                        }
                        (None, None) => {}
                    }
                }
                if st.reg.is_none() && !st.one && !st.overwritten {
                    let z = s.f(0.0);
                    s.st(st.oadj, i, z);
                }
            }
            Ok(())
        })?;
        for st in steps.iter().rev().flatten() {
            for o in &st.operands {
                match (o.acc.and_then(|v| twins.iter().find(|t| t.0 == v)), o.adj) {
                    (Some(&(v, w, neg)), Some(a)) => {
                        self.open_pairs.retain(|x| *x != v);
                        // Σ(−cᵢ) is −Σcᵢ, but +0 where that sum is +0: 0 − Σcᵢ.
                        let t = self.b.use_var(w);
                        let t = self.hsum(t);
                        let t = if neg {
                            let z = self.f(0.0);
                            self.b.ins().fsub(z, t)
                        } else {
                            t
                        };
                        self.add_to_scalar(a, t);
                    }
                    _ => self.flush_acc(o.acc, o.adj),
                }
            }
        }
        Ok(())
    }

    // ---- indexing --------------------------------------------------------------------------

    /// When `ix` picks one contiguous run of a tensor of shape `base` (single indices, then
    /// at most one range or `:`, then whole dimensions), its flat offset (bounds checked when
    /// `check`); `None` for other patterns.
    fn run(&mut self, ix: &[Ix], base: &[usize], idx: &[V], check: bool) -> R<Option<Run>> {
        let mut k = 0;
        let mut partial = false;
        for i in ix {
            match i {
                Ix::Single if !partial => {}
                Ix::Range(_) | Ix::All if !partial => partial = true,
                Ix::All => {}
                _ => return Ok(None),
            }
        }
        let strides = crate::ir::prim::strides(base);
        let mut off = self.int(0);
        for (d, i) in ix.iter().enumerate() {
            match i {
                Ix::Single | Ix::Range(_) => {
                    let a = self.addr(idx[k])?;
                    k += 1;
                    let v = self.ld0(a);
                    let extra = if let Ix::Range(len) = i { *len } else { 0 };
                    let iv = if check {
                        self.check_index(v, extra, base[d])?
                    } else {
                        self.b.ins().fcvt_to_sint_sat(types::I64, v)
                    };
                    let t = self.b.ins().imul_imm_s(iv, strides[d] as i64);
                    off = self.b.ins().iadd(off, t);
                }
                _ => {}
            }
        }
        Ok(Some(Run { off }))
    }

    // ---- operations ------------------------------------------------------------------------

    fn op_fwd(&mut self, key: (u32, u32), inst: &Inst, dst: V, prim: &Prim, args: &[V]) -> R<()> {
        let p = self.p;
        let shape = p.info(dst).shape.clone();
        let n = p.info(dst).len();
        match prim {
            Prim::Const(_) | Prim::Lit(_) | Prim::Input(_) => Ok(()),
            Prim::Unary(u) => {
                let (o, a) = (self.addr(dst)?, self.addr(args[0])?);
                let u = *u;
                if let (true, Some((name, _))) = (n >= 2, u.array_raw()) {
                    // Four elements at a time, with the scalar function's bits.
                    let fr = self.func_sig(name, &[PTR, PTR, types::I64], None)?;
                    let nv = self.int(n as i64);
                    self.b.ins().call(fr, &[a, o, nv]);
                    self.array_ops += 1;
                    return Ok(());
                }
                self.each_elem(&shape, false, &mut |s, i, _| {
                    let x = s.ld(a, i);
                    let y = s.un_f(u, x)?;
                    s.st(o, i, y);
                    Ok(())
                })
            }
            Prim::Binary(Bin::LogSumExp) if self.log_add_exp_array(inst) => {
                // Four elements at a time, the partials kept for the reverse sweep.
                let mut call = Vec::new();
                for (ptr, len) in self.array_args(args)? {
                    let stride = self.b.ins().icmp_imm_s(IntCC::NotEqual, len, 1);
                    let stride = self.b.ins().uextend(types::I64, stride);
                    call.extend([ptr, stride]);
                }
                call.push(self.addr(dst)?);
                let d = match self.kept_partials(inst) {
                    Some((da, _)) => da,
                    None => self.int(0),
                };
                call.extend([d, self.int(n as i64)]);
                let fr = self.func_sig(
                    "bnnc_v_log_add_exp",
                    &[PTR, types::I64, PTR, types::I64, PTR, PTR, types::I64],
                    None,
                )?;
                self.b.ins().call(fr, &call);
                self.array_ops += 1;
                Ok(())
            }
            Prim::Binary(bn) => {
                let (ma, mb) = (self.mode(args[0], &shape), self.mode(args[1], &shape));
                let (o, a, b) = (self.addr(dst)?, self.addr(args[0])?, self.addr(args[1])?);
                let rows = matches!(ma, Mode::Row) || matches!(mb, Mode::Row);
                let (ma, mb) = (self.hoist(a, ma), self.hoist(b, mb));
                let bn = *bn;
                self.each_elem(&shape, rows, &mut |s, i, j| {
                    let x = s.get(a, ma, i, j);
                    let y = s.get(b, mb, i, j);
                    let r = s.bin_f(bn, x, y)?;
                    s.st(o, i, r);
                    Ok(())
                })
            }
            Prim::Select => {
                let c = self.cond_of(args[0])?;
                let (ma, mb) = (self.mode(args[1], &shape), self.mode(args[2], &shape));
                let (o, a, b) = (self.addr(dst)?, self.addr(args[1])?, self.addr(args[2])?);
                let rows = matches!(ma, Mode::Row) || matches!(mb, Mode::Row);
                let (ma, mb) = (self.hoist(a, ma), self.hoist(b, mb));
                self.each_elem(&shape, rows, &mut |s, i, j| {
                    let x = s.get(a, ma, i, j);
                    let y = s.get(b, mb, i, j);
                    let r = s.b.ins().select(c, x, y);
                    s.st(o, i, r);
                    Ok(())
                })
            }
            Prim::Reduce(Red::Sum) => {
                let s = self.sum(args[0])?;
                let o = self.addr(dst)?;
                self.b.ins().store(self.mf, s, o, 0);
                Ok(())
            }
            Prim::Fill(_) => {
                let (o, a) = (self.addr(dst)?, self.addr(args[0])?);
                let x = self.ld0(a);
                self.each(n, &mut |s, i| {
                    s.st(o, i, x);
                    Ok(())
                })
            }
            Prim::Reshape(_) => {
                let (o, a) = (self.addr(dst)?, self.addr(args[0])?);
                self.each(n, &mut |s, i| {
                    let x = s.ld(a, i);
                    s.st(o, i, x);
                    Ok(())
                })
            }
            Prim::Index(ix) if self.inline_index(ix, &p.info(args[0]).shape, &args[1..]) => {
                let base_shape = p.info(args[0]).shape.clone();
                let ba = self.addr(args[0])?;
                let o = self.addr(dst)?;
                self.index_fwd(ix, &base_shape, ba, &args[1..], o, n)
            }
            Prim::Constrain(i) if self.inline_transform(*i, args).is_some() => self.constrain_fwd(*i, dst, args),
            Prim::LogMix => {
                let mut v = Vec::new();
                for a in args {
                    let at = self.addr(*a)?;
                    v.push(self.ld0(at));
                }
                let logs = (self.inv.get(&(args[0], Inv::Ln)), self.inv.get(&(args[0], Inv::Ln1m)));
                let y = if let (Some(lt), Some(l1)) = logs {
                    let w = [*lt, *l1, v[1], v[2]];
                    self.call_f("bnnc_log_mix_logs", &w)?
                } else {
                    self.call_f("bnnc_log_mix", &v)?
                };
                let o = self.addr(dst)?;
                self.b.ins().store(self.mf, y, o, 0);
                Ok(())
            }
            Prim::LogDensity(Family::Normal) if self.elementwise_len(args).is_some() => self.normal_fwd(dst, args),
            Prim::LogDensity(f) if dist::is_elementwise(*f) && self.elementwise_len(args).is_some() => {
                self.density_fwd(*f, dst, args)
            }
            Prim::Load(slot, ix) if self.inline_index(ix, &p.slots[slot.0 as usize].shape, args) => {
                let base_shape = p.slots[slot.0 as usize].shape.clone();
                let ba = self.slot_addr(*slot);
                let o = self.addr(dst)?;
                self.index_fwd(ix, &base_shape, ba, args, o, n)
            }
            _ => {
                let id = self.id_of(key, inst);
                let mut ptrs = vec![self.addr(dst)?];
                for a in args {
                    ptrs.push(self.addr(*a)?);
                }
                self.kernel("bnnc_k_eval", id, &ptrs)
            }
        }
    }

    /// Index patterns emitted inline: a contiguous run, a column of a matrix, or a gather on
    /// the first dimension.
    fn inline_index(&self, ix: &[Ix], base: &[usize], _idx: &[V]) -> bool {
        let mut partial = false;
        let contiguous = ix.iter().all(|i| match i {
            Ix::Single => !partial,
            Ix::Range(_) => {
                let ok = !partial;
                partial = true;
                ok
            }
            Ix::All => {
                partial = true;
                true
            }
            Ix::Gather => false,
        });
        contiguous || is_column(ix, base) || (ix.len() == 1 && ix[0] == Ix::Gather && !base.is_empty())
    }

    fn index_fwd(&mut self, ix: &[Ix], base: &[usize], ba: Value, idx: &[V], o: Value, n: usize) -> R<()> {
        if let Some(run) = self.run(ix, base, idx, true)? {
            return self.each(n, &mut |s, j| {
                let q = s.b.ins().iadd(run.off, j);
                let x = s.ld(ba, q);
                s.st(o, j, x);
                Ok(())
            });
        }
        if is_column(ix, base) {
            let (r, c) = (base[0], base[1]);
            let ja = self.addr(idx[0])?;
            let j = self.ld0(ja);
            let j = self.check_index(j, 0, c)?;
            return self.each(r, &mut |s, i| {
                let q = s.b.ins().imul_imm_s(i, c as i64);
                let q = s.b.ins().iadd(q, j);
                let x = s.ld(ba, q);
                s.st(o, i, x);
                Ok(())
            });
        }
        // A gather on the first dimension.
        let tail: usize = base[1..].iter().product();
        let ga = self.addr(idx[0])?;
        let m = self.p.info(idx[0]).len();
        let size = base[0];
        self.each(m, &mut |s, i| {
            let g = s.ld(ga, i);
            let gi = s.check_index(g, 0, size)?;
            let from = s.b.ins().imul_imm_s(gi, tail as i64);
            let to = s.b.ins().imul_imm_s(i, tail as i64);
            s.each(tail, &mut |s, t| {
                let q = s.b.ins().iadd(from, t);
                let x = s.ld(ba, q);
                let r = s.b.ins().iadd(to, t);
                s.st(o, r, x);
                Ok(())
            })
        })
    }

    /// adj_base[picked] += adj_out (the reverse of `index_fwd`).
    fn index_rev(&mut self, ix: &[Ix], base: &[usize], badj: Value, idx: &[V], oadj: Value, n: usize) -> R<()> {
        if let Some(run) = self.run(ix, base, idx, false)? {
            return self.each(n, &mut |s, j| {
                let g = s.ld(oadj, j);
                let q = s.b.ins().iadd(run.off, j);
                s.add_to(badj, q, g);
                Ok(())
            });
        }
        if is_column(ix, base) {
            // The column index was checked by the forward sweep.
            let (r, c) = (base[0], base[1]);
            let ja = self.addr(idx[0])?;
            let j = self.ld0(ja);
            let j = self.b.ins().fcvt_to_sint_sat(types::I64, j);
            return self.each(r, &mut |s, i| {
                let g = s.ld(oadj, i);
                let q = s.b.ins().imul_imm_s(i, c as i64);
                let q = s.b.ins().iadd(q, j);
                s.add_to(badj, q, g);
                Ok(())
            });
        }
        let tail: usize = base[1..].iter().product();
        let ga = self.addr(idx[0])?;
        let m = self.p.info(idx[0]).len();
        self.each(m, &mut |s, i| {
            let g = s.ld(ga, i);
            let gi = s.b.ins().fcvt_to_sint_sat(types::I64, g);
            let from = s.b.ins().imul_imm_s(gi, tail as i64);
            let to = s.b.ins().imul_imm_s(i, tail as i64);
            s.each(tail, &mut |s, t| {
                let r = s.b.ins().iadd(to, t);
                let a = s.ld(oadj, r);
                let q = s.b.ins().iadd(from, t);
                s.add_to(badj, q, a);
                Ok(())
            })
        })
    }

    /// base[0..n] = +0: stores inline for a few elements, the library's `memset` for more.
    fn zero(&mut self, base: Value, n: usize) -> R<()> {
        if n > 8 {
            let fr = self.func_sig("bnnc_zero", &[PTR, types::I64], None)?;
            let nv = self.int(n as i64);
            self.b.ins().call(fr, &[base, nv]);
            return Ok(());
        }
        self.each(n, &mut |s, i| {
            let z = s.f(0.0);
            s.st(base, i, z);
            Ok(())
        })
    }

    /// Clear the adjoint of `v` after its reverse, unless the next evaluation writes over it
    /// before anything reads it ([`Self::overwritten`]).
    fn clear(&mut self, v: V, oadj: Value, n: usize) -> R<()> {
        if self.overwritten.contains(&v) {
            return Ok(());
        }
        self.zero(oadj, n)
    }

    fn op_rev(&mut self, key: (u32, u32), inst: &Inst, dst: V, prim: &Prim, args: &[V]) -> R<()> {
        let p = self.p;
        let shape = p.info(dst).shape.clone();
        let n = p.info(dst).len();
        let Some(oadj) = self.adj(dst) else { return Ok(()) };
        match prim {
            Prim::Const(_) | Prim::Lit(_) | Prim::Input(_) => Ok(()),
            Prim::Unary(u) => {
                if let Some(aadj) = self.adj(args[0]) {
                    let (o, a) = (self.addr(dst)?, self.addr(args[0])?);
                    let u = *u;
                    let (reads, want_y) = self.rev_reads(inst);
                    let want_x = reads[0];
                    self.each_elem(&shape, false, &mut |s, i, _| {
                        let g = s.ld(oadj, i);
                        let x = if want_x { s.ld(a, i) } else { g };
                        let y = if want_y { s.ld(o, i) } else { g };
                        let d = s.un_df(u, x, y)?;
                        let c = s.times_partial(g, d);
                        s.add_to(aadj, i, c);
                        Ok(())
                    })?;
                }
                self.clear(dst, oadj, n)
            }
            Prim::Binary(bn) => {
                let (ma, mb) = (self.mode(args[0], &shape), self.mode(args[1], &shape));
                let (o, a, b) = (self.addr(dst)?, self.addr(args[0])?, self.addr(args[1])?);
                let (aadj, badj) = (self.adj(args[0]), self.adj(args[1]));
                let rows = matches!(ma, Mode::Row) || matches!(mb, Mode::Row);
                let bn = *bn;
                // Broadcast scalars sum their contributions first, as the interpreter does.
                let acc_a = self.broadcast_acc(ma, aadj);
                let acc_b = self.broadcast_acc(mb, badj);
                let (ma, mb) = (self.hoist(a, ma), self.hoist(b, mb));
                // Operands and result are loaded only when a derivative reads them.
                let (reads, want_y) = self.rev_reads(inst);
                let (want_a, want_b) = (reads[0], reads[1]);
                let kept = self.kept_partials(inst);
                self.each_elem(&shape, rows, &mut |s, i, j| {
                    let g = s.ld(oadj, i);
                    let x = if want_a { s.get(a, ma, i, j) } else { g };
                    let y = if want_b { s.get(b, mb, i, j) } else { g };
                    let r = if want_y { s.ld(o, i) } else { g };
                    if let Some(aa) = aadj {
                        let d = match kept {
                            Some((da, _)) => s.ld(da, i),
                            None => s.bin_da(bn, x, y, r)?,
                        };
                        let c = s.times_partial(g, d);
                        s.accumulate(acc_a, aa, ma, i, j, c);
                    }
                    if let Some(ba) = badj {
                        let d = match kept {
                            Some((_, db)) => s.ld(db, i),
                            None => s.bin_db(bn, x, y, r)?,
                        };
                        let c = s.times_partial(g, d);
                        s.accumulate(acc_b, ba, mb, i, j, c);
                    }
                    Ok(())
                })?;
                self.flush_acc(acc_a, aadj);
                self.flush_acc(acc_b, badj);
                self.clear(dst, oadj, n)
            }
            Prim::Select => {
                let c = self.cond_of(args[0])?;
                for (k, pick) in [(1usize, true), (2usize, false)] {
                    let Some(aadj) = self.adj(args[k]) else { continue };
                    let m = self.mode(args[k], &shape);
                    let acc = self.broadcast_acc(m, Some(aadj));
                    let rows = matches!(m, Mode::Row);
                    self.each_elem(&shape, rows, &mut |s, i, j| {
                        let g = s.ld(oadj, i);
                        let z = s.f(0.0);
                        let v = if pick { s.b.ins().select(c, g, z) } else { s.b.ins().select(c, z, g) };
                        s.accumulate(acc, aadj, m, i, j, v);
                        Ok(())
                    })?;
                    self.flush_acc(acc, Some(aadj));
                }
                self.clear(dst, oadj, n)
            }
            Prim::Reduce(Red::Sum) | Prim::Fill(_) | Prim::Reshape(_) => {
                if let Some(aadj) = self.adj(args[0]) {
                    match prim {
                        Prim::Reduce(_) => {
                            let m = p.info(args[0]).len();
                            let g = self.ld0(oadj);
                            self.each(m, &mut |s, i| {
                                s.add_to(aadj, i, g);
                                Ok(())
                            })?;
                        }
                        Prim::Fill(_) => {
                            let t = self.sum_adj(oadj, n)?;
                            let z = self.int(0);
                            self.add_to(aadj, z, t);
                        }
                        _ => {
                            self.each(n, &mut |s, i| {
                                let g = s.ld(oadj, i);
                                s.add_to(aadj, i, g);
                                Ok(())
                            })?;
                        }
                    }
                }
                self.clear(dst, oadj, n)
            }
            Prim::Index(ix) if self.inline_index(ix, &p.info(args[0]).shape, &args[1..]) => {
                if let Some(badj) = self.adj(args[0]) {
                    let base_shape = p.info(args[0]).shape.clone();
                    self.index_rev(ix, &base_shape, badj, &args[1..], oadj, n)?;
                }
                self.clear(dst, oadj, n)
            }
            Prim::Constrain(i) if self.inline_transform(*i, args).is_some() => {
                self.constrain_rev(*i, dst, oadj)?;
                self.clear(dst, oadj, n)
            }
            Prim::LogMix => {
                let g = self.ld0(oadj);
                let mut v = Vec::new();
                for a in args {
                    let at = self.addr(*a)?;
                    v.push(self.ld0(at));
                }
                let o = self.addr(dst)?;
                v.push(self.ld0(o));
                let ss = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 24, 3));
                let d = self.b.ins().stack_addr(PTR, ss, 0);
                v.push(d);
                let logs = (self.inv.get(&(args[0], Inv::Ln)), self.inv.get(&(args[0], Inv::Ln1m)));
                if let (Some(lt), Some(l1)) = logs {
                    // (θ, ln θ, ln(1 − θ), a, b, y, d)
                    let w = [v[0], *lt, *l1, v[1], v[2], v[3], d];
                    let fr = self.func_sig("bnnc_log_mix_partials_logs", &[F64, F64, F64, F64, F64, F64, PTR], None)?;
                    self.b.ins().call(fr, &w);
                } else {
                    let fr = self.func_sig("bnnc_log_mix_partials", &[F64, F64, F64, F64, PTR], None)?;
                    self.b.ins().call(fr, &v);
                }
                for (k, a) in args.iter().enumerate().take(3) {
                    if let Some(ak) = self.adj(*a) {
                        let dk = self.b.ins().load(F64, self.mf, d, (k * 8) as i32);
                        let c = self.b.ins().fmul(g, dk);
                        let c = self.unless_zero(g, c);
                        let z = self.int(0);
                        self.add_to(ak, z, c);
                    }
                }
                self.clear(dst, oadj, 1)
            }
            Prim::LogDensity(Family::Normal) if self.elementwise_len(args).is_some() => {
                self.normal_rev(args, oadj)?;
                self.clear(dst, oadj, 1)
            }
            Prim::LogDensity(f) if dist::is_elementwise(*f) && self.elementwise_len(args).is_some() => {
                self.density_rev(*f, dst, args, oadj)?;
                self.clear(dst, oadj, 1)
            }
            Prim::Load(slot, ix) if self.inline_index(ix, &p.slots[slot.0 as usize].shape, args) => {
                if let Some(sadj) = self.slot_adj(*slot) {
                    let base_shape = p.slots[slot.0 as usize].shape.clone();
                    self.index_rev(ix, &base_shape, sadj, args, oadj, n)?;
                }
                self.clear(dst, oadj, n)
            }
            _ => {
                let id = self.id_of(key, inst);
                if self.overwritten.contains(&dst) {
                    self.kept_adj.insert(id as usize);
                }
                let mut ptrs = vec![self.addr(dst)?];
                for a in args {
                    ptrs.push(self.addr(*a)?);
                }
                self.kernel("bnnc_k_vjp", id, &ptrs)
            }
        }
    }

    /// The common length of a density's arguments, each of which has that length or one.
    fn elementwise_len(&self, args: &[V]) -> Option<usize> {
        let n = args.iter().map(|a| self.p.info(*a).len()).max()?;
        args.iter().all(|a| matches!(self.p.info(*a).len(), 1) || self.p.info(*a).len() == n).then_some(n)
    }

    fn density_mode(&self, v: V) -> Mode {
        match self.lit(v) {
            Some(x) => Mode::Imm(x),
            None if self.p.info(v).len() == 1 => Mode::Scalar,
            None => Mode::Full,
        }
    }

    /// `normal(x | mu, sigma)` summed over elements, as `math::dist` computes it: NaN when a
    /// parameter is invalid or x is NaN, −∞ when x is infinite.
    fn normal_fwd(&mut self, dst: V, args: &[V]) -> R<()> {
        let n = self.elementwise_len(args).unwrap_or(0);
        let m: Vec<Mode> = args.iter().map(|a| self.density_mode(*a)).collect();
        let mut at = Vec::new();
        for a in args {
            at.push(self.addr(*a)?);
        }
        let m: Vec<Mode> = m.iter().zip(&at).map(|(k, a)| self.hoist(*a, *k)).collect();
        // ln σ once when σ is one number.
        let z0 = self.int(0);
        let ls = if matches!(m[2], Mode::Full) {
            None
        } else if let Some(l) = self.inv.get(&(args[2], Inv::Ln)) {
            Some(*l)
        } else {
            let sg = self.get(at[2], m[2], z0, z0);
            Some(self.call_f("bnnc_ln", &[sg])?)
        };
        let lp = self.b.declare_var(F64);
        let bad = self.b.declare_var(types::I8);
        let outside = self.b.declare_var(types::I8);
        let fz = self.f(0.0);
        self.b.def_var(lp, fz);
        let iz = self.b.ins().iconst(types::I8, 0);
        self.b.def_var(bad, iz);
        self.b.def_var(outside, iz);
        self.each(n, &mut |s, i| {
            let x = s.get(at[0], m[0], i, i);
            let mu = s.get(at[1], m[1], i, i);
            let sg = s.get(at[2], m[2], i, i);
            let d = s.b.ins().fsub(x, mu);
            let z = s.b.ins().fdiv(d, sg);
            let h = s.f(-0.5);
            let t = s.b.ins().fmul(h, z);
            let t = s.b.ins().fmul(t, z);
            let l = match ls {
                Some(l) => l,
                None => s.call_f("bnnc_ln", &[sg])?,
            };
            let t = s.b.ins().fsub(t, l);
            let c = s.f(HALF_LN_2PI);
            let t = s.b.ins().fsub(t, c);
            let acc = s.b.use_var(lp);
            let acc = s.b.ins().fadd(acc, t);
            s.b.def_var(lp, acc);
            // Validity, as math::dist checks it.
            let inf = s.f(f64::INFINITY);
            let zero = s.f(0.0);
            let amu = s.b.ins().fabs(mu);
            let mu_ok = s.b.ins().fcmp(FloatCC::LessThan, amu, inf);
            let s_pos = s.b.ins().fcmp(FloatCC::GreaterThan, sg, zero);
            let s_fin = s.b.ins().fcmp(FloatCC::LessThan, sg, inf);
            let ok = s.b.ins().band(mu_ok, s_pos);
            let ok = s.b.ins().band(ok, s_fin);
            let x_nan = s.b.ins().fcmp(FloatCC::Unordered, x, x);
            let ax = s.b.ins().fabs(x);
            let x_inf = s.b.ins().fcmp(FloatCC::Equal, ax, inf);
            let one = s.b.ins().iconst(types::I8, 1);
            let not_ok = s.b.ins().bxor(ok, one);
            let b_now = s.b.ins().bor(not_ok, x_nan);
            let b_old = s.b.use_var(bad);
            let b_new = s.b.ins().bor(b_old, b_now);
            s.b.def_var(bad, b_new);
            let o_old = s.b.use_var(outside);
            let o_new = s.b.ins().bor(o_old, x_inf);
            s.b.def_var(outside, o_new);
            Ok(())
        })?;
        let lp = self.b.use_var(lp);
        let ninf = self.f(f64::NEG_INFINITY);
        let o = self.b.use_var(outside);
        let r = self.b.ins().select(o, ninf, lp);
        let nan = self.f(f64::NAN);
        let bd = self.b.use_var(bad);
        let r = self.b.ins().select(bd, nan, r);
        let out = self.addr(dst)?;
        self.b.ins().store(self.mf, r, out, 0);
        Ok(())
    }

    /// The reverse of [`Self::normal_fwd`]: ∂/∂x = −z/σ, ∂/∂μ = z/σ, ∂/∂σ = (z² − 1)/σ.
    fn normal_rev(&mut self, args: &[V], oadj: Value) -> R<()> {
        let Some(DensityRev { n, at, m, adj, g, accs }) = self.density_rev_args(args, oadj)? else {
            return Ok(());
        };
        self.each(n, &mut |s, i| {
            let x = s.get(at[0], m[0], i, i);
            let mu = s.get(at[1], m[1], i, i);
            let sg = s.get(at[2], m[2], i, i);
            let d = s.b.ins().fsub(x, mu);
            let z = s.b.ins().fdiv(d, sg);
            let nz = s.b.ins().fneg(z);
            let d0 = s.b.ins().fdiv(nz, sg);
            let d1 = s.b.ins().fdiv(z, sg);
            let zz = s.b.ins().fmul(z, z);
            let one = s.f(1.0);
            let zz1 = s.b.ins().fsub(zz, one);
            let d2 = s.b.ins().fdiv(zz1, sg);
            for (k, dk) in [d0, d1, d2].into_iter().enumerate() {
                s.density_partial(accs[k], adj[k], g, i, dk);
            }
            Ok(())
        })?;
        self.density_flush(&accs, &adj, g);
        Ok(())
    }

    /// Transforms emitted inline: none (identity), and a lower bound that is a finite literal
    /// (`<lower=0>`); `Some(bound)` (0 for the identity).
    fn inline_transform(&self, i: u32, args: &[V]) -> Option<f64> {
        use crate::math::transform::Kind;
        match self.p.params.get(i as usize)?.kind {
            Kind::Identity if args.is_empty() => Some(0.0),
            Kind::Lower if args.len() == 1 => self.lit(args[0]).filter(|l| l.is_finite()),
            _ => None,
        }
    }

    /// x = y (identity) or x = lb + exp(y) with log|J| = y, as `math::transform` computes
    /// them; a non-finite result leaves with the interpreter's message.
    fn constrain_fwd(&mut self, i: u32, dst: V, args: &[V]) -> R<()> {
        let pl = &self.p.params[i as usize];
        let (offset, n) = (pl.offset, pl.free_len);
        let lower = matches!(pl.kind, crate::math::transform::Kind::Lower);
        let lb = self.inline_transform(i, args).unwrap_or(0.0);
        let theta = self.b.ins().load(PTR, self.mf, self.ctx, CTX_THETA);
        let y0 = self.b.ins().iadd_imm_s(theta, (offset * 8) as i64);
        let out = self.addr(dst)?;
        let logj = self.b.declare_var(F64);
        let bad = self.b.declare_var(types::I8);
        let z = self.f(0.0);
        self.b.def_var(logj, z);
        let f0 = self.b.ins().iconst(types::I8, 0);
        self.b.def_var(bad, f0);
        self.each(n, &mut |s, k| {
            let y = s.ld(y0, k);
            let x = if lower {
                let e = s.call_f("bnnc_exp", &[y])?;
                let l = s.f(lb);
                let t = s.b.use_var(logj);
                let t = s.b.ins().fadd(t, y);
                s.b.def_var(logj, t);
                s.b.ins().fadd(l, e)
            } else {
                y
            };
            s.st(out, k, x);
            let inf = s.f(f64::INFINITY);
            let ax = s.b.ins().fabs(x);
            let fin = s.b.ins().fcmp(FloatCC::LessThan, ax, inf);
            let one = s.b.ins().iconst(types::I8, 1);
            let nf = s.b.ins().bxor(fin, one);
            let b0 = s.b.use_var(bad);
            let b1 = s.b.ins().bor(b0, nf);
            s.b.def_var(bad, b1);
            Ok(())
        })?;
        if lower {
            // jacobian += Σ y, in the interpreter's order.
            let j = self.b.ins().load(F64, self.mf, self.ctx, CTX_JACOBIAN);
            let t = self.b.use_var(logj);
            let j = self.b.ins().fadd(j, t);
            self.b.ins().store(self.mf, j, self.ctx, CTX_JACOBIAN);
        }
        let bd = self.b.use_var(bad);
        let ok = self.b.create_block();
        let fail = self.b.create_block();
        self.b.ins().brif(bd, fail, &[], ok, &[]);
        self.b.switch_to_block(fail);
        self.b.set_cold_block(fail);
        let fr = self.func_sig("bnnc_k_param_error", &[PTR, types::I64], Some(types::I32))?;
        let iv = self.int(i as i64);
        self.b.ins().call(fr, &[self.ctx, iv]);
        self.b.ins().jump(self.err, &[]);
        self.b.switch_to_block(ok);
        Ok(())
    }

    /// Its reverse: ∂/∂y = g (identity), g·exp(y) + w (lower bound, w the log-Jacobian's weight);
    /// the literal bound takes no adjoint.
    fn constrain_rev(&mut self, i: u32, dst: V, oadj: Value) -> R<()> {
        let pl = &self.p.params[i as usize];
        let (offset, n) = (pl.offset, pl.free_len);
        let lower = matches!(pl.kind, crate::math::transform::Kind::Lower);
        let _ = dst;
        let theta = self.b.ins().load(PTR, self.mf, self.ctx, CTX_THETA);
        let y0 = self.b.ins().iadd_imm_s(theta, (offset * 8) as i64);
        let grad = self.b.ins().load(PTR, self.mf, self.ctx, CTX_GRAD);
        let g0 = self.b.ins().iadd_imm_s(grad, (offset * 8) as i64);
        let w = self.b.ins().load(F64, self.mf, self.ctx, CTX_JAC_WEIGHT);
        self.each(n, &mut |s, k| {
            let g = s.ld(oadj, k);
            let c = if lower {
                let y = s.ld(y0, k);
                let e = s.call_f("bnnc_exp", &[y])?;
                let t = s.b.ins().fmul(g, e);
                s.b.ins().fadd(t, w)
            } else {
                g
            };
            s.add_to(g0, k, c);
            Ok(())
        })
    }

    fn family_code(&mut self, f: Family) -> Value {
        let code = Family::ALL.iter().position(|g| *g == f).unwrap_or(usize::MAX) as i64;
        self.int(code)
    }

    /// An elementwise density summed over elements, one call per element to the scalar
    /// density of `math::dist` (NaN and −∞ propagate through the sum as its checks give them).
    fn density_fwd(&mut self, f: Family, dst: V, args: &[V]) -> R<()> {
        if f == Family::BernoulliLogit {
            // Whole arrays, four elements at a time, by `math::vmath`.
            let mut call = Vec::new();
            for (ptr, len) in self.array_args(args)? {
                call.extend([ptr, len]);
            }
            let c = if let Some((d, _)) = self.scratch_addr(dst) {
                // The partials too, for the reverse sweep.
                call.push(d);
                let fr =
                    self.func_sig("bnnc_bernoulli_logit_keep", &[PTR, types::I64, PTR, types::I64, PTR], Some(F64))?;
                self.b.ins().call(fr, &call)
            } else {
                let fr = self.func_sig("bnnc_bernoulli_logit", &[PTR, types::I64, PTR, types::I64], Some(F64))?;
                self.b.ins().call(fr, &call)
            };
            let r = self.b.inst_results(c)[0];
            let out = self.addr(dst)?;
            self.b.ins().store(self.mf, r, out, 0);
            return Ok(());
        }
        let n = self.elementwise_len(args).unwrap_or(0);
        let mut m = Vec::new();
        let mut at = Vec::new();
        for a in args {
            let ad = self.addr(*a)?;
            let md = self.density_mode(*a);
            m.push(self.hoist(ad, md));
            at.push(ad);
        }
        let code = self.family_code(f);
        let fr = self.func_sig("bnnc_elem", &[types::I64, F64, F64, F64, F64], Some(F64))?;
        let lp = self.b.declare_var(F64);
        let z = self.f(0.0);
        self.b.def_var(lp, z);
        self.each(n, &mut |s, i| {
            let mut call = vec![code];
            for k in 0..4 {
                call.push(if k < at.len() { s.get(at[k], m[k], i, i) } else { s.f(0.0) });
            }
            let c = s.b.ins().call(fr, &call);
            let v = s.b.inst_results(c)[0];
            let t = s.b.use_var(lp);
            let t = s.b.ins().fadd(t, v);
            s.b.def_var(lp, t);
            Ok(())
        })?;
        let r = self.b.use_var(lp);
        let out = self.addr(dst)?;
        self.b.ins().store(self.mf, r, out, 0);
        Ok(())
    }

    /// Its reverse: each element's partials, scaled by the adjoint (broadcast arguments sum
    /// their partials first, as `math::dist` does).
    fn density_rev(&mut self, f: Family, dst: V, args: &[V], oadj: Value) -> R<()> {
        if f == Family::BernoulliLogit {
            let Some(aadj) = self.adj(args[1]) else { return Ok(()) };
            let Some((d, n)) = self.scratch_addr(dst) else {
                return Err(format!("{dst}: bernoulli_logit's partials were not kept"));
            };
            let n = self.int(n as i64);
            let na = self.int(self.p.info(args[1]).len() as i64);
            let g = self.ld0(oadj);
            let fr = self.func_sig("bnnc_partials_rev", &[PTR, types::I64, types::I64, PTR, F64], None)?;
            self.b.ins().call(fr, &[d, n, na, aadj, g]);
            return Ok(());
        }
        let Some(DensityRev { n, at, m, adj, g, accs }) = self.density_rev_args(args, oadj)? else {
            return Ok(());
        };
        let code = self.family_code(f);
        let fr = self.func_sig("bnnc_elem_partials", &[types::I64, F64, F64, F64, F64, PTR], None)?;
        let ss = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 32, 3));
        self.each(n, &mut |s, i| {
            let mut call = vec![code];
            for k in 0..4 {
                call.push(if k < at.len() { s.get(at[k], m[k], i, i) } else { s.f(0.0) });
            }
            let d = s.b.ins().stack_addr(PTR, ss, 0);
            call.push(d);
            s.b.ins().call(fr, &call);
            for k in 0..at.len() {
                let dk = s.b.ins().load(F64, s.mf, d, (k * 8) as i32);
                s.density_partial(accs[k], adj[k], g, i, dk);
            }
            Ok(())
        })?;
        self.density_flush(&accs, &adj, g);
        Ok(())
    }

    /// Where `inst`, a `log_sum_exp(a, b)` computed by the array function, keeps its partials
    /// in a and in b for this execution of its block (`None` for any other instruction, or
    /// when the layout keeps none for it).
    fn kept_partials(&mut self, inst: &Inst) -> Option<(Value, Value)> {
        let Inst::Op { dst, .. } = inst else { return None };
        if !self.log_add_exp_array(inst) {
            return None;
        }
        let (off, len) = self.lay.scratch[dst.0 as usize]?;
        let da = self.per_exec(off, self.p.info(*dst).block, 2 * len);
        let db = self.b.ins().iadd_imm_s(da, (len * 8) as i64);
        Some((da, db))
    }

    /// Whether `inst` is a two-argument `log_sum_exp` that the array function computes
    /// ([`layout::log_add_exp_arrays`]).
    fn log_add_exp_array(&self, inst: &Inst) -> bool {
        matches!(inst, Inst::Op { dst, prim: Prim::Binary(Bin::LogSumExp), args } if super::layout::log_add_exp_arrays(self.p, *dst, args))
    }

    /// Where the density `dst` keeps its partials for this execution of its block, and how many
    /// (`None` when the layout keeps none for it).
    fn scratch_addr(&mut self, dst: V) -> Option<(Value, usize)> {
        let (off, len) = self.lay.scratch[dst.0 as usize]?;
        Some((self.per_exec(off, self.p.info(dst).block, len), len))
    }

    /// (address, element count) of each argument for an array kernel; a literal is put in a
    /// stack slot of its own.
    fn array_args(&mut self, args: &[V]) -> R<Vec<(Value, Value)>> {
        let mut out = Vec::new();
        for a in args {
            let ptr = match self.lit(*a) {
                Some(x) => {
                    let ss = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 8, 3));
                    let v = self.f(x);
                    self.b.ins().stack_store(PTR, v, ss, 0);
                    self.b.ins().stack_addr(PTR, ss, 0)
                }
                None => self.addr(*a)?,
            };
            let len = self.int(self.p.info(*a).len() as i64);
            out.push((ptr, len));
        }
        Ok(out)
    }

    /// Register accumulators for a density's broadcast (scalar) arguments that take an
    /// adjoint; `m` unhoisted (a literal never takes one).
    /// What the reverse of an elementwise density reads, or `None` when no argument has an
    /// adjoint. Broadcast arguments sum their partials first in `accs`, then scale by `g`.
    fn density_rev_args(&mut self, args: &[V], oadj: Value) -> R<Option<DensityRev>> {
        let n = self.elementwise_len(args).unwrap_or(0);
        let m: Vec<Mode> = args.iter().map(|a| self.density_mode(*a)).collect();
        let mut at = Vec::new();
        let mut adj = Vec::new();
        for a in args {
            at.push(self.addr(*a)?);
            adj.push(self.adj(*a));
        }
        if adj.iter().all(|a| a.is_none()) {
            return Ok(None);
        }
        let g = self.ld0(oadj);
        let accs = self.density_accs(&m, &adj);
        let m: Vec<Mode> = m.iter().zip(&at).map(|(k, a)| self.hoist(*a, *k)).collect();
        Ok(Some(DensityRev { n, at, m, adj, g, accs }))
    }

    fn density_accs(&mut self, m: &[Mode], adj: &[Option<Value>]) -> Vec<Option<Variable>> {
        m.iter().zip(adj).map(|(mk, a)| self.scalar_acc(*mk, *a)).collect()
    }

    /// One element's partial `dk` of a density: summed in the accumulator of a broadcast
    /// argument, or scaled by the adjoint `g` into element `i` of a whole one.
    fn density_partial(&mut self, acc: Option<Variable>, adj: Option<Value>, g: Value, i: Value, dk: Value) {
        match (acc, adj) {
            (Some(v), _) => {
                let t = self.b.use_var(v);
                let t = self.b.ins().fadd(t, dk);
                self.b.def_var(v, t);
            }
            (None, Some(a)) => {
                let c = self.b.ins().fmul(g, dk);
                let c = self.unless_zero(g, c);
                self.add_to(a, i, c);
            }
            (None, None) => {}
        }
    }

    /// After the loop: each broadcast argument's summed partials, scaled by the adjoint.
    fn density_flush(&mut self, accs: &[Option<Variable>], adj: &[Option<Value>], g: Value) {
        for (acc, a) in accs.iter().zip(adj) {
            if let (Some(v), Some(a)) = (acc, a) {
                let t = self.b.use_var(*v);
                let c = self.b.ins().fmul(g, t);
                let c = self.unless_zero(g, c);
                let z = self.int(0);
                self.add_to(*a, z, c);
            }
        }
    }

    fn sum_adj(&mut self, base: Value, n: usize) -> R<Value> {
        let acc = self.b.declare_var(F64);
        let z = self.f(0.0);
        self.b.def_var(acc, z);
        self.each(n, &mut |s, i| {
            let x = s.ld(base, i);
            let t = s.b.use_var(acc);
            let t = s.b.ins().fadd(t, x);
            s.b.def_var(acc, t);
            Ok(())
        })?;
        Ok(self.b.use_var(acc))
    }

    /// A local accumulator for a broadcast scalar's adjoint.
    fn scalar_acc(&mut self, m: Mode, adj: Option<Value>) -> Option<Variable> {
        if adj.is_some() && matches!(m, Mode::Scalar) {
            let v = self.b.declare_var(F64);
            let z = self.f(0.0);
            self.b.def_var(v, z);
            Some(v)
        } else {
            None
        }
    }

    /// A two-lane accumulator, in an elementwise loop, for a broadcast scalar's adjoint.
    fn broadcast_acc(&mut self, m: Mode, adj: Option<Value>) -> Option<Variable> {
        (adj.is_some() && matches!(m, Mode::Scalar)).then(|| self.pair_acc())
    }

    /// A sum over the elements of an elementwise loop ([`Self::each_elem`]) in pair order
    /// ([`crate::ir::prim::pair_sum`]): lane 0 sums the elements of even index and lane 1
    /// those of odd index, each from −0 (so the first addition is exact) and in index order.
    /// [`Self::add_in_order`] adds to it, [`Self::close_pair`] ends it.
    fn pair_acc(&mut self) -> Variable {
        let v = self.b.declare_var(F64X2);
        let z = self.b.ins().f64const(-0.0);
        let z = self.b.ins().splat(F64X2, z);
        self.b.def_var(v, z);
        self.open_pairs.push(v);
        v
    }

    /// The sum of a [`Self::pair_acc`]: its even part plus its odd part (in either order,
    /// the same bits).
    fn close_pair(&mut self, v: Variable) -> Value {
        self.open_pairs.retain(|w| *w != v);
        let t = self.b.use_var(v);
        self.hsum(t)
    }

    /// Add one element's (or, in a two-lane body, two elements') contribution `c` to an
    /// operand's adjoint: its accumulator (a broadcast scalar, summed in pair order, as the
    /// interpreter sums it), or its element i (a whole operand) or j (a vector along the
    /// rows).
    fn accumulate(&mut self, acc: Option<Variable>, adj: Value, m: Mode, i: Value, j: Value, c: Value) {
        match (acc, m) {
            (Some(v), _) => self.add_in_order(v, c),
            (None, Mode::Row) => self.add_to(adj, j, c),
            (None, Mode::Full) => self.add_to(adj, i, c),
            (None, Mode::Scalar | Mode::Imm(_) | Mode::Pre(_)) => {
                let c = self.hsum(c);
                self.add_to_scalar(adj, c)
            }
        }
    }

    /// Add one element's (or, in a two-lane body, two elements') `c` to the pair accumulator
    /// `v`: lane by lane, or a last odd element to lane 0 (whose parity it has: the last of an
    /// array of odd length, or of a row of odd length, after which the lanes swap).
    fn add_in_order(&mut self, v: Variable, c: Value) {
        let t = self.b.use_var(v);
        let t = if self.vec {
            self.plus(t, c)
        } else {
            let x = self.b.ins().extractlane(t, 0);
            let x = self.plus(x, c);
            self.b.ins().insertlane(t, x, 0)
        };
        self.b.def_var(v, t);
    }

    fn flush_acc(&mut self, acc: Option<Variable>, adj: Option<Value>) {
        if let Some(v) = acc {
            let t = self.close_pair(v);
            if let Some(a) = adj {
                self.add_to_scalar(a, t);
            }
        }
    }

    /// g · d as the reverse sweep takes it: 0 when g is 0 (so that 0 · ∞ adds nothing). For
    /// d = ±1, a constant (sums, differences, negations), ±g: the same sums, since every
    /// adjoint starts at +0 and a −0 added to it changes no bit.
    fn times_partial(&mut self, g: Value, d: Value) -> Value {
        if self.const_of(g) == Some(1.0) {
            return d;
        }
        match self.const_of(d) {
            Some(1.0) => g,
            Some(-1.0) => self.b.ins().fneg(g),
            // A finite constant: g · d is ±0 when g is, the zero test would change no sum.
            Some(d) if d.is_finite() => {
                let dv = self.f(d);
                self.b.ins().fmul(g, dv)
            }
            _ => {
                let c = self.b.ins().fmul(g, d);
                self.unless_zero(g, c)
            }
        }
    }

    /// The value of an `f64const`.
    fn const_of(&self, v: Value) -> Option<f64> {
        let dfg = &self.b.func.dfg;
        match dfg.value_def(v) {
            ValueDef::Result(inst, _) => match dfg.insts[inst] {
                InstructionData::UnaryIeee64 { opcode: Opcode::F64const, imm } => Some(f64::from_bits(imm.bits())),
                InstructionData::Unary { opcode: Opcode::Splat, arg } => self.const_of(arg),
                _ => None,
            },
            _ => None,
        }
    }

    /// `g == 0 ? 0 : c`: an element with no adjoint contributes nothing, even where the
    /// derivative is infinite (as the interpreter skips it).
    fn unless_zero(&mut self, g: Value, c: Value) -> Value {
        if self.const_of(g).is_some_and(|g| g != 0.0 && !g.is_nan()) {
            return c;
        }
        let z = self.f(0.0);
        let nz = self.b.ins().fcmp(FloatCC::NotEqual, g, z);
        self.sel(nz, c, z)
    }

    // ---- scalar functions ------------------------------------------------------------------

    fn flag(&mut self, c: Value) -> Value {
        let (one, zero) = (self.f(1.0), self.f(0.0));
        self.sel(c, one, zero)
    }

    fn un_f(&mut self, u: Un, x: Value) -> R<Value> {
        Ok(match u {
            Un::Neg => self.b.ins().fneg(x),
            Un::Not => {
                let z = self.f(0.0);
                let c = self.b.ins().fcmp(FloatCC::Equal, x, z);
                self.flag(c)
            }
            Un::Sqrt => self.b.ins().sqrt(x),
            Un::Square => self.b.ins().fmul(x, x),
            Un::Abs => self.b.ins().fabs(x),
            Un::Floor => self.b.ins().floor(x),
            Un::Ceil => self.b.ins().ceil(x),
            Un::Inv => {
                let one = self.f(1.0);
                self.b.ins().fdiv(one, x)
            }
            Un::Relu => {
                // x.max(0.0): 0 for NaN, as Rust's max.
                let z = self.f(0.0);
                let c = self.b.ins().fcmp(FloatCC::GreaterThan, x, z);
                self.sel(c, x, z)
            }
            _ => {
                let (name, _, _, _) = kernels::un_symbols(u);
                self.call_f(name, &[x])?
            }
        })
    }

    fn un_df(&mut self, u: Un, x: Value, y: Value) -> R<Value> {
        Ok(match u {
            Un::Neg => self.f(-1.0),
            Un::Not | Un::Floor | Un::Ceil | Un::Round => self.f(0.0),
            Un::Exp => y,
            Un::Log => {
                let one = self.f(1.0);
                self.b.ins().fdiv(one, x)
            }
            Un::Log1p => {
                let one = self.f(1.0);
                let d = self.b.ins().fadd(one, x);
                self.b.ins().fdiv(one, d)
            }
            Un::Expm1 => {
                let one = self.f(1.0);
                self.b.ins().fadd(y, one)
            }
            Un::Sqrt => {
                let h = self.f(0.5);
                self.b.ins().fdiv(h, y)
            }
            Un::Square => {
                let two = self.f(2.0);
                self.b.ins().fmul(two, x)
            }
            Un::Tanh => {
                let one = self.f(1.0);
                let yy = self.b.ins().fmul(y, y);
                self.b.ins().fsub(one, yy)
            }
            Un::Sigmoid => {
                let one = self.f(1.0);
                let om = self.b.ins().fsub(one, y);
                self.b.ins().fmul(y, om)
            }
            Un::Relu => {
                let z = self.f(0.0);
                let c = self.b.ins().fcmp(FloatCC::GreaterThan, x, z);
                self.flag(c)
            }
            Un::Abs => {
                // 1, −1 or 0 (at 0 and NaN), as `Un::df`.
                let (z, one, m1) = (self.f(0.0), self.f(1.0), self.f(-1.0));
                let pos = self.b.ins().fcmp(FloatCC::GreaterThan, x, z);
                let neg = self.b.ins().fcmp(FloatCC::LessThan, x, z);
                let s = self.sel(neg, m1, z);
                self.sel(pos, one, s)
            }
            Un::Inv => {
                let m1 = self.f(-1.0);
                let xx = self.b.ins().fmul(x, x);
                self.b.ins().fdiv(m1, xx)
            }
            _ => {
                let (_, _, name, _) = kernels::un_symbols(u);
                self.call_f(name, &[x, y])?
            }
        })
    }

    fn bin_f(&mut self, bn: Bin, a: Value, b: Value) -> R<Value> {
        let cmp = |s: &mut Self, cc: FloatCC| {
            let c = s.b.ins().fcmp(cc, a, b);
            s.flag(c)
        };
        Ok(match bn {
            Bin::Add => self.b.ins().fadd(a, b),
            Bin::Sub => self.b.ins().fsub(a, b),
            Bin::Mul => self.b.ins().fmul(a, b),
            Bin::Div => self.b.ins().fdiv(a, b),
            Bin::Eq => cmp(self, FloatCC::Equal),
            Bin::Ne => cmp(self, FloatCC::NotEqual),
            Bin::Lt => cmp(self, FloatCC::LessThan),
            Bin::Le => cmp(self, FloatCC::LessThanOrEqual),
            Bin::Gt => cmp(self, FloatCC::GreaterThan),
            Bin::Ge => cmp(self, FloatCC::GreaterThanOrEqual),
            Bin::Max | Bin::Min => {
                // Rust's `max`/`min`: the larger (smaller) one; when one is NaN, the other.
                let cc = if bn == Bin::Max { FloatCC::GreaterThan } else { FloatCC::LessThan };
                let c = self.b.ins().fcmp(cc, a, b);
                let b_nan = self.b.ins().fcmp(FloatCC::Unordered, b, b);
                let take_a = self.b.ins().bor(c, b_nan);
                self.sel(take_a, a, b)
            }
            _ => {
                let (name, ..) = kernels::bin_symbols(bn);
                self.call_f(name, &[a, b])?
            }
        })
    }

    fn bin_da(&mut self, bn: Bin, a: Value, b: Value, y: Value) -> R<Value> {
        Ok(match bn {
            Bin::Add | Bin::Sub => self.f(1.0),
            Bin::Mul => b,
            Bin::Div => {
                let one = self.f(1.0);
                self.b.ins().fdiv(one, b)
            }
            // (1, 0) when a wins (ties included), else (0, 1), as `Bin::df`.
            Bin::Max | Bin::Min => {
                let cc = if bn == Bin::Max { FloatCC::GreaterThanOrEqual } else { FloatCC::LessThanOrEqual };
                let c = self.b.ins().fcmp(cc, a, b);
                self.flag(c)
            }
            _ => {
                let (_, _, name, ..) = kernels::bin_symbols(bn);
                self.call_f(name, &[a, b, y])?
            }
        })
    }

    fn bin_db(&mut self, bn: Bin, a: Value, b: Value, y: Value) -> R<Value> {
        Ok(match bn {
            Bin::Add => self.f(1.0),
            Bin::Sub => self.f(-1.0),
            Bin::Mul => a,
            Bin::Div => {
                let na = self.b.ins().fneg(a);
                let bb = self.b.ins().fmul(b, b);
                self.b.ins().fdiv(na, bb)
            }
            Bin::Max | Bin::Min => {
                let cc = if bn == Bin::Max { FloatCC::GreaterThanOrEqual } else { FloatCC::LessThanOrEqual };
                let c = self.b.ins().fcmp(cc, a, b);
                let (one, zero) = (self.f(1.0), self.f(0.0));
                self.sel(c, zero, one)
            }
            _ => {
                let (.., name, _) = kernels::bin_symbols(bn);
                self.call_f(name, &[a, b, y])?
            }
        })
    }
}

/// Whether [`Emitter::un_df`] reads x and y for `u` (the reverse loads only what it reads).
fn df_reads(u: Un) -> (bool, bool) {
    match u {
        Un::Neg | Un::Not | Un::Floor | Un::Ceil | Un::Round => (false, false),
        Un::Exp | Un::Expm1 | Un::Sqrt | Un::Tanh | Un::Sigmoid => (false, true),
        Un::Log | Un::Log1p | Un::Square | Un::Relu | Un::Inv | Un::Abs => (true, false),
        _ => (true, true),
    }
}

/// `m[:, j]` of a matrix.
fn is_column(ix: &[Ix], base: &[usize]) -> bool {
    base.len() == 2 && ix == [Ix::All, Ix::Single]
}

/// The number of elements an index expression picks (for stores through a run).
fn index_len(ix: &[Ix], base: &[usize]) -> usize {
    let mut n = 1;
    for (d, size) in base.iter().enumerate() {
        match ix.get(d) {
            None | Some(Ix::All) => n *= size,
            Some(Ix::Single) => {}
            Some(Ix::Range(len)) => n *= len,
            Some(Ix::Gather) => return 0,
        }
    }
    n
}
