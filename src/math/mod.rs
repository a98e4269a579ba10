//! Numerical building blocks: distribution densities with their gradients, and the
//! constraint transforms between a parameter's support and the unconstrained space.
pub mod conv;
pub mod dist;
pub mod eigen;
pub mod reparam;
pub mod transform;
pub mod vmath;

/// The eight partial sums of [`dot`] and its kin, added in its fixed order.
#[inline(always)]
pub fn sum8(s: [f64; 8]) -> f64 {
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

/// Σ xᵢ yᵢ with eight partial sums, added in a fixed order at the end: vectorisable, and
/// eight independent chains of additions where one sum in order waits for each addition in
/// turn (the order, and so the last bits, differ from a plain loop's).
#[inline(always)]
pub fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut s = [0.0; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            s[k] += a[k] * b[k];
        }
    }
    let mut t = sum8(s);
    for (a, b) in xr.iter().zip(yr) {
        t += a * b;
    }
    t
}
