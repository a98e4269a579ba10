"""Write examples/bnn_regression.json and examples/bnn_regression_test.json: split 0 of the
UCI yacht hydrodynamics set (data/uci/yacht), the training rows and the test rows, inputs and
target standardised with the training rows' mean and (population) sd, rounded to 6 decimals.
The test file also records the target's training mean and sd, so that predictions can be put
back in the original units (y = y_mean + y_sd * prediction). Run from the repository root:
python3 benches/peers/make_yacht_data.py (needs numpy)."""
import json
import os
import numpy as np

D = os.path.join("data", "uci", "yacht", "data")
raw = np.loadtxt(os.path.join(D, "data.txt"))
feats = np.loadtxt(os.path.join(D, "index_features.txt"), dtype=int).reshape(-1)
target = int(np.loadtxt(os.path.join(D, "index_target.txt")))
train = np.loadtxt(os.path.join(D, "index_train_0.txt"), dtype=int)
test = np.loadtxt(os.path.join(D, "index_test_0.txt"), dtype=int)
x_tr, y_tr = raw[train][:, feats], raw[train, target]
mx, sx = x_tr.mean(axis=0), x_tr.std(axis=0)
my, sy = y_tr.mean(), y_tr.std()


def rows(idx):
    x = (raw[idx][:, feats] - mx) / sx
    y = (raw[idx, target] - my) / sy
    return {"N": int(x.shape[0]), "D": int(x.shape[1]),
            "x": np.round(x, 6).tolist(), "y": np.round(y, 6).tolist()}


with open("examples/bnn_regression.json", "w") as f:
    json.dump(rows(train), f)
t = rows(test)
t["y_mean"], t["y_sd"] = round(float(my), 6), round(float(sy), 6)
with open("examples/bnn_regression_test.json", "w") as f:
    json.dump(t, f)

# examples/bnn_heteroscedastic{,_test}.json: the same rows with the Froude number alone as the
# input (the last feature): at a given speed the hull shapes the model does not see spread
# the resistance more the faster the hull goes, so the noise grows with the input.
FROUDE = feats.shape[0] - 1


def froude_rows(idx):
    r = rows(idx)
    r["D"] = 1
    r["x"] = [[row[FROUDE]] for row in r["x"]]
    return r


with open("examples/bnn_heteroscedastic.json", "w") as f:
    json.dump(froude_rows(train), f)
t = froude_rows(test)
t["y_mean"], t["y_sd"] = round(float(my), 6), round(float(sy), 6)
with open("examples/bnn_heteroscedastic_test.json", "w") as f:
    json.dump(t, f)
