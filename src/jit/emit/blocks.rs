//! The two sweeps over a block's instructions: forward in order, reverse backwards, with
//! fused groups, loops (their counters and streamed reverses), branches, stores into slots,
//! their initialisation and `target`.

use super::index::index_len;
use super::*;

impl<'a, 'f> Emitter<'a, 'f> {
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

    fn int_of(&mut self, v: V) -> R<Value> {
        let a = self.addr(v)?;
        let x = self.ld0(a);
        Ok(self.b.ins().fcvt_to_sint_sat(types::I64, x))
    }

    pub(super) fn cond_of(&mut self, v: V) -> R<Value> {
        let a = self.addr(v)?;
        let x = self.ld0(a);
        let z = self.f(0.0);
        Ok(self.b.ins().fcmp(FloatCC::NotEqual, x, z))
    }

    pub(super) fn insts_fwd(&mut self, b: BlockId) -> R<()> {
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
            let ran = self.bias_activation(&p.block(b)[k..])?;
            if ran > 0 {
                skip_to = k + ran;
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

    /// The sum of a value's elements, in pair order ([`crate::ir::prim::pair_sum`]).
    pub(super) fn sum(&mut self, v: V) -> R<Value> {
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

    pub(super) fn insts_rev(&mut self, b: BlockId) -> R<()> {
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
            if self.dense_head(p.block(b), k).is_some() {
                self.dense_head_rev(p.block(b), k)?;
                skip_below = k - 2;
                continue;
            }
            if k > 0 && self.dense_pair_rev(p.block(b), k - 1) {
                self.bias_activation_rev(p.block(b), k - 1)?;
                skip_below = k - 1;
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
}
