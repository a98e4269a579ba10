//! The scalar families (`normal` .. `beta_binomial`): validation, each element's log density and
//! partials, and their sum over broadcast arguments.

use super::{
    is_count, lfact, positive, probability, sigmoid, softplus, xdivy, xlog1py, xlogy, Arg, Family, HALF_LN_2PI, LN_2,
    LN_PI,
};
use crate::math::vmath;
use statrs::function::gamma::{digamma, ln_gamma};

// ---------------------------------------------------------------------------------------------
// Elementwise (scalar) families
// ---------------------------------------------------------------------------------------------

/// Outcome of validating one element before any arithmetic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    Ok,
    OutOfSupport,
    Invalid,
}

/// Parameter validity for the scalar families (`p` holds up to three parameters in Stan order).
pub(super) fn params_ok(f: Family, p: &[f64; 3]) -> bool {
    use Family::*;
    match f {
        Normal | Cauchy | Lognormal | Laplace | Logistic => p[0].is_finite() && positive(p[1]),
        StdNormal => true,
        StudentT => positive(p[0]) && p[1].is_finite() && positive(p[2]),
        HalfNormal | HalfCauchy | Exponential => positive(p[0]),
        Gamma | InvGamma | Beta | NegBinomial2 | Weibull | Frechet | Pareto | ScaledInvChiSquare | NegBinomial => {
            positive(p[0]) && positive(p[1])
        }
        Rayleigh | ChiSquare | InvChiSquare => positive(p[0]),
        Gumbel | NegBinomial2Log => p[0].is_finite() && positive(p[1]),
        BetaBinomial => is_count(p[0]) && positive(p[1]) && positive(p[2]),
        Uniform => p[0].is_finite() && p[1].is_finite() && p[0] < p[1],
        Bernoulli => probability(p[0]),
        BernoulliLogit | PoissonLog => p[0].is_finite(),
        Binomial => is_count(p[0]) && probability(p[1]),
        BinomialLogit => is_count(p[0]) && p[1].is_finite(),
        Poisson => p[0] >= 0.0 && p[0].is_finite(),
        _ => false,
    }
}

/// Support check for a scalar variate, assuming valid parameters. Points where the density is
/// exactly zero (e.g. `y = 1` under `bernoulli(0)`) count as outside the support.
fn support(f: Family, x: f64, p: &[f64; 3]) -> Check {
    use Family::*;
    if x.is_nan() {
        return Check::Invalid;
    }
    let ok = match f {
        Normal | StdNormal | StudentT | Cauchy | Laplace | Logistic | Gumbel => x.is_finite(),
        HalfNormal | HalfCauchy | Exponential => x >= 0.0 && x.is_finite(),
        Gamma => x > 0.0 && x.is_finite() || x == 0.0 && p[0] <= 1.0,
        InvGamma | Lognormal | Frechet | Rayleigh | InvChiSquare | ScaledInvChiSquare => x > 0.0 && x.is_finite(),
        // At 0 the density is finite or infinite for a shape of at most 1, else 0.
        Weibull => x > 0.0 && x.is_finite() || x == 0.0 && p[0] <= 1.0,
        ChiSquare => x > 0.0 && x.is_finite() || x == 0.0 && p[0] <= 2.0,
        Pareto => x >= p[0] && x.is_finite(),
        Beta => (0.0..=1.0).contains(&x) && !(x == 0.0 && p[0] > 1.0) && !(x == 1.0 && p[1] > 1.0),
        Uniform => p[0] <= x && x <= p[1],
        Bernoulli => x == 1.0 && p[0] > 0.0 || x == 0.0 && p[0] < 1.0,
        BernoulliLogit => x == 0.0 || x == 1.0,
        Binomial => is_count(x) && x <= p[0] && !(p[1] == 0.0 && x > 0.0) && !(p[1] == 1.0 && x < p[0]),
        BinomialLogit => is_count(x) && x <= p[0],
        Poisson => is_count(x) && !(p[0] == 0.0 && x > 0.0),
        PoissonLog | NegBinomial2 | NegBinomial | NegBinomial2Log => is_count(x),
        BetaBinomial => is_count(x) && x <= p[0],
        _ => false,
    };
    if ok {
        Check::Ok
    } else {
        Check::OutOfSupport
    }
}

/// Log density of one scalar element; writes ∂/∂x into `d[0]` and ∂/∂p[j] into `d[j + 1]`.
/// Assumes `params_ok` and `support` passed.
/// With `grad == false` the partials that need ψ (digamma) are not computed (set to 0).
fn elem(f: Family, x: f64, p: &[f64; 3], d: &mut [f64; 4], grad: bool) -> f64 {
    use Family::*;
    let dg = |v: f64| if grad { digamma(v) } else { 0.0 };
    match f {
        // Stan FR "Normal distribution": N(x | μ, σ) = exp(-z²/2) / (σ√(2π)), z = (x-μ)/σ.
        Normal => {
            let (mu, s) = (p[0], p[1]);
            let z = (x - mu) / s;
            d[0] = -z / s;
            d[1] = z / s;
            d[2] = (z * z - 1.0) / s;
            -0.5 * z * z - s.ln() - HALF_LN_2PI
        }
        // Stan FR "Standard normal distribution": N(x | 0, 1).
        StdNormal => {
            d[0] = -x;
            -0.5 * x * x - HALF_LN_2PI
        }
        // Stan FR "Student-t distribution": with z = (x-μ)/σ,
        // ln p = lnΓ((ν+1)/2) − lnΓ(ν/2) − ½ln(νπ) − lnσ − (ν+1)/2 · ln(1 + z²/ν).
        StudentT => {
            let (nu, mu, s) = (p[0], p[1], p[2]);
            let z = (x - mu) / s;
            let z2 = z * z;
            let w = (nu + 1.0) / (nu + z2); // (ν+1)/(ν+z²)
            d[0] = -w * z / s;
            d[2] = -d[0];
            d[3] = (w * z2 - 1.0) / s;
            d[1] = 0.5 * (dg(0.5 * (nu + 1.0)) - dg(0.5 * nu)) - 0.5 / nu - 0.5 * (z2 / nu).ln_1p() + 0.5 * w * z2 / nu;
            ln_gamma(0.5 * (nu + 1.0))
                - ln_gamma(0.5 * nu)
                - 0.5 * (nu.ln() + LN_PI)
                - s.ln()
                - 0.5 * (nu + 1.0) * (z2 / nu).ln_1p()
        }
        // Stan FR "Cauchy distribution": p = 1 / (πσ (1 + z²)).
        Cauchy => {
            let (mu, s) = (p[0], p[1]);
            let z = (x - mu) / s;
            let q = 2.0 * z / (1.0 + z * z); // −d/dz ln p
            d[0] = -q / s;
            d[1] = q / s;
            d[2] = (q * z - 1.0) / s;
            -LN_PI - s.ln() - (z * z).ln_1p()
        }
        // Half-normal on x ≥ 0: twice the N(0, σ) density.
        HalfNormal => {
            let s = p[0];
            let z = x / s;
            d[0] = -z / s;
            d[1] = (z * z - 1.0) / s;
            LN_2 - 0.5 * z * z - s.ln() - HALF_LN_2PI
        }
        // Half-Cauchy on x ≥ 0: twice the Cauchy(0, σ) density.
        HalfCauchy => {
            let s = p[0];
            let z = x / s;
            let q = 2.0 * z / (1.0 + z * z);
            d[0] = -q / s;
            d[1] = (q * z - 1.0) / s;
            LN_2 - LN_PI - s.ln() - (z * z).ln_1p()
        }
        // Stan FR "Exponential distribution" (rate β): p = β e^{−βx}.
        Exponential => {
            let b = p[0];
            d[0] = -b;
            d[1] = 1.0 / b - x;
            b.ln() - b * x
        }
        // Stan FR "Gamma distribution" (shape α, rate β): p = βᵅ/Γ(α) x^{α−1} e^{−βx}.
        Gamma => {
            let (a, b) = (p[0], p[1]);
            d[0] = xdivy(a - 1.0, x) - b;
            d[1] = b.ln() - dg(a) + x.ln();
            d[2] = a / b - x;
            a * b.ln() - ln_gamma(a) + xlogy(a - 1.0, x) - b * x
        }
        // Stan FR "Inverse gamma distribution" (shape α, scale β): p = βᵅ/Γ(α) x^{−α−1} e^{−β/x}.
        InvGamma => {
            let (a, b) = (p[0], p[1]);
            let lx = x.ln();
            d[0] = (b / x - (a + 1.0)) / x;
            d[1] = b.ln() - dg(a) - lx;
            d[2] = a / b - 1.0 / x;
            a * b.ln() - ln_gamma(a) - (a + 1.0) * lx - b / x
        }
        // Stan FR "Lognormal distribution": ln x ~ N(μ, σ), Jacobian 1/x.
        Lognormal => {
            let (mu, s) = (p[0], p[1]);
            let lx = x.ln();
            let z = (lx - mu) / s;
            d[0] = -(z / s + 1.0) / x;
            d[1] = z / s;
            d[2] = (z * z - 1.0) / s;
            -0.5 * z * z - s.ln() - HALF_LN_2PI - lx
        }
        // Stan FR "Beta distribution": p = x^{α−1} (1−x)^{β−1} / B(α, β).
        Beta => {
            let (a, b) = (p[0], p[1]);
            let dab = dg(a + b);
            d[0] = xdivy(a - 1.0, x) - xdivy(b - 1.0, 1.0 - x);
            d[1] = x.ln() - dg(a) + dab;
            d[2] = (-x).ln_1p() - dg(b) + dab;
            xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - (ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b))
        }
        // Stan FR "Uniform distribution": p = 1/(β−α) on [α, β].
        Uniform => {
            let w = p[1] - p[0];
            d[0] = 0.0;
            d[1] = 1.0 / w;
            d[2] = -1.0 / w;
            -w.ln()
        }
        // Stan FR "Double exponential (Laplace) distribution": p = e^{−|x−μ|/σ} / (2σ).
        // At x = μ the (sub)gradient in x and μ is taken as 0.
        Laplace => {
            let (mu, s) = (p[0], p[1]);
            let r = x - mu;
            let sg = if r > 0.0 {
                1.0
            } else if r < 0.0 {
                -1.0
            } else {
                0.0
            };
            d[0] = -sg / s;
            d[1] = sg / s;
            d[2] = (r.abs() / s - 1.0) / s;
            -LN_2 - s.ln() - r.abs() / s
        }
        // Stan FR "Logistic distribution": p = e^{−z} / (σ (1 + e^{−z})²); the density is even in
        // z, so it is evaluated at |z| to avoid overflow. d/dz ln p = −tanh(z/2).
        Logistic => {
            let (mu, s) = (p[0], p[1]);
            let z = (x - mu) / s;
            let t = (0.5 * z).tanh();
            d[0] = -t / s;
            d[1] = t / s;
            d[2] = (z * t - 1.0) / s;
            let az = z.abs();
            -az - 2.0 * (-az).exp().ln_1p() - s.ln()
        }
        // Stan FR "Bernoulli distribution": P(1) = θ.
        Bernoulli => {
            let th = p[0];
            if x == 1.0 {
                d[1] = 1.0 / th;
                th.ln()
            } else {
                d[1] = -1.0 / (1.0 - th);
                (-th).ln_1p()
            }
        }
        // Stan FR "Bernoulli distribution, logit parameterization": P(1) = logit⁻¹(α), so
        // ln P(1) = −softplus(−α), ln P(0) = −softplus(α).
        BernoulliLogit => {
            if grad {
                d[1] = vmath::bernoulli_logit_term_da(x, p[0]);
            }
            vmath::bernoulli_logit_term(x, p[0])
        }
        // Stan FR "Binomial distribution": C(N, y) θʸ (1−θ)^{N−y}.
        Binomial => {
            let (n, th) = (p[0], p[1]);
            d[2] = xdivy(x, th) - xdivy(n - x, 1.0 - th);
            lfact(n) - lfact(x) - lfact(n - x) + xlogy(x, th) + xlog1py(n - x, -th)
        }
        // Stan FR "Binomial distribution, logit parameterization": θ = logit⁻¹(α).
        BinomialLogit => {
            let (n, a) = (p[0], p[1]);
            d[2] = x * sigmoid(-a) - (n - x) * sigmoid(a);
            lfact(n) - lfact(x) - lfact(n - x) - x * softplus(-a) - (n - x) * softplus(a)
        }
        // Stan FR "Poisson distribution": λʸ e^{−λ} / y!.
        Poisson => {
            let l = p[0];
            d[1] = xdivy(x, l) - 1.0;
            xlogy(x, l) - l - lfact(x)
        }
        // Stan FR "Poisson distribution, log parameterization": λ = e^α.
        PoissonLog => {
            let a = p[0];
            let l = a.exp();
            d[1] = x - l;
            x * a - l - lfact(x)
        }
        // Stan FR "Negative binomial distribution (alternative parameterization)", mean μ and
        // dispersion φ: Γ(y+φ)/(y! Γ(φ)) · (μ/(μ+φ))ʸ · (φ/(μ+φ))^φ.
        // ln(μ/(μ+φ)) = −ln(1 + φ/μ) and ln(φ/(μ+φ)) = −ln(1 + μ/φ).
        NegBinomial2 => {
            let (mu, phi) = (p[0], p[1]);
            let l1 = (mu / phi).ln_1p();
            d[0] = 0.0;
            d[1] = x / mu - (x + phi) / (mu + phi);
            d[2] = dg(x + phi) - dg(phi) - l1 + (mu - x) / (mu + phi);
            ln_gamma(x + phi) - lfact(x) - ln_gamma(phi) - xlog1py(x, phi / mu) - phi * l1
        }
        // Stan FR "Weibull distribution" (shape α, scale σ), z = x/σ:
        // ln p = ln α − ln σ + (α−1) ln z − zᵅ.
        Weibull => {
            let (a, s) = (p[0], p[1]);
            let z = x / s;
            let za = z.powf(a);
            let lz = z.ln();
            d[0] = xdivy(a - 1.0, x) - a * z.powf(a - 1.0) / s;
            d[1] = 1.0 / a + lz * (1.0 - za);
            d[2] = a * (za - 1.0) / s;
            a.ln() - s.ln() + xlogy(a - 1.0, z) - za
        }
        // Stan FR "Fréchet distribution" (shape α, scale σ), z = x/σ:
        // ln p = ln α − ln σ − (1+α) ln z − z⁻ᵅ.
        Frechet => {
            let (a, s) = (p[0], p[1]);
            let lz = (x / s).ln();
            let zi = (-a * lz).exp();
            d[0] = (a * zi - (1.0 + a)) / x;
            d[1] = 1.0 / a - lz * (1.0 - zi);
            d[2] = a * (1.0 - zi) / s;
            a.ln() - s.ln() - (1.0 + a) * lz - zi
        }
        // Stan FR "Rayleigh distribution": p = x/σ² · e^{−x²/(2σ²)}.
        Rayleigh => {
            let s = p[0];
            let z = x / s;
            d[0] = 1.0 / x - z / s;
            d[1] = (z * z - 2.0) / s;
            x.ln() - 2.0 * s.ln() - 0.5 * z * z
        }
        // Stan FR "Pareto type 1 distribution" (y_min, shape α): p = α y_minᵅ / x^{α+1}.
        Pareto => {
            let (m, a) = (p[0], p[1]);
            let (lm, lx) = (m.ln(), x.ln());
            d[0] = -(a + 1.0) / x;
            d[1] = a / m;
            d[2] = 1.0 / a + lm - lx;
            a.ln() + a * lm - (a + 1.0) * lx
        }
        // Stan FR "Gumbel distribution" (location μ, scale β), z = (x−μ)/β:
        // ln p = −ln β − z − e^{−z}.
        Gumbel => {
            let (mu, b) = (p[0], p[1]);
            let z = (x - mu) / b;
            let e = (-z).exp();
            d[0] = (e - 1.0) / b;
            d[1] = (1.0 - e) / b;
            d[2] = (z - 1.0 - z * e) / b;
            -b.ln() - z - e
        }
        // Stan FR "Chi-square distribution": a gamma with shape ν/2 and rate 1/2.
        ChiSquare => {
            let h = 0.5 * p[0];
            d[0] = xdivy(h - 1.0, x) - 0.5;
            d[1] = 0.5 * (x.ln() - LN_2 - dg(h));
            -h * LN_2 - ln_gamma(h) + xlogy(h - 1.0, x) - 0.5 * x
        }
        // Stan FR "Inverse chi-square distribution": an inverse gamma with shape ν/2, scale 1/2.
        InvChiSquare => {
            let h = 0.5 * p[0];
            let lx = x.ln();
            d[0] = (0.5 / x - (h + 1.0)) / x;
            d[1] = -0.5 * (lx + LN_2 + dg(h));
            -h * LN_2 - ln_gamma(h) - (h + 1.0) * lx - 0.5 / x
        }
        // Stan FR "Scaled inverse chi-square distribution" (ν, scale s): an inverse gamma
        // with shape ν/2 and scale ν s²/2.
        ScaledInvChiSquare => {
            let (nu, s) = (p[0], p[1]);
            let h = 0.5 * nu;
            let lx = x.ln();
            let s2x = s * s / x;
            d[0] = (h * s2x - (h + 1.0)) / x;
            d[1] = 0.5 * (h.ln() + 1.0 - dg(h) - lx - s2x) + s.ln();
            d[2] = nu / s - nu * s / x;
            h * h.ln() - ln_gamma(h) + nu * s.ln() - (h + 1.0) * lx - h * s2x
        }
        // Stan FR "Negative binomial distribution" (shape α, inverse scale β):
        // Γ(y+α)/(y! Γ(α)) · (β/(1+β))ᵅ · (1/(1+β))ʸ.
        NegBinomial => {
            let (a, b) = (p[0], p[1]);
            let l1b = b.ln_1p();
            d[1] = dg(x + a) - dg(a) + b.ln() - l1b;
            d[2] = a / b - (a + x) / (1.0 + b);
            ln_gamma(x + a) - lfact(x) - ln_gamma(a) + a * b.ln() - (a + x) * l1b
        }
        // Stan FR "Negative binomial distribution (log alternative parameterization)": μ = e^η,
        // with L = ln(μ + φ) computed from η without overflow.
        NegBinomial2Log => {
            let (eta, phi) = (p[0], p[1]);
            let lphi = phi.ln();
            let l = eta.max(lphi) + (-(eta - lphi).abs()).exp().ln_1p();
            d[1] = x - (x + phi) * (eta - l).exp();
            d[2] = dg(x + phi) - dg(phi) + lphi + 1.0 - l - (x + phi) * (-l).exp();
            ln_gamma(x + phi) - lfact(x) - ln_gamma(phi) + x * eta + phi * lphi - (x + phi) * l
        }
        // Stan FR "Beta-binomial distribution": C(N, y) B(y+α, N−y+β) / B(α, β).
        BetaBinomial => {
            let (n, a, b) = (p[0], p[1], p[2]);
            let (dn, dab) = (dg(n + a + b), dg(a + b));
            d[2] = dg(x + a) - dn - dg(a) + dab;
            d[3] = dg(n - x + b) - dn - dg(b) + dab;
            lfact(n) - lfact(x) - lfact(n - x) + ln_gamma(x + a) + ln_gamma(n - x + b)
                - ln_gamma(n + a + b)
                - (ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b))
        }
        _ => f64::NAN,
    }
}

/// Whether argument `j` of a scalar family receives a gradient.
fn elem_has_grad(f: Family, j: usize) -> bool {
    !(j == 0 && f.is_discrete()
        || j == 1 && matches!(f, Family::Binomial | Family::BinomialLogit | Family::BetaBinomial))
}

/// Whether `f`'s density is a sum over elements of a scalar density (the families
/// [`elementwise`] handles): compiled code evaluates those one element at a time.
pub fn is_elementwise(f: Family) -> bool {
    use Family::*;
    match f {
        Categorical | CategoricalLogit | OrderedLogistic | Dirichlet | MultiNormal | MultiNormalCholesky
        | LkjCorrCholesky => false,
        Normal | StdNormal | StudentT | Cauchy | HalfNormal | HalfCauchy | Exponential | Gamma | InvGamma
        | Lognormal | Beta | Uniform | Laplace | Logistic | Bernoulli | BernoulliLogit | Binomial | BinomialLogit
        | Poisson | PoissonLog | NegBinomial2 | Weibull | Frechet | Rayleigh | Pareto | Gumbel | ChiSquare
        | InvChiSquare | ScaledInvChiSquare | NegBinomial | NegBinomial2Log | BetaBinomial => true,
    }
}

/// One element of an elementwise family: its log density, NaN when the parameters are
/// invalid or x is NaN, −∞ when x is outside the support (as [`log_density`](super::log_density)
/// for the sum).
pub fn elem_log_density(f: Family, x: f64, p: &[f64; 3]) -> f64 {
    if !params_ok(f, p) {
        return f64::NAN;
    }
    match support(f, x, p) {
        Check::Invalid => f64::NAN,
        Check::OutOfSupport => f64::NEG_INFINITY,
        Check::Ok => elem(f, x, p, &mut [0.0; 4], false),
    }
}

/// The partial derivatives of one element's log density in (x, p[0], p[1], p[2]); zero for an
/// argument without a gradient (a discrete variate, a binomial's trial count).
pub fn elem_partials(f: Family, x: f64, p: &[f64; 3], d: &mut [f64; 4]) {
    *d = [0.0; 4];
    if f == Family::BernoulliLogit {
        // The partial alone (the value's softplus is the costly part), as `elem` computes it.
        d[1] = vmath::bernoulli_logit_term_da(x, p[0]);
        return;
    }
    elem(f, x, p, d, true);
    for (j, dj) in d.iter_mut().enumerate() {
        if !elem_has_grad(f, j) {
            *dj = 0.0;
        }
    }
}

/// The elements of a scalar family's broadcast arguments: each argument has length 1 or n.
pub(super) struct Broadcast<'a, 'b> {
    args: &'a [Arg<'b>],
    pub n: usize,
}

impl<'a, 'b> Broadcast<'a, 'b> {
    /// `None` when the lengths do not broadcast (one of them empty gives n = 0).
    pub(super) fn of(args: &'a [Arg<'b>]) -> Option<Self> {
        let lens = args.iter().map(|a| a.values.len());
        let n = if lens.clone().any(|l| l == 0) { 0 } else { lens.clone().max().unwrap_or(0) };
        (!lens.clone().any(|l| l != n && l != 1)).then_some(Broadcast { args, n })
    }

    /// Element i: the variate and up to three parameters.
    pub(super) fn load(&self, i: usize) -> (f64, [f64; 3]) {
        let at = |a: &Arg, i: usize| if a.values.len() == 1 { a.values[0] } else { a.values[i] };
        let mut p = [0.0; 3];
        for (j, a) in self.args[1..].iter().enumerate() {
            p[j] = at(a, i);
        }
        (at(&self.args[0], i), p)
    }
}

pub(super) fn elementwise(f: Family, args: &[Arg], grads: Option<&mut [&mut [f64]]>) -> f64 {
    let Some(b) = Broadcast::of(args) else { return f64::NAN };
    let n = b.n;
    if f == Family::BernoulliLogit {
        return bernoulli_logit(args[0].values, args[1].values, n, grads);
    }
    if f == Family::Normal {
        let (x, mu, s) = (args[0].values, args[1].values, args[2].values);
        let lp = super::normal_array(x, mu, s, n);
        if let (Some(g), true) = (grads, lp.is_finite()) {
            let [dx, dmu, ds] = g else { return f64::NAN };
            super::normal_array_partials((x, mu, s), n, 1.0, dx, dmu, ds);
        }
        return lp;
    }
    let np = f.n_params();
    let load = |i: usize| b.load(i);
    // First pass: validate everything, so that no gradient is touched unless the result is a
    // proper log density. Invalid parameters take precedence over an out-of-support variate.
    let mut worst = Check::Ok;
    for i in 0..n {
        let (x, p) = load(i);
        if !params_ok(f, &p) {
            return f64::NAN;
        }
        worst = worst.max(support(f, x, &p));
    }
    match worst {
        Check::Invalid => return f64::NAN,
        Check::OutOfSupport => return f64::NEG_INFINITY,
        Check::Ok => {}
    }
    let mut lp = 0.0;
    let mut d = [0.0; 4];
    match grads {
        None => {
            for i in 0..n {
                let (x, p) = load(i);
                lp += elem(f, x, &p, &mut d, false);
            }
        }
        Some(g) => {
            for i in 0..n {
                let (x, p) = load(i);
                lp += elem(f, x, &p, &mut d, true);
                for j in 0..=np {
                    if elem_has_grad(f, j) {
                        let gj = &mut *g[j];
                        if gj.len() == 1 {
                            gj[0] += d[j];
                        } else {
                            gj[i] += d[j];
                        }
                    }
                }
            }
        }
    }
    lp
}

/// `bernoulli_logit` over whole arrays, four elements at a time (`math::vmath`), as compiled
/// code computes it too, with the checks of [`elementwise`] (a non-finite logit or a NaN label
/// gives NaN, a label outside {0, 1} −∞) made in the same pass as the sum.
fn bernoulli_logit(y: &[f64], a: &[f64], n: usize, grads: Option<&mut [&mut [f64]]>) -> f64 {
    let Some(lp) = vmath::bernoulli_logit_checked(y, a, n, None) else {
        return bernoulli_logit_failed(y, a);
    };
    if let Some(g) = grads {
        let ga = &mut *g[1];
        vmath::bernoulli_logit_partials(y, a, n, |i, d| {
            if ga.len() == 1 {
                ga[0] += d;
            } else {
                ga[i] += d;
            }
        });
    }
    lp
}

/// `bernoulli_logit` summed over n elements (`y` and `a` of length n or 1), with each element's
/// partial in its logit written to `d` (n elements) when the result is finite: what compiled
/// code keeps for its reverse sweep. The same bits as [`log_density`](super::log_density).
pub fn bernoulli_logit_keep_partials(y: &[f64], a: &[f64], d: &mut [f64]) -> f64 {
    match vmath::bernoulli_logit_checked(y, a, d.len(), Some(d)) {
        Some(lp) => lp,
        None => bernoulli_logit_failed(y, a),
    }
}

/// What the checks give when some argument is outside the domain: NaN for a logit that is not
/// finite or a NaN label, −∞ for another label outside {0, 1}.
fn bernoulli_logit_failed(y: &[f64], a: &[f64]) -> f64 {
    if a.iter().any(|v| !v.is_finite()) || y.iter().any(|v| v.is_nan()) {
        f64::NAN
    } else if y.iter().any(|v| *v != 0.0 && *v != 1.0) {
        f64::NEG_INFINITY
    } else {
        // Not reached: the pass flags exactly these cases.
        f64::NAN
    }
}
