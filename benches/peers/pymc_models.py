"""PyMC ports of some benchmark models, for benches/peers/sample.py (sampled with nutpie).

Each port targets the same posterior as its .bnn file, with the conventions of
numpyro_models.py: flat priors where the .bnn declares none (`pm.Flat`, `pm.HalfFlat`), a
prior PyMC has no distribution for on that support added with `pm.Potential`, and what
depends on data alone computed once in `prepare`.

`PORTS[name]` is `(prepare, build)`: `prepare(raw_json_dict)` returns the keyword arguments
of `build`, which returns a `pm.Model`.
"""
import numpy as np
import pymc as pm


def prep_eight_schools(d):
    return dict(y=np.asarray(d["y"], float), sigma=np.asarray(d["sigma"], float))


def build_eight_schools(y, sigma):
    with pm.Model() as m:
        theta_trans = pm.Normal("theta_trans", 0.0, 1.0, shape=len(y))
        mu = pm.Normal("mu", 0.0, 5.0)
        tau = pm.HalfCauchy("tau", 5.0)
        pm.Normal("y", theta_trans * tau + mu, sigma, observed=y)
    return m


def prep_kidiq_interaction(d):
    hs = np.asarray(d["mom_hs"], float)
    iq = np.asarray(d["mom_iq"], float)
    return dict(kid_score=np.asarray(d["kid_score"], float), mom_hs=hs, mom_iq=iq, inter=hs * iq)


def build_kidiq_interaction(kid_score, mom_hs, mom_iq, inter):
    with pm.Model() as m:
        beta = pm.Flat("beta", shape=4)
        sigma = pm.HalfCauchy("sigma", 2.5)
        mu = beta[0] + beta[1] * mom_hs + beta[2] * mom_iq + beta[3] * inter
        pm.Normal("kid_score", mu, sigma, observed=kid_score)
    return m


def prep_diamonds(d):
    X = np.asarray(d["X"], float)
    Xr = X[:, 1:d["K"]]
    return dict(Xc=Xr - Xr.mean(axis=0), Y=np.asarray(d["Y"], float))


def build_diamonds(Xc, Y):
    with pm.Model() as m:
        b = pm.Normal("b", 0.0, 1.0, shape=Xc.shape[1])
        intercept = pm.StudentT("Intercept", nu=3.0, mu=8.0, sigma=10.0)
        sigma = pm.HalfFlat("sigma")
        pm.Potential("sigma_prior", pm.logp(pm.StudentT.dist(nu=3.0, mu=0.0, sigma=10.0), sigma))
        pm.Normal("Y", intercept + pm.math.dot(Xc, b), sigma, observed=Y)
    return m


def prep_gauss_mix(d):
    return dict(y=np.asarray(d["y"], float))


def build_gauss_mix(y):
    from pymc.distributions.transforms import ordered

    with pm.Model() as m:
        mu = pm.Flat("mu", shape=2, transform=ordered, initval=np.array([-1.0, 1.0]))
        pm.Potential("mu_prior", pm.logp(pm.Normal.dist(0.0, 2.0), mu).sum())
        sigma = pm.HalfNormal("sigma", 2.0, shape=2)
        theta = pm.Beta("theta", 5.0, 5.0)
        lp1 = pm.logp(pm.Normal.dist(mu[0], sigma[0]), y)
        lp2 = pm.logp(pm.Normal.dist(mu[1], sigma[1]), y)
        pm.Potential("mix", pm.math.logaddexp(pm.math.log(theta) + lp1, pm.math.log(1.0 - theta) + lp2).sum())
    return m


def prep_logistic(d):
    return dict(X=np.asarray(d["X"], float), y=np.asarray(d["y"], int))


def build_logistic(X, y):
    with pm.Model() as m:
        alpha = pm.Normal("alpha", 0.0, 2.5)
        beta = pm.Normal("beta", 0.0, 2.5, shape=X.shape[1])
        pm.Bernoulli("y", logit_p=alpha + pm.math.dot(X, beta), observed=y)
    return m


def prep_bnn(d):
    return dict(x=np.asarray(d["x"], float), y=np.asarray(d["y"], float))


def build_bnn(x, y):
    # examples/bnn_regression.bnn: 50 tanh units, normal(0, 1) priors, sigma ~ half-normal(1).
    with pm.Model() as m:
        sigma = pm.HalfNormal("sigma", 1.0)
        W1 = pm.Normal("h.W", 0.0, 1.0, shape=(x.shape[1], 50))
        b1 = pm.Normal("h.b", 0.0, 1.0, shape=50)
        W2 = pm.Normal("f.W", 0.0, 1.0, shape=(50, 1))
        b2 = pm.Normal("f.b", 0.0, 1.0, shape=1)
        h = pm.math.tanh(pm.math.dot(x, W1) + b1)
        f = pm.math.dot(h, W2) + b2
        pm.Normal("y", f[:, 0], sigma, observed=y)
    return m


PORTS = {
    "eight_schools-eight_schools_noncentered": (prep_eight_schools, build_eight_schools),
    "kidiq-kidscore_interaction": (prep_kidiq_interaction, build_kidiq_interaction),
    "diamonds-diamonds": (prep_diamonds, build_diamonds),
    "low_dim_gauss_mix-low_dim_gauss_mix": (prep_gauss_mix, build_gauss_mix),
    "logistic_regression": (prep_logistic, build_logistic),
    "bnn_regression": (prep_bnn, build_bnn),
}
