//! The Rust entry points compiled code calls: scalar transcendentals, and kernels for the
//! primitives that are not emitted inline (linear algebra, densities, transforms, general
//! indexing). Kernels receive the context and a table of pointers to the current execution's
//! primal values; adjoints sit at fixed places in the arena the layout names.
//!
//! Every kernel returns 0 on success and 1 on a recoverable evaluation error, with its message
//! left in the runtime. A panic inside a kernel is caught and reported the same way, so it never
//! unwinds into generated code.

use super::gemm;
use super::layout::Layout;
use crate::ir::interp::{constrain_param, constrain_param_vjp};
use crate::ir::prim::{self, Prim, Scratch};
use crate::ir::{Inst, Program};
use crate::math::dist;
use smallvec::SmallVec;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What generated code reads and writes; `#[repr(C)]` because it loads `arena` and stores
/// `target` by offset.
#[repr(C)]
pub struct Ctx {
    pub arena: *mut f64,
    pub theta: *const f64,
    pub grad: *mut f64,
    pub rt: *mut Runtime,
    pub target: f64,
    pub jacobian: f64,
    /// 1 when the gradient includes the log-Jacobian's, 0 when not.
    pub jac_weight: f64,
    /// The likelihood's part of `target`.
    pub likelihood: f64,
}

pub const CTX_ARENA: i32 = 0;
pub const CTX_THETA: i32 = 8;
pub const CTX_GRAD: i32 = 16;
pub const CTX_TARGET: i32 = 32;
pub const CTX_JACOBIAN: i32 = 40;
pub const CTX_JAC_WEIGHT: i32 = 48;
pub const CTX_LIKELIHOOD: i32 = 56;

/// What kernels need besides the pointers they are given.
pub struct Runtime {
    pub p: *const Program,
    pub lay: Layout,
    /// The instructions kernels run, by the id compiled code passes.
    pub ops: Vec<Inst>,
    /// By op id: the reverse leaves the result's adjoint uncleared (the next evaluation
    /// writes it in full before reading it).
    pub kept_adj: Vec<bool>,
    /// By op id: bit k set when argument k's adjoint is this op's to write over (it is the
    /// argument's one use, so the adjoint is zero until the reverse reaches it, and nothing
    /// clears it afterwards).
    pub fresh_adj: Vec<u8>,
    pub sc: Scratch,
    pub tmp: Vec<Vec<f64>>,
    pub pos: Vec<usize>,
    pub bound_adj: (Vec<f64>, Vec<f64>),
    pub error: Option<String>,
}

type Args<T> = SmallVec<[T; 8]>;

unsafe fn guarded(ctx: *mut Ctx, f: impl FnOnce(&mut Ctx) -> Result<(), String>) -> i32 {
    let ctx = &mut *ctx;
    let rt = ctx.rt;
    match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            (*rt).error = Some(e);
            1
        }
        Err(_) => {
            (*rt).error = Some("internal error in a compiled kernel".into());
            1
        }
    }
}

unsafe fn len_of(p: &Program, v: crate::ir::V) -> usize {
    p.values[v.0 as usize].len()
}

/// Forward evaluation of op `id`: `ptrs` = [result, args...].
///
/// # Safety
/// Called by compiled code only: `ctx` is live and the pointer table has the op's arity.
pub unsafe extern "C" fn k_eval(ctx: *mut Ctx, id: i64, ptrs: *const *mut f64) -> i32 {
    guarded(ctx, |ctx| {
        let rt = &mut *ctx.rt;
        let p = &*rt.p;
        let Inst::Op { dst, prim, args } = &rt.ops[id as usize] else {
            return Err("not an operation".into());
        };
        let ptrs = std::slice::from_raw_parts(ptrs, 1 + args.len());
        let out = std::slice::from_raw_parts_mut(ptrs[0], len_of(p, *dst));
        let argv: Args<&[f64]> =
            args.iter().enumerate().map(|(k, a)| std::slice::from_raw_parts(ptrs[1 + k], len_of(p, *a))).collect();
        let shapes: Args<&[usize]> = args.iter().map(|a| p.values[a.0 as usize].shape.as_slice()).collect();
        let out_shape = &p.values[dst.0 as usize].shape;
        match prim {
            Prim::Constrain(i) => {
                let theta = std::slice::from_raw_parts(ctx.theta, p.dim());
                constrain_param(p, *i, theta, &argv, out).map(|lj| ctx.jacobian += lj)
            }
            Prim::MatMul => {
                matmul(argv[0], shapes[0], argv[1], shapes[1], out);
                Ok(())
            }
            Prim::Load(s, _) => {
                let sshape = &p.slots[s.0 as usize].shape;
                let slot =
                    std::slice::from_raw_parts(ctx.arena.add(rt.lay.slot[s.0 as usize]), sshape.iter().product());
                prim::eval(prim, &argv, &shapes, out_shape, out, &p.consts, &mut rt.sc, Some((slot, sshape)))
            }
            _ => prim::eval(prim, &argv, &shapes, out_shape, out, &p.consts, &mut rt.sc, None),
        }
    })
}

/// Reverse step of op `id`: `ptrs` = [result, args...] (primals of the current execution).
/// Adds into the arguments' adjoints and zeroes the result's.
///
/// # Safety
/// Called by compiled code only: `ctx` is live and the pointer table has the op's arity.
pub unsafe extern "C" fn k_vjp(ctx: *mut Ctx, id: i64, ptrs: *const *mut f64) -> i32 {
    guarded(ctx, |ctx| {
        let rt = &mut *ctx.rt;
        let p = &*rt.p;
        let arena = ctx.arena;
        let Inst::Op { dst, prim, args } = &rt.ops[id as usize] else {
            return Err("not an operation".into());
        };
        let Some(adj_at) = rt.lay.adj[dst.0 as usize] else { return Ok(()) };
        let n_out = len_of(p, *dst);
        let adj_out = std::slice::from_raw_parts_mut(arena.add(adj_at), n_out);
        // Primitives whose VJP adds into distinct arguments' adjoints go straight into them.
        let distinct = crate::ir::V::all_distinct(args);
        let product = matches!(prim, Prim::MatMul | Prim::Conv2d { .. } | Prim::Pool2d(..) | Prim::Reparam) && distinct;
        if !matches!(prim, Prim::Constrain(_)) && !product && adj_out.iter().all(|a| *a == 0.0) {
            return Ok(());
        }
        let ptrs = std::slice::from_raw_parts(ptrs, 1 + args.len());
        let out = std::slice::from_raw_parts(ptrs[0], n_out);
        let argv: Args<&[f64]> =
            args.iter().enumerate().map(|(k, a)| std::slice::from_raw_parts(ptrs[1 + k], len_of(p, *a))).collect();
        let shapes: Args<&[usize]> = args.iter().map(|a| p.values[a.0 as usize].shape.as_slice()).collect();
        let out_shape = &p.values[dst.0 as usize].shape;
        let has = |a: &crate::ir::V| rt.lay.adj[a.0 as usize].is_some();
        if product {
            // Products (and draws) add into the adjoints in place: no scratch to clear and add back (the
            // adjoint of a hidden layer is millions of elements).
            let mut adj_args: Args<Option<&mut [f64]>> = args
                .iter()
                .map(|a| {
                    rt.lay.adj[a.0 as usize].map(|at| std::slice::from_raw_parts_mut(arena.add(at), len_of(p, *a)))
                })
                .collect();
            if matches!(prim, Prim::MatMul) {
                let fresh = rt.fresh_adj[id as usize];
                let fresh = [fresh & 1 != 0, fresh & 2 != 0];
                matmul_vjp(argv[0], shapes[0], argv[1], shapes[1], adj_out, &mut adj_args, fresh);
            } else if let (Prim::Reparam, [m, v, eps]) = (prim, &mut adj_args[..]) {
                let over = rt.fresh_adj[id as usize];
                let adj = crate::math::reparam::Adjoints {
                    m: m.as_deref_mut(),
                    v: v.as_deref_mut(),
                    eps: eps.as_deref_mut(),
                    over,
                };
                crate::math::reparam::vjp(argv[1], argv[2], adj_out, adj);
            } else {
                prim::vjp(prim, &argv, &shapes, out, out_shape, adj_out, &mut adj_args, &mut rt.sc, None)?;
            }
            if !rt.kept_adj[id as usize] {
                adj_out.iter_mut().for_each(|a| *a = 0.0);
            }
            return Ok(());
        }
        let mut tmp = std::mem::take(&mut rt.tmp);
        if tmp.len() < args.len() {
            tmp.resize(args.len(), Vec::new());
        }
        // Scratch adjoints only for the arguments that take one (a data matrix needs none).
        for (k, a) in args.iter().enumerate() {
            tmp[k].clear();
            if has(a) {
                tmp[k].resize(len_of(p, *a), 0.0);
            }
        }
        let r = {
            let (head, _) = tmp.split_at_mut(args.len());
            let mut adj_args: Args<Option<&mut [f64]>> =
                head.iter_mut().zip(args).map(|(t, a)| if has(a) { Some(t.as_mut_slice()) } else { None }).collect();
            match prim {
                Prim::Constrain(i) => {
                    let theta = std::slice::from_raw_parts(ctx.theta, p.dim());
                    let grad = std::slice::from_raw_parts_mut(ctx.grad, p.dim());
                    let w = ctx.jac_weight;
                    constrain_param_vjp(p, *i, theta, &argv, adj_out, w, grad, &mut rt.bound_adj, &mut adj_args);
                    Ok(())
                }
                Prim::MatMul => {
                    matmul_vjp(argv[0], shapes[0], argv[1], shapes[1], adj_out, &mut adj_args, [false; 2]);
                    Ok(())
                }
                Prim::Load(s, _) => {
                    let sshape = &p.slots[s.0 as usize].shape;
                    let sadj = rt.lay.slot_adj[s.0 as usize].map(|at| {
                        (std::slice::from_raw_parts_mut(arena.add(at), sshape.iter().product()), sshape.as_slice())
                    });
                    prim::vjp(prim, &argv, &shapes, out, out_shape, adj_out, &mut adj_args, &mut rt.sc, sadj)
                }
                _ => prim::vjp(prim, &argv, &shapes, out, out_shape, adj_out, &mut adj_args, &mut rt.sc, None),
            }
        };
        for (k, a) in args.iter().enumerate() {
            if let Some(at) = rt.lay.adj[a.0 as usize] {
                let dstv = std::slice::from_raw_parts_mut(arena.add(at), tmp[k].len());
                dstv.iter_mut().zip(&tmp[k]).for_each(|(x, y)| *x += y);
            }
        }
        rt.tmp = tmp;
        if !rt.kept_adj[id as usize] {
            adj_out.iter_mut().for_each(|a| *a = 0.0);
        }
        r
    })
}

/// A store through general indices: `ptrs` = [value, index args...].
///
/// # Safety
/// Called by compiled code only: `ctx` is live and the pointer table has the op's arity.
pub unsafe extern "C" fn k_store(ctx: *mut Ctx, id: i64, ptrs: *const *mut f64) -> i32 {
    guarded(ctx, |ctx| store(ctx, id, ptrs, false))
}

/// The reverse of [`k_store`]: the slot's adjoint at the stored places moves to the value.
///
/// # Safety
/// Called by compiled code only: `ctx` is live and the pointer table has the op's arity.
pub unsafe extern "C" fn k_store_rev(ctx: *mut Ctx, id: i64, ptrs: *const *mut f64) -> i32 {
    guarded(ctx, |ctx| store(ctx, id, ptrs, true))
}

unsafe fn store(ctx: &mut Ctx, id: i64, ptrs: *const *mut f64, rev: bool) -> Result<(), String> {
    let rt = &mut *ctx.rt;
    let p = &*rt.p;
    let Inst::Store { slot, ix, index, value } = &rt.ops[id as usize] else {
        return Err("not a store".into());
    };
    let ptrs = std::slice::from_raw_parts(ptrs, 1 + index.len());
    let sshape = &p.slots[slot.0 as usize].shape;
    let idx: Args<&[f64]> =
        index.iter().enumerate().map(|(k, v)| std::slice::from_raw_parts(ptrs[1 + k], len_of(p, *v))).collect();
    let mut pos = std::mem::take(&mut rt.pos);
    let r = prim::index_positions(ix, sshape, &idx, &mut pos);
    if r.is_ok() {
        let (vlen, slen) = (len_of(p, *value), sshape.iter().product());
        if !rev {
            let val = std::slice::from_raw_parts(ptrs[0], vlen);
            let s = std::slice::from_raw_parts_mut(ctx.arena.add(rt.lay.slot[slot.0 as usize]), slen);
            prim::scatter(&pos, val, s);
        } else if let Some(sa) = rt.lay.slot_adj[slot.0 as usize] {
            let sadj = std::slice::from_raw_parts_mut(ctx.arena.add(sa), slen);
            let vadj = rt.lay.adj[value.0 as usize].map(|at| std::slice::from_raw_parts_mut(ctx.arena.add(at), vlen));
            prim::scatter_vjp(&pos, sadj, vadj);
        }
    }
    rt.pos = pos;
    r
}

/// A parameter that is not finite after an inline transform: records the message.
///
/// # Safety
/// Called by compiled code only, with a live context.
pub unsafe extern "C" fn k_param_error(ctx: *mut Ctx, param: i64) -> i32 {
    let rt = &mut *(*ctx).rt;
    let p = &*rt.p;
    let name = p.params.get(param as usize).map(|p| p.name.clone()).unwrap_or_default();
    rt.error = Some(format!("parameter `{name}` is not finite after its transform"));
    1
}

/// An index out of range in inline code: records the message.
///
/// # Safety
/// Called by compiled code only: `ctx` is live and the pointer table has the op's arity.
pub unsafe extern "C" fn k_index_error(ctx: *mut Ctx, v: f64, size: i64) -> i32 {
    let rt = &mut *(*ctx).rt;
    rt.error = Some(format!("index {v} is out of range for a dimension of size {size}"));
    1
}

/// One element of an elementwise density (family by its index in `Family::ALL`).
pub extern "C" fn k_elem(f: i64, x: f64, p0: f64, p1: f64, p2: f64) -> f64 {
    match crate::math::dist::Family::ALL.get(f as usize) {
        Some(fam) => crate::math::dist::elem_log_density(*fam, x, &[p0, p1, p2]),
        None => f64::NAN,
    }
}

/// Its partial derivatives, written to `d[0..4]`.
///
/// # Safety
/// `d` points at four writable f64s (a stack slot of compiled code).
pub unsafe extern "C" fn k_elem_partials(f: i64, x: f64, p0: f64, p1: f64, p2: f64, d: *mut f64) {
    let mut out = [0.0; 4];
    if let Some(fam) = crate::math::dist::Family::ALL.get(f as usize) {
        crate::math::dist::elem_partials(*fam, x, &[p0, p1, p2], &mut out);
    }
    std::ptr::copy_nonoverlapping(out.as_ptr(), d, 4);
}

pub extern "C" fn k_log_mix(t: f64, a: f64, b: f64) -> f64 {
    prim::log_mix(t, a, b)
}

/// `log_mix` from ln θ and ln(1 − θ) computed beforehand (bitwise [`k_log_mix`]).
pub extern "C" fn k_log_mix_logs(lt: f64, l1mt: f64, a: f64, b: f64) -> f64 {
    prim::log_mix_logs(lt, l1mt, a, b)
}

/// ln x, as the densities take it (the C library's; `Un::Log` is `math::vmath`'s).
pub extern "C" fn k_ln(x: f64) -> f64 {
    x.ln()
}

/// `bernoulli_logit` summed over its elements (`y` and `a` of `ny` and `na` elements, each the
/// full length or 1), with the checks of `math::dist::log_density`, which computes the terms
/// four at a time (`math::vmath`), as the interpreter does.
///
/// # Safety
/// The pointers hold `ny` and `na` elements.
pub unsafe extern "C" fn k_bernoulli_logit(y: *const f64, ny: i64, a: *const f64, na: i64) -> f64 {
    let (y, a) = (std::slice::from_raw_parts(y, ny as usize), std::slice::from_raw_parts(a, na as usize));
    let (dy, da) = ([y.len()], [a.len()]);
    let args = [dist::Arg { values: y, dims: &dy }, dist::Arg { values: a, dims: &da }];
    dist::log_density(dist::Family::BernoulliLogit, &args, None)
}

/// `normal` summed over whole arrays (`math::dist::normal_array`, as the interpreter sums it):
/// each argument of n elements or 1, n the largest.
///
/// # Safety
/// The pointers hold `nx`, `nm` and `ns` elements.
pub unsafe extern "C" fn k_normal(x: *const f64, nx: i64, mu: *const f64, nm: i64, s: *const f64, ns: i64) -> f64 {
    let (x, mu, s) = (
        std::slice::from_raw_parts(x, nx as usize),
        std::slice::from_raw_parts(mu, nm as usize),
        std::slice::from_raw_parts(s, ns as usize),
    );
    dist::normal_array(x, mu, s, x.len().max(mu.len()).max(s.len()))
}

/// The reverse of [`k_normal`]: its partials times `g` added into the adjoints `dx`, `dmu`
/// and `ds` (each null, for an argument without one, or of its argument's length).
///
/// # Safety
/// The pointers hold `nx`, `nm` and `ns` elements.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn k_normal_rev(
    x: *const f64,
    nx: i64,
    mu: *const f64,
    nm: i64,
    s: *const f64,
    ns: i64,
    g: f64,
    dx: *mut f64,
    dmu: *mut f64,
    ds: *mut f64,
) {
    let lens = [nx as usize, nm as usize, ns as usize];
    let (x, mu, s) = (
        std::slice::from_raw_parts(x, lens[0]),
        std::slice::from_raw_parts(mu, lens[1]),
        std::slice::from_raw_parts(s, lens[2]),
    );
    let adj = |p: *mut f64, l: usize| if p.is_null() { &mut [][..] } else { std::slice::from_raw_parts_mut(p, l) };
    let n = lens.into_iter().max().unwrap_or(0);
    dist::normal_array_partials((x, mu, s), n, g, adj(dx, lens[0]), adj(dmu, lens[1]), adj(ds, lens[2]));
}

/// [`k_bernoulli_logit`], and each element's partial in its logit written to `d` (n elements,
/// n the larger of `ny` and `na`) for [`k_partials_rev`].
///
/// # Safety
/// The pointers hold `ny`, `na` and n elements.
pub unsafe extern "C" fn k_bernoulli_logit_keep(y: *const f64, ny: i64, a: *const f64, na: i64, d: *mut f64) -> f64 {
    let (y, a) = (std::slice::from_raw_parts(y, ny as usize), std::slice::from_raw_parts(a, na as usize));
    let d = std::slice::from_raw_parts_mut(d, y.len().max(a.len()));
    dist::bernoulli_logit_keep_partials(y, a, d)
}

/// The reverse of a density whose partials `d` (n elements) were kept: `g dᵢ` added into `adj`
/// (na elements: n, or 1 for a broadcast argument, whose partials are summed first), nothing
/// when `g` is zero, as the compiled reverse of an elementwise density does.
///
/// # Safety
/// The pointers hold n and na elements.
pub unsafe extern "C" fn k_partials_rev(d: *const f64, n: i64, na: i64, adj: *mut f64, g: f64) {
    let d = std::slice::from_raw_parts(d, n as usize);
    let adj = std::slice::from_raw_parts_mut(adj, na as usize);
    let scaled = |d: f64| if g != 0.0 { g * d } else { 0.0 };
    if adj.len() == 1 {
        let mut acc = 0.0;
        for x in d {
            acc += x;
        }
        adj[0] += scaled(acc);
    } else {
        for (a, x) in adj.iter_mut().zip(d) {
            *a += scaled(*x);
        }
    }
}

/// eˣ, as the constraint transforms take it (the C library's).
pub extern "C" fn k_exp(x: f64) -> f64 {
    x.exp()
}

/// `o = f(x + b)` for a `rows × cols` matrix `x` and a vector `b` along its rows, with `f` an
/// array function of `math::vmath` (a dense layer's bias and activation in one pass: the sum is
/// formed a few rows at a time in a buffer that stays in the first-level cache, and never
/// stored; the same bits as the addition and then `f`). With `a` not null, `x` is not given
/// but formed in that buffer, a few rows at a time, as the product `a l` of the layer's input
/// `a` (`rows × k`) and weights `l` (`k × cols`, at most [`gemm::SMALL`] elements, `cols` at
/// most 512), by the kernel the product alone would take, so with the same bits. Then, when
/// `w` is not null, a network's output product `out = o w` (`w` a column of `cols`), each few
/// rows' products taken while they are in the first-level cache.
///
/// # Safety
/// `x` (unless `a` is given) and `o` hold `rows · cols` f64s, `b` holds `cols`; `f` reads
/// and writes `n` of them; `a` (unless null) `rows · k` and `l` `k · cols`; `w` (unless null)
/// holds `cols` f64s and `out` `rows`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn k_unary_row_bias_head(
    f: unsafe extern "C" fn(*const f64, *mut f64, usize),
    x: *const f64,
    b: *const f64,
    o: *mut f64,
    rows: i64,
    cols: i64,
    w: *const f64,
    out: *mut f64,
    a: *const f64,
    l: *const f64,
    k: i64,
) {
    let (rows, cols, k) = (rows as usize, cols as usize, k as usize);
    let b = std::slice::from_raw_parts(b, cols);
    let head = (!w.is_null()).then(|| (std::slice::from_raw_parts(w, cols), out));
    let input = if a.is_null() {
        Input::Sum(x)
    } else {
        Input::Product(std::slice::from_raw_parts(a, rows * k), std::slice::from_raw_parts(l, k * cols), k)
    };
    crate::math::vmath::widest!(unary_row_bias(f, input, b, o, rows, cols, head))
}

/// What [`unary_row_bias`] adds the bias to: a matrix, or the product it forms itself.
#[derive(Clone, Copy)]
enum Input<'a> {
    Sum(*const f64),
    Product(&'a [f64], &'a [f64], usize),
}

/// The body of [`k_unary_row_bias_head`], compiled for each width of register.
#[inline(always)]
unsafe fn unary_row_bias(
    f: unsafe extern "C" fn(*const f64, *mut f64, usize),
    input: Input,
    b: &[f64],
    o: *mut f64,
    rows: usize,
    cols: usize,
    head: Option<(&[f64], *mut f64)>,
) {
    const BUF: usize = 512;
    let mut buf = [0.0f64; BUF];
    let product = |i: usize, r: usize| {
        if let Some((w, out)) = head {
            let h = std::slice::from_raw_parts(o.add(i * cols), r * cols);
            gemv(h, cols, w, std::slice::from_raw_parts_mut(out.add(i), r));
        }
    };
    let x = match input {
        Input::Sum(x) => x,
        Input::Product(a, l, k) => {
            debug_assert!(cols <= BUF && k * cols <= gemm::SMALL);
            let per = (BUF / cols.max(1)).max(1);
            let per = if per >= 8 { per / 8 * 8 } else { per };
            let mut i = 0;
            while i < rows {
                let r = per.min(rows - i);
                let t = &mut buf[..r * cols];
                gemm::nn(r, k, cols, &a[i * k..(i + r) * k], l, t, gemm::Plus::Row(b));
                f(buf.as_ptr(), o.add(i * cols), r * cols);
                product(i, r);
                i += r;
            }
            return;
        }
    };
    if cols > BUF {
        for i in 0..rows {
            for (j0, bs) in b.chunks(BUF).enumerate() {
                let at = i * cols + j0 * BUF;
                let xs = std::slice::from_raw_parts(x.add(at), bs.len());
                for ((t, xv), bv) in buf.iter_mut().zip(xs).zip(bs) {
                    *t = xv + bv;
                }
                f(buf.as_ptr(), o.add(at), bs.len());
            }
            product(i, 1);
        }
        return;
    }
    let mut per = (BUF / cols.max(1)).max(1);
    if head.is_some() && per >= 8 {
        // Whole groups of the eight rows the product takes together.
        per = per / 8 * 8;
    }
    let mut i = 0;
    while i < rows {
        let r = per.min(rows - i);
        let xs = std::slice::from_raw_parts(x.add(i * cols), r * cols);
        for (t, row) in buf.chunks_mut(cols).zip(xs.chunks(cols)) {
            for ((tv, xv), bv) in t.iter_mut().zip(row).zip(b) {
                *tv = xv + bv;
            }
        }
        f(buf.as_ptr(), o.add(i * cols), r * cols);
        product(i, r);
        i += r;
    }
}

/// What [`k_unary_row_bias_vjp`] does besides propagating: clear `h`'s adjoint after reading
/// it, and store (as 0 + c) rather than add to `x`'s adjoint, which is zero until then.
pub const ROW_BIAS_CLEAR: i64 = 1;
pub const ROW_BIAS_STORE: i64 = 2;

/// The reverse of [`k_unary_row_bias_head`]'s first part: with `h = f(x + b)` for an
/// activation whose derivative reads only its result (`tanh`, `exp`…; `Un::ALL[u]`), each
/// element's `c = dh · f'(h)` (0 where dh is 0, as the reverse sweep takes products) goes to
/// `dx` (added, or stored over a zero adjoint) and to `db` along the rows, row after row. The same operations in the
/// same order as the fused loop of the two operations, so the same bits, in registers as wide
/// as the CPU has.
///
/// # Safety
/// `h` and `dh` hold `rows · cols` f64s, `dx` (unless null) as many, `db` (unless null) `cols`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn k_unary_row_bias_vjp(
    u: i64,
    h: *const f64,
    dh: *mut f64,
    dx: *mut f64,
    db: *mut f64,
    rows: i64,
    cols: i64,
    flags: i64,
) {
    use crate::ir::scalar::Un;
    let (rows, cols) = (rows as usize, cols as usize);
    let n = rows * cols;
    let args = RowBiasVjp {
        h: std::slice::from_raw_parts(h, n),
        dh: std::slice::from_raw_parts_mut(dh, n),
        dx: (!dx.is_null()).then(|| std::slice::from_raw_parts_mut(dx, n)),
        db: (!db.is_null()).then(|| std::slice::from_raw_parts_mut(db, cols)),
        cols,
        clear: flags & ROW_BIAS_CLEAR != 0,
        store: flags & ROW_BIAS_STORE != 0,
    };
    // The derivative's rule is `Un::deriv`, instantiated per activation so that each loop has
    // it inline; its argument is never read here.
    match Un::ALL[u as usize] {
        Un::Tanh => args.run(|y| Un::Tanh.df(0.0, y)),
        Un::Exp => args.run(|y| Un::Exp.df(0.0, y)),
        Un::Expm1 => args.run(|y| Un::Expm1.df(0.0, y)),
        other => args.run(move |y| other.df(0.0, y)),
    }
}

struct RowBiasVjp<'a> {
    h: &'a [f64],
    dh: &'a mut [f64],
    dx: Option<&'a mut [f64]>,
    db: Option<&'a mut [f64]>,
    cols: usize,
    clear: bool,
    store: bool,
}

impl RowBiasVjp<'_> {
    #[inline(always)]
    fn run(self, d: impl Fn(f64) -> f64 + Copy) {
        crate::math::vmath::widest!(self.rows(d))
    }

    /// Row by row: the usual case of a hidden layer (both adjoints taken, the matrix's
    /// stored, h's left as it is) in one loop, the others a few hundred columns at a time
    /// through a buffer. Element-wise operations only (no sums across lanes), which the
    /// compiler vectorises without changing a result (it never fuses a product and an
    /// addition of its own accord).
    #[inline(always)]
    fn rows(self, d: impl Fn(f64) -> f64 + Copy) {
        const W: usize = 256;
        let c = self.cols;
        let term = |g: f64, y: f64| if g != 0.0 { g * d(y) } else { 0.0 };
        let (mut dx, mut db) = (self.dx, self.db);
        if let (Some(dx), Some(db), true, false) = (dx.as_deref_mut(), db.as_deref_mut(), self.store, self.clear) {
            for ((hr, gr), xr) in self.h.chunks_exact(c).zip(self.dh.chunks_exact(c)).zip(dx.chunks_exact_mut(c)) {
                for (((y, g), x), b) in hr.iter().zip(gr).zip(xr.iter_mut()).zip(db.iter_mut()) {
                    let v = term(*g, *y);
                    *x = 0.0 + v;
                    *b += v;
                }
            }
            return;
        }
        let mut buf = [0.0f64; W];
        for (i, (hr, gr)) in self.h.chunks_exact(c).zip(self.dh.chunks_exact_mut(c)).enumerate() {
            let mut j0 = 0;
            while j0 < c {
                let w = W.min(c - j0);
                let v = &mut buf[..w];
                for ((v, g), y) in v.iter_mut().zip(&gr[j0..j0 + w]).zip(&hr[j0..j0 + w]) {
                    *v = term(*g, *y);
                }
                if let Some(dx) = dx.as_deref_mut() {
                    let xr = &mut dx[i * c + j0..i * c + j0 + w];
                    if self.store {
                        xr.iter_mut().zip(v.iter()).for_each(|(x, v)| *x = 0.0 + v);
                    } else {
                        xr.iter_mut().zip(v.iter()).for_each(|(x, v)| *x += v);
                    }
                }
                if let Some(db) = db.as_deref_mut() {
                    db[j0..j0 + w].iter_mut().zip(v.iter()).for_each(|(b, v)| *b += v);
                }
                if self.clear {
                    gr[j0..j0 + w].fill(0.0);
                }
                j0 += w;
            }
        }
    }
}

/// What [`k_dense_head_vjp`] does besides propagating: store the matrix's adjoint (as in
/// [`ROW_BIAS_STORE`]), store rather than add to the weights' adjoint, and clear the product's
/// adjoint after reading it.
pub const HEAD_STORE_X: i64 = 1;
pub const HEAD_STORE_W: i64 = 2;
pub const HEAD_CLEAR_D: i64 = 4;

/// The reverse of a network's output product `o = h w` (`w` a column of `cols`), whose one
/// argument `h = f(x + b)` is a dense layer's bias and activation ([`k_unary_row_bias_vjp`])
/// read by nothing else: in one pass over the rows, h's adjoint `d[i] w[j]` (never stored),
/// each element's `c = dh · f'(h)` to `dx` and `db`, and `dw += hᵀ d`. What the product's
/// reverse and then the pair's would compute, with the two passes over h's adjoint (writing
/// it, reading it back) left out; `dw` sums in a different order.
///
/// # Safety
/// `h` and `dx` (unless null) hold `rows · cols` f64s, `w`, `db` and `dw` (unless null)
/// `cols`, `d` `rows`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn k_dense_head_vjp(
    u: i64,
    h: *const f64,
    w: *const f64,
    d: *mut f64,
    dx: *mut f64,
    db: *mut f64,
    dw: *mut f64,
    rows: i64,
    cols: i64,
    flags: i64,
) {
    use crate::ir::scalar::Un;
    let (rows, cols) = (rows as usize, cols as usize);
    let n = rows * cols;
    let args = DenseHead {
        h: std::slice::from_raw_parts(h, n),
        w: std::slice::from_raw_parts(w, cols),
        d: std::slice::from_raw_parts_mut(d, rows),
        dx: (!dx.is_null()).then(|| std::slice::from_raw_parts_mut(dx, n)),
        db: (!db.is_null()).then(|| std::slice::from_raw_parts_mut(db, cols)),
        dw: (!dw.is_null()).then(|| std::slice::from_raw_parts_mut(dw, cols)),
        flags,
    };
    let u = Un::ALL[u as usize];
    #[cfg(target_arch = "x86_64")]
    if crate::math::vmath::has_avx512() && cols <= 64 && matches!(u, Un::Tanh | Un::Exp | Un::Expm1) {
        // SAFETY: the CPU has AVX-512F and FMA (checked once), and there are at most 64 columns.
        return args.wide(u);
    }
    match u {
        Un::Tanh => args.run(|y| Un::Tanh.df(0.0, y)),
        Un::Exp => args.run(|y| Un::Exp.df(0.0, y)),
        Un::Expm1 => args.run(|y| Un::Expm1.df(0.0, y)),
        other => args.run(move |y| other.df(0.0, y)),
    }
}

struct DenseHead<'a> {
    h: &'a [f64],
    w: &'a [f64],
    d: &'a mut [f64],
    dx: Option<&'a mut [f64]>,
    db: Option<&'a mut [f64]>,
    dw: Option<&'a mut [f64]>,
    flags: i64,
}

impl DenseHead<'_> {
    #[inline(always)]
    fn run(self, f: impl Fn(f64) -> f64 + Copy) {
        crate::math::vmath::widest!(self.rows(f))
    }

    /// Up to 64 columns in AVX-512 registers, for the activations whose derivative is a
    /// polynomial in their result (`tanh`: 1 − y², `exp`: y, `expm1`: y + 1): the column
    /// sums of `db` and `dw` stay in registers while the rows stream past, and each row's
    /// last chunk is masked. Nothing is done for other activations.
    ///
    /// # Safety
    /// The CPU has AVX-512F and FMA; at most 64 columns.
    #[cfg(target_arch = "x86_64")]
    unsafe fn wide(self, u: crate::ir::scalar::Un) {
        use crate::ir::scalar::Un;
        use std::arch::x86_64::*;
        let one = || _mm512_set1_pd(1.0);
        let nq = self.w.len().div_ceil(8);
        // SAFETY (each arm): as this function's.
        macro_rules! by_width {
            ($f:expr) => {
                match nq {
                    0 => {}
                    1 => self.wide_rows::<1>($f),
                    2 => self.wide_rows::<2>($f),
                    3 => self.wide_rows::<3>($f),
                    4 => self.wide_rows::<4>($f),
                    5 => self.wide_rows::<5>($f),
                    6 => self.wide_rows::<6>($f),
                    7 => self.wide_rows::<7>($f),
                    _ => self.wide_rows::<8>($f),
                }
            };
        }
        match u {
            Un::Tanh => by_width!(|y: __m512d| _mm512_fnmadd_pd(y, y, one())),
            Un::Exp => by_width!(|y: __m512d| y),
            Un::Expm1 => by_width!(|y: __m512d| _mm512_add_pd(y, one())),
            _ => {}
        }
    }

    /// [`Self::wide`] for `NQ` chunks of eight columns.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn wide_rows<const NQ: usize>(self, f: impl Fn(std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d) {
        use std::arch::x86_64::*;
        let c = self.w.len();
        let last: __mmask8 = match c % 8 {
            0 => 0xff,
            t => ((1u16 << t) - 1) as u8,
        };
        let mask = |q: usize| if q + 1 < NQ { 0xff } else { last };
        let zero = _mm512_setzero_pd();
        let w: [__m512d; NQ] = std::array::from_fn(|q| _mm512_maskz_loadu_pd(mask(q), self.w.as_ptr().add(8 * q)));
        let (mut bsum, mut wsum) = ([zero; NQ], [zero; NQ]);
        let store_x = self.flags & HEAD_STORE_X != 0;
        let dx = self.dx.map(|v| v.as_mut_ptr());
        for (i, di) in self.d.iter().enumerate() {
            let di = _mm512_set1_pd(*di);
            let row = self.h.as_ptr().add(i * c);
            for q in 0..NQ {
                let y = _mm512_maskz_loadu_pd(mask(q), row.add(8 * q));
                // h's adjoint d[i] w[j], and its product with f'(h) where it is not zero.
                let g = _mm512_mul_pd(di, w[q]);
                let v = _mm512_maskz_mul_pd(_mm512_cmp_pd_mask::<_CMP_NEQ_UQ>(g, zero), g, f(y));
                if let Some(dx) = dx {
                    let at = dx.add(i * c + 8 * q);
                    let x = if store_x { v } else { _mm512_add_pd(_mm512_maskz_loadu_pd(mask(q), at), v) };
                    _mm512_mask_storeu_pd(at, mask(q), x);
                }
                bsum[q] = _mm512_add_pd(bsum[q], v);
                wsum[q] = _mm512_fmadd_pd(di, y, wsum[q]);
            }
        }
        if let Some(db) = self.db {
            for (q, s) in bsum.iter().enumerate() {
                let at = db.as_mut_ptr().add(8 * q);
                _mm512_mask_storeu_pd(at, mask(q), _mm512_add_pd(_mm512_maskz_loadu_pd(mask(q), at), *s));
            }
        }
        if let Some(dw) = self.dw {
            let store_w = self.flags & HEAD_STORE_W != 0;
            for (q, s) in wsum.iter().enumerate() {
                let at = dw.as_mut_ptr().add(8 * q);
                let x = if store_w { *s } else { _mm512_add_pd(_mm512_maskz_loadu_pd(mask(q), at), *s) };
                _mm512_mask_storeu_pd(at, mask(q), x);
            }
        }
        if self.flags & HEAD_CLEAR_D != 0 {
            self.d.fill(0.0);
        }
    }

    /// Row by row, elementwise operations only (vectorised by the compiler, which never fuses
    /// a product and an addition of its own accord), the sums of `db` and `dw` in a buffer.
    #[inline(always)]
    fn rows(self, f: impl Fn(f64) -> f64 + Copy) {
        const W: usize = 128;
        let c = self.w.len();
        let term = |g: f64, y: f64| if g != 0.0 { g * f(y) } else { 0.0 };
        let store_x = self.flags & HEAD_STORE_X != 0;
        let (mut dx, mut db, mut dw) = (self.dx, self.db, self.dw);
        let mut j0 = 0;
        while j0 < c {
            let wd = W.min(c - j0);
            let (mut bsum, mut wsum) = ([0.0f64; W], [0.0f64; W]);
            let wj = &self.w[j0..j0 + wd];
            for (i, (hr, di)) in self.h.chunks_exact(c).zip(self.d.iter()).enumerate() {
                let hr = &hr[j0..j0 + wd];
                let di = *di;
                for (s, y) in wsum[..wd].iter_mut().zip(hr) {
                    *s += di * y;
                }
                match dx.as_deref_mut() {
                    Some(dx) => {
                        let xr = &mut dx[i * c + j0..i * c + j0 + wd];
                        for (((x, s), y), wv) in xr.iter_mut().zip(bsum[..wd].iter_mut()).zip(hr).zip(wj) {
                            let v = term(0.0 + di * wv, *y);
                            *x = if store_x { 0.0 + v } else { *x + v };
                            *s += v;
                        }
                    }
                    None => {
                        for ((s, y), wv) in bsum[..wd].iter_mut().zip(hr).zip(wj) {
                            *s += term(0.0 + di * wv, *y);
                        }
                    }
                }
            }
            if let Some(db) = db.as_deref_mut() {
                db[j0..j0 + wd].iter_mut().zip(&bsum[..wd]).for_each(|(b, s)| *b += s);
            }
            if let Some(dw) = dw.as_deref_mut() {
                let dw = &mut dw[j0..j0 + wd];
                if self.flags & HEAD_STORE_W != 0 {
                    dw.iter_mut().zip(&wsum[..wd]).for_each(|(g, s)| *g = 0.0 + s);
                } else {
                    dw.iter_mut().zip(&wsum[..wd]).for_each(|(g, s)| *g += s);
                }
            }
            j0 += wd;
        }
        if self.flags & HEAD_CLEAR_D != 0 {
            self.d.fill(0.0);
        }
    }
}

/// Set `n` f64s from `p` to +0 (an adjoint cleared for the next evaluation).
///
/// # Safety
/// `p` points at `n` writable f64s.
pub unsafe extern "C" fn k_zero(p: *mut f64, n: i64) {
    std::slice::from_raw_parts_mut(p, n as usize).fill(0.0);
}

/// `n` values copied from `y` to `x`; 1 when one of them is not finite, else 0 (a
/// parameter without a transform).
///
/// # Safety
/// `y` and `x` point at `n` f64s, `x` writable, not overlapping.
pub unsafe extern "C" fn k_copy_finite(y: *const f64, x: *mut f64, n: i64) -> i8 {
    let (y, x) = (std::slice::from_raw_parts(y, n as usize), std::slice::from_raw_parts_mut(x, n as usize));
    x.copy_from_slice(y);
    crate::math::vmath::widest!(!y.iter().fold(true, |ok, v| ok & v.is_finite()) as i8)
}

/// `a` added into `g`, element by element (`n` of each; the reverse of [`k_copy_finite`]).
///
/// # Safety
/// `g` and `a` point at `n` f64s, `g` writable, not overlapping.
pub unsafe extern "C" fn k_add_into(g: *mut f64, a: *const f64, n: i64) {
    let (g, a) = (std::slice::from_raw_parts_mut(g, n as usize), std::slice::from_raw_parts(a, n as usize));
    crate::math::vmath::widest!(g.iter_mut().zip(a).for_each(|(g, a)| *g += a))
}

/// ln(1 − x), as `log_mix` takes it.
pub extern "C" fn k_ln1m(x: f64) -> f64 {
    (-x).ln_1p()
}

/// The partials of `log_mix` from ln θ and ln(1 − θ), written to `d[0..3]`.
///
/// # Safety
/// `d` points at three writable f64s (a stack slot of compiled code).
pub unsafe extern "C" fn k_log_mix_partials_logs(t: f64, lt: f64, l1mt: f64, a: f64, b: f64, y: f64, d: *mut f64) {
    let p = prim::log_mix_partials_logs(t, lt, l1mt, a, b, y);
    std::ptr::copy_nonoverlapping(p.as_ptr(), d, 3);
}

/// The three partials of `log_mix`, written to `d[0..3]`.
///
/// # Safety
/// `d` points at three writable f64s (a stack slot of compiled code).
pub unsafe extern "C" fn k_log_mix_partials(t: f64, a: f64, b: f64, y: f64, d: *mut f64) {
    let p = prim::log_mix_partials(t, a, b, y);
    std::ptr::copy_nonoverlapping(p.as_ptr(), d, 3);
}

/// y += a x
#[inline(always)]
fn axpy_impl(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `out[i] = A[i,:] · b` for the rows of A (k columns).
#[inline(always)]
fn gemv_impl(a: &[f64], k: usize, b: &[f64], out: &mut [f64]) {
    for (o, row) in out.iter_mut().zip(a.chunks_exact(k)) {
        *o = crate::math::dot(row, b);
    }
}

/// `g += Σ_i w[i] A[i,:]` (the transposed product, rows of A in order).
#[inline(always)]
fn gemv_t_impl(a: &[f64], k: usize, w: &[f64], g: &mut [f64]) {
    for (wi, row) in w.iter().zip(a.chunks_exact(k)) {
        axpy_impl(*wi, row, g);
    }
}

// The same loops compiled for AVX2 when the machine has it (chosen when running; the crate
// itself targets baseline x86-64).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn gemv_avx2(a: &[f64], k: usize, b: &[f64], out: &mut [f64]) {
    gemv_impl(a, k, b, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn gemv_t_avx2(a: &[f64], k: usize, w: &[f64], g: &mut [f64]) {
    gemv_t_impl(a, k, w, g)
}

// And for AVX-512 (eight-lane registers, the partial sums of `math::dot` in one of them): the
// same operations on each element, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn gemv_avx512(a: &[f64], k: usize, b: &[f64], out: &mut [f64]) {
    gemv_impl(a, k, b, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn gemv_t_avx512(a: &[f64], k: usize, w: &[f64], g: &mut [f64]) {
    gemv_t_impl(a, k, w, g)
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn gemv(a: &[f64], k: usize, b: &[f64], out: &mut [f64]) {
    if gemm::gemv_small(out.len(), k, a, b, out) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2, and AVX-512F for the wider form (checked).
        return unsafe {
            if crate::math::vmath::has_avx512() {
                gemv_avx512(a, k, b, out)
            } else {
                gemv_avx2(a, k, b, out)
            }
        };
    }
    gemv_impl(a, k, b, out)
}

fn gemv_t(a: &[f64], k: usize, w: &[f64], g: &mut [f64]) {
    if gemm::gemv_t_small(w.len(), k, a, w, g) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as in `gemv`.
        return unsafe {
            if crate::math::vmath::has_avx512() {
                gemv_t_avx512(a, k, w, g)
            } else {
                gemv_t_avx2(a, k, w, g)
            }
        };
    }
    gemv_t_impl(a, k, w, g)
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    axpy_impl(a, x, y)
}

/// `[r,k] @ [k,c]` (vectors as one row or one column): matrix-vector products directly (one
/// pass over the matrix, no packing), products with a small right operand by
/// [`super::gemm`] (no packing, no allocation), larger ones with matrixmultiply's kernels
/// (which allocate their packing buffers).
fn matmul(a: &[f64], sa: &[usize], b: &[f64], sb: &[usize], out: &mut [f64]) {
    let (r, k) = if sa.len() == 2 { (sa[0], sa[1]) } else { (1, sa[0]) };
    let c = if sb.len() == 2 { sb[1] } else { 1 };
    if r == 0 || c == 0 {
        return;
    }
    if c == 1 && k > 0 {
        gemv(a, k, b, out);
        return;
    }
    if r == 1 && k > 0 {
        out.fill(0.0);
        for (p, brow) in b.chunks_exact(c).enumerate() {
            axpy(a[p], brow, out);
        }
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    if k * c <= gemm::SMALL {
        gemm::nn(r, k, c, a, b, out, gemm::Plus::Nothing);
        return;
    }
    // SAFETY: the slices have r·k, k·c and r·c elements (shape rule), row-major.
    unsafe {
        matrixmultiply::dgemm(
            r,
            k,
            c,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            c as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            c as isize,
            1,
        );
    }
}

/// `G[i, :] += d[i] b` for the rows of G (k columns each), or `= 0 + d[i] b` with `store`:
/// the adjoint of the matrix in a matrix-vector product, in registers as wide as the CPU has.
fn outer_rows(g: &mut [f64], k: usize, d: &[f64], b: &[f64], store: bool) {
    crate::math::vmath::widest!(outer_rows_body(g, k, d, b, store))
}

#[inline(always)]
fn outer_rows_body(g: &mut [f64], k: usize, d: &[f64], b: &[f64], store: bool) {
    for (grow, di) in g.chunks_exact_mut(k).zip(d) {
        if store {
            grow.iter_mut().zip(b).for_each(|(g, bj)| *g = 0.0 + di * bj);
        } else {
            axpy_impl(*di, b, grow);
        }
    }
}

/// C = A B: dA += dC Bᵀ, dB += Aᵀ dC. With `fresh[k]`, argument k's adjoint is written over
/// rather than added to: it then holds what adding to a zero adjoint gives, bit for bit (+0
/// for a product of −0, as 0 + x makes it), whatever it held before.
fn matmul_vjp(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    adj: &[f64],
    adj_args: &mut [Option<&mut [f64]>],
    fresh: [bool; 2],
) {
    let (r, k) = if sa.len() == 2 { (sa[0], sa[1]) } else { (1, sa[0]) };
    let c = if sb.len() == 2 { sb[1] } else { 1 };
    // A matrix-vector product stores dA directly (below); every other adjoint to be written
    // over starts from zero and is added to.
    let stores = c == 1 && k > 0;
    for (i, (f, g)) in fresh.iter().zip(adj_args.iter_mut()).enumerate() {
        if let (true, Some(g)) = (*f && !(i == 0 && stores), g.as_deref_mut()) {
            g.fill(0.0);
        }
    }
    if r == 0 || c == 0 || k == 0 {
        return;
    }
    if c == 1 {
        // out = A b: dA[i,:] += dC[i] b (or = 0 + dC[i] b: the output layer of a network,
        // whose adjoint of the hidden layer is then written once instead of read, added to
        // and cleared), db += Aᵀ dC (rows of A in order).
        if let Some(ga) = adj_args[0].as_deref_mut() {
            outer_rows(ga, k, adj, b, fresh[0]);
        }
        if let Some(gb) = adj_args[1].as_deref_mut() {
            gemv_t(a, k, adj, gb);
        }
        return;
    }
    if k * c <= gemm::SMALL {
        if let Some(ga) = adj_args[0].as_deref_mut() {
            gemm::nt(r, k, c, adj, b, ga);
        }
        if let Some(gb) = adj_args[1].as_deref_mut() {
            gemm::tn(r, k, c, a, adj, gb);
        }
        return;
    }
    // SAFETY: as in `matmul`; Bᵀ and Aᵀ are read through swapped strides.
    unsafe {
        if let Some(ga) = adj_args[0].as_deref_mut() {
            matrixmultiply::dgemm(
                r,
                c,
                k,
                1.0,
                adj.as_ptr(),
                c as isize,
                1,
                b.as_ptr(),
                1,
                c as isize,
                1.0,
                ga.as_mut_ptr(),
                k as isize,
                1,
            );
        }
        if let Some(gb) = adj_args[1].as_deref_mut() {
            matrixmultiply::dgemm(
                k,
                r,
                c,
                1.0,
                a.as_ptr(),
                1,
                k as isize,
                adj.as_ptr(),
                c as isize,
                1,
                1.0,
                gb.as_mut_ptr(),
                c as isize,
                1,
            );
        }
    }
}
