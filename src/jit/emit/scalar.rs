//! Accumulators of adjoints (register sums in the unfused order or in pair order), the
//! product of an adjoint and a partial, and the scalar functions of `Un` and `Bin` with
//! their derivatives.

use super::*;

impl<'a, 'f> Emitter<'a, 'f> {
    pub(super) fn sum_adj(&mut self, base: Value, n: usize) -> R<Value> {
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
    pub(super) fn scalar_acc(&mut self, m: Mode, adj: Option<Value>) -> Option<Variable> {
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
    pub(super) fn broadcast_acc(&mut self, m: Mode, adj: Option<Value>) -> Option<Variable> {
        (adj.is_some() && matches!(m, Mode::Scalar)).then(|| self.pair_acc())
    }

    /// A sum over the elements of an elementwise loop ([`Self::each_elem`]) in pair order
    /// ([`crate::ir::prim::pair_sum`]): lane 0 sums the elements of even index and lane 1
    /// those of odd index, each from −0 (so the first addition is exact) and in index order.
    /// [`Self::add_in_order`] adds to it, [`Self::close_pair`] ends it.
    pub(super) fn pair_acc(&mut self) -> Variable {
        let v = self.b.declare_var(F64X2);
        let z = self.b.ins().f64const(-0.0);
        let z = self.b.ins().splat(F64X2, z);
        self.b.def_var(v, z);
        self.open_pairs.push(v);
        v
    }

    /// The sum of a [`Self::pair_acc`]: its even part plus its odd part (in either order,
    /// the same bits).
    pub(super) fn close_pair(&mut self, v: Variable) -> Value {
        self.open_pairs.retain(|w| *w != v);
        let t = self.b.use_var(v);
        self.hsum(t)
    }

    /// Add one element's (or, in a two-lane body, two elements') contribution `c` to an
    /// operand's adjoint: its accumulator (a broadcast scalar, summed in pair order, as the
    /// interpreter sums it), or its element i (a whole operand) or j (a vector along the
    /// rows).
    pub(super) fn accumulate(&mut self, acc: Option<Variable>, adj: Value, m: Mode, i: Value, j: Value, c: Value) {
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
    pub(super) fn add_in_order(&mut self, v: Variable, c: Value) {
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

    pub(super) fn flush_acc(&mut self, acc: Option<Variable>, adj: Option<Value>) {
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
    pub(super) fn times_partial(&mut self, g: Value, d: Value) -> Value {
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
    pub(super) fn unless_zero(&mut self, g: Value, c: Value) -> Value {
        if self.const_of(g).is_some_and(|g| g != 0.0 && !g.is_nan()) {
            return c;
        }
        // z = g − g is +0 where g is ±0 and finite g's zero otherwise, NaN where g is infinite
        // or NaN, and then `g != z` holds (an unordered comparison), so c is taken as with a
        // literal zero. Unlike a constant, it is not hoisted out of a loop to be spilled and
        // reloaded on every iteration when registers run short.
        let z = self.b.ins().fsub(g, g);
        let nz = self.b.ins().fcmp(FloatCC::NotEqual, g, z);
        self.sel(nz, c, z)
    }

    pub(super) fn un_f(&mut self, u: Un, x: Value) -> R<Value> {
        u.value(self, x)
    }

    pub(super) fn un_df(&mut self, u: Un, x: Value, y: Value) -> R<Value> {
        u.deriv(self, x, y)
    }

    pub(super) fn bin_f(&mut self, bn: Bin, a: Value, b: Value) -> R<Value> {
        bn.value(self, a, b)
    }

    pub(super) fn bin_da(&mut self, bn: Bin, a: Value, b: Value, y: Value) -> R<Value> {
        bn.deriv(self, false, a, b, y)
    }

    pub(super) fn bin_db(&mut self, bn: Bin, a: Value, b: Value, y: Value) -> R<Value> {
        bn.deriv(self, true, a, b, y)
    }
}

/// The elementwise rules ([`crate::ir::scalar`]) as Cranelift instructions, on one element
/// or on the two lanes of a two-lane body.
impl<'a, 'f> Arith for Emitter<'a, 'f> {
    type V = Value;
    type E = String;
    fn c(&mut self, x: f64) -> Value {
        self.f(x)
    }
    fn neg(&mut self, x: Value) -> Value {
        self.b.ins().fneg(x)
    }
    fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }
    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }
    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }
    fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }
    fn sqrt(&mut self, x: Value) -> Value {
        self.b.ins().sqrt(x)
    }
    fn abs(&mut self, x: Value) -> Value {
        self.b.ins().fabs(x)
    }
    fn floor(&mut self, x: Value) -> Value {
        self.b.ins().floor(x)
    }
    fn ceil(&mut self, x: Value) -> Value {
        self.b.ins().ceil(x)
    }
    fn max(&mut self, a: Value, b: Value) -> Value {
        self.max_min(FloatCC::GreaterThan, a, b)
    }
    fn min(&mut self, a: Value, b: Value) -> Value {
        self.max_min(FloatCC::LessThan, a, b)
    }
    fn pick(&mut self, cc: Cmp, a: Value, b: Value, x: Value, y: Value) -> Value {
        let cc = match cc {
            Cmp::Eq => FloatCC::Equal,
            Cmp::Ne => FloatCC::NotEqual,
            Cmp::Lt => FloatCC::LessThan,
            Cmp::Le => FloatCC::LessThanOrEqual,
            Cmp::Gt => FloatCC::GreaterThan,
            Cmp::Ge => FloatCC::GreaterThanOrEqual,
        };
        let c = self.b.ins().fcmp(cc, a, b);
        self.sel(c, x, y)
    }
    fn call(&mut self, f: Scalar, args: &[Value]) -> R<Value> {
        self.call_f(f.symbol().0, args)
    }
}

impl<'a, 'f> Emitter<'a, 'f> {
    /// Rust's `max` (`cc` greater-than) or `min` (less-than): a when it wins or b is NaN.
    fn max_min(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        let c = self.b.ins().fcmp(cc, a, b);
        let b_nan = self.b.ins().fcmp(FloatCC::Unordered, b, b);
        let take_a = self.b.ins().bor(c, b_nan);
        self.sel(take_a, a, b)
    }
}
