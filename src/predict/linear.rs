//! The linearised (GLM) predictive of a Laplace fit (MacKay 1992; Immer et al. 2021, the
//! predictive laplace-torch recommends for networks): each distribution argument a(θ) of an
//! observed element is replaced by its first-order expansion at the mode θ*,
//! a(θ*) + J(θ − θ*), so the Gaussian over θ gives a Gaussian over the network's outputs
//! instead of being pushed through its nonlinearity. J(θ − θ*) is the directional derivative
//! (a(θ* + ε(θ − θ*)) − a(θ*)) / ε, two forward passes per draw. Arguments that must stay
//! positive or probabilities are expanded where they are unconstrained: a scale that the
//! expansion would make non-positive in log space, a probability in logit space, a simplex
//! row in log space and renormalised.

use crate::compiled::{Forward, SiteValues};
use crate::density::EvalError;
use crate::math::dist::Family;

const EPS: f64 = 1e-4;

pub struct Linearised {
    mode: Vec<f64>,
    point: Vec<f64>,
    /// Each site's arguments at the mode, then the expansion at the last draw.
    base: Vec<Vec<Vec<f64>>>,
    lin: Vec<Vec<Vec<f64>>>,
}

fn args_of(fw: &Forward) -> Vec<Vec<Vec<f64>>> {
    (0..fw.program().sites.len()).map(|k| fw.site(k).args.iter().map(|a| a.to_vec()).collect()).collect()
}

impl Linearised {
    /// Expand at `mode` (a constrained draw of the forward program).
    pub fn new(fw: &mut Forward, mode: &[f64]) -> Result<Linearised, EvalError> {
        fw.eval(mode)?;
        let base = args_of(fw);
        Ok(Linearised { mode: mode.to_vec(), point: mode.to_vec(), lin: base.clone(), base })
    }

    /// The expansion at `draw`; `fw` is left evaluated near the mode (its observed values,
    /// which do not depend on the draw, are read from it).
    pub fn eval(&mut self, fw: &mut Forward, draw: &[f64]) -> Result<(), EvalError> {
        for ((p, m), d) in self.point.iter_mut().zip(&self.mode).zip(draw) {
            *p = m + EPS * (d - m);
        }
        fw.eval(&self.point)?;
        let p = fw.program();
        for (k, site) in p.sites.iter().enumerate() {
            let sv = fw.site(k);
            for (a, moved) in sv.args.iter().enumerate() {
                let (base, out) = (&self.base[k][a], &mut self.lin[k][a]);
                expand(site.family, a, base, moved, out);
                if site.family == Family::Categorical && a == 0 {
                    let kk = p.info(site.args[0]).shape.last().copied().unwrap_or(1).max(1);
                    for row in out.chunks_mut(kk) {
                        let s: f64 = row.iter().sum();
                        row.iter_mut().for_each(|v| *v /= s);
                    }
                }
            }
        }
        Ok(())
    }

    /// Site `k` with the expanded arguments.
    pub fn site<'a>(&'a self, fw: &'a Forward, k: usize) -> SiteValues<'a> {
        let sv = fw.site(k);
        SiteValues { args: self.lin[k].iter().map(Vec::as_slice).collect(), ..sv }
    }
}

/// a(θ* + Δ) ≈ a(θ*) + (a(θ* + εΔ) − a(θ*)) / ε, in the space where the argument is free.
fn expand(family: Family, arg: usize, base: &[f64], moved: &[f64], out: &mut [f64]) {
    let probability =
        matches!((family, arg), (Family::Bernoulli, 0) | (Family::Binomial, 1) | (Family::Categorical, 0));
    for ((o, &b), &m) in out.iter_mut().zip(base).zip(moved) {
        *o = if probability && family == Family::Categorical {
            (b.ln() + (m.ln() - b.ln()) / EPS).exp()
        } else if probability {
            let logit = |p: f64| (p / (1.0 - p)).ln();
            1.0 / (1.0 + (-(logit(b) + (logit(m) - logit(b)) / EPS)).exp())
        } else {
            let linear = b + (m - b) / EPS;
            if b > 0.0 && linear <= 0.0 && m > 0.0 {
                (b.ln() + (m.ln() - b.ln()) / EPS).exp()
            } else {
                linear
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansions_are_first_order_and_keep_supports() {
        let mut out = [0.0];
        // Linear: exact for a linear argument.
        expand(Family::Normal, 0, &[1.0], &[1.0 + EPS * 3.0], &mut out);
        assert!((out[0] - 4.0).abs() < 1e-9);
        // A scale the linear expansion would make negative stays positive.
        expand(Family::Normal, 1, &[1.0], &[1.0 - EPS * 3.0], &mut out);
        assert!(out[0] > 0.0 && (out[0] - (-3.0f64).exp()).abs() < 1e-3);
        // A probability moves in logit space.
        expand(Family::Bernoulli, 0, &[0.5], &[0.5 + EPS * 0.25 * 10.0], &mut out);
        assert!(out[0] > 0.99 && out[0] < 1.0);
    }
}
