"""XLA's float64 tanh, as NumPyro's networks run it: nanoseconds per element and accuracy.

The element cost is measured the way `cargo bench --bench vmath` measures bnnc's array
`tanh`: 4096 arguments uniform on (-4, 4), inside one jitted `lax.fori_loop` of 1000 passes,
less the same loop without the `tanh` (the loop's own add and carry); median of --repeats
runs. The accuracy is the error in units in the last place against NumPy's `tanh` (the C
library's, itself within about 1 ulp) on 2 million points uniform on (-10, 10) and on
(-0.5, 0.5).

Run from the repository root, by hand, pinned like the other peers:

    taskset -c 1 python3 benches/peers/tanh_speed.py [--repeats 7]
    taskset -c 1 cargo bench --bench vmath
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)


def per_element(x, with_tanh, repeats):
    f = jnp.tanh if with_tanh else (lambda v: v)

    @jax.jit
    def loop(x):
        # The tiny multiple of the carry keeps XLA from hoisting the tanh out of the loop.
        return jax.lax.fori_loop(0, 1000, lambda i, acc: acc + f(x + acc * 1e-30), jnp.zeros_like(x))

    loop(x).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        loop(x).block_until_ready()
        times.append(time.perf_counter() - t)
    return statistics.median(times) / (1000 * x.size) * 1e9


def ulps(lo, hi, n, seed):
    x = np.random.default_rng(seed).uniform(lo, hi, n)
    got = np.asarray(jax.jit(jnp.tanh)(jnp.asarray(x)))
    want = np.tanh(x)
    return np.abs(got - want) / np.spacing(np.abs(want))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    x = jnp.asarray(np.random.default_rng(0).uniform(-4.0, 4.0, 4096))
    with_tanh = per_element(x, True, args.repeats)
    without = per_element(x, False, args.repeats)
    print(f"XLA float64 tanh: {with_tanh - without:.2f} ns per element "
          f"({with_tanh:.2f} with the loop, {without:.2f} the loop alone)")
    for lo, hi in [(-10.0, 10.0), (-0.5, 0.5)]:
        u = ulps(lo, hi, 2_000_000, 1)
        print(f"error against NumPy on ({lo:g}, {hi:g}): max {u.max():.0f} ulp, mean {u.mean():.2f}")


if __name__ == "__main__":
    main()
