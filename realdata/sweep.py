"""Step-size sweeps: each optimizer over a grid of step sizes, its best setting, a table.

``sweep`` trains every optimizer at every grid point (``lr`` for SGD, Adam and SNGD, ``eta_max``
for SNGD and SPS) and seed into ``out_dir/<optimizer>/<point>-seed<k>/`` (``<point>`` is
``lr<lr>``, ``lr<lr>-eta<eta_max>`` or ``eta<eta_max>``), reusing finished runs so that a
sweep interrupted or extended later resumes. Each optimizer's best grid point is the one with
the lowest mean final training loss over the seeds (a diverged seed counts as ``inf``). The
comparison of the best points is the fair one: the paper's fixed step sizes are what
:func:`realdata.compare` runs (docs/theory.md §4).

Outputs: ``out_dir/sweep_all.csv`` (every grid point) and ``out_dir/sweep_table.csv`` (the
best point per optimizer), with the columns of :func:`realdata.summary.summary_columns`; the
target loss of ``steps_to_target`` defaults to the highest of the best points' final losses, so
it is a level every optimizer reaches at its best.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from .summary import (default_target, format_table, summarize, summarize_run,
                      summary_columns, write_summary)
from .train import OPTIMIZERS, PRESETS, load_preset_data, train

__all__ = ["SweepResult", "default_grid", "sweep", "add_parser"]

# Which step sizes each optimizer has (SPS's step is set by the loss; it has no lr).
USES_LR = {"sgd": True, "adam": True, "sngd": True, "sps": False}
USES_ETA_MAX = {"sgd": False, "adam": False, "sngd": True, "sps": True}
# Default grids, as multiples of the preset's value: half-decades around the paper's lr for
# SGD and Adam; for SNGD, whose paper step length is far below SGD's, upwards only.
LR_FACTORS = {"sgd": (0.1, 0.316, 1.0, 3.16, 10.0), "adam": (0.1, 0.316, 1.0, 3.16, 10.0),
              "sngd": (1.0, 10.0, 100.0)}
ETA_MAX_FACTORS = (1.0, 10.0, 100.0)


@dataclass
class SweepResult:
    """What a sweep found.

    Attributes
    ----------
    best : dict
        Optimizer to the :class:`~realdata.summary.SettingSummary` of its best grid point.
    grid : list of SettingSummary
        Every grid point, in the order run.
    target_loss : float or None
        Level of ``steps_to_target`` (None when every best point diverged).
    table_path, all_path : Path
        ``sweep_table.csv`` and ``sweep_all.csv``.
    trained, reused : int
        Runs trained (or finished) by this call, and finished runs found and reused.
    missing : list of str
        Runs of the grid left out because unfinished (``train_missing=False`` only).
    """

    best: dict
    grid: list
    target_loss: float | None
    table_path: Path
    all_path: Path
    trained: int
    reused: int
    missing: list = field(default_factory=list)


def _nice(x: float) -> float:
    return float(f"{x:.3g}")


def default_grid(preset: str, optimizer: str) -> tuple[tuple, tuple]:
    """Default ``(lrs, eta_maxs)`` grids of ``optimizer`` on ``preset``.

    An empty tuple means the optimizer has no such step size (it is recorded as None).

    Examples
    --------
    >>> default_grid("mnist-vit", "sngd")
    ((0.001, 0.01, 0.1), (0.01, 0.1, 1.0))
    >>> default_grid("mnist-vit", "sps")
    ((), (0.01, 0.1, 1.0))
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    spec = PRESETS[preset]
    lrs = tuple(_nice(spec.lr[optimizer] * f) for f in LR_FACTORS[optimizer]) \
        if USES_LR[optimizer] else ()
    etas = tuple(_nice(spec.eta_max * f) for f in ETA_MAX_FACTORS) \
        if USES_ETA_MAX[optimizer] else ()
    return lrs, etas


def _grid_for(name: str, given, optimizer: str, default: tuple, used: bool) -> tuple:
    """The grid of one optimizer from a user value: None, a sequence, or a dict by optimizer."""
    if not used:
        return ()
    if given is None:
        values = default
    elif isinstance(given, Mapping):
        values = given.get(optimizer, default)
    else:
        values = given
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} grid of {optimizer} is empty")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                math.isfinite(v) and v > 0):
            raise ValueError(f"{name} values must be positive finite numbers; {optimizer} got "
                             f"{v!r}")
    return tuple(float(v) for v in values)


def _point_name(lr: float | None, eta_max: float | None, seed: int) -> str:
    parts = ([f"lr{lr:g}"] if lr is not None else []) + \
        ([f"eta{eta_max:g}"] if eta_max is not None else [])
    return "-".join(parts + [f"seed{seed}"])


# Options recorded in config.json that only one optimizer has.
_OWN_OPTION = {"sngd_cap": "sngd", "sps_c": "sps"}


def _wanted(preset, optimizer, lr, eta_max, seed, steps, train_kwargs) -> dict:
    """The config.json entries a reusable run of this grid point must have."""
    want = dict(preset=preset, optimizer=optimizer, seed=seed, lr=lr, eta_max=eta_max)
    if steps is not None:
        want["steps"] = steps
    if train_kwargs.get("batch_size") is not None:
        want["batch_size"] = train_kwargs["batch_size"]
    want.update({k: train_kwargs[k] for k, owner in _OWN_OPTION.items()
                 if k in train_kwargs and optimizer == owner})
    want.update({f"model_config.{k}": v
                 for k, v in (train_kwargs.get("model_overrides") or {}).items()})
    return want


def _check_reusable(run_dir: Path, want: dict) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    config.update({f"model_config.{k}": v for k, v in config.get("model_config", {}).items()})
    # A key the record lacks (an older trainer's) cannot be checked; it is taken as matching.
    diff = {k: (config.get(k), v) for k, v in want.items() if config.get(k, v) != v}
    if diff:
        raise ValueError(f"{run_dir} holds a finished run of other settings (found, wanted): "
                         f"{diff}; remove it or choose another output folder")


def sweep(preset: str, out_dir, *, optimizers: Sequence[str] = ("sgd", "sngd", "sps", "adam"),
          lrs=None, eta_maxs=None, seeds: Sequence[int] = (0, 1), steps: int | None = None,
          epochs: float | None = None, target_loss: float | None = None, data=None,
          progress: bool = False, echo: bool = True, train_missing: bool = True,
          **train_kwargs) -> SweepResult:
    """Run each optimizer over a step-size grid and seeds; tabulate each one's best point.

    Parameters
    ----------
    preset : str
        A key of :data:`realdata.PRESETS`.
    out_dir : path
        Sweep folder (created); finished runs already in it are reused.
    optimizers : sequence of str, default ("sgd", "sngd", "sps", "adam")
    lrs, eta_maxs : None, sequence of float, or dict of optimizer to sequence
        Step-size grids; None: :func:`default_grid`; a sequence: the same grid for every
        optimizer that has that step size; a dict: per optimizer (others take the default).
    seeds : sequence of int, default (0, 1)
    steps, epochs : optional
        Run length, as in :func:`realdata.train` (default: the preset's).
    target_loss : float or None
        Level of ``steps_to_target``; default :func:`realdata.summary.default_target` of the
        best points.
    data : path, DataBundle or None
        The preset's data, as in :func:`realdata.train`.
    progress : bool, default False
        Per-run progress bars.
    echo : bool, default True
        Print one line per run and the final table.
    train_missing : bool, default True
        False: train nothing, tabulate the finished runs of the grid (an unfinished sweep's
        table so far); the missing ones are listed in ``SweepResult.missing``.
    **train_kwargs
        Further :func:`realdata.train` keywords, the same for every run (``device``,
        ``eval_max``, ``batch_size``, ``model_overrides``, ``sngd_cap``, ``sps_c``, ...).

    Returns
    -------
    SweepResult

    Raises
    ------
    ValueError
        Unknown preset or optimizer, empty seeds or grid, a non-positive step size, both steps
        and epochs, a finished run in the way whose settings differ, or (``train_missing``
        False) no finished run at all.
    FileNotFoundError
        Missing data.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if isinstance(optimizers, str) or not optimizers:
        raise ValueError(f"optimizers must be a non-empty sequence of names, got {optimizers!r}")
    for name in optimizers:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS}")
    if len(set(optimizers)) != len(optimizers):
        raise ValueError(f"optimizers repeat a name: {list(optimizers)}")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must be distinct integers, got {seeds!r}")
    seeds = [int(s) for s in seeds]
    if steps is not None and epochs is not None:
        raise ValueError("give steps or epochs, not both")
    for key in ("lr", "eta_max", "seed", "resume"):
        if key in train_kwargs:
            raise ValueError(f"{key!r} is set by the sweep; use lrs/eta_maxs/seeds instead")
    grids = {}
    for name in optimizers:
        lr_default, eta_default = default_grid(preset, name)
        grids[name] = (_grid_for("lrs", lrs, name, lr_default, USES_LR[name]) or (None,),
                       _grid_for("eta_maxs", eta_maxs, name, eta_default, USES_ETA_MAX[name])
                       or (None,))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    bundle = None  # loaded at the first run to train: a fully reused sweep needs no data
    trained = reused = 0
    run_dirs: dict[str, list[Path]] = {}
    missing: list[str] = []
    for name in optimizers:
        for lr in grids[name][0]:
            for eta in grids[name][1]:
                for seed in seeds:
                    run_dir = out / name / _point_name(lr, eta, seed)
                    if (run_dir / "result.json").is_file():
                        _check_reusable(run_dir, _wanted(preset, name, lr, eta, seed, steps,
                                                         train_kwargs))
                        reused += 1
                        status = "reused"
                    elif not train_missing:
                        missing.append(f"{name}/{run_dir.name}")
                        continue
                    else:  # resume=True also finishes an interrupted run
                        if bundle is None:
                            bundle = data if not (data is None or isinstance(
                                data, (str, os.PathLike))) else load_preset_data(preset, data)
                        res = train(preset, name, run_dir, steps=steps, epochs=epochs, seed=seed,
                                    lr=lr, eta_max=eta, data=bundle, progress=progress,
                                    resume=True, **train_kwargs)
                        trained += 1
                        status = "diverged" if res.diverged_at is not None else "trained"
                    if echo:
                        print(f"[{trained + reused}] {name}/{run_dir.name}: {status}", flush=True)
                    run_dirs.setdefault(name, []).append(run_dir)
    if not run_dirs:
        raise ValueError(f"no finished run of this grid under {out}; drop tabulate-only to "
                         "train it")
    if missing and echo:
        print(f"not finished, left out of the tables ({len(missing)}): {', '.join(missing)}")
    optimizers = [name for name in optimizers if name in run_dirs]
    result = _tabulate(out, optimizers, run_dirs, target_loss, trained, reused, echo)
    result.missing = missing
    return result


def _tabulate(out: Path, optimizers, run_dirs, target_loss, trained, reused, echo) -> SweepResult:
    runs = {name: [summarize_run(d, out) for d in run_dirs[name]] for name in optimizers}
    chosen = {name: min(summarize(runs[name]), key=lambda s: s.final_loss).setting
              for name in optimizers}
    target = target_loss
    grid = summarize([r for name in optimizers for r in runs[name]], target)
    if target is None:  # the least any optimizer's best point reaches
        target = default_target([s for s in grid if s.setting in chosen.values()])
        grid = summarize([r for name in optimizers for r in runs[name]], target)
    best = {name: next(s for s in grid if s.setting == chosen[name]) for name in optimizers}
    all_path = write_summary(out / "sweep_all.csv", [
        {**summary_columns(s), "best": s.setting in chosen.values()} for s in grid])
    table_rows = []
    for name in optimizers:
        points = [s for s in grid if s.setting["optimizer"] == name]
        table_rows.append({**summary_columns(best[name]), "grid_points": len(points),
                           "diverged_points": sum(bool(s.diverged) for s in points)})
    table_path = write_summary(out / "sweep_table.csv", table_rows)
    if echo:
        print(f"best point per optimizer (lowest mean final training loss over seeds); "
              f"{trained} run(s) trained, {reused} reused")
        print(format_table([best[name] for name in optimizers]))
    return SweepResult(best=best, grid=grid, target_loss=target, table_path=table_path,
                       all_path=all_path, trained=trained, reused=reused)


# --------------------------------------------------------------------------- command line
def _grid_arg(tokens: Sequence[str] | None, option: str):
    """``0.1 0.3`` (every optimizer) or ``sgd=0.1,0.3 adam=1e-3`` (per optimizer)."""
    if tokens is None:
        return None
    shared, per = [], {}
    for token in tokens:
        name, sep, values = token.rpartition("=")
        try:
            numbers = [float(v) for v in values.split(",")]
        except ValueError:
            raise ValueError(f"{option}: {token!r} is not a number, a comma-separated list, or "
                             "OPTIMIZER=V1,V2") from None
        if not sep:
            shared += numbers
        elif name in OPTIMIZERS:
            per.setdefault(name, []).extend(numbers)
        else:
            raise ValueError(f"{option}: unknown optimizer {name!r} in {token!r}; choose from "
                             f"{OPTIMIZERS}")
    if shared and per:
        raise ValueError(f"{option}: give one grid for all optimizers or OPTIMIZER=... grids, "
                         "not both")
    return per or shared


def _run(args) -> int:
    try:
        if args.eval_max is not None and args.eval_max < 1:
            raise ValueError(f"--eval-max must be >= 1, got {args.eval_max}")
        overrides = {k: v for k, v in (("embed_dim", args.embed_dim), ("depth", args.depth))
                     if v is not None}
        extra = {k: v for k, v in (("sngd_cap", args.sngd_cap), ("sps_c", args.sps_c),
                                   ("batch_size", args.batch_size),
                                   ("max_seq_len", args.max_seq_len), ("eval_max", args.eval_max))
                 if v is not None}
        if overrides:
            extra["model_overrides"] = overrides
        sweep(args.preset, args.out, optimizers=args.optimizers,
              lrs=_grid_arg(args.lrs, "--lrs"), eta_maxs=_grid_arg(args.eta_maxs, "--eta-maxs"),
              seeds=args.seeds, steps=args.steps, epochs=args.epochs,
              target_loss=args.target_loss, data=args.data, device=args.device,
              progress=not args.no_progress, train_missing=not args.tabulate_only, **extra)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to an ``argparse`` subparsers object; return its parser.

    The parser's ``func`` default takes the parsed arguments and returns the exit status
    (0, or 2 after one ``error:`` line on stderr).

    Examples
    --------
    >>> root = argparse.ArgumentParser(prog="python -m realdata")
    >>> p = add_parser(root.add_subparsers(dest="command"))
    >>> args = root.parse_args(["sweep", "--preset", "mnist-vit", "-o", "out"])
    >>> args.optimizers, args.seeds, args.func is _run
    (['sgd', 'sngd', 'sps', 'adam'], [0, 1], True)
    """
    p = subparsers.add_parser(
        "sweep", help="tune step sizes: each optimizer over a grid, its best point, a table",
        description="Train each optimizer over a grid of step sizes (lr for SGD, Adam and "
                    "SNGD; eta_max for SNGD and SPS) and seeds, pick each one's best point by "
                    "mean final training loss over the seeds, and write OUT/sweep_table.csv "
                    "(best point per optimizer: loss and held-out accuracy at 25/50/100 % of "
                    "the steps, steps to a target loss, attention sparsity, min-max over "
                    "seeds) and OUT/sweep_all.csv (every grid point). Runs go to "
                    "OUT/OPTIMIZER/POINT-seedK/; finished ones are reused, so rerunning resumes.")
    p.add_argument("--preset", required=True, choices=sorted(PRESETS), metavar="PRESET",
                   help=f"experiment preset, one of {', '.join(sorted(PRESETS))}")
    p.add_argument("--optimizers", nargs="+", default=["sgd", "sngd", "sps", "adam"],
                   choices=OPTIMIZERS, metavar="OPTIMIZER",
                   help=f"optimizers to tune, of {', '.join(OPTIMIZERS)} (default: sgd sngd sps "
                        "adam)")
    p.add_argument("--lrs", nargs="+", default=None, metavar="LR",
                   help="lr grid: numbers for every optimizer with an lr, or OPTIMIZER=V1,V2 "
                        "per optimizer (default: half-decades around the preset's lr; SNGD: "
                        "1, 10, 100 times it)")
    p.add_argument("--eta-maxs", nargs="+", default=None, metavar="ETA",
                   help="eta_max grid of SNGD and SPS, same forms as --lrs (default: 1, 10, 100 "
                        "times the preset's eta_max)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1],
                   help="seeds of every point (default: 0 1)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, default=None,
                        help="optimizer steps per run (default: the preset's epochs)")
    length.add_argument("--epochs", type=_positive_float, default=None, help="epochs per run")
    p.add_argument("--target-loss", type=_positive_float, default=None,
                   help="training-loss level of steps_to_target (default: the highest final "
                        "loss among the best points)")
    p.add_argument("--sngd-cap", default=None,
                   help="SNGD variant passed to training (step_size, none, step_length; "
                        "default: the trainer's)")
    p.add_argument("--sps-c", type=_positive_float, default=None,
                   help="SPS constant c (default: the preset's)")
    p.add_argument("--data", default=None,
                   help="dataset path (default: the preset's embedded data)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="device (default: auto, CUDA when available)")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="global batch size (default: the preset's)")
    p.add_argument("--max-seq-len", type=_positive_int, default=None,
                   help="BERT token limit (default: the preset's)")
    p.add_argument("--embed-dim", type=_positive_int, default=None,
                   help="ViT width (default: the preset's)")
    p.add_argument("--depth", type=_positive_int, default=None,
                   help="ViT depth (default: the preset's)")
    p.add_argument("--eval-max", type=_positive_int, default=None,
                   help="held-out examples to evaluate (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no per-run progress bars")
    p.add_argument("--tabulate-only", action="store_true",
                   help="train nothing: write the tables of the grid's finished runs so far")
    p.add_argument("-o", "--out", required=True, help="sweep folder")
    p.set_defaults(func=_run)
    return p
