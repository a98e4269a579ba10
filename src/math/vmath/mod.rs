//! `exp`, `expm1`, `log`, `log1p` and `tanh` over whole arrays, eight or four elements at a time.
//!
//! Each function is written once, generically over a [`Lane`]: one `f64`, four in an AVX2
//! register or eight in an AVX-512 one (the array forms take the widest the CPU has). All
//! instantiations perform the same IEEE operations (additions, products,
//! fused multiply-adds, divisions, exact bit manipulations) in the same order, so an element
//! gets the same bits whether it went through the array kernel, the scalar function, the
//! interpreter or compiled code. Accuracy, measured against the C library over wide random
//! samples and the special points (tests/vmath.rs): `exp` and `log` within 1 ulp, `expm1` and
//! `log1p` within 2, `tanh` within 3 (a few points in a million near |x| = 0.25 reach 4).
//!
//! The methods: `exp` reduces x = n ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts, the
//! first with trailing zeros so that n · ln2_hi is exact), evaluates e^r = 1 + r + r²Q(r) by
//! its Taylor polynomial to degree 13 (truncation below 0.05 ulp; Estrin's scheme) and scales by 2ⁿ in two exact steps,
//! so that subnormal results round once. `expm1` keeps r's own expansion, e^r − 1 = r + r²(½ +
//! r/6 + …), and forms 2ⁿ(e^r − 1) + (2ⁿ − 1) with one rounding. `tanh |x|` reduces 2|x| =
//! n ln 2 + 2r with n = ⌊2|x| / ln 2⌋, takes e^(2r) from its [7/7] Padé approximant and
//! forms (2ⁿe^(2r) − 1) / (2ⁿe^(2r) + 1) with a numerator in which nothing cancels; one
//! division, and a quarter fewer operations than through `expm1`. `log` splits x = 2ᵏ m with m in [√½, √2), and with f = m − 1 and
//! s = f / (2 + f) uses ln(1 + f) = f − (f²/2 − s(f²/2 + R)), where R = 2s²/3 + 2s⁴/5 + … is
//! the tail of 2 artanh s; `log1p` does the same for u = 1 + x and adds the first-order
//! correction (x − (u − 1)) / u for the rounding of u.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

mod lane;
mod normal;
use lane::Lane;
#[cfg(target_arch = "x86_64")]
use lane::{V4, V8};
pub use normal::fill_standard_normal;

/// 1.5 · 2⁵²: adding it rounds a value below 2⁵¹ in magnitude to an integer (ties to even)
/// held in the low mantissa bits.
const SHIFTER: f64 = 6755399441055744.0;
/// SHIFTER + 1023: adding it to an integer n puts n's biased exponent in the low mantissa
/// bits, for [`Lane::pow2_biased`].
const BIASED: f64 = SHIFTER + 1023.0;
const LOG2E: f64 = std::f64::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO, LN2_HI with 32 trailing zero bits.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
pub(super) const TWO52: f64 = 4503599627370496.0;

/// Σₖ c[k] xᵏ by Estrin's scheme: pairs c₂ⱼ + c₂ⱼ₊₁x, then pairs of those with x², x⁴, …
/// Its dependency chain is logarithmic in the degree (Horner's is linear), which is what
/// limits a loop of these on an out-of-order core.
#[inline(always)]
fn estrin<L: Lane, const N: usize>(x: L, c: &[f64; N]) -> L {
    let mut t = [L::splat(0.0); 16];
    let mut n = N.div_ceil(2);
    for j in 0..n {
        t[j] = if 2 * j + 1 < N { L::splat(c[2 * j + 1]).fma(x, L::splat(c[2 * j])) } else { L::splat(c[2 * j]) };
    }
    let mut p = x.mul(x);
    while n > 1 {
        let m = n.div_ceil(2);
        for j in 0..m {
            t[j] = if 2 * j + 1 < n { t[2 * j + 1].fma(p, t[2 * j]) } else { t[2 * j] };
        }
        n = m;
        if n > 1 {
            p = p.mul(p);
        }
    }
    t[0]
}

/// 1/k! for k = 2 to 13: e^r = 1 + r + r² Q(r), with Q's truncation below 0.05 ulp for
/// |r| ≤ ln 2 / 2.
const EXP_Q: [f64; 12] = [
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
    1.0 / 6227020800.0,
];

/// 2/(2j + 1) for j = 1 to 10: the tail of 2 artanh s = 2s + s · s² T(s²).
const ATANH_TAIL: [f64; 10] = [
    2.0 / 3.0,
    2.0 / 5.0,
    2.0 / 7.0,
    2.0 / 9.0,
    2.0 / 11.0,
    2.0 / 13.0,
    2.0 / 15.0,
    2.0 / 17.0,
    2.0 / 19.0,
    2.0 / 21.0,
];

/// (n, r) with x = n ln 2 + r, n = round(x / ln 2).
#[inline(always)]
fn reduce<L: Lane>(x: L) -> (L, L) {
    let n = x.mul(L::splat(LOG2E)).add(L::splat(SHIFTER)).sub(L::splat(SHIFTER));
    let r = n.fnma(L::splat(LN2_HI), x);
    let r = n.fnma(L::splat(LN2_LO), r);
    (n, r)
}

#[inline(always)]
fn exp_body<L: Lane>(x: L) -> L {
    let xc = x.max_c(-1000.0).min_c(1000.0);
    let (n, r) = reduce(xc);
    // e^r = 1 + (r + r² Q(r)), the 1 added last.
    let p = r.mul(r).fma(estrin(r, &EXP_Q), r).add(L::splat(1.0));
    // 2ⁿ = 2ʰ · 2ⁿ⁻ʰ with h = ⌊n/2⌋, both factors normal for |n| ≤ 1443.
    let h = n.mul(L::splat(0.5)).floor();
    let a = h.add(L::splat(BIASED)).pow2_biased();
    let b = n.sub(h).add(L::splat(BIASED)).pow2_biased();
    let y = p.mul(a).mul(b);
    L::select(x.is_nan(), x, y)
}

/// expm1 for x in [−50, 709] (clamped to it; e^x − 1 rounds to −1 below −38).
#[inline(always)]
fn expm1_core<L: Lane>(x: L) -> L {
    let (n, r) = reduce(x.max_c(-50.0).min_c(709.0));
    let q = r.mul(r).fma(estrin(r, &EXP_Q), r);
    let s = n.add(L::splat(BIASED)).pow2_biased();
    s.fma(q, s.sub(L::splat(1.0)))
}

#[inline(always)]
fn expm1_body<L: Lane>(x: L) -> L {
    let mut y = expm1_core(x);
    let big = x.gt(709.0);
    if L::any(big) {
        // e^x ≥ 2¹⁰²², where subtracting 1 changes nothing.
        y = L::select(big, exp_body(x), y);
    }
    let y = L::select(x.eq(0.0), x, y);
    L::select(x.is_nan(), x, y)
}

/// The even and odd parts of the numerator of e^(2r)'s [7/7] Padé approximant,
/// P(2r) = E(r²) + r O(r²) with E(z) = 1 + z E′(z) and O(z) = 1 + z O′(z): here E′'s and
/// O′'s coefficients. e^(2r) ≈ P(2r) / P(−2r) with a relative error below 10⁻¹⁸ for
/// 0 ≤ 2r ≤ ln 2.
const TANH_E: [f64; 3] = [6.0 / 13.0, 10.0 / 429.0, 4.0 / 19305.0];
const TANH_O: [f64; 3] = [5.0 / 39.0, 2.0 / 715.0, 1.0 / 135135.0];

/// tanh |x| from 2|x| = n ln 2 + 2r with n = ⌊2|x| / ln 2⌋ and 0 ≤ 2r < ln 2: with
/// e^(2r) = (E + w) / (E − w), w = r O, by the Padé approximant and s = 2ⁿ,
/// tanh |x| = ((s − 1) E + (s + 1) w) / ((s + 1) E + (s − 1) w), every term at least 0, so
/// nothing cancels; for n = 0 it is w / E. Beyond 22, tanh rounds to 1, and so does this.
#[inline(always)]
fn tanh_body<L: Lane>(x: L) -> L {
    let a = x.abs().min_c(22.0);
    let n = a.mul(L::splat(2.0 * LOG2E)).floor();
    let r = n.fnma(L::splat(0.5 * std::f64::consts::LN_2), a);
    let z = r.mul(r);
    let tail = |c: &[f64; 3]| z.fma(z.fma(L::splat(c[2]), L::splat(c[1])), L::splat(c[0]));
    let e = z.fma(tail(&TANH_E), L::splat(1.0));
    let w = r.mul(z).fma(tail(&TANH_O), r);
    let s = n.add(L::splat(BIASED)).pow2_biased();
    let (sp, sm) = (s.add(L::splat(1.0)), s.sub(L::splat(1.0)));
    let num = sm.fma(e, sp.mul(w));
    let den = sp.fma(e, sm.mul(w));
    let y = num.div(den).copysign(x);
    L::select(x.is_nan(), x, y)
}

/// (k, f) with u = 2ᵏ (1 + f), 1 + f in [√½, √2), for positive finite u (subnormal included).
#[inline(always)]
fn log_parts<L: Lane>(u: L) -> (L, L) {
    let sub = u.lt(f64::MIN_POSITIVE);
    let us = L::select(sub, u.mul(L::splat(18014398509481984.0)), u); // 2⁵⁴
    let (e, m) = us.split();
    let hi = m.gt(std::f64::consts::SQRT_2);
    let m = L::select(hi, m.mul(L::splat(0.5)), m);
    let k = e.sub(L::splat(1023.0));
    let k = L::select(hi, k.add(L::splat(1.0)), k);
    let k = L::select(sub, k.sub(L::splat(54.0)), k);
    (k, m.sub(L::splat(1.0)))
}

/// ln(1 + f) for f in [√½ − 1, √2 − 1].
#[inline(always)]
fn ln1p_reduced<L: Lane>(f: L) -> L {
    let s = f.div(f.add(L::splat(2.0)));
    let z = s.mul(s);
    let r = estrin(z, &ATANH_TAIL).mul(z);
    let hf = L::splat(0.5).mul(f).mul(f);
    let inner = s.fnma(hf.add(r), hf);
    f.sub(inner)
}

#[inline(always)]
fn log_body<L: Lane>(x: L) -> L {
    let (k, f) = log_parts(x);
    let lf = ln1p_reduced(f);
    let y = k.fma(L::splat(LN2_HI), k.fma(L::splat(LN2_LO), lf));
    let y = L::select(x.eq(f64::INFINITY), x, y);
    let y = L::select(x.lt(0.0), L::splat(f64::NAN), y);
    let y = L::select(x.eq(0.0), L::splat(f64::NEG_INFINITY), y);
    L::select(x.is_nan(), x, y)
}

#[inline(always)]
fn log1p_body<L: Lane>(x: L) -> L {
    let u = x.add(L::splat(1.0));
    let (k, f) = log_parts(u);
    // ln(1 + x) = ln u + ln(1 + (1 + x − u)/u); the correction is exact to first order.
    let c = x.sub(u.sub(L::splat(1.0))).div(u);
    let c = L::select(L::and(u.gt(0.0), x.lt(TWO52)), c, L::splat(0.0));
    let lf = ln1p_reduced(f);
    let y = k.fma(L::splat(LN2_HI), lf.add(k.fma(L::splat(LN2_LO), c)));
    let y = L::select(x.eq(f64::INFINITY), x, y);
    let y = L::select(x.lt(-1.0), L::splat(f64::NAN), y);
    let y = L::select(x.eq(-1.0), L::splat(f64::NEG_INFINITY), y);
    let y = L::select(x.eq(0.0), x, y);
    L::select(x.is_nan(), x, y)
}

/// ln(1 + x) for x in [0, 1] (as `exp(−|s|)` is): [`log1p_body`] without its special cases,
/// none of which arises there, so the same bits.
#[inline(always)]
fn log1p_unit<L: Lane>(x: L) -> L {
    let u = x.add(L::splat(1.0));
    let (k, f) = log_parts(u);
    let c = x.sub(u.sub(L::splat(1.0))).div(u);
    let lf = ln1p_reduced(f);
    k.fma(L::splat(LN2_HI), lf.add(k.fma(L::splat(LN2_LO), c)))
}

/// Runs `$body` (an expression of type `()`, in a function returning `()`) compiled for the
/// widest vector unit the CPU has: AVX-512, AVX2, or baseline x86-64. Code that never fuses a
/// product and an addition gives the same bits in each.
macro_rules! widest {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn wide<T>(f: impl FnOnce() -> T) -> T {
                f()
            }
            #[target_feature(enable = "avx2")]
            fn four<T>(f: impl FnOnce() -> T) -> T {
                f()
            }
            if crate::math::vmath::has_avx512() {
                // SAFETY: the CPU has AVX-512F.
                return unsafe { wide(|| $body) };
            }
            if crate::math::vmath::has_avx2_fma() {
                // SAFETY: the CPU has AVX2.
                return unsafe { four(|| $body) };
            }
        }
        $body
    }};
}
pub(crate) use widest;

/// Whether the CPU has AVX2 and FMA (checked once), for the four-lane code here and the
/// matrix kernels of `jit::gemm`.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *YES.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX-512F and FMA (checked once), for the eight-lane array forms here
/// and the sixteen-column blocks of `jit::gemm`.
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *YES.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn has_fma() -> bool {
    is_x86_feature_detected!("fma")
}

/// An elementary function's scalar, raw-pointer and slice forms from its generic body.
macro_rules! elementary {
    ($(#[$doc:meta])* $name:ident, $array:ident, $raw:ident, $body:ident) => {
        $(#[$doc])*
        pub fn $name(x: f64) -> f64 {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "fma")]
                fn with_fma(x: f64) -> f64 {
                    $body(x)
                }
                if has_fma() {
                    // SAFETY: the CPU has FMA.
                    return unsafe { with_fma(x) };
                }
            }
            $body(x)
        }

        /// The function applied to `n` elements from `x` to `y` (which may be the same).
        ///
        /// # Safety
        /// `x` must be readable and `y` writable for `n` elements.
        pub unsafe extern "C" fn $raw(x: *const f64, y: *mut f64, n: usize) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn four(x: *const f64, y: *mut f64, n: usize) {
                    let mut i = 0;
                    while i + 4 <= n {
                        let v = V4(_mm256_loadu_pd(x.add(i)));
                        _mm256_storeu_pd(y.add(i), $body(v).0);
                        i += 4;
                    }
                    if i < n {
                        let mut buf = [0.0f64; 4];
                        for k in i..n {
                            buf[k - i] = *x.add(k);
                        }
                        let buf = $body(V4(_mm256_loadu_pd(buf.as_ptr()))).lanes();
                        for k in i..n {
                            *y.add(k) = buf[k - i];
                        }
                    }
                }
                #[target_feature(enable = "avx512f,fma")]
                unsafe fn eight(x: *const f64, y: *mut f64, n: usize) {
                    let mut i = 0;
                    while i + 8 <= n {
                        let v = V8(_mm512_loadu_pd(x.add(i)));
                        _mm512_storeu_pd(y.add(i), $body(v).0);
                        i += 8;
                    }
                    if i < n {
                        // The last one to seven elements: the other lanes read and write
                        // nothing (they compute on zeros).
                        let m: __mmask8 = (1u8 << (n - i)) - 1;
                        let v = V8(_mm512_maskz_loadu_pd(m, x.add(i)));
                        _mm512_mask_storeu_pd(y.add(i), m, $body(v).0);
                    }
                }
                if has_avx512() {
                    return eight(x, y, n);
                }
                if has_avx2_fma() {
                    return four(x, y, n);
                }
            }
            for i in 0..n {
                *y.add(i) = $name(*x.add(i));
            }
        }

        /// The function applied elementwise from `x` to `y` (of the same length).
        pub fn $array(x: &[f64], y: &mut [f64]) {
            assert_eq!(x.len(), y.len());
            // SAFETY: both slices hold `x.len()` elements.
            unsafe { $raw(x.as_ptr(), y.as_mut_ptr(), x.len()) }
        }
    };
}

elementary!(
    /// eˣ, within 1 ulp.
    exp, exp_array, exp_raw, exp_body
);
elementary!(
    /// eˣ − 1, within 2 ulps.
    expm1, expm1_array, expm1_raw, expm1_body
);
elementary!(
    /// ln x, within 1 ulp.
    ln, ln_array, ln_raw, log_body
);
elementary!(
    /// ln(1 + x), within 2 ulps.
    ln_1p, ln_1p_array, ln_1p_raw, log1p_body
);
elementary!(
    /// tanh x, within 3 ulps.
    tanh, tanh_array, tanh_raw, tanh_body
);

// ---- bernoulli_logit --------------------------------------------------------------------------

/// ln P(y | logit⁻¹ α) (see [`bernoulli_logit_both`]).
#[inline(always)]
fn bernoulli_logit_lp<L: Lane>(y: L, a: L) -> L {
    bernoulli_logit_both(y, a).0
}

/// Its derivative in α.
#[inline(always)]
fn bernoulli_logit_da<L: Lane>(y: L, a: L) -> L {
    bernoulli_logit_both(y, a).1
}

/// Elements per block of the array densities: computed into a buffer on the stack, then
/// summed or handed on in order.
const BLOCK: usize = 64;

/// Element `i` of an argument of length n or 1 (broadcast).
#[inline(always)]
fn at(v: &[f64], i: usize) -> f64 {
    if v.len() == 1 {
        v[0]
    } else {
        v[i]
    }
}

/// Four elements from k of an argument, or its one element four times.
///
/// # Safety
/// The CPU has AVX2 and FMA; `v` holds k + 4 elements or one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn load_or_splat(v: &[f64], k: usize) -> V4 {
    if v.len() == 1 {
        V4(_mm256_set1_pd(v[0]))
    } else {
        V4(_mm256_loadu_pd(v.as_ptr().add(k)))
    }
}

/// The elements from `from` up to `last` of an argument of length n or 1, padded to four with
/// element `last`: the lanes of the last partial vector.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tail_lanes(v: &[f64], from: usize, last: usize) -> V4 {
    let b: [f64; 4] = std::array::from_fn(|l| at(v, (from + l).min(last)));
    // SAFETY: `b` holds four elements.
    V4(unsafe { _mm256_loadu_pd(b.as_ptr()) })
}

macro_rules! density_block {
    ($name:ident, $body:ident) => {
        /// Elements `[i, i + out.len())` of the density's elementwise term, with broadcast
        /// arguments of length 1.
        fn $name(y: &[f64], a: &[f64], i: usize, out: &mut [f64]) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn four(y: &[f64], a: &[f64], i: usize, out: &mut [f64]) {
                    let m = out.len();
                    let mut k = 0;
                    while k + 4 <= m {
                        let v = $body(load_or_splat(y, i + k), load_or_splat(a, i + k));
                        _mm256_storeu_pd(out.as_mut_ptr().add(k), v.0);
                        k += 4;
                    }
                    if k < m {
                        // The last one to three elements, padded with the last one.
                        let last = i + m - 1;
                        let r = $body(tail_lanes(y, i + k, last), tail_lanes(a, i + k, last)).lanes();
                        out[k..m].copy_from_slice(&r[..m - k]);
                    }
                }
                if has_avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA; `y` and `a` hold i + out.len()
                    // elements or one.
                    return unsafe { four(y, a, i, out) };
                }
            }
            for (k, o) in out.iter_mut().enumerate() {
                *o = $body(at(y, i + k), at(a, i + k));
            }
        }
    };
}

density_block!(bernoulli_logit_block, bernoulli_logit_lp);
density_block!(bernoulli_logit_da_block, bernoulli_logit_da);

/// ∂/∂αᵢ of the same terms, handed to `f(i, ∂ᵢ)` in order of i.
pub fn bernoulli_logit_partials(y: &[f64], a: &[f64], n: usize, mut f: impl FnMut(usize, f64)) {
    let mut buf = [0.0f64; BLOCK];
    let mut i = 0;
    while i < n {
        let m = (n - i).min(BLOCK);
        bernoulli_logit_da_block(y, a, i, &mut buf[..m]);
        for (k, d) in buf[..m].iter().enumerate() {
            f(i + k, *d);
        }
        i += m;
    }
}

/// The term ln P(y | logit⁻¹ α) = −softplus(s) with s = −α for y = 1 and s = α for y = 0,
/// where softplus(s) = max(s, 0) + ln(1 + e^−|s|); its partial in α, σ(−α) for y = 1 and
/// −σ(α) for y = 0, that is ±σ(s), with σ(s) = 1 / (1 + e^−s) for s ≥ 0 and e^s / (1 + e^s)
/// below; and a lane of 1 where the inputs are outside the density's domain (α not finite,
/// y not 0 or 1; y(1 − y) is 0 exactly for y ∈ {0, 1}), 0 elsewhere. Inlined, the parts a
/// caller does not use are not computed.
#[inline(always)]
fn bernoulli_logit_both<L: Lane>(y: L, a: L) -> (L, L, L) {
    let one = y.eq(1.0);
    let s = L::select(one, a.neg(), a);
    let e = exp_body(s.abs().neg());
    let lp = s.max_c(0.0).add(log1p_unit(e)).neg();
    let num = L::select(s.lt(0.0), e, L::splat(1.0));
    let sg = num.div(e.add(L::splat(1.0)));
    let da = L::select(one, sg, sg.neg());
    let ok = L::and(a.abs().lt(f64::INFINITY), y.mul(L::splat(1.0).sub(y)).eq(0.0));
    (lp, da, L::select(ok, L::splat(0.0), L::splat(1.0)))
}

/// Σᵢ ln P(yᵢ | logit⁻¹ αᵢ) over n elements (`y` and `a` of length n, or 1 to broadcast), and
/// into `d` when given (n elements) the partials of [`bernoulli_logit_partials`], with the
/// same bits, in one pass that also checks the arguments: `None` when some α is not finite or
/// some y is not 0 or 1 (the caller then works out which). The terms are computed four at a
/// time and summed in four interleaved accumulators (element i into accumulator i mod 4, then
/// (s₀ + s₁) + (s₂ + s₃)): the same sum on every machine.
pub fn bernoulli_logit_checked(y: &[f64], a: &[f64], n: usize, d: Option<&mut [f64]>) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn four(y: &[f64], a: &[f64], n: usize, mut d: Option<&mut [f64]>) -> Option<f64> {
            let (mut acc, mut bad) = (V4::splat(0.0), V4::splat(0.0));
            let mut k = 0;
            while k + 4 <= n {
                let (lp, da, b) = bernoulli_logit_both(load_or_splat(y, k), load_or_splat(a, k));
                acc = acc.add(lp);
                bad = bad.add(b);
                if let Some(d) = d.as_deref_mut() {
                    _mm256_storeu_pd(d.as_mut_ptr().add(k), da.0);
                }
                k += 4;
            }
            let (mut lanes, mut bads) = (acc.lanes(), bad.lanes());
            if k < n {
                // The last one to three elements, padded with the last one.
                let (lp, da, b) = bernoulli_logit_both(tail_lanes(y, k, n - 1), tail_lanes(a, k, n - 1));
                let (r, rd, rb) = (lp.lanes(), da.lanes(), b.lanes());
                for l in 0..n - k {
                    lanes[l] += r[l];
                    bads[l] += rb[l];
                }
                if let Some(d) = d {
                    d[k..n].copy_from_slice(&rd[..n - k]);
                }
            }
            if bads.iter().any(|b| *b != 0.0) {
                return None;
            }
            Some((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        }
        if has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; `y` and `a` hold n elements or one, `d` n.
            return unsafe { four(y, a, n, d) };
        }
    }
    let mut acc = [0.0f64; 4];
    let mut bad = false;
    let mut d = d;
    for i in 0..n {
        let (lp, da, b) = bernoulli_logit_both(at(y, i), at(a, i));
        acc[i % 4] += lp;
        bad |= b != 0.0;
        if let Some(d) = d.as_deref_mut() {
            d[i] = da;
        }
    }
    (!bad).then(|| (acc[0] + acc[1]) + (acc[2] + acc[3]))
}

/// One term of [`bernoulli_logit_checked`]'s sum, with the same bits.
pub fn bernoulli_logit_term(y: f64, a: f64) -> f64 {
    let mut o = [0.0];
    bernoulli_logit_block(&[y], &[a], 0, &mut o);
    o[0]
}

/// One partial of [`bernoulli_logit_partials`], with the same bits.
pub fn bernoulli_logit_term_da(y: f64, a: f64) -> f64 {
    let mut o = [0.0];
    bernoulli_logit_da_block(&[y], &[a], 0, &mut o);
    o[0]
}

// ---- log_sum_exp of two arguments -------------------------------------------------------------

/// ln(eᵃ + eᵇ) = max(a, b) + ln(1 + e^−|a − b|), one `exp` and one `log1p`, and its partials
/// in a and b, σ(a − b) and σ(b − a): 1/(1 + e) for the larger argument and e/(1 + e) for the
/// other, with e = e^−|a − b| (½ and ½ at a tie). An infinite max(a, b) is the value (the
/// partials are then what the formula gives). NaN propagates.
#[inline(always)]
fn log_add_exp_both<L: Lane>(a: L, b: L) -> (L, L, L) {
    log_add_exp_rest(a, b, log_add_exp_e(a, b))
}

/// The first part of [`log_add_exp_both`]: e = e^−|a − b|.
#[inline(always)]
fn log_add_exp_e<L: Lane>(a: L, b: L) -> L {
    exp_body(a.sub(b).abs().neg())
}

/// The rest of [`log_add_exp_both`], from e.
#[inline(always)]
fn log_add_exp_rest<L: Lane>(a: L, b: L, e: L) -> (L, L, L) {
    let below = a.sub(b).lt(0.0);
    let m = L::select(below, b, a);
    // ln u for u = 1 + e in [1, 2]: u = 2ᵏ (1 + f) with k = 1 above √2 (f exact either way),
    // plus the rounding of 1 + e, (e − (u − 1))/u to first order. 1/u, once, also makes the
    // partials.
    let u = e.add(L::splat(1.0));
    let r = L::splat(1.0).div(u);
    let hi = u.gt(std::f64::consts::SQRT_2);
    let k = L::select(hi, L::splat(1.0), L::splat(0.0));
    let f = L::select(hi, u.mul(L::splat(0.5)), u).sub(L::splat(1.0));
    let c = e.sub(u.sub(L::splat(1.0))).mul(r);
    let l = k.fma(L::splat(LN2_HI), ln1p_reduced(f).add(k.fma(L::splat(LN2_LO), c)));
    let y = m.add(l);
    let y = L::select(m.abs().eq(f64::INFINITY), m, y);
    let er = e.mul(r);
    (y, L::select(below, er, r), L::select(below, r, er))
}

/// [`log_add_exp_both`] of one pair of scalars, with the bits of the array form.
pub fn log_add_exp(a: f64, b: f64) -> (f64, f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "fma")]
        fn with_fma(a: f64, b: f64) -> (f64, f64, f64) {
            log_add_exp_both(a, b)
        }
        if has_fma() {
            // SAFETY: the CPU has FMA.
            return unsafe { with_fma(a, b) };
        }
    }
    log_add_exp_both(a, b)
}

/// `y[i] = ln(e^aᵢ + e^bᵢ)` for i < n, and, when `d` is not null, the partials in a and b in
/// `d[i]` and `d[n + i]`. `sa` and `sb` are 1 for an array of n elements and 0 for a scalar
/// (every element reads element 0).
///
/// # Safety
/// `a` and `b` are readable for n elements (one when their stride is 0), `y` is writable for n
/// and `d`, unless null, for 2n.
pub unsafe extern "C" fn log_add_exp_raw(
    a: *const f64,
    sa: usize,
    b: *const f64,
    sb: usize,
    y: *mut f64,
    d: *mut f64,
    n: usize,
) {
    if n == 0 {
        return;
    }
    let a = std::slice::from_raw_parts(a, if sa == 0 { 1 } else { n });
    let b = std::slice::from_raw_parts(b, if sb == 0 { 1 } else { n });
    let y = std::slice::from_raw_parts_mut(y, n);
    let d = if d.is_null() { None } else { Some(std::slice::from_raw_parts_mut(d, 2 * n)) };
    log_add_exp_array(a, b, y, d)
}

/// `y[i] = ln(e^aᵢ + e^bᵢ)` ([`log_add_exp`], the same bits) over `y.len()` elements, `a` and
/// `b` of that length or 1 (broadcast); with `d` (twice that length), the partials in a and b
/// in its two halves.
pub fn log_add_exp_array(a: &[f64], b: &[f64], y: &mut [f64], d: Option<&mut [f64]>) {
    let n = y.len();
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn four(a: &[f64], b: &[f64], y: &mut [f64], mut d: Option<&mut [f64]>) {
            let n = y.len();
            let mut k = 0;
            // In blocks of 32 elements, `exp` first, then the rest: shorter chains of dependent
            // operations per step (an `exp`, then two divisions and a polynomial), so that
            // more steps overlap. The same operations, so the same bits.
            let mut eb = [V4::splat(0.0); 8];
            while k + 32 <= n {
                for (g, e) in eb.iter_mut().enumerate() {
                    *e = log_add_exp_e(load_or_splat(a, k + 4 * g), load_or_splat(b, k + 4 * g));
                }
                for (g, e) in eb.iter().enumerate() {
                    let i = k + 4 * g;
                    let (v, da, db) = log_add_exp_rest(load_or_splat(a, i), load_or_splat(b, i), *e);
                    _mm256_storeu_pd(y.as_mut_ptr().add(i), v.0);
                    if let Some(d) = d.as_deref_mut() {
                        _mm256_storeu_pd(d.as_mut_ptr().add(i), da.0);
                        _mm256_storeu_pd(d.as_mut_ptr().add(n + i), db.0);
                    }
                }
                k += 32;
            }
            while k + 4 <= n {
                let (v, da, db) = log_add_exp_both(load_or_splat(a, k), load_or_splat(b, k));
                _mm256_storeu_pd(y.as_mut_ptr().add(k), v.0);
                if let Some(d) = d.as_deref_mut() {
                    _mm256_storeu_pd(d.as_mut_ptr().add(k), da.0);
                    _mm256_storeu_pd(d.as_mut_ptr().add(n + k), db.0);
                }
                k += 4;
            }
            if k < n {
                // The last one to three elements, padded with the last one.
                let (v, da, db) = log_add_exp_both(tail_lanes(a, k, n - 1), tail_lanes(b, k, n - 1));
                let (rv, ra, rb) = (v.lanes(), da.lanes(), db.lanes());
                y[k..n].copy_from_slice(&rv[..n - k]);
                if let Some(d) = d {
                    d[k..n].copy_from_slice(&ra[..n - k]);
                    d[n + k..2 * n].copy_from_slice(&rb[..n - k]);
                }
            }
        }
        if has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; `a` and `b` hold n elements or one, `d` 2n.
            return unsafe { four(a, b, y, d) };
        }
    }
    let mut d = d;
    for i in 0..n {
        let (v, da, db) = log_add_exp(at(a, i), at(b, i));
        y[i] = v;
        if let Some(d) = d.as_deref_mut() {
            d[i] = da;
            d[n + i] = db;
        }
    }
}
