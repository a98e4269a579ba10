//! Rewrites of a lowered program that keep its log density and change its cost.
//!
//! **Gaussian sufficient statistics.** `normal(y | c + X @ b, sigma)` with `y` and `X` data
//! (an N-vector and an N×K matrix), `c` and `sigma` scalars, needs two passes over X per
//! gradient (X b forward, Xᵀ r backward). Its log density depends on the data only through
//! a few sums:
//!
//! ```text
//! Σ (yᵢ − c − xᵢᵀb)² = S − 2 bᵀ(Xᵀy') + bᵀ(XᵀX) b + 2 c' bᵀ(Xᵀ1) + N c'²
//! ```
//!
//! with y' = y − ȳ, S = y'ᵀy', c' = c − ȳ (centring y keeps the cancellation between the
//! terms small). XᵀX, Xᵀy', Xᵀ1 and S are computed once, when the data are bound, and the
//! density costs O(K²) instead of O(NK). The rewrite applies when the mean and the product
//! are used by nothing else and N ≥ 2K; the product and, when unused, X itself disappear.

use crate::ir::{Inst, Prim, Program, ValueInfo, V};
use crate::math::dist::Family;

/// ½ ln 2π.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Apply every rewrite; returns how many places changed.
pub fn rewrite(p: &mut Program) -> Result<usize, String> {
    let n = gaussian_suffstats(p);
    crate::ir::verify::after_pass(p, "the Gaussian sufficient-statistics rewrite")?;
    if n > 0 {
        dead_code(p);
        crate::ir::verify::after_pass(p, "dead-code elimination")?;
    }
    Ok(n)
}

/// How many times each value is read (operands, loop bounds, conditions, stores, targets,
/// parameters, outputs).
fn uses(p: &Program) -> Vec<usize> {
    let mut u = vec![0; p.values.len()];
    let mut add = |v: V| u[v.0 as usize] += 1;
    for block in &p.blocks {
        for inst in block {
            match inst {
                Inst::Op { args, .. } => args.iter().for_each(|a| add(*a)),
                Inst::For { lo, hi, .. } => {
                    add(*lo);
                    add(*hi);
                }
                Inst::If { cond, .. } => add(*cond),
                Inst::Store { index, value, .. } => {
                    index.iter().for_each(|a| add(*a));
                    add(*value);
                }
                Inst::Init { value, .. } => {
                    if let Some(v) = value {
                        add(*v);
                    }
                }
                Inst::Target { value } => add(*value),
            }
        }
    }
    for pl in &p.params {
        add(pl.value);
    }
    for o in &p.outputs {
        add(o.value);
    }
    u
}

/// The operation defining each value: (block, position).
fn defs(p: &Program) -> Vec<Option<(usize, usize)>> {
    let mut d = vec![None; p.values.len()];
    for (b, block) in p.blocks.iter().enumerate() {
        for (k, inst) in block.iter().enumerate() {
            if let Inst::Op { dst, .. } = inst {
                d[dst.0 as usize] = Some((b, k));
            }
        }
    }
    d
}

fn op(p: &Program, at: Option<(usize, usize)>) -> Option<(&Prim, &[V])> {
    let (b, k) = at?;
    match &p.blocks[b][k] {
        Inst::Op { prim, args, .. } => Some((prim, args)),
        _ => None,
    }
}

/// A match of the pattern: the variate's data, the design matrix's data, b, c.
struct Match {
    block: usize,
    pos: usize,
    dst: V,
    y: Vec<f64>,
    x: Vec<f64>,
    n: usize,
    k: usize,
    b: V,
    c: Option<V>,
    sigma: V,
}

fn find(p: &Program) -> Option<Match> {
    let u = uses(p);
    let d = defs(p);
    let const_of = |v: V| match op(p, d[v.0 as usize]) {
        Some((Prim::Const(c), _)) => Some(&p.consts[*c as usize]),
        _ => None,
    };
    let in_density = |b: usize| Some(crate::ir::BlockId(b as u32)) != p.generated;
    for (bi, block) in p.blocks.iter().enumerate() {
        if !in_density(bi) {
            continue;
        }
        for (k, inst) in block.iter().enumerate() {
            let Inst::Op { dst, prim: Prim::LogDensity(Family::Normal), args } = inst else { continue };
            let (y, mu, sigma) = (args[0], args[1], args[2]);
            let Some(yv) = const_of(y) else { continue };
            if p.info(sigma).len() != 1 || p.info(y).shape.len() != 1 || u[mu.0 as usize] != 1 {
                continue;
            }
            // mu = X @ b, or c + X @ b, or X @ b + c.
            let (prod, c) = match op(p, d[mu.0 as usize]) {
                Some((Prim::MatMul, _)) => (mu, None),
                Some((Prim::Binary(crate::ir::prim::Bin::Add), a)) => {
                    let (l, r) = (a[0], a[1]);
                    let is_mm = |v: V| matches!(op(p, d[v.0 as usize]), Some((Prim::MatMul, _)));
                    if is_mm(r) && p.info(l).len() == 1 {
                        (r, Some(l))
                    } else if is_mm(l) && p.info(r).len() == 1 {
                        (l, Some(r))
                    } else {
                        continue;
                    }
                }
                _ => continue,
            };
            if prod != mu && u[prod.0 as usize] != 1 {
                continue;
            }
            let Some((_, mm)) = op(p, d[prod.0 as usize]) else { continue };
            let (xv, b) = (mm[0], mm[1]);
            let Some(xd) = const_of(xv) else { continue };
            let (xs, bs) = (&p.info(xv).shape, &p.info(b).shape);
            let [n, kk] = xs[..] else { continue };
            if bs[..] != [kk] || p.info(y).shape[0] != n || n < 2 * kk || kk == 0 {
                continue;
            }
            return Some(Match { block: bi, pos: k, dst: *dst, y: yv.clone(), x: xd.clone(), n, k: kk, b, c, sigma });
        }
    }
    None
}

fn gaussian_suffstats(p: &mut Program) -> usize {
    let mut count = 0;
    while let Some(m) = find(p) {
        replace(p, m);
        count += 1;
    }
    count
}

fn replace(p: &mut Program, m: Match) {
    let (n, k) = (m.n, m.k);
    let ybar = m.y.iter().sum::<f64>() / n as f64;
    let yc: Vec<f64> = m.y.iter().map(|v| v - ybar).collect();
    let s: f64 = yc.iter().map(|v| v * v).sum();
    let mut g = vec![0.0; k * k];
    let mut xty = vec![0.0; k];
    let mut x1 = vec![0.0; k];
    for (i, row) in m.x.chunks_exact(k).enumerate() {
        for a in 0..k {
            xty[a] += row[a] * yc[i];
            x1[a] += row[a];
            for c in a..k {
                g[a * k + c] += row[a] * row[c];
            }
        }
    }
    for a in 0..k {
        for c in 0..a {
            g[a * k + c] = g[c * k + a];
        }
    }
    let block = crate::ir::BlockId(m.block as u32);
    let mut new: Vec<Inst> = Vec::new();
    let val = |p: &mut Program, shape: Vec<usize>, prim: Prim, args: Vec<V>, new: &mut Vec<Inst>| -> V {
        p.values.push(ValueInfo { shape, int: false, block, name: None });
        let v = V(p.values.len() as u32 - 1);
        new.push(Inst::Op { dst: v, prim, args });
        v
    };
    let konst = |p: &mut Program, data: Vec<f64>, shape: Vec<usize>, new: &mut Vec<Inst>| -> V {
        p.consts.push(data);
        let c = p.consts.len() as u32 - 1;
        val(p, shape, Prim::Const(c), vec![], new)
    };
    use crate::ir::prim::{Bin, Un};
    let gv = konst(p, g, vec![k, k], &mut new);
    let xtyv = konst(p, xty, vec![k], &mut new);
    let x1v = konst(p, x1, vec![k], &mut new);
    let lit = |p: &mut Program, x: f64, new: &mut Vec<Inst>| val(p, vec![], Prim::Lit(x), vec![], new);
    let bin =
        |p: &mut Program, op: Bin, a: V, b: V, new: &mut Vec<Inst>| val(p, vec![], Prim::Binary(op), vec![a, b], new);
    let gb = val(p, vec![k], Prim::MatMul, vec![gv, m.b], &mut new);
    let bgb = val(p, vec![], Prim::MatMul, vec![m.b, gb], &mut new);
    let bxty = val(p, vec![], Prim::MatMul, vec![m.b, xtyv], &mut new);
    let bx1 = val(p, vec![], Prim::MatMul, vec![m.b, x1v], &mut new);
    // c' = c − ȳ (c = 0 when the mean has no offset).
    let ybar_v = lit(p, ybar, &mut new);
    let cp = match m.c {
        Some(c) => bin(p, Bin::Sub, c, ybar_v, &mut new),
        None => {
            let z = lit(p, 0.0, &mut new);
            bin(p, Bin::Sub, z, ybar_v, &mut new)
        }
    };
    // Q = S − 2 bᵀXᵀy' + bᵀXᵀXb + 2c' bᵀXᵀ1 + N c'²
    let sv = lit(p, s, &mut new);
    let two = lit(p, 2.0, &mut new);
    let t = bin(p, Bin::Mul, two, bxty, &mut new);
    let q = bin(p, Bin::Sub, sv, t, &mut new);
    let q = bin(p, Bin::Add, q, bgb, &mut new);
    let t = bin(p, Bin::Mul, two, cp, &mut new);
    let t = bin(p, Bin::Mul, t, bx1, &mut new);
    let q = bin(p, Bin::Add, q, t, &mut new);
    let nv = lit(p, n as f64, &mut new);
    let t = bin(p, Bin::Mul, cp, cp, &mut new);
    let t = bin(p, Bin::Mul, nv, t, &mut new);
    let q = bin(p, Bin::Add, q, t, &mut new);
    // log density = −Q / (2σ²) − N ln σ − N ½ln 2π
    let ss = bin(p, Bin::Mul, m.sigma, m.sigma, &mut new);
    let r = bin(p, Bin::Div, q, ss, &mut new);
    let h = lit(p, -0.5, &mut new);
    let r = bin(p, Bin::Mul, h, r, &mut new);
    let ls = val(p, vec![], Prim::Unary(Un::Log), vec![m.sigma], &mut new);
    let t = bin(p, Bin::Mul, nv, ls, &mut new);
    let r = bin(p, Bin::Sub, r, t, &mut new);
    let cst = lit(p, n as f64 * HALF_LN_2PI, &mut new);
    // The last operation defines the original value, so its uses stay as they are.
    new.push(Inst::Op { dst: m.dst, prim: Prim::Binary(Bin::Sub), args: vec![r, cst] });
    let block = &mut p.blocks[m.block];
    block.splice(m.pos..m.pos + 1, new);
}

/// Remove operations whose results nobody reads (transforms stay: they add to the Jacobian).
fn dead_code(p: &mut Program) {
    loop {
        let u = uses(p);
        let mut removed = false;
        for block in p.blocks.iter_mut() {
            block.retain(|inst| match inst {
                Inst::Op { dst, prim, .. } => {
                    let keep = u[dst.0 as usize] > 0 || matches!(prim, Prim::Constrain(_) | Prim::Rng(..));
                    removed |= !keep;
                    keep
                }
                _ => true,
            });
        }
        if !removed {
            return;
        }
    }
}
