"""Joint training of the decoder ``u`` and the attention ``W`` (docs/theory.md §3 and §6).

Gaussian-like family, ``u_0 = 0`` and ``W_0 = 0``, GD and NGD on ``theta = (u, W)``
normalised by the whole gradient. Three panels against iterations:

* ``1 - corr`` of ``u_t`` with the decoder SVM ``u_mm`` and of ``W_t`` with the
  relaxed joint W-SVM ``W_mm`` of :func:`theory.solve_joint_wsvm` (scores induced
  by ``u_mm``; constraints of sequences that are not decoder support vectors
  relaxed to ``>= 0``, a reconstruction of docs/theory.md §2), the default reference of
  ``sims.run(..., param="joint")``;
* ``||u_t||`` and ``||W_t||``, with the predicted ``||u_t|| ~ lr t`` (NGD);
* the loss (``L* = 0``) with the ``C exp(-r t^{1/3})`` envelope of docs/theory.md §6 (``r``
  fitted by :func:`theory.fit_rate` on the late window, ``C`` the smallest constant
  that bounds the measured mean) and the predicted ``exp(-(lr / ||u_mm||) t)``.

Writes ``joint_training.png``, ``joint_training.csv`` (long format like
``rates_fixed_decoder.csv``: panel, quantity, method, scale, t, mean, lo, hi) and
``joint_training_predicted.csv`` (the dashed lines and their parameters).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sims
import theory
from paper_figs.measure import LN10, law_log10, log10_of, u_one_minus_corr
from paper_figs.output import band_rows, concat_columns, save_outputs
from paper_figs.plotting import (
    METHOD_STYLE, fit_ylim, log10_axis, new_figure, plot_band, plot_predicted,
)
from paper_figs.registry import main
from sims.data import gaussian_joint

NAME = "joint_training"
SHAPE = dict(n=20, T=4, d=8)
LR = {"gd": 1.0, "ngd": 0.1}
ENVELOPE_POWER = 1.0 / 3.0


def _params(quick):
    return dict(seeds=range(3) if quick else range(10), steps=1000 if quick else 5000)


def _pred_rows(predicted, t, curve, **labels):
    k = len(t)
    row = {key: [v] * k for key, v in labels.items()}
    row.update(t=list(map(float, t)), predicted=[float(c) if np.isfinite(c) else None
                                                 for c in curve])
    predicted.append(row)


def make(out_dir, quick=False):
    """Build the figure; return the written paths."""
    prm = _params(quick)
    out_dir = Path(out_dir)
    problems = [gaussian_joint(**SHAPE, seed=s) for s in prm["seeds"]]
    decs = [theory.solve_decoder_svm(p) for p in problems]
    trajs = {m: sims.run_many(problems, [m], [lr], prm["steps"], param="joint",
                              references_u=[d.u for d in decs])
             for m, lr in LR.items()}
    preds = [theory.predicted_rates(p, "ngd", LR["ngd"], param="joint", svm=d)
             for p, d in zip(problems, decs)]

    fig, axes = new_figure(1, 3, (
        f"Joint (u, W) training from $u_0 = 0$, $W_0 = 0$, Gaussian-like family (n={SHAPE['n']}, "
        f"T={SHAPE['T']}, d={SHAPE['d']}), {len(problems)} seeds, global normalisation\n"
        "lines: geometric mean, bands: min-max over seeds; dashed: predicted or fitted laws"))
    ax_corr, ax_norm, ax_loss = axes.flat
    tables, predicted = [], []
    measured = {ax: [] for ax in axes.flat}  # band limits that set each y range
    for m, ts in trajs.items():
        t = ts[0].t.astype(np.float64)
        if any(not np.array_equal(tr.t, ts[0].t) for tr in ts):
            raise RuntimeError("runs of one sweep were recorded at different iterations")
        pos = t > 0
        tp = t[pos]
        style = METHOD_STYLE[m]
        name = f"{style['label']} (lr {LR[m]:g})"
        for quantity, gap, ls in (("u", u_one_minus_corr, "-"),
                                  ("W", lambda tr: tr.one_minus_corr, ":")):
            Y = np.stack([log10_of(gap(tr)[pos]) for tr in ts])
            ref = r"u_{mm}" if quantity == "u" else r"W_{mm}"
            mean, lo, hi = plot_band(ax_corr, tp, Y, color=style["color"], linestyle=ls,
                                     label=f"{name}: ${quantity}_t$ vs ${ref}$")
            measured[ax_corr] += [lo, hi]
            tables.append(band_rows(tp, mean, lo, hi, panel="one_minus_corr",
                                    quantity=quantity, method=m, scale="log10"))
        for quantity, attr, ls in (("u", "u_norm", "-"), ("W", "norm", ":")):
            Y = np.stack([log10_of(getattr(tr, attr)[pos]) for tr in ts])
            mean, lo, hi = plot_band(ax_norm, tp, Y, color=style["color"], linestyle=ls,
                                     label=f"{name}: $\\|{quantity}_t\\|$")
            measured[ax_norm] += [lo, hi]
            tables.append(band_rows(tp, mean, lo, hi, panel="norm", quantity=quantity,
                                    method=m, scale="log10"))
        Y = np.stack([tr.log_loss / LN10 for tr in ts])
        mean, lo, hi = plot_band(ax_loss, t, Y, color=style["color"], label=f"{name}: loss")
        measured[ax_loss] += [lo, hi]
        tables.append(band_rows(t, mean, lo, hi, panel="loss", quantity="loss", method=m,
                                scale="log10"))
        if m != "ngd":
            continue
        # ||u_t|| ~ lr t: through the origin, no anchor needed.
        u_law = theory.RateLaw.mean(p.u_norm for p in preds)
        slope = u_law.slope
        curve = np.log10(u_law.curve(tp, anchor=(0.0, 0.0)))
        plot_predicted(ax_norm, tp, curve, color="k",
                       label=f"predicted $\\|u_t\\| \\sim {slope:g}\\,t$ (NGD)")
        _pred_rows(predicted, tp, curve, panel="norm", method=m, law="u_norm_linear",
                   parameter=slope, scale="log10")
        # Late window of the loss: fitted stretched envelope and predicted exponential rate.
        late = t >= 0.1 * prm["steps"]
        fit = theory.fit_rate(t[late], mean[late] * LN10, "stretched", power=ENVELOPE_POWER,
                              log_values=True)
        tq = t[late] ** ENVELOPE_POWER
        log_c = np.nanmax(mean[late] * LN10 + fit.rate * tq)  # smallest C bounding the mean
        env = (log_c - fit.rate * tq) / LN10
        plot_predicted(ax_loss, t[late], env, color="0.3",
                       label=f"envelope $C e^{{-{fit.rate:.3g}\\,t^{{1/3}}}}$ (r fitted, NGD)")
        _pred_rows(predicted, t[late], env, panel="loss", method=m,
                   law="stretched_envelope_q=1/3", parameter=fit.rate, scale="log10")
        law = theory.RateLaw.mean(p.excess for p in preds)
        rate = law.rate
        k = np.argmin(np.abs(t - 0.5 * prm["steps"]))
        lin = law_log10(law, t[late], (t[k], mean[k]))
        plot_predicted(ax_loss, t[late], lin, color="k",
                       label=f"predicted $\\propto e^{{-{rate:.3g}\\,t}}$ "
                             r"($\mathrm{lr}/\|u_{mm}\|$, NGD)")
        _pred_rows(predicted, t[late], lin, panel="loss", method=m, law="exp_lr_over_u_mm",
                   parameter=rate, scale="log10")
    ax_corr.set_xscale("log")
    ax_corr.set_ylabel(r"$1 - \mathrm{corr}$ (log scale)")
    ax_corr.set_title("alignment ($W_{mm}$: relaxed joint W-SVM)")
    ax_norm.set_xscale("log")
    ax_norm.set_ylabel("norm (log scale)")
    ax_norm.set_title("norms")
    ax_loss.set_ylabel("training loss $L(u_t, W_t)$ (log scale)")
    ax_loss.set_title("loss ($L^* = 0$)")
    for ax in axes.flat:
        fit_ylim(ax, *measured[ax])
        log10_axis(ax)
        ax.set_xlabel("iteration $t$" + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.legend(loc="best", fontsize=5.5)
    return save_outputs(fig, out_dir, NAME, concat_columns(tables),
                        predicted=concat_columns(predicted))


if __name__ == "__main__":
    raise SystemExit(main(make, NAME))
