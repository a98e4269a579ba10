"""Gradient time of bnnc's compiled log density against NumPyro's, model by model.

For every model it measures, on the same data:
- bnnc: `bnnc bench MODEL.bnn --data DATA.json --backend jit` (and `interp` with --interp):
  compile time and the median time of one gradient of the log density on the unconstrained space;
- NumPyro: the potential energy from `numpyro.infer.util.initialize_model` (the negative log
  density on the unconstrained space, Jacobians included, like bnnc's), as a function of one
  flat vector, through `jax.jit(jax.value_and_grad(...))`. Reported: the compile time (the
  first call: tracing plus XLA compilation), the median time of one call from Python
  (dispatch included, block_until_ready after each call), and the time per gradient inside one
  jitted `lax.fori_loop` of many gradients ("in-loop"), which is what NumPyro's own samplers
  pay, since they compile whole trajectories; the ratio is given for both.
NumPyro runs in float64 (bnnc computes in f64); with --f32 it is measured in float32 (JAX's
default) too. The NumPyro ports are in numpyro_models.py; before timing, each port's log density
is checked against `bnnc logp` at two points (the change of the log density between the points
must agree, so constant terms do not matter); the check is printed under the table.

Models: the 13 posteriordb posteriors in data/posteriordb/, examples/logistic_regression,
examples/bnn_regression (the same network on 277 yacht rows), and benches/models/bnn_protein (a 50-unit tanh BNN on 41,157 rows of UCI protein; its data file
is written into a temporary directory from data/uci/ at every run). For bnn_protein the
achieved GFLOP/s of the matrix products is printed too.

Run from the repository root, by hand (no test runs it; needs `pip install numpyro jax jaxlib`
and a release build, `cargo build --release`):

    python3 benches/peers/bench.py [--models name,...] [--seconds S] [--f32] [--interp]
                                   [--json out.json] [--jax-threads N] [--bnnc PATH]

`--models` takes names or unique prefixes (eight_schools, kidiq-kidscore_momiq, bnn_protein).
Results go to --json (default benches/peers/results.json; not meant to be committed).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
POSTERIORDB = os.path.join(ROOT, "data", "posteriordb")
PROTEIN = os.path.join(ROOT, "data", "uci", "protein-tertiary-structure", "data")

POSTERIORDB_MODELS = [
    "arK-arK",
    "arma-arma11",
    "diamonds-diamonds",
    "earnings-logearn_height",
    "eight_schools-eight_schools_noncentered",
    "garch-garch11",
    "gp_pois_regr-gp_regr",
    "kidiq-kidscore_interaction",
    "kidiq-kidscore_momiq",
    "low_dim_gauss_mix-low_dim_gauss_mix",
    "mesquite-logmesquite_logvolume",
    "nes1972-nes",
    "sblrc-blr",
]
EXAMPLES = ["logistic_regression", "bnn_regression"]
ALL_MODELS = POSTERIORDB_MODELS + EXAMPLES + ["bnn_protein"]
HIDDEN = 50  # bnn_protein's hidden units


# ---------------------------------------------------------------- models and data

def make_protein_data(path):
    """Training rows of split 0 of UCI protein, inputs and target standardised with the
    training mean and (population) sd, as examples/bnn_regression.json is made."""
    import numpy as np

    raw = np.loadtxt(os.path.join(PROTEIN, "data.txt"))
    feats = np.loadtxt(os.path.join(PROTEIN, "index_features.txt"), dtype=int).reshape(-1)
    target = int(np.loadtxt(os.path.join(PROTEIN, "index_target.txt")))
    train = np.loadtxt(os.path.join(PROTEIN, "index_train_0.txt"), dtype=int)
    x, y = raw[train][:, feats], raw[train, target]
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = (y - y.mean()) / y.std()
    data = {"N": int(x.shape[0]), "D": int(x.shape[1]),
            "x": np.round(x, 6).tolist(), "y": np.round(y, 6).tolist()}
    with open(path, "w") as f:
        json.dump(data, f)
    return data["N"], data["D"]


def model_files(name, tmpdir):
    """(model.bnn, data.json) of a benchmark model; makes bnn_protein's data on demand."""
    if name in POSTERIORDB_MODELS:
        d = os.path.join(POSTERIORDB, name)
        return os.path.join(d, "model.bnn"), os.path.join(d, "data.json")
    if name in EXAMPLES:
        ex = os.path.join(ROOT, "examples")
        return os.path.join(ex, name + ".bnn"), os.path.join(ex, name + ".json")
    if name == "bnn_protein":
        data = os.path.join(tmpdir, "bnn_protein.json")
        if not os.path.exists(data):
            make_protein_data(data)
        return os.path.join(ROOT, "benches", "models", "bnn_protein.bnn"), data
    raise KeyError(name)


def select_models(spec):
    if not spec:
        return list(ALL_MODELS)
    out = []
    for word in spec.split(","):
        word = word.strip()
        hits = [m for m in ALL_MODELS if m == word] or [m for m in ALL_MODELS if m.startswith(word)]
        if len(hits) != 1:
            sys.exit(f"--models: {word!r} matches {hits or 'no model'}; models: {', '.join(ALL_MODELS)}")
        out.append(hits[0])
    return out


def protein_flops(n, d, h=HIDDEN):
    """Flops of one gradient's matrix products: forward x@W1 (n*d*h*2) and h@W2 (n*h*2),
    backward about twice the forward."""
    forward = n * d * h * 2 + n * h * 2
    return 3 * forward


# ---------------------------------------------------------------- bnnc side

def run_bnnc(bnnc, model, data, backend, seconds):
    cmd = [bnnc, "bench", model, "--data", data, "--backend", backend, "--seconds", str(seconds)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip()[:500]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def bnnc_logp(bnnc, model, data, params, tmpdir):
    path = os.path.join(tmpdir, "params.json")
    with open(path, "w") as f:
        json.dump(params, f)
    p = subprocess.run([bnnc, "logp", model, "--data", data, "--params", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError((p.stderr or p.stdout).strip()[:500])
    return json.loads(p.stdout)


# ---------------------------------------------------------------- NumPyro side (worker)

def numpyro_worker(precision, spec_path, out_path):
    """Runs in its own process (float64 and float32 cannot share one JAX process cleanly):
    times every model in the spec and writes the results as JSON."""
    import numpy as np
    import jax

    jax.config.update("jax_enable_x64", precision == "f64")
    import jax.numpy as jnp
    from jax import lax
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import constrain_fn, initialize_model, log_density

    sys.path.insert(0, HERE)
    from numpyro_models import PORTS

    spec = json.load(open(spec_path))
    dtype = jnp.float64 if precision == "f64" else jnp.float32
    seconds = spec["seconds"]
    results = {}
    for item in spec["models"]:
        name = item["name"]
        prep, model = PORTS[name]
        res = {}
        try:
            kwargs = prep(json.load(open(item["data"])), dtype)
            info = initialize_model(jax.random.PRNGKey(0), model, model_kwargs=kwargs)
            z0 = info.param_info.z
            flat0, unravel = ravel_pytree(z0)
            flat0 = flat0.astype(dtype)
            potential = info.potential_fn

            def f(flat):
                return potential(unravel(flat))

            vg_raw = jax.value_and_grad(f)
            vg = jax.jit(vg_raw)
            res["dim"] = int(flat0.shape[0])

            t0 = time.perf_counter()
            v, g = jax.block_until_ready(vg(flat0))
            res["compile_ms"] = (time.perf_counter() - t0) * 1e3
            res["potential"] = float(v)
            res["potential_finite"] = bool(np.isfinite(float(v)))
            res["grad_finite"] = bool(np.all(np.isfinite(np.asarray(g))))

            # Per call from Python: warm up, then time single calls for `seconds`.
            for _ in range(20):
                jax.block_until_ready(vg(flat0))
            times = []
            start = time.perf_counter()
            while True:
                t = time.perf_counter()
                jax.block_until_ready(vg(flat0))
                times.append(time.perf_counter() - t)
                if time.perf_counter() - start >= seconds and len(times) >= 10:
                    break
            per_call = statistics.median(times)
            res["grad_us_median"] = per_call * 1e6
            res["calls"] = len(times)

            # In-loop: n gradients inside one jitted fori_loop. The point moves by 1e-30 * grad
            # each step (numerically nothing) so the compiler cannot hoist the gradient out of
            # the loop, and the values are summed so that they are not dead code. n is an
            # argument (no recompilation), raised until one call takes at least 10 ms so that
            # the single dispatch per call does not count.
            def body(_, carry):
                x, acc = carry
                val, grad = vg_raw(x)
                return x - 1e-30 * grad, acc + val

            loop = jax.jit(lambda x, n: lax.fori_loop(0, n, body, (x, jnp.zeros((), dtype))))
            jax.block_until_ready(loop(flat0, 1))  # compile
            n = int(min(1e7, max(1, 1e-2 / per_call)))
            while True:
                t = time.perf_counter()
                jax.block_until_ready(loop(flat0, n))
                took = time.perf_counter() - t
                if took >= 1e-2 or n >= 1e7:
                    break
                n = int(min(1e7, n * 1.5e-2 / max(took, 1e-6)))
            ltimes = []
            start = time.perf_counter()
            while True:
                t = time.perf_counter()
                jax.block_until_ready(loop(flat0, n))
                ltimes.append(time.perf_counter() - t)
                if time.perf_counter() - start >= seconds and len(ltimes) >= 3:
                    break
            res["loop_us_per_grad"] = statistics.median(ltimes) / n * 1e6
            res["loop_n"] = n

            if precision == "f64":
                # Two points for the cross-check against `bnnc logp`: the initial point and
                # one moved at random; constrained values by site name, the log joint density
                # without Jacobians, and the potential (with them).
                rng = np.random.default_rng(1)
                points = []
                for flat in (flat0, flat0 + 0.3 * rng.standard_normal(flat0.shape)):
                    z = unravel(jnp.asarray(flat, dtype))
                    # constrain_fn replays the model, so a bound that depends on another
                    # parameter (garch's beta1) is applied with that parameter's value here;
                    # info.postprocess_fn would reuse the bound of the initial point, as NumPyro
                    # does not see that an ImproperUniform's support is dynamic.
                    constrained = constrain_fn(model, (), kwargs, z)
                    logjoint, _ = log_density(model, (), kwargs, constrained)
                    points.append({
                        "params": {k: np.asarray(v).tolist() for k, v in constrained.items()},
                        "log_joint": float(logjoint),
                        "potential": float(f(jnp.asarray(flat, dtype))),
                    })
                res["points"] = points
        except Exception as e:  # report and go on with the next model
            res["error"] = f"{type(e).__name__}: {e}"[:500]
        results[name] = res
        print(f"  numpyro {precision} {name}: "
              + (res.get("error") or f"{res['grad_us_median']:.2f} us/call, "
                 f"{res['loop_us_per_grad']:.2f} us in-loop"), file=sys.stderr, flush=True)
    with open(out_path, "w") as f:
        json.dump(results, f)


def run_numpyro(precision, items, seconds, jax_threads, tmpdir):
    spec = os.path.join(tmpdir, f"spec-{precision}.json")
    out = os.path.join(tmpdir, f"numpyro-{precision}.json")
    with open(spec, "w") as f:
        json.dump({"models": items, "seconds": seconds}, f)
    env = dict(os.environ)
    if jax_threads:
        # Keep XLA's CPU backend to N threads (bnnc's gradient is single-threaded).
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                            + ("false" if jax_threads == 1 else "true")
                            + f" intra_op_parallelism_threads={jax_threads}").strip()
    env.setdefault("JAX_PLATFORMS", "cpu")
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--_worker", precision,
                        "--_spec", spec, "--_out", out], env=env)
    if p.returncode != 0 or not os.path.exists(out):
        sys.exit(f"the NumPyro {precision} worker failed (exit {p.returncode})")
    return json.load(open(out))


# ---------------------------------------------------------------- report

def fmt(x, digits=2):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def cross_check(bnnc, model, data, np_res, tmpdir):
    """Compare NumPyro's log density with `bnnc logp` at two points: the change between the
    points, without Jacobians (log joint vs logp) and with them (-potential vs logp_jacobian).
    Returns a short verdict."""
    pts = np_res.get("points")
    if not pts:
        return "no points"
    try:
        b = [bnnc_logp(bnnc, model, data, p["params"], tmpdir) for p in pts]
    except RuntimeError as e:
        return f"bnnc logp failed: {e}"
    d_np = pts[1]["log_joint"] - pts[0]["log_joint"]
    d_b = b[1]["logp"] - b[0]["logp"]
    dj_np = -(pts[1]["potential"] - pts[0]["potential"])
    dj_b = b[1]["logp_jacobian"] - b[0]["logp_jacobian"]
    scale = 1.0 + abs(d_b) + abs(b[0]["logp"])
    err = abs(d_np - d_b) / scale
    errj = abs(dj_np - dj_b) / (1.0 + abs(dj_b) + abs(b[0]["logp_jacobian"]))
    offset = pts[0]["log_joint"] - b[0]["logp"]
    ok = err < 1e-8 and errj < 1e-8
    return (f"{'ok' if ok else 'MISMATCH'}: Δlogp bnnc {d_b:.6g} NumPyro {d_np:.6g} "
            f"(rel. err {err:.1e}; with Jacobians {errj:.1e}); constant offset {offset:.4g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="", help="comma-separated names or prefixes (default: all)")
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per model per side (>= 1)")
    ap.add_argument("--f32", action="store_true", help="also time NumPyro in float32")
    ap.add_argument("--interp", action="store_true", help="also time bnnc's interpreter")
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--jax-threads", type=int, default=0,
                    help="limit XLA's CPU threads (default: JAX's own choice)")
    ap.add_argument("--bnnc", default=os.path.join(ROOT, "target", "release", "bnnc"))
    ap.add_argument("--no-check", action="store_true", help="skip the cross-check with bnnc logp")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    ap.add_argument("--_spec", help=argparse.SUPPRESS)
    ap.add_argument("--_out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        return numpyro_worker(args._worker, args._spec, args._out)

    seconds = max(1.0, args.seconds)
    load_start = os.getloadavg()[0]
    if not os.path.exists(args.bnnc):
        sys.exit(f"{args.bnnc} not found: run `cargo build --release` first")
    models = select_models(args.models)

    with tempfile.TemporaryDirectory(prefix="bnnc-peers-") as tmpdir:
        files = {m: model_files(m, tmpdir) for m in models}
        sizes = {}
        if "bnn_protein" in models:
            d = json.load(open(files["bnn_protein"][1]))
            sizes["bnn_protein"] = (d["N"], d["D"])

        # One side at a time, never both at once: the machine may have few cores.
        bnnc_res = {}
        for m in models:
            mdl, data = files[m]
            r = {"jit": run_bnnc(args.bnnc, mdl, data, "jit", seconds)}
            if args.interp:
                r["interp"] = run_bnnc(args.bnnc, mdl, data, "interp", seconds)
            bnnc_res[m] = r
            print(f"  bnnc {m}: {r['jit'].get('grad_us_median', r['jit'].get('error'))} us",
                  file=sys.stderr, flush=True)

        items = [{"name": m, "data": files[m][1]} for m in models]
        np64 = run_numpyro("f64", items, seconds, args.jax_threads, tmpdir)
        np32 = run_numpyro("f32", items, seconds, args.jax_threads, tmpdir) if args.f32 else {}

        checks = {}
        if not args.no_check:
            for m in models:
                checks[m] = cross_check(args.bnnc, *files[m], np64[m], tmpdir)

    # ------------------------------------------------ table
    head = ["model", "dim", "bnnc compile ms", "bnnc grad µs", "NumPyro compile ms",
            "NumPyro grad µs (f64)", "ratio NumPyro/bnnc", "NumPyro in-loop µs (f64)",
            "ratio in-loop"]
    if args.f32:
        head += ["NumPyro f32 µs", "NumPyro f32 in-loop µs"]
    if args.interp:
        head += ["bnnc interp µs"]
    rows = []
    load_end = os.getloadavg()[0]
    out = {"machine": {"cpus": os.cpu_count(), "jax_threads": args.jax_threads or "default",
                       "load_average_1min": [load_start, load_end]},
           "seconds": seconds, "models": {}}
    for m in models:
        bj = bnnc_res[m]["jit"]
        n64 = np64.get(m, {})
        n32 = np32.get(m, {})
        b_us = bj.get("grad_us_median")
        n_us = n64.get("grad_us_median")
        l_us = n64.get("loop_us_per_grad")
        dim = bj.get("dim")
        dim_s = str(dim) if n64.get("dim") in (None, dim) else f"{dim} (NumPyro {n64.get('dim')})"
        row = [m, dim_s, fmt(bj.get("compile_ms")), fmt(b_us), fmt(n64.get("compile_ms")),
               fmt(n_us), fmt(n_us / b_us if b_us and n_us else None),
               fmt(l_us), fmt(l_us / b_us if b_us and l_us else None)]
        if args.f32:
            row += [fmt(n32.get("grad_us_median")), fmt(n32.get("loop_us_per_grad"))]
        if args.interp:
            row += [fmt(bnnc_res[m].get("interp", {}).get("grad_us_median"))]
        rows.append(row)
        n64_slim = {k: v for k, v in n64.items() if k != "points"}
        out["models"][m] = {"bnnc": bnnc_res[m], "numpyro_f64": n64_slim, "check": checks.get(m)}
        if args.f32:
            out["models"][m]["numpyro_f32"] = n32

    print(f"\nGradient of the log density, median µs per evaluation ({os.cpu_count()} CPUs; "
          f"JAX threads: {args.jax_threads or 'default'}; {seconds:g} s per model per side; "
          f"1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end)")
    print("ratio > 1: bnnc's gradient is faster. \"in-loop\": NumPyro's time per gradient inside "
          "one jitted loop, without Python's per-call dispatch.\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")

    errors = [(m, side, r["error"]) for m in models
              for side, r in [("bnnc", bnnc_res[m]["jit"]), ("NumPyro f64", np64.get(m, {})),
                              ("NumPyro f32", np32.get(m, {}))] if "error" in r]
    for m, side, e in errors:
        print(f"\n{side} failed on {m}: {e}")

    if "bnn_protein" in models:
        n, d = sizes["bnn_protein"]
        flops = protein_flops(n, d)
        print(f"\nbnn_protein: N={n}, D={d}, H={HIDDEN}; {flops / 1e6:.1f} MFLOP per gradient "
              "(matrix products: forward 2NDH + 2NH, backward twice that)")
        gf = {}
        for label, us in [("bnnc jit", bnnc_res["bnn_protein"]["jit"].get("grad_us_median")),
                          ("bnnc interp", bnnc_res["bnn_protein"].get("interp", {}).get("grad_us_median")),
                          ("NumPyro f64", np64.get("bnn_protein", {}).get("grad_us_median")),
                          ("NumPyro f64 in-loop", np64.get("bnn_protein", {}).get("loop_us_per_grad")),
                          ("NumPyro f32", np32.get("bnn_protein", {}).get("grad_us_median")),
                          ("NumPyro f32 in-loop", np32.get("bnn_protein", {}).get("loop_us_per_grad"))]:
            if us:
                gf[label] = flops / (us * 1e-6) / 1e9
                print(f"  {label:20s} {us:10.1f} µs  {gf[label]:6.2f} GFLOP/s")
        out["models"]["bnn_protein"]["gflops"] = gf

    if checks:
        print("\nNumPyro ports against `bnnc logp` (change of the log density between two points; "
              "potential and gradient finite at NumPyro's initial point):")
        for m in models:
            n64 = np64.get(m, {})
            fin = "finite" if n64.get("potential_finite") and n64.get("grad_finite") else "NOT FINITE"
            print(f"  {m}: {fin}; {checks[m]}")

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
