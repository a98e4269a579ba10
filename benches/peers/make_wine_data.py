"""Write examples/bnn_classification.json, bnn_classification_test.json and
bnn_classification_ood.json from scikit-learn's copy of the UCI wine data (Aeberhard &
Forina; 178 wines from three cultivars, 13 chemical measurements). Cultivars 0 and 1 are the
known classes: their rows are split 70/30 into training and test rows (stratified, fixed
seed); the 48 wines of cultivar 2 are the out-of-distribution inputs. Features are
standardised with the training rows' mean and (population) sd and rounded to 6 significant
digits. Run from the repository root: python3 benches/peers/make_wine_data.py (needs
scikit-learn, which ships the data; nothing is downloaded)."""
import json
import numpy as np
from sklearn.datasets import load_wine

w = load_wine()
X, y = w.data, w.target
rng = np.random.default_rng(0)
train, test = [], []
for c in (0, 1):
    idx = rng.permutation(np.flatnonzero(y == c))
    k = int(round(0.7 * len(idx)))
    train += sorted(idx[:k].tolist())
    test += sorted(idx[k:].tolist())
ood = np.flatnonzero(y == 2).tolist()
m, s = X[train].mean(axis=0), X[train].std(axis=0)


def r6(v):
    return float(f"{v:.6g}")


def write(path, rows, labels=True):
    x = (X[rows] - m) / s
    d = {"N": len(rows), "D": int(X.shape[1]), "K": 2, "x": [[r6(v) for v in r] for r in x]}
    if labels:
        d["y"] = [int(v) for v in y[rows]]
    with open(path, "w") as f:
        json.dump(d, f, separators=(", ", ": "))
        f.write("\n")


write("examples/bnn_classification.json", train)
write("examples/bnn_classification_test.json", test)
write("examples/bnn_classification_ood.json", ood, labels=False)
