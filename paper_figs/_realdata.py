"""What the two real-data figures share: finding or making run records, and drawing them.

A run record is a folder written by ``realdata.train`` (``config.json``, ``metrics.csv``,
``eval.csv``, ``result.json``). The figures read every finished record of a preset found
under the runs folder (``--runs DIR``, default ``runs/`` at the repository root); an
interrupted one (no ``result.json``) is skipped with a warning naming it. When there is no
finished record they train the preset now with :func:`realdata.compare`: in full mode into
``DIR/<preset>`` (so the next rebuild reuses it, and an interrupted training resumes), in
quick mode with a small smoke budget into a temporary folder.

Beside each figure ``<figure>_summary.csv`` (printed too) holds, per preset and optimizer
setting, loss and held-out accuracy at 25/50/100 % of the steps, steps to a target loss and
the attention sparsity at the end, with min-max over seeds (:mod:`realdata.summary`).
Figures and tables name runs relative to the runs folder, never by absolute path.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

from paper_figs.common import (
    DEFAULT_RUNS, OPTIMIZER_STYLE, REPO_ROOT, band_rows, concat_columns, fit_ylim,
    new_row_figure, plot_band, save_outputs,
)

# Training budgets when no record exists. Quick: a CI smoke budget (the BERT batch and
# token limit are cut too, and the figure says so). Full: 5 epochs of the embedded MNIST
# split (8 000 images, batch 100: 400 steps) and 200 BERT steps, 3 seeds each, all four
# optimizers at the presets' step sizes. Measured on a shared 2-core machine (load 6-10,
# one thread, CPU time per training step): the mnist-vit ViT (width 64) 0.14-0.19 s at
# batch 100, so its 4 800 steps take about 10 minutes on 2 idle cores with the full 2 000
# held-out images; MiniLM-L6 5.8 s at batch 32 x 128 tokens, 2.4 s at 32 x 64, 1.4 s at
# 16 x 64 and 1.6 s at 32 x 32, so the 2 400 BERT steps run at batch 16 and 32 tokens
# (about 0.8 s, some 20-25 minutes on 2 idle cores) on 200 held-out articles.
QUICK_BUDGET = {
    "mnist-vit": dict(steps=8, seeds=(0,), eval_max=100),
    "fashion-vit": dict(steps=8, seeds=(0,), eval_max=100),
    "bbc-bert": dict(steps=3, seeds=(0,), eval_max=32, batch_size=8, max_seq_len=32),
}
FULL_BUDGET = {
    "mnist-vit": dict(steps=400, seeds=(0, 1, 2)),
    "fashion-vit": dict(steps=400, seeds=(0, 1, 2)),
    "bbc-bert": dict(steps=200, seeds=(0, 1, 2), eval_max=200, batch_size=16, max_seq_len=32),
}
# Wall seconds per step on 2 idle cores, from the measurements above (for the printed ETA).
SECONDS_PER_STEP = {"vit": 0.12, "bert": 0.5}
OPTIMIZERS = ("sgd", "adam", "sngd", "sps")
# Characters per title line that fit the 8-inch figure at the title's font size.
TITLE_WIDTH = 120
ROW_TITLE_WIDTH = 130
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
    """Finished run folders under ``root`` (at most three levels deep) recorded for ``preset``.

    Interrupted runs (no ``result.json``) are skipped with a warning naming them.
    """
    from realdata.summary import find_runs as finished_runs

    root = Path(root)
    return finished_runs(root, preset) if root.is_dir() else []


def display_path(path):
    """``path`` as figures and tables show it: relative to the repository, else its name."""
    path = Path(path)
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.name


def _minutes(preset, budget):
    from realdata import PRESETS

    per_step = SECONDS_PER_STEP[PRESETS[preset].family]
    return max(1, round(budget["steps"] * len(budget["seeds"]) * len(OPTIMIZERS) * per_step / 60))


def obtain_runs(preset, runs, quick, stack):
    """Record folders for ``preset``, the folder they lie under, and a phrase saying where
    they come from.

    Trains the preset when ``runs`` holds no finished record of it (see the module
    docstring); ``stack`` (an ``ExitStack``) owns the temporary folder of quick runs.
    """
    root = Path(runs) if runs is not None else DEFAULT_RUNS
    found = find_runs(root, preset)
    if found:
        return found, root, f"records in {display_path(root)}"
    import realdata

    budget = dict((QUICK_BUDGET if quick else FULL_BUDGET)[preset])
    if quick:
        dest = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="paper_figs-")))
    else:
        dest = root / preset
        shown = display_path(dest) if runs is None else dest  # as the user gave it
        print(f"no records under {shown}: training the presets, about "
              f"{_minutes(preset, budget)} minutes on 2 idle cores", flush=True)
    seeds = budget.pop("seeds")
    realdata.compare(preset, dest, seeds=seeds, progress=not quick, resume=not quick, **budget)
    what = ", ".join(f"{_BUDGET_WORDS[k]} {v}" for k, v in budget.items())
    mode = "quick budget (not the paper's length)" if quick else "trained now"
    return find_runs(dest, preset), dest, f"{mode}: {what}, {len(seeds)} seed(s)"


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


def _hyper_label(config):
    """`` (lr .., eta_max .., cap .., c ..)`` from a run's config: the SNGD variant and the SPS
    constant when the record holds them."""
    hyper = [f"{word} {config[key]:g}" for word, key in (("lr", "lr"), (ETA_MAX, "eta_max"),
                                                        ("c", "sps_c"))
             if config.get(key) is not None]
    if config.get("sngd_cap") is not None:
        hyper.append(f"cap {config['sngd_cap']}")
    return f" ({', '.join(hyper)})" if hyper else ""


def _wrap(lines, width):
    """Lines wrapped to ``width`` characters, so that no title runs off the figure."""
    return "\n".join(textwrap.fill(line, width) for line in lines)


def _dataset_label(config):
    name = config.get("dataset", "?")
    stand = config.get("stand_in_for")
    return f"{name} (stand-in for {stand})" if stand else name


def make_figure(name, title, presets, out_dir, quick, runs, notes=()):
    """Draw one row of panels per preset with records; write PNG and CSVs; return the paths.

    ``notes`` are lines added under the title (e.g. a preset left out and why).
    """
    from realdata.summary import summarize_run

    loaded, summaries, where = [], {}, {}
    with ExitStack() as stack:
        for preset in presets:
            dirs, root, source = obtain_runs(preset, runs, quick, stack)
            loaded.append((preset, source, [(d, *_load(d)) for d in dirs]))
            # Quick runs live in a temporary folder: summarise them before it goes.
            summaries[preset] = [summarize_run(d, root) for d in dirs]
            for d, summary in zip(dirs, summaries[preset]):
                where[d] = "(temporary, deleted)" if quick and source.startswith("quick") \
                    else summary.run
    return draw_figure(name, title, loaded, summaries, where, out_dir, notes)


def sweep_figure(sweep_dir, out_dir, name):
    """Curves of each optimizer's best grid point of a sweep (``realdata.sweep``).

    Reads ``sweep_dir/sweep_table.csv`` and the runs it names; writes ``<name>.png``,
    ``<name>.csv``, ``<name>_runs.csv`` and ``<name>_summary.csv`` into ``out_dir`` and
    returns the paths.
    """
    import csv as _csv

    from realdata.summary import summarize_run

    sweep_dir = Path(sweep_dir)
    table = sweep_dir / "sweep_table.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table} not found: run python -m realdata sweep first")
    with open(table, newline="") as fh:
        rows = list(_csv.DictReader(fh))
    dirs = [sweep_dir / run for row in rows for run in row["runs"].split(";")]
    preset = rows[0]["preset"]
    summaries = {preset: [summarize_run(d, sweep_dir) for d in dirs]}
    where = {d: s.run for d, s in zip(dirs, summaries[preset])}
    loaded = [(preset, f"best point per optimizer of the sweep in {sweep_dir.name}",
               [(d, *_load(d)) for d in dirs])]
    title = (f"{preset}: each optimizer at its best step sizes of a sweep (lowest mean final "
             "training loss over seeds); lines: running mean over steps, averaged over seeds; "
             "bands: min-max over seeds")
    return draw_figure(name, title, loaded, summaries, where, out_dir)


def draw_figure(name, title, loaded, summaries, where, out_dir, notes=()):
    """Draw ``loaded`` (``(preset, source, [(run_dir, config, metrics, evals), ...])`` per
    row), write the PNG, the curves, the runs and the summary CSVs; return the paths.

    ``summaries`` maps a preset to its runs' :class:`realdata.summary.RunSummary` list and
    ``where`` a run folder to the name the runs table gives it.
    """
    out_dir = Path(out_dir)
    tables, provenance = [], {k: [] for k in (
        "preset", "optimizer", "seed", "steps", "lr", "eta_max", "batch_size", "max_seq_len",
        "dataset", "stand_in_for", "source", "run_dir")}
    loaded = [entry for entry in loaded if entry[2]]
    if not loaded:
        raise RuntimeError(f"no run records for {', '.join(summaries)}")
    fig, axes = new_row_figure(len(PANELS), _wrap([title, *notes], TITLE_WIDTH), [
        _wrap([f"{preset}: {_dataset_label(records[0][1])}; {source}"], ROW_TITLE_WIDTH)
        for preset, source, records in loaded])
    for row, (preset, source, records) in enumerate(loaded):
        for run_dir, cfg, _, _ in records:
            for k, v in (("preset", preset), ("optimizer", cfg["optimizer"]),
                         ("seed", cfg["seed"]), ("steps", cfg["steps"]), ("lr", cfg.get("lr")),
                         ("eta_max", cfg.get("eta_max")), ("batch_size", cfg.get("batch_size")),
                         ("max_seq_len", cfg.get("max_seq_len")),
                         ("dataset", cfg.get("dataset")),
                         ("stand_in_for", cfg.get("stand_in_for")), ("source", source),
                         ("run_dir", where[run_dir])):
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
                label = style["label"] + _hyper_label(group[0][0])
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
    paths = save_outputs(fig, out_dir, name, concat_columns(tables), runs=provenance)
    return paths + [write_summaries(out_dir / f"{name}_summary.csv", summaries)]


def write_summaries(path, summaries):
    """Write and print the per-setting summary of each preset's runs; return the path.

    ``summaries`` maps a preset to its :class:`realdata.summary.RunSummary` list; the target
    loss of each preset is the highest final loss among its settings.
    """
    from realdata.summary import default_target, format_table, summarize, summary_columns, \
        write_summary

    rows = []
    for preset, runs in summaries.items():
        if not runs:
            continue
        settings = summarize(runs)
        target = default_target(settings)
        settings = summarize(runs, target)
        shown = "none (every setting diverged)" if target is None else f"{target:.4g}"
        print(f"{path.stem}, {preset} (min-max over seeds; target loss {shown}):")
        print(format_table(settings))
        rows += [summary_columns(s) for s in settings]
    return write_summary(path, rows)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m paper_figs._realdata",
        description="Figure of a step-size sweep: each optimizer's best point (curves, runs, "
                    "summary CSVs).")
    parser.add_argument("sweep_dir", help="folder written by python -m realdata sweep")
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument("--name", default="sweep", help="file name stem (default: sweep)")
    args = parser.parse_args()
    try:
        for written in sweep_figure(args.sweep_dir, args.out, args.name):
            print(written)
    except (FileNotFoundError, ValueError) as err:
        import sys

        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
