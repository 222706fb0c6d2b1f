"""Model inputs from example indices: normalised image tensors or tokenised text on the device."""

from __future__ import annotations

import torch

from .data import DataBundle

__all__ = ["Batcher"]


class Batcher:
    """Turns index tensors of a split into ``(inputs, labels)`` for the model, on ``device``.

    Images are scaled to [0, 1] and standardised per channel with the training part's
    statistics; texts (or text pairs) are tokenised to at most ``max_seq_len`` tokens.

    Parameters
    ----------
    bundle : DataBundle
    device : torch.device
    tokenizer : transformers tokenizer or None
        Needed for text data.
    max_seq_len : int or None
        Token limit of text data.
    """

    def __init__(self, bundle: DataBundle, device: torch.device, tokenizer=None,
                 max_seq_len: int | None = None):
        self.bundle, self.device = bundle, device
        self.tokenizer, self.max_seq_len = tokenizer, max_seq_len
        if bundle.kind == "image":
            imgs = bundle.train.inputs
            # Per-channel statistics of the training part, accumulated in chunks (CIFAR is big).
            total = torch.zeros(imgs.shape[1], dtype=torch.float64)
            total_sq = torch.zeros_like(total)
            for chunk in imgs.split(10000):
                c = chunk.to(torch.float64) / 255.0
                total += c.sum(dim=(0, 2, 3))
                total_sq += (c * c).sum(dim=(0, 2, 3))
            count = imgs.shape[0] * imgs.shape[2] * imgs.shape[3]
            mean = total / count
            std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
            self.mean = mean.to(torch.float32).view(1, -1, 1, 1).to(device)
            self.std = std.to(torch.float32).view(1, -1, 1, 1).to(device)
            # uint8 images are small enough to live on the device (CIFAR-10: 150 MB).
            self.parts = {"train": bundle.train.inputs.to(device),
                          "heldout": bundle.heldout.inputs.to(device)}
        self.labels = {"train": bundle.train.labels.to(device),
                       "heldout": bundle.heldout.labels.to(device)}

    def __call__(self, part: str, index: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Inputs (keyword arguments of the model) and labels of examples ``index`` of ``part``."""
        labels = self.labels[part][index.to(self.labels[part].device)]
        if self.bundle.kind == "image":
            x = self.parts[part][index.to(self.device)].to(torch.float32).div_(255.0)
            return {"images": (x - self.mean) / self.std}, labels
        split = self.bundle.train if part == "train" else self.bundle.heldout
        items = [split.inputs[i] for i in index.tolist()]
        if self.bundle.pairs:
            enc = self.tokenizer([a for a, _ in items], [b for _, b in items], padding=True,
                                 truncation=True, max_length=self.max_seq_len, return_tensors="pt")
        else:
            enc = self.tokenizer(items, padding=True, truncation=True,
                                 max_length=self.max_seq_len, return_tensors="pt")
        inputs = {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask", "token_type_ids")
                  if k in enc}
        return inputs, labels
