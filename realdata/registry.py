"""The optimizers a run can use: one :class:`OptimizerSpec` per name, with its plot style.

Adding an optimizer is one :func:`register_optimizer` call (and its class in
:mod:`realdata.optim` if torch lacks it); training, the command line, ``config.json`` and the
figures pick it up from here. A spec says how to build the optimizer from the resolved
hyper-parameters, whether its ``step`` needs the mini-batch loss, which hyper-parameters it
uses (only those are recorded in ``config.json``; the others are written as null) and how the
figures draw it.

Examples
--------
>>> OPTIMIZER_REGISTRY["sngd"].hyper, OPTIMIZER_REGISTRY["sps"].needs_loss
(('lr', 'eta_max', 'sngd_cap'), True)
>>> run_label({"optimizer": "sps", "sps_c": 0.5})
'SPS (c=0.5)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .optim import SNGD, SPS

__all__ = ["HYPER_PARAMETERS", "OptimizerSpec", "OPTIMIZER_REGISTRY", "register_optimizer",
           "get_optimizer_spec", "optimizer_style", "run_label"]

# Every hyper-parameter a run records in config.json (null when its optimizer does not use it).
HYPER_PARAMETERS = ("lr", "eta_max", "sps_c", "sngd_cap")

_CAP_WORDS = {"step_size": "step-size cap", "none": "no cap", "step_length": "step-length cap"}


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build, log and draw one optimizer.

    Attributes
    ----------
    name : str
        Key used by ``train(optimizer=...)`` and ``--optimizer``.
    factory : callable
        ``factory(params, hyper) -> torch.optim.Optimizer`` with ``hyper`` a dict holding the
        resolved values of :data:`HYPER_PARAMETERS` (those the spec does not use are None).
    hyper : tuple of str
        The hyper-parameters it uses, a subset of :data:`HYPER_PARAMETERS`; ``"lr"`` among them
        means a learning rate is required (from the preset, ``default_lr`` or the caller).
    needs_loss : bool
        Whether ``step`` must receive ``loss=`` (the Polyak step does).
    label : str
        Legend name in figures.
    color : str or None
        Matplotlib colour of its curves.
    default_lr : float or None
        Learning rate used when the preset names none for this optimizer.
    """

    name: str
    factory: Callable[[list, dict], torch.optim.Optimizer]
    hyper: tuple = ("lr",)
    needs_loss: bool = False
    label: str = ""
    color: str | None = None
    default_lr: float | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"optimizer name must be a non-empty string, got {self.name!r}")
        if not callable(self.factory):
            raise TypeError(f"factory of {self.name!r} must be callable")
        unknown = set(self.hyper) - set(HYPER_PARAMETERS)
        if unknown:
            raise ValueError(f"optimizer {self.name!r}: unknown hyper-parameters "
                             f"{sorted(unknown)}; choose from {HYPER_PARAMETERS}")


OPTIMIZER_REGISTRY: dict[str, OptimizerSpec] = {}


def register_optimizer(spec: OptimizerSpec, *, replace: bool = False) -> OptimizerSpec:
    """Add ``spec`` to :data:`OPTIMIZER_REGISTRY` and return it.

    Raises
    ------
    TypeError
        If ``spec`` is not an :class:`OptimizerSpec`.
    ValueError
        If the name is taken and ``replace`` is False.
    """
    if not isinstance(spec, OptimizerSpec):
        raise TypeError(f"register an OptimizerSpec, not {type(spec).__name__}")
    if spec.name in OPTIMIZER_REGISTRY and not replace:
        raise ValueError(f"optimizer {spec.name!r} is already registered; pass replace=True")
    OPTIMIZER_REGISTRY[spec.name] = spec
    return spec


def get_optimizer_spec(name) -> OptimizerSpec:
    """The registered spec called ``name``.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If no optimizer of that name is registered.
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer must be a string, not {type(name).__name__}")
    if name not in OPTIMIZER_REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {tuple(OPTIMIZER_REGISTRY)}")
    return OPTIMIZER_REGISTRY[name]


def optimizer_style(name: str) -> dict:
    """``{"label": ..., "color": ...}`` of an optimizer (its name and no colour if unknown)."""
    spec = OPTIMIZER_REGISTRY.get(name)
    if spec is None:
        return {"label": name, "color": None}
    return {"label": spec.label or spec.name, "color": spec.color}


def run_label(config: dict) -> str:
    """Legend label of a run from its ``config.json``: the optimizer and its variant.

    SNGD names its cap (records written before the option existed used the step-size cap),
    SPS its constant ``c``; other optimizers their label alone.

    Parameters
    ----------
    config : dict
        A run's ``config.json`` (needs ``"optimizer"``).

    Returns
    -------
    str

    Examples
    --------
    >>> run_label({"optimizer": "sngd", "sngd_cap": "step_length"})
    'SNGD (step-length cap)'
    >>> run_label({"optimizer": "sngd"})
    'SNGD (step-size cap)'
    >>> run_label({"optimizer": "sgd"})
    'SGD'
    """
    name = config["optimizer"]
    label = optimizer_style(name)["label"]
    if name == "sngd":
        return f"{label} ({_CAP_WORDS.get(config.get('sngd_cap') or 'step_size')})"
    if name == "sps" and config.get("sps_c") is not None:
        return f"{label} (c={config['sps_c']:g})"
    return label


register_optimizer(OptimizerSpec(
    "sgd", lambda params, hp: torch.optim.SGD(params, lr=hp["lr"]),
    hyper=("lr",), label="SGD", color="tab:blue"))
register_optimizer(OptimizerSpec(
    "adam", lambda params, hp: torch.optim.Adam(params, lr=hp["lr"]),
    hyper=("lr",), label="Adam", color="tab:purple"))
register_optimizer(OptimizerSpec(
    "sngd", lambda params, hp: SNGD(params, lr=hp["lr"], eta_max=hp["eta_max"],
                                    cap=hp["sngd_cap"]),
    hyper=("lr", "eta_max", "sngd_cap"), label="SNGD", color="tab:orange"))
register_optimizer(OptimizerSpec(
    "sps", lambda params, hp: SPS(params, c=hp["sps_c"], eta_max=hp["eta_max"]),
    hyper=("eta_max", "sps_c"), needs_loss=True, label="SPS", color="tab:green"))
