//! The primitives table: for every [`Prim`], its shape rule ([`Prim::shape`]), its
//! evaluation ([`eval`]) and its vector-Jacobian product ([`vjp`]), each one exhaustive
//! `match` with no wildcard, so a new primitive does not compile until all three exist.
//!
//! Values are flat row-major f64 slices; ints are stored exactly as f64.

use crate::ir::Slot;
pub use crate::math::conv::Pool;
use crate::math::conv::{Conv, Pooling};
use crate::math::dist::{self, Family};
use crate::math::reparam::Adjoints;
use smallvec::SmallVec;

pub use crate::ir::scalar::{sigmoid, softplus, trigamma, Bin, Un};

/// log_mix(t, a, b) = log(t e^a + (1 − t) e^b).
pub fn log_mix(t: f64, a: f64, b: f64) -> f64 {
    log_mix_logs(t.ln(), (-t).ln_1p(), a, b)
}

/// [`log_mix`] given ln t and ln(1 − t) (a compiled loop computes them once when t does not
/// change inside it).
/// With x = ln t + a and z = ln(1 − t) + b: max(x, z) + ln(1 + e^−|x − z|), one `exp` and
/// one `log1p` (the general two-term log-sum-exp spends an `exp` on e⁰).
pub fn log_mix_logs(lt: f64, l1mt: f64, a: f64, b: f64) -> f64 {
    let (x, z) = (lt + a, l1mt + b);
    let m = x.max(z);
    if m.is_infinite() {
        return m;
    }
    m + (-(x - z).abs()).exp().ln_1p()
}

/// The partial derivatives of [`log_mix`] in (t, a, b), given its value y.
pub fn log_mix_partials(t: f64, a: f64, b: f64, y: f64) -> [f64; 3] {
    log_mix_partials_logs(t, t.ln(), (-t).ln_1p(), a, b, y)
}

/// [`log_mix_partials`] given also ln t and ln(1 − t): the weights w_a = t e^(a−y) and
/// w_b = (1 − t) e^(b−y) are the partials in a and b, and ∂/∂t = w_a / t − w_b / (1 − t),
/// two `exp`s in all (at t = 0 or 1 exactly, e^(a−y) − e^(b−y) directly).
pub fn log_mix_partials_logs(t: f64, lt: f64, l1mt: f64, a: f64, b: f64, y: f64) -> [f64; 3] {
    let (wa, wb) = ((lt + a - y).exp(), (l1mt + b - y).exp());
    let dt = if t > 0.0 && t < 1.0 { wa / t - wb / (1.0 - t) } else { (a - y).exp() - (b - y).exp() };
    [dt, wa, wb]
}

/// Added to the variance by `layer_norm`, as PyTorch's `LayerNorm` does by default: a row whose
/// values are all equal maps to zeros, not to a division by zero.
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// A row's mean m and 1/√(v + ε), v its variance with divisor n (as layer normalisation
/// defines it).
fn layer_norm_moments(row: &[f64]) -> (f64, f64) {
    let n = row.len() as f64;
    let m = row.iter().sum::<f64>() / n;
    let v = row.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, 1.0 / (v + LAYER_NORM_EPS).sqrt())
}

pub fn log_sum_exp2(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    if m == f64::INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// Reductions of a whole tensor to a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Red {
    Sum,
    Mean,
    /// Sample standard deviation (divisor n − 1).
    Sd,
    /// Sample variance (divisor n − 1).
    Variance,
    Prod,
    Min,
    Max,
    LogSumExp,
}

/// One position of an index expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ix {
    /// One int: the dimension goes away.
    Single,
    /// `:`
    All,
    /// `lo..hi` with its length fixed when lowered; the arg is `lo`.
    Range(usize),
    /// An int array: a gather.
    Gather,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Prim {
    /// A constant tensor from `Program::consts`.
    Const(u32),
    /// A scalar literal.
    Lit(f64),
    /// Parameter `p` mapped to its support; args are its bounds (as its kind needs). Adds
    /// log|J| to the Jacobian sum.
    Constrain(u32),
    /// Runtime input buffer `k` (`Program::inputs`): values the caller sets before each
    /// evaluation (random masks, a batch's rows, weights). No gradient flows into it.
    Input(u32),
    Unary(Un),
    Binary(Bin),
    /// `cond ? a : b` (cond a scalar; a and b broadcast to the result).
    Select,
    /// Matrix and vector products: [r,k]@[k,c], [r,k]@[k], [k]@[k,c], [k]@[k].
    MatMul,
    Transpose,
    Reduce(Red),
    /// log_mix(theta, lp1, lp2) on scalars.
    LogMix,
    /// log_mix(weights, lps) on vectors.
    LogMixVec,
    /// Softmax of a vector, or of each row of a matrix.
    Softmax,
    LogSoftmax,
    /// Layer normalisation without gain or bias: each row of a matrix, or each image of a
    /// tensor (all dimensions but the first), to mean 0 and variance 1 ([`LAYER_NORM_EPS`]
    /// added to the variance).
    LayerNorm,
    ColMeans,
    ColSums,
    RowMeans,
    RowSums,
    /// Indexing: args are the base, then one int (or int array) per non-`All` position.
    Index(Vec<Ix>),
    /// Read a slot (whole, or indexed as `Index`).
    Load(Slot, Vec<Ix>),
    /// A tensor of the given shape filled with a scalar.
    Fill(Vec<usize>),
    DiagMatrix,
    Diagonal,
    /// Lower Cholesky factor of a symmetric positive-definite matrix.
    Cholesky,
    /// gp_exp_quad_cov(x, alpha, rho)[i, j] = alpha² exp(−(x_i − x_j)² / (2 rho²)).
    GpExpQuadCov,
    /// The same values with another shape (to_vector).
    Reshape(Vec<usize>),
    /// A log density summed over elements: args are the variate, then the parameters.
    LogDensity(Family),
    /// The log CDF (`true`: the log complementary CDF) summed over elements, args as
    /// [`Prim::LogDensity`]'s: `normal_lcdf(x | mu, sigma)`, `weibull_lccdf(t | ...)`.
    LogCdf(Family, bool),
    /// Draws of the given shape (generated quantities only).
    Rng(Family, Vec<usize>),
    /// 2-D convolution of a tensor[n, c, h, w] by filters tensor[f, c, k, k], plus a bias
    /// vector[f]: a tensor[n, f, h', w'] (`math::conv`).
    Conv2d {
        stride: usize,
        padding: usize,
    },
    /// Max or average pooling of a tensor[n, c, h, w] over k × k windows moved by k.
    Pool2d(Pool, usize),
    /// `m + sqrt(v + 1e-12) .* eps` of three arguments of one shape: a draw of Normal(m, √v)
    /// from standard normals, the local reparameterisation's pre-activation
    /// ([`crate::math::reparam`]).
    Reparam,
}

fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let (la, lb): (usize, usize) = (a.iter().product(), b.iter().product());
    if a == b {
        return Ok(a.to_vec());
    }
    if a.is_empty() || (la == 1 && a.len() <= b.len()) {
        return Ok(b.to_vec());
    }
    if b.is_empty() || (lb == 1 && b.len() <= a.len()) {
        return Ok(a.to_vec());
    }
    match (a.len(), b.len()) {
        (2, 1) if a[1] == b[0] => Ok(a.to_vec()),
        (1, 2) if b[1] == a[0] => Ok(b.to_vec()),
        _ => Err(format!("cannot broadcast {a:?} with {b:?}")),
    }
}

/// A sum in pair order, the order of every sum over the elements of an array that both
/// backends form (`target +=` of an array, `sum`, and a broadcast scalar's adjoint): the
/// elements of even index summed in index order, those of odd index likewise, each from −0
/// (so the first addition is exact), and then the two partial sums added. Compiled code keeps
/// the two partial sums in the two lanes of one register, where one running sum would be a
/// chain of dependent additions.
#[derive(Clone, Copy, Debug)]
pub struct PairSum {
    even: f64,
    odd: f64,
}

impl Default for PairSum {
    fn default() -> Self {
        PairSum { even: -0.0, odd: -0.0 }
    }
}

impl PairSum {
    /// Add element `i`'s `x`.
    pub fn add(&mut self, i: usize, x: f64) {
        if i % 2 == 0 {
            self.even += x;
        } else {
            self.odd += x;
        }
    }

    pub fn total(self) -> f64 {
        self.even + self.odd
    }
}

/// The sum of `xs` in pair order ([`PairSum`]).
pub fn pair_sum(xs: &[f64]) -> f64 {
    let mut s = PairSum::default();
    for (i, x) in xs.iter().enumerate() {
        s.add(i, *x);
    }
    s.total()
}

/// Asks for the cache lines holding the first and last element of `v` (a hint; nothing else
/// changes).
#[inline(always)]
fn prefetch(v: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(a), Some(b)) = (v.first(), v.last()) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch does not access memory architecturally; both addresses are in `v`.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(a as *const f64 as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(b as *const f64 as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Position in an argument of shape `arg` for element `i` of a broadcast result of shape `out`.
#[inline]
pub fn bidx(i: usize, out: &[usize], arg_len: usize, arg_shape: &[usize]) -> usize {
    if arg_len == 1 {
        0
    } else if arg_shape.len() == out.len() {
        i
    } else {
        // a vector along the rows of a matrix
        i % arg_len
    }
}

/// How a primitive treats the rows of its arguments (the observation rows a minibatch takes),
/// which the minibatch rewrites check ([`crate::ir::rowcheck`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Each element of the result from the same element of each argument (broadcasting).
    Elementwise,
    /// Each row of the result from the same row of the first argument and all of the others
    /// (`X @ W`, a row's softmax or sum, a reshape that keeps the first dimension).
    FirstArgRows,
    /// A sum over the argument's rows (a log density, `sum`, column sums).
    Sums,
    /// A function of all of its arguments together.
    Mixes,
    /// Leaves and indexing, which the check reads itself.
    Own,
}

impl Prim {
    /// How the primitive treats rows.
    pub fn rows(&self) -> Rows {
        match self {
            Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::LogMix | Prim::Reparam => Rows::Elementwise,
            Prim::MatMul
            | Prim::RowSums
            | Prim::RowMeans
            | Prim::Softmax
            | Prim::LogSoftmax
            | Prim::LayerNorm
            | Prim::Reshape(_)
            | Prim::Conv2d { .. }
            | Prim::Pool2d(..) => Rows::FirstArgRows,
            Prim::LogDensity(_) | Prim::LogCdf(..) | Prim::Reduce(Red::Sum) | Prim::ColSums => Rows::Sums,
            Prim::Reduce(Red::Mean | Red::Sd | Red::Variance | Red::Prod | Red::Min | Red::Max | Red::LogSumExp)
            | Prim::Transpose
            | Prim::LogMixVec
            | Prim::ColMeans
            | Prim::Fill(_)
            | Prim::DiagMatrix
            | Prim::Diagonal
            | Prim::Cholesky
            | Prim::GpExpQuadCov
            | Prim::Rng(..)
            | Prim::Constrain(_) => Rows::Mixes,
            Prim::Const(_) | Prim::Lit(_) | Prim::Input(_) | Prim::Index(_) | Prim::Load(..) => Rows::Own,
        }
    }

    /// Whether the result is linear in argument `k` when the others do not change (so a sum
    /// over rows passes through it scaled): negation, sums and differences, and products and
    /// quotients by the other argument.
    pub fn is_linear_in(&self, k: usize) -> bool {
        match self {
            Prim::Unary(Un::Neg) | Prim::Binary(Bin::Add | Bin::Sub | Bin::Mul) => true,
            Prim::Binary(Bin::Div) => k == 0,
            Prim::Unary(
                Un::Not
                | Un::Exp
                | Un::Log
                | Un::Log1p
                | Un::Expm1
                | Un::Sqrt
                | Un::Square
                | Un::Abs
                | Un::Tanh
                | Un::Sigmoid
                | Un::Logit
                | Un::Softplus
                | Un::Relu
                | Un::Lgamma
                | Un::Digamma
                | Un::Sin
                | Un::Cos
                | Un::Erf
                | Un::Phi
                | Un::Log1m
                | Un::LogInvLogit
                | Un::Inv
                | Un::Floor
                | Un::Ceil
                | Un::Round,
            )
            | Prim::Binary(
                Bin::IntDiv
                | Bin::Mod
                | Bin::Pow
                | Bin::Min
                | Bin::Max
                | Bin::LogSumExp
                | Bin::Eq
                | Bin::Ne
                | Bin::Lt
                | Bin::Le
                | Bin::Gt
                | Bin::Ge
                | Bin::And
                | Bin::Or,
            )
            | Prim::Select
            | Prim::LogMix
            | Prim::Reparam
            | Prim::MatMul
            | Prim::RowSums
            | Prim::RowMeans
            | Prim::Softmax
            | Prim::LogSoftmax
            | Prim::LayerNorm
            | Prim::Reshape(_)
            | Prim::Conv2d { .. }
            | Prim::Pool2d(..)
            | Prim::LogDensity(_)
            | Prim::LogCdf(..)
            | Prim::Reduce(_)
            | Prim::ColSums
            | Prim::Transpose
            | Prim::LogMixVec
            | Prim::ColMeans
            | Prim::Fill(_)
            | Prim::DiagMatrix
            | Prim::Diagonal
            | Prim::Cholesky
            | Prim::GpExpQuadCov
            | Prim::Rng(..)
            | Prim::Constrain(_)
            | Prim::Const(_)
            | Prim::Lit(_)
            | Prim::Input(_)
            | Prim::Index(_)
            | Prim::Load(..) => false,
        }
    }

    /// The shape rule: the result's shape from the arguments' shapes (`Err` says why not).
    pub fn shape(
        &self,
        args: &[&[usize]],
        consts: &[Vec<f64>],
        slot_shape: Option<&[usize]>,
    ) -> Result<Vec<usize>, String> {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("{self:?} takes {n} arguments, got {}", args.len()))
            }
        };
        let scalar = |s: &[usize]| s.iter().product::<usize>() == 1 && s.len() <= 1;
        match self {
            Prim::Const(_) | Prim::Lit(_) | Prim::Constrain(_) | Prim::Input(_) => {
                let _ = consts;
                Err("the shape of a leaf is given when it is made".into())
            }
            Prim::Unary(_) => {
                arity(1)?;
                Ok(args[0].to_vec())
            }
            Prim::Binary(_) => {
                arity(2)?;
                broadcast(args[0], args[1])
            }
            Prim::Select => {
                arity(3)?;
                if !scalar(args[0]) {
                    return Err("a condition must be a scalar".into());
                }
                broadcast(args[1], args[2])
            }
            Prim::Reparam => {
                arity(3)?;
                if args[1] != args[0] || args[2] != args[0] {
                    return Err(format!("a draw's mean, variance and noise differ in shape: {args:?}"));
                }
                Ok(args[0].to_vec())
            }
            Prim::MatMul => {
                arity(2)?;
                match (args[0], args[1]) {
                    ([r, k], [k2, c]) if k == k2 => Ok(vec![*r, *c]),
                    ([r, k], [k2]) if k == k2 => Ok(vec![*r]),
                    ([k], [k2, c]) if k == k2 => Ok(vec![*c]),
                    ([k], [k2]) if k == k2 => Ok(vec![]),
                    (a, b) => Err(format!("cannot multiply {a:?} by {b:?}")),
                }
            }
            Prim::Transpose => {
                arity(1)?;
                match args[0] {
                    [r, c] => Ok(vec![*c, *r]),
                    [k] => Ok(vec![1, *k]),
                    s => Err(format!("cannot transpose {s:?}")),
                }
            }
            Prim::Reduce(_) => {
                arity(1)?;
                Ok(vec![])
            }
            Prim::LogMix => {
                arity(3)?;
                Ok(vec![])
            }
            Prim::LogMixVec => {
                arity(2)?;
                if args[0] != args[1] || args[0].len() != 1 {
                    return Err("log_mix needs two vectors of the same length".into());
                }
                Ok(vec![])
            }
            Prim::Softmax | Prim::LogSoftmax => {
                arity(1)?;
                Ok(args[0].to_vec())
            }
            Prim::LayerNorm => {
                arity(1)?;
                match args[0] {
                    [_, _, ..] => Ok(args[0].to_vec()),
                    s => Err(format!("needs a matrix or a tensor, got {s:?}")),
                }
            }
            Prim::ColMeans | Prim::ColSums | Prim::RowMeans | Prim::RowSums => {
                arity(1)?;
                match args[0] {
                    [r, c] => Ok(vec![if matches!(self, Prim::ColMeans | Prim::ColSums) { *c } else { *r }]),
                    s => Err(format!("needs a matrix, got {s:?}")),
                }
            }
            Prim::Index(ix) => match args.split_first() {
                Some((base, idx)) => index_shape(ix, base, idx),
                None => Err("indexing needs a value to index".into()),
            },
            Prim::Load(_, ix) => index_shape(ix, slot_shape.ok_or("no slot")?, args),
            Prim::Fill(shape) => {
                arity(1)?;
                Ok(shape.clone())
            }
            Prim::DiagMatrix => {
                arity(1)?;
                match args[0] {
                    [k] => Ok(vec![*k, *k]),
                    s => Err(format!("needs a vector, got {s:?}")),
                }
            }
            Prim::Diagonal => {
                arity(1)?;
                match args[0] {
                    [r, c] if r == c => Ok(vec![*r]),
                    s => Err(format!("needs a square matrix, got {s:?}")),
                }
            }
            Prim::Cholesky => {
                arity(1)?;
                match args[0] {
                    [r, c] if r == c => Ok(vec![*r, *c]),
                    s => Err(format!("needs a square matrix, got {s:?}")),
                }
            }
            Prim::GpExpQuadCov => {
                arity(3)?;
                match args[0] {
                    [k] => Ok(vec![*k, *k]),
                    s => Err(format!("needs a vector of inputs, got {s:?}")),
                }
            }
            Prim::Conv2d { stride, padding } => {
                arity(3)?;
                let cv = Conv::new(args[0], args[1], *stride, *padding)?;
                if args[2] != [cv.filters] {
                    return Err(format!(
                        "the bias must be a vector of {} (one per filter), got {:?}",
                        cv.filters, args[2]
                    ));
                }
                Ok(cv.out_shape())
            }
            Prim::Pool2d(_, k) => {
                arity(1)?;
                Ok(Pooling::new(args[0], *k)?.out_shape(args[0]))
            }
            Prim::Reshape(shape) => {
                arity(1)?;
                if shape.iter().product::<usize>() != args[0].iter().product::<usize>() {
                    return Err("reshape changes the number of elements".into());
                }
                Ok(shape.clone())
            }
            Prim::LogDensity(f) | Prim::LogCdf(f, _) => {
                arity(f.n_params() + 1)?;
                Ok(vec![])
            }
            Prim::Rng(f, shape) => {
                arity(f.n_params())?;
                Ok(shape.clone())
            }
        }
    }
}

fn index_shape(ix: &[Ix], base: &[usize], idx: &[&[usize]]) -> Result<Vec<usize>, String> {
    if ix.len() > base.len() {
        return Err(format!("{} indices for shape {base:?}", ix.len()));
    }
    let mut out = Vec::new();
    let mut k = 0;
    for (d, i) in ix.iter().enumerate() {
        match i {
            Ix::All => out.push(base[d]),
            Ix::Single => {
                k += 1;
            }
            Ix::Range(len) => {
                k += 1;
                out.push(*len);
            }
            Ix::Gather => {
                out.push(idx.get(k).map(|s| s.iter().product()).unwrap_or(0));
                k += 1;
            }
        }
    }
    if k != idx.len() {
        return Err("index arguments do not match the index positions".into());
    }
    out.extend_from_slice(&base[ix.len()..]);
    Ok(out)
}

/// Strides of a row-major shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

/// How one dimension of an index result picks base coordinates.
#[derive(Clone, Copy)]
enum Pick<'a> {
    /// A contiguous run: coordinates start, start + 1, ..., start + len − 1.
    Run { start: usize, len: usize },
    /// The coordinates of a gather (checked to be in range).
    Gather(&'a [f64]),
}

impl Pick<'_> {
    fn len(&self) -> usize {
        match self {
            Pick::Run { len, .. } => *len,
            Pick::Gather(g) => g.len(),
        }
    }

    fn at(&self, i: usize) -> usize {
        match self {
            Pick::Run { start, .. } => start + i,
            Pick::Gather(g) => g[i] as usize,
        }
    }
}

/// For each element of an index result, its flat position in the base. `Err` names an
/// index out of range (a recoverable evaluation error). Allocates only when `out` must grow.
pub fn index_positions(ix: &[Ix], base: &[usize], idx: &[&[f64]], out: &mut Vec<usize>) -> Result<(), String> {
    out.clear();
    let mut st: SmallVec<[usize; 8]> = SmallVec::from_elem(1, base.len());
    for k in (0..base.len().saturating_sub(1)).rev() {
        st[k] = st[k + 1] * base[k + 1];
    }
    let check = |v: f64, d: usize| -> Result<usize, String> {
        if !(v >= 0.0) || v.fract() != 0.0 || v >= base[d] as f64 {
            Err(format!("index {v} is out of range for a dimension of size {}", base[d]))
        } else {
            Ok(v as usize)
        }
    };
    let mut picks: SmallVec<[Pick; 8]> = SmallVec::new();
    let mut k = 0;
    for d in 0..base.len() {
        match ix.get(d) {
            None | Some(Ix::All) => picks.push(Pick::Run { start: 0, len: base[d] }),
            Some(Ix::Single) => {
                picks.push(Pick::Run { start: check(idx[k][0], d)?, len: 1 });
                k += 1;
            }
            Some(Ix::Range(len)) => {
                let lo = idx[k][0];
                k += 1;
                // Compared as reals first: a huge, infinite, NaN or fractional start is an error.
                if !(lo >= 0.0) || lo.fract() != 0.0 || lo + *len as f64 > base[d] as f64 {
                    return Err(format!(
                        "slice {lo}..{} is out of range for a dimension of size {}",
                        lo + *len as f64,
                        base[d]
                    ));
                }
                picks.push(Pick::Run { start: lo as usize, len: *len });
            }
            Some(Ix::Gather) => {
                for v in idx[k] {
                    check(*v, d)?;
                }
                picks.push(Pick::Gather(idx[k]));
                k += 1;
            }
        }
    }
    // Cartesian product, row-major.
    let total: usize = picks.iter().map(Pick::len).product();
    out.reserve(total);
    let mut pos: SmallVec<[usize; 8]> = SmallVec::from_elem(0, picks.len());
    for _ in 0..total {
        let flat: usize = pos.iter().enumerate().map(|(d, p)| picks[d].at(*p) * st[d]).sum();
        out.push(flat);
        for d in (0..pos.len()).rev() {
            pos[d] += 1;
            if pos[d] < picks[d].len() {
                break;
            }
            pos[d] = 0;
        }
    }
    Ok(())
}

/// A store into a slot: `slot[pos[k]] = value[k]` (a one-element value fills every position).
pub fn scatter(pos: &[usize], value: &[f64], slot: &mut [f64]) {
    for (k, q) in pos.iter().enumerate() {
        slot[*q] = if value.len() == 1 { value[0] } else { value[k] };
    }
}

/// The reverse of [`scatter`]: each stored position's adjoint moves into the value's (added;
/// a one-element value takes them all) and is cleared, since the store overwrote the slot.
pub fn scatter_vjp(pos: &[usize], slot_adj: &mut [f64], value_adj: Option<&mut [f64]>) {
    let mut value_adj = value_adj;
    for (k, q) in pos.iter().enumerate() {
        let a = std::mem::replace(&mut slot_adj[*q], 0.0);
        if let Some(va) = value_adj.as_deref_mut() {
            let at = if va.len() == 1 { 0 } else { k };
            va[at] += a;
        }
    }
}

/// Scratch space reused across evaluations.
#[derive(Default, Debug)]
pub struct Scratch {
    pub pos: Vec<usize>,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub c: Vec<f64>,
    pub d: Vec<f64>,
    /// A convolution's buffers (`math::conv`).
    pub conv: [Vec<f64>; 4],
}

/// Evaluate `prim` on `args` (values and shapes) into `out` (sized by the shape rule).
/// Returns extra log|J| for `Constrain` (0 otherwise). `Err` is a recoverable evaluation
/// error (an index out of range).
#[allow(clippy::too_many_arguments)]
pub fn eval(
    prim: &Prim,
    args: &[&[f64]],
    shapes: &[&[usize]],
    out_shape: &[usize],
    out: &mut [f64],
    consts: &[Vec<f64>],
    sc: &mut Scratch,
    slot: Option<(&[f64], &[usize])>,
) -> Result<(), String> {
    match prim {
        Prim::Const(c) => out.copy_from_slice(&consts[*c as usize]),
        Prim::Lit(v) => out[0] = *v,
        Prim::Constrain(_) => return Err("Constrain is evaluated by the interpreter".into()),
        Prim::Input(_) => return Err("an input is read by the backend".into()),
        Prim::Unary(u) => {
            if let Some(f) = u.array() {
                f(args[0], out);
            } else {
                for (o, x) in out.iter_mut().zip(args[0]) {
                    *o = u.f(*x);
                }
            }
        }
        Prim::Binary(b) => {
            let (la, lb) = (args[0].len(), args[1].len());
            for (i, o) in out.iter_mut().enumerate() {
                *o = b.f(args[0][bidx(i, out_shape, la, shapes[0])], args[1][bidx(i, out_shape, lb, shapes[1])]);
            }
        }
        Prim::Select => {
            let pick = if args[0][0] != 0.0 { 1 } else { 2 };
            let l = args[pick].len();
            for (i, o) in out.iter_mut().enumerate() {
                *o = args[pick][bidx(i, out_shape, l, shapes[pick])];
            }
        }
        Prim::MatMul => matmul(args[0], shapes[0], args[1], shapes[1], out),
        Prim::Transpose => {
            let (r, c) = if shapes[0].len() == 2 { (shapes[0][0], shapes[0][1]) } else { (1, shapes[0][0]) };
            for i in 0..r {
                for j in 0..c {
                    out[j * r + i] = args[0][i * c + j];
                }
            }
        }
        Prim::Reduce(r) => out[0] = reduce(*r, args[0]),
        Prim::LogMix => {
            out[0] = log_mix(args[0][0], args[1][0], args[2][0]);
        }
        Prim::LogMixVec => {
            let mut m = f64::NEG_INFINITY;
            for (w, l) in args[0].iter().zip(args[1]) {
                m = m.max(w.ln() + l);
            }
            let s: f64 = args[0].iter().zip(args[1]).map(|(w, l)| (w.ln() + l - m).exp()).sum();
            out[0] = if m.is_finite() { m + s.ln() } else { m };
        }
        Prim::Softmax | Prim::LogSoftmax => {
            let c = *shapes[0].last().unwrap_or(&1);
            let log = matches!(prim, Prim::LogSoftmax);
            for (row_in, row_out) in args[0].chunks(c.max(1)).zip(out.chunks_mut(c.max(1))) {
                let m = row_in.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + row_in.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
                for (o, x) in row_out.iter_mut().zip(row_in) {
                    *o = if log { x - lse } else { (x - lse).exp() };
                }
            }
        }
        Prim::LayerNorm => {
            let w = shapes[0][1..].iter().product::<usize>().max(1);
            for (row_in, row_out) in args[0].chunks(w).zip(out.chunks_mut(w)) {
                let (m, s) = layer_norm_moments(row_in);
                for (o, x) in row_out.iter_mut().zip(row_in) {
                    *o = (x - m) * s;
                }
            }
        }
        Prim::ColMeans | Prim::ColSums | Prim::RowMeans | Prim::RowSums => {
            let (r, c) = (shapes[0][0], shapes[0][1]);
            out.fill(0.0);
            let col = matches!(prim, Prim::ColMeans | Prim::ColSums);
            for i in 0..r {
                for j in 0..c {
                    out[if col { j } else { i }] += args[0][i * c + j];
                }
            }
            let n = if col { r } else { c };
            if matches!(prim, Prim::ColMeans | Prim::RowMeans) {
                for o in out.iter_mut() {
                    *o /= n as f64;
                }
            }
        }
        // Whole rows picked by an index array (a minibatch's rows): row copies.
        Prim::Index(ix) if matches!(ix.first(), Some(Ix::Gather)) && ix[1..].iter().all(|i| *i == Ix::All) => {
            let (n, width) = (shapes[0][0], shapes[0][1..].iter().product::<usize>());
            if let Some(r) = args[1].iter().find(|r| !(**r >= 0.0) || r.fract() != 0.0 || **r >= n as f64) {
                return Err(format!("index {r} is out of range for a dimension of size {n}"));
            }
            // The rows of a large data set are scattered beyond the caches: each row's first
            // and last lines are requested a few rows ahead, so the misses overlap.
            const AHEAD: usize = 8;
            let rows = args[1];
            let line = |k: usize| rows.get(k).map(|r| *r as usize * width);
            for (i, (o, &r)) in out.chunks_exact_mut(width.max(1)).zip(rows).enumerate() {
                if let Some(at) = line(i + AHEAD) {
                    prefetch(&args[0][at..at + width]);
                }
                let r = r as usize;
                o.copy_from_slice(&args[0][r * width..(r + 1) * width]);
            }
        }
        Prim::Index(ix) => {
            index_positions(ix, shapes[0], &args[1..], &mut sc.pos)?;
            for (o, p) in out.iter_mut().zip(&sc.pos) {
                *o = args[0][*p];
            }
        }
        Prim::Load(_, ix) => {
            let (vals, shape) = slot.ok_or("no slot")?;
            index_positions(ix, shape, args, &mut sc.pos)?;
            for (o, p) in out.iter_mut().zip(&sc.pos) {
                *o = vals[*p];
            }
        }
        Prim::Fill(_) => out.fill(args[0][0]),
        Prim::DiagMatrix => {
            let k = args[0].len();
            out.fill(0.0);
            for i in 0..k {
                out[i * k + i] = args[0][i];
            }
        }
        Prim::Diagonal => {
            let k = shapes[0][0];
            for i in 0..k {
                out[i] = args[0][i * k + i];
            }
        }
        Prim::Cholesky => {
            let k = shapes[0][0];
            if !cholesky(args[0], k, out) {
                out.fill(f64::NAN);
            }
        }
        Prim::GpExpQuadCov => {
            let (x, a, rho) = (args[0], args[1][0], args[2][0]);
            let k = x.len();
            // Symmetric: each exp once ((x_i − x_j)² and (x_j − x_i)² are the same number).
            for i in 0..k {
                out[i * k + i] = a * a;
                for j in 0..i {
                    let d = x[i] - x[j];
                    let v = a * a * (-d * d / (2.0 * rho * rho)).exp();
                    out[i * k + j] = v;
                    out[j * k + i] = v;
                }
            }
        }
        Prim::Reshape(_) => out.copy_from_slice(args[0]),
        Prim::Conv2d { stride, padding } => {
            let cv = Conv::new(shapes[0], shapes[1], *stride, *padding)?;
            cv.forward(args[0], args[1], args[2], out, &mut sc.conv);
        }
        Prim::Pool2d(kind, k) => Pooling::new(shapes[0], *k)?.forward(*kind, args[0], out),
        Prim::Reparam => crate::math::reparam::forward(args[0], args[1], args[2], out),
        Prim::LogDensity(f) | Prim::LogCdf(f, _) => {
            let dargs: SmallVec<[dist::Arg; 6]> =
                args.iter().zip(shapes).map(|(v, s)| dist::Arg { values: v, dims: s }).collect();
            out[0] = match prim {
                Prim::LogCdf(_, upper) => dist::log_cdf(*f, &dargs, *upper, None),
                _ => dist::log_density(*f, &dargs, None),
            };
        }
        Prim::Rng(..) => return Err("draws are made by the interpreter".into()),
    }
    Ok(())
}

fn matmul(a: &[f64], sa: &[usize], b: &[f64], sb: &[usize], out: &mut [f64]) {
    let (r, k) = if sa.len() == 2 { (sa[0], sa[1]) } else { (1, sa[0]) };
    let c = if sb.len() == 2 { sb[1] } else { 1 };
    out.fill(0.0);
    for i in 0..r {
        for p in 0..k {
            let aip = a[i * k + p];
            if aip == 0.0 {
                continue;
            }
            let brow = &b[p * c..p * c + c];
            let orow = &mut out[i * c..i * c + c];
            for (o, bv) in orow.iter_mut().zip(brow) {
                *o += aip * bv;
            }
        }
    }
}

fn reduce(r: Red, x: &[f64]) -> f64 {
    let n = x.len() as f64;
    match r {
        Red::Sum => pair_sum(x),
        Red::Mean => x.iter().sum::<f64>() / n,
        Red::Sd => reduce(Red::Variance, x).sqrt(),
        // As Stan's: 0 for one element, and no value (NaN) for none.
        Red::Variance if x.len() == 1 => 0.0,
        Red::Variance if x.is_empty() => f64::NAN,
        Red::Variance => {
            let m = x.iter().sum::<f64>() / n;
            x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)
        }
        Red::Prod => x.iter().product(),
        Red::Min => x.iter().cloned().fold(f64::INFINITY, f64::min),
        Red::Max => x.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        Red::LogSumExp => {
            let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if !m.is_finite() {
                return m;
            }
            m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
        }
    }
}

/// Lower Cholesky factor of a k × k SPD matrix (row-major). False if not positive definite.
pub fn cholesky(a: &[f64], k: usize, l: &mut [f64]) -> bool {
    l.fill(0.0);
    for i in 0..k {
        for j in 0..=i {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= l[i * k + p] * l[j * k + p];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return false;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    true
}

/// Vector-Jacobian product: add (+=) into `adj_args[k]` the gradient of ⟨adj_out, prim(args)⟩
/// with respect to argument k. `adj_args[k]` is `None` for arguments that need none.
#[allow(clippy::too_many_arguments)]
pub fn vjp(
    prim: &Prim,
    args: &[&[f64]],
    shapes: &[&[usize]],
    out: &[f64],
    out_shape: &[usize],
    adj_out: &[f64],
    adj_args: &mut [Option<&mut [f64]>],
    sc: &mut Scratch,
    slot_adj: Option<(&mut [f64], &[usize])>,
) -> Result<(), String> {
    match prim {
        Prim::Const(_) | Prim::Lit(_) | Prim::Rng(..) | Prim::Input(_) => {}
        Prim::Constrain(_) => return Err("Constrain is differentiated by the interpreter".into()),
        Prim::Unary(u) => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                for i in 0..g.len() {
                    if adj_out[i] != 0.0 {
                        g[i] += adj_out[i] * u.df(args[0][i], out[i]);
                    }
                }
            }
        }
        Prim::Binary(b) => {
            let (la, lb) = (args[0].len(), args[1].len());
            // A broadcast scalar's contributions are summed in pair order, then added.
            let (mut sa, mut sb) = (PairSum::default(), PairSum::default());
            for i in 0..out.len() {
                if adj_out[i] == 0.0 {
                    continue;
                }
                let (ia, ib) = (bidx(i, out_shape, la, shapes[0]), bidx(i, out_shape, lb, shapes[1]));
                let (da, db) = b.df(args[0][ia], args[1][ib], out[i]);
                if let Some(g) = adj_args[0].as_deref_mut() {
                    if la == 1 {
                        sa.add(i, adj_out[i] * da);
                    } else {
                        g[ia] += adj_out[i] * da;
                    }
                }
                if let Some(g) = adj_args[1].as_deref_mut() {
                    if lb == 1 {
                        sb.add(i, adj_out[i] * db);
                    } else {
                        g[ib] += adj_out[i] * db;
                    }
                }
            }
            for (k, (l, s)) in [(la, sa), (lb, sb)].into_iter().enumerate() {
                if let (1, Some(g)) = (l, adj_args[k].as_deref_mut()) {
                    g[0] += s.total();
                }
            }
        }
        Prim::Select => {
            let pick = if args[0][0] != 0.0 { 1 } else { 2 };
            let l = args[pick].len();
            if let Some(g) = adj_args[pick].as_deref_mut() {
                if l == 1 {
                    g[0] += pair_sum(adj_out);
                } else {
                    for i in 0..out.len() {
                        g[bidx(i, out_shape, l, shapes[pick])] += adj_out[i];
                    }
                }
            }
        }
        Prim::MatMul => {
            let (sa, sb) = (shapes[0], shapes[1]);
            let (r, k) = if sa.len() == 2 { (sa[0], sa[1]) } else { (1, sa[0]) };
            let c = if sb.len() == 2 { sb[1] } else { 1 };
            // C = A B: dA = dC Bᵀ, dB = Aᵀ dC.
            if let Some(ga) = adj_args[0].as_deref_mut() {
                for i in 0..r {
                    for p in 0..k {
                        let mut s = 0.0;
                        for j in 0..c {
                            s += adj_out[i * c + j] * args[1][p * c + j];
                        }
                        ga[i * k + p] += s;
                    }
                }
            }
            if let Some(gb) = adj_args[1].as_deref_mut() {
                for i in 0..r {
                    for p in 0..k {
                        let a = args[0][i * k + p];
                        if a == 0.0 {
                            continue;
                        }
                        for j in 0..c {
                            gb[p * c + j] += a * adj_out[i * c + j];
                        }
                    }
                }
            }
        }
        Prim::Transpose => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                let (r, c) = if shapes[0].len() == 2 { (shapes[0][0], shapes[0][1]) } else { (1, shapes[0][0]) };
                for i in 0..r {
                    for j in 0..c {
                        g[i * c + j] += adj_out[j * r + i];
                    }
                }
            }
        }
        Prim::Reduce(rd) => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                let x = args[0];
                let a = adj_out[0];
                let n = x.len() as f64;
                match rd {
                    Red::Sum => g.iter_mut().for_each(|v| *v += a),
                    Red::Mean => g.iter_mut().for_each(|v| *v += a / n),
                    // One element: the value is 0 wherever it is.
                    Red::Variance | Red::Sd if x.len() < 2 => {}
                    Red::Variance | Red::Sd => {
                        let m = x.iter().sum::<f64>() / n;
                        let scale = if *rd == Red::Sd { a / (2.0 * out[0]) } else { a };
                        for (gi, xi) in g.iter_mut().zip(x) {
                            *gi += scale * 2.0 * (xi - m) / (n - 1.0);
                        }
                    }
                    Red::Prod => {
                        for i in 0..x.len() {
                            let others: f64 = x.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, v)| v).product();
                            g[i] += a * others;
                        }
                    }
                    Red::Min | Red::Max => {
                        if let Some(i) = x.iter().position(|v| *v == out[0]) {
                            g[i] += a;
                        }
                    }
                    Red::LogSumExp => {
                        for (gi, xi) in g.iter_mut().zip(x) {
                            *gi += a * (xi - out[0]).exp();
                        }
                    }
                }
            }
        }
        Prim::LogMix => {
            let d = log_mix_partials(args[0][0], args[1][0], args[2][0], out[0]);
            let g = adj_out[0];
            for (k, dk) in d.iter().enumerate() {
                if let Some(gk) = adj_args[k].as_deref_mut() {
                    gk[0] += g * dk;
                }
            }
        }
        Prim::LogMixVec => {
            let y = out[0];
            let g = adj_out[0];
            for i in 0..args[0].len() {
                let (w, l) = (args[0][i], args[1][i]);
                if let Some(gw) = adj_args[0].as_deref_mut() {
                    gw[i] += g * (l - y).exp();
                }
                if let Some(gl) = adj_args[1].as_deref_mut() {
                    gl[i] += g * (w.ln() + l - y).exp();
                }
            }
        }
        Prim::Softmax | Prim::LogSoftmax => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                let c = (*shapes[0].last().unwrap_or(&1)).max(1);
                for row in 0..out.len() / c {
                    let o = &out[row * c..row * c + c];
                    let ad = &adj_out[row * c..row * c + c];
                    if matches!(prim, Prim::Softmax) {
                        let dot: f64 = o.iter().zip(ad).map(|(a, b)| a * b).sum();
                        for j in 0..c {
                            g[row * c + j] += o[j] * (ad[j] - dot);
                        }
                    } else {
                        let s: f64 = ad.iter().sum();
                        for j in 0..c {
                            g[row * c + j] += ad[j] - o[j].exp() * s;
                        }
                    }
                }
            }
        }
        Prim::LayerNorm => {
            // y = (x − m) s with s = 1/√(v + ε): x̄ = s (ȳ − mean ȳ − y · mean(ȳ y)).
            if let Some(g) = adj_args[0].as_deref_mut() {
                let w = shapes[0][1..].iter().product::<usize>().max(1);
                for row in 0..out.len() / w {
                    let range = row * w..row * w + w;
                    let (_, s) = layer_norm_moments(&args[0][range.clone()]);
                    let (y, ad) = (&out[range.clone()], &adj_out[range.clone()]);
                    let mean_g = ad.iter().sum::<f64>() / w as f64;
                    let mean_gy = ad.iter().zip(y).map(|(a, b)| a * b).sum::<f64>() / w as f64;
                    for ((gi, a), yi) in g[range].iter_mut().zip(ad).zip(y) {
                        *gi += s * (a - mean_g - yi * mean_gy);
                    }
                }
            }
        }
        Prim::ColMeans | Prim::ColSums | Prim::RowMeans | Prim::RowSums => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                let (r, c) = (shapes[0][0], shapes[0][1]);
                let col = matches!(prim, Prim::ColMeans | Prim::ColSums);
                let div = match prim {
                    Prim::ColMeans => r as f64,
                    Prim::RowMeans => c as f64,
                    _ => 1.0,
                };
                for i in 0..r {
                    for j in 0..c {
                        g[i * c + j] += adj_out[if col { j } else { i }] / div;
                    }
                }
            }
        }
        Prim::Index(ix) => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                index_positions(ix, shapes[0], &args[1..], &mut sc.pos)?;
                for (a, p) in adj_out.iter().zip(&sc.pos) {
                    g[*p] += a;
                }
            }
        }
        Prim::Load(_, ix) => {
            if let Some((sadj, shape)) = slot_adj {
                index_positions(ix, shape, args, &mut sc.pos)?;
                for (a, p) in adj_out.iter().zip(&sc.pos) {
                    sadj[*p] += a;
                }
            }
        }
        Prim::Fill(_) => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                g[0] += adj_out.iter().sum::<f64>();
            }
        }
        Prim::DiagMatrix => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                let k = g.len();
                for i in 0..k {
                    g[i] += adj_out[i * k + i];
                }
            }
        }
        Prim::Diagonal => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                let k = shapes[0][0];
                for i in 0..k {
                    g[i * k + i] += adj_out[i];
                }
            }
        }
        Prim::Cholesky => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                cholesky_vjp(out, adj_out, shapes[0][0], g, sc);
            }
        }
        Prim::GpExpQuadCov => {
            let (x, a, rho) = (args[0], args[1][0], args[2][0]);
            let k = x.len();
            let (mut ga, mut grho) = (0.0, 0.0);
            for i in 0..k {
                for j in 0..k {
                    let d = x[i] - x[j];
                    let kij = out[i * k + j];
                    let w = adj_out[i * k + j];
                    // ∂K/∂alpha = 2 alpha exp(−d²/(2 rho²)), written without dividing by alpha.
                    ga += w * 2.0 * a * (-d * d / (2.0 * rho * rho)).exp();
                    grho += w * kij * d * d / (rho * rho * rho);
                    if let Some(gx) = adj_args[0].as_deref_mut() {
                        let dk = -kij * d / (rho * rho);
                        gx[i] += w * dk;
                        gx[j] -= w * dk;
                    }
                }
            }
            if let Some(g) = adj_args[1].as_deref_mut() {
                g[0] += ga;
            }
            if let Some(g) = adj_args[2].as_deref_mut() {
                g[0] += grho;
            }
        }
        Prim::Reshape(_) => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                for (gi, a) in g.iter_mut().zip(adj_out) {
                    *gi += a;
                }
            }
        }
        Prim::Conv2d { stride, padding } => {
            let cv = Conv::new(shapes[0], shapes[1], *stride, *padding)?;
            let [gx, gw, gb] = adj_args else { return Err("conv2d takes three arguments".into()) };
            let (gx, gw, gb) = (gx.as_deref_mut(), gw.as_deref_mut(), gb.as_deref_mut());
            cv.vjp(args[0], args[1], adj_out, gx, gw, gb, &mut sc.conv);
        }
        Prim::Pool2d(kind, k) => {
            if let Some(g) = adj_args[0].as_deref_mut() {
                Pooling::new(shapes[0], *k)?.vjp(*kind, args[0], out, adj_out, g);
            }
        }
        Prim::Reparam => {
            let [m, v, eps] = adj_args else { return Err("a draw takes three arguments".into()) };
            let adj = Adjoints { m: m.as_deref_mut(), v: v.as_deref_mut(), eps: eps.as_deref_mut(), over: 0 };
            crate::math::reparam::vjp(args[1], args[2], adj_out, adj);
        }
        Prim::LogDensity(_) | Prim::LogCdf(..) => {
            let dargs: SmallVec<[dist::Arg; 6]> =
                args.iter().zip(shapes).map(|(v, s)| dist::Arg { values: v, dims: s }).collect();
            // Gradients into scratch for every argument, then scaled into those that need them.
            let lens: SmallVec<[usize; 6]> = args.iter().map(|a| a.len()).collect();
            let total: usize = lens.iter().sum();
            sc.a.clear();
            sc.a.resize(total, 0.0);
            {
                let mut rest: &mut [f64] = &mut sc.a;
                let mut parts: SmallVec<[&mut [f64]; 6]> = SmallVec::new();
                for l in &lens {
                    let (head, tail) = rest.split_at_mut(*l);
                    parts.push(head);
                    rest = tail;
                }
                match prim {
                    Prim::LogCdf(f, upper) => dist::log_cdf(*f, &dargs, *upper, Some(&mut parts)),
                    Prim::LogDensity(f) => dist::log_density(*f, &dargs, Some(&mut parts)),
                    _ => f64::NAN,
                };
            }
            let mut off = 0;
            for (k, l) in lens.iter().enumerate() {
                if let Some(g) = adj_args[k].as_deref_mut() {
                    for i in 0..*l {
                        g[i] += adj_out[0] * sc.a[off + i];
                    }
                }
                off += l;
            }
        }
    }
    Ok(())
}

/// Reverse mode through the Cholesky factorisation L = chol(A), A symmetric: the blocked-free
/// form of the algorithm in Murray (2016), "Differentiation of the Cholesky decomposition".
/// Given L and L̄, writes Ā (symmetrised, added into `g`).
fn cholesky_vjp(l: &[f64], lbar: &[f64], k: usize, g: &mut [f64], sc: &mut Scratch) {
    // 1 / L_ii once.
    let inv = &mut sc.d;
    inv.clear();
    inv.extend((0..k).map(|i| 1.0 / l[i * k + i]));
    // Φ(Lᵀ L̄): lower triangle with halved diagonal, accumulated row by row of L (each step
    // an axpy over a row, so no long chain of dependent additions).
    let phi = &mut sc.c;
    phi.clear();
    phi.resize(k * k, 0.0);
    for p in 0..k {
        for i in 0..=p {
            let lpi = l[p * k + i];
            let (dst, src) = (&mut phi[i * k..i * k + i + 1], &lbar[p * k..p * k + i + 1]);
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += lpi * s);
        }
    }
    for i in 0..k {
        phi[i * k + i] *= 0.5;
    }
    // S = L⁻ᵀ Φ L⁻¹ in two triangular solves, both as Lᵀ Y = B solved for whole rows of Y:
    // X = L⁻ᵀ Φ, then Sᵀ = L⁻ᵀ Xᵀ.
    back_substitute_rows(l, inv, k, phi);
    let st = &mut sc.a;
    st.clear();
    st.resize(k * k, 0.0);
    for i in 0..k {
        for j in 0..k {
            st[j * k + i] = phi[i * k + j];
        }
    }
    back_substitute_rows(l, inv, k, st);
    // Ā = ½ (S + Sᵀ), as the gradient with respect to a symmetric A's entries.
    for i in 0..k {
        for j in 0..k {
            g[i * k + j] += 0.5 * (st[j * k + i] + st[i * k + j]);
        }
    }
}

/// Solves Lᵀ Y = B in place (B, k × k, becomes Y), L lower triangular with `inv` the
/// reciprocals of its diagonal: rows of Y from the last up, each an axpy of the rows below.
fn back_substitute_rows(l: &[f64], inv: &[f64], k: usize, y: &mut [f64]) {
    for i in (0..k).rev() {
        let (head, tail) = y.split_at_mut((i + 1) * k);
        let row = &mut head[i * k..];
        for p in i + 1..k {
            let lpi = l[p * k + i];
            let below = &tail[(p - i - 1) * k..(p - i) * k];
            row.iter_mut().zip(below).for_each(|(r, b)| *r -= lpi * b);
        }
        row.iter_mut().for_each(|r| *r *= inv[i]);
    }
}
