"""Speed of the compiled dynamics (sims), with baselines measured in the same run.

1. Numba compile time of the kernels: cold (empty cache) and cached, in fresh processes.
2. (n, T, d) = (6, 8, 10): one NGD step of the compiled trajectory against a plain numpy
   loop and a torch autograd loop (targets: <= 3 us per step; about 30 us numpy, 390 us torch),
   and one momentum-NGD step against the NGD step (the rule table costs nothing).
3. A 100-seed x 2000-step NGD sweep through ``sims.run_many`` (target: < 1 s once compiled).
4. (1000, 64, 128): one NGD step against a vectorised numpy step and against the
   memory-bandwidth floor, bytes of X / bandwidth of a large ``np.copyto`` (target: within 3x).

Every ratio compares numbers measured in this run, so machine load affects both sides.
Run: ``.venv/bin/python benchmarks/bench_sims.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import sims
from sims.data import equal_score, general_random
from theory import AttentionProblem

_COMPILE_SNIPPET = """
import time
t0 = time.perf_counter()
import numpy as np, sims
from sims.data import equal_score
p = equal_score(4, 5, 6, seed=0)
sims.evaluate(p, np.eye(6))
sims.run(p, "ngd", 5, reference=np.eye(6))
print(time.perf_counter() - t0)
"""


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def compile_times():
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = []
        for _ in range(2):
            res = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET], env=env,
                                 capture_output=True, text=True, check=True)
            out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


# ---------------------------------------------------------------------- baselines
def numpy_ngd(problem, steps, lr):
    """Plain numpy NGD loop on the textbook gradient (the predecessor's approach)."""
    X, Z, g = problem.X, problem.queries, problem.scores
    n = problem.n
    W = np.zeros((problem.d, problem.d))
    for _ in range(steps):
        q = Z @ W.T
        a = np.matmul(X, q[:, :, None])[:, :, 0]
        s = np.exp(a - a.max(axis=1, keepdims=True))
        s /= s.sum(axis=1, keepdims=True)
        m = np.sum(s * g, axis=1)
        w = s * (g - m[:, None]) * (-1.0 / (1.0 + np.exp(m)))[:, None]
        r = np.matmul(w[:, None, :], X)[:, 0, :]
        G = r.T @ Z / n
        W -= lr * G / np.linalg.norm(G)
    return W


def torch_ngd(problem, steps, lr):
    """Autograd NGD loop in float64 (the predecessor's torch code path), one thread."""
    import torch

    torch.set_num_threads(1)  # tiny tensors: extra threads only add contention

    X = torch.tensor(problem.X)
    Z = torch.tensor(np.ascontiguousarray(problem.queries))
    y = torch.tensor(problem.y)
    u = torch.tensor(problem.u)
    W = torch.zeros(problem.d, problem.d, dtype=torch.float64, requires_grad=True)
    for _ in range(steps):
        s = torch.softmax(torch.einsum("itd,de,ie->it", X, W, Z), dim=1)
        loss = torch.nn.functional.softplus(-y * torch.einsum("it,itd,d->i", s, X, u)).mean()
        (g,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W -= lr * g / g.norm()
    return W


def bandwidth():
    src = np.ones(1 << 26)  # 512 MiB read + written per copy
    dst = np.empty_like(src)
    return 2 * src.nbytes / best_of(lambda: np.copyto(dst, src), repeat=5)


def main():
    print("numba compile (first evaluate + run in a fresh process):")
    cold, cached = compile_times()
    print(f"  cold cache {cold:7.2f} s   cached {cached:6.2f} s   (ratio {cold / cached:.1f}x)")

    # ------------------------------------------------------------- (6, 8, 10) NGD
    p = equal_score(6, 8, 10, seed=0)
    R = np.eye(10)
    sims.run(p, "ngd", 10, reference=R)
    steps = 200_000
    t_run = best_of(lambda: sims.run(p, "ngd", steps, reference=R), repeat=3)
    t_zero = best_of(lambda: sims.run(p, "ngd", 0, reference=R), repeat=5)
    us_sims = (t_run - t_zero) / steps * 1e6
    sims.run(p, "ngd_momentum", 10, reference=R)
    t_mom = best_of(lambda: sims.run(p, "ngd_momentum", steps, reference=R), repeat=3)
    us_mom = (t_mom - t_zero) / steps * 1e6
    us_numpy = best_of(lambda: numpy_ngd(p, 2000, 0.1), repeat=3) / 2000 * 1e6
    try:
        torch_ngd(p, 10, 0.1)
        us_torch = best_of(lambda: torch_ngd(p, 300, 0.1), repeat=3) / 300 * 1e6
    except ImportError:
        us_torch = float("nan")
    print("\n(n, T, d) = (6, 8, 10), one NGD step:")
    print(f"  sims compiled trajectory {us_sims:8.2f} us/step   (target <= 3 us)")
    print(f"  sims momentum NGD        {us_mom:8.2f} us/step   ({us_mom / us_sims:6.2f}x NGD)")
    print(f"  numpy loop               {us_numpy:8.2f} us/step   ({us_numpy / us_sims:6.1f}x slower)")
    print(f"  torch autograd loop      {us_torch:8.2f} us/step   ({us_torch / us_sims:6.1f}x slower)")

    # -------------------------------------------------------------- sweep 100 x 2000
    seeds = [general_random(6, 8, 10, seed=s) for s in range(100)]
    refs = [R] * 100
    sims.run_many(seeds[:2], "ngd", 0.1, 10, references=refs[:2])
    t_sweep = best_of(lambda: sims.run_many(seeds, "ngd", 0.1, 2000, references=refs), repeat=3)
    print("\nsweep: 100 seeds x 2000 NGD steps via run_many (references given, compiled):")
    print(f"  {t_sweep:.3f} s total, {t_sweep / 100 / 2000 * 1e6:.2f} us per step-run   (target < 1 s)")

    # -------------------------------------------------------------- (1000, 64, 128)
    rng = np.random.default_rng(0)
    n, T, d = 1000, 64, 128
    X = rng.standard_normal((n, T, d)) / np.sqrt(d)
    big = AttentionProblem(X, rng.choice([-1.0, 1.0], n), rng.standard_normal(d) / np.sqrt(d))
    Rb = np.eye(d)

    def per_step(parallel):
        # slope between two run lengths: the setup (copying X, references) cancels
        run = lambda k: sims.run(big, "ngd", k, reference=Rb, parallel=parallel)  # noqa: E731
        run(1)
        return (best_of(lambda: run(45), repeat=3) - best_of(lambda: run(5), repeat=3)) / 40 * 1e3

    ms_par, ms_ser = per_step(True), per_step(False)
    ms_numpy = best_of(lambda: numpy_ngd(big, 3, 0.1), repeat=3) / 3 * 1e3
    bw = bandwidth()
    ms_floor = X.nbytes / bw * 1e3
    print(f"\n(n, T, d) = (1000, 64, 128), one NGD step (X is {X.nbytes / 2**20:.0f} MiB):")
    print(f"  memory floor             {ms_floor:8.2f} ms   (copy bandwidth {bw / 1e9:.1f} GB/s)")
    print(f"  sims, parallel steps     {ms_par:8.2f} ms   ({ms_par / ms_floor:.2f}x the floor; target <= 3x)")
    print(f"  sims, serial steps       {ms_ser:8.2f} ms   ({ms_ser / ms_floor:.2f}x the floor)")
    print(f"  vectorised numpy         {ms_numpy:8.2f} ms   ({ms_numpy / ms_par:.2f}x sims parallel)")

if __name__ == "__main__":
    main()
