"""Settings of a simulated run: :class:`RunOptions`, and :class:`RunFailure` for a failed one.

The options are validated when the object is built, so a bad setting fails at once with a
message naming it, before any problem is touched or anything is compiled.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np

from theory import LOSSES

from ._kernels import RULES

__all__ = ["RunOptions", "RunFailure", "METHODS", "PARAMS", "NORMALIZE", "DEFAULT_LR",
           "DEFAULT_BETA", "STORE_LIMIT_BYTES"]

#: update rules (docs/theory.md §3; the registry ``sims._kernels.RULES``)
METHODS = tuple(RULES)
PARAMS = ("W", "kq", "joint")
NORMALIZE = ("global", "block")
#: default step sizes; ``None``: a multiplier of the rule's own step (default 1, Polyak)
DEFAULT_LR = {name: rule.default_lr for name, rule in RULES.items()}
#: default momentum of ``"ngd_momentum"``
DEFAULT_BETA = 0.9
#: with ``store_params=None`` a run keeps its iterates when they take at most this many bytes
STORE_LIMIT_BYTES = 1 << 20


def _choice(name, value, options):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {tuple(options)}; got "
                        f"{type(value).__name__} {value!r}")
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {tuple(options)}")
    return value


def _real(name, value):
    """``value`` as a float, refusing bools, strings, complex numbers and other objects."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_lr(lr):
    """A step size as a finite positive float.

    Raises
    ------
    TypeError
        For a bool, string, complex number or other non-real object.
    ValueError
        For NaN, an infinity, zero or a negative number.

    Examples
    --------
    >>> check_lr(0.5)
    0.5
    >>> check_lr(True)
    Traceback (most recent call last):
    ...
    TypeError: lr must be a real number, got bool True
    """
    val = _real("lr", lr)
    if not (math.isfinite(val) and val > 0):
        raise ValueError(f"lr must be a finite positive number, got {lr!r}")
    return val


def check_count(name, value, minimum=0):
    """An integer ``>= minimum`` (bools and floats such as 2.5 or 3.0 are refused).

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is below ``minimum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_record(record):
    if isinstance(record, str):
        if record not in ("log", "all"):
            raise ValueError(f"record must be 'log', 'all', an int or an array, got {record!r}")
    elif isinstance(record, (bool, np.bool_)):
        raise TypeError(f"record must be 'log', 'all', an int or an array, got {record!r}")
    elif isinstance(record, (int, np.integer)):
        if record < 1:
            raise ValueError(f"record every k steps needs k >= 1, got {record}")
    else:
        try:
            arr = np.asarray(record)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError("an explicit record schedule must be a 1-d array of integers, got "
                            f"{type(record).__name__}")


@dataclass(frozen=True)
class RunOptions:
    """How to run one trajectory (everything but the data and the initial state).

    Parameters
    ----------
    method : {"gd", "ngd", "polyak", "ngd_momentum"}, default "ngd"
        Update rule (docs/theory.md §3; :mod:`sims.dynamics`).
    lr : float, optional
        Step size; ``None`` means :data:`DEFAULT_LR` (for ``"polyak"`` a multiplier of
        the Polyak step, default 1).
    param : {"W", "kq", "joint"}, default "W"
        Train W, W = K Q^T through (K, Q), or (u, W) jointly.
    loss : {"logistic", "exp"}, default "logistic"
    normalize : {"global", "block"}, default "global"
        Normalise NGD / Polyak / momentum NGD by the whole gradient or per block.
    record : {"log", "all"}, int or array_like of int, default "log"
        Recording schedule, see :func:`sims.record_schedule`.
    num_records : int, default 200
        Target number of records for ``record="log"``.
    beta : float, default 0.9
        Momentum of ``"ngd_momentum"``, in ``[0, 1)`` (ignored by the other rules).
    seed : int, default 0
        Seed of the default random (K0, Q0) of ``param="kq"``.
    store_params : bool, optional
        Keep W (and u) at every recorded iteration (``Trajectory.W_hist``). ``None``:
        when they take at most :data:`STORE_LIMIT_BYTES` per run.

    Raises
    ------
    TypeError, ValueError
        For a setting of the wrong type or out of range; the message names it.

    Examples
    --------
    >>> opts = RunOptions("gd", lr=0.5, record=10)
    >>> opts.effective_lr, opts.replace(method="ngd", lr=None).effective_lr
    (0.5, 0.1)
    >>> RunOptions("ngd", lr="0.1")
    Traceback (most recent call last):
    ...
    TypeError: lr must be a real number, got str '0.1'
    """

    method: str = "ngd"
    lr: float | None = None
    param: str = "W"
    loss: str = "logistic"
    normalize: str = "global"
    record: object = "log"
    num_records: int = 200
    beta: float = DEFAULT_BETA
    seed: int = 0
    store_params: bool | None = None

    def __post_init__(self):
        _choice("method", self.method, METHODS)
        if self.lr is not None:
            check_lr(self.lr)
        _choice("param", self.param, PARAMS)
        _choice("loss", self.loss, LOSSES)
        _choice("normalize", self.normalize, NORMALIZE)
        _check_record(self.record)
        check_count("num_records", self.num_records, 2)
        beta = _real("beta", self.beta)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must lie in [0, 1), got {self.beta!r}")
        check_count("seed", self.seed)
        if self.store_params is not None and not isinstance(self.store_params, (bool, np.bool_)):
            raise TypeError(f"store_params must be True, False or None, got {self.store_params!r}")

    @property
    def effective_lr(self) -> float:
        """The step size used: ``lr``, or the method's default."""
        if self.lr is None:
            default = DEFAULT_LR[self.method]
            return 1.0 if default is None else default
        return check_lr(self.lr)

    def replace(self, **changes) -> "RunOptions":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RunFailure:
    """A run of :func:`sims.run_many` that did not finish (``on_error="return"``).

    Attributes
    ----------
    problem_index : int
        Index of the run's problem in the ``problems`` given.
    method : str
    lr : float or None
        The step size asked for (``None``: the method's default).
    error : Exception
        What went wrong, e.g. a ``FloatingPointError`` naming the iteration.
    """

    problem_index: int
    method: str
    lr: float | None
    error: Exception

    def __str__(self) -> str:
        return (f"run of problem {self.problem_index} with {self.method} (lr={self.lr}) failed: "
                f"{type(self.error).__name__}: {self.error}")
