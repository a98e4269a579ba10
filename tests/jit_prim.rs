//! The compiled density (src/jit) equals the reference interpreter (src/ir/interp.rs)
//! primitive by primitive.
//!
//! For every primitive, small IR programs are built by hand: parameters (`Constrain`, with the
//! transform a primitive's domain needs) and data (`Const`, `Lit`), then the primitive under
//! test, then a weighted sum of its result (`Mul` by a constant weight tensor, `Reduce(Sum)`,
//! `target +=`), so every output element gets its own adjoint. Shapes and points are random.
//! At every point the log density, the log-Jacobian and every gradient element must agree to
//! 1e-12 relative (the rule of tests/jit.rs), the value computed without the gradient must be
//! the same, and both backends must agree on whether the evaluation fails. Each compiled
//! program is evaluated at several points with the same instances (as a sampler uses them), so
//! state left over from one evaluation is caught too.
//!
//! Cases are expected to be finite unless a test says otherwise: a comparison that silently
//! compares two failures would test nothing.
//!
//! Every `match` over `Un`, `Bin`, `Red`, `Ix`, `Kind`, `Family` and `Prim` below is exhaustive
//! with no wildcard, so a new variant does not compile until it has a case here.
//!
//! `JIT_PRIM_CASES` (or proptest's `PROPTEST_CASES`) sets the number of cases per property
//! (default 64).

#![allow(clippy::needless_range_loop, clippy::type_complexity, clippy::too_many_arguments)]

use bnnc::ir::interp::{Eval, Interp};
use bnnc::ir::prim::{Bin, Ix, Pool, Prim, Red, Un};
use bnnc::ir::verify::verify;
use bnnc::ir::{print, BlockId, Inst, ParamLayout, Program, Slot, SlotInfo, ValueInfo, ENTRY, V};
use bnnc::jit::Jit;
use bnnc::math::dist::Family;
use bnnc::math::transform::Kind;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------------
// Configuration, random numbers
// ---------------------------------------------------------------------------------------------

fn config() -> ProptestConfig {
    let base = ProptestConfig::default();
    let cases = match std::env::var("JIT_PRIM_CASES").ok().and_then(|s| s.parse().ok()) {
        Some(n) => n,
        None if std::env::var_os("PROPTEST_CASES").is_some() => base.cases,
        None => 64,
    };
    // No regression file: a failure prints its seed and shapes, which replay it.
    ProptestConfig { cases, failure_persistence: None, ..base }
}

/// SplitMix64: points and weights come from a seed proptest draws, so a failure replays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }

    /// Uniform in lo..hi (hi exclusive, hi > lo).
    fn below(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }

    /// Uniform in lo..=hi.
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 0
    }

    fn sign(&mut self) -> f64 {
        if self.coin() {
            1.0
        } else {
            -1.0
        }
    }

    fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

// ---------------------------------------------------------------------------------------------
// Building programs
// ---------------------------------------------------------------------------------------------

type Draw = Box<dyn Fn(&mut Rng) -> f64>;

/// A program under construction, with how to draw each parameter's free values.
struct B {
    p: Program,
    cur: BlockId,
    free: Vec<(usize, Draw)>,
}

impl B {
    fn new() -> B {
        B {
            p: Program { blocks: vec![Vec::new()], execs: vec![1], ..Program::default() },
            cur: ENTRY,
            free: Vec::new(),
        }
    }

    fn value(&mut self, shape: &[usize], int: bool) -> V {
        self.p.values.push(ValueInfo { shape: shape.to_vec(), int, block: self.cur, name: None });
        V(self.p.values.len() as u32 - 1)
    }

    fn push(&mut self, inst: Inst) {
        self.p.blocks[self.cur.0 as usize].push(inst);
    }

    fn lit_as(&mut self, x: f64, int: bool) -> V {
        let dst = self.value(&[], int);
        self.push(Inst::Op { dst, prim: Prim::Lit(x), args: vec![] });
        dst
    }

    fn lit(&mut self, x: f64) -> V {
        self.lit_as(x, false)
    }

    fn ilit(&mut self, x: i64) -> V {
        self.lit_as(x as f64, true)
    }

    fn konst(&mut self, vals: Vec<f64>, shape: &[usize], int: bool) -> V {
        assert_eq!(vals.len(), numel(shape), "constant of shape {shape:?}");
        self.p.consts.push(vals);
        let c = self.p.consts.len() as u32 - 1;
        let dst = self.value(shape, int);
        self.push(Inst::Op { dst, prim: Prim::Const(c), args: vec![] });
        dst
    }

    /// Data: a scalar is a `Lit` or a 0-d `Const` at random (the JIT reads the two differently).
    fn data(&mut self, vals: Vec<f64>, shape: &[usize], int: bool, r: &mut Rng) -> V {
        if shape.is_empty() && r.coin() {
            self.lit_as(vals[0], int)
        } else {
            self.konst(vals, shape, int)
        }
    }

    /// An int index: a literal, a 0-d constant, or computed from data by the program.
    fn index_int(&mut self, i: i64, r: &mut Rng) -> V {
        match r.below(0, 3) {
            0 => self.ilit(i),
            1 => self.konst(vec![i as f64], &[], true),
            _ => {
                let (a, b) = (self.ilit(i + 2), self.ilit(2));
                self.op(Prim::Binary(Bin::Sub), &[a, b])
            }
        }
    }

    fn op(&mut self, prim: Prim, args: &[V]) -> V {
        let shapes: Vec<Vec<usize>> = args.iter().map(|a| self.p.info(*a).shape.clone()).collect();
        let refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        let slot_shape =
            if let Prim::Load(s, _) = &prim { Some(self.p.slots[s.0 as usize].shape.clone()) } else { None };
        let shape = prim
            .shape(&refs, &self.p.consts, slot_shape.as_deref())
            .unwrap_or_else(|e| panic!("test bug: {prim:?} on {shapes:?}: {e}"));
        let int = matches!(&prim, Prim::Binary(b) if b.is_logical()) || matches!(prim, Prim::Unary(Un::Not));
        let dst = self.value(&shape, int);
        self.push(Inst::Op { dst, prim, args: args.to_vec() });
        dst
    }

    fn bin(&mut self, op: Bin, a: V, b: V) -> V {
        self.op(Prim::Binary(op), &[a, b])
    }

    /// A parameter of `kind` with bounds `bounds`; its free values are drawn with `draw`.
    fn param(&mut self, kind: Kind, shape: &[usize], bounds: &[V], draw: impl Fn(&mut Rng) -> f64 + 'static) -> V {
        let free_len = kind.free_len_of(shape);
        let offset = self.p.dim();
        let dst = self.value(shape, false);
        let index = self.p.params.len() as u32;
        self.p.params.push(ParamLayout {
            name: format!("p{index}"),
            shape: shape.to_vec(),
            kind,
            offset,
            free_len,
            value: dst,
        });
        self.push(Inst::Op { dst, prim: Prim::Constrain(index), args: bounds.to_vec() });
        self.free.push((free_len, Box::new(draw)));
        dst
    }

    /// An unconstrained parameter drawn uniformly in [lo, hi).
    fn pu(&mut self, shape: &[usize], lo: f64, hi: f64) -> V {
        self.param(Kind::Identity, shape, &[], move |r| r.uniform(lo, hi))
    }

    fn slot(&mut self, shape: &[usize]) -> Slot {
        let i = self.p.slots.len();
        self.p.slots.push(SlotInfo { shape: shape.to_vec(), int: false, name: format!("s{i}") });
        Slot(i as u32)
    }

    fn init(&mut self, slot: Slot, value: Option<V>) {
        self.push(Inst::Init { slot, value });
    }

    fn store(&mut self, slot: Slot, ix: Vec<Ix>, index: Vec<V>, value: V) {
        self.push(Inst::Store { slot, ix, index, value });
    }

    fn load(&mut self, slot: Slot, ix: Vec<Ix>, index: &[V]) -> V {
        self.op(Prim::Load(slot, ix), index)
    }

    fn target(&mut self, v: V) {
        self.push(Inst::Target { value: v, part: bnnc::ir::Part::Prior });
    }

    /// `target += Σ w ⊙ v` with fixed random weights w (each away from zero), so every element
    /// of v gets its own adjoint.
    fn weighted(&mut self, v: V, r: &mut Rng) {
        let shape = self.p.info(v).shape.clone();
        let w: Vec<f64> = (0..numel(&shape)).map(|_| r.sign() * r.uniform(0.5, 1.5)).collect();
        let wv = self.data(w, &shape, false, r);
        let m = self.bin(Bin::Mul, v, wv);
        let s = self.op(Prim::Reduce(Red::Sum), &[m]);
        self.target(s);
    }

    fn new_block(&mut self, execs: usize) -> BlockId {
        self.p.blocks.push(Vec::new());
        self.p.execs.push(execs);
        BlockId(self.p.blocks.len() as u32 - 1)
    }

    /// `for i in lo..hi { body(i) }` with literal bounds; the body's block runs (hi − lo) times
    /// per execution of the current block.
    fn for_lits(&mut self, lo: i64, hi: i64, body: impl FnOnce(&mut B, V)) {
        let (l, h) = (self.ilit(lo), self.ilit(hi));
        let execs = self.p.execs[self.cur.0 as usize] * (hi - lo).max(0) as usize;
        self.for_vals(l, h, execs, body);
    }

    /// `for i in lo..hi { body(i) }`; `execs`: how many times the body runs in one evaluation.
    fn for_vals(&mut self, lo: V, hi: V, execs: usize, body: impl FnOnce(&mut B, V)) {
        let blk = self.new_block(execs);
        let saved = self.cur;
        self.cur = blk;
        let var = self.value(&[], true);
        body(self, var);
        self.cur = saved;
        self.push(Inst::For { var, lo, hi, body: blk });
    }

    /// `if cond { then } else { else_ }`; the execution counts of the two branches are given.
    fn branch(&mut self, cond: V, execs: (usize, usize), then: impl FnOnce(&mut B), else_: impl FnOnce(&mut B)) {
        let (t, e) = (self.new_block(execs.0), self.new_block(execs.1));
        let saved = self.cur;
        self.cur = t;
        then(self);
        self.cur = e;
        else_(self);
        self.cur = saved;
        self.push(Inst::If { cond, then: t, else_: e });
    }

    /// The finished program: verified, and its execution counts checked against the
    /// interpreter's count where the parameter-free part runs.
    fn finish(self, what: impl Into<String>) -> Case {
        let what = what.into();
        if let Err(e) = verify(&self.p) {
            panic!("test bug: {what}: the program does not verify: {e}\n{}", print::program(&self.p));
        }
        if let Ok(counted) = Interp::new(&self.p).count_execs(f64::INFINITY) {
            assert_eq!(counted, self.p.execs, "test bug: {what}: execution counts\n{}", print::program(&self.p));
        }
        Case { p: self.p, free: self.free, what }
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing the backends
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Both backends must return a finite density and gradient, which must agree.
    Finite,
    /// Both must fail with a recoverable error.
    Fails,
}

struct Case {
    p: Program,
    free: Vec<(usize, Draw)>,
    what: String,
}

impl Case {
    fn point(&self, r: &mut Rng) -> Vec<f64> {
        let mut t = Vec::with_capacity(self.p.dim());
        for (n, d) in &self.free {
            for _ in 0..*n {
                t.push(d(r));
            }
        }
        t
    }

    /// Compare at two random points, with `expect` at both.
    fn check_as(&self, r: &mut Rng, expect: Expect) -> Result<(), TestCaseError> {
        let pts = [(self.point(r), expect), (self.point(r), expect)];
        compare(&self.p, &pts, &self.what)
    }

    fn check(&self, r: &mut Rng) -> Result<(), TestCaseError> {
        self.check_as(r, Expect::Finite)
    }
}

/// Equal to 1e-12 relative to the larger magnitude (or to `scale` for values near zero), as in
/// tests/jit.rs.
fn close(a: f64, b: f64, scale: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(scale)
}

fn shown(p: &Program) -> String {
    let mut s = print::program(p);
    for (i, c) in p.consts.iter().enumerate() {
        s.push_str(&format!("const {i} = {c:?}\n"));
    }
    s
}

/// Evaluate `p` with both backends at each point in turn (one interpreter and one compiled
/// function throughout) and compare everything.
fn compare(p: &Program, points: &[(Vec<f64>, Expect)], what: &str) -> Result<(), TestCaseError> {
    let mut interp = Interp::new(p);
    let mut jit = Jit::new(p).map_err(|e| TestCaseError::fail(format!("{what}: the JIT failed to compile: {e}")))?;
    let dim = p.dim();
    let (mut gi, mut gj) = (vec![f64::NAN; dim], vec![f64::NAN; dim]);
    for (k, (theta, expect)) in points.iter().enumerate() {
        assert_eq!(theta.len(), dim, "test bug: {what}: point length");
        let fail =
            |msg: String| TestCaseError::fail(format!("{what}, point {k}: {msg}\n  theta = {theta:?}\n{}", shown(p)));
        let ri: Result<Eval, _> = interp.eval(theta).and_then(|e| interp.gradient(&mut gi).map(|_| e));
        let rj = jit.eval_grad(theta, &mut gj);
        match (&ri, &rj) {
            (Ok(a), Ok(b)) => {
                if *expect == Expect::Fails {
                    return Err(fail(format!("expected both to fail; interpreter {a:?}, jit {b:?}")));
                }
                if !close(a.logp, b.logp, 1.0) {
                    return Err(fail(format!("logp: interpreter {:e}, jit {:e}", a.logp, b.logp)));
                }
                if !close(a.jacobian, b.jacobian, 1.0) {
                    return Err(fail(format!("jacobian: interpreter {:e}, jit {:e}", a.jacobian, b.jacobian)));
                }
                let gscale = gi.iter().fold(1.0f64, |m, g| m.max(g.abs()));
                for i in 0..dim {
                    if !close(gi[i], gj[i], gscale) {
                        return Err(fail(format!(
                            "gradient[{i}]: interpreter {:e}, jit {:e}\n  interpreter {gi:?}\n  jit         {gj:?}",
                            gi[i], gj[i]
                        )));
                    }
                }
                // The value alone (no reverse sweep) is the same computation.
                match jit.eval(theta) {
                    Ok(e) if e.logp.to_bits() == b.logp.to_bits() && e.jacobian.to_bits() == b.jacobian.to_bits() => {}
                    other => return Err(fail(format!("jit without gradient {other:?}, with gradient {b:?}"))),
                }
            }
            (Err(a), Err(b)) => {
                if *expect == Expect::Finite {
                    return Err(fail(format!("expected a finite density; both failed: interpreter `{a}`, jit `{b}`")));
                }
                if !(a.recoverable && b.recoverable) {
                    return Err(fail(format!("errors must be recoverable: interpreter {a:?}, jit {b:?}")));
                }
                // Without the gradient the two agree too (both fail, or both succeed when only
                // the gradient is not finite).
                match (interp.eval(theta), jit.eval(theta)) {
                    (Err(a), Err(b)) if a.recoverable && b.recoverable => {}
                    (Ok(a), Ok(b)) if close(a.logp, b.logp, 1.0) && close(a.jacobian, b.jacobian, 1.0) => {}
                    (vi, vj) => return Err(fail(format!("without gradient: interpreter {vi:?}, jit {vj:?}"))),
                }
            }
            _ => {
                return Err(fail(format!(
                    "the backends disagree on failure: interpreter {ri:?}, jit {rj:?}\n  interpreter gradient {gi:?}\n  jit gradient {gj:?}"
                )))
            }
        }
    }
    Ok(())
}

fn check_all(cases: &[Case], r: &mut Rng) -> Result<(), TestCaseError> {
    for c in cases {
        c.check(r)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Domains: where a function's arguments are drawn, as parameters or as data
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Dom {
    /// Uniform in [lo, hi): an unconstrained parameter, or data.
    U(f64, f64),
    /// ±[0.1, 3).
    AwayZero,
    /// An integer plus a fraction in [0.15, 0.35] or [0.65, 0.85] (away from floor/round jumps).
    Steps,
    /// Integers in lo..=hi.
    Int(i64, i64),
    /// ±(1..=7).
    NonzeroInt,
    /// lb + exp(t), t uniform in [t0, t1): a `Lower` parameter with a literal bound.
    Lower(f64, f64, f64),
    /// ub − exp(t): an `Upper` parameter.
    Upper(f64, f64, f64),
    /// lb + (ub − lb) σ(t): a `LowerUpper` parameter.
    Between(f64, f64, f64, f64),
}

const WIDE: Dom = Dom::U(-3.0, 3.0);
const POS: Dom = Dom::Lower(0.0, -1.0, 1.0);
const UNIT: Dom = Dom::Between(0.0, 1.0, -2.5, 2.5);

impl Dom {
    /// A value in the domain.
    fn draw(self, r: &mut Rng) -> f64 {
        match self {
            Dom::U(lo, hi) => r.uniform(lo, hi),
            Dom::AwayZero => r.sign() * r.uniform(0.1, 3.0),
            Dom::Steps => {
                let k = r.int(-5, 5) as f64;
                let f = r.uniform(0.15, 0.35);
                k + if r.coin() { f } else { 1.0 - f }
            }
            Dom::Int(lo, hi) => r.int(lo, hi) as f64,
            Dom::NonzeroInt => r.sign() * r.int(1, 7) as f64,
            Dom::Lower(lb, t0, t1) => lb + r.uniform(t0, t1).exp(),
            Dom::Upper(ub, t0, t1) => ub - r.uniform(t0, t1).exp(),
            Dom::Between(lb, ub, t0, t1) => lb + (ub - lb) * sigmoid(r.uniform(t0, t1)),
        }
    }

    fn is_int(self) -> bool {
        matches!(self, Dom::Int(..) | Dom::NonzeroInt)
    }

    /// A parameter whose constrained values lie in the domain.
    fn param(self, b: &mut B, shape: &[usize]) -> V {
        match self {
            Dom::U(..) | Dom::AwayZero | Dom::Steps | Dom::Int(..) | Dom::NonzeroInt => {
                b.param(Kind::Identity, shape, &[], move |r| self.draw(r))
            }
            Dom::Lower(lb, t0, t1) => {
                let l = b.lit(lb);
                b.param(Kind::Lower, shape, &[l], move |r| r.uniform(t0, t1))
            }
            Dom::Upper(ub, t0, t1) => {
                let u = b.lit(ub);
                b.param(Kind::Upper, shape, &[u], move |r| r.uniform(t0, t1))
            }
            Dom::Between(lb, ub, t0, t1) => {
                let (l, u) = (b.lit(lb), b.lit(ub));
                b.param(Kind::LowerUpper, shape, &[l, u], move |r| r.uniform(t0, t1))
            }
        }
    }

    fn data(self, b: &mut B, shape: &[usize], r: &mut Rng) -> V {
        let vals: Vec<f64> = (0..numel(shape)).map(|_| self.draw(r)).collect();
        b.data(vals, shape, self.is_int(), r)
    }

    fn arg(self, b: &mut B, shape: &[usize], param: bool, r: &mut Rng) -> V {
        if param {
            self.param(b, shape)
        } else {
            self.data(b, shape, r)
        }
    }
}

fn src(param: bool) -> &'static str {
    if param {
        "param"
    } else {
        "data"
    }
}

// ---------------------------------------------------------------------------------------------
// Every primitive has a property here
// ---------------------------------------------------------------------------------------------

/// Which test covers each primitive: no wildcard, so a new primitive does not compile until it
/// is listed (and tested).
fn covered_by(p: &Prim) -> &'static str {
    match p {
        Prim::Const(_) | Prim::Lit(_) => "every test (data and weights)",
        Prim::Constrain(_) => "constrain_every_kind",
        Prim::Input(_) => "tests/jit.rs: dropout_masks_are_runtime_inputs",
        Prim::Unary(_) => "unary_every_function",
        Prim::Binary(_) => "binary_every_function_and_broadcast",
        Prim::Select => "select_both_branches",
        Prim::MatMul => "matmul_every_form",
        Prim::Transpose
        | Prim::Fill(_)
        | Prim::Reshape(_)
        | Prim::DiagMatrix
        | Prim::Diagonal
        | Prim::ColMeans
        | Prim::ColSums
        | Prim::RowMeans
        | Prim::RowSums
        | Prim::Softmax
        | Prim::LogSoftmax
        | Prim::LayerNorm
        | Prim::LogMix
        | Prim::LogMixVec => "structural_and_row_wise",
        Prim::Reduce(_) => "reductions_every_kind",
        Prim::Cholesky | Prim::GpExpQuadCov => "cholesky_and_gp_cov",
        Prim::Conv2d { .. } | Prim::Pool2d(..) => "convolution_and_pooling",
        Prim::Reparam => "reparam_draws",
        Prim::Index(_) => "index_every_form",
        Prim::Load(..) => "slots_store_and_load, slots_in_loops",
        Prim::LogDensity(_) => "densities_every_family, normal_every_broadcast",
        Prim::LogCdf(..) => "log_cdfs_every_family",
        Prim::Rng(..) => "none: draws are made in generated quantities, outside the density",
    }
}

const ALL_RED: [Red; 8] = [Red::Sum, Red::Mean, Red::Sd, Red::Variance, Red::Prod, Red::Min, Red::Max, Red::LogSumExp];

const ALL_KIND: [Kind; 8] = [
    Kind::Identity,
    Kind::Lower,
    Kind::Upper,
    Kind::LowerUpper,
    Kind::Simplex,
    Kind::Ordered,
    Kind::PositiveOrdered,
    Kind::CholeskyCorr,
];

/// The variant lists (`Un::ALL` and `Bin::ALL`, which the tests and the compiled code's symbol
/// table share, and the two above) hold every variant in order: each variant's position, by
/// an exhaustive match.
#[test]
fn the_variant_lists_are_complete() {
    fn un_pos(u: Un) -> usize {
        match u {
            Un::Neg => 0,
            Un::Not => 1,
            Un::Exp => 2,
            Un::Log => 3,
            Un::Log1p => 4,
            Un::Expm1 => 5,
            Un::Sqrt => 6,
            Un::Square => 7,
            Un::Abs => 8,
            Un::Tanh => 9,
            Un::Sigmoid => 10,
            Un::Logit => 11,
            Un::Softplus => 12,
            Un::Relu => 13,
            Un::Lgamma => 14,
            Un::Digamma => 15,
            Un::Sin => 16,
            Un::Cos => 17,
            Un::Erf => 18,
            Un::Phi => 19,
            Un::Log1m => 20,
            Un::LogInvLogit => 21,
            Un::Inv => 22,
            Un::Floor => 23,
            Un::Ceil => 24,
            Un::Round => 25,
        }
    }
    fn bin_pos(b: Bin) -> usize {
        match b {
            Bin::Add => 0,
            Bin::Sub => 1,
            Bin::Mul => 2,
            Bin::Div => 3,
            Bin::IntDiv => 4,
            Bin::Mod => 5,
            Bin::Pow => 6,
            Bin::Min => 7,
            Bin::Max => 8,
            Bin::LogSumExp => 9,
            Bin::Eq => 10,
            Bin::Ne => 11,
            Bin::Lt => 12,
            Bin::Le => 13,
            Bin::Gt => 14,
            Bin::Ge => 15,
            Bin::And => 16,
            Bin::Or => 17,
        }
    }
    fn red_pos(r: Red) -> usize {
        match r {
            Red::Sum => 0,
            Red::Mean => 1,
            Red::Sd => 2,
            Red::Variance => 3,
            Red::Prod => 4,
            Red::Min => 5,
            Red::Max => 6,
            Red::LogSumExp => 7,
        }
    }
    fn kind_pos(k: Kind) -> usize {
        match k {
            Kind::Identity => 0,
            Kind::Lower => 1,
            Kind::Upper => 2,
            Kind::LowerUpper => 3,
            Kind::Simplex => 4,
            Kind::Ordered => 5,
            Kind::PositiveOrdered => 6,
            Kind::CholeskyCorr => 7,
        }
    }
    for (i, u) in Un::ALL.iter().enumerate() {
        assert_eq!(un_pos(*u), i, "{u:?}");
    }
    for (i, b) in Bin::ALL.iter().enumerate() {
        assert_eq!(bin_pos(*b), i, "{b:?}");
    }
    for (i, r) in ALL_RED.iter().enumerate() {
        assert_eq!(red_pos(*r), i, "{r:?}");
    }
    for (i, k) in ALL_KIND.iter().enumerate() {
        assert_eq!(kind_pos(*k), i, "{k:?}");
    }
    for f in Family::ALL {
        assert!(!covered_by(&Prim::LogDensity(*f)).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise functions of one argument
// ---------------------------------------------------------------------------------------------

/// Where each function is smooth (and finite): as a parameter, with the transform that keeps it
/// there.
fn un_dom(u: Un) -> Dom {
    match u {
        Un::Neg
        | Un::Exp
        | Un::Expm1
        | Un::Square
        | Un::Tanh
        | Un::Sigmoid
        | Un::Softplus
        | Un::Sin
        | Un::Cos
        | Un::Erf
        | Un::Phi
        | Un::LogInvLogit => WIDE,
        // Zero among the values: `!0 = 1`.
        Un::Not => Dom::Int(-1, 1),
        Un::Abs | Un::Relu | Un::Inv => Dom::AwayZero,
        Un::Floor | Un::Ceil | Un::Round => Dom::Steps,
        Un::Log | Un::Sqrt => Dom::Lower(0.0, -1.5, 1.4),
        Un::Lgamma | Un::Digamma => Dom::Lower(0.0, -0.69, 2.07),
        Un::Logit => Dom::Between(0.0, 1.0, -3.0, 3.0),
        Un::Log1p => Dom::Lower(-1.0, -1.6, 1.38),
        Un::Log1m => Dom::Upper(1.0, -1.6, 1.38),
    }
}

/// A scalar, a vector or a matrix, sizes 1–5.
fn any_shape() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![Just(vec![]), (1usize..6).prop_map(|n| vec![n]), (1usize..6, 1usize..6).prop_map(|(r, c)| vec![r, c]),]
}

proptest! {
    #![proptest_config(config())]

    /// Every `Un` on a parameter of random shape (the reverse sweep) and on data of the same
    /// shape (forward only).
    #[test]
    fn unary_every_function(seed in any::<u64>(), dims in any_shape()) {
        let mut r = Rng::new(seed);
        for u in Un::ALL {
            let dom = un_dom(u);
            let mut b = B::new();
            let x = dom.param(&mut b, &dims);
            let y = b.op(Prim::Unary(u), &[x]);
            b.weighted(y, &mut r);
            let d = dom.data(&mut b, &dims, &mut r);
            let z = b.op(Prim::Unary(u), &[d]);
            b.weighted(z, &mut r);
            b.finish(format!("{u:?} on {dims:?}")).check(&mut r)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise functions of two arguments
// ---------------------------------------------------------------------------------------------

/// Domains of (a, b), and of x in `x op x`.
fn bin_doms(op: Bin) -> (Dom, Dom, Dom) {
    let small = Dom::Int(-2, 2);
    match op {
        Bin::Add | Bin::Sub | Bin::Mul | Bin::Min | Bin::Max => (WIDE, WIDE, WIDE),
        Bin::Div => (WIDE, Dom::AwayZero, Dom::AwayZero),
        Bin::IntDiv | Bin::Mod => (Dom::Int(-20, 20), Dom::NonzeroInt, Dom::NonzeroInt),
        Bin::Pow => (Dom::Lower(0.0, -1.2, 1.1), Dom::U(-2.0, 2.0), Dom::Lower(0.0, -1.2, 1.1)),
        Bin::LogSumExp => (Dom::U(-6.0, 6.0), Dom::U(-6.0, 6.0), Dom::U(-6.0, 6.0)),
        Bin::Eq | Bin::Ne | Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge | Bin::And | Bin::Or => (small, small, small),
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every `Bin` with every broadcast: scalar with scalar, scalar with vector (both sides),
    /// vector with vector, a vector along the rows of a matrix (both sides), matrix with
    /// scalar (both sides), matrix with matrix, one-element vectors; each side a parameter or
    /// data (a literal or a constant) at random; and `x op x` on a scalar, a vector or a matrix.
    #[test]
    fn binary_every_function_and_broadcast(seed in any::<u64>(), rows in 1usize..5, c in 1usize..5) {
        let mut r = Rng::new(seed);
        let m = vec![rows, c];
        let combos: [(Vec<usize>, Vec<usize>); 11] = [
            (vec![], vec![]),
            (vec![], vec![c]),
            (vec![c], vec![]),
            (vec![c], vec![c]),
            (m.clone(), vec![c]),
            (vec![c], m.clone()),
            (m.clone(), vec![]),
            (vec![], m.clone()),
            (m.clone(), m.clone()),
            (vec![1], vec![c]),
            (m.clone(), vec![1]),
        ];
        for op in Bin::ALL {
            let (da, db, dx) = bin_doms(op);
            // Four of the combinations per case (a random permutation's first four): every
            // (op, combination) pair is drawn about 23 times in 64 cases.
            let mut order: Vec<usize> = (0..combos.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, r.below(0, i + 1));
            }
            for (sa, sb) in order[..4].iter().map(|i| &combos[*i]) {
                // Both parameters, one side data, or both data (forward only).
                let (pa, pb) = [(true, true), (false, true), (true, false), (false, false)][r.below(0, 4)];
                let mut b = B::new();
                let x = da.arg(&mut b, sa, pa, &mut r);
                let y = db.arg(&mut b, sb, pb, &mut r);
                let z = b.bin(op, x, y);
                b.weighted(z, &mut r);
                b.finish(format!("{op:?}: {} {sa:?} with {} {sb:?}", src(pa), src(pb))).check(&mut r)?;
            }
            {
                let s = [vec![], vec![c], m.clone()][r.below(0, 3)].clone();
                let mut b = B::new();
                let x = dx.param(&mut b, &s);
                let z = b.bin(op, x, x);
                b.weighted(z, &mut r);
                b.finish(format!("{op:?}: x op x on {s:?}")).check(&mut r)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Select
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// `cond ? a : b` with a data condition, true and false, in every form (a literal, a 0-d
    /// or one-element constant, computed from data), and a and b broadcast.
    #[test]
    fn select_both_branches(seed in any::<u64>(), rows in 1usize..5, c in 1usize..5) {
        let mut r = Rng::new(seed);
        let m = vec![rows, c];
        let combos: [(Vec<usize>, Vec<usize>); 8] = [
            (m.clone(), m.clone()),
            (vec![], vec![c]),
            (vec![c], vec![]),
            (vec![c], m.clone()),
            (m.clone(), vec![c]),
            (vec![], vec![]),
            (vec![], m.clone()),
            (vec![c], vec![c]),
        ];
        for truth in [true, false] {
            for (sa, sb) in &combos {
                let mut b = B::new();
                let form = r.below(0, 4);
                let cond = match form {
                    0 => b.ilit(if truth { r.int(1, 3) } else { 0 }),
                    1 => b.konst(vec![if truth { -2.0 } else { 0.0 }], &[], true),
                    2 => b.konst(vec![if truth { 1.0 } else { 0.0 }], &[1], true),
                    _ => {
                        let (p, q) = (b.ilit(3), b.ilit(if truth { 1 } else { 5 }));
                        b.bin(Bin::Gt, p, q)
                    }
                };
                let (pa, pb) = [(true, true), (false, true), (true, false)][r.below(0, 3)];
                let x = Dom::U(-2.0, 2.0).arg(&mut b, sa, pa, &mut r);
                let y = Dom::U(-2.0, 2.0).arg(&mut b, sb, pb, &mut r);
                let z = b.op(Prim::Select, &[cond, x, y]);
                b.weighted(z, &mut r);
                b.finish(format!("select({truth}, form {form}): {} {sa:?}, {} {sb:?}", src(pa), src(pb))).check(&mut r)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// [r,k]@[k,c], [r,k]@[k], [k]@[k,c] and [k]@[k], with parameters on either side or both.
    #[test]
    fn matmul_every_form(seed in any::<u64>(), rows in 1usize..6, k in 1usize..6, c in 1usize..6) {
        let mut r = Rng::new(seed);
        let forms: [(Vec<usize>, Vec<usize>); 4] =
            [(vec![rows, k], vec![k, c]), (vec![rows, k], vec![k]), (vec![k], vec![k, c]), (vec![k], vec![k])];
        for (sa, sb) in &forms {
            for (pa, pb) in [(true, true), (true, false), (false, true)] {
                let mut b = B::new();
                let x = Dom::U(-2.0, 2.0).arg(&mut b, sa, pa, &mut r);
                let y = Dom::U(-2.0, 2.0).arg(&mut b, sb, pb, &mut r);
                let z = b.op(Prim::MatMul, &[x, y]);
                b.weighted(z, &mut r);
                b.finish(format!("{} {sa:?} @ {} {sb:?}", src(pa), src(pb))).check(&mut r)?;
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A draw m + √(v + δ)·ε with each argument a parameter or data (v positive, and
    /// sometimes exactly 0), the mean and variance used by the draw alone (so the compiled
    /// reverse writes their adjoints over) or also elsewhere (so it adds into them).
    #[test]
    fn reparam_draws(seed in any::<u64>(), rows in 1usize..5, c in 1usize..12) {
        let mut r = Rng::new(seed);
        let shape = [rows, c];
        for (pm, pv, pe) in [(true, true, false), (true, false, true), (false, true, true), (true, true, true)] {
            for shared in [false, true] {
                let mut b = B::new();
                let m = Dom::U(-2.0, 2.0).arg(&mut b, &shape, pm, &mut r);
                let v = if pv {
                    Dom::Lower(0.0, -3.0, 1.0).param(&mut b, &shape)
                } else {
                    let vals = (0..rows * c).map(|i| if i % 3 == 0 { 0.0 } else { r.uniform(0.0, 2.0) }).collect();
                    b.data(vals, &shape, false, &mut r)
                };
                let e = Dom::U(-2.0, 2.0).arg(&mut b, &shape, pe, &mut r);
                let z = b.op(Prim::Reparam, &[m, v, e]);
                b.weighted(z, &mut r);
                if shared {
                    b.weighted(m, &mut r);
                    b.weighted(v, &mut r);
                }
                b.finish(format!("reparam {rows}x{c}: m {}, v {}, eps {}, shared {shared}", src(pm), src(pv), src(pe))).check(&mut r)?;
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Conv2d with every stride and padding that tiles the input, filters and bias as
    /// parameters or data, input as data or parameters, then max and average pooling.
    #[test]
    fn convolution_and_pooling(seed in any::<u64>(), n in 1usize..3, c in 1usize..3, f in 1usize..3, k in 1usize..4, hw in 3usize..7) {
        let mut r = Rng::new(seed);
        for (stride, padding) in [(1, 0), (1, 1), (2, 0), (2, 1)] {
            let (sh, sw) = (hw + 2 * padding, hw + 1 + 2 * padding);
            if k > sh || (sh - k) % stride != 0 || (sw - k) % stride != 0 {
                continue;
            }
            let (oh, ow) = ((sh - k) / stride + 1, (sw - k) / stride + 1);
            for (px, pw) in [(false, true), (true, false), (true, true)] {
                let mut b = B::new();
                let x = Dom::U(-2.0, 2.0).arg(&mut b, &[n, c, hw, hw + 1], px, &mut r);
                let w = Dom::U(-1.0, 1.0).arg(&mut b, &[f, c, k, k], pw, &mut r);
                let bias = Dom::U(-1.0, 1.0).arg(&mut b, &[f], pw, &mut r);
                let z = b.op(Prim::Conv2d { stride, padding }, &[x, w, bias]);
                b.weighted(z, &mut r);
                for pool in [Pool::Max, Pool::Avg] {
                    if oh >= 2 && ow >= 2 {
                        let q = b.op(Prim::Pool2d(pool, 2), &[z]);
                        b.weighted(q, &mut r);
                    }
                }
                b.finish(format!("conv2d {n}x{c}x{hw}x{} by {f}x{c}x{k}x{k}, stride {stride}, padding {padding}: x {}, w {}", hw + 1, src(px), src(pw))).check(&mut r)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Every `Red` on a vector or a matrix of parameters (and the same on data). The sample
    /// variance and sd of one element are 0, as Stan's.
    #[test]
    fn reductions_every_kind(seed in any::<u64>(), dims in prop_oneof![(1usize..7).prop_map(|n| vec![n]), (1usize..5, 1usize..5).prop_map(|(a, c)| vec![a, c])]) {
        let mut r = Rng::new(seed);
        for red in ALL_RED {
            let mut b = B::new();
            let x = match red {
                // Sometimes an exact zero: the product's gradient must not divide by it.
                Red::Prod => b.param(Kind::Identity, &dims, &[], |r| {
                    if r.below(0, 5) == 0 { 0.0 } else { r.sign() * r.uniform(0.5, 1.5) }
                }),
                Red::Sum | Red::Mean | Red::Sd | Red::Variance | Red::Min | Red::Max | Red::LogSumExp => {
                    b.pu(&dims, -3.0, 3.0)
                }
            };
            let y = b.op(Prim::Reduce(red), &[x]);
            b.weighted(y, &mut r);
            let d = WIDE.data(&mut b, &dims, &mut r);
            let z = b.op(Prim::Reduce(red), &[d]);
            b.weighted(z, &mut r);
            b.finish(format!("{red:?} of {dims:?}")).check_as(&mut r, Expect::Finite)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes, rows and mixtures
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Transpose, Fill, Reshape, DiagMatrix, Diagonal, ColMeans/ColSums/RowMeans/RowSums,
    /// Softmax and LogSoftmax of vectors and matrices, LayerNorm of matrices and tensors, LogMix
    /// and LogMixVec.
    #[test]
    fn structural_and_row_wise(seed in any::<u64>(), rows in 1usize..5, c in 1usize..5) {
        let mut r = Rng::new(seed);
        let mut cases = Vec::new();
        for s in [vec![rows, c], vec![c]] {
            let mut b = B::new();
            let x = b.pu(&s, -2.0, 2.0);
            let y = b.op(Prim::Transpose, &[x]);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("Transpose of {s:?}")));
        }
        for s in [vec![], vec![c], vec![rows, c]] {
            let mut b = B::new();
            let x = b.pu(&[], -2.0, 2.0);
            let y = b.op(Prim::Fill(s.clone()), &[x]);
            b.weighted(y, &mut r);
            let l = b.lit(r.uniform(-2.0, 2.0));
            let z = b.op(Prim::Fill(s.clone()), &[l]);
            b.weighted(z, &mut r);
            cases.push(b.finish(format!("Fill {s:?}")));
        }
        for (from, to) in [
            (vec![rows, c], vec![rows * c]),
            (vec![rows * c], vec![c, rows]),
            (vec![rows, c], vec![c, rows]),
            (vec![c], vec![1, c]),
        ] {
            let mut b = B::new();
            let x = b.pu(&from, -2.0, 2.0);
            let y = b.op(Prim::Reshape(to.clone()), &[x]);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("Reshape {from:?} to {to:?}")));
        }
        {
            let mut b = B::new();
            let x = b.pu(&[c], -2.0, 2.0);
            let y = b.op(Prim::DiagMatrix, &[x]);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("DiagMatrix of [{c}]")));
            let mut b = B::new();
            let x = b.pu(&[c, c], -2.0, 2.0);
            let y = b.op(Prim::Diagonal, &[x]);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("Diagonal of [{c}, {c}]")));
        }
        for p in [Prim::ColMeans, Prim::ColSums, Prim::RowMeans, Prim::RowSums] {
            let mut b = B::new();
            let x = b.pu(&[rows, c], -2.0, 2.0);
            let y = b.op(p.clone(), &[x]);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("{p:?} of [{rows}, {c}]")));
        }
        for p in [Prim::Softmax, Prim::LogSoftmax] {
            for s in [vec![c], vec![rows, c]] {
                let mut b = B::new();
                let x = b.pu(&s, -4.0, 4.0);
                let y = b.op(p.clone(), &[x]);
                b.weighted(y, &mut r);
                cases.push(b.finish(format!("{p:?} of {s:?}")));
            }
        }
        for s in [vec![rows, c], vec![rows, 2, c, 2]] {
            let mut b = B::new();
            let x = b.pu(&s, -3.0, 3.0);
            let y = b.op(Prim::LayerNorm, &[x]);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("LayerNorm of {s:?}")));
        }
        // log_mix(t, a, b) on scalars, each a parameter or data.
        for mask in 0..8 {
            let (pt, pa, pb) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0);
            let mut b = B::new();
            let t = UNIT.arg(&mut b, &[], pt, &mut r);
            let x = Dom::U(-6.0, 2.0).arg(&mut b, &[], pa, &mut r);
            let y = Dom::U(-6.0, 2.0).arg(&mut b, &[], pb, &mut r);
            let z = b.op(Prim::LogMix, &[t, x, y]);
            b.weighted(z, &mut r);
            cases.push(b.finish(format!("LogMix({}, {}, {})", src(pt), src(pa), src(pb))));
        }
        // log_mix(w, l) on vectors: weights on a simplex, positive, or data.
        for wform in 0..3 {
            for pl in [true, false] {
                let mut b = B::new();
                let w = match wform {
                    0 => b.param(Kind::Simplex, &[c], &[], |r| r.uniform(-1.5, 1.5)),
                    1 => POS.param(&mut b, &[c]),
                    _ => POS.data(&mut b, &[c], &mut r),
                };
                let l = Dom::U(-6.0, 2.0).arg(&mut b, &[c], pl, &mut r);
                let z = b.op(Prim::LogMixVec, &[w, l]);
                b.weighted(z, &mut r);
                cases.push(b.finish(format!("LogMixVec(weights form {wform}, {} [{c}])", src(pl))));
            }
        }
        check_all(&cases, &mut r)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Cholesky and the squared-exponential covariance
// ---------------------------------------------------------------------------------------------

fn eye(k: usize, s: f64) -> Vec<f64> {
    (0..k * k).map(|i| if i % (k + 1) == 0 { s } else { 0.0 }).collect()
}

/// A Aᵀ + k I from a parameter A (symmetric positive definite).
fn spd_from_params(b: &mut B, k: usize) -> V {
    let a = b.pu(&[k, k], -1.0, 1.0);
    let at = b.op(Prim::Transpose, &[a]);
    let s = b.op(Prim::MatMul, &[a, at]);
    let d = b.konst(eye(k, k as f64), &[k, k], false);
    b.bin(Bin::Add, s, d)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cholesky_and_gp_cov(seed in any::<u64>(), k in 1usize..6) {
        let mut r = Rng::new(seed);
        let mut cases = Vec::new();
        {
            let mut b = B::new();
            let a = spd_from_params(&mut b, k);
            let l = b.op(Prim::Cholesky, &[a]);
            b.weighted(l, &mut r);
            // And of data (forward only).
            let m = r.vec(k * k, -1.0, 1.0);
            let mut spd = eye(k, 1.0);
            for i in 0..k {
                for j in 0..k {
                    spd[i * k + j] += (0..k).map(|p| m[i * k + p] * m[j * k + p]).sum::<f64>();
                }
            }
            let d = b.konst(spd, &[k, k], false);
            let ld = b.op(Prim::Cholesky, &[d]);
            b.weighted(ld, &mut r);
            cases.push(b.finish(format!("Cholesky of A Aᵀ + k I, [{k}, {k}]")));
        }
        for mask in 0..8 {
            let (px, pa, pr) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0);
            let mut b = B::new();
            let x = Dom::U(-2.0, 2.0).arg(&mut b, &[k], px, &mut r);
            // A negative amplitude is allowed (only its square matters).
            let alpha = if pa && r.coin() { b.pu(&[], -2.0, 2.0) } else { Dom::Lower(0.0, -1.0, 0.7).arg(&mut b, &[], pa, &mut r) };
            let rho = Dom::Lower(0.0, -0.9, 0.7).arg(&mut b, &[], pr, &mut r);
            let cov = b.op(Prim::GpExpQuadCov, &[x, alpha, rho]);
            b.weighted(cov, &mut r);
            // As a GP model uses it: the factor of K + jitter.
            let j = b.konst(eye(k, 0.1), &[k, k], false);
            let kj = b.bin(Bin::Add, cov, j);
            let l = b.op(Prim::Cholesky, &[kj]);
            b.weighted(l, &mut r);
            cases.push(b.finish(format!("GpExpQuadCov({} x [{k}], {} alpha, {} rho)", src(px), src(pa), src(pr))));
        }
        check_all(&cases, &mut r)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Indexing values and slots
// ---------------------------------------------------------------------------------------------

/// Every index form on a tensor of rank `rank`: 0..=rank positions, each Single, All, Range
/// or Gather (the range length and the indices are chosen later).
fn all_forms(rank: usize) -> Vec<Vec<Ix>> {
    let kinds = [Ix::Single, Ix::All, Ix::Range(0), Ix::Gather];
    let mut out = vec![vec![]];
    let mut layer: Vec<Vec<Ix>> = vec![vec![]];
    for _ in 0..rank {
        layer = layer
            .iter()
            .flat_map(|f| {
                kinds.iter().map(move |k| {
                    let mut g = f.clone();
                    g.push(*k);
                    g
                })
            })
            .collect();
        out.extend(layer.iter().cloned());
    }
    out
}

fn random_form(r: &mut Rng, rank: usize) -> Vec<Ix> {
    let forms = all_forms(rank);
    forms[r.below(0, forms.len())].clone()
}

/// Index arguments for `form` on a tensor of shape `base`, in range: single indices and range
/// starts as literals, constants or computed from data; gathers of 1–4 positions as int
/// constants, often with a repeated position.
fn make_index(b: &mut B, r: &mut Rng, form: &[Ix], base: &[usize]) -> (Vec<Ix>, Vec<V>) {
    let mut ix = Vec::new();
    let mut args = Vec::new();
    for (d, f) in form.iter().enumerate() {
        match f {
            Ix::Single => {
                let i = r.below(0, base[d]);
                ix.push(Ix::Single);
                args.push(b.index_int(i as i64, r));
            }
            Ix::All => ix.push(Ix::All),
            Ix::Range(_) => {
                let lo = r.below(0, base[d]);
                let len = r.below(1, base[d] - lo + 1);
                ix.push(Ix::Range(len));
                args.push(b.index_int(lo as i64, r));
            }
            Ix::Gather => {
                let m = r.below(1, 5);
                let mut g: Vec<f64> = (0..m).map(|_| r.below(0, base[d]) as f64).collect();
                if m >= 2 && r.coin() {
                    g[m - 1] = g[0];
                }
                ix.push(Ix::Gather);
                args.push(b.konst(g, &[m], true));
            }
        }
    }
    (ix, args)
}

proptest! {
    #![proptest_config(config())]

    /// Every index form on a vector and on a matrix of parameters (5 and 21 forms), and
    /// random forms on a 3-d tensor; each also on data of the same shape.
    #[test]
    fn index_every_form(seed in any::<u64>(), n in 1usize..6, rows in 1usize..5, c in 1usize..5, d3 in (1usize..4, 1usize..4, 1usize..4)) {
        let mut r = Rng::new(seed);
        let mut jobs: Vec<(Vec<usize>, Vec<Ix>)> = Vec::new();
        for f in all_forms(1) {
            jobs.push((vec![n], f));
        }
        for f in all_forms(2) {
            jobs.push((vec![rows, c], f));
        }
        for _ in 0..4 {
            jobs.push((vec![d3.0, d3.1, d3.2], random_form(&mut r, 3)));
        }
        for (base, form) in jobs {
            let mut b = B::new();
            let x = b.pu(&base, -3.0, 3.0);
            let (ix, args) = make_index(&mut b, &mut r, &form, &base);
            let mut all = vec![x];
            all.extend(&args);
            let y = b.op(Prim::Index(ix.clone()), &all);
            b.weighted(y, &mut r);
            let d = WIDE.data(&mut b, &base, &mut r);
            all[0] = d;
            let z = b.op(Prim::Index(ix.clone()), &all);
            b.weighted(z, &mut r);
            b.finish(format!("Index {ix:?} on {base:?}")).check(&mut r)?;
        }
    }

    /// A slot initialised (from a parameter, a broadcast scalar parameter, a literal, or NaN
    /// then stored whole), then stores through random index forms (of parameters, broadcast
    /// scalars, data, or read-modify-write of what is there), then loads through random forms.
    #[test]
    fn slots_store_and_load(seed in any::<u64>(), base in prop_oneof![(1usize..6).prop_map(|n| vec![n]), (1usize..5, 1usize..5).prop_map(|(a, c)| vec![a, c])]) {
        let mut r = Rng::new(seed);
        for _ in 0..4 {
            let mut b = B::new();
            let s = b.slot(&base);
            let init = r.below(0, 4);
            match init {
                0 => {
                    let x = b.pu(&base, -2.0, 2.0);
                    b.init(s, Some(x));
                }
                1 => {
                    let x = b.pu(&[], -2.0, 2.0);
                    b.init(s, Some(x));
                }
                2 => {
                    let l = b.lit(r.uniform(-2.0, 2.0));
                    b.init(s, Some(l));
                }
                _ => {
                    b.init(s, None);
                    let x = b.pu(&base, -2.0, 2.0);
                    b.store(s, vec![], vec![], x);
                }
            }
            let mut ops = vec![format!("init {init}")];
            for _ in 0..3 {
                let form = random_form(&mut r, base.len());
                let (ix, idx) = make_index(&mut b, &mut r, &form, &base);
                let shape = {
                    let refs: Vec<&[usize]> = idx.iter().map(|v| b.p.info(*v).shape.as_slice()).collect();
                    Prim::Load(s, ix.clone()).shape(&refs, &[], Some(base.as_slice())).expect("index shape")
                };
                let kind = r.below(0, 4);
                let value = match kind {
                    0 => b.pu(&shape, -2.0, 2.0),
                    1 => b.pu(&[], -2.0, 2.0),
                    2 => WIDE.data(&mut b, &shape, &mut r),
                    _ => {
                        let cur = b.load(s, ix.clone(), &idx);
                        let q = b.pu(&[], -2.0, 2.0);
                        b.bin(Bin::Mul, cur, q)
                    }
                };
                ops.push(format!("store {ix:?} value {kind}"));
                b.store(s, ix, idx, value);
            }
            for _ in 0..2 {
                let form = random_form(&mut r, base.len());
                let (ix, idx) = make_index(&mut b, &mut r, &form, &base);
                ops.push(format!("load {ix:?}"));
                let y = b.load(s, ix, &idx);
                b.weighted(y, &mut r);
            }
            let all = b.load(s, vec![], &[]);
            b.weighted(all, &mut r);
            b.finish(format!("slot {base:?}: {}", ops.join(", "))).check(&mut r)?;
        }
    }

    /// Stores and loads inside loops: a running sum and a per-iteration store (with a
    /// zero-trip loop beside them), nested loops filling a matrix (one of them triangular, its
    /// bound computed from the outer variable), and a loop over windows with a data-dependent
    /// branch and a parameter-free slot filled in the loop.
    #[test]
    fn slots_in_loops(seed in any::<u64>(), n in 1usize..6, rows in 1usize..5, c in 1usize..5, lo in 0i64..3, w in 1usize..4) {
        let mut r = Rng::new(seed);
        let mut cases = Vec::new();
        {
            let mut b = B::new();
            let x = b.pu(&[n], -2.0, 2.0);
            let wts = b.konst(r.vec(n, 0.5, 1.5), &[n], false);
            let s = b.slot(&[n]);
            let zero = b.lit(0.0);
            b.init(s, Some(zero));
            let acc = b.slot(&[]);
            b.init(acc, Some(zero));
            let wl = r.uniform(0.5, 1.5);
            b.for_lits(0, n as i64, |b, i| {
                let xi = b.op(Prim::Index(vec![Ix::Single]), &[x, i]);
                let sq = b.bin(Bin::Mul, xi, xi);
                b.store(s, vec![Ix::Single], vec![i], sq);
                let a = b.load(acc, vec![], &[]);
                let wi = b.op(Prim::Index(vec![Ix::Single]), &[wts, i]);
                let t = b.bin(Bin::Mul, xi, wi);
                let a2 = b.bin(Bin::Add, a, t);
                b.store(acc, vec![], vec![], a2);
                let back = b.load(s, vec![Ix::Single], &[i]);
                let e = b.op(Prim::Unary(Un::Sin), &[back]);
                let wv = b.lit(wl);
                let m = b.bin(Bin::Mul, e, wv);
                b.target(m);
            });
            b.for_lits(0, 0, |b, _| {
                let x0 = b.op(Prim::Reduce(Red::Sum), &[x]);
                let big = b.lit(1e3);
                let m = b.bin(Bin::Mul, x0, big);
                b.target(m);
            });
            let whole = b.load(s, vec![], &[]);
            let total = b.load(acc, vec![], &[]);
            let sq = b.bin(Bin::Mul, total, total);
            let mut rr = Rng::new(r.next_u64());
            b.weighted(whole, &mut rr);
            b.weighted(sq, &mut rr);
            cases.push(b.finish(format!("loop over [{n}] with a running sum")));
        }
        {
            let mut b = B::new();
            let a = b.pu(&[rows], -2.0, 2.0);
            let v = b.pu(&[c], -2.0, 2.0);
            let mslot = b.slot(&[rows, c]);
            b.init(mslot, None);
            let tri = b.slot(&[rows, rows]);
            let zero = b.lit(0.0);
            b.init(tri, Some(zero));
            let wrow = r.vec(c, 0.5, 1.5);
            let tri_execs: usize = (1..=rows).sum();
            b.for_lits(0, rows as i64, |b, i| {
                let ai = b.op(Prim::Index(vec![Ix::Single]), &[a, i]);
                b.for_lits(0, c as i64, |b, j| {
                    let vj = b.op(Prim::Index(vec![Ix::Single]), &[v, j]);
                    let p = b.bin(Bin::Mul, ai, vj);
                    b.store(mslot, vec![Ix::Single, Ix::Single], vec![i, j], p);
                });
                // The row just filled, weighted, inside the outer loop.
                let row = b.load(mslot, vec![Ix::Single], &[i]);
                let wr = b.konst(wrow.clone(), &[c], false);
                let m = b.bin(Bin::Mul, row, wr);
                let e = b.op(Prim::Unary(Un::Exp), &[m]);
                let t = b.op(Prim::Reduce(Red::Sum), &[e]);
                b.target(t);
                // A slot declared in the loop body (re-initialised from a scalar parameter
                // every iteration), scaled in place by an inner loop, then targeted whole.
                let rs = b.slot(&[c]);
                b.init(rs, Some(ai));
                b.for_lits(0, c as i64, |b, j| {
                    let cur = b.load(rs, vec![Ix::Single], &[j]);
                    let vj = b.op(Prim::Index(vec![Ix::Single]), &[v, j]);
                    let p = b.bin(Bin::Mul, cur, vj);
                    b.store(rs, vec![Ix::Single], vec![j], p);
                });
                let rv = b.load(rs, vec![], &[]);
                let t = b.op(Prim::Unary(Un::Tanh), &[rv]);
                b.target(t);
                // A triangular inner loop: j in 0..i+1.
                let one = b.ilit(1);
                let hi = b.bin(Bin::Add, i, one);
                let z = b.ilit(0);
                b.for_vals(z, hi, tri_execs, |b, j| {
                    let aj = b.op(Prim::Index(vec![Ix::Single]), &[a, j]);
                    let p = b.bin(Bin::Mul, ai, aj);
                    b.store(tri, vec![Ix::Single, Ix::Single], vec![i, j], p);
                });
            });
            let mut rr = Rng::new(r.next_u64());
            let whole = b.load(mslot, vec![], &[]);
            b.weighted(whole, &mut rr);
            let k = b.ilit(rr.below(0, c) as i64);
            let col = b.load(mslot, vec![Ix::All, Ix::Single], &[k]);
            b.weighted(col, &mut rr);
            let t = b.load(tri, vec![], &[]);
            b.weighted(t, &mut rr);
            cases.push(b.finish(format!("nested loops over [{rows}, {c}]")));
        }
        {
            let m = n;
            let hi = lo + m as i64;
            let len = hi as usize + w - 1;
            let mut b = B::new();
            let x = b.pu(&[len], -2.0, 2.0);
            let cnt = b.slot(&[m]);
            b.init(cnt, None);
            let evens = (lo..hi).filter(|i| i % 2 == 0).count();
            let (w1, w2, w3) = (r.uniform(0.5, 1.5), r.uniform(0.5, 1.5), r.uniform(0.5, 1.5));
            b.for_lits(lo, hi, |b, i| {
                let win = b.op(Prim::Index(vec![Ix::Range(w)]), &[x, i]);
                let l = b.op(Prim::Reduce(Red::LogSumExp), &[win]);
                let wv = b.lit(w1);
                let t = b.bin(Bin::Mul, l, wv);
                b.target(t);
                let two = b.ilit(2);
                let md = b.bin(Bin::Mod, i, two);
                let z = b.ilit(0);
                let even = b.bin(Bin::Eq, md, z);
                let xi = b.op(Prim::Index(vec![Ix::Single]), &[x, i]);
                b.branch(
                    even,
                    (evens, m - evens),
                    |b| {
                        let e = b.op(Prim::Unary(Un::Exp), &[xi]);
                        let wv = b.lit(w2);
                        let t = b.bin(Bin::Mul, e, wv);
                        b.target(t);
                    },
                    |b| {
                        let e = b.op(Prim::Unary(Un::Sin), &[xi]);
                        let wv = b.lit(w3);
                        let t = b.bin(Bin::Mul, e, wv);
                        b.target(t);
                    },
                );
                // Parameter-free: cnt[i - lo] = i * i.
                let lov = b.ilit(lo);
                let at = b.bin(Bin::Sub, i, lov);
                let sq = b.bin(Bin::Mul, i, i);
                b.store(cnt, vec![Ix::Single], vec![at], sq);
            });
            let cv = b.load(cnt, vec![], &[]);
            let lov = b.ilit(lo);
            let xs = b.op(Prim::Index(vec![Ix::Range(m)]), &[x, lov]);
            let p = b.bin(Bin::Mul, cv, xs);
            let mut rr = Rng::new(r.next_u64());
            b.weighted(p, &mut rr);
            cases.push(b.finish(format!("loop {lo}..{hi} over windows of {w} with a branch")));
        }
        check_all(&cases, &mut r)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Log densities
// ---------------------------------------------------------------------------------------------

/// Labels 0..k as data: a scalar or a vector of `m`.
fn labels(b: &mut B, r: &mut Rng, k: usize, m: usize, vector: bool) -> V {
    let shape = if vector { vec![m] } else { vec![] };
    let vals: Vec<f64> = (0..numel(&shape)).map(|_| r.below(0, k) as f64).collect();
    b.data(vals, &shape, true, r)
}

/// A Cholesky factor with a positive diagonal from parameters: diag(τ) L_corr, or chol(A Aᵀ + k I).
fn chol_factor(b: &mut B, r: &mut Rng, k: usize) -> V {
    if r.coin() {
        let tau = POS.param(b, &[k]);
        let d = b.op(Prim::DiagMatrix, &[tau]);
        let l = b.param(Kind::CholeskyCorr, &[k, k], &[], |r| r.uniform(-1.5, 1.5));
        b.op(Prim::MatMul, &[d, l])
    } else {
        let a = spd_from_params(b, k);
        b.op(Prim::Cholesky, &[a])
    }
}

/// The arguments of `f` (variate first): for a scalar family, each a scalar or a vector of `n`
/// (at random), the variate a parameter or data (data for discrete families), the parameters
/// from `Constrain` (or, now and then, data); the multivariate families built by hand.
/// Returns the arguments and a description.
fn density_args(f: Family, b: &mut B, r: &mut Rng, n: usize, k: usize, m: usize) -> (Vec<V>, String) {
    // (domain, may be a parameter)
    let elementwise = |b: &mut B, r: &mut Rng, args: &[(Dom, bool)]| {
        let mut vs = Vec::new();
        let mut desc = Vec::new();
        for (j, (dom, can_param)) in args.iter().enumerate() {
            let shape = if r.coin() { vec![] } else { vec![n] };
            // The variate a parameter half the time; parameters three times in four.
            let param = *can_param && if j == 0 { r.coin() } else { r.below(0, 4) != 0 };
            vs.push(dom.arg(b, &shape, param, r));
            desc.push(format!("{} {shape:?}", src(param)));
        }
        (vs, desc.join(", "))
    };
    let count = Dom::Int(0, 6);
    let bit = Dom::Int(0, 1);
    match f {
        Family::Normal => elementwise(b, r, &[(WIDE, true), (WIDE, true), (POS, true)]),
        Family::StdNormal => elementwise(b, r, &[(WIDE, true)]),
        Family::StudentT => {
            elementwise(b, r, &[(WIDE, true), (Dom::Lower(0.0, -0.5, 2.0), true), (WIDE, true), (POS, true)])
        }
        Family::Cauchy | Family::Laplace | Family::Logistic => {
            elementwise(b, r, &[(WIDE, true), (WIDE, true), (POS, true)])
        }
        Family::HalfNormal | Family::HalfCauchy | Family::Exponential => elementwise(b, r, &[(POS, true), (POS, true)]),
        Family::Gamma | Family::InvGamma => elementwise(b, r, &[(POS, true), (POS, true), (POS, true)]),
        Family::Lognormal => elementwise(b, r, &[(POS, true), (WIDE, true), (POS, true)]),
        Family::Beta => elementwise(b, r, &[(UNIT, true), (POS, true), (POS, true)]),
        Family::Uniform => {
            elementwise(b, r, &[(Dom::U(-1.0, 1.0), true), (Dom::U(-3.0, -1.5), true), (Dom::U(1.5, 3.0), true)])
        }
        Family::Bernoulli => elementwise(b, r, &[(bit, false), (UNIT, true)]),
        Family::BernoulliLogit => elementwise(b, r, &[(bit, false), (WIDE, true)]),
        Family::Binomial => elementwise(b, r, &[(Dom::Int(0, 4), false), (Dom::Int(5, 9), false), (UNIT, true)]),
        Family::BinomialLogit => elementwise(b, r, &[(Dom::Int(0, 4), false), (Dom::Int(5, 9), false), (WIDE, true)]),
        Family::Poisson => elementwise(b, r, &[(count, false), (POS, true)]),
        Family::PoissonLog => elementwise(b, r, &[(count, false), (WIDE, true)]),
        Family::NegBinomial2 | Family::NegBinomial => elementwise(b, r, &[(count, false), (POS, true), (POS, true)]),
        Family::NegBinomial2Log => elementwise(b, r, &[(count, false), (WIDE, true), (POS, true)]),
        Family::BetaBinomial => {
            elementwise(b, r, &[(Dom::Int(0, 4), false), (Dom::Int(5, 9), false), (POS, true), (POS, true)])
        }
        Family::Weibull | Family::Frechet | Family::ScaledInvChiSquare => {
            elementwise(b, r, &[(POS, true), (POS, true), (POS, true)])
        }
        Family::Rayleigh | Family::ChiSquare | Family::InvChiSquare => elementwise(b, r, &[(POS, true), (POS, true)]),
        Family::Pareto => elementwise(b, r, &[(Dom::U(1.0, 3.0), true), (Dom::U(0.1, 0.9), true), (POS, true)]),
        Family::Gumbel => elementwise(b, r, &[(WIDE, true), (WIDE, true), (POS, true)]),
        Family::Categorical => {
            if r.coin() {
                let th = b.param(Kind::Simplex, &[k], &[], |r| r.uniform(-1.5, 1.5));
                let vector = r.coin();
                let y = labels(b, r, k, m, vector);
                (vec![y, th], format!("labels ({vector}) with a simplex [{k}]"))
            } else {
                let z = b.pu(&[m, k], -2.0, 2.0);
                let th = b.op(Prim::Softmax, &[z]);
                let y = labels(b, r, k, m, true);
                (vec![y, th], format!("[{m}] labels with softmax rows [{m}, {k}]"))
            }
        }
        Family::CategoricalLogit => {
            let rows = r.coin();
            let beta = if rows { b.pu(&[m, k], -2.0, 2.0) } else { b.pu(&[k], -2.0, 2.0) };
            let vector = rows || r.coin();
            let y = labels(b, r, k, m, vector);
            (vec![y, beta], format!("labels ({vector}) with logits (rows {rows})"))
        }
        Family::OrderedLogistic => {
            // Cutpoints: an `ordered` parameter.
            let kk = k.max(2);
            let c = b.param(Kind::Ordered, &[kk - 1], &[], |r| r.uniform(-1.5, 1.5));
            let vector = r.coin();
            let y = labels(b, r, kk, m, vector);
            let eta = WIDE.arg(b, &if vector { vec![m] } else { vec![] }, r.coin(), r);
            (vec![y, eta, c], format!("labels ({vector}), {kk} classes"))
        }
        Family::Dirichlet => {
            let rows = r.coin();
            let th = if rows {
                let z = b.pu(&[m, k], -2.0, 2.0);
                b.op(Prim::Softmax, &[z])
            } else {
                b.param(Kind::Simplex, &[k], &[], |r| r.uniform(-1.5, 1.5))
            };
            let pa = r.below(0, 4) != 0;
            let alpha = Dom::Lower(0.0, -1.0, 1.5).arg(b, &[k], pa, r);
            (vec![th, alpha], format!("variate rows {rows}, {} alpha [{k}]", src(pa)))
        }
        Family::MultiNormal | Family::MultiNormalCholesky => {
            let form = r.below(0, 3);
            let y = match form {
                0 => b.pu(&[k], -3.0, 3.0),
                1 => WIDE.data(b, &[k], r),
                _ => WIDE.data(b, &[m, k], r),
            };
            let pm = r.below(0, 4) != 0;
            let mu = Dom::U(-1.0, 1.0).arg(b, &[k], pm, r);
            let s = if f == Family::MultiNormal { spd_from_params(b, k) } else { chol_factor(b, r, k) };
            (vec![y, mu, s], format!("variate form {form}, {} mu [{k}]", src(pm)))
        }
        Family::LkjCorrCholesky => {
            let l = b.param(Kind::CholeskyCorr, &[k, k], &[], |r| r.uniform(-1.5, 1.5));
            let pe = r.coin();
            let eta = Dom::Lower(0.0, -1.0, 1.5).arg(b, &[], pe, r);
            (vec![l, eta], format!("[{k}, {k}] with {} eta", src(pe)))
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every family: its log density, weighted, with random argument shapes and sources.
    #[test]
    fn densities_every_family(seed in any::<u64>(), n in 1usize..6, k in 1usize..5, m in 1usize..4) {
        let mut r = Rng::new(seed);
        for f in Family::ALL {
            let mut b = B::new();
            let (args, desc) = density_args(*f, &mut b, &mut r, n, k, m);
            let lp = b.op(Prim::LogDensity(*f), &args);
            b.weighted(lp, &mut r);
            b.finish(format!("{f:?}: {desc}")).check(&mut r)?;
        }
    }

    /// Every family with a log CDF: `_lcdf` and `_lccdf`, weighted, with random argument
    /// shapes and sources.
    #[test]
    fn log_cdfs_every_family(seed in any::<u64>(), n in 1usize..6, k in 1usize..5, m in 1usize..4) {
        let mut r = Rng::new(seed);
        for f in Family::ALL.iter().filter(|f| bnnc::math::dist::has_cdf(**f)) {
            for upper in [false, true] {
                let mut b = B::new();
                let (args, desc) = density_args(*f, &mut b, &mut r, n, k, m);
                let lp = b.op(Prim::LogCdf(*f, upper), &args);
                b.weighted(lp, &mut r);
                b.finish(format!("{f:?} upper {upper}: {desc}")).check(&mut r)?;
            }
        }
    }

    /// `normal` is emitted inline: every combination of scalar and vector x, mu and sigma
    /// (and matrices), each a parameter, a constant or a literal.
    #[test]
    fn normal_every_broadcast(seed in any::<u64>(), n in 1usize..6, rows in 1usize..4) {
        let mut r = Rng::new(seed);
        let mut shapes: Vec<[Vec<usize>; 3]> = Vec::new();
        for mask in 0..8 {
            let s = |bit: usize| if mask & bit != 0 { vec![n] } else { vec![] };
            shapes.push([s(1), s(2), s(4)]);
        }
        let mat = vec![rows, n];
        shapes.push([mat.clone(), vec![], vec![]]);
        shapes.push([mat.clone(), mat.clone(), vec![]]);
        shapes.push([mat.clone(), vec![], mat.clone()]);
        shapes.push([vec![], mat.clone(), mat.clone()]);
        for s in shapes {
            let mut b = B::new();
            let doms = [WIDE, Dom::U(-2.0, 2.0), POS];
            let mut args = Vec::new();
            let mut desc = Vec::new();
            for j in 0..3 {
                let param = r.coin();
                args.push(doms[j].arg(&mut b, &s[j], param, &mut r));
                desc.push(format!("{} {:?}", src(param), s[j]));
            }
            let lp = b.op(Prim::LogDensity(Family::Normal), &args);
            b.weighted(lp, &mut r);
            b.finish(format!("normal({})", desc.join(", "))).check(&mut r)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transforms
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Every transform kind, with bounds as literals, per-element constants, scalar or vector
    /// parameters (so bounds get adjoints), and infinite; the log-Jacobian is compared too.
    #[test]
    fn constrain_every_kind(seed in any::<u64>(), n in 1usize..6, rows in 1usize..4, k in 1usize..5) {
        let mut r = Rng::new(seed);
        let free = |r: &mut Rng| r.uniform(-2.0, 2.0);
        let mut cases = Vec::new();
        for kind in ALL_KIND {
            match kind {
                Kind::Identity => {
                    for s in [vec![], vec![n], vec![rows, n]] {
                        let mut b = B::new();
                        let x = b.param(kind, &s, &[], free);
                        b.weighted(x, &mut r);
                        cases.push(b.finish(format!("{kind:?} {s:?}")));
                    }
                }
                Kind::Lower | Kind::Upper => {
                    let inf = if kind == Kind::Lower { f64::NEG_INFINITY } else { f64::INFINITY };
                    for v in 0..7 {
                        let mut b = B::new();
                        let (s, bound) = match v {
                            0 => (vec![], b.lit(r.uniform(-2.0, 2.0))),
                            1 => (vec![n], b.lit(r.uniform(-2.0, 2.0))),
                            2 => (vec![n], b.konst(r.vec(n, -2.0, 2.0), &[n], false)),
                            3 => (vec![n], b.pu(&[], -2.0, 2.0)),
                            4 => (vec![n], b.pu(&[n], -2.0, 2.0)),
                            5 => (vec![n], b.lit(inf)),
                            _ => (vec![rows, n], b.konst(r.vec(rows * n, -2.0, 2.0), &[rows, n], false)),
                        };
                        let x = b.param(kind, &s, &[bound], free);
                        b.weighted(x, &mut r);
                        cases.push(b.finish(format!("{kind:?} {s:?}, bound form {v}")));
                    }
                }
                Kind::LowerUpper => {
                    for v in 0..9 {
                        let mut b = B::new();
                        let (s, lb, ub) = match v {
                            0 => (vec![], b.lit(r.uniform(-3.0, -0.5)), b.lit(r.uniform(0.5, 3.0))),
                            1 => (vec![n], b.lit(r.uniform(-3.0, -0.5)), b.lit(r.uniform(0.5, 3.0))),
                            2 => (
                                vec![n],
                                b.konst(r.vec(n, -3.0, -0.5), &[n], false),
                                b.konst(r.vec(n, 0.5, 3.0), &[n], false),
                            ),
                            3 => {
                                // ub = lb + exp(t): both parameters, ub bounded by lb.
                                let lb = b.pu(&[], -2.0, 2.0);
                                let ub = b.param(Kind::Lower, &[], &[lb], free);
                                (vec![n], lb, ub)
                            }
                            4 => (vec![n], b.pu(&[n], -3.0, -0.5), b.lit(r.uniform(0.0, 2.0))),
                            5 => (vec![n], b.lit(f64::NEG_INFINITY), b.lit(r.uniform(-2.0, 2.0))),
                            6 => (vec![n], b.lit(r.uniform(-2.0, 2.0)), b.lit(f64::INFINITY)),
                            7 => (vec![n], b.lit(f64::NEG_INFINITY), b.lit(f64::INFINITY)),
                            _ => (
                                vec![rows, n],
                                b.konst(r.vec(rows * n, -3.0, -0.5), &[rows, n], false),
                                b.konst(r.vec(rows * n, 0.5, 3.0), &[rows, n], false),
                            ),
                        };
                        let x = b.param(kind, &s, &[lb, ub], free);
                        b.weighted(x, &mut r);
                        cases.push(b.finish(format!("{kind:?} {s:?}, bounds form {v}")));
                    }
                }
                Kind::Simplex | Kind::Ordered | Kind::PositiveOrdered => {
                    let mut b = B::new();
                    let x = b.param(kind, &[n], &[], free);
                    b.weighted(x, &mut r);
                    cases.push(b.finish(format!("{kind:?} [{n}]")));
                }
                Kind::CholeskyCorr => {
                    let mut b = B::new();
                    let x = b.param(kind, &[k, k], &[], free);
                    b.weighted(x, &mut r);
                    cases.push(b.finish(format!("{kind:?} [{k}, {k}]")));
                }
            }
        }
        check_all(&cases, &mut r)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// An index out of range, computed from data (past the end, negative, NaN from an int
    /// division by zero), in every form and through slots and loops: both backends return a
    /// recoverable error at every point.
    #[test]
    fn index_out_of_range_from_data(seed in any::<u64>(), n in 1usize..6, rows in 1usize..4, c in 1usize..4) {
        let mut r = Rng::new(seed);
        let mut cases = Vec::new();
        // A bad int computed by the program: n, -1, or NaN (1 / 0).
        let bad = |b: &mut B, r: &mut Rng, size: usize| -> V {
            match r.below(0, 3) {
                0 => {
                    let (a, o) = (b.ilit(size as i64 - 1), b.ilit(1));
                    b.bin(Bin::Add, a, o)
                }
                1 => {
                    let (z, o) = (b.ilit(0), b.ilit(1));
                    b.bin(Bin::Sub, z, o)
                }
                _ => {
                    let (o, z) = (b.ilit(1), b.ilit(0));
                    b.bin(Bin::IntDiv, o, z)
                }
            }
        };
        for on_data in [false, true] {
            // x[bad] and x[bad..bad+len] on a vector
            let mut b = B::new();
            let x = if on_data { WIDE.data(&mut b, &[n], &mut r) } else { b.pu(&[n], -2.0, 2.0) };
            let guard = b.pu(&[], -1.0, 1.0);
            b.weighted(guard, &mut r);
            let i = bad(&mut b, &mut r, n);
            let y = b.op(Prim::Index(vec![Ix::Single]), &[x, i]);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("x[bad] on {} [{n}]", src(!on_data))));

            let mut b = B::new();
            let x = if on_data { WIDE.data(&mut b, &[n], &mut r) } else { b.pu(&[n], -2.0, 2.0) };
            let guard = b.pu(&[], -1.0, 1.0);
            b.weighted(guard, &mut r);
            let len = r.below(1, n + 1);
            let (a, o) = (b.ilit((n - len) as i64), b.ilit(1));
            let lo = b.bin(Bin::Add, a, o);
            let y = b.op(Prim::Index(vec![Ix::Range(len)]), &[x, lo]);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("x[{}..+{len}] on {} [{n}]", n - len + 1, src(!on_data))));
        }
        // A gather with one position out of range (a constant, or computed).
        {
            let mut b = B::new();
            let x = b.pu(&[n], -2.0, 2.0);
            let g = if r.coin() {
                b.konst(vec![0.0, n as f64], &[2], true)
            } else {
                let base = b.konst(vec![0.0, (n - 1) as f64], &[2], true);
                let o = b.ilit(1);
                b.bin(Bin::Add, base, o)
            };
            let y = b.op(Prim::Index(vec![Ix::Gather]), &[x, g]);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("gather past the end of [{n}]")));
        }
        // Matrices: [All, bad], [bad, All] by gather, [Single, Gather], [Gather, Single].
        for form in 0..4 {
            let mut b = B::new();
            let x = b.pu(&[rows, c], -2.0, 2.0);
            let (ix, args) = match form {
                0 => (vec![Ix::All, Ix::Single], vec![bad(&mut b, &mut r, c)]),
                1 => (vec![Ix::Gather, Ix::All], vec![b.konst(vec![rows as f64], &[1], true)]),
                2 => {
                    let i = b.ilit(0);
                    (vec![Ix::Single, Ix::Gather], vec![i, b.konst(vec![0.0, c as f64], &[2], true)])
                }
                _ => {
                    let g = b.konst(vec![0.0], &[1], true);
                    (vec![Ix::Gather, Ix::Single], vec![g, bad(&mut b, &mut r, c)])
                }
            };
            let mut all = vec![x];
            all.extend(&args);
            let y = b.op(Prim::Index(ix.clone()), &all);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("{ix:?} out of range on [{rows}, {c}]")));
        }
        // Slots: a load, a store of a parameter, a store of data (to a parameter-free slot).
        for form in 0..3 {
            let mut b = B::new();
            let x = b.pu(&[n], -2.0, 2.0);
            let s = b.slot(&[n]);
            let zero = b.lit(0.0);
            b.init(s, Some(zero));
            let i = bad(&mut b, &mut r, n);
            match form {
                0 => {
                    b.store(s, vec![], vec![], x);
                    let y = b.load(s, vec![Ix::Single], &[i]);
                    b.weighted(y, &mut r);
                }
                1 => {
                    let v = b.pu(&[], -2.0, 2.0);
                    b.store(s, vec![Ix::Single], vec![i], v);
                    let y = b.load(s, vec![], &[]);
                    b.weighted(y, &mut r);
                    b.weighted(x, &mut r);
                }
                _ => {
                    let v = b.lit(1.0);
                    b.store(s, vec![Ix::Single], vec![i], v);
                    let y = b.load(s, vec![], &[]);
                    let p = b.bin(Bin::Mul, y, x);
                    b.weighted(p, &mut r);
                }
            }
            cases.push(b.finish(format!("slot access out of range, form {form}")));
        }
        // A loop one past the end.
        {
            let mut b = B::new();
            let x = b.pu(&[n], -2.0, 2.0);
            let wv = r.uniform(0.5, 1.5);
            b.for_lits(0, n as i64 + 1, |b, i| {
                let xi = b.op(Prim::Index(vec![Ix::Single]), &[x, i]);
                let w = b.lit(wv);
                let t = b.bin(Bin::Mul, xi, w);
                b.target(t);
            });
            cases.push(b.finish(format!("loop 0..{} over [{n}]", n + 1)));
        }
        for case in &cases {
            case.check_as(&mut r, Expect::Fails)?;
        }
    }
}

/// Points where the density fails (a NaN, an infinite gradient, a transform that overflows,
/// a factorisation that fails, an invalid scale) alternate with good points on the same
/// compiled function: the failures agree and leave nothing behind.
#[test]
fn failures_then_good_points() {
    let mut r = Rng::new(3);
    let alternate = |case: &Case, bad: &[f64], good: &dyn Fn(&mut Rng) -> Vec<f64>, r: &mut Rng| {
        let pts = [
            (bad.to_vec(), Expect::Fails),
            (good(r), Expect::Finite),
            (bad.to_vec(), Expect::Fails),
            (good(r), Expect::Finite),
        ];
        compare(&case.p, &pts, &case.what).unwrap_or_else(|e| panic!("{e}"));
    };
    // log(x) at x < 0: NaN.
    let mut b = B::new();
    let x = b.pu(&[2], -1.0, 1.0);
    let y = b.op(Prim::Unary(Un::Log), &[x]);
    b.weighted(y, &mut r);
    let case = b.finish("log of a negative parameter");
    alternate(&case, &[1.0, -1.0], &|r| vec![r.uniform(0.5, 2.0), r.uniform(0.5, 2.0)], &mut r);
    // sqrt(x) at 0: a finite value with an infinite gradient.
    let mut b = B::new();
    let x = b.pu(&[], -1.0, 1.0);
    let y = b.op(Prim::Unary(Un::Sqrt), &[x]);
    b.weighted(y, &mut r);
    let case = b.finish("sqrt at 0");
    alternate(&case, &[0.0], &|r| vec![r.uniform(0.5, 2.0)], &mut r);
    // A lower-bounded parameter whose exp overflows.
    let mut b = B::new();
    let z = b.lit(0.0);
    let x = b.param(Kind::Lower, &[3], &[z], |r| r.uniform(-1.0, 1.0));
    let y = b.op(Prim::Unary(Un::Log), &[x]);
    b.weighted(y, &mut r);
    let case = b.finish("Lower transform overflowing");
    alternate(&case, &[0.1, 800.0, 0.2], &|r| r.vec(3, -1.0, 1.0), &mut r);
    // cholesky of [[1, x], [x, 1]] with |x| > 1: NaN.
    let mut b = B::new();
    let a = b.pu(&[2, 2], -1.0, 1.0);
    let l = b.op(Prim::Cholesky, &[a]);
    b.weighted(l, &mut r);
    let case = b.finish("Cholesky of a matrix that is not positive definite");
    alternate(&case, &[1.0, 0.0, 2.0, 1.0], &|r| vec![1.0, 0.0, r.uniform(-0.5, 0.5), 1.0], &mut r);
    // normal(y | mu, sigma) with sigma < 0: NaN (the inline density).
    let mut b = B::new();
    let y = b.konst(vec![0.5, -0.3, 1.2], &[3], false);
    let mu = b.pu(&[], -1.0, 1.0);
    let sigma = b.pu(&[], 0.5, 2.0);
    let lp = b.op(Prim::LogDensity(Family::Normal), &[y, mu, sigma]);
    b.weighted(lp, &mut r);
    let case = b.finish("normal with a negative scale");
    alternate(&case, &[0.0, -1.0], &|r| vec![r.uniform(-1.0, 1.0), r.uniform(0.5, 2.0)], &mut r);
    // normal of an infinite or NaN data value: −∞ or NaN (the inline density's checks).
    for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        let mut b = B::new();
        let y = b.konst(vec![0.5, v], &[2], false);
        let mu = b.pu(&[2], -1.0, 1.0);
        let sigma = b.lit(1.5);
        let lp = b.op(Prim::LogDensity(Family::Normal), &[y, mu, sigma]);
        b.weighted(lp, &mut r);
        let case = b.finish(format!("normal of data {v}"));
        compare(&case.p, &[(vec![0.1, 0.2], Expect::Fails)], &case.what).unwrap_or_else(|e| panic!("{e}"));
    }
    // An infinite mu or sigma, as a literal, one number or per element, with finite and
    // infinite data: NaN (invalid parameters), not the -inf an infinite data value gives.
    for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        for (which, per_element) in [(1, false), (1, true), (2, false), (2, true)] {
            for y0 in [0.5, f64::INFINITY] {
                let mut b = B::new();
                let y = b.konst(vec![y0, -0.3], &[2], false);
                let x = b.pu(&[2], -1.0, 1.0);
                let bad = if per_element { b.konst(vec![0.2, v], &[2], false) } else { b.lit(v) };
                let (mu, sigma) = if which == 1 { (bad, b.lit(1.5)) } else { (x, bad) };
                let lp = b.op(Prim::LogDensity(Family::Normal), &[y, mu, sigma]);
                let (zero, two) = (b.lit(0.0), b.lit(2.0));
                let w = b.op(Prim::LogDensity(Family::Normal), &[x, zero, two]);
                b.weighted(lp, &mut r);
                b.weighted(w, &mut r);
                let case = b.finish(format!("normal with argument {which} {v} (per element {per_element}), data {y0}"));
                compare(&case.p, &[(vec![0.1, 0.2], Expect::Fails)], &case.what).unwrap_or_else(|e| panic!("{e}"));
                // The same value (NaN), which the message names.
                let (mut interp, mut jit) = (Interp::new(&case.p), Jit::new(&case.p).expect("compiles"));
                let (a, j) = (interp.eval(&[0.1, 0.2]).unwrap_err(), jit.eval(&[0.1, 0.2]).unwrap_err());
                assert_eq!(a.to_string(), j.to_string(), "{}", case.what);
                assert!(j.to_string().contains("NaN"), "{}: {j}", case.what);
            }
        }
    }
}

/// NaN in data through the inline comparisons and conditions: `!NaN = 0`, `NaN == x` is false,
/// `NaN != x` true, the ordered comparisons false, `NaN && x` true (NaN is not zero); a NaN
/// condition picks the first branch; `relu(NaN) = 0`. All finite, and equal.
#[test]
fn nan_in_logical_operations_and_conditions() {
    let mut r = Rng::new(5);
    let mut cases = Vec::new();
    for op in Bin::ALL {
        if !op.is_logical() {
            continue;
        }
        for nan_first in [true, false] {
            let mut b = B::new();
            let d = b.konst(vec![f64::NAN, 1.0, 0.0], &[3], false);
            let x = b.param(Kind::Identity, &[3], &[], |r| r.int(-1, 1) as f64);
            let z = if nan_first { b.bin(op, d, x) } else { b.bin(op, x, d) };
            let y = b.bin(Bin::Mul, z, x);
            b.weighted(y, &mut r);
            cases.push(b.finish(format!("{op:?} with NaN data (NaN first: {nan_first})")));
        }
    }
    {
        let mut b = B::new();
        let d = b.konst(vec![f64::NAN, 0.0, 2.0], &[3], false);
        let n = b.op(Prim::Unary(Un::Not), &[d]);
        let x = b.pu(&[3], -1.0, 1.0);
        let y = b.bin(Bin::Mul, n, x);
        b.weighted(y, &mut r);
        cases.push(b.finish("Not of NaN data"));
    }
    {
        // relu(log(x)) at x < 0 is relu(NaN) = 0, with a zero adjoint into log.
        let mut b = B::new();
        let x = b.pu(&[2], -2.0, -0.5);
        let l = b.op(Prim::Unary(Un::Log), &[x]);
        let y = b.op(Prim::Unary(Un::Relu), &[l]);
        b.weighted(y, &mut r);
        let s = b.op(Prim::Unary(Un::Sin), &[x]);
        b.weighted(s, &mut r);
        cases.push(b.finish("relu of NaN"));
    }
    {
        // A NaN condition (1 / 0 on ints) selects the first branch, in `select` and in `if`.
        let mut b = B::new();
        let (o, z) = (b.ilit(1), b.ilit(0));
        let cond = b.bin(Bin::IntDiv, o, z);
        let x = b.pu(&[3], -1.0, 1.0);
        let y = b.pu(&[], -1.0, 1.0);
        let s = b.op(Prim::Select, &[cond, x, y]);
        b.weighted(s, &mut r);
        let (w1, w2) = (r.uniform(0.5, 1.5), r.uniform(0.5, 1.5));
        b.branch(
            cond,
            (1, 0),
            |b| {
                let e = b.op(Prim::Unary(Un::Exp), &[y]);
                let w = b.lit(w1);
                let t = b.bin(Bin::Mul, e, w);
                b.target(t);
            },
            |b| {
                let e = b.op(Prim::Unary(Un::Cos), &[y]);
                let w = b.lit(w2);
                let t = b.bin(Bin::Mul, e, w);
                b.target(t);
            },
        );
        cases.push(b.finish("a NaN condition"));
    }
    for c in &cases {
        c.check(&mut r).unwrap_or_else(|e| panic!("{e}"));
    }
}
