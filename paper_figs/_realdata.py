"""What the two real-data figures share: finding or making run records, and drawing them.

A run record is a folder written by ``realdata.train`` (``config.json``, ``metrics.csv``,
``eval.csv``). The figures read every record of a preset found under the runs folder
(``--runs DIR``, default ``runs/`` at the repository root). When there is none they train
the preset now with :func:`realdata.compare`: in full mode into ``DIR/<preset>`` (so the
next rebuild reuses it), in quick mode with a small smoke budget into a temporary folder.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

from paper_figs.common import (
    DEFAULT_RUNS, OPTIMIZER_STYLE, band_rows, concat_columns, fit_ylim, new_row_figure,
    plot_band, save_outputs,
)

# Training budgets when no record exists. Quick: a CI smoke budget (the BERT batch and
# token limit are cut too, and the figure says so); full: the presets' paper settings.
QUICK_BUDGET = {
    "mnist-vit": dict(steps=8, seeds=(0,), eval_max=100),
    "fashion-vit": dict(steps=8, seeds=(0,), eval_max=100),
    "bbc-bert": dict(steps=3, seeds=(0,), eval_max=32, batch_size=8, max_seq_len=32),
}
FULL_BUDGET = {
    "mnist-vit": dict(steps=300, seeds=(0, 1)),
    "fashion-vit": dict(steps=300, seeds=(0, 1)),
    "bbc-bert": dict(steps=40, seeds=(0,)),
}
ETA_MAX = r"$\eta_{max}$"
_BUDGET_WORDS = {"steps": "steps", "eval_max": "held-out examples", "batch_size": "batch",
                 "max_seq_len": "tokens"}
# Per-step series drawn (column of metrics.csv -> panel title, y label, log y).
PANELS = {
    "loss": ("training loss (mini-batch)", "cross-entropy (log scale)", True),
    "acc": ("accuracy: mini-batch (lines), held-out (dots)", "accuracy", False),
    "attn_max": ("attention sparsity, last layer", "max attention weight of [CLS]", False),
}


def find_runs(root, preset):
    """Run folders under ``root`` (at most three levels deep) recorded for ``preset``."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for cfg in sorted(root.glob("config.json")) + sorted(root.glob("*/config.json")) + \
            sorted(root.glob("*/*/config.json")):
        try:
            config = json.loads(cfg.read_text())
        except (OSError, ValueError):
            continue
        metrics = cfg.parent / "metrics.csv"
        if config.get("preset") == preset and metrics.is_file() and metrics.stat().st_size > 0:
            found.append(cfg.parent)
    return found


def obtain_runs(preset, runs, quick, stack):
    """Record folders for ``preset`` and a phrase saying where they come from.

    Trains the preset when ``runs`` holds no record of it (see the module docstring);
    ``stack`` (an ``ExitStack``) owns the temporary folder of quick runs.
    """
    root = Path(runs) if runs is not None else DEFAULT_RUNS
    found = find_runs(root, preset)
    if found:
        return found, f"records in {root}"
    import realdata

    budget = dict((QUICK_BUDGET if quick else FULL_BUDGET)[preset])
    seeds = budget.pop("seeds")
    if quick:
        dest = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="paper_figs-")))
    else:
        dest = root / preset
    realdata.compare(preset, dest, seeds=seeds, progress=not quick, resume=not quick, **budget)
    what = ", ".join(f"{_BUDGET_WORDS[k]} {v}" for k, v in budget.items())
    mode = "quick budget (not the paper's length)" if quick else "trained now"
    return find_runs(dest, preset), f"{mode}: {what}, {len(seeds)} seed(s)"


def _load(run_dir):
    from realdata import read_metrics

    config = json.loads((Path(run_dir) / "config.json").read_text())
    metrics = read_metrics(run_dir)
    evals = read_metrics(run_dir, "eval") if (Path(run_dir) / "eval.csv").is_file() else None
    return config, metrics, evals


def _smooth(x, window):
    """Trailing running mean over ``window`` steps (shorter at the start)."""
    c = np.cumsum(np.concatenate([[0.0], x]))
    k = np.arange(1, x.size + 1)
    lo = np.maximum(k - window, 0)
    return (c[k] - c[lo]) / (k - lo)


def _dataset_label(config):
    name = config.get("dataset", "?")
    stand = config.get("stand_in_for")
    return f"{name} (stand-in for {stand})" if stand else name


def make_figure(name, title, presets, out_dir, quick, runs, notes=()):
    """Draw one row of panels per preset with records; write PNG and CSVs; return the paths.

    ``notes`` are lines added under the title (e.g. a preset left out and why).
    """
    out_dir = Path(out_dir)
    tables, provenance = [], {k: [] for k in (
        "preset", "optimizer", "seed", "steps", "lr", "eta_max", "batch_size", "max_seq_len",
        "dataset", "stand_in_for", "source", "run_dir")}
    loaded = []
    with ExitStack() as stack:
        for preset in presets:
            dirs, source = obtain_runs(preset, runs, quick, stack)
            loaded.append((preset, source, [(d, *_load(d)) for d in dirs]))
    loaded = [entry for entry in loaded if entry[2]]
    if not loaded:
        raise RuntimeError(f"no run records for {', '.join(presets)}")
    fig, axes = new_row_figure(len(PANELS), "\n".join([title, *notes]), [
        f"{preset}: {_dataset_label(records[0][1])}; {source}"
        for preset, source, records in loaded])
    for row, (preset, source, records) in enumerate(loaded):
        for run_dir, cfg, _, _ in records:
            # Quick-mode runs live in a temporary folder that is gone by now.
            temporary = quick and source.startswith("quick")
            where = "(temporary, deleted)" if temporary else str(run_dir)
            for k, v in (("preset", preset), ("optimizer", cfg["optimizer"]),
                         ("seed", cfg["seed"]), ("steps", cfg["steps"]), ("lr", cfg.get("lr")),
                         ("eta_max", cfg.get("eta_max")), ("batch_size", cfg.get("batch_size")),
                         ("max_seq_len", cfg.get("max_seq_len")),
                         ("dataset", cfg.get("dataset")),
                         ("stand_in_for", cfg.get("stand_in_for")), ("source", source),
                         ("run_dir", where)):
                provenance[k].append(v)
        by_opt = {}
        for run_dir, cfg, metrics, evals in records:
            by_opt.setdefault(cfg["optimizer"], []).append((cfg, metrics, evals))
        for col, (panel, (ptitle, ylabel, log)) in enumerate(PANELS.items()):
            ax = axes[row, col]
            measured = []
            for opt in [o for o in OPTIMIZER_STYLE if o in by_opt] + \
                    [o for o in by_opt if o not in OPTIMIZER_STYLE]:
                group = by_opt[opt]
                style = OPTIMIZER_STYLE.get(opt, {"label": opt, "color": None})
                k = min(len(m["step"]) for _, m, _ in group)  # steps every seed has
                steps = group[0][1]["step"][:k].astype(np.float64)
                window = max(1, k // 25)
                Y = np.stack([_smooth(m[panel][:k], window) for _, m, _ in group])
                cfg = group[0][0]
                hyper = [f"{k} {cfg[key]:g}" for k, key in (("lr", "lr"), (ETA_MAX, "eta_max"))
                         if cfg.get(key) is not None]
                label = style["label"] + (f" ({', '.join(hyper)})" if hyper else "")
                mean, lo, hi = plot_band(ax, steps, Y, color=style["color"], label=label)
                measured += [lo, hi]
                tables.append(band_rows(steps, mean, lo, hi, preset=preset, optimizer=opt,
                                        quantity=panel,
                                        smoothing_window=window, seeds=len(group)))
                if panel == "acc":
                    ev = [e for _, _, e in group if e is not None and len(e["step"])]
                    if ev:
                        j = min(len(e["step"]) for e in ev)
                        H = np.stack([e["heldout_acc"][:j] for e in ev])
                        es = ev[0]["step"][:j].astype(np.float64)
                        hm = H.mean(axis=0)
                        ax.plot(es, hm, linestyle="none", marker="o", markersize=4,
                                color=style["color"])
                        measured += [hm]
                        tables.append(band_rows(es, hm, H.min(axis=0), H.max(axis=0),
                                                preset=preset, optimizer=opt,
                                                quantity="heldout_acc",
                                                smoothing_window=1, seeds=len(ev)))
            if log:  # real-data losses stay far above the float64 range: a plain log axis
                ax.set_yscale("log")
                # Losses often span less than a decade: label 1, 1.5, 2, 3, 5, 7 of each.
                ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
                ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            else:
                fit_ylim(ax, *measured)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(ptitle)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel(ylabel)
            if col == 0:
                ax.legend(loc="best", fontsize=6)
    return save_outputs(fig, out_dir, name, concat_columns(tables), runs=provenance)
