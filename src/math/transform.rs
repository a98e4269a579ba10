//! Constraint transforms to the unconstrained space, with log-Jacobians (Stan's conventions).
//!
//! Every parameter is stored on an unconstrained space ℝᵐ. A constrained type maps a point
//! `y ∈ ℝᵐ` to its value `x = f(y)` in the support, and the log density gains
//! `log |det J_f(y)|` so that a density over `x` becomes the right density over `y`. The maps
//! follow the Stan Reference Manual, chapter "Constraint Transforms"; each function below
//! names the section it follows. Indices in this file and in error messages are 0-based, as
//! in the bnnc language.
//!
//! | kind | x from y | log\|J\| | free values |
//! |---|---|---|---|
//! | `Identity` | `x = y` | 0 | n |
//! | `Lower` | `x = lb + exp(y)` | `y` | n |
//! | `Upper` | `x = ub − exp(y)` | `y` | n |
//! | `LowerUpper` | `x = lb + (ub − lb)·σ(y)` | `log(ub − lb) + log σ(y) + log σ(−y)` | n |
//! | `Simplex` | stick-breaking, see `simplex_constrain` | see there | K − 1 |
//! | `Ordered` | `x₀ = y₀`, `x_k = x_{k−1} + exp(y_k)` | `Σ_{k≥1} y_k` | K |
//! | `PositiveOrdered` | `x₀ = exp(y₀)`, then as `Ordered` | `Σ_k y_k` | K |
//! | `CholeskyCorr` | tanh → canonical partial correlations, see `chol_corr_constrain` | see there | K(K−1)/2 |
//!
//! (σ is the logistic function `inv_logit`; `log σ(−y) = log1m_inv_logit(y)`.)
//!
//! The Jacobian is of the map from `y` to the *free coordinates* of `x`: all of `x` for the
//! elementwise kinds and the ordered kinds, the first K − 1 elements of a simplex (the last is
//! determined by the sum), and the strictly-lower-triangular entries (row-major) of a
//! Cholesky factor of a correlation matrix (the diagonal is determined by the unit row norms,
//! the upper triangle is zero).
//!
//! Bounds are slices of length 1 (one bound for every element) or n (one per element), and
//! must be empty for kinds without them. An infinite bound is no bound, as in Stan: a lower
//! bound of `-inf` makes `Lower` the identity, and `LowerUpper` with one infinite side
//! becomes `Lower` or `Upper` (or the identity with both), element by element.
//!
//! [`constrain`] never panics: inconsistent lengths or an empty support (`lb >= ub`, a NaN
//! bound, `lb = +inf`, `ub = -inf`, a simplex of 0 elements, a non-square `CholeskyCorr`)
//! give NaN values and a NaN log-Jacobian. [`constrain_vjp`] likewise adds NaN to the
//! adjoints. [`unconstrain`] reports the problem as an `Err`.

/// Tolerance of [`unconstrain`] for a simplex's sum (`|Σx − 1|`) and for the squared norm of
/// each row of a Cholesky factor of a correlation matrix (`|Σ_j L_ij² − 1|`); Stan uses the
/// same value (`CONSTRAINT_TOLERANCE`).
pub const TOLERANCE: f64 = 1e-8;

/// The transform of a constrained type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Identity,
    Lower,
    Upper,
    LowerUpper,
    Simplex,
    Ordered,
    PositiveOrdered,
    CholeskyCorr,
}

impl Kind {
    /// Number of unconstrained values for a constrained value of `n` elements
    /// (n = K for vectors; n = K*K for cholesky_corr, row-major K×K).
    ///
    /// A simplex of 0 elements (which has no valid value) gives 0; for `CholeskyCorr` with a
    /// non-square `n` the result is that of K = ⌊√n⌋, and [`constrain`] rejects the size.
    pub fn free_len(self, n: usize) -> usize {
        match self {
            Kind::Simplex => n.saturating_sub(1),
            Kind::CholeskyCorr => {
                let k = n.isqrt();
                k * k.saturating_sub(1) / 2
            }
            _ => n,
        }
    }

    /// Elements of one constrained value of this kind in a parameter of `shape`: the last
    /// dimension for a simplex or ordered vector, the last two for a correlation factor, so that
    /// `array[N] simplex[K]` is N simplexes of K. The elementwise kinds take the whole shape
    /// as one value.
    pub fn unit(self, shape: &[usize]) -> usize {
        let n: usize = shape.iter().product();
        let last = |k: usize| shape[shape.len().saturating_sub(k)..].iter().product::<usize>();
        match self {
            Kind::Simplex | Kind::Ordered | Kind::PositiveOrdered => last(1),
            Kind::CholeskyCorr => last(2),
            _ => n,
        }
    }

    /// Number of unconstrained values of a parameter of `shape`: [`Kind::free_len`] of each of
    /// its constrained values ([`Kind::unit`]).
    pub fn free_len_of(self, shape: &[usize]) -> usize {
        let (n, unit) = (shape.iter().product::<usize>(), self.unit(shape));
        if unit == 0 {
            self.free_len(n)
        } else {
            n / unit * self.free_len(unit)
        }
    }

    /// Whether the kind takes a lower and an upper bound.
    fn takes_bounds(self) -> (bool, bool) {
        match self {
            Kind::Lower => (true, false),
            Kind::Upper => (false, true),
            Kind::LowerUpper => (true, true),
            _ => (false, false),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Identity => "an unconstrained value",
            Kind::Lower => "a lower-bounded value",
            Kind::Upper => "an upper-bounded value",
            Kind::LowerUpper => "a bounded value",
            Kind::Simplex => "a simplex",
            Kind::Ordered => "an ordered vector",
            Kind::PositiveOrdered => "a positive_ordered vector",
            Kind::CholeskyCorr => "a cholesky_corr matrix",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar helpers
// ---------------------------------------------------------------------------------------------

/// σ(y) = 1 / (1 + e^{−y}), evaluated without overflow for either sign of `y`.
fn inv_logit(y: f64) -> f64 {
    if y >= 0.0 {
        1.0 / (1.0 + (-y).exp())
    } else {
        let e = y.exp();
        e / (1.0 + e)
    }
}

/// log σ(y) = −log(1 + e^{−y}), without overflow or cancellation for either sign of `y`.
fn log_inv_logit(y: f64) -> f64 {
    if y >= 0.0 {
        -(-y).exp().ln_1p()
    } else {
        y - y.exp().ln_1p()
    }
}

/// tanh(y) and log(1 − tanh²(y)) = log sech²(y) = 2·(log 2 − |y| − log1p(e^{−2|y|})), which
/// stays finite where 1 − tanh² would round to 0; also returns sech²(y) itself.
fn tanh_sech2(y: f64) -> (f64, f64, f64) {
    let a = y.abs();
    let e = (-2.0 * a).exp();
    let log_sech2 = 2.0 * (std::f64::consts::LN_2 - a - e.ln_1p());
    // sech(y) = 2e^{−|y|} / (1 + e^{−2|y|})
    let sech = 2.0 * (-a).exp() / (1.0 + e);
    (y.tanh(), sech * sech, log_sech2)
}

/// The effective constraint on one element once infinite bounds are dropped.
#[derive(Clone, Copy, Debug)]
enum Elem {
    Free,
    Lower(f64),
    Upper(f64),
    Both(f64, f64),
    /// The support is empty or a bound is NaN.
    Invalid,
}

/// The bound of element `i` from a slice of length 1 (broadcast) or n.
fn bound_at(b: &[f64], i: usize) -> f64 {
    if b.len() == 1 {
        b[0]
    } else {
        b[i]
    }
}

/// Index into a bound's adjoint for element `i` (a broadcast bound collects every element).
fn bound_index(b: &[f64], i: usize) -> usize {
    if b.len() == 1 {
        0
    } else {
        i
    }
}

fn elem(kind: Kind, lb: &[f64], ub: &[f64], i: usize) -> Elem {
    const INFINITY: f64 = f64::INFINITY;
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    match kind {
        Kind::Lower => {
            let l = bound_at(lb, i);
            if l.is_nan() || l == INFINITY {
                Elem::Invalid
            } else if l == NEG_INFINITY {
                Elem::Free
            } else {
                Elem::Lower(l)
            }
        }
        Kind::Upper => {
            let u = bound_at(ub, i);
            if u.is_nan() || u == NEG_INFINITY {
                Elem::Invalid
            } else if u == INFINITY {
                Elem::Free
            } else {
                Elem::Upper(u)
            }
        }
        Kind::LowerUpper => {
            let (l, u) = (bound_at(lb, i), bound_at(ub, i));
            // Not `l < u` (which also catches NaN, l = +inf and u = −inf): empty support.
            if l.partial_cmp(&u) != Some(std::cmp::Ordering::Less) {
                Elem::Invalid
            } else if l == NEG_INFINITY && u == INFINITY {
                Elem::Free
            } else if l == NEG_INFINITY {
                Elem::Upper(u)
            } else if u == INFINITY {
                Elem::Lower(l)
            } else {
                Elem::Both(l, u)
            }
        }
        _ => Elem::Free,
    }
}

/// Whether the lengths of `y` (free values), `lb` and `ub` fit a constrained value of `n`
/// elements of `kind`, and the size itself is one the kind has.
fn shapes_ok(kind: Kind, n: usize, y_len: usize, lb: &[f64], ub: &[f64]) -> bool {
    let (want_lb, want_ub) = kind.takes_bounds();
    let bound_ok = |b: &[f64], want: bool| if want { b.len() == 1 || b.len() == n } else { b.is_empty() };
    let size_ok = match kind {
        Kind::Simplex => n >= 1,
        Kind::CholeskyCorr => n.isqrt() * n.isqrt() == n,
        _ => true,
    };
    size_ok && y_len == kind.free_len(n) && bound_ok(lb, want_lb) && bound_ok(ub, want_ub)
}

// ---------------------------------------------------------------------------------------------
// Forward transform
// ---------------------------------------------------------------------------------------------

/// y (unconstrained, free_len(n) values) → x (constrained, n values). `lb`/`ub` are the bounds
/// (length 1 = broadcast, or n; empty when the kind has none). Returns log|J| (summed over elements).
/// Never panics: mismatched lengths or lb >= ub give NaN in x and a NaN log|J|.
pub fn constrain(kind: Kind, y: &[f64], lb: &[f64], ub: &[f64], x: &mut [f64]) -> f64 {
    let n = x.len();
    if !shapes_ok(kind, n, y.len(), lb, ub) {
        x.fill(f64::NAN);
        return f64::NAN;
    }
    match kind {
        Kind::Identity | Kind::Lower | Kind::Upper | Kind::LowerUpper => {
            let mut logj = 0.0;
            for i in 0..n {
                let (xi, lj) = elem_constrain(elem(kind, lb, ub, i), y[i]);
                x[i] = xi;
                logj += lj;
            }
            logj
        }
        Kind::Simplex => simplex_constrain(y, x),
        Kind::Ordered | Kind::PositiveOrdered => ordered_constrain(kind == Kind::PositiveOrdered, y, x),
        Kind::CholeskyCorr => chol_corr_constrain(y, x),
    }
}

/// One element of the scalar transforms; returns (x, log|dx/dy|).
///
/// * Lower bound (Reference Manual, "Lower bounded scalar"): `x = lb + exp(y)`,
///   `dx/dy = exp(y)`, so `log|J| = y`.
/// * Upper bound ("Upper bounded scalar"): `x = ub − exp(y)`, `log|J| = y`.
/// * Both ("Lower and upper bounded scalar"): `x = lb + (ub − lb)·σ(y)`,
///   `dx/dy = (ub − lb)·σ(y)·σ(−y)`, so `log|J| = log(ub − lb) + log σ(y) + log σ(−y)`,
///   computed as `log(ub − lb) − |y| − 2·log1p(e^{−|y|})`, finite for any finite `y`.
///   For `y > 0` the value is formed from the upper end, `ub − (ub − lb)·σ(−y)`, so that both
///   ends keep full relative precision, and the result is clamped into `[lb, ub]` against
///   rounding.
fn elem_constrain(e: Elem, y: f64) -> (f64, f64) {
    match e {
        Elem::Free => (y, 0.0),
        Elem::Lower(l) => (l + y.exp(), y),
        Elem::Upper(u) => (u - y.exp(), y),
        Elem::Both(l, u) => {
            let d = u - l;
            let x = if y <= 0.0 { l + d * inv_logit(y) } else { u - d * inv_logit(-y) };
            // Clamp without `f64::clamp`/`max`, which would hide a NaN `y`.
            let x = if x < l {
                l
            } else if x > u {
                u
            } else {
                x
            };
            let a = y.abs();
            (x, d.ln() - a - 2.0 * (-a).exp().ln_1p())
        }
        Elem::Invalid => (f64::NAN, f64::NAN),
    }
}

/// Unit simplex by stick-breaking (Reference Manual, "Unit simplex").
///
/// With K = `x.len()` ≥ 1 and m = K − 1 free values, for k = 0, …, m − 1 (0-based):
///
/// ```text
/// a_k = y_k − log(m − k)          (Stan's offset log(1/(K − k')) with k' = k + 1 1-based)
/// z_k = σ(a_k)                    the fraction of the remaining stick broken off
/// s_0 = 1,  s_{k+1} = s_k·σ(−a_k) the stick left after k breaks (σ(−a) = 1 − σ(a), formed directly)
/// x_k = s_k·z_k,   x_{m} = s_m
/// ```
///
/// The offset makes `y = 0` the uniform simplex (z_k = 1/(K − k)). The map y → (x_0, …, x_{m−1})
/// is lower triangular with diagonal `∂x_k/∂y_k = s_k·z_k·(1 − z_k)`, so
/// `log|J| = Σ_k [log s_k + log σ(a_k) + log σ(−a_k)]`
/// `       = Σ_k [log σ(a_k) + (m − k)·log σ(−a_k)]` (each break's `log σ(−a_j)` recurs in
/// every later `log s_k`). The sums are kept in the log domain so they stay finite.
fn simplex_constrain(y: &[f64], x: &mut [f64]) -> f64 {
    let m = x.len() - 1;
    let mut stick = 1.0;
    let mut logj = 0.0;
    for k in 0..m {
        let a = y[k] - ((m - k) as f64).ln();
        x[k] = stick * inv_logit(a);
        stick *= inv_logit(-a);
        logj += log_inv_logit(a) + (m - k) as f64 * log_inv_logit(-a);
    }
    x[m] = stick;
    logj
}

/// Ordered vectors (Reference Manual, "Ordered vector"): `x_0 = y_0` and
/// `x_k = x_{k−1} + exp(y_k)`. The Jacobian is lower triangular with diagonal `1, exp(y_1), …`,
/// so `log|J| = Σ_{k≥1} y_k`. A positive_ordered vector (as in Stan Math's
/// `positive_ordered_constrain`) also maps its first element through the lower-bound-0
/// transform, `x_0 = exp(y_0)`, adding `y_0`.
fn ordered_constrain(positive: bool, y: &[f64], x: &mut [f64]) -> f64 {
    let mut logj = 0.0;
    for k in 0..x.len() {
        if k == 0 {
            if positive {
                x[0] = y[0].exp();
                logj += y[0];
            } else {
                x[0] = y[0];
            }
        } else {
            x[k] = x[k - 1] + y[k].exp();
            logj += y[k];
        }
    }
    logj
}

/// Cholesky factor of a K×K correlation matrix (Reference Manual, "Cholesky factors of
/// correlation matrices", which builds on the canonical partial correlations of
/// "Correlation matrices").
///
/// The K(K−1)/2 free values are taken row by row over the strictly lower triangle:
/// (1,0), (2,0), (2,1), (3,0), …. Each maps to a canonical partial correlation
/// `z_ij = tanh(y_ij) ∈ (−1, 1)`. Row 0 of L is `(1, 0, …)`; for row i ≥ 1, with
/// `r_i0 = 1` the squared length still available in the row,
///
/// ```text
/// L_ij = z_ij·√r_ij,   r_i,j+1 = r_ij·(1 − z_ij²)   (j < i),     L_ii = √r_ii,
/// ```
///
/// so each row has unit norm and a positive diagonal, and L·Lᵀ is a correlation matrix.
/// `1 − z²` is formed as sech²(y), which cannot round to a negative number.
///
/// The map y → (L_ij)_{j<i} is triangular in the order above with diagonal
/// `∂L_ij/∂y_ij = √r_ij·(1 − z_ij²)`, so
/// `log|J| = Σ_{j<i} [log(1 − z_ij²) + ½·log r_ij]`, and since `log r_ij = Σ_{j'<j} log(1 − z_ij'²)`,
/// `log|J| = Σ_{j<i} c_ij·log(1 − z_ij²)` with `c_ij = 1 + (i − 1 − j)/2`.
fn chol_corr_constrain(y: &[f64], x: &mut [f64]) -> f64 {
    let k = x.len().isqrt();
    x.fill(0.0);
    if k == 0 {
        return 0.0;
    }
    x[0] = 1.0;
    let mut logj = 0.0;
    let mut m = 0;
    for i in 1..k {
        let mut r: f64 = 1.0;
        for j in 0..i {
            let (z, sech2, log_sech2) = tanh_sech2(y[m]);
            x[i * k + j] = z * r.sqrt();
            r *= sech2;
            logj += (1.0 + (i - 1 - j) as f64 / 2.0) * log_sech2;
            m += 1;
        }
        x[i * k + i] = r.sqrt();
    }
    logj
}

// ---------------------------------------------------------------------------------------------
// Reverse mode
// ---------------------------------------------------------------------------------------------

/// Reverse mode: given dL/dx (`adj_x`) and the weight of log|J| in L (`adj_logj`, usually 1.0),
/// ADD (+=) dL/dy into `adj_y`, dL/dlb into `adj_lb`, dL/dub into `adj_ub` (same lengths as y, lb, ub;
/// a broadcast scalar bound gets the sum).
///
/// The size n is `adj_x.len()`. Inconsistent lengths add NaN to every adjoint given.
#[allow(clippy::too_many_arguments)]
pub fn constrain_vjp(
    kind: Kind,
    y: &[f64],
    lb: &[f64],
    ub: &[f64],
    adj_x: &[f64],
    adj_logj: f64,
    adj_y: &mut [f64],
    adj_lb: &mut [f64],
    adj_ub: &mut [f64],
) {
    let n = adj_x.len();
    if !shapes_ok(kind, n, y.len(), lb, ub)
        || adj_y.len() != y.len()
        || adj_lb.len() != lb.len()
        || adj_ub.len() != ub.len()
    {
        for a in adj_y.iter_mut().chain(adj_lb.iter_mut()).chain(adj_ub.iter_mut()) {
            *a += f64::NAN;
        }
        return;
    }
    match kind {
        Kind::Identity | Kind::Lower | Kind::Upper | Kind::LowerUpper => {
            for i in 0..n {
                let (il, iu) = (bound_index(lb, i), bound_index(ub, i));
                let (g, w) = (adj_x[i], adj_logj);
                match elem(kind, lb, ub, i) {
                    Elem::Free => adj_y[i] += g,
                    // x = lb + e^y, log|J| = y
                    Elem::Lower(_) => {
                        adj_y[i] += g * y[i].exp() + w;
                        adj_lb[il] += g;
                    }
                    // x = ub − e^y, log|J| = y
                    Elem::Upper(_) => {
                        adj_y[i] += -g * y[i].exp() + w;
                        adj_ub[iu] += g;
                    }
                    // x = lb + d·s with d = ub − lb, s = σ(y), t = σ(−y) = 1 − s:
                    // ∂x/∂y = d·s·t, ∂x/∂lb = t, ∂x/∂ub = s;
                    // log|J| = log d + log s + log t: ∂/∂y = t − s, ∂/∂lb = −1/d, ∂/∂ub = 1/d.
                    Elem::Both(l, u) => {
                        let d = u - l;
                        let (s, t) = (inv_logit(y[i]), inv_logit(-y[i]));
                        adj_y[i] += g * d * s * t + w * (t - s);
                        adj_lb[il] += g * t - w / d;
                        adj_ub[iu] += g * s + w / d;
                    }
                    Elem::Invalid => {
                        adj_y[i] += f64::NAN;
                        if let Some(a) = adj_lb.get_mut(il) {
                            *a += f64::NAN;
                        }
                        if let Some(a) = adj_ub.get_mut(iu) {
                            *a += f64::NAN;
                        }
                    }
                }
            }
        }
        Kind::Simplex => simplex_vjp(y, adj_x, adj_logj, adj_y),
        Kind::Ordered | Kind::PositiveOrdered => {
            // x_k = x_0 + Σ_{1≤j≤k} e^{y_j}, so dL/dy_j = e^{y_j}·Σ_{k≥j} adj_x_k (+ the
            // log|J| weight); for y_0 the factor is 1 (ordered) or e^{y_0} (positive_ordered).
            let mut suffix = 0.0;
            for k in (0..n).rev() {
                suffix += adj_x[k];
                if k == 0 && kind == Kind::Ordered {
                    adj_y[0] += suffix;
                } else {
                    adj_y[k] += y[k].exp() * suffix + adj_logj;
                }
            }
        }
        Kind::CholeskyCorr => chol_corr_vjp(y, adj_x, adj_logj, adj_y),
    }
}

/// Reverse pass of [`simplex_constrain`]. With `g_k` the adjoint of the stick `s_k`
/// (`g_m = adj_x_m`), going back through `x_k = s_k·z_k` and `s_{k+1} = s_k·(1 − z_k)`:
/// `dL/dz_k = s_k·(adj_x_k − g_{k+1})`, `g_k = adj_x_k·z_k + g_{k+1}·(1 − z_k)`, and
/// `dz_k/dy_k = z_k(1 − z_k)`. The log|J| term contributes `σ(−a_k) − (m − k)·σ(a_k)`.
fn simplex_vjp(y: &[f64], adj_x: &[f64], adj_logj: f64, adj_y: &mut [f64]) {
    let m = adj_x.len() - 1;
    // Forward pass: the stick before each break.
    let mut sticks = Vec::with_capacity(m);
    let mut stick = 1.0;
    for (k, &yk) in y.iter().enumerate() {
        sticks.push(stick);
        stick *= inv_logit(-(yk - ((m - k) as f64).ln()));
    }
    let mut g = adj_x[m];
    for k in (0..m).rev() {
        let a = y[k] - ((m - k) as f64).ln();
        let (z, zc) = (inv_logit(a), inv_logit(-a));
        let adj_z = sticks[k] * (adj_x[k] - g);
        adj_y[k] += adj_z * z * zc + adj_logj * (zc - (m - k) as f64 * z);
        g = adj_x[k] * z + g * zc;
    }
}

/// Reverse pass of [`chol_corr_constrain`], row by row. Writing `√r_ij = exp(½·Σ_{j'<j} ℓ_ij')`
/// with `ℓ = log(1 − z²)`, every later entry of the row (diagonal included) has
/// `∂L_ik/∂ℓ_ij = ½·L_ik` (k > j), and `dℓ/dy = −2z`, `dz/dy = 1 − z²`. Hence
/// `dL/dy_ij = adj_L_ij·√r_ij·(1 − z_ij²) − z_ij·Σ_{k=j+1..i} adj_L_ik·L_ik − 2·c_ij·z_ij·adj_logj`.
fn chol_corr_vjp(y: &[f64], adj_x: &[f64], adj_logj: f64, adj_y: &mut [f64]) {
    let k = adj_x.len().isqrt();
    let mut row = Vec::with_capacity(k); // (z, sech², √r, L) for each j < i
    for i in 1..k {
        let base = i * (i - 1) / 2;
        row.clear();
        let mut r: f64 = 1.0;
        for j in 0..i {
            let (z, sech2, _) = tanh_sech2(y[base + j]);
            let sr = r.sqrt();
            row.push((z, sech2, sr, z * sr));
            r *= sech2;
        }
        // Suffix Σ_{k>j} adj_L_ik·L_ik, starting with the diagonal.
        let mut tail = adj_x[i * k + i] * r.sqrt();
        for j in (0..i).rev() {
            let (z, sech2, sr, l) = row[j];
            let c = 1.0 + (i - 1 - j) as f64 / 2.0;
            let a = adj_x[i * k + j];
            adj_y[base + j] += a * sr * sech2 - z * tail - 2.0 * c * z * adj_logj;
            tail += a * l;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inverse transform
// ---------------------------------------------------------------------------------------------

/// x → y, the inverse of `constrain`. Err with a human-readable reason (naming the element, e.g.
/// "element [2] is 1.5, above the upper bound 1") when x is outside the support (within a small tolerance for
/// simplex sums and correlation-matrix unit diagonals).
///
/// The support here is the image of [`constrain`] over finite `y`: bounds are strict (a value
/// equal to a finite bound would need an infinite `y`), simplex elements must be positive,
/// ordered vectors strictly increasing, and every element finite. Simplex sums and the
/// squared row norms of a Cholesky factor may be off 1 by [`TOLERANCE`]; the inverse then
/// behaves as if the vector or row had been normalised. The upper triangle of a Cholesky
/// factor must be exactly zero, as Stan requires. `y` is left unspecified on `Err`.
pub fn unconstrain(kind: Kind, x: &[f64], lb: &[f64], ub: &[f64], y: &mut [f64]) -> Result<(), String> {
    let n = x.len();
    check_shapes(kind, n, y.len(), lb, ub)?;
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(format!("{} is {}, not a finite number", elem_name(kind, n, i), x[i]));
    }
    match kind {
        Kind::Identity | Kind::Lower | Kind::Upper | Kind::LowerUpper => {
            for i in 0..n {
                y[i] = elem_unconstrain(kind, elem(kind, lb, ub, i), x[i], lb, ub, i)?;
            }
        }
        Kind::Simplex => simplex_unconstrain(x, y)?,
        Kind::Ordered | Kind::PositiveOrdered => {
            for i in 0..n {
                if i == 0 {
                    if kind == Kind::PositiveOrdered {
                        if x[0] <= 0.0 {
                            return Err(format!(
                                "element [0] is {}; a positive_ordered vector needs positive \
                                 elements",
                                x[0]
                            ));
                        }
                        y[0] = x[0].ln();
                    } else {
                        y[0] = x[0];
                    }
                } else {
                    if x[i] <= x[i - 1] {
                        return Err(format!(
                            "element [{i}] is {}, not above element [{}] ({}); {} must be \
                             strictly increasing",
                            x[i],
                            i - 1,
                            x[i - 1],
                            kind.name()
                        ));
                    }
                    y[i] = (x[i] - x[i - 1]).ln();
                }
            }
        }
        Kind::CholeskyCorr => chol_corr_unconstrain(x, y)?,
    }
    // Values strictly inside the support can still map to an infinite y when a difference
    // overflows or underflows (e.g. a correlation row whose diagonal squares to 0).
    if let Some(m) = y.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "the value is too close to the edge of {}'s support to be represented: unconstrained \
             coordinate [{m}] would be {}",
            kind.name(),
            y[m]
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stacks: a parameter holding several constrained values (`array[N] simplex[K]`)
// ---------------------------------------------------------------------------------------------

/// The values of a parameter whose constrained values have `unit` elements each
/// ([`Kind::unit`]): pairs of (free values, constrained values) ranges, one per value.
fn stack(kind: Kind, unit: usize, n: usize) -> impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)> {
    let (count, free) =
        if unit == 0 || n % unit != 0 { (1, kind.free_len(n)) } else { (n / unit, kind.free_len(unit)) };
    let unit = if count == 1 { n } else { unit };
    (0..count).map(move |b| (b * free..(b + 1) * free, b * unit..(b + 1) * unit))
}

/// [`constrain`] for each of the `x.len() / unit` values of a stack, the log-Jacobians summed.
/// The bounded kinds are elementwise and take the whole stack at once.
pub fn constrain_stack(kind: Kind, unit: usize, y: &[f64], lb: &[f64], ub: &[f64], x: &mut [f64]) -> f64 {
    let mut logj = 0.0;
    for (fy, fx) in stack(kind, unit, x.len()) {
        let Some(yb) = y.get(fy) else {
            x.fill(f64::NAN);
            return f64::NAN;
        };
        logj += constrain(kind, yb, lb, ub, &mut x[fx]);
    }
    logj
}

/// [`constrain_vjp`] for each value of a stack, as [`constrain_stack`] splits it.
#[allow(clippy::too_many_arguments)]
pub fn constrain_vjp_stack(
    kind: Kind,
    unit: usize,
    y: &[f64],
    lb: &[f64],
    ub: &[f64],
    adj_x: &[f64],
    adj_logj: f64,
    adj_y: &mut [f64],
    adj_lb: &mut [f64],
    adj_ub: &mut [f64],
) {
    for (fy, fx) in stack(kind, unit, adj_x.len()) {
        match (y.get(fy.clone()), adj_y.get_mut(fy)) {
            (Some(yb), Some(ab)) => constrain_vjp(kind, yb, lb, ub, &adj_x[fx], adj_logj, ab, adj_lb, adj_ub),
            _ => {
                adj_y.iter_mut().for_each(|a| *a += f64::NAN);
                return;
            }
        }
    }
}

/// [`unconstrain`] for each value of a stack; an error says which value when there are
/// several (`Some(2)` for the third).
pub fn unconstrain_stack(
    kind: Kind,
    unit: usize,
    x: &[f64],
    lb: &[f64],
    ub: &[f64],
    y: &mut [f64],
) -> Result<(), (Option<usize>, String)> {
    let parts: Vec<_> = stack(kind, unit, x.len()).collect();
    let several = parts.len() > 1;
    for (b, (fy, fx)) in parts.into_iter().enumerate() {
        let Some(yb) = y.get_mut(fy) else {
            return Err((None, format!("{} values do not fit {}s of {unit}", x.len(), kind.name())));
        };
        unconstrain(kind, &x[fx], lb, ub, yb).map_err(|e| (several.then_some(b), e))?;
    }
    Ok(())
}

/// The name of element `i` of a value of `n` elements, matrix-style for `CholeskyCorr`.
fn elem_name(kind: Kind, n: usize, i: usize) -> String {
    if kind == Kind::CholeskyCorr {
        let k = n.isqrt().max(1);
        format!("element [{}, {}]", i / k, i % k)
    } else {
        format!("element [{i}]")
    }
}

fn check_shapes(kind: Kind, n: usize, y_len: usize, lb: &[f64], ub: &[f64]) -> Result<(), String> {
    match kind {
        Kind::Simplex if n == 0 => {
            return Err("a simplex needs at least one element".to_string());
        }
        Kind::CholeskyCorr if n.isqrt() * n.isqrt() != n => {
            return Err(format!("{n} values do not form a square matrix for cholesky_corr"));
        }
        _ => {}
    }
    if y_len != kind.free_len(n) {
        return Err(format!(
            "{} of {n} elements has {} unconstrained values, but {y_len} were given",
            kind.name(),
            kind.free_len(n)
        ));
    }
    let (want_lb, want_ub) = kind.takes_bounds();
    for (b, want, what) in [(lb, want_lb, "lower"), (ub, want_ub, "upper")] {
        if want && b.len() != 1 && b.len() != n {
            return Err(format!("the {what} bound has {} values; expected 1 or {n} (one per element)", b.len()));
        }
        if !want && !b.is_empty() {
            return Err(format!("{} takes no {what} bound, but {} were given", kind.name(), b.len()));
        }
    }
    Ok(())
}

/// Inverse of [`elem_constrain`]: `y = log(x − lb)`, `y = log(ub − x)`, or
/// `y = logit((x − lb)/(ub − lb)) = log(x − lb) − log(ub − x)` (the last form keeps precision
/// near either bound).
fn elem_unconstrain(kind: Kind, e: Elem, x: f64, lb: &[f64], ub: &[f64], i: usize) -> Result<f64, String> {
    let below = |l: f64| -> Result<(), String> {
        if x < l {
            Err(format!("element [{i}] is {x}, below the lower bound {l}"))
        } else if x == l {
            Err(format!("element [{i}] is {x}, on the lower bound; it must be strictly above it"))
        } else {
            Ok(())
        }
    };
    let above = |u: f64| -> Result<(), String> {
        if x > u {
            Err(format!("element [{i}] is {x}, above the upper bound {u}"))
        } else if x == u {
            Err(format!("element [{i}] is {x}, on the upper bound; it must be strictly below it"))
        } else {
            Ok(())
        }
    };
    match e {
        Elem::Free => Ok(x),
        Elem::Lower(l) => below(l).map(|()| (x - l).ln()),
        Elem::Upper(u) => above(u).map(|()| (u - x).ln()),
        Elem::Both(l, u) => {
            below(l)?;
            above(u)?;
            Ok((x - l).ln() - (u - x).ln())
        }
        Elem::Invalid => {
            let (l, u) = (lb.get(bound_index(lb, i)).copied(), ub.get(bound_index(ub, i)).copied());
            Err(match (kind, l, u) {
                (Kind::LowerUpper, Some(l), Some(u)) if !l.is_nan() && !u.is_nan() => {
                    format!("the lower bound {l} of element [{i}] is not below its upper bound {u}")
                }
                (_, Some(l), _) if l.is_nan() || l == f64::INFINITY => {
                    format!("the lower bound of element [{i}] is {l}")
                }
                (_, _, Some(u)) => format!("the upper bound of element [{i}] is {u}"),
                _ => format!("the bounds of element [{i}] are invalid"),
            })
        }
    }
}

/// Inverse of [`simplex_constrain`]. With `t_k = Σ_{j>k} x_j` (accumulated from the end, so
/// small tails keep their precision), `z_k = x_k / (x_k + t_k)` and
/// `y_k = logit(z_k) + log(m − k) = log x_k − log t_k + log(m − k)`.
fn simplex_unconstrain(x: &[f64], y: &mut [f64]) -> Result<(), String> {
    if let Some(i) = x.iter().position(|&v| v <= 0.0) {
        let why = if x[i] == 0.0 { "strictly positive" } else { "positive" };
        return Err(format!("element [{i}] is {}; a simplex needs every element {why}", x[i]));
    }
    let sum: f64 = x.iter().sum();
    if (sum - 1.0).abs() > TOLERANCE {
        return Err(format!("the elements of the simplex sum to {sum}, not 1"));
    }
    let m = x.len() - 1;
    let mut tail = x[m];
    for k in (0..m).rev() {
        y[k] = x[k].ln() - tail.ln() + ((m - k) as f64).ln();
        tail += x[k];
    }
    Ok(())
}

/// Inverse of [`chol_corr_constrain`]. For row i, with `t_ij = Σ_{k=j..i} L_ik²` (accumulated
/// from the diagonal back, so it equals `r_ij` for a unit row), `z_ij = L_ij / √t_ij` and
/// `y_ij = atanh(z_ij) = sign(L_ij)·(log(√t_ij + |L_ij|) − ½·log t_i,j+1)`, which avoids
/// forming `1 − |z|` near ±1.
fn chol_corr_unconstrain(x: &[f64], y: &mut [f64]) -> Result<(), String> {
    let k = x.len().isqrt();
    for i in 0..k {
        for j in i + 1..k {
            if x[i * k + j] != 0.0 {
                return Err(format!(
                    "element [{i}, {j}] is {}, above the diagonal; the Cholesky factor of a \
                     correlation matrix is lower triangular (zero there)",
                    x[i * k + j]
                ));
            }
        }
        let d = x[i * k + i];
        if d <= 0.0 {
            return Err(format!(
                "diagonal element [{i}, {i}] is {d}; the Cholesky factor of a correlation \
                 matrix has a positive diagonal"
            ));
        }
        let norm2: f64 = (0..=i).map(|j| x[i * k + j] * x[i * k + j]).sum();
        if (norm2 - 1.0).abs() > TOLERANCE {
            return Err(format!(
                "row {i} has squared norm {norm2}, not 1; the Cholesky factor of a correlation \
                 matrix has unit-length rows (so that the correlation matrix has a unit diagonal)"
            ));
        }
    }
    for i in 1..k {
        let base = i * (i - 1) / 2;
        let mut t = x[i * k + i] * x[i * k + i];
        for j in (0..i).rev() {
            let l = x[i * k + j];
            let t_next = t;
            t += l * l;
            let mag = (t.sqrt() + l.abs()).ln() - 0.5 * t_next.ln();
            y[base + j] = if l < 0.0 { -mag } else { mag };
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Unit tests (property tests, finite-difference Jacobians and gradients: tests/transform.rs)
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    fn run(kind: Kind, y: &[f64], lb: &[f64], ub: &[f64], n: usize) -> (Vec<f64>, f64) {
        let mut x = vec![0.0; n];
        let lj = constrain(kind, y, lb, ub, &mut x);
        (x, lj)
    }

    #[test]
    fn free_lengths() {
        assert_eq!(Kind::Identity.free_len(5), 5);
        assert_eq!(Kind::LowerUpper.free_len(3), 3);
        assert_eq!(Kind::Ordered.free_len(4), 4);
        assert_eq!(Kind::PositiveOrdered.free_len(0), 0);
        assert_eq!(Kind::Simplex.free_len(4), 3);
        assert_eq!(Kind::Simplex.free_len(1), 0);
        assert_eq!(Kind::Simplex.free_len(0), 0);
        assert_eq!(Kind::CholeskyCorr.free_len(0), 0);
        assert_eq!(Kind::CholeskyCorr.free_len(1), 0);
        assert_eq!(Kind::CholeskyCorr.free_len(4), 1);
        assert_eq!(Kind::CholeskyCorr.free_len(9), 3);
        assert_eq!(Kind::CholeskyCorr.free_len(25), 10);
    }

    #[test]
    fn scalar_transforms_at_known_points() {
        let (x, lj) = run(Kind::Lower, &[0.0, 1.0], &[2.0], &[], 2);
        assert_eq!(x, vec![3.0, 2.0 + 1f64.exp()]);
        assert_eq!(lj, 1.0);
        let (x, lj) = run(Kind::Upper, &[0.0, -1.0], &[], &[2.0, 5.0], 2);
        assert_eq!(x, vec![1.0, 5.0 - (-1f64).exp()]);
        assert_eq!(lj, -1.0);
        let (x, lj) = run(Kind::LowerUpper, &[0.0], &[-1.0], &[3.0], 1);
        assert_eq!(x, vec![1.0]);
        assert!(close(lj, 4f64.ln() + 2.0 * 0.5f64.ln(), 1e-15));
        let (x, lj) = run(Kind::Identity, &[1.5, -2.0], &[], &[], 2);
        assert_eq!((x, lj), (vec![1.5, -2.0], 0.0));
    }

    #[test]
    fn infinite_bounds_degrade() {
        // LowerUpper with an infinite side behaves as Lower / Upper / Identity.
        let y = [0.3, -0.7];
        let both = run(Kind::LowerUpper, &y, &[1.0], &[INF], 2);
        assert_eq!(both, run(Kind::Lower, &y, &[1.0], &[], 2));
        let both = run(Kind::LowerUpper, &y, &[-INF], &[1.0], 2);
        assert_eq!(both, run(Kind::Upper, &y, &[], &[1.0], 2));
        let both = run(Kind::LowerUpper, &y, &[-INF], &[INF], 2);
        assert_eq!(both, (y.to_vec(), 0.0));
        assert_eq!(run(Kind::Lower, &y, &[-INF], &[], 2), (y.to_vec(), 0.0));
        assert_eq!(run(Kind::Upper, &y, &[], &[INF], 2), (y.to_vec(), 0.0));
        // Per element: only the second is bounded.
        let (x, lj) = run(Kind::Lower, &y, &[-INF, 0.0], &[], 2);
        assert_eq!(x, vec![0.3, (-0.7f64).exp()]);
        assert_eq!(lj, -0.7);
        // And the inverse follows.
        let mut back = [0.0; 2];
        unconstrain(Kind::LowerUpper, &[5.0, -5.0], &[-INF], &[INF], &mut back).unwrap();
        assert_eq!(back, [5.0, -5.0]);
        // Gradients: no bound gradient through an infinite bound.
        let (mut ay, mut al, mut au) = ([0.0; 2], [0.0], [0.0]);
        constrain_vjp(Kind::LowerUpper, &y, &[-INF], &[INF], &[1.0, 2.0], 1.0, &mut ay, &mut al, &mut au);
        assert_eq!((ay, al, au), ([1.0, 2.0], [0.0], [0.0]));
    }

    #[test]
    fn lower_upper_stays_inside_for_extreme_inputs() {
        for &y in &[-1e4, -800.0, -40.0, -1e-300, 0.0, 1e-300, 40.0, 800.0, 1e4] {
            let (x, lj) = run(Kind::LowerUpper, &[y], &[0.1], &[0.3], 1);
            assert!((0.1..=0.3).contains(&x[0]), "y = {y}: x = {}", x[0]);
            assert!(lj.is_finite(), "y = {y}: log|J| = {lj}");
            assert!(close(lj, 0.2f64.ln() - y.abs() - 2.0 * (-y.abs()).exp().ln_1p(), 1e-14));
        }
        // Near the upper end the gap ub − x keeps its relative precision.
        let (x, _) = run(Kind::LowerUpper, &[30.0], &[0.0], &[1.0], 1);
        assert!(x[0] < 1.0);
        let (x, _) = run(Kind::LowerUpper, &[-30.0], &[0.0], &[1.0], 1);
        assert!(close(x[0], (-30f64).exp() / (1.0 + (-30f64).exp()), 1e-14));
    }

    #[test]
    fn invalid_input_gives_nan_without_panicking() {
        let nan_all = |kind, y: &[f64], lb: &[f64], ub: &[f64], n| {
            let (x, lj) = run(kind, y, lb, ub, n);
            assert!(lj.is_nan(), "{kind:?}");
            assert!(x.iter().any(|v| v.is_nan()), "{kind:?}");
        };
        nan_all(Kind::LowerUpper, &[0.0], &[1.0], &[1.0], 1); // lb == ub
        nan_all(Kind::LowerUpper, &[0.0], &[2.0], &[1.0], 1); // lb > ub
        nan_all(Kind::LowerUpper, &[0.0, 0.0], &[0.0, 2.0], &[1.0], 2); // one element empty
        nan_all(Kind::LowerUpper, &[0.0], &[f64::NAN], &[1.0], 1);
        nan_all(Kind::Lower, &[0.0], &[INF], &[], 1);
        nan_all(Kind::Upper, &[0.0], &[], &[-INF], 1);
        nan_all(Kind::Lower, &[0.0, 0.0], &[0.0, 0.0, 0.0], &[], 2); // bound length
        nan_all(Kind::Lower, &[0.0], &[], &[], 1); // missing bound
        nan_all(Kind::Identity, &[0.0], &[0.0], &[], 1); // unexpected bound
        nan_all(Kind::Simplex, &[0.0, 0.0], &[], &[], 2); // y too long
        nan_all(Kind::Ordered, &[0.0], &[], &[], 2); // y too short
        nan_all(Kind::CholeskyCorr, &[0.0], &[], &[], 3); // not square
        let (x, lj) = run(Kind::Simplex, &[], &[], &[], 0);
        assert!(x.is_empty() && lj.is_nan());

        let (mut ay, mut al, mut au) = ([1.0; 2], [1.0], [1.0; 3]);
        constrain_vjp(Kind::LowerUpper, &[0.0; 2], &[0.0], &[1.0], &[1.0; 2], 1.0, &mut ay, &mut al, &mut au);
        assert!(ay.iter().chain(&al).chain(&au).all(|v| v.is_nan()));
        let (mut ay, mut al, mut au) = ([1.0; 1], [0.0; 0], [0.0; 0]);
        constrain_vjp(Kind::Simplex, &[0.0], &[], &[], &[1.0; 3], 1.0, &mut ay, &mut al, &mut au);
        assert!(ay[0].is_nan());
    }

    #[test]
    fn simplex_uniform_at_zero() {
        for k in 1..7 {
            let (x, lj) = run(Kind::Simplex, &vec![0.0; k - 1], &[], &[], k);
            for v in &x {
                assert!(close(*v, 1.0 / k as f64, 1e-15), "K = {k}: {x:?}");
            }
            // Σ_k log z_k(1 − z_k) s_k with z_k = 1/(K − k), s_k = (K − k)/K.
            let want: f64 = (0..k - 1)
                .map(|i| {
                    let z = 1.0 / (k - i) as f64;
                    (z * (1.0 - z) * (k - i) as f64 / k as f64).ln()
                })
                .sum();
            assert!(close(lj, want, 1e-14), "K = {k}: {lj} vs {want}");
            let mut y = vec![1.0; k - 1];
            unconstrain(Kind::Simplex, &x, &[], &[], &mut y).unwrap();
            assert!(y.iter().all(|v| v.abs() < 1e-14), "{y:?}");
        }
    }

    #[test]
    fn simplex_stays_positive_far_out() {
        let (x, lj) = run(Kind::Simplex, &[-300.0, 300.0, -50.0], &[], &[], 4);
        assert!(x.iter().all(|&v| v >= 0.0));
        assert!((x.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!(lj.is_finite());
    }

    #[test]
    fn ordered_known_values() {
        let (x, lj) = run(Kind::Ordered, &[-1.0, 0.0, 2f64.ln()], &[], &[], 3);
        assert_eq!(x, vec![-1.0, 0.0, 2.0]);
        assert!(close(lj, 2f64.ln(), 1e-15));
        let (x, lj) = run(Kind::PositiveOrdered, &[0.0, 0.0], &[], &[], 2);
        assert_eq!((x, lj), (vec![1.0, 2.0], 0.0));
    }

    #[test]
    fn cholesky_corr_known_values() {
        let (x, lj) = run(Kind::CholeskyCorr, &[0.0; 3], &[], &[], 9);
        assert_eq!(x, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(lj, 0.0);
        // K = 2: L = [[1, 0], [ρ, √(1 − ρ²)]] with ρ = tanh(y); log|J| = log(1 − ρ²).
        let (x, lj) = run(Kind::CholeskyCorr, &[0.5], &[], &[], 4);
        let rho = 0.5f64.tanh();
        assert!(close(x[2], rho, 1e-15) && close(x[3], (1.0 - rho * rho).sqrt(), 1e-15));
        assert_eq!((x[0], x[1]), (1.0, 0.0));
        assert!(close(lj, (1.0 - rho * rho).ln(), 1e-14));
        assert_eq!(run(Kind::CholeskyCorr, &[], &[], &[], 1), (vec![1.0], 0.0));
        assert_eq!(run(Kind::CholeskyCorr, &[], &[], &[], 0), (vec![], 0.0));
        // Far out in y the log-Jacobian stays finite and the rows stay unit.
        let (x, lj) = run(Kind::CholeskyCorr, &[400.0, -400.0, 3.0], &[], &[], 9);
        assert!(lj.is_finite());
        for i in 0..3 {
            let s: f64 = (0..3).map(|j| x[i * 3 + j] * x[i * 3 + j]).sum();
            assert!((s - 1.0).abs() < 1e-15 && x[i * 3 + i] >= 0.0);
        }
    }

    #[test]
    fn broadcast_bound_gradient_is_summed() {
        let y = [0.2, -0.4, 1.1];
        let adj_x = [1.0, -2.0, 0.5];
        let (mut ay, mut al, mut au) = ([0.0; 3], [0.0], [0.0]);
        constrain_vjp(Kind::LowerUpper, &y, &[-1.0], &[2.0], &adj_x, 0.0, &mut ay, &mut al, &mut au);
        let want_lb: f64 = y.iter().zip(&adj_x).map(|(&v, &g)| g * inv_logit(-v)).sum();
        let want_ub: f64 = y.iter().zip(&adj_x).map(|(&v, &g)| g * inv_logit(v)).sum();
        assert!(close(al[0], want_lb, 1e-15) && close(au[0], want_ub, 1e-15));
        // Lower: dx/dlb = 1 for each element; the adjoints accumulate onto what is there.
        let (mut ay, mut al) = ([10.0; 3], [10.0]);
        constrain_vjp(Kind::Lower, &y, &[0.0], &[], &adj_x, 1.0, &mut ay, &mut al, &mut []);
        assert!(close(al[0], 10.0 - 0.5, 1e-15));
        assert!(close(ay[0], 10.0 + 0.2f64.exp() + 1.0, 1e-15));
    }

    #[test]
    fn unconstrain_messages_name_the_element() {
        let mut y = [0.0; 3];
        let e = unconstrain(Kind::LowerUpper, &[0.5, 0.2, 1.5], &[0.0], &[1.0], &mut y).unwrap_err();
        assert_eq!(e, "element [2] is 1.5, above the upper bound 1");
        let e = unconstrain(Kind::Lower, &[0.5, -0.2, 1.5], &[0.0], &[], &mut y).unwrap_err();
        assert_eq!(e, "element [1] is -0.2, below the lower bound 0");
        let e = unconstrain(Kind::Lower, &[0.0, 1.0, 1.5], &[0.0], &[], &mut y).unwrap_err();
        assert!(e.contains("element [0]") && e.contains("strictly above"), "{e}");
        let e = unconstrain(Kind::Upper, &[0.0, 2.0, 2.0], &[], &[1.0, 2.0, 3.0], &mut y).unwrap_err();
        assert!(e.contains("element [1]") && e.contains("strictly below"), "{e}");
        let e = unconstrain(Kind::Identity, &[0.0, f64::NAN, 0.0], &[], &[], &mut y).unwrap_err();
        assert!(e.contains("element [1] is NaN"), "{e}");
        let e = unconstrain(Kind::Ordered, &[0.0, 1.0, 1.0], &[], &[], &mut y).unwrap_err();
        assert!(e.contains("element [2] is 1, not above element [1]"), "{e}");
        let e = unconstrain(Kind::PositiveOrdered, &[-1.0, 1.0, 2.0], &[], &[], &mut y).unwrap_err();
        assert!(e.contains("element [0] is -1"), "{e}");
        let e = unconstrain(Kind::LowerUpper, &[0.5; 3], &[1.0], &[0.0], &mut y).unwrap_err();
        assert!(e.contains("not below its upper bound"), "{e}");

        let mut y2 = [0.0; 2];
        let e = unconstrain(Kind::Simplex, &[0.5, 0.6, 0.1], &[], &[], &mut y2).unwrap_err();
        assert!(e.contains("sum to 1.2"), "{e}");
        let e = unconstrain(Kind::Simplex, &[0.5, 0.0, 0.5], &[], &[], &mut y2).unwrap_err();
        assert!(e.contains("element [1] is 0"), "{e}");
        // Within the tolerance the sum is accepted.
        unconstrain(Kind::Simplex, &[0.5, 0.25, 0.25 + 1e-10], &[], &[], &mut y2).unwrap();

        let mut y3 = [0.0; 3];
        let mut l = [1.0, 0.0, 0.0, 0.6, 0.8, 0.0, 0.0, 0.6, 0.8];
        unconstrain(Kind::CholeskyCorr, &l, &[], &[], &mut y3).unwrap();
        l[5] = 0.1;
        let e = unconstrain(Kind::CholeskyCorr, &l, &[], &[], &mut y3).unwrap_err();
        assert!(e.contains("element [1, 2]") && e.contains("lower triangular"), "{e}");
        l[5] = 0.0;
        l[4] = -0.8;
        let e = unconstrain(Kind::CholeskyCorr, &l, &[], &[], &mut y3).unwrap_err();
        assert!(e.contains("[1, 1]") && e.contains("positive diagonal"), "{e}");
        l[4] = 0.9;
        let e = unconstrain(Kind::CholeskyCorr, &l, &[], &[], &mut y3).unwrap_err();
        assert!(e.contains("row 1") && e.contains("squared norm"), "{e}");
        let e = unconstrain(Kind::CholeskyCorr, &[1.0; 3], &[], &[], &mut []).unwrap_err();
        assert!(e.contains("square"), "{e}");

        let e = unconstrain(Kind::Lower, &[1.0; 3], &[0.0; 2], &[], &mut y).unwrap_err();
        assert!(e.contains("lower bound has 2 values"), "{e}");
        let e = unconstrain(Kind::Identity, &[1.0; 3], &[], &[], &mut y2).unwrap_err();
        assert!(e.contains("3 unconstrained values") && e.contains("2 were given"), "{e}");
    }

    #[test]
    fn unconstrain_keeps_precision_near_bounds() {
        // x − lb tiny: y = log(x − lb) exactly, and ub − x tiny likewise.
        let mut y = [0.0; 2];
        unconstrain(Kind::LowerUpper, &[1e-300, 1.0 - 2f64.powi(-50)], &[0.0], &[1.0], &mut y).unwrap();
        assert!(close(y[0], (1e-300f64).ln(), 1e-14));
        assert!(close(y[1], -(2f64.powi(-50)).ln() + (1.0 - 2f64.powi(-50)).ln(), 1e-14));
        // A correlation of 1 − 1e-12 (1 − z formed without cancellation).
        let rho: f64 = 1.0 - 1e-12;
        let l = [1.0, 0.0, rho, (1.0 - rho * rho).sqrt()];
        let mut y1 = [0.0];
        unconstrain(Kind::CholeskyCorr, &l, &[], &[], &mut y1).unwrap();
        let mut back = [0.0; 4];
        constrain(Kind::CholeskyCorr, &y1, &[], &[], &mut back);
        assert!(close(back[2], rho, 1e-15) && close(back[3], l[3], 1e-9), "{back:?}");
    }

    #[test]
    fn stacks_transform_each_value() {
        // array[3] simplex[2] and array[2] cholesky_corr[2]: units, free lengths, round trips.
        assert_eq!(Kind::Simplex.unit(&[3, 2]), 2);
        assert_eq!(Kind::Simplex.free_len_of(&[3, 2]), 3);
        assert_eq!(Kind::CholeskyCorr.unit(&[2, 2, 2]), 4);
        assert_eq!(Kind::CholeskyCorr.free_len_of(&[2, 2, 2]), 2);
        assert_eq!(Kind::Lower.free_len_of(&[3, 2]), 6);
        let y = [0.3, -1.2, 2.0];
        let mut x = [0.0; 6];
        let lj = constrain_stack(Kind::Simplex, 2, &y, &[], &[], &mut x);
        let mut sum = 0.0;
        for b in 0..3 {
            let mut one = [0.0; 2];
            sum += constrain(Kind::Simplex, &y[b..b + 1], &[], &[], &mut one);
            assert_eq!(&x[2 * b..2 * b + 2], &one);
        }
        assert_eq!(lj, sum);
        let mut back = [0.0; 3];
        unconstrain_stack(Kind::Simplex, 2, &x, &[], &[], &mut back).unwrap();
        assert!(back.iter().zip(&y).all(|(a, b)| close(*a, *b, 1e-12)), "{back:?}");
        // The third simplex off its sum is named as the third.
        x[5] += 0.1;
        let (which, e) = unconstrain_stack(Kind::Simplex, 2, &x, &[], &[], &mut back).unwrap_err();
        assert_eq!(which, Some(2), "{e}");
        // A vjp per value: adjoints of the stack equal the values' own.
        let adj_x = [1.0, -0.5, 0.25, 2.0, -1.0, 0.5];
        let mut ay = [0.0; 3];
        constrain_vjp_stack(Kind::Simplex, 2, &y, &[], &[], &adj_x, 1.0, &mut ay, &mut [], &mut []);
        for b in 0..3 {
            let mut one = [0.0];
            constrain_vjp(
                Kind::Simplex,
                &y[b..b + 1],
                &[],
                &[],
                &adj_x[2 * b..2 * b + 2],
                1.0,
                &mut one,
                &mut [],
                &mut [],
            );
            assert_eq!(ay[b], one[0]);
        }
    }
}
