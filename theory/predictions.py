"""The paper's predicted convergence laws, as numbers for one instance (docs/theory.md §6).

:func:`predicted_rates` turns the asymptotics of docs/theory.md §6 into one
:class:`~theory.fitting.RateLaw` per measured curve (excess loss, norm, direction,
per-sequence attention), computed from the instance's max-margin solution
``W_mm`` (or the decoder SVM's ``u_mm`` for joint training). Each law is ready for
:func:`~theory.fitting.assert_rate` and gives the curve to draw:

>>> from theory import AttentionProblem, assert_rate
>>> X = np.array([[[2., 0.], [0., 0.]], [[-1., 0.], [1., 0.]]])
>>> pred = predicted_rates(AttentionProblem(X, [1, -1], [1., 0.]), "ngd", lr=0.1)
>>> dict(pred.excess)
{'model': 'exp', 'rate': 0.2, 'log_values': True}
>>> t = np.arange(100.0)
>>> fit = assert_rate(t, -3.0 - 0.2 * t, **pred.excess, tol=1e-9)   # e.g. traj.log_excess
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fitting import RateLaw

__all__ = ["RatePredictions", "predicted_rates"]

_METHODS = {"gd": "gd", "ngd": "ngd", "polyak": "polyak", "ps": "polyak"}


@dataclass(frozen=True, eq=False)
class RatePredictions:
    """The asymptotic laws of docs/theory.md §6 for one instance, one law per curve.

    Rates are per step (``t`` counts updates). Every law is a
    :class:`~theory.fitting.RateLaw`: pass it to ``assert_rate`` with ``**`` and
    draw it with ``law.curve(t, anchor=...)``. Laws that do not apply to the method
    or parametrisation are ``None``.

    Attributes
    ----------
    method : {"gd", "ngd", "polyak"}
    lr : float
        Step size (the multiplier of the Polyak step for ``"polyak"``).
    loss : str
        Loss function (the laws do not depend on it).
    param : {"W", "joint"}
        Fixed decoder (``W`` trained) or joint ``(u, W)`` training.
    W_mm_norm : float or None
        ``||W_mm||_F`` of the selection (fixed decoder).
    min_margins : ndarray, shape (n,), or None
        ``m_i = min_{t != sel_i} (x_{i,sel_i} - x_{i,t})^T W_mm z_i`` (1 for
        sequences with a support token, larger otherwise).
    support_sequences : ndarray of bool, shape (n,), or None
        Sequences that have a support token.
    excess : RateLaw
        Law of ``log(L - L*)`` (``traj.log_excess``; for joint training, where
        ``L* = 0``, also ``traj.log_loss``).
    norm : RateLaw
        Law of ``||W_t||`` (``traj.norm``): ``"linear"`` (NGD, Polyak) or ``"log"``
        (GD). Joint training: ``"log"`` with no slope (only the model is known).
    one_minus_corr : RateLaw or None
        Law of ``1 - corr(W_t, W_mm)`` (fixed decoder): the bound ``O(t^-1)``
        (``bound="upper"`` on the power exponent) or ``C (log t)^-2`` (GD).
    s_opt : tuple of RateLaw, or None
        Per sequence, the law of ``log(1 - s_{i,opt})``
        (``traj.log_one_minus_s_opt[:, i]``).
    step_length : float
        Limit of the update length (GD: 0; Polyak: an upper bound).
    u_mm_norm : float or None
        Joint training: ``||u_mm||`` of the decoder SVM.
    u_norm : RateLaw or None
        Joint training: law of ``||u_t||`` (``traj.u_norm``), slope ``lr``.
    u_one_minus_corr : RateLaw or None
        Joint training: the bound ``1 - corr(u_t, u_mm) = O(t^-1)``.

    Notes
    -----
    The attributes of the earlier flat form (``excess_model``, ``excess_rate``,
    ``excess_exponent``, ``norm_model``, ``norm_slope``, ``s_opt_model``,
    ``s_opt_rate``, ``s_opt_exponent``, ``corr_model``, ``corr_exponent``,
    ``u_norm_slope``) remain available as read-only properties derived from the laws.
    """

    method: str
    lr: float
    loss: str
    param: str
    W_mm_norm: float | None
    min_margins: np.ndarray | None
    support_sequences: np.ndarray | None
    excess: RateLaw
    norm: RateLaw
    one_minus_corr: RateLaw | None
    s_opt: tuple | None
    step_length: float
    u_mm_norm: float | None = None
    u_norm: RateLaw | None = None
    u_one_minus_corr: RateLaw | None = None

    @property
    def s_opt_slowest(self) -> RateLaw | None:
        """Law of ``max_i (1 - s_{i,opt})`` (log values): the slowest sequence's law."""
        if self.s_opt is None:
            return None
        slowest = min if self.s_opt[0].model == "exp" else max
        return slowest(self.s_opt, key=lambda law: law.value)

    # Earlier flat attributes, derived from the laws.
    @property
    def excess_model(self) -> str:
        """Model of the excess-loss law (``"exp"`` or ``"power"``)."""
        return self.excess.model

    @property
    def excess_rate(self) -> float | None:
        """Rate of an exponential excess-loss law (an upper bound for Polyak)."""
        return self.excess.rate

    @property
    def excess_exponent(self) -> float | None:
        """Exponent of a power excess-loss law."""
        return self.excess.exponent

    @property
    def norm_model(self) -> str:
        """Model of the norm law (``"linear"`` or ``"log"``)."""
        return self.norm.model

    @property
    def norm_slope(self) -> float | None:
        """Slope of the norm law (an upper bound for Polyak)."""
        return self.norm.slope

    @property
    def s_opt_model(self) -> str | None:
        """Model of the per-sequence ``1 - s_opt`` laws."""
        return None if self.s_opt is None else self.s_opt[0].model

    @property
    def s_opt_rate(self) -> np.ndarray | None:
        """Per-sequence rates of exponential ``1 - s_opt`` laws."""
        if self.s_opt is None or self.s_opt_model != "exp":
            return None
        return np.array([law.rate for law in self.s_opt])

    @property
    def s_opt_exponent(self) -> np.ndarray | None:
        """Per-sequence exponents of power ``1 - s_opt`` laws."""
        if self.s_opt is None or self.s_opt_model != "power":
            return None
        return np.array([law.exponent for law in self.s_opt])

    @property
    def _corr_law(self):
        return self.one_minus_corr if self.param == "W" else self.u_one_minus_corr

    @property
    def corr_model(self) -> str:
        """``"power"`` (``O(t^p)``) or ``"log"`` (``C (log t)^p``) for the direction law."""
        return "log" if self._corr_law.model == "logpower" else self._corr_law.model

    @property
    def corr_exponent(self) -> float:
        """Exponent of the direction law."""
        return self._corr_law.exponent

    @property
    def u_norm_slope(self) -> float | None:
        """Joint training: slope of ``||u_t||``."""
        return None if self.u_norm is None else self.u_norm.slope


def predicted_rates(problem, method, lr=None, loss="logistic", *, selection=None, param="W",
                    svm=None):
    """The laws of docs/theory.md §6, as numbers, for one instance.

    With ``w = ||W_mm||`` of the selection and ``m_i`` the smallest margin of
    sequence ``i`` (1 on sequences with a support token):

    ============  ========================  ======================  =====================
    curve         NGD (``lr``)              GD (``lr``)             Polyak (``lr``, <=)
    ============  ========================  ======================  =====================
    ``L - L*``    ``exp(-(lr / w) t)``      ``t^-1``                ``exp(-lr t)``
    ``||W_t||``   ``lr t``                  ``w log t``             ``lr w t``
    ``1-s_i``     ``exp(-(lr m_i / w) t)``  ``t^-m_i``              ``exp(-lr m_i t)``
    ``1 - corr``  ``O(t^-1)``               ``C (log t)^-2``        ``O(t^-1)``
    step          ``lr``                    ``-> 0``                ``<= lr w``
    ============  ========================  ======================  =====================

    Polyak's rates and slopes are upper bounds (``bound="upper"``), attained when
    the step aligns with ``W_mm``: a step of length ``s`` changes the log excess by
    ``-lr (s / (lr w))^2``, which is ``-lr`` when ``s`` reaches ``lr w``. Joint training (NGD, global
    normalisation): ``||u_t|| ~ lr t``, ``||W_t||`` grows like ``log t``, the loss
    decays like ``exp(-(lr / ||u_mm||) t)`` and ``1 - corr(u_t, u_mm) = O(t^-1)``.
    The laws are the same for the logistic and the exponential loss. The
    derivations are in docs/theory.md §6.

    Parameters
    ----------
    problem : AttentionProblem
    method : {"gd", "ngd", "polyak"} (``"ps"`` is an alias of ``"polyak"``)
    lr : float, optional
        Step size; required for GD and NGD, default 1 for Polyak (multiplier).
    loss : {"logistic", "exp"}, default "logistic"
    selection : array_like of int, shape (n,), optional
        Predict for the direction ``W_mm(selection)`` (local convergence);
        default the optimal tokens.
    param : {"W", "joint"}, default "W"
        Fixed decoder or joint ``(u, W)`` training (NGD only).
    svm : MarginSolution or DecoderSolution, optional
        A solution already computed (``theory.solve_wsvm``; for joint,
        ``theory.solve_decoder_svm``), to skip the solve.

    Returns
    -------
    RatePredictions

    Raises
    ------
    TypeError
        ``lr`` that is not a real number.
    ValueError
        Unknown method, loss or param; missing or nonpositive ``lr``; joint
        training with a method other than NGD; ``svm`` solved for another selection.
    InfeasibleError
        The max-margin problem has no solution (from the SVM solver).

    Examples
    --------
    Two sequences whose tokens lie on ``e_1``; their constraints read
    ``4 W_11 >= 1`` and ``2 W_11 >= 1``, so ``W_mm = 0.5 e_1 e_1^T`` and the
    margins are 2 (no support token) and 1:

    >>> from theory import AttentionProblem
    >>> X = np.array([[[2., 0.], [0., 0.]], [[-1., 0.], [1., 0.]]])
    >>> pred = predicted_rates(AttentionProblem(X, [1, -1], [1., 0.]), "ngd", lr=0.1)
    >>> round(pred.W_mm_norm, 6), pred.min_margins.round(6).tolist()
    (0.5, [2.0, 1.0])
    >>> round(pred.excess.rate, 6), [round(law.rate, 6) for law in pred.s_opt]
    (0.2, [0.4, 0.2])
    >>> print(predicted_rates(AttentionProblem(X, [1, -1], [1., 0.]), "polyak").excess)
    exp law, rate 1 (upper bound), on log values
    """
    from .fitting import _real
    from .problem import LOSSES

    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(_METHODS)}")
    method = _METHODS[method]
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
    if param not in ("W", "joint"):
        raise ValueError(f"param must be 'W' or 'joint', got {param!r}")
    if lr is None:
        if method != "polyak":
            raise ValueError(f"{method} needs a step size lr")
        lr = 1.0
    lr = _real("lr", lr)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite positive number, got {lr}")

    if svm is not None and selection is not None and not np.array_equal(
            np.asarray(svm.selection), problem.check_selection(selection)):
        raise ValueError(f"svm was solved for selection {np.asarray(svm.selection).tolist()}, "
                         f"not the requested {np.asarray(selection).tolist()}")
    settings = dict(method=method, lr=lr, loss=loss, param=param)
    if param == "joint":
        if method != "ngd":
            raise ValueError(f"joint-training predictions are derived for NGD only, not {method!r}")
        if svm is None:
            from .svm import solve_decoder_svm

            svm = solve_decoder_svm(problem, selection)
        un = float(svm.norm_value)
        return RatePredictions(
            **settings, W_mm_norm=None, min_margins=None, support_sequences=None,
            excess=RateLaw("exp", rate=lr / un, log_values=True),
            norm=RateLaw("log"), one_minus_corr=None, s_opt=None, step_length=lr,
            u_mm_norm=un, u_norm=RateLaw("linear", slope=lr),
            u_one_minus_corr=RateLaw("power", exponent=-1.0, bound="upper"),
        )

    if svm is None:
        from .svm import solve_wsvm

        svm = solve_wsvm(problem, selection)
    w = float(svm.norm_value)
    m = np.nanmin(svm.margins, axis=1)
    fixed = dict(**settings, W_mm_norm=w, min_margins=m,
                 support_sequences=np.asarray(svm.support).any(axis=1))
    direction = RateLaw("power", exponent=-1.0, bound="upper")
    if method == "gd":
        return RatePredictions(
            **fixed, excess=RateLaw("power", exponent=-1.0, log_values=True),
            norm=RateLaw("log", slope=w), one_minus_corr=RateLaw("logpower", exponent=-2.0),
            s_opt=tuple(RateLaw("power", exponent=-mi, log_values=True) for mi in m),
            step_length=0.0,
        )
    if method == "ngd":
        excess, s_rates, slope, bound = lr / w, lr * m / w, lr, None
    else:  # Polyak: upper bounds
        excess, s_rates, slope, bound = lr, lr * m, lr * w, "upper"
    return RatePredictions(
        **fixed, excess=RateLaw("exp", rate=excess, log_values=True, bound=bound),
        norm=RateLaw("linear", slope=slope, bound=bound), one_minus_corr=direction,
        s_opt=tuple(RateLaw("exp", rate=r, log_values=True, bound=bound) for r in s_rates),
        step_length=slope,
    )
