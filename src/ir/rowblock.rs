//! Row blocks: a network over the rows of a data matrix, run a block of rows at a time.
//!
//! A neural-network likelihood is a chain of operations on N rows that never mix rows,
//!
//! ```text
//! h = tanh(x @ W1 + b1)      // N × H
//! f = h @ W2 + b2            // N × 1
//! target += normal_lpdf(y | f[:, 0], sigma)
//! ```
//!
//! Run as written, every intermediate is an N × H array: on 41,157 rows and 50 units each is
//! 16 MB, and the forward and the reverse sweep each pass over several of them, at the speed
//! of main memory. The same density is a sum over blocks of rows:
//!
//! ```text
//! for k in 0..N/B { target += normal_lpdf(y[kB..kB+B] | tanh(x[kB..kB+B] @ W1 + b1) @ W2 + b2, sigma) }
//! ```
//!
//! plus the rows left over, computed once after the loop. Such a loop is *streamed*
//! ([`crate::ir::adjoint`]): its reverse runs right after each iteration's forward, so a
//! block's intermediates are made, read back and differentiated while they are in cache, and
//! only one block's worth of them is stored.
//!
//! The pass looks for a log density read only by `target +=` whose arguments are computed
//! from data rows by operations that keep rows apart: matrix products with a matrix that is
//! not row data (`[N, K] @ [K, C]`, `[N, K] @ [K]`), elementwise operations whose other
//! operands are scalars or (for a matrix) vectors along its rows, and taking a column. Every
//! value of that chain must be read by nothing outside it (generated quantities included),
//! and it must contain a matrix product, the operation whose cost it is about. The block size
//! keeps a block's values and adjoints within about 256 KiB.
//!
//! Differences from the chain as written: `target` and the adjoints of the weights are sums
//! over blocks, so their last bits differ.

use std::collections::{HashMap, HashSet};

use crate::ir::prim::{Bin, Ix};
use crate::ir::{BlockId, Inst, Prim, Program, ValueInfo, ENTRY, V};

/// Bytes a block's values and adjoints may take.
const BUDGET: usize = 256 * 1024;
/// Chains whose values and adjoints take less stay whole: they stay in the last-level cache,
/// where blocks gain nothing and their per-block calls cost (FractalNet on the 308 rows of
/// yacht: 276 µs whole, 317 µs in blocks of 48 rows).
const WHOLE: usize = 4 << 20;
/// Fewest rows in a block (below this the loop's overhead shows).
const MIN_ROWS: usize = 16;

/// Rewrite every row-wise chain of the density's top level into a streamed loop over blocks
/// of rows; returns how many.
pub fn row_blocks(p: &mut Program) -> usize {
    let mut count = 0;
    // Each rewrite removes its chain and adds a loop; look again from the start.
    while let Some(chain) = find(p) {
        apply(p, chain);
        count += 1;
    }
    count
}

/// A chain found: the rows, the operations (positions in the entry block, in order), the data
/// constants it slices, and the `target +=` that ends it.
struct Chain {
    rows: usize,
    ops: Vec<usize>,
    data: Vec<V>,
    target: usize,
    block_rows: usize,
}

fn find(p: &Program) -> Option<Chain> {
    let insts = p.block(ENTRY);
    let uses = p.uses();
    let mut def: HashMap<V, usize> = HashMap::new();
    for (k, inst) in insts.iter().enumerate() {
        if let Inst::Op { dst, .. } = inst {
            def.insert(*dst, k);
        }
    }
    for (t, inst) in insts.iter().enumerate() {
        let Inst::Target { value, .. } = inst else { continue };
        let Some(&d) = def.get(value) else { continue };
        let Inst::Op { prim: Prim::LogDensity(_), args, .. } = &insts[d] else { continue };
        if uses[value.0 as usize] != 1 {
            continue;
        }
        // The rows: the leading size of the density's first argument that has one.
        let Some(rows) = args.iter().map(|a| p.info(*a).shape.as_slice()).find(|s| s.len() == 1).map(|s| s[0]) else {
            continue;
        };
        if let Some(chain) = grow(p, insts, &def, &uses, d, t, rows) {
            return Some(chain);
        }
    }
    None
}

/// The chain that ends in the density at `d` (read by the `target +=` at `t`), if every
/// value in it has `rows` rows, keeps rows apart and is read only inside it.
fn grow(
    p: &Program,
    insts: &[Inst],
    def: &HashMap<V, usize>,
    uses: &[usize],
    d: usize,
    t: usize,
    rows: usize,
) -> Option<Chain> {
    if rows == 0 {
        return None;
    }
    let rowwise = |v: V| p.info(v).shape.first() == Some(&rows);
    let mut members: HashSet<usize> = HashSet::new();
    let mut data: Vec<V> = Vec::new();
    let mut todo = vec![d];
    let mut product = false;
    while let Some(k) = todo.pop() {
        if !members.insert(k) {
            continue;
        }
        let Inst::Op { dst, prim, args } = &insts[k] else { return None };
        let shape = &p.info(*dst).shape;
        // Each operand: a row-wise value of the chain or of the data, or one read whole.
        let mut visit = |a: V, todo: &mut Vec<usize>| -> Option<()> {
            if rowwise(a) {
                let &at = def.get(&a)?;
                match &insts[at] {
                    Inst::Op { prim: Prim::Const(_), .. } => {
                        if !data.contains(&a) {
                            data.push(a);
                        }
                    }
                    _ => todo.push(at),
                }
            }
            Some(())
        };
        match prim {
            Prim::LogDensity(_) if k == d => {
                // Variate and parameters: vectors over the rows, or scalars.
                for a in args {
                    let s = &p.info(*a).shape;
                    if !(s.as_slice() == [rows] || p.info(*a).len() == 1) {
                        return None;
                    }
                    visit(*a, &mut todo)?;
                }
            }
            Prim::MatMul => {
                let (x, w) = (args[0], args[1]);
                if p.info(x).shape.len() != 2 || !rowwise(x) || rowwise(w) || shape.first() != Some(&rows) {
                    return None;
                }
                product = true;
                visit(x, &mut todo)?;
            }
            Prim::Unary(_) => {
                if !rowwise(args[0]) || &p.info(args[0]).shape != shape {
                    return None;
                }
                visit(args[0], &mut todo)?;
            }
            Prim::Binary(_) => {
                if shape.first() != Some(&rows) {
                    return None;
                }
                for a in args {
                    let s = &p.info(*a).shape;
                    let along = shape.len() == 2 && s.len() == 1 && s[0] == shape[1];
                    if rowwise(*a) && s == shape {
                        visit(*a, &mut todo)?;
                    } else if rowwise(*a) || !(p.info(*a).len() == 1 || along) {
                        return None;
                    }
                }
            }
            Prim::Index(ix) if ix.as_slice() == [Ix::All, Ix::Single] => {
                let x = args[0];
                if p.info(x).shape.len() != 2 || !rowwise(x) || rowwise(args[1]) {
                    return None;
                }
                visit(x, &mut todo)?;
            }
            _ => return None,
        }
    }
    if !product {
        return None;
    }
    // Read by nothing outside the chain (the density by its `target +=` alone).
    let mut inside: HashMap<V, usize> = HashMap::new();
    for &k in &members {
        if let Inst::Op { args, .. } = &insts[k] {
            for a in args {
                *inside.entry(*a).or_default() += 1;
            }
        }
    }
    for &k in &members {
        let Inst::Op { dst, .. } = &insts[k] else { return None };
        if k != d && inside.get(dst).copied().unwrap_or(0) != uses[dst.0 as usize] {
            return None;
        }
    }
    // A row of every value and datum, with its adjoint.
    let width: usize = members
        .iter()
        .filter_map(|k| match &insts[*k] {
            Inst::Op { dst, .. } if k != &d => Some(*dst),
            _ => None,
        })
        .chain(data.iter().copied())
        .map(|v| p.info(v).len() / rows)
        .sum();
    if rows * width * 16 < WHOLE {
        return None;
    }
    let block_rows = (BUDGET / (16 * width.max(1))) / 8 * 8;
    let block_rows = block_rows.max(MIN_ROWS);
    if rows < 2 * block_rows {
        return None;
    }
    let mut ops: Vec<usize> = members.into_iter().collect();
    ops.sort_unstable();
    Some(Chain { rows, ops, data, target: t, block_rows })
}

fn apply(p: &mut Program, c: Chain) {
    let insts = p.blocks[ENTRY.0 as usize].clone();
    let blocks = c.rows / c.block_rows;
    let rest = c.rows - blocks * c.block_rows;
    let chain: Vec<Inst> = c.ops.iter().map(|k| insts[*k].clone()).collect();
    let target = insts[c.target].clone();

    // The loop over whole blocks, then the rows left over.
    let mut out = Vec::new();
    let lo = lit(p, ENTRY, 0.0, &mut out);
    let hi = lit(p, ENTRY, blocks as f64, &mut out);
    let body = p.new_block();
    let var = new_value(p, vec![], true, body, None);
    let mut inner = Vec::new();
    let size = lit(p, body, c.block_rows as f64, &mut inner);
    let start = new_value(p, vec![], true, body, None);
    inner.push(Inst::Op { dst: start, prim: Prim::Binary(Bin::Mul), args: vec![var, size] });
    copy(p, &c, &chain, &target, body, start, c.block_rows, &mut inner);
    p.blocks[body.0 as usize] = inner;
    out.push(Inst::For { var, lo, hi, body });
    if rest > 0 {
        let start = lit(p, ENTRY, (blocks * c.block_rows) as f64, &mut out);
        copy(p, &c, &chain, &target, ENTRY, start, rest, &mut out);
    }

    let gone: HashSet<usize> = c.ops.iter().copied().chain([c.target]).collect();
    let mut entry = Vec::with_capacity(insts.len() + out.len());
    for (k, inst) in insts.into_iter().enumerate() {
        if k == c.target {
            entry.append(&mut out);
        } else if !gone.contains(&k) {
            entry.push(inst);
        }
    }
    p.blocks[ENTRY.0 as usize] = entry;
}

/// The chain on `n` rows from row `start` on, into `out` (in block `b`): each data constant
/// sliced, each operation with new values of `n` rows, and its `target +=`.
#[allow(clippy::too_many_arguments)]
fn copy(
    p: &mut Program,
    c: &Chain,
    chain: &[Inst],
    target: &Inst,
    b: BlockId,
    start: V,
    n: usize,
    out: &mut Vec<Inst>,
) {
    let mut map: HashMap<V, V> = HashMap::new();
    for &x in &c.data {
        let info = p.info(x).clone();
        let mut shape = info.shape.clone();
        shape[0] = n;
        let v = new_value(p, shape, false, b, info.name.clone());
        out.push(Inst::Op { dst: v, prim: Prim::Index(vec![Ix::Range(n)]), args: vec![x, start] });
        map.insert(x, v);
    }
    for inst in chain {
        let Inst::Op { dst, prim, args } = inst else { continue };
        let info = p.info(*dst).clone();
        let mut shape = info.shape.clone();
        if let Some(first) = shape.first_mut() {
            if !matches!(prim, Prim::LogDensity(_)) {
                *first = n;
            }
        }
        let v = new_value(p, shape, info.int, b, info.name.clone());
        let args = args.iter().map(|a| *map.get(a).unwrap_or(a)).collect();
        out.push(Inst::Op { dst: v, prim: prim.clone(), args });
        map.insert(*dst, v);
    }
    if let Inst::Target { value, part } = target {
        out.push(Inst::Target { value: map[value], part: *part });
    }
}

fn new_value(p: &mut Program, shape: Vec<usize>, int: bool, block: BlockId, name: Option<String>) -> V {
    p.new_value(ValueInfo { shape, int, block, name })
}

fn lit(p: &mut Program, b: BlockId, x: f64, out: &mut Vec<Inst>) -> V {
    let v = new_value(p, vec![], true, b, None);
    out.push(Inst::Op { dst: v, prim: Prim::Lit(x), args: vec![] });
    v
}
