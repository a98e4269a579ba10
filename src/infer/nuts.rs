//! The No-U-Turn sampler as Stan implements it (Hoffman & Gelman 2014; Betancourt 2017):
//! multinomial sampling over the trajectory, biased progressive sampling when a new subtree
//! is merged, the generalised no-U-turn criterion (with the extra checks across the two
//! halves of every merged tree), a maximum tree depth, and divergence when the energy error
//! exceeds 1000. Static HMC (a fixed number of leapfrog steps) shares the integrator.

use crate::density::{EvalError, LogDensity};
use crate::infer::phase;
use crate::math::dot;
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

/// Euclidean metric: the inverse mass matrix, diagonal or dense.
#[derive(Clone, Debug)]
pub enum Metric {
    Diag(Vec<f64>),
    /// Row-major inverse mass matrix and its lower Cholesky factor.
    Dense {
        inv: Vec<f64>,
        chol: Vec<f64>,
    },
}

impl Metric {
    pub fn unit(dim: usize) -> Metric {
        Metric::Diag(vec![1.0; dim])
    }

    pub fn dense(inv: Vec<f64>) -> Option<Metric> {
        let d = (inv.len() as f64).sqrt() as usize;
        let mut chol = vec![0.0; d * d];
        crate::ir::prim::cholesky(&inv, d, &mut chol).then_some(Metric::Dense { inv, chol })
    }

    /// p_sharp = M⁻¹ p (the velocity).
    fn velocity(&self, p: &[f64], out: &mut [f64]) {
        match self {
            Metric::Diag(m) => {
                for i in 0..p.len() {
                    out[i] = m[i] * p[i];
                }
            }
            Metric::Dense { inv, .. } => {
                let d = p.len();
                for (o, row) in out.iter_mut().zip(inv.chunks_exact(d)) {
                    *o = dot(row, p);
                }
            }
        }
    }

    /// p ~ N(0, M): for a diagonal metric p_i = z_i / sqrt(m_i); for a dense one, with
    /// M⁻¹ = L Lᵀ, p = L⁻ᵀ z.
    fn sample_momentum<R: Rng + ?Sized>(&self, rng: &mut R, p: &mut [f64]) {
        for v in p.iter_mut() {
            *v = rng.sample(StandardNormal);
        }
        match self {
            Metric::Diag(m) => {
                for i in 0..p.len() {
                    p[i] /= m[i].sqrt();
                }
            }
            Metric::Dense { chol, .. } => {
                let d = p.len();
                // Solve Lᵀ x = z by back substitution.
                for i in (0..d).rev() {
                    let mut s = p[i];
                    for j in i + 1..d {
                        s -= chol[j * d + i] * p[j];
                    }
                    p[i] = s / chol[i * d + i];
                }
            }
        }
    }

    pub fn diagonal(&self) -> Vec<f64> {
        match self {
            Metric::Diag(m) => m.clone(),
            Metric::Dense { inv, .. } => {
                let d = (inv.len() as f64).sqrt() as usize;
                (0..d).map(|i| inv[i * d + i]).collect()
            }
        }
    }
}

/// A point in phase space with its log density and gradient.
#[derive(Debug)]
pub struct State {
    pub q: Vec<f64>,
    pub p: Vec<f64>,
    pub logp: f64,
    pub grad: Vec<f64>,
}

impl Clone for State {
    fn clone(&self) -> Self {
        State { q: self.q.clone(), p: self.p.clone(), logp: self.logp, grad: self.grad.clone() }
    }

    /// Into the buffers already there: a tree copies a state at every leaf, and the derived
    /// form would allocate three vectors each time.
    fn clone_from(&mut self, source: &Self) {
        self.q.clone_from(&source.q);
        self.p.clone_from(&source.p);
        self.logp = source.logp;
        self.grad.clone_from(&source.grad);
    }
}

/// What one transition reports (Stan's sampler columns).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub logp: f64,
    pub accept_stat: f64,
    pub step_size: f64,
    pub tree_depth: usize,
    pub n_leapfrog: usize,
    pub divergent: bool,
    pub energy: f64,
}

pub struct Sampler<'d, D: LogDensity + ?Sized, R: Rng> {
    pub density: &'d mut D,
    pub rng: R,
    pub metric: Metric,
    pub step_size: f64,
    pub max_depth: usize,
    /// Gradient evaluations so far.
    pub grad_evals: usize,
    /// The last error a proposal met (reported when a run fails).
    pub last_error: Option<EvalError>,
    scratch: Vec<f64>,
    /// The buffers of [`Self::build_tree`]'s halves, one set per depth, so that a trajectory
    /// of a thousand leapfrog steps allocates nothing.
    levels: Vec<Level>,
}

/// What [`Sampler::build_tree`] keeps of a subtree's two halves.
#[derive(Default)]
struct Level {
    p_init_end: Vec<f64>,
    p_sharp_init_end: Vec<f64>,
    rho_init: Vec<f64>,
    z_propose_final: Option<State>,
    p_final_beg: Vec<f64>,
    p_sharp_final_beg: Vec<f64>,
    rho_final: Vec<f64>,
}

impl Level {
    fn zeroed(d: usize) -> Level {
        let z = || vec![0.0; d];
        Level {
            p_init_end: z(),
            p_sharp_init_end: z(),
            rho_init: z(),
            z_propose_final: None,
            p_final_beg: z(),
            p_sharp_final_beg: z(),
            rho_final: z(),
        }
    }
}

const MAX_DELTA_H: f64 = 1000.0;

fn log_sum_exp(a: f64, b: f64) -> f64 {
    crate::ir::prim::log_sum_exp2(a, b)
}

/// Trajectory bookkeeping passed down the tree.
struct Tree {
    log_sum_weight: f64,
    sum_metro_prob: f64,
    n_leapfrog: usize,
    divergent: bool,
}

impl<'d, D: LogDensity + ?Sized, R: Rng> Sampler<'d, D, R> {
    pub fn new(density: &'d mut D, rng: R, metric: Metric, step_size: f64, max_depth: usize) -> Self {
        let dim = density.dim();
        Sampler {
            density,
            rng,
            metric,
            step_size,
            max_depth,
            grad_evals: 0,
            last_error: None,
            scratch: vec![0.0; dim],
            levels: Vec::new(),
        }
    }

    /// Evaluate at `q`; a failure is an infinite energy (a divergence), never a crash.
    pub fn state_at(&mut self, q: Vec<f64>) -> Result<State, EvalError> {
        let mut grad = vec![0.0; q.len()];
        self.grad_evals += 1;
        let logp = self.density.logp_grad(&q, &mut grad)?;
        Ok(State { p: vec![0.0; q.len()], q, logp, grad })
    }

    fn kinetic(&mut self, p: &[f64]) -> f64 {
        let mut v = std::mem::take(&mut self.scratch);
        self.metric.velocity(p, &mut v);
        let k = 0.5 * dot(p, &v);
        self.scratch = v;
        k
    }

    fn hamiltonian(&mut self, z: &State) -> f64 {
        -z.logp + self.kinetic(&z.p)
    }

    /// One leapfrog step of size `eps`. Returns false when the density failed.
    fn leapfrog(&mut self, z: &mut State, eps: f64) -> bool {
        if let Metric::Diag(m) = &self.metric {
            phase::kick_drift(&mut z.p, &mut z.q, &z.grad, m, 0.5 * eps, eps);
        } else {
            phase::kick(&mut z.p, &z.grad, 0.5 * eps);
            let mut v = std::mem::take(&mut self.scratch);
            self.metric.velocity(&z.p, &mut v);
            for i in 0..z.q.len() {
                z.q[i] += eps * v[i];
            }
            self.scratch = v;
        }
        self.grad_evals += 1;
        match self.density.logp_grad(&z.q, &mut z.grad) {
            Ok(lp) => {
                z.logp = lp;
                phase::kick(&mut z.p, &z.grad, 0.5 * eps);
                true
            }
            Err(e) => {
                z.logp = f64::NEG_INFINITY;
                self.last_error = Some(e);
                false
            }
        }
    }

    fn criterion(p_sharp_minus: &[f64], p_sharp_plus: &[f64], rho: &[f64]) -> bool {
        dot(p_sharp_plus, rho) > 0.0 && dot(p_sharp_minus, rho) > 0.0
    }

    /// One NUTS transition from `z` (whose q, logp and grad are current).
    pub fn nuts(&mut self, z: &mut State) -> Stats {
        let d = z.q.len();
        self.metric.sample_momentum(&mut self.rng, &mut z.p);
        let h0 = self.hamiltonian(z);
        let mut z_fwd = z.clone();
        let mut z_bck = z.clone();
        let mut z_sample = z.clone();
        let mut p_sharp = vec![0.0; d];
        self.metric.velocity(&z.p, &mut p_sharp);
        let (mut p_sharp_fwd_fwd, mut p_sharp_fwd_bck) = (p_sharp.clone(), p_sharp.clone());
        let (mut p_sharp_bck_fwd, mut p_sharp_bck_bck) = (p_sharp.clone(), p_sharp.clone());
        let (mut p_fwd_fwd, mut p_fwd_bck) = (z.p.clone(), z.p.clone());
        let (mut p_bck_fwd, mut p_bck_bck) = (z.p.clone(), z.p.clone());
        let mut rho = z.p.clone();
        let mut tree = Tree { log_sum_weight: 0.0, sum_metro_prob: 0.0, n_leapfrog: 0, divergent: false };
        let mut depth = 0;
        while depth < self.max_depth {
            let mut rho_fwd = vec![0.0; d];
            let mut rho_bck = vec![0.0; d];
            let mut log_sum_weight_subtree = f64::NEG_INFINITY;
            let mut z_propose;
            let valid;
            if self.rng.random::<f64>() > 0.5 {
                // Extend forward from the forward end.
                rho_bck.copy_from_slice(&rho);
                p_bck_fwd.copy_from_slice(&p_fwd_bck);
                p_sharp_bck_fwd.copy_from_slice(&p_sharp_fwd_bck);
                let mut zz = z_fwd.clone();
                z_propose = zz.clone();
                valid = self.build_tree(
                    depth,
                    &mut zz,
                    &mut z_propose,
                    &mut p_sharp_fwd_bck,
                    &mut p_sharp_fwd_fwd,
                    &mut rho_fwd,
                    &mut p_fwd_bck,
                    &mut p_fwd_fwd,
                    h0,
                    1.0,
                    &mut tree,
                    &mut log_sum_weight_subtree,
                );
                z_fwd = zz;
            } else {
                rho_fwd.copy_from_slice(&rho);
                p_fwd_bck.copy_from_slice(&p_bck_fwd);
                p_sharp_fwd_bck.copy_from_slice(&p_sharp_bck_fwd);
                let mut zz = z_bck.clone();
                z_propose = zz.clone();
                valid = self.build_tree(
                    depth,
                    &mut zz,
                    &mut z_propose,
                    &mut p_sharp_bck_fwd,
                    &mut p_sharp_bck_bck,
                    &mut rho_bck,
                    &mut p_bck_fwd,
                    &mut p_bck_bck,
                    h0,
                    -1.0,
                    &mut tree,
                    &mut log_sum_weight_subtree,
                );
                z_bck = zz;
            }
            if !valid {
                break;
            }
            depth += 1;
            // Biased progressive sampling: prefer the new subtree.
            if log_sum_weight_subtree > tree.log_sum_weight {
                z_sample = z_propose;
            } else {
                let accept = (log_sum_weight_subtree - tree.log_sum_weight).exp();
                if self.rng.random::<f64>() < accept {
                    z_sample = z_propose;
                }
            }
            tree.log_sum_weight = log_sum_exp(tree.log_sum_weight, log_sum_weight_subtree);
            for i in 0..d {
                rho[i] = rho_bck[i] + rho_fwd[i];
            }
            // The merged trajectory, and across the join of its two halves.
            let mut persist = Self::criterion(&p_sharp_bck_bck, &p_sharp_fwd_fwd, &rho);
            let ext: Vec<f64> = (0..d).map(|i| rho_bck[i] + p_fwd_bck[i]).collect();
            persist &= Self::criterion(&p_sharp_bck_bck, &p_sharp_fwd_bck, &ext);
            let ext: Vec<f64> = (0..d).map(|i| rho_fwd[i] + p_bck_fwd[i]).collect();
            persist &= Self::criterion(&p_sharp_bck_fwd, &p_sharp_fwd_fwd, &ext);
            if !persist {
                break;
            }
        }
        let energy = self.hamiltonian(&z_sample);
        *z = z_sample;
        Stats {
            logp: z.logp,
            accept_stat: if tree.n_leapfrog > 0 { tree.sum_metro_prob / tree.n_leapfrog as f64 } else { 0.0 },
            step_size: self.step_size,
            tree_depth: depth,
            n_leapfrog: tree.n_leapfrog,
            divergent: tree.divergent,
            energy,
        }
    }

    /// Build a subtree of 2^depth leapfrog steps from `z` in direction `sign`; Stan's
    /// `build_tree`. Returns false when it diverged or turned back on itself.
    #[allow(clippy::too_many_arguments)]
    fn build_tree(
        &mut self,
        depth: usize,
        z: &mut State,
        z_propose: &mut State,
        p_sharp_beg: &mut [f64],
        p_sharp_end: &mut [f64],
        rho: &mut [f64],
        p_beg: &mut [f64],
        p_end: &mut [f64],
        h0: f64,
        sign: f64,
        tree: &mut Tree,
        log_sum_weight: &mut f64,
    ) -> bool {
        let d = z.q.len();
        if depth == 0 {
            let ok = self.leapfrog(z, sign * self.step_size);
            tree.n_leapfrog += 1;
            let kinetic = match &self.metric {
                Metric::Diag(m) => phase::leaf(&z.p, m, [p_sharp_beg, p_sharp_end], [p_beg, p_end], rho),
                Metric::Dense { .. } => {
                    self.metric.velocity(&z.p, p_sharp_beg);
                    p_sharp_end.copy_from_slice(p_sharp_beg);
                    for i in 0..d {
                        rho[i] += z.p[i];
                    }
                    p_beg.copy_from_slice(&z.p);
                    p_end.copy_from_slice(p_beg);
                    0.5 * dot(&z.p, p_sharp_beg)
                }
            };
            let mut h = if ok { -z.logp + kinetic } else { f64::INFINITY };
            if h.is_nan() {
                h = f64::INFINITY;
            }
            if h - h0 > MAX_DELTA_H {
                tree.divergent = true;
            }
            *log_sum_weight = log_sum_exp(*log_sum_weight, h0 - h);
            tree.sum_metro_prob += if h0 - h > 0.0 { 1.0 } else { (h0 - h).exp() };
            z_propose.clone_from(z);
            return !tree.divergent;
        }
        // The two halves' buffers for this depth, taken out while the halves are built (an
        // empty set in their place allocates nothing) and put back after.
        if self.levels.len() < depth {
            self.levels.resize_with(depth, Level::default);
        }
        let mut lv = std::mem::take(&mut self.levels[depth - 1]);
        if lv.rho_init.len() != d {
            lv = Level::zeroed(d);
        }
        let valid = self.build_halves(
            depth,
            z,
            z_propose,
            p_sharp_beg,
            p_sharp_end,
            rho,
            p_beg,
            p_end,
            h0,
            sign,
            tree,
            log_sum_weight,
            &mut lv,
        );
        self.levels[depth - 1] = lv;
        valid
    }

    /// The two halves of [`Self::build_tree`] at `depth` ≥ 1, in the buffers `lv`.
    #[allow(clippy::too_many_arguments)]
    fn build_halves(
        &mut self,
        depth: usize,
        z: &mut State,
        z_propose: &mut State,
        p_sharp_beg: &mut [f64],
        p_sharp_end: &mut [f64],
        rho: &mut [f64],
        p_beg: &mut [f64],
        p_end: &mut [f64],
        h0: f64,
        sign: f64,
        tree: &mut Tree,
        log_sum_weight: &mut f64,
        lv: &mut Level,
    ) -> bool {
        // The initial half.
        let mut log_sum_weight_init = f64::NEG_INFINITY;
        lv.rho_init.fill(0.0);
        let valid_init = self.build_tree(
            depth - 1,
            z,
            z_propose,
            p_sharp_beg,
            &mut lv.p_sharp_init_end,
            &mut lv.rho_init,
            p_beg,
            &mut lv.p_init_end,
            h0,
            sign,
            tree,
            &mut log_sum_weight_init,
        );
        if !valid_init {
            return false;
        }
        // The final half.
        let z_propose_final = match lv.z_propose_final.as_mut() {
            Some(zf) => {
                zf.clone_from(z);
                zf
            }
            None => lv.z_propose_final.insert(z.clone()),
        };
        let mut log_sum_weight_final = f64::NEG_INFINITY;
        lv.rho_final.fill(0.0);
        let valid_final = self.build_tree(
            depth - 1,
            z,
            z_propose_final,
            &mut lv.p_sharp_final_beg,
            p_sharp_end,
            &mut lv.rho_final,
            &mut lv.p_final_beg,
            p_end,
            h0,
            sign,
            tree,
            &mut log_sum_weight_final,
        );
        if !valid_final {
            return false;
        }
        // Multinomial sample between the halves.
        let log_sum_weight_subtree = log_sum_exp(log_sum_weight_init, log_sum_weight_final);
        *log_sum_weight = log_sum_exp(*log_sum_weight, log_sum_weight_subtree);
        if log_sum_weight_final > log_sum_weight_subtree {
            z_propose.clone_from(z_propose_final);
        } else {
            let accept = (log_sum_weight_final - log_sum_weight_subtree).exp();
            if self.rng.random::<f64>() < accept {
                z_propose.clone_from(z_propose_final);
            }
        }
        let halves = phase::Halves {
            sharp_beg: p_sharp_beg,
            sharp_end: p_sharp_end,
            rho_init: &lv.rho_init,
            rho_final: &lv.rho_final,
            p_init_end: &lv.p_init_end,
            sharp_init_end: &lv.p_sharp_init_end,
            p_final_beg: &lv.p_final_beg,
            sharp_final_beg: &lv.p_sharp_final_beg,
        };
        phase::merge(&halves, rho)
    }

    /// Static HMC: `n_steps` leapfrog steps and a Metropolis correction.
    pub fn hmc(&mut self, z: &mut State, n_steps: usize) -> Stats {
        self.metric.sample_momentum(&mut self.rng, &mut z.p);
        let h0 = self.hamiltonian(z);
        let mut prop = z.clone();
        let mut ok = true;
        for _ in 0..n_steps {
            if !self.leapfrog(&mut prop, self.step_size) {
                ok = false;
                break;
            }
        }
        let h = if ok { self.hamiltonian(&prop) } else { f64::INFINITY };
        let h = if h.is_nan() { f64::INFINITY } else { h };
        let accept = (h0 - h).exp().min(1.0);
        let divergent = h - h0 > MAX_DELTA_H;
        if self.rng.random::<f64>() < accept {
            *z = prop;
        }
        let energy = self.hamiltonian(z);
        Stats {
            logp: z.logp,
            accept_stat: accept,
            step_size: self.step_size,
            tree_depth: 0,
            n_leapfrog: n_steps,
            divergent,
            energy,
        }
    }

    /// Stan's heuristic: double or halve the step size until one leapfrog step's acceptance
    /// crosses 0.8.
    pub fn init_step_size(&mut self, z: &State) {
        let mut zz = z.clone();
        self.metric.sample_momentum(&mut self.rng, &mut zz.p);
        let h0 = self.hamiltonian(&zz);
        let ok = self.leapfrog(&mut zz, self.step_size);
        let h = if ok { self.hamiltonian(&zz) } else { f64::INFINITY };
        let delta_h = h0 - if h.is_nan() { f64::INFINITY } else { h };
        let direction = if delta_h > 0.8f64.ln() { 1.0 } else { -1.0 };
        for _ in 0..100 {
            let mut zz = z.clone();
            self.metric.sample_momentum(&mut self.rng, &mut zz.p);
            let h0 = self.hamiltonian(&zz);
            let ok = self.leapfrog(&mut zz, self.step_size);
            let h = if ok { self.hamiltonian(&zz) } else { f64::INFINITY };
            let delta_h = h0 - if h.is_nan() { f64::INFINITY } else { h };
            if (direction == 1.0 && !(delta_h > 0.8f64.ln())) || (direction == -1.0 && !(delta_h < 0.8f64.ln())) {
                break;
            }
            self.step_size = if direction == 1.0 { 2.0 * self.step_size } else { 0.5 * self.step_size };
            if self.step_size > 1e7 || self.step_size < 1e-300 {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A standard normal in `d` dimensions.
    struct StdNormal(usize);

    impl LogDensity for StdNormal {
        fn dim(&self) -> usize {
            self.0
        }
        fn logp_grad(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
            for i in 0..q.len() {
                g[i] = -q[i];
            }
            Ok(-0.5 * dot(q, q))
        }
    }

    #[test]
    fn nuts_draws_a_standard_normal() {
        let mut d = StdNormal(10);
        let rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut s = Sampler::new(&mut d, rng, Metric::unit(10), 0.5, 10);
        let mut z = s.state_at(vec![0.5; 10]).expect("finite");
        let (mut sum, mut sumsq, n) = (0.0, 0.0, 4000);
        for _ in 0..n {
            let st = s.nuts(&mut z);
            assert!(!st.divergent);
            sum += z.q[0];
            sumsq += z.q[0] * z.q[0];
        }
        let mean = sum / n as f64;
        let var = sumsq / n as f64 - mean * mean;
        // NUTS on a standard normal is nearly independent: generous 5-sigma bounds.
        assert!(mean.abs() < 0.1, "mean {mean}");
        assert!((var - 1.0).abs() < 0.15, "var {var}");
    }
}
