"""Load a bnnc run's draws with ArviZ's CmdStan reader and compare ArviZ's summary with
bnnc's summary.json. Usage: python3 scripts/arviz_check.py OUT_DIR  (needs arviz)."""
import glob, json, sys, warnings

warnings.filterwarnings("ignore")
import arviz as az

out = sys.argv[1]
files = sorted(glob.glob(f"{out}/draws-*.csv"))
idata = az.from_cmdstan(posterior=files)
post = idata.posterior
summ = json.load(open(f"{out}/summary.json"))["variables"]
print(f"ArviZ read {len(files)} chains x {post.sizes['draw']} draws; variables: {', '.join(post.data_vars)}")
worst = 0.0
for name, s in summ.items():
    base, _, idx = name.partition("[")
    da = post[base]
    if idx:
        sel = [int(i) for i in idx.rstrip("]").split(",")]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.isel({d: i for d, i in zip(dims, sel)})
    mean = float(da.mean())
    vals = da.values  # (chain, draw)
    ess = float(az.ess(vals, method="bulk"))
    rhat = float(az.rhat(vals))
    worst = max(worst, abs(mean - s["mean"]) / max(abs(s["mean"]), 1e-12), abs(ess - s["ess_bulk"]) / s["ess_bulk"], abs(rhat - s["rhat"]))
print(f"largest relative difference from bnnc's summary (mean, bulk ESS, R-hat): {worst:.2e}")
sys.exit(0 if worst < 1e-6 else 1)
