//! Densities and transforms: the normal inline, the other elementwise families through
//! their array functions, constraining transforms, the logarithms of loop-invariant
//! scalars hoisted before a loop, and the accumulation of a density's partials.

use super::*;
use crate::math::transform::Kind;

/// Parameters without a transform of at least this many values are copied in, and their
/// adjoints added out, by one vectorised kernel call each rather than a loop.
const WHOLE_COPY: usize = 8;

impl<'a, 'f> Emitter<'a, 'f> {
    /// The common length of a density's arguments, each of which has that length or one.
    pub(super) fn elementwise_len(&self, args: &[V]) -> Option<usize> {
        let n = args.iter().map(|a| self.p.info(*a).len()).max()?;
        args.iter().all(|a| matches!(self.p.info(*a).len(), 1) || self.p.info(*a).len() == n).then_some(n)
    }

    /// Before the loop over `body`: the logarithms its densities take of scalars defined
    /// outside it (a normal's σ, a `log_mix`'s θ), computed once instead of once per
    /// iteration, with the same library calls (so the results are the same bits). Returns the
    /// keys added to `inv`, to be dropped after the loop.
    pub(super) fn hoist_logs(&mut self, body: BlockId, rev: bool) -> R<Vec<(V, Inv)>> {
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

    fn density_mode(&self, v: V) -> Mode {
        match self.lit(v) {
            Some(x) => Mode::Imm(x),
            None if self.p.info(v).len() == 1 => Mode::Scalar,
            None => Mode::Full,
        }
    }

    /// `normal(x | mu, sigma)` summed over elements, as `math::dist` computes it: NaN when a
    /// parameter is invalid or x is NaN, −∞ when x is infinite.
    pub(super) fn normal_fwd(&mut self, dst: V, args: &[V]) -> R<()> {
        let n = self.elementwise_len(args).unwrap_or(0);
        if n >= crate::math::dist::NORMAL_LANES {
            // Whole arrays, in the interpreter's interleaved sums.
            let mut call = Vec::new();
            for (ptr, len) in self.array_args(args)? {
                call.extend([ptr, len]);
            }
            let sig = [PTR, types::I64, PTR, types::I64, PTR, types::I64];
            let fr = self.func_sig("bnnc_normal", &sig, Some(F64))?;
            let c = self.b.ins().call(fr, &call);
            let r = self.b.inst_results(c)[0];
            let out = self.addr(dst)?;
            self.b.ins().store(self.mf, r, out, 0);
            return Ok(());
        }
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
        // Validity of μ and σ, as math::dist checks it: for a number that is one for all
        // elements, once here; per element in the loop otherwise. x needs no check: with
        // μ and σ valid, a NaN in x makes the sum NaN and an infinity makes it −∞ through
        // the arithmetic itself, as math::dist's checks do.
        let iz = self.b.ins().iconst(types::I8, 0);
        let mut bad0 = iz;
        for (k, a) in [(1, at[1]), (2, at[2])] {
            if !matches!(m[k], Mode::Full) {
                let v = self.get(a, m[k], z0, z0);
                let not_ok = self.invalid_normal_param(k, v);
                bad0 = self.b.ins().bor(bad0, not_ok);
            }
        }
        let lp = self.b.declare_var(F64);
        let bad = self.b.declare_var(types::I8);
        let fz = self.f(0.0);
        self.b.def_var(lp, fz);
        self.b.def_var(bad, bad0);
        let r = self.reciprocal(at[2], m[2]);
        self.each(n, &mut |s, i| {
            let x = s.get(at[0], m[0], i, i);
            let mu = s.get(at[1], m[1], i, i);
            let sg = s.get(at[2], m[2], i, i);
            let d = s.b.ins().fsub(x, mu);
            let z = match r {
                Some(r) => s.b.ins().fmul(d, r),
                None => s.b.ins().fdiv(d, sg),
            };
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
            for (k, v) in [(1, mu), (2, sg)] {
                if matches!(m[k], Mode::Full) {
                    let not_ok = s.invalid_normal_param(k, v);
                    let b_old = s.b.use_var(bad);
                    let b_new = s.b.ins().bor(b_old, not_ok);
                    s.b.def_var(bad, b_new);
                }
            }
            Ok(())
        })?;
        let lp = self.b.use_var(lp);
        // Any NaN as math::dist's (the canonical one).
        let nan_sum = self.b.ins().fcmp(FloatCC::Unordered, lp, lp);
        let bd = self.b.use_var(bad);
        let bd = self.b.ins().bor(bd, nan_sum);
        let nan = self.f(f64::NAN);
        let r = self.b.ins().select(bd, nan, lp);
        let out = self.addr(dst)?;
        self.b.ins().store(self.mf, r, out, 0);
        Ok(())
    }

    /// The reverse of [`Self::normal_fwd`]: ∂/∂x = −z/σ, ∂/∂μ = z/σ, ∂/∂σ = (z² − 1)/σ.
    pub(super) fn normal_rev(&mut self, args: &[V], oadj: Value) -> R<()> {
        if self.elementwise_len(args).unwrap_or(0) >= crate::math::dist::NORMAL_LANES {
            let adj: Vec<Option<Value>> = args.iter().map(|a| self.adj(*a)).collect();
            if adj.iter().all(|a| a.is_none()) {
                return Ok(());
            }
            let mut call = Vec::new();
            for (ptr, len) in self.array_args(args)? {
                call.extend([ptr, len]);
            }
            call.push(self.ld0(oadj));
            for a in adj {
                call.push(a.unwrap_or_else(|| self.b.ins().iconst(PTR, 0)));
            }
            let sig = [PTR, types::I64, PTR, types::I64, PTR, types::I64, F64, PTR, PTR, PTR];
            let fr = self.func_sig("bnnc_normal_rev", &sig, None)?;
            self.b.ins().call(fr, &call);
            return Ok(());
        }
        let Some(DensityRev { n, at, m, adj, g, accs }) = self.density_rev_args(args, oadj)? else {
            return Ok(());
        };
        let r = self.reciprocal(at[2], m[2]);
        self.each(n, &mut |s, i| {
            let x = s.get(at[0], m[0], i, i);
            let mu = s.get(at[1], m[1], i, i);
            let sg = s.get(at[2], m[2], i, i);
            let over = |s: &mut Self, x: Value| match r {
                Some(r) => s.b.ins().fmul(x, r),
                None => s.b.ins().fdiv(x, sg),
            };
            let d = s.b.ins().fsub(x, mu);
            let z = over(s, d);
            // −z/σ is −(z/σ), bit for bit: one division for both.
            let d1 = over(s, z);
            let d0 = s.b.ins().fneg(d1);
            let zz = s.b.ins().fmul(z, z);
            let one = s.f(1.0);
            let zz1 = s.b.ins().fsub(zz, one);
            let d2 = over(s, zz1);
            for (k, dk) in [d0, d1, d2].into_iter().enumerate() {
                s.density_partial(accs[k], adj[k], g, i, dk);
            }
            Ok(())
        })?;
        self.density_flush(&accs, &adj, g);
        Ok(())
    }

    /// Whether argument `k` of a normal (1: μ, 2: σ) with value `v` is invalid: μ not finite,
    /// σ not positive and finite (an I8 of 0 or 1).
    fn invalid_normal_param(&mut self, k: usize, v: Value) -> Value {
        let inf = self.f(f64::INFINITY);
        let ok = if k == 1 {
            let a = self.b.ins().fabs(v);
            self.b.ins().fcmp(FloatCC::LessThan, a, inf)
        } else {
            let zero = self.f(0.0);
            let pos = self.b.ins().fcmp(FloatCC::GreaterThan, v, zero);
            let fin = self.b.ins().fcmp(FloatCC::LessThan, v, inf);
            self.b.ins().band(pos, fin)
        };
        let one = self.b.ins().iconst(types::I8, 1);
        self.b.ins().bxor(ok, one)
    }

    /// 1 / σ, once, when σ (an argument at `at` in mode `m`) is one number for every element:
    /// a normal's quotients by σ are then products with it, as `math::dist::normal_array`
    /// forms them (one division where there were up to three an element).
    fn reciprocal(&mut self, at: Value, m: Mode) -> Option<Value> {
        let one = self.f(1.0);
        match m {
            Mode::Full | Mode::Row => None,
            Mode::Imm(l) => Some(self.f(1.0 / l)),
            _ => {
                let z = self.int(0);
                let sg = self.get(at, m, z, z);
                Some(self.b.ins().fdiv(one, sg))
            }
        }
    }

    /// Transforms emitted inline: none (identity), and a lower bound that is a finite literal
    /// (`<lower=0>`); `Some(bound)` (0 for the identity).
    pub(super) fn inline_transform(&self, i: u32, args: &[V]) -> Option<f64> {
        match self.p.params.get(i as usize)?.kind {
            Kind::Identity if args.is_empty() => Some(0.0),
            Kind::Lower if args.len() == 1 => self.lit(args[0]).filter(|l| l.is_finite()),
            _ => None,
        }
    }

    /// x = y (identity) or x = lb + exp(y) with log|J| = y, as `math::transform` computes
    /// them; a non-finite result leaves with the interpreter's message.
    pub(super) fn constrain_fwd(&mut self, i: u32, dst: V, args: &[V]) -> R<()> {
        let pl = &self.p.params[i as usize];
        let (offset, n) = (pl.offset, pl.free_len);
        let lower = matches!(pl.kind, Kind::Lower);
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
        let whole = pl.kind == Kind::Identity && n >= WHOLE_COPY;
        if whole {
            // Many values without a transform: one vectorised copy and check.
            let fr = self.func_sig("bnnc_copy_finite", &[PTR, PTR, types::I64], Some(types::I8))?;
            let nv = self.int(n as i64);
            let c = self.b.ins().call(fr, &[y0, out, nv]);
            let r = self.b.inst_results(c)[0];
            self.b.def_var(bad, r);
        }
        self.each(if whole { 0 } else { n }, &mut |s, k| {
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
    pub(super) fn constrain_rev(&mut self, i: u32, dst: V, oadj: Value) -> R<()> {
        let pl = &self.p.params[i as usize];
        let (offset, n) = (pl.offset, pl.free_len);
        let lower = matches!(pl.kind, Kind::Lower);
        let _ = dst;
        let theta = self.b.ins().load(PTR, self.mf, self.ctx, CTX_THETA);
        let y0 = self.b.ins().iadd_imm_s(theta, (offset * 8) as i64);
        let grad = self.b.ins().load(PTR, self.mf, self.ctx, CTX_GRAD);
        let g0 = self.b.ins().iadd_imm_s(grad, (offset * 8) as i64);
        let w = self.b.ins().load(F64, self.mf, self.ctx, CTX_JAC_WEIGHT);
        if pl.kind == Kind::Identity && n >= WHOLE_COPY {
            let fr = self.func_sig("bnnc_add_into", &[PTR, PTR, types::I64], None)?;
            let nv = self.int(n as i64);
            self.b.ins().call(fr, &[g0, oadj, nv]);
            return Ok(());
        }
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
    pub(super) fn density_fwd(&mut self, f: Family, dst: V, args: &[V]) -> R<()> {
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
    pub(super) fn density_rev(&mut self, f: Family, dst: V, args: &[V], oadj: Value) -> R<()> {
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
    pub(super) fn kept_partials(&mut self, inst: &Inst) -> Option<(Value, Value)> {
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
    pub(super) fn log_add_exp_array(&self, inst: &Inst) -> bool {
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
    pub(super) fn array_args(&mut self, args: &[V]) -> R<Vec<(Value, Value)>> {
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
}
