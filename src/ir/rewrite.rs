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
//!
//! **Affine means as matrix products.** A regression is usually written term by term,
//! `normal(y | b0 + b1 * x1 + b2 * x2 + ..., sigma)`, with scalar coefficients and data
//! vectors. Before the rewrite above, such a mean — sums and differences of scalars, data
//! vectors, scalar × data-vector products, and such sums multiplied elementwise by data —
//! becomes `c + X @ b`: X the N×K matrix of the data columns (computed once), b the vector
//! of the K coefficients (Σₖ bₖ eₖ, with eₖ the unit vectors), c the sum of the scalar terms.
//! A data-only part of the mean moves into y (`normal(y | d + m, σ) = normal(y − d | m, σ)`).

use crate::ir::{Inst, Prim, Program, ValueInfo, V};
use crate::math::dist::Family;

/// ½ ln 2π.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Apply every rewrite; returns how many places changed.
pub fn rewrite(p: &mut Program) -> Result<usize, String> {
    let l = crate::ir::vectorise::vectorise_loops(p);
    crate::ir::verify::after_pass(p, "the loop-to-array rewrite")?;
    let lg = logit_forms(p);
    crate::ir::verify::after_pass(p, "the logit-form rewrite")?;
    let a = affine_means(p);
    crate::ir::verify::after_pass(p, "the affine-mean rewrite")?;
    let n = gaussian_suffstats(p);
    crate::ir::verify::after_pass(p, "the Gaussian sufficient-statistics rewrite")?;
    if n + a + l + lg > 0 {
        dead_code(p);
        crate::ir::verify::after_pass(p, "dead-code elimination")?;
    }
    crate::ir::rowblock::row_blocks(p);
    crate::ir::verify::after_pass(p, "the row-block rewrite")?;
    Ok(n)
}

/// A mean taken apart: Σ coefficient × column + Σ sign × scalar (+ a data vector).
#[derive(Default)]
struct Affine {
    /// (scalar coefficient, data column); the column already carries the term's sign and any
    /// elementwise data factors.
    terms: Vec<(V, Vec<f64>)>,
    /// Scalars added (sign +1) or subtracted (−1).
    offsets: Vec<(V, f64)>,
    /// A data-only vector part of the mean.
    data: Option<Vec<f64>>,
}

impl Affine {
    fn add(mut self, o: Affine) -> Affine {
        self.terms.extend(o.terms);
        self.offsets.extend(o.offsets);
        self.data = match (self.data, o.data) {
            (Some(a), Some(b)) => Some(a.iter().zip(&b).map(|(x, y)| x + y).collect()),
            (a, b) => a.or(b),
        };
        self
    }

    fn scale(mut self, f: &[f64]) -> Affine {
        for (_, col) in &mut self.terms {
            col.iter_mut().zip(f).for_each(|(c, x)| *c *= x);
        }
        for (s, sign) in std::mem::take(&mut self.offsets) {
            self.terms.push((s, f.iter().map(|x| sign * x).collect()));
        }
        if let Some(d) = &mut self.data {
            d.iter_mut().zip(f).for_each(|(c, x)| *c *= x);
        }
        self
    }

    fn negate(mut self) -> Affine {
        for (_, col) in &mut self.terms {
            col.iter_mut().for_each(|c| *c = -*c);
        }
        for (_, sign) in &mut self.offsets {
            *sign = -*sign;
        }
        if let Some(d) = &mut self.data {
            d.iter_mut().for_each(|c| *c = -*c);
        }
        self
    }
}

/// `v` as an affine combination of scalars and N-vectors of data, if it is one.
fn affine(p: &Program, d: &[Option<(usize, usize)>], v: V, n: usize) -> Option<Affine> {
    use crate::ir::prim::{Bin, Un};
    let info = p.info(v);
    if info.shape.is_empty() {
        return Some(Affine { offsets: vec![(v, 1.0)], ..Affine::default() });
    }
    if info.shape[..] != [n] {
        return None;
    }
    let data = |v: V| match op(p, d[v.0 as usize]) {
        Some((Prim::Const(c), _)) => Some(p.consts[*c as usize].clone()),
        _ => None,
    };
    if let Some(x) = data(v) {
        return Some(Affine { data: Some(x), ..Affine::default() });
    }
    let (prim, args) = op(p, d[v.0 as usize])?;
    match prim {
        Prim::Binary(Bin::Add) => Some(affine(p, d, args[0], n)?.add(affine(p, d, args[1], n)?)),
        Prim::Binary(Bin::Sub) => Some(affine(p, d, args[0], n)?.add(affine(p, d, args[1], n)?.negate())),
        Prim::Unary(Un::Neg) => Some(affine(p, d, args[0], n)?.negate()),
        // A scalar filled into a vector (a running sum's start, from a loop made array
        // operations).
        Prim::Fill(_) if p.info(args[0]).shape.is_empty() => {
            Some(Affine { offsets: vec![(args[0], 1.0)], ..Affine::default() })
        }
        Prim::Binary(Bin::Mul) => {
            let (a, b) = (args[0], args[1]);
            let scalar = |v: V| p.info(v).shape.is_empty();
            for (s, x) in [(a, b), (b, a)] {
                if let (true, Some(col)) = (scalar(s), data(x)) {
                    if p.info(x).shape[..] == [n] {
                        return Some(Affine { terms: vec![(s, col)], ..Affine::default() });
                    }
                }
            }
            for (e, x) in [(a, b), (b, a)] {
                if let Some(f) = data(x) {
                    if p.info(x).shape[..] == [n] && p.info(e).shape[..] == [n] {
                        return Some(affine(p, d, e, n)?.scale(&f));
                    }
                }
            }
            None
        }
        _ => None,
    }
}

/// Rewrite the affine means of normal densities on data as `c + X @ b` (see the module
/// documentation); returns how many were rewritten.
fn affine_means(p: &mut Program) -> usize {
    use crate::ir::prim::Bin;
    let mut count = 0;
    let mut bi = 0;
    while bi < p.blocks.len() {
        let mut k = 0;
        while k < p.blocks[bi].len() {
            let normal = matches!(&p.blocks[bi][k], Inst::Op { prim: Prim::LogDensity(Family::Normal), .. });
            if !normal || Some(crate::ir::BlockId(bi as u32)) == p.generated {
                k += 1;
                continue;
            }
            let d = defs(p);
            let Inst::Op { args, .. } = &p.blocks[bi][k] else {
                k += 1;
                continue;
            };
            let (y, mu) = (args[0], args[1]);
            let yv = match op(p, d[y.0 as usize]) {
                Some((Prim::Const(c), _)) if p.info(y).shape.len() == 1 => p.consts[*c as usize].clone(),
                _ => {
                    k += 1;
                    continue;
                }
            };
            let n = yv.len();
            // Already a product (the next rewrite's form), or not affine: leave it.
            let is_product = |v: V| matches!(op(p, d[v.0 as usize]), Some((Prim::MatMul, _)));
            let a = if is_product(mu) { None } else { affine(p, &d, mu, n) };
            let Some(a) = a.filter(|a| !a.terms.is_empty() && n >= 2 * a.terms.len()) else {
                k += 1;
                continue;
            };
            let mut bd = Build { block: crate::ir::BlockId(bi as u32), new: Vec::new() };
            let kk = a.terms.len();
            // X, row-major N×K.
            let mut x = vec![0.0; n * kk];
            for (j, (_, col)) in a.terms.iter().enumerate() {
                for (i, c) in col.iter().enumerate() {
                    x[i * kk + j] = *c;
                }
            }
            let xv = bd.konst(p, x, vec![n, kk]);
            // b = Σ_j s_j e_j.
            let mut b: Option<V> = None;
            for (j, (s, _)) in a.terms.iter().enumerate() {
                let mut e = vec![0.0; kk];
                e[j] = 1.0;
                let ev = bd.konst(p, e, vec![kk]);
                let t = bd.val(p, vec![kk], Prim::Binary(Bin::Mul), vec![*s, ev]);
                b = Some(match b {
                    None => t,
                    Some(acc) => bd.val(p, vec![kk], Prim::Binary(Bin::Add), vec![acc, t]),
                });
            }
            let b = b.expect("at least one term");
            let prod = bd.val(p, vec![n], Prim::MatMul, vec![xv, b]);
            let mut c: Option<V> = None;
            for (s, sign) in &a.offsets {
                c = Some(match (c, *sign > 0.0) {
                    (None, true) => *s,
                    (None, false) => bd.val(p, vec![], Prim::Unary(crate::ir::prim::Un::Neg), vec![*s]),
                    (Some(acc), true) => bd.val(p, vec![], Prim::Binary(Bin::Add), vec![acc, *s]),
                    (Some(acc), false) => bd.val(p, vec![], Prim::Binary(Bin::Sub), vec![acc, *s]),
                });
            }
            let mean = match c {
                Some(c) => bd.val(p, vec![n], Prim::Binary(Bin::Add), vec![c, prod]),
                None => prod,
            };
            let y_new = match &a.data {
                Some(dv) => bd.konst(p, yv.iter().zip(dv).map(|(y, d)| y - d).collect(), vec![n]),
                None => y,
            };
            let added = bd.new.len();
            if let Inst::Op { args, .. } = &mut p.blocks[bi][k] {
                args[0] = y_new;
                args[1] = mean;
            }
            p.blocks[bi].splice(k..k, bd.new);
            k += added + 1;
            count += 1;
        }
        bi += 1;
    }
    count
}

/// **Logit forms.** `bernoulli(y | sigmoid(z))`, `binomial(y | n, sigmoid(z))` and
/// `categorical(y | softmax(z))` become the `_logit` families on `z`: the same density, but a
/// probability that rounds to exactly 0 or 1 (a sigmoid output unit beyond |z| ≈ 37) no longer
/// makes the log density −∞ where the logit form is finite. The probability may be reached
/// through indexing or a reshape (`col(p, 0)` of a network's sigmoid layer): the same
/// selection is then taken of `z`.
fn logit_forms(p: &mut Program) -> usize {
    use crate::ir::prim::Un;
    use crate::math::dist::Family;
    let d = defs(p);
    // (the density's value, the argument, the logit family, z itself or the selection of z
    // to make: the selecting operation's value, its prim, z and its index arguments)
    type Select = (V, Prim, V, Vec<V>);
    let mut changes: Vec<(V, usize, Family, Result<V, Select>)> = Vec::new();
    for block in &p.blocks {
        for inst in block {
            let Inst::Op { dst, prim: Prim::LogDensity(f), args } = inst else { continue };
            let (logit, at, squash) = match f {
                Family::Bernoulli => (Family::BernoulliLogit, 1, Prim::Unary(Un::Sigmoid)),
                Family::Binomial => (Family::BinomialLogit, 2, Prim::Unary(Un::Sigmoid)),
                Family::Categorical => (Family::CategoricalLogit, 1, Prim::Softmax),
                _ => continue,
            };
            let Some(&prob) = args.get(at) else { continue };
            let Some((prim, pargs)) = op(p, d[prob.0 as usize]) else { continue };
            if *prim == squash {
                changes.push((*dst, at, logit, Ok(pargs[0])));
                continue;
            }
            // A selection (of whole rows for a softmax, which works row by row).
            let selects = match prim {
                Prim::Index(ix) => squash != Prim::Softmax || ix.last() == Some(&crate::ir::prim::Ix::All),
                Prim::Reshape(_) => squash != Prim::Softmax,
                _ => false,
            };
            if let (true, Some((iprim, iargs))) = (selects, pargs.first().and_then(|a| op(p, d[a.0 as usize]))) {
                if *iprim == squash {
                    changes.push((*dst, at, logit, Err((prob, prim.clone(), iargs[0], pargs[1..].to_vec()))));
                }
            }
        }
    }
    let find = |p: &Program, v: V| -> Option<(usize, usize)> {
        p.blocks.iter().enumerate().find_map(|(b, block)| {
            block.iter().position(|i| matches!(i, Inst::Op { dst, .. } if *dst == v)).map(|k| (b, k))
        })
    };
    let count = changes.len();
    for (density, at, logit, z) in changes {
        let z = match z {
            Ok(z) => z,
            Err((selected, prim, z, rest)) => {
                // The same selection of z, just after the selection of the probabilities.
                let Some((b, k)) = find(p, selected) else { continue };
                let info = p.values[selected.0 as usize].clone();
                let w = p.new_value(crate::ir::ValueInfo { name: None, ..info });
                let mut a = vec![z];
                a.extend(rest);
                p.blocks[b].insert(k + 1, Inst::Op { dst: w, prim, args: a });
                w
            }
        };
        let Some((b, k)) = find(p, density) else { continue };
        if let Inst::Op { prim, args, .. } = &mut p.blocks[b][k] {
            *prim = Prim::LogDensity(logit);
            args[at] = z;
        }
    }
    count
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
    let u = p.uses();
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

/// The instructions a rewrite inserts into one block, and the values they define.
struct Build {
    block: crate::ir::BlockId,
    new: Vec<Inst>,
}

impl Build {
    fn val(&mut self, p: &mut Program, shape: Vec<usize>, prim: Prim, args: Vec<V>) -> V {
        let v = p.new_value(ValueInfo { shape, int: false, block: self.block, name: None });
        self.new.push(Inst::Op { dst: v, prim, args });
        v
    }

    fn konst(&mut self, p: &mut Program, data: Vec<f64>, shape: Vec<usize>) -> V {
        p.consts.push(data);
        let c = p.consts.len() as u32 - 1;
        self.val(p, shape, Prim::Const(c), vec![])
    }

    fn lit(&mut self, p: &mut Program, x: f64) -> V {
        self.val(p, vec![], Prim::Lit(x), vec![])
    }

    fn bin(&mut self, p: &mut Program, op: crate::ir::prim::Bin, a: V, b: V) -> V {
        self.val(p, vec![], Prim::Binary(op), vec![a, b])
    }
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
    let mut bd = Build { block: crate::ir::BlockId(m.block as u32), new: Vec::new() };
    use crate::ir::prim::{Bin, Un};
    let gv = bd.konst(p, g, vec![k, k]);
    let xtyv = bd.konst(p, xty, vec![k]);
    let x1v = bd.konst(p, x1, vec![k]);
    let gb = bd.val(p, vec![k], Prim::MatMul, vec![gv, m.b]);
    let bgb = bd.val(p, vec![], Prim::MatMul, vec![m.b, gb]);
    let bxty = bd.val(p, vec![], Prim::MatMul, vec![m.b, xtyv]);
    let bx1 = bd.val(p, vec![], Prim::MatMul, vec![m.b, x1v]);
    // c' = c − ȳ (c = 0 when the mean has no offset).
    let ybar_v = bd.lit(p, ybar);
    let cp = match m.c {
        Some(c) => bd.bin(p, Bin::Sub, c, ybar_v),
        None => {
            let z = bd.lit(p, 0.0);
            bd.bin(p, Bin::Sub, z, ybar_v)
        }
    };
    // Q = S − 2 bᵀXᵀy' + bᵀXᵀXb + 2c' bᵀXᵀ1 + N c'²
    let sv = bd.lit(p, s);
    let two = bd.lit(p, 2.0);
    let t = bd.bin(p, Bin::Mul, two, bxty);
    let q = bd.bin(p, Bin::Sub, sv, t);
    let q = bd.bin(p, Bin::Add, q, bgb);
    let t = bd.bin(p, Bin::Mul, two, cp);
    let t = bd.bin(p, Bin::Mul, t, bx1);
    let q = bd.bin(p, Bin::Add, q, t);
    let nv = bd.lit(p, n as f64);
    let t = bd.bin(p, Bin::Mul, cp, cp);
    let t = bd.bin(p, Bin::Mul, nv, t);
    let q = bd.bin(p, Bin::Add, q, t);
    // log density = −Q / (2σ²) − N ln σ − N ½ln 2π
    let ss = bd.bin(p, Bin::Mul, m.sigma, m.sigma);
    let r = bd.bin(p, Bin::Div, q, ss);
    let h = bd.lit(p, -0.5);
    let r = bd.bin(p, Bin::Mul, h, r);
    let ls = bd.val(p, vec![], Prim::Unary(Un::Log), vec![m.sigma]);
    let t = bd.bin(p, Bin::Mul, nv, ls);
    let r = bd.bin(p, Bin::Sub, r, t);
    let cst = bd.lit(p, n as f64 * HALF_LN_2PI);
    // The last operation defines the original value, so its uses stay as they are.
    bd.new.push(Inst::Op { dst: m.dst, prim: Prim::Binary(Bin::Sub), args: vec![r, cst] });
    let block = &mut p.blocks[m.block];
    block.splice(m.pos..m.pos + 1, bd.new);
}

/// Remove operations whose results nobody reads (transforms stay: they add to the Jacobian).
/// Drop the constant tensors no operation reads any more, renumbering the rest.
pub fn compact_consts(p: &mut Program) {
    let mut used = vec![false; p.consts.len()];
    for block in &p.blocks {
        for inst in block {
            if let Inst::Op { prim: Prim::Const(c), .. } = inst {
                used[*c as usize] = true;
            }
        }
    }
    let mut new_index = vec![0u32; p.consts.len()];
    let mut kept = Vec::new();
    for (i, c) in std::mem::take(&mut p.consts).into_iter().enumerate() {
        if used[i] {
            new_index[i] = kept.len() as u32;
            kept.push(c);
        }
    }
    p.consts = kept;
    for block in &mut p.blocks {
        for inst in block {
            if let Inst::Op { prim: Prim::Const(c), .. } = inst {
                *c = new_index[*c as usize];
            }
        }
    }
}

pub fn dead_code(p: &mut Program) {
    loop {
        let u = p.uses();
        let mut removed = false;
        for block in p.blocks.iter_mut() {
            block.retain(|inst| match inst {
                Inst::Op { dst, prim, .. } => {
                    let keep =
                        u[dst.0 as usize] > 0 || matches!(prim, Prim::Constrain(_) | Prim::Rng(..) | Prim::Input(_));
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
