"""Write examples/logistic_regression.json: scikit-learn's copy of the Wisconsin diagnostic
breast cancer data (569 rows), its first 10 features (the "mean" ones), standardised to mean 0
and sd 1 (population sd), target 0 = malignant / 1 = benign, values rounded to 6 significant
digits. Run once from the repository root: python3 benches/peers/make_logistic_data.py
(needs scikit-learn, which ships the data; nothing is downloaded)."""
import json
import numpy as np
from sklearn.datasets import load_breast_cancer

K = 10
bc = load_breast_cancer()
X = bc.data[:, :K]
X = (X - X.mean(axis=0)) / X.std(axis=0)
y = bc.target.astype(int)


def r6(v):
    # 6 significant digits, printed as a short decimal by json.
    return float(f"{v:.6g}")


data = {
    "N": int(X.shape[0]),
    "K": K,
    "X": [[r6(v) for v in row] for row in X],
    "y": [int(v) for v in y],
}
with open("examples/logistic_regression.json", "w") as f:
    json.dump(data, f, separators=(", ", ": "))
    f.write("\n")
print("features:", ", ".join(bc.feature_names[:K]))
print(f"N={data['N']} K={K} positives={sum(data['y'])}")
