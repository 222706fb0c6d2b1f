"""GD vs NGD vs Polyak on the equal-score family, with the predicted rates dashed.

Four panels against iterations: excess loss ``L - L*``, ``||W_t||``,
``1 - corr(W_t, W_mm)`` and ``max_i (1 - s_{i,opt})``; the mean over seeds
(geometric on log axes) with the min-max band, and the predictions of
docs/theory.md §6 as given by
:func:`theory.predicted_rates` (averaged over the seeds' instances) as dashed
lines anchored on the measured mean, so they show the predicted slope.

Writes ``rates_fixed_decoder.png``, ``rates_fixed_decoder.csv`` (long format:
``panel, method, scale, t, mean, lo, hi``; ``scale = log10``: the values are
``log10`` of the quantity, exact far below the float64 range) and
``rates_fixed_decoder_predicted.csv`` (the dashed lines, same units).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sims
import theory
from sims.data import equal_score
from paper_figs.measure import LN10, law_log10, log10_of
from paper_figs.output import band_rows, concat_columns, save_outputs
from paper_figs.plotting import (
    METHOD_STYLE, fit_ylim, log10_axis, new_figure, plot_band, plot_predicted,
)
from paper_figs.registry import main

NAME = "rates_fixed_decoder"
SHAPE = dict(n=6, T=8, d=10)
LR = {"gd": 1.0, "ngd": 0.1, "polyak": 1.0}  # Polyak: multiplier of the pure Polyak step

# panel -> (y label, x scale); every y is shown on a log scale (as log10 values).
# Exponential laws are straight on a linear t axis, power and log laws on a log t axis.
PANELS = {
    "excess": ("excess loss $L(W_t) - L^*$", "linear"),
    "norm": (r"$\|W_t\|_F$", "log"),
    "one_minus_corr": (r"$1 - \mathrm{corr}(W_t, W_{mm})$", "log"),
    "one_minus_s_opt": (r"$\max_i\,(1 - s_{i,\mathrm{opt}})$ (slowest sequence)", "linear"),
}
# panel -> the law of theory.RatePredictions that predicts it (averaged over instances)
LAWS = {"excess": "excess", "norm": "norm", "one_minus_corr": "one_minus_corr",
        "one_minus_s_opt": "s_opt_slowest"}
# Polyak decays so fast (about 1e-430 per 1000 steps) that a shared axis would flatten
# GD and NGD: on the linear-t panels the axis follows GD and NGD and Polyak leaves it.
CLIPPED = "polyak"


def _params(quick):
    return dict(seeds=range(3) if quick else range(10), steps=2000 if quick else 10000)


def _values(traj, panel):
    """The plotted series of one run as log10 values (exact where the value underflows)."""
    if panel == "excess":
        return traj.log_excess / LN10
    if panel == "norm":
        return log10_of(traj.norm)
    if panel == "one_minus_corr":
        return log10_of(traj.one_minus_corr)
    return np.max(traj.log_one_minus_s_opt, axis=1) / LN10


def _law(panel, preds):
    """Predicted law of a panel, averaged over the seeds' instances."""
    return theory.RateLaw.mean(getattr(p, LAWS[panel]) for p in preds)


def _label(law):
    """Legend text of a predicted law."""
    v = law.value
    bound = law.bound is not None
    if law.model == "exp":
        return f"$\\propto e^{{-{v:.3g}\\,t}}$" + (" bound" if bound else "")
    if law.model == "power":
        return f"$O(t^{{{v:.3g}}})$ (bound)" if bound else f"$\\propto t^{{{v:.3g}}}$"
    if law.model == "logpower":
        return f"$\\propto (\\log t)^{{{v:.3g}}}$"
    if law.model == "linear":
        return f"slope {v:.3g} per step" + (" bound" if bound else "")
    return f"${v:.3g}\\,\\log t$"


def _late(xscale, steps):
    """Start of the late phase, where the asymptotic laws are drawn, and its midpoint."""
    if xscale == "linear":
        return 0.25 * steps, 0.5 * steps
    return steps ** 0.5, steps ** 0.75


def _anchor(t, mean, target):
    """Measured point nearest to ``target``, to pin the constant of a predicted law."""
    ok = np.flatnonzero(np.isfinite(mean) & (t > 1))
    if ok.size == 0:
        return None
    k = ok[np.argmin(np.abs(np.log(t[ok] / target)))]
    return t[k], mean[k]


def make(out_dir, quick=False):
    """Build the figure; return the written paths."""
    prm = _params(quick)
    out_dir = Path(out_dir)
    problems = [equal_score(**SHAPE, seed=s) for s in prm["seeds"]]
    sols = [theory.solve_wsvm(p) for p in problems]
    refs = [s.W for s in sols]
    trajs, preds = {}, {}
    for m, lr in LR.items():
        trajs[m] = sims.run_many(problems, [m], [lr], prm["steps"], references=refs)
        preds[m] = [theory.predicted_rates(p, m, lr, svm=s) for p, s in zip(problems, sols)]

    fig, axes = new_figure(2, 2, (
        f"Fixed decoder, equal-score family (n={SHAPE['n']}, T={SHAPE['T']}, d={SHAPE['d']}, "
        f"mean $\\|W_{{mm}}\\|$ = {np.mean([s.norm_value for s in sols]):.3g}), "
        f"{len(problems)} seeds\nlines: geometric mean, bands: min-max over seeds\n"
        "dashed: predicted slope (docs/theory.md §6), anchored on the measured mean"))
    tables, predicted = [], []
    for ax, (panel, (ylabel, xscale)) in zip(axes.flat, PANELS.items()):
        ax.set_xscale(xscale)
        start, middle = _late(xscale, prm["steps"])
        lows, highs = [], []  # range of the measured curves that set the y axis
        for m, ts in trajs.items():
            t = ts[0].t.astype(np.float64)
            if any(not np.array_equal(tr.t, ts[0].t) for tr in ts):
                raise RuntimeError("runs of one sweep were recorded at different iterations")
            keep = t > 0 if xscale == "log" else np.ones(t.shape, bool)
            tk = t[keep]
            Y = np.stack([_values(tr, panel) for tr in ts])[:, keep]
            style = METHOD_STYLE[m]
            mean, lo, hi = plot_band(ax, tk, Y, color=style["color"],
                                     label=f"{style['label']} (lr {LR[m]:g})")
            tables.append(band_rows(tk, mean, lo, hi, panel=panel, method=m, scale="log10"))
            clipped = m == CLIPPED and xscale == "linear"
            highs.append(np.nanmax(hi))
            if not clipped:
                lows.append(np.nanmin(lo))
            law = _law(panel, preds[m])
            anchor = _anchor(tk, mean, middle)
            if clipped:
                k = np.flatnonzero(np.isfinite(mean))[-1]
                late = theory.fit_rate(tk, mean * LN10, "exp", window=(start, None),
                                       log_values=True)
                # A legend entry, not an annotation: the legend finds free space for it.
                ax.plot([], [], " ", label=f"{style['label']} leaves the axis: "
                        f"$10^{{{mean[k]:.0f}}}$ at t = {tk[k]:.0f}\n(late fitted rate "
                        f"{late.rate:.3g} per step)")
            if anchor is None:
                continue
            # Laws of ||W_t|| (linear, log) have an additive constant: drawn forward only.
            first = anchor[0] if law.model in ("linear", "log") else start
            tp = tk[(tk > 1) & (tk >= first)]
            curve = law_log10(law, tp, anchor)
            plot_predicted(ax, tp, curve, color=style["color"],
                           label=f"{style['label']}: {_label(law)}")
            predicted.append({
                "panel": [panel] * tp.size, "method": [m] * tp.size, "scale": ["log10"] * tp.size,
                "law": [law.model] * tp.size, "parameter": [law.value] * tp.size,
                "t": tp.tolist(),
                "predicted": [float(c) if np.isfinite(c) else None for c in curve],
            })
        fit_ylim(ax, lows, highs)
        log10_axis(ax)
        ax.set_xlabel("iteration $t$" + (" (log scale)" if xscale == "log" else ""))
        ax.set_ylabel(ylabel + " (log scale)")
        ax.legend(loc="best", fontsize=6)
    return save_outputs(fig, out_dir, NAME, concat_columns(tables),
                        predicted=concat_columns(predicted))


if __name__ == "__main__":
    raise SystemExit(main(make, NAME))
