//! What a family says about one observed element given one draw: its mean and variance
//! (where they exist), a draw from it, its log density at an observed value, and for
//! classes the probabilities. One table per question, one row per family.

use crate::math::dist::{self, Family};
use rand::Rng;
use statrs::function::gamma::gamma;

/// How an observed variable is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A real-valued variate: moments, quantiles and interval metrics.
    Real,
    /// A count: as `Real`, on whole numbers.
    Int,
    /// A label: class probabilities, entropy and its split.
    Class,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Real => "real",
            Kind::Int => "int",
            Kind::Class => "class",
        }
    }
}

/// The kind of `f`'s variate, or `None` for the families `predict` does not summarise (a
/// simplex, a correlation matrix). A multivariate normal's elements are summarised by their
/// marginals ([`marginal`]).
pub fn kind(f: Family) -> Option<Kind> {
    use Family::*;
    match f {
        MultiNormal | MultiNormalCholesky => Some(Kind::Real),
        Bernoulli | BernoulliLogit | Categorical | CategoricalLogit | OrderedLogistic => Some(Kind::Class),
        Binomial | BinomialLogit | Poisson | PoissonLog | NegBinomial2 | NegBinomial | NegBinomial2Log
        | BetaBinomial => Some(Kind::Int),
        Dirichlet | LkjCorrCholesky => None,
        Normal | StdNormal | StudentT | Cauchy | HalfNormal | HalfCauchy | Exponential | Gamma | InvGamma
        | Lognormal | Beta | Uniform | Laplace | Logistic | Weibull | Frechet | Rayleigh | Pareto | Gumbel
        | ChiSquare | InvChiSquare | ScaledInvChiSquare => Some(Kind::Real),
    }
}

/// The family of one element's marginal: a multivariate normal's elements are normal, with
/// the mean's entry and the square root of the covariance's diagonal entry as parameters.
pub fn marginal(f: Family) -> Family {
    match f {
        Family::MultiNormal | Family::MultiNormalCholesky => Family::Normal,
        f => f,
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Mean and variance of an elementwise family with parameters `p` (Stan's
/// parameterisations). NaN where a moment does not exist (a Cauchy's mean, a Student-t's
/// variance at ν ≤ 2) or the parameters are invalid.
pub fn moments(f: Family, p: &[f64; 3]) -> (f64, f64) {
    use std::f64::consts::PI;
    use Family::*;
    let nan = f64::NAN;
    let (m, v) = match f {
        Normal => (p[0], p[1] * p[1]),
        StdNormal => (0.0, 1.0),
        StudentT => {
            let (nu, mu, s) = (p[0], p[1], p[2]);
            (if nu > 1.0 { mu } else { nan }, if nu > 2.0 { s * s * nu / (nu - 2.0) } else { nan })
        }
        Cauchy | HalfCauchy => (nan, nan),
        HalfNormal => (p[0] * (2.0 / PI).sqrt(), p[0] * p[0] * (1.0 - 2.0 / PI)),
        Exponential => (1.0 / p[0], 1.0 / (p[0] * p[0])),
        Gamma => (p[0] / p[1], p[0] / (p[1] * p[1])),
        InvGamma => {
            let (a, b) = (p[0], p[1]);
            (
                if a > 1.0 { b / (a - 1.0) } else { nan },
                if a > 2.0 { b * b / ((a - 1.0) * (a - 1.0) * (a - 2.0)) } else { nan },
            )
        }
        Lognormal => {
            let (mu, s2) = (p[0], p[1] * p[1]);
            ((mu + s2 / 2.0).exp(), s2.exp_m1() * (2.0 * mu + s2).exp())
        }
        Beta => {
            let (a, b) = (p[0], p[1]);
            (a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1.0)))
        }
        Uniform => ((p[0] + p[1]) / 2.0, (p[1] - p[0]) * (p[1] - p[0]) / 12.0),
        Laplace => (p[0], 2.0 * p[1] * p[1]),
        Logistic => (p[0], p[1] * p[1] * PI * PI / 3.0),
        Poisson => (p[0], p[0]),
        PoissonLog => (p[0].exp(), p[0].exp()),
        NegBinomial2 => (p[0], p[0] + p[0] * p[0] / p[1]),
        NegBinomial2Log => {
            let mu = p[0].exp();
            (mu, mu + mu * mu / p[1])
        }
        NegBinomial => (p[0] / p[1], p[0] * (p[1] + 1.0) / (p[1] * p[1])),
        BetaBinomial => {
            let (n, a, b) = (p[0], p[1], p[2]);
            (n * a / (a + b), n * a * b * (a + b + n) / ((a + b) * (a + b) * (a + b + 1.0)))
        }
        Weibull => {
            let (g1, g2) = (gamma(1.0 + 1.0 / p[0]), gamma(1.0 + 2.0 / p[0]));
            (p[1] * g1, p[1] * p[1] * (g2 - g1 * g1))
        }
        Frechet => {
            let a = p[0];
            let g1 = if a > 1.0 { gamma(1.0 - 1.0 / a) } else { nan };
            (p[1] * g1, if a > 2.0 { p[1] * p[1] * (gamma(1.0 - 2.0 / a) - g1 * g1) } else { nan })
        }
        Rayleigh => (p[0] * (PI / 2.0).sqrt(), (4.0 - PI) / 2.0 * p[0] * p[0]),
        Pareto => {
            let (m, a) = (p[0], p[1]);
            (
                if a > 1.0 { a * m / (a - 1.0) } else { nan },
                if a > 2.0 { m * m * a / ((a - 1.0) * (a - 1.0) * (a - 2.0)) } else { nan },
            )
        }
        // The Euler–Mascheroni constant times the scale, past the location.
        Gumbel => (p[0] + p[1] * 0.577_215_664_901_532_9, PI * PI * p[1] * p[1] / 6.0),
        ChiSquare => (p[0], 2.0 * p[0]),
        InvChiSquare | ScaledInvChiSquare => {
            let nu = p[0];
            let s2 = if f == ScaledInvChiSquare { p[1] * p[1] } else { 1.0 / nu };
            (
                if nu > 2.0 { nu * s2 / (nu - 2.0) } else { nan },
                if nu > 4.0 { 2.0 * nu * nu * s2 * s2 / ((nu - 2.0) * (nu - 2.0) * (nu - 4.0)) } else { nan },
            )
        }
        Binomial => (p[0] * p[1], p[0] * p[1] * (1.0 - p[1])),
        BinomialLogit => {
            let t = sigmoid(p[1]);
            (p[0] * t, p[0] * t * (1.0 - t))
        }
        Bernoulli => (p[0], p[0] * (1.0 - p[0])),
        BernoulliLogit => {
            let t = sigmoid(p[0]);
            (t, t * (1.0 - t))
        }
        Categorical | CategoricalLogit | OrderedLogistic | Dirichlet | MultiNormal | MultiNormalCholesky
        | LkjCorrCholesky => (nan, nan),
    };
    (m, v)
}

/// One draw of an elementwise family (NaN for invalid parameters).
pub fn draw<R: Rng + ?Sized>(f: Family, p: &[f64; 3], rng: &mut R) -> f64 {
    let n = f.n_params();
    let args: Vec<dist::Arg> =
        p[..n].iter().map(|v| dist::Arg { values: std::slice::from_ref(v), dims: &[] }).collect();
    let mut out = [0.0];
    dist::sample(f, &args, &mut out, rng);
    out[0]
}

/// Class probabilities of one element: `theta` for bernoulli(θ), the sigmoid for
/// bernoulli_logit (as `[1 − p, p]`), the simplex row for categorical, its softmax for
/// categorical_logit. Written into `out` (cleared first).
pub fn class_probs(f: Family, row: &[f64], out: &mut Vec<f64>) {
    out.clear();
    match f {
        Family::Bernoulli => out.extend([1.0 - row[0], row[0]]),
        Family::BernoulliLogit => {
            let t = sigmoid(row[0]);
            out.extend([1.0 - t, t]);
        }
        Family::Categorical => out.extend_from_slice(row),
        _ => {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|x| (x - m).exp()).sum();
            out.extend(row.iter().map(|x| (x - m).exp() / z));
        }
    }
}

/// The K class probabilities of `ordered_logistic(eta, c)` (K − 1 cutpoints), into `out`
/// (cleared first).
pub fn ordered_probs(eta: f64, c: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.extend((0..=c.len()).map(|l| dist::ordered_logistic_term(eta, c, l).0.exp()));
}

/// Shannon entropy in nats.
pub fn entropy(p: &[f64]) -> f64 {
    -p.iter().filter(|x| **x > 0.0).map(|x| x * x.ln()).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Every real and count family's moments against the mean and variance of its draws.
    #[test]
    fn moments_match_draws() {
        let cases: &[(Family, [f64; 3])] = &[
            (Family::Normal, [1.0, 2.0, 0.0]),
            (Family::StudentT, [5.0, 1.0, 2.0]),
            (Family::HalfNormal, [1.5, 0.0, 0.0]),
            (Family::Exponential, [2.0, 0.0, 0.0]),
            (Family::Gamma, [3.0, 2.0, 0.0]),
            (Family::InvGamma, [5.0, 2.0, 0.0]),
            (Family::Lognormal, [0.2, 0.5, 0.0]),
            (Family::Beta, [2.0, 3.0, 0.0]),
            (Family::Uniform, [-1.0, 3.0, 0.0]),
            (Family::Laplace, [1.0, 0.5, 0.0]),
            (Family::Logistic, [1.0, 0.5, 0.0]),
            (Family::Poisson, [3.5, 0.0, 0.0]),
            (Family::PoissonLog, [1.2, 0.0, 0.0]),
            (Family::NegBinomial2, [4.0, 2.5, 0.0]),
            (Family::Binomial, [10.0, 0.3, 0.0]),
            (Family::BinomialLogit, [10.0, -0.4, 0.0]),
            (Family::BernoulliLogit, [0.7, 0.0, 0.0]),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 200_000;
        for (f, p) in cases {
            let (m, v) = moments(*f, p);
            let xs: Vec<f64> = (0..n).map(|_| draw(*f, p, &mut rng)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            // Five standard errors of the mean; the variance within 5%.
            assert!((mean - m).abs() < 5.0 * (v / n as f64).sqrt(), "{f:?}: mean {mean} vs {m}");
            assert!((var - v).abs() < 0.05 * v, "{f:?}: variance {var} vs {v}");
        }
    }

    #[test]
    fn class_probabilities_sum_to_one() {
        let mut p = Vec::new();
        class_probs(Family::CategoricalLogit, &[1.0, -2.0, 0.5], &mut p);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[0] > p[2] && p[2] > p[1]);
        class_probs(Family::BernoulliLogit, &[0.0], &mut p);
        assert_eq!(p, vec![0.5, 0.5]);
        assert!((entropy(&[0.5, 0.5]) - std::f64::consts::LN_2).abs() < 1e-15);
    }
}
