//! Pareto k̂ (Vehtari et al. 2024; for variational fits, Yao et al. 2018): the shape of a
//! generalised Pareto distribution fitted to the largest importance ratios p(θ)/q(θ) over
//! draws from q. Below 0.5 q covers p well; up to 0.7 importance sampling still corrects it;
//! above 0.7 the ratios have so heavy a tail that neither q nor a correction of it can be
//! trusted.

/// k̂ from log importance ratios (any additive constant). `None` with fewer than 10 finite
/// ratios, or a tail without spread (one ratio dwarfing all the others).
pub fn pareto_k(log_ratios: &[f64]) -> Option<f64> {
    let mut lw: Vec<f64> = log_ratios.iter().copied().filter(|v| v.is_finite()).collect();
    let s = lw.len();
    if s < 10 {
        return None;
    }
    lw.sort_by(|a, b| a.total_cmp(b));
    // The tail: the largest M ratios, M = ⌈min(0.2 S, 3 √S)⌉.
    let m = ((0.2 * s as f64).min(3.0 * (s as f64).sqrt())).ceil() as usize;
    let m = m.clamp(5, s - 1);
    let top = lw[s - 1];
    let cut = (lw[s - m - 1] - top).exp();
    let tail: Vec<f64> = lw[s - m..].iter().map(|v| (v - top).exp() - cut).collect();
    if tail.last().is_none_or(|&t| t <= 0.0) {
        return None;
    }
    // A tail of one dominating ratio and zeros has no shape to fit.
    Some(gpd_shape(&tail)).filter(|k| k.is_finite())
}

/// The shape of a generalised Pareto distribution fitted to exceedances `x` (ascending,
/// positive) by Zhang and Stephens' (2009) empirical Bayes estimate, with the weakly
/// informative prior on the shape of Vehtari et al. (10 pseudo-observations at 0.5).
fn gpd_shape(x: &[f64]) -> f64 {
    let n = x.len();
    let nf = n as f64;
    let m = 30 + nf.sqrt() as usize;
    let quartile = x[((nf / 4.0 + 0.5) as usize).saturating_sub(1).min(n - 1)];
    let xmax = x[n - 1];
    // Candidate values of θ = −k/σ, and the profile log-likelihood of each.
    let thetas: Vec<f64> =
        (1..=m).map(|j| 1.0 / xmax + (1.0 - (m as f64 / (j as f64 - 0.5)).sqrt()) / (3.0 * quartile)).collect();
    let k_of = |t: f64| x.iter().map(|v| (-t * v).ln_1p()).sum::<f64>() / nf;
    let loglik: Vec<f64> = thetas.iter().map(|&t| nf * ((-t / k_of(t)).ln() - k_of(t) - 1.0)).collect();
    // Posterior weights of the candidates (normalised without overflow).
    let weights: Vec<f64> =
        loglik.iter().map(|&li| 1.0 / loglik.iter().map(|&lj| (lj - li).exp()).sum::<f64>()).collect();
    let kept: Vec<(f64, f64)> =
        thetas.iter().zip(&weights).filter(|(_, w)| **w >= 10.0 * f64::EPSILON).map(|(t, w)| (*t, *w)).collect();
    let total: f64 = kept.iter().map(|(_, w)| w).sum();
    let theta: f64 = kept.iter().map(|(t, w)| t * w).sum::<f64>() / total;
    // (θ < 0 for a heavy tail, where k > 0.)
    let k = k_of(theta);
    (nf * k + 10.0 * 0.5) / (nf + 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// Log ratios whose exponentials are Pareto with shape k (tail index 1/k).
    fn pareto_log_ratios(k: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| -k * (1.0 - rng.random::<f64>()).ln()).collect()
    }

    #[test]
    fn recovers_the_shape_of_pareto_ratios() {
        for k in [1.0, 0.3, 0.6] {
            let mut ks: Vec<f64> = (0..9).map(|s| pareto_k(&pareto_log_ratios(k, 20000, s)).unwrap()).collect();
            ks.sort_by(|a, b| a.total_cmp(b));
            assert!((ks[4] - k).abs() < 0.12, "k = {k}: median estimate {}", ks[4]);
        }
    }

    #[test]
    fn equal_densities_give_a_light_tail() {
        // p = q up to a constant: every ratio is the same but for rounding; bounded ratios
        // have a negative shape.
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let lw: Vec<f64> = (0..1000).map(|_| rng.random::<f64>() * 0.01).collect();
        assert!(pareto_k(&lw).unwrap() < 0.5);
    }
}
