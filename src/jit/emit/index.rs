//! Indexing emitted inline: contiguous runs, columns of a matrix and gathers on the first
//! dimension, forward and reverse, and the clearing of adjoints.

use super::*;

impl<'a, 'f> Emitter<'a, 'f> {
    /// When `ix` picks one contiguous run of a tensor of shape `base` (single indices, then
    /// at most one range or `:`, then whole dimensions), its flat offset (bounds checked when
    /// `check`); `None` for other patterns.
    pub(super) fn run(&mut self, ix: &[Ix], base: &[usize], idx: &[V], check: bool) -> R<Option<Run>> {
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

    /// Index patterns emitted inline: a contiguous run, a column of a matrix, or a gather on
    /// the first dimension.
    pub(super) fn inline_index(&self, ix: &[Ix], base: &[usize], _idx: &[V]) -> bool {
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

    pub(super) fn index_fwd(&mut self, ix: &[Ix], base: &[usize], ba: Value, idx: &[V], o: Value, n: usize) -> R<()> {
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
    pub(super) fn index_rev(
        &mut self,
        ix: &[Ix],
        base: &[usize],
        badj: Value,
        idx: &[V],
        oadj: Value,
        n: usize,
    ) -> R<()> {
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
    pub(super) fn clear(&mut self, v: V, oadj: Value, n: usize) -> R<()> {
        if self.overwritten.contains(&v) {
            return Ok(());
        }
        self.zero(oadj, n)
    }
}

/// `m[:, j]` of a matrix.
fn is_column(ix: &[Ix], base: &[usize]) -> bool {
    base.len() == 2 && ix == [Ix::All, Ix::Single]
}

/// The number of elements an index expression picks (for stores through a run).
pub(super) fn index_len(ix: &[Ix], base: &[usize]) -> usize {
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
