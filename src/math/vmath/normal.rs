//! Standard normal draws in bulk, for the noise a variational step consumes (a draw per
//! weight, or per row and unit of a locally reparameterised layer: thousands per step).
//!
//! The Box–Muller transform (Box and Muller 1958): from u₁ in (0, 1] and u₂ in [0, 1),
//! r = √(−2 ln u₁) and θ = 2πu₂ give two independent draws r cos θ and r sin θ. The uniforms
//! come from eight xoshiro256++ generators (Blackman and Vigna 2021) advanced side by side,
//! seeded from the caller's generator on each call, with 52 random bits each; ln is
//! [`super::ln`]'s body, and cos and sin of 2πu₂ are reduced to a quarter turn, |x| ≤ π/4,
//! where their Taylor polynomials (to x¹⁷ and x¹⁸) are exact to below 0.1 ulp. The largest
//! draw in magnitude is √(2 · 52 ln 2) ≈ 8.5.
//!
//! Written over a [`Lane`] like the rest of `vmath`, so the eight-, four- and one-lane forms
//! give the same bits for the same seed.

#[cfg(target_arch = "x86_64")]
use super::lane::{V4, V8};
use super::{estrin, log_body, Lane};
#[cfg(target_arch = "x86_64")]
use super::{has_avx2_fma, has_avx512};
use rand::Rng;

/// The bits of 1.0: a mantissa of 52 random bits under them is a number in [1, 2).
const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;

/// (−1)ᵏ⁺¹ / (2k + 3)! for k = 0 to 7: sin x = x + x³ S(x²) to the x¹⁷ term.
const SIN_S: [f64; 8] = [
    -1.0 / 6.0,
    1.0 / 120.0,
    -1.0 / 5040.0,
    1.0 / 362880.0,
    -1.0 / 39916800.0,
    1.0 / 6227020800.0,
    -1.0 / 1307674368000.0,
    1.0 / 355687428096000.0,
];

/// (−1)ᵏ / (2k + 4)! for k = 0 to 7: cos x = 1 − x²/2 + x⁴ C(x²) to the x¹⁸ term.
const COS_C: [f64; 8] = [
    1.0 / 24.0,
    -1.0 / 720.0,
    1.0 / 40320.0,
    -1.0 / 3628800.0,
    1.0 / 479001600.0,
    -1.0 / 87178291200.0,
    1.0 / 20922789888000.0,
    -1.0 / 6402373705728000.0,
];

/// Eight xoshiro256++ generators, lane by lane (plain integer arithmetic on arrays, which the
/// compiler vectorises).
struct Streams {
    s: [[u64; 8]; 4],
}

impl Streams {
    fn seeded<R: Rng + ?Sized>(rng: &mut R) -> Streams {
        let mut s = [[0u64; 8]; 4];
        for w in s.iter_mut() {
            w.iter_mut().for_each(|v| *v = rng.next_u64());
        }
        for l in 0..8 {
            // The one state the generator must not start from.
            if (0..4).all(|w| s[w][l] == 0) {
                s[0][l] = 0x9e37_79b9_7f4a_7c15;
            }
        }
        Streams { s }
    }

    #[inline(always)]
    fn next(&mut self) -> [u64; 8] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0u64; 8];
        for l in 0..8 {
            out[l] = s0[l].wrapping_add(s3[l]).rotate_left(23).wrapping_add(s0[l]);
            let t = s1[l] << 17;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = s3[l].rotate_left(45);
        }
        out
    }
}

/// (cos 2πt, sin 2πt) for t in [0, 1): t = q/4 + f with q = round(4t) and |f| ≤ 1/8 (f is
/// exact), the polynomials at x = 2πf, then a rotation by q quarter turns.
#[inline(always)]
fn cos_sin_turns<L: Lane>(t: L) -> (L, L) {
    let q = t.mul(L::splat(4.0)).add(L::splat(0.5)).floor();
    let f = q.fnma(L::splat(0.25), t);
    let x = f.mul(L::splat(std::f64::consts::TAU));
    let x2 = x.mul(x);
    let s = x.mul(x2).fma(estrin(x2, &SIN_S), x);
    let c = x2.mul(x2).fma(estrin(x2, &COS_C), x2.fnma(L::splat(0.5), L::splat(1.0)));
    let (m1, m2, m3) = (q.eq(1.0), q.eq(2.0), q.eq(3.0));
    let cos = L::select(m1, s.neg(), L::select(m2, c.neg(), L::select(m3, s, c)));
    let sin = L::select(m1, c, L::select(m2, s.neg(), L::select(m3, c.neg(), s)));
    (cos, sin)
}

/// Sixteen draws into `out[..16]`: the cosines' eight, then the sines'.
#[inline(always)]
fn block<L: Lane>(st: &mut Streams, out: &mut [f64]) {
    let (a, b) = (st.next(), st.next());
    let u1: [f64; 8] = std::array::from_fn(|l| 2.0 - f64::from_bits((a[l] >> 12) | ONE_BITS));
    let u2: [f64; 8] = std::array::from_fn(|l| f64::from_bits((b[l] >> 12) | ONE_BITS) - 1.0);
    let mut g = 0;
    while g < 8 {
        let r = log_body(L::load(&u1[g..])).mul(L::splat(-2.0)).sqrt();
        let (c, s) = cos_sin_turns(L::load(&u2[g..]));
        r.mul(c).store(&mut out[g..]);
        r.mul(s).store(&mut out[8 + g..]);
        g += L::WIDTH;
    }
}

#[inline(always)]
fn fill<L: Lane>(st: &mut Streams, out: &mut [f64]) {
    let mut chunks = out.chunks_exact_mut(16);
    for c in &mut chunks {
        block::<L>(st, c);
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut buf = [0.0; 16];
        block::<L>(st, &mut buf);
        let n = rest.len();
        rest.copy_from_slice(&buf[..n]);
    }
}

/// Fills `out` with independent standard normal draws, seeded from `rng` (which advances by
/// 32 words). A fill of n values is the first n of a longer fill from the same state.
pub fn fill_standard_normal<R: Rng + ?Sized>(rng: &mut R, out: &mut [f64]) {
    if out.is_empty() {
        return;
    }
    let mut st = Streams::seeded(rng);
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,fma")]
        fn eight(st: &mut Streams, out: &mut [f64]) {
            fill::<V8>(st, out)
        }
        #[target_feature(enable = "avx2,fma")]
        fn four(st: &mut Streams, out: &mut [f64]) {
            fill::<V4>(st, out)
        }
        if has_avx512() {
            // SAFETY: the CPU has AVX-512F and FMA.
            return unsafe { eight(&mut st, out) };
        }
        if has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { four(&mut st, out) };
        }
    }
    fill::<f64>(&mut st, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2π − TAU.
    const TAU_LO: f64 = 2.4492935982947064e-16;

    /// The polynomials and the quarter-turn rotation against the C library's cos and sin of
    /// 2πt, over all of [0, 1) and each quadrant's edges: within 3·10⁻¹⁶.
    #[test]
    fn cos_and_sin_of_turns() {
        let edges = (0..=8).flat_map(|k| {
            let t = k as f64 / 8.0;
            [t, f64::from_bits(t.to_bits().wrapping_sub(1)), f64::from_bits(t.to_bits() + 1)]
        });
        let grid = (0..100_000).map(|i| i as f64 / 100_000.0);
        for t in grid.chain(edges).filter(|t| (0.0..1.0).contains(t)) {
            let (c, s) = cos_sin_turns(t);
            // 2πt as a + b, with 2π's own rounding error in b, then to first order in b.
            let a = std::f64::consts::TAU * t;
            let b = std::f64::consts::TAU.mul_add(t, -a) + TAU_LO * t;
            let (want_c, want_s) = (a.cos() - a.sin() * b, a.sin() + a.cos() * b);
            assert!((c - want_c).abs() < 3e-16 && (s - want_s).abs() < 3e-16, "t = {t}: {c} {s}");
        }
    }
}
