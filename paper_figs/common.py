"""Shared pieces of the figure scripts: registry, atomic output, style and plot helpers.

Every figure module ``paper_figs.plot_<name>`` defines ``make(out_dir, quick=False)``
(real-data figures also take ``runs=None``) returning the list of files it wrote,
and ends with ``if __name__ == "__main__": raise SystemExit(main(make, NAME))``.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the figures are rebuilt on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "FIGURES",
    "FigureInfo",
    "REPO_ROOT",
    "DEFAULT_OUT",
    "DEFAULT_RUNS",
    "METHOD_STYLE",
    "OPTIMIZER_STYLE",
    "build_figure",
    "new_figure",
    "new_row_figure",
    "save_png",
    "write_csv",
    "seed_band",
    "plot_band",
    "log10_axis",
    "fit_ylim",
    "log10_of",
    "plot_predicted",
    "band_rows",
    "concat_columns",
    "run_each",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "figures"
DEFAULT_RUNS = REPO_ROOT / "runs"

# Modest size: the README gallery embeds the committed PNGs.
FIGSIZE = (8.0, 5.0)
DPI = 150
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "figure.titlesize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.4,
}

METHOD_STYLE = {
    "gd": {"label": "GD", "color": "tab:blue", "marker": "o"},
    "ngd": {"label": "NGD", "color": "tab:orange", "marker": "^"},
    "polyak": {"label": "Polyak", "color": "tab:green", "marker": "s"},
}
OPTIMIZER_STYLE = {
    "sgd": {"label": "SGD", "color": "tab:blue"},
    "adam": {"label": "Adam", "color": "tab:purple"},
    "sngd": {"label": "SNGD", "color": "tab:orange"},
    "sps": {"label": "SPS", "color": "tab:green"},
}


@dataclass(frozen=True)
class FigureInfo:
    """One entry of the figure registry."""

    name: str
    description: str
    uses_runs: bool = False

    @property
    def module(self) -> str:
        return f"paper_figs.plot_{self.name}"


FIGURES = {
    info.name: info
    for info in (
        FigureInfo("rates_fixed_decoder",
                   "GD vs NGD vs Polyak on the equal-score family, with predicted slopes"),
        FigureInfo("global_vs_local",
                   "final 1 - corr with W_mm and W_mm(selection): equal-score vs general random"),
        FigureInfo("joint_training", "joint (u, W) training: alignment, norms, loss envelope"),
        FigureInfo("param_w_vs_kq", "W vs (K, Q) parametrisation: Frobenius vs nuclear W-SVM"),
        FigureInfo("scaling", "iterations to reach 1 - corr < 1e-2 against n, T and d"),
        FigureInfo("realdata_language", "SGD/Adam/SNGD/SPS on text (BERT)", uses_runs=True),
        FigureInfo("realdata_vision", "SGD/Adam/SNGD/SPS on images (ViT)", uses_runs=True),
    )
}


def build_figure(name, out_dir=DEFAULT_OUT, quick=False, runs=None):
    """Import ``paper_figs.plot_<name>`` and run its ``make``; return the written paths.

    Raises
    ------
    ValueError
        If ``name`` is not a registered figure.
    """
    try:
        info = FIGURES[name]
    except KeyError:
        raise ValueError(
            f"unknown figure {name!r}; expected one of: {', '.join(FIGURES)}"
        ) from None
    make = importlib.import_module(info.module).make
    kwargs = {"runs": runs} if info.uses_runs else {}
    return [Path(p) for p in make(Path(out_dir), quick, **kwargs)]


# ---------------------------------------------------------------- output
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK

def _atomic_target(path, suffix):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; outputs should be as readable as any file
    return path, tmp


def save_png(fig, path):
    """Write ``fig`` to ``path`` as PNG atomically (temp file in the same folder) and close it."""
    path, tmp = _atomic_target(path, ".png")
    try:
        fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _cell(name, value):
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            # Callers mark missing values explicitly as None, next to a column saying why.
            raise ValueError(f"column {name!r} holds the non-finite value {v}; write None "
                             "(an empty cell) with a status column instead")
        return repr(v)
    return str(value)


def write_csv(path, columns):
    """Write a table atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.csv``.
    columns : dict of str -> sequence
        Column name to values, all the same length. ``None`` is written as an
        empty cell (a value that is undefined; the table says why in another
        column). Floats must be finite.

    Raises
    ------
    ValueError
        Columns of unequal length or a NaN/inf value (named in the message).
    """
    names = list(columns)
    cols = [list(columns[k]) for k in names]
    lengths = {len(c) for c in cols}
    if len(lengths) > 1:
        raise ValueError(f"columns of {path} differ in length: "
                         + ", ".join(f"{k}={len(c)}" for k, c in zip(names, cols)))
    rows = [[_cell(k, v) for k, v in zip(names, row)] for row in zip(*cols)]
    path, tmp = _atomic_target(path, ".csv")
    try:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names)
            w.writerows(rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_outputs(fig, out_dir, name, table, **extra_tables):
    """Write ``{name}.png``, ``{name}.csv`` and one ``{name}_{key}.csv`` per extra table.

    Tables are dicts of columns (see :func:`write_csv`); returns the written paths.
    """
    out_dir = Path(out_dir)
    paths = [save_png(fig, out_dir / f"{name}.png"), write_csv(out_dir / f"{name}.csv", table)]
    paths += [write_csv(out_dir / f"{name}_{key}.csv", t) for key, t in extra_tables.items()]
    return paths


def concat_columns(tables):
    """Stack tables (dicts of equal keys) row-wise, for long-format CSVs."""
    tables = [t for t in tables if t]
    if not tables:
        return {}
    keys = list(tables[0])
    for t in tables[1:]:
        if list(t) != keys:
            raise ValueError(f"cannot stack tables with columns {keys} and {list(t)}")
    return {k: [v for t in tables for v in t[k]] for k in keys}


# ----------------------------------------------------------- simulations
_PER_PROBLEM = ("W0s", "references", "K0s", "Q0s", "u0s", "references_u")


def run_each(problems, method, lr, steps, **kwargs):
    """``sims.run_many`` over ``problems`` for one method and step size, diverging runs kept.

    A run whose loss leaves the float64 range raises ``FloatingPointError`` inside
    ``sims.run_many`` and would sink the whole sweep; here the sweep is then redone
    problem by problem and such a run comes back as its exception, for the figure
    to report.

    Returns
    -------
    list of sims.Trajectory or FloatingPointError
        One entry per problem, in order.
    """
    import sims

    try:
        return sims.run_many(problems, [method], [lr], steps, **kwargs)
    except FloatingPointError:
        per = {k: kwargs.pop(k) for k in list(kwargs) if k in _PER_PROBLEM and kwargs[k]}
        out = []
        for i, p in enumerate(problems):
            try:
                out.extend(sims.run_many([p], [method], [lr], steps, **kwargs,
                                         **{k: [v[i]] for k, v in per.items()}))
            except FloatingPointError as exc:
                out.append(exc)
        return out


# ------------------------------------------------------------- plotting
def new_figure(nrows, ncols, title, figsize=FIGSIZE):
    """A figure in the project style with an (nrows, ncols) array of axes."""
    # Set globally (not in a context): legends, titles and labels are created later.
    matplotlib.rcParams.update(STYLE)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained")
    fig.suptitle(title)
    return fig, axes


def new_row_figure(ncols, title, row_titles, figsize=FIGSIZE):
    """A figure with one titled row of ``ncols`` axes per entry of ``row_titles``.

    Returns the figure and an array of axes of shape ``(len(row_titles), ncols)``.
    """
    matplotlib.rcParams.update(STYLE)
    fig = plt.figure(figsize=figsize, layout="constrained")
    fig.suptitle(title)
    rows = np.atleast_1d(fig.subfigures(len(row_titles), 1))
    axes = []
    for sub, text in zip(rows, row_titles):
        sub.suptitle(text, fontsize=STYLE["legend.fontsize"])
        axes.append(np.atleast_1d(sub.subplots(1, ncols)))
    return fig, np.array(axes)


def seed_band(values):
    """Mean and min-max band of curves over seeds.

    Quantities shown on a log axis are passed as ``log10`` values (so the mean is
    the geometric mean and nothing underflows; see :func:`log10_axis`).

    Parameters
    ----------
    values : array_like, shape (seeds, points)

    Returns
    -------
    mean, lo, hi : ndarray, shape (points,)
        NaN where some seed is not finite (e.g. ``log10 0``): undefined, not guessed.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"values must be (seeds, points) with seeds >= 1, got shape {v.shape}")
    ok = np.all(np.isfinite(v), axis=0)
    w = np.where(ok, v, 0.0)
    nan = np.full(v.shape[1], np.nan)
    return (np.where(ok, w.mean(axis=0), nan), np.where(ok, w.min(axis=0), nan),
            np.where(ok, w.max(axis=0), nan))


def plot_band(ax, t, values, *, label=None, color=None, **line_kw):
    """Plot the mean over seeds as a line and the min-max band as a shaded area.

    Returns ``(mean, lo, hi)`` as computed by :func:`seed_band`.
    """
    mean, lo, hi = seed_band(values)
    t = np.asarray(t, dtype=np.float64)
    (line,) = ax.plot(t, mean, label=label, color=color, **line_kw)
    ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return mean, lo, hi


def fit_ylim(ax, *arrays, margin=0.05):
    """Set the y range to span ``arrays`` (measured curves); predicted lines never stretch it."""
    vals = np.concatenate([np.ravel(np.asarray(a, dtype=np.float64)) for a in arrays])
    vals = vals[np.isfinite(vals)]
    if vals.size:
        lo, hi = vals.min(), vals.max()
        pad = margin * (hi - lo) if hi > lo else 1.0
        ax.set_ylim(lo - pad, hi + pad)


def log10_axis(ax, axis="y"):
    """Label an axis that carries ``log10`` values as a log scale (ticks ``10^k``).

    Plotting ``log10`` values keeps curves that fall below the float64 range
    (NGD and Polyak reach ``1e-1000``) on the figure; the tick labels make the
    axis read exactly like a matplotlib log axis.
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(nbins=6, integer=True))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"$10^{{{v:.0f}}}$"))


def log10_of(values):
    """``log10`` of nonnegative values, with exact zeros (underflow) mapped to NaN."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = np.log10(v)
    return np.where(np.isfinite(out), out, np.nan)


def band_rows(t, mean, lo, hi, **labels):
    """Long-format rows ``labels..., t, mean, lo, hi``; undefined points become empty cells."""
    t = np.asarray(t, dtype=np.float64)
    k = t.size
    out = {key: [val] * k for key, val in labels.items()}

    def clean(a):
        return [float(x) if np.isfinite(x) else None for x in np.asarray(a, dtype=np.float64)]

    out.update(t=clean(t), mean=clean(mean), lo=clean(lo), hi=clean(hi))
    return out


def plot_predicted(ax, t, curve, *, color=None, label=None):
    """Draw a predicted rate as a dashed line (undefined points are skipped).

    ``curve`` holds the predicted values at ``t`` in the axis's units (``log10``
    on a :func:`log10_axis`); the caller anchors its constant on the measured
    curve, so the line shows the predicted *slope*.
    """
    t = np.asarray(t, dtype=np.float64)
    curve = np.asarray(curve, dtype=np.float64)
    ok = np.isfinite(curve)
    ax.plot(t[ok], curve[ok], linestyle="--", color=color, linewidth=1.1, label=label)


# ------------------------------------------------------------------ CLI
def _parser(info):
    p = argparse.ArgumentParser(
        prog=f"python -m {info.module}",
        description=f"Rebuild the figure {info.name!r}: {info.description}.",
    )
    p.add_argument("--quick", action="store_true",
                   help="small budget (seconds); what CI runs")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"output folder (default: {DEFAULT_OUT})")
    if info.uses_runs:
        p.add_argument("--runs", type=Path, default=None,
                       help=f"folder of existing run records (default: {DEFAULT_RUNS} when "
                            "present, otherwise train on the embedded data)")
    return p


def main(make, name, argv=None):
    """Command-line entry of one figure module: parse, build, print the written files."""
    info = FIGURES[name]
    args = _parser(info).parse_args(argv)
    kwargs = {"runs": args.runs} if info.uses_runs else {}
    for path in make(args.out, args.quick, **kwargs):
        print(path)
    return 0
