"""The digits data sets of the image examples.

`python3 benches/peers/make_digits_data.py --vendor` writes data/digits/digits.npz from
scikit-learn's copy (sklearn.datasets.load_digits: 1,797 images of 8 x 8 pixels, values 0-16,
and their labels); without --vendor it reads that file (numpy only) and writes the splits the
examples use, all uncompressed .npz with x: uint8 [N, 1, 8, 8] and y: int64 [N]:

  examples/digits_cnn.npz, examples/digits_test.npz     a shuffled 75/25 split (seed 0) of all
                                                          ten digits, stratified by label
                                                          (digits_fractal.npz: a copy of the first)
  examples/digits_ood.npz, examples/digits_ood_test.npz  the same split, digits 0-4 only
  examples/digits_ood_unseen.npz                          the test split's digits 5-9 (labels
                                                          shifted to 0-4, unused: out of
                                                          distribution for a model of 0-4)
Run from the repository root."""
import sys
import numpy as np

if "--vendor" in sys.argv:
    from sklearn.datasets import load_digits
    d = load_digits()
    np.savez("data/digits/digits.npz", x=d.images.astype(np.uint8).reshape(-1, 1, 8, 8),
             y=d.target.astype(np.int64))
    sys.exit(0)

z = np.load("data/digits/digits.npz")
x, y = z["x"], z["y"]
rng = np.random.default_rng(0)
train, test = [], []
for k in range(10):
    idx = rng.permutation(np.flatnonzero(y == k))
    cut = int(round(0.75 * len(idx)))
    train += list(idx[:cut])
    test += list(idx[cut:])
train, test = rng.permutation(train), rng.permutation(test)


def save(path, idx, shift=0):
    np.savez(path, x=x[idx], y=(y[idx] - shift).astype(np.int64))
    print(path, len(idx))


save("examples/digits_cnn.npz", train)
save("examples/digits_fractal.npz", train)
save("examples/digits_test.npz", test)
save("examples/digits_ood.npz", train[y[train] < 5])
save("examples/digits_ood_test.npz", test[y[test] < 5])
save("examples/digits_ood_unseen.npz", test[y[test] >= 5], shift=5)
