"""Per-setting summaries of finished training runs, with the spread over seeds.

A run folder is one written by :func:`realdata.train` (``config.json``, ``metrics.csv``,
``eval.csv``, and ``result.json`` once it has finished). Runs that share a preset, an optimizer
and its hyper-parameters (lr, ``eta_max``, ``sngd_cap``, ``sps_c``) and a step budget form one
*setting*; a setting's summary holds, as mean, min and max over its seeds
(docs/theory.md §5):

* ``loss_<p>``: training loss at ``p`` % of the step budget, the mean mini-batch loss over the
  trailing window of ``ceil(10 %)`` of the budget ending at that step (at 100 % this is the
  ``final_train_loss`` of the run's ``result.json``);
* ``heldout_acc_<p>``: held-out accuracy of the latest evaluation at or before that step
  (evaluations follow each epoch and the last step; ``heldout_step_<p>`` says which step, and
  the cell is empty when there was none yet);
* ``steps_to_target``: first step whose trailing-window loss is at or below ``target_loss``
  (``inf`` for a seed that never gets there; ``target_reached`` counts the seeds that do);
* ``attn_entropy``, ``attn_max``: attention sparsity of the class token in the last layer,
  trailing-window mean at the end.

A diverged run (a non-finite loss stops it) has loss ``inf`` from its last finite window on;
its setting is reported, never dropped. Runs without ``result.json`` were interrupted:
:func:`find_runs` skips them with a warning naming them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from theory.atomic import atomic_write_text

from .train import read_metrics

__all__ = ["BUDGET_FRACTIONS", "Spread", "RunSummary", "SettingSummary", "find_runs",
           "summarize_run", "summarize", "default_target", "summary_columns", "write_summary",
           "format_table"]

BUDGET_FRACTIONS = (0.25, 0.5, 1.0)
# Trailing window of the smoothed loss, as a fraction of the budget (as ``final_train_loss``).
WINDOW_FRACTION = 0.1
# Hyper-parameters that tell settings apart; absent keys (older records) read as None.
SETTING_KEYS = ("preset", "optimizer", "lr", "eta_max", "sngd_cap", "sps_c", "steps")


@dataclass(frozen=True)
class Spread:
    """Mean, min and max of one quantity over seeds.

    ``inf`` propagates (a diverged seed makes the mean ``inf``); ``nan`` means undefined.

    Examples
    --------
    >>> Spread.of([1.0, 3.0])
    Spread(mean=2.0, min=1.0, max=3.0)
    >>> Spread.of([1.0, float("inf")]).mean
    inf
    """

    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "Spread":
        """Spread of ``values``; all ``nan`` when any value is ``nan`` or there is none."""
        a = np.asarray(list(values), dtype=np.float64)
        if a.size == 0 or np.isnan(a).any():
            return cls(math.nan, math.nan, math.nan)
        with np.errstate(invalid="ignore"):
            return cls(float(np.mean(a)), float(np.min(a)), float(np.max(a)))


@dataclass(frozen=True)
class RunSummary:
    """Quantities of one finished run (see the module docstring for their definitions).

    Attributes
    ----------
    run : str
        The run folder, relative to the folder it was found under.
    setting : tuple
        Values of :data:`SETTING_KEYS` (``steps`` is the planned budget).
    seed : int
    diverged_at : int or None
    fractions : tuple of float
        Budget fractions of ``loss``, ``heldout_acc`` and ``heldout_step``.
    loss, heldout_acc : tuple of float
        One value per budget fraction (``inf`` after divergence, ``nan`` when undefined).
    heldout_step : tuple of int or None
        Step of the evaluation behind each ``heldout_acc``.
    attn_entropy, attn_max : float
        Trailing-window means at the end.
    smoothed_loss : ndarray
        Trailing-window mean loss per step (``inf`` from the divergence on).
    """

    run: str
    setting: tuple
    seed: int
    diverged_at: int | None
    fractions: tuple
    loss: tuple
    heldout_acc: tuple
    heldout_step: tuple
    attn_entropy: float
    attn_max: float
    smoothed_loss: np.ndarray = field(repr=False, compare=False)

    def steps_to(self, target: float) -> float:
        """First step whose smoothed loss is at most ``target``; ``inf`` if none."""
        hit = np.flatnonzero(self.smoothed_loss <= target)
        return float(hit[0] + 1) if hit.size else math.inf


@dataclass(frozen=True)
class SettingSummary:
    """Summary of the runs of one setting over their seeds.

    Attributes
    ----------
    setting : dict
        :data:`SETTING_KEYS` to values (``steps``: the planned budget).
    seeds : tuple of int
    diverged : tuple of int
        Seeds whose run diverged.
    fractions : tuple of float
        The budget fractions of ``loss``, ``heldout_acc`` and ``heldout_step``.
    loss, heldout_acc : tuple of Spread
        One per fraction.
    heldout_step : tuple of int or None
        Latest evaluation step at or before each fraction (of the first seed; the seeds of a
        setting share their evaluation steps unless one diverged).
    target_loss : float or None
    steps_to_target : Spread
        ``nan`` without a target.
    target_reached : int
        Seeds that reach the target.
    attn_entropy, attn_max : Spread
    runs : tuple of str
        The run folders (relative names).
    """

    setting: dict
    seeds: tuple
    diverged: tuple
    fractions: tuple
    loss: tuple
    heldout_acc: tuple
    heldout_step: tuple
    target_loss: float | None
    steps_to_target: Spread
    target_reached: int
    attn_entropy: Spread
    attn_max: Spread
    runs: tuple

    @property
    def final_loss(self) -> float:
        """Mean over seeds of the loss at the full budget (``inf`` if a seed diverged)."""
        return self.loss[-1].mean


def _relative(path: Path, root: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        return path.name
    return rel.as_posix() or "."


def find_runs(root, preset: str | None = None, *, depth: int = 3) -> list[Path]:
    """Finished run folders under ``root`` (``root`` itself and ``depth`` levels below).

    Parameters
    ----------
    root : path
    preset : str or None
        Keep only runs of this preset.
    depth : int, default 3

    Returns
    -------
    list of Path
        Sorted. A folder with ``config.json`` but no ``result.json`` (an interrupted run) is
        left out with a :class:`UserWarning` naming it relative to ``root``.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder {root} does not exist or is not a folder")
    configs = [c for k in range(depth + 1)
               for c in root.glob("/".join(["*"] * k + ["config.json"]))]
    found, unfinished = [], []
    for cfg in sorted(configs):
        try:
            config = json.loads(cfg.read_text())
        except (OSError, ValueError):
            continue
        if preset is not None and config.get("preset") != preset:
            continue
        (found if (cfg.parent / "result.json").is_file() else unfinished).append(cfg.parent)
    if unfinished:
        warnings.warn(f"skipping {len(unfinished)} unfinished run(s) (no result.json) under "
                      f"{root.name or root}: "
                      + ", ".join(_relative(d, root) for d in unfinished), stacklevel=2)
    return found


def _trailing_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each position (fewer at the start)."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    k = np.arange(1, x.size + 1)
    lo = np.maximum(k - window, 0)
    with np.errstate(invalid="ignore"):
        return (c[k] - c[lo]) / (k - lo)


def summarize_run(run_dir, root=None, fractions: Sequence[float] = BUDGET_FRACTIONS) -> RunSummary:
    """Summarise one run folder.

    Parameters
    ----------
    run_dir : path
        A folder written by :func:`realdata.train`.
    root : path or None
        Folder the run's name is made relative to (default: the run's parent).
    fractions : sequence of float, default (0.25, 0.5, 1.0)
        Budget fractions in (0, 1].

    Returns
    -------
    RunSummary

    Raises
    ------
    FileNotFoundError
        If ``config.json`` or ``metrics.csv`` is missing.
    ValueError
        For a fraction outside (0, 1].
    """
    run_dir = Path(run_dir)
    for f in fractions:
        if isinstance(f, bool) or not (isinstance(f, numbers.Real) and 0 < f <= 1):
            raise ValueError(f"budget fractions must lie in (0, 1], got {f!r}")
    for name in ("config.json", "metrics.csv"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir}: no {name}; not a run folder")
    config = json.loads((run_dir / "config.json").read_text())
    setting = tuple(config.get(k) for k in SETTING_KEYS)
    budget = int(config["steps"])
    window = max(1, math.ceil(WINDOW_FRACTION * budget))
    m = read_metrics(run_dir)
    loss = m["loss"]
    bad = np.flatnonzero(~np.isfinite(loss))
    diverged = int(m["step"][bad[0]]) if bad.size else None
    if bad.size:
        loss = loss.copy()
        loss[bad[0]:] = np.inf
    smooth = _trailing_mean(loss, window)
    smooth[np.isnan(smooth)] = np.inf  # inf - inf inside a window past the divergence
    evals = read_metrics(run_dir, "eval") if (run_dir / "eval.csv").is_file() else None
    at_loss, at_acc, at_step = [], [], []
    for f in fractions:
        step = max(1, round(f * budget))
        if step <= loss.size:
            at_loss.append(float(smooth[step - 1]))
        else:  # the run stopped early: only a divergence does that to a finished run
            at_loss.append(math.inf if diverged is not None else math.nan)
        done = np.flatnonzero(evals["step"] <= step) if evals is not None else np.array([])
        at_acc.append(float(evals["heldout_acc"][done[-1]]) if done.size else math.nan)
        at_step.append(int(evals["step"][done[-1]]) if done.size else None)
    end = slice(max(0, loss.size - window), loss.size)

    def tail(column):
        values = m[column][end]
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else math.nan

    return RunSummary(run=_relative(run_dir, Path(root) if root is not None else run_dir.parent),
                      setting=setting, seed=int(config["seed"]), diverged_at=diverged,
                      fractions=tuple(float(f) for f in fractions), loss=tuple(at_loss),
                      heldout_acc=tuple(at_acc), heldout_step=tuple(at_step),
                      attn_entropy=tail("attn_entropy"), attn_max=tail("attn_max"),
                      smoothed_loss=smooth)


def default_target(settings: Sequence[SettingSummary]) -> float | None:
    """The largest finite mean final loss among ``settings`` (a level every one of them reaches
    on average), or None when all diverged."""
    finite = [s.final_loss for s in settings if math.isfinite(s.final_loss)]
    return max(finite) if finite else None


def summarize(runs: Sequence[RunSummary], target_loss: float | None = None) -> list[SettingSummary]:
    """Group runs by setting and summarise each group over its seeds.

    Parameters
    ----------
    runs : sequence of RunSummary
        All made with the same budget fractions.
    target_loss : float or None
        Level for ``steps_to_target`` (None: no target).

    Returns
    -------
    list of SettingSummary
        In the order the settings first appear in ``runs``.

    Raises
    ------
    ValueError
        If ``runs`` is empty, two runs of one setting share a seed, or the target is not a
        positive finite number.

    Examples
    --------
    >>> import numpy as np
    >>> def run(seed, final):
    ...     return RunSummary(f"r{seed}", ("p", "sgd", 0.1, None, None, None, 4), seed, None,
    ...                       (1.0,), (final,), (0.5,), (4,), 1.0, 0.5,
    ...                       np.array([2.0, 1.0, final, final]))
    >>> s = summarize([run(0, 0.5), run(1, 0.7)], target_loss=0.6)[0]
    >>> s.loss[0], s.steps_to_target, s.target_reached
    (Spread(mean=0.6, min=0.5, max=0.7), Spread(mean=inf, min=3.0, max=inf), 1)
    """
    if not runs:
        raise ValueError("no runs to summarise")
    if target_loss is not None and not (isinstance(target_loss, (int, float))
                                        and math.isfinite(target_loss) and target_loss > 0):
        raise ValueError(f"target_loss must be a positive finite number, got {target_loss!r}")
    if len({r.fractions for r in runs}) > 1:
        raise ValueError("runs summarised with different budget fractions cannot be grouped")
    groups: dict[tuple, list[RunSummary]] = {}
    for r in runs:
        groups.setdefault(r.setting, []).append(r)
    out = []
    for setting, group in groups.items():
        seeds = [r.seed for r in group]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"runs {[r.run for r in group]} share a setting and a seed "
                             f"({dict(zip(SETTING_KEYS, setting))}); keep one of each")
        n = len(group[0].loss)
        steps_to = [r.steps_to(target_loss) for r in group] if target_loss is not None else []
        out.append(SettingSummary(
            setting=dict(zip(SETTING_KEYS, setting)), seeds=tuple(seeds),
            diverged=tuple(r.seed for r in group if r.diverged_at is not None),
            fractions=group[0].fractions,
            loss=tuple(Spread.of(r.loss[k] for r in group) for k in range(n)),
            heldout_acc=tuple(Spread.of(r.heldout_acc[k] for r in group) for k in range(n)),
            heldout_step=group[0].heldout_step, target_loss=target_loss,
            steps_to_target=Spread.of(steps_to),
            target_reached=sum(math.isfinite(s) for s in steps_to),
            attn_entropy=Spread.of(r.attn_entropy for r in group),
            attn_max=Spread.of(r.attn_max for r in group),
            runs=tuple(r.run for r in group)))
    return out


def _percent(f: float) -> str:
    return f"{100 * f:g}"


def summary_columns(s: SettingSummary) -> dict:
    """One flat row of a summary table (see the module docstring for the quantities).

    Spreads become ``<name>_mean``, ``<name>_min``, ``<name>_max``; seeds and run folders are
    joined with ``;``.
    """
    row = dict(s.setting)
    row.update(seeds=";".join(map(str, s.seeds)), diverged=";".join(map(str, s.diverged)))

    def spread(name, sp):
        row.update({f"{name}_mean": sp.mean, f"{name}_min": sp.min, f"{name}_max": sp.max})

    for f, loss in zip(s.fractions, s.loss):
        spread(f"loss_{_percent(f)}", loss)
    for f, acc, step in zip(s.fractions, s.heldout_acc, s.heldout_step):
        spread(f"heldout_acc_{_percent(f)}", acc)
        row[f"heldout_step_{_percent(f)}"] = step
    row["target_loss"] = s.target_loss
    spread("steps_to_target", s.steps_to_target)
    row["target_reached"] = f"{s.target_reached}/{len(s.seeds)}" if s.target_loss else None
    spread("attn_entropy", s.attn_entropy)
    spread("attn_max", s.attn_max)
    row["runs"] = ";".join(s.runs)
    return row


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""  # undefined (no evaluation yet, no target)
    if isinstance(value, float):
        return repr(value)  # inf stays "inf": a diverged run, or a target never reached
    return str(value)


def write_summary(path, rows: Sequence[dict]) -> Path:
    """Write rows (dicts with the same keys, e.g. from :func:`summary_columns`) as a CSV,
    atomically; empty cells are undefined values, ``inf`` marks divergence or a target
    never reached.

    Raises
    ------
    ValueError
        If there are no rows or their keys differ.
    FileNotFoundError, IsADirectoryError
        For a destination whose folder is missing, or a folder.
    """
    if not rows:
        raise ValueError("no rows to write")
    keys = list(rows[0])
    for row in rows[1:]:
        if list(row) != keys:
            raise ValueError(f"rows have different columns: {keys} and {list(row)}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(keys)
    writer.writerows([[_cell(row[k]) for k in keys] for row in rows])
    return atomic_write_text(path, buf.getvalue())


def _short(x: float, digits: int = 3) -> str:
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}"


def format_table(settings: Sequence[SettingSummary]) -> str:
    """Plain-text table of settings: one line each, ``mean [min, max]`` over seeds.

    Held-out accuracy columns without any evaluation (fractions before the first epoch ends)
    are left out.

    Examples
    --------
    >>> import numpy as np
    >>> r = RunSummary("r0", ("p", "sgd", 0.1, None, None, None, 4), 0, None, (1.0,), (0.5,),
    ...                (0.9,), (4,), 1.0, 0.5, np.array([2.0, 1.0, 0.5, 0.5]))
    >>> print(format_table(summarize([r], target_loss=1.0)))
    optimizer  lr   eta_max  seeds  loss@100%       heldout_acc@100%  steps_to_target(1)  reached  attn_max
    sgd        0.1  -        1      0.5 [0.5, 0.5]  0.9 [0.9, 0.9]    2 [2, 2]            1/1      0.5 [0.5, 0.5]
    """
    if not settings:
        return "(no runs)"
    fractions = settings[0].fractions
    evaluated = [k for k in range(len(fractions))
                 if any(not math.isnan(s.heldout_acc[k].mean) for s in settings)]
    target = settings[0].target_loss
    head = ["optimizer", "lr", "eta_max"]
    extra = [k for k in ("sngd_cap", "sps_c") if any(s.setting.get(k) is not None
                                                     for s in settings)]
    head += extra + ["seeds"] + [f"loss@{_percent(f)}%" for f in fractions] + \
        [f"heldout_acc@{_percent(fractions[k])}%" for k in evaluated]
    if target is not None:
        head += [f"steps_to_target({_short(target)})", "reached"]
    head += ["attn_max"]

    def band(sp, digits=3):
        return f"{_short(sp.mean, digits)} [{_short(sp.min, digits)}, {_short(sp.max, digits)}]"

    lines = []
    for s in settings:
        cfg = s.setting
        seeds = f"{len(s.seeds)}" + (f" ({len(s.diverged)} diverged)" if s.diverged else "")
        cells = [cfg["optimizer"]] + ["-" if cfg.get(k) is None else f"{cfg[k]:g}"
                                      if isinstance(cfg[k], (int, float)) else str(cfg[k])
                                      for k in ["lr", "eta_max"] + extra]
        cells += [seeds] + [band(x) for x in s.loss] + [band(s.heldout_acc[k]) for k in evaluated]
        if target is not None:
            cells += [band(s.steps_to_target, 4), f"{s.target_reached}/{len(s.seeds)}"]
        cells += [band(s.attn_max)]
        lines.append(cells)
    widths = [max(len(r[k]) for r in [head] + lines) for k in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [head] + lines)
