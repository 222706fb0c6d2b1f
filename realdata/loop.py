"""The training loop of one run: steps, records, evaluations, checkpoints.

A :class:`Session` holds what the loop needs (model, optimizer, batches, plan, counters);
:func:`train_step` does one optimizer step and returns its record, :func:`run_loop` repeats it
with logging, held-out evaluation and checkpointing, :func:`save_session` and
:func:`restore_session` move a session to and from its checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .batches import Batcher
from .checkpoint import CHECKPOINT, fingerprint, load_checkpoint, save_checkpoint
from .config import RunConfig, RunPlan
from .evaluate import attention_stats, evaluate
from .optim import GlobalStepOptimizer, global_grad_norm
from .records import EVAL_COLUMNS, METRIC_COLUMNS, CsvLog, truncate_records

__all__ = ["Session", "train_step", "run_loop", "save_session", "restore_session"]


@dataclass
class Session:
    """A run in progress.

    Attributes
    ----------
    cfg : RunConfig
    plan : RunPlan
    config : dict
        The run's ``config.json``.
    out : Path
        Run folder.
    device : torch.device
    rank, world : int
        Process rank and count.
    model : nn.Module
        The model; ``net`` is the same model or its DistributedDataParallel wrapper.
    net : nn.Module
    optimizer : torch.optim.Optimizer
    params : list of Tensor
        Trainable parameters.
    batcher : Batcher
    autocast : callable
        Returns the autocast context of the run (a null context on the CPU).
    needs_loss : bool
        Whether ``optimizer.step`` takes ``loss=``.
    step, time_sum, time_count, diverged
        Counters: steps done, summed and counted step wall times, first non-finite step.
    """

    cfg: RunConfig
    plan: RunPlan
    config: dict
    out: Path
    device: torch.device
    rank: int
    world: int
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    params: list
    batcher: Batcher
    autocast: Callable
    needs_loss: bool
    step: int = 0
    time_sum: float = 0.0
    time_count: int = 0
    diverged: int | None = None


def _batch_index(s: Session, perm: torch.Tensor) -> torch.Tensor:
    pos = s.step % s.plan.steps_per_epoch
    lo = pos * s.plan.batch_size + s.rank * s.plan.local_batch
    return perm[lo: lo + s.plan.local_batch]


def train_step(s: Session, index: torch.Tensor) -> list[float]:
    """One optimizer step on the training examples ``index``.

    Returns
    -------
    list of float
        ``loss, acc, step_size, grad_norm, attn_entropy, attn_max`` (see
        :data:`realdata.records.METRIC_COLUMNS`), averaged over processes.
    """
    inputs, labels = s.batcher("train", index)
    with s.autocast():
        logits, attn = s.net(**inputs, return_attention=True)
        loss = F.cross_entropy(logits.float(), labels)
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    ent, amax = attention_stats(attn)
    stats = torch.stack([loss.detach(), (logits.argmax(-1) == labels).float().mean(), ent, amax])
    if s.world > 1:
        dist.all_reduce(stats)
        stats /= s.world
    recorded = isinstance(s.optimizer, GlobalStepOptimizer)  # SNGD, SPS: norm and size kept
    if not recorded:
        gnorm = global_grad_norm(s.params)
    if s.needs_loss:
        s.optimizer.step(loss=stats[0])
    else:
        s.optimizer.step()
    if recorded:
        state = s.optimizer.state["global"]
        size, gnorm = state["step_sizes"][0], state["grad_norm"]
    else:  # the base learning rate (Adam's per-coordinate scaling is not a scalar)
        size = torch.tensor(float(s.optimizer.param_groups[0].get("lr", math.nan)))
    return torch.stack([stats[0], stats[1], size.to(stats), gnorm.to(stats), stats[2],
                        stats[3]]).tolist()


def run_loop(s: Session, callback: Callable[[dict], None] | None = None) -> None:
    """Train from ``s.step`` to ``s.plan.steps`` (or the first non-finite loss).

    Appends to ``metrics.csv`` every step and to ``eval.csv`` after each epoch and the last
    step; writes a checkpoint every ``checkpoint_every`` steps and at the end. ``callback``
    gets each row as a dict (rank 0).
    """
    from tqdm.auto import tqdm

    plan, cfg = s.plan, s.cfg
    metrics = CsvLog(s.out / "metrics.csv", METRIC_COLUMNS, s.rank == 0)
    evals = CsvLog(s.out / "eval.csv", EVAL_COLUMNS, s.rank == 0)
    bar = tqdm(total=plan.steps, initial=min(s.step, plan.steps),
               disable=not cfg.progress or s.rank != 0, dynamic_ncols=True,
               desc=f"{cfg.preset}/{cfg.optimizer} seed {cfg.seed}")
    eval_batch = 1000 if s.cfg.spec.family == "vit" else 64
    perm_epoch, perm = None, None
    try:
        while s.step < plan.steps and s.diverged is None:
            epoch = s.step // plan.steps_per_epoch
            if perm_epoch != epoch:  # the data order is a function of seed and epoch only
                gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
                perm, perm_epoch = torch.randperm(len(s.batcher.bundle.train), generator=gen), epoch
            t0 = time.perf_counter()
            record = train_step(s, _batch_index(s, perm))
            elapsed = time.perf_counter() - t0
            s.step += 1
            s.time_sum, s.time_count = s.time_sum + elapsed, s.time_count + 1
            row = [s.step, round(s.step / plan.steps_per_epoch, 6)] + record
            metrics.write(row)
            if not math.isfinite(record[0]):
                s.diverged = s.step
            if callback is not None and s.rank == 0:
                callback(dict(zip(METRIC_COLUMNS, row)))
            last = s.step == plan.steps or s.diverged is not None
            if s.step % plan.steps_per_epoch == 0 or last:
                loss, acc = evaluate(s.model, s.batcher, plan.eval_index, eval_batch, s.autocast,
                                     s.rank, s.world)
                evals.write([round(s.step / plan.steps_per_epoch, 6), s.step, loss, acc])
            if s.step % cfg.checkpoint_every == 0 or last:
                save_session(s)
            bar.update(1)
            if s.step % 10 == 0 or s.step == plan.steps:
                bar.set_postfix(loss=f"{record[0]:.4f}")
    finally:
        bar.close()
        metrics.close()
        evals.close()


def save_session(s: Session) -> None:
    """Write the checkpoint (rank 0) with every process's RNG state."""
    rng = {"cpu": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state(s.device) if s.device.type == "cuda" else None}
    rngs = [rng]
    if s.world > 1:
        rngs = [None] * s.world
        dist.all_gather_object(rngs, rng)
    if s.rank == 0:
        save_checkpoint(s.out / CHECKPOINT, dict(
            step=s.step, model=s.model.state_dict(), optimizer=s.optimizer.state_dict(), rng=rngs,
            fingerprint=fingerprint(s.config), time_sum=s.time_sum, time_count=s.time_count,
            diverged_at=s.diverged))


def restore_session(s: Session) -> None:
    """Load the checkpoint into ``s`` and drop the records written after it (rank 0).

    Raises
    ------
    ValueError
        If the checkpoint belongs to a run with other settings.
    """
    ckpt = load_checkpoint(s.out / CHECKPOINT, s.config)
    s.model.load_state_dict(ckpt["model"])
    s.optimizer.load_state_dict(ckpt["optimizer"])
    rng = ckpt["rng"][s.rank]
    torch.set_rng_state(rng["cpu"])
    if s.device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], s.device)
    s.step, s.time_sum, s.time_count = ckpt["step"], ckpt["time_sum"], ckpt["time_count"]
    s.diverged = ckpt.get("diverged_at")
    if s.rank == 0:
        truncate_records(s.out, s.step)
