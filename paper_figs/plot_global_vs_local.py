"""Global vs local convergence: where GD and NGD end up, over many seeds.

For every seed of the equal-score family (global convergence holds) and of the
general random family (it may not), run GD and NGD from ``W_0 = 0`` and read the
final selection (per-sequence argmax of the attention). Plot the final
``1 - corr`` with the global ``W_mm`` against ``1 - corr`` with
``W_mm(selection)`` (log axes), coloured by what the selection is: the optimal tokens, a
locally optimal selection (``theory.is_locally_optimal``), or neither.

Writes ``global_vs_local.png`` and ``global_vs_local.csv`` (one row per run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sims
import theory
from sims.data import make_family
from paper_figs.output import save_outputs
from paper_figs.plotting import METHOD_STYLE, new_figure
from paper_figs.registry import main

NAME = "global_vs_local"
FAMILIES = {"equal": "equal-score", "random": "general random"}
SHAPE = dict(n=6, T=8, d=10)
METHODS = {"gd": 1.0, "ngd": 0.1}
# Display range of 1 - corr (it lies in [0, 2]); the CSV keeps the exact values.
FLOOR, TOP = 1e-16, 2.0
CATEGORY_STYLE = {
    "global": {"label": "selection = opt (global)", "color": "tab:green"},
    "local": {"label": "locally optimal, not opt", "color": "tab:red"},
    "other": {"label": "not locally optimal", "color": "tab:gray"},
    "infeasible": {"label": "W-SVM(selection) infeasible (top edge)", "color": "k"},
}


def _params(quick):
    return dict(seeds=range(24) if quick else range(100), steps=2000 if quick else 20000)


def _classify(problem, traj):
    """Category, selection and ``1 - corr`` with ``W_mm(selection)`` of one final iterate."""
    sel = np.asarray(traj.attn_argmax_final, dtype=np.int64)
    if np.array_equal(sel, problem.opt):
        return "global", sel, float(traj.one_minus_corr[-1])
    try:
        sol = theory.solve_wsvm(problem, selection=sel)
    except theory.InfeasibleError:
        return "infeasible", sel, None
    category = "local" if theory.is_locally_optimal(problem, sel) else "other"
    return category, sel, float(traj.one_minus_corr_with(sol.W)[-1])


def make(out_dir, quick=False):
    """Build the figure; return the written paths."""
    prm = _params(quick)
    out_dir = Path(out_dir)
    rows = {k: [] for k in ("family", "seed", "method", "lr", "steps", "category", "selection",
                            "opt", "one_minus_corr_global", "one_minus_corr_selection")}
    fig, axes = new_figure(1, 2, (
        f"Where GD and NGD converge in direction from $W_0 = 0$ (n={SHAPE['n']}, T={SHAPE['T']}, "
        f"d={SHAPE['d']}; {len(prm['seeds'])} seeds per family, {prm['steps']} steps)\n"
        "selection = final argmax of attention per sequence; points below the diagonal are "
        "closer to $W_{mm}$(selection) than to $W_{mm}$"))
    for ax, (fam, fam_label) in zip(axes.flat, FAMILIES.items()):
        problems = [make_family(fam, **SHAPE, seed=s) for s in prm["seeds"]]
        for method, lr in METHODS.items():
            # Iterates kept: 1 - corr with W_mm(selection) is read off the same run.
            trajs = sims.run_many(problems, [method], [lr], prm["steps"], store_params=True)
            pts = {c: [] for c in CATEGORY_STYLE}
            for seed, p, tr in zip(prm["seeds"], problems, trajs):
                cat, sel, gap_sel = _classify(p, tr)
                gap = float(tr.one_minus_corr[-1])
                for k, v in (("family", fam), ("seed", seed), ("method", method), ("lr", lr),
                             ("steps", prm["steps"]), ("category", cat),
                             ("selection", "-".join(map(str, sel))),
                             ("opt", "-".join(map(str, p.opt))),
                             ("one_minus_corr_global", gap),
                             ("one_minus_corr_selection", gap_sel)):
                    rows[k].append(v)
                # Undefined (infeasible W-SVM(selection)) drawn on the top edge.
                pts[cat].append((gap, TOP if gap_sel is None else gap_sel))
            for cat, xy in pts.items():
                if not xy:
                    continue
                x, y = np.clip(np.array(xy, dtype=np.float64).T, FLOOR, TOP)
                ax.scatter(x, y, s=16, marker=METHOD_STYLE[method]["marker"], alpha=0.6,
                           color=CATEGORY_STYLE[cat]["color"], linewidths=0,
                           label=f"{METHOD_STYLE[method]['label']} (lr {lr:g}): "
                                 f"{CATEGORY_STYLE[cat]['label']} ({len(xy)})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        lo = min(ax.get_xlim()[0], ax.get_ylim()[0])
        ax.set_xlim(lo, TOP * 2)
        ax.set_ylim(lo, TOP * 2)
        ax.plot([lo, TOP], [lo, TOP], color="0.6", linewidth=0.8, linestyle=":")
        ax.set_xlabel(r"final $1 - \mathrm{corr}(W_t, W_{mm})$ (global, optimal tokens)")
        ax.set_ylabel(r"final $1 - \mathrm{corr}(W_t, W_{mm}(\mathrm{selection}))$")
        ax.set_title(f"{fam_label} family")
        ax.legend(loc="upper left", fontsize=5.5)
    return save_outputs(fig, out_dir, NAME, rows)


if __name__ == "__main__":
    raise SystemExit(main(make, NAME))
