//! Fusion: runs of consecutive elementwise operations emitted as one loop, forward and
//! reverse, results passed on in registers; and a dense layer's bias and activation in one
//! kernel call.

use super::*;

impl<'a, 'f> Emitter<'a, 'f> {
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
    /// is computed by that kernel, eight or four elements at a time; its reverse (a product
    /// with a derivative built from its input and output) stays in the fused loop, but for a
    /// dense layer's bias and activation ([`Self::dense_pair_rev`]), which is a kernel call.
    pub(super) fn fusion_groups(&self, b: BlockId, rev: bool) -> Vec<(usize, usize)> {
        let insts = self.p.block(b);
        let array = |inst: &Inst| {
            !rev && (matches!(inst, Inst::Op { prim: Prim::Unary(u), .. } if u.array_raw().is_some())
                || self.log_add_exp_array(inst))
        };
        let kernel = |k: usize| rev && self.dense_pair_rev(insts, k);
        let mut groups = Vec::new();
        let mut k = 0;
        while k < insts.len() {
            if kernel(k) {
                k += 2;
                continue;
            }
            let Some(n) = self.fusible(&insts[k]).filter(|_| !array(&insts[k])) else {
                k += 1;
                continue;
            };
            let mut rows = self.row_adjoints(&insts[k]);
            let mut end = k + 1;
            while end < insts.len()
                && self.fusible(&insts[end]).as_ref() == Some(&n)
                && !array(&insts[end])
                && !kernel(end)
            {
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
    pub(super) fn summed_into_target(&self, insts: &[Inst], at: usize, v: V) -> bool {
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
    pub(super) fn fused_fwd(&mut self, ops: &[Inst], summed: bool) -> R<Option<Value>> {
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
    pub(super) fn rev_reads(&self, inst: &Inst) -> (Vec<bool>, bool) {
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
                let (x, y) = u.deriv_reads();
                (vec![x && h[0]], y && h[0])
            }
            Prim::Binary(bn) => {
                // What the partials of the operands that take an adjoint read.
                let mut reads = (false, false, false);
                for (wrt_b, wanted) in [(false, h[0]), (true, h[1])] {
                    if wanted {
                        let r = bn.partial_reads(wrt_b);
                        reads = (reads.0 || r.0, reads.1 || r.1, reads.2 || r.2);
                    }
                }
                (vec![reads.0, reads.1], reads.2)
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
    pub(super) fn fused_rev(&mut self, ops: &[Inst]) -> R<()> {
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

    /// A dense layer's bias and activation at `insts[k..]`: `z = a + b` over a matrix with `b` a
    /// vector along its rows, then `h = f(z)` with an array function, where `z` is read by
    /// nothing else — neither forward nor by a reverse derivative (the sum's reads nothing,
    /// `tanh`'s and `exp`'s read their result; `log`'s and `log1p`'s read their argument, so
    /// not those). Returns (the matrix, the bias, z, h, f).
    fn dense_pair(&self, insts: &[Inst], k: usize) -> Option<(V, V, V, V, Un)> {
        let [Inst::Op { dst: z, prim: Prim::Binary(Bin::Add), args }, Inst::Op { dst: h, prim: Prim::Unary(u), args: hargs }, ..] =
            insts.get(k..)?
        else {
            return None;
        };
        u.array_raw()?;
        let shape = &self.p.info(*z).shape;
        if shape.len() != 2 || shape.contains(&0) || hargs[0] != *z || self.uses[z.0 as usize] != 1 || u.deriv_reads().0
        {
            return None;
        }
        match (self.mode(args[0], shape), self.mode(args[1], shape)) {
            (Mode::Full, Mode::Row) => Some((args[0], args[1], *z, *h, *u)),
            (Mode::Row, Mode::Full) => Some((args[1], args[0], *z, *h, *u)),
            _ => None,
        }
    }

    /// Whether the reverse of the dense pair at `insts[k..]` is one kernel call
    /// ([`Self::bias_activation_rev`]): both results take adjoints, h's in memory.
    pub(super) fn dense_pair_rev(&self, insts: &[Inst], k: usize) -> bool {
        self.dense_pair(insts, k)
            .is_some_and(|(_, _, z, h, _)| self.lay.has_adj(z) && self.lay.has_adj(h) && !self.ones.contains(&h))
    }

    /// The forward of a dense pair ([`Self::dense_pair`]): one kernel call computes `h` and
    /// leaves `z` unstored, two passes over the layer fewer. When `insts` starts with the
    /// product that forms the pair's matrix ([`Self::layer_product`]), that product too, a
    /// few rows at a time into the kernel's buffer, so that it is never stored; and when the
    /// pair is followed by an output product of `h` alone (`o = h w`, w a column, as
    /// [`Self::dense_head`]), that product, while its rows are in cache. Returns how many
    /// instructions it ran: 0 when `insts` does not start with a dense pair or such a product.
    pub(super) fn bias_activation(&mut self, insts: &[Inst]) -> R<usize> {
        let (input, at) = match insts.first() {
            Some(Inst::Op { dst, prim: Prim::MatMul, args })
                if self.layer_product(*dst, args) && self.dense_pair(insts, 1).is_some_and(|(x, ..)| x == *dst) =>
            {
                (Some((args[0], args[1])), 1)
            }
            _ => (None, 0),
        };
        let Some((x, bias, z, h, u)) = self.dense_pair(insts, at) else { return Ok(0) };
        let Some((name, _)) = u.array_raw() else { return Ok(0) };
        let head = match insts.get(at + 2) {
            Some(Inst::Op { dst: o, prim: Prim::MatMul, args }) if args[0] == h && self.uses[h.0 as usize] == 1 => {
                let cols = self.p.info(h).shape[1];
                matches!(self.p.info(args[1]).shape[..], [c] | [c, 1] if c == cols).then_some((*o, args[1]))
            }
            _ => None,
        };
        let shape = self.p.info(z).shape.clone();
        let sig = [PTR, PTR, PTR, PTR, types::I64, types::I64, PTR, PTR, PTR, PTR, types::I64];
        let fr = self.func_sig("bnnc_unary_row_bias_head", &sig, None)?;
        let f = self.func_sig(name, &[PTR, PTR, types::I64], None)?;
        let fp = self.b.ins().func_addr(PTR, f);
        let (ba, ha) = (self.addr(bias)?, self.addr(h)?);
        let (r, c) = (self.int(shape[0] as i64), self.int(shape[1] as i64));
        let (wa, oa) = match head {
            Some((o, w)) => (self.addr(w)?, self.addr(o)?),
            None => (self.int(0), self.int(0)),
        };
        let (xa, aa, la, k) = match input {
            Some((a, l)) => (self.int(0), self.addr(a)?, self.addr(l)?, self.p.info(a).shape[1]),
            None => (self.addr(x)?, self.int(0), self.int(0), 0),
        };
        let k = self.int(k as i64);
        self.b.ins().call(fr, &[fp, xa, ba, ha, r, c, wa, oa, aa, la, k]);
        self.fused_ops += 1 + at + head.is_some() as usize;
        self.array_ops += 1;
        Ok(at + 2 + head.is_some() as usize)
    }

    /// Whether `dst = args[0] @ args[1]` is a dense layer's product that the forward kernel of
    /// the pair after it can form itself ([`Self::bias_activation`]): a matrix by a matrix of
    /// weights that fits [`crate::jit::gemm::SMALL`], at most 512 columns (the kernel's
    /// buffer), its result read by nothing else (its reverse reads its arguments only).
    fn layer_product(&self, dst: V, args: &[V]) -> bool {
        let [a, l] = args[..] else { return false };
        let (sa, sl) = (&self.p.info(a).shape, &self.p.info(l).shape);
        let [rows, k] = sa[..] else { return false };
        let [k2, cols] = sl[..] else { return false };
        a != l
            && k == k2
            && k >= 1
            && rows >= 1
            && (2..=512).contains(&cols)
            && k * cols <= crate::jit::gemm::SMALL
            && self.uses[dst.0 as usize] == 1
    }

    /// The reverse of the dense pair at `insts[k..]` (where [`Self::dense_pair_rev`]): one
    /// kernel call takes h's adjoint to the matrix's and the bias's, with the bits of the
    /// fused loop of the two operations (`kernels::k_unary_row_bias_vjp`).
    pub(super) fn bias_activation_rev(&mut self, insts: &[Inst], k: usize) -> R<()> {
        let (x, bias, z, h, u) = self.dense_pair(insts, k).ok_or("not a dense layer's bias and activation")?;
        let shape = self.p.info(z).shape.clone();
        let hadj = self.adj(h).ok_or("no adjoint")?;
        let mut flags = 0;
        if !self.overwritten.contains(&h) {
            flags |= crate::jit::kernels::ROW_BIAS_CLEAR;
        }
        let xadj = self.adj(x);
        // The matrix's one use, in this block: its adjoint is zero until now (as in a fused
        // reverse).
        if xadj.is_some() && self.uses[x.0 as usize] == 1 && self.p.info(x).block == self.p.info(z).block {
            flags |= crate::jit::kernels::ROW_BIAS_STORE;
            self.overwritten.insert(x);
        }
        let null = self.int(0);
        let (xadj, badj) = (xadj.unwrap_or(null), self.adj(bias).unwrap_or(null));
        let code = Un::ALL.iter().position(|v| *v == u).ok_or("unknown function")? as i64;
        let fr = self.func_sig(
            "bnnc_unary_row_bias_vjp",
            &[types::I64, PTR, PTR, PTR, PTR, types::I64, types::I64, types::I64],
            None,
        )?;
        let ha = self.addr(h)?;
        let (code, r, c, flags) =
            (self.int(code), self.int(shape[0] as i64), self.int(shape[1] as i64), self.int(flags));
        self.b.ins().call(fr, &[code, ha, hadj, xadj, badj, r, c, flags]);
        self.fused_ops += 2;
        self.array_ops += 1;
        Ok(())
    }
    /// A network's output product at `insts[k]`: `o = h w` with `w` a column or a vector and `h`
    /// the result of the dense pair at `insts[k - 2..k]` ([`Self::dense_pair_rev`]), read by
    /// nothing else. Returns (o, h, w).
    pub(super) fn dense_head(&self, insts: &[Inst], k: usize) -> Option<(V, V, V)> {
        if k < 2 || !self.dense_pair_rev(insts, k - 2) {
            return None;
        }
        let (_, _, _, h, _) = self.dense_pair(insts, k - 2)?;
        let Inst::Op { dst: o, prim: Prim::MatMul, args } = insts.get(k)? else { return None };
        let [a, w] = args[..] else { return None };
        let cols = self.p.info(h).shape[1];
        let column = matches!(self.p.info(w).shape[..], [c] | [c, 1] if c == cols);
        (a == h && column && self.uses[h.0 as usize] == 1 && self.lay.has_adj(*o)).then_some((*o, h, w))
    }

    /// The reverse of the output product at `insts[k]` and of the dense pair before it
    /// ([`Self::dense_head`]) in one kernel call, `kernels::k_dense_head_vjp`: h's adjoint is
    /// never formed.
    pub(super) fn dense_head_rev(&mut self, insts: &[Inst], k: usize) -> R<()> {
        use crate::jit::kernels::{HEAD_CLEAR_D, HEAD_STORE_W, HEAD_STORE_X};
        let (o, h, w) = self.dense_head(insts, k).ok_or("not a network's output product")?;
        let (x, bias, z, _, u) = self.dense_pair(insts, k - 2).ok_or("not a dense layer's bias and activation")?;
        let shape = self.p.info(z).shape.clone();
        let d = self.adj(o).ok_or("no adjoint")?;
        let mut flags = 0;
        if !self.overwritten.contains(&o) {
            flags |= HEAD_CLEAR_D;
        }
        // An argument whose one use this is, in this block: its adjoint is zero until now.
        let mut fresh = |v: V, at: V, flag: i64, s: &mut Self| {
            let yes = s.lay.has_adj(v) && s.uses[v.0 as usize] == 1 && s.p.info(v).block == s.p.info(at).block;
            if yes {
                flags |= flag;
                s.overwritten.insert(v);
            }
        };
        fresh(x, z, HEAD_STORE_X, self);
        fresh(w, o, HEAD_STORE_W, self);
        let null = self.int(0);
        let xadj = self.adj(x).unwrap_or(null);
        let badj = self.adj(bias).unwrap_or(null);
        let wadj = self.adj(w).unwrap_or(null);
        let code = Un::ALL.iter().position(|v| *v == u).ok_or("unknown function")? as i64;
        let fr = self.func_sig(
            "bnnc_dense_head_vjp",
            &[types::I64, PTR, PTR, PTR, PTR, PTR, PTR, types::I64, types::I64, types::I64],
            None,
        )?;
        let (ha, wa) = (self.addr(h)?, self.addr(w)?);
        let (code, r, c, flags) =
            (self.int(code), self.int(shape[0] as i64), self.int(shape[1] as i64), self.int(flags));
        self.b.ins().call(fr, &[code, ha, wa, d, xadj, badj, wadj, r, c, flags]);
        self.fused_ops += 3;
        self.array_ops += 1;
        Ok(())
    }
}
