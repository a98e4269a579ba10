//! Matrix products whose right-hand operand is small (a layer's weights: `k·c` up to
//! [`SMALL`] elements), without packing and without allocating: the long operand (a data
//! matrix or a layer's activations, one row per observation) streams through once while the
//! small one stays in the first-level cache, and a 4×8 block of the result is accumulated in
//! registers. Larger products go to matrixmultiply (see `kernels::matmul`).
//!
//! Three shapes cover a product `C = A B` and its reverse:
//! - [`nn`]: `C[r,c] = A[r,k] B[k,c]`, plus C's own values or a row vector ([`Plus`]);
//! - [`nt`]: `C[r,k] += X[r,c] B[k,c]ᵀ` (the adjoint of A), through a transposed copy of B
//!   kept in per-thread memory;
//! - [`tn`]: `C[k,c] += A[r,k]ᵀ X[r,c]` (the adjoint of B), rows of A and X taken in
//!   cache-sized chunks.

#[cfg(target_arch = "x86_64")]
use crate::math::vmath::{has_avx2_fma, has_avx512};
use std::cell::RefCell;

/// The largest `k·c` (elements of the small operand) these kernels take: 256 KiB, the size
/// of a second-level cache.
pub const SMALL: usize = 32 * 1024;

const MR: usize = 4;
const NR: usize = 8;
/// Rows of A and X per chunk in [`tn`]: about 24 KiB of them, to stay in the first-level
/// cache while every block of C passes over them.
fn chunk(k: usize, c: usize) -> usize {
    (3072 / (k + c).max(1)).clamp(16, 256)
}

/// `a·b + c`, fused where the CPU has FMA (the AVX2 build), separately otherwise.
#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// What a product `A B` is added to before it is stored in C.
#[derive(Clone, Copy)]
pub enum Plus<'a> {
    /// Nothing: C = A B.
    Nothing,
    /// C's own values: C = C + A B.
    Out,
    /// A row vector, to each row: C[i, j] = (A B)[i, j] + row[j] (a layer's bias), with the
    /// same bits as adding it afterwards.
    Row(&'a [f64]),
}

impl Plus<'_> {
    /// The addend of the block at (i0, j0) of a C with `ldc` columns as the kernels take it: a
    /// pointer to its first element and the stride between its rows (0 for a row vector),
    /// or null.
    fn at(self, out: *const f64, ldc: usize, i0: usize, j0: usize) -> (*const f64, usize) {
        match self {
            Plus::Nothing => (std::ptr::null(), 0),
            Plus::Out => (out.wrapping_add(i0 * ldc + j0), ldc),
            Plus::Row(b) => (b.as_ptr().wrapping_add(j0), 0),
        }
    }
}

/// `C[r,c] = A[r,k] B[k,c] (+ plus)`, row-major.
#[inline(always)]
fn nn_impl<const FMA: bool>(r: usize, k: usize, c: usize, a: &[f64], b: &[f64], out: &mut [f64], plus: Plus) {
    debug_assert!(a.len() >= r * k && b.len() >= k * c && out.len() >= r * c);
    let mut i0 = 0;
    while i0 < r {
        let mr = MR.min(r - i0);
        let mut j0 = 0;
        while j0 < c {
            let nr = NR.min(c - j0);
            let mut t = [[0.0f64; NR]; MR];
            if mr == MR && nr == NR {
                let rows: [&[f64]; MR] = std::array::from_fn(|ii| &a[(i0 + ii) * k..(i0 + ii + 1) * k]);
                for p in 0..k {
                    let brow: &[f64; NR] = b[p * c + j0..p * c + j0 + NR].try_into().expect("NR columns");
                    for ii in 0..MR {
                        let x = rows[ii][p];
                        for jj in 0..NR {
                            t[ii][jj] = madd::<FMA>(x, brow[jj], t[ii][jj]);
                        }
                    }
                }
            } else {
                for p in 0..k {
                    for ii in 0..mr {
                        let x = a[(i0 + ii) * k + p];
                        for jj in 0..nr {
                            t[ii][jj] = madd::<FMA>(x, b[p * c + j0 + jj], t[ii][jj]);
                        }
                    }
                }
            }
            for ii in 0..mr {
                let o = &mut out[(i0 + ii) * c + j0..(i0 + ii) * c + j0 + nr];
                for jj in 0..nr {
                    o[jj] = match plus {
                        Plus::Nothing => t[ii][jj],
                        Plus::Out => o[jj] + t[ii][jj],
                        Plus::Row(b) => t[ii][jj] + b[j0 + jj],
                    };
                }
            }
            j0 += NR;
        }
        i0 += MR;
    }
}

/// `C[k,c] += A[r,k]ᵀ X[r,c]`.
#[inline(always)]
fn tn_impl<const FMA: bool>(r: usize, k: usize, c: usize, a: &[f64], x: &[f64], out: &mut [f64]) {
    debug_assert!(a.len() >= r * k && x.len() >= r * c && out.len() >= k * c);
    let mut s0 = 0;
    while s0 < r {
        let s1 = (s0 + chunk(k, c)).min(r);
        let mut p0 = 0;
        while p0 < k {
            let mr = MR.min(k - p0);
            let mut j0 = 0;
            while j0 < c {
                let nr = NR.min(c - j0);
                let mut t = [[0.0f64; NR]; MR];
                if mr == MR && nr == NR {
                    for i in s0..s1 {
                        let arow: &[f64; MR] = a[i * k + p0..i * k + p0 + MR].try_into().expect("MR columns");
                        let xrow: &[f64; NR] = x[i * c + j0..i * c + j0 + NR].try_into().expect("NR columns");
                        for pp in 0..MR {
                            for jj in 0..NR {
                                t[pp][jj] = madd::<FMA>(arow[pp], xrow[jj], t[pp][jj]);
                            }
                        }
                    }
                } else {
                    for i in s0..s1 {
                        for pp in 0..mr {
                            let av = a[i * k + p0 + pp];
                            for jj in 0..nr {
                                t[pp][jj] = madd::<FMA>(av, x[i * c + j0 + jj], t[pp][jj]);
                            }
                        }
                    }
                }
                for pp in 0..mr {
                    let o = &mut out[(p0 + pp) * c + j0..(p0 + pp) * c + j0 + nr];
                    for jj in 0..nr {
                        o[jj] += t[pp][jj];
                    }
                }
                j0 += NR;
            }
            p0 += MR;
        }
        s0 = s1;
    }
}

/// The 4×8 blocks of [`nn_impl`] and [`tn_impl`] with explicit AVX2/FMA registers (eight
/// accumulators); edge blocks go through the portable loops.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// Lane masks for the first `nr` of 8 columns (`nr` in 1..=8).
    #[target_feature(enable = "avx2,fma")]
    fn masks(nr: usize) -> (__m256i, __m256i) {
        let m = |lane: usize| if lane < nr { -1i64 } else { 0 };
        (_mm256_setr_epi64x(m(0), m(1), m(2), m(3)), _mm256_setr_epi64x(m(4), m(5), m(6), m(7)))
    }

    /// `C[i0+ii, j0..j0+nr] = Σ_p A[i0+ii, p] B[p, j0..j0+nr] (+ D[ii, ..])` for 4 rows, D's
    /// rows `ldd` apart from `d` when `d` is not null (C itself, or a row vector with `ldd` 0:
    /// [`super::Plus`]); `nr` in 1..=8 (fewer than 8 columns through masked loads and stores).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn nn_block(
        k: usize,
        a: *const f64,
        lda: usize,
        b: *const f64,
        ldb: usize,
        c: *mut f64,
        ldc: usize,
        nr: usize,
        d: *const f64,
        ldd: usize,
    ) {
        unsafe {
            let (m0, m1) = masks(nr);
            let mut t = [[_mm256_setzero_pd(); 2]; MR];
            for p in 0..k {
                let (b0, b1) = if nr == NR {
                    (_mm256_loadu_pd(b.add(p * ldb)), _mm256_loadu_pd(b.add(p * ldb + 4)))
                } else {
                    (_mm256_maskload_pd(b.add(p * ldb), m0), _mm256_maskload_pd(b.wrapping_add(p * ldb + 4), m1))
                };
                for (ii, ti) in t.iter_mut().enumerate() {
                    let x = _mm256_broadcast_sd(&*a.add(ii * lda + p));
                    ti[0] = _mm256_fmadd_pd(x, b0, ti[0]);
                    ti[1] = _mm256_fmadd_pd(x, b1, ti[1]);
                }
            }
            for (ii, ti) in t.iter().enumerate() {
                let o = c.add(ii * ldc);
                let dd = d.wrapping_add(ii * ldd);
                let (mut v0, mut v1) = (ti[0], ti[1]);
                if nr == NR {
                    if !d.is_null() {
                        v0 = _mm256_add_pd(v0, _mm256_loadu_pd(dd));
                        v1 = _mm256_add_pd(v1, _mm256_loadu_pd(dd.add(4)));
                    }
                    _mm256_storeu_pd(o, v0);
                    _mm256_storeu_pd(o.add(4), v1);
                    continue;
                }
                if !d.is_null() {
                    v0 = _mm256_add_pd(v0, _mm256_maskload_pd(dd, m0));
                    v1 = _mm256_add_pd(v1, _mm256_maskload_pd(dd.wrapping_add(4), m1));
                }
                _mm256_maskstore_pd(o, m0, v0);
                _mm256_maskstore_pd(o.wrapping_add(4), m1, v1);
            }
        }
    }

    /// `C[p0+pp, j0..j0+nr] += Σ_{i<rows} A[i, p0+pp] X[i, j0..j0+nr]` for `mr` rows of C
    /// (`mr` in 1..=4, `nr` in 1..=8).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tn_block(
        rows: usize,
        a: *const f64,
        lda: usize,
        x: *const f64,
        ldx: usize,
        c: *mut f64,
        ldc: usize,
        mr: usize,
        nr: usize,
    ) {
        unsafe {
            let (m0, m1) = masks(nr);
            let mut t = [[_mm256_setzero_pd(); 2]; MR];
            if mr == MR && nr == NR {
                for i in 0..rows {
                    let x0 = _mm256_loadu_pd(x.add(i * ldx));
                    let x1 = _mm256_loadu_pd(x.add(i * ldx + 4));
                    for (pp, tp) in t.iter_mut().enumerate() {
                        let av = _mm256_broadcast_sd(&*a.add(i * lda + pp));
                        tp[0] = _mm256_fmadd_pd(av, x0, tp[0]);
                        tp[1] = _mm256_fmadd_pd(av, x1, tp[1]);
                    }
                }
            } else {
                for i in 0..rows {
                    let x0 = _mm256_maskload_pd(x.add(i * ldx), m0);
                    let x1 = _mm256_maskload_pd(x.wrapping_add(i * ldx + 4), m1);
                    for (pp, tp) in t.iter_mut().enumerate().take(mr) {
                        let av = _mm256_broadcast_sd(&*a.add(i * lda + pp));
                        tp[0] = _mm256_fmadd_pd(av, x0, tp[0]);
                        tp[1] = _mm256_fmadd_pd(av, x1, tp[1]);
                    }
                }
            }
            for (pp, tp) in t.iter().enumerate().take(mr) {
                let o = c.add(pp * ldc);
                _mm256_maskstore_pd(o, m0, _mm256_add_pd(tp[0], _mm256_maskload_pd(o, m0)));
                _mm256_maskstore_pd(
                    o.wrapping_add(4),
                    m1,
                    _mm256_add_pd(tp[1], _mm256_maskload_pd(o.wrapping_add(4), m1)),
                );
            }
        }
    }

    /// Masks for the four 4-lane chunks of a row of `k` ≤ 16 elements.
    #[target_feature(enable = "avx2,fma")]
    fn row_masks(k: usize) -> [__m256i; 4] {
        let m = |lane: usize| if lane < k { -1i64 } else { 0 };
        std::array::from_fn(|q| _mm256_setr_epi64x(m(4 * q), m(4 * q + 1), m(4 * q + 2), m(4 * q + 3)))
    }

    /// `g[..k] += Σ_i w[i] A[i, ..k]` for k ≤ 16: the k sums stay in four registers while the
    /// rows stream past.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemv_t_small(r: usize, k: usize, a: *const f64, w: *const f64, g: *mut f64) {
        unsafe {
            let masks = row_masks(k);
            let nq = k.div_ceil(4);
            let mut acc = [_mm256_setzero_pd(); 4];
            for i in 0..r {
                let wi = _mm256_broadcast_sd(&*w.add(i));
                let row = a.add(i * k);
                for q in 0..nq {
                    let x = _mm256_maskload_pd(row.add(4 * q), masks[q]);
                    acc[q] = _mm256_fmadd_pd(wi, x, acc[q]);
                }
            }
            for q in 0..nq {
                let o = g.add(4 * q);
                _mm256_maskstore_pd(o, masks[q], _mm256_add_pd(acc[q], _mm256_maskload_pd(o, masks[q])));
            }
        }
    }

    /// `out[i] = A[i, ..k] · b` for k ≤ 16, with b held in four registers.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemv_small(r: usize, k: usize, a: *const f64, b: *const f64, out: *mut f64) {
        unsafe {
            let masks = row_masks(k);
            let nq = k.div_ceil(4);
            let bv: [__m256d; 4] = std::array::from_fn(|q| {
                if q < nq {
                    _mm256_maskload_pd(b.add(4 * q), masks[q])
                } else {
                    _mm256_setzero_pd()
                }
            });
            // Four rows at a time: their four partial sums reduced together, two hadds and
            // two lane swaps for four results instead of a horizontal sum for each.
            let r4 = r - r % 4;
            let mut i = 0;
            while i < r4 {
                let dot = |row: *const f64| {
                    let mut s = _mm256_mul_pd(_mm256_maskload_pd(row, masks[0]), bv[0]);
                    for q in 1..nq {
                        s = _mm256_fmadd_pd(_mm256_maskload_pd(row.add(4 * q), masks[q]), bv[q], s);
                    }
                    s
                };
                let row = a.add(i * k);
                let (s0, s1, s2, s3) = (dot(row), dot(row.add(k)), dot(row.add(2 * k)), dot(row.add(3 * k)));
                let t01 = _mm256_hadd_pd(s0, s1);
                let t23 = _mm256_hadd_pd(s2, s3);
                let lo = _mm256_permute2f128_pd(t01, t23, 0x20);
                let hi = _mm256_permute2f128_pd(t01, t23, 0x31);
                _mm256_storeu_pd(out.add(i), _mm256_add_pd(lo, hi));
                i += 4;
            }
            for i in r4..r {
                let row = a.add(i * k);
                let mut s = _mm256_mul_pd(_mm256_maskload_pd(row, masks[0]), bv[0]);
                for q in 1..nq {
                    s = _mm256_fmadd_pd(_mm256_maskload_pd(row.add(4 * q), masks[q]), bv[q], s);
                }
                // Horizontal sum of the four lanes.
                let hi = _mm256_extractf128_pd(s, 1);
                let lo = _mm256_castpd256_pd128(s);
                let t = _mm_add_pd(lo, hi);
                let t = _mm_add_sd(t, _mm_unpackhi_pd(t, t));
                *out.add(i) = _mm_cvtsd_f64(t);
            }
        }
    }

    const _: () = assert!(NR == 8 && MR == 4);
}

/// The blocks of [`avx2`] sixteen columns wide, in AVX-512 registers: each element of C sums
/// the same products in the same order (one fused multiply-add per product, from zero), so
/// the results have the same bits at twice the width.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::MR;
    use std::arch::x86_64::*;

    /// Columns per block.
    pub const NR: usize = 16;

    /// Lane masks for the first `nr` of 16 columns (`nr` in 1..=16). A masked-off half reads
    /// and writes nothing; its address may lie past the data, so it is formed with
    /// `wrapping_add`.
    fn masks(nr: usize) -> (__mmask8, __mmask8) {
        let m = ((1u32 << nr) - 1) as u16;
        ((m & 0xff) as u8, (m >> 8) as u8)
    }

    /// As `avx2::nn_block`, `nr` in 1..=16.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn nn_block(
        k: usize,
        a: *const f64,
        lda: usize,
        b: *const f64,
        ldb: usize,
        c: *mut f64,
        ldc: usize,
        nr: usize,
        d: *const f64,
        ldd: usize,
    ) {
        unsafe {
            let (m0, m1) = masks(nr);
            let mut t = [[_mm512_setzero_pd(); 2]; MR];
            for p in 0..k {
                let (b0, b1) = if nr == NR {
                    (_mm512_loadu_pd(b.add(p * ldb)), _mm512_loadu_pd(b.add(p * ldb + 8)))
                } else {
                    (_mm512_maskz_loadu_pd(m0, b.add(p * ldb)), _mm512_maskz_loadu_pd(m1, b.wrapping_add(p * ldb + 8)))
                };
                for (ii, ti) in t.iter_mut().enumerate() {
                    let x = _mm512_set1_pd(*a.add(ii * lda + p));
                    ti[0] = _mm512_fmadd_pd(x, b0, ti[0]);
                    ti[1] = _mm512_fmadd_pd(x, b1, ti[1]);
                }
            }
            for (ii, ti) in t.iter().enumerate() {
                let o = c.add(ii * ldc);
                let (mut v0, mut v1) = (ti[0], ti[1]);
                if !d.is_null() {
                    let dd = d.wrapping_add(ii * ldd);
                    v0 = _mm512_add_pd(v0, _mm512_maskz_loadu_pd(m0, dd));
                    v1 = _mm512_add_pd(v1, _mm512_maskz_loadu_pd(m1, dd.wrapping_add(8)));
                }
                _mm512_mask_storeu_pd(o, m0, v0);
                _mm512_mask_storeu_pd(o.wrapping_add(8), m1, v1);
            }
        }
    }

    /// Mask of the lanes of a row's last eight-element chunk that lie inside its `k` elements.
    fn tail_mask(k: usize) -> __mmask8 {
        match k % 8 {
            0 => 0xff,
            t => ((1u16 << t) - 1) as u8,
        }
    }

    /// `out[i] = A[i, ..k] · b`, eight rows at a time: each row's products summed in a
    /// register of eight partial sums (the row's last chunk masked, so no scalar tail), and
    /// the eight registers reduced together, by three rounds of lane shuffles and additions,
    /// into one register of the eight rows' results. The rows left over are summed one at a
    /// time in the same order.
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn gemv(r: usize, k: usize, a: *const f64, b: *const f64, out: *mut f64) {
        unsafe {
            let nq = k.div_ceil(8);
            let last = tail_mask(k);
            let chunk = |row: *const f64, q: usize| {
                if q + 1 < nq {
                    _mm512_loadu_pd(row.add(8 * q))
                } else {
                    _mm512_maskz_loadu_pd(last, row.wrapping_add(8 * q))
                }
            };
            let r8 = r - r % 8;
            let mut i = 0;
            while i < r8 {
                let mut s = [_mm512_setzero_pd(); 8];
                for q in 0..nq {
                    let bq = chunk(b, q);
                    for (ii, si) in s.iter_mut().enumerate() {
                        *si = _mm512_fmadd_pd(chunk(a.add((i + ii) * k), q), bq, *si);
                    }
                }
                // Pairs of rows: each 128-bit lane holds (row 2j's, row 2j+1's) sum of two
                // partial sums.
                let pair = |x: __m512d, y: __m512d| _mm512_add_pd(_mm512_unpacklo_pd(x, y), _mm512_unpackhi_pd(x, y));
                let (t01, t23, t45, t67) = (pair(s[0], s[1]), pair(s[2], s[3]), pair(s[4], s[5]), pair(s[6], s[7]));
                // Lanes 0 and 2 of x and y against lanes 1 and 3: halves the partial sums per
                // row again, twice.
                let fold = |x: __m512d, y: __m512d| {
                    _mm512_add_pd(_mm512_shuffle_f64x2::<0x88>(x, y), _mm512_shuffle_f64x2::<0xdd>(x, y))
                };
                _mm512_storeu_pd(out.add(i), fold(fold(t01, t23), fold(t45, t67)));
                i += 8;
            }
            for i in r8..r {
                let row = a.add(i * k);
                let mut s = _mm512_setzero_pd();
                for q in 0..nq {
                    s = _mm512_fmadd_pd(chunk(row, q), chunk(b, q), s);
                }
                *out.add(i) = _mm512_reduce_add_pd(s);
            }
        }
    }

    /// `g[..k] += Σ_i w[i] A[i, ..k]` for k ≤ 128 (`NQ` = ⌈k/8⌉ registers of sums): the sums
    /// stay in registers while the rows stream past, in two sets (even and odd rows) when
    /// there are eight registers or fewer, so that consecutive rows' additions do not wait
    /// for each other.
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn gemv_t<const NQ: usize>(r: usize, k: usize, a: *const f64, w: *const f64, g: *mut f64) {
        unsafe {
            let last = tail_mask(k);
            let chunk = |row: *const f64, q: usize| {
                if q + 1 < NQ {
                    _mm512_loadu_pd(row.add(8 * q))
                } else {
                    _mm512_maskz_loadu_pd(last, row.wrapping_add(8 * q))
                }
            };
            let mut acc = [_mm512_setzero_pd(); NQ];
            let mut i = 0;
            if NQ <= 8 {
                let mut odd = [_mm512_setzero_pd(); NQ];
                while i + 2 <= r {
                    let (w0, w1) = (_mm512_set1_pd(*w.add(i)), _mm512_set1_pd(*w.add(i + 1)));
                    let (r0, r1) = (a.add(i * k), a.add((i + 1) * k));
                    for q in 0..NQ {
                        acc[q] = _mm512_fmadd_pd(w0, chunk(r0, q), acc[q]);
                        odd[q] = _mm512_fmadd_pd(w1, chunk(r1, q), odd[q]);
                    }
                    i += 2;
                }
                for q in 0..NQ {
                    acc[q] = _mm512_add_pd(acc[q], odd[q]);
                }
            }
            while i < r {
                let wi = _mm512_set1_pd(*w.add(i));
                let row = a.add(i * k);
                for q in 0..NQ {
                    acc[q] = _mm512_fmadd_pd(wi, chunk(row, q), acc[q]);
                }
                i += 1;
            }
            for (q, aq) in acc.iter().enumerate() {
                let m = if q + 1 < NQ { 0xff } else { last };
                let o = g.wrapping_add(8 * q);
                _mm512_mask_storeu_pd(o, m, _mm512_add_pd(*aq, _mm512_maskz_loadu_pd(m, o)));
            }
        }
    }

    /// Lane mask of the first `n` (1..=8) of a register's eight lanes.
    fn lanes(n: usize) -> __mmask8 {
        if n >= 8 {
            0xff
        } else {
            ((1u16 << n) - 1) as u8
        }
    }

    /// `C[r, j0..j0+w] (+)= A[r,K] B[K, j0..j0+w]` for a layer's first product, whose K (the
    /// inputs) is small: B's `NQ` registers of columns for every p stay in registers
    /// (K·NQ ≤ 24) while the rows stream past, one broadcast of A's element per p and row
    /// instead of B's rows reloaded for every four rows. Each element of C sums the same
    /// products in the same order as [`nn_block`] (one fused multiply-add per product, from
    /// zero), so the same bits. Used for K up to 16 (`SMALL_K`), with fewer registers of
    /// columns per pass for K over 8.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn nn_small_k<const K: usize, const NQ: usize>(
        r: usize,
        a: *const f64,
        b: *const f64,
        ldb: usize,
        c: *mut f64,
        ldc: usize,
        w: usize,
        d: *const f64,
        ldd: usize,
    ) {
        unsafe {
            let mask = |q: usize| lanes(w - 8 * q);
            let bv: [[__m512d; NQ]; K] = std::array::from_fn(|p| {
                std::array::from_fn(|q| _mm512_maskz_loadu_pd(mask(q), b.add(p * ldb + 8 * q)))
            });
            for i in 0..r {
                let av: [__m512d; K] = std::array::from_fn(|p| _mm512_set1_pd(*a.add(i * K + p)));
                for q in 0..NQ {
                    let mut t = _mm512_setzero_pd();
                    for p in 0..K {
                        t = _mm512_fmadd_pd(av[p], bv[p][q], t);
                    }
                    let o = c.add(i * ldc + 8 * q);
                    if !d.is_null() {
                        t = _mm512_add_pd(t, _mm512_maskz_loadu_pd(mask(q), d.wrapping_add(i * ldd + 8 * q)));
                    }
                    _mm512_mask_storeu_pd(o, mask(q), t);
                }
            }
        }
    }

    /// `C[K, j0..j0+w] += A[rows,K]ᵀ X[rows, j0..j0+w]` for a small K: the K·NQ sums in
    /// registers while the rows pass, added to C at the end, as [`tn_block`] does for each
    /// of its blocks over the same rows (so the same bits).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn tn_small_k<const K: usize, const NQ: usize>(
        rows: usize,
        a: *const f64,
        x: *const f64,
        ldx: usize,
        c: *mut f64,
        ldc: usize,
        w: usize,
    ) {
        unsafe {
            let mask = |q: usize| lanes(w - 8 * q);
            let mut t = [[_mm512_setzero_pd(); NQ]; K];
            for i in 0..rows {
                let xv: [__m512d; NQ] = std::array::from_fn(|q| _mm512_maskz_loadu_pd(mask(q), x.add(i * ldx + 8 * q)));
                for (p, tp) in t.iter_mut().enumerate() {
                    let av = _mm512_set1_pd(*a.add(i * K + p));
                    for q in 0..NQ {
                        tp[q] = _mm512_fmadd_pd(av, xv[q], tp[q]);
                    }
                }
            }
            for (p, tp) in t.iter().enumerate() {
                for (q, tq) in tp.iter().enumerate() {
                    let o = c.add(p * ldc + 8 * q);
                    _mm512_mask_storeu_pd(o, mask(q), _mm512_add_pd(*tq, _mm512_maskz_loadu_pd(mask(q), o)));
                }
            }
        }
    }

    /// As `avx2::tn_block`, `mr` in 1..=4, `nr` in 1..=16.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn tn_block(
        rows: usize,
        a: *const f64,
        lda: usize,
        x: *const f64,
        ldx: usize,
        c: *mut f64,
        ldc: usize,
        mr: usize,
        nr: usize,
    ) {
        unsafe {
            let (m0, m1) = masks(nr);
            let mut t = [[_mm512_setzero_pd(); 2]; MR];
            if mr == MR && nr == NR {
                for i in 0..rows {
                    let x0 = _mm512_loadu_pd(x.add(i * ldx));
                    let x1 = _mm512_loadu_pd(x.add(i * ldx + 8));
                    for (pp, tp) in t.iter_mut().enumerate() {
                        let av = _mm512_set1_pd(*a.add(i * lda + pp));
                        tp[0] = _mm512_fmadd_pd(av, x0, tp[0]);
                        tp[1] = _mm512_fmadd_pd(av, x1, tp[1]);
                    }
                }
            } else {
                for i in 0..rows {
                    let x0 = _mm512_maskz_loadu_pd(m0, x.add(i * ldx));
                    let x1 = _mm512_maskz_loadu_pd(m1, x.wrapping_add(i * ldx + 8));
                    for (pp, tp) in t.iter_mut().enumerate().take(mr) {
                        let av = _mm512_set1_pd(*a.add(i * lda + pp));
                        tp[0] = _mm512_fmadd_pd(av, x0, tp[0]);
                        tp[1] = _mm512_fmadd_pd(av, x1, tp[1]);
                    }
                }
            }
            for (pp, tp) in t.iter().enumerate().take(mr) {
                let o = c.add(pp * ldc);
                _mm512_mask_storeu_pd(o, m0, _mm512_add_pd(tp[0], _mm512_maskz_loadu_pd(m0, o)));
                _mm512_mask_storeu_pd(
                    o.wrapping_add(8),
                    m1,
                    _mm512_add_pd(tp[1], _mm512_maskz_loadu_pd(m1, o.wrapping_add(8))),
                );
            }
        }
    }
}

/// `g += Aᵀ w` (A: r × k) with the k sums in registers: AVX2 and FMA for k ≤ 16, AVX-512 for
/// 17 ≤ k ≤ 128; false otherwise (the caller then uses its general loop).
pub fn gemv_t_small(r: usize, k: usize, a: &[f64], w: &[f64], g: &mut [f64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if (17..=128).contains(&k) && has_avx512() && a.len() >= r * k && w.len() >= r && g.len() >= k {
        let (a, w, g) = (a.as_ptr(), w.as_ptr(), g.as_mut_ptr());
        // SAFETY: AVX-512F and FMA are present; rows 0..r of A (k each), w[..r] and g[..k]
        // are inside the slices (checked above); masked lanes are not touched.
        unsafe {
            match k.div_ceil(8) {
                3 => avx512::gemv_t::<3>(r, k, a, w, g),
                4 => avx512::gemv_t::<4>(r, k, a, w, g),
                5 => avx512::gemv_t::<5>(r, k, a, w, g),
                6 => avx512::gemv_t::<6>(r, k, a, w, g),
                7 => avx512::gemv_t::<7>(r, k, a, w, g),
                8 => avx512::gemv_t::<8>(r, k, a, w, g),
                9 => avx512::gemv_t::<9>(r, k, a, w, g),
                10 => avx512::gemv_t::<10>(r, k, a, w, g),
                11 => avx512::gemv_t::<11>(r, k, a, w, g),
                12 => avx512::gemv_t::<12>(r, k, a, w, g),
                13 => avx512::gemv_t::<13>(r, k, a, w, g),
                14 => avx512::gemv_t::<14>(r, k, a, w, g),
                15 => avx512::gemv_t::<15>(r, k, a, w, g),
                _ => avx512::gemv_t::<16>(r, k, a, w, g),
            }
        }
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if (1..=16).contains(&k) && has_avx2_fma() && a.len() >= r * k && w.len() >= r && g.len() >= k {
        // SAFETY: AVX2 and FMA are present; rows 0..r of A (k each), w[..r] and g[..k] are
        // inside the slices (checked above); masked lanes are not touched.
        unsafe { avx2::gemv_t_small(r, k, a.as_ptr(), w.as_ptr(), g.as_mut_ptr()) };
        return true;
    }
    false
}

/// `out = A b` (A: r × k), with b in registers for k ≤ 16 (AVX2 and FMA) and eight rows
/// reduced together for k > 16 (AVX-512); false otherwise.
pub fn gemv_small(r: usize, k: usize, a: &[f64], b: &[f64], out: &mut [f64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if k > 16 && has_avx512() && a.len() >= r * k && b.len() >= k && out.len() >= r {
        // SAFETY: AVX-512F and FMA are present; the rows of A, b and out are inside the
        // slices (checked above); masked lanes are not touched.
        unsafe { avx512::gemv(r, k, a.as_ptr(), b.as_ptr(), out.as_mut_ptr()) };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if (1..=16).contains(&k) && has_avx2_fma() && a.len() >= r * k && b.len() >= k && out.len() >= r {
        // SAFETY: as in `gemv_t_small`.
        unsafe { avx2::gemv_small(r, k, a.as_ptr(), b.as_ptr(), out.as_mut_ptr()) };
        return true;
    }
    false
}

/// Inputs up to which a layer's products take the kernels that keep one operand's rows in
/// registers (`avx512::nn_small_k`, `avx512::tn_small_k`).
#[cfg(target_arch = "x86_64")]
const SMALL_K: usize = 16;

/// Passes over the columns for the small-`k` kernels: as many registers of eight columns as
/// keep `k · NQ` sums or weights within 24 registers, the last pass as narrow as it can be.
/// Calls `f(k, NQ, first column, columns)`.
#[cfg(target_arch = "x86_64")]
fn small_k_passes(k: usize, c: usize, f: &mut dyn FnMut(usize, usize, usize, usize)) {
    let most = (24 / k).clamp(1, 3);
    let mut j0 = 0;
    while j0 < c {
        let w = (8 * most).min(c - j0);
        f(k, w.div_ceil(8), j0, w);
        j0 += w;
    }
}

/// `avx512::nn_small_k` for a runtime `k` (1..=16) and `nq` (1..=3), at column `j0`.
///
/// # Safety
/// The CPU has AVX-512F and FMA, `k · nq ≤ 24`; A is `r × k`, B `k × c`, C `r × c`, `j0 + w ≤ c`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn nn_small_k_at(
    k: usize,
    nq: usize,
    r: usize,
    a: &[f64],
    b: &[f64],
    c: usize,
    out: &mut [f64],
    j0: usize,
    w: usize,
    plus: Plus,
) {
    let (ap, bp, op) = (a.as_ptr(), b.as_ptr().add(j0), out.as_mut_ptr().add(j0));
    let (dp, ldd) = plus.at(out.as_ptr(), c, 0, j0);
    macro_rules! go {
        ($($k:literal),*) => {
            match (k, nq) {
                $(
                    ($k, 1) => avx512::nn_small_k::<$k, 1>(r, ap, bp, c, op, c, w, dp, ldd),
                    ($k, 2) => avx512::nn_small_k::<$k, 2>(r, ap, bp, c, op, c, w, dp, ldd),
                    ($k, _) => avx512::nn_small_k::<$k, 3>(r, ap, bp, c, op, c, w, dp, ldd),
                )*
                _ => unreachable!("k is 1 to 16"),
            }
        };
    }
    // SAFETY: the caller's contract.
    unsafe { go!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16) }
}

/// `avx512::tn_small_k` for a runtime `k` (1..=16) and `nq` (1..=3), at column `j0`.
///
/// # Safety
/// The CPU has AVX-512F and FMA, `k · nq ≤ 24`; A holds `rows × k`, X `rows × c`, C `k × c`, `j0 + w ≤ c`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn tn_small_k_at(
    k: usize,
    nq: usize,
    rows: usize,
    a: &[f64],
    x: &[f64],
    c: usize,
    out: &mut [f64],
    j0: usize,
    w: usize,
) {
    let (ap, xp, op) = (a.as_ptr(), x.as_ptr().add(j0), out.as_mut_ptr().add(j0));
    macro_rules! go {
        ($($k:literal),*) => {
            match (k, nq) {
                $(
                    ($k, 1) => avx512::tn_small_k::<$k, 1>(rows, ap, xp, c, op, c, w),
                    ($k, 2) => avx512::tn_small_k::<$k, 2>(rows, ap, xp, c, op, c, w),
                    ($k, _) => avx512::tn_small_k::<$k, 3>(rows, ap, xp, c, op, c, w),
                )*
                _ => unreachable!("k is 1 to 16"),
            }
        };
    }
    // SAFETY: the caller's contract.
    unsafe { go!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16) }
}

/// The blocks of C, 4 rows by `NR` (AVX2) or 16 (AVX-512, `wide`) columns; the last rows
/// (fewer than 4) through the portable loop, which sums in the same order.
///
/// # Safety
/// The CPU has AVX2 and FMA, and AVX-512F when `wide`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn nn_blocks(r: usize, k: usize, c: usize, a: &[f64], b: &[f64], out: &mut [f64], plus: Plus, wide: bool) {
    assert!(a.len() >= r * k && b.len() >= k * c && out.len() >= r * c);
    assert!(!matches!(plus, Plus::Row(row) if row.len() < c));
    if wide && (1..=SMALL_K).contains(&k) {
        // SAFETY: the sizes asserted above; the CPU has AVX-512F (the caller's contract).
        unsafe { small_k_passes(k, c, &mut |kk, nq, j0, w| nn_small_k_at(kk, nq, r, a, b, c, out, j0, w, plus)) };
        return;
    }
    let nrw = if wide { avx512::NR } else { NR };
    let r4 = r - r % MR;
    let mut i0 = 0;
    while i0 < r4 {
        let mut j0 = 0;
        while j0 < c {
            let nr = nrw.min(c - j0);
            let (ap, bp, op) = (a.as_ptr().add(i0 * k), b.as_ptr().add(j0), out.as_mut_ptr().add(i0 * c + j0));
            let (dp, ldd) = plus.at(out.as_ptr(), c, i0, j0);
            // SAFETY: rows i0..i0+4 of A (k each), columns j0..j0+nr of B and C are inside
            // the slices (asserted sizes, i0 + 4 <= r, j0 + nr <= c; masked lanes are not
            // touched); the CPU has the features (the caller's contract).
            unsafe {
                if wide {
                    avx512::nn_block(k, ap, k, bp, c, op, c, nr, dp, ldd)
                } else {
                    avx2::nn_block(k, ap, k, bp, c, op, c, nr, dp, ldd)
                }
            };
            j0 += nrw;
        }
        i0 += MR;
    }
    if r4 < r {
        // SAFETY: the CPU has FMA.
        unsafe { nn_fma(r - r4, k, c, &a[r4 * k..], b, &mut out[r4 * c..], plus) };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn nn_fma(r: usize, k: usize, c: usize, a: &[f64], b: &[f64], out: &mut [f64], plus: Plus) {
    nn_impl::<true>(r, k, c, a, b, out, plus)
}

/// The blocks of C = Aᵀ X, as [`nn_blocks`] lays them out.
///
/// # Safety
/// As [`nn_blocks`].
#[cfg(target_arch = "x86_64")]
unsafe fn tn_blocks(r: usize, k: usize, c: usize, a: &[f64], x: &[f64], out: &mut [f64], wide: bool) {
    assert!(a.len() >= r * k && x.len() >= r * c && out.len() >= k * c);
    let nrw = if wide { avx512::NR } else { NR };
    let mut s0 = 0;
    while s0 < r {
        let rows = chunk(k, c).min(r - s0);
        if wide && (1..=SMALL_K).contains(&k) {
            // SAFETY: rows s0..s0+rows of A and X and all of C are inside the slices
            // (asserted sizes); the CPU has AVX-512F (the caller's contract).
            unsafe {
                small_k_passes(k, c, &mut |kk, nq, j0, w| {
                    tn_small_k_at(kk, nq, rows, &a[s0 * k..], &x[s0 * c..], c, out, j0, w)
                })
            };
            s0 += rows;
            continue;
        }
        for p0 in (0..k).step_by(MR) {
            for j0 in (0..c).step_by(nrw) {
                let (ap, xp, op) =
                    (a.as_ptr().add(s0 * k + p0), x.as_ptr().add(s0 * c + j0), out.as_mut_ptr().add(p0 * c + j0));
                let (mr, nr) = (MR.min(k - p0), nrw.min(c - j0));
                // SAFETY: rows s0..s0+rows of A and X, columns p0..p0+mr of A and j0..j0+nr
                // of X, and that block of C are inside the slices (asserted sizes; masked
                // lanes are not touched); the CPU has the features (the caller's contract).
                unsafe {
                    if wide {
                        avx512::tn_block(rows, ap, k, xp, c, op, c, mr, nr)
                    } else {
                        avx2::tn_block(rows, ap, k, xp, c, op, c, mr, nr)
                    }
                };
            }
        }
        s0 += rows;
    }
}

/// Whether products with `c` columns take the sixteen-column blocks: where the CPU has
/// AVX-512 and the columns fill more than one eight-column block (up to eight, the two
/// widths issue the same instructions, the narrower ones on half-empty registers less).
#[cfg(target_arch = "x86_64")]
fn wide(c: usize) -> bool {
    c > NR && has_avx512()
}

/// `C[r,c] = A[r,k] B[k,c] (+ plus)`.
pub fn nn(r: usize, k: usize, c: usize, a: &[f64], b: &[f64], out: &mut [f64], plus: Plus) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, and AVX-512F when `wide` (checked).
        return unsafe { nn_blocks(r, k, c, a, b, out, plus, wide(c)) };
    }
    nn_impl::<false>(r, k, c, a, b, out, plus)
}

/// `C[k,c] += A[r,k]ᵀ X[r,c]`.
pub fn tn(r: usize, k: usize, c: usize, a: &[f64], x: &[f64], out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: as in `nn`.
        return unsafe { tn_blocks(r, k, c, a, x, out, wide(c)) };
    }
    tn_impl::<false>(r, k, c, a, x, out)
}

thread_local! {
    /// Bᵀ for [`nt`]: grown once to the largest B seen on this thread, then reused.
    static BT: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// `C[r,k] += X[r,c] B[k,c]ᵀ`.
pub fn nt(r: usize, k: usize, c: usize, x: &[f64], b: &[f64], out: &mut [f64]) {
    let mut run = |bt: &mut [f64]| {
        for p in 0..k {
            for j in 0..c {
                bt[j * k + p] = b[p * c + j];
            }
        }
        nn(r, c, k, x, bt, out, Plus::Out);
    };
    BT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < k * c {
                v.resize(k * c, 0.0);
            }
            run(&mut v[..k * c])
        }
        Err(_) => run(&mut vec![0.0; k * c]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(r: usize, k: usize, c: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut o = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                o[i * c + j] = (0..k).map(|p| a[i * k + p] * b[p * c + j]).sum();
            }
        }
        o
    }

    fn fill(n: usize, seed: u64) -> Vec<f64> {
        // A small LCG: deterministic values in (-1, 1).
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    fn close(x: &[f64], y: &[f64]) {
        for (a, b) in x.iter().zip(y) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs())), "{a} vs {b}");
        }
    }

    #[test]
    fn small_matrix_vector_products_equal_the_definition() {
        for &(r, k) in &[
            (1, 1),
            (5, 3),
            (7, 4),
            (9, 10),
            (13, 16),
            (3, 17),
            (8, 24),
            (17, 50),
            (277, 50),
            (9, 128),
            (5, 129),
            (16, 200),
        ] {
            let (a, b, w) = (fill(r * k, 5), fill(k, 6), fill(r, 7));
            let mut out = vec![0.0; r];
            if gemv_small(r, k, &a, &b, &mut out) {
                close(&out, &naive(r, k, 1, &a, &b));
            }
            let mut g = vec![0.25; k];
            if gemv_t_small(r, k, &a, &w, &mut g) {
                let want: Vec<f64> = (0..k).map(|p| 0.25 + (0..r).map(|i| w[i] * a[i * k + p]).sum::<f64>()).collect();
                close(&g, &want);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sixteen_column_blocks_give_the_eight_column_blocks_bits() {
        if !(has_avx2_fma() && has_avx512()) {
            return;
        }
        for &(r, k, c) in &[
            (1, 1, 1),
            (4, 3, 16),
            (7, 5, 17),
            (9, 9, 50),
            (130, 7, 33),
            (257, 13, 9),
            (64, 20, 48),
            (33, 16, 24),
            (5, 12, 70),
            (277, 6, 50),
        ] {
            let (a, b, x) = (fill(r * k, 1), fill(k * c, 2), fill(r * c, 3));
            let row = fill(c, 6);
            for plus in [Plus::Nothing, Plus::Out, Plus::Row(&row)] {
                let (mut o8, mut o16) = (fill(r * c, 4), fill(r * c, 4));
                // SAFETY: the CPU has AVX2, FMA and AVX-512F (checked above).
                unsafe {
                    nn_blocks(r, k, c, &a, &b, &mut o8, plus, false);
                    nn_blocks(r, k, c, &a, &b, &mut o16, plus, true);
                }
                assert!(o8.iter().zip(&o16).all(|(u, v)| u.to_bits() == v.to_bits()), "nn {r}x{k}x{c}");
            }
            let (mut g8, mut g16) = (fill(k * c, 5), fill(k * c, 5));
            // SAFETY: as above.
            unsafe {
                tn_blocks(r, k, c, &a, &x, &mut g8, false);
                tn_blocks(r, k, c, &a, &x, &mut g16, true);
            }
            assert!(g8.iter().zip(&g16).all(|(u, v)| u.to_bits() == v.to_bits()), "tn {r}x{k}x{c}");
        }
    }

    #[test]
    fn the_three_products_equal_the_definition_at_edge_sizes() {
        for &(r, k, c) in &[
            (1, 1, 1),
            (3, 5, 7),
            (4, 8, 8),
            (9, 9, 50),
            (130, 7, 17),
            (257, 13, 9),
            (5, 0, 3),
            (12, 6, 16),
            (8, 5, 33),
        ] {
            let (a, b, x) = (fill(r * k, 1), fill(k * c, 2), fill(r * c, 3));
            let mut o = fill(r * c, 4);
            nn(r, k, c, &a, &b, &mut o, Plus::Nothing);
            close(&o, &naive(r, k, c, &a, &b));
            // Accumulating: (A B) + (A B).
            nn(r, k, c, &a, &b, &mut o, Plus::Out);
            close(&o, &naive(r, k, c, &a, &b).iter().map(|v| 2.0 * v).collect::<Vec<_>>());
            // A row added to each row, with the bits of adding it afterwards.
            let row = fill(c, 7);
            let mut o = fill(r * c, 4);
            nn(r, k, c, &a, &b, &mut o, Plus::Row(&row));
            let mut after = fill(r * c, 4);
            nn(r, k, c, &a, &b, &mut after, Plus::Nothing);
            for (i, v) in after.iter_mut().enumerate() {
                *v += row[i % c];
            }
            assert!(o.iter().zip(&after).all(|(u, v)| u.to_bits() == v.to_bits()), "nn + row {r}x{k}x{c}");
            // nt: X Bᵀ.
            let mut bt = vec![0.0; k * c];
            for p in 0..k {
                for j in 0..c {
                    bt[j * k + p] = b[p * c + j];
                }
            }
            let mut o = vec![0.5; r * k];
            nt(r, k, c, &x, &b, &mut o);
            close(&o, &naive(r, c, k, &x, &bt).iter().map(|v| v + 0.5).collect::<Vec<_>>());
            // tn: Aᵀ X.
            let mut at = vec![0.0; r * k];
            for i in 0..r {
                for p in 0..k {
                    at[p * r + i] = a[i * k + p];
                }
            }
            let mut o = vec![-1.0; k * c];
            tn(r, k, c, &a, &x, &mut o);
            close(&o, &naive(k, r, c, &at, &x).iter().map(|v| v - 1.0).collect::<Vec<_>>());
        }
    }
}
