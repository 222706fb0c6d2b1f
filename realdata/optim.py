"""Stochastic normalised GD (SNGD) and the stochastic Polyak step (SPS_max) as torch optimizers.

Both rules (SPEC section 4) scale the whole mini-batch gradient ``g`` by one scalar step size
computed from the *global* L2 norm of ``g`` over every parameter of every parameter group:

* SNGD: ``theta <- theta - min(lr / ||g||, eta_max) * g``
  (the placement of ``eta_max`` is a reconstruction: the paper states the value, not the formula);
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
from typing import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["SNGD", "SPS", "global_grad_norm"]


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


class _GlobalStepOptimizer(torch.optim.Optimizer):
    """Shared machinery: one scalar step size per group from the global gradient norm."""

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
            eta_max = group["eta_max"]
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


def _check_eta_max(eta_max):
    if eta_max is not None and not (eta_max > 0 and math.isfinite(eta_max)):
        raise ValueError(f"eta_max must be a positive finite number or None, got {eta_max!r}")


class SNGD(_GlobalStepOptimizer):
    """Stochastic normalised gradient descent with a step-size cap.

    ``theta <- theta - min(lr / ||g||, eta_max) * g`` with ``||g||`` the global L2 norm of the
    mini-batch gradient over all parameters of all groups (see the module docstring for
    parameter groups and the recorded state).

    Parameters
    ----------
    params : iterable
        Parameters or parameter-group dicts (each group may set ``lr`` and ``eta_max``).
    lr : float
        Normalised step length ``eta``: uncapped, every step moves the parameters by exactly ``lr``.
    eta_max : float or None, default None
        Cap on the step size multiplying ``g``; None means no cap.

    Raises
    ------
    ValueError
        If ``lr`` is not positive and finite, or ``eta_max`` is neither None nor positive.

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    >>> opt = SNGD([w], lr=0.5)
    >>> w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    >>> _ = opt.step()
    >>> w.detach().tolist(), opt.last_grad_norm, opt.last_step_size
    ([0.7, 0.6], 5.0, 0.1)
    """

    def __init__(self, params, lr: float, eta_max: float | None = None):
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        _check_eta_max(eta_max)
        super().__init__(params, dict(lr=lr, eta_max=eta_max))

    def _step_size(self, group, norm, loss):
        return group["lr"] / norm

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None, loss: Tensor | float | None = None):
        """Take one step; returns the loss from ``closure`` (or the ``loss`` given), if any."""
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._apply(None)
        return loss


class SPS(_GlobalStepOptimizer):
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
    ValueError
        On a non-positive ``c`` or ``eta_max``, or a non-finite ``f_star``.
    TypeError
        From :meth:`step` when neither ``loss`` nor ``closure`` is given.

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
        if not (c > 0 and math.isfinite(c)):
            raise ValueError(f"c must be a positive finite number, got {c!r}")
        _check_eta_max(eta_max)
        if not math.isfinite(f_star):
            raise ValueError(f"f_star must be finite, got {f_star!r}")
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
