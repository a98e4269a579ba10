"""NumPyro ports of the benchmark models, for benches/peers/bench.py.

Each port targets the same posterior as its .bnn file: the same priors, likelihood and
constraints, parameters in the same order and with the same names (the stdlib `dense` layer's
parameters are named `h.W`, `h.b`, ... as bnnc names them), so a constrained point can be handed
to `bnnc logp --params` for a cross-check. Constant terms may differ (NumPyro's HalfNormal and
HalfCauchy are normalised on the half line, bnnc's `real<lower=0> ~ normal(0, 1)` is not), which
moves the log density by a constant and changes neither the gradient nor the timing.

Conventions:
- a parameter with no prior in the .bnn gets a flat prior on its support:
  `dist.ImproperUniform(support, (), event_shape)`;
- a prior NumPyro has no distribution for on that support (a student_t on the half line, a
  normal on an ordered vector, the `target +=` priors of sblrc) is an ImproperUniform on the
  support plus `numpyro.factor` with the stated density, as the .bnn adds it;
- what depends on data alone (log of the data, centred design matrices, lag matrices) is
  computed once in `prepare`, as bnnc hoists it out of the gradient;
- loops are written as NumPyro users write them: vectorised where the arithmetic allows
  (arK, low_dim_gauss_mix), `lax.scan` for true recurrences (arma, garch).

`PORTS[name]` is `(prepare, model)`: `prepare(raw_json_dict, float_dtype)` returns the keyword
arguments of `model`.
"""
import numpy as np
import jax.numpy as jnp
from jax import lax
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def _flat(support, event_shape=()):
    """Flat (improper) prior on `support`, for parameters declared without a prior."""
    return dist.ImproperUniform(support, (), event_shape)


def _arr(x, dtype):
    return jnp.asarray(np.asarray(x, dtype=np.float64), dtype=dtype)


# ---------------------------------------------------------------- posteriordb models

def prep_arK(d, dt):
    K, T = d["K"], d["T"]
    y = np.asarray(d["y"], dtype=np.float64)
    # lags[t - K, k] = y[t - k - 1] for t in K..T: the .bnn's inner loop as a matrix.
    lags = np.stack([y[K - k - 1:T - k - 1] for k in range(K)], axis=1)
    return dict(K=K, lags=_arr(lags, dt), y_out=_arr(y[K:], dt))


def model_arK(K, lags, y_out):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([K]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    numpyro.sample("y", dist.Normal(alpha + lags @ beta, sigma), obs=y_out)


def prep_arma(d, dt):
    return dict(y=_arr(d["y"], dt))


def model_arma(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    phi = numpyro.sample("phi", dist.Normal(0.0, 2.0))
    theta = numpyro.sample("theta", dist.Normal(0.0, 2.0))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    # err[0] = y[0] - (mu + phi * mu); err[t] = y[t] - (mu + phi * y[t-1] + theta * err[t-1]).
    err0 = y[0] - (mu + phi * mu)

    def step(err_prev, y_pair):
        y_prev, y_t = y_pair
        err_t = y_t - (mu + phi * y_prev + theta * err_prev)
        return err_t, err_t

    _, err_rest = lax.scan(step, err0, (y[:-1], y[1:]))
    err = jnp.concatenate([err0[None], err_rest])
    numpyro.sample("err", dist.Normal(0.0, sigma), obs=err)


def prep_diamonds(d, dt):
    X = np.asarray(d["X"], dtype=np.float64)
    K = d["K"]
    Xr = X[:, 1:K]
    Xc = Xr - Xr.mean(axis=0)
    return dict(Xc=_arr(Xc, dt), Y=_arr(d["Y"], dt), prior_only=bool(d["prior_only"]))


def model_diamonds(Xc, Y, prior_only):
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([Xc.shape[1]]).to_event(1))
    intercept = numpyro.sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
    # sigma: real<lower=0> ~ student_t(3, 0, 10): flat on the half line plus the density.
    sigma = numpyro.sample("sigma", _flat(constraints.positive))
    numpyro.factor("sigma_prior", dist.StudentT(3.0, 0.0, 10.0).log_prob(sigma))
    if not prior_only:
        numpyro.sample("Y", dist.Normal(intercept + Xc @ b, sigma), obs=Y)


def prep_earnings(d, dt):
    return dict(log_earn=_arr(np.log(d["earn"]), dt), height=_arr(d["height"], dt))


def model_earnings(log_earn, height):
    beta = numpyro.sample("beta", _flat(constraints.real_vector, (2,)))
    sigma = numpyro.sample("sigma", _flat(constraints.positive))
    numpyro.sample("log_earn", dist.Normal(beta[0] + beta[1] * height, sigma), obs=log_earn)


def prep_eight_schools(d, dt):
    return dict(y=_arr(d["y"], dt), sigma=_arr(d["sigma"], dt))


def model_eight_schools(y, sigma):
    theta_trans = numpyro.sample(
        "theta_trans", dist.Normal(0.0, 1.0).expand([y.shape[0]]).to_event(1))
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    numpyro.sample("y", dist.Normal(theta_trans * tau + mu, sigma), obs=y)


def prep_garch(d, dt):
    return dict(y=_arr(d["y"], dt), sigma1=float(d["sigma1"]))


def model_garch(y, sigma1):
    mu = numpyro.sample("mu", _flat(constraints.real))
    alpha0 = numpyro.sample("alpha0", _flat(constraints.positive))
    alpha1 = numpyro.sample("alpha1", _flat(constraints.unit_interval))
    # beta1: real<lower=0, upper=1 - alpha1>: the bound depends on alpha1; NumPyro builds
    # the transform (and its log-Jacobian, which includes log(1 - alpha1)) at trace time, so
    # the potential is right. (NumPyro's initialize_model does not notice that this support is
    # dynamic, so its postprocess_fn would constrain beta1 with the initial alpha1's bound;
    # bench.py uses constrain_fn, which replays the model.)
    beta1 = numpyro.sample("beta1", _flat(constraints.interval(0.0, 1.0 - alpha1)))
    # sigma[t] = sqrt(alpha0 + alpha1 * (y[t-1] - mu)^2 + beta1 * sigma[t-1]^2)
    s1 = jnp.asarray(sigma1, dtype=y.dtype)

    def step(sigma_prev, y_prev):
        sigma_t = jnp.sqrt(alpha0 + alpha1 * jnp.square(y_prev - mu) + beta1 * jnp.square(sigma_prev))
        return sigma_t, sigma_t

    _, sigma_rest = lax.scan(step, s1, y[:-1])
    sigma = jnp.concatenate([s1[None], sigma_rest])
    numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def prep_gp(d, dt):
    return dict(x=_arr(d["x"], dt), y=_arr(d["y"], dt))


def model_gp(x, y):
    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    n = x.shape[0]
    # gp_exp_quad_cov(x, alpha, rho) + diag_matrix(rep_vector(sigma, N)) (sigma, not sigma^2,
    # on the diagonal, as in posteriordb's gp_regr).
    sq = jnp.square(x[:, None] - x[None, :])
    cov = alpha ** 2 * jnp.exp(-0.5 * sq / rho ** 2) + sigma * jnp.eye(n, dtype=x.dtype)
    L = jnp.linalg.cholesky(cov)
    numpyro.sample("y", dist.MultivariateNormal(jnp.zeros(n, dtype=x.dtype), scale_tril=L), obs=y)


def prep_kidiq_interaction(d, dt):
    hs = np.asarray(d["mom_hs"], dtype=np.float64)
    iq = np.asarray(d["mom_iq"], dtype=np.float64)
    return dict(kid_score=_arr(d["kid_score"], dt), mom_hs=_arr(hs, dt), mom_iq=_arr(iq, dt),
                inter=_arr(hs * iq, dt))


def model_kidiq_interaction(kid_score, mom_hs, mom_iq, inter):
    beta = numpyro.sample("beta", _flat(constraints.real_vector, (4,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    mu = beta[0] + beta[1] * mom_hs + beta[2] * mom_iq + beta[3] * inter
    numpyro.sample("kid_score", dist.Normal(mu, sigma), obs=kid_score)


def prep_kidiq_momiq(d, dt):
    return dict(kid_score=_arr(d["kid_score"], dt), mom_iq=_arr(d["mom_iq"], dt))


def model_kidiq_momiq(kid_score, mom_iq):
    beta = numpyro.sample("beta", _flat(constraints.real_vector, (2,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_iq, sigma), obs=kid_score)


def prep_gauss_mix(d, dt):
    return dict(y=_arr(d["y"], dt))


def model_gauss_mix(y):
    # mu: ordered[2] ~ normal(0, 2): ordered support, prior added as a factor.
    mu = numpyro.sample("mu", _flat(constraints.ordered_vector, (2,)))
    numpyro.factor("mu_prior", dist.Normal(0.0, 2.0).log_prob(mu).sum())
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([2]).to_event(1))
    theta = numpyro.sample("theta", dist.Beta(5.0, 5.0))
    # log_mix(theta, lp1, lp2) = log(theta * exp(lp1) + (1 - theta) * exp(lp2)), per row.
    lp1 = dist.Normal(mu[0], sigma[0]).log_prob(y)
    lp2 = dist.Normal(mu[1], sigma[1]).log_prob(y)
    numpyro.factor("mix", jnp.logaddexp(jnp.log(theta) + lp1, jnp.log1p(-theta) + lp2).sum())


def prep_mesquite(d, dt):
    w = np.asarray(d["weight"], dtype=np.float64)
    vol = (np.asarray(d["diam1"], dtype=np.float64) * np.asarray(d["diam2"], dtype=np.float64)
           * np.asarray(d["canopy_height"], dtype=np.float64))
    return dict(log_weight=_arr(np.log(w), dt), log_canopy_volume=_arr(np.log(vol), dt))


def model_mesquite(log_weight, log_canopy_volume):
    beta = numpyro.sample("beta", _flat(constraints.real_vector, (2,)))
    sigma = numpyro.sample("sigma", _flat(constraints.positive))
    numpyro.sample("log_weight", dist.Normal(beta[0] + beta[1] * log_canopy_volume, sigma),
                   obs=log_weight)


def prep_nes(d, dt):
    age = np.asarray(d["age_discrete"])
    cols = [d["real_ideo"], d["race_adj"], age == 2, age == 3, age == 4,
            d["educ1"], d["gender"], d["income"]]
    # The eight predictors multiplied by beta[1..9], in the .bnn's order.
    X = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)
    return dict(X=_arr(X, dt), partyid7=_arr(d["partyid7"], dt))


def model_nes(X, partyid7):
    beta = numpyro.sample("beta", _flat(constraints.real_vector, (9,)))
    sigma = numpyro.sample("sigma", _flat(constraints.positive))
    numpyro.sample("partyid7", dist.Normal(beta[0] + X @ beta[1:], sigma), obs=partyid7)


def prep_sblrc(d, dt):
    return dict(X=_arr(d["X"], dt), y=_arr(d["y"], dt))


def model_sblrc(X, y):
    # No `~` priors in the .bnn: flat supports plus `target += normal_lpdf(...)`.
    beta = numpyro.sample("beta", _flat(constraints.real_vector, (X.shape[1],)))
    sigma = numpyro.sample("sigma", _flat(constraints.positive))
    numpyro.factor("beta_prior", dist.Normal(0.0, 10.0).log_prob(beta).sum())
    numpyro.factor("sigma_prior", dist.Normal(0.0, 10.0).log_prob(sigma))
    numpyro.factor("lik", dist.Normal(X @ beta, sigma).log_prob(y).sum())


# ---------------------------------------------------------------- extra models

def prep_logistic(d, dt):
    return dict(X=_arr(d["X"], dt), y=jnp.asarray(np.asarray(d["y"], dtype=np.int32)))


def model_logistic(X, y):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 2.5))
    beta = numpyro.sample("beta", dist.Normal(0.0, 2.5).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.BernoulliLogits(alpha + X @ beta), obs=y)


def prep_bnn(d, dt):
    return dict(x=_arr(d["x"], dt), y=_arr(d["y"], dt))


def _dense(name, x, units, act=None):
    """stdlib/layers.bnn's `dense` with its default prior: W: matrix[d, units] and
    b: vector[units], both ~ normal(0, 1); returns act(x @ W + b)."""
    W = numpyro.sample(f"{name}.W", dist.Normal(0.0, 1.0).expand([x.shape[1], units]).to_event(2))
    b = numpyro.sample(f"{name}.b", dist.Normal(0.0, 1.0).expand([units]).to_event(1))
    z = x @ W + b
    return act(z) if act is not None else z


def model_bnn(x, y):
    # examples/bnn_regression.bnn / benches/models/bnn_protein.bnn: 50 tanh units.
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    h = _dense("h", x, 50, act=jnp.tanh)
    f = _dense("f", h, 1)
    numpyro.sample("y", dist.Normal(f[:, 0], sigma), obs=y)


PORTS = {
    "arK-arK": (prep_arK, model_arK),
    "arma-arma11": (prep_arma, model_arma),
    "diamonds-diamonds": (prep_diamonds, model_diamonds),
    "earnings-logearn_height": (prep_earnings, model_earnings),
    "eight_schools-eight_schools_noncentered": (prep_eight_schools, model_eight_schools),
    "garch-garch11": (prep_garch, model_garch),
    "gp_pois_regr-gp_regr": (prep_gp, model_gp),
    "kidiq-kidscore_interaction": (prep_kidiq_interaction, model_kidiq_interaction),
    "kidiq-kidscore_momiq": (prep_kidiq_momiq, model_kidiq_momiq),
    "low_dim_gauss_mix-low_dim_gauss_mix": (prep_gauss_mix, model_gauss_mix),
    "mesquite-logmesquite_logvolume": (prep_mesquite, model_mesquite),
    "nes1972-nes": (prep_nes, model_nes),
    "sblrc-blr": (prep_sblrc, model_sblrc),
    "logistic_regression": (prep_logistic, model_logistic),
    "bnn_protein": (prep_bnn, model_bnn),
    "bnn_regression": (prep_bnn, model_bnn),
}
