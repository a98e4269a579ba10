//! `normal` over whole arrays: the family every network's prior and most likelihoods use,
//! summed in interleaved partial sums that the compiler turns into vector instructions. The
//! interpreter and compiled code both call these, so they give the same bits.
//!
//! Each argument has n elements or one (broadcast). Element i goes to partial sum i mod
//! [`LANES`] for the elements up to the last multiple of [`LANES`]; the partial sums are then
//! added in order, and the last n mod [`LANES`] elements after them, one at a time (so fewer
//! than [`LANES`] elements are summed in order).

use super::{positive, HALF_LN_2PI};
use crate::math::vmath;

/// Interleaved partial sums.
pub const LANES: usize = 8;

/// An argument's elements: one number for all, or one each.
trait Elems: Copy {
    fn at(self, i: usize) -> f64;
    /// The number, when it is one for all.
    fn one(self) -> Option<f64>;
}

impl Elems for f64 {
    #[inline(always)]
    fn at(self, _: usize) -> f64 {
        self
    }
    fn one(self) -> Option<f64> {
        Some(self)
    }
}

impl Elems for &[f64] {
    #[inline(always)]
    fn at(self, i: usize) -> f64 {
        debug_assert!(i < self.len());
        // SAFETY: every slice here is cut to the n elements of its density (`with_elems`)
        // and read only at indices below n; checks would keep the loops from vectorising.
        unsafe { *self.get_unchecked(i) }
    }
    fn one(self) -> Option<f64> {
        None
    }
}

/// `term(i)` summed over `lo..hi` (a multiple of [`LANES`] long) into the partial sums.
#[inline(always)]
fn add_lanes(acc: &mut [f64; LANES], lo: usize, hi: usize, term: impl Fn(usize) -> f64) {
    let mut i = lo;
    while i < hi {
        for (j, a) in acc.iter_mut().enumerate() {
            *a += term(i + j);
        }
        i += LANES;
    }
}

/// Calls `$body` with each of `$x`, `$mu`, `$s` as one number (length 1) or a slice of `$n`.
macro_rules! with_elems {
    ($n:expr, ($x:ident, $mu:ident, $s:ident) => $body:expr) => {{
        let n = $n;
        match ($x.len() == 1, $mu.len() == 1, $s.len() == 1) {
            (false, true, true) => {
                let ($x, $mu, $s) = (&$x[..n], $mu[0], $s[0]);
                $body
            }
            (false, false, true) => {
                let ($x, $mu, $s) = (&$x[..n], &$mu[..n], $s[0]);
                $body
            }
            (false, true, false) => {
                let ($x, $mu, $s) = (&$x[..n], $mu[0], &$s[..n]);
                $body
            }
            (false, false, false) => {
                let ($x, $mu, $s) = (&$x[..n], &$mu[..n], &$s[..n]);
                $body
            }
            (true, true, true) => {
                let ($x, $mu, $s) = ($x[0], $mu[0], $s[0]);
                $body
            }
            (true, false, true) => {
                let ($x, $mu, $s) = ($x[0], &$mu[..n], $s[0]);
                $body
            }
            (true, true, false) => {
                let ($x, $mu, $s) = ($x[0], $mu[0], &$s[..n]);
                $body
            }
            (true, false, false) => {
                let ($x, $mu, $s) = ($x[0], &$mu[..n], &$s[..n]);
                $body
            }
        }
    }};
}

/// The log density of `normal(mu, s)` at `x`, summed over n elements (each argument of length
/// n or 1, n ≥ 1): NaN when a μ is not finite, a σ not positive and finite, or an x is NaN; −∞
/// when an x is infinite, as [`log_density`](super::log_density) specifies.
pub fn normal_array(x: &[f64], mu: &[f64], s: &[f64], n: usize) -> f64 {
    if [x.len(), mu.len(), s.len()].iter().any(|&l| l != n && l != 1) || n == 0 {
        return if n == 0 { 0.0 } else { f64::NAN };
    }
    let valid = mu.iter().fold(true, |ok, m| ok & m.is_finite()) & s.iter().fold(true, |ok, v| ok & positive(*v));
    if !valid {
        return f64::NAN;
    }
    with_elems!(n, (x, mu, s) => sum(x, mu, s, n))
}

fn sum(x: impl Elems, mu: impl Elems, s: impl Elems, n: usize) -> f64 {
    vmath::widest!(sum_body(x, mu, s, n))
}

#[inline(always)]
fn sum_body(x: impl Elems, mu: impl Elems, s: impl Elems, n: usize) -> f64 {
    let over = over_sigma(s);
    let term = |i: usize, ls: f64| {
        let z = over(x.at(i) - mu.at(i), i);
        -0.5 * z * z - ls - HALF_LN_2PI
    };
    // ln σ once when σ is one number; the C library's for each σ otherwise, as compiled code
    // takes it for the few elements it sums inline.
    let ls = s.one().map(f64::ln);
    match ls {
        Some(l) => lane_sum(n, |i| term(i, l)),
        None => lane_sum(n, |i| term(i, s.at(i).ln())),
    }
}

/// The partials of [`normal_array`], ∂/∂x = −z/σ, ∂/∂μ = z/σ, ∂/∂σ = (z² − 1)/σ with
/// z = (x − μ)/σ, times `g` added into `dx`, `dmu` and `ds`: element by element into an
/// argument of n elements, summed (in the order of [`normal_array`]) into one of length 1; an
/// empty slice takes nothing. Nothing is added when `g` is zero. σ one number: its reciprocal
/// once, and products in place of the divisions.
pub fn normal_array_partials(
    (x, mu, s): (&[f64], &[f64], &[f64]),
    n: usize,
    g: f64,
    dx: &mut [f64],
    dmu: &mut [f64],
    ds: &mut [f64],
) {
    if g == 0.0 || n == 0 || [x.len(), mu.len(), s.len()].iter().any(|&l| l != n && l != 1) {
        return;
    }
    let outs = [dx, dmu, ds];
    if outs.iter().any(|d| !d.is_empty() && d.len() != n && d.len() != 1) {
        return;
    }
    with_elems!(n, (x, mu, s) => partials(x, mu, s, n, g, outs))
}

fn partials(x: impl Elems, mu: impl Elems, s: impl Elems, n: usize, g: f64, outs: [&mut [f64]; 3]) {
    vmath::widest!(partials_body(x, mu, s, n, g, outs))
}

#[inline(always)]
fn partials_body(x: impl Elems, mu: impl Elems, s: impl Elems, n: usize, g: f64, outs: [&mut [f64]; 3]) {
    let over = over_sigma(s);
    let z = |i: usize| over(x.at(i) - mu.at(i), i);
    // −z/σ, z/σ, (z² − 1)/σ: one loop for each argument that takes them.
    let [dx, dmu, ds] = outs;
    add_scaled(dx, n, g, |i| -over(z(i), i));
    add_scaled(dmu, n, g, |i| over(z(i), i));
    add_scaled(ds, n, g, |i| {
        let z = z(i);
        over(z * z - 1.0, i)
    });
}

/// `v / σᵢ`: with σ one number, a product with its reciprocal, taken once, in place of the
/// divisions (forward and reverse alike).
#[inline(always)]
fn over_sigma(s: impl Elems) -> impl Fn(f64, usize) -> f64 {
    let r = s.one().map(|v| 1.0 / v);
    move |v, i| match r {
        Some(r) => v * r,
        None => v / s.at(i),
    }
}

/// `g · d(i)` added into `out[i]` for each element, or summed into `out[0]` for an argument of
/// one element; nothing for an empty `out`.
#[inline(always)]
fn add_scaled(out: &mut [f64], n: usize, g: f64, d: impl Fn(usize) -> f64) {
    if out.is_empty() {
        return;
    }
    if out.len() == n && n > 1 {
        each_scaled(out, g, d);
    } else {
        out[0] += g * lane_sum(n, d);
    }
}

/// `out[i] += g · d(i)` for every element.
#[inline(always)]
fn each_scaled(out: &mut [f64], g: f64, d: impl Fn(usize) -> f64) {
    for (i, o) in out.iter_mut().enumerate() {
        *o += g * d(i);
    }
}

/// `d(i)` summed over n elements in the order of [`normal_array`].
#[inline(always)]
fn lane_sum(n: usize, d: impl Fn(usize) -> f64) -> f64 {
    let full = n - n % LANES;
    let mut acc = [0.0; LANES];
    add_lanes(&mut acc, 0, full, &d);
    let mut t = acc.iter().sum::<f64>();
    for i in full..n {
        t += d(i);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::dist::{elem_log_density, elem_partials, Family};

    /// Element i of an argument of length 1 or n.
    fn at(v: &[f64], i: usize) -> f64 {
        if v.len() == 1 {
            v[0]
        } else {
            v[i]
        }
    }

    #[test]
    fn whole_arrays_equal_the_sum_of_their_elements() {
        for n in [1, 2, 7, 8, 9, 17, 100] {
            let full: Vec<f64> = (0..n).map(|i| (i as f64 * 0.71).sin() * 3.0).collect();
            let pos: Vec<f64> = (0..n).map(|i| 0.3 + (i as f64 * 0.37).cos().abs()).collect();
            for (x, mu, s) in [
                (&full[..], &[0.5][..], &[1.7][..]),
                (&full[..], &pos[..], &[0.4][..]),
                (&full[..], &[-1.0][..], &pos[..]),
                (&[0.25][..], &full[..], &pos[..]),
            ] {
                let lp = normal_array(x, mu, s, n);
                let want: f64 =
                    (0..n).map(|i| elem_log_density(Family::Normal, at(x, i), &[at(mu, i), at(s, i), 0.0])).sum();
                assert!((lp - want).abs() <= 1e-12 * want.abs().max(1.0), "n {n}: {lp} vs {want}");
                let g = 0.75;
                let (mut dx, mut dm, mut ds) = (vec![0.0; x.len()], vec![0.0; mu.len()], vec![0.0; s.len()]);
                normal_array_partials((x, mu, s), n, g, &mut dx, &mut dm, &mut ds);
                let (mut wx, mut wm, mut ws) = (vec![0.0; x.len()], vec![0.0; mu.len()], vec![0.0; s.len()]);
                for i in 0..n {
                    let mut d = [0.0; 4];
                    elem_partials(Family::Normal, at(x, i), &[at(mu, i), at(s, i), 0.0], &mut d);
                    for (w, k) in [(&mut wx, 0), (&mut wm, 1), (&mut ws, 2)] {
                        let j = if w.len() == 1 { 0 } else { i };
                        w[j] += g * d[k];
                    }
                }
                for (got, want) in [(&dx, &wx), (&dm, &wm), (&ds, &ws)] {
                    for (a, b) in got.iter().zip(want.iter()) {
                        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "n {n}: partial {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_arguments_give_nan_and_infinite_variates_minus_infinity() {
        let x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
        assert!(normal_array(&x, &[0.0], &[0.0], 9).is_nan());
        assert!(normal_array(&x, &[f64::INFINITY], &[1.0], 9).is_nan());
        assert!(normal_array(&x, &[0.0], &[f64::INFINITY], 9).is_nan());
        assert!(normal_array(&x, &[0.0, 1.0], &[1.0], 9).is_nan());
        let mut y = x;
        y[8] = f64::NAN;
        assert!(normal_array(&y, &[0.0], &[1.0], 9).is_nan());
        y[8] = f64::NEG_INFINITY;
        assert_eq!(normal_array(&y, &[0.0], &[1.0], 9), f64::NEG_INFINITY);
        assert_eq!(normal_array(&[], &[0.0], &[1.0], 0), 0.0);
    }
}
