"""Training runs of the real-data experiments: :func:`train` one run, :func:`compare` several.

The pieces live in their own modules: settings and presets in :mod:`realdata.config`, the
optimizers' registry in :mod:`realdata.registry`, the loop in :mod:`realdata.loop`, checkpoints
in :mod:`realdata.checkpoint`, the CSV records in :mod:`realdata.records`, held-out evaluation
in :mod:`realdata.evaluate`; their public names are re-exported here.

Output contract of one run (``RUN_DIR``), read by the figures code:

* ``config.json``: preset, optimizer and its hyper-parameters (``lr``, ``eta_max``, ``sps_c``,
  ``sngd_cap``; null when the optimizer does not use them), model, seed, device, world size,
  mixed precision, dataset provenance (``"dataset"``, ``"stand_in_for"``, sizes) and the
  definitions of the logged quantities;
* ``metrics.csv``: one row per optimizer step, columns :data:`METRIC_COLUMNS`
  ``step,epoch,loss,acc,step_size,grad_norm,attn_entropy,attn_max``:

  - ``step``: 1, 2, ...; ``epoch``: ``step / steps_per_epoch`` (epochs completed);
  - ``loss``, ``acc``: mean cross-entropy and accuracy of the mini-batch, before the update;
  - ``step_size``: the scalar multiplying the gradient (SNGD/SPS: as set by their cap;
    SGD: ``lr``; Adam: its base ``lr``, its per-coordinate scaling is not a scalar);
  - ``grad_norm``: global L2 norm of the mini-batch gradient over all trainable parameters;
  - ``attn_entropy``, ``attn_max``: attention of the class-token query ([CLS] for BERT) in the
    last layer, entropy (nats) and largest weight, averaged over the batch and the heads;

* ``eval.csv``: columns :data:`EVAL_COLUMNS` ``epoch,step,heldout_loss,heldout_acc``, after
  each epoch and after the last step;
* ``checkpoint.pt``: written atomically every ``checkpoint_every`` steps and at the end (a
  resumed run first removes the temporaries a killed writer left);
* ``result.json``: the :class:`RunResult` fields.

Under ``torchrun`` the global batch (the preset's batch size) is split evenly over the
processes, DistributedDataParallel averages the gradients before the optimizer step (so the
SNGD/SPS norm is that of the full-batch gradient), the logged loss, accuracy and attention
statistics are averaged over processes (SPS uses that global loss), and only rank 0 writes.

Every setting is checked before the run folder is created (:class:`RunConfig`,
:func:`realdata.config.plan_run`, building the model and the optimizer), so a bad value leaves
no folder behind.

Resuming (``resume=True``) reloads the checkpoint (model, optimizer state, every process's RNG
state, step), drops the CSV rows written after it and continues: the data order is a function
of the seed and the epoch only, so the records equal those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from theory.atomic import atomic_write_text

from .batches import Batcher
from .checkpoint import CHECKPOINT, RUN_FILES, remove_stale_files
from .config import PRESETS, Preset, RunConfig, RunPlan, load_preset_data, plan_run, resolve_device
from .data import DataBundle
from .loop import Session, restore_session, run_loop
from .models import build_model
from .records import EVAL_COLUMNS, METRIC_COLUMNS, format_value, read_metrics
from .registry import OPTIMIZER_REGISTRY, get_optimizer_spec

__all__ = ["Preset", "PRESETS", "OPTIMIZERS", "METRIC_COLUMNS", "EVAL_COLUMNS", "RunConfig",
           "RunResult", "load_preset_data", "train", "compare", "read_metrics",
           "SUMMARY_COLUMNS"]

# The optimizers built in (compare's default); train accepts any registered one.
OPTIMIZERS = tuple(OPTIMIZER_REGISTRY)
SUMMARY_COLUMNS = ("preset", "dataset", "stand_in_for", "optimizer", "seed", "steps", "lr",
                   "eta_max", "final_train_loss", "heldout_loss", "heldout_acc",
                   "mean_step_time_s", "diverged_at", "run_dir", "sngd_cap", "sps_c")
_DEFINITIONS = dict(
    step_size="scalar multiplying the gradient (SGD, Adam: base lr)",
    grad_norm="global L2 norm of the mini-batch gradient, all trainable parameters",
    attn_entropy="entropy (nats) of the last layer's class-token query attention, "
                 "mean over batch and heads",
    attn_max="largest weight of that attention row, mean over batch and heads",
    loss="mini-batch cross-entropy before the update (mean over the global batch)",
    epoch="step / steps_per_epoch")


@dataclass
class RunResult:
    """Summary of one run (also written to ``RUN_DIR/result.json``).

    Attributes
    ----------
    out_dir : str
    preset, optimizer : str
    seed, steps : int
    final_train_loss : float
        Mean mini-batch loss over the last 10 % of the steps (at least one step).
    heldout_loss, heldout_acc : float
        Last held-out evaluation.
    mean_step_time_s : float
        Mean wall time of a training step (forward, backward, update, logging).
    diverged_at : int or None
        First step whose loss was not finite (the run stops there), None otherwise.
    ddp_param_max_abs_diff : float or None
        Under DDP, the largest parameter difference between processes at the end (0 when in
        sync); None for a single process.
    """

    out_dir: str
    preset: str
    optimizer: str
    seed: int
    steps: int
    final_train_loss: float
    heldout_loss: float
    heldout_acc: float
    mean_step_time_s: float
    diverged_at: int | None = None
    ddp_param_max_abs_diff: float | None = None


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _as_config(preset, optimizer, out_dir, options: dict) -> RunConfig:
    if isinstance(preset, RunConfig):
        if optimizer is not None or out_dir is not None or options:
            raise TypeError("train(RunConfig) takes no further settings; use "
                            "dataclasses.replace(config, ...) to change one")
        return preset
    return RunConfig(preset, optimizer, out_dir, **options)


def _config_json(cfg: RunConfig, plan: RunPlan, bundle: DataBundle, model_info: dict,
                 dev: torch.device, world: int, use_amp: bool) -> dict:
    return dict(
        preset=cfg.preset, optimizer=cfg.optimizer, seed=cfg.seed, steps=plan.steps,
        **plan.hyper, batch_size=plan.batch_size, steps_per_epoch=plan.steps_per_epoch,
        max_seq_len=plan.max_seq_len, model_config=model_info, **bundle.describe(),
        heldout_examples=len(plan.eval_index), device=str(dev), world_size=world,
        amp="bf16" if use_amp else None, torch_version=torch.__version__,
        definitions=_DEFINITIONS)


def train(preset: str | RunConfig, optimizer: str | None = None,
          out_dir: str | os.PathLike | None = None, *,
          callback: Callable[[dict], None] | None = None, **settings) -> RunResult:
    """Train one preset with one optimizer and write the run folder (see the module docstring).

    Parameters
    ----------
    preset : str or RunConfig
        A key of :data:`PRESETS`, or a complete :class:`RunConfig` (then nothing else but
        ``callback``).
    optimizer : str
        A registered optimizer (``"sgd"``, ``"adam"``, ``"sngd"``, ``"sps"``, ...).
    out_dir : path
        Run folder; created if needed. A folder that already holds ``metrics.csv`` is refused
        unless ``resume`` is True.
    callback : callable or None
        Called after each logged step with the row as a dict (rank 0).
    **settings
        The other fields of :class:`RunConfig`: ``steps``, ``epochs``, ``seed``, ``device``,
        ``data``, ``progress``, ``resume``, ``checkpoint_every``, ``max_seq_len``, ``lr``,
        ``eta_max``, ``batch_size``, ``model_dir``, ``model_overrides``, ``eval_max``,
        ``amp``, ``sngd_cap``, ``sps_c``.

    Returns
    -------
    RunResult

    Raises
    ------
    TypeError, ValueError
        A bad setting (see :class:`RunConfig`), a batch size the processes do not divide, an
        existing run folder without ``resume``, or a checkpoint of a different run; raised
        before the run folder is created, except the last.
    FileNotFoundError
        Missing data.
    realdata.config.DeviceError
        ``device="cuda"`` without a CUDA device.
    """
    cfg = _as_config(preset, optimizer, out_dir, settings)
    rank, world = _dist_info()
    dev = resolve_device(cfg.device)
    out = Path(cfg.out_dir)
    if not cfg.resume and (out / "metrics.csv").exists():
        raise ValueError(f"{out} already holds a run (metrics.csv); pass resume=True "
                         "(--resume) to continue it or choose another folder")
    bundle = cfg.load_data()
    plan = plan_run(cfg, bundle, world)
    use_amp = cfg.amp and dev.type == "cuda" and torch.cuda.is_bf16_supported()
    torch.manual_seed(cfg.seed)
    vit_kwargs = {**cfg.spec.model, **(cfg.model_overrides or {})}
    model, tokenizer, model_info = build_model(cfg.spec.family, bundle, vit_kwargs, cfg.model_dir)
    model.to(dev).train()
    # Dropout draws from each process's own stream (saved in the checkpoint).
    torch.manual_seed(cfg.seed + 1_000_003 * (rank + 1))
    net = model if world == 1 else nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index] if dev.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_spec = get_optimizer_spec(cfg.optimizer)
    session = Session(
        cfg=cfg, plan=plan, config=_config_json(cfg, plan, bundle, model_info, dev, world, use_amp),
        out=out, device=dev, rank=rank, world=world, model=model, net=net,
        optimizer=opt_spec.factory(params, plan.hyper), params=params,
        batcher=Batcher(bundle, dev, tokenizer, plan.max_seq_len),
        autocast=(lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp
        else contextlib.nullcontext, needs_loss=opt_spec.needs_loss)

    # Every setting has been checked: only now does the run folder appear.
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_files(out)
    if world > 1:
        dist.barrier()  # rank 0 created the folder
    if cfg.resume and (out / CHECKPOINT).is_file():
        restore_session(session)
    elif rank == 0:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    if rank == 0:
        atomic_write_text(out / "config.json",
                          json.dumps(session.config, indent=2, default=str) + "\n")
    if world > 1:
        dist.barrier()
    run_loop(session, callback)
    return _finish(session)


def _finish(s: Session) -> RunResult:
    """Write ``result.json`` (rank 0) and return the result on every process."""
    param_diff = None
    if s.world > 1:
        flat = torch.cat([p.detach().reshape(-1).float() for p in s.model.parameters()])
        hi, lo = flat.clone(), flat.clone()
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        param_diff = float((hi - lo).max())
    result = None
    if s.rank == 0:
        result = _summarise(s.out, s.config, s.time_sum, s.time_count, s.diverged, param_diff)
        atomic_write_text(s.out / "result.json", json.dumps(asdict(result), indent=2) + "\n")
    if s.world > 1:
        holder = [result]
        dist.broadcast_object_list(holder, src=0)
        result = holder[0]
    return result


def _summarise(out: Path, config: dict, time_sum: float, time_count: int, diverged,
               param_diff) -> RunResult:
    m = read_metrics(out)
    e = read_metrics(out, "eval")
    n = len(m["loss"])
    tail = max(1, math.ceil(0.1 * n))
    return RunResult(
        out_dir=str(out), preset=config["preset"], optimizer=config["optimizer"],
        seed=config["seed"], steps=int(m["step"][-1]) if n else 0,
        final_train_loss=float(np.mean(m["loss"][-tail:])) if n else math.nan,
        heldout_loss=float(e["heldout_loss"][-1]) if len(e["step"]) else math.nan,
        heldout_acc=float(e["heldout_acc"][-1]) if len(e["step"]) else math.nan,
        mean_step_time_s=time_sum / time_count if time_count else math.nan,
        diverged_at=diverged, ddp_param_max_abs_diff=param_diff)


def _names(what: str, items) -> list:
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise TypeError(f"{what} must be a sequence, not {type(items).__name__} ({items!r})")
    items = list(items)
    if not items:
        raise ValueError(f"{what} must not be empty")
    if len(set(items)) != len(items):
        raise ValueError(f"{what} {items} repeat an entry")
    return items


def compare(preset: str, out_dir: str | os.PathLike, *, optimizers: Sequence[str] = OPTIMIZERS,
            seeds: Sequence[int] = (0,), data: str | os.PathLike | DataBundle | None = None,
            **settings) -> list[RunResult]:
    """Run several optimizers (and seeds) on one preset and write ``out_dir/summary.csv``.

    Runs go to ``out_dir/<optimizer>/`` with one seed, ``out_dir/<optimizer>-seed<k>/`` with
    several. Every run of one seed starts from the same initial model and sees the same batches.
    Every run's settings are checked before the first one starts.

    Parameters
    ----------
    preset : str
    out_dir : path
    optimizers : sequence of str, default the four built in
        Registered optimizer names.
    seeds : sequence of int, default (0,)
    data : path, DataBundle or None
        Loaded once and shared by the runs.
    **settings
        Further :class:`RunConfig` fields shared by the runs (``steps``, ``epochs``,
        ``device``, ``progress``, ``resume`` (which also skips finished runs),
        ``checkpoint_every``, ``model_overrides``, ``sngd_cap``, ``sps_c``, ...); a
        hyper-parameter an optimizer does not use is ignored for it.

    Returns
    -------
    list of RunResult
        In the order of ``seeds`` then ``optimizers``; ``summary.csv`` has one row per run,
        columns :data:`SUMMARY_COLUMNS`.

    Raises
    ------
    TypeError, ValueError, FileNotFoundError
        As :func:`train`, for any of the runs, before the first starts; also for an empty or
        repeated ``optimizers`` or ``seeds``.
    """
    optimizers, seeds = _names("optimizers", optimizers), _names("seeds", seeds)
    out = Path(out_dir)
    configs = [RunConfig(preset, name, out / (name if len(seeds) == 1 else f"{name}-seed{seed}"),
                         seed=seed, data=data, **settings)
               for seed in seeds for name in optimizers]
    bundle = configs[0].load_data()
    results, rows = [], []
    for cfg in configs:
        res = train(dataclasses.replace(cfg, data=bundle))
        results.append(res)
        run_dir = Path(cfg.out_dir)
        config = json.loads((run_dir / "config.json").read_text())
        rows.append([preset, config["dataset"], config["stand_in_for"] or "", cfg.optimizer,
                     cfg.seed, res.steps] +
                    ["" if config.get(k) is None else config[k] for k in ("lr", "eta_max")] +
                    [res.final_train_loss, res.heldout_loss, res.heldout_acc,
                     res.mean_step_time_s, "" if res.diverged_at is None else res.diverged_at,
                     run_dir.name] +
                    ["" if config.get(k) is None else config[k] for k in ("sngd_cap", "sps_c")])
    if _dist_info()[0] == 0:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows([[format_value(v) for v in row] for row in rows])
        atomic_write_text(out / "summary.csv", buf.getvalue())
    return results
