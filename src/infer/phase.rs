//! The sampler's loops over the parameters, each one pass over its vectors and compiled
//! for the widest vectors the CPU has: on a network with a few hundred parameters they are
//! what a leapfrog step costs beside its gradient. Sums run in eight partial sums, like
//! [`crate::math::dot`].

use crate::math::sum8;
use crate::math::vmath::widest;

/// A half step of momentum then a full step of position under a diagonal metric `m`:
/// p += h·g, q += ε·m·p.
pub fn kick_drift(p: &mut [f64], q: &mut [f64], g: &[f64], m: &[f64], h: f64, eps: f64) {
    assert!(p.len() == q.len() && g.len() == q.len() && m.len() == q.len());
    #[inline(always)]
    fn body(p: &mut [f64], q: &mut [f64], g: &[f64], m: &[f64], h: f64, eps: f64) {
        for (((p, q), g), m) in p.iter_mut().zip(q.iter_mut()).zip(g).zip(m) {
            *p += h * *g;
            *q += eps * (*m * *p);
        }
    }
    widest!(body(p, q, g, m, h, eps))
}

/// p += h·g.
pub fn kick(p: &mut [f64], g: &[f64], h: f64) {
    assert!(p.len() == g.len());
    #[inline(always)]
    fn body(p: &mut [f64], g: &[f64], h: f64) {
        for (p, g) in p.iter_mut().zip(g) {
            *p += h * *g;
        }
    }
    widest!(body(p, g, h))
}

/// What a new leaf of the trajectory leaves in its subtree's buffers, under a diagonal
/// metric `m`: both ends' momentum `p` and velocity m·p, p added into ρ; returns the
/// kinetic energy ½ p·m·p.
pub fn leaf(p: &[f64], m: &[f64], sharp: [&mut [f64]; 2], ends: [&mut [f64]; 2], rho: &mut [f64]) -> f64 {
    #[inline(always)]
    fn body(p: &[f64], m: &[f64], sharp: [&mut [f64]; 2], ends: [&mut [f64]; 2], rho: &mut [f64]) -> f64 {
        let ([s0, s1], [e0, e1]) = (sharp, ends);
        // Eight at a time as arrays, which the compiler keeps in vector registers.
        let ((p8, p_t), (m8, m_t)) = (p.as_chunks::<8>(), m.as_chunks::<8>());
        let ((s08, s0_t), (s18, s1_t)) = (s0.as_chunks_mut::<8>(), s1.as_chunks_mut::<8>());
        let ((e08, e0_t), (e18, e1_t)) = (e0.as_chunks_mut::<8>(), e1.as_chunks_mut::<8>());
        let (rho8, rho_t) = rho.as_chunks_mut::<8>();
        macro_rules! at {
            ($sum:expr, $p:expr, $m:expr, $s0:expr, $s1:expr, $e0:expr, $e1:expr, $rho:expr) => {{
                let v = $m * $p;
                $s0 = v;
                $s1 = v;
                $e0 = $p;
                $e1 = $p;
                $rho += $p;
                $sum += $p * v;
            }};
        }
        let mut s = [0.0; 8];
        for (c, r) in rho8.iter_mut().enumerate() {
            let (p, m, s0, s1, e0, e1) = (&p8[c], &m8[c], &mut s08[c], &mut s18[c], &mut e08[c], &mut e18[c]);
            for l in 0..8 {
                at!(s[l], p[l], m[l], s0[l], s1[l], e0[l], e1[l], r[l]);
            }
        }
        for (j, r) in rho_t.iter_mut().enumerate() {
            at!(s[0], p_t[j], m_t[j], s0_t[j], s1_t[j], e0_t[j], e1_t[j], *r);
        }
        0.5 * sum8(s)
    }
    widest!(body(p, m, sharp, ends, rho))
}

/// The vectors of two merged halves of a subtree ("init", then "final", in the direction
/// of travel) and of its ends ("beg", "end").
pub struct Halves<'a> {
    pub sharp_beg: &'a [f64],
    pub sharp_end: &'a [f64],
    pub rho_init: &'a [f64],
    pub rho_final: &'a [f64],
    pub p_init_end: &'a [f64],
    pub sharp_init_end: &'a [f64],
    pub p_final_beg: &'a [f64],
    pub sharp_final_beg: &'a [f64],
}

/// Merges two halves: adds ρ_init + ρ_final into `rho` and returns whether the generalised
/// no-U-turn criterion holds across the merged tree and across the join of its halves
/// (each end's velocity has a positive product with the ρ between them).
pub fn merge(h: &Halves<'_>, rho: &mut [f64]) -> bool {
    #[inline(always)]
    fn body(h: &Halves<'_>, rho: &mut [f64]) -> bool {
        // Eight at a time as arrays, which the compiler keeps in vector registers.
        let (rho8, rho_tail) = rho.as_chunks_mut::<8>();
        let c = <[f64]>::as_chunks::<8>;
        let ((beg, beg_t), (end, end_t)) = (c(h.sharp_beg), c(h.sharp_end));
        let ((ri, ri_t), (rf, rf_t)) = (c(h.rho_init), c(h.rho_final));
        let ((pie, pie_t), (sie, sie_t)) = (c(h.p_init_end), c(h.sharp_init_end));
        let ((pfb, pfb_t), (sfb, sfb_t)) = (c(h.p_final_beg), c(h.sharp_final_beg));
        // Whole arrays at a time, so that each line is one vector operation.
        let add = |a: &[f64; 8], b: &[f64; 8]| -> [f64; 8] { std::array::from_fn(|l| a[l] + b[l]) };
        let fma = |s: &mut [f64; 8], a: &[f64; 8], b: &[f64; 8]| (0..8).for_each(|l| s[l] += a[l] * b[l]);
        let mut s = [[0.0; 8]; 6];
        for (k, r) in rho8.iter_mut().enumerate() {
            let sub = add(&ri[k], &rf[k]);
            let ext_init = add(&ri[k], &pfb[k]);
            let ext_final = add(&rf[k], &pie[k]);
            *r = add(r, &sub);
            let [s0, s1, s2, s3, s4, s5] = &mut s;
            fma(s0, &beg[k], &sub);
            fma(s1, &end[k], &sub);
            fma(s2, &beg[k], &ext_init);
            fma(s3, &sfb[k], &ext_init);
            fma(s4, &sie[k], &ext_final);
            fma(s5, &end[k], &ext_final);
        }
        for (j, r) in rho_tail.iter_mut().enumerate() {
            let sub = ri_t[j] + rf_t[j];
            let ext_init = ri_t[j] + pfb_t[j];
            let ext_final = rf_t[j] + pie_t[j];
            *r += sub;
            s[0][0] += beg_t[j] * sub;
            s[1][0] += end_t[j] * sub;
            s[2][0] += beg_t[j] * ext_init;
            s[3][0] += sfb_t[j] * ext_init;
            s[4][0] += sie_t[j] * ext_final;
            s[5][0] += end_t[j] * ext_final;
        }
        s.into_iter().all(|s| sum8(s) > 0.0)
    }
    widest!(body(h, rho))
}
