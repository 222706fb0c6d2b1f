"""Recompute every synthetic-data number that README.md quotes under "What was measured".

Each section prints the measured values per seed and a one-line summary; the README
copies this output. The settings are those of the rate suite (``tests/test_rates_suite.py``)
and of the ``global_vs_local`` figure, on the equal-score, general random and
Gaussian-like joint families (``docs/theory.md §7``):

1. NGD (lr 0.1, 3000 steps, fit window [1500, 3000]): the fitted rate of the log
   excess loss against the prediction ``lr / ||W_mm||``, and the fitted exponent of
   ``1 - corr(W_t, W_mm)``.
2. GD (lr 10, 3000 steps, window [300, 3000]): the fitted exponent of the excess loss
   (prediction -1), the slope of ``||W_t||`` against ``log t`` relative to ``||W_mm||``, and
   the leading constant ``lr t (L - L*) / ||W_mm||^2`` at the last step (prediction 1).
3. Polyak (multiplier 1, 1000 steps, window [100, 200]): the mean, smallest and largest
   per-step ratio of the excess loss, against its lower bound ``1/e`` (a largest ratio above
   the smallest one shows a cycle), the step length ``s`` relative to its bound ``||W_mm||``, and
   the ratio ``exp(-mean (s / ||W_mm||)^2)`` that the step length predicts (docs/theory.md §6).
4. Joint (u, W) NGD (lr 0.1, 2000 steps, window [200, 2000]): the fitted rate of the
   log loss against ``lr / ||u_mm||`` and the free stretched-exponential power.
5. Where GD (lr 1) and NGD (lr 0.1) converge from ``W_0 = 0`` (20 000 steps, 100 seeds):
   counts of final selections that are the optimal tokens, locally optimal, neither,
   or have an infeasible W-SVM.
6. The pure Polyak step from ``W_0 = 0``: runs that raise ``FloatingPointError`` (the
   parameters leave the float64 range), on 100 seeds at (6, 8, 10) for 2000 steps, and on the
   small-``d`` shapes of the ``scaling`` figure (10 seeds, 20 000 steps, feasible instances).

Run: ``.venv/bin/python benchmarks/measure_readme.py`` (about 3 minutes on 2 cores,
compilation included); ``--quick`` uses fewer seeds and steps to check that it runs.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import sims
import theory
from sims.data import equal_score, gaussian_joint, general_random

SHAPE = dict(n=6, T=8, d=10)
NGD_LR, NGD_STEPS, NGD_WINDOW = 0.1, 3000, (1500, 3000)
GD_LR, GD_STEPS, GD_WINDOW = 10.0, 3000, (300, 3000)
PS_STEPS, PS_WINDOW = 1000, (100, 200)
JOINT_LR, JOINT_STEPS, JOINT_WINDOW = 0.1, 2000, (200, 2000)
GLOBAL_METHODS = {"gd": 1.0, "ngd": 0.1}


def _span(values):
    """``min .. max`` of a list of floats, for the summary lines."""
    return f"{min(values):.4g} .. {max(values):.4g}"


def _late(tr, window):
    return (tr.t >= window[0]) & (tr.t <= window[1])


def measure_fixed_decoder(seeds):
    """Sections 1-3: NGD, GD and Polyak rates on the equal-score family."""
    problems = [equal_score(**SHAPE, seed=s) for s in seeds]
    svms = [theory.solve_wsvm(p) for p in problems]
    refs = [s.W for s in svms]
    record = sims.record_schedule("log", NGD_STEPS, 200)
    ngd = sims.run_many(problems, ["ngd"], [NGD_LR], NGD_STEPS, references=refs, record=record)
    gd = sims.run_many(problems, ["gd"], [GD_LR], GD_STEPS, references=refs, record=record)

    print(f"1. NGD, lr {NGD_LR}, {NGD_STEPS} steps, window {NGD_WINDOW}")
    devs, corr_exps = [], []
    for seed, p, svm, tr in zip(seeds, problems, svms, ngd):
        pred = theory.predicted_rates(p, "ngd", NGD_LR, svm=svm)
        fit = theory.fit_rate(tr.t, tr.log_excess, "exp", NGD_WINDOW, log_values=True)
        corr = theory.fit_rate(tr.t, 0.5 * tr.dist ** 2, "power", NGD_WINDOW)
        devs.append(abs(fit.rate / pred.excess_rate - 1))
        corr_exps.append(corr.exponent)
        print(f"   seed {seed}: ||W_mm|| {svm.norm_value:.4f}  excess rate {fit.rate:.6f} vs "
              f"lr/||W_mm|| {pred.excess_rate:.6f} (rel. dev. {devs[-1]:.2e}); "
              f"1 - corr exponent {corr.exponent:.3f}")
    print(f"   => max relative deviation of the excess rate {max(devs):.2e} "
          f"({100 * max(devs):.3f} %); 1 - corr exponents {_span(corr_exps)}")

    print(f"2. GD, lr {GD_LR}, {GD_STEPS} steps, window {GD_WINDOW}")
    exps, slope_devs, consts = [], [], []
    for seed, svm, tr in zip(seeds, svms, gd):
        fit = theory.fit_rate(tr.t, tr.log_excess, "power", GD_WINDOW, log_values=True)
        norm = theory.fit_rate(tr.t, tr.norm, "log", GD_WINDOW)
        exps.append(fit.exponent)
        slope_devs.append(norm.slope / svm.norm_value - 1)
        consts.append(GD_LR * tr.t[-1] * math.exp(tr.log_excess[-1]) / svm.norm_value ** 2)
        print(f"   seed {seed}: excess exponent {fit.exponent:.4f}; ||W_t|| slope per log t "
              f"{norm.slope:.4f} vs ||W_mm|| {svm.norm_value:.4f} ({100 * slope_devs[-1]:+.2f} %); "
              f"lr t (L - L*) / ||W_mm||^2 = {consts[-1]:.4f}")
    print(f"   => excess exponents {_span(exps)}; norm slope deviations "
          f"{100 * min(slope_devs):+.2f} % .. {100 * max(slope_devs):+.2f} %; "
          f"leading constants {_span(consts)}")

    print(f"3. Polyak, multiplier 1, {PS_STEPS} steps, window {PS_WINDOW}")
    ratios, devs = [], []
    for seed, p, svm in zip(seeds, problems, svms):
        tr = sims.run(p, "polyak", PS_STEPS, reference=svm.W, record="all")
        late = _late(tr, PS_WINDOW)[:-1]
        log_ratio = np.diff(tr.log_excess)[late]
        # row k's step is the update from t[k] to t[k] + 1, the one behind log_ratio[k]
        rel_step = tr.step_length[:-1][late] / svm.norm_value
        ratios.append(math.exp(log_ratio.mean()))
        predicted = math.exp(-np.mean(rel_step ** 2))
        devs.append(abs(ratios[-1] / predicted - 1))
        print(f"   seed {seed}: per-step ratio mean {ratios[-1]:.4f}, smallest "
              f"{math.exp(log_ratio.min()):.4f}, largest {math.exp(log_ratio.max()):.4f} "
              f"(1/e = {math.exp(-1):.4f}); step length / ||W_mm|| {rel_step.mean():.4f}, "
              f"exp(-mean (s/||W_mm||)^2) = {predicted:.4f}")
    near = sum(r < 1.01 * math.exp(-1) for r in ratios)
    print(f"   => ratios {_span(ratios)}; within 1 % of 1/e on {near} of {len(ratios)} seeds; "
          f"ratio predicted from the step length within {max(devs):.1e} relative")


def measure_joint(seeds):
    """Section 4: jointly trained (u, W) under NGD."""
    print(f"4. joint (u, W), NGD lr {JOINT_LR}, {JOINT_STEPS} steps, window {JOINT_WINDOW}")
    devs, powers = [], []
    for seed in seeds:
        p = gaussian_joint(seed=seed)
        dec = theory.solve_decoder_svm(p)
        tr = sims.run(p, "ngd", JOINT_STEPS, lr=JOINT_LR, param="joint", reference_u=dec.u)
        envelope = np.minimum.accumulate(tr.log_loss)
        rate = theory.fit_rate(tr.t, envelope, "exp", JOINT_WINDOW, log_values=True).rate
        power = theory.fit_rate(tr.t, envelope, "stretched", JOINT_WINDOW, log_values=True).power
        devs.append(abs(rate / (JOINT_LR / dec.norm_value) - 1))
        powers.append(power)
        print(f"   seed {seed}: log-loss rate {rate:.5f} vs lr/||u_mm|| "
              f"{JOINT_LR / dec.norm_value:.5f} (rel. dev. {devs[-1]:.2e}); "
              f"stretched power {power:.3f}")
    print(f"   => max relative deviation {max(devs):.2e}; stretched powers {_span(powers)}")


def _category(problem, traj):
    sel = np.asarray(traj.attn_argmax_final, dtype=np.int64)
    if np.array_equal(sel, problem.opt):
        return "global"
    try:
        theory.solve_wsvm(problem, sel)
    except theory.InfeasibleError:
        return "infeasible"
    return "local" if theory.is_locally_optimal(problem, sel) else "neither"


def measure_global_vs_local(seeds, steps):
    """Section 5: final selections of GD and NGD from W_0 = 0."""
    print(f"5. final selection from W_0 = 0, {steps} steps, {len(seeds)} seeds, {SHAPE}")
    for name, family in (("equal-score", equal_score), ("general random", general_random)):
        problems = [family(**SHAPE, seed=s) for s in seeds]
        for method, lr in GLOBAL_METHODS.items():
            # only the final selection is read: any reference will do, and it skips a solve
            trajs = sims.run_many(problems, [method], [lr], steps, references=[np.eye(SHAPE["d"])]
                                  * len(problems), record=steps)
            counts = {"global": 0, "local": 0, "neither": 0, "infeasible": 0}
            for p, tr in zip(problems, trajs):
                counts[_category(p, tr)] += 1
            print(f"   {name:15s} {method} (lr {lr:g}): " + ", ".join(
                f"{k} {v}" for k, v in counts.items()))


def _polyak_failures(shape, seeds, steps):
    """Seeds of the equal-score ``shape`` whose Polyak run raises, and the infeasible ones."""
    failed, infeasible = [], []
    for s in seeds:
        p = equal_score(**shape, seed=s)
        try:
            ref = theory.solve_wsvm(p).W
        except theory.InfeasibleError:
            infeasible.append(s)
            continue
        try:
            sims.run(p, "polyak", steps, reference=ref, record=steps)
        except FloatingPointError:
            failed.append(s)
    print(f"   equal-score {tuple(shape.values())}, {steps} steps: FloatingPointError on "
          f"{len(failed)} of {len(seeds) - len(infeasible)} feasible seeds {failed} "
          f"({len(infeasible)} infeasible)")


def measure_polyak_failures(many_seeds, scaling_seeds, steps):
    """Section 6: the pure Polyak step leaving the float64 range."""
    print("6. Polyak (multiplier 1) from W_0 = 0")
    _polyak_failures(SHAPE, many_seeds, 2000)
    for d in (4, 6, 8):
        _polyak_failures(dict(SHAPE, d=d), scaling_seeds, steps)


def main(argv=None):
    """Command line: ``--quick`` for a short check; prints the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds per rate check, 10 seeds and 2000 steps for sections 5-6")
    args = parser.parse_args(argv)
    rate_seeds = range(2) if args.quick else range(10)
    joint_seeds = range(2) if args.quick else range(5)
    many_seeds = range(10) if args.quick else range(100)
    steps = 2000 if args.quick else 20000
    t0 = time.perf_counter()
    measure_fixed_decoder(list(rate_seeds))
    measure_joint(list(joint_seeds))
    measure_global_vs_local(list(many_seeds), steps)
    measure_polyak_failures(list(many_seeds), list(range(10)), steps)
    print(f"(total {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
