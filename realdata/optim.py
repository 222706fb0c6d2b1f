"""Stochastic normalised GD (SNGD) and the stochastic Polyak step (SPS_max) as torch optimizers.

Both rules (docs/theory.md §4) scale the whole mini-batch gradient ``g`` by one scalar step size
computed from the *global* L2 norm of ``g`` over every parameter of every parameter group:

* SNGD: ``theta <- theta - s * g`` with ``s`` set by the ``cap`` option (the placement of
  ``eta_max`` is a reconstruction: the paper states the value, not the formula):

  - ``"step_size"`` (default): ``s = min(lr / ||g||, eta_max)``, a cap on the scalar
    multiplying ``g``; the displacement has length ``min(lr, eta_max * ||g||)``;
  - ``"none"``: ``s = lr / ||g||``, every step has length exactly ``lr`` (no ``eta_max``);
  - ``"step_length"``: ``s = min(lr, eta_max) / ||g||``, a cap on the displacement length,
    which is ``min(lr, eta_max)`` whatever ``||g||`` (equal to ``"none"`` when lr <= eta_max);

* SPS_max (Loizou et al. 2021): ``theta <- theta - min((L_B - f_star) / (c ||g||^2), eta_max) * g``.

Parameter groups
----------------
The norm ``||g||`` is always global (all groups together), so the *direction* of the update is
the direction of the full gradient. Each group then uses its own hyper-parameters in the step
size: group ``k`` moves by ``min(lr_k / ||g||, eta_max_k) * g_k`` (SNGD) or
``min((L_B - f_star_k) / (c_k ||g||^2), eta_max_k) * g_k`` (SPS). With a single group (the
default) this is exactly the formula above.

Recorded state
--------------
After every :meth:`step` the optimizer stores, in ``optimizer.state["global"]`` (saved and
restored by ``state_dict`` / ``load_state_dict``), the tensors

* ``"grad_norm"``: the global gradient norm ``||g||`` (0-d tensor, on the parameters' device);
* ``"step_sizes"``: one 0-d tensor per parameter group, the scalar multiplying ``g``;
* ``"zero_grad"``: 0-d bool tensor, True when ``||g|| == 0`` (then the step is zero: no division
  by zero ever happens);
* ``"step"``: the number of steps taken (int).

The properties :attr:`last_grad_norm`, :attr:`last_step_size` (first group) and
:attr:`last_zero_grad` read them as Python scalars (this synchronises a CUDA device, so a
training loop that does not log every step should read the tensors instead).

The update is a fused multi-tensor operation (``torch._foreach_*``) and never leaves the device:
the step size is a 0-d tensor, so no host synchronisation happens inside :meth:`step`.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["SNGD", "SPS", "SNGD_CAPS", "GlobalStepOptimizer", "check_hyper", "global_grad_norm"]

SNGD_CAPS = ("step_size", "none", "step_length")


def global_grad_norm(params: Iterable[Tensor]) -> Tensor:
    """Global L2 norm of the gradients of ``params`` (parameters without a gradient are skipped).

    Parameters
    ----------
    params : iterable of Tensor
        Parameters whose ``.grad`` enter the norm.

    Returns
    -------
    Tensor
        0-d tensor ``sqrt(sum_p ||p.grad||^2)``; ``tensor(0.)`` when no parameter has a gradient.

    Examples
    --------
    >>> a = torch.zeros(2, requires_grad=True); a.grad = torch.tensor([3.0, 0.0])
    >>> b = torch.zeros(1, requires_grad=True); b.grad = torch.tensor([4.0])
    >>> float(global_grad_norm([a, b]))
    5.0
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


class GlobalStepOptimizer(torch.optim.Optimizer):
    """Base of SNGD and SPS: one scalar step size per group from the global gradient norm.

    Subclasses define ``_step_size(group, norm, loss)``; every step records the norm and the
    step sizes in ``state["global"]`` (see the module docstring), which training loops read
    instead of recomputing them.
    """

    def _group_tensors(self) -> list[tuple[dict, list[Tensor], list[Tensor]]]:
        out = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            out.append((group, params, [p.grad for p in params]))
        return out

    def _step_size(self, group: dict, norm: Tensor, loss: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _cap(self, group: dict) -> float | None:
        """The bound applied to the step size (SPS: ``eta_max``)."""
        return group["eta_max"]

    def _apply(self, loss: Tensor | None) -> None:
        groups = self._group_tensors()
        all_grads = [g for _, _, grads in groups for g in grads]
        if all_grads:
            norm = torch.nn.utils.get_total_norm(all_grads, norm_type=2.0)
        else:
            norm = torch.tensor(0.0)
        zero = norm == 0
        step_sizes = []
        for group, params, grads in groups:
            raw = self._step_size(group, norm, loss)
            eta_max = self._cap(group)
            if eta_max is not None:
                raw = torch.clamp(raw, max=eta_max)
            # A zero gradient gives lr/0 = inf (or 0/0 = nan for SPS): replace by a zero step.
            size = torch.where(zero, torch.zeros_like(raw), raw)
            step_sizes.append(size.detach())
            if not params:
                continue
            for dtype_params, dtype_grads in _by_dtype(params, grads):
                scaled = torch._foreach_mul(dtype_grads, -size.to(dtype_grads[0].dtype))
                torch._foreach_add_(dtype_params, scaled)
        state = self.state["global"]
        state["grad_norm"] = norm.detach()
        state["step_sizes"] = step_sizes
        state["zero_grad"] = zero.detach()
        state["step"] = int(state.get("step", 0)) + 1

    @property
    def last_grad_norm(self) -> float:
        """Global gradient norm ``||g||`` of the last step (nan before the first step)."""
        state = self.state.get("global")
        return float(state["grad_norm"]) if state else math.nan

    @property
    def last_step_size(self) -> float:
        """Step size (the scalar multiplying ``g``) of the first group at the last step."""
        state = self.state.get("global")
        return float(state["step_sizes"][0]) if state else math.nan

    @property
    def last_zero_grad(self) -> bool:
        """True when the last step saw a zero gradient (and so did not move)."""
        state = self.state.get("global")
        return bool(state["zero_grad"]) if state else False


def _by_dtype(params: list[Tensor], grads: list[Tensor]):
    """Split parallel lists by (device, dtype): foreach kernels need uniform lists."""
    buckets: dict[tuple, tuple[list[Tensor], list[Tensor]]] = {}
    for p, g in zip(params, grads):
        ps, gs = buckets.setdefault((p.device, p.dtype), ([], []))
        ps.append(p)
        gs.append(g)
    return buckets.values()


def check_hyper(name: str, value, *, allow_none: bool = False,
                allow_zero: bool = False) -> float | None:
    """``value`` as a float after checking it is a real number in the allowed range.

    Parameters
    ----------
    name : str
        Name used in the error message.
    value : object
        Candidate hyper-parameter.
    allow_none : bool, default False
        Accept None (returned as None).
    allow_zero : bool, default False
        Accept 0 (otherwise the value must be > 0).

    Returns
    -------
    float or None

    Raises
    ------
    TypeError
        If ``value`` is a bool, a string or not a real number.
    ValueError
        If it is NaN, infinite, negative, or zero without ``allow_zero``.

    Examples
    --------
    >>> check_hyper("lr", 1)
    1.0
    >>> check_hyper("lr", "0.1")
    Traceback (most recent call last):
    ...
    TypeError: lr must be a real number, not str ('0.1')
    """
    if value is None and allow_none:
        return None
    if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype.is_complex \
            and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {type(value).__name__} ({value!r})")
    value = float(value)
    low = "non-negative" if allow_zero else "positive"
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {low} finite number, got {value!r}")
    return value


class SNGD(GlobalStepOptimizer):
    """Stochastic normalised gradient descent with an optional cap.

    ``theta <- theta - s * g`` with ``||g||`` the global L2 norm of the mini-batch gradient over
    all parameters of all groups (see the module docstring for parameter groups and the
    recorded state) and the step size ``s`` fixed by ``cap``:

    ============== ================================= =====================================
    ``cap``        step size ``s``                   step length ``s * ||g||``
    ============== ================================= =====================================
    "step_size"    ``min(lr / ||g||, eta_max)``      ``min(lr, eta_max * ||g||)``
    "none"         ``lr / ||g||``                    ``lr``
    "step_length"  ``min(lr, eta_max) / ||g||``      ``min(lr, eta_max)``
    ============== ================================= =====================================

    ``eta_max=None`` means no cap whatever ``cap`` says (``"none"`` requires it).

    Parameters
    ----------
    params : iterable
        Parameters or parameter-group dicts (each group may set ``lr``, ``eta_max`` and ``cap``).
    lr : float
        Normalised step length ``eta``: uncapped, every step moves the parameters by exactly ``lr``.
    eta_max : float or None, default None
        The cap (see the table); None means no cap.
    cap : {"step_size", "none", "step_length"}, default "step_size"
        Where ``eta_max`` enters (a reconstruction: the paper states the value only).

    Raises
    ------
    TypeError
        If ``lr`` or ``eta_max`` is not a real number (a bool, a string), or ``cap`` is not a string.
    ValueError
        If ``lr`` is not positive and finite, ``eta_max`` is neither None nor positive and
        finite, ``cap`` is unknown, or ``cap="none"`` comes with an ``eta_max``.

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    >>> opt = SNGD([w], lr=0.5)
    >>> w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    >>> _ = opt.step()
    >>> w.detach().tolist(), opt.last_grad_norm, opt.last_step_size
    ([0.7, 0.6], 5.0, 0.1)

    With ``cap="step_length"`` the displacement is at most ``eta_max`` long:

    >>> w = torch.nn.Parameter(torch.tensor([0.0, 0.0], dtype=torch.float64))
    >>> opt = SNGD([w], lr=1.0, eta_max=0.5, cap="step_length")
    >>> w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    >>> _ = opt.step()
    >>> [round(v, 12) for v in w.detach().tolist()], opt.last_step_size
    ([-0.3, -0.4], 0.1)
    """

    def __init__(self, params, lr: float, eta_max: float | None = None, cap: str = "step_size"):
        lr = check_hyper("lr", lr)
        eta_max = check_hyper("eta_max", eta_max, allow_none=True)
        if not isinstance(cap, str):
            raise TypeError(f"cap must be a string, one of {SNGD_CAPS}; got {type(cap).__name__}")
        if cap not in SNGD_CAPS:
            raise ValueError(f"unknown SNGD cap {cap!r}; choose one of {SNGD_CAPS}")
        if cap == "none" and eta_max is not None:
            raise ValueError(f"cap='none' takes no eta_max (got {eta_max!r}); pass eta_max=None")
        super().__init__(params, dict(lr=lr, eta_max=eta_max, cap=cap))

    def _step_size(self, group, norm, loss):
        if group.get("cap") == "step_length" and group["eta_max"] is not None:
            return min(group["lr"], group["eta_max"]) / norm
        return group["lr"] / norm

    def _cap(self, group) -> float | None:
        # Checkpoints of older versions have no "cap": theirs was the step-size cap.
        return group["eta_max"] if group.get("cap", "step_size") == "step_size" else None

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None, loss: Tensor | float | None = None):
        """Take one step; returns the loss from ``closure`` (or the ``loss`` given), if any."""
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._apply(None)
        return loss


class SPS(GlobalStepOptimizer):
    """Stochastic Polyak step with a cap, SPS_max (Loizou et al. 2021).

    ``theta <- theta - min((L_B - f_star) / (c ||g||^2), eta_max) * g`` with ``L_B`` the
    mini-batch loss and ``||g||`` the global L2 norm of its gradient. A negative
    ``L_B - f_star`` (``f_star`` not a lower bound of the loss) gives a zero step rather than
    an ascent step.

    Parameters
    ----------
    params : iterable
        Parameters or parameter-group dicts (each group may set ``c``, ``eta_max``, ``f_star``).
    c : float, default 0.5
        Polyak constant (the paper does not state it; 0.5 is Loizou et al.'s choice).
    eta_max : float or None, default None
        Cap on the step size; None means no cap.
    f_star : float, default 0.0
        Lower bound of the loss used in the numerator (0 for the cross-entropy).

    Raises
    ------
    TypeError
        If ``c``, ``eta_max`` or ``f_star`` is not a real number (a bool, a string), and from
        :meth:`step` when neither ``loss`` nor ``closure`` is given.
    ValueError
        On a non-positive or non-finite ``c`` or ``eta_max``, or a non-finite ``f_star``.

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    >>> opt = SPS([w], c=0.5)
    >>> w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    >>> _ = opt.step(loss=torch.tensor(6.25))
    >>> w.detach().tolist(), opt.last_step_size
    ([-0.5, -1.0], 0.5)
    """

    def __init__(self, params, c: float = 0.5, eta_max: float | None = None, f_star: float = 0.0):
        c = check_hyper("c", c)
        eta_max = check_hyper("eta_max", eta_max, allow_none=True)
        if isinstance(f_star, bool) or not isinstance(f_star, numbers.Real):
            raise TypeError(f"f_star must be a real number, not {type(f_star).__name__}")
        if not math.isfinite(f_star):
            raise ValueError(f"f_star must be finite, got {f_star!r}")
        f_star = float(f_star)
        super().__init__(params, dict(c=c, eta_max=eta_max, f_star=f_star))

    def _step_size(self, group, norm, loss):
        gap = torch.clamp(loss.to(device=norm.device, dtype=norm.dtype) - group["f_star"], min=0.0)
        return gap / (group["c"] * norm * norm)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None, loss: Tensor | float | None = None):
        """Take one step with the mini-batch ``loss`` (or the one ``closure`` returns).

        Raises
        ------
        TypeError
            If neither ``loss`` nor ``closure`` is given: the Polyak step needs the loss value.
        ValueError
            If the loss is not a single number.
        """
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if loss is None:
            raise TypeError(
                "SPS.step needs the mini-batch loss: call optimizer.step(loss=loss) after "
                "loss.backward(), or pass a closure that returns the loss"
            )
        if isinstance(loss, Tensor):
            value = loss.detach()
        else:  # a Python number keeps full precision; it is cast to the gradients' dtype below
            value = torch.as_tensor(loss, dtype=torch.float64)
        if value.numel() != 1:
            raise ValueError(f"SPS.step needs a scalar loss, got shape {tuple(value.shape)}")
        value = value.reshape(())
        self._apply(value)
        return loss
