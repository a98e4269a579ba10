//! Bayes by Backprop (Blundell et al. 2015): a mean-field Gaussian q with σ = softplus(ρ)
//! over the model's unconstrained parameters, trained on shuffled minibatches of the
//! observation rows by a gradient optimiser. Each step's objective is
//!
//!   (n/B)/T · Σ_batch log p(y | θ) − β · KL(q ‖ p),   θ ~ q,
//!
//! for n training rows, batch size B, temperature T and KL weight β (rising from 0 to 1
//! over the first `kl_anneal` epochs). The KL is counted once per step. It is exact for the
//! parameters whose priors the compiler left out of the program ([`Layout::gaussian`]) and a
//! one-draw estimate, log q(θ) − log p(θ), for the others; locally reparameterised matrices
//! ([`Layout::local`]) enter the program as their means and standard deviations.

use super::{Gaussian, Scale};
use crate::compiled::CompiledModel;
use crate::infer::minibatch::{self, Batch, Inputs, Objective, Programs};
use crate::ir::variational::Layout;
use crate::ir::Program;
use crate::math::vmath::fill_standard_normal;
use rand::{Rng, RngExt};

/// Bayes by Backprop's own settings; the loop's are [`minibatch::Settings`].
#[derive(Clone, Debug)]
pub struct Settings {
    /// Epochs over which the KL weight rises linearly from 0 to 1 (0: always 1).
    pub kl_anneal: usize,
    pub temperature: f64,
    /// q's standard deviation at the start.
    pub init_sd: f64,
}

pub struct Outcome {
    pub q: Gaussian,
    /// The loop's record; each epoch's objective is the ELBO once β = 1 and T = 1.
    pub run: minibatch::Outcome,
}

/// How each coordinate of the model's unconstrained vector is treated.
struct Coords {
    /// The standard deviation's position in the program's vector, for local coordinates.
    local: Vec<Option<usize>>,
    /// (loc, scale) of a closed-form Gaussian prior.
    gaussian: Vec<Option<(f64, f64)>>,
}

impl Coords {
    fn of(p: &Program, layout: &Layout) -> Coords {
        let dim = p.params[..layout.model_params].iter().map(|pl| pl.free_len).sum();
        let mut c = Coords { local: vec![None; dim], gaussian: vec![None; dim] };
        for &(i, loc, scale) in &layout.gaussian {
            let pl = &p.params[i];
            (pl.offset..pl.offset + pl.free_len).for_each(|j| c.gaussian[j] = Some((loc, scale)));
        }
        for &(i, k) in &layout.local {
            let (pl, sd) = (&p.params[i], &p.params[k]);
            (0..pl.free_len).for_each(|e| c.local[pl.offset + e] = Some(sd.offset + e));
        }
        c
    }
}

impl Coords {
    /// −KL for the closed-form coordinates plus the entropy of the others (whose prior the
    /// program holds), at q's parameters `x` (μ then ρ).
    fn kl_free_part(&self, x: &[f64]) -> f64 {
        let dim = self.gaussian.len();
        let mut v = 0.0;
        for j in 0..dim {
            let sd = softplus(x[dim + j]);
            v += match self.gaussian[j] {
                Some((loc, scale)) => {
                    let z = (x[j] - loc) / scale;
                    -((scale / sd).ln() + 0.5 * ((sd / scale).powi(2) + z * z) - 0.5)
                }
                None => sd.ln() + 0.5 * (1.0 + super::LOG_2PI),
            };
        }
        v
    }
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// ρ with softplus(ρ) = σ.
pub fn softplus_inverse(s: f64) -> f64 {
    if s > 30.0 {
        s
    } else {
        s.exp_m1().ln()
    }
}

/// A step's objective and gradient with respect to q's parameters (μ then ρ).
struct Elbo<'a> {
    coords: Coords,
    s: &'a Settings,
    dim: usize,
    theta: Vec<f64>,
    vgrad: Vec<f64>,
    eps: Vec<f64>,
    e_rho: Vec<f64>,
    sd: Vec<f64>,
    dsd: Vec<f64>,
}

impl Elbo<'_> {
    fn beta(&self, epoch: usize) -> f64 {
        if self.s.kl_anneal == 0 {
            1.0
        } else {
            (epoch as f64 / self.s.kl_anneal as f64).min(1.0)
        }
    }
}

impl Objective for Elbo<'_> {
    fn step<R: Rng + ?Sized>(
        &mut self,
        model: &mut CompiledModel,
        inputs: &Inputs,
        batch: &Batch,
        x: &[f64],
        g: &mut [f64],
        rng: &mut R,
    ) -> Result<f64, String> {
        let (dim, beta) = (self.dim, self.beta(batch.epoch));
        inputs.set_weights(model, batch.scale / self.s.temperature, beta)?;
        inputs.draw_masks(model, rng);
        for &k in &inputs.noise {
            if let Some(buf) = model.input_mut(k) {
                fill_standard_normal(rng, buf);
            }
        }
        // σ = softplus(ρ) and its derivative, the logistic function, for every coordinate.
        let (theta, vgrad, eps, sd, dsd) =
            (&mut self.theta, &mut self.vgrad, &mut self.eps, &mut self.sd, &mut self.dsd);
        crate::math::vmath::exp_array(&x[dim..], &mut self.e_rho);
        crate::math::vmath::ln_1p_array(&self.e_rho, sd);
        for j in 0..dim {
            let e = self.e_rho[j];
            dsd[j] = if e.is_finite() { e / (1.0 + e) } else { 1.0 };
            if !sd[j].is_finite() {
                sd[j] = x[dim + j];
            }
        }
        // θ: a draw for sampled coordinates, the means and sds for local ones.
        fill_standard_normal(rng, eps);
        for j in 0..dim {
            match self.coords.local[j] {
                Some(at) => {
                    theta[j] = x[j];
                    theta[at] = sd[j];
                }
                None => theta[j] = x[j] + sd[j] * eps[j],
            }
        }
        let e = match model.eval_grad(theta, vgrad) {
            Ok(e) if e.logp.is_finite() && vgrad.iter().all(|v| v.is_finite()) => e,
            Ok(_) => return Err("the objective or its gradient is not finite; a smaller --lr may help".into()),
            Err(err) => return Err(format!("{err}; a smaller --lr may help")),
        };
        // The gradient of the rest of −β·KL: the closed forms, and the entropy of sampled
        // coordinates whose prior is in the program (their values are added per epoch).
        for j in 0..dim {
            let (m, sdj) = (x[j], sd[j]);
            let (mut gm, mut gs) = match self.coords.local[j] {
                Some(at) => (vgrad[j], vgrad[at]),
                None => (vgrad[j], vgrad[j] * eps[j]),
            };
            match self.coords.gaussian[j] {
                Some((loc, scale)) => {
                    gm -= beta * (m - loc) / (scale * scale);
                    gs -= beta * (sdj / (scale * scale) - 1.0 / sdj);
                }
                None => gs += beta / sdj,
            }
            g[j] = gm;
            g[dim + j] = gs * dsd[j];
        }
        Ok(e.logp + e.jacobian)
    }

    fn epoch_constant(&self, x: &[f64], epoch: usize) -> f64 {
        self.beta(epoch) * self.coords.kl_free_part(x)
    }
}

/// q as a Gaussian from its trained parameters (μ then ρ).
pub fn as_gaussian(x: &[f64]) -> Gaussian {
    let dim = x.len() / 2;
    Gaussian { mu: x[..dim].to_vec(), scale: Scale::LogSd(x[dim..].iter().map(|r| softplus(*r).ln()).collect()) }
}

/// Train q from means `mu` with the minibatch loop. `validate` scores a q on held-out rows.
#[allow(clippy::too_many_arguments)]
pub fn train<R: Rng>(
    progs: &mut Programs,
    mu: Vec<f64>,
    train_rows: &[usize],
    loop_settings: &minibatch::Settings,
    s: &Settings,
    rng: &mut R,
    validate: &mut Option<&mut dyn FnMut(&Gaussian) -> Option<f64>>,
    progress: &mut dyn FnMut(&minibatch::Epoch, usize),
) -> Result<Outcome, String> {
    let p = progs.full_program;
    let layout = p.variational.clone().ok_or("internal: the program is not a variational one")?;
    let dim = mu.len();
    let mut objective = Elbo {
        coords: Coords::of(p, &layout),
        s,
        dim,
        theta: vec![0.0; p.dim()],
        vgrad: vec![0.0; p.dim()],
        eps: vec![0.0; dim],
        e_rho: vec![0.0; dim],
        sd: vec![0.0; dim],
        dsd: vec![0.0; dim],
    };
    let mut x = mu;
    x.extend(std::iter::repeat_n(softplus_inverse(s.init_sd), dim));
    let mut score = validate.as_mut().map(|f| move |x: &[f64]| f(&as_gaussian(x)));
    let mut val: Option<&mut dyn FnMut(&[f64]) -> Option<f64>> =
        score.as_mut().map(|f| f as &mut dyn FnMut(&[f64]) -> Option<f64>);
    let run = minibatch::train(progs, x, train_rows, loop_settings, &mut objective, rng, &mut val, progress)?;
    Ok(Outcome { q: as_gaussian(&run.x), run })
}

/// Initial means: a matrix parameter's (a layer's weights) uniform in ±1/√(rows), its
/// fan-in, as common network initialisations do; every other coordinate uniform in ±1.
pub fn initial_means(p: &Program, rng: &mut impl Rng) -> Vec<f64> {
    let mut mu = Vec::with_capacity(p.dim());
    for pl in &p.params {
        let bound = match pl.shape.as_slice() {
            [k, _] if pl.kind == crate::math::transform::Kind::Identity => 1.0 / (*k as f64).sqrt(),
            _ => 1.0,
        };
        mu.extend((0..pl.free_len).map(|_| rng.random_range(-bound..bound)));
    }
    mu
}
