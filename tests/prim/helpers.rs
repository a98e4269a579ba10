//! Shared machinery for tests/prim.rs: a small deterministic generator, calls of the
//! primitives table with owned buffers, and the finite-difference check of a VJP.

#![allow(dead_code)]

use bnnc::ir::prim::{self, Prim, Scratch};

/// SplitMix64: deterministic, so a failing proptest case (which prints its seed) replays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }

    /// Uniform int in lo..hi (hi exclusive, hi > lo).
    pub fn below(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }

    pub fn sign(&mut self) -> f64 {
        if self.next_u64() & 1 == 0 {
            1.0
        } else {
            -1.0
        }
    }

    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// n values whose pairwise distances are all at least `gap` (for min/max kinks).
    pub fn spread(&mut self, n: usize, gap: f64) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 2.0 * gap + self.uniform(0.0, 0.5 * gap)).collect();
        for i in (1..n).rev() {
            let j = self.below(0, i + 1);
            v.swap(i, j);
        }
        let shift = self.uniform(-1.0, 1.0) - n as f64 * gap;
        v.iter_mut().for_each(|x| *x += shift);
        v
    }
}

pub fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

fn refs<T>(v: &[Vec<T>]) -> Vec<&[T]> {
    v.iter().map(|x| x.as_slice()).collect()
}

/// Scratch space left dirty, as the interpreter's is after other primitives have used it: a
/// primitive that reads scratch it did not clear fails.
pub fn dirty_scratch() -> Scratch {
    Scratch {
        pos: vec![7, 1_000_000, 3],
        a: vec![f64::NAN; 5],
        b: vec![1e300; 37],
        c: vec![-3.0; 2],
        d: vec![f64::INFINITY; 3],
        conv: [vec![f64::NAN; 11], vec![1e300; 4], vec![-7.0; 100], vec![f64::NAN; 9]],
    }
}

pub fn shape_of(p: &Prim, shapes: &[Vec<usize>], slot: Option<&[usize]>) -> Result<Vec<usize>, String> {
    p.shape(&refs(shapes), &[], slot)
}

/// Evaluate `p` (shape from its shape rule) with owned buffers.
pub fn eval_with(
    p: &Prim,
    args: &[Vec<f64>],
    shapes: &[Vec<usize>],
    consts: &[Vec<f64>],
    slot: Option<(&[f64], &[usize])>,
) -> Result<(Vec<f64>, Vec<usize>), String> {
    let out_shape = p.shape(&refs(shapes), consts, slot.map(|s| s.1))?;
    let mut out = vec![f64::NAN; numel(&out_shape)];
    let mut sc = dirty_scratch();
    prim::eval(p, &refs(args), &refs(shapes), &out_shape, &mut out, consts, &mut sc, slot)?;
    Ok((out, out_shape))
}

pub fn eval(p: &Prim, args: &[Vec<f64>], shapes: &[Vec<usize>]) -> (Vec<f64>, Vec<usize>) {
    eval_with(p, args, shapes, &[], None).unwrap_or_else(|e| panic!("{p:?} on {shapes:?}: {e}"))
}

/// Adjoints seeded with this before the VJP, and subtracted after: a VJP must add (+=).
const PRE: f64 = 0.375;

/// The VJP of `p` with output weights `w`: one adjoint per argument marked in `diff` (None
/// for the others), and the slot's adjoint when `slot` is given.
pub fn vjp_with(
    p: &Prim,
    args: &[Vec<f64>],
    shapes: &[Vec<usize>],
    w: &[f64],
    diff: &[bool],
    slot: Option<(&[f64], &[usize])>,
) -> (Vec<Option<Vec<f64>>>, Option<Vec<f64>>) {
    let (out, out_shape) = eval_with(p, args, shapes, &[], slot).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    let mut adj: Vec<Option<Vec<f64>>> = args.iter().zip(diff).map(|(a, d)| d.then(|| vec![PRE; a.len()])).collect();
    let mut slot_adj: Option<Vec<f64>> = slot.map(|(v, _)| vec![PRE; v.len()]);
    {
        let mut adj_refs: Vec<Option<&mut [f64]>> = adj.iter_mut().map(|a| a.as_deref_mut()).collect();
        let sadj = match (&mut slot_adj, slot) {
            (Some(buf), Some((_, s))) => Some((buf.as_mut_slice(), s)),
            _ => None,
        };
        let mut sc = dirty_scratch();
        prim::vjp(p, &refs(args), &refs(shapes), &out, &out_shape, w, &mut adj_refs, &mut sc, sadj)
            .unwrap_or_else(|e| panic!("vjp of {p:?}: {e}"));
    }
    let unseed = |v: Vec<f64>| v.into_iter().map(|x| x - PRE).collect::<Vec<f64>>();
    (adj.into_iter().map(|a| a.map(unseed)).collect(), slot_adj.map(unseed))
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Five-point central difference of `f` at 0, with step h.
pub fn five_point(h: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
    (-f(2.0 * h) + 8.0 * f(h) - 8.0 * f(-h) + f(-2.0 * h)) / (12.0 * h)
}

/// The step used for a coordinate at x.
pub fn step(x: f64) -> f64 {
    1e-3 * x.abs().max(1.0)
}

pub const GRAD_TOL: f64 = 1e-6;

pub fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(got.abs()).max(1.0)
}

pub fn assert_close(got: f64, want: f64, tol: f64, what: &dyn Fn() -> String) {
    assert!(close(got, want, tol), "{}: got {got:e}, want {want:e} (diff {:e})", what(), got - want);
}

pub fn assert_all_close(got: &[f64], want: &[f64], tol: f64, what: &dyn Fn() -> String) {
    assert_eq!(got.len(), want.len(), "{}: lengths differ", what());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g.is_nan() && w.is_nan() {
            continue;
        }
        assert_close(*g, *w, tol, &|| format!("{} [element {i}]\n  got  {got:?}\n  want {want:?}", what()));
    }
}

/// The VJP of `p` at (`args`, `shapes`) equals central finite differences of ⟨w, p(args)⟩ with
/// respect to every element of every argument marked in `diff`, for random weights w.
pub fn check_vjp(p: &Prim, args: &[Vec<f64>], shapes: &[Vec<usize>], diff: &[bool], rng: &mut Rng) {
    let (out, _) = eval(p, args, shapes);
    let w = rng.vec(out.len(), -1.0, 1.0);
    let (adj, _) = vjp_with(p, args, shapes, &w, diff, None);
    for (k, d) in diff.iter().enumerate() {
        if !*d {
            continue;
        }
        let g = adj[k].as_ref().expect("adjoint asked for");
        for i in 0..args[k].len() {
            let h = step(args[k][i]);
            let fd = five_point(h, |dx| {
                let mut a = args.to_vec();
                a[k][i] += dx;
                dot(&w, &eval(p, &a, shapes).0)
            });
            assert_close(g[i], fd, GRAD_TOL, &|| {
                format!("VJP of {p:?} w.r.t. argument {k} element {i}\n  args {args:?}\n  shapes {shapes:?}\n  w {w:?}")
            });
        }
    }
}
