//! One primitive operation, forward ([`Emitter::op_fwd`]) and reverse
//! ([`Emitter::op_rev`]): inline where it can be, else a call of its kernel.

use super::*;

/// The primitives compiled as calls of the kernels (the primitives table's evaluation and VJP
/// on the current execution's values), and those inline above when their guard fails: one
/// list, a pattern for both sweeps' exhaustive matches.
macro_rules! by_kernel {
    () => {
        Prim::Reduce(Red::Mean | Red::Sd | Red::Variance | Red::Prod | Red::Min | Red::Max | Red::LogSumExp)
            | Prim::MatMul
            | Prim::Transpose
            | Prim::LogMixVec
            | Prim::Softmax
            | Prim::LogSoftmax
            | Prim::LayerNorm
            | Prim::ColMeans
            | Prim::ColSums
            | Prim::RowMeans
            | Prim::RowSums
            | Prim::DiagMatrix
            | Prim::Diagonal
            | Prim::Cholesky
            | Prim::GpExpQuadCov
            | Prim::Conv2d { .. }
            | Prim::Pool2d(..)
            | Prim::Reparam
            | Prim::Rng(..)
            | Prim::Index(_)
            | Prim::Constrain(_)
            | Prim::LogDensity(_)
            | Prim::LogCdf(..)
            | Prim::Load(..)
    };
}

impl<'a, 'f> Emitter<'a, 'f> {
    pub(super) fn op_fwd(&mut self, key: (u32, u32), inst: &Inst, dst: V, prim: &Prim, args: &[V]) -> R<()> {
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
            by_kernel!() => {
                let id = self.id_of(key, inst);
                let mut ptrs = vec![self.addr(dst)?];
                for a in args {
                    ptrs.push(self.addr(*a)?);
                }
                self.kernel("bnnc_k_eval", id, &ptrs)
            }
        }
    }

    pub(super) fn op_rev(&mut self, key: (u32, u32), inst: &Inst, dst: V, prim: &Prim, args: &[V]) -> R<()> {
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
                            // A reshape: the same elements.
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
            by_kernel!() => {
                let id = self.id_of(key, inst);
                if self.overwritten.contains(&dst) {
                    self.kept_adj.insert(id as usize);
                }
                let distinct = crate::ir::V::all_distinct(args);
                if matches!(prim, Prim::MatMul | Prim::Reparam) && distinct {
                    // An argument whose one use this is, in this block: its adjoint is zero
                    // until now, so the kernel writes it over and nothing clears it.
                    let mut fresh = 0u8;
                    for (k, a) in args.iter().enumerate() {
                        if self.lay.has_adj(*a) && self.uses[a.0 as usize] == 1 && p.info(*a).block == p.info(dst).block
                        {
                            fresh |= 1 << k;
                            self.overwritten.insert(*a);
                        }
                    }
                    if fresh != 0 {
                        self.fresh_adj.insert(id as usize, fresh);
                    }
                }
                let mut ptrs = vec![self.addr(dst)?];
                for a in args {
                    ptrs.push(self.addr(*a)?);
                }
                self.kernel("bnnc_k_vjp", id, &ptrs)
            }
        }
    }
}
