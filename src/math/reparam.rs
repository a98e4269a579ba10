//! A draw of Normal(m, √v) from standard normal noise ε, elementwise: y = m + √(v + δ)·ε with
//! δ = 10⁻¹², the pre-activation of a locally reparameterised layer (Kingma et al. 2015). The
//! δ keeps the square root's derivative finite where v is 0 (a row of inputs all zero).
//!
//! The square root and its reciprocal come from one reciprocal square root, r ≈ 1/√x: an
//! estimate from the bits of x (relative error below 3.5%) and four Newton steps
//! r ← r(3/2 − (x/2)r²), each squaring the error, so √x = x·r within a few ulps. A vector
//! square root and division cost about 16 cycles each per eight lanes; this, a dozen
//! multiplications.
//!
//! One loop each way, written so that the compiler vectorises it without changing a result
//! (no sums across lanes, and it never fuses a product and an addition of its own accord): the
//! AVX-512, AVX2 and plain forms give the same bits, which the interpreter and compiled code
//! share.

/// The δ under the square root.
pub const DELTA: f64 = 1e-12;

use crate::math::vmath::widest;

/// 1/√x for positive normal x, within a few ulps (the module's note).
#[inline(always)]
pub fn rsqrt(x: f64) -> f64 {
    let mut r = f64::from_bits(0x5fe6_eb50_c7b5_37a9 - (x.to_bits() >> 1));
    let h = 0.5 * x;
    for _ in 0..4 {
        r = r * (1.5 - h * r * r);
    }
    r
}

/// y = m + √(v + δ)·ε, for v ≥ 0.
pub fn forward(m: &[f64], v: &[f64], eps: &[f64], y: &mut [f64]) {
    assert!(m.len() == y.len() && v.len() == y.len() && eps.len() == y.len());
    #[inline(always)]
    fn body(m: &[f64], v: &[f64], eps: &[f64], y: &mut [f64]) {
        for (((y, m), v), e) in y.iter_mut().zip(m).zip(v).zip(eps) {
            let x = *v + DELTA;
            *y = *m + x * rsqrt(x) * *e;
        }
    }
    widest!(body(m, v, eps, y))
}

/// Where each adjoint goes: added into, or written over (the argument's one use).
pub struct Adjoints<'a> {
    pub m: Option<&'a mut [f64]>,
    pub v: Option<&'a mut [f64]>,
    pub eps: Option<&'a mut [f64]>,
    /// Bit 0, 1, 2: the adjoint of m, v, ε is written over rather than added into.
    pub over: u8,
}

/// The vector-Jacobian product from y's adjoint `g`: ∂m = g, ∂v = g·ε·(0.5 / √(v + δ)),
/// ∂ε = g·√(v + δ), with √ and 1/√ as in [`forward`].
pub fn vjp(v: &[f64], eps: &[f64], g: &[f64], adj: Adjoints<'_>) {
    assert!(v.len() == g.len() && eps.len() == g.len());
    #[inline(always)]
    fn body(v: &[f64], eps: &[f64], g: &[f64], adj: Adjoints<'_>) {
        let Adjoints { m, v: dv, eps: de, over } = adj;
        if let Some(dm) = m {
            if over & 1 != 0 {
                dm.copy_from_slice(g);
            } else {
                dm.iter_mut().zip(g).for_each(|(d, g)| *d += *g);
            }
        }
        let term = |g: f64, v: f64, e: f64| g * e * (0.5 * rsqrt(v + DELTA));
        if let Some(dv) = dv {
            let it = dv.iter_mut().zip(g).zip(v).zip(eps);
            if over & 2 != 0 {
                it.for_each(|(((d, g), v), e)| *d = term(*g, *v, *e));
            } else {
                it.for_each(|(((d, g), v), e)| *d += term(*g, *v, *e));
            }
        }
        if let Some(de) = de {
            let it = de.iter_mut().zip(g).zip(v);
            if over & 4 != 0 {
                it.for_each(|((d, g), v)| *d = *g * ((*v + DELTA) * rsqrt(*v + DELTA)));
            } else {
                it.for_each(|((d, g), v)| *d += *g * ((*v + DELTA) * rsqrt(*v + DELTA)));
            }
        }
    }
    widest!(body(v, eps, g, adj))
}
