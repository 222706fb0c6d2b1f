"""Images per second of the ViT training step against ``torch.nn.TransformerEncoder``.

Three models of the ``mnist-vit`` preset's size (patch 4, width 64, depth 2, 8 heads, MLP 128,
batch 100 of 28x28 images) take a training step (forward, cross-entropy, backward, SGD update)
in interleaved rounds in the same process, so machine load affects them alike:

* ``vit``: :class:`realdata.models.ViT` as training calls it (last attention map returned);
* ``eager``: the same ViT with softmax(q k^T / sqrt(d)) v written out at every layer (the
  implementation before fused attention), for the gain;
* ``encoder``: the same patch embedding, class token and head around a plain pre-norm
  ``nn.TransformerEncoder`` (no attention map), the reference to match.

Prints median images/s per model and the ratios against ``encoder``.

    python benchmarks/bench_vit.py --rounds 5 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from realdata.models import ViT
from realdata.train import PRESETS


class _EagerViT(ViT):
    """The ViT with eager attention at every layer (the map of each layer built with autograd)."""

    def forward(self, images, return_attention=False):
        x = self.patch(images).flatten(2).transpose(1, 2)
        x = self.drop(torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos)
        for block in self.blocks:
            a = block.attn
            h = block.norm1(x)
            b, n, d = h.shape
            q, k, v = a.qkv(h).reshape(b, n, 3, a.heads, d // a.heads).permute(2, 0, 3, 1, 4)
            attn = torch.softmax((q @ k.transpose(-2, -1)) * a.scale, dim=-1)
            x = x + a.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
            x = x + block.mlp(block.norm2(x))
        logits = self.head(self.norm(x[:, 0]))
        return (logits, attn) if return_attention else logits


class _EncoderViT(nn.Module):
    """Patch embedding, class token, ``nn.TransformerEncoder`` (pre-norm, GELU), linear head."""

    def __init__(self, embed_dim, depth, heads, mlp_dim, patch_size, image_size=28, classes=10):
        super().__init__()
        self.patch = nn.Conv2d(1, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos = nn.Parameter(torch.zeros(1, (image_size // patch_size) ** 2 + 1, embed_dim))
        layer = nn.TransformerEncoderLayer(embed_dim, heads, mlp_dim, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, classes)

    def forward(self, images, return_attention=False):
        x = self.patch(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        logits = self.head(self.norm(self.encoder(x)[:, 0]))
        return (logits, None) if return_attention else logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=PRESETS["mnist-vit"].batch_size)
    args = parser.parse_args()
    cfg = {k: v for k, v in PRESETS["mnist-vit"].model.items()}
    torch.manual_seed(0)
    models = {"vit": ViT(**cfg), "eager": _EagerViT(**cfg), "encoder": _EncoderViT(**cfg)}
    images = torch.randn(args.batch, 1, 28, 28)
    labels = torch.randint(0, 10, (args.batch,))
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01) for k, m in models.items()}

    def step(name):
        logits, _ = models[name](images, return_attention=True)
        opts[name].zero_grad(set_to_none=True)
        F.cross_entropy(logits, labels).backward()
        opts[name].step()

    rates = {k: [] for k in models}
    for name in models:  # warm-up (allocator, kernels)
        step(name)
    for _ in range(args.rounds):
        for name in models:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(name)
            rates[name].append(args.steps * args.batch / (time.perf_counter() - t0))
    ref = statistics.median(rates["encoder"])
    print(f"ViT training step, batch {args.batch}, {torch.get_num_threads()} thread(s), "
          f"{args.rounds} rounds of {args.steps} steps (median images/s)")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"{name:>8}: {med:8.0f} images/s   ratio to encoder {med / ref:5.2f}")


if __name__ == "__main__":
    main()
