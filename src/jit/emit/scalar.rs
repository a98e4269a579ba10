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
        let z = self.f(0.0);
        let nz = self.b.ins().fcmp(FloatCC::NotEqual, g, z);
        self.sel(nz, c, z)
    }

    fn flag(&mut self, c: Value) -> Value {
        let (one, zero) = (self.f(1.0), self.f(0.0));
        self.sel(c, one, zero)
    }

    pub(super) fn un_f(&mut self, u: Un, x: Value) -> R<Value> {
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

    pub(super) fn un_df(&mut self, u: Un, x: Value, y: Value) -> R<Value> {
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

    pub(super) fn bin_f(&mut self, bn: Bin, a: Value, b: Value) -> R<Value> {
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

    pub(super) fn bin_da(&mut self, bn: Bin, a: Value, b: Value, y: Value) -> R<Value> {
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

    pub(super) fn bin_db(&mut self, bn: Bin, a: Value, b: Value, y: Value) -> R<Value> {
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
pub(super) fn df_reads(u: Un) -> (bool, bool) {
    match u {
        Un::Neg | Un::Not | Un::Floor | Un::Ceil | Un::Round => (false, false),
        Un::Exp | Un::Expm1 | Un::Sqrt | Un::Tanh | Un::Sigmoid => (false, true),
        Un::Log | Un::Log1p | Un::Square | Un::Relu | Un::Inv | Un::Abs => (true, false),
        _ => (true, true),
    }
}
