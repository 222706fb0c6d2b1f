"""W vs (K, Q) parametrisation: which max-margin problem each one solves.

docs/theory.md §2 (the Frobenius and nuclear-norm W-SVMs) and §3 (the two parametrisations).

On the equal-score family (n = 5, T = 4) for a range of dimensions ``d``, NGD trains
``W`` directly and through ``W = K Q^T`` (small random ``K_0, Q_0``). Left: the final
``1 - corr`` of ``W_t`` with the Frobenius W-SVM and with the nuclear-norm W-SVM.
Right: the numerical rank of the two solutions (singular values above
``RANK_RTOL`` times the largest). Instances whose W-SVM is infeasible (likely when
``d < max(T - 1, n)``) are counted, reported in the title and the CSV, and left out
of every mean and band.

Writes ``param_w_vs_kq.png`` and ``param_w_vs_kq.csv`` (one row per instance;
empty cells on infeasible rows, whose ``status`` says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sims
import theory
from paper_figs.measure import log10_of
from paper_figs.output import save_outputs
from paper_figs.plotting import log10_axis, new_figure, seed_band
from paper_figs.registry import main
from sims.data import equal_score
from sims.dynamics import KQ_INIT_SCALE

NAME = "param_w_vs_kq"
N, T = 5, 4
LR = 0.1
RANK_RTOL = 1e-4  # relative: cvxpy's nuclear-norm solution is accurate to ~1e-8
PARAM_STYLE = {"W": {"label": "W trained", "color": "tab:blue"},
               "kq": {"label": "(K, Q) trained", "color": "tab:red"}}
TARGET_STYLE = {"fro": {"label": r"$W_{mm}^{F}$ (Frobenius)", "linestyle": "-", "marker": "o"},
                "nuc": {"label": r"$W_{mm}^{*}$ (nuclear)", "linestyle": "--", "marker": "s"}}


def _params(quick):
    if quick:
        return dict(dims=(2, 3, 4, 6, 8, 12), seeds=range(3), steps=2000)
    return dict(dims=(2, 3, 4, 5, 6, 8, 12, 16, 24, 32), seeds=range(10), steps=10000)


def _kq_init(d, seed):
    # The simulator's default scale, but a different draw per seed.
    rng = np.random.default_rng(10_000 + seed)
    scale = KQ_INIT_SCALE / np.sqrt(d)
    return rng.standard_normal((d, d)) * scale, rng.standard_normal((d, d)) * scale


def make(out_dir, quick=False):
    """Build the figure; return the written paths."""
    prm = _params(quick)
    out_dir = Path(out_dir)
    cols = ("d", "seed", "status", "steps", "lr", "rank_rtol", "rank_fro", "rank_nuc",
            "gap_W_fro", "gap_W_nuc", "gap_kq_fro", "gap_kq_nuc")
    rows = {k: [] for k in cols}
    infeasible = {}
    for d in prm["dims"]:
        feasible = []
        for s in prm["seeds"]:
            p = equal_score(N, T, d, seed=s)
            try:
                fro = theory.solve_wsvm(p)
            except theory.InfeasibleError:
                infeasible[d] = infeasible.get(d, 0) + 1
                for k, v in zip(cols, (d, s, "infeasible", prm["steps"], LR, RANK_RTOL)):
                    rows[k].append(v)
                for k in cols[6:]:
                    rows[k].append(None)
                continue
            feasible.append((s, p, fro, theory.solve_wsvm(p, norm="nuc")))
        if not feasible:
            continue
        probs = [p for _, p, _, _ in feasible]
        refs = [fro.W for _, _, fro, _ in feasible]
        # Iterates kept: each run is measured against both SVMs without running it again.
        runs_w = sims.run_many(probs, ["ngd"], [LR], prm["steps"], references=refs,
                               record=prm["steps"], store_params=True)
        inits = [_kq_init(d, s) for s, _, _, _ in feasible]
        runs_kq = sims.run_many(probs, ["ngd"], [LR], prm["steps"], references=refs,
                                record=prm["steps"], store_params=True, param="kq",
                                K0s=[k for k, _ in inits], Q0s=[q for _, q in inits])
        for (s, _, fro, nuc), rw, rk in zip(feasible, runs_w, runs_kq):
            gaps = [float(run.one_minus_corr_with(ref.W)[-1]) for run in (rw, rk)
                    for ref in (fro, nuc)]
            vals = (d, s, nuc.status, prm["steps"], LR, RANK_RTOL, fro.rank(RANK_RTOL),
                    nuc.rank(RANK_RTOL), *gaps)
            for k, v in zip(cols, vals):
                rows[k].append(v)

    status = np.array(rows["status"])
    ok = status != "infeasible"
    d_all = np.array(rows["d"])
    dims = [d for d in prm["dims"] if np.any(ok & (d_all == d))]
    note = ", ".join(f"d={d}: {c}/{len(prm['seeds'])}" for d, c in sorted(infeasible.items()))
    fig, axes = new_figure(1, 2, (
        f"W vs (K, Q) parametrisation: NGD (lr {LR:g}, {prm['steps']} steps) on the equal-score "
        f"family (n={N}, T={T}), {len(prm['seeds'])} seeds per d\nlines: geometric mean (left), "
        "mean (right); bands: min-max over the feasible seeds\ninfeasible W-SVM instances "
        f"(reported, excluded): {note if note else 'none'}"))
    ax_gap, ax_rank = axes.flat

    def per_d(column, log):
        """(len(dims),) mean, lo, hi of a column over the feasible seeds of every d."""
        v = np.array([np.nan if x is None else x for x in rows[column]], dtype=np.float64)
        v = log10_of(v) if log else v
        stats = [seed_band(v[ok & (d_all == d)][:, None]) for d in dims]
        return [np.array([s[j][0] for s in stats]) for j in range(3)]

    for param, pstyle in PARAM_STYLE.items():
        for target, tstyle in TARGET_STYLE.items():
            mean, lo, hi = per_d(f"gap_{param}_{target}", log=True)
            ax_gap.plot(dims, mean, color=pstyle["color"], linestyle=tstyle["linestyle"],
                        marker=tstyle["marker"], markersize=3,
                        label=f"{pstyle['label']} vs {tstyle['label']}")
            ax_gap.fill_between(dims, lo, hi, color=pstyle["color"], alpha=0.12, linewidth=0)
    ax_gap.set_xlabel("dimension $d$")
    ax_gap.set_ylabel(r"final $1 - \mathrm{corr}(W_t, \cdot)$ (log scale)")
    ax_gap.set_title("alignment: W finds the Frobenius SVM, (K, Q) the nuclear one")
    log10_axis(ax_gap)
    ax_gap.legend(loc="best", fontsize=6)

    for target, tstyle in TARGET_STYLE.items():
        mean, lo, hi = per_d(f"rank_{target}", log=False)
        ax_rank.plot(dims, mean, color="k", linestyle=tstyle["linestyle"],
                     marker=tstyle["marker"], markersize=3,
                     label=f"rank of {tstyle['label']}")
        ax_rank.fill_between(dims, lo, hi, color="k", alpha=0.1, linewidth=0)
    ax_rank.plot(dims, np.minimum(dims, N), color="0.6", linestyle=":",
                 label=r"$\min(d, n)$: largest possible rank")
    ax_rank.set_xlabel("dimension $d$")
    ax_rank.set_ylabel(f"numerical rank (singular values > {RANK_RTOL:g} x largest)")
    ax_rank.set_title("rank of the two max-margin solutions")
    ax_rank.legend(loc="best", fontsize=6)
    return save_outputs(fig, out_dir, NAME, rows)


if __name__ == "__main__":
    raise SystemExit(main(make, NAME))
