//! The multivariate families (categorical, ordered_logistic, dirichlet, multi_normal,
//! lkj_corr_cholesky) and the linear algebra they share.

use super::{
    as_rows, bcast, is_count, log_sum_exp, positive, softplus, square_dim, xdivy, xlogy, Arg, CONSTRAINT_TOL,
    HALF_LN_2PI, LN_2,
};
use statrs::function::gamma::{digamma, ln_gamma};

// ---------------------------------------------------------------------------------------------
// Linear algebra
// ---------------------------------------------------------------------------------------------

/// Lower Cholesky factor (k×k row-major, written into `l`) of the symmetric matrix whose lower
/// triangle is read from `a`. False unless every pivot is positive and finite (i.e. `a` is
/// positive definite).
fn cholesky_into(a: &[f64], k: usize, l: &mut [f64]) -> bool {
    l.fill(0.0);
    for j in 0..k {
        let mut d = a[j * k + j];
        for m in 0..j {
            d -= l[j * k + m] * l[j * k + m];
        }
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        let ljj = d.sqrt();
        l[j * k + j] = ljj;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for m in 0..j {
                s -= l[i * k + m] * l[j * k + m];
            }
            l[i * k + j] = s / ljj;
        }
    }
    true
}

/// The same, into a new vector (for the samplers, which allocate anyway).
pub(super) fn cholesky(a: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    cholesky_into(a, k, &mut l).then_some(l)
}

thread_local! {
    /// Working memory of the multivariate densities, kept between calls so that a density
    /// evaluated again and again (inside a sampler) allocates only the first time.
    static WORK: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `n` zeroed values of this thread's working memory (a fresh vector if that
/// memory is already in use further up the stack).
fn with_work<R>(n: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    WORK.with(|w| match w.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < n {
                v.resize(n, 0.0);
            }
            let s = &mut v[..n];
            s.fill(0.0);
            f(s)
        }
        Err(_) => f(&mut vec![0.0; n]),
    })
}

/// Solves `L z = b` in place (forward substitution; reads only the lower triangle of `l`).
fn forward_solve(l: &[f64], k: usize, b: &mut [f64]) {
    for i in 0..k {
        let mut s = b[i];
        for j in 0..i {
            s -= l[i * k + j] * b[j];
        }
        b[i] = s / l[i * k + i];
    }
}

/// Solves `Lᵀ x = b` in place (back substitution; reads only the lower triangle of `l`).
fn backward_solve(l: &[f64], k: usize, b: &mut [f64]) {
    for i in (0..k).rev() {
        let mut s = b[i];
        for j in i + 1..k {
            s -= l[j * k + i] * b[j];
        }
        b[i] = s / l[i * k + i];
    }
}

// ---------------------------------------------------------------------------------------------
// Categorical
// ---------------------------------------------------------------------------------------------

/// Stan FR "Categorical distribution" (labels here are 0-based):
/// * `categorical(θ)`: ln P(y) = ln θ_y, with θ a K-simplex; ∂/∂θ_k = [y = k] / θ_k.
/// * `categorical_logit(β)`: ln P(y) = β_y − log Σ_k e^{β_k}; ∂/∂β_k = [y = k] − softmax(β)_k.
///
/// The parameter is one vector `[K]` shared by every label, or an `[N, K]` matrix with one row
/// per label (then there must be exactly N labels).
pub(super) fn categorical(args: &[Arg], grads: Option<&mut [&mut [f64]]>, logit: bool, strict: bool) -> f64 {
    let (y, p) = (args[0], args[1]);
    let Some((rows, k)) = as_rows(&p) else {
        return f64::NAN;
    };
    if k == 0 || (rows != 1 && y.values.len() != rows) {
        return f64::NAN;
    }
    // Parameter validity.
    for r in 0..rows {
        let row = &p.values[r * k..(r + 1) * k];
        if logit {
            if !row.iter().all(|v| v.is_finite()) {
                return f64::NAN;
            }
        } else {
            if !row.iter().all(|&v| v >= 0.0 && v.is_finite()) {
                return f64::NAN;
            }
            if strict && (row.iter().sum::<f64>() - 1.0).abs() > CONSTRAINT_TOL {
                return f64::NAN;
            }
        }
    }
    // Labels.
    let mut out = false;
    for (i, &l) in y.values.iter().enumerate() {
        if l.is_nan() {
            return f64::NAN;
        }
        if !(is_count(l) && l < k as f64) {
            out = true;
            continue;
        }
        let r = if rows == 1 { 0 } else { i };
        if !logit && p.values[r * k + l as usize] == 0.0 {
            out = true;
        }
    }
    if out {
        return f64::NEG_INFINITY;
    }
    let row_of = |i: usize| if rows == 1 { 0 } else { i };
    let mut lp = 0.0;
    if logit {
        // Each row's log-sum-exp and how many labels use the row, in the working memory.
        lp = with_work(2 * rows, |w| {
            let (lse, uses) = w.split_at_mut(rows);
            for (r, v) in lse.iter_mut().enumerate() {
                *v = log_sum_exp(&p.values[r * k..(r + 1) * k]);
            }
            let mut lp = 0.0;
            for (i, &l) in y.values.iter().enumerate() {
                let r = row_of(i);
                lp += p.values[r * k + l as usize] - lse[r];
                uses[r] += 1.0;
            }
            if let Some(g) = grads {
                let gp = &mut *g[1];
                for (i, &l) in y.values.iter().enumerate() {
                    gp[row_of(i) * k + l as usize] += 1.0;
                }
                for r in 0..rows {
                    if uses[r] > 0.0 {
                        for j in 0..k {
                            gp[r * k + j] -= uses[r] * (p.values[r * k + j] - lse[r]).exp();
                        }
                    }
                }
            }
            lp
        });
    } else {
        for (i, &l) in y.values.iter().enumerate() {
            lp += p.values[row_of(i) * k + l as usize].ln();
        }
        if let Some(g) = grads {
            let gp = &mut *g[1];
            for (i, &l) in y.values.iter().enumerate() {
                let idx = row_of(i) * k + l as usize;
                gp[idx] += 1.0 / p.values[idx];
            }
        }
    }
    lp
}

// ---------------------------------------------------------------------------------------------
// Dirichlet
// ---------------------------------------------------------------------------------------------

/// Stan FR "Dirichlet distribution":
/// ln p(θ | α) = lnΓ(Σα) − Σ lnΓ(α_k) + Σ (α_k − 1) ln θ_k,
/// ∂/∂θ_k = (α_k − 1)/θ_k (ambient partials), ∂/∂α_k = ψ(Σα) − ψ(α_k) + ln θ_k.
pub(super) fn dirichlet(args: &[Arg], grads: Option<&mut [&mut [f64]]>, strict: bool) -> f64 {
    let (th, al) = (args[0], args[1]);
    let (Some((rt, k)), Some((ra, ka))) = (as_rows(&th), as_rows(&al)) else {
        return f64::NAN;
    };
    let Some(m) = bcast(rt, ra) else {
        return f64::NAN;
    };
    if k != ka || k == 0 {
        return f64::NAN;
    }
    if !al.values.iter().all(|&a| positive(a)) || th.values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let row = |rows: usize, r: usize| if rows == 1 { 0 } else { r * k };
    for r in 0..rt {
        let t = &th.values[r * k..(r + 1) * k];
        // Strict: entries in [0, 1]; lax (tests only): any finite non-negative entries.
        let inside = |v: f64| if strict { (0.0..=1.0).contains(&v) } else { v >= 0.0 && v.is_finite() };
        if !t.iter().all(|&v| inside(v)) {
            return f64::NEG_INFINITY;
        }
        if strict && (t.iter().sum::<f64>() - 1.0).abs() > CONSTRAINT_TOL {
            return f64::NEG_INFINITY;
        }
    }
    for r in 0..m {
        let (t0, a0) = (row(rt, r), row(ra, r));
        for j in 0..k {
            if th.values[t0 + j] == 0.0 && al.values[a0 + j] > 1.0 {
                return f64::NEG_INFINITY;
            }
        }
    }
    let mut lp = 0.0;
    let mut g = grads;
    for r in 0..m {
        let (t0, a0) = (row(rt, r), row(ra, r));
        let t = &th.values[t0..t0 + k];
        let a = &al.values[a0..a0 + k];
        let asum: f64 = a.iter().sum();
        lp += ln_gamma(asum);
        for j in 0..k {
            lp += xlogy(a[j] - 1.0, t[j]) - ln_gamma(a[j]);
        }
        if let Some(g) = g.as_deref_mut() {
            let psum = digamma(asum);
            for j in 0..k {
                g[0][t0 + j] += xdivy(a[j] - 1.0, t[j]);
                g[1][a0 + j] += psum - digamma(a[j]) + t[j].ln();
            }
        }
    }
    lp
}

// ---------------------------------------------------------------------------------------------
// Multivariate normal
// ---------------------------------------------------------------------------------------------

/// Stan FR "Multivariate normal distribution" and "... Cholesky parameterization":
/// with Σ = L Lᵀ, r = y − μ, z = L⁻¹ r and a = Σ⁻¹ r = L⁻ᵀ z,
/// ln p = −(K/2) ln 2π − Σ_k ln L_kk − ½ zᵀz,
/// ∂/∂y = −a, ∂/∂μ = a,
/// ∂/∂L = a zᵀ − diag(1/L_kk) restricted to the lower triangle (upper entries of L are ignored
///        by the density and get 0),
/// ∂/∂Σ = ½ (a aᵀ − Σ⁻¹).
///
/// Convention for Σ: the density only makes sense for symmetric Σ, so the gradient reported for
/// Σ is the *symmetrised* one, G = ½(Σ⁻¹ r rᵀ Σ⁻¹ − Σ⁻¹), written to both triangles. For a
/// symmetric perturbation δ (δ_ij = δ_ji) the change in the log density is Σ_ij G_ij δ_ij; i.e.
/// an off-diagonal pair moved together changes the density at rate G_ij + G_ji = 2 G_ij.
/// Callers holding only a triangle of free coordinates should sum the two mirrored entries.
pub(super) fn multi_normal(args: &[Arg], grads: Option<&mut [&mut [f64]]>, chol_param: bool) -> f64 {
    let (y, mu, s) = (args[0], args[1], args[2]);
    let (Some((ry, k)), Some((rm, km))) = (as_rows(&y), as_rows(&mu)) else {
        return f64::NAN;
    };
    let Some(m) = bcast(ry, rm) else {
        return f64::NAN;
    };
    if km != k || square_dim(&s) != Some(k) {
        return f64::NAN;
    }
    if !mu.values.iter().all(|v| v.is_finite()) {
        return f64::NAN;
    }
    if !chol_param && !s.values.iter().all(|v| v.is_finite()) {
        return f64::NAN;
    }
    if !chol_param {
        for i in 0..k {
            for j in 0..i {
                let (a, b) = (s.values[i * k + j], s.values[j * k + i]);
                if (a - b).abs() > CONSTRAINT_TOL * a.abs().max(b.abs()).max(1.0) {
                    return f64::NAN;
                }
            }
        }
    }
    let kk = k * k;
    // L, z, a, the accumulated outer products, and (for Σ) L⁻¹ and one of its columns.
    let need = kk + 2 * k + if grads.is_some() { 2 * kk + k } else { 0 };
    with_work(need, |w| {
        let (l, w) = w.split_at_mut(kk);
        if chol_param {
            // Lower triangle must be finite with a positive diagonal; the upper one is ignored.
            for i in 0..k {
                for j in 0..=i {
                    let v = s.values[i * k + j];
                    if !v.is_finite() || (i == j && v <= 0.0) {
                        return f64::NAN;
                    }
                    l[i * k + j] = v;
                }
            }
        } else if !cholesky_into(s.values, k, l) {
            return f64::NAN;
        }
        if y.values.iter().any(|v| v.is_nan()) {
            return f64::NAN;
        }
        if y.values.iter().any(|v| v.is_infinite()) {
            return f64::NEG_INFINITY;
        }
        let (z, w) = w.split_at_mut(k);
        let (a, w) = w.split_at_mut(k);
        multi_normal_rows(y, mu, (ry, rm, m, k), l, z, a, w, grads, chol_param)
    })
}

/// The rows of [`multi_normal`] once L is known. `w` holds the gradient's working memory
/// (Σ_m a aᵀ or Σ_m a zᵀ, then L⁻¹ and a column of it) when gradients are wanted.
#[allow(clippy::too_many_arguments)]
fn multi_normal_rows(
    y: Arg,
    mu: Arg,
    (ry, rm, m, k): (usize, usize, usize, usize),
    l: &[f64],
    z: &mut [f64],
    a: &mut [f64],
    w: &mut [f64],
    grads: Option<&mut [&mut [f64]]>,
    chol_param: bool,
) -> f64 {
    let kk = k * k;
    let log_det_l: f64 = (0..k).map(|i| l[i * k + i].ln()).sum();
    let per_row = -(k as f64) * HALF_LN_2PI - log_det_l;
    let mut lp = 0.0;
    let (outer, w) = w.split_at_mut(if grads.is_some() { kk } else { 0 });
    let mut g = grads;
    for r in 0..m {
        let (y0, m0) = (if ry == 1 { 0 } else { r * k }, if rm == 1 { 0 } else { r * k });
        for (zi, (yi, mi)) in z.iter_mut().zip(y.values[y0..y0 + k].iter().zip(&mu.values[m0..m0 + k])) {
            *zi = yi - mi;
        }
        forward_solve(l, k, z);
        lp += per_row - 0.5 * z.iter().map(|v| v * v).sum::<f64>();
        if let Some(g) = g.as_deref_mut() {
            a.copy_from_slice(z);
            backward_solve(l, k, a);
            for i in 0..k {
                g[0][y0 + i] -= a[i];
                g[1][m0 + i] += a[i];
            }
            let rhs: &[f64] = if chol_param { z } else { a };
            for i in 0..k {
                for j in 0..k {
                    outer[i * k + j] += a[i] * rhs[j];
                }
            }
        }
    }
    if let Some(g) = g {
        let gs = &mut *g[2];
        let mf = m as f64;
        if chol_param {
            for i in 0..k {
                for j in 0..=i {
                    gs[i * k + j] += outer[i * k + j];
                }
                gs[i * k + i] -= mf / l[i * k + i];
            }
        } else {
            // Σ⁻¹ = L⁻ᵀ L⁻¹, from the columns of L⁻¹.
            let (linv, col) = w.split_at_mut(kk); // row-major L⁻¹
            for j in 0..k {
                col.iter_mut().for_each(|c| *c = 0.0);
                col[j] = 1.0;
                forward_solve(l, k, col);
                for i in 0..k {
                    linv[i * k + j] = col[i];
                }
            }
            for i in 0..k {
                for j in 0..k {
                    let sinv: f64 = (i.max(j)..k).map(|q| linv[q * k + i] * linv[q * k + j]).sum();
                    gs[i * k + j] += 0.5 * outer[i * k + j] - 0.5 * mf * sinv;
                }
            }
        }
    }
    lp
}

// ---------------------------------------------------------------------------------------------
// LKJ on Cholesky factors of correlation matrices
// ---------------------------------------------------------------------------------------------

/// ln c_K(η), the LKJ normalising constant (Lewandowski, Kurowicka & Joe 2009): with
/// b_k = η + (K−k−1)/2,
/// c_K(η) = Π_{k=1}^{K−1} [2^{2b_k − 1} B(b_k, b_k)]^{K−k}
/// (each of the K−k partial correlations at level k of the vine is Beta(b_k, b_k) on (−1, 1)).
/// Returns (ln c_K, d ln c_K / dη).
fn lkj_log_const(eta: f64, k: usize) -> (f64, f64) {
    let (mut c, mut dc) = (0.0, 0.0);
    for lev in 1..k {
        let cnt = (k - lev) as f64;
        let b = eta + 0.5 * (k - lev - 1) as f64;
        c += cnt * ((2.0 * b - 1.0) * LN_2 + 2.0 * ln_gamma(b) - ln_gamma(2.0 * b));
        dc += cnt * (2.0 * LN_2 + 2.0 * digamma(b) - 2.0 * digamma(2.0 * b));
    }
    (c, dc)
}

/// Stan FR "Cholesky LKJ correlation distribution": for L the K×K Cholesky factor of a
/// correlation matrix Ω = L Lᵀ,
/// ln p(L | η) = Σ_{k=2}^{K} (K − k + 2η − 2) ln L_kk − ln c_K(η)   (1-based k),
/// i.e. the LKJ density det(Ω)^{η−1}/c_K(η) times the Jacobian Π_k L_kk^{K−k} of L ↦ Ω,
/// a density with respect to Lebesgue measure on the strictly-lower entries of L.
/// Gradients: ∂/∂L_kk = (K − k + 2η − 2)/L_kk (other entries 0),
/// ∂/∂η = 2 Σ_{k≥2} ln L_kk − d ln c_K/dη.
pub(super) fn lkj_corr_cholesky(args: &[Arg], grads: Option<&mut [&mut [f64]]>, strict: bool) -> f64 {
    let (lm, e) = (args[0], args[1]);
    if e.values.len() != 1 {
        return f64::NAN;
    }
    let eta = e.values[0];
    let Some(k) = square_dim(&lm) else {
        return f64::NAN;
    };
    if !positive(eta) || lm.values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let lv = lm.values;
    for i in 0..k {
        // (NaN entries were rejected above, so `<= 0.0` catches every non-positive diagonal.)
        if lv[i * k + i] <= 0.0 || !lv[i * k..(i + 1) * k].iter().all(|v| v.is_finite()) {
            return f64::NEG_INFINITY;
        }
        if strict {
            let norm2: f64 = (0..=i).map(|j| lv[i * k + j] * lv[i * k + j]).sum();
            let upper_zero = (i + 1..k).all(|j| lv[i * k + j].abs() <= CONSTRAINT_TOL);
            if !upper_zero || (norm2 - 1.0).abs() > CONSTRAINT_TOL {
                return f64::NEG_INFINITY;
            }
        }
    }
    let (c, dc) = lkj_log_const(eta, k);
    let mut lp = -c;
    let mut deta = -dc;
    for i in 1..k {
        // 0-based i is 1-based k = i + 1: exponent K − (i+1) + 2η − 2.
        let w = k as f64 - i as f64 - 3.0 + 2.0 * eta;
        let ld = lv[i * k + i].ln();
        lp += w * ld;
        deta += 2.0 * ld;
    }
    if let Some(g) = grads {
        for i in 1..k {
            let w = k as f64 - i as f64 - 3.0 + 2.0 * eta;
            g[0][i * k + i] += w / lv[i * k + i];
        }
        g[1][0] += deta;
    }
    lp
}

/// The log probability of label `l` (0 to K − 1) of `ordered_logistic(eta, c)` with its
/// partials in η and in the two cutpoints around it, (∂η, ∂c[l − 1], ∂c[l]) (a cutpoint that
/// does not exist gets 0). With a = η − c[l − 1] and b = η − c[l] (a = +∞ for l = 0, b = −∞
/// for l = K − 1), P = σ(a) − σ(b), computed in logs as
/// −softplus(−a) − softplus(b) + ln(1 − e^{b − a}).
pub fn ordered_logistic_term(eta: f64, c: &[f64], l: usize) -> (f64, [f64; 3]) {
    let k = c.len() + 1;
    let a = if l == 0 { f64::INFINITY } else { eta - c[l - 1] };
    let b = if l == k - 1 { f64::NEG_INFINITY } else { eta - c[l] };
    let log_p = if l == 0 {
        -softplus(b)
    } else if l == k - 1 {
        -softplus(-a)
    } else {
        -softplus(-a) - softplus(b) + (-(b - a).exp_m1()).ln()
    };
    // σ'(t) = σ(t) σ(−t), divided by P in logs: ∂ ln P/∂a = σ'(a)/P, ∂ ln P/∂b = −σ'(b)/P.
    let ratio = |t: f64| if t.is_finite() { (-softplus(-t) - softplus(t) - log_p).exp() } else { 0.0 };
    let (da, db) = (ratio(a), -ratio(b));
    (log_p, [da + db, -da, -db])
}

/// Stan FR "Ordered logistic distribution": labels 0 to K − 1 (bnnc's labels count from 0)
/// from a location η per label (or one shared) and K − 1 increasing cutpoints `c`.
pub(super) fn ordered_logistic(args: &[Arg], grads: Option<&mut [&mut [f64]]>) -> f64 {
    let (y, eta, c) = (args[0], args[1], args[2]);
    let n = y.values.len();
    if c.dims.len() != 1 || c.values.is_empty() || (eta.values.len() != 1 && eta.values.len() != n) {
        return f64::NAN;
    }
    let cv = c.values;
    if !cv.iter().all(|v| v.is_finite()) || cv.windows(2).any(|w| w[0] >= w[1]) {
        return f64::NAN;
    }
    if !eta.values.iter().all(|v| v.is_finite()) || y.values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    if !y.values.iter().all(|&l| is_count(l) && l < (cv.len() + 1) as f64) {
        return f64::NEG_INFINITY;
    }
    let at = |i: usize| if eta.values.len() == 1 { 0 } else { i };
    let mut lp = 0.0;
    let mut grads = grads;
    for (i, &l) in y.values.iter().enumerate() {
        let l = l as usize;
        let (v, d) = ordered_logistic_term(eta.values[at(i)], cv, l);
        lp += v;
        if let Some(g) = grads.as_deref_mut() {
            g[1][at(i)] += d[0];
            if l > 0 {
                g[2][l - 1] += d[1];
            }
            if l < cv.len() {
                g[2][l] += d[2];
            }
        }
    }
    lp
}
