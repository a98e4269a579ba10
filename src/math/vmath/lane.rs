//! The lanes the functions of `math::vmath` are written over: one `f64`, four in an AVX2
//! register, or eight in an AVX-512 one. Every operation has the same IEEE semantics in each, so a function gets the same
//! bits whichever lane type evaluates it.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::TWO52;

/// Arithmetic on one or more f64 lanes, with the exact semantics the functions rely on.
pub(crate) trait Lane: Copy {
    type M: Copy;
    /// The number of f64 lanes.
    const WIDTH: usize;
    /// The first `WIDTH` elements of `p`.
    fn load(p: &[f64]) -> Self;
    /// Into the first `WIDTH` elements of `p`.
    fn store(self, p: &mut [f64]);
    /// The correctly rounded square root.
    fn sqrt(self) -> Self;
    fn splat(c: f64) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// self · b + c, rounded once.
    fn fma(self, b: Self, c: Self) -> Self;
    /// c − self · b, rounded once.
    fn fnma(self, b: Self, c: Self) -> Self;
    /// `self < c ? self : c` (so `c` when self is NaN), as the x86 instruction does.
    fn min_c(self, c: f64) -> Self;
    /// `self > c ? self : c`.
    fn max_c(self, c: f64) -> Self;
    fn floor(self) -> Self;
    fn abs(self) -> Self;
    fn neg(self) -> Self;
    /// The magnitude of self with the sign of `s`.
    fn copysign(self, s: Self) -> Self;
    fn lt(self, c: f64) -> Self::M;
    fn gt(self, c: f64) -> Self::M;
    fn eq(self, c: f64) -> Self::M;
    fn is_nan(self) -> Self::M;
    fn and(a: Self::M, b: Self::M) -> Self::M;
    fn any(m: Self::M) -> bool;
    /// `m ? a : b`, lane by lane.
    fn select(m: Self::M, a: Self, b: Self) -> Self;
    /// 2ⁿ for self = (n + 1023) + 1.5 · 2⁵² with n an integer in [−1022, 1023] (its low
    /// mantissa bits hold n's biased exponent, which a shift moves into place).
    fn pow2_biased(self) -> Self;
    /// For positive finite self: (the biased exponent field as an f64, the mantissa with the
    /// exponent of 1, in [1, 2)).
    fn split(self) -> (Self, Self);
}

impl Lane for f64 {
    type M = bool;
    const WIDTH: usize = 1;
    #[inline(always)]
    fn load(p: &[f64]) -> Self {
        p[0]
    }
    #[inline(always)]
    fn store(self, p: &mut [f64]) {
        p[0] = self;
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn splat(c: f64) -> Self {
        c
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        self / o
    }
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        self.mul_add(b, c)
    }
    #[inline(always)]
    fn fnma(self, b: Self, c: Self) -> Self {
        (-self).mul_add(b, c)
    }
    #[inline(always)]
    fn min_c(self, c: f64) -> Self {
        if self < c {
            self
        } else {
            c
        }
    }
    #[inline(always)]
    fn max_c(self, c: f64) -> Self {
        if self > c {
            self
        } else {
            c
        }
    }
    #[inline(always)]
    fn floor(self) -> Self {
        f64::floor(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn neg(self) -> Self {
        -self
    }
    #[inline(always)]
    fn copysign(self, s: Self) -> Self {
        f64::copysign(self, s)
    }
    #[inline(always)]
    fn lt(self, c: f64) -> bool {
        self < c
    }
    #[inline(always)]
    fn gt(self, c: f64) -> bool {
        self > c
    }
    #[inline(always)]
    fn eq(self, c: f64) -> bool {
        self == c
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    #[inline(always)]
    fn and(a: bool, b: bool) -> bool {
        a & b
    }
    #[inline(always)]
    fn any(m: bool) -> bool {
        m
    }
    #[inline(always)]
    fn select(m: bool, a: Self, b: Self) -> Self {
        if m {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn pow2_biased(self) -> Self {
        f64::from_bits(self.to_bits() << 52)
    }
    #[inline(always)]
    fn split(self) -> (Self, Self) {
        let bits = self.to_bits();
        let e = f64::from_bits(0x4330_0000_0000_0000 | (bits >> 52)) - TWO52;
        let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
        (e, m)
    }
}

/// Four lanes in an AVX2 register. Its methods are only ever inlined into functions compiled
/// with AVX2 and FMA enabled, and called after the CPU was found to have them.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct V4(pub(super) __m256d);

#[cfg(target_arch = "x86_64")]
impl V4 {
    /// The four lanes, in order (to hand on the last one to three of an array).
    #[inline(always)]
    pub(super) fn lanes(self) -> [f64; 4] {
        let mut out = [0.0f64; 4];
        // SAFETY: `out` holds four elements; a V4 exists only where the CPU has AVX2.
        unsafe { _mm256_storeu_pd(out.as_mut_ptr(), self.0) };
        out
    }
}

#[cfg(target_arch = "x86_64")]
impl Lane for V4 {
    type M = __m256d;
    const WIDTH: usize = 4;
    #[inline(always)]
    fn load(p: &[f64]) -> Self {
        assert!(p.len() >= 4);
        unsafe { V4(_mm256_loadu_pd(p.as_ptr())) }
    }
    #[inline(always)]
    fn store(self, p: &mut [f64]) {
        assert!(p.len() >= 4);
        unsafe { _mm256_storeu_pd(p.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        unsafe { V4(_mm256_sqrt_pd(self.0)) }
    }
    #[inline(always)]
    fn splat(c: f64) -> Self {
        unsafe { V4(_mm256_set1_pd(c)) }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { V4(_mm256_add_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        unsafe { V4(_mm256_sub_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        unsafe { V4(_mm256_mul_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        unsafe { V4(_mm256_div_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        unsafe { V4(_mm256_fmadd_pd(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    fn fnma(self, b: Self, c: Self) -> Self {
        unsafe { V4(_mm256_fnmadd_pd(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    fn min_c(self, c: f64) -> Self {
        unsafe { V4(_mm256_min_pd(self.0, _mm256_set1_pd(c))) }
    }
    #[inline(always)]
    fn max_c(self, c: f64) -> Self {
        unsafe { V4(_mm256_max_pd(self.0, _mm256_set1_pd(c))) }
    }
    #[inline(always)]
    fn floor(self) -> Self {
        unsafe { V4(_mm256_floor_pd(self.0)) }
    }
    #[inline(always)]
    fn abs(self) -> Self {
        unsafe { V4(_mm256_andnot_pd(_mm256_set1_pd(-0.0), self.0)) }
    }
    #[inline(always)]
    fn neg(self) -> Self {
        unsafe { V4(_mm256_xor_pd(_mm256_set1_pd(-0.0), self.0)) }
    }
    #[inline(always)]
    fn copysign(self, s: Self) -> Self {
        unsafe {
            let sign = _mm256_set1_pd(-0.0);
            V4(_mm256_or_pd(_mm256_andnot_pd(sign, self.0), _mm256_and_pd(sign, s.0)))
        }
    }
    #[inline(always)]
    fn lt(self, c: f64) -> __m256d {
        unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(self.0, _mm256_set1_pd(c)) }
    }
    #[inline(always)]
    fn gt(self, c: f64) -> __m256d {
        unsafe { _mm256_cmp_pd::<_CMP_GT_OQ>(self.0, _mm256_set1_pd(c)) }
    }
    #[inline(always)]
    fn eq(self, c: f64) -> __m256d {
        unsafe { _mm256_cmp_pd::<_CMP_EQ_OQ>(self.0, _mm256_set1_pd(c)) }
    }
    #[inline(always)]
    fn is_nan(self) -> __m256d {
        unsafe { _mm256_cmp_pd::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[inline(always)]
    fn and(a: __m256d, b: __m256d) -> __m256d {
        unsafe { _mm256_and_pd(a, b) }
    }
    #[inline(always)]
    fn any(m: __m256d) -> bool {
        unsafe { _mm256_movemask_pd(m) != 0 }
    }
    #[inline(always)]
    fn select(m: __m256d, a: Self, b: Self) -> Self {
        unsafe { V4(_mm256_blendv_pd(b.0, a.0, m)) }
    }
    #[inline(always)]
    fn pow2_biased(self) -> Self {
        unsafe { V4(_mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_castpd_si256(self.0)))) }
    }
    #[inline(always)]
    fn split(self) -> (Self, Self) {
        unsafe {
            let bits = _mm256_castpd_si256(self.0);
            let e = _mm256_or_si256(_mm256_srli_epi64::<52>(bits), _mm256_set1_epi64x(0x4330_0000_0000_0000));
            let e = _mm256_sub_pd(_mm256_castsi256_pd(e), _mm256_set1_pd(TWO52));
            let m = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi64x(0x000f_ffff_ffff_ffff)),
                _mm256_set1_epi64x(0x3ff0_0000_0000_0000),
            );
            (V4(e), V4(_mm256_castsi256_pd(m)))
        }
    }
}

/// Eight lanes in an AVX-512 register. Its methods are only ever inlined into functions
/// compiled with AVX-512F and FMA enabled, and called after the CPU was found to have them.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct V8(pub(super) __m512d);

#[cfg(target_arch = "x86_64")]
impl V8 {
    #[inline(always)]
    fn bits(self) -> __m512i {
        unsafe { _mm512_castpd_si512(self.0) }
    }
    #[inline(always)]
    fn of_bits(b: __m512i) -> Self {
        unsafe { V8(_mm512_castsi512_pd(b)) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Lane for V8 {
    type M = __mmask8;
    const WIDTH: usize = 8;
    #[inline(always)]
    fn load(p: &[f64]) -> Self {
        assert!(p.len() >= 8);
        unsafe { V8(_mm512_loadu_pd(p.as_ptr())) }
    }
    #[inline(always)]
    fn store(self, p: &mut [f64]) {
        assert!(p.len() >= 8);
        unsafe { _mm512_storeu_pd(p.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        unsafe { V8(_mm512_sqrt_pd(self.0)) }
    }
    #[inline(always)]
    fn splat(c: f64) -> Self {
        unsafe { V8(_mm512_set1_pd(c)) }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { V8(_mm512_add_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        unsafe { V8(_mm512_sub_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        unsafe { V8(_mm512_mul_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        unsafe { V8(_mm512_div_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        unsafe { V8(_mm512_fmadd_pd(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    fn fnma(self, b: Self, c: Self) -> Self {
        unsafe { V8(_mm512_fnmadd_pd(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    fn min_c(self, c: f64) -> Self {
        // VMINPD returns its second operand when either is NaN, as the AVX2 form does.
        unsafe { V8(_mm512_min_pd(self.0, _mm512_set1_pd(c))) }
    }
    #[inline(always)]
    fn max_c(self, c: f64) -> Self {
        unsafe { V8(_mm512_max_pd(self.0, _mm512_set1_pd(c))) }
    }
    #[inline(always)]
    fn floor(self) -> Self {
        unsafe { V8(_mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(self.0)) }
    }
    #[inline(always)]
    fn abs(self) -> Self {
        unsafe { V8::of_bits(_mm512_and_si512(self.bits(), _mm512_set1_epi64(i64::MAX))) }
    }
    #[inline(always)]
    fn neg(self) -> Self {
        unsafe { V8::of_bits(_mm512_xor_si512(self.bits(), _mm512_set1_epi64(i64::MIN))) }
    }
    #[inline(always)]
    fn copysign(self, s: Self) -> Self {
        // (self & mask) | (s & !mask) with mask all bits but the sign's, in one operation:
        // 0xE4 is that function's truth table over (self, s, mask) = (0xF0, 0xCC, 0xAA).
        unsafe {
            let mask = _mm512_set1_epi64(i64::MAX);
            V8::of_bits(_mm512_ternarylogic_epi64::<0xE4>(self.bits(), s.bits(), mask))
        }
    }
    #[inline(always)]
    fn lt(self, c: f64) -> __mmask8 {
        unsafe { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(self.0, _mm512_set1_pd(c)) }
    }
    #[inline(always)]
    fn gt(self, c: f64) -> __mmask8 {
        unsafe { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(self.0, _mm512_set1_pd(c)) }
    }
    #[inline(always)]
    fn eq(self, c: f64) -> __mmask8 {
        unsafe { _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(self.0, _mm512_set1_pd(c)) }
    }
    #[inline(always)]
    fn is_nan(self) -> __mmask8 {
        unsafe { _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[inline(always)]
    fn and(a: __mmask8, b: __mmask8) -> __mmask8 {
        a & b
    }
    #[inline(always)]
    fn any(m: __mmask8) -> bool {
        m != 0
    }
    #[inline(always)]
    fn select(m: __mmask8, a: Self, b: Self) -> Self {
        // The blend takes its second operand where the mask is set.
        unsafe { V8(_mm512_mask_blend_pd(m, b.0, a.0)) }
    }
    #[inline(always)]
    fn pow2_biased(self) -> Self {
        unsafe { V8::of_bits(_mm512_slli_epi64::<52>(self.bits())) }
    }
    #[inline(always)]
    fn split(self) -> (Self, Self) {
        unsafe {
            let bits = self.bits();
            let e = _mm512_or_si512(_mm512_srli_epi64::<52>(bits), _mm512_set1_epi64(0x4330_0000_0000_0000));
            let e = _mm512_sub_pd(_mm512_castsi512_pd(e), _mm512_set1_pd(TWO52));
            let m = _mm512_or_si512(
                _mm512_and_si512(bits, _mm512_set1_epi64(0x000f_ffff_ffff_ffff)),
                _mm512_set1_epi64(0x3ff0_0000_0000_0000),
            );
            (V8(e), V8::of_bits(m))
        }
    }
}
