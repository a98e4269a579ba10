//! Warmup adaptation on Stan's schedule: dual averaging of the step size (Nesterov 2009;
//! Hoffman & Gelman 2014) and windowed estimation of the metric (an initial buffer of 75
//! iterations, windows of 25 doubling in length, a terminal buffer of 50).
//!
//! Two choices differ from Stan's, both measured against nuts-rs on the same compiled
//! densities (book/src/performance.md, "NUTS against nuts-rs"):
//! - the dual averaging restarts (after Stan's step size search) only when a metric update
//!   moves some variance by more than a factor of 3, as the first update after the unit
//!   metric usually does; otherwise it runs on. Stan restarts at every update, so its final
//!   step size averages only the 50 iterations of the terminal buffer; with the large
//!   iteration-to-iteration spread of the acceptance statistic, so short an average lands
//!   below the target's step size (realised acceptance 0.89–0.94 for a target of 0.8) and
//!   trajectories are longer than they need be;
//! - the metric is shrunk towards 10⁻³ times the previous metric's largest variance rather
//!   than towards 10⁻³ (see [`Moments::regularised`]): a posterior standard deviation of 10⁻³
//!   is ordinary (regression coefficients on large-valued predictors), and Stan's fixed
//!   target inflates such a variance tenfold.

/// Dual averaging of log step size towards a target acceptance statistic.
#[derive(Clone, Debug)]
pub struct StepSizeAdapter {
    pub delta: f64,
    gamma: f64,
    kappa: f64,
    t0: f64,
    mu: f64,
    counter: f64,
    s_bar: f64,
    x_bar: f64,
}

impl StepSizeAdapter {
    pub fn new(delta: f64) -> StepSizeAdapter {
        StepSizeAdapter { delta, gamma: 0.05, kappa: 0.75, t0: 10.0, mu: 0.0, counter: 0.0, s_bar: 0.0, x_bar: 0.0 }
    }

    /// Start again around a new step size (after the metric changes).
    pub fn restart(&mut self, epsilon: f64) {
        self.mu = (10.0 * epsilon).ln();
        self.counter = 0.0;
        self.s_bar = 0.0;
        self.x_bar = 0.0;
    }

    /// The next step size after a transition with acceptance statistic `accept`.
    pub fn learn(&mut self, accept: f64) -> f64 {
        self.counter += 1.0;
        let accept = if accept.is_finite() { accept.min(1.0) } else { 0.0 };
        let eta = 1.0 / (self.counter + self.t0);
        self.s_bar = (1.0 - eta) * self.s_bar + eta * (self.delta - accept);
        let x = self.mu - self.s_bar * self.counter.sqrt() / self.gamma;
        let x_eta = self.counter.powf(-self.kappa);
        self.x_bar = (1.0 - x_eta) * self.x_bar + x_eta * x;
        x.exp()
    }

    /// The step size to sample with once warmup ends.
    pub fn final_step_size(&self) -> f64 {
        self.x_bar.exp()
    }
}

/// How often (in iterations) the initial buffer re-estimates a diagonal metric from the draws
/// since the previous estimate. Stan's buffer adapts the step size alone, under the unit
/// metric; on posteriors whose scales differ by orders of magnitude (a regression on raw
/// predictors) its 75 iterations and the first 25-draw window then run long trees. For the
/// diagonal metric only (with the dense one, diamonds' ESS per second halved). Measured
/// against nuts-rs on seven posteriordb models over six seeds, ESS per gradient rose from a
/// mean of 0.93 to 1.01 of nuts-rs's (kidiq interaction 0.72 → 0.93, momiq 0.87 → 1.14); every
/// 5 and every 15 iterations did about as well on average and worse on some models
/// (book, performance chapter).
pub const EARLY_UPDATE: usize = 10;

/// Stan's warmup windows: which iterations feed the metric estimate, and when to update it.
#[derive(Clone, Debug)]
pub struct Windows {
    warmup: usize,
    init_buffer: usize,
    term_buffer: usize,
    window_size: usize,
    next_window: usize,
    counter: usize,
}

impl Windows {
    pub fn new(warmup: usize) -> Windows {
        // Too short a warmup for the standard buffers: 15% / 75% / 10%, as Stan does.
        let (init_buffer, term_buffer, base) = if warmup < 20 {
            (warmup, 0, 0)
        } else if 75 + 50 + 25 > warmup {
            let ib = (0.15 * warmup as f64) as usize;
            let tb = (0.1 * warmup as f64) as usize;
            (ib, tb, warmup - ib - tb)
        } else {
            (75, 50, 25)
        };
        Windows {
            warmup,
            init_buffer,
            term_buffer,
            window_size: base,
            next_window: init_buffer + base.max(1) - 1,
            counter: 0,
        }
    }

    /// Iterations before the first window (step size only).
    pub fn init_buffer(&self) -> usize {
        self.init_buffer
    }

    /// This iteration's position contributes to the metric estimate.
    pub fn in_window(&self) -> bool {
        self.window_size > 0 && self.counter >= self.init_buffer && self.counter + self.term_buffer < self.warmup
    }

    /// This iteration ends a window: update the metric.
    pub fn window_ends(&self) -> bool {
        self.window_size > 0 && self.counter == self.next_window && self.counter != self.warmup
    }

    fn compute_next(&mut self) {
        if self.next_window + 1 + self.term_buffer == self.warmup {
            return;
        }
        self.window_size *= 2;
        self.next_window = self.counter + self.window_size;
        if self.next_window + 1 + self.term_buffer != self.warmup {
            let boundary = self.next_window + 2 * self.window_size;
            if boundary + self.term_buffer >= self.warmup {
                self.next_window = self.warmup - self.term_buffer - 1;
            }
        }
    }

    /// Move to the next iteration; true when the metric should be updated now.
    pub fn step(&mut self) -> bool {
        let ends = self.window_ends();
        if ends {
            self.compute_next();
        }
        self.counter += 1;
        ends
    }
}

/// Welford's running mean and (co)variance.
#[derive(Clone, Debug)]
pub struct Moments {
    n: usize,
    mean: Vec<f64>,
    /// Sum of squared deviations: the diagonal, or the full matrix (row-major) when dense.
    m2: Vec<f64>,
    dense: bool,
    /// x − mean before the update (kept to avoid an allocation per draw).
    delta: Vec<f64>,
}

impl Moments {
    pub fn new(dim: usize, dense: bool) -> Moments {
        Moments {
            n: 0,
            mean: vec![0.0; dim],
            m2: vec![0.0; if dense { dim * dim } else { dim }],
            dense,
            delta: vec![0.0; dim],
        }
    }

    pub fn add(&mut self, x: &[f64]) {
        self.n += 1;
        let d = x.len();
        let n = self.n as f64;
        let delta = &mut self.delta;
        for ((dl, a), m) in delta.iter_mut().zip(x).zip(&self.mean) {
            *dl = a - m;
        }
        for i in 0..d {
            self.mean[i] += delta[i] / n;
        }
        if self.dense {
            for i in 0..d {
                for j in 0..d {
                    self.m2[i * d + j] += delta[i] * (x[j] - self.mean[j]);
                }
            }
        } else {
            for i in 0..d {
                self.m2[i] += delta[i] * (x[i] - self.mean[i]);
            }
        }
    }

    /// The metric estimate from the window's draws, regularised as Stan does,
    /// (n / (n + 5)) Σ + (5 / (n + 5)) 10⁻³ s I, but with s the largest variance of the
    /// `previous` metric (its diagonal) instead of 1. The first estimate, after the unit
    /// metric, is exactly Stan's; later ones shrink towards the scale already found, so the
    /// regularisation no longer depends on the units the parameters happen to be in.
    pub fn regularised(&self, previous: &[f64]) -> Vec<f64> {
        let n = self.n as f64;
        let d = self.mean.len();
        let w = n / (n + 5.0);
        let scale = previous.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
        let scale = if scale > 0.0 { scale } else { 1.0 };
        let mut out: Vec<f64> = self.m2.iter().map(|v| w * v / (n - 1.0).max(1.0)).collect();
        for i in 0..d {
            let at = if self.dense { i * d + i } else { i };
            out[at] += (1.0 - w) * 1e-3 * scale;
        }
        out
    }

    pub fn reset(&mut self) {
        self.n = 0;
        self.mean.iter_mut().for_each(|v| *v = 0.0);
        self.m2.iter_mut().for_each(|v| *v = 0.0);
    }

    pub fn count(&self) -> usize {
        self.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_match_stans_schedule_for_1000_warmup() {
        // Stan: windows end at iterations 99, 149, 249, 449, 949 (0-based) for 1000 warmup.
        let mut w = Windows::new(1000);
        let mut ends = Vec::new();
        for i in 0..1000 {
            if w.step() {
                ends.push(i);
            }
        }
        assert_eq!(ends, vec![99, 149, 249, 449, 949]);
    }

    #[test]
    fn dual_averaging_moves_towards_the_target() {
        let mut a = StepSizeAdapter::new(0.8);
        a.restart(1.0);
        // Always accepting: the step size grows; never accepting: it shrinks.
        let mut e = 1.0;
        for _ in 0..50 {
            e = a.learn(1.0);
        }
        assert!(e > 1.0);
        a.restart(1.0);
        for _ in 0..50 {
            e = a.learn(0.0);
        }
        assert!(e < 1.0);
    }

    #[test]
    fn moments_match_two_pass_variance() {
        let xs = [[1.0, 2.0], [2.0, 0.0], [4.0, 1.0], [7.0, 3.0]];
        let mut m = Moments::new(2, true);
        for x in &xs {
            m.add(x);
        }
        let mean0 = 3.5;
        let var0 = xs.iter().map(|x| (x[0] - mean0) * (x[0] - mean0)).sum::<f64>() / 3.0;
        let w = 4.0 / 9.0;
        // After the unit metric: Stan's estimate.
        let reg = m.regularised(&[1.0, 1.0]);
        assert!((reg[0] - (w * var0 + 1e-3 * 5.0 / 9.0)).abs() < 1e-12);
        // Later: shrunk towards the largest previous variance (a coordinate that never moved
        // still gets a metric it can move with).
        let mut m = Moments::new(2, false);
        for x in &xs {
            m.add(&[x[0], 5.0]);
        }
        let reg = m.regularised(&[2.0, 0.25]);
        assert!((reg[0] - (w * var0 + (1.0 - w) * 2e-3)).abs() < 1e-12);
        assert!((reg[1] - (1.0 - w) * 2e-3).abs() < 1e-15);
    }
}
