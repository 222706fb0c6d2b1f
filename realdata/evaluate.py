"""Measurements of a model during training: attention statistics and held-out evaluation."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .batches import Batcher

__all__ = ["attention_stats", "evaluate"]


def attention_stats(attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy (nats) and largest weight of the class-token query row, mean over batch and heads.

    Parameters
    ----------
    attn : Tensor
        Attention map of shape (batch, heads, queries, keys); query 0 is the class token.

    Returns
    -------
    entropy, max_weight : Tensor
        0-d tensors.

    Examples
    --------
    >>> attn = torch.tensor([0.5, 0.5, 0.0]).expand(2, 1, 3, 3)
    >>> [round(float(v), 6) for v in attention_stats(attn)]
    [0.693147, 0.5]
    """
    p = attn[:, :, 0, :].detach().float()
    entropy = -torch.special.xlogy(p, p).sum(-1)
    return entropy.mean(), p.amax(-1).mean()


def evaluate(model: nn.Module, batcher: Batcher, index: torch.Tensor, batch_size: int, autocast,
             rank: int = 0, world: int = 1) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on the held-out examples ``index``.

    Each process evaluates its share (``index[rank::world]``) and the sums are reduced, so all
    processes return the same numbers. The model is left in training mode.

    Parameters
    ----------
    model : nn.Module
    batcher : Batcher
    index : Tensor
        Held-out example indices.
    batch_size : int
        Evaluation batch size.
    autocast : callable
        Returns the autocast context of the run.
    rank, world : int
        Process rank and count.

    Returns
    -------
    loss, accuracy : float
    """
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=batcher.device)
    with torch.no_grad():
        for chunk in index[rank::world].split(batch_size):
            inputs, labels = batcher("heldout", chunk)
            with autocast():
                logits = model(**inputs)
            logits = logits.float()
            sums[0] += F.cross_entropy(logits, labels, reduction="sum").double()
            sums[1] += (logits.argmax(-1) == labels).sum()
            sums[2] += len(labels)
    if world > 1:
        dist.all_reduce(sums)
    model.train()
    loss, correct, count = sums.tolist()
    return loss / count, correct / count
