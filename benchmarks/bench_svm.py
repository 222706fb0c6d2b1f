"""W-SVM solver timings against the naive per-constraint cvxpy formulation.

The baseline is what the predecessor code did: one cvxpy constraint object per
(sequence, token) pair built in a Python loop, objective ``||W||_F``. It is
measured in the same run as the structured active-set solver, so machine load
affects both sides. Instances: equal-score family with the optimal token first
(self-attention), which is feasible at every size (``W = c e_1 e_1^T`` satisfies
all constraints); every solve is checked to be optimal.

Targets: (15,15,20) >= 50x faster than the baseline; (200,16,32) < 0.5 s;
(1000,16,64) < 5 s and (2000,32,64) < 30 s, both with peak memory < 1 GiB
(numpy allocations traced with tracemalloc).

A last table times the relaxed joint W-SVM (Gaussian-like joint family) with the
active-set solver against cvxpy (polished), with the distance between the two.

Run: ``.venv/bin/python benchmarks/bench_svm.py [--quick]``.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from theory import solve_joint_wsvm, solve_wsvm
from theory.families import equal_score, gaussian_joint

# (n, T, d), baseline solver or None (skipped), time target in s, memory target in GiB
CASES = [
    ((15, 15, 20), "CLARABEL", None, None),
    ((200, 16, 32), "SCS", 0.5, None),
    ((1000, 16, 64), None, 5.0, 1.0),
    ((2000, 32, 64), None, 30.0, 1.0),
]


# relaxed joint W-SVM instances (n, T, d) of the Gaussian-like joint family
JOINT_CASES = [(20, 4, 8), (100, 4, 12)]


def joint_table(cases):
    """Relaxed joint W-SVM: active-set against polished cvxpy, same instance, same run."""
    print(f"\n{'joint (n, T, d)':>15} {'active-set':>11} {'cvxpy':>10} {'ratio':>7} "
          f"{'rel. diff W':>12} {'w_error':>9}")
    for n, T, d in cases:
        p = gaussian_joint(n, T, d, seed=0)
        t_fast, sol = best_time(lambda: solve_joint_wsvm(p), 5)
        t_cvx, ref = best_time(lambda: solve_joint_wsvm(p, method="cvxpy"), 1)
        assert sol.status == ref.status == "optimal", (sol.status, ref.status)
        diff = np.linalg.norm(ref.W - sol.W) / np.linalg.norm(sol.W)
        print(f"{str((n, T, d)):>15} {t_fast:9.3f} s {t_cvx:8.3f} s {t_cvx / t_fast:6.0f}x "
              f"{diff:12.1e} {sol.w_error:9.1e}")


def naive_cvxpy(problem, solver):
    """Per-constraint cvxpy formulation: a Python loop of scalar constraints."""
    import cvxpy as cp

    X, z, opt = problem.X, problem.queries, problem.opt
    d = problem.d
    W = cp.Variable((d, d))
    cons = []
    for i in range(problem.n):
        for t in range(problem.T):
            if t != opt[i]:
                cons.append((X[i, opt[i]] - X[i, t]) @ W @ z[i] >= 1)
    prob = cp.Problem(cp.Minimize(cp.norm(W, "fro")), cons)
    prob.solve(solver=solver)
    return np.asarray(W.value), prob.status


def best_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def peak_memory(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the two smallest sizes")
    args = ap.parse_args(argv)
    cases = CASES[:2] if args.quick else CASES
    solve_wsvm(equal_score(4, 3, 4, seed=0, opt_position=0))  # warm imports and LAPACK
    print(f"{'(n, T, d)':>15} {'constr.':>8} {'support':>8} {'active-set':>11} "
          f"{'peak MiB':>9} {'KKT':>8} {'naive cvxpy':>18} {'ratio':>8} {'rel. diff W':>12}  "
          "targets")
    for (n, T, d), baseline, t_target, mem_target in cases:
        p = equal_score(n, T, d, seed=0, opt_position=0)
        reps = 5 if n * T <= 5000 else 2
        t_fast, sol = best_time(lambda: solve_wsvm(p), reps)
        assert sol.status == "optimal", sol.status
        peak = peak_memory(lambda: solve_wsvm(p))
        if baseline is not None:
            t_naive, (W_naive, status) = best_time(lambda: naive_cvxpy(p, baseline), 1)
            diff = np.linalg.norm(W_naive - sol.W) / np.linalg.norm(sol.W)
            naive = f"{t_naive:8.3f} s {baseline:>8}"
            ratio = f"{t_naive / t_fast:7.0f}x"
            rel = f"{diff:12.1e}"
            status_note = "" if status == "optimal" else f" (naive status {status})"
        else:
            naive, ratio, rel, status_note = f"{'skipped':>18}", f"{'-':>8}", f"{'-':>12}", ""
        targets = []
        if baseline is not None and t_target is None:
            targets.append(f">=50x: {'ok' if t_naive / t_fast >= 50 else 'MISSED'}")
        if t_target is not None:
            targets.append(f"<{t_target:g} s: {'ok' if t_fast < t_target else 'MISSED'}")
        if mem_target is not None:
            targets.append(f"<{mem_target:g} GiB: {'ok' if peak < mem_target * 2**30 else 'MISSED'}")
        print(f"{str((n, T, d)):>15} {n * (T - 1):8d} {int(sol.support.sum()):8d} "
              f"{t_fast:9.3f} s {peak / 2**20:9.1f} {sol.kkt_residual:8.1e} {naive} {ratio} {rel}"
              f"  {', '.join(targets)}{status_note}")
    print("naive cvxpy skipped at (1000,16,64) and (2000,32,64): its dense m x d^2 constraint "
          "matrix (61-254 M entries) runs out of time or memory with every cvxpy solver.")
    joint_table(JOINT_CASES[:1] if args.quick else JOINT_CASES)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS (includes the cvxpy baselines): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
