"""Iterations to reach ``1 - corr(W_t, W_mm) < 1e-2`` against n, T and d.

Equal-score family, ``W_0 = 0``, GD, NGD and Polyak. One panel per swept size
(the other two at the base values). Every run is a small point (runs that do not
reach the target within the budget sit on the budget line as open triangles);
the line is the geometric mean over the runs that reached it, the band their
min-max. The hitting time is the first *recorded* iteration below the target
(log-spaced records, about 2.5% apart). Infeasible instances are reported and
excluded.

Writes ``scaling.png`` and ``scaling.csv`` (one row per run; ``iterations`` is
empty when ``reached`` is 0, or for infeasible instances, whose ``status`` says so;
``status = diverged`` marks a run whose loss left the float64 range, reported
and excluded like the runs that did not reach the target).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sims
import theory
from paper_figs.output import save_outputs
from paper_figs.plotting import METHOD_STYLE, new_figure
from paper_figs.registry import main
from sims.data import equal_score

NAME = "scaling"
TARGET = 1e-2
BASE = dict(n=6, T=8, d=16)
LR = {"gd": 10.0, "ngd": 0.1, "polyak": 1.0}
NUM_RECORDS = 400


def _params(quick):
    if quick:
        return dict(sweeps={"n": (2, 6, 16), "T": (2, 8, 32), "d": (4, 16, 64)},
                    seeds=range(2), steps=2000)
    return dict(sweeps={"n": (2, 4, 6, 8, 12, 16), "T": (2, 4, 8, 16, 32),
                        "d": (4, 6, 8, 10, 16, 32, 64)}, seeds=range(10), steps=20000)


def _hitting_time(traj):
    """First recorded iteration with ``1 - corr < TARGET`` (``None`` if never)."""
    below = np.flatnonzero(traj.one_minus_corr < TARGET)
    return int(traj.t[below[0]]) if below.size else None


def make(out_dir, quick=False):
    """Build the figure; return the written paths."""
    prm = _params(quick)
    out_dir = Path(out_dir)
    cols = ("swept", "n", "T", "d", "seed", "method", "lr", "budget", "status", "reached",
            "iterations")
    rows = {k: [] for k in cols}
    infeasible, diverged = {}, {}
    for swept, values in prm["sweeps"].items():
        for v in values:
            shape = dict(BASE, **{swept: v})
            feasible = []
            for s in prm["seeds"]:
                p = equal_score(**shape, seed=s)
                try:
                    feasible.append((s, p, theory.solve_wsvm(p).W))
                except theory.InfeasibleError:
                    infeasible[(swept, v)] = infeasible.get((swept, v), 0) + 1
                    for m in LR:
                        for k, x in zip(cols, (swept, shape["n"], shape["T"], shape["d"], s, m,
                                               LR[m], prm["steps"], "infeasible", None, None)):
                            rows[k].append(x)
            if not feasible:
                continue
            for m, lr in LR.items():
                trajs = sims.run_many([p for _, p, _ in feasible], [m], [lr], prm["steps"],
                                      references=[W for _, _, W in feasible],
                                      num_records=NUM_RECORDS, on_error="return")
                for (s, _, _), tr in zip(feasible, trajs):
                    if isinstance(tr, sims.RunFailure):
                        # Only a diverging run is reported; a set-up error fails the figure.
                        if not isinstance(tr.error, FloatingPointError):
                            raise tr.error
                        diverged[m] = diverged.get(m, 0) + 1
                        status, hit = "diverged", None
                    else:
                        status, hit = "feasible", _hitting_time(tr)
                    for k, x in zip(cols, (swept, shape["n"], shape["T"], shape["d"], s, m, lr,
                                           prm["steps"], status, hit is not None, hit)):
                        rows[k].append(x)

    note = ", ".join(f"{k}={v}: {c}/{len(prm['seeds'])}" for (k, v), c in infeasible.items())
    fig, axes = new_figure(1, 3, (
        f"Iterations until $1 - \\mathrm{{corr}}(W_t, W_{{mm}}) < {TARGET:g}$: equal-score, "
        f"$W_0 = 0$, base (n, T, d) = ({BASE['n']}, {BASE['T']}, {BASE['d']}), "
        f"{len(prm['seeds'])} seeds, budget {prm['steps']}\npoints: runs (open triangles: not "
        "reached); lines: geometric mean over the runs that reached it; bands: min-max"
        + (f"\ninfeasible instances (excluded): {note}" if note else "")
        + ("\ndiverged (non-finite loss; crosses on the budget line): " + ", ".join(
            f"{METHOD_STYLE[m]['label']} {c} run(s)" for m, c in diverged.items())
           if diverged else "")))
    col = {k: np.array(v, dtype=object) for k, v in rows.items()}
    rng = np.random.default_rng(0)  # horizontal jitter only, so overlapping runs stay visible
    for ax, (swept, values) in zip(axes.flat, prm["sweeps"].items()):
        for j, (m, lr) in enumerate(LR.items()):
            style = METHOD_STYLE[m]
            sel = (col["swept"] == swept) & (col["method"] == m) & (col["status"] == "feasible")
            xs, mean, lo, hi = [], [], [], []
            for v in values:
                here = sel & (col[swept] == v)
                reached = here & (col["reached"] == True)  # noqa: E712 (object array)
                its = col["iterations"][reached].astype(np.float64)
                jitter = v * np.exp(0.06 * (j - 1) + 0.02 * rng.standard_normal(int(here.sum())))
                n_hit = its.size
                ax.scatter(jitter[:n_hit], its, s=8, color=style["color"], alpha=0.5,
                           marker=style["marker"], linewidths=0)
                blown = (col["swept"] == swept) & (col["method"] == m) & \
                    (col["status"] == "diverged") & (col[swept] == v)
                if blown.any():
                    k = int(blown.sum())
                    ax.scatter(np.full(k, v), np.full(k, prm["steps"]), s=16, marker="x",
                               color=style["color"], linewidths=0.8)
                if int(here.sum()) > n_hit:
                    ax.scatter(jitter[n_hit:], np.full(int(here.sum()) - n_hit, prm["steps"]),
                               s=14, facecolors="none", edgecolors=style["color"], marker="^",
                               linewidths=0.8)
                # No run reached it: a gap in the line, not an interpolation across it.
                xs.append(v)
                mean.append(10 ** np.log10(its).mean() if n_hit else np.nan)
                lo.append(its.min() if n_hit else np.nan)
                hi.append(its.max() if n_hit else np.nan)
            ax.plot(xs, mean, color=style["color"], marker=style["marker"], markersize=3,
                    label=f"{style['label']} (lr {lr:g})")
            ax.fill_between(xs, lo, hi, color=style["color"], alpha=0.15, linewidth=0)
        ax.axhline(prm["steps"], color="0.5", linestyle=":", linewidth=0.8,
                   label="budget (open triangles: not reached)")
        handles, labels = ax.get_legend_handles_labels()
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(values)
        ax.set_xticklabels([str(v) for v in values])
        ax.minorticks_off()
        ax.set_xlabel(f"{swept} (log scale; others at base)")
        ax.set_ylabel("iterations to reach the target (log scale)")
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=7)
    return save_outputs(fig, out_dir, NAME, rows)


if __name__ == "__main__":
    raise SystemExit(main(make, NAME))
