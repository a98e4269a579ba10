"""Effective samples per second: `bnnc run` against NumPyro's NUTS and PyMC sampled by nutpie.

Every sampler runs 4 chains of 1000 warmup + 1000 draws with a diagonal metric (or dense with
--dense, bnnc and NumPyro only), target acceptance 0.8, maximum tree depth 10, in float64, on
one core: NumPyro's chains run one after another (chain_method="sequential"), nutpie's with
cores=1, bnnc's on `--threads 1` (change it with --threads). Pin the whole script to one core
for a fair comparison: `taskset -c 1 python3 benches/peers/sample.py ...`.

Reported per sampler: wall time of the whole run (each includes compiling: bnnc's model,
NumPyro's trajectory code, PyMC's model by numba), the minimum bulk ESS over the model's
parameters (ArviZ's ess_bulk on the constrained draws, for bnnc its own summary, which uses
the same estimator), and that ESS per second of wall time. The ports are in numpyro_models.py
and pymc_models.py.

Models: a posteriordb name (data/posteriordb/NAME) or an example (examples/NAME.bnn).

Run from the repository root (needs numpyro, jax, pymc, nutpie and arviz from PyPI, and a
release build, `cargo build --release`):

    python3 benches/peers/sample.py [--models a,b,...] [--samplers bnnc,numpyro,nutpie]
                                    [--dense] [--threads N] [--seed S]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

DEFAULT_MODELS = [
    "eight_schools-eight_schools_noncentered",
    "kidiq-kidscore_interaction",
    "low_dim_gauss_mix-low_dim_gauss_mix",
    "diamonds-diamonds",
    "logistic_regression",
]


def model_files(name):
    d = os.path.join(ROOT, "data", "posteriordb", name)
    if os.path.isdir(d):
        return os.path.join(d, "model.bnn"), os.path.join(d, "data.json")
    return os.path.join(ROOT, "examples", name + ".bnn"), os.path.join(ROOT, "examples", name + ".json")


def min_bulk_ess(idata):
    import arviz as az
    import numpy as np

    ess = az.ess(idata, method="bulk")
    return min(float(np.min(ess[v].values)) for v in ess.data_vars)


def numpyro_run(name, dense, seed):
    import jax
    import numpy as np
    import numpyro
    from numpyro.infer import MCMC, NUTS
    import arviz as az

    numpyro.enable_x64()
    import numpyro_models as nm

    prep, model = nm.PORTS[name]
    kwargs = prep(json.load(open(model_files(name)[1])), np.float64)
    kernel = NUTS(model, target_accept_prob=0.8, max_tree_depth=10, dense_mass=dense)
    mcmc = MCMC(kernel, num_warmup=1000, num_samples=1000, num_chains=4, chain_method="sequential", progress_bar=False)
    t = time.time()
    mcmc.run(jax.random.PRNGKey(seed), **kwargs)
    jax.block_until_ready(mcmc.get_samples())
    seconds = time.time() - t
    return seconds, min_bulk_ess(az.from_numpyro(mcmc))


def nutpie_run(name, dense, seed):
    import nutpie
    import pymc_models as pmm

    if dense:
        return None
    prep, build = pmm.PORTS[name]
    t = time.time()
    compiled = nutpie.compile_pymc_model(build(**prep(json.load(open(model_files(name)[1])))))
    trace = nutpie.sample(compiled, draws=1000, tune=1000, chains=4, cores=1, seed=seed,
                          target_accept=0.8, maxdepth=10, progress_bar=False)
    seconds = time.time() - t
    return seconds, min_bulk_ess(trace)


def bnnc_run(name, dense, threads, seed):
    model, data = model_files(name)
    out = tempfile.mkdtemp(prefix="bnnc-sample-")
    cmd = [os.path.join(ROOT, "target", "release", "bnnc"), "run", model, "--data", data, "--out", out,
           "--seed", str(seed), "--threads", str(threads)]
    if dense:
        cmd += ["--metric", "dense"]
    t = time.time()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.time() - t
    summ = json.load(open(os.path.join(out, "summary.json")))
    return seconds, min(v["ess_bulk"] for v in summ["variables"].values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--samplers", default="bnnc,numpyro,nutpie")
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    samplers = a.samplers.split(",")
    metric = "dense" if a.dense else "diag"
    print(f"4 chains x (1000 + 1000), metric {metric}, float64, seed {a.seed}")
    print("| model | sampler | wall s | min bulk ESS | ESS/s | bnnc's ESS/s over this |")
    print("|---|---|---:|---:|---:|---:|")
    for name in a.models.split(","):
        bnnc_rate = None
        for sampler in samplers:
            if sampler == "bnnc":
                r = bnnc_run(name, a.dense, a.threads, a.seed)
            elif sampler == "numpyro":
                r = numpyro_run(name, a.dense, a.seed)
            elif sampler == "nutpie":
                r = nutpie_run(name, a.dense, a.seed)
            else:
                sys.exit(f"unknown sampler {sampler}")
            if r is None:
                continue
            s, e = r
            rate = e / s
            if sampler == "bnnc":
                bnnc_rate = rate
            ratio = f"{bnnc_rate / rate:.1f}" if bnnc_rate and sampler != "bnnc" else ""
            print(f"| {name} | {sampler} | {s:.2f} | {e:.0f} | {rate:.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
