"""Compare a bnnc run's summary.json with a posteriordb reference (the rule in
data/posteriordb/README.md). Usage: posteriordb_check.py SUMMARY.json REFERENCE.json"""
import json, math, sys

summ = json.load(open(sys.argv[1]))
ref = json.load(open(sys.argv[2]))["variables"]
bad = []
for name, r in ref.items():
    s = summ["variables"].get(name)
    if s is None:
        bad.append(f"{name}: missing")
        continue
    tol = 4 * math.sqrt(s["mcse"] ** 2 + r["sd"] ** 2 / 10000)
    if abs(s["mean"] - r["mean"]) > tol:
        bad.append(f"{name}: mean {s['mean']:.4g} vs {r['mean']:.4g} (tolerance {tol:.3g})")
    if s["ess_bulk"] >= 400 and abs(s["sd"] / r["sd"] - 1) > 0.1:
        bad.append(f"{name}: sd {s['sd']:.4g} vs {r['sd']:.4g}")
    if not s["rhat"] < 1.01:
        bad.append(f"{name}: rhat {s['rhat']:.4f}")
if summ["sampler"]["divergences"] > 0:
    bad.append(f"{summ['sampler']['divergences']} divergences")
print("MATCH" if not bad else "MISMATCH: " + "; ".join(bad[:6]) + (" ..." if len(bad) > 6 else ""))
sys.exit(0 if not bad else 1)
