//! Variational inference: a Gaussian q on the unconstrained space fitted by maximising the
//! evidence lower bound, ELBO(q) = E_q[log p(θ)] + H[q].
//!
//! - [`advi`]: Stan's ADVI (Kucukelbir et al. 2017), full batch, mean-field or full-rank.
//! - [`bbb`]: Bayes by Backprop (Blundell et al. 2015) on minibatches of the model's
//!   observation rows, through the compiler's minibatch program.
//! - [`psis`]: Pareto k̂ of the importance ratios p/q (Yao et al. 2018), how far q can be
//!   trusted.
pub mod adam;
pub mod advi;
pub mod bbb;
pub mod psis;

use crate::density::{EvalError, LogDensity};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// A Gaussian on the unconstrained space.
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub mu: Vec<f64>,
    pub scale: Scale,
}

/// How a [`Gaussian`]'s spread is held.
#[derive(Clone, Debug, PartialEq)]
pub enum Scale {
    /// Mean-field: ω = log σ per coordinate.
    LogSd(Vec<f64>),
    /// Full-rank: the lower-triangular Cholesky factor L of the covariance, row-major n×n.
    Chol(Vec<f64>),
}

impl Gaussian {
    /// Centred at `mu` with unit variances.
    pub fn standard(mu: Vec<f64>, full_rank: bool) -> Gaussian {
        Gaussian::isotropic(mu, full_rank, 1.0)
    }

    /// Mean `mu`, every standard deviation `sd`, no correlation.
    pub fn isotropic(mu: Vec<f64>, full_rank: bool, sd: f64) -> Gaussian {
        let n = mu.len();
        let scale = if full_rank {
            let mut l = vec![0.0; n * n];
            (0..n).for_each(|i| l[i * n + i] = sd);
            Scale::Chol(l)
        } else {
            Scale::LogSd(vec![sd.ln(); n])
        };
        Gaussian { mu, scale }
    }

    pub fn dim(&self) -> usize {
        self.mu.len()
    }

    /// θ = μ + σ ⊙ ε, or μ + L ε.
    pub fn transform(&self, eps: &[f64], theta: &mut [f64]) {
        let n = self.dim();
        match &self.scale {
            Scale::LogSd(w) => (0..n).for_each(|i| theta[i] = self.mu[i] + w[i].exp() * eps[i]),
            Scale::Chol(l) => {
                for i in 0..n {
                    theta[i] = self.mu[i] + (0..=i).map(|j| l[i * n + j] * eps[j]).sum::<f64>();
                }
            }
        }
    }

    /// The entropy H[q].
    pub fn entropy(&self) -> f64 {
        let n = self.dim();
        let log_det = match &self.scale {
            Scale::LogSd(w) => w.iter().sum::<f64>(),
            Scale::Chol(l) => (0..n).map(|i| l[i * n + i].abs().ln()).sum(),
        };
        0.5 * n as f64 * (1.0 + LOG_2PI) + log_det
    }

    /// log q(θ) at the point made from standard normal `eps`.
    pub fn log_density_at(&self, eps: &[f64]) -> f64 {
        let n = self.dim() as f64;
        let quad: f64 = eps.iter().map(|e| e * e).sum();
        -0.5 * (n * LOG_2PI + quad) - (self.entropy() - 0.5 * n * (1.0 + LOG_2PI))
    }

    /// The standard deviation of each coordinate.
    pub fn sd(&self) -> Vec<f64> {
        let n = self.dim();
        match &self.scale {
            Scale::LogSd(w) => w.iter().map(|w| w.exp()).collect(),
            Scale::Chol(l) => (0..n).map(|i| (0..=i).map(|j| l[i * n + j].powi(2)).sum::<f64>().sqrt()).collect(),
        }
    }

    /// Every free number of q, μ then the spread, as one vector.
    pub fn params(&self) -> Vec<f64> {
        let mut v = self.mu.clone();
        match &self.scale {
            Scale::LogSd(w) => v.extend_from_slice(w),
            Scale::Chol(l) => v.extend_from_slice(l),
        }
        v
    }

    /// Add `step` (laid out as [`Gaussian::params`]); the upper triangle of L stays 0.
    pub fn add(&mut self, step: &[f64]) {
        let n = self.dim();
        self.mu.iter_mut().zip(step).for_each(|(m, s)| *m += s);
        match &mut self.scale {
            Scale::LogSd(w) => w.iter_mut().zip(&step[n..]).for_each(|(w, s)| *w += s),
            Scale::Chol(l) => {
                for i in 0..n {
                    for j in 0..=i {
                        l[i * n + j] += step[n + i * n + j];
                    }
                }
            }
        }
    }

    /// A Monte Carlo estimate of the ELBO from `draws` draws. Draws where the density cannot
    /// be evaluated are dropped; when most cannot, the estimate fails.
    pub fn elbo<D: LogDensity + ?Sized>(&self, d: &mut D, rng: &mut impl Rng, draws: usize) -> Result<f64, EvalError> {
        let n = self.dim();
        let (mut eps, mut theta, mut grad) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let (mut sum, mut ok) = (0.0, 0usize);
        let mut last = None;
        for _ in 0..draws {
            eps.iter_mut().for_each(|e| *e = StandardNormal.sample(rng));
            self.transform(&eps, &mut theta);
            match d.logp_grad(&theta, &mut grad) {
                Ok(lp) if lp.is_finite() => {
                    sum += lp;
                    ok += 1;
                }
                Ok(_) => last = Some(EvalError::recoverable("the log density is not finite")),
                Err(e) => last = Some(e),
            }
        }
        if ok * 2 < draws.max(1) {
            return Err(last.unwrap_or_else(|| EvalError::recoverable("no draws")));
        }
        Ok(sum / ok as f64 + self.entropy())
    }

    /// The ELBO's gradient with respect to [`Gaussian::params`], by the reparameterisation
    /// trick from `samples` draws, the entropy's gradient added exactly. A draw where the
    /// density cannot be evaluated is drawn again, up to a limit.
    pub fn elbo_grad<D: LogDensity + ?Sized>(
        &self,
        d: &mut D,
        rng: &mut impl Rng,
        samples: usize,
        out: &mut [f64],
    ) -> Result<(), EvalError> {
        let n = self.dim();
        let (mut eps, mut theta, mut g) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        out.iter_mut().for_each(|v| *v = 0.0);
        let mut taken = 0;
        let mut tries = 0;
        while taken < samples {
            tries += 1;
            eps.iter_mut().for_each(|e| *e = StandardNormal.sample(rng));
            self.transform(&eps, &mut theta);
            match d.logp_grad(&theta, &mut g) {
                Ok(lp) if lp.is_finite() && g.iter().all(|v| v.is_finite()) => {}
                other => {
                    if tries > 10 * samples + 10 {
                        return Err(match other {
                            Err(e) => e,
                            _ => EvalError::recoverable("the log density's gradient is not finite at draws from q"),
                        });
                    }
                    continue;
                }
            }
            taken += 1;
            for i in 0..n {
                out[i] += g[i];
            }
            match &self.scale {
                Scale::LogSd(w) => (0..n).for_each(|i| out[n + i] += g[i] * eps[i] * w[i].exp()),
                Scale::Chol(_) => {
                    for i in 0..n {
                        for j in 0..=i {
                            out[n + i * n + j] += g[i] * eps[j];
                        }
                    }
                }
            }
        }
        let s = samples as f64;
        out.iter_mut().for_each(|v| *v /= s);
        match &self.scale {
            Scale::LogSd(_) => out[n..].iter_mut().for_each(|v| *v += 1.0),
            Scale::Chol(l) => (0..n).for_each(|i| out[n + i * n + i] += 1.0 / l[i * n + i]),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// log N(θ | m, diag(s²)) as a density.
    struct Normal {
        m: Vec<f64>,
        s: Vec<f64>,
    }
    impl LogDensity for Normal {
        fn dim(&self) -> usize {
            self.m.len()
        }
        fn logp_grad(&mut self, t: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
            let mut lp = 0.0;
            for i in 0..t.len() {
                let z = (t[i] - self.m[i]) / self.s[i];
                lp -= 0.5 * z * z + self.s[i].ln() + 0.5 * LOG_2PI;
                g[i] = -z / self.s[i];
            }
            Ok(lp)
        }
    }

    #[test]
    fn the_elbo_of_q_equal_to_p_is_zero_and_its_gradient_vanishes() {
        let mut p = Normal { m: vec![1.0, -2.0], s: vec![0.5, 3.0] };
        for full in [false, true] {
            let mut q = Gaussian::standard(p.m.clone(), full);
            match &mut q.scale {
                Scale::LogSd(w) => w.iter_mut().zip(&p.s).for_each(|(w, s)| *w = s.ln()),
                Scale::Chol(l) => {
                    l[0] = 0.5;
                    l[3] = 3.0;
                }
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(3);
            // E_q[log p] = −H[q]: the estimate's sd is √(d/2)/√draws = 0.007.
            let e = q.elbo(&mut p, &mut rng, 20000).unwrap();
            assert!(e.abs() < 0.03, "{e}");
            let mut g = vec![0.0; q.params().len()];
            q.elbo_grad(&mut p, &mut rng, 20000, &mut g).unwrap();
            assert!(g.iter().all(|v| v.abs() < 0.05), "{g:?}");
            assert!(q.sd().iter().zip([0.5, 3.0]).all(|(a, b)| (a - b).abs() < 1e-12));
        }
    }

    /// As Stan's, the first ELBO estimate's relative change is 1 (against an ELBO of 0), so a
    /// run that starts at the answer still makes three estimates before the median change
    /// can fall below the tolerance.
    #[test]
    fn advi_does_not_converge_at_its_first_estimate() {
        // The normal density times e⁻⁵⁰, so that the ELBO is −50 rather than 0.
        struct Unnormalised(Normal);
        impl LogDensity for Unnormalised {
            fn dim(&self) -> usize {
                self.0.dim()
            }
            fn logp_grad(&mut self, t: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
                Ok(self.0.logp_grad(t, g)? - 50.0)
            }
        }
        let mut p = Unnormalised(Normal { m: vec![0.5, -1.0], s: vec![1.0, 1.0] });
        let s = crate::infer::vi::advi::Settings { eta: Some(0.01), ..Default::default() };
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let o = crate::infer::vi::advi::fit(&mut p, vec![0.5, -1.0], &s, &mut rng, &mut |_| {}).unwrap();
        assert_eq!(o.trace[0].2, 1.0, "{:?}", o.trace);
        assert!(o.converged && o.iterations >= 300 && !o.diverging, "{} {:?}", o.iterations, o.trace);
    }

    #[test]
    fn log_q_integrates_with_its_entropy() {
        let q = Gaussian { mu: vec![0.0, 0.0], scale: Scale::LogSd(vec![0.3, -1.0]) };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let n = 40000;
        let mean: f64 = (0..n)
            .map(|_| {
                let e: Vec<f64> = (0..2).map(|_| StandardNormal.sample(&mut rng)).collect();
                q.log_density_at(&e)
            })
            .sum::<f64>()
            / n as f64;
        assert!((mean + q.entropy()).abs() < 0.02, "{mean} vs {}", -q.entropy());
    }
}
