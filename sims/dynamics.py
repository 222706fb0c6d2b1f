"""Exact, compiled full-batch GD, NGD, Polyak and momentum-NGD dynamics (docs/theory.md §3, §5, §8).

:func:`run` integrates one trajectory inside a single compiled call and returns a
:class:`~sims.trajectory.Trajectory`; :func:`run_many` runs a sweep (problems x
settings) with one ``prange``-parallel compiled call per problem shape and settings,
locally or on an executor such as a ``dask.distributed`` client. The settings of a run
are a :class:`~sims.options.RunOptions`; the old keyword arguments build one.

Update rules (``g`` is the gradient of the whole parameter ``theta``):

* ``"gd"``: ``theta <- theta - lr g``; default ``lr = 1``.
* ``"ngd"``: ``theta <- theta - lr g / ||g||_F``; default ``lr = 0.1``.
* ``"polyak"``: ``theta <- theta - lr (L - L*) / ||g||_F^2 g``; ``lr`` is a multiplier on
  the Polyak step (a reconstruction, docs/theory.md §3), default 1 (the pure rule).
  ``L*`` is the infimum of docs/theory.md §1 for the fixed decoder and 0 for joint training.
* ``"ngd_momentum"``: heavy-ball NGD, ``v <- beta v + g / ||g||_F``, ``theta <- theta - lr v``
  with ``v = 0`` at the start; defaults ``lr = 0.1``, ``beta = 0.9`` (``beta = 0`` is NGD).

``normalize="block"`` applies the normalisation separately to each block of the parameter
(``u`` and ``W`` for ``param="joint"``, ``K`` and ``Q`` for ``param="kq"``; one block for
``param="W"``, where both settings agree), so each block moves ``lr`` under NGD. A block
whose gradient is exactly zero is not moved.

The gradient is formed as ``e^L G`` with a tracked log-scale ``L`` (docs/theory.md §8), so
NGD and Polyak directions stay exact after the gradient itself has underflowed. Parameters
that leave the float64 range (a diverging step, a Polyak step blowing up where the gradient
vanishes far from ``L*``, a huge initialisation) raise :class:`FloatingPointError` naming
the iteration.

A single :func:`run` of a large problem (``X`` with at least ``PARALLEL_MIN_SIZE``
entries) parallelises each step over sequences; sweeps parallelise over runs. BLAS is
limited to one thread around the compiled calls.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 - load the BLAS numba calls so threadpoolctl limits it
from threadpoolctl import threadpool_limits

from theory import LOSSES, AttentionProblem

from . import _kernels as kern
from .options import (DEFAULT_BETA, DEFAULT_LR, METHODS, NORMALIZE, PARAMS, STORE_LIMIT_BYTES,
                      RunFailure, RunOptions, _choice, check_count)
from .trajectory import Trajectory

__all__ = ["run", "run_many", "evaluate", "Evaluation", "record_schedule", "RunOptions",
           "RunFailure", "METHODS", "PARAMS", "NORMALIZE", "DEFAULT_LR", "DEFAULT_BETA"]

#: scale of the default random (K0, Q0): entries N(0, (KQ_INIT_SCALE)^2 / d)
KQ_INIT_SCALE = 0.1
#: run() parallelises each step over sequences from this many entries of X on
PARALLEL_MIN_SIZE = 1 << 16

# kernel codes of the settings; a method's code is its position in kern.RULES
_METHOD_CODE = {name: code for code, name in enumerate(kern.RULES)}
_PARAM_CODE = {"W": kern.P_W, "kq": kern.P_KQ, "joint": kern.P_JOINT}
_LOSS_CODE = {"logistic": kern.LOGISTIC, "exp": kern.EXP}
_NORM_CODE = {"global": kern.GLOBAL, "block": kern.BLOCK}


# ----------------------------------------------------------------- validation
def _array(name, a, shape):
    if a is None:
        return None
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name} contains {bad} NaN or infinite entries")
    return arr


def _unit(name, a):
    peak = float(np.abs(a).max()) if a.size else 0.0
    if peak == 0.0:
        raise ValueError(f"{name} must be nonzero (it defines a direction)")
    with np.errstate(over="ignore", under="ignore"):
        nrm = float(np.linalg.norm(a))
    if not 1e-150 < nrm < 1e150:
        # the norm under- or overflows: scale first (a direction does not depend on it)
        a = a / peak
        nrm = float(np.linalg.norm(a))
    return a / nrm


def _steps(steps):
    return check_count("steps", steps)


def record_schedule(record, steps, num_records=200):
    """Iterations at which a run records its metrics.

    Parameters
    ----------
    record : {"log", "all"}, int or array_like of int
        ``"log"``: about ``num_records`` log-spaced iterations; ``"all"``: every
        iteration; an int ``k``: every ``k``-th; an array: those iterations.
    steps : int
        Number of updates of the run.
    num_records : int, default 200
        Target count for ``"log"``.

    Returns
    -------
    ndarray of int64
        Sorted unique iterations in ``[0, steps]``, always containing 0 and ``steps``.

    Raises
    ------
    ValueError
        For an unknown keyword, a nonpositive ``k`` or iterations outside ``[0, steps]``.

    Examples
    --------
    >>> record_schedule(10, 25)
    array([ 0, 10, 20, 25])
    >>> record_schedule("log", 1000, num_records=5)
    array([   0,    1,    6,   32,  178, 1000])
    """
    steps = _steps(steps)
    if isinstance(record, str):
        if record == "all":
            ts = np.arange(steps + 1)
        elif record == "log":
            if not (isinstance(num_records, (int, np.integer)) and num_records >= 2):
                raise ValueError(f"num_records must be an integer >= 2, got {num_records!r}")
            ts = np.rint(np.geomspace(1, max(steps, 1), num_records)).astype(np.int64)
        else:
            raise ValueError(f"record must be 'log', 'all', an int or an array, got {record!r}")
    elif isinstance(record, (int, np.integer)) and not isinstance(record, bool):
        if record < 1:
            raise ValueError(f"record every k steps needs k >= 1, got {record}")
        ts = np.arange(0, steps + 1, int(record))
    else:
        arr = np.asarray(record)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError("an explicit record schedule must be a 1-d array of integers")
        bad = arr[(arr < 0) | (arr > steps)]
        if bad.size:
            raise ValueError(f"record iterations must lie in [0, {steps}], got {bad[:5].tolist()}")
        ts = arr
    return np.unique(np.concatenate([[0, steps], np.minimum(ts, steps)])).astype(np.int64)


# ----------------------------------------------------------- reference directions
def _reference_W(problem, param, reference):
    if reference is not None:
        return _array("reference", reference, (problem.d, problem.d))
    import theory.svm as svm  # lazy: sims works without the SVM solvers when given references

    if param == "kq":
        return np.asarray(svm.solve_wsvm(problem, norm="nuc").W, dtype=np.float64)
    if param == "joint":
        return np.asarray(svm.solve_joint_wsvm(problem).W, dtype=np.float64)
    return np.asarray(svm.solve_wsvm(problem).W, dtype=np.float64)


def _reference_u(problem, reference_u):
    if reference_u is not None:
        return _array("reference_u", reference_u, (problem.d,))
    import theory.svm as svm

    return np.asarray(svm.solve_decoder_svm(problem).u, dtype=np.float64)


# --------------------------------------------------------------- one point
@dataclass(frozen=True, eq=False)
class Evaluation:
    """Loss, gradient and attention metrics at one parameter point.

    Attributes
    ----------
    loss, log_loss, excess, log_excess : float
        As in :class:`~sims.trajectory.Trajectory` (``excess = L - L*``; joint: ``L``).
    grad_norm, log_grad_norm : float
        Norm of the whole gradient (the float may underflow to 0, the log does not).
    grad_W : ndarray, shape (d, d)
        Gradient with respect to W (for (K, Q): of the loss as a function of W).
    grad_u, grad_K, grad_Q : ndarray or None
        Gradients of the other blocks (joint: u; kq: K and Q).
    direction : dict of ndarray
        Blocks of ``g / ||g||`` over the trained parameter (keys ``"W"``; ``"K", "Q"``;
        ``"u", "W"``), exact even when the gradient underflows.
    s_opt, log_one_minus_s_opt : ndarray, shape (n,)
        Attention on ``problem.opt`` per sequence and ``log(1 - s_opt)``.
    attn_argmax : ndarray of int, shape (n,)
        Most attended token of each sequence.
    """

    loss: float
    log_loss: float
    excess: float
    log_excess: float
    grad_norm: float
    log_grad_norm: float
    grad_W: np.ndarray
    grad_u: np.ndarray | None
    grad_K: np.ndarray | None
    grad_Q: np.ndarray | None
    direction: dict
    s_opt: np.ndarray
    log_one_minus_s_opt: np.ndarray
    attn_argmax: np.ndarray


def evaluate(problem, W=None, *, u=None, K=None, Q=None, loss="logistic"):
    """Loss and stable gradient at one point, with the kernels :func:`run` uses.

    Parameters
    ----------
    problem : theory.AttentionProblem
    W : array_like, shape (d, d), optional
        Key-query matrix (omit when giving ``K`` and ``Q``).
    u : array_like, shape (d,), optional
        Trained decoder: evaluates the joint model (L* = 0) instead of the fixed one.
    K, Q : array_like, shape (d, r), optional
        Factors of ``W = K Q^T``; gradients then include ``grad_K`` and ``grad_Q``.
    loss : {"logistic", "exp"}, default "logistic"

    Returns
    -------
    Evaluation

    Raises
    ------
    ValueError
        Bad shapes or NaN, or an inconsistent combination of W, K, Q and u.

    Examples
    --------
    >>> from sims.data import equal_score
    >>> p = equal_score(3, 4, 5, seed=0)
    >>> ev = evaluate(p, np.zeros((5, 5)))
    >>> bool(np.isclose(ev.excess, ev.loss - p.loss_inf))
    True
    >>> round(float(np.linalg.norm(ev.direction["W"])), 12)
    1.0
    """
    _choice("loss", loss, LOSSES)
    if not isinstance(problem, AttentionProblem):
        raise TypeError(f"problem must be a theory.AttentionProblem, got {type(problem).__name__}")
    d = problem.d
    if (K is None) != (Q is None):
        raise ValueError("give both K and Q, or neither")
    if K is not None:
        if W is not None or u is not None:
            raise ValueError("with K and Q give neither W nor u (W = K Q^T)")
        Kf = np.asarray(K, dtype=np.float64)
        rank = Kf.shape[1] if Kf.ndim == 2 else 1
        Kf = _array("K", Kf, (d, rank))
        Qf = _array("Q", Q, (d, rank))
        param, Wf = "kq", np.empty((d, d))
    else:
        if W is None:
            raise ValueError("give W, or K and Q")
        Wf = _array("W", W, (d, d))
        Kf = Qf = np.zeros((d, 1))
        param = "W" if u is None else "joint"
    uf = np.zeros(d) if u is None else _array("u", u, (d,))
    res, Gt, Ut, GK, GQ, sq = _kernel_eval(problem, param, loss, Wf, Kf, Qf, uf)
    LW, Lu, log_exc, loss_val, L1, L2, ln1, ln2, lgn = res
    joint = param == "joint"
    log_loss = log_exc if joint else math.log(loss_val)

    def scaled(L, G):
        return math.exp(L) * G if np.isfinite(L) else np.zeros_like(G)

    def unit(ln, L, G):
        return math.exp(L - lgn) * G if np.isfinite(ln) else np.zeros_like(G)

    if param == "kq":
        direction = {"K": unit(ln1, L1, GK), "Q": unit(ln2, L2, GQ)}
    elif joint:
        direction = {"u": unit(ln1, L1, Ut), "W": unit(ln2, L2, Gt)}
    else:
        direction = {"W": unit(ln2, L2, Gt)}
    return Evaluation(
        loss=math.exp(log_exc) if joint else loss_val,
        log_loss=log_loss,
        excess=math.exp(log_exc),
        log_excess=log_exc,
        grad_norm=math.exp(lgn),
        log_grad_norm=lgn,
        grad_W=scaled(LW, Gt),
        grad_u=scaled(Lu, Ut) if joint else None,
        grad_K=scaled(LW, GK) if param == "kq" else None,
        grad_Q=scaled(LW, GQ) if param == "kq" else None,
        direction=direction,
        s_opt=sq[:, kern.S_SOPT].copy(),
        log_one_minus_s_opt=sq[:, kern.S_LOG1M].copy(),
        attn_argmax=sq[:, kern.S_PIV].astype(np.int64),
    )


def _kernel_eval(problem, param, loss, W, Kf, Qf, u):
    # writable copies: read-only arrays would make numba compile a second variant
    pb = kern.Problem(np.array(problem.X), np.array(problem.queries), np.array(problem.y),
                      np.array(problem.scores), np.array(problem.opt, dtype=np.int64))
    with threadpool_limits(limits=1, user_api="blas"):
        res, sc = kern._evaluate(True, pb, _PARAM_CODE[param], _LOSS_CODE[loss], (W, Kf, Qf, u))
    return res, sc.Gt, sc.Ut, sc.GK, sc.GQ, sc.sq


# --------------------------------------------------------------------- runs
class _Spec:
    """One validated run: problem, options and initial state."""

    def __init__(self, problem, opts, steps, W0=None, K0=None, Q0=None, u0=None, reference=None,
                 reference_u=None, index=0):
        if not isinstance(problem, AttentionProblem):
            raise TypeError(f"problem must be a theory.AttentionProblem, got {type(problem).__name__}")
        d = problem.d
        param = opts.param
        self.problem = problem
        self.index = index
        self.opts = opts
        self.method = opts.method
        self.lr = opts.effective_lr
        problem.opt  # noqa: B018 - raises TieError before any work
        if param == "kq":
            if W0 is not None:
                raise ValueError("param='kq' trains W = K Q^T from K0 and Q0; W0 must be None")
            if (K0 is None) != (Q0 is None):
                raise ValueError("give both K0 and Q0, or neither")
            if K0 is None:
                rng = np.random.default_rng(opts.seed)
                K0 = rng.standard_normal((d, d)) * (KQ_INIT_SCALE / math.sqrt(d))
                Q0 = rng.standard_normal((d, d)) * (KQ_INIT_SCALE / math.sqrt(d))
            K0 = np.asarray(K0)
            rank = K0.shape[1] if K0.ndim == 2 else -1
            self.K0 = _array("K0", K0, (d, max(rank, 1)))
            self.Q0 = _array("Q0", Q0, (d, max(rank, 1)))
            self.W0 = self.K0 @ self.Q0.T
        else:
            if K0 is not None or Q0 is not None:
                raise ValueError(f"K0 and Q0 are only used with param='kq', not {param!r}")
            self.W0 = np.zeros((d, d)) if W0 is None else _array("W0", W0, (d, d))
            self.K0 = self.Q0 = None
        if param == "joint":
            self.u0 = np.zeros(d) if u0 is None else _array("u0", u0, (d,))
            self.ref_u = _reference_u(problem, reference_u)
        else:
            if u0 is not None or reference_u is not None:
                raise ValueError(f"u0 and reference_u are only used with param='joint', not {param!r}")
            self.u0 = self.ref_u = None
        self.ref_W = _reference_W(problem, param, reference)
        self.ref_W_unit = _unit("reference", self.ref_W)
        self.ref_u_unit = None if self.ref_u is None else _unit("reference_u", self.ref_u)
        self.rec_t = record_schedule(opts.record, steps, opts.num_records)

    def stores(self):
        """Whether the run keeps its iterates (``store_params``, or automatic)."""
        if self.opts.store_params is not None:
            return bool(self.opts.store_params)
        d = self.problem.d
        return len(self.rec_t) * (d * d + d) * 8 <= STORE_LIMIT_BYTES

    def group_key(self):
        """Runs with equal keys share one compiled call."""
        o = self.opts
        rank = self.K0.shape[1] if o.param == "kq" else 0
        return (self.problem.X.shape, rank, o.param, o.loss, o.normalize, self.stores(),
                tuple(self.rec_t.tolist()))


def _payload(specs):
    """Kernel records for the compiled sweep over ``specs`` (all of one group_key)."""
    problems = []
    index = {}
    prob = np.empty(len(specs), dtype=np.int64)
    for r, s in enumerate(specs):
        key = id(s.problem)
        if key not in index:
            index[key] = len(problems)
            problems.append(s.problem)
        prob[r] = index[key]
    first = specs[0]
    param, rec_t, store = first.opts.param, first.rec_t, first.stores()
    n, T, d = problems[0].X.shape
    rank = first.K0.shape[1] if param == "kq" else 1
    R, k = len(specs), len(rec_t)
    stateful = any(kern.RULES[s.method].stateful for s in specs)

    def buffer(shape):
        # rule state only where a stateful rule uses it
        return np.zeros((R, *shape) if stateful else (R, *(1,) * len(shape)))

    data = kern.Data(
        X=np.stack([p.X for p in problems]),
        Z=np.stack([np.ascontiguousarray(p.queries) for p in problems]),
        Y=np.stack([p.y for p in problems]),
        GAM=np.stack([p.scores for p in problems]),
        OPT=np.stack([np.asarray(p.opt, dtype=np.int64) for p in problems]),
        prob=prob,
        RW=np.stack([s.ref_W_unit for s in specs]),
        RU=np.stack([s.ref_u_unit for s in specs]) if param == "joint" else np.zeros((R, d)),
    )
    cfg = kern.Config(
        meth=np.array([_METHOD_CODE[s.method] for s in specs], dtype=np.int64),
        lrs=np.array([s.lr for s in specs]),
        beta=np.array([float(s.opts.beta) for s in specs]),
        needs_exc=np.array([kern.RULES[s.method].needs_excess for s in specs]),
        param=_PARAM_CODE[param],
        loss=_LOSS_CODE[first.opts.loss],
        normalize=_NORM_CODE[first.opts.normalize],
        rec_t=np.asarray(rec_t, dtype=np.int64),
        store=bool(store),
    )
    state = kern.State(
        W=np.stack([s.W0 for s in specs]),
        K=np.stack([s.K0 for s in specs]) if param == "kq" else np.zeros((R, d, rank)),
        Q=np.stack([s.Q0 for s in specs]) if param == "kq" else np.zeros((R, d, rank)),
        U=np.stack([s.u0 for s in specs]) if param == "joint" else np.zeros((R, d)),
        VW=buffer((d, d)),
        VK=buffer((d, rank)),
        VQ=buffer((d, rank)),
        VU=buffer((d,)),
    )
    out = kern.Records(
        recs=np.zeros((R, k, kern.NCOL)),
        L1M=np.zeros((R, k, n)),
        WS=np.zeros((R, k, d, d) if store else (1, 1, d, d)),
        US=np.zeros((R, k, d) if store else (1, 1, d)),
        piv=np.zeros((R, n), dtype=np.int64),
        jstate=np.zeros(R, dtype=np.int64),
        fail=np.full(R, -1, dtype=np.int64),
    )
    return data, cfg, state, out


def _advance(pl, t_start, t_end, parallel_steps=False):
    """Advance every run of the payload from ``t_start`` to ``t_end`` (in place).

    Runs go through the sweep kernel (parallel over runs; a single run too, which keeps
    to one compiled entry point), or, with ``parallel_steps``, the single run of the
    payload with every step parallel over sequences (large problems).
    """
    # numba threads next to a threaded BLAS oversubscribe the cores (measured 14x
    # slower); the kernels' own GEMMs (large problems) are single-threaded too
    with threadpool_limits(limits=1, user_api="blas"):
        kernel = kern._traj_single if parallel_steps else kern._sweep
        kernel(*pl, t_start, t_end)


def _run_payload(pl, steps, progress=False, desc="sims", parallel_steps=False):
    """Run a payload to ``steps``, in 100 compiled chunks when showing progress."""
    if not progress or steps == 0:
        _advance(pl, 0, steps, parallel_steps)
        return pl
    from tqdm.auto import tqdm

    chunk = max(1, -(-steps // 100))
    with tqdm(total=steps, desc=desc, unit="step") as bar:
        t = 0
        while t < steps:
            t_end = min(steps, t + chunk)
            _advance(pl, t, t_end, parallel_steps)
            bar.update(t_end - t)
            t = t_end
    return pl


def _sweep_chunk(pl, steps):
    """Executor task: run a self-contained payload and return its state and records."""
    _run_payload(pl, steps)
    return pl[2], pl[3]


def _trajectory(spec, state, out, r, steps):
    """The Trajectory of run ``r`` of a finished payload (state and records)."""
    fail = int(out.fail[r])
    if fail >= 0:
        raise FloatingPointError(
            f"{spec.method} (lr={spec.lr:g}) reached a non-finite loss, gradient or parameter "
            f"norm at iteration {fail}: the parameters left the float64 range (a diverging "
            f"step, e.g. a Polyak step where the gradient vanishes far from L*, or too large "
            f"an initialisation)"
        )
    o = spec.opts
    param = o.param
    store = spec.stores()
    recs = out.recs[r]
    joint = param == "joint"
    log_exc = recs[:, kern.C_LOG_EXC].copy()
    log_step = recs[:, kern.C_LOG_STEP].copy()
    log_gn = recs[:, kern.C_LOG_GNORM].copy()
    p = spec.problem
    return Trajectory(
        t=spec.rec_t.copy(),
        loss=recs[:, kern.C_LOSS].copy(),
        log_loss=recs[:, kern.C_LOG_LOSS].copy(),
        excess=np.exp(log_exc),
        log_excess=log_exc,
        norm=recs[:, kern.C_NORM].copy(),
        corr=recs[:, kern.C_CORR].copy(),
        dist=recs[:, kern.C_DIST].copy(),
        s_opt_min=recs[:, kern.C_SMIN].copy(),
        s_opt_mean=recs[:, kern.C_SMEAN].copy(),
        log_one_minus_s_opt=out.L1M[r].copy(),
        step_length=np.exp(log_step),
        log_step_length=log_step,
        grad_norm=np.exp(log_gn),
        log_grad_norm=log_gn,
        u_norm=recs[:, kern.C_UNORM].copy() if joint else None,
        u_corr=recs[:, kern.C_UCORR].copy() if joint else None,
        u_dist=recs[:, kern.C_UDIST].copy() if joint else None,
        method=spec.method,
        lr=spec.lr,
        param=param,
        loss_name=o.loss,
        normalize=o.normalize,
        steps=steps,
        loss_star=0.0 if joint else p.loss_inf_for(o.loss),
        W_final=state.W[r].copy(),
        u_final=state.U[r].copy() if joint else None,
        K_final=state.K[r].copy() if param == "kq" else None,
        Q_final=state.Q[r].copy() if param == "kq" else None,
        attn_argmax_final=out.piv[r].copy(),
        opt=np.asarray(p.opt, dtype=np.int64).copy(),
        reference=spec.ref_W.copy(),
        reference_u=None if spec.ref_u is None else spec.ref_u.copy(),
        W_hist=out.WS[r].copy() if store else None,
        u_hist=out.US[r].copy() if store and joint else None,
        beta=float(o.beta) if kern.RULES[spec.method].stateful else None,
    )


def _same(a, b):
    return a is b or (isinstance(a, str) and isinstance(b, str) and a == b)


def _options(method, keywords, defaults):
    """The RunOptions of a call: ``method`` itself, or built from the option keywords."""
    if isinstance(method, RunOptions):
        given = [k for k, v in keywords.items() if not _same(v, defaults[k])]
        if given:
            raise TypeError(f"settings given both in RunOptions and as keywords: {', '.join(given)}; "
                            "use options.replace(...) instead")
        return method
    return RunOptions(method=method, **keywords)


_RUN_DEFAULTS = {"lr": None, "record": "log", "loss": "logistic", "param": "W",
                 "normalize": "global", "num_records": 200, "seed": 0, "store_params": None,
                 "beta": DEFAULT_BETA}


def run(problem, method, steps, lr=None, W0=None, reference=None, record="log", *,
        loss="logistic", param="W", K0=None, Q0=None, u0=None, normalize="global",
        reference_u=None, num_records=200, progress=False, seed=0, store_params=None,
        beta=DEFAULT_BETA, parallel=None):
    """Run one trajectory of GD, NGD, Polyak or momentum-NGD steps, compiled end to end.

    Parameters
    ----------
    problem : theory.AttentionProblem
        The data (scores, optimal tokens and ``L*`` come from it).
    method : {"gd", "ngd", "polyak", "ngd_momentum"} or RunOptions
        Update rule (module docstring), or every setting at once: the option keywords
        (``lr``, ``record``, ``loss``, ``param``, ``normalize``, ``num_records``, ``seed``,
        ``store_params``, ``beta``) must then be left at their defaults.
    steps : int
        Number of updates.
    lr : float, optional
        Step size; defaults ``gd`` 1, ``ngd`` and ``ngd_momentum`` 0.1. For ``polyak`` a
        multiplier of the Polyak step, default 1.
    W0 : array_like, shape (d, d), optional
        Initial W (default zeros). Not used with ``param="kq"``.
    reference : array_like, shape (d, d), optional
        Direction for ``corr`` and ``dist``. Default ``theory.svm.solve_wsvm(problem).W``
        (``norm="nuc"`` for ``param="kq"``, the limit of the factorised dynamics; for
        ``param="joint"`` the relaxed joint W-SVM of :func:`theory.svm.solve_joint_wsvm`).
    record : {"log", "all"}, int or array_like of int, default "log"
        Recording schedule, see :func:`record_schedule`.
    loss : {"logistic", "exp"}, default "logistic"
    param : {"W", "kq", "joint"}, default "W"
        Train W directly, W = K Q^T through (K, Q), or (u, W) jointly (the decoder of
        ``problem`` is then only used to define ``opt`` for the attention metrics).
    K0, Q0 : array_like, shape (d, r), optional
        Initial factors for ``param="kq"``; default i.i.d. ``N(0, KQ_INIT_SCALE^2 / d)``
        of shape (d, d) drawn with ``seed``.
    u0 : array_like, shape (d,), optional
        Initial decoder for ``param="joint"`` (default zeros).
    normalize : {"global", "block"}, default "global"
        Normalise NGD / Polyak / momentum NGD by the whole gradient or per block.
    reference_u : array_like, shape (d,), optional
        Direction for the u metrics (joint); default the decoder SVM ``u_mm``.
    num_records : int, default 200
        Target number of records for ``record="log"``.
    progress : bool, default False
        Show a tqdm bar (the run then proceeds in 100 compiled chunks).
    seed : int, default 0
        Seed of the default (K0, Q0).
    store_params : bool, optional
        Keep W (and u) at every recorded iteration (``W_hist``, ``u_hist``), which
        :meth:`Trajectory.corr_with` needs. Default: when they take at most
        ``sims.options.STORE_LIMIT_BYTES`` (1 MiB).
    beta : float, default 0.9
        Momentum of ``"ngd_momentum"``, in ``[0, 1)``.
    parallel : bool, optional
        Parallelise every step over sequences (worth it for large problems; the result
        is the same). Default: when ``X`` has at least 65536 entries.

    Returns
    -------
    Trajectory

    Raises
    ------
    TypeError
        A setting of the wrong type (``lr=True``, ``lr="0.1"``, ``steps=2.5``, ...) or a
        RunOptions together with option keywords.
    ValueError
        Unknown method/param/loss/normalize, ``lr <= 0`` or not finite, bad steps or
        schedule, wrong shapes or NaN in the initial state or references (messages name
        them); ``theory.TieError`` if a sequence has no unique optimal token.
    FloatingPointError
        If the loss, gradient or a parameter norm becomes non-finite (a divergent step
        size or a huge initialisation); the message names the iteration.

    Examples
    --------
    >>> from sims.data import equal_score
    >>> p = equal_score(4, 5, 6, seed=0)
    >>> tr = run(p, "ngd", 300, lr=0.5, reference=np.eye(6), record=100)
    >>> tr.t.tolist()
    [0, 100, 200, 300]
    >>> tr.step_length.round(12).tolist()  # NGD moves exactly lr per step
    [0.5, 0.5, 0.5, 0.5]
    >>> bool(np.all(np.diff(tr.excess) < 0))
    True
    >>> same = run(p, RunOptions("ngd", lr=0.5, record=100), 300, reference=np.eye(6))
    >>> bool(np.array_equal(same.corr, tr.corr))
    True
    """
    opts = _options(method, {"lr": lr, "record": record, "loss": loss, "param": param,
                             "normalize": normalize, "num_records": num_records, "seed": seed,
                             "store_params": store_params, "beta": beta}, _RUN_DEFAULTS)
    steps = _steps(steps)
    spec = _Spec(problem, opts, steps, W0, K0, Q0, u0, reference, reference_u)
    pl = _payload([spec])
    if parallel is None:
        parallel = problem.X.size >= PARALLEL_MIN_SIZE
    _run_payload(pl, steps, progress, desc=opts.method, parallel_steps=bool(parallel))
    return _trajectory(spec, pl[2], pl[3], 0, steps)


def _per_problem(name, values, problems):
    if values is None:
        return [None] * len(problems)
    values = list(values)
    if len(values) != len(problems):
        raise ValueError(f"{name} must have one entry per problem ({len(problems)}), got {len(values)}")
    return values


def _listify(x):
    if isinstance(x, (str, AttentionProblem, RunOptions)) or x is None or np.isscalar(x):
        return [x]
    return list(x)


def _check_executor(executor):
    ctx = getattr(executor, "_mp_context", None)  # concurrent.futures.ProcessPoolExecutor
    if ctx is not None and ctx.get_start_method() == "fork":
        raise ValueError(
            "a fork-based process pool cannot run the compiled sweep (forking a process that "
            "has used OpenMP threads aborts the child); create it with "
            "mp_context=multiprocessing.get_context('spawn') or 'forkserver'"
        )


def _executor_chunks(executor, chunks):
    if chunks is not None:
        return check_count("chunks", chunks, 1)
    if hasattr(executor, "nthreads"):  # dask.distributed.Client
        return max(1, sum(executor.nthreads().values()))
    return max(1, int(getattr(executor, "_max_workers", 2)))


def _sweep_options(methods, lrs, keywords):
    """The RunOptions of a sweep, in ``product(methods, lrs)`` order."""
    methods = _listify(methods)
    if any(isinstance(m, RunOptions) for m in methods):
        if not all(isinstance(m, RunOptions) for m in methods):
            raise TypeError("methods must be all strings or all RunOptions")
        if lrs is not None:
            raise TypeError("with RunOptions give no lrs: each options object has its lr")
        return [_options(m, keywords, _RUN_DEFAULTS) for m in methods]
    return [RunOptions(method=m, lr=lr, **keywords)
            for m, lr in itertools.product(methods, _listify(lrs))]


def _on_error(on_error):
    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', got {on_error!r}")
    return on_error == "return"


def run_many(problems, methods, lrs=None, steps=None, *, W0s=None, references=None,
             record="log", loss="logistic", param="W", executor=None, progress=False,
             normalize="global", K0s=None, Q0s=None, u0s=None, references_u=None,
             num_records=200, seed=0, store_params=None, beta=DEFAULT_BETA, chunks=None,
             on_error="raise"):
    """Run a sweep of trajectories, compiled and parallel.

    The runs are ``itertools.product(problems, methods, lrs)`` (or ``product(problems,
    options)``) and the result is in that order. Runs whose problems share ``(n, T, d)``
    and settings go through one compiled ``prange`` call (one whole trajectory per
    thread); each result equals the one :func:`run` gives for the same arguments.

    Parameters
    ----------
    problems : AttentionProblem or sequence of them
    methods : str, RunOptions or sequence of either
        Update rules, or one RunOptions per setting to run (then ``lrs`` is omitted and
        the option keywords stay at their defaults).
    lrs : float, None or sequence of them, optional
        ``None`` means the method's default (so ``lrs=[None]`` suits mixed methods;
        a number given for ``"polyak"`` multiplies the Polyak step).
    steps : int
        Number of updates (required).
    W0s, references, K0s, Q0s, u0s, references_u : sequence, optional
        One entry per problem (each may be None), as in :func:`run`.
    record, loss, param, normalize, num_records, seed, store_params, beta
        As in :func:`run`, shared by every run given by name.
    executor : optional
        ``None`` runs in this process (the compiled sweep already uses every core).
        Anything with ``submit(fn, *args) -> future`` and ``future.result()``, such as
        a ``dask.distributed.Client`` or a ``concurrent.futures`` pool: the sweep is
        split into ``chunks`` self-contained tasks whose results are gathered in order.
        A process pool must use the ``"spawn"`` or ``"forkserver"`` start method.
    progress : bool, default False
        Progress bar over steps (local) or finished chunks (executor).
    chunks : int, optional
        Number of tasks per group of runs on an executor; default the client's total
        thread count (dask) or the pool's worker count.
    on_error : {"raise", "return"}, default "raise"
        What a run that cannot be set up (a tie, an infeasible reference) or that
        diverges does: raise its error, or come back as a :class:`RunFailure` in its
        place while the other runs finish.

    Returns
    -------
    list of Trajectory (and RunFailure with ``on_error="return"``)

    Raises
    ------
    TypeError, ValueError, FloatingPointError
        As :func:`run`; a diverging run names the method and step size.

    Examples
    --------
    >>> from sims.data import equal_score
    >>> ps = [equal_score(3, 4, 5, seed=s) for s in range(2)]
    >>> out = run_many(ps, ["gd", "ngd"], [0.5], 50, references=[np.eye(5)] * 2, record=50)
    >>> [(tr.method, len(tr)) for tr in out]
    [('gd', 2), ('ngd', 2), ('gd', 2), ('ngd', 2)]
    >>> out = run_many(ps, "polyak", None, 5, references=[np.eye(5)] * 2,
    ...                W0s=[np.eye(5) * 1e150] * 2, on_error="return")
    >>> print(out[0])  # doctest: +ELLIPSIS
    run of problem 0 with polyak (lr=None) failed: FloatingPointError: polyak (lr=1) reached ...
    """
    keep_errors = _on_error(on_error)
    if steps is None:
        raise TypeError("run_many needs steps (the number of updates)")
    steps = _steps(steps)
    options = _sweep_options(methods, lrs, {
        "record": record, "loss": loss, "param": param, "normalize": normalize,
        "num_records": num_records, "seed": seed, "store_params": store_params, "beta": beta})
    problems = _listify(problems)
    per = {name: _per_problem(name, v, problems) for name, v in (
        ("W0s", W0s), ("references", references), ("K0s", K0s), ("Q0s", Q0s),
        ("u0s", u0s), ("references_u", references_u))}
    results = [None] * (len(problems) * len(options))
    specs = {}
    for r, ((ip, p), o) in enumerate(itertools.product(enumerate(problems), options)):
        try:
            specs[r] = _Spec(p, o, steps, per["W0s"][ip], per["K0s"][ip], per["Q0s"][ip],
                             per["u0s"][ip], per["references"][ip], per["references_u"][ip],
                             index=ip)
        except (ValueError, ArithmeticError) as exc:
            if not keep_errors:
                raise
            results[r] = RunFailure(ip, o.method, o.lr, exc)
    groups = {}  # one compiled call per problem shape and settings
    for r, s in specs.items():
        groups.setdefault(s.group_key(), []).append(r)

    tasks = []  # (run indices, payload)
    for idx in groups.values():
        if executor is None:
            parts = [idx]
        else:
            n_chunks = min(len(idx), _executor_chunks(executor, chunks))
            parts = [list(a) for a in np.array_split(idx, n_chunks)]
        for part in parts:
            tasks.append((part, _payload([specs[r] for r in part])))

    def collect(part, state, out):
        for j, r in enumerate(part):
            try:
                results[r] = _trajectory(specs[r], state, out, j, steps)
            except FloatingPointError as exc:
                if not keep_errors:
                    raise
                results[r] = RunFailure(specs[r].index, specs[r].method, specs[r].opts.lr, exc)

    if executor is None:
        for part, pl in tasks:
            _run_payload(pl, steps, progress, desc="sweep")
            collect(part, pl[2], pl[3])
        return results
    _check_executor(executor)
    futures = [executor.submit(_sweep_chunk, pl, steps) for _, pl in tasks]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(futures), desc="sweep chunks")
    for (part, _), fut in zip(tasks, futures):
        collect(part, *fut.result())
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return results
