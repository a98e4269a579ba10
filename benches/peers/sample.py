"""Effective samples per second: NumPyro's NUTS against `bnnc run`, on one model.

Both run 4 chains of 1000 warmup + 1000 draws with a diagonal metric (or dense with
--dense), target acceptance 0.8, maximum tree depth 10, in float64. NumPyro's chains run one
after another (chain_method="sequential"); bnnc's run on `--threads` threads (default 1, so
both use one core). Reported per sampler: wall time of the whole run (NumPyro's includes
compiling its trajectory code, bnnc's includes compiling the model), the minimum bulk ESS
over the model's parameters (ArviZ's ess_bulk, on the constrained draws both write), and
that ESS per second of wall time. The NumPyro model is the port in numpyro_models.py.

Run from the repository root (needs numpyro, jax and arviz from PyPI, and a release build):

    python3 benches/peers/sample.py [--model diamonds-diamonds] [--dense] [--threads N]
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


def numpyro_run(name, dense, seed):
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS
    import arviz as az
    import numpy as np

    numpyro.enable_x64()
    import numpyro_models as nm

    prep, model = nm.PORTS[name]
    data = json.load(open(os.path.join(ROOT, "..", "shared", "posteriordb", name, "data.json")))
    kwargs = prep(data, np.float64)
    kernel = NUTS(model, target_accept_prob=0.8, max_tree_depth=10, dense_mass=dense)
    mcmc = MCMC(kernel, num_warmup=1000, num_samples=1000, num_chains=4, chain_method="sequential", progress_bar=False)
    t = time.time()
    mcmc.run(jax.random.PRNGKey(seed), **kwargs)
    jax.block_until_ready(mcmc.get_samples())
    seconds = time.time() - t
    idata = az.from_numpyro(mcmc)
    ess = az.ess(idata, method="bulk")
    min_ess = min(float(np.min(ess[v].values)) for v in ess.data_vars)
    return seconds, min_ess


def bnnc_run(name, dense, threads, seed):
    import arviz as az
    import numpy as np

    d = os.path.join(ROOT, "..", "shared", "posteriordb", name)
    out = tempfile.mkdtemp(prefix="bnnc-sample-")
    cmd = [os.path.join(ROOT, "target", "release", "bnnc"), "run", os.path.join(d, "model.bnn"),
           "--data", os.path.join(d, "data.json"), "--out", out, "--seed", str(seed), "--threads", str(threads)]
    if dense:
        cmd += ["--metric", "dense"]
    t = time.time()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.time() - t
    summ = json.load(open(os.path.join(out, "summary.json")))
    min_ess = min(v["ess_bulk"] for v in summ["variables"].values())
    return seconds, min_ess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="diamonds-diamonds")
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    metric = "dense" if a.dense else "diag"
    print(f"{a.model}, 4 chains x (1000 + 1000), metric {metric}, float64")
    print("| sampler | wall s | min bulk ESS | ESS/s |")
    print("|---|---|---|---|")
    s, e = bnnc_run(a.model, a.dense, a.threads, a.seed)
    print(f"| bnnc ({a.threads} thread{'s' if a.threads > 1 else ''}) | {s:.1f} | {e:.0f} | {e / s:.1f} |", flush=True)
    s2, e2 = numpyro_run(a.model, a.dense, a.seed)
    print(f"| NumPyro (sequential chains) | {s2:.1f} | {e2:.0f} | {e2 / s2:.1f} |")
    print(f"ratio of ESS/s, bnnc / NumPyro: {(e / s) / (e2 / s2):.1f}")


if __name__ == "__main__":
    main()
