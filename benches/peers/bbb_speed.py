"""Epoch time of Bayes by Backprop on UCI protein: bnnc against PyTorch and NumPyro, one core.

Measured: seconds per epoch (one pass over the 41,157 training rows of split 0, 322 shuffled
minibatches of 128) of Bayes by Backprop (Blundell et al. 2015) on the network of
benches/models/bnn_protein.bnn: one hidden layer of 50 tanh units, one output unit,
y ~ Normal(f(x), sigma), weights and biases ~ Normal(0, 1), sigma ~ HalfNormal(1); the
likelihood of a batch is scaled by N/B, the KL is counted once per step, Adam (--lr, 0.01).

- PyTorch (CPU, torch.set_num_threads(1)): a hand-written BBB. Mean-field Gaussian q with
  sd = softplus(rho) for every weight and bias; the local reparameterisation for both weight
  matrices (pre-activation mean x@M + b, variance (x*x)@(S*S), one noise draw per row), the
  biases drawn once per step; closed-form KL to N(0, 1); log sigma ~ Normal(m, softplus(r))
  reparameterised, its prior term (HalfNormal(1) with the log-Jacobian) and log q by one Monte
  Carlo draw. float32 by default; float64 too unless --no-f64.
- NumPyro: SVI with an AutoNormal guide, Trace_ELBO, numpyro.optim.Adam; the batch's rows are
  gathered from a per-epoch permutation inside the jitted step (jax.jit around svi.update,
  after svi.init), the likelihood scaled by N/B with handlers.scale. No local
  reparameterisation (AutoNormal draws the weights once per step). float64 by default (as
  bnnc computes), float32 too unless --no-f32.
- bnnc: `bnnc run benches/models/bnn_protein.bnn --method bbb --epochs 1+E --batch-size 128
  --lr LR --val-frac 0 --seed 1`; epoch times from summary.json's vi.trace less its first
  epoch (else vi.seconds_per_epoch). If it fails, "bnnc: not available (...)" is printed.

Each framework runs in its own process pinned with `taskset -c CORE` (default 0), with
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" and OMP/MKL/
OpenBLAS threads at 1: one warm-up epoch (compilation, tracing), then --epochs timed epochs.
Printed: median s/epoch, its min-max, ms/step, peer/bnnc, and the mean loss (negative ELBO
estimate over an epoch's steps) of the warm-up and the last epoch, which must decrease.

Run from the repository root (needs `cargo build --release`, `pip install torch numpyro jax`;
torch's CPU-only wheels: `pip install torch --index-url https://download.pytorch.org/whl/cpu`):

    python3 benches/peers/bbb_speed.py [--epochs 5] [--lr 0.01] [--core 0] [--bnnc PATH]
        [--only torch,numpyro,bnnc] [--no-f64] [--no-f32] [--json benches/peers/bbb_results.json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL = os.path.join(ROOT, "benches", "models", "bnn_protein.bnn")
HIDDEN = 50
BATCH = 128
ONE_THREAD = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def load(path):
    import numpy as np
    with open(path) as f:
        d = json.load(f)
    return np.asarray(d["x"], dtype=np.float64), np.asarray(d["y"], dtype=np.float64)


def batches(rng, n):
    perm = rng.permutation(n)
    return [perm[i:i + BATCH] for i in range(0, n, BATCH)]


# ---------------------------------------------------------------- PyTorch worker

def torch_worker(a):
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    dtype = torch.float64 if a.precision == "f64" else torch.float32
    xs, ys = load(a.data)
    X, Y = torch.tensor(xs, dtype=dtype), torch.tensor(ys, dtype=dtype)
    n, d = X.shape
    rho0 = float(np.log(np.expm1(0.1)))  # softplus(rho0) = 0.1, AutoNormal's initial scale

    def param(*shape, mean=True):
        t = 0.1 * torch.randn(*shape, dtype=dtype) if mean else torch.full(shape, rho0, dtype=dtype)
        return t.requires_grad_()

    p = {"M1": param(d, HIDDEN), "R1": param(d, HIDDEN, mean=False), "m1": param(HIDDEN),
         "r1": param(HIDDEN, mean=False), "M2": param(HIDDEN, 1), "R2": param(HIDDEN, 1, mean=False),
         "m2": param(1), "r2": param(1, mean=False), "ls_m": param(1), "ls_r": param(1, mean=False)}
    opt = torch.optim.Adam(p.values(), lr=a.lr)
    half_log_2pi = 0.5 * float(np.log(2 * np.pi))

    def kl(m, s):  # KL(N(m, s^2) || N(0, 1)), summed
        return (0.5 * (s * s + m * m - 1.0) - torch.log(s)).sum()

    def dense(h, M, S, b):  # local reparameterisation: one draw of the pre-activation per row
        mean = h @ M + b
        var = (h * h) @ (S * S)
        return mean + var.sqrt() * torch.randn_like(mean)

    def step(idx):
        xb, yb = X[idx], Y[idx]
        S1, s1, S2, s2 = (F.softplus(p[k]) for k in ("R1", "r1", "R2", "r2"))
        b1, b2 = p["m1"] + s1 * torch.randn_like(s1), p["m2"] + s2 * torch.randn_like(s2)
        f = dense(torch.tanh(dense(xb, p["M1"], S1, b1)), p["M2"], S2, b2)[:, 0]
        ls_s = F.softplus(p["ls_r"])
        eps = torch.randn_like(ls_s)
        ls = p["ls_m"] + ls_s * eps  # log sigma ~ q = Normal(ls_m, ls_s)
        sigma = ls.exp()
        r = (yb - f) / sigma
        loglik = (-0.5 * r * r - ls - half_log_2pi).sum() * (n / len(idx))
        log_q = (-0.5 * eps * eps - torch.log(ls_s) - half_log_2pi).sum()
        log_prior = (0.5 * float(np.log(2 / np.pi)) - 0.5 * sigma * sigma + ls).sum()  # + Jacobian
        loss = -loglik + kl(p["M1"], S1) + kl(p["m1"], s1) + kl(p["M2"], S2) + kl(p["m2"], s2) \
            + log_q - log_prior
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    rng = np.random.default_rng(a.seed)

    def epoch():
        idxs = [torch.from_numpy(b) for b in batches(rng, n)]
        t0 = time.perf_counter()
        losses = torch.stack([step(i) for i in idxs])
        return time.perf_counter() - t0, float(losses.mean()), len(idxs)

    return run_epochs(epoch, a.epochs, f"torch {torch.__version__}")


# ---------------------------------------------------------------- NumPyro worker

def numpyro_worker(a):
    import numpy as np
    import jax

    jax.config.update("jax_enable_x64", a.precision == "f64")
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    xs, ys = load(a.data)
    X, Y = jnp.asarray(xs), jnp.asarray(ys)  # the default float width of this process
    n, d = X.shape

    def model(xb, yb):
        W1 = numpyro.sample("W1", dist.Normal(0.0, 1.0).expand([d, HIDDEN]).to_event(2))
        b1 = numpyro.sample("b1", dist.Normal(0.0, 1.0).expand([HIDDEN]).to_event(1))
        W2 = numpyro.sample("W2", dist.Normal(0.0, 1.0).expand([HIDDEN, 1]).to_event(2))
        b2 = numpyro.sample("b2", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        f = (jnp.tanh(xb @ W1 + b1) @ W2 + b2)[:, 0]
        with numpyro.plate("data", xb.shape[0]), numpyro.handlers.scale(scale=n / xb.shape[0]):
            numpyro.sample("y", dist.Normal(f, sigma), obs=yb)

    svi = SVI(model, AutoNormal(model), numpyro.optim.Adam(a.lr), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(a.seed), X[:BATCH], Y[:BATCH])
    update = jax.jit(lambda st, idx: svi.update(st, X[idx], Y[idx]))
    rng = np.random.default_rng(a.seed)

    def epoch():
        nonlocal state
        idxs = [jnp.asarray(b) for b in batches(rng, n)]
        t0 = time.perf_counter()
        losses = []
        for idx in idxs:
            state, loss = update(state, idx)
            losses.append(loss)
        jax.block_until_ready((state, losses))  # waits for the last step (dispatch is async)
        return time.perf_counter() - t0, float(jnp.mean(jnp.stack(losses))), len(idxs)

    return run_epochs(epoch, a.epochs, f"numpyro {numpyro.__version__}, jax {jax.__version__}")


def run_epochs(epoch, epochs, version):
    warm = epoch()
    timed = [epoch() for _ in range(epochs)]
    return {"version": version, "warmup_seconds": warm[0], "steps": timed[0][2],
            "epoch_seconds": [t[0] for t in timed], "loss": [warm[1]] + [t[1] for t in timed]}


# ---------------------------------------------------------------- bnnc

def run_bnnc(bnnc, data, epochs, lr, core, tmp):
    out = os.path.join(tmp, "bnnc-out")
    cmd = pin(core) + [bnnc, "run", MODEL, "--data", data, "--method", "bbb", "--epochs",
                       str(epochs + 1), "--batch-size", str(BATCH), "--lr", str(lr),
                       "--val-frac", "0", "--seed", "1", "--out", out]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        return {"error": str(e)}
    if p.returncode != 0:
        return {"error": ((p.stderr or p.stdout).strip().splitlines() or [f"exit {p.returncode}"])[0]}
    with open(os.path.join(out, "summary.json")) as f:
        vi = json.load(f)["vi"]
    timed = (vi.get("trace") or [])[1:] or [{"seconds": vi["seconds_per_epoch"]}]
    v = subprocess.run([bnnc, "--version"], capture_output=True, text=True).stdout.strip()
    return {"version": v or bnnc, "steps": vi["iterations"] // vi["epochs"],
            "epoch_seconds": [t["seconds"] for t in timed],
            "loss": [-t["elbo"] for t in vi.get("trace") or [] if "elbo" in t]}


# ---------------------------------------------------------------- driver

def pin(core):
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


def run_worker(kind, precision, a, data, tmp):
    out = os.path.join(tmp, f"{kind}-{precision}.json")
    cmd = pin(a.core) + [sys.executable, os.path.abspath(__file__), "--worker", kind,
                         "--precision", precision, "--data", data, "--worker-out", out,
                         "--epochs", str(a.epochs), "--lr", str(a.lr), "--seed", str(a.seed)]
    p = subprocess.run(cmd, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True)
    if p.returncode != 0:  # the last line of a traceback
        return {"error": ((p.stderr or p.stdout).strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    with open(out) as f:
        return json.load(f)


def stats(res):
    t = res["epoch_seconds"]
    res["median"], res["min"], res["max"] = statistics.median(t), min(t), max(t)
    res["ms_per_step"] = 1000 * res["median"] / res["steps"]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs after one warm-up epoch")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--core", type=int, default=0, help="the core every run is pinned to")
    ap.add_argument("--bnnc", default=os.path.join(ROOT, "target", "release", "bnnc"))
    ap.add_argument("--only", default="torch,numpyro,bnnc")
    ap.add_argument("--no-f64", action="store_true", help="PyTorch in float32 only")
    ap.add_argument("--no-f32", action="store_true", help="NumPyro in float64 only")
    ap.add_argument("--json", default=os.path.join(HERE, "bbb_results.json"))
    for internal in ("--worker", "--precision", "--data", "--worker-out"):
        ap.add_argument(internal, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        res = (torch_worker if a.worker == "torch" else numpyro_worker)(a)
        with open(a.worker_out, "w") as f:
            json.dump(res, f)
        return

    sys.path.insert(0, HERE)
    from bench import make_protein_data

    only = set(a.only.split(","))
    runs = [(k, p) for k, p, skip in [("torch", "f32", False), ("torch", "f64", a.no_f64),
                                      ("numpyro", "f64", False), ("numpyro", "f32", a.no_f32)]
            if k in only and not skip]
    if not pin(a.core):
        print("warning: taskset not found; the runs are not pinned to one core")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "protein.json")
        n, d = make_protein_data(data)
        print(f"UCI protein: {n} rows x {d} features; {a.epochs} timed epochs after 1 warm-up, "
              f"batch {BATCH}, lr {a.lr}, core {a.core}")
        if "bnnc" in only:
            results["bnnc"] = run_bnnc(a.bnnc, data, a.epochs, a.lr, a.core, tmp)
            if "error" in results["bnnc"]:
                print(f"bnnc: not available ({results['bnnc']['error']})")
        for kind, prec in runs:
            print(f"running {kind} {prec} ...", flush=True)
            results[f"{kind} {prec}"] = run_worker(kind, prec, a, data, tmp)

    base = results.get("bnnc", {})
    base = stats(base)["median"] if "epoch_seconds" in base else None
    print("\n| framework | s/epoch (median) | min-max | ms/step | x bnnc | loss warm-up -> last |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | not available: {r['error'][:80]} | | | | |")
            continue
        stats(r)
        r["ratio_to_bnnc"] = r["median"] / base if base else None
        ratio = f"{r['ratio_to_bnnc']:.2f}" if base else "-"
        loss = f"{r['loss'][0]:.0f} -> {r['loss'][-1]:.0f}" if len(r.get("loss", [])) > 1 else "-"
        print(f"| {name} | {r['median']:.4f} | {r['min']:.4f}-{r['max']:.4f} | "
              f"{r['ms_per_step']:.3f} | {ratio} | {loss} |")
    print("\n" + "; ".join(f"{k}: {r['version']}" for k, r in results.items() if "version" in r))
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"epochs": a.epochs, "lr": a.lr, "batch": BATCH, "core": a.core,
                   "results": results}, f, indent=1)
    print(f"results written to {a.json}")


if __name__ == "__main__":
    main()
