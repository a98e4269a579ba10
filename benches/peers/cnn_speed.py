"""Training epoch time of the digits CNN: bnnc against PyTorch on CPU, one core, one thread.

Measured: seconds per epoch (one pass over the 1,347 training images of
examples/digits_cnn.npz in shuffled minibatches of 64, 22 steps) of MAP training of the
network of examples/digits_cnn.bnn: conv 3x3 1->16 (padding 1) + relu, conv 3x3 16->16
(padding 1) + relu, 2x2 max pooling, dense 256->64 + relu, dense 64->10, categorical
log-likelihood of the labels scaled by N/B plus the Gaussian log prior of every weight
(sd 0.5 for the convolutions, 0.2 for the dense layers), Adam at 0.01. Dropout is the
identity in MAP (as bnnc's `dropout` is in a log density), so neither applies it.

- bnnc: `bnnc run examples/digits_cnn.bnn --method map --batch-size 64 --epochs E
  --val-frac 0`; the training loop's seconds (summary.json's optimizer.seconds) over E.
- PyTorch: torch.nn with torch.set_num_threads(1), float32 and float64; a warm-up epoch,
  then E timed epochs, the median.
Each in its own process pinned with `taskset -c CORE`. Printed: median s/epoch over
--repeats runs (bnnc) or epochs (PyTorch), the range, and PyTorch/bnnc.

Run from the repository root (needs `cargo build --release` and `pip install torch numpy`):
    python3 benches/peers/cnn_speed.py [--epochs 10] [--repeats 3] [--core 0]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def torch_epochs(epochs, dtype):
    import numpy as np
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    z = np.load(os.path.join(ROOT, "examples", "digits_cnn.npz"))
    x = torch.tensor(z["x"], dtype=dt) / 16.0
    y = torch.tensor(z["y"], dtype=torch.long)
    n = x.shape[0]
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(256, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).to(dt)
    sds = [0.5, 0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2]
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=0.01)
    times = []
    for epoch in range(epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for s in range(0, n, 64):
            idx = perm[s:s + 64]
            opt.zero_grad()
            logits = net(x[idx])
            ll = -torch.nn.functional.cross_entropy(logits, y[idx], reduction="sum") * (n / len(idx))
            lp = sum((-(p * p).sum() / (2 * sd * sd)) for p, sd in zip(params, sds))
            (-(ll + lp)).backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times[1:]


def bnnc_epoch(epochs, exe):
    with tempfile.TemporaryDirectory() as out:
        cmd = [exe, "run", "examples/digits_cnn.bnn", "--method", "map", "--batch-size", "64",
               "--epochs", str(epochs), "--val-frac", "0", "--seed", "1", "--out", out]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        s = json.load(open(os.path.join(out, "summary.json")))
        return s["optimizer"]["seconds"] / s["optimizer"]["epochs"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--bnnc", default=os.path.join(ROOT, "target", "release", "bnnc"))
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inner:
        print(json.dumps(torch_epochs(a.epochs, a.inner)))
        return
    env = dict(os.environ, **ONE_THREAD)
    pin = ["taskset", "-c", str(a.core)]
    rows = []
    b = [float(subprocess.run(pin + [sys.executable, "-c",
                                     "import sys; sys.path.insert(0, %r); import cnn_speed as c; print(c.bnnc_epoch(%d, %r))"
                                     % (HERE, a.epochs, a.bnnc)],
                                    env=env, check=True, capture_output=True, text=True).stdout)
         for _ in range(a.repeats)]
    rows.append(("bnnc (map, float64)", b))
    for dtype in ["float32", "float64"]:
        out = subprocess.run(pin + [sys.executable, __file__, "--inner", dtype, "--epochs", str(a.epochs)],
                             env=env, check=True, capture_output=True, text=True).stdout
        rows.append(("PyTorch %s, %s" % (__import__("torch").__version__, dtype), json.loads(out)))
    base = statistics.median(b)
    print("| | s/epoch | range | bnnc faster by |")
    print("|---|---:|---:|---:|")
    for name, t in rows:
        m = statistics.median(t)
        ratio = "" if t is b else "%.1fx" % (m / base)
        print("| %s | %.3f | %.3f-%.3f | %s |" % (name, m, min(t), max(t), ratio))


if __name__ == "__main__":
    main()
